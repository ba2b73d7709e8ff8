//! `tenantctl move <slug> --to <server> [--region REGION]`.

use anyhow::Result;

use crate::cli::MoveArgs;
use crate::config::Settings;
use crate::ops::tenants::TenantView;
use crate::ops::{lifecycle, ControlPlane};
use crate::output::Output;
use crate::progress::TerminalReporter;
use crate::server_name::ServerName;
use crate::slug::Slug;

pub async fn run(
    settings: Settings,
    args: &MoveArgs,
    out: &Output,
    reporter: &TerminalReporter,
) -> Result<()> {
    let out = out.printer::<TenantView>()?;
    let slug: Slug = args.slug.parse()?;
    let to: ServerName = args.to.parse()?;
    if let Some(region) = &args.region {
        region.parse::<crate::region::Region>()?;
    }
    let plane = ControlPlane::open(settings, reporter).await?;
    let view =
        lifecycle::move_to_server(&plane, &slug, &to, args.region.as_deref(), reporter).await?;
    out.print(&view)
}
