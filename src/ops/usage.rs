//! Usage: recording metered events one at a time or in bulk, and measuring the measured
//! resources (`users`, `storage_mb`) from the data plane.
//!
//! Metered resources (`sandboxes`, `compute_hours`, `api_requests`) count events per calendar
//! month (UTC). Measured resources are a level: `users` is the tenant's user rows; `storage_mb`
//! is its database (siloed: the whole database's size; pooled: its share of the shared tables,
//! see `db::dataplane::pooled_usage`) plus the bytes in its buckets, rounded up to whole MiB.

use std::collections::HashMap;
use std::time::Instant;

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use futures_util::stream::{self, StreamExt};
use serde::Serialize;
use uuid::Uuid;

use super::tenants::find;
use super::ControlPlane;
use crate::db::dataplane;
use crate::db::import::BadLines;
use crate::db::usage::{Event, Recorded};
use crate::error::Failure;
use crate::period::{check_usage_time, Period};
use crate::resource::Resource;
use crate::slug::Slug;
use crate::tenant::{Status, Tenant};
use crate::tier::{Tier, Tiers, MAX_QUANTITY};
use crate::usage_file::{self, check_key, UsageRow};

/// How many siloed databases are measured at once.
const MEASURE_CONCURRENCY: usize = 4;

/// The tenant's tier from the tier table; a tier the table no longer defines is a
/// configuration error.
pub fn tier_of<'a>(tiers: &'a Tiers, slug: &str, tier: &str) -> Result<&'a Tier, Failure> {
    tiers.tiers.get(tier).ok_or_else(|| {
        Failure::BadInput(format!(
            "tenant `{slug}` is on tier `{tier}`, which the tier table does not define (it has {})",
            tiers.names().join(", ")
        ))
    })
}

#[derive(Debug, Serialize)]
pub struct RecordView {
    pub slug: String,
    pub resource: Resource,
    pub quantity: i64,
    pub key: String,
    pub period: String,
    /// True when this call counted the event; false for a duplicate key.
    pub counted: bool,
    pub duplicate: bool,
    /// The period's total after this call (null for a duplicate).
    pub total: Option<i64>,
}

/// `usage record`: one metered event, idempotent by key, refused past a hard limit.
pub async fn record(
    plane: &ControlPlane,
    tiers: &Tiers,
    slug: &Slug,
    resource: Resource,
    quantity: i64,
    at: DateTime<Utc>,
    key: Option<&str>,
) -> Result<RecordView> {
    resource.check_metered()?;
    if let Some(k) = key {
        check_key(k).map_err(|e| Failure::BadInput(format!("invalid --key: {e}")))?;
    }
    if !(1..=MAX_QUANTITY).contains(&quantity) {
        return Err(Failure::BadInput(format!(
            "quantity {quantity} is out of range: 1 to {MAX_QUANTITY}; nothing recorded"
        ))
        .into());
    }
    let t = find(plane, slug).await?;
    // The tier file must still define the tenant's tier (a file that lacks it is a
    // configuration error), but the limit and its hardness are the tenant's stored ones.
    let file_hard = tier_of(tiers, t.slug.as_str(), &t.tier)?
        .overage
        .price(resource)
        .is_none();
    check_usage_time(at, t.created_at, Utc::now())
        .map_err(|e| Failure::BadInput(format!("invalid --at: {e}; nothing recorded")))?;
    let key = key
        .map(str::to_owned)
        .unwrap_or_else(|| format!("auto:{}", Uuid::new_v4()));
    let period = Period::containing(at);
    let event = Event {
        tenant: t.id,
        resource,
        quantity,
        at,
        period,
        key: &key,
    };
    let outcome = plane.control.record_event(&event, file_hard).await?;
    let view = |counted, total| RecordView {
        slug: slug.to_string(),
        resource,
        quantity,
        key: key.clone(),
        period: period.to_string(),
        counted,
        duplicate: !counted,
        total,
    };
    match outcome {
        Recorded::Counted { total } => Ok(view(true, Some(total))),
        Recorded::Duplicate => Ok(view(false, None)),
        Recorded::OverLimit { used, limit } => Err(Failure::Refused(format!(
            "refused: {} for `{slug}` would make {} in {period}, over its hard limit of {limit}; nothing recorded",
            crate::words::quantity(quantity, resource),
            used + quantity
        ))
        .into()),
        Recorded::TooLarge { used } => Err(Failure::BadInput(format!(
            "{} for `{slug}` would make the {period} total pass {MAX_QUANTITY} (it is {used}); nothing recorded",
            crate::words::quantity(quantity, resource)
        ))
        .into()),
        Recorded::NotActive(status) => Err(Failure::Refused(format!(
            "tenant `{slug}` is {status}; usage is recorded only for an active tenant; nothing recorded"
        ))
        .into()),
    }
}

#[derive(Debug, Serialize)]
pub struct RefusedRow {
    pub line: i64,
    pub slug: String,
    pub resource: Resource,
    pub reason: String,
}

#[derive(Debug, Serialize)]
pub struct ImportView {
    pub file: String,
    pub rows: usize,
    pub accepted: i64,
    pub duplicates: i64,
    pub refused: usize,
    pub refused_rows: Vec<RefusedRow>,
    pub duration_ms: u128,
}

/// Reads and checks a usage file; a malformed row is bad input and nothing is imported.
pub fn read_file(path: &std::path::Path) -> Result<Vec<UsageRow>, Failure> {
    let text = crate::text_file::read(path, "usage file", crate::text_file::USAGE_CSV)?;
    usage_file::parse(&text, &crate::text_file::shown(path))
}

/// `usage import`: the rows of one file (see `read_file`) in one transaction.
pub async fn import(
    plane: &ControlPlane,
    tiers: &Tiers,
    origin: &str,
    rows: &[UsageRow],
) -> Result<ImportView> {
    let t0 = Instant::now();
    let hard: Vec<(String, Resource)> = tiers
        .tiers
        .iter()
        .flat_map(|(name, tier)| {
            Resource::metered()
                .filter(|r| tier.overage.price(*r).is_none())
                .map(move |r| (name.clone(), r))
        })
        .collect();
    let names = tiers.names();
    // Lines that make the whole file wrong (an unknown tier, a time out of bounds, a total too
    // large) are bad input, and nothing was imported.
    let done = plane
        .control
        .import_events(rows, &names, &hard, Utc::now())
        .await?
        .map_err(|BadLines(lines)| {
            Failure::BadInput(format!(
                "invalid usage file {origin}: {}; nothing imported",
                lines.join("; ")
            ))
        })?;
    Ok(ImportView {
        file: origin.to_owned(),
        rows: rows.len(),
        accepted: done.accepted,
        duplicates: done.duplicates,
        refused: done.refused.len(),
        refused_rows: done
            .refused
            .into_iter()
            .map(|(line, slug, resource, reason)| RefusedRow {
                line,
                slug,
                resource,
                reason,
            })
            .collect(),
        duration_ms: t0.elapsed().as_millis(),
    })
}

/// One tenant's measured levels; `None` where the level could not be (or was not) measured,
/// so that its last stored measurement is kept rather than overwritten.
#[derive(Debug, Clone, Copy)]
pub struct Measurement {
    pub tenant: Uuid,
    pub users: Option<i64>,
    pub storage_bytes: Option<i64>,
}

/// Bytes to whole MiB, rounded up.
pub(super) fn storage_mb(bytes: i64) -> i64 {
    bytes / (1 << 20) + i64::from(bytes % (1 << 20) != 0)
}

/// A tenant measured only in part, and why.
#[derive(Debug, Clone, Serialize)]
pub struct Unmeasured {
    pub slug: String,
    /// The resources whose last measurement was kept.
    pub kept: Vec<&'static str>,
    pub reason: String,
}

/// What `measure` did: every tenant's levels, the tenants skipped in part by design (a
/// suspended silo refuses every connection, so its users are not counted), and the failures.
#[derive(Debug, Default)]
pub struct Measured {
    pub measurements: Vec<Measurement>,
    pub skipped: Vec<Unmeasured>,
    pub failed: Vec<Unmeasured>,
}

/// Measures `tenants` and stores what was measured; a level that could not be measured is
/// never stored (the last measurement stays) and the tenant is reported, skipped or failed:
/// one tenant never stops the others. Database sizes are read without connecting to the
/// databases (`pg_database_size`), so a suspended silo's storage is measured too. Siloed
/// user counts are taken a few databases at a time; the pooled database in one query.
pub async fn measure(plane: &ControlPlane, tenants: &[Tenant]) -> Result<Measured> {
    let out = measure_levels(plane, tenants).await?;
    let rows: Vec<(Uuid, Resource, i64)> = out
        .measurements
        .iter()
        .flat_map(|m| {
            [
                m.users.map(|u| (m.tenant, Resource::Users, u)),
                m.storage_bytes
                    .map(|b| (m.tenant, Resource::StorageMb, storage_mb(b))),
            ]
        })
        .flatten()
        .collect();
    if !rows.is_empty() {
        plane.control.store_measurements(&rows).await?;
    }
    Ok(out)
}

/// What `measure` measures, without storing anything (a check that must change nothing when it
/// refuses: a downgrade over its new tier's hard limits).
pub async fn measure_levels(plane: &ControlPlane, tenants: &[Tenant]) -> Result<Measured> {
    let tenants: Vec<&Tenant> = tenants
        .iter()
        .filter(|t| matches!(t.status, Status::Active | Status::Suspended))
        .collect();
    let mut out = Measured::default();
    let mut failures: Vec<(Uuid, &'static str, String)> = Vec::new();

    let silos: Vec<&Tenant> = tenants
        .iter()
        .copied()
        .filter(|t| t.isolation == crate::tier::Isolation::Siloed)
        .collect();
    // Per server: one catalog read for the sizes of its silos. A server that cannot be
    // reached fails its tenants' measurements (kept from before) and no other's.
    let mut silos_by_server: std::collections::BTreeMap<
        &crate::server_name::ServerName,
        Vec<&Tenant>,
    > = Default::default();
    for t in &silos {
        silos_by_server.entry(&t.server).or_default().push(*t);
    }
    let mut counting = Vec::new();
    for (server, silos) in silos_by_server {
        let names: Vec<&str> = silos.iter().map(|t| t.database.as_str()).collect();
        let sizes =
            async { dataplane::database_sizes(&*plane.fleet.admin(server).await?, &names).await }
                .await;
        let sizes: HashMap<String, i64> = match sizes {
            Ok(s) => s.into_iter().collect(),
            Err(e) => {
                let e = format!("{e:#}");
                for t in &silos {
                    out.measurements.push(Measurement {
                        tenant: t.id,
                        users: None,
                        storage_bytes: None,
                    });
                    failures.push((t.id, "users", e.clone()));
                    failures.push((t.id, "storage_mb", e.clone()));
                }
                continue;
            }
        };
        for t in &silos {
            match sizes.get(&t.database) {
                Some(b) => out.measurements.push(Measurement {
                    tenant: t.id,
                    users: None,
                    storage_bytes: Some(*b),
                }),
                None => {
                    out.measurements.push(Measurement {
                        tenant: t.id,
                        users: None,
                        storage_bytes: None,
                    });
                    failures.push((
                        t.id,
                        "storage_mb",
                        format!("database {} not found on server `{server}`", t.database),
                    ));
                }
            }
            if t.status == Status::Suspended {
                continue; // closed to every connection, by design: users are kept below
            }
            counting.push(*t);
        }
    }
    let at: HashMap<Uuid, usize> = out
        .measurements
        .iter()
        .enumerate()
        .map(|(i, m)| (m.tenant, i))
        .collect();
    let mut counted = stream::iter(counting)
        .map(|t| async move {
            let n = async {
                let mut client = plane.fleet.tenant_db(t).await?;
                dataplane::count_users(&mut client, t.id).await
            }
            .await;
            (t.id, n)
        })
        .buffer_unordered(MEASURE_CONCURRENCY);
    while let Some((id, n)) = counted.next().await {
        match n {
            Ok(n) => out.measurements[at[&id]].users = Some(n),
            Err(e) => failures.push((id, "users", format!("{e:#}"))),
        }
    }

    // Per pooled database (one per pooled server): one transaction reads all its tenants.
    let mut pooled_by_db: std::collections::BTreeMap<
        (&crate::server_name::ServerName, &str),
        Vec<&Tenant>,
    > = Default::default();
    for t in tenants
        .iter()
        .copied()
        .filter(|t| t.isolation == crate::tier::Isolation::Pooled)
    {
        pooled_by_db
            .entry((&t.server, t.database.as_str()))
            .or_default()
            .push(t);
    }
    let everyone_pooled: Vec<Tenant> = if pooled_by_db.is_empty() {
        Vec::new()
    } else {
        plane
            .control
            .list_tenants()
            .await?
            .into_iter()
            .filter(|t| t.isolation == crate::tier::Isolation::Pooled)
            .collect()
    };
    for ((server, database), pooled) in pooled_by_db {
        let first = pooled[0];
        let usage = async {
            // Every tenant with rows there, whatever its status: the storage shares are of
            // their rows (see `pooled_usage`).
            let everyone: Vec<Uuid> = everyone_pooled
                .iter()
                .filter(|t| &t.server == server && t.database == database)
                .map(|t| t.id)
                .collect();
            let mut client = plane.fleet.tenant_db(first).await?;
            dataplane::pooled_usage(&mut client, &everyone).await
        }
        .await;
        match usage {
            Ok(rows) => {
                // A tenant without rows in the shared tables has none: 0 is measured, not assumed.
                let usage: HashMap<Uuid, (i64, i64)> =
                    rows.into_iter().map(|(id, u, b)| (id, (u, b))).collect();
                for t in &pooled {
                    let (users, bytes) = usage.get(&t.id).copied().unwrap_or((0, 0));
                    out.measurements.push(Measurement {
                        tenant: t.id,
                        users: Some(users),
                        storage_bytes: Some(bytes),
                    });
                }
            }
            Err(e) => {
                for t in &pooled {
                    out.measurements.push(Measurement {
                        tenant: t.id,
                        users: None,
                        storage_bytes: None,
                    });
                    failures.push((t.id, "users", format!("{e:#}")));
                    failures.push((t.id, "storage_mb", format!("{e:#}")));
                }
            }
        }
    }

    // A bucket is measured as the tenant's only if it carries the tenant's mark: under a
    // bucket root shared by control planes, one of the same slug may be another's.
    let plane_id = if out.measurements.is_empty() {
        None
    } else {
        Some(plane.control.plane_id().await?)
    };
    // Every bucket of every measured tenant at once: the store may measure them concurrently.
    // Tenants and measurements are found by id through maps (a search of the list per bucket
    // made a refresh of 50,000 tenants quadratic: 3.9× the per-tenant cost of 10,000).
    let by_id: HashMap<Uuid, &Tenant> = tenants.iter().map(|t| (t.id, *t)).collect();
    let measured_at: HashMap<Uuid, usize> = out
        .measurements
        .iter()
        .enumerate()
        .map(|(i, m)| (m.tenant, i))
        .collect();
    let mut wanted = Vec::new();
    for m in &out.measurements {
        if m.storage_bytes.is_none() {
            continue;
        }
        let t = by_id[&m.tenant];
        let mark = dataplane::Mark::tenant(plane_id.expect("set when measuring"), t.id);
        for bucket in crate::storage::buckets(&t.slug, t.isolation) {
            wanted.push((m.tenant, (bucket, mark.as_str().to_owned())));
        }
    }
    let pairs: Vec<_> = wanted.iter().map(|(_, p)| p.clone()).collect();
    let sizes = plane.store.measure(&pairs);
    for ((tenant, (bucket, _)), size) in wanted.iter().zip(sizes) {
        let t = by_id[tenant];
        let m = &mut out.measurements[measured_at[tenant]];
        let Some(bytes) = m.storage_bytes else {
            continue; // an earlier bucket of this tenant failed
        };
        let size = size
            .with_context(|| format!("measuring bucket {bucket}"))
            .and_then(|b| i64::try_from(b).context("bucket size out of range"))
            .and_then(|b| bytes.checked_add(b).context("storage size out of range"));
        match size {
            Ok(total) => m.storage_bytes = Some(total),
            Err(e) => {
                failures.push((t.id, "storage_mb", format!("{e:#}")));
                m.storage_bytes = None;
            }
        }
    }
    let mut failures_of: HashMap<Uuid, Vec<&(Uuid, &'static str, String)>> = HashMap::new();
    for f in &failures {
        failures_of.entry(f.0).or_default().push(f);
    }
    for t in &tenants {
        let theirs = failures_of.remove(&t.id).unwrap_or_default();
        if !theirs.is_empty() {
            let mut kept: Vec<&'static str> = theirs.iter().map(|f| f.1).collect();
            kept.dedup();
            out.failed.push(Unmeasured {
                slug: t.slug.to_string(),
                kept,
                reason: theirs[0].2.clone(),
            });
        } else if t.status == Status::Suspended && t.isolation == crate::tier::Isolation::Siloed {
            out.skipped.push(Unmeasured {
                slug: t.slug.to_string(),
                kept: vec!["users"],
                reason: "suspended: its database accepts no connections".to_owned(),
            });
        }
    }
    Ok(out)
}

#[derive(Debug, Serialize)]
pub struct RefreshView {
    /// Tenants measured (in full or in part).
    pub tenants: usize,
    /// Tenants closed by design (suspended silos): storage measured, users kept from before.
    pub skipped: Vec<Unmeasured>,
    /// Tenants whose measurement failed: what failed kept its last value.
    pub failed: Vec<Unmeasured>,
    pub duration_ms: u128,
}

/// `usage refresh [slug]`: measures every active or suspended tenant (or one). The caller
/// exits 1 when `failed` is not empty.
pub async fn refresh(plane: &ControlPlane, slug: Option<&Slug>) -> Result<RefreshView> {
    let t0 = Instant::now();
    let tenants = match slug {
        Some(s) => vec![find(plane, s).await?],
        None => plane.control.list_tenants().await?,
    };
    let measured = measure(plane, &tenants).await?;
    Ok(RefreshView {
        tenants: measured.measurements.len(),
        skipped: measured.skipped,
        failed: measured.failed,
        duration_ms: t0.elapsed().as_millis(),
    })
}
