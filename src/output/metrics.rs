//! `tenantctl metrics` as Prometheus text, in the OpenMetrics exposition format that
//! prometheus-client writes (gauges only, so that the classic text parsers of Prometheus and
//! node_exporter's textfile collector read it too). Names carry their unit
//! (`_seconds`, `_ratio`); labels are bounded: slug, tier, isolation, resource, status, state,
//! schema, currency, and the one period of the last billing run.

use std::sync::atomic::AtomicU64;

use anyhow::{anyhow, Result};
use chrono::{NaiveTime, TimeZone, Utc};
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::{Registry, Unit};

use crate::ops::metrics::Fleet;

type Labels = Vec<(&'static str, String)>;
type Count = Family<Labels, Gauge>;
type Value = Family<Labels, Gauge<f64, AtomicU64>>;

fn labels(pairs: &[(&'static str, &str)]) -> Labels {
    pairs.iter().map(|(k, v)| (*k, (*v).to_owned())).collect()
}

/// Seconds since the epoch, as Prometheus timestamps are.
fn seconds(at: chrono::DateTime<Utc>) -> f64 {
    at.timestamp_millis() as f64 / 1000.0
}

/// The fleet as OpenMetrics text, ending with `# EOF`.
pub fn render(fleet: &Fleet) -> Result<String> {
    let mut registry = Registry::with_prefix("tenantctl");

    let tenants = Count::default();
    registry.register(
        "tenants",
        "Tenants by tier, isolation and status",
        tenants.clone(),
    );
    for t in &fleet.tenants {
        tenants
            .get_or_create(&labels(&[
                ("tier", &t.tier),
                ("isolation", &t.isolation),
                ("status", &t.status),
            ]))
            .set(t.count);
    }

    let used = Count::default();
    let limit = Count::default();
    let ratio = Value::default();
    registry.register(
        "quota_used",
        "Use of a resource by a tenant that is not deleted: this month's metered total (UTC), or the last measurement (users, storage_mb)",
        used.clone(),
    );
    registry.register(
        "quota_limit",
        "A tenant's limit of a resource",
        limit.clone(),
    );
    registry.register_with_unit(
        "quota_used",
        "quota_used / quota_limit (absent for a limit of 0); past 1 is overage, or refused for a hard limit",
        Unit::Other("ratio".to_owned()),
        ratio.clone(),
    );
    for q in &fleet.quotas {
        let l = labels(&[
            ("slug", &q.slug),
            ("tier", &q.tier),
            ("resource", q.resource.as_str()),
        ]);
        used.get_or_create(&l).set(q.used);
        limit.get_or_create(&l).set(q.limit);
        if let Some(r) = q.ratio() {
            ratio.get_or_create(&l).set(r);
        }
    }

    if let Some(run) = &fleet.last_run {
        let info = Count::default();
        registry.register(
            "billing_last_run_info",
            "The period (YYYY-MM) of the latest billing run, as a label",
            info.clone(),
        );
        info.get_or_create(&labels(&[(
            "period",
            &run.period.format("%Y-%m").to_string(),
        )]))
        .set(1);

        let period_start = Gauge::<f64, AtomicU64>::default();
        registry.register_with_unit(
            "billing_last_run_period_start_timestamp",
            "Start of the latest billed period (its first day, 00:00 UTC)",
            Unit::Seconds,
            period_start.clone(),
        );
        period_start.set(seconds(
            Utc.from_utc_datetime(&run.period.and_time(NaiveTime::MIN)),
        ));

        let started = Gauge::<f64, AtomicU64>::default();
        registry.register_with_unit(
            "billing_last_run_started_timestamp",
            "When the latest period's billing run first started",
            Unit::Seconds,
            started.clone(),
        );
        started.set(seconds(run.started_at));

        let complete = Gauge::<i64>::default();
        registry.register(
            "billing_last_run_complete",
            "1 when the latest period's billing run finished, 0 while it runs or after it was interrupted (re-run `tenantctl bill`)",
            complete.clone(),
        );
        complete.set(i64::from(run.finished_at.is_some()));

        if let Some(finished) = run.finished_at {
            let finished_g = Gauge::<f64, AtomicU64>::default();
            registry.register_with_unit(
                "billing_last_run_finished_timestamp",
                "When the latest period's billing run last finished",
                Unit::Seconds,
                finished_g.clone(),
            );
            finished_g.set(seconds(finished));
            let duration = Gauge::<f64, AtomicU64>::default();
            registry.register_with_unit(
                "billing_last_run_duration",
                "From the first start of the latest period's billing run to its last finish",
                Unit::Seconds,
                duration.clone(),
            );
            duration.set((finished - run.started_at).num_milliseconds().max(0) as f64 / 1000.0);
        }

        let invoices = Gauge::<i64>::default();
        registry.register(
            "billing_last_run_invoices",
            "Invoices of the latest billed period",
            invoices.clone(),
        );
        invoices.set(run.invoiced.iter().map(|(_, n, _)| n).sum());
        let amount = Value::default();
        registry.register(
            "billing_last_run_amount",
            "Sum of the latest billed period's invoices, in units of the currency (label)",
            amount.clone(),
        );
        for (currency, _, cents) in &run.invoiced {
            amount
                .get_or_create(&labels(&[("currency", currency)]))
                .set(*cents as f64 / 100.0);
        }
    }

    let databases = Count::default();
    registry.register(
        "tenant_databases",
        "Tenant databases by schema state: current, behind (pending migrations: run `tenantctl migrate`), unknown (a closed silo, or unreachable)",
        databases.clone(),
    );
    for (schema, n) in [
        ("current", fleet.schemas.current),
        ("behind", fleet.schemas.behind),
        ("unknown", fleet.schemas.unknown),
    ] {
        databases
            .get_or_create(&labels(&[("schema", schema)]))
            .set(n);
    }

    let transitions = Count::default();
    registry.register(
        "tenants_in_transition",
        "Tenants in an intermediate status (provisioning, suspending, deleting...): running (a tenantctl holds the tenant's lock) or interrupted (failed or killed: re-run the command)",
        transitions.clone(),
    );
    let ages = Value::default();
    registry.register_with_unit(
        "tenant_transition_age",
        "How long a tenant has been in its intermediate status without progress",
        Unit::Seconds,
        ages.clone(),
    );
    // Provisioning is always reported, so that an alert on it sees 0 rather than nothing.
    for state in ["running", "interrupted"] {
        transitions
            .get_or_create(&labels(&[("status", "provisioning"), ("state", state)]))
            .set(0);
    }
    for t in &fleet.transitions {
        let state = if t.running { "running" } else { "interrupted" };
        transitions
            .get_or_create(&labels(&[("status", &t.status), ("state", state)]))
            .inc();
        ages.get_or_create(&labels(&[
            ("slug", &t.slug),
            ("status", &t.status),
            ("state", state),
        ]))
        .set(t.age_seconds);
    }

    let mut text = String::new();
    encode(&mut text, &registry).map_err(|_| anyhow!("encoding the metrics"))?;
    Ok(text)
}
