//! `migrate`: the tenant schema's pending migrations, applied to each server's pooled database
//! and to every active siloed database, on every server at once and N at a time per server
//! (`buffer_unordered` per server, the servers' streams merged). A server that cannot be
//! reached fails its own databases at once (named in `unreachable`) and the others go on. Each
//! database is
//! migrated under its own advisory lock (refinery takes none), so two runs at once do each
//! migration once. One failing database does not stop the others. Suspended and deleted silos
//! refuse connections and are skipped: `resume` and `restore` migrate them before reopening.
//! A silo closed while the run is under way (its tenant suspended or deprovisioned after the
//! tenants were listed) is skipped too, not failed: a failure is checked against the tenant's
//! status and its database as they are then.

use std::collections::BTreeMap;
use std::time::Instant;

use anyhow::Result;
use futures_util::stream::{self, StreamExt};
use serde::Serialize;

use super::template::Refreshed;
use super::{pause_point, ControlPlane, Reporter};
use crate::db::dataplane::{self, Mark, Object};
use crate::db::migrate;
use crate::server_name::ServerName;
use crate::tenant::{Status, Tenant};
use crate::tier::Isolation;

/// One database to migrate: where it is, the tenants in it and the application role to grant
/// to.
#[derive(Debug, Clone)]
struct Target {
    server: ServerName,
    database: String,
    role: String,
    slugs: Vec<crate::slug::Slug>,
    isolation: Isolation,
    /// The siloed tenant's id (its mark); unused for the pooled database.
    tenant_id: uuid::Uuid,
}

/// What migrating one database came to. Serialised as its name (`result` in JSON).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// Pending migrations were applied.
    Migrated,
    /// Nothing to do.
    Current,
    /// Migrating it failed (`error` says why); the others went on.
    Failed,
    /// Closed to connections (a suspended or deleted silo): migrated when it is reopened.
    Skipped,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Migrated => "migrated",
            Outcome::Current => "current",
            Outcome::Failed => "failed",
            Outcome::Skipped => "skipped",
        }
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The outcome for one database. JSON field names are a contract.
#[derive(Debug, Clone, Serialize)]
pub struct DatabaseResult {
    pub server: ServerName,
    pub database: String,
    /// The tenant (siloed) or the tenants (pooled) in it.
    pub tenants: Vec<String>,
    pub isolation: Isolation,
    pub result: Outcome,
    pub applied: Vec<String>,
    pub duration_ms: u128,
    pub error: Option<String>,
}

/// Per database: where it is and what it lacks (`migrate --dry-run`, `migrate status`).
#[derive(Debug, Clone, Serialize)]
pub struct DatabaseState {
    pub server: ServerName,
    pub database: String,
    pub tenants: Vec<String>,
    pub isolation: Isolation,
    pub version: Option<i32>,
    pub latest: i32,
    pub behind: bool,
    pub pending: Vec<String>,
    /// Why the state could not be read (a suspended silo refuses connections).
    pub note: Option<String>,
}

/// Why a skipped silo is no worry.
const MIGRATED_LATER: &str = "it is migrated when resumed or restored";

/// Splits the tenants into databases to migrate and silos to skip (with the reason).
fn targets(tenants: &[Tenant]) -> (Vec<Target>, Vec<(Target, String)>) {
    let mut pooled: BTreeMap<(ServerName, String), Target> = BTreeMap::new();
    let mut run = Vec::new();
    let mut skipped = Vec::new();
    for t in tenants {
        match t.isolation {
            Isolation::Pooled => {
                if matches!(t.status, Status::Deleting) {
                    continue;
                }
                pooled
                    .entry((t.server.clone(), t.database.clone()))
                    .or_insert_with(|| Target {
                        server: t.server.clone(),
                        database: t.database.clone(),
                        role: t.role.clone(),
                        slugs: Vec::new(),
                        isolation: Isolation::Pooled,
                        tenant_id: uuid::Uuid::nil(),
                    })
                    .slugs
                    .push(t.slug.clone());
            }
            Isolation::Siloed => {
                let target = Target {
                    server: t.server.clone(),
                    database: t.database.clone(),
                    role: t.role.clone(),
                    slugs: vec![t.slug.clone()],
                    isolation: Isolation::Siloed,
                    tenant_id: t.id,
                };
                match t.status {
                    Status::Active => run.push(target),
                    other => skipped.push((target, format!("tenant is {other}"))),
                }
            }
        }
    }
    let mut all: Vec<Target> = pooled.into_values().collect();
    all.extend(run);
    (all, skipped)
}

/// Migrates one database and grants its application role any new tables; only a database
/// that carries this control plane's mark (a tenant's, or the pooled one).
async fn migrate_one(plane: &ControlPlane, target: &Target) -> Result<Vec<String>> {
    let plane_id = plane.control.plane_id().await?;
    let mark = match target.isolation {
        Isolation::Siloed => Mark::tenant(plane_id, target.tenant_id),
        Isolation::Pooled => Mark::pooled(plane_id),
    };
    if !dataplane::ensure_ours(
        &*plane.fleet.admin(&target.server).await?,
        Object::Database(&target.database),
        &mark,
    )
    .await?
    {
        anyhow::bail!("database `{}` does not exist", target.database);
    }
    let mut client = plane
        .fleet
        .connect(&target.server, &target.database)
        .await?;
    let applied = migrate::tenant(&mut client).await?;
    dataplane::grant_app_access(&client, &target.role).await?;
    Ok(applied)
}

/// Why a silo that failed to migrate is closed now (its tenant is no longer active, or its
/// database refuses connections or is gone), if it is: then it was closed during the run, and
/// it is skipped rather than failed. `None` for the pooled database, and for an open silo.
async fn closed_meanwhile(plane: &ControlPlane, target: &Target) -> Option<String> {
    if target.isolation != Isolation::Siloed {
        return None;
    }
    let slug = target.slugs.first()?;
    let status = match plane.control.find_tenant(slug).await {
        Ok(Some(t)) => t.status,
        Ok(None) => return Some("tenant was purged during the run".to_owned()),
        Err(_) => return None, // cannot tell: report the failure
    };
    if status != Status::Active {
        return Some(format!("tenant became {status} during the run"));
    }
    let admin = plane.fleet.admin(&target.server).await.ok()?;
    match dataplane::accepts_connections(&admin, &target.database).await {
        Ok(Some(false)) => Some("database stopped accepting connections during the run".to_owned()),
        Ok(None) => Some("database was dropped during the run".to_owned()),
        Ok(Some(true)) | Err(_) => None,
    }
}

/// Migrates one target and says how it went; a failure of a silo closed meanwhile is a skip.
async fn migrate_target(plane: &ControlPlane, target: Target) -> DatabaseResult {
    let control = &plane.control;
    let t0 = Instant::now();
    let outcome = async {
        // Grants on the shared database conflict with a concurrent provisioning's.
        let _pooled = match target.isolation {
            Isolation::Pooled => Some(control.lock_pooled(&target.server).await?),
            Isolation::Siloed => None,
        };
        migrate_one(plane, &target).await
    }
    .await;
    let (result, applied, error) = match outcome {
        Ok(a) if a.is_empty() => (Outcome::Current, a, None),
        Ok(a) => (Outcome::Migrated, a, None),
        Err(e) => match closed_meanwhile(plane, &target).await {
            Some(why) => (
                Outcome::Skipped,
                Vec::new(),
                Some(format!("{why}; {MIGRATED_LATER}")),
            ),
            None => (Outcome::Failed, Vec::new(), Some(format!("{e:#}"))),
        },
    };
    DatabaseResult {
        server: target.server.clone(),
        database: target.database.clone(),
        tenants: target.slugs.iter().map(ToString::to_string).collect(),
        isolation: target.isolation,
        result,
        applied,
        duration_ms: t0.elapsed().as_millis(),
        error,
    }
}

/// What `migrate` did: one result per database, and the servers it could not reach (their
/// databases are among the results, failed).
#[derive(Debug)]
pub struct Migrated {
    pub results: Vec<DatabaseResult>,
    pub unreachable: Vec<super::servers::Unreached>,
}

/// `migrate`: every target, `concurrency` at a time on each server, every server at once.
/// The servers are reached first (all at once): the databases of one that cannot be reached
/// fail with that reason without waiting for a connect timeout each. Results in database
/// order.
pub async fn migrate(
    plane: &ControlPlane,
    concurrency: usize,
    reporter: &dyn Reporter,
) -> Result<Migrated> {
    let tenants = plane.control.list_tenants().await?;
    let (run, skipped) = targets(&tenants);
    pause_point(&plane.ctx, reporter, "migrate:listed");
    let total = run.len();
    let mut results = Vec::with_capacity(total + skipped.len());
    let mut per_server: BTreeMap<ServerName, Vec<Target>> = BTreeMap::new();
    for target in run {
        per_server
            .entry(target.server.clone())
            .or_default()
            .push(target);
    }
    let unreachable =
        super::servers::unreachable(plane, per_server.keys().cloned().collect()).await;
    for u in &unreachable {
        reporter.status(&format!(
            "server `{}` is unreachable: its databases are not migrated",
            u.server
        ));
        for target in per_server.remove(&u.server).unwrap_or_default() {
            results.push(DatabaseResult {
                server: target.server,
                database: target.database,
                tenants: target.slugs.iter().map(ToString::to_string).collect(),
                isolation: target.isolation,
                result: Outcome::Failed,
                applied: Vec::new(),
                duration_ms: 0,
                error: Some(format!("server `{}` is unreachable: {}", u.server, u.error)),
            });
        }
    }
    reporter.progress(results.len(), total, "migrating");
    let reached: Vec<ServerName> = per_server.keys().cloned().collect();
    let streams = per_server.into_values().map(|targets| {
        stream::iter(targets)
            .map(|target| migrate_target(plane, target))
            .buffer_unordered(concurrency.max(1))
            .boxed()
    });
    let mut done = stream::select_all(streams);
    while let Some(r) = done.next().await {
        results.push(r);
        reporter.progress(results.len(), total, "migrating");
    }
    for (target, why) in skipped {
        results.push(DatabaseResult {
            server: target.server,
            database: target.database,
            tenants: target.slugs.iter().map(ToString::to_string).collect(),
            isolation: target.isolation,
            result: Outcome::Skipped,
            applied: Vec::new(),
            duration_ms: 0,
            error: Some(format!("{why}; {MIGRATED_LATER}")),
        });
    }
    results.sort_by(|a, b| (&a.database, &a.server).cmp(&(&b.database, &b.server)));
    // The template new silos are copied from follows the tenant databases of its server (it is
    // no tenant's, so it is said on stderr, not among the results).
    for server in reached {
        match super::template::refresh(plane, &server, super::template::Create::No).await {
            Ok(Refreshed::Usable { name, migrated }) if !migrated.is_empty() => {
                reporter.status(&format!(
                    "silo template `{name}` on server `{server}`: applied {}",
                    migrated.join(", ")
                ))
            }
            Ok(Refreshed::Unusable(why)) => {
                reporter.status(&format!("silo template on server `{server}`: {why}"))
            }
            Ok(_) => {}
            Err(e) => reporter.warning(&format!(
                "the silo template on server `{server}` could not be migrated ({e:#}); new silos are created there without it until it is"
            )),
        }
    }
    Ok(Migrated {
        results,
        unreachable,
    })
}

/// `migrate --dry-run` and `migrate status`: what each database has and lacks (and, on
/// stderr, where the silo template stands). Reads only.
pub async fn states(plane: &ControlPlane, reporter: &dyn Reporter) -> Result<Vec<DatabaseState>> {
    let tenants = plane.control.list_tenants().await?;
    let servers: std::collections::BTreeSet<ServerName> =
        tenants.iter().map(|t| t.server.clone()).collect();
    for server in &servers {
        // A server that cannot be reached is said below, among its databases' states.
        let Ok(Some(t)) = super::template::view(plane, server).await else {
            continue;
        };
        reporter.status(&match t.version {
            Some(v) if t.current => format!(
                "silo template `{}` on server `{server}`: V{v}, up to date",
                t.database
            ),
            Some(v) => format!(
                "silo template `{}` on server `{server}`: V{v}{}, pending up to V{}",
                t.database,
                if t.closed { "" } else { " (takes connections)" },
                t.latest
            ),
            None => format!(
                "`{}` on server `{server}` is not this control plane's silo template",
                t.database
            ),
        });
    }
    let (run, skipped) = targets(&tenants);
    let latest = migrate::tenant_latest();
    // A server that cannot be reached is tried once, not once per database.
    let mut servers: Vec<ServerName> = run.iter().map(|t| t.server.clone()).collect();
    servers.sort();
    servers.dedup();
    let down = super::servers::unreachable(plane, servers).await;
    let mut out = Vec::new();
    for (target, note) in run
        .into_iter()
        .map(|t| (t, None))
        .chain(skipped.into_iter().map(|(t, why)| (t, Some(why))))
    {
        let unreached = down.iter().find(|u| u.server == target.server);
        let state = match (&note, unreached) {
            (Some(_), _) => None,
            (None, Some(u)) => Some(Err(anyhow::anyhow!(
                "server `{}` is unreachable: {}",
                u.server,
                u.error
            ))),
            (None, None) => match plane.fleet.connect(&target.server, &target.database).await {
                Ok(mut c) => Some(migrate::tenant_state(&mut c).await),
                Err(e) => Some(Err(e)),
            },
        };
        let (version, pending, note) = match state {
            Some(Ok((v, p))) => (Some(v), p, None),
            Some(Err(e)) => (None, Vec::new(), Some(format!("{e:#}"))),
            None => (
                None,
                Vec::new(),
                note.map(|why| format!("{why}: not readable until resumed")),
            ),
        };
        out.push(DatabaseState {
            server: target.server,
            database: target.database,
            tenants: target.slugs.iter().map(ToString::to_string).collect(),
            isolation: target.isolation,
            behind: version.is_some_and(|v| v < latest),
            version,
            latest,
            pending,
            note,
        });
    }
    out.sort_by(|a, b| (&a.database, &a.server).cmp(&(&b.database, &b.server)));
    Ok(out)
}
