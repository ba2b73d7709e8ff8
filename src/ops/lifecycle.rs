//! Changes to a provisioned tenant, each under the tenant's lock and audited. State is enforced
//! in the data plane, not only in the status column:
//!
//! - **suspend**: siloed: the role loses LOGIN and CONNECT, the database refuses every new
//!   connection, live sessions are terminated; pooled: the tenant enters `tenant_suspensions`
//!   and the row-level policies hide its rows even with its context set. The data plane is
//!   closed first, then the status written: a crash in between leaves a closed tenant that
//!   `suspend` finishes, never an open "suspended" one.
//! - **resume**: pending tenant migrations are applied (with the role still locked out), then
//!   exactly what provisioning granted is given back; then the status.
//! - **deprovision**: a soft delete: closed as when suspended, status `deleted`, data kept for
//!   the retention period, slug reserved. **restore** reopens it within that period.
//! - **purge** (`deprovision --purge`, `purge --expired`): `deleting`, then database and role
//!   dropped, pooled rows deleted, buckets removed, control rows deleted. Every step is
//!   idempotent: a purge killed midway is finished by running it again.
//! - **set_tier**: a move between tiers of the same isolation model, where only the bill and the
//!   limits change; pooled↔siloed needs a data migration and is refused.

use anyhow::Result;
use chrono::Utc;
use serde::Serialize;

use super::tenants::{self, TenantView};
use super::{failpoint, ControlPlane, Reporter};
use crate::db::control::SessionLock;
use crate::db::{dataplane, migrate};
use crate::exit::Failure;
use crate::slug::Slug;
use crate::tenant::{bucket_names, Status, Tenant};
use crate::tier::{Isolation, Tier};

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
    if !matches!(t.status, Status::Active | Status::Suspended) {
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
        return tenants::view(plane, t).await;
    }
    if t.isolation != tier.isolation {
        return Err(Failure::Refused(format!(
            "tier `{tier_name}` is {} and tenant `{slug}` is {}: moving between isolation models needs a data migration, which this version of tenantctl does not do",
            tier.isolation, t.isolation
        ))
        .into());
    }
    plane
        .control
        .set_tier(&t, tier_name, &tier.limits.iter(), &plane.settings.actor)
        .await?;
    reporter.status(&format!(
        "tenant `{slug}` moved from tier `{}` to `{tier_name}`",
        t.tier
    ));
    let t = plane
        .control
        .find_tenant(slug.as_str())
        .await?
        .expect("the tenant was just updated");
    tenants::view(plane, t).await
}

/// The tenant's lock (exit 3 "in progress" if held) and its current row (exit 3 if none).
async fn lock_and_find(plane: &ControlPlane, slug: &Slug) -> Result<(SessionLock, Tenant)> {
    let lock = plane.control.try_lock_tenant(slug.as_str()).await?.ok_or_else(|| {
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

/// Closes the tenant's data plane (see the module outline). Idempotent; a database that was
/// never created is nothing to close.
async fn close(plane: &ControlPlane, t: &Tenant) -> Result<()> {
    let admin = plane.control.admin().await?;
    if dataplane::accepts_connections(&admin, &t.database)
        .await?
        .is_none()
    {
        return Ok(());
    }
    match t.isolation {
        Isolation::Siloed => dataplane::close_silo(&admin, &t.database, &t.role).await,
        Isolation::Pooled => {
            let _pooled = plane.control.lock_pooled().await?;
            let mut client = plane.control.server().connect(&t.database).await?;
            migrate::tenant(&mut client).await?;
            dataplane::grant_app_access(&client, &t.role).await?;
            dataplane::set_pooled_suspension(&mut client, t.id, true).await
        }
    }
}

/// Reopens the tenant's data plane, migrating it first.
async fn open(plane: &ControlPlane, t: &Tenant) -> Result<()> {
    let admin = plane.control.admin().await?;
    if dataplane::accepts_connections(&admin, &t.database)
        .await?
        .is_none()
    {
        return Ok(()); // never created (deprovisioned mid-provisioning): nothing to reopen
    }
    match t.isolation {
        Isolation::Siloed => {
            dataplane::allow_connections(&admin, &t.database).await?;
            let mut client = plane.control.server().connect(&t.database).await?;
            migrate::tenant(&mut client).await?;
            dataplane::grant_app_access(&client, &t.role).await?;
            dataplane::open_silo_to_tenant(&admin, &t.database, &t.role).await
        }
        Isolation::Pooled => {
            let _pooled = plane.control.lock_pooled().await?;
            let mut client = plane.control.server().connect(&t.database).await?;
            migrate::tenant(&mut client).await?;
            dataplane::grant_app_access(&client, &t.role).await?;
            dataplane::set_pooled_suspension(&mut client, t.id, false).await
        }
    }
}

async fn reread(plane: &ControlPlane, slug: &Slug) -> Result<TenantView> {
    let t = plane
        .control
        .find_tenant(slug.as_str())
        .await?
        .expect("the tenant was just changed");
    tenants::view(plane, t).await
}

/// `suspend`.
pub async fn suspend(
    plane: &ControlPlane,
    slug: &Slug,
    reason: Option<&str>,
) -> Result<TenantView> {
    let (_lock, t) = lock_and_find(plane, slug).await?;
    if t.status != Status::Active {
        return Err(invalid(&t, "suspend", "an active tenant"));
    }
    close(plane, &t).await?;
    failpoint(&plane.settings, "suspend:closed");
    let details = serde_json::json!({ "reason": reason });
    plane
        .control
        .transition(
            &t,
            &[Status::Active],
            Status::Suspended,
            "suspend",
            &plane.settings.actor,
            details,
        )
        .await?;
    reread(plane, slug).await
}

/// `resume`.
pub async fn resume(plane: &ControlPlane, slug: &Slug) -> Result<TenantView> {
    let (_lock, t) = lock_and_find(plane, slug).await?;
    if t.status != Status::Suspended {
        return Err(invalid(&t, "resume", "a suspended tenant"));
    }
    open(plane, &t).await?;
    plane
        .control
        .transition(
            &t,
            &[Status::Suspended],
            Status::Active,
            "resume",
            &plane.settings.actor,
            serde_json::json!({}),
        )
        .await?;
    reread(plane, slug).await
}

/// `deprovision` without `--purge`: a soft delete.
pub async fn deprovision(
    plane: &ControlPlane,
    slug: &Slug,
    reason: Option<&str>,
) -> Result<TenantView> {
    let (_lock, t) = lock_and_find(plane, slug).await?;
    let from = [Status::Active, Status::Suspended, Status::Provisioning];
    if !from.contains(&t.status) {
        return Err(invalid(
            &t,
            "deprovision",
            "an active, suspended or provisioning tenant",
        ));
    }
    close(plane, &t).await?;
    failpoint(&plane.settings, "deprovision:closed");
    let retention = plane.settings.retention_days;
    let details = serde_json::json!({ "reason": reason, "retention_days": retention });
    plane
        .control
        .transition(
            &t,
            &from,
            Status::Deleted,
            "deprovision",
            &plane.settings.actor,
            details,
        )
        .await?;
    reread(plane, slug).await
}

/// `restore`: within the retention period, back to active.
pub async fn restore(plane: &ControlPlane, slug: &Slug) -> Result<TenantView> {
    let (_lock, t) = lock_and_find(plane, slug).await?;
    if t.status != Status::Deleted {
        return Err(invalid(&t, "restore", "a deprovisioned (deleted) tenant"));
    }
    let deleted_at = t.deleted_at.unwrap_or_else(Utc::now);
    let until = deleted_at + chrono::Duration::days(i64::from(plane.settings.retention_days));
    if Utc::now() > until {
        return Err(Failure::Refused(format!(
            "cannot restore tenant `{slug}`: its retention period ended at {} (deleted {}, retention {} days); \
             `tenantctl purge --expired` removes it",
            until.to_rfc3339(),
            deleted_at.to_rfc3339(),
            plane.settings.retention_days
        ))
        .into());
    }
    open(plane, &t).await?;
    // A tenant deprovisioned before it was ever activated goes back to `provisioning`, for
    // `provision` to finish; the others back to `active`.
    let to = if t.activated_at.is_some() {
        Status::Active
    } else {
        Status::Provisioning
    };
    plane
        .control
        .transition(
            &t,
            &[Status::Deleted],
            to,
            "restore",
            &plane.settings.actor,
            serde_json::json!({}),
        )
        .await?;
    reread(plane, slug).await
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
    super::billing::warn_unbilled_usage(plane, t.id, &t.slug, reporter).await?;
    let actor = &plane.settings.actor;
    if t.status != Status::Deleting {
        let from = [
            Status::Provisioning,
            Status::Active,
            Status::Suspended,
            Status::Deleted,
        ];
        plane
            .control
            .transition(
                t,
                &from,
                Status::Deleting,
                "purge.start",
                actor,
                serde_json::json!({}),
            )
            .await?;
    }
    failpoint(&plane.settings, "purge:deleting");
    let mut pooled_rows = 0;
    let (database, role) = match t.isolation {
        Isolation::Siloed => {
            dataplane::drop_silo(&*plane.control.admin().await?, &t.database, &t.role).await?;
            (Some(t.database.clone()), Some(t.role.clone()))
        }
        Isolation::Pooled => {
            let admin = plane.control.admin().await?;
            if dataplane::accepts_connections(&admin, &t.database)
                .await?
                .is_some()
            {
                let mut client = plane.control.server().connect(&t.database).await?;
                pooled_rows = dataplane::purge_pooled_rows(&mut client, t.id).await?;
            }
            (None, None)
        }
    };
    failpoint(&plane.settings, "purge:data");
    let buckets = bucket_names(&t.slug);
    for b in &buckets {
        plane.store.remove(b)?;
    }
    failpoint(&plane.settings, "purge:buckets");
    plane.control.purge_tenant_rows(t, actor).await?;
    Ok(Purged {
        slug: t.slug.clone(),
        isolation: t.isolation,
        database,
        role,
        pooled_rows,
        buckets,
    })
}

/// `purge --expired`: every deleted tenant past its retention period.
pub async fn purge_expired(plane: &ControlPlane, reporter: &dyn Reporter) -> Result<Vec<Purged>> {
    let mut done = Vec::new();
    for t in plane.control.expired(plane.settings.retention_days).await? {
        let slug: Slug = t.slug.parse()?;
        let Some(_lock) = plane.control.try_lock_tenant(slug.as_str()).await? else {
            reporter.status(&format!(
                "skipping `{slug}`: another tenantctl process holds it"
            ));
            continue;
        };
        // Re-read under the lock: it may have been restored meanwhile.
        let Some(t) = plane.control.find_tenant(slug.as_str()).await? else {
            continue;
        };
        if !matches!(t.status, Status::Deleted | Status::Deleting) {
            continue;
        }
        reporter.status(&format!("purging `{slug}`"));
        done.push(purge_locked(plane, &t, reporter).await?);
    }
    Ok(done)
}
