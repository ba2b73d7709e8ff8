//! Moving a tenant's data to another database: `set-tier` across isolation models, pooled →
//! siloed (an upgrade: the tenant's rows out of the shared database into a silo of its own) and
//! siloed → pooled (a downgrade, refused while the tenant is over the new tier's hard limits).
//! Eleven numbered steps, journaled in `move_journal` by stable name (`move_step::MoveStep`):
//!
//! 1. **record move**: the move's row (source, target, the status to return to) and the status
//!    `moving`, in one transaction (audit `move.start`). Everything is checked before: the
//!    source is ours, the target's names are free or ours, a downgrade fits the new tier.
//! 2. **close source**: closed to the tenant as a suspension closes it (a silo: no login, no
//!    CONNECT, sessions ended, then connections allowed again for tenantctl only; pooled: its
//!    `tenant_suspensions` row), so that nothing writes while it is copied.
//! 3. **create target**: the silo's role and database, marked as this control plane's
//!    (provisioning's `create_database`), then closed to the tenant as in step 2; or the shared
//!    pooled database, made sure of.
//! 4. **apply schema**: both databases at the newest tenant schema (provisioning's
//!    `apply_schema`); a pooled target gets the tenant's suspension row before it has any rows.
//! 5. **copy rows**: the target's rows of the tenant deleted, the source's copied table by
//!    table in foreign-key order under the tenant's context, row counts per table and the
//!    schema versions verified, all in one target transaction (`db::copy`).
//! 6. **copy buckets**: where the target isolation keeps the tenant's buckets elsewhere (S3:
//!    pooled tenants have prefixes of shared buckets, siloed ones buckets of their own), every
//!    object copied there; with the local backend they are the same directories, and nothing
//!    moves.
//! 7. **switch**: isolation, tier, database and role of the tenant record, the quotas and
//!    features of the new tier (per-tenant overrides kept), audited as `set-tier`, in one
//!    control transaction. Until here the source is the tenant's data: a run that finds this
//!    step undone runs steps 2-6 again, the copy into a cleaned target.
//! 8. **sync features**: the entitled features written into the target.
//! 9. **remove source**: the pooled rows deleted, or the silo's database and role dropped,
//!    only after checking their marks; the source buckets removed (after copying any object
//!    that reached them since step 6).
//! 10. **reopen**: the target opened to the tenant (`resume`'s path: migrated, granted, features
//!     written, then login and CONNECT, or the suspension row lifted), or kept closed when the
//!     tenant was suspended.
//! 11. **finish**: `moving` → the status it started from (audit `move`), the move's row and
//!     journal removed, in one transaction.
//!
//! Steps 8-11 run once each, as their journal says. The whole run holds the tenant's lock.
//! While the tenant is `moving`, `set-tier <slug> <new tier>` (the same command) finishes the
//! move, `set-tier <slug> <old tier>` before the switch cancels it (the target removed, the
//! source reopened as it was), and every other lifecycle command is refused naming both;
//! `purge` settles the move first (removes whichever side is not the tenant's data), then
//! purges as always.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use chrono::Utc;

use super::tenants::{self, TenantView};
use super::{failpoint, lifecycle, ownership, provision, ControlPlane, Reporter, StepResult};
use crate::action::Action;
use crate::db::copy::{self, TableRows};
use crate::db::dataplane::{self, Found, Object};
use crate::db::moves::MoveRecord;
use crate::error::Failure;
use crate::move_step::{MoveKind, MoveStep};
use crate::period::Period;
use crate::resource::Kind;
use crate::server_name::ServerName;
use crate::storage::{self, Owner, TenantBucket};
use crate::tenant::{Status, Tenant};
use crate::tier::{Isolation, Tier};
use crate::transition::Transition;

/// `set-tier` to a tier of the other isolation model: checks, records the move (step 1), runs
/// it. The caller holds the tenant's lock and has checked that the tenant may change tiers.
pub(super) async fn change_isolation(
    plane: &ControlPlane,
    t: &Tenant,
    tier_name: &str,
    tier: &Tier,
    reporter: &dyn Reporter,
) -> Result<TenantView> {
    let kind = match tier.isolation {
        Isolation::Siloed => MoveKind::Upgrade,
        Isolation::Pooled => MoveKind::Downgrade,
    };
    let naming = &plane.ctx.naming;
    let (to_database, to_role) = match tier.isolation {
        Isolation::Siloed => (naming.siloed(&t.slug), naming.siloed(&t.slug)),
        Isolation::Pooled => (naming.pooled_database(), naming.pooled_app_role()),
    };
    // The target goes where a new tenant of the new tier would (a silo: the most capacity
    // left; pooled: the least-loaded pooled server), decided under the placement lock and
    // recorded with the move (which counts against the target's capacity from then on).
    // Within the region of the tenant's server when it has one: a tier change never takes a
    // tenant out of its region (refused, exit 3, when no server there can take it).
    let placing = plane.control.lock_placement().await?;
    let region = super::servers::region_of(plane, &t.server).await?;
    let to_server =
        super::servers::place(plane, tier_name, tier.isolation, None, region.as_ref()).await?;
    let m = MoveRecord {
        tenant: t.id,
        kind,
        return_status: t.status,
        from_tier: t.tier.clone(),
        to_tier: tier_name.to_owned(),
        from_isolation: t.isolation,
        to_isolation: tier.isolation,
        from_database: t.database.clone(),
        from_role: t.role.clone(),
        to_database,
        to_role,
        from_server: Some(t.server.clone()),
        to_server: Some(to_server),
        started_at: Utc::now(),
    };
    // Everything that could refuse is checked before anything is written.
    ownership::check_ours(plane, t).await?;
    let (_, target) = sides(t, &m);
    check_target(plane, &target).await?;
    if kind == MoveKind::Downgrade {
        refuse_over_hard_limits(plane, t, tier_name, tier).await?;
    }
    let details = serde_json::json!({
        "kind": kind.as_str(),
        "from_tier": m.from_tier,
        "to_tier": m.to_tier,
        "from_isolation": m.from_isolation.as_str(),
        "to_isolation": m.to_isolation.as_str(),
    });
    let from: Vec<Status> = Transition::sources(Action::MoveStart)
        .into_iter()
        .filter(|s| *s != Status::Moving)
        .collect();
    begin(plane, t, &m, &from, &details, Some(tier), reporter, placing).await
}

/// Step `record_move` of a new move (the tenant becomes `moving` from one of `from`, in one
/// control transaction with the move's record and audit `details`), then the placement lock
/// `placing` is let go (the target's place is taken by the record) and the move carried on.
#[allow(clippy::too_many_arguments)]
async fn begin<L>(
    plane: &ControlPlane,
    t: &Tenant,
    m: &MoveRecord,
    from: &[Status],
    details: &serde_json::Value,
    tier: Option<&Tier>,
    reporter: &dyn Reporter,
    placing: L,
) -> Result<TenantView> {
    let run = MoveRun::new(plane, t, reporter, BTreeSet::new());
    run.step(MoveStep::RecordMove, || async {
        if plane
            .control
            .begin_move(t, m, from, &plane.ctx.actor, details)
            .await?
        {
            Ok(serde_json::json!({}))
        } else {
            Err(changed_meanwhile(t))
        }
    })
    .await?;
    drop(placing);
    let mut moving = t.clone();
    moving.status = Status::Moving;
    forward(plane, &moving, m, tier, reporter, false).await
}

/// `set-tier` of a tenant that is `moving`: to the move's new tier, the move goes on from where
/// its journal says; to its old tier before the switch, it is cancelled; anything else is
/// refused, naming both.
pub(super) async fn continue_move(
    plane: &ControlPlane,
    t: &Tenant,
    tier_name: &str,
    tier: &Tier,
    reporter: &dyn Reporter,
) -> Result<TenantView> {
    let m = recorded(plane, t).await?;
    let switched = plane
        .control
        .move_steps(t.id)
        .await?
        .contains(&MoveStep::Switch);
    if m.kind == MoveKind::Server {
        return Err(Failure::Refused(refusal_text(t, &m, switched, "change the tier of")).into());
    }
    if tier_name == m.to_tier {
        if tier.isolation != m.to_isolation {
            return Err(Failure::Refused(format!(
                "tier `{tier_name}` is {} now, but tenant `{}` is being moved to it as {}; restore the tier file, or cancel the move with `tenantctl set-tier {} {}`",
                tier.isolation, t.slug, m.to_isolation, t.slug, m.from_tier
            ))
            .into());
        }
        reporter.status(&format!(
            "resuming the move of tenant `{}` from tier `{}` to `{}`",
            t.slug, m.from_tier, m.to_tier
        ));
        return forward(plane, t, &m, Some(tier), reporter, true).await;
    }
    if tier_name == m.from_tier && !switched {
        reporter.status(&format!(
            "cancelling the move of tenant `{}` to tier `{}`: its data stays where it was",
            t.slug, m.to_tier
        ));
        return cancel(plane, t, &m).await;
    }
    Err(Failure::Refused(refusal_text(t, &m, switched, "change the tier of")).into())
}

/// Why a command other than `set-tier` refuses a moving tenant, naming what to run (exit 3).
pub(super) async fn refuse_moving(plane: &ControlPlane, t: &Tenant, what: &str) -> anyhow::Error {
    let m = match recorded(plane, t).await {
        Ok(m) => m,
        Err(e) => return e,
    };
    let switched = match plane.control.move_steps(t.id).await {
        Ok(steps) => steps.contains(&MoveStep::Switch),
        Err(e) => return e,
    };
    Failure::Refused(refusal_text(t, &m, switched, what)).into()
}

fn refusal_text(t: &Tenant, m: &MoveRecord, switched: bool, what: &str) -> String {
    let slug = &t.slug;
    if m.kind == MoveKind::Server {
        let (from, to) = server_names(m);
        let cancel = if switched {
            String::new()
        } else {
            format!(", or `tenantctl move {slug} --to {from}` to cancel it")
        };
        return format!(
            "cannot {what} tenant `{slug}`: it is moving from server `{from}` to `{to}`; run `tenantctl move {slug} --to {to}` to finish the move{cancel}"
        );
    }
    let cancel = if switched {
        String::new()
    } else {
        format!(
            ", or `tenantctl set-tier {slug} {}` to cancel it",
            m.from_tier
        )
    };
    format!(
        "cannot {what} tenant `{slug}`: it is moving from tier `{}` to `{}`; run `tenantctl set-tier {slug} {}` to finish the move{cancel}",
        m.from_tier, m.to_tier, m.to_tier
    )
}

/// The move recorded for a moving tenant.
async fn recorded(plane: &ControlPlane, t: &Tenant) -> Result<MoveRecord> {
    plane.control.find_move(t.id).await?.with_context(|| {
        format!(
            "tenant `{}` is moving but no move is recorded for it (was the control database edited by hand?)",
            t.slug
        )
    })
}

fn changed_meanwhile(t: &Tenant) -> anyhow::Error {
    anyhow::anyhow!(
        "the status of tenant `{}` changed while tenantctl held its lock; run the command again",
        t.slug
    )
}

/// The tenant as its source and as its target: the records the data-plane functions take
/// (names, isolation, tier) for each side of the move.
fn sides(t: &Tenant, m: &MoveRecord) -> (Tenant, Tenant) {
    let mut source = t.clone();
    source.tier = m.from_tier.clone();
    source.isolation = m.from_isolation;
    source.database = m.from_database.clone();
    source.role = m.from_role.clone();
    source.server = m.from_server.clone().unwrap_or_else(ServerName::control);
    let mut target = t.clone();
    target.tier = m.to_tier.clone();
    target.isolation = m.to_isolation;
    target.database = m.to_database.clone();
    target.role = m.to_role.clone();
    target.server = m.to_server.clone().unwrap_or_else(ServerName::control);
    (source, target)
}

/// Steps 2-11, each skipped when it comes after the switch and its journal has it (step 1 is
/// reported as done when `resumed`: an earlier run recorded the move).
async fn forward(
    plane: &ControlPlane,
    t: &Tenant,
    m: &MoveRecord,
    tier: Option<&Tier>,
    reporter: &dyn Reporter,
    resumed: bool,
) -> Result<TenantView> {
    let done: BTreeSet<MoveStep> = plane.control.move_steps(t.id).await?.into_iter().collect();
    let switched = done.contains(&MoveStep::Switch);
    let run = MoveRun::new(plane, t, reporter, done);
    if resumed {
        run.skip(MoveStep::RecordMove);
    }
    let (source, target) = sides(t, m);
    if switched {
        for step in [
            MoveStep::CloseSource,
            MoveStep::CreateTarget,
            MoveStep::ApplySchema,
            MoveStep::CopyRows,
            MoveStep::CopyBuckets,
            MoveStep::Switch,
        ] {
            run.skip(step);
        }
    } else {
        run.step(MoveStep::CloseSource, || async {
            close_source(plane, &source).await?;
            Ok(serde_json::json!({}))
        })
        .await?;
        run.step(MoveStep::CreateTarget, || async {
            create_target(plane, &target).await?;
            Ok(serde_json::json!({}))
        })
        .await?;
        run.step(MoveStep::ApplySchema, || async {
            let version = if m.kind == MoveKind::Server {
                // The target gets its schema from the dump (step 5).
                let mut conn = None;
                provision::apply_schema(plane, &source, &mut conn).await?;
                copy::schema_version(&*conn.context("the source database's connection")?).await?
            } else {
                apply_schema(plane, &source, &target).await?
            };
            Ok(serde_json::json!({ "schema_version": version }))
        })
        .await?;
        run.step(MoveStep::CopyRows, || async {
            let tables = if m.kind == MoveKind::Server {
                dump_restore(plane, &source, &target).await?
            } else {
                copy_rows(plane, &source, &target).await?
            };
            let rows: i64 = tables.iter().map(|t| t.rows).sum();
            reporter.status(&format!(
                "copied {} of tenant `{}` into `{}`, counts verified per table",
                crate::words::count(rows, "row", "rows"),
                t.slug,
                target.database
            ));
            Ok(serde_json::json!({ "rows": rows, "tables": tables }))
        })
        .await?;
        run.step(MoveStep::CopyBuckets, || async {
            let objects = copy_buckets(plane, &source, &target).await?;
            Ok(serde_json::json!({ "objects": objects }))
        })
        .await?;
        let t0 = Instant::now();
        run.step(MoveStep::Switch, || async {
            let switched = match tier {
                None => {
                    plane
                        .control
                        .switch_server(t, m, &plane.ctx.actor, millis(t0.elapsed()))
                        .await?
                }
                Some(tier) => {
                    plane
                        .control
                        .switch_move(
                            t,
                            m,
                            &tier.quota_rows(),
                            &tier.features.names(),
                            &plane.ctx.actor,
                            millis(t0.elapsed()),
                        )
                        .await?
                }
            };
            if !switched {
                return Err(changed_meanwhile(t));
            }
            Ok(serde_json::json!({}))
        })
        .await?;
    }
    run.step(MoveStep::SyncFeatures, || async {
        super::features::sync(plane, &target).await?;
        Ok(serde_json::json!({}))
    })
    .await?;
    run.step(MoveStep::RemoveSource, || async {
        remove_source(plane, &source, &target).await?;
        Ok(serde_json::json!({ "database": source.database }))
    })
    .await?;
    run.step(MoveStep::Reopen, || async {
        match m.return_status {
            Status::Suspended => lifecycle::close(plane, &target).await?,
            _ => lifecycle::open(plane, &target, command(m)).await?,
        }
        Ok(serde_json::json!({ "status": m.return_status.as_str() }))
    })
    .await?;
    run.step(MoveStep::Finish, || async {
        let details = move_details(m, false);
        if plane
            .control
            .end_move(t, m.return_status, &plane.ctx.actor, &details)
            .await?
        {
            Ok(serde_json::json!({}))
        } else {
            Err(changed_meanwhile(t))
        }
    })
    .await?;
    if m.kind == MoveKind::Server {
        reporter.status(&format!(
            "tenant `{}` moved from server `{}` to `{}`",
            t.slug, source.server, target.server
        ));
    } else {
        reporter.status(&format!(
            "tenant `{}` moved from tier `{}` ({}) to `{}` ({})",
            t.slug, m.from_tier, m.from_isolation, m.to_tier, m.to_isolation
        ));
    }
    tenants::view(plane, tenants::find(plane, &t.slug).await?).await
}

/// Cancels a move before its switch: the target's copy removed, the source reopened as the
/// tenant's status was, `moving` ended (audited as `move`, `cancelled`). Each part is
/// idempotent, so a cancel killed midway is finished (or the move resumed) by a re-run.
async fn cancel(plane: &ControlPlane, t: &Tenant, m: &MoveRecord) -> Result<TenantView> {
    let (source, target) = sides(t, m);
    remove_target(plane, &source, &target).await?;
    failpoint(&plane.ctx, "move:cancel:removed");
    match m.return_status {
        Status::Suspended => lifecycle::close(plane, &source).await?,
        _ => lifecycle::open(plane, &source, command(m)).await?,
    }
    let details = move_details(m, true);
    if !plane
        .control
        .end_move(t, m.return_status, &plane.ctx.actor, &details)
        .await?
    {
        return Err(changed_meanwhile(t));
    }
    tenants::view(plane, tenants::find(plane, &t.slug).await?).await
}

/// Before a purge of a moving tenant: the side of the move that is not the tenant's data is
/// removed (the target before the switch, the source after it) and the move's journal closed;
/// the purge then removes the side the tenant record names, as for any tenant.
pub(super) async fn settle_for_purge(
    plane: &ControlPlane,
    t: &Tenant,
    reporter: &dyn Reporter,
) -> Result<()> {
    let Some(m) = plane.control.find_move(t.id).await? else {
        return Ok(());
    };
    let (source, target) = sides(t, &m);
    if plane
        .control
        .move_steps(t.id)
        .await?
        .contains(&MoveStep::Switch)
    {
        remove_source(plane, &source, &target).await?;
    } else {
        remove_target(plane, &source, &target).await?;
    }
    plane.control.drop_move(t.id).await?;
    let to = match m.kind {
        MoveKind::Server => format!("server `{}`", server_names(&m).1),
        MoveKind::Upgrade | MoveKind::Downgrade => format!("tier `{}`", m.to_tier),
    };
    reporter.status(&format!(
        "settled the move of tenant `{}` to {to} before purging it",
        t.slug
    ));
    Ok(())
}

/// The target's names are free, or carry the tenant's mark (a run of this move made them):
/// a foreign database, role or bucket is refused (exit 3) before anything is written.
async fn check_target(plane: &ControlPlane, target: &Tenant) -> Result<()> {
    let mark = ownership::mark(plane, target).await?;
    let admin = plane.fleet.admin_for(target).await?;
    if target.server.is_control() && target.database == plane.control.name() {
        return Err(dataplane::refusal(Object::Database(&target.database), None).into());
    }
    for obj in [
        Object::Database(&target.database),
        Object::Role(&target.role),
    ] {
        if let Found::Foreign { comment, .. } = dataplane::inspect(&admin, obj, &mark).await? {
            return Err(dataplane::refusal(obj, comment.as_deref()).into());
        }
    }
    let bmark = ownership::bucket_mark(plane, target).await?;
    for b in storage::buckets(&target.slug, target.isolation) {
        if let Owner::Foreign(found) = plane.store.owner(&b, bmark.as_str())? {
            return Err(storage::refusal(&plane.store.location(&b), found.as_deref()).into());
        }
    }
    Ok(())
}

/// A downgrade is refused (exit 3, nothing changed) while the tenant is over a hard limit of
/// its new tier: the limit it will have there (the tier's, or its override, which a tier change
/// keeps) against this month's metered total and its measured levels now (measured, not
/// stored: a refusal changes nothing). Storage is measured as the silo it is now, which counts
/// the empty database's own size too: the check errs on the side of refusing.
async fn refuse_over_hard_limits(
    plane: &ControlPlane,
    t: &Tenant,
    tier_name: &str,
    tier: &Tier,
) -> Result<()> {
    let period = Period::containing(Utc::now());
    let rows = plane.control.quota_usage(t.id, period).await?;
    let measured = super::usage::measure_levels(plane, std::slice::from_ref(t)).await?;
    if let Some(f) = measured.failed.first() {
        anyhow::bail!(
            "could not measure {} of `{}` to check it against tier `{tier_name}`'s hard limits: {}",
            f.kept.join(", "),
            t.slug,
            crate::excerpt::excerpt_n(&f.reason, crate::excerpt::REASON_CHARS)
        );
    }
    let now = measured.measurements.first();
    let mut over = Vec::new();
    for q in &rows {
        if tier.overage.price(q.resource).is_some() {
            continue; // soft there: billed, not refused
        }
        let limit = if q.source == "override" {
            q.limit
        } else {
            i64::try_from(tier.limits.get(q.resource)).unwrap_or(i64::MAX)
        };
        let used = match (q.resource.kind(), q.resource) {
            (Kind::Metered, _) => q.metered,
            (Kind::Measured, crate::resource::Resource::Users) => now
                .and_then(|m| m.users)
                .or(q.measured.map(|m| m.0))
                .unwrap_or(0),
            (Kind::Measured, _) => now
                .and_then(|m| m.storage_bytes)
                .map(super::usage::storage_mb)
                .or(q.measured.map(|m| m.0))
                .unwrap_or(0),
        };
        if used > limit {
            over.push(format!("{} {used} > {limit}", q.resource));
        }
    }
    if over.is_empty() {
        return Ok(());
    }
    Err(Failure::Refused(format!(
        "cannot move tenant `{}` to tier `{tier_name}`: it is over the tier's hard limits ({}); lower its usage or raise a limit with `tenantctl quota set` first; nothing changed",
        t.slug,
        over.join(", ")
    ))
    .into())
}

/// Step 2. Idempotent.
async fn close_source(plane: &ControlPlane, source: &Tenant) -> Result<()> {
    let admin = plane.fleet.admin_for(source).await?;
    anyhow::ensure!(
        dataplane::accepts_connections(&admin, &source.database)
            .await?
            .is_some(),
        "the tenant's database `{}` does not exist",
        source.database
    );
    drop(admin);
    lifecycle::close(plane, source).await?;
    if source.isolation == Isolation::Siloed {
        // For tenantctl only: the role stays without login and CONNECT.
        let mark = ownership::settled_mark(plane, source).await?;
        dataplane::allow_connections(
            &*plane.fleet.admin_for(source).await?,
            &mark,
            &source.database,
        )
        .await?;
    }
    Ok(())
}

/// Step 3. Idempotent: provisioning's step, then (a silo) closed to the tenant.
async fn create_target(plane: &ControlPlane, target: &Tenant) -> Result<()> {
    match target.isolation {
        Isolation::Siloed => {
            provision::create_database(plane, target).await?;
            let mark = ownership::settled_mark(plane, target).await?;
            let admin = plane.fleet.admin_for(target).await?;
            dataplane::close_silo(&admin, &mark, &target.database, &target.role).await?;
            dataplane::allow_connections(&admin, &mark, &target.database).await
        }
        Isolation::Pooled => {
            let _pooled = plane.control.lock_pooled(&target.server).await?;
            provision::create_database(plane, target).await
        }
    }
}

/// Step 4: both databases migrated and granted; a pooled target closed to the tenant (its
/// suspension row) before it holds any of its rows. Returns the schema version.
async fn apply_schema(plane: &ControlPlane, source: &Tenant, target: &Tenant) -> Result<i32> {
    let pooled = [source, target]
        .into_iter()
        .find(|t| t.isolation == Isolation::Pooled);
    let _pooled = match pooled {
        Some(side) => Some(plane.control.lock_pooled(&side.server).await?),
        None => None,
    };
    provision::apply_schema(plane, source, &mut None).await?;
    let mut conn = None;
    provision::apply_schema(plane, target, &mut conn).await?;
    let mut client = conn.context("the target database's connection")?;
    if target.isolation == Isolation::Pooled {
        dataplane::set_pooled_suspension(&mut client, target.id, true).await?;
    }
    copy::schema_version(&*client).await
}

/// Step 5.
async fn copy_rows(
    plane: &ControlPlane,
    source: &Tenant,
    target: &Tenant,
) -> Result<Vec<TableRows>> {
    let mut from = ownership::connect(plane, source).await?;
    let mut to = ownership::connect(plane, target).await?;
    copy::copy_tenant_rows(&mut from, &mut to, target.id, || {
        failpoint(&plane.ctx, "move:copy_rows:before-commit")
    })
    .await
}

/// The tenant's buckets on each side, where the two are in different places.
fn moved_buckets(
    plane: &ControlPlane,
    source: &Tenant,
    target: &Tenant,
) -> Vec<(TenantBucket, TenantBucket)> {
    storage::buckets(&source.slug, source.isolation)
        .into_iter()
        .zip(storage::buckets(&target.slug, target.isolation))
        .filter(|(a, b)| plane.store.location(a) != plane.store.location(b))
        .collect()
}

/// Copies every object of `from` that `to` lacks or holds with another size. Returns how
/// many it copied.
fn copy_objects(plane: &ControlPlane, from: &TenantBucket, to: &TenantBucket) -> Result<usize> {
    let have: std::collections::HashMap<String, u64> = plane
        .store
        .list(to, "")?
        .into_iter()
        .map(|o| (o.key, o.size))
        .collect();
    let mut copied = 0;
    for o in plane.store.list(from, "")? {
        if have.get(&o.key) == Some(&o.size) {
            continue;
        }
        if let Some(data) = plane.store.get(from, &o.key)? {
            plane.store.put(to, &o.key, data)?;
            copied += 1;
        }
    }
    Ok(copied)
}

/// Step 6: the target buckets created with the tenant's mark and every source object copied
/// in. Idempotent. Returns how many objects it copied.
async fn copy_buckets(plane: &ControlPlane, source: &Tenant, target: &Tenant) -> Result<usize> {
    let mark = ownership::bucket_mark(plane, source).await?;
    let mut copied = 0;
    for (from, to) in moved_buckets(plane, source, target) {
        ownership::create_bucket(plane, &to, &mark).await?;
        match plane.store.owner(&from, mark.as_str())? {
            Owner::Ours => copied += copy_objects(plane, &from, &to)?,
            Owner::Absent => {}
            Owner::Foreign(found) => {
                return Err(storage::refusal(&plane.store.location(&from), found.as_deref()).into())
            }
        }
    }
    Ok(copied)
}

/// Step 9 (and a purge after the switch): the source's copy of the tenant removed, its marks
/// checked first. Idempotent.
async fn remove_source(plane: &ControlPlane, source: &Tenant, target: &Tenant) -> Result<()> {
    remove_side(plane, source).await?;
    let mark = ownership::bucket_mark(plane, source).await?;
    for (from, to) in moved_buckets(plane, source, target) {
        if plane.store.owner(&from, mark.as_str())? == Owner::Ours {
            // Objects that reached the source since the copy go along.
            copy_objects(plane, &from, &to)?;
        }
        ownership::remove_bucket(plane, &from, &mark).await?;
    }
    Ok(())
}

/// A cancelled move (and a purge before the switch): the target's copy removed, its marks
/// checked first. Idempotent.
async fn remove_target(plane: &ControlPlane, source: &Tenant, target: &Tenant) -> Result<()> {
    remove_side(plane, target).await?;
    let mark = ownership::bucket_mark(plane, target).await?;
    for (_, to) in moved_buckets(plane, source, target) {
        ownership::remove_bucket(plane, &to, &mark).await?;
    }
    Ok(())
}

/// The tenant's data on one side: a silo dropped (database and role, both marks checked before
/// either goes), or the tenant's rows deleted from the shared pooled database (its mark
/// checked). Idempotent.
async fn remove_side(plane: &ControlPlane, side: &Tenant) -> Result<()> {
    let admin = plane.fleet.admin_for(side).await?;
    match side.isolation {
        Isolation::Siloed => {
            if (side.server.is_control() && side.database == plane.control.name())
                || side.database == plane.ctx.naming.pooled_database()
            {
                return Err(dataplane::refusal(Object::Database(&side.database), None).into());
            }
            let mark = ownership::settled_mark(plane, side).await?;
            ownership::settle_interrupted_create(
                plane,
                &admin,
                &side.server,
                &side.database,
                &mark,
            )
            .await?;
            dataplane::drop_silo(&admin, &mark, &side.database, &side.role).await?;
            plane
                .control
                .release_database_claim(&side.server, &side.database)
                .await
        }
        Isolation::Pooled => {
            if dataplane::accepts_connections(&admin, &side.database)
                .await?
                .is_none()
            {
                return Ok(());
            }
            drop(admin);
            let mut client = ownership::connect(plane, side).await?;
            dataplane::purge_pooled_rows(&mut client, side.id).await?;
            Ok(())
        }
    }
}

/// The command a move belongs to (`set-tier` or `move`), for failpoints and messages.
fn command(m: &MoveRecord) -> &'static str {
    match m.kind {
        MoveKind::Server => "move",
        MoveKind::Upgrade | MoveKind::Downgrade => "set-tier",
    }
}

/// The source and target servers of a move (`main` for a move recorded without them).
fn server_names(m: &MoveRecord) -> (ServerName, ServerName) {
    (
        m.from_server.clone().unwrap_or_else(ServerName::control),
        m.to_server.clone().unwrap_or_else(ServerName::control),
    )
}

/// The audit details of a move's end (finished or `cancelled`).
fn move_details(m: &MoveRecord, cancelled: bool) -> serde_json::Value {
    let mut details = serde_json::json!({
        "kind": m.kind.as_str(),
        "from_tier": m.from_tier,
        "to_tier": m.to_tier,
    });
    if m.kind == MoveKind::Server {
        let (from, to) = server_names(m);
        details["from_server"] = serde_json::json!(from);
        details["to_server"] = serde_json::json!(to);
    }
    if cancelled {
        details["cancelled"] = serde_json::json!(true);
    }
    details
}

/// `move <slug> --to <server>` (the caller holds the tenant's lock). A tenant not moving: a
/// siloed tenant's database goes to server `to` (checks, step 1, the run). A tenant moving
/// between servers: `to` its target finishes the move, `to` its source before the switch
/// cancels it; anything else is refused naming both.
pub(super) async fn relocate(
    plane: &ControlPlane,
    t: &Tenant,
    to: &ServerName,
    region: Option<&str>,
    reporter: &dyn Reporter,
) -> Result<TenantView> {
    if t.status == Status::Moving {
        let m = recorded(plane, t).await?;
        let switched = plane
            .control
            .move_steps(t.id)
            .await?
            .contains(&MoveStep::Switch);
        let (from_server, to_server) = server_names(&m);
        if m.kind == MoveKind::Server && *to == to_server {
            reporter.status(&format!(
                "resuming the move of tenant `{}` from server `{from_server}` to `{to_server}`",
                t.slug
            ));
            return forward(plane, t, &m, None, reporter, true).await;
        }
        if m.kind == MoveKind::Server && *to == from_server && !switched {
            reporter.status(&format!(
                "cancelling the move of tenant `{}` to server `{to_server}`: its data stays on `{from_server}`",
                t.slug
            ));
            return cancel(plane, t, &m).await;
        }
        return Err(Failure::Refused(refusal_text(t, &m, switched, "move")).into());
    }
    if t.isolation != Isolation::Siloed {
        return Err(Failure::Refused(format!(
            "tenant `{}` is pooled: its rows share the pooled database of server `{}`; `move` takes siloed tenants, give it a siloed tier with `tenantctl set-tier {} <tier>` (placed like a new silo); nothing changed",
            t.slug, t.server, t.slug
        ))
        .into());
    }
    let from: Vec<Status> = Transition::sources(Action::MoveStart)
        .into_iter()
        .filter(|s| *s != Status::Moving)
        .collect();
    if !from.contains(&t.status) {
        return Err(Failure::Refused(format!(
            "cannot move tenant `{}`: it is {} (only an active or suspended tenant can be moved)",
            t.slug, t.status
        ))
        .into());
    }
    if *to == t.server {
        return Err(Failure::Refused(format!(
            "tenant `{}` is on server `{to}` already; nothing changed",
            t.slug
        ))
        .into());
    }
    let placing = plane.control.lock_placement().await?;
    let servers = plane.control.server_loads().await?;
    let candidates: Vec<crate::placement::Candidate> = servers
        .iter()
        .map(|(row, load)| row.candidate(*load))
        .collect();
    crate::placement::choose(&candidates, &t.tier, Isolation::Siloed, Some(to), None).map_err(
        |e| match e {
            Failure::Refused(why) => Failure::Refused(why.replace(
                "; nothing was created",
                &format!("; tenant `{}` stays on `{}`", t.slug, t.server),
            )),
            other => other,
        },
    )?;
    let region_of = |name: &ServerName| {
        servers
            .iter()
            .find(|(row, _)| row.name == *name)
            .and_then(|(row, _)| row.region.clone())
    };
    if let (Some(here), Some(there)) = (region_of(&t.server), region_of(to)) {
        if here != there && region != Some(there.as_str()) {
            return Err(Failure::Refused(format!(
                "server `{to}` is in region `{there}`, tenant `{}` in `{here}`: moving its data across regions needs `--region {there}`; nothing changed",
                t.slug
            ))
            .into());
        }
    }
    plane.fleet.reach(to).await?;
    let m = MoveRecord {
        tenant: t.id,
        kind: MoveKind::Server,
        return_status: t.status,
        from_tier: t.tier.clone(),
        to_tier: t.tier.clone(),
        from_isolation: t.isolation,
        to_isolation: t.isolation,
        from_database: t.database.clone(),
        from_role: t.role.clone(),
        to_database: t.database.clone(),
        to_role: t.role.clone(),
        from_server: Some(t.server.clone()),
        to_server: Some(to.clone()),
        started_at: Utc::now(),
    };
    ownership::check_ours(plane, t).await?;
    let (_, target) = sides(t, &m);
    check_target(plane, &target).await?;
    let details = serde_json::json!({
        "kind": MoveKind::Server.as_str(),
        "from_server": t.server,
        "to_server": to,
    });
    begin(plane, t, &m, &from, &details, None, reporter, placing).await
}

/// Step 5 of a move between servers: the source silo copied into the target with
/// `pg_dump -Fc -Z0 | pg_restore`, then verified. The source is read from one exported snapshot
/// (its row counts from the same one, counted while the dump runs); `pg_dump` connects as the
/// admin (the closed silo allows connections, the tenant's role has neither LOGIN nor CONNECT)
/// with the tenant's context set, which the forced row-level policies need to show it the rows. `pg_restore` runs in one
/// transaction with `--clean --if-exists`, so a killed run leaves the target as step 3 made it
/// or wholly restored, and a re-run restores over either; without owners and grants (the
/// target's admin owns what it restores; `apply_schema` grants the tenant's role). Verified:
/// every table's rows and the schema version, target against source. Idempotent.
async fn dump_restore(
    plane: &ControlPlane,
    source: &Tenant,
    target: &Tenant,
) -> Result<Vec<TableRows>> {
    let client = ownership::connect(plane, source).await?;
    let snapshot = crate::db::backup::export_snapshot(&client).await?;
    let version = copy::schema_version(&*client).await?;
    let bindir = crate::cluster::pg_bindir(plane.ctx.pg_bindir.as_deref())?;
    let mut dump = std::process::Command::new(bindir.join("pg_dump"));
    // Uncompressed: the archive only crosses a pipe to pg_restore on this machine, where
    // compressing it is CPU taken from the two processes and both servers (a quarter of the
    // copy's time for 100 MB: `cargo bench --bench relocate`).
    dump.args([
        "--format=custom",
        "--compress=0",
        "--no-password",
        "--enable-row-security",
    ])
    .arg(format!("--snapshot={snapshot}"))
    .envs(
        plane
            .fleet
            .libpq_env(&source.server, &source.database)
            .await?,
    )
    .env("PGOPTIONS", format!("-c app.tenant_id={}", source.id))
    .stdin(std::process::Stdio::null())
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::piped());
    let mut restore = std::process::Command::new(bindir.join("pg_restore"));
    restore
        .args([
            "--no-owner",
            "--no-acl",
            "--clean",
            "--if-exists",
            "--exit-on-error",
            "--single-transaction",
            "--no-password",
        ])
        .arg(format!("--dbname={}", target.database))
        .envs(
            plane
                .fleet
                .libpq_env(&target.server, &target.database)
                .await?,
        )
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    let piping = tokio::task::spawn_blocking(move || -> std::io::Result<_> {
        let mut dumper = dump.spawn()?;
        let pipe = dumper.stdout.take().expect("piped");
        let restorer = restore.stdin(pipe).spawn();
        let restorer = match restorer {
            Ok(r) => r,
            Err(e) => {
                let _ = dumper.kill();
                let _ = dumper.wait();
                return Err(e);
            }
        };
        let restored = restorer.wait_with_output()?;
        let dumped = dumper.wait_with_output()?;
        Ok((dumped, restored))
    });
    // The source's rows are counted in the dump's snapshot while the dump runs (on its own
    // backend: the two overlap); the pipe is waited for before any error is returned.
    let counted = crate::db::backup::count_rows(&*client, source.id).await;
    let (dumped, restored) = piping
        .await
        .context("waiting for pg_dump | pg_restore")?
        .context("running pg_dump | pg_restore")?;
    let counts = counted?;
    // The snapshot is held until pg_dump has finished with it.
    client
        .batch_execute("COMMIT")
        .await
        .context("ending the move's snapshot")?;
    drop(client);
    let excerpt = |o: &std::process::Output| {
        crate::excerpt::excerpt_n(String::from_utf8_lossy(&o.stderr).trim(), 300)
    };
    if !dumped.status.success() {
        anyhow::bail!(
            "pg_dump of `{}` on server `{}` failed ({}): {}",
            source.database,
            source.server,
            dumped.status,
            excerpt(&dumped)
        );
    }
    if !restored.status.success() {
        anyhow::bail!(
            "pg_restore into `{}` on server `{}` failed ({}): {}",
            target.database,
            target.server,
            restored.status,
            excerpt(&restored)
        );
    }
    failpoint(&plane.ctx, "move:copy_rows:restored");
    // The tenant's role granted what the schema gives it (the dump carries no grants).
    let mut conn = None;
    provision::apply_schema(plane, target, &mut conn).await?;
    let mut to = conn.context("the target database's connection")?;
    let tx = to.transaction().await.context("verifying the copy")?;
    let found = crate::db::backup::count_rows(&tx, target.id).await?;
    let found_version = copy::schema_version(&tx).await?;
    tx.rollback().await.context("verifying the copy")?;
    anyhow::ensure!(
        found_version == version,
        "the copy of `{}` did not verify: schema version {found_version} on server `{}`, {version} on `{}`",
        target.database,
        target.server,
        source.server
    );
    let mut tables = Vec::new();
    for (table, rows) in counts {
        let there = found.iter().find(|(n, _)| *n == table).map(|(_, r)| *r);
        anyhow::ensure!(
            there == Some(rows),
            "the copy of `{}` did not verify: table {table} has {} rows on server `{}`, {rows} on `{}`",
            target.database,
            there.map_or("no".to_owned(), |r| r.to_string()),
            target.server,
            source.server
        );
        tables.push(TableRows { table, rows });
    }
    Ok(tables)
}

fn millis(d: Duration) -> i32 {
    i32::try_from(d.as_millis()).unwrap_or(i32::MAX)
}

/// Runs, reports and journals the steps of one run of a move.
struct MoveRun<'a> {
    plane: &'a ControlPlane,
    tenant: &'a Tenant,
    reporter: &'a dyn Reporter,
    done: BTreeSet<MoveStep>,
}

impl<'a> MoveRun<'a> {
    fn new(
        plane: &'a ControlPlane,
        tenant: &'a Tenant,
        reporter: &'a dyn Reporter,
        done: BTreeSet<MoveStep>,
    ) -> MoveRun<'a> {
        MoveRun {
            plane,
            tenant,
            reporter,
            done,
        }
    }

    fn skip(&self, step: MoveStep) {
        let (n, total) = (step.number(), MoveStep::ALL.len());
        self.reporter.step_started(n, total, step.label());
        self.reporter.step_finished(
            n,
            total,
            step.label(),
            StepResult::AlreadyDone,
            Duration::ZERO,
        );
    }

    /// Runs `step` (unless it comes after the switch and is journaled), reports it and
    /// journals it with the details its work returns; `record_move`, `switch` and `finish`
    /// journal themselves in their transaction. Failpoints `move:<step>` (work done, not
    /// journaled) and `move:<step>:journaled`.
    async fn step<F, Fut>(&self, step: MoveStep, work: F) -> Result<()>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<serde_json::Value>>,
    {
        if step.after_switch() && self.done.contains(&step) {
            self.skip(step);
            return Ok(());
        }
        let (n, total, name) = (step.number(), MoveStep::ALL.len(), step.label());
        self.reporter.step_started(n, total, name);
        let t0 = Instant::now();
        let result: Result<()> = async {
            let details = work().await?;
            let ctx = &self.plane.ctx;
            failpoint(ctx, &format!("move:{step}"));
            if !matches!(
                step,
                MoveStep::RecordMove | MoveStep::Switch | MoveStep::Finish
            ) {
                self.plane
                    .control
                    .journal_move_step(self.tenant.id, step, millis(t0.elapsed()), &details)
                    .await?;
            }
            failpoint(ctx, &format!("move:{step}:journaled"));
            Ok(())
        }
        .await;
        match result {
            Ok(()) => {
                self.reporter
                    .step_finished(n, total, name, StepResult::Done, t0.elapsed());
                Ok(())
            }
            Err(e) => {
                self.reporter
                    .step_finished(n, total, name, StepResult::Failed, t0.elapsed());
                Err(e.context(format!(
                    "step {n}/{total} ({name}) of the move of tenant `{}` failed; fix the cause and run the same command again to resume it",
                    self.tenant.slug
                )))
            }
        }
    }
}
