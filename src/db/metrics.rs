//! The fleet's state for `tenantctl metrics`: a few set-based reads of the control database,
//! in one repeatable-read transaction so that the numbers agree with each other, whatever the
//! number of tenants. Reads only.

use anyhow::{Context, Result};
use chrono::{DateTime, NaiveDate, Utc};

use super::control::ControlDb;
use super::locks::TENANT_LOCK_PREFIX;
use crate::resource::Resource;
use crate::tenant::Status;

/// Tenants of one tier, isolation and status.
#[derive(Debug, Clone)]
pub struct TenantCount {
    pub tier: String,
    pub isolation: String,
    pub status: String,
    pub count: i64,
}

/// One quota of a tenant that is not deleted, with the usage counted against it.
#[derive(Debug, Clone)]
pub struct QuotaFact {
    pub slug: String,
    pub tier: String,
    pub resource: Resource,
    pub limit: i64,
    /// The period's metered total (0 if none).
    pub metered: i64,
    /// The last measurement, if any.
    pub measured: Option<i64>,
}

/// The billing run of the latest period.
#[derive(Debug, Clone)]
pub struct LastRun {
    pub period: NaiveDate,
    pub started_at: DateTime<Utc>,
    /// None: the run has not finished (it is running, or it was interrupted).
    pub finished_at: Option<DateTime<Utc>>,
    /// The period's invoices now, per currency: (currency, count, total in cents).
    pub invoiced: Vec<(String, i64, i64)>,
}

/// A tenant in an intermediate status (provisioning, suspending, deleting...).
#[derive(Debug, Clone)]
pub struct Transition {
    pub slug: String,
    pub status: String,
    /// Since its status last changed or its provisioning journal last moved.
    pub age_seconds: f64,
    /// A tenantctl process holds the tenant's lock: the transition is under way. Otherwise it
    /// was interrupted (a failed step, a kill) and waits for a re-run.
    pub running: bool,
}

/// Everything `metrics` reads from the control database.
#[derive(Debug, Clone)]
pub struct Facts {
    pub tenants: Vec<TenantCount>,
    pub quotas: Vec<QuotaFact>,
    pub last_run: Option<LastRun>,
    pub transitions: Vec<Transition>,
}

impl ControlDb {
    /// The fleet's state; `period` is the first day of the month whose metered usage counts.
    pub async fn metrics_facts(&self, period: NaiveDate) -> Result<Facts> {
        let mut conn = self.conn().await?;
        let tx = conn
            .build_transaction()
            .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await
            .context("starting the metrics read")?;

        let tenants = tx
            .query(
                "SELECT tier, isolation, status, count(*) FROM tenants
                 GROUP BY tier, isolation, status ORDER BY tier, isolation, status",
                &[],
            )
            .await
            .context("counting tenants")?
            .iter()
            .map(|r| TenantCount {
                tier: r.get(0),
                isolation: r.get(1),
                status: r.get(2),
                count: r.get(3),
            })
            .collect();

        let quotas = tx
            .query(
                "SELECT t.slug, t.tier, q.resource, q.limit_value, coalesce(u.quantity, 0), m.quantity
                 FROM tenants t
                 JOIN quotas q ON q.tenant_id = t.id
                 LEFT JOIN usage_totals u ON u.tenant_id = t.id AND u.resource = q.resource AND u.period = $1
                 LEFT JOIN measured_usage m ON m.tenant_id = t.id AND m.resource = q.resource
                 WHERE t.status <> ALL($2)
                 ORDER BY t.slug, q.resource",
                &[&period, &[Status::Deleted, Status::Deleting].as_slice()],
            )
            .await
            .context("reading quotas and usage")?
            .iter()
            .map(|r| QuotaFact {
                slug: r.get(0),
                tier: r.get(1),
                resource: r.get(2),
                limit: r.get(3),
                metered: r.get(4),
                measured: r.get(5),
            })
            .collect();

        let run = tx
            .query_opt(
                "SELECT period, started_at, finished_at FROM billing_runs ORDER BY period DESC LIMIT 1",
                &[],
            )
            .await
            .context("reading the last billing run")?;
        let last_run = match run {
            None => None,
            Some(r) => {
                let period: NaiveDate = r.get(0);
                let invoiced = tx
                    .query(
                        "SELECT currency, count(*), coalesce(sum(total_cents), 0)::bigint
                         FROM invoices WHERE period = $1 GROUP BY currency ORDER BY currency",
                        &[&period],
                    )
                    .await
                    .context("summing the last period's invoices")?
                    .iter()
                    .map(|i| (i.get(0), i.get(1), i.get(2)))
                    .collect();
                Some(LastRun {
                    period,
                    started_at: r.get(1),
                    finished_at: r.get(2),
                    invoiced,
                })
            }
        };

        // The lock is the one `ControlDb::try_lock_tenant` takes: a session advisory lock on
        // hashtextextended(key, 0), which pg_locks shows split in classid (high 32 bits) and
        // objid (low 32 bits) with objsubid 1.
        // A tenant in an intermediate status is a transition not (yet) finished.
        let intermediate: Vec<Status> = Status::ALL
            .into_iter()
            .filter(|s| s.is_intermediate())
            .collect();
        let transitions = tx
            .query(
                "SELECT t.slug, t.status,
                        extract(epoch FROM now() - greatest(t.updated_at,
                            (SELECT max(j.completed_at) FROM provisioning_journal j WHERE j.tenant_id = t.id)))::float8,
                        EXISTS (SELECT 1 FROM pg_locks l
                                WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
                                  AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
                                  AND ((l.classid::int8 << 32) | l.objid::int8) = hashtextextended($1 || t.slug, 0))
                 FROM tenants t
                 WHERE t.status = ANY($2)
                 ORDER BY t.slug",
                &[&TENANT_LOCK_PREFIX, &intermediate],
            )
            .await
            .context("reading unfinished transitions")?
            .iter()
            .map(|r| Transition {
                slug: r.get(0),
                status: r.get(1),
                age_seconds: r.get::<_, f64>(2).max(0.0),
                running: r.get(3),
            })
            .collect();

        tx.commit().await.context("ending the metrics read")?;
        Ok(Facts {
            tenants,
            quotas,
            last_run,
            transitions,
        })
    }
}
