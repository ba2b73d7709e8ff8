//! Changes to a provisioned tenant, each under the tenant's lock and audited. State is enforced
//! in the data plane, not only in the status column:
//!
//! - **suspend**: siloed: the role loses LOGIN and CONNECT, the database refuses every new
//!   connection, live sessions are terminated; pooled: the tenant enters `tenant_suspensions`
//!   and the row-level policies hide its rows even with its context set.
//! - **resume**: pending tenant migrations are applied (with the role still locked out), then
//!   exactly what provisioning granted is given back.
//! - **deprovision**: a soft delete: closed as when suspended, status `deleted`, data kept for
//!   the retention period, slug reserved. **restore** reopens it within that period.
//! - **purge** (`deprovision --purge`, `purge --expired`): `deleting`, then database and role
//!   dropped, pooled rows deleted, buckets removed, control rows deleted. Every step is
//!   idempotent: a purge killed midway is finished by running it again.
//! - **set_tier**: a move between tiers of the same isolation model, where only the bill and the
//!   limits change; pooled↔siloed moves the tenant's data too (`ops::moves`).
//!
//! Every status change follows one table (`transition::TRANSITIONS`): a command first writes its intermediate
//! status (`suspending`, `resuming`, `deprovisioning`, `restoring`, `deleting`; audit action
//! `<command>.start`), then changes the data plane, then writes its final status. An
//! intermediate status promises nothing about the data plane, and the final one is written
//! only once the data plane matches it, so the status is never more closed than the data plane
//! at any instant. A command killed at any point leaves its intermediate status, which both the
//! same command and its inverse (suspend ⇄ resume, deprovision ⇄ restore) accept: re-running
//! either converges, each step being idempotent.
//!
//! **Hooks** (`[hooks]`, `ops::hooks`): suspend, resume, deprovision and restore run their
//! `after_*` hooks once their final status is written: the transition is complete whatever
//! the hooks do. A failed hook fails the command (exit 1) and leaves the status as it is; the
//! same command run again on the tenant it left (`suspend` of a suspended tenant, normally
//! refused) runs the hooks of that run that have not succeeded, and nothing else. A purge runs
//! its `before_purge` hooks before it changes anything: a failed one stops it, nothing removed.

use anyhow::{Context, Result};
use chrono::Utc;
use serde::Serialize;

use super::tenants::{self, TenantView};
use super::{failpoint, ownership, ControlPlane, Reporter};
use crate::action::Action;
use crate::db::locks::SessionLock;
use crate::db::{dataplane, migrate};
use crate::error::Failure;
use crate::hook::Event;
use crate::server_name::ServerName;
use crate::slug::Slug;
use crate::tenant::{bucket_names, Status, Tenant};
use crate::tier::{Isolation, Tier};
use crate::transition::Transition;

/// One lifecycle command: the move that starts it (`<command>.start`, to its intermediate
/// status) and the action of the move that finishes it, both in `TRANSITIONS`.
#[derive(Debug)]
struct Move {
    start: Action,
    finish: Action,
    /// For refusals: who may take this move.
    allowed: &'static str,
    /// Its hooks.
    event: Event,
}

impl Move {
    /// The command's name, in messages and failpoints.
    fn name(&self) -> &'static str {
        self.finish.as_str()
    }

    /// Its intermediate status.
    fn via(&self) -> Status {
        Transition::via(self.start)
    }
}

const SUSPEND: Move = Move {
    start: Action::SuspendStart,
    finish: Action::Suspend,
    allowed: "an active tenant, or one being suspended or resumed,",
    event: Event::Suspend,
};

const RESUME: Move = Move {
    start: Action::ResumeStart,
    finish: Action::Resume,
    allowed: "a suspended tenant, or one being suspended or resumed,",
    event: Event::Resume,
};

const DEPROVISION: Move = Move {
    start: Action::DeprovisionStart,
    finish: Action::Deprovision,
    allowed: "an active, suspended or provisioning tenant, or one being suspended, resumed, deprovisioned or restored,",
    event: Event::Deprovision,
};

const RESTORE: Move = Move {
    start: Action::RestoreStart,
    finish: Action::Restore,
    allowed: "a deprovisioned (deleted) tenant, or one being deprovisioned or restored,",
    event: Event::Restore,
};

/// Purge starts from anything: it removes everything.
const PURGE: Move = Move {
    start: Action::PurgeStart,
    finish: Action::Purge,
    allowed: "any tenant",
    event: Event::Purge,
};

/// Writes `mv`'s intermediate status (audit action `<command>.start`) unless the tenant is in
/// it already. Returns the tenant as it now is.
async fn begin(
    plane: &ControlPlane,
    t: &Tenant,
    mv: &Move,
    details: &serde_json::Value,
) -> Result<Tenant> {
    let from = Transition::sources(mv.start);
    if t.status == Status::Moving && !from.contains(&t.status) {
        return Err(super::moves::refuse_moving(plane, t, mv.name()).await);
    }
    if !from.contains(&t.status) {
        return Err(invalid(t, mv.name(), mv.allowed));
    }
    // A refusal over a foreign object must change nothing, not even the status.
    ownership::check_ours(plane, t).await?;
    let via = mv.via();
    if t.status != via {
        let moved = plane
            .control
            .transition(t, &from, via, mv.start, &plane.ctx.actor, details.clone())
            .await?;
        if !moved {
            return Err(changed_meanwhile(t));
        }
    }
    failpoint(&plane.ctx, &format!("{}:marked", mv.name()));
    let mut t = t.clone();
    t.status = via;
    Ok(t)
}

/// Replaces `mv`'s intermediate status with the final status the table gives its finishing
/// move (`to` where it gives more than one), once the data plane matches it.
async fn finish(
    plane: &ControlPlane,
    t: &Tenant,
    mv: &Move,
    to: Option<Status>,
    details: serde_json::Value,
) -> Result<()> {
    let via = mv.via();
    let to = match to {
        Some(to) if Transition::allows(mv.finish, via, to) => to,
        Some(to) => anyhow::bail!("no move {} from {via} to {to}", mv.finish),
        None => Transition::target(mv.finish, via)
            .with_context(|| format!("no move {} from {via}", mv.finish))?,
    };
    let moved = plane
        .control
        .transition(t, &[via], to, mv.finish, &plane.ctx.actor, details)
        .await?;
    if moved {
        Ok(())
    } else {
        Err(changed_meanwhile(t))
    }
}

/// Cannot happen under the tenant's lock, unless someone edits the control database by hand.
fn changed_meanwhile(t: &Tenant) -> anyhow::Error {
    anyhow::anyhow!(
        "the status of tenant `{}` changed while tenantctl held its lock; run the command again",
        t.slug
    )
}

/// Moves the tenant to `tier_name`: the tier column, the quota rows seeded from the tier (not
/// the overrides), and an audit entry, in one transaction under the tenant's lock.
pub async fn set_tier(
    plane: &ControlPlane,
    slug: &Slug,
    tier_name: &str,
    tier: &Tier,
    reporter: &dyn Reporter,
) -> Result<TenantView> {
    let (_lock, t) = lock_and_find(plane, slug).await?;
    if t.status == Status::Moving {
        return super::moves::continue_move(plane, &t, tier_name, tier, reporter).await;
    }
    if Transition::target(Action::SetTier, t.status).is_none() {
        return Err(Failure::Refused(format!(
            "tenant `{slug}` is {}; only an active or suspended tenant can change tiers",
            t.status
        ))
        .into());
    }
    if t.tier == tier_name {
        reporter.status(&format!(
            "tenant `{slug}` is already on tier `{tier_name}`; nothing to do"
        ));
        // Idempotent: repairs the data plane if a crash interrupted the change.
        super::features::sync(plane, &t).await?;
        return tenants::view(plane, t).await;
    }
    if t.isolation != tier.isolation {
        return super::moves::change_isolation(plane, &t, tier_name, tier, reporter).await;
    }
    plane
        .control
        .set_tier(
            &t,
            tier_name,
            &tier.quota_rows(),
            &tier.features.names(),
            &plane.ctx.actor,
        )
        .await?;
    super::features::sync(plane, &t).await?;
    reporter.status(&format!(
        "tenant `{slug}` moved from tier `{}` to `{tier_name}`",
        t.tier
    ));
    let t = plane
        .control
        .find_tenant(slug)
        .await?
        .expect("the tenant was just updated");
    tenants::view(plane, t).await
}

/// `move <slug> --to <server>`: a siloed tenant's database moved to another server of the
/// fleet, under the tenant's lock (`moves::relocate`).
pub async fn move_to_server(
    plane: &ControlPlane,
    slug: &Slug,
    to: &ServerName,
    region: Option<&str>,
    reporter: &dyn Reporter,
) -> Result<TenantView> {
    let (_lock, t) = lock_and_find(plane, slug).await?;
    super::moves::relocate(plane, &t, to, region, reporter).await
}

/// The tenant's lock (exit 3 "in progress" if held) and its current row (exit 3 if none).
async fn lock_and_find(plane: &ControlPlane, slug: &Slug) -> Result<(SessionLock, Tenant)> {
    let lock = plane.control.try_lock_tenant(slug).await?.ok_or_else(|| {
        Failure::Refused(format!(
            "tenant `{slug}` is being changed by another tenantctl process; try again when it has finished"
        ))
    })?;
    let t = tenants::find(plane, slug).await?;
    Ok((lock, t))
}

fn invalid(t: &Tenant, what: &str, allowed: &str) -> anyhow::Error {
    Failure::Refused(format!(
        "cannot {what} tenant `{}`: it is {} (only {allowed} can be)",
        t.slug, t.status
    ))
    .into()
}

/// Closes the tenant's data plane (see the module outline). Idempotent. A silo deprovisioned
/// mid-provisioning may have a login role but no database yet, or a database still being
/// created by a killed run (`settle_interrupted_create`, waited for here): both are closed too,
/// so `deleted` never stands beside a role that logs in or a database that takes connections.
pub(super) async fn close(plane: &ControlPlane, t: &Tenant) -> Result<()> {
    let admin = plane.fleet.admin_for(t).await?;
    if t.isolation == Isolation::Siloed {
        let mark = ownership::settled_mark(plane, t).await?;
        ownership::settle_interrupted_create(plane, &admin, &t.server, &t.database, &mark).await?;
    }
    if dataplane::accepts_connections(&admin, &t.database)
        .await?
        .is_none()
    {
        if t.isolation == Isolation::Siloed {
            let mark = ownership::mark(plane, t).await?;
            return dataplane::close_role(&admin, &mark, &t.role).await;
        }
        return Ok(());
    }
    match t.isolation {
        Isolation::Siloed => {
            let mark = ownership::settled_mark(plane, t).await?;
            dataplane::close_silo(&admin, &mark, &t.database, &t.role).await
        }
        Isolation::Pooled => {
            let _pooled = plane.control.lock_pooled(&t.server).await?;
            let mut client = ownership::connect(plane, t).await?;
            migrate::tenant(&mut client).await?;
            dataplane::grant_app_access(&client, &t.role).await?;
            dataplane::set_pooled_suspension(&mut client, t.id, true).await
        }
    }
}

/// Reopens the tenant's data plane, migrating it first. Idempotent; `action` names the
/// failpoints (`<action>:connections-allowed`, `<action>:migrated`).
pub(super) async fn open(plane: &ControlPlane, t: &Tenant, action: &str) -> Result<()> {
    let admin = plane.fleet.admin_for(t).await?;
    if dataplane::accepts_connections(&admin, &t.database)
        .await?
        .is_none()
    {
        return Ok(()); // never created (deprovisioned mid-provisioning): nothing to reopen
    }
    match t.isolation {
        Isolation::Siloed => {
            let mark = ownership::settled_mark(plane, t).await?;
            dataplane::allow_connections(&admin, &mark, &t.database).await?;
            failpoint(&plane.ctx, &format!("{action}:connections-allowed"));
            let mut client = ownership::connect(plane, t).await?;
            migrate::tenant(&mut client).await?;
            dataplane::grant_app_access(&client, &t.role).await?;
            super::features::sync_with(plane, t, &mut client).await?;
            failpoint(&plane.ctx, &format!("{action}:migrated"));
            dataplane::open_silo_to_tenant(&admin, &mark, &t.database, &t.role).await
        }
        Isolation::Pooled => {
            let _pooled = plane.control.lock_pooled(&t.server).await?;
            let mut client = ownership::connect(plane, t).await?;
            migrate::tenant(&mut client).await?;
            dataplane::grant_app_access(&client, &t.role).await?;
            super::features::sync_with(plane, t, &mut client).await?;
            failpoint(&plane.ctx, &format!("{action}:migrated"));
            dataplane::set_pooled_suspension(&mut client, t.id, false).await
        }
    }
}

/// `mv` run again on a tenant that its last run left finished (`suspend` of a suspended
/// tenant) with hooks that did not all succeed: runs those, and nothing else. `None`: not such
/// a re-run; the command runs (or is refused) as usual.
async fn rerun_hooks(
    plane: &ControlPlane,
    t: &Tenant,
    mv: &Move,
    reporter: &dyn Reporter,
) -> Result<Option<TenantView>> {
    if Transition::sources(mv.start).contains(&t.status)
        || !super::hooks::owed(plane, t, mv.event, mv.finish).await?
    {
        return Ok(None);
    }
    reporter.status(&format!(
        "tenant `{}` is {} already; running its {} hooks that have not succeeded",
        t.slug,
        t.status,
        mv.event.key()
    ));
    after_hooks(plane, &t.slug, mv, reporter).await.map(Some)
}

/// The `after_*` hooks of `mv`, once its final status is written; the tenant as it now is.
async fn after_hooks(
    plane: &ControlPlane,
    slug: &Slug,
    mv: &Move,
    reporter: &dyn Reporter,
) -> Result<TenantView> {
    let t = plane
        .control
        .find_tenant(slug)
        .await?
        .expect("the tenant was just changed");
    super::hooks::run(plane, &t, mv.event, reporter)
        .await
        .with_context(|| {
            format!(
                "tenant `{slug}` is {}, but its {} hooks did not all succeed; fix the cause and run `tenantctl {} {slug}` again: it runs only the hooks that have not succeeded",
                t.status,
                mv.event.key(),
                mv.name()
            )
        })?;
    tenants::view(plane, t).await
}

/// `suspend`: `suspending`, close, `suspended`.
pub async fn suspend(
    plane: &ControlPlane,
    slug: &Slug,
    reason: Option<&str>,
    reporter: &dyn Reporter,
) -> Result<TenantView> {
    let (_lock, t) = lock_and_find(plane, slug).await?;
    if let Some(done) = rerun_hooks(plane, &t, &SUSPEND, reporter).await? {
        return Ok(done);
    }
    let details = serde_json::json!({ "reason": reason });
    let t = begin(plane, &t, &SUSPEND, &details).await?;
    close(plane, &t).await?;
    failpoint(&plane.ctx, "suspend:closed");
    finish(plane, &t, &SUSPEND, None, details).await?;
    after_hooks(plane, slug, &SUSPEND, reporter).await
}

/// `resume`: `resuming`, migrate and reopen, `active`.
pub async fn resume(
    plane: &ControlPlane,
    slug: &Slug,
    reporter: &dyn Reporter,
) -> Result<TenantView> {
    let (_lock, t) = lock_and_find(plane, slug).await?;
    if let Some(done) = rerun_hooks(plane, &t, &RESUME, reporter).await? {
        return Ok(done);
    }
    let details = serde_json::json!({});
    let t = begin(plane, &t, &RESUME, &details).await?;
    open(plane, &t, "resume").await?;
    failpoint(&plane.ctx, "resume:opened");
    finish(plane, &t, &RESUME, None, details).await?;
    after_hooks(plane, slug, &RESUME, reporter).await
}

/// `deprovision` without `--purge`, a soft delete: `deprovisioning`, close, `deleted`.
pub async fn deprovision(
    plane: &ControlPlane,
    slug: &Slug,
    reason: Option<&str>,
    reporter: &dyn Reporter,
) -> Result<TenantView> {
    let (_lock, t) = lock_and_find(plane, slug).await?;
    if let Some(done) = rerun_hooks(plane, &t, &DEPROVISION, reporter).await? {
        return Ok(done);
    }
    let retention = plane.ctx.retention_days;
    let details = serde_json::json!({ "reason": reason, "retention_days": retention });
    let t = begin(plane, &t, &DEPROVISION, &details).await?;
    close(plane, &t).await?;
    failpoint(&plane.ctx, "deprovision:closed");
    finish(plane, &t, &DEPROVISION, None, details).await?;
    after_hooks(plane, slug, &DEPROVISION, reporter).await
}

/// `restore`, within the retention period: `restoring`, migrate and reopen, `active`.
pub async fn restore(
    plane: &ControlPlane,
    slug: &Slug,
    reporter: &dyn Reporter,
) -> Result<TenantView> {
    let (_lock, t) = lock_and_find(plane, slug).await?;
    if let Some(done) = rerun_hooks(plane, &t, &RESTORE, reporter).await? {
        return Ok(done);
    }
    // The retention period bounds the start of a restore; one under way (`restoring`) or an
    // interrupted deprovision is not deleted yet.
    if t.status == Status::Deleted {
        // The retention fixed at deletion, whatever retention_days says now.
        let deleted_at = t.deleted_at.unwrap_or_else(Utc::now);
        let until = t.purge_after.unwrap_or(deleted_at);
        if Utc::now() > until {
            return Err(Failure::Refused(format!(
                "cannot restore tenant `{slug}`: its retention period ended at {} (deleted {}); \
                 `tenantctl purge --expired` removes it",
                until.to_rfc3339(),
                deleted_at.to_rfc3339(),
            ))
            .into());
        }
    }
    let details = serde_json::json!({});
    let t = begin(plane, &t, &RESTORE, &details).await?;
    open(plane, &t, "restore").await?;
    failpoint(&plane.ctx, "restore:opened");
    // A tenant deprovisioned before it was ever activated goes back to `provisioning`, for
    // `provision` to finish; the others back to `active`.
    let to = if t.activated_at.is_some() {
        Status::Active
    } else {
        Status::Provisioning
    };
    finish(plane, &t, &RESTORE, Some(to), details).await?;
    after_hooks(plane, slug, &RESTORE, reporter).await
}

/// What a purge removed.
#[derive(Debug, Serialize)]
pub struct Purged {
    pub slug: String,
    pub isolation: Isolation,
    pub database: Option<String>,
    pub role: Option<String>,
    pub pooled_rows: u64,
    pub buckets: Vec<String>,
}

/// `deprovision --purge`: removes everything of the tenant, from any status.
pub async fn purge(plane: &ControlPlane, slug: &Slug, reporter: &dyn Reporter) -> Result<Purged> {
    let (_lock, t) = lock_and_find(plane, slug).await?;
    purge_locked(plane, &t, reporter).await
}

async fn purge_locked(plane: &ControlPlane, t: &Tenant, reporter: &dyn Reporter) -> Result<Purged> {
    super::billing::warn_unbilled_usage(plane, t.id, t.slug.as_str(), reporter).await?;
    // The before_purge hooks, before anything changes: a failed one stops the purge. A purge
    // already under way (`deleting`) ran them all before it began, and is only finished.
    if t.status != Status::Deleting {
        ownership::check_ours(plane, t).await?;
        super::hooks::run(plane, t, Event::Purge, reporter)
            .await
            .with_context(|| {
                format!(
                    "tenant `{}` was not purged, nothing was removed; fix the cause and run the purge again: it runs only the hooks that have not succeeded",
                    t.slug
                )
            })?;
    }
    let actor = &plane.ctx.actor;
    // `deleting` is written before anything is removed: from then on only a purge may follow.
    let t = &begin(plane, t, &PURGE, &serde_json::json!({})).await?;
    failpoint(&plane.ctx, "purge:deleting");
    // A move a purge interrupts: the side that is not the tenant's data goes first.
    super::moves::settle_for_purge(plane, t, reporter).await?;
    let mut pooled_rows = 0;
    let (database, role) = match t.isolation {
        Isolation::Siloed => {
            // A restore a crash left holds databases beside the tenant's: settled first.
            super::backup::settle(plane, t, reporter).await?;
            let mark = ownership::settled_mark(plane, t).await?;
            let admin = plane.fleet.admin_for(t).await?;
            ownership::settle_interrupted_create(plane, &admin, &t.server, &t.database, &mark)
                .await?;
            dataplane::drop_silo(&admin, &mark, &t.database, &t.role).await?;
            // A run killed after marking but before releasing its claim leaves one behind.
            plane
                .control
                .release_database_claim(&t.server, &t.database)
                .await?;
            (Some(t.database.clone()), Some(t.role.clone()))
        }
        Isolation::Pooled => {
            let admin = plane.fleet.admin_for(t).await?;
            if dataplane::accepts_connections(&admin, &t.database)
                .await?
                .is_some()
            {
                let mut client = ownership::connect(plane, t).await?;
                pooled_rows = dataplane::purge_pooled_rows(&mut client, t.id).await?;
            }
            (None, None)
        }
    };
    failpoint(&plane.ctx, "purge:data");
    let buckets = bucket_names(&t.slug);
    let mark = ownership::bucket_mark(plane, t).await?;
    for b in crate::storage::buckets(&t.slug, t.isolation) {
        ownership::remove_bucket(plane, &b, &mark).await?;
    }
    failpoint(&plane.ctx, "purge:buckets");
    plane.control.purge_tenant_rows(t, actor).await?;
    Ok(Purged {
        slug: t.slug.to_string(),
        isolation: t.isolation,
        database,
        role,
        pooled_rows,
        buckets,
    })
}

/// What `purge --expired` did: the tenants purged, and those whose purge failed (slug, error).
#[derive(Debug)]
pub struct ExpiredPurge {
    pub purged: Vec<Purged>,
    pub failed: Vec<(String, String)>,
}

/// `purge --expired`: every deleted tenant past the retention fixed at its deletion, and every
/// interrupted purge. One tenant's failure (or refusal) does not stop the others.
pub async fn purge_expired(plane: &ControlPlane, reporter: &dyn Reporter) -> Result<ExpiredPurge> {
    let mut done = ExpiredPurge {
        purged: Vec::new(),
        failed: Vec::new(),
    };
    for t in plane.control.expired().await? {
        let slug = t.slug.clone();
        match purge_expired_one(plane, t, reporter).await {
            Ok(Some(p)) => done.purged.push(p),
            Ok(None) => {}
            Err(e) => {
                let e = format!("{e:#}");
                reporter.status(&format!("purging `{slug}` failed: {e}"));
                done.failed.push((slug.to_string(), e));
            }
        }
    }
    Ok(done)
}

async fn purge_expired_one(
    plane: &ControlPlane,
    t: Tenant,
    reporter: &dyn Reporter,
) -> Result<Option<Purged>> {
    let slug = t.slug;
    let Some(_lock) = plane.control.try_lock_tenant(&slug).await? else {
        reporter.status(&format!(
            "skipping `{slug}`: another tenantctl process holds it"
        ));
        return Ok(None);
    };
    // Re-read under the lock: it may have been restored meanwhile.
    let Some(t) = plane.control.find_tenant(&slug).await? else {
        return Ok(None);
    };
    if !matches!(t.status, Status::Deleted | Status::Deleting) {
        return Ok(None);
    }
    reporter.status(&format!("purging `{slug}`"));
    purge_locked(plane, &t, reporter).await.map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each command's moves are in the table: it starts from its own intermediate status and
    /// finishes from it (the invariants of the table itself are tested in `transition`).
    #[test]
    fn every_command_is_in_the_table() {
        for mv in [&SUSPEND, &RESUME, &DEPROVISION, &RESTORE, &PURGE] {
            assert!(mv.via().is_intermediate(), "{mv:?}");
            assert!(Transition::sources(mv.start).contains(&mv.via()), "{mv:?}");
        }
        for (mv, to) in [
            (&SUSPEND, Status::Suspended),
            (&RESUME, Status::Active),
            (&DEPROVISION, Status::Deleted),
            (&RESTORE, Status::Active),
        ] {
            assert_eq!(Transition::target(mv.finish, mv.via()), Some(to), "{mv:?}");
        }
        assert!(Transition::allows(
            RESTORE.finish,
            RESTORE.via(),
            Status::Provisioning
        ));
        assert_eq!(
            [&SUSPEND, &RESUME, &DEPROVISION, &RESTORE, &PURGE].map(Move::name),
            ["suspend", "resume", "deprovision", "restore", "purge"]
        );
    }
}
