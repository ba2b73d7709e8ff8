//! Advisory locks on the control database: the per-tenant lock, the pooled database's lock, the
//! template database's lock, the placement lock.
//! Each is a session lock on a connection of its own, outside the pool.

use anyhow::{Context, Result};
use tokio_postgres::Client;

use super::control::ControlDb;
use crate::server_name::ServerName;
use crate::slug::Slug;

/// The key of a tenant's advisory lock is this followed by its slug (`metrics` looks for it
/// in `pg_locks` to tell a running transition from an interrupted one).
pub(super) const TENANT_LOCK_PREFIX: &str = "tenantctl:tenant:";

/// How long `try_lock_tenant` waits for a lock that is held.
const TENANT_LOCK_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

/// A session advisory lock on its own connection: dropping it closes the session and so
/// releases the lock, as does the death of the process.
pub struct SessionLock {
    client: Client,
}

/// The pooled database's lock, taken on a `SessionLock`'s session: `release` gives it back;
/// dropped without it (a failed step), it goes with that session.
pub struct PooledLock<'a> {
    client: &'a Client,
    key: String,
}

/// The key of the lock around the shared pooled database of `server` and its role: one per
/// server (the control database's own keeps the key it always had), so pooled databases on
/// different servers are changed in parallel.
fn pooled_key(server: &ServerName) -> String {
    if server.is_control() {
        "tenantctl:pooled".to_owned()
    } else {
        format!("tenantctl:pooled:{server}")
    }
}

impl SessionLock {
    /// Releases every lock of this session (`pg_advisory_unlock_all`) and gives the session
    /// to `control` for its next lock. Best effort: the work the lock guarded is done, and a
    /// session whose unlock failed (a lost connection) is dropped instead, which closes it and
    /// so releases its locks as surely, as dropping the lock always did.
    pub async fn release(self, control: &ControlDb) {
        if self
            .client
            .execute("SELECT pg_advisory_unlock_all()", &[])
            .await
            .is_ok()
        {
            control.keep_session(self.client);
        }
    }

    /// Waits for the pooled database's lock of `server` on this lock's session as well, rather
    /// than on a connection of its own (a provisioning run of a pooled tenant holds both: one
    /// connection fewer per tenant).
    pub async fn lock_pooled_too(&self, server: &ServerName) -> Result<PooledLock<'_>> {
        let key = pooled_key(server);
        self.client
            .execute("SELECT pg_advisory_lock(hashtextextended($1, 0))", &[&key])
            .await
            .context("waiting for the pooled database's lock")?;
        Ok(PooledLock {
            client: &self.client,
            key,
        })
    }
}

impl PooledLock<'_> {
    pub async fn release(self) -> Result<()> {
        self.client
            .execute(
                "SELECT pg_advisory_unlock(hashtextextended($1, 0))",
                &[&self.key],
            )
            .await
            .context("releasing the pooled database's lock")?;
        Ok(())
    }
}

/// The key of the placement lock.
const PLACEMENT_LOCK: &str = "tenantctl:placement";

impl SessionLock {
    /// Takes the placement lock too, on this lock's session (provisioning holds its tenant's
    /// lock already: no second connection), waiting for it. Released by `release_placement`,
    /// or with the session.
    pub async fn hold_placement(&self) -> Result<()> {
        self.client
            .execute(
                "SELECT pg_advisory_lock(hashtextextended($1, 0))",
                &[&PLACEMENT_LOCK],
            )
            .await
            .context("waiting for the placement lock")?;
        Ok(())
    }

    pub async fn release_placement(&self) -> Result<()> {
        self.client
            .execute(
                "SELECT pg_advisory_unlock(hashtextextended($1, 0))",
                &[&PLACEMENT_LOCK],
            )
            .await
            .context("releasing the placement lock")?;
        Ok(())
    }
}

impl ControlDb {
    /// The per-tenant lock, waiting at most `TENANT_LOCK_GRACE` for it: `None` if another
    /// process still holds it then. The grace covers a killed run, whose session the server
    /// ends a moment after the process died; a live run elsewhere makes this exit "in
    /// progress" promptly rather than queue behind it.
    pub async fn try_lock_tenant(&self, slug: &Slug) -> Result<Option<SessionLock>> {
        self.try_session_lock(&format!("{TENANT_LOCK_PREFIX}{slug}"), TENANT_LOCK_GRACE)
            .await
    }

    /// A session lock, retried on one connection for up to `grace`: `None` if another session
    /// still holds it then.
    pub(super) async fn try_session_lock(
        &self,
        key: &str,
        grace: std::time::Duration,
    ) -> Result<Option<SessionLock>> {
        let client = self.session().await?;
        let deadline = std::time::Instant::now() + grace;
        loop {
            let got: bool = client
                .query_one(
                    "SELECT pg_try_advisory_lock(hashtextextended($1, 0))",
                    &[&key],
                )
                .await
                .with_context(|| format!("taking the lock {key}"))?
                .get(0);
            if got {
                return Ok(Some(SessionLock { client }));
            }
            if std::time::Instant::now() >= deadline {
                return Ok(None);
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    /// The lock around creating and migrating the siloed tenants' template database of
    /// `server` (`ops::template`); waits for it. Copying the template takes no lock: it is
    /// copied only while closed and current, and the server refuses a copy with a session in it.
    pub async fn lock_template(&self, server: &ServerName) -> Result<SessionLock> {
        let key = if server.is_control() {
            "tenantctl:template".to_owned()
        } else {
            format!("tenantctl:template:{server}")
        };
        let client = self.session().await?;
        client
            .execute("SELECT pg_advisory_lock(hashtextextended($1, 0))", &[&key])
            .await
            .context("waiting for the template database's lock")?;
        Ok(SessionLock { client })
    }

    /// The placement lock: held from reading the servers' load until the new tenant's row
    /// names its server (and by `server drain|remove`), so that two provisions at once never
    /// both take a server's last free place and a server being removed receives no tenant.
    /// Waits for it (placement holds it for milliseconds).
    pub async fn lock_placement(&self) -> Result<SessionLock> {
        let client = self.session().await?;
        client
            .execute(
                "SELECT pg_advisory_lock(hashtextextended($1, 0))",
                &[&PLACEMENT_LOCK],
            )
            .await
            .context("waiting for the placement lock")?;
        Ok(SessionLock { client })
    }

    /// The lock around changes to the shared pooled database of `server` and its role
    /// (concurrent GRANTs on one object fail with "tuple concurrently updated"); waits for it.
    /// One per server (the control database's own keeps the key it always had), so pooled
    /// databases on different servers are changed in parallel.
    pub async fn lock_pooled(&self, server: &ServerName) -> Result<SessionLock> {
        let key = pooled_key(server);
        let client = self.session().await?;
        client
            .execute("SELECT pg_advisory_lock(hashtextextended($1, 0))", &[&key])
            .await
            .context("waiting for the pooled database's lock")?;
        Ok(SessionLock { client })
    }
}
