//! Lifecycle in the control database: status transitions with their audit entries, the
//! removal of a purged tenant's rows, and reading the audit log.

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};

use super::control::ControlDb;
use super::tenants::{tenant_from, TENANT_COLUMNS};
use crate::action::Action;
use crate::tenant::{Status, Tenant};

/// One audit entry.
#[derive(Debug, Clone, serde::Serialize)]
pub struct AuditEntry {
    pub id: i64,
    pub at: DateTime<Utc>,
    pub actor: String,
    pub action: String,
    pub slug: Option<String>,
    pub from_status: Option<String>,
    pub to_status: Option<String>,
    pub details: serde_json::Value,
}

impl ControlDb {
    /// Moves the tenant from one of `from` to `to` and audits it, in one transaction.
    /// `suspended_at` and `deleted_at` follow the status (kept while it is being resumed,
    /// moved, restored or purged). A move to `deleted` fixes
    /// `purge_after` from `details.retention_days`, the retention its audit entry records (the
    /// table refuses a deleted tenant without one). Returns false (and changes nothing) when the
    /// tenant was not in one of `from`.
    pub async fn transition(
        &self,
        tenant: &Tenant,
        from: &[Status],
        to: Status,
        action: Action,
        actor: &str,
        details: serde_json::Value,
    ) -> Result<bool> {
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await.context("starting a transaction")?;
        if !transition_in(&tx, tenant, from, to, action, actor, &details).await? {
            return Ok(false);
        }
        tx.commit().await.context("committing the status change")?;
        Ok(true)
    }

    /// The deleted tenants whose retention (fixed at deletion) has run out, and purges that
    /// were interrupted.
    pub async fn expired(&self) -> Result<Vec<Tenant>> {
        let rows = self
            .conn()
            .await?
            .query(
                &format!(
                    "SELECT {TENANT_COLUMNS} FROM tenants
                     WHERE status = $1
                        OR (status = $2 AND purge_after <= now())
                     ORDER BY slug"
                ),
                &[&Status::Deleting, &Status::Deleted],
            )
            .await
            .context("listing expired tenants")?;
        rows.iter().map(tenant_from).collect()
    }

    /// The last step of a purge: every control row of the tenant (usage, quotas, journal, the
    /// tenant itself), with the audit entry, in one transaction. The audit log keeps history.
    pub async fn purge_tenant_rows(&self, tenant: &Tenant, actor: &str) -> Result<()> {
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await.context("starting a transaction")?;
        tx.execute(
            "DELETE FROM usage_events WHERE tenant_id = $1",
            &[&tenant.id],
        )
        .await
        .context("deleting usage events")?;
        // quotas, usage_totals, measured_usage and the journal go by ON DELETE CASCADE.
        let gone = tx
            .execute("DELETE FROM tenants WHERE id = $1", &[&tenant.id])
            .await
            .context("deleting the tenant row")?;
        if gone == 1 {
            let details = serde_json::json!({ "database": tenant.database, "role": tenant.role, "isolation": tenant.isolation.as_str() });
            super::audit::append(
                &*tx,
                super::audit::Entry {
                    actor,
                    action: Action::Purge,
                    tenant_id: tenant.id,
                    slug: tenant.slug.as_str(),
                    from: Some(Status::Deleting),
                    to: None,
                    details: &details,
                },
            )
            .await?;
        }
        tx.commit().await.context("committing the purge")
    }

    /// Audit entries, oldest first, optionally for one slug and since a time.
    pub async fn audit(
        &self,
        slug: Option<&str>,
        since: Option<DateTime<Utc>>,
    ) -> Result<Vec<AuditEntry>> {
        let rows = self
            .conn()
            .await?
            .query(
                "SELECT id, at, actor, action, slug, from_status, to_status, details FROM audit_log
                 WHERE ($1::text IS NULL OR slug = $1) AND ($2::timestamptz IS NULL OR at >= $2)
                 ORDER BY id",
                &[&slug, &since],
            )
            .await
            .context("reading the audit log")?;
        Ok(rows
            .iter()
            .map(|r| AuditEntry {
                id: r.get(0),
                at: r.get(1),
                actor: r.get(2),
                action: r.get(3),
                slug: r.get(4),
                from_status: r.get(5),
                to_status: r.get(6),
                details: r.get(7),
            })
            .collect())
    }
}

/// `ControlDb::transition` inside the caller's transaction `tx`, for a status change that
/// commits together with other rows (a move's journal).
pub(super) async fn transition_in(
    tx: &tokio_postgres::Transaction<'_>,
    tenant: &Tenant,
    from: &[Status],
    to: Status,
    action: Action,
    actor: &str,
    details: &serde_json::Value,
) -> Result<bool> {
    // What the new status does to the timestamps, decided here from the typed status:
    // suspension stamps `suspended_at` (resuming and moving keep it, and a move that ends
    // suspended keeps the suspension's time), deletion stamps `deleted_at` and `purge_after`
    // (deleting and restoring keep them), every other status clears them.
    let stamp_suspended = to == Status::Suspended;
    let keep_suspended = matches!(to, Status::Resuming | Status::Moving);
    let stamp_deleted = to == Status::Deleted;
    let keep_deleted = matches!(to, Status::Deleting | Status::Restoring);
    let previous: Option<Status> = tx
        .query_opt(
            "UPDATE tenants t SET status = $2, updated_at = now(),
                 suspended_at = CASE WHEN $5 AND old.status = $9 THEN t.suspended_at
                                     WHEN $5 THEN now() WHEN $6 THEN t.suspended_at END,
                 deleted_at = CASE WHEN $7 THEN now() WHEN $8 THEN t.deleted_at END,
                 purge_after = CASE
                     WHEN $7 THEN now() + make_interval(days => ($4::jsonb ->> 'retention_days')::int)
                     WHEN $8 THEN t.purge_after END
             FROM (SELECT id, status FROM tenants WHERE id = $1 FOR UPDATE) old
             WHERE t.id = old.id AND old.status = ANY($3)
             RETURNING old.status",
            &[
                &tenant.id,
                &to,
                &from,
                details,
                &stamp_suspended,
                &keep_suspended,
                &stamp_deleted,
                &keep_deleted,
                &Status::Moving,
            ],
        )
        .await
        .with_context(|| format!("changing the status of tenant {}", tenant.slug))?
        .map(|r| r.get(0));
    let Some(previous) = previous else {
        return Ok(false);
    };
    super::audit::append(
        tx,
        super::audit::Entry {
            actor,
            action,
            tenant_id: tenant.id,
            slug: tenant.slug.as_str(),
            from: Some(previous),
            to: Some(to),
            details,
        },
    )
    .await?;
    Ok(true)
}
