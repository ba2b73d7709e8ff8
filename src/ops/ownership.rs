//! Ownership of the data plane, for the operations: which mark a tenant's database and role
//! carry, creating a database with its mark, the guarded way into a tenant database, the checks
//! before provisioning and purging, and `adopt` for tenants provisioned before marks existed.
//! The mark itself is read in one place, `dataplane::ensure_ours`.

use anyhow::{Context, Result};
use serde::Serialize;
use tokio_postgres::Client;

use super::{failpoint, tenants, ControlPlane};
use crate::db::dataplane::{self, Found, Mark, Object};
use crate::db::fleet::TenantConn;
use crate::error::Failure;
use crate::server_name::ServerName;
use crate::slug::Slug;
use crate::storage::{self, Owner, TenantBucket};
use crate::tenant::Tenant;
use crate::tier::Isolation;

/// The mark `t`'s database and role carry: its own for a siloed tenant, the shared pooled mark
/// for a pooled one.
pub async fn mark(plane: &ControlPlane, t: &Tenant) -> Result<Mark> {
    let id = plane.control.plane_id().await?;
    Ok(match t.isolation {
        Isolation::Siloed => Mark::tenant(id, t.id),
        Isolation::Pooled => Mark::pooled(id),
    })
}

/// The mark of `t`'s buckets: always its own (pooled tenants have buckets of their own too).
pub async fn bucket_mark(plane: &ControlPlane, t: &Tenant) -> Result<Mark> {
    Ok(Mark::tenant(plane.control.plane_id().await?, t.id))
}

/// Every bucket of `t` is absent or carries `t`'s mark (after settling one a killed run of
/// ours left unmarked).
async fn check_buckets(plane: &ControlPlane, t: &Tenant) -> Result<()> {
    let mark = bucket_mark(plane, t).await?;
    for b in storage::buckets(&t.slug, t.isolation) {
        if let Owner::Foreign(found) = plane.store.owner(&b, mark.as_str())? {
            if found.is_some() || !settle_bucket(plane, &b, &mark).await? {
                return Err(storage::refusal(&plane.store.location(&b), found.as_deref()).into());
            }
        }
    }
    Ok(())
}

/// Object storage creates a bucket and then its mark, and removes the mark and then the
/// bucket: a run killed in between leaves an empty bucket without any mark. Under this control
/// plane's claim on it (written before, removed after), such a bucket is ours and is marked
/// again. True if it did.
async fn settle_bucket(plane: &ControlPlane, b: &TenantBucket, mark: &Mark) -> Result<bool> {
    let location = plane.store.location(b);
    if !plane
        .control
        .bucket_claimed(&location, mark.as_str())
        .await?
    {
        return Ok(false);
    }
    if plane.store.owner(b, mark.as_str())? != Owner::Foreign(None)
        || !plane.store.list(b, "")?.is_empty()
    {
        return Ok(false);
    }
    plane.store.adopt(b, mark.as_str())
}

/// Creates bucket `b` with `mark` (provisioning step 6), under a claim while it is created.
pub async fn create_bucket(plane: &ControlPlane, b: &TenantBucket, mark: &Mark) -> Result<()> {
    let location = plane.store.location(b);
    settle_bucket(plane, b, mark).await?;
    if plane.store.owner(b, mark.as_str())? == Owner::Absent {
        plane.control.claim_bucket(&location, mark.as_str()).await?;
    }
    plane.store.create(b, mark.as_str())?;
    plane.control.release_bucket_claim(&location).await
}

/// Removes bucket `b` carrying `mark` (purge), under a claim while it is removed.
pub async fn remove_bucket(plane: &ControlPlane, b: &TenantBucket, mark: &Mark) -> Result<()> {
    let location = plane.store.location(b);
    settle_bucket(plane, b, mark).await?;
    if plane.store.owner(b, mark.as_str())? == Owner::Ours {
        plane.control.claim_bucket(&location, mark.as_str()).await?;
    }
    plane.store.remove(b, mark.as_str())?;
    plane.control.release_bucket_claim(&location).await
}

/// `mark`, after finishing the marking of `t`'s database if a run was killed between creating
/// and marking it (see `ensure_database`): a tenant left so can then be suspended, deprovisioned
/// or purged, not only provisioned.
pub async fn settled_mark(plane: &ControlPlane, t: &Tenant) -> Result<Mark> {
    let mark = mark(plane, t).await?;
    let admin = plane.fleet.admin_for(t).await?;
    settle_claim(plane, &admin, &t.server, &t.database, &mark).await?;
    Ok(mark)
}

/// Writes `mark` on database `name` of `server` (`admin` is connected there) if this control
/// plane's claim on it stands, the database has no comment at all and the connecting role owns
/// it: the trace of a run killed between `CREATE DATABASE` and `COMMENT`. True if it did.
async fn settle_claim(
    plane: &ControlPlane,
    admin: &Client,
    server: &ServerName,
    name: &str,
    mark: &Mark,
) -> Result<bool> {
    let obj = Object::Database(name);
    match dataplane::inspect(admin, obj, mark).await? {
        Found::Foreign {
            comment: None,
            owned_by_us: true,
        } if plane
            .control
            .database_claimed(server, name, mark.as_str())
            .await? =>
        {
            dataplane::write_mark(admin, obj, mark).await?;
            plane.control.release_database_claim(server, name).await?;
            Ok(true)
        }
        _ => Ok(false),
    }
}

/// Before a silo is dropped: a run killed during `CREATE DATABASE` leaves its claim and, for a
/// while, a server still copying that database for a client that is gone (the run's advisory
/// lock went with its idle control session; the CREATE's session lives until the copy is
/// done). A purge that looked now would find nothing to drop, and the database would appear
/// after it, unmarked, orphaned and blocking the slug. So while the claim stands and the
/// database is absent, this creates it: a second CREATE of a name waits for one in flight and
/// then finds it exists. Either way the database then exists, is ours by the claim, and is
/// marked for the drop.
pub async fn settle_interrupted_create(
    plane: &ControlPlane,
    admin: &Client,
    server: &ServerName,
    name: &str,
    mark: &Mark,
) -> Result<()> {
    if !plane
        .control
        .database_claimed(server, name, mark.as_str())
        .await?
    {
        return Ok(());
    }
    if dataplane::lookup(admin, Object::Database(name))
        .await?
        .is_none()
    {
        dataplane::create_database(admin, name).await?;
    }
    settle_claim(plane, admin, server, name, mark).await?;
    Ok(())
}

/// A connection to `t`'s database, after checking that the database carries its mark.
pub async fn connect(plane: &ControlPlane, t: &Tenant) -> Result<TenantConn> {
    let mark = mark(plane, t).await?;
    let admin = plane.fleet.admin_for(t).await?;
    if !dataplane::ensure_ours(&admin, Object::Database(&t.database), &mark).await? {
        anyhow::bail!("database `{}` does not exist", t.database);
    }
    plane.fleet.tenant_db(t).await
}

/// Before a new tenant is recorded on `server`: its database and role must not exist there
/// (siloed), or be the shared ones this control plane marked (pooled; absent on a pooled server
/// that has no pooled tenant yet). Refuses (exit 3) naming the object.
pub async fn check_new(
    plane: &ControlPlane,
    server: &ServerName,
    isolation: Isolation,
    database: &str,
    role: &str,
    slug: &Slug,
) -> Result<()> {
    // A new tenant has no buckets yet: any bucket under its names is someone else's (another
    // control plane sharing the bucket root, or something an operator keeps there).
    for b in storage::buckets(slug, isolation) {
        if let Owner::Foreign(found) = plane.store.owner(&b, "tenantctl:new")? {
            return Err(storage::refusal(&plane.store.location(&b), found.as_deref()).into());
        }
    }
    if database == plane.control.name() {
        return Err(dataplane::refusal(Object::Database(database), None).into());
    }
    let admin = plane.fleet.admin(server).await?;
    let objects = [Object::Database(database), Object::Role(role)];
    match isolation {
        Isolation::Siloed => {
            for obj in objects {
                if let Some((comment, _)) = dataplane::lookup(&admin, obj).await? {
                    return Err(dataplane::refusal(obj, comment.as_deref()).into());
                }
            }
        }
        Isolation::Pooled => {
            // The shared database and role: absent (the first pooled tenant creates them) or
            // ours. A database of ours without its mark yet is one a first pooled tenant is
            // creating right now (it holds the pooled lock between its CREATE and the mark) or
            // one a killed run left in that gap: either way its claim stands, and the step that
            // creates the database, under that lock, finishes the marking. Only looked at here.
            let mark = Mark::pooled(plane.control.plane_id().await?);
            for obj in objects {
                match dataplane::inspect(&admin, obj, &mark).await? {
                    Found::Ours | Found::Absent => {}
                    Found::Foreign {
                        comment: None,
                        owned_by_us: true,
                    } if matches!(obj, Object::Database(_))
                        && plane
                            .control
                            .database_claimed(server, database, mark.as_str())
                            .await? => {}
                    // Marked, and its claim released, between the two reads: look once more.
                    Found::Foreign {
                        comment: None,
                        owned_by_us: true,
                    } if matches!(obj, Object::Database(_))
                        && dataplane::ensure_ours(&admin, obj, &mark).await? => {}
                    Found::Foreign { comment, .. } => {
                        return Err(dataplane::refusal(obj, comment.as_deref()).into())
                    }
                }
            }
        }
    }
    Ok(())
}

/// Makes sure database `name` exists and carries `mark`: creates and marks it when absent, and
/// finishes the marking of one a killed run created (its claim stands and the connecting role
/// owns it). Anything else of that name is refused.
pub async fn ensure_database(
    plane: &ControlPlane,
    admin: &Client,
    server: &ServerName,
    name: &str,
    mark: &Mark,
) -> Result<()> {
    ensure_database_from(plane, admin, server, name, mark, None).await
}

/// `ensure_database`, creating the database as a copy of `template` (closed and current, as
/// `ops::template` found it) when it is absent.
pub async fn ensure_database_from(
    plane: &ControlPlane,
    admin: &Client,
    server: &ServerName,
    name: &str,
    mark: &Mark,
    template: Option<&str>,
) -> Result<()> {
    create_marked(
        plane,
        admin,
        server,
        name,
        mark,
        template,
        "create-database:unmarked",
    )
    .await
}

/// `ensure_database` for the silo template (its own crash point, `template:unmarked`).
pub async fn ensure_template_database(
    plane: &ControlPlane,
    admin: &Client,
    server: &ServerName,
    name: &str,
    mark: &Mark,
) -> Result<()> {
    create_marked(plane, admin, server, name, mark, None, "template:unmarked").await
}

/// `ensure_database_from`; `unmarked` names the failpoint between the creation and the mark.
async fn create_marked(
    plane: &ControlPlane,
    admin: &Client,
    server: &ServerName,
    name: &str,
    mark: &Mark,
    template: Option<&str>,
    unmarked: &str,
) -> Result<()> {
    let obj = Object::Database(name);
    if settle_claim(plane, admin, server, name, mark).await? {
        return Ok(());
    }
    match dataplane::inspect(admin, obj, mark).await? {
        Found::Ours => {}
        Found::Foreign { comment, .. } => {
            return Err(dataplane::refusal(obj, comment.as_deref()).into())
        }
        Found::Absent => {
            let claimed_before = plane
                .control
                .database_claimed(server, name, mark.as_str())
                .await?;
            plane
                .control
                .claim_database(server, name, mark.as_str())
                .await?;
            let created = match dataplane::create_database_from(admin, name, template).await {
                Ok(created) => created,
                // The server answered with an error: no CREATE of this run is still going on,
                // so the claim must not stand to make a later database of that name ours.
                Err(e) if server_refused(&e) => {
                    plane.control.release_database_claim(server, name).await?;
                    return Err(e);
                }
                Err(e) => return Err(e),
            };
            if !created {
                // Created since the look-up: by a killed run of ours whose CREATE the server was
                // still finishing (its claim stood before this run), or by someone else, whose
                // database is ours only if it is marked so.
                if claimed_before && settle_claim(plane, admin, server, name, mark).await? {
                    return Ok(());
                }
                plane.control.release_database_claim(server, name).await?;
                if !dataplane::ensure_ours(admin, obj, mark).await? {
                    anyhow::bail!("database `{name}` vanished while it was being created");
                }
                return Ok(());
            }
            failpoint(&plane.ctx, unmarked);
            dataplane::write_mark(admin, obj, mark).await?;
        }
    }
    plane.control.release_database_claim(server, name).await
}

/// Whether `e` is the server's answer to a statement (an SQL error), as opposed to a lost or
/// timed-out connection, after which the statement may still be running on the server.
fn server_refused(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<tokio_postgres::Error>()
            .is_some_and(|pg| pg.code().is_some())
    })
}

/// Before a lifecycle command changes anything (its intermediate status included): the
/// tenant's database and role are absent or carry its mark, and a silo's database is neither
/// the control database, the shared pooled one (a pooled tenant's purge deletes rows, never
/// the database) nor the silo template.
pub async fn check_ours(plane: &ControlPlane, t: &Tenant) -> Result<()> {
    let mark = settled_mark(plane, t).await?;
    let admin = plane.fleet.admin_for(t).await?;
    let naming = &plane.ctx.naming;
    if t.isolation == Isolation::Siloed
        && (t.database == plane.control.name()
            || t.database == naming.pooled_database()
            || t.database == naming.template_database())
    {
        return Err(dataplane::refusal(Object::Database(&t.database), None).into());
    }
    dataplane::ensure_ours(&admin, Object::Database(&t.database), &mark).await?;
    if t.isolation == Isolation::Siloed {
        dataplane::ensure_ours(&admin, Object::Role(&t.role), &mark).await?;
    }
    check_buckets(plane, t).await
}

/// What `adopt` did. JSON field names are a contract.
#[derive(Debug, Serialize)]
pub struct Adopted {
    pub slug: String,
    /// Objects that had no comment and now carry the mark.
    pub marked: Vec<String>,
    /// Objects that already carried it.
    pub already_marked: Vec<String>,
    /// Objects that do not exist (nothing to mark).
    pub missing: Vec<String>,
}

/// `adopt <slug>`: the operator's statement that the unmarked database and role recorded for a
/// tenant (provisioned by a tenantctl without marks) are that tenant's. Marks only objects
/// without any comment; one marked for someone else, or with a comment of another kind, is
/// refused. Audited. tenantctl never does this by itself.
pub async fn adopt(plane: &ControlPlane, slug: &Slug) -> Result<Adopted> {
    let _lock = plane.control.try_lock_tenant(slug).await?.ok_or_else(|| {
        Failure::Refused(format!(
            "tenant `{slug}` is being changed by another tenantctl process; try again when it has finished"
        ))
    })?;
    let t = tenants::find(plane, slug).await?;
    let mark = mark(plane, &t).await?;
    let admin = plane.fleet.admin_for(&t).await?;
    let objects = [Object::Database(&t.database), Object::Role(&t.role)];
    let mut to_mark = Vec::new();
    let mut done = Adopted {
        slug: t.slug.to_string(),
        marked: Vec::new(),
        already_marked: Vec::new(),
        missing: Vec::new(),
    };
    // Everything checked before anything is marked.
    for obj in objects {
        match dataplane::inspect(&admin, obj, &mark).await? {
            Found::Ours => done.already_marked.push(obj.to_string()),
            Found::Absent => done.missing.push(obj.to_string()),
            Found::Foreign { comment: None, .. } => to_mark.push(obj),
            Found::Foreign { comment, .. } => {
                return Err(dataplane::refusal(obj, comment.as_deref()).into())
            }
        }
    }
    let bmark = bucket_mark(plane, &t).await?;
    let mut buckets_to_mark = Vec::new();
    for b in storage::buckets(&t.slug, t.isolation) {
        let shown = format!("bucket `{b}`");
        match plane.store.owner(&b, bmark.as_str())? {
            Owner::Ours => done.already_marked.push(shown),
            Owner::Absent => done.missing.push(shown),
            Owner::Foreign(None) => buckets_to_mark.push((b, shown)),
            Owner::Foreign(found) => {
                return Err(storage::refusal(&plane.store.location(&b), found.as_deref()).into())
            }
        }
    }
    if t.database == plane.control.name() {
        return Err(dataplane::refusal(Object::Database(&t.database), None).into());
    }
    for obj in to_mark {
        dataplane::write_mark(&admin, obj, &mark).await?;
        done.marked.push(obj.to_string());
    }
    for (b, shown) in buckets_to_mark {
        if plane.store.adopt(&b, bmark.as_str())? {
            done.marked.push(shown);
        }
    }
    if !done.marked.is_empty() {
        let details = serde_json::json!({ "marked": done.marked, "mark": mark.as_str() });
        plane
            .control
            .audit_entry(&t, crate::action::Action::Adopt, &plane.ctx.actor, details)
            .await
            .context("auditing the adoption")?;
    }
    Ok(done)
}
