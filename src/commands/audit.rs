//! `tenantctl audit [slug] [--since]`.

use anyhow::Result;

use crate::cli::AuditArgs;
use crate::config::Settings;
use crate::db::lifecycle::AuditEntry;
use crate::error::Failure;
use crate::ops::{audit, ControlPlane};
use crate::output::Output;
use crate::period::parse_time;
use crate::progress::TerminalReporter;
use crate::slug::Slug;

pub async fn run(
    settings: Settings,
    args: &AuditArgs,
    out: &Output,
    reporter: &TerminalReporter,
) -> Result<()> {
    let out = out.printer::<[AuditEntry]>()?;
    let slug: Option<Slug> = args.slug.as_deref().map(str::parse).transpose()?;
    let since = args
        .since
        .as_deref()
        .map(|s| parse_time(s).map_err(|e| Failure::BadInput(format!("invalid --since: {e}"))))
        .transpose()?;
    match ControlPlane::open_read_only(settings, reporter, true).await? {
        Some(plane) => out.print(&audit::entries(&plane, slug.as_ref(), since).await?),
        None => out.print(&[]),
    }
}
