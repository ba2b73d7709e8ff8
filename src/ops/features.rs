//! Feature entitlements: what a tenant may use, from its tier and per-tenant overrides.
//!
//! The control database records, per tenant and feature, whether the tier includes it and the
//! operator's override (`grant` or `revoke`, which survives tier changes). A tenant *is
//! entitled* to a feature when it is granted, or in its tier and not revoked; it *has* it when
//! it is also active: any other status has no features. The entitled set is written into the
//! tenant's data plane (`tenant_features`, under the same row-level security as the other
//! tenant tables) by every change: provisioning step 5, `features grant|revoke|reset|refresh`,
//! `set-tier`, and `resume`/`restore` before the tenant is reopened. A closed silo cannot be
//! written; its rows are brought up to date when it is reopened, and until then nobody can
//! read them. Every write is idempotent, so re-running a command also repairs a data plane
//! that a crash left behind the control database.

use anyhow::Result;
use serde::Serialize;
use tokio_postgres::Client;

use super::tenants;
use super::usage::tier_of;
use super::{ControlPlane, Reporter};
use crate::action::Action;
use crate::db::dataplane;
use crate::db::features::{write_tenant_features, Entitlement};
use crate::error::Failure;
use crate::feature::Feature;
use crate::slug::Slug;
use crate::step::Step;
use crate::tenant::{Status, Tenant};
use crate::tier::Tiers;

/// `features show`, and the result of `grant`, `revoke` and `reset`. JSON fields are a
/// contract.
#[derive(Debug, Clone, Serialize)]
pub struct FeaturesView {
    pub slug: String,
    pub tier: String,
    pub status: String,
    /// The features the tenant has now: the entitled ones while it is active, none otherwise.
    pub features: Vec<String>,
    /// Every feature its tier includes or an override names.
    pub entitlements: Vec<EntitlementView>,
}

#[derive(Debug, Clone, Serialize)]
pub struct EntitlementView {
    pub feature: String,
    /// The tenant's tier includes it.
    pub from_tier: bool,
    /// `grant`, `revoke`, or null (the tier decides).
    #[serde(rename = "override")]
    pub override_: Option<String>,
    /// The tenant has it whenever it is active.
    pub entitled: bool,
}

/// The features a tenant in `status` has, given its entitlement rows.
pub fn effective(status: Status, rows: &[Entitlement]) -> Vec<String> {
    if status != Status::Active {
        return Vec::new();
    }
    rows.iter()
        .filter(|e| e.entitled())
        .map(|e| e.feature.clone())
        .collect()
}

fn view(t: &Tenant, rows: Vec<Entitlement>) -> FeaturesView {
    FeaturesView {
        slug: t.slug.to_string(),
        tier: t.tier.clone(),
        status: t.status.to_string(),
        features: effective(t.status, &rows),
        entitlements: rows
            .into_iter()
            .map(|e| EntitlementView {
                entitled: e.entitled(),
                feature: e.feature,
                from_tier: e.in_tier,
                override_: e.override_,
            })
            .collect(),
    }
}

/// `features show <slug>`.
pub async fn show(plane: &ControlPlane, slug: &Slug) -> Result<FeaturesView> {
    let t = tenants::find(plane, slug).await?;
    let rows = plane.control.entitlements(t.id).await?;
    Ok(view(&t, rows))
}

/// What `features check` answers.
#[derive(Debug, Serialize)]
pub struct Check {
    pub slug: String,
    pub feature: String,
    pub status: String,
    /// The tenant has the feature now (exit 0); false: exit 3.
    pub enabled: bool,
    /// Why not, when it does not.
    pub reason: Option<String>,
}

/// `features check <slug> <feature>`: reads the control database only.
pub async fn check(plane: &ControlPlane, slug: &Slug, feature: &Feature) -> Result<Check> {
    let t = tenants::find(plane, slug).await?;
    let rows = plane.control.entitlements(t.id).await?;
    let row = rows.iter().find(|e| e.feature == feature.as_str());
    let reason = if t.status != Status::Active {
        Some(format!("tenant `{slug}` is {}", t.status))
    } else {
        match row {
            Some(e) if e.entitled() => None,
            Some(e) if e.override_.as_deref() == Some("revoke") => {
                Some(format!("`{feature}` is revoked for tenant `{slug}`"))
            }
            _ => Some(format!(
                "neither tier `{}` nor a grant gives tenant `{slug}` `{feature}`",
                t.tier
            )),
        }
    };
    Ok(Check {
        slug: slug.to_string(),
        feature: feature.to_string(),
        status: t.status.to_string(),
        enabled: reason.is_none(),
        reason,
    })
}

/// The per-tenant override `features grant|revoke|reset` sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Grant,
    Revoke,
    /// Back to what the tier says.
    Reset,
}

impl Change {
    fn override_(self) -> Option<&'static str> {
        match self {
            Change::Grant => Some("grant"),
            Change::Revoke => Some("revoke"),
            Change::Reset => None,
        }
    }

    fn action(self) -> Action {
        match self {
            Change::Grant => Action::FeaturesGrant,
            Change::Revoke => Action::FeaturesRevoke,
            Change::Reset => Action::FeaturesReset,
        }
    }
}

/// `features grant|revoke|reset`: under the tenant's lock, the override (audited when it
/// changes anything), then the data plane. Active and suspended tenants only; a suspended
/// silo's rows are written when it is resumed. Returns the view and whether anything changed.
pub async fn change(
    plane: &ControlPlane,
    slug: &Slug,
    feature: &Feature,
    change: Change,
) -> Result<(FeaturesView, bool)> {
    let _lock = plane.control.try_lock_tenant(slug).await?.ok_or_else(|| {
        Failure::Refused(format!(
            "tenant `{slug}` is being changed by another tenantctl process; try again when it has finished"
        ))
    })?;
    let t = tenants::find(plane, slug).await?;
    if !matches!(t.status, Status::Active | Status::Suspended) {
        return Err(Failure::Refused(format!(
            "tenant `{slug}` is {}; only an active or suspended tenant's features can change",
            t.status
        ))
        .into());
    }
    let changed = plane
        .control
        .set_feature_override(
            &t,
            feature.as_str(),
            change.override_(),
            change.action(),
            &plane.ctx.actor,
        )
        .await?;
    // Also when nothing changed: a re-run repairs a data plane a crash left behind.
    sync(plane, &t).await?;
    let rows = plane.control.entitlements(t.id).await?;
    Ok((view(&t, rows), changed))
}

/// One tenant of `features refresh`.
#[derive(Debug, Serialize)]
pub struct Refreshed {
    pub slug: String,
    pub tier: String,
    pub status: String,
    /// The tier's part changed.
    pub changed: bool,
    /// The features the tenant has now.
    pub features: Vec<String>,
}

/// `features refresh [<slug>]`: the tier's part of each tenant (active, suspended or deleted;
/// others are skipped) follows the tier file as it is now, and the data plane follows. For
/// tiers.toml edits, and for tenants provisioned before feature entitlements existed. Every
/// tenant's tier is checked against the file before anything changes (exit 2). A tenant whose
/// lock another process holds is skipped (named), or refused (exit 3) when it is the one asked.
/// Returns the refreshed tenants and, of all of them (no slug given), those whose database could
/// not be written (its server unreachable: their control rows are refreshed, a re-run writes the
/// data plane), with why; the caller exits 1 naming them.
pub async fn refresh(
    plane: &ControlPlane,
    tiers: &Tiers,
    slug: Option<&Slug>,
    reporter: &dyn Reporter,
) -> Result<(Vec<Refreshed>, Vec<(String, String)>)> {
    let tenants = match slug {
        Some(s) => vec![tenants::find(plane, s).await?],
        None => plane.control.list_tenants().await?,
    };
    for t in &tenants {
        tier_of(tiers, t.slug.as_str(), &t.tier)?;
    }
    let mut done = Vec::new();
    let mut failed = Vec::new();
    for t in tenants {
        let Some(_lock) = plane.control.try_lock_tenant(&t.slug).await? else {
            if slug.is_some() {
                return Err(Failure::Refused(format!(
                    "tenant `{}` is being changed by another tenantctl process; try again when it has finished",
                    t.slug
                ))
                .into());
            }
            reporter.status(&format!(
                "skipping `{}`: another tenantctl process holds it",
                t.slug
            ));
            continue;
        };
        // Re-read under the lock: its tier or status may have changed meanwhile.
        let Some(t) = plane.control.find_tenant(&t.slug).await? else {
            continue;
        };
        if !matches!(
            t.status,
            Status::Active | Status::Suspended | Status::Deleted
        ) {
            reporter.status(&format!("skipping `{}`: it is {}", t.slug, t.status));
            continue;
        }
        let tier = tier_of(tiers, t.slug.as_str(), &t.tier)?;
        let changed = plane
            .control
            .refresh_tier_features(&t, &tier.features.names(), &plane.ctx.actor)
            .await?;
        // A tenant whose server cannot be reached keeps its recorded features (written above)
        // and is reported; the others go on. A re-run writes its data plane.
        if let Err(e) = sync(plane, &t).await {
            if slug.is_some() {
                return Err(e);
            }
            let e = format!("{e:#}");
            reporter.warning(&format!(
                "could not write the features of `{}` into its database (a re-run of `features refresh` does): {e}",
                t.slug
            ));
            failed.push((t.slug.to_string(), e));
            continue;
        }
        let rows = plane.control.entitlements(t.id).await?;
        done.push(Refreshed {
            features: effective(t.status, &rows),
            slug: t.slug.to_string(),
            tier: t.tier,
            status: t.status.to_string(),
            changed,
        });
    }
    Ok((done, failed))
}

/// The tenant's entitled features, as the data plane should hold them.
async fn entitled(plane: &ControlPlane, t: &Tenant) -> Result<Vec<String>> {
    Ok(plane
        .control
        .entitlements(t.id)
        .await?
        .into_iter()
        .filter(Entitlement::entitled)
        .map(|e| e.feature)
        .collect())
}

/// Writes the entitled set into the tenant's database if it accepts connections; a closed silo
/// (or a database never created) is left to `resume`/`restore`. Idempotent.
pub async fn sync(plane: &ControlPlane, t: &Tenant) -> Result<()> {
    let admin = plane.fleet.admin_for(t).await?;
    if dataplane::accepts_connections(&admin, &t.database).await? != Some(true) {
        return Ok(());
    }
    drop(admin);
    let mut client = plane.fleet.tenant_db(t).await?;
    sync_with(plane, t, &mut client).await
}

/// Like `sync`, on a connection to the tenant's database the caller holds (`resume` and
/// `restore` call it before they reopen the tenant).
pub async fn sync_with(plane: &ControlPlane, t: &Tenant, client: &mut Client) -> Result<()> {
    let features = entitled(plane, t).await?;
    let features: Vec<&str> = features.iter().map(String::as_str).collect();
    write_tenant_features(client, t.id, &features).await
}

/// Provisioning step 5's part: the tier's features and the requested grants in the control
/// database, then the tenant database. Idempotent.
pub async fn seed(
    plane: &ControlPlane,
    t: &Tenant,
    tier: &[Feature],
    grants: &[Feature],
    client: &mut Client,
) -> Result<()> {
    let tier: Vec<&str> = tier.iter().map(Feature::as_str).collect();
    let grants: Vec<&str> = grants.iter().map(Feature::as_str).collect();
    plane
        .control
        .seed_features(t, &tier, &grants, &plane.ctx.actor)
        .await?;
    sync_with(plane, t, client).await
}

/// A `provision` re-run after step 5 (or of an active tenant) does not record features any
/// more: one that asks for a feature the tenant is not entitled to is refused (exit 3) rather
/// than silently ignored.
pub async fn refuse_unrecorded(
    plane: &ControlPlane,
    t: &Tenant,
    requested: &[Feature],
) -> Result<()> {
    if requested.is_empty() {
        return Ok(());
    }
    let seeded = t.status == Status::Active
        || plane
            .control
            .completed_steps(t.id)
            .await?
            .contains(&Step::SeedQuotas);
    if !seeded {
        return Ok(());
    }
    let have = entitled(plane, t).await?;
    let missing: Vec<&str> = requested
        .iter()
        .map(Feature::as_str)
        .filter(|f| !have.iter().any(|h| h == f))
        .collect();
    match missing.first() {
        None => Ok(()),
        Some(first) => Err(Failure::Refused(format!(
            "tenant `{}` has recorded its features already, without {}; run `tenantctl features grant {} {first}`",
            t.slug,
            missing.iter().map(|m| format!("`{m}`")).collect::<Vec<_>>().join(", "),
            t.slug
        ))
        .into()),
    }
}
