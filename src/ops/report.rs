//! `report revenue` and `report margin`: the figures finance and tier planning read, computed
//! from the invoices `bill` wrote (which hold each tenant's history as billed days per tier),
//! the infrastructure costs of `tiers.toml` and the latest storage measurements.
//!
//! Definitions (README "Revenue and margin" gives them to users; docs/decisions.md says why):
//! - **MRR** of a month: the sum of the base lines of the month's invoices (recurring prices,
//!   prorated by billed days as invoiced). Overage and adjustment lines are not recurring: they
//!   are reported as `overage`, beside MRR. **ARR** = 12 × MRR.
//! - **Revenue** of a month: the sum of its invoices' totals (base + overage + adjustments).
//! - **Tenants paying**: tenants with MRR above zero; **ARPA** = MRR / tenants paying, half up
//!   to the cent.
//! - **Movement** against the previous month, per tenant: new (no MRR then, some now),
//!   churned (some then, none now), expansion and contraction (the increase or decrease of a
//!   tenant that has MRR in both). MRR = previous MRR + new + expansion − contraction − churned,
//!   exactly. Per tier the same is done per (tenant, tier): a tenant that changed tier is
//!   churned from the old tier and new in the other, and an expansion in the total.
//! - **Margin** of a month, per (tenant, tier): revenue of its lines on that tier minus the
//!   infrastructure cost of its billed days on that tier: the fixed monthly cost of its isolation
//!   (silo or pooled tenant) and its latest measured `storage_mb` at the GB-month price, both ×
//!   billed days / days in the month, each rounded once, half up, to the cent.
//!
//! Money is counted in integer cents (and micros before rounding); only the percentages are
//! rounded for display, to two decimals.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use anyhow::Result;
use serde::Serialize;
use uuid::Uuid;

use super::ControlPlane;
use crate::db::report::LineSum;
use crate::error::Failure;
use crate::invoice::{cents, format_cents, LineKind};
use crate::period::Period;
use crate::tier::{Costs, Tiers};

/// The most months one `report revenue` covers (ten years).
pub const MAX_MONTHS: i64 = 120;

/// MB per GB: `storage_mb` counts MiB, so a GB here is a GiB.
const MB_PER_GB: i128 = 1024;

/// The figures of one tier, or of the whole fleet, in one month. JSON names are a contract.
#[derive(Debug, Clone, Serialize)]
pub struct RevenueFigures {
    pub mrr: String,
    pub arr: String,
    pub tenants_paying: usize,
    /// MRR / tenants paying; null when no tenant pays.
    pub arpa: Option<String>,
    pub previous_mrr: String,
    pub new_mrr: String,
    pub expansion_mrr: String,
    pub contraction_mrr: String,
    pub churned_mrr: String,
    /// new + expansion − contraction − churned = mrr − previous_mrr.
    pub net_new_mrr: String,
    /// Every line of the month's invoices: base, overage and adjustments.
    pub revenue: String,
    /// Overage and adjustment lines.
    pub overage: String,
    /// overage / revenue × 100, two decimals; null when there is no revenue.
    pub overage_share_percent: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TierRevenue {
    pub tier: String,
    #[serde(flatten)]
    pub figures: RevenueFigures,
}

/// One month of `report revenue`.
#[derive(Debug, Clone, Serialize)]
pub struct MonthRevenue {
    pub period: String,
    /// Whether the month's billing run has finished (an unbilled month has no or some invoices).
    pub billed: bool,
    pub total: RevenueFigures,
    pub tiers: Vec<TierRevenue>,
}

/// `report revenue`: the months asked for, oldest first.
#[derive(Debug, Clone, Serialize)]
pub struct RevenueReport {
    pub currency: String,
    pub period: String,
    pub months: Vec<MonthRevenue>,
}

/// Revenue against cost, for one tenant, one tier or the fleet.
#[derive(Debug, Clone, Serialize)]
pub struct MarginFigures {
    pub revenue: String,
    pub fixed_cost: String,
    pub storage_cost: String,
    /// fixed_cost + storage_cost.
    pub cost: String,
    /// revenue − cost (negative when the tenant costs more than it pays).
    pub gross_margin: String,
    /// gross_margin / revenue × 100, two decimals; null when there is no revenue.
    pub gross_margin_percent: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TierMargin {
    pub tier: String,
    pub isolation: String,
    pub tenants: usize,
    #[serde(flatten)]
    pub figures: MarginFigures,
}

#[derive(Debug, Clone, Serialize)]
pub struct TenantMargin {
    pub slug: String,
    /// The tiers of its billed days in the month, in order.
    pub tiers: Vec<String>,
    pub billed_days: i64,
    /// The latest measurement; null when there is none (storage then costs nothing).
    pub storage_mb: Option<i64>,
    #[serde(flatten)]
    pub figures: MarginFigures,
}

/// The declared costs, as printed.
#[derive(Debug, Clone, Serialize)]
pub struct CostsView {
    pub silo_per_month: String,
    pub pooled_tenant_per_month: String,
    pub storage_gb_month: String,
}

/// `report margin`.
#[derive(Debug, Clone, Serialize)]
pub struct MarginReport {
    pub currency: String,
    pub period: String,
    pub billed: bool,
    pub days: i64,
    pub costs: CostsView,
    pub total: MarginFigures,
    pub tiers: Vec<TierMargin>,
    pub tenants: Vec<TenantMargin>,
}

/// The month a report is about: `--period`, else the last billed month. A month that has not
/// ended is bad input (it has no invoices yet); no billed month at all is refused.
pub async fn report_period(plane: &ControlPlane, asked: Option<Period>) -> Result<Period> {
    if let Some(p) = asked {
        return Ok(p);
    }
    Ok(plane
        .control
        .last_billed_period()
        .await?
        .ok_or_else(nothing_billed)?)
}

/// The refusal of a report when no month has been billed.
pub fn nothing_billed() -> Failure {
    Failure::Refused(
        "no month has been billed yet: `tenantctl bill` writes the invoices reports are made from"
            .to_owned(),
    )
}

/// `period` and the `months - 1` before it, oldest first.
fn window(period: Period, months: i64) -> Vec<Period> {
    let mut out = vec![period];
    for _ in 1..months {
        let before = out[out.len() - 1].previous();
        out.push(before);
    }
    out.reverse();
    out
}

/// `part / whole × 100` to two decimals, half away from zero; `None` for a zero whole.
fn percent(part: i64, whole: i64) -> Option<String> {
    if whole == 0 {
        return None;
    }
    let (num, den) = (i128::from(part) * 10_000, i128::from(whole));
    let negative = (num < 0) != (den < 0);
    let (num, den) = (num.abs(), den.abs());
    let hundredths = (2 * num + den) / (2 * den);
    Some(format!(
        "{}{}.{:02}",
        if negative && hundredths != 0 { "-" } else { "" },
        hundredths / 100,
        hundredths % 100
    ))
}

/// A sum of cents that fails instead of wrapping.
fn add(a: i64, b: i64) -> Result<i64> {
    a.checked_add(b)
        .ok_or_else(|| anyhow::anyhow!("a report sum overflows 64-bit cents"))
}

/// One month's base, overage and revenue cents of a set of keys (tenants, or (tenant, tier)).
#[derive(Default)]
struct MonthSums<K: Ord> {
    mrr: BTreeMap<K, i64>,
    overage: i64,
    revenue: i64,
}

impl<K: Ord + Clone> MonthSums<K> {
    fn add_line(&mut self, key: &K, l: &LineSum) -> Result<()> {
        self.revenue = add(self.revenue, l.amount_cents)?;
        match l.kind {
            LineKind::Base => {
                let m = self.mrr.entry(key.clone()).or_default();
                *m = add(*m, l.amount_cents)?;
            }
            LineKind::Overage | LineKind::Adjustment => {
                self.overage = add(self.overage, l.amount_cents)?;
            }
        }
        Ok(())
    }
}

/// The figures of `now` against `before`.
fn figures<K: Ord>(now: &MonthSums<K>, before: &MonthSums<K>) -> Result<RevenueFigures> {
    let mrr = now.mrr.values().try_fold(0, |a, b| add(a, *b))?;
    let previous = before.mrr.values().try_fold(0, |a, b| add(a, *b))?;
    let paying = now.mrr.values().filter(|c| **c > 0).count();
    let (mut new, mut expansion, mut contraction, mut churned) = (0i64, 0i64, 0i64, 0i64);
    let keys: BTreeSet<&K> = now.mrr.keys().chain(before.mrr.keys()).collect();
    for k in keys {
        let n = now.mrr.get(k).copied().unwrap_or(0);
        let b = before.mrr.get(k).copied().unwrap_or(0);
        match (b > 0, n > 0) {
            (false, true) => new += n,
            (true, false) => churned += b,
            (true, true) if n > b => expansion += n - b,
            (true, true) => contraction += b - n,
            (false, false) => {}
        }
    }
    let arr = mrr
        .checked_mul(12)
        .ok_or_else(|| anyhow::anyhow!("ARR overflows 64-bit cents"))?;
    Ok(RevenueFigures {
        mrr: format_cents(mrr),
        arr: format_cents(arr),
        tenants_paying: paying,
        arpa: (paying > 0).then(|| format_cents(cents(i128::from(mrr) * 10_000, paying as i128))),
        previous_mrr: format_cents(previous),
        new_mrr: format_cents(new),
        expansion_mrr: format_cents(expansion),
        contraction_mrr: format_cents(contraction),
        churned_mrr: format_cents(churned),
        net_new_mrr: format_cents(new + expansion - contraction - churned),
        revenue: format_cents(now.revenue),
        overage: format_cents(now.overage),
        overage_share_percent: percent(now.overage, now.revenue),
    })
}

/// `report revenue`: see the module outline.
pub async fn revenue(
    plane: &ControlPlane,
    tiers: &Tiers,
    period: Period,
    months: i64,
) -> Result<RevenueReport> {
    let window = window(period, months);
    let first = window[0];
    let before_first = first.previous();
    let lines = plane.control.line_sums(before_first, period).await?;
    let billed: BTreeSet<Period> = plane
        .control
        .billed_periods(first, period)
        .await?
        .into_iter()
        .collect();

    // Per month: the fleet keyed by tenant, each tier keyed by tenant.
    let mut fleet: HashMap<Period, MonthSums<Uuid>> = HashMap::new();
    let mut per_tier: HashMap<(Period, String), MonthSums<Uuid>> = HashMap::new();
    // The tiers of the file, then any other tier the invoices name.
    let mut tier_names: Vec<String> = tiers.names().iter().map(|s| (*s).to_owned()).collect();
    for l in &lines {
        fleet.entry(l.period).or_default().add_line(&l.tenant, l)?;
        per_tier
            .entry((l.period, l.tier.clone()))
            .or_default()
            .add_line(&l.tenant, l)?;
        if !tier_names.contains(&l.tier) {
            tier_names.push(l.tier.clone());
        }
    }
    let empty = MonthSums::default();
    let mut out = Vec::new();
    for p in window {
        let prev = p.previous();
        let total = figures(
            fleet.get(&p).unwrap_or(&empty),
            fleet.get(&prev).unwrap_or(&empty),
        )?;
        let mut tier_rows = Vec::new();
        for t in &tier_names {
            let now = per_tier.get(&(p, t.clone())).unwrap_or(&empty);
            let before = per_tier.get(&(prev, t.clone())).unwrap_or(&empty);
            tier_rows.push(TierRevenue {
                tier: t.clone(),
                figures: figures(now, before)?,
            });
        }
        out.push(MonthRevenue {
            period: p.to_string(),
            billed: billed.contains(&p),
            total,
            tiers: tier_rows,
        });
    }
    Ok(RevenueReport {
        currency: tiers.currency.clone(),
        period: period.to_string(),
        months: out,
    })
}

/// Revenue and cost in cents, summed.
#[derive(Default, Clone, Copy)]
struct MarginSums {
    revenue: i64,
    fixed: i64,
    storage: i64,
}

impl MarginSums {
    fn plus(self, o: MarginSums) -> Result<MarginSums> {
        Ok(MarginSums {
            revenue: add(self.revenue, o.revenue)?,
            fixed: add(self.fixed, o.fixed)?,
            storage: add(self.storage, o.storage)?,
        })
    }

    fn view(self) -> Result<MarginFigures> {
        let cost = add(self.fixed, self.storage)?;
        let margin = self
            .revenue
            .checked_sub(cost)
            .ok_or_else(|| anyhow::anyhow!("a margin overflows 64-bit cents"))?;
        Ok(MarginFigures {
            revenue: format_cents(self.revenue),
            fixed_cost: format_cents(self.fixed),
            storage_cost: format_cents(self.storage),
            cost: format_cents(cost),
            gross_margin: format_cents(margin),
            gross_margin_percent: percent(margin, self.revenue),
        })
    }
}

/// The cost of `days` of `month_days` on a tier of fixed monthly cost `fixed` with `storage_mb`
/// stored: (fixed, storage) cents, each rounded once, half up.
fn cost_cents(
    costs: &Costs,
    fixed: crate::money::Money,
    storage_mb: i64,
    days: i64,
    month_days: i64,
) -> (i64, i64) {
    let fixed = cents(
        i128::from(fixed.micros()) * i128::from(days),
        i128::from(month_days),
    );
    let storage = cents(
        i128::from(costs.storage_gb_month.micros()) * i128::from(storage_mb) * i128::from(days),
        MB_PER_GB * i128::from(month_days),
    );
    (fixed, storage)
}

/// `report margin`: see the module outline.
pub async fn margin(plane: &ControlPlane, tiers: &Tiers, period: Period) -> Result<MarginReport> {
    let costs = tiers.costs.as_ref().ok_or_else(|| {
        Failure::BadInput(
            "the tiers file declares no infrastructure costs: add a [costs] table with silo_per_month, pooled_tenant_per_month and storage_gb_month (README: Revenue and margin)"
                .to_owned(),
        )
    })?;
    let lines = plane.control.line_sums(period, period).await?;
    let billed = !plane
        .control
        .billed_periods(period, period)
        .await?
        .is_empty();
    let storage = plane.control.storage_measurements().await?;
    let month_days = period.days();

    // Per (tenant, tier): revenue, and billed days.
    let mut pairs: BTreeMap<(String, String), (Uuid, i64, i64)> = BTreeMap::new();
    // Each tenant's tiers in the order of its lines.
    let mut tenant_tiers: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for l in &lines {
        let e = pairs
            .entry((l.slug.clone(), l.tier.clone()))
            .or_insert((l.tenant, 0, 0));
        e.1 = add(e.1, l.amount_cents)?;
        e.2 += l.days;
        let list = tenant_tiers.entry(l.slug.clone()).or_default();
        if !list.contains(&l.tier) {
            list.push(l.tier.clone());
        }
    }

    let mut per_tenant: BTreeMap<String, (MarginSums, i64, Uuid)> = BTreeMap::new();
    let mut per_tier: BTreeMap<String, (MarginSums, BTreeSet<String>)> = BTreeMap::new();
    for ((slug, tier_name), (tenant, revenue, days)) in &pairs {
        let tier = tiers.tiers.get(tier_name).ok_or_else(|| {
            Failure::BadInput(format!(
                "tenant `{slug}` was billed on tier `{tier_name}` in {period}, which the tier table does not define (it has {}); its isolation and so its cost are unknown",
                tiers.names().join(", ")
            ))
        })?;
        let mb = storage.get(tenant).copied().unwrap_or(0);
        let (fixed, stored) = cost_cents(costs, costs.fixed(tier.isolation), mb, *days, month_days);
        let sums = MarginSums {
            revenue: *revenue,
            fixed,
            storage: stored,
        };
        let t = per_tenant
            .entry(slug.clone())
            .or_insert((MarginSums::default(), 0, *tenant));
        t.0 = t.0.plus(sums)?;
        t.1 += days;
        let tr = per_tier.entry(tier_name.clone()).or_default();
        tr.0 = tr.0.plus(sums)?;
        tr.1.insert(slug.clone());
    }

    let mut total = MarginSums::default();
    let mut tier_rows = Vec::new();
    for (name, (sums, slugs)) in &per_tier {
        total = total.plus(*sums)?;
        tier_rows.push(TierMargin {
            tier: name.clone(),
            isolation: tiers.tiers[name].isolation.to_string(),
            tenants: slugs.len(),
            figures: sums.view()?,
        });
    }
    let mut tenant_rows = Vec::new();
    for (slug, (sums, days, tenant)) in &per_tenant {
        tenant_rows.push(TenantMargin {
            slug: slug.clone(),
            tiers: tenant_tiers.remove(slug).unwrap_or_default(),
            billed_days: *days,
            storage_mb: storage.get(tenant).copied(),
            figures: sums.view()?,
        });
    }
    Ok(MarginReport {
        currency: tiers.currency.clone(),
        period: period.to_string(),
        billed,
        days: month_days,
        costs: CostsView {
            silo_per_month: costs.silo_per_month.to_string(),
            pooled_tenant_per_month: costs.pooled_tenant_per_month.to_string(),
            storage_gb_month: costs.storage_gb_month.to_string(),
        },
        total: total.view()?,
        tiers: tier_rows,
        tenants: tenant_rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentages_round_half_away_from_zero() {
        assert_eq!(percent(1, 3).as_deref(), Some("33.33"));
        assert_eq!(percent(2, 3).as_deref(), Some("66.67"));
        assert_eq!(percent(-2, 3).as_deref(), Some("-66.67"));
        assert_eq!(percent(1, 200_000).as_deref(), Some("0.00"));
        assert_eq!(percent(5, 0), None);
    }

    #[test]
    fn movement_adds_up_to_the_change_of_mrr() {
        let line = |tenant: u128, cents: i64| LineSum {
            period: "2026-10".parse().unwrap(),
            tenant: Uuid::from_u128(tenant),
            slug: String::new(),
            tier: String::new(),
            kind: LineKind::Base,
            amount_cents: cents,
            days: 0,
        };
        let mut before = MonthSums::default();
        let mut now = MonthSums::default();
        for (t, c) in [(1, 1000), (2, 500), (3, 700)] {
            before.add_line(&Uuid::from_u128(t), &line(t, c)).unwrap();
        }
        // 1 expands by 200, 2 contracts by 100, 3 churns, 4 is new.
        for (t, c) in [(1, 1200), (2, 400), (4, 300)] {
            now.add_line(&Uuid::from_u128(t), &line(t, c)).unwrap();
        }
        let f = figures(&now, &before).unwrap();
        assert_eq!(
            (
                f.new_mrr.as_str(),
                f.expansion_mrr.as_str(),
                f.contraction_mrr.as_str(),
                f.churned_mrr.as_str(),
                f.net_new_mrr.as_str(),
                f.mrr.as_str(),
                f.previous_mrr.as_str()
            ),
            ("3.00", "2.00", "1.00", "7.00", "-3.00", "19.00", "22.00")
        );
        assert_eq!(f.arpa.as_deref(), Some("6.33")); // 19.00 / 3
        assert_eq!(f.arr, "228.00");
    }

    #[test]
    fn costs_are_prorated_and_rounded_once() {
        let costs = Costs {
            silo_per_month: "40.00".parse().unwrap(),
            pooled_tenant_per_month: "2.00".parse().unwrap(),
            storage_gb_month: "0.10".parse().unwrap(),
        };
        // 15 of 30 days of a silo: 20.00; 2048 MB for half a month at 0.10: 0.10.
        assert_eq!(
            cost_cents(&costs, costs.silo_per_month, 2048, 15, 30),
            (2000, 10)
        );
        // 10 of 31 days of a pooled tenant: 0.6451.. -> 0.65; 100 MB: 0.0031.. -> 0.00.
        assert_eq!(
            cost_cents(&costs, costs.pooled_tenant_per_month, 100, 10, 31),
            (65, 0)
        );
    }
}
