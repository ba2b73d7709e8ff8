//! `tenantctl migrate [--concurrency N] [--dry-run]` and `tenantctl migrate status`.

use anyhow::Result;

use crate::cli::{MigrateArgs, MigrateCommand};
use crate::config::Settings;
use crate::ops::{migrate, servers, ControlPlane};
use crate::output::Output;
use crate::progress::TerminalReporter;
use crate::words;

pub async fn run(
    settings: Settings,
    args: &MigrateArgs,
    out: &Output,
    reporter: &TerminalReporter,
) -> Result<()> {
    let concurrency = crate::number::in_range("--concurrency", args.concurrency, 1..=64)?;
    if args.dry_run || matches!(args.command, Some(MigrateCommand::Status)) {
        let out = out.printer::<[migrate::DatabaseState]>()?;
        // Reads only: a missing control database has no tenant databases to report.
        return match ControlPlane::open_read_only(settings, reporter, false).await? {
            Some(plane) => out.print(&migrate::states(&plane, reporter).await?),
            None => out.print(&[]),
        };
    }
    let out = out.printer::<[migrate::DatabaseResult]>()?;
    let plane = ControlPlane::open(settings, reporter).await?;
    let migrated = migrate::migrate(&plane, concurrency as usize, reporter).await?;
    let results = &migrated.results;
    out.print(results)?;
    if !migrated.unreachable.is_empty() {
        return Err(anyhow::anyhow!(
            "{}",
            servers::unreached_message(&migrated.unreachable, "databases not migrated")
        ));
    }
    let failed: Vec<String> = results
        .iter()
        .filter(|r| r.result == migrate::Outcome::Failed)
        .map(|r| {
            format!(
                "{} on `{}` ({})",
                r.database,
                r.server,
                r.tenants.join(", ")
            )
        })
        .collect();
    if failed.is_empty() {
        Ok(())
    } else {
        Err(anyhow::anyhow!(
            "migration failed for {}: {}; the others were migrated",
            words::count_len(failed.len(), "database"),
            failed.join("; ")
        ))
    }
}
