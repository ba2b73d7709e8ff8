//! Scaling curves: how the cost of a command grows with the fleet. Per-tenant (or per-silo)
//! cost at each size is printed beside the smallest size's; a per-tenant cost that grows with
//! the fleet is superlinear and a bug.
//!
//! - provision: one more pooled tenant (a whole process) when the fleet has 1 and then each of
//!   SCALE_TENANTS tenants (default "1000,5000"; the sizes: 1000 and 5000 for
//!   provisioning, "1000,10000,50000" for the fleet commands);
//! - `list -o json`, `bill --dry-run`, `usage refresh` at each of SCALE_TENANTS;
//! - `migrate --concurrency 4` of one tenant migration over each of SCALE_SILOS siloed tenants
//!   (default "10,30"; the issue's: "50,200,1000"); the migration is tenant V4 (re-runnable),
//!   made pending again by deleting its history row in every silo.
//!
//! Pooled fleets are seeded as rows by SQL (tenants, quotas), as the other benchmarks do; silos
//! are provisioned by `provision --file`. `cargo bench --bench scaling`.

#[path = "../tests/support/cluster.rs"]
#[allow(dead_code)]
mod cluster;
#[allow(dead_code)]
mod common;

use std::fmt::Write as _;
use std::process::{Command, Stdio};
use std::time::Instant;

fn sizes(name: &str, default: &str) -> Vec<usize> {
    std::env::var(name)
        .unwrap_or_else(|_| default.to_owned())
        .split(',')
        .map(|s| s.trim().parse().unwrap())
        .collect()
}

/// Runs tenantctl; the wall time in ms and whether it exited 0 (`usage refresh` exits 1 when a
/// seeded tenant has nothing to measure in some place, after storing the rest).
fn run(url: &str, root: &std::path::Path, args: &[&str]) -> (f64, bool) {
    let t0 = Instant::now();
    let out = Command::new(common::BIN)
        .args(args)
        .arg("--quiet")
        .env("TENANTCTL_DATABASE_URL", url)
        .env("TENANTCTL_NAME_PREFIX", "sc_")
        .env("TENANTCTL_STORAGE_ROOT", root.join("buckets"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let ms = t0.elapsed().as_secs_f64() * 1000.0;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        eprintln!("tenantctl {args:?}: {}", err.lines().next().unwrap_or(""));
    }
    (ms, out.status.success())
}

fn main() {
    if common::listing() {
        return;
    }
    let tenant_sizes = sizes("SCALE_TENANTS", "1000,5000");
    let silo_sizes = sizes("SCALE_SILOS", "10,30");
    let c = cluster::cluster();
    let root = tempfile::Builder::new()
        .prefix("tenantctl-scale-")
        .tempdir()
        .unwrap();
    let root = root.path();
    let mut pg = postgres::Client::connect(&c.url("postgres"), postgres::NoTls).unwrap();
    common::drop_leftovers(&mut pg, "scalectl", &["sc_"]);
    let url = c.url("scalectl");
    let pw = root.join("pw");
    let pw = pw.to_str().unwrap();
    assert!(run(&url, root, &["init"]).1);
    let provision = |slug: &str| {
        let (ms, ok) = run(
            &url,
            root,
            &["provision", slug, "--tier", "free", "--password-file", pw],
        );
        assert!(ok, "provision {slug}");
        ms
    };
    provision("first");
    let mut ctl = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    let seed = |ctl: &mut postgres::Client, from: usize, to: usize| {
        ctl.batch_execute(&format!(
            "INSERT INTO tenants (slug, name, tier, isolation, status, database_name, role_name, owner_email, owner_name, created_at, activated_at)
             SELECT 'seed-' || i, 'S' || i, 'free', 'pooled', 'active', 'sc_pooled', 'sc_app', 'o@x.io', 'O', '2026-09-01', '2026-09-01'
             FROM generate_series({from}, {to}) i;
             INSERT INTO quotas (tenant_id, resource, limit_value, hard)
             SELECT t.id, r.resource, r.l, true FROM tenants t,
               (VALUES ('users', 1), ('storage_mb', 100), ('sandboxes', 1), ('compute_hours', 1), ('api_requests', 1000)) r(resource, l)
             WHERE t.slug LIKE 'seed-%' AND NOT EXISTS (SELECT 1 FROM quotas q WHERE q.tenant_id = t.id);
             -- The activation history billing reads (as provisioning writes it), so that `bill`
             -- bills every seeded tenant.
             INSERT INTO audit_log (at, actor, action, tenant_id, slug, from_status, to_status, details)
             SELECT '2026-09-01', 'bench', a.action, t.id, t.slug, a.f, a.t, jsonb_build_object('tier', 'free')
             FROM tenants t, (VALUES ('provision.start', NULL, 'provisioning'), ('provision', 'provisioning', 'active')) a(action, f, t)
             WHERE t.slug IN (SELECT 'seed-' || i FROM generate_series({from}, {to}) i)
             ORDER BY t.id, a.action DESC;
             ANALYZE;"
        ))
        .unwrap();
    };
    let count = |ctl: &mut postgres::Client| -> usize {
        let n: i64 = ctl
            .query_one("SELECT count(*) FROM tenants", &[])
            .unwrap()
            .get(0);
        n as usize
    };
    let mut out = String::new();
    let second = provision("second");
    writeln!(out, "provision one more pooled tenant (whole process, ms)").unwrap();
    writeln!(out, "  fleet {:>6}: {second:>8.0}", 1).unwrap();
    let mut fleet_rows = Vec::new();
    for &size in &tenant_sizes {
        let have = count(&mut ctl);
        if size > have {
            seed(&mut ctl, have, size - 1);
        }
        let n = count(&mut ctl);
        let p = provision(&format!("at-{size}"));
        writeln!(
            out,
            "  fleet {n:>6}: {p:>8.0}   ratio to fleet 1: {:.2}",
            p / second
        )
        .unwrap();
        let (list, _) = run(&url, root, &["list", "-o", "json"]);
        let (bill, _) = run(
            &url,
            root,
            &["bill", "--period", "2026-10", "--dry-run", "-o", "json"],
        );
        // The dry run prices every tenant of the fleet (it writes nothing).
        let priced = Command::new(common::BIN)
            .args(["bill", "--period", "2026-10", "--dry-run", "-o", "json"])
            .env("TENANTCTL_DATABASE_URL", &url)
            .env("TENANTCTL_NAME_PREFIX", "sc_")
            .env("TENANTCTL_STORAGE_ROOT", root.join("buckets"))
            .output()
            .unwrap();
        let priced: serde_json::Value = serde_json::from_slice(&priced.stdout).unwrap();
        let priced = priced["invoices"].as_array().map_or(0, Vec::len);
        // Every seeded tenant was active all October; the provisioned ones started in December.
        let seeded: i64 = ctl
            .query_one("SELECT count(*) FROM tenants WHERE slug LIKE 'seed-%'", &[])
            .unwrap()
            .get(0);
        assert_eq!(
            priced as i64, seeded,
            "bill --dry-run priced {priced} of {n} tenants"
        );
        let (refresh, refreshed) = run(&url, root, &["usage", "refresh"]);
        fleet_rows.push((n, list, bill, refresh, refreshed));
    }
    writeln!(out, "fleet commands (whole process, ms; µs per tenant)").unwrap();
    let base = fleet_rows[0];
    for &(n, list, bill, refresh, ok) in &fleet_rows {
        let per = |ms: f64| ms * 1000.0 / n as f64;
        writeln!(
            out,
            "  {n:>6} tenants: list {list:>7.0} ({:>6.1})  bill --dry-run {bill:>7.0} ({:>6.1})  usage refresh {refresh:>7.0} ({:>6.1}){}   per-tenant ratio to {}: list {:.2} bill {:.2} refresh {:.2}",
            per(list),
            per(bill),
            per(refresh),
            if ok { "" } else { " [exit 1]" },
            base.0,
            per(list) / (base.1 * 1000.0 / base.0 as f64),
            per(bill) / (base.2 * 1000.0 / base.0 as f64),
            per(refresh) / (base.3 * 1000.0 / base.0 as f64),
        )
        .unwrap();
    }

    // Silos: provisioned by the bulk path, then one migration made pending in each.
    writeln!(out, "migrate --concurrency 4 (ms; ms per silo)").unwrap();
    let mut made = 0;
    let mut first_per = None;
    for &silos in &silo_sizes {
        let path = root.join(format!("silos{silos}.csv"));
        let mut text = "slug,tier,name,owner_email\n".to_owned();
        for i in made..silos {
            writeln!(text, "silo{i:05},premium,,").unwrap();
        }
        std::fs::write(&path, text).unwrap();
        let (_, ok) = run(
            &url,
            root,
            &[
                "provision",
                "--file",
                path.to_str().unwrap(),
                "--password-file",
                pw,
            ],
        );
        assert!(ok, "provisioning {silos} silos");
        made = silos;
        for i in 0..silos {
            let mut db =
                postgres::Client::connect(&c.url(&format!("sc_silo{i:05}")), postgres::NoTls)
                    .unwrap();
            db.execute("DELETE FROM refinery_schema_history WHERE version = 4", &[])
                .unwrap();
        }
        let (ms, ok) = run(&url, root, &["migrate", "--concurrency", "4"]);
        let per = ms / silos as f64;
        let base = *first_per.get_or_insert(per);
        writeln!(
            out,
            "  {silos:>5} silos: {ms:>8.0} ({per:>6.1}){}   per-silo ratio to {}: {:.2}",
            if ok { "" } else { " [failed]" },
            silo_sizes[0],
            per / base
        )
        .unwrap();
    }
    print!("{out}");
}
