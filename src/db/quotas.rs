//! The `quotas` table: the limits seeded from the tier and overridden per tenant.

use anyhow::{Context, Result};
use uuid::Uuid;

use super::control::{limit_columns, ControlDb};
use crate::resource::Resource;

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
