//! `tenantctl features show|grant|revoke|reset|check|refresh`.

use anyhow::Result;

use crate::cli::FeaturesCommand;
use crate::config::Settings;
use crate::error::Failure;
use crate::feature::Feature;
use crate::ops::features::{self, Change};
use crate::ops::{ControlPlane, Reporter};
use crate::output::Output;
use crate::progress::TerminalReporter;
use crate::slug::Slug;

pub async fn run(
    settings: Settings,
    cmd: FeaturesCommand,
    out: &Output,
    reporter: &TerminalReporter,
) -> Result<()> {
    let (slug, feature, change) = match cmd {
        FeaturesCommand::Show { slug } => {
            let out = out.printer::<features::FeaturesView>()?;
            let slug: Slug = slug.parse()?;
            let plane = ControlPlane::open(settings, reporter).await?;
            return out.print(&features::show(&plane, &slug).await?);
        }
        FeaturesCommand::Check { slug, feature } => {
            let out = out.printer::<features::Check>()?;
            let slug: Slug = slug.parse()?;
            let feature: Feature = feature.parse()?;
            let plane = ControlPlane::open(settings, reporter).await?;
            let check = features::check(&plane, &slug, &feature).await?;
            out.print(&check)?;
            return match &check.reason {
                None => Ok(()),
                Some(reason) => Err(Failure::Refused(format!("no: {reason}")).into()),
            };
        }
        FeaturesCommand::Refresh { slug } => {
            let out = out.printer::<[features::Refreshed]>()?;
            let slug: Option<Slug> = slug.map(|s| s.parse()).transpose()?;
            let tiers = settings.load_tiers()?;
            let plane = ControlPlane::open(settings, reporter).await?;
            let (done, failed) = features::refresh(&plane, &tiers, slug.as_ref(), reporter).await?;
            out.print(&done)?;
            if failed.is_empty() {
                return Ok(());
            }
            return Err(anyhow::anyhow!(
                "could not write the features of {} into their databases: {}; the others were refreshed, run `tenantctl features refresh` again once their servers are back",
                crate::words::count_len(failed.len(), "tenant"),
                failed
                    .iter()
                    .map(|(s, _)| format!("`{s}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        FeaturesCommand::Grant { slug, feature } => (slug, feature, Change::Grant),
        FeaturesCommand::Revoke { slug, feature } => (slug, feature, Change::Revoke),
        FeaturesCommand::Reset { slug, feature } => (slug, feature, Change::Reset),
    };
    // All checked before anything is touched.
    let out = out.printer::<features::FeaturesView>()?;
    let slug: Slug = slug.parse()?;
    let feature: Feature = feature.parse()?;
    let plane = ControlPlane::open(settings, reporter).await?;
    let (view, changed) = features::change(&plane, &slug, &feature, change).await?;
    let done = match change {
        Change::Grant => "granted",
        Change::Revoke => "revoked",
        Change::Reset => "reset to the tier's",
    };
    reporter.status(&if changed {
        format!("`{feature}` {done} for tenant `{slug}`")
    } else {
        format!("`{feature}` was {done} for tenant `{slug}` already; nothing changed")
    });
    out.print(&view)
}
