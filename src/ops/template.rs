//! The siloed tenants' template database (`<prefix>template1`): the tenant schema, migrated once,
//! that provisioning copies a new silo from (`CREATE DATABASE … TEMPLATE`, about the cost of an
//! empty `CREATE DATABASE`) instead of creating it empty and running every tenant migration in
//! it (which cost more than the `CREATE DATABASE` itself).
//!
//! - **Closed and current, or not copied.** The template takes no connection
//!   (`ALLOW_CONNECTIONS false`, and PUBLIC has no CONNECT on it), so nobody can be connected
//!   to it while it is copied (PostgreSQL refuses to copy a database with sessions in it) and
//!   nothing but a migration changes it. Its mark carries its schema version
//!   (`tenantctl:<plane>:template:v<N>`, `Mark::template`), written only once it is migrated
//!   and closed again, so one catalog read says whether it can be copied: marked as this
//!   plane's, closed, at this binary's latest version. Anything else is refreshed first.
//! - **Refreshed under a lock.** Creating or migrating it holds the control database's
//!   template lock: it is opened, migrated (refinery, on a connection of its own), closed and
//!   re-marked; a run killed midway leaves the old mark (and perhaps an open template), which
//!   the next refresh finishes. Created like a tenant database: under a claim, then marked.
//! - **Never required.** A template of another plane (or anything else under that name), one
//!   newer than this binary, or one that cannot be refreshed is not used, and silos are created
//!   empty and migrated as before; a copy the server refuses (a newer tenantctl is migrating the
//!   template) falls back the same way (`dataplane::create_database_from`). Provisioning's
//!   schema step brings every silo, copied or not, to the latest version.
//! - **One per server.** Each server of the fleet has its own, made by the first silo placed
//!   there (a copy can only be made within one server); its lock is per server too.
//! - **Kept current.** `provision` refreshes it (creating it on the first silo); `migrate`
//!   migrates an existing one with the tenant databases; `doctor` reports it. It holds no
//!   tenant's data, is no tenant's database (`template1` is a reserved slug) and is never
//!   dropped by a purge.

use std::sync::atomic::{AtomicU32, Ordering};

use anyhow::Result;
use serde::Serialize;

use super::{ownership, ControlPlane, Reporter};
use crate::db::dataplane::{self, Mark, TemplateFound};
use crate::db::migrate;
use crate::server_name::ServerName;

/// Whether a refresh may create the template when it does not exist (`provision`), or only
/// migrates an existing one (`migrate`).
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Create {
    Yes,
    No,
}

/// The template as `doctor` and `migrate --dry-run` report it. JSON field names are a
/// contract.
#[derive(Debug, Clone, Serialize)]
pub struct TemplateView {
    pub server: ServerName,
    pub database: String,
    /// The tenant schema version its mark records (`None`: not this plane's template).
    pub version: Option<i32>,
    pub latest: i32,
    /// Takes no connection (as it must, except while it is migrated).
    pub closed: bool,
    /// This plane's, closed and at the latest version: provisioning copies it as it is.
    pub current: bool,
}

/// How many failed refreshes of a server's template one process tries before it stops trying.
const ATTEMPTS: u32 = 2;

/// What one process decided about one server's template (`ControlPlane::template`).
#[derive(Default)]
pub struct Cell {
    decided: tokio::sync::OnceCell<Option<String>>,
    failures: AtomicU32,
}

/// The template of `server` to copy a new silo from, refreshed (and created) first if need
/// be: once per process and server (a bulk run asks once for all its silos there), until a
/// refresh succeeds, finds the template unusable or has failed `ATTEMPTS` times. `None` when none can be used; why is said
/// on the reporter.
pub async fn for_copy(
    plane: &ControlPlane,
    server: &ServerName,
    reporter: &dyn Reporter,
) -> Option<String> {
    let cell = plane
        .template
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .entry(server.clone())
        .or_default()
        .clone();
    // What was decided stays for the process (a usable template, or one that can never be:
    // someone else's, newer than this binary). A refresh that failed (a lock timeout, a lost
    // connection) is not decided: this silo is created empty, and the next one tries again,
    // up to ATTEMPTS failures; then none is used for the rest of the process, so that a
    // lasting failure (a template lock held for good, a server refusing that database) costs
    // a bulk run two waits, not one per silo (the silos wait for the cell one at a time).
    let decided = cell
        .decided
        .get_or_try_init(|| async {
            match refresh(plane, server, Create::Yes).await {
                Ok(Refreshed::Usable { name, .. }) => Ok(Some(name)),
                Ok(Refreshed::Unusable(why)) => {
                    reporter.status(&format!(
                        "not copying silos on server `{server}` from a template: {why}"
                    ));
                    Ok(None)
                }
                Ok(Refreshed::Absent) => Ok(None),
                Err(e) => {
                    let why = crate::excerpt::excerpt_n(&format!("{e:#}"), crate::excerpt::REASON_CHARS);
                    let failures = cell.failures.fetch_add(1, Ordering::SeqCst) + 1;
                    if failures >= ATTEMPTS {
                        reporter.status(&format!(
                            "not copying silos on server `{server}` from a template for the rest of this run (its refresh failed {failures} times): {why}"
                        ));
                        Ok(None)
                    } else {
                        reporter.status(&format!(
                            "not copying this silo on server `{server}` from a template (the next one tries again): {why}"
                        ));
                        Err(())
                    }
                }
            }
        })
        .await;
    decided.ok().cloned().flatten()
}

/// What a refresh found and did.
pub enum Refreshed {
    /// Closed and current: copy it. `migrated`: the migrations this refresh applied to it.
    Usable { name: String, migrated: Vec<String> },
    /// It does not exist (and `Create::No`).
    Absent,
    /// It cannot be used, and why.
    Unusable(String),
}

/// Makes the template closed and current: nothing when it is (one catalog read), else under
/// the template lock: creates it (`Create::Yes`), or finishes what a killed run left, migrates
/// it, closes it and marks its new version.
pub async fn refresh(
    plane: &ControlPlane,
    server: &ServerName,
    create: Create,
) -> Result<Refreshed> {
    let name = plane.ctx.naming.template_database();
    let id = plane.control.plane_id().await?;
    let latest = migrate::tenant_latest();
    let admin = plane.fleet.admin(server).await?;
    let usable = |found: &TemplateFound| {
        *found
            == TemplateFound::Ours {
                version: latest,
                open: false,
            }
    };
    if usable(&dataplane::inspect_template(&admin, &name, id).await?) {
        return Ok(Refreshed::Usable {
            name,
            migrated: Vec::new(),
        });
    }
    let _lock = plane.control.lock_template(server).await?;
    super::error_at(&plane.ctx, "template:refresh")?;
    let found = dataplane::inspect_template(&admin, &name, id).await?;
    if usable(&found) {
        return Ok(Refreshed::Usable {
            name,
            migrated: Vec::new(),
        });
    }
    let (version, open) = match found {
        TemplateFound::Ours { version, .. } if version > latest => {
            return Ok(Refreshed::Unusable(format!(
                "`{name}` is at tenant schema version {version}, newer than this tenantctl's {latest}"
            )))
        }
        TemplateFound::Ours { version, open } => (version, open),
        TemplateFound::Absent if create == Create::No => return Ok(Refreshed::Absent),
        // Absent, or left unmarked by a killed run of ours (its claim stands): created, or
        // marked, as any database tenantctl makes (`ensure_database`: the claim decides).
        TemplateFound::Absent => {
            ownership::ensure_template_database(
                plane,
                &admin,
                server,
                &name,
                &Mark::template(id, 0),
            )
            .await?;
            (0, true)
        }
        TemplateFound::Foreign {
            comment: None,
            owned_by_us: true,
            ..
        } if plane
            .control
            .database_claimed(server, &name, Mark::template(id, 0).as_str())
            .await? =>
        {
            ownership::ensure_template_database(
                plane,
                &admin,
                server,
                &name,
                &Mark::template(id, 0),
            )
            .await?;
            (0, true)
        }
        TemplateFound::Foreign { .. } => {
            return Ok(Refreshed::Unusable(format!(
                "`{name}` exists and is not this control plane's template"
            )))
        }
    };
    let mark = Mark::template(id, version);
    if !open {
        dataplane::open_template(&admin, &name, &mark).await?;
    }
    let mut client = plane.fleet.connect(server, &name).await?;
    let migrated = migrate::tenant(&mut client).await?;
    drop(client);
    dataplane::close_template(&admin, &name, &mark, &Mark::template(id, latest)).await?;
    Ok(Refreshed::Usable { name, migrated })
}

/// The template of `server` as it stands (`None`: there is none). Reads only.
pub async fn view(plane: &ControlPlane, server: &ServerName) -> Result<Option<TemplateView>> {
    let name = plane.ctx.naming.template_database();
    let id = plane.control.plane_id().await?;
    let latest = migrate::tenant_latest();
    let admin = plane.fleet.admin(server).await?;
    Ok(
        match dataplane::inspect_template(&admin, &name, id).await? {
            TemplateFound::Absent => None,
            TemplateFound::Ours { version, open } => Some(TemplateView {
                server: server.clone(),
                database: name,
                version: Some(version),
                latest,
                closed: !open,
                current: version == latest && !open,
            }),
            TemplateFound::Foreign { open, .. } => Some(TemplateView {
                server: server.clone(),
                database: name,
                version: None,
                latest,
                closed: !open,
                current: false,
            }),
        },
    )
}
