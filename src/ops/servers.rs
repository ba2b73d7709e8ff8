//! The fleet of servers: `server add|list|drain|undrain|set|remove`, and `place`, where a new
//! tenant goes (the rule is `placement::choose`; this reads the servers and their load).
//!
//! A server is an ordinary PostgreSQL server registered in the control database by name, with
//! its connection string stored without a password (`config::ServerAccess` finds the password:
//! `[servers.NAME]` in tenantctl.toml, else `.pgpass`). The control database's own server is
//! registered as `main` by control migration V17 and reached through the configured
//! connection; it cannot be removed.

use anyhow::Result;
use futures_util::future::join_all;
use serde::Serialize;

use super::{ControlPlane, Reporter};
use crate::db::servers::{self as registry, Load, NewServer, ServerRow};
use crate::db::{dataplane, doctor};
use crate::error::Failure;
use crate::excerpt::excerpt;
use crate::placement;
use crate::region::Region;
use crate::server_name::ServerName;
use crate::tier::Isolation;

/// The capacity (siloed tenants) of a server added without `--capacity`: low thousands of
/// databases per server is what PostgreSQL handles well (POSTGRES-NOTES: ~8 MiB and ~300 files
/// per database, idle autovacuum grows with them).
pub const DEFAULT_CAPACITY: i64 = 2000;
/// The largest capacity accepted (the table's CHECK).
pub const MAX_CAPACITY: i64 = 1_000_000;

/// Where a new tenant of `tier` (of `isolation`) goes: `requested` if it can take it, else
/// the placement rule (`placement`), among the servers of `region` when one is given.
/// Refused (exit 3) when no server can take it. Reads only;
/// a caller that then records the tenant holds `plane.control.lock_placement()` from before
/// this call until the tenant's row names the server, so that two placements never both take
/// a server's last place.
pub async fn place(
    plane: &ControlPlane,
    tier: &str,
    isolation: Isolation,
    requested: Option<&ServerName>,
    region: Option<&Region>,
) -> Result<ServerName> {
    let candidates: Vec<placement::Candidate> = plane
        .control
        .server_loads()
        .await?
        .iter()
        .map(|(row, load)| row.candidate(*load))
        .collect();
    Ok(
        placement::choose(&candidates, tier, isolation, requested, region)?
            .name
            .clone(),
    )
}

/// The region of `server` (`None`: it has none, or it is not registered): a tenant's region
/// is its server's.
pub async fn region_of(plane: &ControlPlane, server: &ServerName) -> Result<Option<Region>> {
    Ok(plane
        .control
        .find_server(server)
        .await?
        .and_then(|s| s.region))
}

/// One server as `server list` and the other server commands show it. JSON names are a
/// contract.
#[derive(Debug, Clone, Serialize)]
pub struct ServerView {
    pub name: ServerName,
    /// How it is reached, without a password.
    pub url: String,
    /// The control database's own server.
    pub control: bool,
    pub capacity: i64,
    /// Capacity minus the siloed tenants it holds (never below 0).
    pub capacity_left: i64,
    /// The tiers it takes; `null`: every tier.
    pub tiers: Option<Vec<String>>,
    pub pooled: bool,
    pub draining: bool,
    /// Where it is (`server add|set --region`); `null`: in no region.
    pub region: Option<Region>,
    /// Tenants on it, any status (siloed + pooled).
    pub tenants: i64,
    pub siloed_tenants: i64,
    pub pooled_tenants: i64,
    /// This control plane's databases on it (tenant silos, its pooled database, the silo
    /// template, restores in
    /// flight), as the server's catalog has them; `null` when unreachable.
    pub databases: Option<i64>,
    /// Their total size; `null` when unreachable.
    pub bytes: Option<i64>,
    pub reachable: bool,
    /// Why it could not be reached.
    pub error: Option<String>,
}

async fn view(plane: &ControlPlane, row: &ServerRow, load: Load, probe: bool) -> ServerView {
    let url = match plane.fleet.shown(&row.name).await {
        Ok(u) => u,
        Err(_) => row.url.clone().unwrap_or_default(),
    };
    let mut v = ServerView {
        name: row.name.clone(),
        url,
        control: row.control,
        capacity: row.capacity,
        capacity_left: row.candidate(load).capacity_left(),
        tiers: row.tiers.clone(),
        pooled: row.pooled,
        draining: row.draining,
        region: row.region.clone(),
        tenants: load.silos + load.pooled_tenants,
        siloed_tenants: load.silos,
        pooled_tenants: load.pooled_tenants,
        databases: None,
        bytes: None,
        reachable: false,
        error: None,
    };
    if !probe {
        return v;
    }
    let facts = async {
        let plane_id = plane.control.plane_id().await?;
        let admin = plane.fleet.admin(&row.name).await?;
        registry::plane_databases(&**admin, plane_id).await
    }
    .await;
    match facts {
        Ok((databases, bytes)) => {
            v.reachable = true;
            v.databases = Some(databases);
            v.bytes = Some(bytes);
        }
        Err(e) => v.error = Some(format!("{e:#}")),
    }
    v
}

/// `server list`: every server with its load, each one reached (all at once) for its
/// databases and bytes. An unreachable server is listed as such; the caller exits 1 then.
pub async fn list(plane: &ControlPlane) -> Result<Vec<ServerView>> {
    let loads = plane.control.server_loads().await?;
    Ok(join_all(
        loads
            .iter()
            .map(|(row, load)| view(plane, row, *load, true)),
    )
    .await)
}

/// The server as it now is, without reaching it.
async fn current(plane: &ControlPlane, name: &ServerName) -> Result<ServerView> {
    let loads = plane.control.server_loads().await?;
    let (row, load) = loads
        .iter()
        .find(|(r, _)| &r.name == name)
        .ok_or_else(|| not_found(name))?;
    Ok(view(plane, row, *load, false).await)
}

fn not_found(name: &ServerName) -> Failure {
    Failure::Refused(format!(
        "no server `{name}` in the fleet; `tenantctl server list` shows the servers"
    ))
}

/// A validated `server add`.
pub struct AddRequest {
    pub name: ServerName,
    pub url: String,
    pub capacity: i64,
    /// `None`: every tier.
    pub tiers: Option<Vec<String>>,
    pub pooled: bool,
    pub region: Option<Region>,
}

impl AddRequest {
    /// Checks what can be checked without a database: the name, the URL (no password), the
    /// capacity, the tiers (`--tier`: each in the tier table; a pooled tier only on a `--pooled`
    /// server). Exit 2 on any of them, nothing changed.
    pub fn validate(
        settings: &crate::config::Settings,
        name: &str,
        url: &str,
        capacity: i64,
        tiers: &[String],
        pooled: bool,
        region: Option<&str>,
    ) -> Result<AddRequest, Failure> {
        let name: ServerName = name.parse()?;
        let region = region.map(str::parse::<Region>).transpose()?;
        // The URL is parsed again when the server is reached; here it is refused early (a
        // password in it above all), before anything connects.
        settings.server_access.new_server(name.as_str(), url)?;
        let capacity = crate::number::in_range("--capacity", capacity, 0..=MAX_CAPACITY)?;
        let tiers = match tiers {
            [] => None,
            list => {
                let table = settings.load_tiers()?;
                let mut names: Vec<String> = Vec::new();
                for t in list.iter().map(|t| t.trim()) {
                    let tier = table.get(t).map_err(|e| match e {
                        Failure::BadInput(m) => Failure::BadInput(format!("invalid --tier: {m}")),
                        other => other,
                    })?;
                    if tier.isolation == Isolation::Pooled && !pooled {
                        return Err(Failure::BadInput(format!(
                            "invalid --tier: tier `{t}` is pooled and this server takes no pooled tenants; add --pooled, or leave `{t}` out"
                        )));
                    }
                    if !names.iter().any(|n| n == t) {
                        names.push(t.to_owned());
                    }
                }
                Some(names)
            }
        };
        Ok(AddRequest {
            name,
            url: url.to_owned(),
            capacity,
            tiers,
            pooled,
            region,
        })
    }
}

/// The privileges the admin role needs on every server (doctor's list): LOGIN, CREATEDB,
/// CREATEROLE (a superuser holds the last two), each with the statement that grants it.
pub fn privileges(facts: &doctor::SessionFacts) -> Vec<super::doctor::Privilege> {
    let role_q = crate::db::ident::quote(&facts.role);
    [
        ("LOGIN", facts.login),
        ("CREATEDB", facts.createdb),
        ("CREATEROLE", facts.createrole),
    ]
    .into_iter()
    .map(|(name, has)| {
        let held = has || (facts.superuser && name != "LOGIN");
        super::doctor::Privilege {
            name,
            held,
            grant: (!held).then(|| format!("ALTER ROLE {role_q} {name};")),
        }
    })
    .collect()
}

/// `server add`: reaches the server as the URL says (exit 1 if it cannot), checks that its
/// role has the privileges `doctor` asks for and that it is not a server of the fleet already
/// (its PostgreSQL system identifier; exit 3 for either), then registers it (audited). The URL
/// is stored without a password.
pub async fn add(
    plane: &ControlPlane,
    req: &AddRequest,
    reporter: &dyn Reporter,
) -> Result<ServerView> {
    let name = &req.name;
    if plane.control.find_server(name).await?.is_some() {
        return Err(Failure::Refused(format!(
            "server `{name}` is already in the fleet; `tenantctl server list` shows it"
        ))
        .into());
    }
    let (stored, params) = plane.fleet.new_server(name.as_str(), &req.url)?;
    let db = &params.dbname;
    plane
        .ctx
        .naming
        .check_foreign("database of the server URL", db)?;
    if matches!(db.as_str(), "template0" | "template1") {
        return Err(Failure::BadInput(format!(
            "invalid server URL: database `{db}` is a template, which every new tenant database is copied from; name another one (`postgres` if none is named)"
        ))
        .into());
    }
    reporter.status(&format!("reaching {}", params.shown()));
    let (shown, client) = plane.fleet.connect_unregistered(&params).await?;
    let facts = doctor::session_facts(&client).await?;
    let missing: Vec<String> = privileges(&facts)
        .into_iter()
        .filter_map(|p| p.grant)
        .collect();
    if !missing.is_empty() {
        return Err(Failure::Refused(format!(
            "role `{}` on {} lacks what tenantctl needs on every server (LOGIN CREATEDB CREATEROLE); grant it with: {}",
            excerpt(&facts.role),
            shown,
            missing.join(" ")
        ))
        .into());
    }
    let system = registry::server_facts(&client).await?;
    let control_system =
        registry::server_facts(&**plane.fleet.admin(&ServerName::control()).await?).await?;
    let same = if system.system_id == control_system.system_id {
        Some(ServerName::control())
    } else {
        plane
            .control
            .server_with_system_id(&system.system_id)
            .await?
    };
    if let Some(other) = same {
        return Err(Failure::Refused(format!(
            "{} is the PostgreSQL cluster of server `{other}` (system identifier {}), already in the fleet",
            shown,
            system.system_id
        ))
        .into());
    }
    let capacity = i32::try_from(req.capacity).expect("checked against MAX_CAPACITY");
    let added = plane
        .control
        .add_server(
            &NewServer {
                name,
                url: &stored,
                capacity,
                tiers: req.tiers.as_deref(),
                pooled: req.pooled,
                region: req.region.as_ref(),
                system_id: &system.system_id,
            },
            &plane.ctx.actor,
        )
        .await?;
    if !added {
        return Err(Failure::Refused(format!(
            "server `{name}` was added by another tenantctl process meanwhile"
        ))
        .into());
    }
    reporter.status(&format!(
        "added server `{name}` (PostgreSQL {}, capacity {}{}{})",
        system.version,
        req.capacity,
        if req.pooled { ", pooled" } else { "" },
        req.region
            .as_ref()
            .map(|r| format!(", region {r}"))
            .unwrap_or_default()
    ));
    let mut v = current(plane, name).await?;
    v.reachable = true;
    v.databases = Some(0);
    v.bytes = Some(0);
    Ok(v)
}

/// `server drain` (`draining`) and `server undrain`: whether the server takes new tenants.
/// Under the placement lock, so no placement in flight lands on a server just drained.
/// Audited when it changes; a server already so is a no-op (said on stderr).
pub async fn set_draining(
    plane: &ControlPlane,
    name: &ServerName,
    draining: bool,
    reporter: &dyn Reporter,
) -> Result<ServerView> {
    let _placing = plane.control.lock_placement().await?;
    match plane
        .control
        .set_draining(name, draining, &plane.ctx.actor)
        .await?
    {
        None => return Err(not_found(name).into()),
        Some(false) => reporter.status(&format!(
            "server `{name}` {} already; nothing to do",
            if draining {
                "is draining"
            } else {
                "takes new tenants"
            }
        )),
        Some(true) => reporter.status(&format!(
            "server `{name}` {}",
            if draining {
                "is draining: it takes no new tenants; its tenants stay"
            } else {
                "takes new tenants again"
            }
        )),
    }
    current(plane, name).await
}

/// `server set NAME --capacity N`. Audited when it changes. A capacity below what the server
/// holds is allowed (it then takes no new siloed tenant).
pub async fn set_capacity(
    plane: &ControlPlane,
    name: &ServerName,
    capacity: i64,
    reporter: &dyn Reporter,
) -> Result<ServerView> {
    let capacity = i32::try_from(capacity).expect("checked against MAX_CAPACITY");
    let _placing = plane.control.lock_placement().await?;
    let Some(was) = plane
        .control
        .set_capacity(name, capacity, &plane.ctx.actor)
        .await?
    else {
        return Err(not_found(name).into());
    };
    reporter.status(&if was == i64::from(capacity) {
        format!("server `{name}` has capacity {capacity} already; nothing to do")
    } else {
        format!("server `{name}`: capacity {was} → {capacity}")
    });
    current(plane, name).await
}

/// `server set NAME --region R`. Audited when it changes. A server without a region may be
/// given one whatever it holds (its tenants are then in that region: they are where their
/// server is). Changing the region of a server that holds tenants (any status) is refused
/// (exit 3): their data would change region by a relabel while staying where it is, which is
/// either a typo or a move, and a move is `tenantctl move`. An empty server's region may be
/// corrected freely.
pub async fn set_region(
    plane: &ControlPlane,
    name: &ServerName,
    region: &Region,
    reporter: &dyn Reporter,
) -> Result<ServerView> {
    let _placing = plane.control.lock_placement().await?;
    let loads = plane.control.server_loads().await?;
    let (row, load) = loads
        .iter()
        .find(|(r, _)| &r.name == name)
        .ok_or_else(|| not_found(name))?;
    let held = load.silos + load.pooled_tenants;
    if let Some(was) = row.region.as_ref().filter(|w| *w != region) {
        if held > 0 {
            return Err(Failure::Refused(format!(
                "server `{name}` is in region `{was}` and holds {} (any status: deleted ones count until purged); its region cannot change under them: move them off first (`tenantctl move SLUG --to SERVER`); nothing changed",
                crate::words::count(held, "tenant", "tenants")
            ))
            .into());
        }
    }
    let Some(was) = plane
        .control
        .set_region(name, region, &plane.ctx.actor)
        .await?
    else {
        return Err(not_found(name).into());
    };
    reporter.status(&match was {
        Some(w) if &w == region => {
            format!("server `{name}` is in region `{region}` already; nothing to do")
        }
        Some(w) => format!("server `{name}`: region {w} → {region}"),
        None => format!(
            "server `{name}` is in region `{region}`{}",
            if held > 0 {
                format!(
                    ", and so are the {} it holds",
                    crate::words::count(held, "tenant", "tenants")
                )
            } else {
                String::new()
            }
        ),
    });
    current(plane, name).await
}

/// What `server remove` did.
#[derive(Debug, Serialize)]
pub struct Removed {
    pub name: ServerName,
    pub removed: bool,
}

/// `server remove`: only a server that holds no tenant (any status: a deleted tenant's data is
/// still there until purged) and no database being created; never the control database's own.
/// Exit 3 otherwise. Audited.
pub async fn remove(
    plane: &ControlPlane,
    name: &ServerName,
    reporter: &dyn Reporter,
) -> Result<Removed> {
    if name.is_control() {
        return Err(Failure::Refused(format!(
            "server `{name}` is the control database's own server and cannot be removed"
        ))
        .into());
    }
    let _placing = plane.control.lock_placement().await?;
    // Reached while the server is still registered (for its template, below); an unreachable
    // server is removed all the same.
    let admin = plane.fleet.admin(name).await;
    match plane
        .control
        .remove_server(name, &plane.ctx.actor)
        .await?
    {
        None => Err(not_found(name).into()),
        Some(0) => {
            // The silo template holds no tenant's data: it goes with the server. Tried once the
            // server is out of the registry (no placement can copy it any more); a server that
            // cannot be reached keeps it, and that is said.
            let template = plane.ctx.naming.template_database();
            let dropped = async {
                let admin = admin?;
                let _lock = plane.control.lock_template(name).await?;
                dataplane::drop_template(&admin, &template, plane.control.plane_id().await?).await
            }
            .await;
            if let Err(e) = dropped {
                reporter.warning(&format!(
                    "the silo template `{template}` stays on server `{name}` (it holds no tenant's data; drop it by hand): {}",
                    crate::excerpt::excerpt_n(&format!("{e:#}"), crate::excerpt::REASON_CHARS)
                ));
            }
            Ok(Removed {
                name: name.clone(),
                removed: true,
            })
        }
        Some(n) => Err(Failure::Refused(format!(
            "server `{name}` still holds {} (any status: deleted ones count until purged); only an empty server can be removed",
            crate::words::count(n, "tenant or database", "tenants or databases")
        ))
        .into()),
    }
}

/// A server a fleet-wide command could not reach, and why.
#[derive(Debug, Clone, Serialize)]
pub struct Unreached {
    pub server: ServerName,
    pub error: String,
}

/// The servers among `names` that cannot be reached now, each tried once and all at once, so
/// that a fleet-wide command fails one unreachable server's work at once (instead of a connect
/// timeout per database) and goes on with the others.
pub async fn unreachable(plane: &ControlPlane, names: Vec<ServerName>) -> Vec<Unreached> {
    join_all(names.into_iter().map(|server| async move {
        match plane.fleet.reach(&server).await {
            Ok(()) => None,
            Err(e) => Some(Unreached {
                server,
                error: format!("{e:#}"),
            }),
        }
    }))
    .await
    .into_iter()
    .flatten()
    .collect()
}

/// The sentence a fleet-wide command ends with when servers were unreachable (exit 1).
pub fn unreached_message(unreachable: &[Unreached], what: &str) -> String {
    let names: Vec<String> = unreachable
        .iter()
        .map(|u| format!("`{}`", u.server))
        .collect();
    format!(
        "could not reach {} {} ({what}); the other servers were done",
        if names.len() == 1 {
            "server"
        } else {
            "servers"
        },
        names.join(", ")
    )
}
