//! `Context`: the part of the configuration the operations read, and `Opening`: what it takes
//! to open the control plane besides. `commands/` builds both from `Settings` (the `From`
//! impls in `commands/mod.rs`); `ops` never sees `Settings`, so it cannot depend on how a result
//! is printed (`--output`, `--quiet`) or on warnings meant for the terminal.

use std::ffi::OsString;
use std::path::PathBuf;

use crate::config::{DatabaseTarget, ServerAccess, StorageBackend};
use crate::error::Failure;
use crate::hook::Hooks;
use crate::tenant::Naming;
use crate::tier::Tiers;

/// What operations read of the configuration. The fields keep the names they have in
/// `Settings` (see there for where each comes from).
#[derive(Clone, Debug)]
pub struct Context {
    /// Who is recorded in the audit log.
    pub actor: String,
    /// How slugs become database and role names.
    pub naming: Naming,
    /// Days a deprovisioned tenant is kept before `purge --expired`.
    pub retention_days: i32,
    /// `None`: the built-in tier table.
    pub tiers_path: Option<PathBuf>,
    /// The local cluster's directory.
    pub data_dir: PathBuf,
    /// PostgreSQL's binaries (`pg_dump`, `pg_restore`, the local cluster's server).
    pub pg_bindir: Option<PathBuf>,
    /// Where local buckets live.
    pub storage_root: PathBuf,
    /// `[hooks]`: the commands run at lifecycle events.
    pub hooks: Hooks,
    /// The directory hooks run in.
    pub hooks_dir: PathBuf,
    /// The environment a hook inherits (without secrets).
    pub hook_env: Vec<(OsString, OsString)>,
    /// Invoices written per transaction by `bill`.
    pub bill_batch: usize,
    /// Debug builds only: the point at which to crash or pause on purpose, for tests.
    pub failpoint: Option<String>,
}

impl Context {
    /// The tier table: the configured file, or the built-in one.
    pub fn load_tiers(&self) -> Result<Tiers, Failure> {
        Tiers::configured(self.tiers_path.as_deref())
    }
}

/// What `ControlPlane::open` needs: the context the operations keep, and where the control
/// database and the buckets are, which only opening reads. The connection parameters (with
/// their password) stay here and do not travel with the context.
#[derive(Clone, Debug)]
pub struct Opening {
    pub ctx: Context,
    pub database: DatabaseTarget,
    pub storage: StorageBackend,
    /// How the fleet's other servers get their passwords (`[servers.NAME]`, `.pgpass`); handed
    /// to the `Fleet`, never to the context.
    pub server_access: ServerAccess,
}
