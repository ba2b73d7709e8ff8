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

/// Applies pending control migrations; returns how many ran.
pub async fn control(client: &mut Client) -> Result<usize> {
    locked(client, CONTROL_LOCK, control::migrations::runner())
        .await
        .context("migrating the control database")
}

/// Applies pending tenant-schema migrations to the database `client` is connected to.
pub async fn tenant(client: &mut Client) -> Result<usize> {
    locked(client, TENANT_LOCK, tenant::migrations::runner())
        .await
        .context("applying the tenant schema")
}

async fn locked(client: &mut Client, key: &str, runner: refinery::Runner) -> Result<usize> {
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
    Ok(result?.applied_migrations().len())
}
