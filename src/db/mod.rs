//! Every line of SQL and every connection pool lives under here.
//!
//! - `Server`: how to reach the PostgreSQL server, and connections to any of its databases.
//! - `billing`: billing runs, invoice facts, invoices written exactly once.
//! - `control`: the control database (tenants, journal, quotas, audit log).
//! - `dataplane`: tenant databases and roles: creation, access, the owner user.
//! - `features`: feature entitlements in the control database and in tenant databases.
//! - `usage`: metered events, monthly totals, measurements, bulk import.
//! - `migrate`: the refinery migrations of both schemas, each run under an advisory lock.
//! - `lifecycle`: status transitions, purge of control rows, the audit log.
//! - `ident`: the one place identifiers are quoted.

pub mod billing;
pub mod control;
pub mod dataplane;
pub mod features;
pub mod ident;
pub mod lifecycle;
pub mod migrate;
pub mod usage;

use anyhow::{Context, Result};
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, NoTls};

/// The server tenantctl manages, and how it is shown in messages (never with a password).
#[derive(Clone)]
pub struct Server {
    base: tokio_postgres::Config,
    shown: String,
}

impl Server {
    pub fn new(base: tokio_postgres::Config, shown: String) -> Server {
        Server { base, shown }
    }

    /// The control database: the one the configured URL names.
    pub fn control_database(&self) -> &str {
        self.base
            .get_dbname()
            .unwrap_or(crate::config::DEFAULT_CONTROL_DB)
    }

    pub fn shown(&self) -> &str {
        &self.shown
    }

    /// The same server, another database.
    pub fn config_for(&self, dbname: &str) -> tokio_postgres::Config {
        let mut c = self.base.clone();
        c.dbname(dbname);
        c
    }

    /// A plain connection, for a lock holder or a short job in one database.
    pub async fn connect(&self, dbname: &str) -> Result<Client> {
        let (client, conn) = self
            .config_for(dbname)
            .connect(NoTls)
            .await
            .with_context(|| format!("connecting to database `{dbname}` on {}", self.shown))?;
        tokio::spawn(async move {
            // The error surfaces on the client's next call; nothing to do here.
            let _ = conn.await;
        });
        Ok(client)
    }

    /// A small pool for one database. `Clean` recycling resets session state (such as a
    /// leaked `app.tenant_id`) between checkouts.
    pub fn pool(&self, dbname: &str, size: usize) -> Result<Pool> {
        let mgr = Manager::from_config(
            self.config_for(dbname),
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Clean,
            },
        );
        Pool::builder(mgr)
            .max_size(size)
            .build()
            .with_context(|| format!("building a connection pool for `{dbname}`"))
    }
}

/// True for the errors two concurrent `CREATE DATABASE`/`CREATE ROLE` of one name produce:
/// the loser sees 42P04/42710, or 23505 when both passed the existence check.
pub(crate) fn already_exists(err: &tokio_postgres::Error) -> bool {
    matches!(
        err.code(),
        Some(c) if *c == SqlState::DUPLICATE_DATABASE
            || *c == SqlState::DUPLICATE_OBJECT
            || *c == SqlState::UNIQUE_VIOLATION
    )
}

/// True when the database named in a connection attempt does not exist.
pub(crate) fn database_missing(err: &anyhow::Error) -> bool {
    err.chain()
        .filter_map(|e| e.downcast_ref::<tokio_postgres::Error>())
        .any(|e| e.code() == Some(&SqlState::INVALID_CATALOG_NAME))
}
