//! Upgrade benchmark: `tenantctl set-tier <slug> premium` of a pooled tenant with BENCH_ROWS
//! rows (100,000 by default: a quarter each in users, applications, deployments and api_keys)
//! beside another pooled tenant of the same size, as a least-privilege admin (LOGIN CREATEDB
//! CREATEROLE: the rows read and written under the tenant's context). Prints the whole
//! command's median and each step's (from its progress lines), against the floor: the same
//! rows `\copy`ed out of the pooled database and into a database with the tenant schema by
//! psql as the superuser (no row-level security, no checks, no journal).
//!
//! `cargo bench --bench upgrade` (BENCH_ROWS=100000, BENCH_RUNS=3 by default). It starts its
//! own throwaway cluster, like the tests, or uses TENANTCTL_TEST_DATABASE_URL.

#[path = "../tests/support/cluster.rs"]
#[allow(dead_code)]
mod cluster;
#[allow(dead_code)]
mod common;

use std::process::{Command, Stdio};
use std::time::Instant;

const TABLES: [&str; 4] = ["users", "applications", "deployments", "api_keys"];

/// Gives tenant `id` `per_table` rows in each tenant table, as the superuser.
fn fill(pooled: &mut postgres::Client, id: uuid::Uuid, per_table: i64) {
    pooled
        .execute(
            "WITH u AS (
               INSERT INTO users (tenant_id, email, password_hash, full_name, role)
               SELECT $1, 'u' || g || '@x.example', repeat('h', 60), 'User ' || g, 'member'
               FROM generate_series(1, $2::bigint) g RETURNING id, tenant_id),
             a AS (
               INSERT INTO applications (tenant_id, user_id, name, description)
               SELECT tenant_id, id, 'app', 'an application' FROM u RETURNING id, tenant_id, user_id),
             d AS (
               INSERT INTO deployments (tenant_id, application_id, version, status)
               SELECT tenant_id, id, 'v1.2.3', 'deployed' FROM a RETURNING id)
             INSERT INTO api_keys (tenant_id, user_id, key_hash, name)
             SELECT tenant_id, user_id, md5(user_id::text), 'key' FROM a",
            &[&id, &per_table],
        )
        .unwrap();
}

fn tenant_id(ctl: &mut postgres::Client, slug: &str) -> uuid::Uuid {
    ctl.query_one("SELECT id FROM tenants WHERE slug = $1", &[&slug])
        .unwrap()
        .get(0)
}

/// `tenantctl set-tier`, its wall time and each step's time (from the progress lines:
/// `[5/11] copy rows ... ok 1451 ms`).
fn upgrade(url: &str, storage: &str, slug: &str) -> (f64, Vec<(String, f64)>) {
    let t0 = Instant::now();
    let out = Command::new(common::BIN)
        .args(["set-tier", slug, "premium"])
        .env("TENANTCTL_DATABASE_URL", url)
        .env("TENANTCTL_NAME_PREFIX", "ubench_")
        .env("TENANTCTL_STORAGE_ROOT", storage)
        .env_remove("TENANTCTL_FAILPOINT")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let ms = t0.elapsed().as_secs_f64() * 1000.0;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "set-tier {slug}: {stderr}");
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

fn main() {
    if common::listing() {
        return;
    }
    let rows = common::count("BENCH_ROWS", 100_000) as i64;
    let runs = common::count("BENCH_RUNS", 3);
    let per_table = rows / TABLES.len() as i64;
    let c = cluster::cluster();
    let dir = tempfile::Builder::new()
        .prefix("tenantctl-ubench-")
        .tempdir()
        .unwrap();
    let storage = dir.path().join("buckets");
    let storage = storage.to_str().unwrap().to_owned();
    let envs = [("TENANTCTL_STORAGE_ROOT", storage.as_str())];
    let mut pg = postgres::Client::connect(&c.url("postgres"), postgres::NoTls).unwrap();
    clean(&mut pg);
    pg.batch_execute("CREATE ROLE ubenchadmin LOGIN CREATEDB CREATEROLE")
        .unwrap();
    let url = format!("{} user=ubenchadmin", c.url("ubenchctl"));
    common::tenantctl(&url, "ubench_", &envs, &["init"]);
    let provision = |slug: &str| {
        common::tenantctl(
            &url,
            "ubench_",
            &envs,
            &[
                "provision",
                slug,
                "--tier",
                "free",
                "--password-file",
                "/dev/null",
            ],
        );
    };
    let mut ctl = postgres::Client::connect(&c.url("ubenchctl"), postgres::NoTls).unwrap();
    provision("neighbour");
    let mut pooled = postgres::Client::connect(&c.url("ubench_pooled"), postgres::NoTls).unwrap();
    fill(&mut pooled, tenant_id(&mut ctl, "neighbour"), per_table);

    // The floor's target: a database with the tenant schema, emptied before each run.
    pg.batch_execute("CREATE DATABASE ubench_floor").unwrap();
    let floor_url = c.url("ubench_floor");
    let schema = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("sql/tenant");
    let mut migrations: Vec<_> = std::fs::read_dir(&schema)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    migrations.sort_by_key(|p| {
        let n = p.file_name().unwrap().to_string_lossy().into_owned();
        n[1..n.find("__").unwrap()].parse::<u32>().unwrap()
    });
    for m in &migrations {
        common::psql(&floor_url, &["-f", m.to_str().unwrap()]);
    }

    let (mut total, mut steps, mut floor) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..runs {
        let slug = format!("mover-{i}");
        provision(&slug);
        let id = tenant_id(&mut ctl, &slug);
        fill(&mut pooled, id, per_table);
        pooled.batch_execute("VACUUM ANALYZE").unwrap();
        // The floor first, on the same rows: out of the pooled database, into the other.
        let mut script = String::from("BEGIN;\n");
        for t in TABLES {
            let f = dir.path().join(format!("{t}.copy"));
            script.push_str(&format!(
                "\\copy (SELECT * FROM {t} WHERE tenant_id = '{id}') TO '{}'\n",
                f.display()
            ));
        }
        script.push_str("COMMIT;\n");
        let out_file = dir.path().join("out.sql");
        std::fs::write(&out_file, &script).unwrap();
        let mut script = String::from("BEGIN;\n");
        for t in TABLES {
            let f = dir.path().join(format!("{t}.copy"));
            script.push_str(&format!("\\copy {t} FROM '{}'\n", f.display()));
        }
        script.push_str("COMMIT;\n");
        let in_file = dir.path().join("in.sql");
        std::fs::write(&in_file, &script).unwrap();
        common::psql(
            &floor_url,
            &[
                "-c",
                "TRUNCATE users, applications, deployments, api_keys CASCADE",
            ],
        );
        let t0 = Instant::now();
        common::psql(&c.url("ubench_pooled"), &["-f", out_file.to_str().unwrap()]);
        common::psql(&floor_url, &["-f", in_file.to_str().unwrap()]);
        floor.push(t0.elapsed().as_secs_f64() * 1000.0);

        let (ms, run_steps) = upgrade(&url, &storage, &slug);
        total.push(ms);
        steps.push(run_steps);
        let mut silo =
            postgres::Client::connect(&c.url(&format!("ubench_{slug}")), postgres::NoTls).unwrap();
        let n: i64 = TABLES
            .iter()
            .map(|t| -> i64 {
                silo.query_one(&format!("SELECT count(*) FROM {t}"), &[])
                    .unwrap()
                    .get(0)
            })
            .sum();
        assert_eq!(
            n,
            4 * per_table + 1,
            "every row in the silo (and the owner)"
        );
    }
    println!(
        "pooled → siloed upgrade of a tenant with {} rows (beside a neighbour of as many), median of {runs}:",
        4 * per_table + 1
    );
    println!(
        "  tenantctl set-tier (whole command):     {:.0} ms (p95 {:.0})",
        common::median(&total),
        common::p95(&total)
    );
    for (i, (name, _)) in steps[0].iter().enumerate() {
        let ms: Vec<f64> = steps.iter().map(|s| s[i].1).collect();
        println!(
            "    [{:>2}/11] {name:<14} {:>5.0} ms",
            i + 1,
            common::median(&ms)
        );
    }
    println!(
        "  floor: psql \\copy out and in, superuser: {:.0} ms",
        common::median(&floor)
    );
    clean(&mut pg);
}

/// Drops what an earlier run left.
fn clean(pg: &mut postgres::Client) {
    common::drop_leftovers(pg, "ubenchctl", &["ubench_"]);
    pg.batch_execute(
        "DO $$ BEGIN IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'ubenchadmin') THEN
             DROP OWNED BY ubenchadmin; DROP ROLE ubenchadmin; END IF; END $$",
    )
    .unwrap();
}
