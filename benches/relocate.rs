//! Move benchmark (issue 11): `tenantctl move <slug> --to s2` and back of a siloed tenant of
//! about BENCH_MB megabytes (default 100: its database's size, rows and indexes, filled as the
//! superuser through the tenant schema's four tables), against the floor by hand between the
//! same two servers, side by side in each round:
//!
//! ```text
//! psql -d <target server> -c 'CREATE DATABASE <new>'
//! pg_dump -Fc -d <silo on the source> | pg_restore --no-owner --no-acl --single-transaction -d <new>
//! ```
//!
//! as the superuser (no row-level security, no snapshot export, no count, no journal; the
//! flags the silo needs to restore on a server without its role), and the same with
//! `pg_dump -Fc -Z0` (uncompressed, as tenantctl's own pipe is), so that the ratio is shown
//! against both. tenantctl runs as a
//! least-privilege admin (LOGIN CREATEDB CREATEROLE) on both servers, as on managed
//! PostgreSQL; its whole command is timed, and each step's time read from its progress lines.
//! BENCH_RUNS round trips (default 3): floor main → s2, move main → s2, floor s2 → main, move
//! s2 → main; medians per direction and the ratio move / floor (target ≤ 1.2).
//!
//! `cargo bench --bench relocate`. Two throwaway clusters (the tests' `main` and `s2`: fsync
//! off, unix sockets; `s3` starts too and idles).

#[path = "../tests/support/cluster.rs"]
#[allow(dead_code)]
mod cluster;
#[allow(dead_code)]
mod common;
#[path = "../tests/support/fleet.rs"]
#[allow(dead_code)]
mod fleet;

use std::process::{Command, Stdio};
use std::time::Instant;

use tenantctl::cluster::SUPERUSER;

const ADMIN: &str = "rbenchadmin";
const PREFIX: &str = "rbench_";
const CONTROL: &str = "rbenchctl";
const SLUG: &str = "big";
const TABLES: [&str; 4] = ["users", "applications", "deployments", "api_keys"];

/// A superuser connection string to `db` on `server` (`main` or `s2`).
fn superuser_url(server: &str, db: &str) -> String {
    match server {
        "main" => cluster::cluster().url(db),
        _ => extra(server).url(SUPERUSER, db),
    }
}

fn extra(name: &str) -> &'static fleet::Extra {
    fleet::extras().iter().find(|x| x.name == name).unwrap()
}

fn connect(server: &str, db: &str) -> postgres::Client {
    postgres::Client::connect(&superuser_url(server, db), postgres::NoTls).unwrap()
}

/// Adds `users` users to tenant `id` in `silo`, each with an application, a deployment and an
/// api key (rows of a few hundred bytes with their indexes).
fn fill(silo: &mut postgres::Client, id: uuid::Uuid, users: i64, batch: i64) {
    silo.execute(
        "WITH u AS (
           INSERT INTO users (tenant_id, email, password_hash, full_name, role)
           SELECT $1, 'u' || $3::bigint || '-' || g || '@x.example', repeat('h', 60), 'User ' || g, 'member'
           FROM generate_series(1, $2::bigint) g RETURNING id, tenant_id),
         a AS (
           INSERT INTO applications (tenant_id, user_id, name, description, sandbox_id)
           SELECT tenant_id, id, 'app', repeat('an application ', 4), 'sb-' || id FROM u
           RETURNING id, tenant_id, user_id),
         d AS (
           INSERT INTO deployments (tenant_id, application_id, version, status, deployed_at)
           SELECT tenant_id, id, 'v1.2.3', 'deployed', now() FROM a RETURNING id)
         INSERT INTO api_keys (tenant_id, user_id, key_hash, name)
         SELECT tenant_id, user_id, md5(user_id::text), 'key' FROM a",
        &[&id, &users, &batch],
    )
    .unwrap();
}

fn database_bytes(server: &str, db: &str) -> i64 {
    connect(server, "postgres")
        .query_one("SELECT pg_database_size($1)", &[&db])
        .unwrap()
        .get(0)
}

fn rows(server: &str, db: &str) -> i64 {
    let mut c = connect(server, db);
    TABLES
        .iter()
        .map(|t| -> i64 {
            c.query_one(&format!("SELECT count(*) FROM {t}"), &[])
                .unwrap()
                .get(0)
        })
        .sum()
}

/// `tenantctl move big --to <to>`: its wall time and each step's (from the progress lines:
/// `[5/11] copy rows ... ok 1451 ms`).
fn relocate(url: &str, storage: &str, to: &str) -> (f64, Vec<(String, f64)>) {
    let t0 = Instant::now();
    let out = Command::new(common::BIN)
        .args(["move", SLUG, "--to", to])
        .env("TENANTCTL_DATABASE_URL", url)
        .env("TENANTCTL_NAME_PREFIX", PREFIX)
        .env("TENANTCTL_STORAGE_ROOT", storage)
        .env_remove("TENANTCTL_FAILPOINT")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let ms = t0.elapsed().as_secs_f64() * 1000.0;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "move {SLUG} --to {to}: {stderr}");
    let steps: Vec<(String, f64)> = stderr
        .lines()
        .filter_map(|l| {
            let (name, rest) = l
                .strip_prefix('[')?
                .split_once("] ")?
                .1
                .split_once(" ... ok ")?;
            Some((name.to_owned(), rest.strip_suffix(" ms")?.parse().ok()?))
        })
        .collect();
    assert_eq!(steps.len(), 11, "every step's line in: {stderr}");
    (ms, steps)
}

/// The floor: `CREATE DATABASE` on `to`, then `pg_dump -Fc [dump_args] | pg_restore
/// --single-transaction` of the silo on `from` into it, as the superuser. Its wall time; the
/// copy is dropped after.
fn floor(from: &str, to: &str, silo: &str, dump_args: &[&str]) -> f64 {
    let bindir = tenantctl::cluster::pg_bindir(None).unwrap();
    let new = format!("{PREFIX}floor");
    let t0 = Instant::now();
    common::psql(
        &superuser_url(to, "postgres"),
        &["-c", &format!("CREATE DATABASE {new}")],
    );
    let mut dump = Command::new(bindir.join("pg_dump"))
        .arg("-Fc")
        .args(dump_args)
        .args(["-d", &superuser_url(from, silo)])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let restore = Command::new(bindir.join("pg_restore"))
        .args(["--no-owner", "--no-acl", "--single-transaction", "-d"])
        .arg(superuser_url(to, &new))
        .stdin(dump.stdout.take().unwrap())
        .status()
        .unwrap();
    assert!(dump.wait().unwrap().success(), "pg_dump");
    assert!(restore.success(), "pg_restore");
    let ms = t0.elapsed().as_secs_f64() * 1000.0;
    connect(to, "postgres")
        .batch_execute(&format!("DROP DATABASE {new}"))
        .unwrap();
    ms
}

fn main() {
    if common::listing() {
        return;
    }
    let mb = common::count("BENCH_MB", 100) as i64;
    let runs = common::count("BENCH_RUNS", 3);
    let c = cluster::cluster();
    let s2 = extra("s2");
    let dir = tempfile::Builder::new()
        .prefix("tenantctl-rbench-")
        .tempdir()
        .unwrap();
    let storage = dir.path().join("buckets");
    let storage = storage.to_str().unwrap().to_owned();
    let envs = [("TENANTCTL_STORAGE_ROOT", storage.as_str())];
    clean();
    for server in ["main", "s2"] {
        connect(server, "postgres")
            .batch_execute(&format!(
                "CREATE ROLE {ADMIN} LOGIN CREATEDB CREATEROLE NOSUPERUSER"
            ))
            .unwrap();
    }
    let url = format!("{} user={ADMIN}", c.url(CONTROL));
    common::tenantctl(&url, PREFIX, &envs, &["init"]);
    common::tenantctl(
        &url,
        PREFIX,
        &envs,
        &["server", "add", "s2", &s2.url(ADMIN, "postgres")],
    );
    common::tenantctl(
        &url,
        PREFIX,
        &envs,
        &[
            "provision",
            SLUG,
            "--tier",
            "premium",
            "--server",
            "main",
            "--password-file",
            "/dev/null",
        ],
    );
    let silo = format!("{PREFIX}{SLUG}");
    let id: uuid::Uuid = connect("main", CONTROL)
        .query_one("SELECT id FROM tenants WHERE slug = $1", &[&SLUG])
        .unwrap()
        .get(0);
    let mut db = connect("main", &silo);
    let mut batch = 0;
    while database_bytes("main", &silo) < mb * 1024 * 1024 {
        fill(&mut db, id, 5_000, batch);
        batch += 1;
    }
    db.batch_execute("VACUUM ANALYZE").unwrap();
    drop(db);
    let bytes = database_bytes("main", &silo);
    let total_rows = rows("main", &silo);
    eprintln!(
        "silo `{silo}`: {:.1} MB, {total_rows} rows",
        bytes as f64 / 1048576.0
    );

    // Per direction: the floors' times, tenantctl's, and tenantctl's steps.
    let mut floor_ms = [Vec::new(), Vec::new()];
    let mut floor_z0_ms = [Vec::new(), Vec::new()];
    let mut move_ms = [Vec::new(), Vec::new()];
    let mut steps: [Vec<Vec<(String, f64)>>; 2] = [Vec::new(), Vec::new()];
    for run in 0..runs {
        for (d, (from, to)) in [("main", "s2"), ("s2", "main")].into_iter().enumerate() {
            let f = floor(from, to, &silo, &[]);
            let z0 = floor(from, to, &silo, &["-Z0"]);
            let (m, s) = relocate(&url, &storage, to);
            assert_eq!(rows(to, &silo), total_rows, "every row on {to}");
            eprintln!(
                "run {run}: {from} -> {to}: floor {f:.0} ms, floor -Z0 {z0:.0} ms, tenantctl move {m:.0} ms"
            );
            floor_ms[d].push(f);
            floor_z0_ms[d].push(z0);
            move_ms[d].push(m);
            steps[d].push(s);
        }
    }
    println!(
        "moving a siloed tenant of {:.1} MB ({total_rows} rows) between two servers, medians of {runs}:",
        bytes as f64 / 1048576.0
    );
    for (d, (from, to)) in [("main", "s2"), ("s2", "main")].into_iter().enumerate() {
        let (m, f, z0) = (
            common::median(&move_ms[d]),
            common::median(&floor_ms[d]),
            common::median(&floor_z0_ms[d]),
        );
        println!(
            "  {from} -> {to}: tenantctl move {m:>6.0} ms   floor (CREATE DATABASE + pg_dump -Fc | pg_restore --single-transaction) {f:>6.0} ms   ratio {:.2} (target <= 1.2)",
            m / f
        );
        println!(
            "  {:>width$}  floor with pg_dump -Fc -Z0 (uncompressed, as tenantctl dumps) {z0:>6.0} ms   ratio {:.2}",
            "",
            m / z0,
            width = from.len() + to.len() + 4
        );
        for (i, (name, _)) in steps[d][0].iter().enumerate() {
            let ms: Vec<f64> = steps[d].iter().map(|s| s[i].1).collect();
            println!(
                "      [{:>2}/11] {name:<14} {:>6.0} ms",
                i + 1,
                common::median(&ms)
            );
        }
    }
    let all_move: Vec<f64> = move_ms.concat();
    let all_floor: Vec<f64> = floor_ms.concat();
    let all_z0: Vec<f64> = floor_z0_ms.concat();
    let (m, f, z0) = (
        common::median(&all_move),
        common::median(&all_floor),
        common::median(&all_z0),
    );
    println!(
        "  both ways: tenantctl move {m:.0} ms, floor {f:.0} ms (ratio {:.2}), floor -Z0 {z0:.0} ms (ratio {:.2})",
        m / f,
        m / z0
    );
    clean();
}

/// Drops what an earlier run left on both servers.
fn clean() {
    for server in ["main", "s2"] {
        let mut pg = connect(server, "postgres");
        common::drop_leftovers(&mut pg, CONTROL, &[PREFIX]);
        pg.batch_execute(&format!(
            "DO $$ BEGIN IF EXISTS (SELECT FROM pg_roles WHERE rolname = '{ADMIN}') THEN
                 DROP OWNED BY {ADMIN}; DROP ROLE {ADMIN}; END IF; END $$"
        ))
        .unwrap();
    }
}
