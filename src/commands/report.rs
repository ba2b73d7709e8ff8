//! `tenantctl report revenue [--period] [--months]` and `tenantctl report margin [--period]`.

use anyhow::Result;
use chrono::Utc;

use crate::cli::ReportCommand;
use crate::config::Settings;
use crate::error::Failure;
use crate::ops::{report, ControlPlane, Reporter};
use crate::output::Output;
use crate::period::Period;
use crate::progress::TerminalReporter;

/// `--period`, if given: a month that has ended (a later one has no invoices to report).
fn period(arg: Option<&str>) -> Result<Option<Period>, Failure> {
    let Some(p) = arg else {
        return Ok(None);
    };
    let p = p
        .parse::<Period>()
        .map_err(|e| Failure::BadInput(format!("invalid --period: {e}")))?;
    let current = Period::containing(Utc::now());
    if p >= current {
        return Err(Failure::BadInput(format!(
            "invalid --period: {p} has not ended (now is {current}); reports cover billed months, before {current}"
        )));
    }
    Ok(Some(p))
}

pub async fn run(
    settings: Settings,
    cmd: ReportCommand,
    out: &Output,
    reporter: &TerminalReporter,
) -> Result<()> {
    match cmd {
        ReportCommand::Revenue { period: p, months } => {
            let out = out.printer::<report::RevenueReport>()?;
            let asked = period(p.as_deref())?;
            let months = crate::number::in_range("--months", months, 1..=report::MAX_MONTHS)?;
            let tiers = settings.load_tiers()?;
            let Some(plane) = ControlPlane::open_read_only(settings, reporter, true).await? else {
                return Err(report::nothing_billed().into());
            };
            let p = report::report_period(&plane, asked).await?;
            let view = report::revenue(&plane, &tiers, p, months).await?;
            warn_unbilled(
                reporter,
                view.months
                    .iter()
                    .filter(|m| !m.billed)
                    .map(|m| m.period.as_str()),
            );
            out.print(&view)
        }
        ReportCommand::Margin { period: p } => {
            let out = out.printer::<report::MarginReport>()?;
            let asked = period(p.as_deref())?;
            let tiers = settings.load_tiers()?;
            let Some(plane) = ControlPlane::open_read_only(settings, reporter, true).await? else {
                return Err(report::nothing_billed().into());
            };
            let p = report::report_period(&plane, asked).await?;
            let view = report::margin(&plane, &tiers, p).await?;
            warn_unbilled(
                reporter,
                (!view.billed).then_some(view.period.as_str()).into_iter(),
            );
            out.print(&view)
        }
    }
}

/// A month without a finished billing run is reported from what invoices it has (none, or
/// a part): said on stderr, and in the view's `billed`.
fn warn_unbilled<'a>(reporter: &TerminalReporter, months: impl Iterator<Item = &'a str>) {
    let months: Vec<&str> = months.collect();
    if !months.is_empty() {
        reporter.status(&format!(
            "not billed yet (figures from the invoices there are): {}",
            months.join(", ")
        ));
    }
}
