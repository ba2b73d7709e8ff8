//! `tenantctl suspend|resume|deprovision|restore|purge`.

use std::io::{BufRead, IsTerminal};

use anyhow::Result;

use crate::cli::{DeprovisionArgs, PurgeArgs, SlugArg, SuspendArgs};
use crate::config::Settings;
use crate::error::Failure;
use crate::ops::tenants::TenantView;
use crate::ops::{lifecycle, ControlPlane};
use crate::output::{self, Output};
use crate::progress::TerminalReporter;
use crate::slug::Slug;
use crate::words;

pub async fn suspend(
    settings: Settings,
    args: &SuspendArgs,
    out: &Output,
    reporter: &TerminalReporter,
) -> Result<()> {
    let out = out.printer::<TenantView>()?;
    let slug: Slug = args.slug.parse()?;
    check_reason(args.reason.as_deref())?;
    let plane = ControlPlane::open(settings, reporter).await?;
    out.print(&lifecycle::suspend(&plane, &slug, args.reason.as_deref(), reporter).await?)
}

pub async fn resume(
    settings: Settings,
    args: &SlugArg,
    out: &Output,
    reporter: &TerminalReporter,
) -> Result<()> {
    let out = out.printer::<TenantView>()?;
    let slug: Slug = args.slug.parse()?;
    let plane = ControlPlane::open(settings, reporter).await?;
    out.print(&lifecycle::resume(&plane, &slug, reporter).await?)
}

pub async fn restore(
    settings: Settings,
    args: &SlugArg,
    out: &Output,
    reporter: &TerminalReporter,
) -> Result<()> {
    let out = out.printer::<TenantView>()?;
    let slug: Slug = args.slug.parse()?;
    let plane = ControlPlane::open(settings, reporter).await?;
    out.print(&lifecycle::restore(&plane, &slug, reporter).await?)
}

/// A reason is stored in the audit log: bounded, printable text (`field::REASON_MAX`).
fn check_reason(reason: Option<&str>) -> Result<(), Failure> {
    match reason {
        Some(r) => crate::field::check("--reason", r, crate::field::REASON_MAX),
        None => Ok(()),
    }
}

/// A purge destroys data: on a terminal, ask for the word; elsewhere, require `--yes`.
fn confirm(yes: bool, what: &str, word: &str) -> Result<(), Failure> {
    if yes {
        return Ok(());
    }
    if !std::io::stdin().is_terminal() {
        return Err(Failure::BadInput(format!(
            "refusing to {what} without --yes: stdin is not a terminal, so there is no one to ask"
        )));
    }
    output::stderr_line(&format!("This will {what}. Type `{word}` to confirm:"));
    let mut answer = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut answer)
        .map_err(|e| Failure::BadInput(format!("reading the confirmation: {e}")))?;
    if answer.trim() != word {
        return Err(Failure::BadInput(format!(
            "not confirmed (expected `{word}`); nothing changed"
        )));
    }
    Ok(())
}

pub async fn deprovision(
    settings: Settings,
    args: &DeprovisionArgs,
    out: &Output,
    reporter: &TerminalReporter,
) -> Result<()> {
    if args.purge {
        let out = out.printer::<[lifecycle::Purged]>()?;
        let slug: Slug = args.slug.parse()?;
        check_reason(args.reason.as_deref())?;
        confirm(
            args.yes,
            &format!("remove tenant `{slug}` and all its data for good"),
            slug.as_str(),
        )?;
        let plane = ControlPlane::open(settings, reporter).await?;
        return out.print(&[lifecycle::purge(&plane, &slug, reporter).await?]);
    }
    let out = out.printer::<TenantView>()?;
    let slug: Slug = args.slug.parse()?;
    check_reason(args.reason.as_deref())?;
    let plane = ControlPlane::open(settings, reporter).await?;
    out.print(&lifecycle::deprovision(&plane, &slug, args.reason.as_deref(), reporter).await?)
}

pub async fn purge(
    settings: Settings,
    args: &PurgeArgs,
    out: &Output,
    reporter: &TerminalReporter,
) -> Result<()> {
    debug_assert!(args.expired);
    let out = out.printer::<[lifecycle::Purged]>()?;
    confirm(
        args.yes,
        "remove every tenant past its retention period for good",
        "purge",
    )?;
    let plane = ControlPlane::open(settings, reporter).await?;
    let done = lifecycle::purge_expired(&plane, reporter).await?;
    out.print(&done.purged)?;
    if done.failed.is_empty() {
        return Ok(());
    }
    let failed: Vec<String> = done
        .failed
        .iter()
        .map(|(slug, e)| format!("`{slug}` ({e})"))
        .collect();
    Err(anyhow::anyhow!(
        "purge failed for {}: {}; the others were purged",
        words::count_len(failed.len(), "tenant"),
        failed.join("; ")
    ))
}
