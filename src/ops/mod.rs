//! The work behind the commands. Nothing here parses arguments or prints: progress leaves
//! through the `Reporter` trait, results are returned as `#[derive(Serialize)]` views.
//!
//! - `provision`: the numbered provisioning steps.
//! - `bulk`: `provision --file`, many tenants through `provision`, N at a time.
//! - `lifecycle`: suspend, resume, deprovision, restore, purge, set-tier.
//! - `moves`: a tenant's data moved to another database (`set-tier` across isolation models).
//! - `migrate`: the tenant schema across every tenant database.
//! - `audit`: reading the audit log.
//! - `billing`: billing runs and invoices.
//! - `report`: revenue (MRR, ARR, ARPA, movement) and margin, from invoices and costs.
//! - `features`: feature entitlements (`features show|grant|revoke|reset|check`).
//! - `hooks`: running the lifecycle hooks of `[hooks]`, each success recorded per run.
//! - `quota`: limits against usage (`quota show|set|reset|check`).
//! - `usage`: metered events and measured levels (`usage record|import|refresh`).
//! - `tenants`: reading tenants (`list`, `show`).
//! - `local`: the local cluster (`local status`, `local stop`).
//! - `ownership`: the marks on tenant databases and roles, and `adopt`.
//! - `doctor`: `init` (the control database on an operator's server) and `doctor`.
//! - `storage`: the access policy of a tenant's buckets (`storage policy`).
//! - `backup`: per-tenant backups into the `-backups` bucket, and restoring them.

pub mod audit;
pub mod backup;
pub mod billing;
pub mod bulk;
pub mod credentials;
pub mod doctor;
pub mod features;
pub mod hooks;
pub mod lifecycle;
pub mod local;
pub mod metrics;
pub mod migrate;
pub mod moves;
pub mod ownership;
pub mod provision;
pub mod quota;
pub mod report;
pub mod storage;
pub mod tenants;
pub mod usage;

use std::time::Duration;

use anyhow::Result;

use crate::cluster::LocalCluster;
use crate::config::{DatabaseTarget, Settings};
use crate::db::control::ControlDb;
use crate::db::{Fleet, Server};
use crate::storage::BucketStore;

/// How a step ended, for the reporter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StepResult {
    Done,
    AlreadyDone,
    Failed,
}

/// Where operations report progress. Implemented by `progress.rs` for a terminal, and by
/// silent reporters in benchmarks.
pub trait Reporter: Sync {
    fn step_started(&self, step: usize, total: usize, name: &str);
    fn step_finished(
        &self,
        step: usize,
        total: usize,
        name: &str,
        result: StepResult,
        elapsed: Duration,
    );
    /// A status line for people (which server, what was skipped).
    fn status(&self, message: &str);
    /// A secret shown exactly once; it must reach the user even in quiet mode.
    fn secret(&self, message: &str);
    /// A warning about something that may cost data or money (a purge dropping unbilled
    /// usage); like errors it reaches the user even in quiet mode.
    fn warning(&self, message: &str);
    /// `done` of `total` items of a long run (called first with 0, last with `total`).
    fn progress(&self, done: usize, total: usize, what: &str);
}

/// A reporter that reports nothing (benchmarks, library callers).
pub struct Silent;

impl Reporter for Silent {
    fn step_started(&self, _: usize, _: usize, _: &str) {}
    fn step_finished(&self, _: usize, _: usize, _: &str, _: StepResult, _: Duration) {}
    fn status(&self, _: &str) {}
    fn secret(&self, _: &str) {}
    fn warning(&self, _: &str) {}
    fn progress(&self, _: usize, _: usize, _: &str) {}
}

/// Test builds only (`Settings::failpoint` is never set in a release build): abort, as
/// `kill -9` would, at the named point, so the fault tests can crash a run deterministically.
pub(crate) fn failpoint(settings: &Settings, point: &str) {
    if settings.failpoint.as_deref() == Some(point) {
        std::process::abort();
    }
}

/// Test builds only: with `TENANTCTL_FAILPOINT=pause:<point>`, stop at the named point, say so
/// on stderr and wait for a line on stdin, so that a test can change the world at exactly that
/// moment (suspend a tenant while `migrate` runs) and then let the run go on.
pub(crate) fn pause_point(settings: &Settings, reporter: &dyn Reporter, point: &str) {
    let armed = settings
        .failpoint
        .as_deref()
        .and_then(|f| f.strip_prefix("pause:"));
    if armed == Some(point) {
        reporter.status(&format!("failpoint {point}: paused until a line on stdin"));
        let mut line = String::new();
        let _ = std::io::stdin().read_line(&mut line);
    }
}

/// What the operations work on: the settings, the control database, the fleet of data-plane
/// servers (the only way to a tenant's database), the bucket store.
pub struct ControlPlane {
    pub settings: Settings,
    pub control: ControlDb,
    pub fleet: Fleet,
    pub store: Box<dyn BucketStore>,
}

impl ControlPlane {
    /// Connects to the control database and applies pending migrations, starting the local
    /// cluster (and creating its control database) first when no URL is configured. On an
    /// operator's server the control database must exist (`tenantctl init`).
    pub async fn open(settings: Settings, reporter: &dyn Reporter) -> Result<ControlPlane> {
        let server = server(&settings, reporter, true)?.expect("started on demand");
        let fleet = Fleet::new(server.clone())?;
        let control = ControlDb::open(server).await?;
        let store = crate::storage::open(&settings)?;
        Ok(ControlPlane {
            settings,
            control,
            fleet,
            store,
        })
    }

    /// Like `open`, but changes nothing anywhere: `None` when there is no control database yet
    /// (or the local cluster is not running).
    pub async fn open_existing(
        settings: Settings,
        reporter: &dyn Reporter,
    ) -> Result<Option<ControlPlane>> {
        let Some(server) = server(&settings, reporter, false)? else {
            return Ok(None);
        };
        let fleet = Fleet::new(server.clone())?;
        let Some(control) = ControlDb::open_existing(server).await? else {
            return Ok(None);
        };
        let store = crate::storage::open(&settings)?;
        Ok(Some(ControlPlane {
            settings,
            control,
            fleet,
            store,
        }))
    }
}

impl ControlPlane {
    /// For commands that only read (`list`, `show`, `audit`, `invoices`, `quota show|check`,
    /// `migrate status` and the dry runs of `bill` and `migrate`): `None` when there is no
    /// control database yet, which such a command reports as an empty result or "not found".
    /// It never creates anything: not the control database, not the local cluster (one that
    /// was initialised is started, as any command does). `migrate_schema`: bring an existing
    /// control database up to date as `open` would; dry runs pass false and change nothing.
    pub async fn open_read_only(
        settings: Settings,
        reporter: &dyn Reporter,
        migrate_schema: bool,
    ) -> Result<Option<ControlPlane>> {
        if let DatabaseTarget::Local = &settings.database {
            let cluster = LocalCluster::new(&settings.data_dir, settings.pg_bindir.as_deref());
            if !cluster.is_initialized() {
                return Ok(None);
            }
        }
        let server = server(&settings, reporter, true)?.expect("started on demand");
        let fleet = Fleet::new(server.clone())?;
        let control = if migrate_schema {
            ControlDb::open_if_exists(server).await?
        } else {
            ControlDb::open_existing(server).await?
        };
        let Some(control) = control else {
            return Ok(None);
        };
        let store = crate::storage::open(&settings)?;
        Ok(Some(ControlPlane {
            settings,
            control,
            fleet,
            store,
        }))
    }
}

/// The server to use; for the local cluster, started if `start` (else `None` when it is not
/// running).
pub(crate) fn server(
    settings: &Settings,
    reporter: &dyn Reporter,
    start: bool,
) -> Result<Option<Server>> {
    match &settings.database {
        DatabaseTarget::Url(params) => Ok(Some(Server::external(params)?)),
        DatabaseTarget::Local => {
            let cluster = LocalCluster::new(&settings.data_dir, settings.pg_bindir.as_deref());
            if start {
                // Said when tenantctl starts the server, not on every command that uses it.
                if cluster.ensure_running()? {
                    reporter.status(&format!(
                        "started the local PostgreSQL cluster in {} (socket {}; set --database-url to use another server)",
                        cluster.data_dir().display(),
                        cluster.socket_dir().display()
                    ));
                }
            } else if cluster.running_pid()?.is_none() {
                return Ok(None);
            }
            let config = cluster.connect_config(crate::config::DEFAULT_CONTROL_DB);
            let shown = format!("the local cluster in {}", cluster.data_dir().display());
            Ok(Some(Server::local(config, shown)))
        }
    }
}
