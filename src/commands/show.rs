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
    let out = out.printer::<tenants::TenantView>()?;
    let slug: Slug = args.slug.parse()?;
    let Some(plane) = ControlPlane::open_read_only(settings, reporter, true).await? else {
        return Err(tenants::not_found(slug.as_str()).into());
    };
    out.print(&tenants::show(&plane, &slug).await?)
}
