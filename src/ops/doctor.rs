//! `tenantctl init` and `tenantctl doctor`: setting up the control database on an operator's
//! server, and checking what tenantctl needs from that server. Doctor changes nothing.

use anyhow::Result;
use serde::Serialize;

use super::{server, usable, ControlPlane, Opening, Reporter};
use crate::db::control::ControlDb;
use crate::db::doctor;
use crate::server_name::ServerName;
use crate::storage::local::LocalDirStore;
use crate::tenant::Status;

/// What `init` did.
#[derive(Debug, Serialize)]
pub struct InitView {
    pub server: String,
    pub database: String,
    pub created: bool,
    pub applied: Vec<String>,
}

/// Creates the control database if missing and applies its migrations. Idempotent.
pub async fn init(opening: &Opening, reporter: &dyn Reporter) -> Result<InitView> {
    let server = server(opening, reporter, true)?.expect("started on demand");
    let shown = server.shown().to_owned();
    let (control, created, applied) = usable(&server, ControlDb::init(server.clone()).await?)?;
    Ok(InitView {
        server: shown,
        database: control.name().to_owned(),
        created,
        applied,
    })
}

/// One privilege the admin role needs, and the statement that grants it when it lacks it.
#[derive(Debug, Serialize)]
pub struct Privilege {
    pub name: &'static str,
    pub held: bool,
    pub grant: Option<String>,
}

/// A tenant database doctor tried to reach.
#[derive(Debug, Serialize)]
pub struct Reach {
    pub server: ServerName,
    pub database: String,
    pub tenants: Vec<String>,
    pub reachable: bool,
    pub error: Option<String>,
}

/// What `doctor` found; `ok` is false when anything needs the operator.
#[derive(Debug, Serialize)]
pub struct Report {
    pub ok: bool,
    pub server: String,
    pub server_version: String,
    pub sslmode: String,
    pub tls: bool,
    pub tls_version: Option<String>,
    /// As pg_stat_activity shows this session.
    pub application_name: String,
    pub role: String,
    pub superuser: bool,
    pub bypassrls: bool,
    pub privileges: Vec<Privilege>,
    pub control_database: String,
    pub control_exists: bool,
    pub schema_version: Option<i32>,
    pub pending_migrations: Vec<String>,
    /// Every other server of the fleet: reached as its admin role, privileges checked.
    pub servers: Vec<ServerCheck>,
    pub databases: Vec<Reach>,
    /// The siloed tenants' template database of each reachable server that has one (the first
    /// silo placed on a server creates its template).
    pub templates: Vec<super::template::TemplateView>,
    pub problems: Vec<String>,
}

/// A server of the fleet besides the control database's own, as doctor found it.
#[derive(Debug, Serialize)]
pub struct ServerCheck {
    pub name: ServerName,
    pub url: String,
    pub reachable: bool,
    pub server_version: Option<String>,
    pub role: Option<String>,
    pub tls: Option<bool>,
    /// LOGIN, CREATEDB, CREATEROLE: held or not (empty when unreachable).
    pub privileges: Vec<Privilege>,
    pub error: Option<String>,
}

/// Checks the server, the admin role, the control schema and every active tenant's database.
/// A server that cannot be reached at all is an error (exit 1), not a report.
pub async fn doctor(opening: &Opening, reporter: &dyn Reporter) -> Result<Report> {
    let server = server(opening, reporter, true)?.expect("started on demand");
    // Some managed servers have no `postgres` database: then template1.
    let client = match server.connect("postgres").await {
        Ok(c) => c,
        Err(e) if crate::db::database_missing(&e) => server.connect("template1").await?,
        Err(e) => return Err(e),
    };
    let facts = doctor::session_facts(&client).await?;
    drop(client);

    let mut problems = Vec::new();
    let privileges = super::servers::privileges(&facts);
    for p in privileges.iter().filter(|p| !p.held) {
        problems.push(format!(
            "the admin role lacks {}: {}",
            p.name,
            p.grant.as_deref().unwrap_or_default()
        ));
    }
    if server.sslmode() != crate::conninfo::SslMode::Disable && !server.embedded() && !facts.ssl {
        problems.push(format!(
            "the connection is not encrypted (sslmode={}): use sslmode=verify-full",
            server.sslmode().as_str()
        ));
    }

    let control_database = server.control_database().to_owned();
    let shown = server.shown().to_owned();
    let sslmode = server.sslmode().as_str().to_owned();
    let mut report = Report {
        ok: false,
        server: shown,
        server_version: facts.server_version,
        sslmode,
        tls: facts.ssl,
        tls_version: facts.ssl_version,
        application_name: facts.application_name,
        role: facts.role,
        superuser: facts.superuser,
        bypassrls: facts.bypassrls,
        privileges,
        control_database,
        control_exists: false,
        schema_version: None,
        pending_migrations: Vec::new(),
        servers: Vec::new(),
        databases: Vec::new(),
        templates: Vec::new(),
        problems: Vec::new(),
    };
    let opened = ControlDb::open_existing(server.clone()).await;
    match opened.and_then(|o| usable(&server, o).map_err(Into::into)) {
        Ok(Some(control)) => {
            report.control_exists = true;
            let (version, pending) = control.schema_state().await?;
            report.schema_version = Some(version);
            if !pending.is_empty() {
                problems.push(format!(
                    "{} pending: run `tenantctl init`",
                    crate::words::count_len(pending.len(), "control migration")
                ));
            }
            report.pending_migrations = pending;
            let fleet = crate::db::Fleet::new(
                server.clone(),
                control.clone(),
                opening.server_access.clone(),
            );
            let plane = ControlPlane {
                ctx: opening.ctx.clone(),
                control,
                fleet,
                store: Box::new(LocalDirStore::new(opening.ctx.storage_root.clone())),
                template: Default::default(),
            };
            report.servers = check_servers(&plane).await?;
            for c in &report.servers {
                if let Some(e) = &c.error {
                    problems.push(format!("server `{}` is unreachable: {e}", c.name));
                }
                for p in c.privileges.iter().filter(|p| !p.held) {
                    problems.push(format!(
                        "the admin role on server `{}` lacks {}: {}",
                        c.name,
                        p.name,
                        p.grant.as_deref().unwrap_or_default()
                    ));
                }
            }
            report.databases = reach_tenants(&plane, &report.servers).await?;
            report.templates = templates(&plane, &report.servers).await?;
            for t in &report.templates {
                if t.version.is_none() {
                    problems.push(format!(
                        "database `{}` on server `{}` is not this control plane's template (no tenantctl template mark): siloed tenants are created there without it, more slowly",
                        t.database, t.server
                    ));
                } else if !t.closed {
                    problems.push(format!(
                        "the template `{}` on server `{}` takes connections (a migration of it was interrupted): the next `tenantctl migrate` or siloed provisioning there closes it",
                        t.database, t.server
                    ));
                }
            }
            for r in report.databases.iter().filter(|r| !r.reachable) {
                problems.push(format!(
                    "tenant database `{}` on server `{}` is unreachable: {}",
                    r.database,
                    r.server,
                    r.error.as_deref().unwrap_or_default()
                ));
            }
        }
        Ok(None) => problems.push(format!(
            "control database `{}` does not exist or has no control schema: run `tenantctl init`",
            report.control_database
        )),
        Err(e) => problems.push(format!("control database: {e:#}")),
    }
    report.ok = problems.is_empty();
    report.problems = problems;
    Ok(report)
}

/// Every registered server but the control database's own (checked above as the configured
/// connection), all at once: reached as its admin role, its privileges read.
/// The template of the control database's server and of every reachable server.
async fn templates(
    plane: &ControlPlane,
    servers: &[ServerCheck],
) -> Result<Vec<super::template::TemplateView>> {
    let mut names = vec![ServerName::control()];
    names.extend(
        servers
            .iter()
            .filter(|s| s.reachable)
            .map(|s| s.name.clone()),
    );
    let mut out = Vec::new();
    for name in names {
        out.extend(super::template::view(plane, &name).await?);
    }
    Ok(out)
}

async fn check_servers(plane: &ControlPlane) -> Result<Vec<ServerCheck>> {
    let rows: Vec<_> = plane
        .control
        .servers()
        .await?
        .into_iter()
        .filter(|r| !r.control)
        .collect();
    Ok(
        futures_util::future::join_all(rows.into_iter().map(|row| async move {
            let url = plane
                .fleet
                .shown(&row.name)
                .await
                .unwrap_or_else(|_| row.url.clone().unwrap_or_default());
            let facts = async {
                let admin = plane.fleet.admin(&row.name).await?;
                doctor::session_facts(&admin).await
            }
            .await;
            match facts {
                Ok(f) => ServerCheck {
                    name: row.name,
                    url,
                    reachable: true,
                    server_version: Some(f.server_version.clone()),
                    role: Some(f.role.clone()),
                    tls: Some(f.ssl),
                    privileges: super::servers::privileges(&f),
                    error: None,
                },
                Err(e) => ServerCheck {
                    name: row.name,
                    url,
                    reachable: false,
                    server_version: None,
                    role: None,
                    tls: None,
                    privileges: Vec::new(),
                    error: Some(format!("{e:#}")),
                },
            }
        }))
        .await,
    )
}

/// Connects to the database of every active tenant (a shared pooled database once per
/// server); the databases of a server found unreachable are reported so without trying each.
async fn reach_tenants(plane: &ControlPlane, servers: &[ServerCheck]) -> Result<Vec<Reach>> {
    let mut by_db: std::collections::BTreeMap<(ServerName, String), Vec<String>> =
        Default::default();
    for t in plane.control.list_tenants().await? {
        if t.status == Status::Active {
            by_db
                .entry((t.server.clone(), t.database.clone()))
                .or_default()
                .push(t.slug.to_string());
        }
    }
    let mut out = Vec::new();
    for ((server, database), tenants) in by_db {
        let down = servers.iter().find(|c| c.name == server && !c.reachable);
        let (reachable, error) = match down {
            Some(c) => (
                false,
                Some(format!(
                    "server `{server}` is unreachable: {}",
                    c.error.as_deref().unwrap_or_default()
                )),
            ),
            None => match plane.fleet.ping(&server, &database).await {
                Ok(()) => (true, None),
                Err(e) => (false, Some(format!("{e:#}"))),
            },
        };
        out.push(Reach {
            server,
            database,
            tenants,
            reachable,
            error,
        });
    }
    Ok(out)
}
