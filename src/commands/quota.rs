//! `tenantctl quota show|set|reset|check`.

use anyhow::Result;

use crate::cli::QuotaCommand;
use crate::config::Settings;
use crate::error::Failure;
use crate::ops::quota::QuotaLine;
use crate::ops::{quota, tenants, ControlPlane};
use crate::output::Output;
use crate::progress::TerminalReporter;
use crate::resource::Resource;
use crate::slug::Slug;
use crate::words;

pub async fn run(
    settings: Settings,
    cmd: QuotaCommand,
    out: &Output,
    reporter: &TerminalReporter,
) -> Result<()> {
    let tiers = settings.load_tiers()?;
    match cmd {
        QuotaCommand::Show { slug } => {
            let out = out.printer::<[QuotaLine]>()?;
            let slug: Slug = slug.parse()?;
            let Some(plane) = ControlPlane::open_read_only(settings, reporter, true).await? else {
                return Err(tenants::not_found(slug.as_str()).into());
            };
            out.print(&quota::show(&plane, &tiers, &slug, reporter).await?)
        }
        QuotaCommand::Set {
            slug,
            resource,
            limit,
        } => {
            let out = out.printer::<[QuotaLine]>()?;
            let slug: Slug = slug.parse()?;
            let resource: Resource = resource.parse()?;
            let limit = crate::number::in_range("limit", limit, 0..=crate::tier::MAX_QUANTITY)?;
            let plane = ControlPlane::open(settings, reporter).await?;
            out.print(&[quota::set(&plane, &tiers, &slug, resource, limit).await?])
        }
        QuotaCommand::Reset { slug, resource } => {
            let out = out.printer::<[QuotaLine]>()?;
            let slug: Slug = slug.parse()?;
            let resource: Option<Resource> = resource.map(|r| r.parse()).transpose()?;
            let plane = ControlPlane::open(settings, reporter).await?;
            out.print(&quota::reset(&plane, &tiers, &slug, resource).await?)
        }
        QuotaCommand::Check {
            slug,
            resource,
            amount,
        } => {
            let out = out.printer::<quota::Check>()?;
            let slug: Slug = slug.parse()?;
            let resource: Resource = resource.parse()?;
            let amount =
                crate::number::in_range("--amount", amount, 1..=crate::tier::MAX_QUANTITY)?;
            let Some(plane) = ControlPlane::open_read_only(settings, reporter, true).await? else {
                return Err(tenants::not_found(slug.as_str()).into());
            };
            let check = quota::check(&plane, &tiers, &slug, resource, amount).await?;
            out.print(&check)?;
            if check.allowed {
                Ok(())
            } else {
                Err(Failure::Refused(format!(
                    "refused: {} for `{slug}`: {}",
                    words::quantity(amount, resource),
                    check.reason.as_deref().unwrap_or("over the limit")
                ))
                .into())
            }
        }
    }
}
