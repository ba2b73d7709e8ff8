//! `report revenue` and `report margin`: one table row per tier (and per tenant for margin) with
//! the fleet's total, and the same rows as CSV for finance.

use super::{csv_record, table, table_text, Render};
use crate::ops::report::{MarginFigures, MarginReport, RevenueFigures, RevenueReport};

fn opt(s: &Option<String>) -> String {
    s.clone().unwrap_or_default()
}

/// The table's name of the fleet's row (a tier name cannot hold parentheses).
const ALL: &str = "(all)";

fn revenue_cells(f: &RevenueFigures) -> Vec<String> {
    vec![
        f.mrr.clone(),
        f.arr.clone(),
        f.tenants_paying.to_string(),
        opt(&f.arpa),
        f.previous_mrr.clone(),
        f.new_mrr.clone(),
        f.expansion_mrr.clone(),
        f.contraction_mrr.clone(),
        f.churned_mrr.clone(),
        f.net_new_mrr.clone(),
        f.revenue.clone(),
        f.overage.clone(),
        opt(&f.overage_share_percent),
    ]
}

/// Every (period, billed, scope, tier, figures) row: each tier, then the fleet.
fn revenue_rows(r: &RevenueReport) -> Vec<(String, bool, &'static str, String, &RevenueFigures)> {
    let mut rows = Vec::new();
    for m in &r.months {
        for t in &m.tiers {
            rows.push((
                m.period.clone(),
                m.billed,
                "tier",
                t.tier.clone(),
                &t.figures,
            ));
        }
        rows.push((m.period.clone(), m.billed, "total", String::new(), &m.total));
    }
    rows
}

impl Render for RevenueReport {
    fn human(&self) -> String {
        let mut t = table(&[
            "PERIOD",
            "TIER",
            "MRR",
            "ARR",
            "PAYING",
            "ARPA",
            "PREVIOUS MRR",
            "NEW",
            "EXPANSION",
            "CONTRACTION",
            "CHURNED",
            "NET NEW",
            "REVENUE",
            "OVERAGE",
            "OVERAGE %",
        ]);
        for (period, billed, scope, tier, f) in revenue_rows(self) {
            let mut row = vec![
                if billed {
                    period
                } else {
                    format!("{period} (not billed)")
                },
                if scope == "total" {
                    ALL.to_owned()
                } else {
                    tier
                },
            ];
            row.extend(revenue_cells(f));
            t.add_row(row);
        }
        let mut text = table_text(&t);
        text.push_str(&format!(
            "amounts in {}; MRR: base prices as invoiced (prorated), overage apart; ARR = 12 x MRR\n",
            self.currency
        ));
        text
    }

    const CSV: Option<fn(&Self) -> String> = Some(|r| {
        let mut out = String::from(
            "period,billed,scope,tier,currency,mrr,arr,tenants_paying,arpa,previous_mrr,new_mrr,expansion_mrr,contraction_mrr,churned_mrr,net_new_mrr,revenue,overage,overage_share_percent\n",
        );
        for (period, billed, scope, tier, f) in revenue_rows(r) {
            let mut row = vec![
                period,
                billed.to_string(),
                scope.to_owned(),
                tier,
                r.currency.clone(),
            ];
            row.extend(revenue_cells(f));
            out.push_str(&csv_record(&row));
        }
        out
    });
}

fn margin_cells(f: &MarginFigures) -> Vec<String> {
    vec![
        f.revenue.clone(),
        f.fixed_cost.clone(),
        f.storage_cost.clone(),
        f.cost.clone(),
        f.gross_margin.clone(),
        opt(&f.gross_margin_percent),
    ]
}

/// One row of the margin report: a tenant, a tier or the fleet.
struct MarginRow<'a> {
    scope: &'static str,
    slug: String,
    tier: String,
    isolation: String,
    tenants: Option<usize>,
    days: Option<i64>,
    storage_mb: Option<i64>,
    figures: &'a MarginFigures,
}

/// Every tenant, every tier, then the fleet.
fn margin_rows(m: &MarginReport) -> Vec<MarginRow<'_>> {
    let mut rows = Vec::new();
    for t in &m.tenants {
        rows.push(MarginRow {
            scope: "tenant",
            slug: t.slug.clone(),
            tier: t.tiers.join(" "),
            isolation: String::new(),
            tenants: None,
            days: Some(t.billed_days),
            storage_mb: t.storage_mb,
            figures: &t.figures,
        });
    }
    for t in &m.tiers {
        rows.push(MarginRow {
            scope: "tier",
            slug: String::new(),
            tier: t.tier.clone(),
            isolation: t.isolation.clone(),
            tenants: Some(t.tenants),
            days: None,
            storage_mb: None,
            figures: &t.figures,
        });
    }
    rows.push(MarginRow {
        scope: "total",
        slug: String::new(),
        tier: String::new(),
        isolation: String::new(),
        tenants: Some(m.tenants.len()),
        days: None,
        storage_mb: None,
        figures: &m.total,
    });
    rows
}

fn num<T: ToString>(n: Option<T>) -> String {
    n.map(|n| n.to_string()).unwrap_or_default()
}

impl Render for MarginReport {
    fn human(&self) -> String {
        let mut t = table(&[
            "TENANT",
            "TIER",
            "DAYS",
            "STORAGE MB",
            "REVENUE",
            "FIXED COST",
            "STORAGE COST",
            "COST",
            "GROSS MARGIN",
            "MARGIN %",
        ]);
        for r in margin_rows(self) {
            let tenants = || crate::words::count_len(r.tenants.unwrap_or(0), "tenant");
            let (who, tier) = match r.scope {
                "tenant" => (r.slug, r.tier),
                "tier" => (
                    format!("({})", tenants()),
                    format!("{} ({})", r.tier, r.isolation),
                ),
                _ => (format!("{ALL} {}", tenants()), String::new()),
            };
            let mut row = vec![who, tier, num(r.days), num(r.storage_mb)];
            row.extend(margin_cells(r.figures));
            t.add_row(row);
        }
        let mut text = table_text(&t);
        text.push_str(&format!(
            "{}{}, amounts in {}; costs: silo {} and pooled tenant {} per month, storage {} per GB-month (latest measurement), prorated by billed days\n",
            self.period,
            if self.billed { "" } else { " (not billed)" },
            self.currency,
            self.costs.silo_per_month,
            self.costs.pooled_tenant_per_month,
            self.costs.storage_gb_month
        ));
        text
    }

    const CSV: Option<fn(&Self) -> String> = Some(|m| {
        let mut out = String::from(
            "period,scope,slug,tier,isolation,tenants,billed_days,storage_mb,currency,revenue,fixed_cost,storage_cost,cost,gross_margin,gross_margin_percent\n",
        );
        for r in margin_rows(m) {
            let mut row = vec![
                m.period.clone(),
                r.scope.to_owned(),
                r.slug,
                r.tier,
                r.isolation,
                num(r.tenants),
                num(r.days),
                num(r.storage_mb),
                m.currency.clone(),
            ];
            row.extend(margin_cells(r.figures));
            out.push_str(&csv_record(&row));
        }
        out
    });
}
