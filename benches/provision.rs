//! Provisioning benchmark: N pooled and N siloed tenants provisioned by the `tenantctl` binary
//! (a whole CLI process each, as an operator or a script runs it), against the floor: the same
//! work written by hand as plain SQL in one psql session (record, role, database, schema (every
//! tenant migration),
//! grants, a bcrypt hash at the same cost via pgcrypto, owner row, quotas, bucket directories,
//! activation with journal and audit rows). Prints median and p95 ms per tenant and the ratios.
//!
//! `cargo bench --bench provision` (BENCH_N=20 by default). It starts its own throwaway
//! cluster, like the tests, or uses TENANTCTL_TEST_DATABASE_URL.

#[path = "../tests/support/cluster.rs"]
#[allow(dead_code)]
mod cluster;
#[allow(dead_code)]
mod common;

use std::fmt::Write as _;
use std::path::Path;

fn stats(ms: &[f64]) -> (f64, f64) {
    (common::median(ms), common::p95(ms))
}

fn tenantctl(url: &str, root: &Path, args: &[&str]) -> f64 {
    let mut all = args.to_vec();
    let pw = root.join("pw");
    all.extend(["--password-file", pw.to_str().unwrap()]);
    let buckets = root.join("buckets");
    common::tenantctl(
        url,
        "bench_",
        &[("TENANTCTL_STORAGE_ROOT", buckets.to_str().unwrap())],
        &all,
    )
}

fn admin(url: &str) -> postgres::Client {
    postgres::Client::connect(url, postgres::NoTls).unwrap()
}

/// The floor's work for one tenant, as one psql session would do it by hand.
fn floor_script(s: &mut String, slug: &str, siloed: bool, root: &Path, marks: &Path) {
    let password: String = (0..24)
        .map(|i| (b'a' + ((i * 7 + slug.len()) % 26) as u8) as char)
        .collect();
    let (db, role, tier) = if siloed {
        (format!("floor_{slug}"), format!("floor_{slug}"), "premium")
    } else {
        ("floor_pooled".to_owned(), "floor_app".to_owned(), "free")
    };
    let iso = if siloed { "siloed" } else { "pooled" };
    let schema = concat!(
        include_str!("../sql/tenant/V1__tenant_schema.sql"),
        include_str!("../sql/tenant/V2__suspensions.sql")
    );
    let limits = if siloed {
        "(10000,10,5,1000,5)"
    } else {
        "(1000,1,1,100,1)"
    };
    let _ = writeln!(s, "\\! date +%s%N >> {}", marks.display());
    let _ = writeln!(
        s,
        "BEGIN;
INSERT INTO tenants (slug, name, tier, isolation, database_name, role_name, owner_email, owner_name)
  VALUES ('{slug}', '{slug}', '{tier}', '{iso}', '{db}', '{role}', 'owner@{slug}.localhost', 'Owner') RETURNING id AS tid \\gset
INSERT INTO provisioning_journal VALUES (:'tid', 'record_tenant', 'record tenant', 0);
INSERT INTO audit_log (actor, action, tenant_id, slug, to_status) VALUES ('bench', 'provision.start', :'tid', '{slug}', 'provisioning');
COMMIT;"
    );
    if siloed {
        let _ = writeln!(
            s,
            "CREATE ROLE \"{role}\" LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE;
CREATE DATABASE \"{db}\";
REVOKE ALL ON DATABASE \"{db}\" FROM PUBLIC;
GRANT CONNECT ON DATABASE \"{db}\" TO \"{role}\";"
        );
    }
    let _ = writeln!(
        s,
        "INSERT INTO provisioning_journal VALUES (:'tid', 'create_database', 'create database', 0);
SELECT crypt('{password}', gen_salt('bf', 12)) AS hash \\gset
\\c {db}"
    );
    if siloed {
        let _ = writeln!(
            s,
            "BEGIN;\n{schema}\nCOMMIT;
GRANT USAGE ON SCHEMA public TO \"{role}\";
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO \"{role}\";"
        );
    }
    let _ = writeln!(
        s,
        "BEGIN;
SELECT set_config('app.tenant_id', :'tid', true) \\gset
INSERT INTO users (tenant_id, email, password_hash, full_name, role) VALUES (:'tid', 'owner@{slug}.localhost', :'hash', 'Owner', 'owner');
COMMIT;
\\c floor_ctl
INSERT INTO provisioning_journal VALUES (:'tid', 'apply_schema', 'apply schema', 0), (:'tid', 'create_owner', 'create owner', 0);
INSERT INTO quotas (tenant_id, resource, limit_value)
  SELECT :'tid', r, l FROM unnest(ARRAY['api_requests','compute_hours','sandboxes','storage_mb','users'], ARRAY[{limits}]::bigint[]) AS q(r, l);
INSERT INTO provisioning_journal VALUES (:'tid', 'seed_quotas', 'seed quotas', 0);
\\! mkdir -p {root}/{slug}-uploads {root}/{slug}-assets {root}/{slug}-backups
INSERT INTO provisioning_journal VALUES (:'tid', 'create_buckets', 'create buckets', 0);
BEGIN;
UPDATE tenants SET status = 'active', activated_at = now() WHERE id = :'tid';
INSERT INTO audit_log (actor, action, tenant_id, slug, from_status, to_status) VALUES ('bench', 'provision', :'tid', '{slug}', 'provisioning', 'active');
INSERT INTO provisioning_journal VALUES (:'tid', 'activate', 'activate', 0);
COMMIT;",
        root = root.join("floor-buckets").display(),
        limits = limits.trim_matches(|c| c == '(' || c == ')'),
    );
    let _ = writeln!(s, "\\! date +%s%N >> {}", marks.display());
}

fn floor(c: &cluster::Cluster, n: usize, siloed: bool, root: &Path) -> Vec<f64> {
    let kind = if siloed { "s" } else { "p" };
    let marks = root.join(format!("marks-{kind}"));
    let mut script = String::new();
    for i in 0..n {
        floor_script(&mut script, &format!("f{kind}{i}"), siloed, root, &marks);
    }
    let file = root.join(format!("floor-{kind}.sql"));
    std::fs::write(&file, script).unwrap();
    common::psql(&c.url("floor_ctl"), &["-f", file.to_str().unwrap()]);
    let stamps: Vec<u128> = std::fs::read_to_string(&marks)
        .unwrap()
        .lines()
        .map(|l| l.trim().parse().unwrap())
        .collect();
    stamps
        .chunks(2)
        .map(|w| (w[1] - w[0]) as f64 / 1e6)
        .collect()
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo test --benches` lists; nothing to list
    }
    let n: usize = common::count("BENCH_N", 20);
    let c = cluster::cluster();
    let root = tempfile::Builder::new()
        .prefix("tenantctl-bench-")
        .tempdir()
        .unwrap();
    let root = root.path();

    // Fresh state on a reused server.
    let mut pg = admin(&c.url("postgres"));
    for db in ["bench_ctl", "floor_ctl"] {
        pg.batch_execute(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
            .unwrap();
    }
    for row in pg.query("SELECT datname FROM pg_database WHERE datname LIKE 'bench\\_%' OR datname LIKE 'floor\\_%'", &[]).unwrap() {
        let db: String = row.get(0);
        pg.batch_execute(&format!("DROP DATABASE \"{db}\" WITH (FORCE)")).unwrap();
    }
    for row in pg.query("SELECT rolname FROM pg_roles WHERE rolname LIKE 'bench\\_%' OR rolname LIKE 'floor\\_%'", &[]).unwrap() {
        let r: String = row.get(0);
        pg.batch_execute(&format!("DROP ROLE \"{r}\"")).unwrap();
    }

    // tenantctl: a warm-up pair creates the control and pooled databases (not measured).
    let url = c.url("bench_ctl");
    tenantctl(&url, root, &["provision", "warm-p", "--tier", "free"]);
    tenantctl(&url, root, &["provision", "warm-s", "--tier", "premium"]);
    let pooled: Vec<f64> = (0..n)
        .map(|i| {
            tenantctl(
                &url,
                root,
                &["provision", &format!("bp{i}"), "--tier", "free"],
            )
        })
        .collect();
    let siloed: Vec<f64> = (0..n)
        .map(|i| {
            tenantctl(
                &url,
                root,
                &["provision", &format!("bs{i}"), "--tier", "premium"],
            )
        })
        .collect();

    // The floor's one-time setup: the same control schema, pgcrypto, the pooled database.
    for sql in [
        "CREATE DATABASE floor_ctl",
        "CREATE DATABASE floor_pooled",
        "CREATE ROLE floor_app LOGIN",
    ] {
        pg.batch_execute(sql).unwrap();
    }
    let mut ctl = admin(&c.url("floor_ctl"));
    ctl.batch_execute(include_str!("../sql/control/V1__control_plane.sql"))
        .unwrap();
    ctl.batch_execute("CREATE EXTENSION pgcrypto").unwrap();
    let mut pool = admin(&c.url("floor_pooled"));
    pool.batch_execute(include_str!("../sql/tenant/V1__tenant_schema.sql"))
        .unwrap();
    pool.batch_execute(
        "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO floor_app",
    )
    .unwrap();
    let floor_pooled = floor(c, n, false, root);
    let floor_siloed = floor(c, n, true, root);

    println!("provisioning, {n} tenants each, ms per tenant (median / p95)");
    let rows = [
        ("pooled", pooled, floor_pooled, 1.5),
        ("siloed", siloed, floor_siloed, 1.2),
    ];
    for (kind, tool, floor, target) in rows {
        let (tm, tp) = stats(&tool);
        let (fm, fp) = stats(&floor);
        println!(
            "  {kind}: tenantctl {tm:.1} / {tp:.1}   psql floor {fm:.1} / {fp:.1}   ratio of medians {:.2} (target <= {target})",
            tm / fm
        );
    }
}
