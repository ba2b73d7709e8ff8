//! Usage in the control database: one metered event and its monthly total (`usage record`).
//! A file's events are `import.rs`; quotas with their usage are `quotas.rs`.

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::control::ControlDb;
use crate::period::Period;
use crate::resource::Resource;
use crate::tenant::Status;
use crate::tier::MAX_QUANTITY;

/// What recording one metered event did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recorded {
    /// Counted; the period's total is now `total`.
    Counted { total: i64 },
    /// The key was recorded before: nothing counted again.
    Duplicate,
    /// Over the hard limit: nothing recorded.
    OverLimit { used: i64, limit: i64 },
    /// The tenant is not active (its status): nothing recorded.
    NotActive(Status),
    /// The period's total would pass `tier::MAX_QUANTITY`: nothing recorded.
    TooLarge { used: i64 },
}

/// One event to record.
pub struct Event<'a> {
    pub tenant: Uuid,
    pub resource: Resource,
    pub quantity: i64,
    pub at: DateTime<Utc>,
    pub period: Period,
    pub key: &'a str,
}

impl ControlDb {
    /// Records one metered event. The quota row is locked for the limit check and the write,
    /// so concurrent events cannot pass a hard limit together; whether the limit is hard is the
    /// tenant's stored `quotas.hard` (`file_hard` only where that is not stored yet). The tenant
    /// row is share-locked: a concurrent status change waits for us. No total passes
    /// `MAX_QUANTITY`, so the arithmetic here cannot overflow.
    pub async fn record_event(&self, e: &Event<'_>, file_hard: bool) -> Result<Recorded> {
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await.context("starting a transaction")?;
        let status: Status = tx
            .query_one(
                "SELECT status FROM tenants WHERE id = $1 FOR SHARE",
                &[&e.tenant],
            )
            .await
            .context("locking the tenant")?
            .get(0);
        if status != Status::Active {
            return Ok(Recorded::NotActive(status));
        }
        let (limit, hard): (i64, bool) = tx
            .query_opt(
                "SELECT limit_value, hard FROM quotas WHERE tenant_id = $1 AND resource = $2 FOR UPDATE",
                &[&e.tenant, &e.resource],
            )
            .await
            .with_context(|| format!("locking the {} quota", e.resource))?
            .map_or((i64::MAX, file_hard), |r| {
                (r.get(0), r.get::<_, Option<bool>>(1).unwrap_or(file_hard))
            });
        let seen = tx
            .query_opt(
                "SELECT 1 FROM usage_events WHERE tenant_id = $1 AND key = $2",
                &[&e.tenant, &e.key],
            )
            .await
            .context("looking up the idempotency key")?
            .is_some();
        if seen {
            return Ok(Recorded::Duplicate);
        }
        let used: i64 = tx
            .query_opt(
                "SELECT quantity FROM usage_totals WHERE tenant_id = $1 AND resource = $2 AND period = $3",
                &[&e.tenant, &e.resource, &e.period],
            )
            .await
            .context("reading the period's usage")?
            .map_or(0, |r| r.get(0));
        let after = used.checked_add(e.quantity);
        if after.is_none_or(|a| a > MAX_QUANTITY) {
            return Ok(Recorded::TooLarge { used });
        }
        if hard && after.is_some_and(|a| a > limit) {
            return Ok(Recorded::OverLimit { used, limit });
        }
        let inserted = tx
            .execute(
                "INSERT INTO usage_events (tenant_id, key, resource, quantity, at, period)
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (tenant_id, key) DO NOTHING",
                &[
                    &e.tenant,
                    &e.key,
                    &e.resource,
                    &e.quantity,
                    &e.at,
                    &e.period,
                ],
            )
            .await
            .context("recording the event")?;
        if inserted == 0 {
            return Ok(Recorded::Duplicate);
        }
        let total: i64 = tx
            .query_one(
                "INSERT INTO usage_totals (tenant_id, resource, period, quantity) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (tenant_id, resource, period) DO UPDATE SET quantity = usage_totals.quantity + EXCLUDED.quantity
                 RETURNING quantity",
                &[&e.tenant, &e.resource, &e.period, &e.quantity],
            )
            .await
            .context("updating the period's total")?
            .get(0);
        tx.commit().await.context("committing the event")?;
        Ok(Recorded::Counted { total })
    }
}
