//! Measured usage over time (control V15): each stored measurement updates the latest level
//! (`measured_usage`, read by quota checks) and folds into its day's row of `measurements`,
//! which billing reads; and the barrier that closes a month's measurements before it is billed.

use std::collections::HashMap;

use anyhow::{Context, Result};
use chrono::{DateTime, NaiveTime, Utc};
use uuid::Uuid;

use super::control::ControlDb;
use crate::invoice::MeasuredDay;
use crate::period::Period;
use crate::resource::Resource;

/// The advisory lock between storing measurements (shared, per transaction) and billing
/// (exclusive, for a moment): see `close_measurements`.
const MEASUREMENTS_LOCK: &str = "tenantctl:measurements";

/// A month's measurements of one tenant and resource.
#[derive(Debug, Clone, Default)]
pub struct MeasuredMonth {
    /// The last level measured before the month (carried into its first days).
    pub carried_in: Option<i64>,
    /// The month's days with measurements, in order.
    pub days: Vec<MeasuredDay>,
}

impl ControlDb {
    /// Stores measurements: (tenant, resource, quantity), set-based, in one transaction: the
    /// latest level, and its day's history row (peak, last level, integral since the day's
    /// first measurement). The history's time is the server's clock *after* the shared
    /// measurements lock is held, never the transaction's start, so a measurement that
    /// `close_measurements` has not waited for is dated after it (in a month not yet billed).
    pub async fn store_measurements(&self, rows: &[(Uuid, Resource, i64)]) -> Result<()> {
        let tenants: Vec<Uuid> = rows.iter().map(|r| r.0).collect();
        let resources: Vec<Resource> = rows.iter().map(|r| r.1).collect();
        let quantities: Vec<i64> = rows.iter().map(|r| r.2).collect();
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await.context("starting a transaction")?;
        tx.execute(
            "SELECT pg_advisory_xact_lock_shared(hashtextextended($1, 0))",
            &[&MEASUREMENTS_LOCK],
        )
        .await
        .context("taking the measurements lock")?;
        tx.execute(
            "WITH m AS (SELECT t, r, q FROM unnest($1::uuid[], $2::text[], $3::bigint[]) AS m(t, r, q)),
                  latest AS (
                      INSERT INTO measured_usage (tenant_id, resource, quantity, measured_at)
                      SELECT t, r, q, now() FROM m
                      ON CONFLICT (tenant_id, resource) DO UPDATE SET quantity = EXCLUDED.quantity, measured_at = EXCLUDED.measured_at)
             INSERT INTO measurements AS h (tenant_id, resource, day, samples, peak, first_at, last_value, last_at, area)
             SELECT m.t, m.r, (c.at AT TIME ZONE 'UTC')::date, 1, m.q, c.at, m.q, c.at, 0
             FROM m CROSS JOIN (SELECT date_trunc('second', clock_timestamp()) AS at) c
             ON CONFLICT (tenant_id, resource, day) DO UPDATE SET
                 samples = h.samples + 1,
                 peak = greatest(h.peak, EXCLUDED.peak),
                 area = h.area + h.last_value * greatest(extract(epoch FROM EXCLUDED.last_at - h.last_at), 0)::bigint,
                 last_value = EXCLUDED.last_value,
                 last_at = greatest(h.last_at, EXCLUDED.last_at)",
            &[&tenants, &resources, &quantities],
        )
        .await
        .context("storing measured usage")?;
        tx.commit().await.context("committing measured usage")?;
        Ok(())
    }

    /// Closes the period's measurements before it is billed: waits for every transaction
    /// storing measurements to finish (the exclusive side of their shared lock), then returns
    /// whether the server's clock has passed the period's end. When it has, no measurement of
    /// the period can arrive any more: one stored later takes the lock after this moment and
    /// is dated by the clock after that, in a later month.
    pub async fn close_measurements(&self, period: Period) -> Result<bool> {
        let end = period.next_first_day().and_time(NaiveTime::MIN).and_utc();
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await.context("starting a transaction")?;
        tx.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
            &[&MEASUREMENTS_LOCK],
        )
        .await
        .context("waiting for measurements being stored")?;
        let ended: bool = tx
            .query_one("SELECT clock_timestamp() >= $1", &[&end])
            .await
            .context("reading the server's clock")?
            .get(0);
        tx.commit().await.context("closing measurements")?;
        Ok(ended)
    }

    /// Every tenant's measured history for the period: (tenant, resource) → the level carried
    /// in from before the month and the month's day rows. Read per (tenant, resource) pair
    /// through the primary key (`measured_usage` has one row per measured pair).
    pub async fn period_measurements(
        &self,
        period: Period,
    ) -> Result<HashMap<(Uuid, Resource), MeasuredMonth>> {
        let conn = self.conn().await?;
        let first = period.first_day();
        let next = period.next_first_day();
        let mut out: HashMap<(Uuid, Resource), MeasuredMonth> = HashMap::new();
        let carried = conn
            .query(
                "SELECT p.tenant_id, p.resource, c.last_value
                 FROM measured_usage p
                 CROSS JOIN LATERAL (SELECT m.last_value FROM measurements m
                                     WHERE m.tenant_id = p.tenant_id AND m.resource = p.resource AND m.day < $1
                                     ORDER BY m.day DESC LIMIT 1) c",
                &[&first],
            )
            .await
            .context("reading the levels measured before the period")?;
        for r in &carried {
            out.entry((r.get(0), r.get(1))).or_default().carried_in = Some(r.get(2));
        }
        let days = conn
            .query(
                "SELECT m.tenant_id, m.resource, m.day, m.peak, m.first_at, m.last_value, m.last_at, m.area
                 FROM measured_usage p
                 JOIN measurements m ON m.tenant_id = p.tenant_id AND m.resource = p.resource
                                    AND m.day >= $1 AND m.day < $2
                 ORDER BY m.tenant_id, m.resource, m.day",
                &[&first, &next],
            )
            .await
            .context("reading the period's measurements")?;
        for r in &days {
            let first_at: DateTime<Utc> = r.get(4);
            let last_at: DateTime<Utc> = r.get(6);
            out.entry((r.get(0), r.get(1)))
                .or_default()
                .days
                .push(MeasuredDay {
                    day: r.get(2),
                    peak: r.get(3),
                    first_at,
                    last_value: r.get(5),
                    last_at,
                    area: r.get(7),
                });
        }
        Ok(out)
    }
}
