//! `metrics`: the fleet's state as numbers for monitoring. Reads only: the control database
//! (one consistent read, `db::metrics`) and each tenant database's schema version (as
//! `migrate status` reads it). Nothing is measured here: usage is what `usage refresh` and
//! the metered events last stored.

use anyhow::Result;
use chrono::Utc;

use super::{migrate, ControlPlane};
use crate::db::metrics::{LastRun, TenantCount, Transition};
use crate::period::Period;
use crate::resource::{Kind, Resource};

/// One quota of a tenant: the usage that counts against it now.
#[derive(Debug, Clone, PartialEq)]
pub struct QuotaUse {
    pub slug: String,
    pub tier: String,
    pub resource: Resource,
    pub limit: i64,
    /// Metered resources: this month's total (UTC); measured ones: the last measurement (0 if
    /// never measured).
    pub used: i64,
}

impl QuotaUse {
    /// used / limit; None for a limit of 0 (nothing is allowed: any use is past it).
    pub fn ratio(&self) -> Option<f64> {
        (self.limit > 0).then(|| self.used as f64 / self.limit as f64)
    }
}

/// Tenant databases by the state of their schema.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Schemas {
    pub current: i64,
    /// Readable and behind the binary's latest tenant migration.
    pub behind: i64,
    /// Not read: a closed silo (suspended or deleted tenant), or unreachable.
    pub unknown: i64,
}

/// Everything `tenantctl metrics` reports.
#[derive(Debug, Clone)]
pub struct Fleet {
    pub tenants: Vec<TenantCount>,
    pub quotas: Vec<QuotaUse>,
    pub last_run: Option<LastRun>,
    pub schemas: Schemas,
    pub transitions: Vec<Transition>,
}

impl Fleet {
    /// No control database yet: nothing to report but zeros.
    pub fn empty() -> Fleet {
        Fleet {
            tenants: Vec::new(),
            quotas: Vec::new(),
            last_run: None,
            schemas: Schemas::default(),
            transitions: Vec::new(),
        }
    }
}

/// Reads the fleet's state.
pub async fn gather(plane: &ControlPlane) -> Result<Fleet> {
    let period = Period::containing(Utc::now());
    let facts = plane.control.metrics_facts(period.first_day()).await?;
    let quotas = facts
        .quotas
        .into_iter()
        .map(|q| {
            let used = match q.resource.kind() {
                Kind::Metered => q.metered,
                Kind::Measured => q.measured.unwrap_or(0),
            };
            QuotaUse {
                slug: q.slug,
                tier: q.tier,
                resource: q.resource,
                limit: q.limit,
                used,
            }
        })
        .collect();
    let mut schemas = Schemas::default();
    for db in migrate::states(plane, &super::Silent).await? {
        match db.version {
            None => schemas.unknown += 1,
            Some(_) if db.behind => schemas.behind += 1,
            Some(_) => schemas.current += 1,
        }
    }
    Ok(Fleet {
        tenants: facts.tenants,
        quotas,
        last_run: facts.last_run,
        schemas,
        transitions: facts.transitions,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quota(used: i64, limit: i64) -> QuotaUse {
        QuotaUse {
            slug: "acme".into(),
            tier: "free".into(),
            resource: Resource::Users,
            limit,
            used,
        }
    }

    #[test]
    fn ratio_is_use_over_limit_and_absent_for_a_zero_limit() {
        assert_eq!(quota(5, 10).ratio(), Some(0.5));
        assert_eq!(quota(15, 10).ratio(), Some(1.5));
        assert_eq!(quota(0, 0).ratio(), None);
    }
}
