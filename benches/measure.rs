//! Measurement benchmark: `tenantctl usage refresh` of N pooled tenants (3 user rows each),
//! run as a least-privilege admin (LOGIN CREATEDB CREATEROLE: each tenant read with its own
//! context, pipelined in one transaction) and as the superuser (the same path), against the
//! floor of one set-based query that only a role bypassing row-level security can run (the
//! way tenantctl measured before, as psql).
//!
//! `cargo bench --bench measure` (BENCH_TENANTS=10000 by default).

#[path = "../tests/support/cluster.rs"]
#[allow(dead_code)]
mod cluster;
#[allow(dead_code)]
mod common;

const RUNS: usize = 5;

fn main() {
    if common::listing() {
        return;
    }
    let tenants: usize = common::count("BENCH_TENANTS", 10_000);
    let c = cluster::cluster();
    let dir = tempfile::Builder::new()
        .prefix("tenantctl-mbench-")
        .tempdir()
        .unwrap();
    let storage = dir.path().to_str().unwrap().to_owned();
    let envs = [("TENANTCTL_STORAGE_ROOT", storage.as_str())];
    let mut pg = postgres::Client::connect(&c.url("postgres"), postgres::NoTls).unwrap();
    clean(&mut pg);
    pg.batch_execute("CREATE ROLE mbenchadmin LOGIN CREATEDB CREATEROLE")
        .unwrap();
    let su_url = c.url("mbenchctl");
    let lp_url = format!("{su_url} user=mbenchadmin");

    // The pooled database and its schema through tenantctl itself, then N tenants as rows.
    common::tenantctl(
        &lp_url,
        "mbench_",
        &envs,
        &[
            "provision",
            "seed",
            "--tier",
            "free",
            "--password-file",
            "/dev/null",
        ],
    );
    let mut ctl = postgres::Client::connect(&su_url, postgres::NoTls).unwrap();
    ctl.batch_execute(&format!(
        "INSERT INTO tenants (slug, name, tier, isolation, status, database_name, role_name, owner_email, owner_name)
         SELECT 'tenant-' || i, 'T' || i, 'free', 'pooled', 'active', 'mbench_pooled', 'mbench_app', 'o@x.io', 'O'
         FROM generate_series(1, {tenants}) i;"
    ))
    .unwrap();
    let ids: Vec<uuid::Uuid> = ctl
        .query("SELECT id FROM tenants WHERE slug LIKE 'tenant-%'", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let mut pooled = postgres::Client::connect(&c.url("mbench_pooled"), postgres::NoTls).unwrap();
    pooled
        .execute(
            "INSERT INTO users (tenant_id, email, password_hash, full_name, role)
             SELECT t, 'u' || n || '@x.io', repeat('h', 60), 'User ' || n, 'member'
             FROM unnest($1::uuid[]) t, generate_series(1, 3) n",
            &[&ids],
        )
        .unwrap();
    pooled.batch_execute("VACUUM ANALYZE").unwrap();

    let refresh = |url: &str| -> Vec<f64> {
        (0..RUNS)
            .map(|_| common::tenantctl(url, "mbench_", &envs, &["usage", "refresh"]))
            .collect()
    };
    let lp = refresh(&lp_url);
    let su = refresh(&su_url);
    let users: i64 = ctl
        .query_one(
            "SELECT sum(quantity)::bigint FROM measured_usage WHERE resource = 'users'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(users, 3 * tenants as i64 + 1, "every user row counted");
    let floor_sql =
        "SELECT tenant_id, count(*), sum(pg_column_size(x.*)) FROM users x GROUP BY tenant_id";
    let floor: Vec<f64> = (0..RUNS)
        .map(|_| common::psql(&c.url("mbench_pooled"), &["-c", floor_sql]))
        .collect();
    // The alternative: one statement per table for all tenants, the context set by a lateral
    // `set_config` before each tenant's (correlated) scan. Correct only as long as the planner
    // keeps that order (OFFSET 0 keeps the subquery from being pulled up); timed for
    // comparison, as psql, with its result checked.
    let lp_pooled = format!("{} user=mbenchadmin", c.url("mbench_pooled"));
    let id_list = ids
        .iter()
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join(",");
    let lateral_sql = format!(
        "BEGIN;
        CREATE TEMP TABLE lateral_out ON COMMIT DROP AS
        SELECT t.id, s.n, s.b
        FROM unnest('{{{id_list}}}'::uuid[]) t(id)
        CROSS JOIN LATERAL (SELECT set_config('app.tenant_id', t.id::text, true) AS c OFFSET 0) c
        CROSS JOIN LATERAL (SELECT count(*) AS n, sum(pg_column_size(x.*)) AS b FROM users x
                            WHERE x.tenant_id = t.id AND c.c IS NOT NULL) s;
        DO $$ BEGIN IF (SELECT sum(n) FROM lateral_out) <> {expect}
           THEN RAISE 'lateral trick counted %', (SELECT sum(n) FROM lateral_out); END IF; END $$;
        ROLLBACK;",
        expect = 3 * tenants
    );
    let file = dir.path().join("lateral.sql");
    std::fs::write(&file, lateral_sql).unwrap();
    let lateral: Vec<f64> = (0..RUNS)
        .map(|_| common::psql(&lp_pooled, &["-f", file.to_str().unwrap()]))
        .collect();
    println!("usage refresh of {tenants} pooled tenants (+1), median of {RUNS} runs:");
    println!(
        "  lateral set_config trick (users only, psql, least-privilege admin): {:.0} ms",
        common::median(&lateral)
    );
    println!(
        "  least-privilege admin: {:.0} ms (p95 {:.0})",
        common::median(&lp),
        common::p95(&lp)
    );
    println!(
        "  superuser:             {:.0} ms (p95 {:.0})",
        common::median(&su),
        common::p95(&su)
    );
    println!(
        "  floor (one set-based query over users, psql, bypasses RLS): {:.0} ms",
        common::median(&floor)
    );
    clean(&mut pg);
}

/// Drops what an earlier run left (each statement on its own: DROP DATABASE cannot share one).
fn clean(pg: &mut postgres::Client) {
    for sql in [
        "DROP DATABASE IF EXISTS mbenchctl WITH (FORCE)",
        "DROP DATABASE IF EXISTS mbench_pooled WITH (FORCE)",
        "DROP ROLE IF EXISTS mbench_app",
        "DO $$ BEGIN IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'mbenchadmin') THEN
             DROP OWNED BY mbenchadmin; DROP ROLE mbenchadmin; END IF; END $$",
    ] {
        pg.batch_execute(sql).unwrap();
    }
}
