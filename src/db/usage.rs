//! Usage in the control database: metered events and their monthly totals, measured levels,
//! and the bulk import through COPY.

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use futures_util::SinkExt;
use tokio_postgres::types::ToSql;
use uuid::Uuid;

use super::control::ControlDb;
use crate::action::Action;
use crate::error::Failure;
use crate::period::{check_usage_time, Period, USAGE_SKEW};
use crate::resource::Resource;
use crate::slug::Slug;
use crate::tenant::Status;
use crate::tier::MAX_QUANTITY;
use crate::usage_file::UsageRow;

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

/// A quota row with the usage that counts against it.
#[derive(Debug, Clone)]
pub struct QuotaUsage {
    pub resource: Resource,
    pub limit: i64,
    pub source: String,
    /// The period's metered total (0 if none).
    pub metered: i64,
    /// The last measurement, if any.
    pub measured: Option<(i64, DateTime<Utc>)>,
    /// Whether the limit is hard, as stored with it (None: not stored yet, ask the tier).
    pub hard: Option<bool>,
}

/// What an import did, row by row for the refused ones.
#[derive(Debug, Clone, Default)]
pub struct Imported {
    pub accepted: i64,
    pub duplicates: i64,
    /// (line, slug, resource, reason)
    pub refused: Vec<(i64, String, Resource, String)>,
}

/// Whether the limit of an import row (`s`, its tenant `t`) is hard: the tenant's stored
/// `quotas.hard`; where that is not stored yet, the tier file's (`$1`, `$2`: its hard
/// (tier, resource) pairs).
const HARD: &str = "coalesce(
    (SELECT q.hard FROM quotas q WHERE q.tenant_id = t.id AND q.resource = s.resource),
    EXISTS (SELECT 1 FROM unnest($1::text[], $2::text[]) AS h(tier, resource)
            WHERE h.tier = t.tier AND h.resource = s.resource))";

/// COPY text format: backslash, tab, newline and carriage return escaped.
fn copy_field(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
}

/// Inserts the events `select` yields (tenant_id, key, resource, quantity, at, period) and adds
/// to the monthly totals exactly the rows that went in: a key seen before (even by a concurrent
/// import) is skipped by the primary key and counts nowhere. Yields the count inserted.
fn insert_counting_totals(select: &str) -> String {
    format!(
        "WITH ins AS (
             INSERT INTO usage_events (tenant_id, key, resource, quantity, at, period)
             {select}
             ON CONFLICT (tenant_id, key) DO NOTHING
             RETURNING tenant_id, resource, period, quantity
         ), totals AS (
             INSERT INTO usage_totals (tenant_id, resource, period, quantity)
             SELECT tenant_id, resource, period, sum(quantity) FROM ins
             GROUP BY tenant_id, resource, period
             ORDER BY tenant_id, resource, period
             ON CONFLICT (tenant_id, resource, period)
             DO UPDATE SET quantity = usage_totals.quantity + EXCLUDED.quantity
         )
         SELECT count(*) FROM ins"
    )
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

    /// The tenant's quota rows with the period's metered totals and the last measurements.
    pub async fn quota_usage(&self, tenant: Uuid, period: Period) -> Result<Vec<QuotaUsage>> {
        let rows = self
            .conn()
            .await?
            .query(
                "SELECT q.resource, q.limit_value, q.source, coalesce(t.quantity, 0), m.quantity, m.measured_at, q.hard
                 FROM quotas q
                 LEFT JOIN usage_totals t ON t.tenant_id = q.tenant_id AND t.resource = q.resource AND t.period = $2
                 LEFT JOIN measured_usage m ON m.tenant_id = q.tenant_id AND m.resource = q.resource
                 WHERE q.tenant_id = $1 ORDER BY q.resource",
                &[&tenant, &period],
            )
            .await
            .context("reading quotas and usage")?;
        Ok(rows
            .iter()
            .map(|r| QuotaUsage {
                resource: r.get(0),
                limit: r.get(1),
                source: r.get(2),
                metered: r.get(3),
                measured: r.get::<_, Option<i64>>(4).map(|q| (q, r.get(5))),
                hard: r.get(6),
            })
            .collect())
    }

    /// One tenant's status, tier and one resource's quota with its usage, by slug, in one
    /// query (the hot path of `quota check`). `None`: no such tenant; an empty quota: none yet.
    pub async fn quota_for_check(
        &self,
        slug: &Slug,
        resource: Resource,
        period: Period,
    ) -> Result<Option<(Status, String, Option<QuotaUsage>)>> {
        let row = self
            .conn()
            .await?
            .query_opt(
                "SELECT t.status, t.tier, q.resource, q.limit_value, q.source, coalesce(u.quantity, 0), m.quantity, m.measured_at, q.hard
                 FROM tenants t
                 LEFT JOIN quotas q ON q.tenant_id = t.id AND q.resource = $2
                 LEFT JOIN usage_totals u ON u.tenant_id = t.id AND u.resource = $2 AND u.period = $3
                 LEFT JOIN measured_usage m ON m.tenant_id = t.id AND m.resource = $2
                 WHERE t.slug = $1",
                &[&slug, &resource, &period],
            )
            .await
            .context("reading the quota")?;
        Ok(row.map(|r| {
            let quota = r.get::<_, Option<Resource>>(2).map(|resource| QuotaUsage {
                resource,
                limit: r.get(3),
                source: r.get(4),
                metered: r.get(5),
                measured: r.get::<_, Option<i64>>(6).map(|q| (q, r.get(7))),
                hard: r.get(8),
            });
            (r.get(0), r.get(1), quota)
        }))
    }

    /// Overrides one limit (audited in the same transaction). Returns the previous limit;
    /// `None` (and nothing changed) when the tenant has no such quota row yet.
    pub async fn set_quota(
        &self,
        tenant: Uuid,
        slug: &str,
        resource: Resource,
        limit: i64,
        source: &str,
        actor: &str,
    ) -> Result<Option<i64>> {
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await.context("starting a transaction")?;
        let Some(before) = tx
            .query_opt(
                "SELECT limit_value FROM quotas WHERE tenant_id = $1 AND resource = $2 FOR UPDATE",
                &[&tenant, &resource],
            )
            .await
            .with_context(|| format!("reading the {resource} quota"))?
            .map(|r| r.get::<_, i64>(0))
        else {
            return Ok(None);
        };
        tx.execute(
            "UPDATE quotas SET limit_value = $3, source = $4, updated_at = now() WHERE tenant_id = $1 AND resource = $2",
            &[&tenant, &resource, &limit, &source],
        )
        .await
        .with_context(|| format!("setting the {resource} quota"))?;
        let action = if source == "override" {
            Action::QuotaSet
        } else {
            Action::QuotaReset
        };
        let details = serde_json::json!({ "resource": resource, "from": before, "to": limit });
        super::audit::append(
            &*tx,
            super::audit::Entry {
                actor,
                action,
                tenant_id: tenant,
                slug,
                from: None,
                to: None,
                details: &details,
            },
        )
        .await?;
        tx.commit().await.context("committing the quota change")?;
        Ok(Some(before))
    }

    /// Stores measurements: (tenant, resource, quantity), set-based.
    pub async fn store_measurements(&self, rows: &[(Uuid, Resource, i64)]) -> Result<()> {
        let tenants: Vec<Uuid> = rows.iter().map(|r| r.0).collect();
        let resources: Vec<Resource> = rows.iter().map(|r| r.1).collect();
        let quantities: Vec<i64> = rows.iter().map(|r| r.2).collect();
        self.conn()
            .await?
            .execute(
                "INSERT INTO measured_usage (tenant_id, resource, quantity, measured_at)
                 SELECT t, r, q, now() FROM unnest($1::uuid[], $2::text[], $3::bigint[]) AS m(t, r, q)
                 ON CONFLICT (tenant_id, resource) DO UPDATE SET quantity = EXCLUDED.quantity, measured_at = EXCLUDED.measured_at",
                &[&tenants, &resources, &quantities],
            )
            .await
            .context("storing measured usage")?;
        Ok(())
    }

    /// Imports a file's events in one transaction: COPY into a temporary staging table, then
    /// set-based classification. A row is a duplicate if its key was recorded before or appears
    /// earlier in the file; refused if its tenant is unknown or not active, or if, taken in file
    /// order, it would pass a hard limit (`hard`: the (tier, resource) pairs without overage
    /// price). Everything else is inserted and added to the monthly totals.
    ///
    /// Before anything is applied, in this order: the rows' tenants are share-locked in a fixed
    /// order (a purge or status change waits for the import, or, committed first, leaves the
    /// tenant unknown or inactive: its rows are refused, never a raw foreign-key error); every
    /// known tenant's tier must be in `tier_names` (the tier file), every time within the
    /// tenant's bounds (`check_usage_time`), and no monthly total may pass `MAX_QUANTITY`.
    /// Any of these is bad input naming the lines, and the transaction rolls back. Whether a
    /// limit is hard is the tenant's stored `quotas.hard` (`hard` only where it is not stored).
    pub async fn import_events(
        &self,
        origin: &str,
        rows: &[UsageRow],
        tier_names: &[&str],
        hard: &[(String, Resource)],
        now: DateTime<Utc>,
    ) -> Result<Imported> {
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await.context("starting a transaction")?;
        tx.batch_execute(
            "CREATE TEMP TABLE import_staging (
                 line bigint, slug text, resource text, quantity bigint, at timestamptz, key text
             ) ON COMMIT DROP",
        )
        .await
        .context("creating the staging table")?;
        let sink = tx
            .copy_in("COPY import_staging (line, slug, resource, quantity, at, key) FROM STDIN")
            .await
            .context("starting COPY")?;
        futures_util::pin_mut!(sink);
        let mut buf = String::with_capacity(1 << 20);
        for r in rows {
            buf.push_str(&r.line.to_string());
            buf.push('\t');
            copy_field(&mut buf, r.slug.as_str());
            buf.push('\t');
            copy_field(&mut buf, r.resource.as_str());
            buf.push('\t');
            buf.push_str(&r.quantity.to_string());
            buf.push('\t');
            buf.push_str(&r.at.to_rfc3339());
            buf.push('\t');
            copy_field(&mut buf, &r.key);
            buf.push('\n');
            if buf.len() > (1 << 20) - 512 {
                sink.send(bytes::Bytes::from(std::mem::take(&mut buf)))
                    .await
                    .context("sending COPY data")?;
            }
        }
        if !buf.is_empty() {
            sink.send(bytes::Bytes::from(buf))
                .await
                .context("sending COPY data")?;
        }
        sink.finish().await.context("finishing COPY")?;

        let hard_tiers: Vec<&str> = hard.iter().map(|(t, _)| t.as_str()).collect();
        let hard_resources: Vec<Resource> = hard.iter().map(|(_, r)| *r).collect();
        tx.batch_execute("ANALYZE import_staging")
            .await
            .context("analysing the staging table")?;

        // 0. Lock the tenants, then check tiers, times and totals (see above).
        tx.execute(
            "SELECT 1 FROM tenants WHERE slug IN (SELECT slug FROM import_staging)
             ORDER BY id FOR SHARE",
            &[],
        )
        .await
        .context("locking the import's tenants")?;
        let bad = |lines: Vec<String>| {
            Err(Failure::BadInput(format!(
                "invalid usage file {origin}: {}; nothing imported",
                lines.join("; ")
            ))
            .into())
        };
        let missing: Vec<String> = tx
            .query(
                "SELECT t.slug, t.tier, min(s.line) FROM import_staging s JOIN tenants t ON t.slug = s.slug
                 WHERE t.tier <> ALL($1::text[]) GROUP BY t.slug, t.tier ORDER BY 3 LIMIT 10",
                &[&tier_names],
            )
            .await
            .context("checking the tenants' tiers")?
            .iter()
            .map(|r| {
                format!(
                    "line {}: tenant `{}` is on tier `{}`, which the tier table does not define (it has {})",
                    r.get::<_, i64>(2),
                    r.get::<_, String>(0),
                    r.get::<_, String>(1),
                    tier_names.join(", ")
                )
            })
            .collect();
        if !missing.is_empty() {
            return bad(missing);
        }
        let skew = USAGE_SKEW.num_seconds() as f64;
        let out_of_bounds: Vec<String> = tx
            .query(
                "SELECT s.line, s.at, t.created_at FROM import_staging s JOIN tenants t ON t.slug = s.slug
                 WHERE s.at < t.created_at - make_interval(secs => $1)
                    OR s.at > $2::timestamptz + make_interval(secs => $1)
                 ORDER BY s.line LIMIT 10",
                &[&skew, &now],
            )
            .await
            .context("checking the times")?
            .iter()
            .map(|r| {
                let e = check_usage_time(r.get(1), r.get(2), now)
                    .err()
                    .unwrap_or_else(|| "time out of bounds".to_owned());
                format!("line {}: {e}", r.get::<_, i64>(0))
            })
            .collect();
        if !out_of_bounds.is_empty() {
            return bad(out_of_bounds);
        }

        let params: [&(dyn ToSql + Sync); 2] = [&hard_tiers, &hard_resources];
        // Only rows under soft limits can grow a total without bound (a hard limit is at
        // most MAX_QUANTITY); summed as numeric, so the check itself cannot overflow.
        let too_large: Vec<String> = tx
            .query(
                &format!(
                    "WITH r AS (
                         SELECT s.line, t.id AS tenant_id, s.resource, s.quantity,
                                date_trunc('month', s.at AT TIME ZONE 'UTC')::date AS period,
                                row_number() OVER (PARTITION BY t.id, s.key ORDER BY s.line) > 1
                                  OR EXISTS (SELECT 1 FROM usage_events e WHERE e.tenant_id = t.id AND e.key = s.key) AS duplicate
                         FROM import_staging s JOIN tenants t ON t.slug = s.slug AND t.status = 'active'
                         WHERE NOT {HARD}
                     ), c AS (
                         SELECT r.*, sum(r.quantity::numeric) OVER (PARTITION BY tenant_id, resource, period ORDER BY line) AS cum
                         FROM r WHERE NOT duplicate
                     )
                     SELECT c.line, c.resource, to_char(c.period, 'YYYY-MM') FROM c
                     LEFT JOIN usage_totals u ON u.tenant_id = c.tenant_id AND u.resource = c.resource AND u.period = c.period
                     WHERE c.cum + coalesce(u.quantity, 0) > {MAX_QUANTITY}
                     ORDER BY c.line LIMIT 10"
                ),
                &params,
            )
            .await
            .context("checking the monthly totals")?
            .iter()
            .map(|r| {
                format!(
                    "line {}: the {} total of {} would pass {MAX_QUANTITY}",
                    r.get::<_, i64>(0),
                    r.get::<_, String>(1),
                    r.get::<_, String>(2)
                )
            })
            .collect();
        if !too_large.is_empty() {
            return bad(too_large);
        }

        // 1. Rows of unknown or inactive tenants are refused.
        let mut refused: Vec<(i64, String, Resource, String)> = tx
            .query(
                "SELECT s.line, s.slug, s.resource,
                        CASE WHEN t.id IS NULL THEN 'unknown tenant' ELSE 'tenant is ' || t.status END
                 FROM import_staging s LEFT JOIN tenants t ON t.slug = s.slug
                 WHERE t.id IS NULL OR t.status <> 'active'",
                &[],
            )
            .await
            .context("finding rows of unknown or inactive tenants")?
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
            .collect();

        // 2. Rows under soft limits (most of them) go straight in: the primary key drops keys
        //    seen before or earlier in the file (ordered by line, the first one wins). Totals
        //    come from the rows actually inserted, so a concurrent import of the same keys
        //    cannot make one event count twice.
        let soft_accepted: i64 = tx
            .query_one(
                &insert_counting_totals(&format!(
                    "SELECT t.id, s.key, s.resource, s.quantity, s.at, date_trunc('month', s.at AT TIME ZONE 'UTC')::date
                     FROM import_staging s JOIN tenants t ON t.slug = s.slug AND t.status = 'active'
                     WHERE NOT {HARD}
                     ORDER BY t.id, s.key, s.line"
                    ),
                ),
                &params,
            )
            .await
            .context("inserting the events under soft limits")?
            .get(0);

        // 3. Rows under hard limits: lock their quota rows in a fixed order (so concurrent
        //    imports and `usage record` cannot pass a limit together), then, in file order, refuse
        //    from the first row that would pass the limit.
        tx.execute(
            &format!("CREATE TEMP TABLE import_hard ON COMMIT DROP AS
             SELECT s.*, t.id AS tenant_id, date_trunc('month', s.at AT TIME ZONE 'UTC')::date AS period,
                    row_number() OVER (PARTITION BY t.id, s.key ORDER BY s.line) > 1
                      OR EXISTS (SELECT 1 FROM usage_events e WHERE e.tenant_id = t.id AND e.key = s.key) AS duplicate
             FROM import_staging s
             JOIN tenants t ON t.slug = s.slug AND t.status = 'active'
             WHERE {HARD}"
            ),
            &params,
        )
        .await
        .context("collecting the rows under hard limits")?;
        tx.execute(
            "SELECT 1 FROM quotas q
             WHERE (q.tenant_id, q.resource) IN (SELECT DISTINCT tenant_id, resource FROM import_hard)
             ORDER BY q.tenant_id, q.resource FOR UPDATE",
            &[],
        )
        .await
        .context("locking the hard quotas")?;
        let over_limit = tx
            .query(
                "WITH running AS (
                     SELECT h.*, sum(h.quantity) OVER (PARTITION BY h.tenant_id, h.resource, h.period ORDER BY h.line) AS cum
                     FROM import_hard h WHERE NOT h.duplicate
                 )
                 SELECT r.line, r.slug, r.resource,
                        'over the hard limit of ' || q.limit_value || ' for ' || to_char(r.period, 'YYYY-MM')
                 FROM running r
                 JOIN quotas q ON q.tenant_id = r.tenant_id AND q.resource = r.resource
                 LEFT JOIN usage_totals u ON u.tenant_id = r.tenant_id AND u.resource = r.resource AND u.period = r.period
                 WHERE r.cum + coalesce(u.quantity, 0) > q.limit_value",
                &[],
            )
            .await
            .context("applying hard limits")?;
        let over_lines: Vec<i64> = over_limit.iter().map(|r| r.get(0)).collect();
        refused.extend(
            over_limit
                .iter()
                .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3))),
        );
        let hard_accepted: i64 = tx
            .query_one(
                &insert_counting_totals(
                    "SELECT tenant_id, key, resource, quantity, at, period FROM import_hard
                     WHERE NOT duplicate AND line <> ALL($1)
                     ORDER BY tenant_id, key",
                ),
                &[&over_lines],
            )
            .await
            .context("inserting the events under hard limits")?
            .get(0);
        refused.sort_by_key(|r| r.0);
        let accepted = soft_accepted + hard_accepted;
        let duplicates = rows.len() as i64 - accepted - refused.len() as i64;
        tx.commit().await.context("committing the import")?;
        Ok(Imported {
            accepted,
            duplicates,
            refused,
        })
    }
}
