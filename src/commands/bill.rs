//! `tenantctl bill [--period] [--dry-run]` and `tenantctl invoices list|show`.

use anyhow::Result;
use chrono::Utc;

use crate::cli::{BillArgs, InvoicesCommand};
use crate::config::Settings;
use crate::error::Failure;
use crate::ops::{billing, ControlPlane, Reporter};
use crate::output::Output;
use crate::period::Period;
use crate::progress::TerminalReporter;
use crate::slug::Slug;

fn period(arg: Option<&str>) -> Result<Option<Period>, Failure> {
    arg.map(|p| {
        p.parse::<Period>()
            .map_err(|e| Failure::BadInput(format!("invalid --period: {e}")))
    })
    .transpose()
}

pub async fn run(
    settings: Settings,
    args: &BillArgs,
    out: &Output,
    reporter: &TerminalReporter,
) -> Result<()> {
    let out = out.printer::<billing::RunView>()?;
    let current = Period::containing(Utc::now());
    let period = period(args.period.as_deref())?.unwrap_or_else(|| current.previous());
    // A month is billed once, when it has ended: billing it earlier would close it with days
    // and usage still to come. A dry run may preview the current month (labelled unfinished).
    if period > current || (period == current && !args.dry_run) {
        return Err(Failure::BadInput(format!(
            "invalid --period: {period} has not ended (now is {current}); only months before {current} are billed; `--dry-run --period {current}` previews the current month"
        ))
        .into());
    }
    let tiers = settings.load_tiers()?;
    let plane = if args.dry_run {
        // A preview changes nothing, not even by creating a missing control database.
        match ControlPlane::open_read_only(settings, reporter, false).await? {
            Some(plane) => plane,
            None => {
                reporter.status("no control database yet: there is nothing to bill");
                return out.print(&billing::RunView::empty(period, &tiers.currency, true));
            }
        }
    } else {
        ControlPlane::open(settings, reporter).await?
    };
    let run = billing::bill(&plane, &tiers, period, args.dry_run, reporter).await?;
    out.print(&run)
}

pub async fn invoices(
    settings: Settings,
    cmd: InvoicesCommand,
    out: &Output,
    reporter: &TerminalReporter,
) -> Result<()> {
    match cmd {
        InvoicesCommand::List { period: p, slug } => {
            let out = out.printer::<[billing::InvoiceView]>()?;
            let p = period(p.as_deref())?;
            let slug: Option<Slug> = slug.as_deref().map(str::parse).transpose()?;
            let Some(plane) = ControlPlane::open_read_only(settings, reporter, true).await? else {
                return out.print(&[]);
            };
            out.print(&billing::invoices(&plane, p, slug.as_ref().map(Slug::as_str), None).await?)
        }
        InvoicesCommand::Show { id } => {
            let id = crate::number::in_range("invoice id", id, 1..=i64::MAX)?;
            let out = out.printer::<billing::InvoiceView>()?;
            let Some(plane) = ControlPlane::open_read_only(settings, reporter, true).await? else {
                return Err(billing::no_invoice(id).into());
            };
            let list = billing::invoices(&plane, None, None, Some(id)).await?;
            out.print(&list[0])
        }
    }
}
