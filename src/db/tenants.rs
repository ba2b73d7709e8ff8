//! The `tenants` table: recording a tenant (step 1), reading tenants, its tier, its activation
//! (step 7).

use anyhow::{Context, Result};
use tokio_postgres::Row;

use super::control::{limit_columns, ControlDb};
use crate::action::Action;
use crate::resource::Resource;
use crate::server_name::ServerName;
use crate::slug::Slug;
use crate::step::Step;
use crate::tenant::{Status, Tenant};
use crate::tier::Isolation;
use crate::transition::Transition;
use uuid::Uuid;

/// What step 1 records.
pub struct NewTenant<'a> {
    pub slug: &'a Slug,
    pub name: &'a str,
    pub tier: &'a str,
    pub isolation: Isolation,
    /// Where placement put it.
    pub server: &'a ServerName,
    pub database: &'a str,
    pub role: &'a str,
    pub owner_email: &'a str,
    pub owner_name: &'a str,
}

pub(super) const TENANT_COLUMNS: &str =
    "id, slug, name, tier, isolation, status, server, database_name, role_name, \
                              owner_email, created_at, activated_at, deleted_at, purge_after";

pub(super) fn tenant_from(row: &Row) -> Result<Tenant> {
    Ok(Tenant {
        id: row.get("id"),
        slug: row.get("slug"),
        name: row.get("name"),
        tier: row.get("tier"),
        isolation: row.try_get("isolation").context("reading tenants")?,
        status: row.try_get("status").context("reading tenants")?,
        server: row.try_get("server").context("reading tenants")?,
        database: row.get("database_name"),
        role: row.get("role_name"),
        owner_email: row.get("owner_email"),
        created_at: row.get("created_at"),
        activated_at: row.get("activated_at"),
        deleted_at: row.get("deleted_at"),
        purge_after: row.get("purge_after"),
    })
}

impl ControlDb {
    pub async fn find_tenant(&self, slug: &Slug) -> Result<Option<Tenant>> {
        let row = self
            .conn()
            .await?
            .query_opt(
                &format!("SELECT {TENANT_COLUMNS} FROM tenants WHERE slug = $1"),
                &[&slug],
            )
            .await
            .with_context(|| format!("looking up tenant {slug}"))?;
        row.as_ref().map(tenant_from).transpose()
    }

    pub async fn list_tenants(&self) -> Result<Vec<Tenant>> {
        let rows = self
            .conn()
            .await?
            .query(
                &format!("SELECT {TENANT_COLUMNS} FROM tenants ORDER BY slug"),
                &[],
            )
            .await
            .context("listing tenants")?;
        rows.iter().map(tenant_from).collect()
    }

    /// Step 1: the tenant row (status `provisioning`), its journal entry and its audit entry,
    /// in one transaction.
    pub async fn record_tenant(
        &self,
        new: &NewTenant<'_>,
        actor: &str,
        duration_ms: i32,
    ) -> Result<Tenant> {
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await.context("starting a transaction")?;
        let row = tx
            .query_one(
                &format!(
                    "INSERT INTO tenants (slug, name, tier, isolation, database_name, role_name, owner_email, owner_name, server)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
                     RETURNING {TENANT_COLUMNS}"
                ),
                &[
                    &new.slug,
                    &new.name,
                    &new.tier,
                    &new.isolation,
                    &new.database,
                    &new.role,
                    &new.owner_email,
                    &new.owner_name,
                    new.server,
                ],
            )
            .await
            .with_context(|| format!("recording tenant {}", new.slug))?;
        let tenant = tenant_from(&row)?;
        tx.execute(
            "INSERT INTO provisioning_journal (tenant_id, step, name, duration_ms) VALUES ($1, $2, $3, $4)",
            &[&tenant.id, &Step::RecordTenant, &Step::RecordTenant.label(), &duration_ms],
        )
        .await
        .context("journaling step record_tenant")?;
        let details = serde_json::json!({
            "tier": new.tier,
            "isolation": new.isolation.as_str(),
            "server": new.server,
        });
        super::audit::append(
            &*tx,
            super::audit::Entry {
                actor,
                action: Action::ProvisionStart,
                tenant_id: tenant.id,
                slug: new.slug.as_str(),
                from: None,
                to: Some(Status::Provisioning),
                details: &details,
            },
        )
        .await?;
        tx.commit().await.context("committing step record_tenant")?;
        Ok(tenant)
    }

    /// Moves a tenant to another tier: the tier, the quota rows and features that came from
    /// the tier, and an audit entry, in one transaction.
    pub async fn set_tier(
        &self,
        tenant: &Tenant,
        tier: &str,
        limits: &[(Resource, u64, bool)],
        features: &[&str],
        actor: &str,
    ) -> Result<()> {
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await.context("starting a transaction")?;
        tx.execute(
            "UPDATE tenants SET tier = $2, updated_at = now() WHERE id = $1",
            &[&tenant.id, &tier],
        )
        .await
        .context("changing the tier")?;
        apply_tier(&tx, tenant.id, limits, features).await?;
        let details = serde_json::json!({ "from_tier": tenant.tier, "to_tier": tier });
        super::audit::append_unchanged(&*tx, tenant, Action::SetTier, actor, &details).await?;
        tx.commit().await.context("committing the tier change")
    }

    /// The owner's email and name, as step 1 recorded them.
    pub async fn owner(&self, tenant: Uuid) -> Result<(String, String)> {
        let row = self
            .conn()
            .await?
            .query_one(
                "SELECT owner_email, owner_name FROM tenants WHERE id = $1",
                &[&tenant],
            )
            .await
            .context("reading the tenant's owner")?;
        Ok((row.get(0), row.get(1)))
    }

    /// Step 7: the move `activation` (`provisioning → active`), journaled and audited in the
    /// same transaction. Does nothing when the tenant is in none of its `from` statuses.
    pub async fn activate(
        &self,
        tenant: &Tenant,
        activation: &Transition,
        actor: &str,
    ) -> Result<()> {
        let t0 = std::time::Instant::now();
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await.context("starting a transaction")?;
        let previous: Option<Status> = tx
            .query_opt(
                "UPDATE tenants t SET status = $2, activated_at = now(), updated_at = now()
                 FROM (SELECT id, status FROM tenants WHERE id = $1 FOR UPDATE) old
                 WHERE t.id = old.id AND old.status = ANY($3)
                 RETURNING old.status",
                &[&tenant.id, &activation.to, &activation.from],
            )
            .await
            .context("activating the tenant")?
            .map(|r| r.get(0));
        let Some(previous) = previous else {
            return Ok(());
        };
        tx.execute(
            "INSERT INTO provisioning_journal (tenant_id, step, name, duration_ms) VALUES ($1, $2, $3, $4)
             ON CONFLICT (tenant_id, step) DO NOTHING",
            &[
                &tenant.id,
                &Step::Activate,
                &Step::Activate.label(),
                &i32::try_from(t0.elapsed().as_millis()).unwrap_or(i32::MAX),
            ],
        )
        .await
        .context("journaling step activate")?;
        let details =
            serde_json::json!({ "tier": tenant.tier, "isolation": tenant.isolation.as_str() });
        super::audit::append(
            &*tx,
            super::audit::Entry {
                actor,
                action: activation.action,
                tenant_id: tenant.id,
                slug: tenant.slug.as_str(),
                from: Some(previous),
                to: Some(activation.to),
                details: &details,
            },
        )
        .await?;
        tx.commit().await.context("committing step activate")?;
        Ok(())
    }
}

/// A tier's part of a tenant's limits and features, inside the caller's transaction: the quota
/// rows seeded from the tier take its limits (overrides keep theirs), every row takes its
/// hardness, and the features the tier includes are recorded.
pub(super) async fn apply_tier(
    tx: &tokio_postgres::Transaction<'_>,
    tenant: Uuid,
    limits: &[(Resource, u64, bool)],
    features: &[&str],
) -> Result<()> {
    let (resources, values, hard) = limit_columns(limits)?;
    tx.execute(
        "INSERT INTO quotas (tenant_id, resource, limit_value, hard)
         SELECT $1, r, l, h FROM unnest($2::text[], $3::bigint[], $4::bool[]) AS q(r, l, h)
         ON CONFLICT (tenant_id, resource) DO UPDATE SET
             limit_value = CASE WHEN quotas.source = 'tier' THEN EXCLUDED.limit_value ELSE quotas.limit_value END,
             hard = EXCLUDED.hard, updated_at = now()",
        &[&tenant, &resources, &values, &hard],
    )
    .await
    .context("updating the tier's quotas")?;
    super::features::set_tier_features(tx, tenant, features).await?;
    Ok(())
}
