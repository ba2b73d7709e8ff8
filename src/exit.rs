//! Exit codes: the mapping of `error::Failure` to numbers. Only this file knows the numbers.
//!
//! | code | meaning |
//! |---|---|
//! | 0 | success |
//! | 1 | the operation failed (server unreachable, a step failed) |
//! | 2 | bad input or usage; nothing was changed |
//! | 3 | refused by state: not found, invalid transition, in progress, over a hard limit |

use crate::error::Failure;

pub const SUCCESS: u8 = 0;
pub const FAILED: u8 = 1;
pub const BAD_INPUT: u8 = 2;
pub const REFUSED: u8 = 3;

/// The exit code for an error: the first typed `Failure` in its chain decides.
pub fn code(err: &anyhow::Error) -> u8 {
    match err.chain().find_map(|e| e.downcast_ref::<Failure>()) {
        Some(Failure::BadInput(_)) => BAD_INPUT,
        Some(Failure::Refused(_)) => REFUSED,
        None => FAILED,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    #[test]
    fn typed_failures_survive_context() {
        let err = Err::<(), _>(Failure::Refused("busy".into()))
            .context("provisioning acme")
            .unwrap_err();
        assert_eq!(code(&err), REFUSED);
        assert_eq!(code(&anyhow::anyhow!("boom")), FAILED);
        assert_eq!(code(&Failure::BadInput("x".into()).into()), BAD_INPUT);
    }
}
