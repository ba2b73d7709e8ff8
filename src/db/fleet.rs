//! `Fleet`: the one place that hands out connections to the data plane, the admin
//! connections (for `CREATE DATABASE`, `CREATE ROLE`, `GRANT`, the catalogs) and connections to
//! a tenant's database.
//!
//! Today the fleet is one server, the control database's. Callers name what they want to reach
//! (a tenant, or a database with the tenant it belongs to) and never a server, so that placing
//! tenants on several servers (issue 11) changes how this file resolves a tenant to its server
//! and not its callers. The admin connections come from a small pool of their own: the control
//! database keeps its pool for its own rows.

use anyhow::{Context, Result};
use deadpool_postgres::{Object, Pool};
use tokio_postgres::Client;

use super::Server;
use crate::conninfo::SslMode;
use crate::tenant::Tenant;

/// How many admin connections may be open at once (the statements on them are short; the
/// worker pools of `migrate` and `usage refresh` take one each only for a moment).
const ADMIN_POOL_SIZE: usize = 4;

/// Cheap to clone: the pool and the server settings are shared.
#[derive(Clone)]
pub struct Fleet {
    server: Server,
    admin: Pool,
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
        Ok(Fleet { server, admin })
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

    /// A connection to tenant `t`'s database (the shared one, for a pooled tenant).
    pub async fn tenant_db(&self, t: &Tenant) -> Result<Client> {
        self.server.connect(&t.database).await
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
