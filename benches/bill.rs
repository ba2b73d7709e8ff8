//! Billing benchmark: `tenantctl bill` for 10,000 premium tenants with 1,000,000 usage events
//! in the period (tenants, histories and events are generated with SQL), against the floor: one
//! hand-written `INSERT … SELECT` that aggregates the same events into invoices (base price +
//! overage per resource, lines as JSON) in psql. Also the dry run and the no-op re-run.
//!
//! `cargo bench --bench bill` (BENCH_TENANTS=10000, BENCH_EVENTS=1000000 by default).

#[path = "../tests/support/cluster.rs"]
#[allow(dead_code)]
mod cluster;
#[allow(dead_code)]
mod common;

use std::time::Instant;

fn run(url: &str, args: &[&str]) -> f64 {
    common::tenantctl(url, "bbench_", &[], args)
}

fn main() {
    if common::listing() {
        return;
    }
    let tenants: usize = common::count("BENCH_TENANTS", 10_000);
    let events: usize = common::count("BENCH_EVENTS", 1_000_000);
    let c = cluster::cluster();
    let mut pg = postgres::Client::connect(&c.url("postgres"), postgres::NoTls).unwrap();
    pg.batch_execute("DROP DATABASE IF EXISTS bbench_ctl WITH (FORCE)")
        .unwrap();
    let url = c.url("bbench_ctl");
    run(&url, &["list"]); // creates and migrates the control database

    let mut ctl = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    let t0 = Instant::now();
    ctl.batch_execute(&format!(
        "INSERT INTO tenants (slug, name, tier, isolation, status, database_name, role_name, owner_email, owner_name, created_at)
         SELECT 'tenant-' || i, 'T' || i, 'premium', 'siloed', 'active', 'bbench_t' || i, 'bbench_t' || i, 'o@x.io', 'O', '2026-08-01'
         FROM generate_series(1, {tenants}) i;
         INSERT INTO audit_log (at, actor, action, tenant_id, slug, from_status, to_status, details)
         SELECT '2026-08-01', 'bench', a.action, t.id, t.slug, a.f, a.t, jsonb_build_object('tier', 'premium')
         FROM tenants t, (VALUES ('provision.start', NULL, 'provisioning'), ('provision', 'provisioning', 'active')) a(action, f, t)
         ORDER BY t.id, a.action DESC;
         INSERT INTO usage_events (tenant_id, key, resource, quantity, at, period)
         SELECT t.id, 'e' || g, (ARRAY['api_requests', 'api_requests', 'compute_hours', 'sandboxes'])[1 + g % 4],
                1 + g % 400, timestamptz '2026-09-01' + (g % 29) * interval '1 day', DATE '2026-09-01'
         FROM generate_series(1, {events}) g
         JOIN tenants t ON t.slug = 'tenant-' || (1 + g % {tenants});
         INSERT INTO usage_totals (tenant_id, resource, period, quantity)
         SELECT tenant_id, resource, period, sum(quantity) FROM usage_events GROUP BY 1, 2, 3;
         ANALYZE;
         CREATE TABLE floor_invoices (tenant_id uuid, period date, total_cents bigint, lines jsonb, UNIQUE (tenant_id, period));"
    ))
    .unwrap();
    eprintln!(
        "generated {tenants} tenants and {events} events in {:.1} s",
        t0.elapsed().as_secs_f64()
    );

    let dry = run(
        &url,
        &["bill", "--period", "2026-09", "--dry-run", "-o", "json"],
    );
    let real = run(&url, &["bill", "--period", "2026-09"]);
    let again = run(&url, &["bill", "--period", "2026-09"]);
    let n: i64 = ctl
        .query_one("SELECT count(*) FROM invoices", &[])
        .unwrap()
        .get(0);
    assert_eq!(n as usize, tenants);

    let floor_sql = "INSERT INTO floor_invoices (tenant_id, period, total_cents, lines)
        SELECT t.id, DATE '2026-09-01', 49900 + coalesce(sum(o.cents), 0),
               jsonb_build_array(jsonb_build_object('base', 49900))
                 || coalesce(jsonb_agg(jsonb_build_object('resource', o.resource, 'units', o.over, 'cents', o.cents)) FILTER (WHERE o.over > 0), '[]')
        FROM tenants t
        LEFT JOIN (
            SELECT e.tenant_id, e.resource, greatest(sum(e.quantity) - l.included, 0) AS over,
                   round(greatest(sum(e.quantity) - l.included, 0) * l.price * 100)::bigint AS cents
            FROM usage_events e
            JOIN (VALUES ('api_requests', 10000, 0.001), ('compute_hours', 10, 2.00), ('sandboxes', 5, 25.00)) l(resource, included, price) USING (resource)
            WHERE e.period = DATE '2026-09-01'
            GROUP BY e.tenant_id, e.resource, l.included, l.price
        ) o ON o.tenant_id = t.id
        GROUP BY t.id";
    let floor = common::psql(&url, &["-c", floor_sql]);
    // Same money both ways.
    let diff: i64 = ctl
        .query_one("SELECT count(*) FROM invoices i JOIN floor_invoices f USING (tenant_id, period) WHERE i.total_cents <> f.total_cents", &[])
        .unwrap()
        .get(0);

    println!("billing {tenants} tenants with {events} usage events (wall time)");
    println!("  tenantctl bill             {real:>7.0} ms");
    println!("  tenantctl bill --dry-run   {dry:>7.0} ms");
    println!("  tenantctl bill (re-run)    {again:>7.0} ms  (already billed: nothing done)");
    println!("  INSERT … SELECT floor      {floor:>7.0} ms");
    println!("  ratio bill / floor {:.2} (target <= 2); invoices whose totals differ from the floor's: {diff}", real / floor);
    drop(ctl);
    pg.batch_execute("DROP DATABASE IF EXISTS bbench_ctl WITH (FORCE)")
        .unwrap();
}
