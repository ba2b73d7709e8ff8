//! The audit log's one insert. Every audited change calls `append` on the connection or
//! transaction of the change itself, so that the entry and the change commit together.

use anyhow::{Context, Result};
use tokio_postgres::GenericClient;
use uuid::Uuid;

use crate::action::Action;
use crate::tenant::{Status, Tenant};

/// One entry to append: who did what to which tenant, from and to which status (`None` is
/// NULL: a tenant not yet recorded, one purged, a change that is not about status).
pub(super) struct Entry<'a> {
    pub actor: &'a str,
    pub action: Action,
    pub tenant_id: Uuid,
    pub slug: &'a str,
    pub from: Option<Status>,
    pub to: Option<Status>,
    pub details: &'a serde_json::Value,
}

/// Appends `entry` on `client` (a transaction, usually).
pub(super) async fn append(client: &impl GenericClient, entry: Entry<'_>) -> Result<()> {
    insert(
        client,
        entry.actor,
        entry.action,
        Some((entry.tenant_id, entry.slug)),
        (entry.from, entry.to),
        entry.details,
    )
    .await
}

/// Appends the entry of a change to the fleet itself (`server add`, `drain`...): no tenant,
/// no status.
pub(super) async fn append_fleet(
    client: &impl GenericClient,
    actor: &str,
    action: Action,
    details: &serde_json::Value,
) -> Result<()> {
    insert(client, actor, action, None, (None, None), details).await
}

/// The one `INSERT INTO audit_log`.
async fn insert(
    client: &impl GenericClient,
    actor: &str,
    action: Action,
    tenant: Option<(Uuid, &str)>,
    (from, to): (Option<Status>, Option<Status>),
    details: &serde_json::Value,
) -> Result<()> {
    let (tenant_id, slug) = tenant.unzip();
    client
        .execute(
            "INSERT INTO audit_log (actor, action, tenant_id, slug, from_status, to_status, details)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
            &[&actor, &action, &tenant_id, &slug, &from, &to, details],
        )
        .await
        .context("writing the audit log")?;
    Ok(())
}

/// The entry of an action without a status change (features, `adopt`, `set-tier`,
/// credentials): from and to are the tenant's current status.
pub(super) async fn append_unchanged(
    client: &impl GenericClient,
    tenant: &Tenant,
    action: Action,
    actor: &str,
    details: &serde_json::Value,
) -> Result<()> {
    append(
        client,
        Entry {
            actor,
            action,
            tenant_id: tenant.id,
            slug: tenant.slug.as_str(),
            from: Some(tenant.status),
            to: Some(tenant.status),
            details,
        },
    )
    .await
}
