//! Reading tenants: `list` and `show`, as serializable views.

use std::collections::BTreeMap;

use anyhow::Result;
use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use super::ControlPlane;
use crate::db::features::Entitlement;
use crate::db::quotas::QuotaRow;
use crate::error::Failure;
use crate::region::Region;
use crate::server_name::ServerName;
use crate::slug::Slug;
use crate::tenant::Tenant;
use crate::tier::Isolation;

/// A tenant as `show` and `list` print it. The JSON field names are a contract.
#[derive(Debug, Clone, Serialize)]
pub struct TenantView {
    pub id: Uuid,
    pub slug: String,
    pub name: String,
    pub tier: String,
    pub isolation: Isolation,
    pub status: String,
    /// The server of the fleet the tenant's database is on.
    pub server: ServerName,
    /// Its server's region (`server add|set --region`); `null` when the server has none.
    pub region: Option<Region>,
    /// The tenant's database: its own when siloed, the shared one when pooled.
    pub database: String,
    /// The login role the tenant's application connects as.
    pub role: String,
    pub owner_email: String,
    pub created_at: DateTime<Utc>,
    pub activated_at: Option<DateTime<Utc>>,
    /// Set while softly deleted.
    pub deleted_at: Option<DateTime<Utc>>,
    /// Set while softly deleted: `restore` works until then, `purge --expired` removes the
    /// tenant after. Fixed at deletion from the retention configured then.
    pub purge_after: Option<DateTime<Utc>>,
    pub buckets: Vec<BucketView>,
    pub quotas: BTreeMap<String, QuotaView>,
    /// The features the tenant has now (none unless it is active); `features show` has why.
    pub features: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct BucketView {
    pub name: String,
    pub location: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct QuotaView {
    pub limit: i64,
    /// `tier` (seeded from the tier) or `override`.
    pub source: String,
}

fn assemble(
    plane: &ControlPlane,
    t: Tenant,
    region: Option<Region>,
    quotas: Vec<QuotaRow>,
    entitlements: &[Entitlement],
) -> TenantView {
    let features = super::features::effective(t.status, entitlements);
    let buckets = crate::storage::buckets(&t.slug, t.isolation)
        .into_iter()
        .map(|b| BucketView {
            location: plane.store.location(&b),
            name: b.name(),
        })
        .collect();
    let quotas = quotas
        .into_iter()
        .map(|q| {
            (
                // Keyed by name: the map keeps the alphabetical order `show` has always had.
                q.resource.to_string(),
                QuotaView {
                    limit: q.limit,
                    source: q.source,
                },
            )
        })
        .collect();
    TenantView {
        id: t.id,
        slug: t.slug.to_string(),
        name: t.name,
        tier: t.tier,
        isolation: t.isolation,
        status: t.status.to_string(),
        server: t.server,
        region,
        database: t.database,
        role: t.role,
        owner_email: t.owner_email,
        created_at: t.created_at,
        activated_at: t.activated_at,
        deleted_at: t.deleted_at,
        purge_after: t.purge_after,
        buckets,
        quotas,
        features,
    }
}

/// The full view of one tenant row.
pub async fn view(plane: &ControlPlane, t: Tenant) -> Result<TenantView> {
    let quotas = plane.control.quotas(t.id).await?;
    let entitlements = plane.control.entitlements(t.id).await?;
    let region = super::servers::region_of(plane, &t.server).await?;
    Ok(assemble(plane, t, region, quotas, &entitlements))
}

/// Every server's region, read once for a command that shows many tenants.
pub async fn regions(plane: &ControlPlane) -> Result<BTreeMap<ServerName, Option<Region>>> {
    Ok(plane
        .control
        .servers()
        .await?
        .into_iter()
        .map(|s| (s.name, s.region))
        .collect())
}

/// The refusal (exit 3) for a slug that names no tenant.
pub fn not_found(slug: &str) -> Failure {
    Failure::Refused(format!(
        "no tenant `{slug}`; `tenantctl list` shows the tenants"
    ))
}

/// The tenant, or "not found" (exit 3).
pub async fn find(plane: &ControlPlane, slug: &Slug) -> Result<Tenant> {
    Ok(plane
        .control
        .find_tenant(slug)
        .await?
        .ok_or_else(|| not_found(slug.as_str()))?)
}

/// `show <slug>`.
pub async fn show(plane: &ControlPlane, slug: &Slug) -> Result<TenantView> {
    view(plane, find(plane, slug).await?).await
}

/// `list`: every tenant, quotas read in one query.
pub async fn list(plane: &ControlPlane) -> Result<Vec<TenantView>> {
    let tenants = plane.control.list_tenants().await?;
    let regions = regions(plane).await?;
    let mut quotas: BTreeMap<Uuid, Vec<QuotaRow>> = BTreeMap::new();
    for (id, q) in plane.control.all_quotas().await? {
        quotas.entry(id).or_default().push(q);
    }
    let mut entitlements: BTreeMap<Uuid, Vec<Entitlement>> = BTreeMap::new();
    for (id, e) in plane.control.all_entitlements().await? {
        entitlements.entry(id).or_default().push(e);
    }
    Ok(tenants
        .into_iter()
        .map(|t| {
            let q = quotas.remove(&t.id).unwrap_or_default();
            let e = entitlements.remove(&t.id).unwrap_or_default();
            let r = regions.get(&t.server).cloned().flatten();
            assemble(plane, t, r, q, &e)
        })
        .collect())
}
