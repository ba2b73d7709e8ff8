//! `usage import`: a file's metered events in one transaction, through a COPY into a staging
//! table, with the fast path for groups that cannot pass a limit.

use anyhow::{Context, Result};
use chrono::{DateTime, NaiveDate, Utc};
use std::collections::{HashMap, HashSet};

use bytes::{BufMut, Bytes, BytesMut};
use futures_util::SinkExt;
use uuid::Uuid;

use super::control::ControlDb;
use crate::period::check_usage_time;
use crate::resource::Resource;
use crate::tenant::Status;
use crate::tier::MAX_QUANTITY;
use crate::usage_file::UsageRow;

/// What an import did, row by row for the refused ones.
#[derive(Debug, Clone, Default)]
pub struct Imported {
    pub accepted: i64,
    pub duplicates: i64,
    /// (line, slug, resource, reason)
    pub refused: Vec<(i64, String, Resource, String)>,
}

/// The lines (at most 10, each `line N: why`) that make an import file bad input as a whole:
/// a tenant on a tier the tier table lacks, a time out of the tenant's bounds, a monthly total
/// that would pass `MAX_QUANTITY`. Nothing was imported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadLines(pub Vec<String>);

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
    /// Imports a file's events in one transaction. A row is a duplicate if its key was
    /// recorded before or appears earlier in the file; refused if its tenant is unknown or not
    /// active, or if, taken in file order, it would pass a hard limit (`hard`: the (tier,
    /// resource) pairs without overage price). Everything else is inserted and added to the
    /// monthly totals.
    ///
    /// Before anything is applied, in this order: the rows' tenants are share-locked in a fixed
    /// order and read in the same query (a purge or status change waits for the import, or,
    /// committed first, leaves the tenant unknown or inactive: its rows are refused, never a
    /// raw foreign-key error); every known tenant's tier must be in `tier_names` (the tier
    /// file), every time within the tenant's bounds (`check_usage_time`), and no monthly total
    /// may pass `MAX_QUANTITY`. Any of these answers `BadLines`, and the transaction rolls
    /// back. Whether a limit is hard is the tenant's stored `quotas.hard` (`hard` only
    /// where it is not stored).
    ///
    /// The fast path: a (tenant, resource, month) group whose file rows, all counted, cannot
    /// pass its hard limit (nor `MAX_QUANTITY`) needs no running sum: its rows go in with one
    /// set-based `INSERT`. Only the other ("contested") groups take the careful path in file
    /// order (`import_contested`), with their quota rows locked first.
    pub async fn import_events(
        &self,
        rows: &[UsageRow],
        tier_names: &[&str],
        hard: &[(String, Resource)],
        now: DateTime<Utc>,
    ) -> Result<Result<Imported, BadLines>> {
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await.context("starting a transaction")?;
        // The statements below cost enough for JIT compilation, which takes longer than it
        // saves on plans this simple (≈0.3 s of a 1M-row replay).
        tx.batch_execute("SET LOCAL jit = off")
            .await
            .context("starting the import")?;
        let tenants = lock_import_tenants(&tx, rows).await?;
        // Each row's tenant, looked up once (by slug, a hash of a string: three lookups a row
        // cost ≈0.2 s of a million-row import).
        let of_row = row_tenants(rows, &tenants);
        let problems = check_tiers_and_times(rows, &of_row, tier_names, now);
        if !problems.is_empty() {
            return Ok(Err(BadLines(problems)));
        }
        let (known, mut refused) = split_refused(rows, &of_row);
        let groups = import_groups(&tx, &known, &tenants, hard).await?;
        let contested: HashSet<GroupKey> = groups
            .iter()
            .filter(|(_, g)| g.contested())
            .map(|(k, _)| *k)
            .collect();
        // Staged in key order, each key once (its first line: a later line of the same key is
        // a duplicate however it ends): the inserts below read the staging table as it was
        // written and so walk the primary key forward, without sorting a million rows on the
        // server (to disk, past `work_mem`). Nothing depends on that order but speed.
        let mut known = sort_by_key_in_parallel(known);
        known.dedup_by(|later, first| {
            later.tenant == first.tenant && later.row.key == first.row.key
        });
        stage_rows(&tx, &known, &contested).await?;
        // A file seen before (a replay, a retried cron job) is filtered first, in key order:
        // one index probe per row, walking the primary key (and the heap, inserted in key
        // order) forward, so that the insert gets only new keys instead of a speculative
        // insertion and a conflict per row. `LATERAL … LIMIT 1` keeps the probes a nested loop
        // over the rows as staged (in key order): a hash or merge anti-join would read all of usage_events (every
        // month ever recorded), and an unsorted loop probes at random (at 1M rows, 2.8× the
        // floor). The conflict clause stays: a concurrent import may insert a key after the
        // probe looked. A new file skips the filter, which would only double its probes.
        let select = if mostly_seen(&tx).await? {
            "SELECT s.tenant_id, s.key, s.resource, s.quantity, s.at, s.period
             FROM import_staging s
             LEFT JOIN LATERAL (SELECT true AS seen FROM usage_events e
                                WHERE e.tenant_id = s.tenant_id AND e.key = s.key LIMIT 1) e ON true
             WHERE NOT s.contested AND e.seen IS NULL"
        } else {
            "SELECT tenant_id, key, resource, quantity, at, period FROM import_staging
             WHERE NOT contested"
        };
        let straight: i64 = tx
            .query_one(&insert_counting_totals(select), &[])
            .await
            .context("inserting the events")?
            .get(0);
        let mut careful = 0;
        if !contested.is_empty() {
            let (accepted, over) = match import_contested(&tx, &groups).await? {
                Ok(done) => done,
                Err(too_large) => return Ok(Err(BadLines(too_large))),
            };
            careful = accepted;
            refused.extend(over);
        }
        refused.sort_by_key(|r| r.0);
        let accepted = straight + careful;
        let duplicates = rows.len() as i64 - accepted - refused.len() as i64;
        tx.commit().await.context("committing the import")?;
        Ok(Ok(Imported {
            accepted,
            duplicates,
            refused,
        }))
    }
}

/// A tenant as an import sees it.
struct ImportTenant {
    id: Uuid,
    tier: String,
    status: Status,
    created_at: DateTime<Utc>,
}

/// A (tenant, resource, month) group of an import.
type GroupKey = (Uuid, Resource, NaiveDate);

/// What an import knows of a group before inserting anything.
struct Group {
    /// The limit, where it is hard (`None`: soft, or no quota row).
    hard_limit: Option<i64>,
    /// The period's total before the import.
    before: i64,
    /// The sum of the group's rows in the file, duplicates included (so an upper bound).
    file_sum: i128,
}

impl Group {
    /// Whether some row of the group could be refused or pass `MAX_QUANTITY`: only then do its
    /// rows need a running sum in file order.
    fn contested(&self) -> bool {
        let after = self.before as i128 + self.file_sum;
        after > MAX_QUANTITY as i128 || self.hard_limit.is_some_and(|l| after > l as i128)
    }
}

/// A row of a known, active tenant, with its tenant id and month.
#[derive(Clone, Copy)]
struct KnownRow<'a> {
    row: &'a UsageRow,
    tenant: Uuid,
    period: NaiveDate,
}

/// Share-locks the file's tenants in id order and reads them in the same query.
async fn lock_import_tenants(
    tx: &tokio_postgres::Transaction<'_>,
    rows: &[UsageRow],
) -> Result<HashMap<String, ImportTenant>> {
    // Deduplicated through a set: a million rows name a few thousand tenants.
    let slugs: HashSet<&str> = rows.iter().map(|r| r.slug.as_str()).collect();
    let slugs: Vec<&str> = slugs.into_iter().collect();
    Ok(tx
        .query(
            "SELECT slug, id, tier, status, created_at FROM tenants WHERE slug = ANY($1)
             ORDER BY id FOR SHARE",
            &[&slugs],
        )
        .await
        .context("locking the import's tenants")?
        .iter()
        .map(|r| {
            (
                r.get(0),
                ImportTenant {
                    id: r.get(1),
                    tier: r.get(2),
                    status: r.get(3),
                    created_at: r.get(4),
                },
            )
        })
        .collect())
}

/// How many threads the import's CPU-bound passes over its rows use: the cores, at most 8, and
/// one below `PARALLEL_FROM` rows.
fn threads_for(rows: usize) -> usize {
    const PARALLEL_FROM: usize = 50_000;
    if rows < PARALLEL_FROM {
        1
    } else {
        std::thread::available_parallelism().map_or(1, |n| n.get().min(8))
    }
}

/// The tenant of each row (`None`: unknown), in the rows' order.
fn row_tenants<'t>(
    rows: &[UsageRow],
    tenants: &'t HashMap<String, ImportTenant>,
) -> Vec<Option<&'t ImportTenant>> {
    let chunk = rows.len().div_ceil(threads_for(rows.len())).max(1);
    std::thread::scope(|s| {
        let parts: Vec<_> = rows
            .chunks(chunk)
            .map(|part| {
                s.spawn(move || {
                    part.iter()
                        .map(|r| tenants.get(r.slug.as_str()))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let mut all = Vec::with_capacity(rows.len());
        for p in parts {
            all.extend(p.join().expect("a lookup thread panicked"));
        }
        all
    })
}

/// The known rows in (tenant, key, line) order, sorted in pieces on several threads and then
/// merged (one thread sorted a million rows in ≈0.4 s).
fn sort_by_key_in_parallel(mut known: Vec<KnownRow<'_>>) -> Vec<KnownRow<'_>> {
    fn order(a: &KnownRow<'_>, b: &KnownRow<'_>) -> std::cmp::Ordering {
        (a.tenant, a.row.key.as_str(), a.row.line).cmp(&(b.tenant, b.row.key.as_str(), b.row.line))
    }
    let threads = threads_for(known.len());
    if threads == 1 {
        known.sort_unstable_by(order);
        return known;
    }
    let chunk = known.len().div_ceil(threads);
    std::thread::scope(|s| {
        for part in known.chunks_mut(chunk) {
            s.spawn(move || part.sort_unstable_by(order));
        }
    });
    // Merge the sorted pieces pairwise until one is left.
    let mut pieces: Vec<Vec<KnownRow<'_>>> = known.chunks(chunk).map(<[_]>::to_vec).collect();
    while pieces.len() > 1 {
        let mut next = Vec::with_capacity(pieces.len().div_ceil(2));
        let mut it = pieces.into_iter();
        while let Some(a) = it.next() {
            match it.next() {
                Some(b) => next.push(merge(a, b, order)),
                None => next.push(a),
            }
        }
        pieces = next;
    }
    pieces.pop().unwrap_or_default()
}

/// Two sorted runs as one (ties from `a` first).
fn merge<T: Copy>(a: Vec<T>, b: Vec<T>, order: fn(&T, &T) -> std::cmp::Ordering) -> Vec<T> {
    let mut out = Vec::with_capacity(a.len() + b.len());
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        if order(&b[j], &a[i]) == std::cmp::Ordering::Less {
            out.push(b[j]);
            j += 1;
        } else {
            out.push(a[i]);
            i += 1;
        }
    }
    out.extend_from_slice(&a[i..]);
    out.extend_from_slice(&b[j..]);
    out
}

/// Lines of known tenants whose tier the tier file lacks (the first line of each tenant),
/// else lines whose time is out of the tenant's bounds; at most 10.
fn check_tiers_and_times(
    rows: &[UsageRow],
    of_row: &[Option<&ImportTenant>],
    tier_names: &[&str],
    now: DateTime<Utc>,
) -> Vec<String> {
    let mut seen = HashSet::new();
    let missing: Vec<String> = rows
        .iter()
        .zip(of_row)
        .filter_map(|(r, t)| {
            let t = (*t)?;
            (!tier_names.contains(&t.tier.as_str()) && seen.insert(r.slug.as_str())).then(|| {
                format!(
                    "line {}: tenant `{}` is on tier `{}`, which the tier table does not define (it has {})",
                    r.line,
                    r.slug,
                    t.tier,
                    tier_names.join(", ")
                )
            })
        })
        .take(10)
        .collect();
    if !missing.is_empty() {
        return missing;
    }
    rows.iter()
        .zip(of_row)
        .filter_map(|(r, t)| {
            let t = (*t)?;
            check_usage_time(r.at, t.created_at, now)
                .err()
                .map(|e| format!("line {}: {e}", r.line))
        })
        .take(10)
        .collect()
}

/// Rows of active tenants, and the refusals of the others: (line, slug, resource, reason).
#[allow(clippy::type_complexity)]
fn split_refused<'a>(
    rows: &'a [UsageRow],
    of_row: &[Option<&ImportTenant>],
) -> (Vec<KnownRow<'a>>, Vec<(i64, String, Resource, String)>) {
    let mut known = Vec::with_capacity(rows.len());
    let mut refused = Vec::new();
    for (r, t) in rows.iter().zip(of_row) {
        match *t {
            Some(t) if t.status == Status::Active => known.push(KnownRow {
                row: r,
                tenant: t.id,
                period: crate::period::Period::containing(r.at).first_day(),
            }),
            t => refused.push((
                r.line,
                r.slug.to_string(),
                r.resource,
                t.map_or("unknown tenant".to_owned(), |t| {
                    format!("tenant is {}", t.status)
                }),
            )),
        }
    }
    (known, refused)
}

/// The file's groups with their hard limits and totals. The quota rows of hard groups are
/// locked (in a fixed order) before the totals are read, so that concurrent imports and
/// `usage record` cannot pass a limit together.
async fn import_groups(
    tx: &tokio_postgres::Transaction<'_>,
    known: &[KnownRow<'_>],
    tenants: &HashMap<String, ImportTenant>,
    file_hard: &[(String, Resource)],
) -> Result<HashMap<GroupKey, Group>> {
    let mut groups: HashMap<GroupKey, Group> = HashMap::new();
    for k in known {
        groups
            .entry((k.tenant, k.row.resource, k.period))
            .or_insert(Group {
                hard_limit: None,
                before: 0,
                file_sum: 0,
            })
            .file_sum += k.row.quantity as i128;
    }
    let tiers: HashMap<Uuid, &str> = tenants.values().map(|t| (t.id, t.tier.as_str())).collect();
    let ids: Vec<Uuid> = tiers.keys().copied().collect();
    // (tenant, resource) → limit, for the hard ones.
    let mut hard: HashMap<(Uuid, Resource), i64> = HashMap::new();
    for r in tx
        .query(
            "SELECT tenant_id, resource, limit_value, hard FROM quotas WHERE tenant_id = ANY($1)",
            &[&ids],
        )
        .await
        .context("reading the import's quotas")?
    {
        let (tenant, resource): (Uuid, Resource) = (r.get(0), r.get(1));
        let is_hard = r.get::<_, Option<bool>>(3).unwrap_or_else(|| {
            file_hard
                .iter()
                .any(|(t, res)| Some(t.as_str()) == tiers.get(&tenant).copied() && *res == resource)
        });
        if is_hard {
            hard.insert((tenant, resource), r.get(2));
        }
    }
    let mut locked: Vec<(Uuid, Resource)> = groups
        .keys()
        .filter(|(t, r, _)| hard.contains_key(&(*t, *r)))
        .map(|(t, r, _)| (*t, *r))
        .collect();
    locked.sort_unstable();
    locked.dedup();
    if !locked.is_empty() {
        let (t, r): (Vec<Uuid>, Vec<Resource>) = locked.into_iter().unzip();
        tx.execute(
            "SELECT 1 FROM quotas q JOIN unnest($1::uuid[], $2::text[]) AS l(t, r)
               ON q.tenant_id = l.t AND q.resource = l.r
             ORDER BY q.tenant_id, q.resource FOR UPDATE OF q",
            &[&t, &r],
        )
        .await
        .context("locking the hard quotas")?;
    }
    let mut periods: Vec<NaiveDate> = groups.keys().map(|g| g.2).collect();
    periods.sort_unstable();
    periods.dedup();
    for r in tx
        .query(
            "SELECT tenant_id, resource, period, quantity FROM usage_totals
             WHERE tenant_id = ANY($1) AND period = ANY($2)",
            &[&ids, &periods],
        )
        .await
        .context("reading the period totals")?
    {
        if let Some(g) = groups.get_mut(&(r.get(0), r.get(1), r.get(2))) {
            g.before = r.get(3);
        }
    }
    for ((t, r, _), g) in groups.iter_mut() {
        g.hard_limit = hard.get(&(*t, *r)).copied();
    }
    Ok(groups)
}

/// COPY (binary) of the known rows into a temporary staging table, each marked whether its
/// group is contested.
async fn stage_rows(
    tx: &tokio_postgres::Transaction<'_>,
    known: &[KnownRow<'_>],
    contested: &HashSet<GroupKey>,
) -> Result<()> {
    tx.batch_execute(
        "CREATE TEMP TABLE import_staging (
             line bigint, tenant_id uuid, key text, resource text, quantity bigint,
             at timestamptz, period date, contested boolean
         ) ON COMMIT DROP",
    )
    .await
    .context("creating the staging table")?;
    let sink = tx
        .copy_in(
            "COPY import_staging (line, tenant_id, key, resource, quantity, at, period, contested)
             FROM STDIN (FORMAT binary)",
        )
        .await
        .context("starting COPY")?;
    // The rows encoded here, in pieces on every core, and sent in large chunks, instead of the
    // driver's `BinaryCopyInWriter` (a `ToSql` call per field, a send per 4 KiB, on one core):
    // with it, staging a million rows took 1.15 s, against 0.7 s for psql's CSV COPY. A batch
    // of ENCODED_BATCH rows at a time, so that a file at the size limit (15M rows) holds about
    // 25 MB of encoded tuples at once, not 1.5 GB.
    let mut sink = std::pin::pin!(sink);
    let mut header = BytesMut::with_capacity(19);
    header.put_slice(b"PGCOPY\n\xff\r\n\0");
    header.put_i32(0); // flags
    header.put_i32(0); // header extension length
    sink.send(header.freeze())
        .await
        .context("sending COPY data")?;
    for batch in known.chunks(ENCODED_BATCH) {
        let chunk = batch.len().div_ceil(threads_for(batch.len())).max(1);
        let pieces: Vec<Bytes> = std::thread::scope(|s| {
            let parts: Vec<_> = batch
                .chunks(chunk)
                .map(|part| s.spawn(move || encode_staging(part, contested)))
                .collect();
            parts
                .into_iter()
                .map(|p| p.join().expect("an encoding thread panicked"))
                .collect()
        });
        for mut piece in pieces {
            while !piece.is_empty() {
                let part = piece.split_to(piece.len().min(COPY_CHUNK));
                sink.send(part).await.context("sending COPY data")?;
            }
        }
    }
    let mut trailer = BytesMut::with_capacity(2);
    trailer.put_i16(-1);
    sink.send(trailer.freeze())
        .await
        .context("sending COPY data")?;
    sink.as_mut().finish().await.context("finishing COPY")?;
    Ok(())
}

/// Bytes per message of the staging COPY.
const COPY_CHUNK: usize = 1 << 20;

/// Rows encoded at once for the staging COPY (about 100 bytes each, encoded).
const ENCODED_BATCH: usize = 1 << 18;

/// PostgreSQL's epoch (2000-01-01) in Unix microseconds and in days of the common era.
const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;

/// `rows` as binary COPY tuples of `import_staging`'s eight columns (no header or trailer):
/// per tuple the field count, then each field's length and its value in network order (int8,
/// uuid's 16 bytes, text's UTF-8, timestamptz as microseconds since 2000-01-01, date as days
/// since then, bool as one byte).
fn encode_staging(rows: &[KnownRow<'_>], contested: &HashSet<GroupKey>) -> Bytes {
    let epoch = NaiveDate::from_ymd_opt(2000, 1, 1).expect("a valid date");
    let none_contested = contested.is_empty();
    let mut b = BytesMut::with_capacity(rows.len() * 96);
    for k in rows {
        let r = k.row;
        let hot = !none_contested && contested.contains(&(k.tenant, r.resource, k.period));
        let resource = r.resource.as_str().as_bytes();
        b.put_i16(8);
        b.put_i32(8);
        b.put_i64(r.line);
        b.put_i32(16);
        b.put_slice(k.tenant.as_bytes());
        b.put_i32(r.key.len() as i32);
        b.put_slice(r.key.as_bytes());
        b.put_i32(resource.len() as i32);
        b.put_slice(resource);
        b.put_i32(8);
        b.put_i64(r.quantity);
        b.put_i32(8);
        b.put_i64(r.at.timestamp_micros() - PG_EPOCH_MICROS);
        b.put_i32(4);
        b.put_i32((k.period - epoch).num_days() as i32);
        b.put_i32(1);
        b.put_u8(u8::from(hot));
    }
    b.freeze()
}

/// How many of the staged rows' keys a sample looks up: the first rows as staged (in key
/// order, across the file's first tenants by id), enough to tell a replay from a new file.
const SEEN_SAMPLE: i64 = 1000;

/// Whether most of a sample of the staged (uncontested) rows carry keys already recorded:
/// then the file is mostly a replay. A few index probes.
async fn mostly_seen(tx: &tokio_postgres::Transaction<'_>) -> Result<bool> {
    let row = tx
        .query_one(
            "SELECT count(*) FILTER (WHERE EXISTS (SELECT 1 FROM usage_events e
                                                  WHERE e.tenant_id = s.tenant_id AND e.key = s.key)),
                    count(*)
             FROM (SELECT tenant_id, key FROM import_staging WHERE NOT contested LIMIT $1) s",
            &[&SEEN_SAMPLE],
        )
        .await
        .context("sampling the file's keys")?;
    let (seen, sampled): (i64, i64) = (row.get(0), row.get(1));
    Ok(sampled > 0 && 2 * seen >= sampled)
}

/// The careful path for the contested groups' rows, in file order: `Err` lists the lines
/// whose monthly total would pass `MAX_QUANTITY` (bad input); else the count inserted and the
/// rows refused at their hard limit. Their quota rows are already locked (`import_groups`).
#[allow(clippy::type_complexity)]
async fn import_contested(
    tx: &tokio_postgres::Transaction<'_>,
    groups: &HashMap<GroupKey, Group>,
) -> Result<Result<(i64, Vec<(i64, String, Resource, String)>), Vec<String>>> {
    let (mut t, mut r, mut p, mut limits) = (vec![], vec![], vec![], vec![]);
    for ((tenant, resource, period), g) in groups.iter().filter(|(_, g)| g.contested()) {
        t.push(*tenant);
        r.push(*resource);
        p.push(*period);
        limits.push(g.hard_limit);
    }
    tx.execute(
        "CREATE TEMP TABLE import_careful ON COMMIT DROP AS
         SELECT s.*, g.hard_limit, ten.slug,
                row_number() OVER (PARTITION BY s.tenant_id, s.key ORDER BY s.line) > 1
                  OR EXISTS (SELECT 1 FROM usage_events e WHERE e.tenant_id = s.tenant_id AND e.key = s.key) AS duplicate
         FROM import_staging s
         JOIN unnest($1::uuid[], $2::text[], $3::date[], $4::bigint[]) AS g(t, r, p, hard_limit)
           ON s.tenant_id = g.t AND s.resource = g.r AND s.period = g.p
         JOIN tenants ten ON ten.id = s.tenant_id
         WHERE s.contested",
        &[&t, &r, &p, &limits],
    )
    .await
    .context("collecting the contested rows")?;
    // Only soft groups can grow without bound (a hard limit is at most MAX_QUANTITY); summed
    // as numeric, so the check itself cannot overflow.
    let too_large: Vec<String> = tx
        .query(
            &format!(
                "WITH c AS (
                     SELECT c.*, sum(c.quantity::numeric) OVER (PARTITION BY tenant_id, resource, period ORDER BY line) AS cum
                     FROM import_careful c WHERE NOT duplicate AND hard_limit IS NULL
                 )
                 SELECT c.line, c.resource, to_char(c.period, 'YYYY-MM') FROM c
                 LEFT JOIN usage_totals u ON u.tenant_id = c.tenant_id AND u.resource = c.resource AND u.period = c.period
                 WHERE c.cum + coalesce(u.quantity, 0) > {MAX_QUANTITY}
                 ORDER BY c.line LIMIT 10"
            ),
            &[],
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
        return Ok(Err(too_large));
    }
    let over_limit = tx
        .query(
            "WITH running AS (
                 SELECT c.*, sum(c.quantity) OVER (PARTITION BY c.tenant_id, c.resource, c.period ORDER BY c.line) AS cum
                 FROM import_careful c WHERE NOT c.duplicate AND c.hard_limit IS NOT NULL
             )
             SELECT r.line, r.slug, r.resource,
                    'over the hard limit of ' || r.hard_limit || ' for ' || to_char(r.period, 'YYYY-MM')
             FROM running r
             LEFT JOIN usage_totals u ON u.tenant_id = r.tenant_id AND u.resource = r.resource AND u.period = r.period
             WHERE r.cum + coalesce(u.quantity, 0) > r.hard_limit",
            &[],
        )
        .await
        .context("applying hard limits")?;
    let over_lines: Vec<i64> = over_limit.iter().map(|r| r.get(0)).collect();
    let accepted: i64 = tx
        .query_one(
            &insert_counting_totals(
                "SELECT tenant_id, key, resource, quantity, at, period FROM import_careful
                 WHERE NOT duplicate AND line <> ALL($1)
                 ORDER BY tenant_id, key, line",
            ),
            &[&over_lines],
        )
        .await
        .context("inserting the contested events")?
        .get(0);
    Ok(Ok((
        accepted,
        over_limit
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
            .collect(),
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The hand-written staging tuples are byte for byte what the driver's `ToSql` encodings
    /// give for the same values, each field length-prefixed (PostgreSQL's binary COPY format):
    /// multi-byte keys, times before and after 2000 and with microseconds, contested or not.
    #[test]
    fn the_staging_tuples_are_the_drivers_encodings() {
        use tokio_postgres::types::{ToSql, Type};
        fn field(b: &mut BytesMut, v: &(dyn ToSql + Sync), ty: &Type) {
            let mut f = BytesMut::new();
            assert!(matches!(
                v.to_sql_checked(ty, &mut f).unwrap(),
                tokio_postgres::types::IsNull::No
            ));
            b.put_i32(f.len() as i32);
            b.put_slice(&f);
        }
        let times = [
            "2026-11-03T10:00:00.123456Z",
            "1999-12-31T23:59:59.999999Z",
            "1970-01-01T00:00:00Z",
            "2026-10-31T23:59:60Z",
        ];
        let rows: Vec<UsageRow> = times
            .iter()
            .enumerate()
            .map(|(i, t)| UsageRow {
                line: 2 + i as i64 * 1_000_000_007,
                slug: "acme".parse().unwrap(),
                resource: [Resource::ApiRequests, Resource::ComputeHours][i % 2],
                quantity: [1, MAX_QUANTITY][i % 2],
                at: crate::period::parse_time(t).unwrap(),
                key: ["", "k,1", "ключ-é", "\"q\""][i].to_owned(),
            })
            .collect();
        let tenant = Uuid::new_v4();
        let known: Vec<KnownRow<'_>> = rows
            .iter()
            .map(|row| KnownRow {
                row,
                tenant,
                period: crate::period::Period::containing(row.at).first_day(),
            })
            .collect();
        let hot: HashSet<GroupKey> = [(tenant, Resource::ComputeHours, known[1].period)].into();
        for contested in [HashSet::new(), hot] {
            let mut want = BytesMut::new();
            for k in &known {
                let r = k.row;
                let is_hot = contested.contains(&(k.tenant, r.resource, k.period));
                want.put_i16(8);
                field(&mut want, &r.line, &Type::INT8);
                field(&mut want, &k.tenant, &Type::UUID);
                field(&mut want, &r.key, &Type::TEXT);
                field(&mut want, &r.resource, &Type::TEXT);
                field(&mut want, &r.quantity, &Type::INT8);
                field(&mut want, &r.at, &Type::TIMESTAMPTZ);
                field(&mut want, &k.period, &Type::DATE);
                field(&mut want, &is_hot, &Type::BOOL);
            }
            assert_eq!(&encode_staging(&known, &contested)[..], &want[..]);
        }
    }

    /// Past the threshold the rows are sorted on several threads and merged: the same order as
    /// one sort, duplicates of a key included (their lines decide).
    #[test]
    fn the_parallel_sort_orders_as_one_sort_does() {
        let tenants: Vec<Uuid> = (0..7).map(|_| Uuid::new_v4()).collect();
        let rows: Vec<UsageRow> = (0..120_000i64)
            .map(|i| UsageRow {
                line: i + 2,
                slug: "acme".parse().unwrap(),
                resource: Resource::ApiRequests,
                quantity: 1,
                at: Utc::now(),
                // Keys repeat (a replayed line), out of order.
                key: format!("k{}", (i * 7919) % 50_000),
            })
            .collect();
        fn known<'a>(rows: &'a [UsageRow], tenants: &[Uuid]) -> Vec<KnownRow<'a>> {
            rows.iter()
                .enumerate()
                .map(|(i, row)| KnownRow {
                    row,
                    tenant: tenants[(i * 31) % tenants.len()],
                    period: NaiveDate::from_ymd_opt(2026, 10, 1).unwrap(),
                })
                .collect()
        }
        let parallel = sort_by_key_in_parallel(known(&rows, &tenants));
        let mut one = known(&rows, &tenants);
        one.sort_unstable_by(|a, b| {
            (a.tenant, a.row.key.as_str(), a.row.line).cmp(&(
                b.tenant,
                b.row.key.as_str(),
                b.row.line,
            ))
        });
        let ids = |v: &[KnownRow<'_>]| -> Vec<(Uuid, i64)> {
            v.iter().map(|k| (k.tenant, k.row.line)).collect()
        };
        assert_eq!(parallel.len(), rows.len());
        assert_eq!(ids(&parallel), ids(&one));
    }

    #[test]
    fn merge_keeps_both_runs_in_order() {
        let order: fn(&i32, &i32) -> std::cmp::Ordering = |a, b| a.cmp(b);
        assert_eq!(
            merge(vec![1, 4, 9], vec![2, 3, 10, 11], order),
            vec![1, 2, 3, 4, 9, 10, 11]
        );
        assert_eq!(merge(vec![], vec![5], order), vec![5]);
        assert_eq!(merge(vec![5], vec![], order), vec![5]);
    }
}
