//! `Fleet`: the one place that hands out connections to the data plane, the admin
//! connections (for `CREATE DATABASE`, `CREATE ROLE`, `GRANT`, the catalogs) and connections to
//! a tenant's database.
//!
//! Today the fleet is one server, the control database's. Callers name what they want to reach
//! (a tenant, or a database with the tenant it belongs to) and never a server, so that placing
//! tenants on several servers (issue 11) changes how this file resolves a tenant to its server
//! and not its callers. The admin connections come from a small pool of their own: the control
//! database keeps its pool for its own rows.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use deadpool_postgres::{Object, Pool};
use tokio_postgres::Client;

use super::Server;
use crate::conninfo::SslMode;
use crate::tenant::Tenant;
use crate::tier::Isolation;

/// How many admin connections may be open at once (the statements on them are short; the
/// worker pools of `migrate` and `usage refresh` take one each only for a moment).
const ADMIN_POOL_SIZE: usize = 4;

/// How many connections to a shared pooled database may be open at once: one per tenant in
/// flight (a bulk run has at most 20).
const SHARED_POOL_SIZE: usize = 20;

/// Cheap to clone: the pools and the server settings are shared.
#[derive(Clone)]
pub struct Fleet {
    server: Server,
    admin: Pool,
    /// Per shared pooled database, a pool (`Clean` recycling: a session's `app.tenant_id`
    /// must not reach the next tenant), made on first use: the tenants of one database reuse
    /// warm connections instead of paying a server process and cold catalog caches each.
    shared: Arc<Mutex<HashMap<String, Pool>>>,
}

/// A connection to a tenant's database: its own (a silo), or one lent by the shared
/// database's pool, returned when dropped. Either way a `Client`.
pub enum TenantConn {
    Own(Client),
    Shared(Object),
}

impl std::ops::Deref for TenantConn {
    type Target = Client;
    fn deref(&self) -> &Client {
        match self {
            TenantConn::Own(c) => c,
            TenantConn::Shared(o) => o,
        }
    }
}

impl std::ops::DerefMut for TenantConn {
    fn deref_mut(&mut self) -> &mut Client {
        match self {
            TenantConn::Own(c) => c,
            TenantConn::Shared(o) => o,
        }
    }
}

/// Where a tenant's application connects: the server's first host (or socket directory), port
/// and TLS mode.
pub struct Endpoint<'a> {
    pub host: &'a str,
    pub port: u16,
    pub sslmode: SslMode,
}

impl Fleet {
    /// The fleet of one server. The admin pool connects to the server's control database, the
    /// one database tenantctl knows exists there (managed services may lack `postgres`); its
    /// connections are opened on first use.
    pub fn new(server: Server) -> Result<Fleet> {
        let admin = server.pool(server.control_database(), ADMIN_POOL_SIZE)?;
        Ok(Fleet {
            server,
            admin,
            shared: Arc::default(),
        })
    }

    /// An admin connection to the server that holds the tenant databases, for statements on
    /// cluster-wide objects (databases, roles) and the catalogs.
    pub async fn admin(&self) -> Result<Object> {
        self.admin.get().await.with_context(|| {
            format!(
                "connecting to {} as tenantctl's admin role",
                self.server.shown()
            )
        })
    }

    /// A connection to tenant `t`'s database (the shared one, for a pooled tenant, from its
    /// pool).
    pub async fn tenant_db(&self, t: &Tenant) -> Result<TenantConn> {
        if t.isolation == Isolation::Siloed {
            return Ok(TenantConn::Own(self.server.connect(&t.database).await?));
        }
        let pool = {
            let mut pools = self.shared.lock().expect("not poisoned");
            match pools.get(&t.database) {
                Some(p) => p.clone(),
                None => {
                    let p = self.server.pool_resetting(&t.database, SHARED_POOL_SIZE)?;
                    pools.insert(t.database.clone(), p.clone());
                    p
                }
            }
        };
        Ok(TenantConn::Shared(
            self.server.first_pooled(&pool, &t.database).await?,
        ))
    }

    /// A connection to a data-plane database that is not one tenant's own: the shared pooled
    /// database, or a staging database of `t` (a restore). `t` says whose server it is on.
    pub async fn database_of(&self, _t: &Tenant, name: &str) -> Result<Client> {
        self.server.connect(name).await
    }

    /// A connection to data-plane database `name` reached without a tenant record at hand
    /// (`migrate`'s targets, `doctor`): on the server the tenant databases are on.
    pub async fn connect_database(&self, name: &str) -> Result<Client> {
        self.server.connect(name).await
    }

    /// Whether data-plane database `name` answers a query (`doctor`).
    pub async fn ping(&self, name: &str) -> Result<()> {
        self.server.ping(name).await
    }

    /// The libpq environment that points `pg_dump`/`pg_restore` at database `name` of `t`'s
    /// server as the admin role.
    pub fn libpq_env(&self, _t: &Tenant, name: &str) -> Vec<(&'static str, String)> {
        self.server.libpq_env(name)
    }

    /// Where tenant `t`'s application connects.
    pub fn endpoint(&self, _t: &Tenant) -> Endpoint<'_> {
        let (host, port) = self.server.endpoint();
        Endpoint {
            host,
            port,
            sslmode: self.server.sslmode(),
        }
    }
}
