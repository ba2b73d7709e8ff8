//! `tenantctl adopt <slug>`.

use anyhow::Result;

use crate::cli::SlugArg;
use crate::config::Settings;
use crate::ops::{ownership, ControlPlane};
use crate::output::Output;
use crate::progress::TerminalReporter;
use crate::slug::Slug;

pub async fn run(
    settings: Settings,
    args: &SlugArg,
    out: &Output,
    reporter: &TerminalReporter,
) -> Result<()> {
    let out = out.printer::<ownership::Adopted>()?;
    let slug: Slug = args.slug.parse()?;
    let plane = ControlPlane::open(settings, reporter).await?;
    out.print(&ownership::adopt(&plane, &slug).await?)
}
