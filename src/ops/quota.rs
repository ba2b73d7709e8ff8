//! Quotas: showing limits against usage, overriding and resetting limits, and the check a
//! script branches on. A limit is hard when the tier has no overage price for the resource;
//! that is stored with the limit (`quotas.hard`) when the tier is applied.

use anyhow::Result;
use chrono::{DateTime, Utc};
use serde::Serialize;

use super::tenants::{find, not_found};
use super::usage::{measure, tier_of};
use super::{ControlPlane, Reporter};
use crate::db::quotas::QuotaUsage;
use crate::error::Failure;
use crate::money::Money;
use crate::period::Period;
use crate::resource::{Kind, Resource};
use crate::slug::Slug;
use crate::tenant::Status;
use crate::tier::{Tier, Tiers};

/// One resource of `quota show`. JSON field names are a contract.
#[derive(Debug, Clone, Serialize)]
pub struct QuotaLine {
    pub resource: Resource,
    pub kind: Kind,
    pub limit: i64,
    pub used: i64,
    pub remaining: i64,
    /// No overage price: usage past the limit is refused.
    pub hard: bool,
    /// Usage past the limit (soft limits only). Metered: the month's overage, billed at
    /// `overage_price`; measured: the level now, billed only as far as the month's peak
    /// (users) or average (storage_mb) passes the limit.
    pub overage: i64,
    pub overage_price: Option<Money>,
    /// `tier` or `override`.
    pub source: String,
    /// Metered resources: the month counted.
    pub period: Option<String>,
    /// Measured resources: when they were last measured (null: never).
    pub measured_at: Option<DateTime<Utc>>,
}

fn line(q: &QuotaUsage, tier: &Tier, period: Period) -> QuotaLine {
    let kind = q.resource.kind();
    let (used, period, measured_at) = match kind {
        Kind::Metered => (q.metered, Some(period.to_string()), None),
        Kind::Measured => (q.measured.map_or(0, |m| m.0), None, q.measured.map(|m| m.1)),
    };
    let price = tier.overage.price(q.resource);
    QuotaLine {
        resource: q.resource,
        kind,
        limit: q.limit,
        used,
        remaining: (q.limit - used).max(0),
        hard: q.hard.unwrap_or(price.is_none()),
        overage: (used - q.limit).max(0),
        overage_price: price,
        source: q.source.clone(),
        period,
        measured_at,
    }
}

async fn lines(
    plane: &ControlPlane,
    tiers: &Tiers,
    slug: &Slug,
    measure_first: Option<&dyn Reporter>,
) -> Result<Vec<QuotaLine>> {
    let t = find(plane, slug).await?;
    let tier = tier_of(tiers, t.slug.as_str(), &t.tier)?;
    if let Some(reporter) = measure_first {
        let m = measure(plane, std::slice::from_ref(&t)).await?;
        if let Some(f) = m.failed.first() {
            return Err(anyhow::anyhow!(
                "could not measure {} of `{slug}` (the last measurement is kept): {}",
                f.kept.join(", "),
                crate::excerpt::excerpt_n(&f.reason, crate::excerpt::REASON_CHARS)
            ));
        }
        for s in &m.skipped {
            reporter.status(&format!(
                "{} of `{slug}` not measured now ({}): showing the last measurement",
                s.kept.join(", "),
                s.reason
            ));
        }
    }
    let period = Period::containing(Utc::now());
    let rows = plane.control.quota_usage(t.id, period).await?;
    if rows.is_empty() {
        return Err(Failure::Refused(format!(
            "tenant `{slug}` has no quotas yet (status {}); finish its provisioning first",
            t.status
        ))
        .into());
    }
    Ok(rows.iter().map(|q| line(q, tier, period)).collect())
}

/// `quota show`: measures the tenant's measured resources now, then every line.
/// A suspended silo accepts no connections: its users keep their last measurement (said on
/// `reporter`); a measurement that fails is an error, never a 0.
pub async fn show(
    plane: &ControlPlane,
    tiers: &Tiers,
    slug: &Slug,
    reporter: &dyn Reporter,
) -> Result<Vec<QuotaLine>> {
    lines(plane, tiers, slug, Some(reporter)).await
}

/// `quota set`: a per-tenant override, audited.
pub async fn set(
    plane: &ControlPlane,
    tiers: &Tiers,
    slug: &Slug,
    resource: Resource,
    limit: i64,
) -> Result<QuotaLine> {
    let t = find(plane, slug).await?;
    if t.status == Status::Deleted {
        return Err(Failure::Refused(format!("tenant `{slug}` is deleted")).into());
    }
    plane
        .control
        .set_quota(
            t.id,
            t.slug.as_str(),
            resource,
            limit,
            "override",
            &plane.ctx.actor,
        )
        .await?
        .ok_or_else(|| no_quota_yet(&t.slug, resource))?;
    pick(lines(plane, tiers, slug, None).await?, resource)
}

/// A quota changed before provisioning seeded it: refused, nothing changed.
fn no_quota_yet(slug: &Slug, resource: Resource) -> Failure {
    Failure::Refused(format!(
        "tenant `{slug}` has no {resource} quota yet; finish its provisioning first"
    ))
}

/// `quota reset`: back to the tier's limits (one resource, or all), audited.
pub async fn reset(
    plane: &ControlPlane,
    tiers: &Tiers,
    slug: &Slug,
    resource: Option<Resource>,
) -> Result<Vec<QuotaLine>> {
    let t = find(plane, slug).await?;
    let tier = tier_of(tiers, t.slug.as_str(), &t.tier)?;
    for (r, limit) in tier.limits.iter() {
        if resource.is_none_or(|want| want == r) {
            let limit = i64::try_from(limit).unwrap_or(i64::MAX);
            plane
                .control
                .set_quota(t.id, t.slug.as_str(), r, limit, "tier", &plane.ctx.actor)
                .await?
                .ok_or_else(|| no_quota_yet(&t.slug, r))?;
        }
    }
    let all = lines(plane, tiers, slug, None).await?;
    Ok(all
        .into_iter()
        .filter(|l| resource.is_none_or(|r| r == l.resource))
        .collect())
}

fn pick(all: Vec<QuotaLine>, resource: Resource) -> Result<QuotaLine> {
    all.into_iter()
        .find(|l| l.resource == resource)
        .ok_or_else(|| anyhow::anyhow!("quota row for {resource} missing"))
}

/// What a soft limit's overage costs, in the words of `quota check` (README "Billing").
fn billed_as(resource: Resource) -> &'static str {
    match resource {
        Resource::Users => "billed if the month's peak of users passes it",
        Resource::StorageMb => "billed if the month's average (MB-months) passes it",
        Resource::Sandboxes | Resource::ComputeHours | Resource::ApiRequests => "billed as overage",
    }
}

/// What `quota check` answers.
#[derive(Debug, Serialize)]
pub struct Check {
    pub slug: String,
    pub resource: Resource,
    pub amount: i64,
    pub allowed: bool,
    pub limit: i64,
    pub used: i64,
    pub remaining: i64,
    pub hard: bool,
    /// Units of this amount past the limit (soft limits; `reason` says how they are billed).
    pub overage: i64,
    pub reason: Option<String>,
}

/// `quota check`: would `amount` more fit? Reads stored totals and measurements (no
/// measuring, except a measured resource never measured before), so it stays cheap enough to
/// call per request.
pub async fn check(
    plane: &ControlPlane,
    tiers: &Tiers,
    slug: &Slug,
    resource: Resource,
    amount: i64,
) -> Result<Check> {
    let kind = resource.kind();
    let period = Period::containing(Utc::now());
    let read = || async {
        plane
            .control
            .quota_for_check(slug, resource, period)
            .await?
            .ok_or_else(|| anyhow::Error::from(not_found(slug.as_str())))
    };
    let (mut status, mut tier_name, mut quota) = read().await?;
    // A measured resource that was never measured (a tenant provisioned since the last
    // `usage refresh`) is measured now, once: answering from a missing measurement would be
    // answering 0, and let a free tenant past its hard limit of one user.
    if kind == Kind::Measured
        && status == Status::Active
        && quota.as_ref().is_some_and(|q| q.measured.is_none())
    {
        let t = find(plane, slug).await?;
        let m = measure(plane, std::slice::from_ref(&t)).await?;
        if let Some(f) = m.failed.first() {
            return Err(anyhow::anyhow!(
                "could not measure {} of `{slug}`, which was never measured: {}",
                f.kept.join(", "),
                crate::excerpt::excerpt_n(&f.reason, crate::excerpt::REASON_CHARS)
            ));
        }
        (status, tier_name, quota) = read().await?;
    }
    let tier = tier_of(tiers, slug.as_str(), &tier_name)?;
    let quota = quota.ok_or_else(|| {
        Failure::Refused(format!(
            "tenant `{slug}` has no quotas yet (status {status}); finish its provisioning first"
        ))
    })?;
    let q = line(&quota, tier, period);
    let after = q.used.saturating_add(amount);
    let over = (after - q.limit).max(0);
    let (allowed, reason) = if status != Status::Active {
        (false, Some(format!("tenant `{slug}` is {status}")))
    } else if q.hard && over > 0 {
        (
            false,
            Some(format!("{after} would pass the hard limit of {}", q.limit)),
        )
    } else if over > 0 {
        (
            true,
            Some(format!(
                "{over} over the soft limit of {}, {}",
                q.limit,
                billed_as(resource)
            )),
        )
    } else {
        (true, None)
    };
    Ok(Check {
        slug: slug.to_string(),
        resource,
        amount,
        allowed,
        limit: q.limit,
        used: q.used,
        remaining: q.remaining,
        hard: q.hard,
        overage: over.min(amount),
        reason,
    })
}
