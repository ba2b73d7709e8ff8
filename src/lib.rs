//! tenantctl: the control plane for the tenants of a multi-tenant SaaS on PostgreSQL.
//!
//! # Layout
//!
//! Data flows one way: CLI parsing → command → operation → database / storage adapters.
//!
//! - `cli`: the clap types of the command line.
//! - `config`: `Settings`, resolved once (flag > environment > file > default).
//! - `conninfo`: libpq connection strings (URL and key=value), `.pgpass`, redacted display.
//! - `commands`: one thin file per subcommand: arguments → one `ops` call → render.
//! - `ops`: the work (`provision` holds the numbered steps), reporting through `ops::Reporter`.
//! - `db`: every line of SQL, the pools and the refinery migrations.
//! - `storage`: the bucket backend trait and its local-directory implementation.
//! - `cluster`: the local PostgreSQL cluster used when no database URL is configured.
//! - `output`: the `Render` trait and its impls per topic: views as tables, JSON or CSV on
//!   stdout, lines on stderr; the only module that prints. `output::document` writes whole
//!   documents (completions, man pages, metrics) to stdout or a file replaced atomically;
//!   `output::metrics` renders the fleet as Prometheus/OpenMetrics text.
//! - `progress`: the terminal implementation of `ops::Reporter`.
//! - `error`: `Failure`, the typed outcomes a caller branches on (bad input, refused).
//! - `exit`: the exit code of each failure.
//! - `excerpt`: the short, escaped form in which a bad value appears in a message.
//! - `field`: the length and character rules of the free text tenantctl stores.
//! - `number`: the range check of whole numbers given on the command line.
//! - `text_file`: bounded reading of a file a user names (tiers, config, usage import).
//! - `words`: counts with their noun in the right number, times with their zone.
//! - `action`, `transition`: the audit actions, and the one table of allowed status moves.
//! - `sql_text`: `ToSql`/`FromSql` through the text type for the domain's words.
//! - `hook`: the lifecycle events operators hook commands to, and `[hooks]` checked.
//! - `server_name`, `region`, `placement`: the fleet's server names and regions (one rule,
//!   `label`), and where a new tenant goes.
//! - `resource`, `step`, `move_step`, `slug`, `tenant`, `tier`, `feature`, `money`, `period`, `usage_file`, `invoice`: the domain types, unit-tested in place.

#![deny(clippy::print_stdout, clippy::print_stderr)]

pub mod action;
pub mod cli;
pub mod cluster;
mod commands;
pub mod config;
pub mod conninfo;
pub mod db;
pub mod error;
pub mod excerpt;
pub mod exit;
pub mod feature;
pub mod field;
pub mod hook;
pub mod invoice;
mod label;
pub mod money;
pub mod move_step;
pub mod number;
pub mod ops;
pub mod output;
pub mod period;
pub mod placement;
pub mod progress;
pub mod region;
pub mod resource;
pub mod server_name;
pub mod slug;
mod sql_text;
pub mod step;
pub mod storage;
pub mod tenant;
pub mod text_file;
pub mod tier;
pub mod transition;
pub mod usage_file;
pub mod words;

use anyhow::{Context, Result};

/// Runs one parsed command line.
pub fn run(cli: cli::Cli) -> Result<()> {
    if let Some(done) = commands::run_without_settings(&cli.command) {
        return done;
    }
    let settings = config::Settings::resolve(&cli.global)?;
    for w in &settings.warnings {
        output::stderr_line(w);
    }
    // A one-shot command (`quota check`, `show`, `list`) waits on one connection at a time: a
    // single-threaded runtime starts no worker threads. Commands that fan out over many
    // connections or hash in bulk keep the worker threads (bcrypt runs on the blocking pool
    // either way).
    let fans_out = matches!(
        cli.command,
        cli::Command::Provision(_)
            | cli::Command::Migrate(_)
            | cli::Command::Bill(_)
            | cli::Command::Usage(_)
    );
    let runtime = if fans_out {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    }
    .context("starting the async runtime")?;
    runtime.block_on(commands::dispatch(cli.command, settings))
}
