//! Usage in the control database: metered events and their monthly totals, measured levels,
//! and the bulk import through COPY.

use anyhow::{Context, Result};
use chrono::{DateTime, NaiveDate, Utc};
use futures_util::SinkExt;
use tokio_postgres::types::ToSql;
use uuid::Uuid;

use super::control::ControlDb;
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
    NotActive(String),
}

/// One event to record.
pub struct Event<'a> {
    pub tenant: Uuid,
    pub resource: &'a str,
    pub quantity: i64,
    pub at: DateTime<Utc>,
    pub period: NaiveDate,
    pub key: &'a str,
}

/// A quota row with the usage that counts against it.
#[derive(Debug, Clone)]
pub struct QuotaUsage {
    pub resource: String,
    pub limit: i64,
    pub source: String,
    /// The period's metered total (0 if none).
    pub metered: i64,
    /// The last measurement, if any.
    pub measured: Option<(i64, DateTime<Utc>)>,
}

/// What an import did, row by row for the refused ones.
#[derive(Debug, Clone, Default)]
pub struct Imported {
    pub accepted: i64,
    pub duplicates: i64,
    /// (line, slug, resource, reason)
    pub refused: Vec<(i64, String, String, String)>,
}

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

impl ControlDb {
    /// Records one metered event. With `hard`, the limit check and the write happen in one
    /// transaction that holds the quota row's lock, so concurrent events cannot pass the limit
    /// together. The tenant row is share-locked: a concurrent status change waits for us.
    pub async fn record_event(&self, e: &Event<'_>, hard: bool) -> Result<Recorded> {
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await.context("starting a transaction")?;
        let status: String = tx
            .query_one(
                "SELECT status FROM tenants WHERE id = $1 FOR SHARE",
                &[&e.tenant],
            )
            .await
            .context("locking the tenant")?
            .get(0);
        if status != "active" {
            return Ok(Recorded::NotActive(status));
        }
        let limit: i64 = if hard {
            tx.query_one(
                "SELECT limit_value FROM quotas WHERE tenant_id = $1 AND resource = $2 FOR UPDATE",
                &[&e.tenant, &e.resource],
            )
            .await
            .with_context(|| format!("locking the {} quota", e.resource))?
            .get(0)
        } else {
            i64::MAX
        };
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
        if hard {
            let used: i64 = tx
                .query_opt(
                    "SELECT quantity FROM usage_totals WHERE tenant_id = $1 AND resource = $2 AND period = $3",
                    &[&e.tenant, &e.resource, &e.period],
                )
                .await
                .context("reading the period's usage")?
                .map_or(0, |r| r.get(0));
            if used.saturating_add(e.quantity) > limit {
                return Ok(Recorded::OverLimit { used, limit });
            }
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
    pub async fn quota_usage(&self, tenant: Uuid, period: NaiveDate) -> Result<Vec<QuotaUsage>> {
        let rows = self
            .conn()
            .await?
            .query(
                "SELECT q.resource, q.limit_value, q.source, coalesce(t.quantity, 0), m.quantity, m.measured_at
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
            })
            .collect())
    }

    /// Overrides one limit (audited in the same transaction). Returns the previous limit.
    pub async fn set_quota(
        &self,
        tenant: Uuid,
        slug: &str,
        resource: &str,
        limit: i64,
        source: &str,
        actor: &str,
    ) -> Result<i64> {
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await.context("starting a transaction")?;
        let before: i64 = tx
            .query_one(
                "SELECT limit_value FROM quotas WHERE tenant_id = $1 AND resource = $2 FOR UPDATE",
                &[&tenant, &resource],
            )
            .await
            .with_context(|| format!("reading the {resource} quota"))?
            .get(0);
        tx.execute(
            "UPDATE quotas SET limit_value = $3, source = $4, updated_at = now() WHERE tenant_id = $1 AND resource = $2",
            &[&tenant, &resource, &limit, &source],
        )
        .await
        .with_context(|| format!("setting the {resource} quota"))?;
        let action = if source == "override" {
            "quota.set"
        } else {
            "quota.reset"
        };
        let details = serde_json::json!({ "resource": resource, "from": before, "to": limit });
        tx.execute(
            "INSERT INTO audit_log (actor, action, tenant_id, slug, details) VALUES ($1, $2, $3, $4, $5)",
            &[&actor, &action, &tenant, &slug, &details],
        )
        .await
        .context("writing the audit log")?;
        tx.commit().await.context("committing the quota change")?;
        Ok(before)
    }

    /// Stores measurements: (tenant, resource, quantity), set-based.
    pub async fn store_measurements(&self, rows: &[(Uuid, &str, i64)]) -> Result<()> {
        let tenants: Vec<Uuid> = rows.iter().map(|r| r.0).collect();
        let resources: Vec<&str> = rows.iter().map(|r| r.1).collect();
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
    pub async fn import_events(
        &self,
        rows: &[UsageRow],
        hard: &[(String, String)],
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
            copy_field(&mut buf, &r.slug);
            buf.push('\t');
            copy_field(&mut buf, &r.resource);
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
        let hard_resources: Vec<&str> = hard.iter().map(|(_, r)| r.as_str()).collect();
        // Classify every staged row once; lock the quota rows of hard limits in a fixed order so
        // that concurrent imports and `usage record` cannot pass a limit together.
        let params: [&(dyn ToSql + Sync); 2] = [&hard_tiers, &hard_resources];
        tx.execute(
            "CREATE TEMP TABLE import_classified ON COMMIT DROP AS
             WITH hard AS (SELECT * FROM unnest($1::text[], $2::text[]) AS h(tier, resource)),
             staged AS (
                 SELECT s.*, t.id AS tenant_id, t.status, t.tier,
                        date_trunc('month', s.at AT TIME ZONE 'UTC')::date AS period,
                        row_number() OVER (PARTITION BY s.slug, s.key ORDER BY s.line) > 1 AS repeated
                 FROM import_staging s LEFT JOIN tenants t ON t.slug = s.slug
             ),
             marked AS (
                 SELECT st.*,
                        st.repeated OR EXISTS (
                            SELECT 1 FROM usage_events e WHERE e.tenant_id = st.tenant_id AND e.key = st.key
                        ) AS duplicate,
                        EXISTS (SELECT 1 FROM hard h WHERE h.tier = st.tier AND h.resource = st.resource) AS is_hard
                 FROM staged st
             )
             SELECT m.*,
                    CASE
                      WHEN m.tenant_id IS NULL THEN 'unknown tenant'
                      WHEN m.status <> 'active' THEN 'tenant is ' || m.status
                    END AS refusal,
                    sum(m.quantity) FILTER (WHERE NOT m.duplicate)
                        OVER (PARTITION BY m.tenant_id, m.resource, m.period ORDER BY m.line) AS running
             FROM marked m",
            &params,
        )
        .await
        .context("classifying the imported rows")?;
        tx.execute(
            "SELECT 1 FROM quotas q
             WHERE (q.tenant_id, q.resource) IN (SELECT DISTINCT tenant_id, resource FROM import_classified WHERE is_hard)
             ORDER BY q.tenant_id, q.resource FOR UPDATE",
            &[],
        )
        .await
        .context("locking the hard quotas")?;
        // Hard limits: in file order, a row is refused from the first one that passes the limit.
        tx.execute(
            "UPDATE import_classified c
             SET refusal = 'over the hard limit of ' || q.limit_value || ' for ' || to_char(c.period, 'YYYY-MM')
             FROM quotas q
             WHERE c.refusal IS NULL AND c.is_hard AND NOT c.duplicate
               AND q.tenant_id = c.tenant_id AND q.resource = c.resource
               AND c.running + coalesce((SELECT quantity FROM usage_totals u
                                         WHERE u.tenant_id = c.tenant_id AND u.resource = c.resource AND u.period = c.period), 0)
                   > q.limit_value",
            &[],
        )
        .await
        .context("applying hard limits")?;
        // Totals come from the rows actually inserted: a concurrent import of the same keys
        // cannot make one event count twice.
        let accepted: i64 = tx
            .query_one(
                "WITH ins AS (
                     INSERT INTO usage_events (tenant_id, key, resource, quantity, at, period)
                     SELECT tenant_id, key, resource, quantity, at, period FROM import_classified
                     WHERE refusal IS NULL AND NOT duplicate
                     ORDER BY tenant_id, key
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
                 SELECT count(*) FROM ins",
                &[],
            )
            .await
            .context("inserting the events")?
            .get(0);
        let candidates: i64 = tx
            .query_one(
                "SELECT count(*) FROM import_classified WHERE refusal IS NULL AND NOT duplicate",
                &[],
            )
            .await
            .context("counting the new rows")?
            .get(0);
        let marked: i64 = tx
            .query_one(
                "SELECT count(*) FROM import_classified WHERE duplicate AND refusal IS NULL",
                &[],
            )
            .await
            .context("counting duplicates")?
            .get(0);
        let duplicates = marked + (candidates - accepted);
        let refused = tx
            .query(
                "SELECT line, slug, resource, refusal FROM import_classified WHERE refusal IS NOT NULL ORDER BY line",
                &[],
            )
            .await
            .context("listing refused rows")?
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
            .collect();
        tx.commit().await.context("committing the import")?;
        Ok(Imported {
            accepted,
            duplicates,
            refused,
        })
    }
}
