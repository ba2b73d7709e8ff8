//! Changes to a provisioned tenant. `set_tier`: a move between tiers of the same isolation
//! model, where only the bill and the limits change. A move between pooled and siloed needs a
//! data migration and is refused until tenantctl can do one.

use anyhow::Result;

use super::tenants::{self, TenantView};
use super::{ControlPlane, Reporter};
use crate::exit::Failure;
use crate::slug::Slug;
use crate::tenant::Status;
use crate::tier::Tier;

/// Moves the tenant to `tier_name`: the tier column, the quota rows seeded from the tier (not
/// the overrides), and an audit entry, in one transaction under the tenant's lock.
pub async fn set_tier(
    plane: &ControlPlane,
    slug: &Slug,
    tier_name: &str,
    tier: &Tier,
    reporter: &dyn Reporter,
) -> Result<TenantView> {
    let _lock = plane.control.try_lock_tenant(slug.as_str()).await?.ok_or_else(|| {
        Failure::Refused(format!("tenant `{slug}` is being changed by another tenantctl process; try again when it has finished"))
    })?;
    let t = plane
        .control
        .find_tenant(slug.as_str())
        .await?
        .ok_or_else(|| {
            Failure::Refused(format!(
                "no tenant `{slug}`; `tenantctl list` shows the tenants"
            ))
        })?;
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
