//! `tenantctl set-tier <slug> <tier>`.

use anyhow::Result;

use crate::cli::SetTierArgs;
use crate::config::Settings;
use crate::ops::tenants::TenantView;
use crate::ops::{lifecycle, ControlPlane};
use crate::output::Output;
use crate::progress::TerminalReporter;
use crate::slug::Slug;

pub async fn run(
    settings: Settings,
    args: &SetTierArgs,
    out: &Output,
    reporter: &TerminalReporter,
) -> Result<()> {
    let out = out.printer::<TenantView>()?;
    let slug: Slug = args.slug.parse()?;
    let tiers = settings.load_tiers()?;
    let tier = tiers.get(&args.tier)?.clone();
    let plane = ControlPlane::open(settings, reporter).await?;
    let view = lifecycle::set_tier(&plane, &slug, &args.tier, &tier, reporter).await?;
    out.print(&view)
}
