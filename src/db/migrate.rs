//! The refinery migrations of the control schema (`sql/control`) and of the tenant schema
//! (`sql/tenant`). refinery takes no lock of its own and two runners on one fresh database
//! collide, so each run holds a session advisory lock on the same connection.

use anyhow::{Context, Result};
use tokio_postgres::Client;

mod control {
    refinery::embed_migrations!("sql/control");
}
mod tenant {
    refinery::embed_migrations!("sql/tenant");
}

/// Advisory lock keys are per database, so one key per schema suffices.
const CONTROL_LOCK: &str = "tenantctl:migrate:control";
const TENANT_LOCK: &str = "tenantctl:migrate:tenant";

/// Applies pending control migrations; returns the names of those that ran.
pub async fn control(client: &mut Client) -> Result<Vec<String>> {
    locked(client, CONTROL_LOCK, control::migrations::runner())
        .await
        .context("migrating the control database")
}

/// Applies pending tenant-schema migrations to the database `client` is connected to;
/// returns the names (`V2__suspensions`) of those it applied.
pub async fn tenant(client: &mut Client) -> Result<Vec<String>> {
    locked(client, TENANT_LOCK, tenant::migrations::runner())
        .await
        .context("applying the tenant schema")
}

/// The control schema's newest version this binary knows.
pub fn control_latest() -> i32 {
    control::migrations::runner()
        .get_migrations()
        .iter()
        .map(|m| m.version())
        .max()
        .unwrap_or(0)
}

/// The control migrations newer than `applied`.
pub fn control_pending(applied: i32) -> Vec<String> {
    control::migrations::runner()
        .get_migrations()
        .iter()
        .filter(|m| m.version() > applied)
        .map(|m| format!("V{}__{}", m.version(), m.name()))
        .collect()
}

/// The tenant schema's newest version.
pub fn tenant_latest() -> i32 {
    tenant::migrations::runner()
        .get_migrations()
        .iter()
        .map(|m| m.version())
        .max()
        .unwrap_or(0)
}

/// The version a tenant database is at (0: none applied), and the names of the migrations it
/// lacks. Reads only.
pub async fn tenant_state(client: &mut Client) -> Result<(i32, Vec<String>)> {
    let runner = tenant::migrations::runner();
    let has_table: bool = client
        .query_one(
            "SELECT to_regclass('refinery_schema_history') IS NOT NULL",
            &[],
        )
        .await
        .context("looking for the migration history")?
        .get(0);
    let applied: Vec<i32> = if has_table {
        runner
            .get_applied_migrations_async(client)
            .await
            .context("reading the migration history")?
            .iter()
            .map(|m| m.version())
            .collect()
    } else {
        Vec::new()
    };
    let pending = runner
        .get_migrations()
        .iter()
        .filter(|m| !applied.contains(&m.version()))
        .map(|m| format!("V{}__{}", m.version(), m.name()))
        .collect();
    Ok((applied.iter().copied().max().unwrap_or(0), pending))
}

async fn locked(client: &mut Client, key: &str, runner: refinery::Runner) -> Result<Vec<String>> {
    client
        .execute("SELECT pg_advisory_lock(hashtextextended($1, 0))", &[&key])
        .await
        .context("taking the migration lock")?;
    let result = runner.run_async(client).await;
    client
        .execute(
            "SELECT pg_advisory_unlock(hashtextextended($1, 0))",
            &[&key],
        )
        .await
        .context("releasing the migration lock")?;
    Ok(result?
        .applied_migrations()
        .iter()
        .map(|m| format!("V{}__{}", m.version(), m.name()))
        .collect())
}
