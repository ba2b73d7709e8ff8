//! Usage benchmark: `tenantctl usage import` of 1,000,000 events for 10,000 tenants (the file
//! is generated), first load and replay, against the floor of a plain `\copy` into a temporary
//! staging table + `INSERT … SELECT … ON CONFLICT DO NOTHING` (with the slug → id join) in
//! psql; and the latency of one `quota check`, in-process and as a whole CLI process.
//!
//! `cargo bench --bench usage` (BENCH_EVENTS=1000000, BENCH_TENANTS=10000 by default).

#[path = "../tests/support/cluster.rs"]
#[allow(dead_code)]
mod cluster;
#[allow(dead_code)]
mod common;

use std::io::Write;
use std::time::Instant;

use clap::Parser;

fn run(url: &str, args: &[&str]) -> f64 {
    common::tenantctl(url, "ubench_", &[], args)
}

fn main() {
    if common::listing() {
        return;
    }
    let events: usize = common::count("BENCH_EVENTS", 1_000_000);
    let tenants: usize = common::count("BENCH_TENANTS", 10_000);
    let c = cluster::cluster();
    let dir = tempfile::Builder::new()
        .prefix("tenantctl-ubench-")
        .tempdir()
        .unwrap();
    let mut pg = postgres::Client::connect(&c.url("postgres"), postgres::NoTls).unwrap();
    pg.batch_execute("DROP DATABASE IF EXISTS ubenchctl WITH (FORCE)")
        .unwrap();
    let url = c.url("ubenchctl");

    // The control database through tenantctl itself (creation + migrations), then 10,000
    // premium tenants as rows: the import touches only the control plane.
    run(&url, &["init"]);
    let mut ctl = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    ctl.batch_execute(&format!(
        "INSERT INTO tenants (slug, name, tier, isolation, status, database_name, role_name, owner_email, owner_name, created_at)
         SELECT 'tenant-' || i, 'T' || i, 'premium', 'siloed', 'active', 'ubench_t' || i, 'ubench_t' || i, 'o@x.io', 'O', '2026-09-01'
         FROM generate_series(1, {tenants}) i;
         INSERT INTO quotas (tenant_id, resource, limit_value)
         SELECT t.id, r.resource, r.l FROM tenants t,
           (VALUES ('users', 5), ('storage_mb', 1000), ('sandboxes', 5), ('compute_hours', 10), ('api_requests', 10000)) r(resource, l);
         CREATE TABLE floor_events (LIKE usage_events INCLUDING ALL);"
    ))
    .unwrap();

    let file = dir.path().join("events.csv");
    {
        let mut w = std::io::BufWriter::new(std::fs::File::create(&file).unwrap());
        writeln!(w, "slug,resource,quantity,time,key").unwrap();
        let resources = [
            "api_requests",
            "api_requests",
            "api_requests",
            "compute_hours",
            "sandboxes",
        ];
        for i in 0..events {
            let t = i % tenants + 1;
            let day = i % 28 + 1;
            writeln!(
                w,
                "tenant-{t},{},{},2026-10-{day:02}T12:00:00Z,evt-{i}",
                resources[i % 5],
                i % 9 + 1
            )
            .unwrap();
        }
    }
    let size_mb = std::fs::metadata(&file).unwrap().len() as f64 / 1e6;
    let path = file.to_str().unwrap();

    // The floor, in one psql session each: the least any import of this file must do. A
    // `\copy` of the CSV into a temporary staging table, then one `INSERT … SELECT` joining slug
    // to tenant id, computing the month, sorted by key, `ON CONFLICT DO NOTHING` into a table
    // with usage_events' columns and indexes (no foreign key). No validation, no totals, no
    // hard limits. The replay floor runs the same script again (every row a conflict).
    let script = dir.path().join("floor.sql");
    std::fs::write(
        &script,
        format!(
            "CREATE TEMP TABLE floor_staging (slug text, resource text, quantity bigint, at timestamptz, key text);
\\copy floor_staging FROM '{path}' WITH (FORMAT csv, HEADER true)
INSERT INTO floor_events (tenant_id, key, resource, quantity, at, period)
  SELECT t.id, s.key, s.resource, s.quantity, s.at, date_trunc('month', s.at AT TIME ZONE 'UTC')::date
  FROM floor_staging s JOIN tenants t ON t.slug = s.slug
  ORDER BY t.id, s.key
  ON CONFLICT DO NOTHING;
"
        ),
    )
    .unwrap();
    let floor_run = || common::psql(&url, &["-f", script.to_str().unwrap()]);

    // Side by side, BENCH_REPS times: tenantctl first load and replay, the floor's first load
    // and replay, each first load on emptied tables.
    let reps = common::count("BENCH_REPS", 3);
    let (mut first, mut replay, mut floor, mut floor_replay) = (vec![], vec![], vec![], vec![]);
    for _ in 0..reps {
        ctl.batch_execute("TRUNCATE usage_events, usage_totals, floor_events; CHECKPOINT")
            .unwrap();
        first.push(run(&url, &["usage", "import", path]));
        replay.push(run(&url, &["usage", "import", path]));
        let n: i64 = ctl
            .query_one("SELECT count(*) FROM usage_events", &[])
            .unwrap()
            .get(0);
        assert_eq!(n as usize, events);
        floor.push(floor_run());
        floor_replay.push(floor_run());
    }
    let (first, replay, floor, floor_replay) = (
        common::median(&first),
        common::median(&replay),
        common::median(&floor),
        common::median(&floor_replay),
    );

    // quota check: in-process (library, warm pool) and as a CLI process.
    let cli = tenantctl::cli::Cli::parse_from([
        "tenantctl",
        "--database-url",
        &url,
        "--name-prefix",
        "ubench_",
        "list",
    ]);
    let settings = tenantctl::config::Settings::resolve(&cli.global).unwrap();
    let tiers = settings.load_tiers().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let in_process: Vec<f64> = rt.block_on(async {
        let plane = tenantctl::ops::ControlPlane::open(settings, &tenantctl::ops::Silent)
            .await
            .unwrap();
        let slug: tenantctl::slug::Slug = "tenant-42".parse().unwrap();
        let mut v = Vec::new();
        for i in 0..1000 {
            let t0 = Instant::now();
            let c = tenantctl::ops::quota::check(
                &plane,
                &tiers,
                &slug,
                tenantctl::resource::Resource::ApiRequests,
                1,
            )
            .await
            .unwrap();
            if i >= 50 {
                v.push(t0.elapsed().as_secs_f64() * 1000.0);
            }
            assert!(c.allowed);
        }
        v
    });
    // The whole process, interleaved with its yardstick: psql connecting and running one query.
    let (mut cli_runs, mut psql_runs) = (vec![], vec![]);
    for _ in 0..common::count("BENCH_CHECKS", 50) {
        cli_runs.push(run(&url, &["quota", "check", "tenant-42", "api_requests"]));
        psql_runs.push(common::psql(&url, &["-c", "select 1"]));
    }

    println!("usage import, {events} events for {tenants} tenants ({size_mb:.0} MB CSV)");
    println!(
        "  tenantctl first load  {:>8.0} ms  {:>9.0} rows/s",
        first,
        events as f64 / first * 1000.0
    );
    println!(
        "  tenantctl replay      {:>8.0} ms  {:>9.0} rows/s (all duplicates)",
        replay,
        events as f64 / replay * 1000.0
    );
    println!(
        "  psql floor            {:>8.0} ms  {:>9.0} rows/s  (\\copy + INSERT ... ON CONFLICT DO NOTHING)",
        floor,
        events as f64 / floor * 1000.0
    );
    println!("  psql floor replay     {:>8.0} ms", floor_replay);
    println!(
        "  ratio first load / floor {:.2}, replay / floor replay {:.2} (medians of {reps})",
        first / floor,
        replay / floor_replay
    );
    println!("quota check latency");
    println!(
        "  in-process (warm pool)   median {:.3} ms  p95 {:.3} ms",
        common::median(&in_process),
        common::p95(&in_process)
    );
    println!(
        "  CLI process              median {:.1} ms  p95 {:.1} ms  ({} runs)",
        common::median(&cli_runs),
        common::p95(&cli_runs),
        cli_runs.len()
    );
    println!(
        "  psql -c 'select 1'       median {:.1} ms  p95 {:.1} ms  ratio of medians {:.2}",
        common::median(&psql_runs),
        common::p95(&psql_runs),
        common::median(&cli_runs) / common::median(&psql_runs)
    );
    drop(ctl);
    pg.batch_execute("DROP DATABASE IF EXISTS ubenchctl WITH (FORCE)")
        .unwrap();
}
