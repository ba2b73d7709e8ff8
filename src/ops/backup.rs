//! Per-tenant backups into the tenant's `-backups` bucket, through the bucket store (so the
//! local backend has them too), and restoring them.
//!
//! A backup is the objects under `<id>/` in the bucket, `<id>/manifest.json` written last: a
//! backup without its manifest is not one (a run killed midway leaves only such leftovers,
//! which `backups prune` removes).
//!
//! `backup <slug>`:
//! 1. **check**: the tenant is active (or a suspended pooled tenant: a suspended silo takes
//!    no connections), its `-backups` bucket carries its mark.
//! 2. **read**, from one snapshot: a silo's database with `pg_dump -Fc --snapshot` of a
//!    REPEATABLE READ transaction that also counts each table's rows; a pooled tenant's rows,
//!    table by table in foreign-key order, with `COPY … TO STDOUT` under its context.
//! 3. **write** the data objects, then the manifest (ids, tables, row counts). Audited.
//!
//! `restore-backup <slug> <id>` (journaled in `backup_restores`):
//! 1. **settle** a restore of the tenant a crash left: forward if it had reached its swap,
//!    else its staging database is dropped.
//! 2. **check**: the backup is this tenant's; an active tenant needs `--yes`.
//! 3. pooled: **replace** the tenant's rows in one transaction (a crash rolls it back).
//!    siloed: **load** the dump into a fresh staging database and **verify** its row counts
//!    against the manifest; then **swap**: the tenant's database is renamed aside, the staging
//!    one renamed into its place, the old one dropped. Audited.

use std::time::Instant;

use anyhow::{Context, Result};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{failpoint, ownership, tenants, ControlPlane, Reporter};
use crate::action::Action;
use crate::db::backup::{self as db, TableCopy};
use crate::db::dataplane::{self, Object};
use crate::db::locks::SessionLock;
use crate::error::Failure;
use crate::slug::Slug;
use crate::storage::{self, Owner, TenantBucket};
use crate::tenant::{Status, Tenant};
use crate::tier::Isolation;

const MANIFEST: &str = "manifest.json";
const DUMP: &str = "database.dump";

/// `<id>/manifest.json`. Its field names are the backup's format: keep them.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    pub id: String,
    pub slug: String,
    pub tenant_id: Uuid,
    pub isolation: Isolation,
    pub created_at: DateTime<Utc>,
    /// `pg_dump` (siloed) or `rows` (pooled).
    pub kind: String,
    pub tables: Vec<TableEntry>,
    /// Bytes of the data objects.
    pub bytes: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TableEntry {
    pub table: String,
    pub rows: i64,
    /// Pooled backups: the columns, in the order of the table's COPY data.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub columns: Vec<String>,
}

/// A backup as `backup` and `backups list` show it. JSON field names are a contract.
#[derive(Debug, Clone, Serialize)]
pub struct BackupView {
    pub slug: String,
    pub id: String,
    pub isolation: Isolation,
    pub created_at: DateTime<Utc>,
    pub bytes: u64,
    pub rows: i64,
    pub location: String,
}

impl BackupView {
    fn of(m: &Manifest, location: String) -> BackupView {
        BackupView {
            slug: m.slug.clone(),
            id: m.id.clone(),
            isolation: m.isolation,
            created_at: m.created_at,
            bytes: m.bytes,
            rows: m.tables.iter().map(|t| t.rows).sum(),
            location,
        }
    }
}

/// What `backup --all` did.
#[derive(Debug, Serialize)]
pub struct BackupAll {
    pub backed_up: Vec<BackupView>,
    /// Tenants not backed up by design (a suspended silo), with why.
    pub skipped: Vec<Skipped>,
    pub failed: Vec<Skipped>,
}

#[derive(Debug, Serialize)]
pub struct Skipped {
    pub slug: String,
    pub reason: String,
}

/// What `backups prune` did.
#[derive(Debug, Serialize)]
pub struct Pruned {
    pub slug: String,
    pub kept: Vec<String>,
    pub deleted: Vec<String>,
    /// Objects of backups killed before their manifest was written, removed too.
    pub leftovers: usize,
}

/// What `restore-backup` did.
#[derive(Debug, Serialize)]
pub struct Restored {
    pub slug: String,
    pub backup_id: String,
    pub isolation: Isolation,
    /// Rows per table now in the tenant's data.
    pub tables: Vec<TableEntry>,
    /// A restore a crash had left, finished (or undone) first.
    pub settled: Option<String>,
}

fn busy(slug: &str) -> Failure {
    Failure::Refused(format!(
        "tenant `{slug}` is being changed by another tenantctl process; try again when it has finished"
    ))
}

/// The tenant's `-backups` bucket, which must carry its mark.
async fn backups_bucket(plane: &ControlPlane, t: &Tenant) -> Result<TenantBucket> {
    let b = storage::backups_bucket(&t.slug, t.isolation);
    let mark = ownership::bucket_mark(plane, t).await?;
    match plane.store.owner(&b, mark.as_str())? {
        Owner::Ours => Ok(b),
        Owner::Absent => Err(Failure::Refused(format!(
            "tenant `{}` has no backups bucket ({}); `provision {}` creates it",
            t.slug,
            plane.store.location(&b),
            t.slug
        ))
        .into()),
        Owner::Foreign(found) => {
            Err(storage::refusal(&plane.store.location(&b), found.as_deref()).into())
        }
    }
}

fn new_id() -> String {
    format!(
        "{}-{:08x}",
        Utc::now()
            .format("%Y%m%dT%H%M%S%.3fZ")
            .to_string()
            .replace('.', ""),
        rand::random::<u32>()
    )
}

/// An id as `backups list` prints it: checked before it becomes part of a key.
fn check_id(id: &str) -> Result<(), Failure> {
    let ok =
        (8..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(Failure::BadInput(format!(
            "invalid backup id `{}`: an id as `backups list` shows it (letters, digits and '-')",
            crate::excerpt::excerpt(id)
        )))
    }
}

/// The tenant's lock (exit 3 "busy" while another command holds it) and the tenant as it is
/// under the lock.
async fn locked(plane: &ControlPlane, slug: &Slug) -> Result<(SessionLock, Tenant)> {
    let lock = plane
        .control
        .try_lock_tenant(slug)
        .await?
        .ok_or_else(|| busy(slug.as_str()))?;
    Ok((lock, tenants::find(plane, slug).await?))
}

/// `backup <slug>`.
pub async fn backup(
    plane: &ControlPlane,
    slug: &Slug,
    reporter: &dyn Reporter,
) -> Result<BackupView> {
    let (_lock, t) = locked(plane, slug).await?;
    backup_locked(plane, &t, reporter).await
}

/// Why `t` cannot be backed up now, if it cannot.
fn not_backupable(t: &Tenant) -> Option<String> {
    match (t.status, t.isolation) {
        (Status::Active, _) | (Status::Suspended, Isolation::Pooled) => None,
        (Status::Suspended, Isolation::Siloed) => Some(
            "a suspended siloed tenant's database takes no connections; resume it to back it up"
                .to_owned(),
        ),
        (s, _) => Some(format!(
            "it is {s}; only active and suspended tenants are backed up"
        )),
    }
}

async fn backup_locked(
    plane: &ControlPlane,
    t: &Tenant,
    reporter: &dyn Reporter,
) -> Result<BackupView> {
    if let Some(why) = not_backupable(t) {
        return Err(Failure::Refused(format!("cannot back up tenant `{}`: {why}", t.slug)).into());
    }
    let bucket = backups_bucket(plane, t).await?;
    let started = Instant::now();
    let id = new_id();
    let (kind, tables, objects) = match t.isolation {
        Isolation::Siloed => {
            let (dump, tables) = dump_silo(plane, t).await?;
            ("pg_dump", tables, vec![(DUMP.to_owned(), dump)])
        }
        Isolation::Pooled => {
            let mut client = ownership::connect(plane, t).await?;
            let copies = db::copy_out_pooled(&mut client, t.id).await?;
            let tables = copies
                .iter()
                .map(|c| TableEntry {
                    table: c.table.clone(),
                    rows: c.rows,
                    columns: c.columns.clone(),
                })
                .collect();
            let objects = copies
                .into_iter()
                .map(|c| (format!("tables/{}.copy", c.table), c.data))
                .collect();
            ("rows", tables, objects)
        }
    };
    let bytes = objects.iter().map(|(_, d)| d.len() as u64).sum();
    for (key, data) in objects {
        plane.store.put(&bucket, &format!("{id}/{key}"), data)?;
    }
    failpoint(&plane.ctx, "backup:before-manifest");
    let manifest = Manifest {
        format: 1,
        id: id.clone(),
        slug: t.slug.to_string(),
        tenant_id: t.id,
        isolation: t.isolation,
        created_at: Utc::now(),
        kind: kind.to_owned(),
        tables,
        bytes,
    };
    let json = serde_json::to_vec_pretty(&manifest).context("writing the manifest")?;
    plane
        .store
        .put(&bucket, &format!("{id}/{MANIFEST}"), Bytes::from(json))?;
    let details = serde_json::json!({ "backup_id": id, "bytes": bytes });
    plane
        .control
        .audit_entry(t, Action::Backup, &plane.ctx.actor, details)
        .await
        .context("auditing the backup")?;
    reporter.status(&format!(
        "backed up `{}` as {id} ({bytes} bytes) in {} ms",
        t.slug,
        started.elapsed().as_millis()
    ));
    Ok(BackupView::of(&manifest, plane.store.location(&bucket)))
}

/// A silo's `pg_dump -Fc`, and its tables' row counts from the same snapshot.
async fn dump_silo(plane: &ControlPlane, t: &Tenant) -> Result<(Bytes, Vec<TableEntry>)> {
    let client = ownership::connect(plane, t).await?;
    let snapshot = db::export_snapshot(&client).await?;
    let counts = db::count_rows(&*client, t.id).await?;
    let bindir = crate::cluster::pg_bindir(plane.ctx.pg_bindir.as_deref())?;
    let mut cmd = std::process::Command::new(bindir.join("pg_dump"));
    cmd.args(["--format=custom", "--no-password", "--enable-row-security"])
        .arg(format!("--snapshot={snapshot}"))
        .envs(plane.fleet.libpq_env(&t.server, &t.database).await?)
        // The forced policies show the admin the rows of the tenant it names, all of a silo's.
        .env("PGOPTIONS", format!("-c app.tenant_id={}", t.id))
        .stdin(std::process::Stdio::null());
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .context("waiting for pg_dump")?
        .context("running pg_dump")?;
    // The snapshot is held until pg_dump has finished with it.
    client
        .batch_execute("COMMIT")
        .await
        .context("ending the backup's snapshot")?;
    if !out.status.success() {
        anyhow::bail!(
            "pg_dump of `{}` failed ({}): {}",
            t.database,
            out.status,
            crate::excerpt::excerpt_n(String::from_utf8_lossy(&out.stderr).trim(), 300)
        );
    }
    let tables = counts
        .into_iter()
        .map(|(table, rows)| TableEntry {
            table,
            rows,
            columns: Vec::new(),
        })
        .collect();
    Ok((Bytes::from(out.stdout), tables))
}

/// `backup --all`: every active tenant and every suspended pooled one, `concurrency` at a time;
/// one failure does not stop the others.
pub async fn backup_all(
    plane: &ControlPlane,
    concurrency: usize,
    reporter: &dyn Reporter,
) -> Result<BackupAll> {
    use futures_util::stream::StreamExt;
    let mut done = BackupAll {
        backed_up: Vec::new(),
        skipped: Vec::new(),
        failed: Vec::new(),
    };
    let mut todo = Vec::new();
    for t in plane.control.list_tenants().await? {
        match not_backupable(&t) {
            None => todo.push(t),
            Some(reason) if matches!(t.status, Status::Active | Status::Suspended) => {
                done.skipped.push(Skipped {
                    slug: t.slug.to_string(),
                    reason,
                })
            }
            Some(_) => {}
        }
    }
    let total = todo.len();
    reporter.progress(0, total, "tenants backed up");
    let mut results = futures_util::stream::iter(todo.into_iter().map(|t| async move {
        let r = async {
            let _lock = plane
                .control
                .try_lock_tenant(&t.slug)
                .await?
                .ok_or_else(|| busy(t.slug.as_str()))?;
            backup_locked(plane, &t, reporter).await
        }
        .await;
        (t.slug, r)
    }))
    .buffer_unordered(concurrency.max(1));
    let mut n = 0;
    while let Some((slug, r)) = results.next().await {
        n += 1;
        reporter.progress(n, total, "tenants backed up");
        match r {
            Ok(v) => done.backed_up.push(v),
            Err(e) => {
                let reason = format!("{e:#}");
                reporter.warning(&format!("backing up `{slug}` failed: {reason}"));
                done.failed.push(Skipped {
                    slug: slug.to_string(),
                    reason,
                });
            }
        }
    }
    done.backed_up.sort_by(|a, b| a.slug.cmp(&b.slug));
    done.failed.sort_by(|a, b| a.slug.cmp(&b.slug));
    Ok(done)
}

/// The tenant's backups (those with a manifest), oldest first.
async fn manifests(
    plane: &ControlPlane,
    t: &Tenant,
    bucket: &TenantBucket,
) -> Result<Vec<Manifest>> {
    let mut out = Vec::new();
    for o in plane.store.list(bucket, "")? {
        let Some(id) = o.key.strip_suffix(&format!("/{MANIFEST}")) else {
            continue;
        };
        if id.contains('/') {
            continue;
        }
        let Some(data) = plane.store.get(bucket, &o.key)? else {
            continue; // pruned meanwhile
        };
        let m: Manifest = serde_json::from_slice(&data)
            .with_context(|| format!("reading the manifest of backup {id}"))?;
        if m.tenant_id == t.id && m.id == id {
            out.push(m);
        }
    }
    out.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(out)
}

/// `backups list <slug>`.
pub async fn list(plane: &ControlPlane, slug: &Slug) -> Result<Vec<BackupView>> {
    let t = tenants::find(plane, slug).await?;
    let bucket = backups_bucket(plane, &t).await?;
    let location = plane.store.location(&bucket);
    Ok(manifests(plane, &t, &bucket)
        .await?
        .iter()
        .map(|m| BackupView::of(m, location.clone()))
        .collect())
}

/// `backups prune <slug> --keep N`: the newest N stay. A pruned backup loses its manifest
/// first, so a prune killed midway leaves leftovers, never a backup with missing data.
pub async fn prune(plane: &ControlPlane, slug: &Slug, keep: usize) -> Result<Pruned> {
    let (_lock, t) = locked(plane, slug).await?;
    let bucket = backups_bucket(plane, &t).await?;
    let all = manifests(plane, &t, &bucket).await?;
    let cut = all.len().saturating_sub(keep);
    let (old, kept) = all.split_at(cut);
    for m in old {
        plane
            .store
            .delete(&bucket, &format!("{}/{MANIFEST}", m.id))?;
    }
    // Every object not under a kept backup's id: the pruned ones' data, and leftovers of
    // backups killed before their manifest.
    let kept_ids: Vec<&str> = kept.iter().map(|m| m.id.as_str()).collect();
    let mut leftovers = 0;
    for o in plane.store.list(&bucket, "")? {
        let id = o.key.split('/').next().unwrap_or_default();
        if kept_ids.contains(&id) {
            continue;
        }
        if !old.iter().any(|m| m.id == id) {
            leftovers += 1;
        }
        plane.store.delete(&bucket, &o.key)?;
    }
    Ok(Pruned {
        slug: t.slug.to_string(),
        kept: kept_ids.iter().map(|s| s.to_string()).collect(),
        deleted: old.iter().map(|m| m.id.clone()).collect(),
        leftovers,
    })
}

/// `restore-backup <slug> <id> [--yes]`.
pub async fn restore(
    plane: &ControlPlane,
    slug: &Slug,
    id: &str,
    yes: bool,
    reporter: &dyn Reporter,
) -> Result<Restored> {
    check_id(id)?;
    let (_lock, t) = locked(plane, slug).await?;
    if !matches!(t.status, Status::Active | Status::Suspended) {
        return Err(Failure::Refused(format!(
            "cannot restore a backup of tenant `{slug}`: it is {}; only active and suspended tenants are restored into",
            t.status
        ))
        .into());
    }
    // Step 1: a restore a crash left is finished (or undone) before anything else.
    let settled = settle(plane, &t, reporter).await?;
    let bucket = backups_bucket(plane, &t).await?;
    let manifest = match plane.store.get(&bucket, &format!("{id}/{MANIFEST}"))? {
        Some(data) => serde_json::from_slice::<Manifest>(&data)
            .with_context(|| format!("reading the manifest of backup {id}"))?,
        None => {
            return Err(Failure::Refused(format!(
                "tenant `{slug}` has no backup `{}` (see `tenantctl backups list {slug}`)",
                crate::excerpt::excerpt(id)
            ))
            .into())
        }
    };
    if manifest.tenant_id != t.id || manifest.isolation != t.isolation || manifest.id != id {
        return Err(Failure::Refused(format!(
            "backup `{id}` is not a backup of tenant `{slug}` as it is now (another tenant's, or from before a change of isolation)"
        ))
        .into());
    }
    if t.status == Status::Active && !yes {
        return Err(Failure::Refused(format!(
            "tenant `{slug}` is active: restoring backup {id} replaces its data with the backup's; \
             add --yes to confirm (or suspend it first)"
        ))
        .into());
    }
    let tables = match t.isolation {
        Isolation::Pooled => restore_pooled(plane, &t, &bucket, &manifest).await?,
        Isolation::Siloed => restore_silo(plane, &t, &bucket, &manifest, reporter).await?,
    };
    let details = serde_json::json!({ "backup_id": id, "settled": settled });
    plane
        .control
        .audit_entry(&t, Action::RestoreBackup, &plane.ctx.actor, details)
        .await
        .context("auditing the restore")?;
    Ok(Restored {
        slug: t.slug.to_string(),
        backup_id: id.to_owned(),
        isolation: t.isolation,
        tables,
        settled,
    })
}

async fn restore_pooled(
    plane: &ControlPlane,
    t: &Tenant,
    bucket: &TenantBucket,
    m: &Manifest,
) -> Result<Vec<TableEntry>> {
    let mut copies = Vec::new();
    for e in &m.tables {
        let key = format!("{}/tables/{}.copy", m.id, e.table);
        let data = plane
            .store
            .get(bucket, &key)?
            .with_context(|| format!("backup {} lacks its object {key}", m.id))?;
        copies.push(TableCopy {
            table: e.table.clone(),
            columns: e.columns.clone(),
            rows: e.rows,
            data,
        });
    }
    plane
        .control
        .begin_restore(t.id, &m.id, None, None, &plane.ctx.actor)
        .await?;
    let mut client = ownership::connect(plane, t).await?;
    let loaded = db::restore_pooled(&mut client, t.id, &copies, || {
        failpoint(&plane.ctx, "restore-backup:before-commit")
    })
    .await?;
    plane.control.end_restore(t.id).await?;
    Ok(loaded
        .into_iter()
        .map(|(table, rows)| TableEntry {
            table,
            rows,
            columns: Vec::new(),
        })
        .collect())
}

/// A staging or retired database's name: the prefix, then `_` (no slug starts with one, so no
/// tenant's database can ever be named so), a letter and 12 hex digits.
fn side_database(plane: &ControlPlane, letter: char, tag: &str) -> String {
    format!("{}_{letter}{tag}", plane.ctx.naming.prefix())
}

async fn restore_silo(
    plane: &ControlPlane,
    t: &Tenant,
    bucket: &TenantBucket,
    m: &Manifest,
    reporter: &dyn Reporter,
) -> Result<Vec<TableEntry>> {
    let dump = plane
        .store
        .get(bucket, &format!("{}/{DUMP}", m.id))?
        .with_context(|| format!("backup {} lacks its database dump", m.id))?;
    let tag = format!("{:012x}", rand::random::<u64>() & 0xffff_ffff_ffff);
    let (staging, retired) = (
        side_database(plane, 'r', &tag),
        side_database(plane, 'o', &tag),
    );
    let mark = ownership::settled_mark(plane, t).await?;
    plane
        .control
        .begin_restore(
            t.id,
            &m.id,
            Some(&staging),
            Some(&retired),
            &plane.ctx.actor,
        )
        .await?;
    let admin = plane.fleet.admin_for(t).await?;
    ownership::ensure_database(plane, &admin, &t.server, &staging, &mark).await?;
    dataplane::restrict_connect(&admin, &mark, &staging, &t.role).await?;
    reporter.status(&format!("loading backup {} into `{staging}`", m.id));
    let bindir = crate::cluster::pg_bindir(plane.ctx.pg_bindir.as_deref())?;
    let mut cmd = std::process::Command::new(bindir.join("pg_restore"));
    cmd.args([
        "--no-owner",
        "--exit-on-error",
        "--single-transaction",
        "--no-password",
    ])
    .envs(plane.fleet.libpq_env(&t.server, &staging).await?)
    .arg(format!("--dbname={staging}"))
    .stdin(std::process::Stdio::piped())
    .stdout(std::process::Stdio::null())
    .stderr(std::process::Stdio::piped());
    let out = tokio::task::spawn_blocking(move || -> std::io::Result<std::process::Output> {
        use std::io::Write;
        let mut child = cmd.spawn()?;
        let mut stdin = child.stdin.take().expect("piped");
        let writer = std::thread::spawn(move || stdin.write_all(&dump));
        let out = child.wait_with_output()?;
        let _ = writer.join();
        Ok(out)
    })
    .await
    .context("waiting for pg_restore")?
    .context("running pg_restore")?;
    if !out.status.success() {
        anyhow::bail!(
            "pg_restore of backup {} into `{staging}` failed ({}); the tenant's database is untouched: {}",
            m.id,
            out.status,
            crate::excerpt::excerpt_n(String::from_utf8_lossy(&out.stderr).trim(), 300)
        );
    }
    // Verified: every table of the backup holds the rows it had.
    let mut client = plane.fleet.database_of(t, &staging).await?;
    let tx = client
        .transaction()
        .await
        .context("verifying the restore")?;
    let counts = db::count_rows(&tx, t.id).await?;
    tx.rollback().await.context("verifying the restore")?;
    for e in &m.tables {
        let found = counts.iter().find(|(n, _)| *n == e.table).map(|(_, r)| *r);
        if found != Some(e.rows) {
            anyhow::bail!(
                "backup {} did not verify: table {} has {} rows in `{staging}`, the backup {}; the tenant's database is untouched",
                m.id,
                e.table,
                found.map_or("no".to_owned(), |r| r.to_string()),
                e.rows
            );
        }
    }
    drop(client);
    failpoint(&plane.ctx, "restore-backup:verified");
    plane.control.restore_swapping(t.id).await?;
    let journal = plane
        .control
        .restore_journal(t.id)
        .await?
        .context("the restore journal vanished")?;
    swap(plane, t, &journal).await?;
    Ok(m.tables
        .iter()
        .map(|e| TableEntry {
            table: e.table.clone(),
            rows: e.rows,
            columns: Vec::new(),
        })
        .collect())
}

/// The swap of a verified staging database, idempotent from any point: tenant database →
/// retired, staging → tenant database (opened as the tenant's status says), retired dropped,
/// journal closed. At every point the tenant's database is whole: the old one, the new one,
/// or (between the two renames) none, which the next run (or this one) finishes.
async fn swap(plane: &ControlPlane, t: &Tenant, j: &db::RestoreJournal) -> Result<()> {
    let (Some(staging), Some(retired)) = (&j.staging_database, &j.retired_database) else {
        return plane.control.end_restore(t.id).await;
    };
    let mark = ownership::mark(plane, t).await?;
    let admin = plane.fleet.admin_for(t).await?;
    let exists = |name: &str| {
        let admin = &admin;
        let name = name.to_owned();
        async move {
            Ok::<bool, anyhow::Error>(
                dataplane::lookup(admin, Object::Database(&name))
                    .await?
                    .is_some(),
            )
        }
    };
    if exists(staging).await? {
        if exists(&t.database).await? {
            if exists(retired).await? {
                anyhow::bail!(
                    "cannot swap in the restored database: `{}`, `{staging}` and `{retired}` all exist",
                    t.database
                );
            }
            db::rename_database(&admin, &mark, &t.database, retired).await?;
        }
        failpoint(&plane.ctx, "restore-backup:swapping");
        db::rename_database(&admin, &mark, staging, &t.database).await?;
    }
    // A purge settles a restore too: a deleted or deleting tenant's database stays closed.
    if t.status == Status::Active {
        db::reopen_database(&admin, &mark, &t.database).await?;
    }
    db::drop_database(&admin, &mark, retired).await?;
    plane.control.end_restore(t.id).await
}

/// Step 1 of a restore (and of a purge): what a killed restore left, finished (past its
/// verification) or undone. Returns what was done, if anything.
pub(crate) async fn settle(
    plane: &ControlPlane,
    t: &Tenant,
    reporter: &dyn Reporter,
) -> Result<Option<String>> {
    let Some(j) = plane.control.restore_journal(t.id).await? else {
        return Ok(None);
    };
    let what = if j.phase == "swapping" {
        swap(plane, t, &j).await?;
        format!("finished the interrupted restore of backup {}", j.backup_id)
    } else {
        if let Some(staging) = &j.staging_database {
            let mark = ownership::mark(plane, t).await?;
            let admin = plane.fleet.admin_for(t).await?;
            ownership::settle_interrupted_create(plane, &admin, &t.server, staging, &mark).await?;
            db::drop_database(&admin, &mark, staging).await?;
            plane
                .control
                .release_database_claim(&t.server, staging)
                .await?;
        }
        plane.control.end_restore(t.id).await?;
        format!(
            "undid the interrupted restore of backup {} (the tenant's data was never replaced)",
            j.backup_id
        )
    };
    reporter.status(&what);
    Ok(Some(what))
}
