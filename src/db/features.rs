//! Feature entitlements: their rows in the control database (`feature_entitlements`), and the
//! effective set written into a tenant database (`tenant_features`).

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use tokio_postgres::{Client, Transaction};
use uuid::Uuid;

use super::control::ControlDb;
use super::dataplane::tenant_tx;
use crate::action::Action;
use crate::tenant::Tenant;

/// One row of `feature_entitlements`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entitlement {
    pub feature: String,
    /// The tenant's tier includes it.
    pub in_tier: bool,
    /// `grant`, `revoke`, or none (the tier decides).
    pub override_: Option<String>,
}

impl Entitlement {
    /// Whether the tenant has the feature while it is active: granted, or in its tier and not
    /// revoked.
    pub fn entitled(&self) -> bool {
        match self.override_.as_deref() {
            Some("grant") => true,
            Some(_) => false,
            None => self.in_tier,
        }
    }
}

fn entitlement(r: &tokio_postgres::Row) -> Entitlement {
    Entitlement {
        feature: r.get("feature"),
        in_tier: r.get("in_tier"),
        override_: r.get("override"),
    }
}

/// The tier's part of a tenant's entitlements becomes `features`: tier rows no longer in it
/// go (overrides stay), new ones come in. For step 5, `set-tier` and `features refresh`, inside
/// their transaction. Returns how many rows changed.
pub(super) async fn set_tier_features(
    tx: &Transaction<'_>,
    tenant: Uuid,
    features: &[&str],
) -> Result<u64> {
    // Delete first: turning `in_tier` off on a row without an override would break its CHECK.
    let deleted = tx
        .execute(
            "DELETE FROM feature_entitlements
         WHERE tenant_id = $1 AND override IS NULL AND NOT (feature = ANY($2))",
            &[&tenant, &features],
        )
        .await
        .context("removing the old tier's features")?;
    let updated = tx
        .execute(
            "UPDATE feature_entitlements SET in_tier = (feature = ANY($2)), updated_at = now()
         WHERE tenant_id = $1 AND in_tier <> (feature = ANY($2))",
            &[&tenant, &features],
        )
        .await
        .context("updating the tier's features")?;
    let inserted = tx
        .execute(
            "INSERT INTO feature_entitlements (tenant_id, feature, in_tier)
         SELECT $1, f, true FROM unnest($2::text[]) AS f
         ON CONFLICT (tenant_id, feature) DO NOTHING",
            &[&tenant, &features],
        )
        .await
        .context("adding the tier's features")?;
    Ok(deleted + updated + inserted)
}

impl ControlDb {
    /// A tenant's entitlement rows, by feature name.
    pub async fn entitlements(&self, tenant: Uuid) -> Result<Vec<Entitlement>> {
        let rows = self
            .conn()
            .await?
            .query(
                "SELECT feature, in_tier, override FROM feature_entitlements
                 WHERE tenant_id = $1 ORDER BY feature",
                &[&tenant],
            )
            .await
            .context("reading the tenant's features")?;
        Ok(rows.iter().map(entitlement).collect())
    }

    /// Every tenant's entitlement rows, for `list`.
    pub async fn all_entitlements(&self) -> Result<Vec<(Uuid, Entitlement)>> {
        let rows = self
            .conn()
            .await?
            .query(
                "SELECT tenant_id, feature, in_tier, override FROM feature_entitlements
                 ORDER BY tenant_id, feature",
                &[],
            )
            .await
            .context("reading features")?;
        Ok(rows
            .iter()
            .map(|r| (r.get("tenant_id"), entitlement(r)))
            .collect())
    }

    /// Step 5: the tier's features and the `--feature` grants. Idempotent: the tier's part is
    /// set to `tier`, a grant recorded again changes nothing. New grants are audited
    /// (`features.grant`, `details.via = "provision"`).
    pub async fn seed_features(
        &self,
        tenant: &Tenant,
        tier: &[&str],
        grants: &[&str],
        actor: &str,
    ) -> Result<()> {
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await.context("starting a transaction")?;
        set_tier_features(&tx, tenant.id, tier).await?;
        let granted: Vec<String> = tx
            .query(
                "INSERT INTO feature_entitlements (tenant_id, feature, override)
                 SELECT $1, f, 'grant' FROM unnest($2::text[]) AS f
                 ON CONFLICT (tenant_id, feature) DO UPDATE SET override = 'grant', updated_at = now()
                 WHERE feature_entitlements.override IS DISTINCT FROM 'grant'
                 RETURNING feature",
                &[&tenant.id, &grants],
            )
            .await
            .context("recording the requested features")?
            .iter()
            .map(|r| r.get(0))
            .collect();
        for feature in granted {
            let details = serde_json::json!({ "feature": feature, "via": "provision" });
            super::audit::append_unchanged(&*tx, tenant, Action::FeaturesGrant, actor, &details)
                .await?;
        }
        tx.commit()
            .await
            .context("committing the tenant's features")
    }

    /// `features refresh`: the tier's part becomes `tier` (the tier's features as the tier file
    /// has them now), audited as `features.refresh` when that changes anything. Returns whether
    /// it did.
    pub async fn refresh_tier_features(
        &self,
        tenant: &Tenant,
        tier: &[&str],
        actor: &str,
    ) -> Result<bool> {
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await.context("starting a transaction")?;
        if set_tier_features(&tx, tenant.id, tier).await? == 0 {
            return Ok(false);
        }
        let details = serde_json::json!({ "tier": tenant.tier, "tier_features": tier });
        super::audit::append_unchanged(&*tx, tenant, Action::FeaturesRefresh, actor, &details)
            .await?;
        tx.commit()
            .await
            .context("committing the tier's features")?;
        Ok(true)
    }

    /// Sets (`Some`) or clears (`None`) a per-tenant override, audited as `action` when it
    /// changes anything. Returns whether it did.
    pub async fn set_feature_override(
        &self,
        tenant: &Tenant,
        feature: &str,
        override_: Option<&str>,
        action: Action,
        actor: &str,
    ) -> Result<bool> {
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await.context("starting a transaction")?;
        let before = tx
            .query_opt(
                "SELECT feature, in_tier, override FROM feature_entitlements
                 WHERE tenant_id = $1 AND feature = $2 FOR UPDATE",
                &[&tenant.id, &feature],
            )
            .await
            .context("reading the feature")?
            .map(|r| entitlement(&r));
        let previous = before.as_ref().and_then(|e| e.override_.clone());
        if previous.as_deref() == override_ {
            return Ok(false);
        }
        match override_ {
            Some(o) => {
                tx.execute(
                    "INSERT INTO feature_entitlements (tenant_id, feature, override)
                     VALUES ($1, $2, $3)
                     ON CONFLICT (tenant_id, feature)
                     DO UPDATE SET override = EXCLUDED.override, updated_at = now()",
                    &[&tenant.id, &feature, &o],
                )
                .await
                .context("recording the override")?;
            }
            None => {
                tx.execute(
                    "DELETE FROM feature_entitlements
                     WHERE tenant_id = $1 AND feature = $2 AND NOT in_tier",
                    &[&tenant.id, &feature],
                )
                .await
                .context("removing the override")?;
                tx.execute(
                    "UPDATE feature_entitlements SET override = NULL, updated_at = now()
                     WHERE tenant_id = $1 AND feature = $2",
                    &[&tenant.id, &feature],
                )
                .await
                .context("removing the override")?;
            }
        }
        let details = serde_json::json!({
            "feature": feature,
            "in_tier": before.as_ref().is_some_and(|e| e.in_tier),
            "previous_override": previous,
            "override": override_,
        });
        super::audit::append_unchanged(&*tx, tenant, action, actor, &details).await?;
        tx.commit().await.context("committing the feature change")?;
        Ok(true)
    }
}

/// Makes the tenant's `tenant_features` rows exactly `features`, in one transaction with its
/// context set. A pooled tenant that is suspended (or deleted) has a `tenant_suspensions` row,
/// under which the policies refuse every write even to a non-superuser table owner: the row is
/// lifted and put back (with its time) inside the same transaction, which no other session
/// sees in between. Idempotent.
pub async fn write_tenant_features(
    client: &mut Client,
    tenant: Uuid,
    features: &[&str],
) -> Result<()> {
    let tx = tenant_tx(client, tenant).await?;
    let since: Option<DateTime<Utc>> = tx
        .query_opt(
            "DELETE FROM tenant_suspensions WHERE tenant_id = $1 RETURNING since",
            &[&tenant],
        )
        .await
        .context("lifting the tenant's suspension for the update")?
        .map(|r| r.get(0));
    tx.execute(
        "DELETE FROM tenant_features WHERE tenant_id = $1 AND NOT (feature = ANY($2))",
        &[&tenant, &features],
    )
    .await
    .context("removing features from the tenant database")?;
    tx.execute(
        "INSERT INTO tenant_features (tenant_id, feature)
         SELECT $1, f FROM unnest($2::text[]) AS f
         ON CONFLICT (tenant_id, feature) DO NOTHING",
        &[&tenant, &features],
    )
    .await
    .context("adding features to the tenant database")?;
    if let Some(since) = since {
        tx.execute(
            "INSERT INTO tenant_suspensions (tenant_id, since) VALUES ($1, $2)",
            &[&tenant, &since],
        )
        .await
        .context("restoring the tenant's suspension")?;
    }
    tx.commit()
        .await
        .context("committing the tenant database's features")
}
