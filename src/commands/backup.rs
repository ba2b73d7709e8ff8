//! `tenantctl backup`, `backups list|prune`, `restore-backup`.

use anyhow::Result;

use crate::cli::{BackupArgs, BackupsCommand, RestoreBackupArgs};
use crate::config::Settings;
use crate::ops::{backup, ControlPlane};
use crate::output::Output;
use crate::progress::TerminalReporter;
use crate::slug::Slug;

pub async fn backup(
    settings: Settings,
    args: &BackupArgs,
    out: &Output,
    reporter: &TerminalReporter,
) -> Result<()> {
    match &args.slug {
        Some(slug) => {
            let out = out.printer::<backup::BackupView>()?;
            let slug: Slug = slug.parse()?;
            let plane = ControlPlane::open(settings, reporter).await?;
            out.print(&backup::backup(&plane, &slug, reporter).await?)
        }
        None => {
            let out = out.printer::<backup::BackupAll>()?;
            let plane = ControlPlane::open(settings, reporter).await?;
            let done = backup::backup_all(&plane, args.concurrency.into(), reporter).await?;
            out.print(&done)?;
            if done.failed.is_empty() {
                Ok(())
            } else {
                let names: Vec<&str> = done.failed.iter().map(|f| f.slug.as_str()).collect();
                Err(anyhow::anyhow!(
                    "backing up {} failed: {}",
                    crate::words::count_len(names.len(), "tenant"),
                    names.join(", ")
                ))
            }
        }
    }
}

pub async fn backups(
    settings: Settings,
    cmd: BackupsCommand,
    out: &Output,
    reporter: &TerminalReporter,
) -> Result<()> {
    match cmd {
        BackupsCommand::List(args) => {
            let out = out.printer::<[backup::BackupView]>()?;
            let slug: Slug = args.slug.parse()?;
            let plane = ControlPlane::open(settings, reporter).await?;
            out.print(&backup::list(&plane, &slug).await?)
        }
        BackupsCommand::Prune(args) => {
            let out = out.printer::<backup::Pruned>()?;
            let slug: Slug = args.slug.parse()?;
            let plane = ControlPlane::open(settings, reporter).await?;
            out.print(&backup::prune(&plane, &slug, args.keep as usize).await?)
        }
    }
}

pub async fn restore(
    settings: Settings,
    args: &RestoreBackupArgs,
    out: &Output,
    reporter: &TerminalReporter,
) -> Result<()> {
    let out = out.printer::<backup::Restored>()?;
    let slug: Slug = args.slug.parse()?;
    let plane = ControlPlane::open(settings, reporter).await?;
    out.print(&backup::restore(&plane, &slug, &args.backup_id, args.yes, reporter).await?)
}
