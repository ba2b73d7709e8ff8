//! Lifecycle hooks in the control database: which run a tenant's hooks belong to, and the
//! hooks of that run that succeeded (`hook_runs`, control V16).

use anyhow::{Context, Result};
use uuid::Uuid;

use super::control::ControlDb;
use crate::action::Action;
use crate::hook::Event;
use crate::tenant::Tenant;

impl ControlDb {
    /// The run the tenant's hooks belong to now: the audit entry of the status change that put
    /// the tenant in its current status (its id, and its action), or `None` for a tenant whose
    /// status no entry explains (written by hand). Every status change is audited in the
    /// transaction that makes it, so this is exact.
    pub async fn hook_run(&self, tenant: &Tenant) -> Result<Option<(i64, Action)>> {
        let row = self
            .conn()
            .await?
            .query_opt(
                "SELECT id, action FROM audit_log
                 WHERE slug = $1 AND tenant_id = $2 AND to_status IS DISTINCT FROM from_status
                 ORDER BY id DESC LIMIT 1",
                &[&tenant.slug, &tenant.id],
            )
            .await
            .with_context(|| format!("reading the last status change of tenant {}", tenant.slug))?;
        row.map(|r| -> Result<(i64, Action)> {
            Ok((
                r.try_get(0)?,
                r.try_get(1).context("reading the audit log")?,
            ))
        })
        .transpose()
    }

    /// The hooks of `event` that succeeded in `run`: (position, command).
    pub async fn succeeded_hooks(
        &self,
        tenant: Uuid,
        event: Event,
        run: i64,
    ) -> Result<Vec<(i32, String)>> {
        let rows = self
            .conn()
            .await?
            .query(
                "SELECT position, command FROM hook_runs
                 WHERE tenant_id = $1 AND event = $2 AND run = $3",
                &[&tenant, &event, &run],
            )
            .await
            .context("reading the hooks that ran")?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    /// Records that a hook succeeded. The rows of the tenant's earlier runs go: a run is over
    /// once the tenant's status changed again, and a table that only grows helps no one.
    pub async fn record_hook(
        &self,
        tenant: Uuid,
        event: Event,
        run: i64,
        position: i32,
        command: &str,
        duration_ms: i32,
    ) -> Result<()> {
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await.context("starting a transaction")?;
        tx.execute(
            "DELETE FROM hook_runs WHERE tenant_id = $1 AND run <> $2",
            &[&tenant, &run],
        )
        .await
        .context("forgetting the hooks of earlier runs")?;
        tx.execute(
            "INSERT INTO hook_runs (tenant_id, event, run, position, command, duration_ms)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (tenant_id, event, run, position)
             DO UPDATE SET command = EXCLUDED.command, duration_ms = EXCLUDED.duration_ms,
                           succeeded_at = now()",
            &[&tenant, &event, &run, &position, &command, &duration_ms],
        )
        .await
        .with_context(|| format!("recording the {} hook {position}", event.key()))?;
        tx.commit().await.context("recording a hook")
    }
}
