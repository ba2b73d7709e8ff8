//! The `moves` and `move_journal` tables: the move of a tenant's data in flight, the steps it
//! completed, and the control transactions that start it (`moving`), switch the tenant record
//! to its target, and end it.

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use tokio_postgres::Row;
use uuid::Uuid;

use super::control::ControlDb;
use super::lifecycle::transition_in;
use crate::action::Action;
use crate::move_step::{MoveKind, MoveStep};
use crate::resource::Resource;
use crate::server_name::ServerName;
use crate::tenant::{Status, Tenant};
use crate::tier::Isolation;

/// One row of `moves`: where the tenant's data comes from and goes to.
#[derive(Clone, Debug)]
pub struct MoveRecord {
    pub tenant: Uuid,
    pub kind: MoveKind,
    /// The status the tenant had when the move began, and returns to.
    pub return_status: Status,
    pub from_tier: String,
    pub to_tier: String,
    pub from_isolation: Isolation,
    pub to_isolation: Isolation,
    pub from_database: String,
    pub from_role: String,
    pub to_database: String,
    pub to_role: String,
    /// The servers the data comes from and goes to; `None` (a move recorded before the fleet):
    /// the control database's own server.
    pub from_server: Option<ServerName>,
    pub to_server: Option<ServerName>,
    pub started_at: DateTime<Utc>,
}

const MOVE_COLUMNS: &str = "tenant_id, kind, return_status, from_tier, to_tier, from_isolation, \
     to_isolation, from_database, from_role, to_database, to_role, from_server, to_server, started_at";

fn move_from(r: &Row) -> Result<MoveRecord> {
    Ok(MoveRecord {
        tenant: r.get("tenant_id"),
        kind: r.try_get("kind").context("reading moves")?,
        return_status: r.try_get("return_status").context("reading moves")?,
        from_tier: r.get("from_tier"),
        to_tier: r.get("to_tier"),
        from_isolation: r.try_get("from_isolation").context("reading moves")?,
        to_isolation: r.try_get("to_isolation").context("reading moves")?,
        from_database: r.get("from_database"),
        from_role: r.get("from_role"),
        to_database: r.get("to_database"),
        to_role: r.get("to_role"),
        from_server: r.try_get("from_server").context("reading moves")?,
        to_server: r.try_get("to_server").context("reading moves")?,
        started_at: r.get("started_at"),
    })
}

impl ControlDb {
    /// The tenant's move in flight, if any.
    pub async fn find_move(&self, tenant: Uuid) -> Result<Option<MoveRecord>> {
        let row = self
            .conn()
            .await?
            .query_opt(
                &format!("SELECT {MOVE_COLUMNS} FROM moves WHERE tenant_id = $1"),
                &[&tenant],
            )
            .await
            .context("reading the tenant's move")?;
        row.as_ref().map(move_from).transpose()
    }

    /// Step `record_move`: the move's row, its journal entry and the move to `moving` from one
    /// of `from` (audited as `move.start` with `details`), in one transaction. False (nothing
    /// written) when the tenant was in none of `from`.
    pub async fn begin_move(
        &self,
        t: &Tenant,
        m: &MoveRecord,
        from: &[Status],
        actor: &str,
        details: &serde_json::Value,
    ) -> Result<bool> {
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await.context("starting a transaction")?;
        if !transition_in(
            &tx,
            t,
            from,
            Status::Moving,
            Action::MoveStart,
            actor,
            details,
        )
        .await?
        {
            return Ok(false);
        }
        tx.execute(
            "INSERT INTO moves (tenant_id, kind, return_status, from_tier, to_tier, from_isolation,
                 to_isolation, from_database, from_role, to_database, to_role, from_server, to_server, actor)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
            &[
                &t.id,
                &m.kind,
                &m.return_status,
                &m.from_tier,
                &m.to_tier,
                &m.from_isolation,
                &m.to_isolation,
                &m.from_database,
                &m.from_role,
                &m.to_database,
                &m.to_role,
                &m.from_server,
                &m.to_server,
                &actor,
            ],
        )
        .await
        .context("recording the move")?;
        journal_in(&tx, t.id, MoveStep::RecordMove, 0, &serde_json::json!({})).await?;
        tx.commit()
            .await
            .context("committing the start of the move")?;
        Ok(true)
    }

    /// The steps the move's journal records as done. A name this version does not know is an
    /// error, never a step taken as undone.
    pub async fn move_steps(&self, tenant: Uuid) -> Result<Vec<MoveStep>> {
        let rows = self
            .conn()
            .await?
            .query(
                "SELECT step FROM move_journal WHERE tenant_id = $1",
                &[&tenant],
            )
            .await
            .context("reading the move's journal")?;
        rows.iter()
            .map(|r| r.try_get(0).context("reading the move's journal"))
            .collect()
    }

    /// Journals `step` as done (again: a step before the switch runs on every run), with what
    /// it found.
    pub async fn journal_move_step(
        &self,
        tenant: Uuid,
        step: MoveStep,
        duration_ms: i32,
        details: &serde_json::Value,
    ) -> Result<()> {
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await.context("starting a transaction")?;
        journal_in(&tx, tenant, step, duration_ms, details).await?;
        tx.commit()
            .await
            .with_context(|| format!("journaling step {step}"))
    }

    /// Step `switch`: the tenant record takes the move's target (isolation, tier, database,
    /// role), its quotas and features the target tier's (`limits`: the tier's rows; overrides
    /// keep their limits), audited as `set-tier` (status `moving` unchanged, so billing prices
    /// the days from now at the new tier) and journaled, in one transaction. From its commit on
    /// the target is the tenant's data. False (nothing written) when the tenant is not moving.
    pub async fn switch_move(
        &self,
        t: &Tenant,
        m: &MoveRecord,
        limits: &[(Resource, u64, bool)],
        features: &[&str],
        actor: &str,
        duration_ms: i32,
    ) -> Result<bool> {
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await.context("starting a transaction")?;
        let n = tx
            .execute(
                "UPDATE tenants SET tier = $2, isolation = $3, database_name = $4, role_name = $5,
                     server = coalesce($7, server), updated_at = now()
                 WHERE id = $1 AND status = $6",
                &[
                    &t.id,
                    &m.to_tier,
                    &m.to_isolation,
                    &m.to_database,
                    &m.to_role,
                    &Status::Moving,
                    &m.to_server,
                ],
            )
            .await
            .context("switching the tenant to its new database")?;
        if n != 1 {
            return Ok(false);
        }
        super::tenants::apply_tier(&tx, t.id, limits, features).await?;
        let details = serde_json::json!({
            "from_tier": m.from_tier,
            "to_tier": m.to_tier,
            "from_isolation": m.from_isolation.as_str(),
            "to_isolation": m.to_isolation.as_str(),
            "from_database": m.from_database,
            "to_database": m.to_database,
            "from_server": m.from_server,
            "to_server": m.to_server,
        });
        super::audit::append_unchanged(&*tx, t, Action::SetTier, actor, &details).await?;
        journal_in(
            &tx,
            t.id,
            MoveStep::Switch,
            duration_ms,
            &serde_json::json!({}),
        )
        .await?;
        tx.commit().await.context("committing the switch")?;
        Ok(true)
    }

    /// Step `switch` of a move between servers: the tenant's server (its database and role keep
    /// their names) switched to the move's target, audited as `move` (`step: switch`) and
    /// journaled, in one transaction. False (nothing written) when the tenant is not moving.
    pub async fn switch_server(
        &self,
        t: &Tenant,
        m: &MoveRecord,
        actor: &str,
        duration_ms: i32,
    ) -> Result<bool> {
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await.context("starting a transaction")?;
        let n = tx
            .execute(
                "UPDATE tenants SET server = $2, updated_at = now()
                 WHERE id = $1 AND status = $3",
                &[&t.id, &m.to_server, &Status::Moving],
            )
            .await
            .context("switching the tenant to its new server")?;
        if n != 1 {
            return Ok(false);
        }
        let details = serde_json::json!({
            "step": "switch",
            "database": m.to_database,
            "from_server": m.from_server,
            "to_server": m.to_server,
        });
        super::audit::append_unchanged(&*tx, t, Action::Move, actor, &details).await?;
        journal_in(
            &tx,
            t.id,
            MoveStep::Switch,
            duration_ms,
            &serde_json::json!({}),
        )
        .await?;
        tx.commit().await.context("committing the switch")?;
        Ok(true)
    }

    /// Step `finish`: `moving` → `to` (audited as `move` with `details`) and the move's row and
    /// journal removed, in one transaction. False (nothing written) when the tenant is not
    /// moving.
    pub async fn end_move(
        &self,
        t: &Tenant,
        to: Status,
        actor: &str,
        details: &serde_json::Value,
    ) -> Result<bool> {
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await.context("starting a transaction")?;
        if !transition_in(&tx, t, &[Status::Moving], to, Action::Move, actor, details).await? {
            return Ok(false);
        }
        tx.execute("DELETE FROM moves WHERE tenant_id = $1", &[&t.id])
            .await
            .context("closing the move's journal")?;
        tx.commit()
            .await
            .context("committing the end of the move")?;
        Ok(true)
    }

    /// The move's row and journal removed without a status change: a purge that settled the
    /// move (it writes the status itself).
    pub async fn drop_move(&self, tenant: Uuid) -> Result<()> {
        self.conn()
            .await?
            .execute("DELETE FROM moves WHERE tenant_id = $1", &[&tenant])
            .await
            .context("closing the move's journal")?;
        Ok(())
    }
}

async fn journal_in(
    tx: &tokio_postgres::Transaction<'_>,
    tenant: Uuid,
    step: MoveStep,
    duration_ms: i32,
    details: &serde_json::Value,
) -> Result<()> {
    tx.execute(
        "INSERT INTO move_journal (tenant_id, step, duration_ms, details) VALUES ($1, $2, $3, $4)
         ON CONFLICT (tenant_id, step) DO UPDATE SET duration_ms = EXCLUDED.duration_ms,
             details = EXCLUDED.details, completed_at = now()",
        &[&tenant, &step, &duration_ms, details],
    )
    .await
    .with_context(|| format!("journaling step {step}"))?;
    Ok(())
}
