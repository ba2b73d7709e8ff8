//! `tenantctl migrate [--concurrency N] [--dry-run]` and `tenantctl migrate status`.

use anyhow::Result;

use crate::cli::{MigrateArgs, MigrateCommand};
use crate::config::Settings;
use crate::ops::{migrate, ControlPlane};
use crate::output::Output;
use crate::progress::TerminalReporter;

pub async fn run(
    settings: Settings,
    args: &MigrateArgs,
    out: &Output,
    reporter: &TerminalReporter,
) -> Result<()> {
    if args.dry_run || matches!(args.command, Some(MigrateCommand::Status)) {
        // Reads only: a missing control database has no tenant databases to report.
        return match ControlPlane::open_read_only(settings, reporter, false).await? {
            Some(plane) => out.schema_states(&migrate::states(&plane).await?),
            None => out.schema_states(&[]),
        };
    }
    let plane = ControlPlane::open(settings, reporter).await?;
    let results = migrate::migrate(&plane, usize::from(args.concurrency), reporter).await?;
    out.migrated(&results)?;
    let failed: Vec<String> = results
        .iter()
        .filter(|r| r.result == migrate::Outcome::Failed)
        .map(|r| format!("{} ({})", r.database, r.tenants.join(", ")))
        .collect();
    if failed.is_empty() {
        Ok(())
    } else {
        Err(anyhow::anyhow!(
            "migration failed for {} database(s): {}; the others were migrated",
            failed.len(),
            failed.join("; ")
        ))
    }
}
