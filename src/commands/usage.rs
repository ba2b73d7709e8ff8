//! `tenantctl usage record|import|refresh`.

use anyhow::Result;

use crate::cli::UsageCommand;
use crate::config::Settings;
use crate::error::Failure;
use crate::ops::{usage, ControlPlane};
use crate::output::Output;
use crate::period::parse_time;
use crate::progress::TerminalReporter;
use crate::slug::Slug;
use crate::words;

pub async fn run(
    settings: Settings,
    cmd: UsageCommand,
    out: &Output,
    reporter: &TerminalReporter,
) -> Result<()> {
    match cmd {
        UsageCommand::Record {
            slug,
            resource,
            quantity,
            at,
            key,
        } => {
            let out = out.printer::<usage::RecordView>()?;
            let slug: Slug = slug.parse()?;
            let at = match at {
                Some(a) => {
                    parse_time(&a).map_err(|e| Failure::BadInput(format!("invalid --at: {e}")))?
                }
                None => chrono::Utc::now(),
            };
            let resource = resource
                .parse::<crate::resource::Resource>()?
                .check_metered()?;
            let quantity =
                crate::number::in_range("quantity", quantity, 1..=crate::tier::MAX_QUANTITY)?;
            let tiers = settings.load_tiers()?;
            let plane = ControlPlane::open(settings, reporter).await?;
            let view = usage::record(
                &plane,
                &tiers,
                &slug,
                resource,
                quantity,
                at,
                key.as_deref(),
            )
            .await?;
            out.print(&view)
        }
        UsageCommand::Import { file } => {
            let out = out.printer::<usage::ImportView>()?;
            let tiers = settings.load_tiers()?;
            // Parse before connecting: a malformed file changes nothing anywhere.
            let rows = usage::read_file(&file)?;
            let plane = ControlPlane::open(settings, reporter).await?;
            let view = usage::import(&plane, &tiers, &file.display().to_string(), &rows).await?;
            out.print(&view)?;
            if view.refused > 0 {
                return Err(Failure::Refused(format!(
                    "{} of {} rows refused (listed above); the other rows were applied",
                    view.refused, view.rows
                ))
                .into());
            }
            Ok(())
        }
        UsageCommand::Refresh { slug } => {
            let out = out.printer::<usage::RefreshView>()?;
            let slug: Option<Slug> = slug.map(|s| s.parse()).transpose()?;
            let plane = ControlPlane::open(settings, reporter).await?;
            let view = usage::refresh(&plane, slug.as_ref()).await?;
            out.print(&view)?;
            if !view.failed.is_empty() {
                let names: Vec<String> = view
                    .failed
                    .iter()
                    .map(|f| format!("`{}` ({})", f.slug, crate::excerpt::excerpt(&f.reason)))
                    .collect();
                return Err(anyhow::anyhow!(
                    "could not measure {}, their last measurements kept: {}",
                    words::count_len(names.len(), "tenant"),
                    names.join(", ")
                ));
            }
            Ok(())
        }
    }
}
