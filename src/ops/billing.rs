//! Billing a period: one invoice per tenant billable in it, exactly once, however often and
//! however concurrently cron runs it.
//!
//! 1. **lock**: the period's advisory lock, without waiting: a second run at once exits 3
//!    "busy".
//! 2. **gate**: the `billing_runs` row of the period. Finished: nothing to do (exit 0).
//!    Otherwise it is claimed (or was, by a run that died).
//! 3. **compute**: for every tenant with no invoice for the period yet, from its audit-log
//!    history, the period's usage totals, its measurements (after waiting for any being
//!    stored, so the month's history is closed) and the late usage of earlier periods: base
//!    lines per tier and day, overage lines (metered and measured), adjustments, an upgrade
//!    hint (see `invoice`).
//! 4. **write**: in batches, each one transaction; `UNIQUE (tenant_id, period)` makes a tenant's
//!    invoice exist at most once even if two runs got this far. A run killed midway leaves
//!    whole batches; the next run computes only the tenants still without an invoice.
//! 5. **finish**: the gate row records the count and total.
//!
//! `--dry-run` does step 3 only, with the same code, and writes nothing.

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use anyhow::Result;
use serde::Serialize;
use uuid::Uuid;

use super::{failpoint, ControlPlane, Reporter};
use crate::db::billing::{NewInvoice, StoredInvoice};
use crate::error::Failure;
use crate::invoice::{self, format_cents, Line, UpgradeHint};
use crate::period::Period;
use crate::resource::{Kind, Resource};
use crate::tier::Tiers;

/// One line as printed. JSON field names are a contract.
#[derive(Debug, Clone, Serialize)]
pub struct LineView {
    pub kind: String,
    pub description: String,
    /// `null` for a base line.
    pub resource: Option<Resource>,
    pub tier: String,
    pub quantity: i64,
    pub unit_price: String,
    pub amount: String,
    pub usage_period: Option<String>,
    /// The tier's included limit (overage and adjustment lines; null on base lines).
    pub included: Option<i64>,
    /// The month's usage the line accounts for (overage: all of it; adjustment: its total
    /// now, late units included).
    pub month_usage: Option<i64>,
    /// Adjustment lines: units recorded after the month's invoice.
    pub late_units: Option<i64>,
}

/// One invoice as printed. `id` is null in a dry run.
#[derive(Debug, Clone, Serialize)]
pub struct InvoiceView {
    pub id: Option<i64>,
    pub slug: String,
    pub period: String,
    pub currency: String,
    pub total: String,
    pub lines: Vec<LineView>,
    pub upgrade_hint: Option<UpgradeHint>,
}

/// What a run did (or, dry, would do).
#[derive(Debug, Clone, Serialize)]
pub struct RunView {
    pub period: String,
    pub dry_run: bool,
    /// True for a dry run of the current month: a preview of a month that has not ended.
    pub unfinished: bool,
    /// True when the period was billed by an earlier run and nothing was done.
    pub already_billed: bool,
    pub tenants_billed: usize,
    pub currency: String,
    pub total: String,
    pub upgrade_hints: usize,
    pub duration_ms: u128,
    pub invoices: Vec<InvoiceView>,
}

impl RunView {
    /// A run that found nothing to bill (there is no control database yet).
    pub fn empty(period: Period, currency: &str, dry_run: bool) -> RunView {
        RunView {
            period: period.to_string(),
            dry_run,
            unfinished: period >= Period::containing(chrono::Utc::now()),
            already_billed: false,
            tenants_billed: 0,
            currency: currency.to_owned(),
            total: format_cents(0),
            upgrade_hints: 0,
            duration_ms: 0,
            invoices: Vec::new(),
        }
    }
}

fn line_view(l: &Line) -> LineView {
    LineView {
        kind: l.kind.as_str().to_owned(),
        description: l.description.clone(),
        resource: l.resource,
        tier: l.tier.clone(),
        quantity: l.quantity,
        unit_price: l.unit_price.to_string(),
        amount: format_cents(l.amount_cents),
        usage_period: l.usage_period.map(|p| p.to_string()),
        included: l.included,
        month_usage: l.month_usage,
        late_units: l.late_units,
    }
}

/// A stored upgrade hint, read back as the type it was written from.
fn hint(stored: &Option<serde_json::Value>) -> Result<Option<UpgradeHint>> {
    stored
        .clone()
        .map(serde_json::from_value)
        .transpose()
        .map_err(|e| anyhow::anyhow!("reading an invoice's upgrade hint: {e}"))
}

pub fn stored_view(i: &StoredInvoice) -> Result<InvoiceView> {
    Ok(InvoiceView {
        id: Some(i.id),
        slug: i.slug.clone(),
        period: i.period.to_string(),
        currency: i.currency.clone(),
        total: format_cents(i.total_cents),
        lines: i.lines.iter().map(line_view).collect(),
        upgrade_hint: hint(&i.upgrade_hint)?,
    })
}

/// A sum of cents that fails instead of wrapping (each line is bounded by tiers.toml's
/// maxima; a sum of very many could still pass i64).
fn checked_sum(mut cents: impl Iterator<Item = i64>) -> Result<i64> {
    cents
        .try_fold(0i64, i64::checked_add)
        .ok_or_else(|| anyhow::anyhow!("an invoice total overflows 64-bit cents"))
}

/// Step 3: the invoices of every tenant without one for the period.
async fn compute(plane: &ControlPlane, tiers: &Tiers, period: Period) -> Result<Vec<NewInvoice>> {
    let candidates = plane.control.billing_candidates(period).await?;
    let usage = plane.control.period_usage(period).await?;
    let mut measured = plane.control.period_measurements(period).await?;
    let mut late: HashMap<Uuid, Vec<crate::db::billing::LateUsage>> = HashMap::new();
    for l in plane.control.late_usage(period).await? {
        late.entry(l.tenant).or_default().push(l);
    }
    let mut out = Vec::new();
    for c in candidates {
        let days = invoice::billed_days(&c.history, period);
        let Some((_, last_tier)) = days.last().cloned() else {
            continue;
        };
        let tier = tiers.tiers.get(&last_tier).ok_or_else(|| {
            Failure::BadInput(format!(
                "tenant `{}` was on tier `{last_tier}` in {period}, which the tier table does not define (it has {})",
                c.slug,
                tiers.names().join(", ")
            ))
        })?;
        let mut lines = invoice::base_lines(&days, tiers, period);
        let mut covers = Vec::new();
        let mut used_map = BTreeMap::new();
        for r in Resource::metered() {
            let used = usage.get(&(c.tenant, r)).copied().unwrap_or(0);
            // Zero too: usage recorded after this invoice must find what it covered.
            covers.push((r, period, used, last_tier.clone()));
            if used > 0 {
                used_map.insert(r, used);
            }
            lines.extend(invoice::overage_line(&last_tier, tier, r, used, period));
        }
        // Measured resources: from the history of measurements over the billed days, with
        // the same coverage rows (a run never bills a month twice; see `close_measurements`
        // for why a billed month's measurements cannot change).
        let billed: Vec<chrono::NaiveDate> = days.iter().map(|(d, _)| *d).collect();
        for r in Resource::ALL
            .iter()
            .copied()
            .filter(|r| r.kind() == Kind::Measured)
        {
            let m = measured.remove(&(c.tenant, r)).unwrap_or_default();
            let used = match r {
                Resource::Users => invoice::measured_peak(&billed, m.carried_in, &m.days, period),
                _ => invoice::measured_unit_months(&billed, m.carried_in, &m.days, period),
            };
            covers.push((r, period, used, last_tier.clone()));
            if used > 0 {
                used_map.insert(r, used);
            }
            lines.extend(invoice::measured_overage_line(
                &last_tier, tier, r, used, period,
            ));
        }
        // What the period's own days and usage cost: the upgrade hint compares with this.
        let period_cents: i64 = lines.iter().map(|l| l.amount_cents).sum();
        for l in late.remove(&c.tenant).unwrap_or_default() {
            let usage_period = l.period;
            let then = tiers.tiers.get(&l.tier).ok_or_else(|| {
                Failure::BadInput(format!(
                    "tenant `{}` has late usage of {usage_period} billed on tier `{}`, which the tier table does not define (it has {})",
                    c.slug,
                    l.tier,
                    tiers.names().join(", ")
                ))
            })?;
            covers.push((l.resource, l.period, l.now - l.billed, l.tier.clone()));
            lines.extend(invoice::adjustment_line(
                &l.tier,
                then,
                l.resource,
                l.billed,
                l.now,
                usage_period,
            ));
        }
        let total = checked_sum(lines.iter().map(|l| l.amount_cents))?;
        let hint: Option<UpgradeHint> = invoice::upgrade_hint(
            tiers,
            &last_tier,
            days.len() as i64,
            period,
            &used_map,
            period_cents,
        );
        out.push(NewInvoice {
            tenant: c.tenant,
            slug: c.slug,
            currency: tiers.currency.clone(),
            total_cents: total,
            upgrade_hint: hint.map(|h| serde_json::to_value(h).expect("serializable")),
            lines,
            covers,
        });
    }
    out.sort_by(|a, b| a.slug.cmp(&b.slug));
    Ok(out)
}

fn new_view(i: &NewInvoice, period: Period) -> Result<InvoiceView> {
    Ok(InvoiceView {
        id: None,
        slug: i.slug.clone(),
        period: period.to_string(),
        currency: i.currency.clone(),
        total: format_cents(i.total_cents),
        lines: i.lines.iter().map(line_view).collect(),
        upgrade_hint: hint(&i.upgrade_hint)?,
    })
}

/// `bill`: see the module outline.
pub async fn bill(
    plane: &ControlPlane,
    tiers: &Tiers,
    period: Period,
    dry_run: bool,
    reporter: &dyn Reporter,
) -> Result<RunView> {
    let t0 = Instant::now();
    let _lock = if dry_run {
        None
    } else {
        Some(plane.control.try_lock_billing(period).await?.ok_or_else(|| {
            Failure::Refused(format!("busy: another `tenantctl bill` is billing {period}; try again when it has finished"))
        })?)
    };
    let summary = |invoices: Vec<InvoiceView>, total: i64, already: bool| RunView {
        period: period.to_string(),
        dry_run,
        unfinished: period >= Period::containing(chrono::Utc::now()),
        already_billed: already,
        tenants_billed: invoices.len(),
        currency: tiers.currency.clone(),
        total: format_cents(total),
        upgrade_hints: invoices.iter().filter(|i| i.upgrade_hint.is_some()).count(),
        duration_ms: t0.elapsed().as_millis(),
        invoices,
    };
    if let Some(run) = plane.control.billing_run(period).await? {
        if let Some(done) = run.finished_at {
            reporter.status(&format!(
                "{period} was billed at {}; nothing to do",
                done.to_rfc3339()
            ));
            return Ok(summary(Vec::new(), 0, true));
        }
        if !dry_run {
            reporter.status(&format!(
                "finishing the run for {period} started at {} (tenants already invoiced are kept)",
                run.started_at.to_rfc3339()
            ));
        }
    }
    if !dry_run {
        // Measurements are dated by the server's clock: until it has passed the period's end
        // (and every measurement in flight is stored), the period's history may still grow.
        if !plane.control.close_measurements(period).await? {
            return Err(Failure::Refused(format!(
                "{period} has not ended on the database server's clock yet; measurements of it may still arrive, so it cannot be billed: try again later"
            ))
            .into());
        }
        plane
            .control
            .start_billing_run(period, &plane.ctx.actor)
            .await?;
    }
    let invoices = compute(plane, tiers, period).await?;
    let total = checked_sum(invoices.iter().map(|i| i.total_cents))?;
    let views = invoices
        .iter()
        .map(|i| new_view(i, period))
        .collect::<Result<Vec<InvoiceView>>>()?;
    if dry_run {
        return Ok(summary(views, total, false));
    }
    let n = invoices.len();
    reporter.progress(0, n, "billing");
    let mut written = 0;
    for batch in invoices.chunks(plane.ctx.bill_batch) {
        plane.control.insert_invoices(period, batch).await?;
        written += batch.len();
        reporter.progress(written, n, "billing");
        failpoint(&plane.ctx, "bill:batch");
    }
    plane.control.finish_billing_run(period).await?;
    // Show the invoices as stored (with their ids).
    let stored = plane.control.invoices(Some(period), None, None).await?;
    let billed: std::collections::HashSet<&str> =
        invoices.iter().map(|i| i.slug.as_str()).collect();
    let views: Vec<InvoiceView> = stored
        .iter()
        .filter(|i| billed.contains(i.slug.as_str()))
        .map(stored_view)
        .collect::<Result<Vec<InvoiceView>>>()?;
    Ok(summary(views, total, false))
}

/// Before a purge: says, through the reporter, what metered usage of the tenant no invoice
/// has covered yet. A purge deletes the usage, so the next `bill` cannot charge it; the purge
/// goes ahead (it is the operator's call), but not silently.
pub async fn warn_unbilled_usage(
    plane: &ControlPlane,
    tenant: Uuid,
    slug: &str,
    reporter: &dyn Reporter,
) -> Result<()> {
    let unbilled = plane.control.unbilled_usage(tenant).await?;
    if unbilled.is_empty() {
        return Ok(());
    }
    let what: Vec<String> = unbilled
        .iter()
        .map(|(resource, month, units)| {
            format!("{} of {month}", crate::words::quantity(*units, resource))
        })
        .collect();
    reporter.warning(&format!(
        "warning: `{slug}` has usage no invoice has billed yet ({}); purging deletes it, so no bill will charge it",
        what.join(", ")
    ));
    Ok(())
}

/// `invoices list` / `invoices show`.
/// The refusal for an invoice id that does not exist.
pub fn no_invoice(id: i64) -> Failure {
    Failure::Refused(format!(
        "no invoice {id}; `tenantctl invoices list` shows them"
    ))
}

pub async fn invoices(
    plane: &ControlPlane,
    period: Option<Period>,
    slug: Option<&str>,
    id: Option<i64>,
) -> Result<Vec<InvoiceView>> {
    let list = plane.control.invoices(period, slug, id).await?;
    if let (Some(id), true) = (id, list.is_empty()) {
        return Err(no_invoice(id).into());
    }
    list.iter().map(stored_view).collect()
}
