//! Migration benchmark: a tenant migration across 200 siloed tenants with `tenantctl migrate
//! --concurrency 1` and `--concurrency 4`, against a plain psql loop doing the same (connect,
//! apply in a transaction, record the version, grant) in one session.
//!
//! The "new" migration is V2 (suspensions), made pending again by deleting its history row in
//! every database; it is written to be re-runnable, so applying it again is real work of the
//! same shape (DDL on five tables) as a fresh migration.
//!
//! `cargo bench --bench migrate` (BENCH_SILOS=200 by default).

#[path = "../tests/support/cluster.rs"]
#[allow(dead_code)]
mod cluster;
#[allow(dead_code)]
mod common;

use std::fmt::Write as _;
use std::process::{Command, Stdio};
use std::time::Instant;

fn tenantctl(url: &str, args: &[&str]) -> f64 {
    let buckets = std::env::temp_dir().join("tenantctl-mbench-buckets");
    common::tenantctl(
        url,
        "mbench_",
        &[("TENANTCTL_STORAGE_ROOT", buckets.to_str().unwrap())],
        args,
    )
}

fn main() {
    if common::listing() {
        return;
    }
    let n: usize = common::count("BENCH_SILOS", 200);
    let c = cluster::cluster();
    let mut pg = postgres::Client::connect(&c.url("postgres"), postgres::NoTls).unwrap();
    let stale: Vec<String> = pg
        .query(
            "SELECT datname::text FROM pg_database WHERE datname LIKE 'mbench\\_%'",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    for db in stale {
        pg.batch_execute(&format!("DROP DATABASE \"{db}\" WITH (FORCE)"))
            .unwrap();
    }
    for r in pg
        .query(
            "SELECT rolname::text FROM pg_roles WHERE rolname LIKE 'mbench\\_%'",
            &[],
        )
        .unwrap()
    {
        let role: String = r.get(0);
        pg.batch_execute(&format!("DROP ROLE \"{role}\"")).unwrap();
    }
    let url = c.url("mbench_ctl");
    let pw = std::env::temp_dir().join("tenantctl-mbench-pw");
    let pw = pw.to_str().unwrap();

    let t0 = Instant::now();
    let slugs: Vec<String> = (0..n).map(|i| format!("silo{i:04}")).collect();
    for chunk in slugs.chunks(4) {
        let children: Vec<_> = chunk
            .iter()
            .map(|s| {
                Command::new(common::BIN)
                    .args([
                        "provision",
                        s,
                        "--tier",
                        "premium",
                        "--quiet",
                        "--password-file",
                        pw,
                    ])
                    .env("TENANTCTL_DATABASE_URL", &url)
                    .env("TENANTCTL_NAME_PREFIX", "mbench_")
                    .env(
                        "TENANTCTL_STORAGE_ROOT",
                        std::env::temp_dir().join("tenantctl-mbench-buckets"),
                    )
                    .stdout(Stdio::null())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for mut ch in children {
            assert!(ch.wait().unwrap().success());
        }
    }
    eprintln!(
        "provisioned {n} siloed tenants in {:.0} s",
        t0.elapsed().as_secs_f64()
    );
    let dbs: Vec<String> = slugs.iter().map(|s| format!("mbench_{s}")).collect();
    let forget = || {
        for db in &dbs {
            let mut c = postgres::Client::connect(&c.url(db), postgres::NoTls).unwrap();
            c.execute("DELETE FROM refinery_schema_history WHERE version = 2", &[])
                .unwrap();
        }
    };

    forget();
    let seq = tenantctl(&url, &["migrate", "--concurrency", "1"]);
    forget();
    let par = tenantctl(&url, &["migrate", "--concurrency", "4"]);
    let noop = tenantctl(&url, &["migrate", "--concurrency", "4"]);

    // The floor: one psql session, \c into each database, the same SQL.
    forget();
    let v2 = include_str!("../sql/tenant/V2__suspensions.sql");
    let mut script = String::new();
    for db in &dbs {
        let _ = writeln!(
            script,
            "\\c {db}\nBEGIN;\n{v2}\nINSERT INTO refinery_schema_history (version, name, applied_on, checksum) VALUES (2, 'suspensions', now()::text, '0');\nCOMMIT;\n\
             GRANT USAGE ON SCHEMA public TO \"{db}\";\nGRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO \"{db}\";\n\
             REVOKE ALL ON TABLE refinery_schema_history FROM \"{db}\";\nREVOKE INSERT, UPDATE, DELETE, TRUNCATE ON TABLE tenant_suspensions FROM \"{db}\";"
        );
    }
    let file = std::env::temp_dir().join("tenantctl-mbench-floor.sql");
    std::fs::write(&file, script).unwrap();
    let floor = common::psql(&c.url("postgres"), &["-f", file.to_str().unwrap()]);
    // Leave every database consistent with refinery's own record for the next runs.
    forget();
    tenantctl(&url, &["migrate"]);

    println!("tenant migration across {n} siloed databases (wall time, ms per database)");
    println!(
        "  tenantctl --concurrency 1  {seq:>7.0} ms  {:>6.1} ms/db",
        seq / n as f64
    );
    println!(
        "  tenantctl --concurrency 4  {par:>7.0} ms  {:>6.1} ms/db",
        par / n as f64
    );
    println!(
        "  tenantctl, nothing pending {noop:>7.0} ms  {:>6.1} ms/db",
        noop / n as f64
    );
    println!(
        "  psql loop (floor)          {floor:>7.0} ms  {:>6.1} ms/db",
        floor / n as f64
    );
    println!(
        "  ratios: c1/floor {:.2}, c4/floor {:.2}",
        seq / floor,
        par / floor
    );
}
