//! Billing in the control database: the run gate, the facts an invoice is computed from
//! (history from the audit log, usage totals, what earlier invoices covered), writing invoices
//! exactly once, and reading them back.

use std::collections::HashMap;

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use tokio_postgres::types::ToSql;
use uuid::Uuid;

use super::control::ControlDb;
use super::locks::SessionLock;
use crate::action::Action;
use crate::invoice::{Change, Line, LineKind, Standing};
use crate::money::Money;
use crate::period::Period;
use crate::resource::Resource;

/// A tenant without an invoice for the period, with its history.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub tenant: Uuid,
    pub slug: String,
    pub history: Vec<Change>,
}

/// Usage of an earlier period that its invoice did not cover.
#[derive(Debug, Clone)]
pub struct LateUsage {
    pub tenant: Uuid,
    pub resource: Resource,
    pub period: Period,
    pub now: i64,
    pub billed: i64,
    pub tier: String,
}

/// An invoice to write.
#[derive(Debug, Clone)]
pub struct NewInvoice {
    pub tenant: Uuid,
    pub slug: String,
    pub currency: String,
    pub total_cents: i64,
    pub upgrade_hint: Option<serde_json::Value>,
    pub lines: Vec<Line>,
    /// (resource, usage period, quantity, tier) this invoice accounts for.
    pub covers: Vec<(Resource, Period, i64, String)>,
}

/// An invoice as stored.
#[derive(Debug, Clone)]
pub struct StoredInvoice {
    pub id: i64,
    pub slug: String,
    pub period: Period,
    pub currency: String,
    pub total_cents: i64,
    pub upgrade_hint: Option<serde_json::Value>,
    pub created_at: DateTime<Utc>,
    pub lines: Vec<Line>,
}

/// The state of a period's run.
#[derive(Debug, Clone)]
pub struct RunRow {
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

impl ControlDb {
    /// The period's billing lock, without waiting: `None` if another run holds it.
    pub async fn try_lock_billing(&self, period: Period) -> Result<Option<SessionLock>> {
        self.try_session_lock(
            &format!("tenantctl:bill:{}", period.first_day()),
            std::time::Duration::ZERO,
        )
        .await
    }

    pub async fn billing_run(&self, period: Period) -> Result<Option<RunRow>> {
        Ok(self
            .conn()
            .await?
            .query_opt(
                "SELECT started_at, finished_at FROM billing_runs WHERE period = $1",
                &[&period],
            )
            .await
            .context("reading the billing run")?
            .map(|r| RunRow {
                started_at: r.get(0),
                finished_at: r.get(1),
            }))
    }

    /// Claims the period (a row that survives crashes); an existing claim is kept.
    pub async fn start_billing_run(&self, period: Period, actor: &str) -> Result<()> {
        self.conn()
            .await?
            .execute(
                "INSERT INTO billing_runs (period, actor) VALUES ($1, $2) ON CONFLICT (period) DO NOTHING",
                &[&period, &actor],
            )
            .await
            .context("starting the billing run")?;
        Ok(())
    }

    /// Marks the period billed, with the count and sum of all its invoices.
    pub async fn finish_billing_run(&self, period: Period) -> Result<()> {
        self.conn()
            .await?
            .execute(
                "UPDATE billing_runs r SET finished_at = now(), invoices = s.n, total_cents = s.total
                 FROM (SELECT count(*)::int AS n, coalesce(sum(total_cents), 0)::bigint AS total FROM invoices WHERE period = $1) s
                 WHERE r.period = $1",
                &[&period],
            )
            .await
            .context("finishing the billing run")?;
        Ok(())
    }

    /// Every tenant with history before the period's end and no invoice for it yet, with that
    /// history (from the append-only audit log, so purged tenants are included).
    ///
    /// The history is every entry that names a status it moved to (`to_status`), whatever its
    /// action, plus those of `Action::billed_without_status` (`purge`, `set-tier`); the tier
    /// comes from the actions that `Action::names_tier`. So a status or action added later is
    /// seen without a change here, and `Standing::of_status` bills an unknown status like
    /// active (an action this version does not know counts by its status alone). The one
    /// exception: the intermediate status a lifecycle command writes when it starts
    /// (`Action::is_unfinished_command`) changes nothing until the command completes, so an
    /// interrupted resume bills like the suspended tenant it was and an interrupted restore
    /// like the deleted one.
    pub async fn billing_candidates(&self, period: Period) -> Result<Vec<Candidate>> {
        let end = period
            .next_first_day()
            .and_time(chrono::NaiveTime::MIN)
            .and_utc();
        let first = period.first_day();
        let rows = self
            .conn()
            .await?
            .query(
                "SELECT a.tenant_id, a.slug, a.at, a.action, a.to_status,
                        coalesce(a.details->>'to_tier', a.details->>'tier')
                 FROM audit_log a
                 WHERE a.tenant_id IS NOT NULL AND a.at < $2
                   AND (a.to_status IS NOT NULL OR a.action = ANY($3))
                   AND NOT EXISTS (SELECT 1 FROM invoices i WHERE i.tenant_id = a.tenant_id AND i.period = $1)
                 ORDER BY a.tenant_id, a.id",
                &[&first, &end, &Action::billed_without_status()],
            )
            .await
            .context("reading tenant histories")?;
        let mut out: Vec<Candidate> = Vec::new();
        for r in &rows {
            let tenant: Uuid = r.get(0);
            let action = Action::parse(r.get(3));
            let to_status: Option<String> = r.get(4);
            let tier: Option<String> = r.get(5);
            let change = Change {
                at: r.get(2),
                status: if action.is_some_and(Action::ends_billing) {
                    Some(Standing::NotBillable)
                } else if action.is_some_and(Action::is_unfinished_command) {
                    None
                } else {
                    to_status.as_deref().map(Standing::of_status)
                },
                tier: if action.is_some_and(Action::names_tier) {
                    tier
                } else {
                    None
                },
            };
            match out.last_mut() {
                Some(c) if c.tenant == tenant => c.history.push(change),
                _ => out.push(Candidate {
                    tenant,
                    slug: r.get(1),
                    history: vec![change],
                }),
            }
        }
        Ok(out)
    }

    /// Metered usage totals of the period: (tenant, resource) → quantity.
    pub async fn period_usage(&self, period: Period) -> Result<HashMap<(Uuid, Resource), i64>> {
        let rows = self
            .conn()
            .await?
            .query(
                "SELECT tenant_id, resource, quantity FROM usage_totals WHERE period = $1",
                &[&period],
            )
            .await
            .context("reading the period's usage")?;
        Ok(rows
            .iter()
            .map(|r| ((r.get(0), r.get(1)), r.get(2)))
            .collect())
    }

    /// Usage of earlier, invoiced periods past what their invoices covered. Every invoice
    /// records what it covered of each metered resource of its period, zero included, so usage
    /// recorded after the invoice is found whether or not the month had any before. The tier
    /// is the one the month's own invoice was computed under (the row with the period's
    /// invoice), not that of a later adjustment.
    pub async fn late_usage(&self, period: Period) -> Result<Vec<LateUsage>> {
        let rows = self
            .conn()
            .await?
            .query(
                "SELECT u.tenant_id, u.resource, u.period, u.quantity, b.billed, b.tier
                 FROM usage_totals u
                 JOIN (SELECT bu.tenant_id, bu.resource, bu.usage_period, sum(bu.quantity)::bigint AS billed,
                              (array_agg(bu.tier ORDER BY (i.period = bu.usage_period) DESC, i.period))[1] AS tier
                       FROM billed_usage bu JOIN invoices i ON i.id = bu.invoice_id
                       GROUP BY 1, 2, 3) b
                   ON b.tenant_id = u.tenant_id AND b.resource = u.resource AND b.usage_period = u.period
                 WHERE u.period < $1 AND u.quantity > b.billed
                 ORDER BY u.tenant_id, u.resource, u.period",
                &[&period],
            )
            .await
            .context("reading late usage")?;
        Ok(rows
            .iter()
            .map(|r| LateUsage {
                tenant: r.get(0),
                resource: r.get(1),
                period: r.get(2),
                now: r.get(3),
                billed: r.get(4),
                tier: r.get(5),
            })
            .collect())
    }

    /// A tenant's metered usage that no invoice has covered yet: (resource, month, units),
    /// months without an invoice and units recorded after a month's invoice alike.
    pub async fn unbilled_usage(&self, tenant: Uuid) -> Result<Vec<(Resource, Period, i64)>> {
        let rows = self
            .conn()
            .await?
            .query(
                "SELECT u.resource, u.period, u.quantity - coalesce(b.billed, 0)
                 FROM usage_totals u
                 LEFT JOIN (SELECT resource, usage_period, sum(quantity)::bigint AS billed
                            FROM billed_usage WHERE tenant_id = $1 GROUP BY 1, 2) b
                   ON b.resource = u.resource AND b.usage_period = u.period
                 WHERE u.tenant_id = $1 AND u.quantity > coalesce(b.billed, 0)
                 ORDER BY u.period, u.resource",
                &[&tenant],
            )
            .await
            .context("reading the tenant's unbilled usage")?;
        Ok(rows
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect())
    }

    /// Writes a batch of invoices in one transaction; an invoice that exists for its tenant
    /// and period is skipped with its lines (UNIQUE (tenant_id, period)). Returns how many were
    /// written.
    pub async fn insert_invoices(&self, period: Period, batch: &[NewInvoice]) -> Result<usize> {
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await.context("starting a transaction")?;
        let tenants: Vec<Uuid> = batch.iter().map(|i| i.tenant).collect();
        let slugs: Vec<&str> = batch.iter().map(|i| i.slug.as_str()).collect();
        let currencies: Vec<&str> = batch.iter().map(|i| i.currency.as_str()).collect();
        let totals: Vec<i64> = batch.iter().map(|i| i.total_cents).collect();
        let hints: Vec<Option<serde_json::Value>> =
            batch.iter().map(|i| i.upgrade_hint.clone()).collect();
        let params: [&(dyn ToSql + Sync); 6] =
            [&period, &tenants, &slugs, &currencies, &totals, &hints];
        let ids: HashMap<Uuid, i64> = tx
            .query(
                "INSERT INTO invoices (tenant_id, slug, period, currency, total_cents, upgrade_hint)
                 SELECT t, s, $1, c, n, h FROM unnest($2::uuid[], $3::text[], $4::text[], $5::bigint[], $6::jsonb[]) AS x(t, s, c, n, h)
                 ON CONFLICT (tenant_id, period) DO NOTHING
                 RETURNING tenant_id, id",
                &params,
            )
            .await
            .context("writing invoices")?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        let (mut l_inv, mut l_no, mut l_kind, mut l_desc, mut l_res, mut l_tier) =
            (vec![], vec![], vec![], vec![], vec![], vec![]);
        let (mut l_qty, mut l_price, mut l_amount, mut l_period) = (vec![], vec![], vec![], vec![]);
        let (mut l_included, mut l_usage, mut l_late) = (vec![], vec![], vec![]);
        let (mut b_inv, mut b_tenant, mut b_res, mut b_period, mut b_qty, mut b_tier) =
            (vec![], vec![], vec![], vec![], vec![], vec![]);
        for inv in batch {
            let Some(id) = ids.get(&inv.tenant) else {
                continue;
            };
            for (n, l) in inv.lines.iter().enumerate() {
                l_inv.push(*id);
                l_no.push(n as i32 + 1);
                l_kind.push(l.kind.as_str());
                l_desc.push(l.description.as_str());
                l_res.push(l.resource);
                l_tier.push(l.tier.as_str());
                l_qty.push(l.quantity);
                l_price.push(l.unit_price.micros());
                l_amount.push(l.amount_cents);
                l_period.push(l.usage_period);
                l_included.push(l.included);
                l_usage.push(l.month_usage);
                l_late.push(l.late_units);
            }
            for (resource, p, q, tier) in &inv.covers {
                b_inv.push(*id);
                b_tenant.push(inv.tenant);
                b_res.push(*resource);
                b_period.push(*p);
                b_qty.push(*q);
                b_tier.push(tier.as_str());
            }
        }
        let params: [&(dyn ToSql + Sync); 13] = [
            &l_inv,
            &l_no,
            &l_kind,
            &l_desc,
            &l_res,
            &l_tier,
            &l_qty,
            &l_price,
            &l_amount,
            &l_period,
            &l_included,
            &l_usage,
            &l_late,
        ];
        tx.execute(
            "INSERT INTO invoice_lines (invoice_id, line_no, kind, description, resource, tier, quantity, unit_price_micros, amount_cents, usage_period, included, month_usage, late_units)
             SELECT * FROM unnest($1::bigint[], $2::int[], $3::text[], $4::text[], $5::text[], $6::text[], $7::bigint[], $8::bigint[], $9::bigint[], $10::date[], $11::bigint[], $12::bigint[], $13::bigint[])",
            &params,
        )
        .await
        .context("writing invoice lines")?;
        let params: [&(dyn ToSql + Sync); 6] =
            [&b_inv, &b_tenant, &b_res, &b_period, &b_qty, &b_tier];
        tx.execute(
            "INSERT INTO billed_usage (invoice_id, tenant_id, resource, usage_period, quantity, tier)
             SELECT * FROM unnest($1::bigint[], $2::uuid[], $3::text[], $4::date[], $5::bigint[], $6::text[])",
            &params,
        )
        .await
        .context("recording the usage invoices cover")?;
        tx.commit().await.context("committing invoices")?;
        Ok(ids.len())
    }

    /// Invoices with their lines, newest period first, then by slug.
    pub async fn invoices(
        &self,
        period: Option<Period>,
        slug: Option<&str>,
        id: Option<i64>,
    ) -> Result<Vec<StoredInvoice>> {
        let conn = self.conn().await?;
        let rows = conn
            .query(
                "SELECT id, slug, period, currency, total_cents, upgrade_hint, created_at FROM invoices
                 WHERE ($1::date IS NULL OR period = $1) AND ($2::text IS NULL OR slug = $2) AND ($3::bigint IS NULL OR id = $3)
                 ORDER BY period DESC, slug, id",
                &[&period, &slug, &id],
            )
            .await
            .context("reading invoices")?;
        let ids: Vec<i64> = rows.iter().map(|r| r.get(0)).collect();
        let lines = conn
            .query(
                "SELECT invoice_id, kind, description, resource, tier, quantity, unit_price_micros, amount_cents, usage_period,
                        included, month_usage, late_units
                 FROM invoice_lines WHERE invoice_id = ANY($1) ORDER BY invoice_id, line_no",
                &[&ids],
            )
            .await
            .context("reading invoice lines")?;
        let mut by_invoice: HashMap<i64, Vec<Line>> = HashMap::new();
        for l in &lines {
            let kind = match l.get::<_, &str>(1) {
                "base" => LineKind::Base,
                "overage" => LineKind::Overage,
                _ => LineKind::Adjustment,
            };
            let usage_period: Option<Period> = l.get(8);
            by_invoice.entry(l.get(0)).or_default().push(Line {
                kind,
                description: l.get(2),
                resource: l.get(3),
                tier: l.get(4),
                quantity: l.get(5),
                unit_price: Money::from_micros(l.get(6)),
                amount_cents: l.get(7),
                usage_period,
                included: l.get(9),
                month_usage: l.get(10),
                late_units: l.get(11),
            });
        }
        Ok(rows
            .iter()
            .map(|r| {
                let id: i64 = r.get(0);
                StoredInvoice {
                    id,
                    slug: r.get(1),
                    period: r.get(2),
                    currency: r.get(3),
                    total_cents: r.get(4),
                    upgrade_hint: r.get(5),
                    created_at: r.get(6),
                    lines: by_invoice.remove(&id).unwrap_or_default(),
                }
            })
            .collect())
    }
}
