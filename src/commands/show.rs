//! `tenantctl show <slug>`.

use anyhow::Result;

use crate::cli::ShowArgs;
use crate::config::Settings;
use crate::ops::{tenants, ControlPlane};
use crate::output::Output;
use crate::progress::TerminalReporter;
use crate::slug::Slug;

pub async fn run(
    settings: Settings,
    args: &ShowArgs,
    out: &Output,
    reporter: &TerminalReporter,
) -> Result<()> {
    let slug: Slug = args.slug.parse()?;
    let plane = ControlPlane::open(settings, reporter).await?;
    out.tenant(&tenants::show(&plane, &slug).await?)
}
