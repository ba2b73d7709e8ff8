//! Ownership in the control database: this control plane's id (the middle of every mark), and
//! the claims that cover the moment between `CREATE DATABASE` and the `COMMENT` that marks it.

use anyhow::{Context, Result};
use uuid::Uuid;

use super::control::ControlDb;
use crate::action::Action;
use crate::server_name::ServerName;
use crate::tenant::Tenant;

impl ControlDb {
    /// This control plane's id, generated once by migration V5 and never changed: read once
    /// per process (a provisioning run asked four times).
    pub async fn plane_id(&self) -> Result<Uuid> {
        self.plane_id_cell()
            .get_or_try_init(|| async {
                Ok(self
                    .conn()
                    .await?
                    .query_one("SELECT id FROM control_plane", &[])
                    .await
                    .context("reading the control plane's id")?
                    .get(0))
            })
            .await
            .copied()
    }

    /// Records that this control plane is about to create database `name` with `mark` on
    /// `server`. Written only after the name was seen free.
    pub async fn claim_database(&self, server: &ServerName, name: &str, mark: &str) -> Result<()> {
        self.conn()
            .await?
            .execute(
                "INSERT INTO database_claims (server, database_name, mark) VALUES ($1, $2, $3)
                 ON CONFLICT (server, database_name) DO UPDATE SET mark = EXCLUDED.mark, claimed_at = now()",
                &[server, &name, &mark],
            )
            .await
            .with_context(|| format!("claiming database `{name}`"))?;
        Ok(())
    }

    /// Whether a claim for `name` on `server` with `mark` stands (a run died between creating
    /// and marking).
    pub async fn database_claimed(
        &self,
        server: &ServerName,
        name: &str,
        mark: &str,
    ) -> Result<bool> {
        Ok(self
            .conn()
            .await?
            .query_opt(
                "SELECT 1 FROM database_claims WHERE server = $1 AND database_name = $2 AND mark = $3",
                &[server, &name, &mark],
            )
            .await
            .with_context(|| format!("reading the claim on database `{name}`"))?
            .is_some())
    }

    /// Removes the claim on `name` on `server` (the database is marked, or was never created).
    pub async fn release_database_claim(&self, server: &ServerName, name: &str) -> Result<()> {
        self.conn()
            .await?
            .execute(
                "DELETE FROM database_claims WHERE server = $1 AND database_name = $2",
                &[server, &name],
            )
            .await
            .with_context(|| format!("releasing the claim on database `{name}`"))?;
        Ok(())
    }
}

impl ControlDb {
    /// An audit entry that changes no status (`adopt`).
    pub async fn audit_entry(
        &self,
        tenant: &Tenant,
        action: Action,
        actor: &str,
        details: serde_json::Value,
    ) -> Result<()> {
        let conn = self.conn().await?;
        let client: &tokio_postgres::Client = &conn;
        super::audit::append_unchanged(client, tenant, action, actor, &details).await
    }
}
