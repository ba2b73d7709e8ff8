//! The few typed failures a caller branches on, beside the domain that raises them. What they
//! mean to a shell (their exit codes) is `exit.rs`'s business.

/// Outcomes a script branches on. Everything else is an operational failure (exit 1).
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// Bad arguments, slug, tier, or configuration: nothing was changed.
    #[error("{0}")]
    BadInput(String),
    /// The request is valid but the current state refuses it.
    #[error("{0}")]
    Refused(String),
}
