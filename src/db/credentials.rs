//! A siloed tenant's login password: only the SCRAM verifier, computed by the caller, reaches
//! the server, in the same transaction as its audit entry.

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};

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
    /// `valid_until` (or forever), on the tenant's server (`admin` is connected there), and
    /// audits it: the audit entry's transaction is open while the role changes and commits
    /// after, so a failed change leaves no entry (a crash between the two leaves the password
    /// set without one, and the next `credentials` issues a new one without `--rotate`).
    pub async fn set_login_verifier(
        &self,
        admin: &tokio_postgres::Client,
        tenant: &Tenant,
        verifier: &str,
        valid_until: Option<DateTime<Utc>>,
        actor: &str,
        details: serde_json::Value,
    ) -> Result<()> {
        let until = match valid_until {
            Some(t) => t.to_rfc3339(),
            None => "infinity".to_owned(),
        };
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await.context("starting a transaction")?;
        // Neither value can be a bound parameter in ALTER ROLE; both are quoted literals (the
        // verifier is base64 and `$:`; the time is chrono's RFC 3339).
        super::audit::append_unchanged(&*tx, tenant, Action::Credentials, actor, &details).await?;
        admin
            .batch_execute(&format!(
                "ALTER ROLE {} PASSWORD {} VALID UNTIL {}",
                ident::quote(&tenant.role),
                postgres_protocol::escape::escape_literal(verifier),
                postgres_protocol::escape::escape_literal(&until),
            ))
            .await
            .with_context(|| format!("setting the password of role `{}`", tenant.role))?;
        tx.commit().await.context("committing the credentials")
    }
}
