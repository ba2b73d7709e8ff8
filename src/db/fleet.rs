//! `Fleet`: the one place that hands out connections to the data plane — the admin connections
//! (for `CREATE DATABASE`, `CREATE ROLE`, `GRANT`, the catalogs) and connections to tenant
//! databases — on whichever of the fleet's servers holds them.
//!
//! Callers name a tenant (its record says its server) or a server by name; this file resolves
//! the name to a connection. The control database's own server (`main`, `control` in the
//! registry) is reached through the connection tenantctl is configured with; every other
//! server through its stored URL (no password) and the password `config::ServerAccess` finds
//! for it (`[servers.NAME]`, `.pgpass`). The registry is read when a server is first needed,
//! and each server's admin pool (small, its own) is opened then too: a command that touches
//! one server never connects to the others, and one that cannot reach a server fails only
//! what needs that server.

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::{Context, Result};
use deadpool_postgres::{Object, Pool};
use tokio_postgres::Client;

use super::control::ControlDb;
use super::Server;
use crate::config::ServerAccess;
use crate::conninfo::SslMode;
use crate::error::Failure;
use crate::server_name::ServerName;
use crate::tenant::Tenant;
use crate::tier::Isolation;

/// How many admin connections may be open at once per server (the statements on them are
/// short; the worker pools of `migrate` and `usage refresh` take one each only for a moment).
const ADMIN_POOL_SIZE: usize = 4;

/// How many connections to a shared pooled database may be open at once: one per tenant in
/// flight (a bulk run has at most 20).
const SHARED_POOL_SIZE: usize = 20;

/// Cheap to clone: the pools and the server settings are shared.
#[derive(Clone)]
pub struct Fleet {
    inner: Arc<Inner>,
}

struct Inner {
    /// The control database's own server, as configured.
    control_server: Server,
    control: ControlDb,
    access: ServerAccess,
    members: std::sync::Mutex<HashMap<ServerName, Arc<Member>>>,
}

/// One server, resolved: how to reach it and its admin pool.
struct Member {
    server: Server,
    admin: Pool,
    /// Per shared pooled database of this server, a pool (`Clean` recycling: a session's
    /// `app.tenant_id` must not reach the next tenant), made on first use: the tenants of one
    /// database reuse warm connections instead of paying a server process and cold catalog
    /// caches each.
    shared: std::sync::Mutex<HashMap<String, Pool>>,
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
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
    pub sslmode: SslMode,
}

impl Fleet {
    /// The fleet whose registry is in `control`; `control_server` is the configured connection
    /// to the control database's server. Nothing connects until a server is needed.
    pub fn new(control_server: Server, control: ControlDb, access: ServerAccess) -> Fleet {
        Fleet {
            inner: Arc::new(Inner {
                control_server,
                control,
                access,
                members: std::sync::Mutex::new(HashMap::new()),
            }),
        }
    }

    /// The resolved servers (a poisoned lock is still a usable map: entries are only added).
    fn members(&self) -> std::sync::MutexGuard<'_, HashMap<ServerName, Arc<Member>>> {
        self.inner
            .members
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Server `name`, resolved (and its admin pool built) on first use. A name the registry
    /// lacks is refused (exit 3).
    async fn member(&self, name: &ServerName) -> Result<Arc<Member>> {
        if let Some(m) = self.members().get(name) {
            return Ok(m.clone());
        }
        // Resolved without holding the map's lock (it reads the control database); two tasks
        // that race here build the same member, and the first one inserted is kept.
        let row = self.inner.control.find_server(name).await?.ok_or_else(|| {
            Failure::Refused(format!(
                "no server `{name}` in the fleet; `tenantctl server list` shows the servers"
            ))
        })?;
        let (server, admin_db) = match &row.url {
            None => {
                let s = self.inner.control_server.clone();
                let db = s.control_database().to_owned();
                (s, db)
            }
            Some(url) => {
                let params = self.inner.access.params(name.as_str(), url)?;
                let db = params.dbname.clone();
                (Server::external(&params)?, db)
            }
        };
        let admin = server.pool(&admin_db, ADMIN_POOL_SIZE)?;
        let m = Arc::new(Member {
            server,
            admin,
            shared: std::sync::Mutex::new(HashMap::new()),
        });
        Ok(self.members().entry(name.clone()).or_insert(m).clone())
    }

    /// A URL given to `server add`, checked (no password) and resolved as the fleet will resolve
    /// it: the string to store and the parameters to connect with (`ServerAccess::new_server`).
    pub fn new_server(
        &self,
        name: &str,
        url: &str,
    ) -> Result<(String, crate::conninfo::ConnParams), Failure> {
        self.inner.access.new_server(name, url)
    }

    /// How server `name` is shown in messages (a URL without the password).
    pub async fn shown(&self, name: &ServerName) -> Result<String> {
        Ok(self.member(name).await?.server.shown().to_owned())
    }

    /// An admin connection to server `name`, for statements on cluster-wide objects
    /// (databases, roles) and the catalogs. Its failure names the server.
    pub async fn admin(&self, name: &ServerName) -> Result<Object> {
        let m = self.member(name).await?;
        m.server
            .first_pooled(&m.admin, m.server.control_database())
            .await
            .with_context(|| format!("reaching server `{name}` as tenantctl's admin role"))
    }

    /// An admin connection to the server that holds tenant `t`.
    pub async fn admin_for(&self, t: &Tenant) -> Result<Object> {
        self.admin(&t.server).await
    }

    /// A connection to tenant `t`'s database (the shared one on its server, for a pooled
    /// tenant).
    pub async fn tenant_db(&self, t: &Tenant) -> Result<TenantConn> {
        if t.isolation == Isolation::Siloed {
            return Ok(TenantConn::Own(self.connect(&t.server, &t.database).await?));
        }
        let m = self.member(&t.server).await?;
        let pool = {
            let mut pools = m
                .shared
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            match pools.get(&t.database) {
                Some(p) => p.clone(),
                None => {
                    let p = m.server.pool_resetting(&t.database, SHARED_POOL_SIZE)?;
                    pools.insert(t.database.clone(), p.clone());
                    p
                }
            }
        };
        let conn = m
            .server
            .first_pooled(&pool, &t.database)
            .await
            .with_context(|| format!("on server `{}`", t.server))?;
        Ok(TenantConn::Shared(conn))
    }

    /// A connection to a data-plane database of `t`'s server that is not the tenant's own
    /// database: a staging database of a restore.
    pub async fn database_of(&self, t: &Tenant, name: &str) -> Result<Client> {
        self.connect(&t.server, name).await
    }

    /// A plain connection to database `database` of server `server`, as tenantctl's admin
    /// role (`migrate`'s targets, a move's target database).
    pub async fn connect(&self, server: &ServerName, database: &str) -> Result<Client> {
        let m = self.member(server).await?;
        m.server
            .connect(database)
            .await
            .with_context(|| format!("on server `{server}`"))
    }

    /// Whether database `database` of server `server` answers a query (`doctor`).
    pub async fn ping(&self, server: &ServerName, database: &str) -> Result<()> {
        let m = self.member(server).await?;
        m.server
            .ping(database)
            .await
            .with_context(|| format!("on server `{server}`"))
    }

    /// The libpq environment that points `pg_dump`/`pg_restore` at database `database` of
    /// server `server` as the admin role (its password in `PGPASSWORD`, never on a command
    /// line).
    pub async fn libpq_env(
        &self,
        server: &ServerName,
        database: &str,
    ) -> Result<Vec<(&'static str, String)>> {
        Ok(self.member(server).await?.server.libpq_env(database))
    }

    /// Where an application connects to server `server`.
    pub async fn endpoint(&self, server: &ServerName) -> Result<Endpoint> {
        let m = self.member(server).await?;
        let (host, port) = m.server.endpoint();
        Ok(Endpoint {
            host: host.to_owned(),
            port,
            sslmode: m.server.sslmode(),
        })
    }

    /// A connection to a server that is not registered yet (`server add` checks it first), to
    /// the database its parameters name; and how the server is shown in messages.
    pub async fn connect_unregistered(
        &self,
        params: &crate::conninfo::ConnParams,
    ) -> Result<(String, Client)> {
        let server = Server::external(params)?;
        let client = server.connect(&params.dbname).await?;
        Ok((server.shown().to_owned(), client))
    }

    /// Whether server `server` is reachable now (an admin connection): `Err` says why not.
    pub async fn reach(&self, server: &ServerName) -> Result<()> {
        drop(self.admin(server).await?);
        Ok(())
    }
}
