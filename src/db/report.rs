//! The facts `report revenue` and `report margin` are computed from: which months were billed,
//! the invoice lines of a range of months summed per tenant, tier and kind, and the latest
//! storage measurement of every tenant. Reads only.

use std::collections::HashMap;

use anyhow::{Context, Result};
use uuid::Uuid;

use super::control::ControlDb;
use crate::invoice::LineKind;
use crate::period::Period;
use crate::resource::Resource;

/// The lines of one kind that a tenant's invoice for a month has on one tier, summed.
#[derive(Debug, Clone)]
pub struct LineSum {
    pub period: Period,
    pub tenant: Uuid,
    pub slug: String,
    pub tier: String,
    pub kind: LineKind,
    pub amount_cents: i64,
    /// Billed days (base lines); 0 for the other kinds.
    pub days: i64,
}

impl ControlDb {
    /// The months whose billing run finished, between `from` and `to` (inclusive), oldest first.
    pub async fn billed_periods(&self, from: Period, to: Period) -> Result<Vec<Period>> {
        Ok(self
            .conn()
            .await?
            .query(
                "SELECT period FROM billing_runs
                 WHERE finished_at IS NOT NULL AND period BETWEEN $1 AND $2 ORDER BY period",
                &[&from, &to],
            )
            .await
            .context("reading the billed months")?
            .iter()
            .map(|r| r.get(0))
            .collect())
    }

    /// The latest month whose billing run finished, if any.
    pub async fn last_billed_period(&self) -> Result<Option<Period>> {
        Ok(self
            .conn()
            .await?
            .query_one(
                "SELECT max(period) FROM billing_runs WHERE finished_at IS NOT NULL",
                &[],
            )
            .await
            .context("reading the last billed month")?
            .get(0))
    }

    /// The invoice lines of the months `from` to `to`, summed per month, tenant, tier and kind.
    pub async fn line_sums(&self, from: Period, to: Period) -> Result<Vec<LineSum>> {
        let rows = self
            .conn()
            .await?
            .query(
                "SELECT i.period, i.tenant_id, i.slug, l.tier, l.kind,
                        sum(l.amount_cents)::bigint,
                        sum(CASE WHEN l.kind = 'base' THEN l.quantity ELSE 0 END)::bigint
                 FROM invoices i JOIN invoice_lines l ON l.invoice_id = i.id
                 WHERE i.period BETWEEN $1 AND $2
                 GROUP BY i.period, i.tenant_id, i.slug, l.tier, l.kind
                 ORDER BY i.period, i.slug, min(l.line_no)",
                &[&from, &to],
            )
            .await
            .context("reading invoice lines")?;
        rows.iter()
            .map(|r| {
                let kind = match r.get::<_, &str>(4) {
                    "base" => LineKind::Base,
                    "overage" => LineKind::Overage,
                    "adjustment" => LineKind::Adjustment,
                    other => anyhow::bail!("an invoice line of unknown kind `{other}`"),
                };
                Ok(LineSum {
                    period: r.get(0),
                    tenant: r.get(1),
                    slug: r.get(2),
                    tier: r.get(3),
                    kind,
                    amount_cents: r.get(5),
                    days: r.get(6),
                })
            })
            .collect()
    }

    /// Every tenant's latest `storage_mb` measurement.
    pub async fn storage_measurements(&self) -> Result<HashMap<Uuid, i64>> {
        Ok(self
            .conn()
            .await?
            .query(
                "SELECT tenant_id, quantity FROM measured_usage WHERE resource = $1",
                &[&Resource::StorageMb],
            )
            .await
            .context("reading storage measurements")?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect())
    }
}
