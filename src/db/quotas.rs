//! The `quotas` table: the limits seeded from the tier and overridden per tenant, and read
//! with the usage that counts against them (`quota show|check`).

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use tokio_postgres::types::Type;
use uuid::Uuid;

use super::control::{limit_columns, ControlDb};
use crate::action::Action;
use crate::period::Period;
use crate::resource::Resource;
use crate::slug::Slug;
use crate::tenant::Status;

/// One quota row.
#[derive(Debug, Clone)]
pub struct QuotaRow {
    pub resource: Resource,
    pub limit: i64,
    pub source: String,
}

impl ControlDb {
    /// Step 5: one row per resource; rows that exist (an earlier run, an override) are kept.
    /// `limits`: (resource, limit, hard).
    pub async fn seed_quotas(&self, tenant: Uuid, limits: &[(Resource, u64, bool)]) -> Result<()> {
        let (resources, values, hard) = limit_columns(limits)?;
        self.conn()
            .await?
            .execute(
                "INSERT INTO quotas (tenant_id, resource, limit_value, hard)
                 SELECT $1, r, l, h FROM unnest($2::text[], $3::bigint[], $4::bool[]) AS q(r, l, h)
                 ON CONFLICT (tenant_id, resource) DO NOTHING",
                &[&tenant, &resources, &values, &hard],
            )
            .await
            .context("seeding quotas")?;
        Ok(())
    }

    pub async fn quotas(&self, tenant: Uuid) -> Result<Vec<QuotaRow>> {
        let rows = self
            .conn()
            .await?
            .query(
                "SELECT resource, limit_value, source FROM quotas WHERE tenant_id = $1 ORDER BY resource",
                &[&tenant],
            )
            .await
            .context("reading quotas")?;
        Ok(rows
            .iter()
            .map(|r| QuotaRow {
                resource: r.get(0),
                limit: r.get(1),
                source: r.get(2),
            })
            .collect())
    }

    /// Every quota row of every tenant, for `list`.
    pub async fn all_quotas(&self) -> Result<Vec<(Uuid, QuotaRow)>> {
        let rows = self
            .conn()
            .await?
            .query("SELECT tenant_id, resource, limit_value, source FROM quotas ORDER BY tenant_id, resource", &[])
            .await
            .context("reading quotas")?;
        Ok(rows
            .iter()
            .map(|r| {
                (
                    r.get(0),
                    QuotaRow {
                        resource: r.get(1),
                        limit: r.get(2),
                        source: r.get(3),
                    },
                )
            })
            .collect())
    }
}

/// A quota row with the usage that counts against it.
#[derive(Debug, Clone)]
pub struct QuotaUsage {
    pub resource: Resource,
    pub limit: i64,
    pub source: String,
    /// The period's metered total (0 if none).
    pub metered: i64,
    /// The last measurement, if any.
    pub measured: Option<(i64, DateTime<Utc>)>,
    /// Whether the limit is hard, as stored with it (None: not stored yet, ask the tier).
    pub hard: Option<bool>,
}

/// A `QuotaUsage` from the seven columns starting at `at`: resource, limit, source, the
/// metered total, the measured quantity and its time, hard (both reads select them so).
fn quota_usage_at(r: &tokio_postgres::Row, at: usize) -> QuotaUsage {
    QuotaUsage {
        resource: r.get(at),
        limit: r.get(at + 1),
        source: r.get(at + 2),
        metered: r.get(at + 3),
        measured: r.get::<_, Option<i64>>(at + 4).map(|q| (q, r.get(at + 5))),
        hard: r.get(at + 6),
    }
}

impl ControlDb {
    /// The tenant's quota rows with the period's metered totals and the last measurements.
    pub async fn quota_usage(&self, tenant: Uuid, period: Period) -> Result<Vec<QuotaUsage>> {
        let rows = self
            .conn()
            .await?
            .query(
                "SELECT q.resource, q.limit_value, q.source, coalesce(t.quantity, 0), m.quantity, m.measured_at, q.hard
                 FROM quotas q
                 LEFT JOIN usage_totals t ON t.tenant_id = q.tenant_id AND t.resource = q.resource AND t.period = $2
                 LEFT JOIN measured_usage m ON m.tenant_id = q.tenant_id AND m.resource = q.resource
                 WHERE q.tenant_id = $1 ORDER BY q.resource",
                &[&tenant, &period],
            )
            .await
            .context("reading quotas and usage")?;
        Ok(rows.iter().map(|r| quota_usage_at(r, 0)).collect())
    }

    /// One tenant's status, tier and one resource's quota with its usage, by slug, in one
    /// query (the hot path of `quota check`). `None`: no such tenant; an empty quota: none yet.
    pub async fn quota_for_check(
        &self,
        slug: &Slug,
        resource: Resource,
        period: Period,
    ) -> Result<Option<(Status, String, Option<QuotaUsage>)>> {
        // Typed parameters: parse, bind and execute in one round trip (no prepare first).
        let row = self
            .conn()
            .await?
            .query_typed(
                "SELECT t.status, t.tier, q.resource, q.limit_value, q.source, coalesce(u.quantity, 0), m.quantity, m.measured_at, q.hard
                 FROM tenants t
                 LEFT JOIN quotas q ON q.tenant_id = t.id AND q.resource = $2
                 LEFT JOIN usage_totals u ON u.tenant_id = t.id AND u.resource = $2 AND u.period = $3
                 LEFT JOIN measured_usage m ON m.tenant_id = t.id AND m.resource = $2
                 WHERE t.slug = $1",
                &[
                    (&slug, Type::TEXT),
                    (&resource, Type::TEXT),
                    (&period, Type::DATE),
                ],
            )
            .await
            .context("reading the quota")?
            .into_iter()
            .next();
        Ok(row.map(|r| {
            // No quota row: the LEFT JOIN's resource is NULL.
            let quota = r
                .get::<_, Option<Resource>>(2)
                .map(|_| quota_usage_at(&r, 2));
            (r.get(0), r.get(1), quota)
        }))
    }

    /// Overrides one limit (audited in the same transaction). Returns the previous limit;
    /// `None` (and nothing changed) when the tenant has no such quota row yet.
    pub async fn set_quota(
        &self,
        tenant: Uuid,
        slug: &str,
        resource: Resource,
        limit: i64,
        source: &str,
        actor: &str,
    ) -> Result<Option<i64>> {
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await.context("starting a transaction")?;
        let Some(before) = tx
            .query_opt(
                "SELECT limit_value FROM quotas WHERE tenant_id = $1 AND resource = $2 FOR UPDATE",
                &[&tenant, &resource],
            )
            .await
            .with_context(|| format!("reading the {resource} quota"))?
            .map(|r| r.get::<_, i64>(0))
        else {
            return Ok(None);
        };
        tx.execute(
            "UPDATE quotas SET limit_value = $3, source = $4, updated_at = now() WHERE tenant_id = $1 AND resource = $2",
            &[&tenant, &resource, &limit, &source],
        )
        .await
        .with_context(|| format!("setting the {resource} quota"))?;
        let action = if source == "override" {
            Action::QuotaSet
        } else {
            Action::QuotaReset
        };
        let details = serde_json::json!({ "resource": resource, "from": before, "to": limit });
        super::audit::append(
            &*tx,
            super::audit::Entry {
                actor,
                action,
                tenant_id: tenant,
                slug,
                from: None,
                to: None,
                details: &details,
            },
        )
        .await?;
        tx.commit().await.context("committing the quota change")?;
        Ok(Some(before))
    }
}
