//! A siloed tenant's login password: only the SCRAM verifier, computed by the caller, reaches
//! the tenant's data-plane server, and the change is audited in the control database.

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use tokio_postgres::Client;

use super::control::ControlDb;
use super::ident;
use crate::action::Action;
use crate::tenant::Tenant;

impl ControlDb {
    /// When credentials were last issued to the tenant, if ever.
    pub async fn credentials_issued(&self, tenant: &Tenant) -> Result<Option<DateTime<Utc>>> {
        let conn = self.conn().await?;
        Ok(conn
            .query_one(
                "SELECT max(at) FROM audit_log WHERE tenant_id = $1 AND action = $2",
                &[&tenant.id, &Action::Credentials],
            )
            .await
            .context("reading the audit log")?
            .get(0))
    }

    /// Sets the role's password to `verifier` (a `SCRAM-SHA-256$...` string), valid until
    /// `valid_until` (or forever), and audits it. The role lives on the tenant's data-plane
    /// server, reached through `admin` (a `Fleet` admin connection); the audit entry lives in
    /// the control database. They cannot share a transaction, so the order is: `ALTER ROLE` in
    /// an open data-plane transaction, then the audit entry committed, then the data-plane
    /// commit. A failure before the audit commit changes nothing anywhere. A crash between the
    /// two commits leaves an audit entry for a change that did not happen, never a change
    /// without one: the role keeps its old password, the new one was never shown to anyone
    /// (the caller prints it only after this returns), and the next `credentials` run sees
    /// credentials issued and asks for `--rotate`, which sets a new one. `audited` runs between
    /// the two commits (the fault tests crash there).
    #[allow(clippy::too_many_arguments)]
    pub async fn set_login_verifier(
        &self,
        admin: &mut Client,
        tenant: &Tenant,
        verifier: &str,
        valid_until: Option<DateTime<Utc>>,
        actor: &str,
        details: serde_json::Value,
        audited: impl FnOnce(),
    ) -> Result<()> {
        let until = match valid_until {
            Some(t) => t.to_rfc3339(),
            None => "infinity".to_owned(),
        };
        let role_tx = admin
            .transaction()
            .await
            .context("starting a transaction on the data-plane server")?;
        // Neither value can be a bound parameter in ALTER ROLE; both are quoted literals (the
        // verifier is base64 and `$:`; the time is chrono's RFC 3339).
        role_tx
            .batch_execute(&format!(
                "ALTER ROLE {} PASSWORD {} VALID UNTIL {}",
                ident::quote(&tenant.role),
                postgres_protocol::escape::escape_literal(verifier),
                postgres_protocol::escape::escape_literal(&until),
            ))
            .await
            .with_context(|| format!("setting the password of role `{}`", tenant.role))?;
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await.context("starting a transaction")?;
        super::audit::append_unchanged(&*tx, tenant, Action::Credentials, actor, &details).await?;
        tx.commit()
            .await
            .context("committing the credentials' audit entry")?;
        audited();
        role_tx
            .commit()
            .await
            .with_context(|| format!("committing the password of role `{}`", tenant.role))
    }
}
