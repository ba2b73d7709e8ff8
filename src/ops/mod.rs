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
//! - `routes`: where active tenants' applications connect (`route`, `routes` for PgBouncer).
//! - `servers`: the fleet's servers (`server add|list|drain|undrain|set|remove`), and `place`,
//!   where a new tenant goes.
//! - `storage`: the access policy of a tenant's buckets (`storage policy`).
//! - `backup`: per-tenant backups into the `-backups` bucket, and restoring them.
//! - `template`: the siloed tenants' template database, which provisioning copies.

pub mod audit;
pub mod backup;
pub mod billing;
pub mod bulk;
mod context;
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
pub mod routes;
pub mod servers;
pub mod storage;
pub mod template;
pub mod tenants;
pub mod usage;

use std::time::Duration;

use anyhow::Result;

use crate::cluster::LocalCluster;
use crate::config::DatabaseTarget;
use crate::db::control::{ControlDb, Opened, Unusable};
use crate::db::{Fleet, Server};
use crate::error::Failure;
use crate::excerpt::excerpt;
use crate::storage::BucketStore;

pub use context::{Context, Opening};

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

/// Test builds only (`Context::failpoint` is never set in a release build): abort, as
/// `kill -9` would, at the named point, so the fault tests can crash a run deterministically.
pub(crate) fn failpoint(ctx: &Context, point: &str) {
    if ctx.failpoint.as_deref() == Some(point) {
        std::process::abort();
    }
}

/// Test builds only: with `TENANTCTL_FAILPOINT=error-once:<point>`, the first time the process
/// reaches the named point it fails there with an error (a transient failure: a lost
/// connection, a lock timeout), and every later time it goes on; with `error:<point>`, it
/// fails there every time (a lasting failure).
pub(crate) fn error_at(ctx: &Context, point: &str) -> Result<()> {
    static FIRED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    let Some(f) = ctx.failpoint.as_deref() else {
        return Ok(());
    };
    if f.strip_prefix("error:") == Some(point) {
        anyhow::bail!("failpoint {point}: a lasting error");
    }
    if f.strip_prefix("error-once:") == Some(point)
        && !FIRED.swap(true, std::sync::atomic::Ordering::SeqCst)
    {
        anyhow::bail!("failpoint {point}: a transient error");
    }
    Ok(())
}

/// Test builds only: with `TENANTCTL_FAILPOINT=pause:<point>`, stop at the named point, say so
/// on stderr and wait for a line on stdin, so that a test can change the world at exactly that
/// moment (suspend a tenant while `migrate` runs) and then let the run go on.
pub(crate) fn pause_point(ctx: &Context, reporter: &dyn Reporter, point: &str) {
    let armed = ctx
        .failpoint
        .as_deref()
        .and_then(|f| f.strip_prefix("pause:"));
    if armed == Some(point) {
        reporter.status(&format!("failpoint {point}: paused until a line on stdin"));
        let mut line = String::new();
        let _ = std::io::stdin().read_line(&mut line);
    }
}

/// What the operations work on: their context, the control database, the fleet of data-plane
/// servers (the only way to a tenant's database), the bucket store.
pub struct ControlPlane {
    pub ctx: Context,
    pub control: ControlDb,
    pub fleet: Fleet,
    pub store: Box<dyn BucketStore>,
    /// Per server, the template database silos are copied from, once `template::for_copy`
    /// decided it (`None` inside: none can be used there).
    pub template: Templates,
}

/// `ControlPlane::template`: one cell per server, made on first use.
pub type Templates = std::sync::Mutex<
    std::collections::HashMap<crate::server_name::ServerName, std::sync::Arc<template::Cell>>,
>;

impl ControlPlane {
    /// Connects to the control database and applies pending migrations, starting the local
    /// cluster (and creating its control database) first when no URL is configured. On an
    /// operator's server the control database must exist (`tenantctl init`).
    /// A command passes its `Settings`, which convert into an `Opening` (`commands/mod.rs`).
    pub async fn open(
        opening: impl Into<Opening>,
        reporter: &dyn Reporter,
    ) -> Result<ControlPlane> {
        let opening = opening.into();
        let server = server(&opening, reporter, true)?.expect("started on demand");
        let control = usable(&server, ControlDb::open(server.clone()).await?)?;
        ControlPlane::assemble(opening, server, control)
    }

    /// Like `open`, but changes nothing anywhere: `None` when there is no control database yet
    /// (or the local cluster is not running).
    pub async fn open_existing(
        opening: impl Into<Opening>,
        reporter: &dyn Reporter,
    ) -> Result<Option<ControlPlane>> {
        let opening = opening.into();
        let Some(server) = server(&opening, reporter, false)? else {
            return Ok(None);
        };
        let Some(control) = usable(&server, ControlDb::open_existing(server.clone()).await?)?
        else {
            return Ok(None);
        };
        ControlPlane::assemble(opening, server, control).map(Some)
    }

    /// The plane around an opened control database: the fleet of `server` and the bucket store.
    fn assemble(opening: Opening, server: Server, control: ControlDb) -> Result<ControlPlane> {
        Ok(ControlPlane {
            fleet: Fleet::new(server, control.clone(), opening.server_access.clone()),
            store: store(&opening)?,
            ctx: opening.ctx,
            control,
            template: Templates::default(),
        })
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
        opening: impl Into<Opening>,
        reporter: &dyn Reporter,
        migrate_schema: bool,
    ) -> Result<Option<ControlPlane>> {
        let opening = opening.into();
        if let DatabaseTarget::Local = &opening.database {
            if !local_cluster(&opening.ctx).is_initialized() {
                return Ok(None);
            }
        }
        let server = server(&opening, reporter, true)?.expect("started on demand");
        let control = if migrate_schema {
            ControlDb::open_if_exists(server.clone()).await?
        } else {
            ControlDb::open_existing(server.clone()).await?
        };
        let Some(control) = usable(&server, control)? else {
            return Ok(None);
        };
        ControlPlane::assemble(opening, server, control).map(Some)
    }
}

/// What a control database that cannot be used means to the caller: bad input that names
/// `tenantctl init` when it is missing or has no control schema (nothing was changed; the
/// operator named the wrong database or has not run `init`), a refusal (exit 3) when its schema
/// is newer than this binary or the database is someone else's.
pub(crate) fn unusable(server: &Server, why: Unusable) -> Failure {
    let name = excerpt(server.control_database());
    match why {
        Unusable::Missing => Failure::BadInput(format!(
            "control database `{name}` does not exist on {}: run `tenantctl init` to create it",
            server.shown()
        )),
        Unusable::NoSchema => Failure::BadInput(format!(
            "database `{name}` on {} has no tenantctl control schema: run `tenantctl init` to set it up there, or name the right database",
            server.shown()
        )),
        Unusable::Newer { version, known } => Failure::Refused(format!(
            "the control schema is at version {version}, newer than this tenantctl knows ({known}): upgrade tenantctl"
        )),
        Unusable::Foreign { relations } => Failure::Refused(format!(
            "database `{name}` already holds {relations} table(s) or other relation(s) that are not \
             tenantctl's: name a new or empty database for the control plane (`tenantctl` if \
             none is named; check TENANTCTL_DATABASE_URL and PGDATABASE)"
        )),
    }
}

/// `db`'s answer on opening `server`'s control database, decided.
pub(crate) fn usable<T>(server: &Server, opened: Opened<T>) -> Result<T, Failure> {
    opened.map_err(|why| unusable(server, why))
}

/// The server to use; for the local cluster, started if `start` (else `None` when it is not
/// running).
pub(crate) fn server(
    opening: &Opening,
    reporter: &dyn Reporter,
    start: bool,
) -> Result<Option<Server>> {
    match &opening.database {
        DatabaseTarget::Url(params) => Ok(Some(Server::external(params)?)),
        DatabaseTarget::Local => {
            let cluster = local_cluster(&opening.ctx);
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

/// The local cluster under the data directory (whether or not it exists).
pub(crate) fn local_cluster(ctx: &Context) -> LocalCluster {
    LocalCluster::new(&ctx.data_dir, ctx.pg_bindir.as_deref())
}

/// The bucket store the opening names.
fn store(opening: &Opening) -> Result<Box<dyn BucketStore>> {
    crate::storage::open(
        &opening.storage,
        &opening.ctx.storage_root,
        opening.ctx.failpoint.as_deref(),
    )
}
