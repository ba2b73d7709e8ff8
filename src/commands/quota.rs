//! `tenantctl quota show|set|reset|check`.

use anyhow::Result;

use crate::cli::QuotaCommand;
use crate::config::Settings;
use crate::exit::Failure;
use crate::ops::{quota, tenants, ControlPlane};
use crate::output::Output;
use crate::progress::TerminalReporter;
use crate::resource::Resource;
use crate::slug::Slug;

pub async fn run(
    settings: Settings,
    cmd: QuotaCommand,
    out: &Output,
    reporter: &TerminalReporter,
) -> Result<()> {
    let tiers = settings.load_tiers()?;
    match cmd {
        QuotaCommand::Show { slug } => {
            let slug: Slug = slug.parse()?;
            let Some(plane) = ControlPlane::open_read_only(settings, reporter, true).await? else {
                return Err(tenants::not_found(slug.as_str()).into());
            };
            out.quota_lines(&quota::show(&plane, &tiers, &slug, reporter).await?)
        }
        QuotaCommand::Set {
            slug,
            resource,
            limit,
        } => {
            let slug: Slug = slug.parse()?;
            let resource: Resource = resource.parse()?;
            let plane = ControlPlane::open(settings, reporter).await?;
            out.quota_lines(&[quota::set(&plane, &tiers, &slug, resource, limit).await?])
        }
        QuotaCommand::Reset { slug, resource } => {
            let slug: Slug = slug.parse()?;
            let resource: Option<Resource> = resource.map(|r| r.parse()).transpose()?;
            let plane = ControlPlane::open(settings, reporter).await?;
            out.quota_lines(&quota::reset(&plane, &tiers, &slug, resource).await?)
        }
        QuotaCommand::Check {
            slug,
            resource,
            amount,
        } => {
            let slug: Slug = slug.parse()?;
            let resource: Resource = resource.parse()?;
            let Some(plane) = ControlPlane::open_read_only(settings, reporter, true).await? else {
                return Err(tenants::not_found(slug.as_str()).into());
            };
            let check = quota::check(&plane, &tiers, &slug, resource, amount).await?;
            out.check(&check)?;
            if check.allowed {
                Ok(())
            } else {
                Err(Failure::Refused(format!(
                    "refused: {amount} {resource} for `{slug}`: {}",
                    check.reason.as_deref().unwrap_or("over the limit")
                ))
                .into())
            }
        }
    }
}
