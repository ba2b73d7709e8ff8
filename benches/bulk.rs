//! Bulk onboarding benchmark: `tenantctl provision --file` against its floors.
//!
//! - pooled: BENCH_POOLED (default 40; the size is 1000) free-tier tenants at the
//!   default concurrency (2 × cores), against the bcrypt floor: N bcrypt hashes at cost 12 on
//!   `cores` threads, timed (beside it, the computed N × one hash / cores, one hash timed
//!   alone: on a machine others share, the timed floor is the one that saw the same cores).
//! - siloed: BENCH_SILOED (default 20; the size is 200) premium tenants at
//!   BENCH_SILO_CONCURRENCY (default 4), against a psql loop creating the same databases in as
//!   many concurrent psql sessions: per tenant `CREATE ROLE … LOGIN`, `CREATE DATABASE … OWNER
//!   … TEMPLATE` a copy of tenantctl's template (the tenant schema, plus pgcrypto), and the
//!   owner's row in `users` with its password hashed at bcrypt cost 12 by pgcrypto's
//!   `crypt(…, gen_salt('bf', 12))` in the server. What tenantctl does beyond that (the control
//!   records, journal, quotas, buckets, audit, the password file) is what the ratio measures.
//!   Beside it, the bare loop (`CREATE ROLE` + an empty `CREATE DATABASE`, no owner), whose
//!   ratio mostly shows what 200 bcrypt hashes cost: they are not optional for tenantctl.
//!
//! Each side runs BENCH_REPS times (default 2), alternating, on fresh names; medians printed.
//! `cargo bench --bench bulk`.

#[path = "../tests/support/cluster.rs"]
#[allow(dead_code)]
mod cluster;
#[allow(dead_code)]
mod common;

use std::fmt::Write as _;
use std::time::Instant;

fn main() {
    if common::listing() {
        return;
    }
    let pooled_n = common::count("BENCH_POOLED", 40);
    let siloed_n = common::count("BENCH_SILOED", 20);
    let silo_conc = common::count("BENCH_SILO_CONCURRENCY", 4);
    let reps = common::count("BENCH_REPS", 2);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let c = cluster::cluster();
    let root = tempfile::Builder::new()
        .prefix("tenantctl-bulkbench-")
        .tempdir()
        .unwrap();
    let root = root.path();
    let mut pg = postgres::Client::connect(&c.url("postgres"), postgres::NoTls).unwrap();
    common::drop_leftovers(&mut pg, "bulkctl", &["bk_", "bkf_"]);
    let url = c.url("bulkctl");
    let buckets = root.join("buckets");
    let envs = [("TENANTCTL_STORAGE_ROOT", buckets.to_str().unwrap())];
    common::tenantctl(&url, "bk_", &envs, &["init"]);
    // Warm-up: the pooled database and its schema exist before the measured runs.
    let warm = root.join("warm.csv");
    std::fs::write(&warm, "slug,tier,name,owner_email\nwarm-p,free,,\n").unwrap();
    common::tenantctl(
        &url,
        "bk_",
        &envs,
        &["provision", "--file", warm.to_str().unwrap()],
    );

    let file = |name: &str, prefix: &str, n: usize, tier: &str| {
        let path = root.join(name);
        let mut text = "slug,tier,name,owner_email\n".to_owned();
        for i in 0..n {
            writeln!(text, "{prefix}{i},{tier},,").unwrap();
        }
        std::fs::write(&path, text).unwrap();
        path
    };
    let bcrypt_ms = || {
        let mut v: Vec<f64> = (0..5)
            .map(|_| {
                let t0 = Instant::now();
                bcrypt::hash("correct horse battery staple", 12).unwrap();
                t0.elapsed().as_secs_f64() * 1000.0
            })
            .collect();
        v.sort_by(|a, b| a.partial_cmp(b).unwrap());
        v[2]
    };

    // N hashes on `cores` threads; the wall time in ms.
    let hash_all = move |n: usize| {
        let next = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let t0 = Instant::now();
        let threads: Vec<_> = (0..cores)
            .map(|_| {
                let next = next.clone();
                std::thread::spawn(move || {
                    while next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < n {
                        bcrypt::hash("correct horse battery staple", 12).unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        t0.elapsed().as_secs_f64() * 1000.0
    };
    let (mut pooled, mut pooled_floor, mut pooled_computed, mut siloed, mut siloed_floor) =
        (vec![], vec![], vec![], vec![], vec![]);
    let mut siloed_same_floor = vec![];
    for rep in 0..reps {
        let f = file(
            &format!("pooled{rep}.csv"),
            &format!("p{rep}x"),
            pooled_n,
            "free",
        );
        pooled.push(common::tenantctl(
            &url,
            "bk_",
            &envs,
            &["provision", "--file", f.to_str().unwrap()],
        ));
        pooled_floor.push(hash_all(pooled_n));
        pooled_computed.push(bcrypt_ms() * pooled_n as f64 / cores as f64);

        let f = file(
            &format!("siloed{rep}.csv"),
            &format!("s{rep}x"),
            siloed_n,
            "premium",
        );
        let conc = silo_conc.to_string();
        siloed.push(common::tenantctl(
            &url,
            "bk_",
            &envs,
            &[
                "provision",
                "--file",
                f.to_str().unwrap(),
                "--concurrency",
                &conc,
            ],
        ));
        // The floor, once the first run made tenantctl's template: a copy of it with pgcrypto,
        // so that a plain psql loop can create the same databases tenantctl does.
        if rep == 0 {
            let tpl = "bk_template1";
            pg.batch_execute("DROP DATABASE IF EXISTS bkf_tpl").unwrap();
            pg.batch_execute(&format!("CREATE DATABASE bkf_tpl TEMPLATE {tpl}"))
                .unwrap();
            let mut t = postgres::Client::connect(&c.url("bkf_tpl"), postgres::NoTls).unwrap();
            t.batch_execute("CREATE EXTENSION pgcrypto").unwrap();
        }
        // The psql floors: silo_conc sessions at once, each creating its share of databases.
        // `same`: the databases tenantctl makes (the role, the database copied from the tenant
        // schema, the owner row with its password hashed at bcrypt cost 12, by pgcrypto in the
        // server); else the bare loop (CREATE ROLE + CREATE DATABASE, empty, no owner).
        for same in [true, false] {
            let t0 = Instant::now();
            let children: Vec<_> = (0..silo_conc)
                .map(|k| {
                    let mut script = String::new();
                    for i in (k..siloed_n).step_by(silo_conc) {
                        let name = format!("bkf_{rep}_{}_{i}", u8::from(same));
                        if same {
                            writeln!(
                                script,
                                "CREATE ROLE {name} LOGIN;\nCREATE DATABASE {name} OWNER {name} TEMPLATE bkf_tpl;\n\\c {name}\n\
                                 INSERT INTO users (tenant_id, email, password_hash, full_name, role) \
                                 VALUES (gen_random_uuid(), 'owner@{name}.example', crypt('{name}', gen_salt('bf', 12)), '', 'owner');"
                            )
                            .unwrap();
                        } else {
                            writeln!(
                                script,
                                "CREATE ROLE {name} LOGIN;\nCREATE DATABASE {name} OWNER {name};"
                            )
                            .unwrap();
                        }
                    }
                    let path = root.join(format!("floor{rep}_{same}_{k}.sql"));
                    std::fs::write(&path, script).unwrap();
                    std::process::Command::new(
                        tenantctl::cluster::pg_bindir(None).unwrap().join("psql"),
                    )
                    .args([
                        "-X",
                        "-q",
                        "-v",
                        "ON_ERROR_STOP=1",
                        "-d",
                        &c.url("postgres"),
                        "-f",
                    ])
                    .arg(&path)
                    .stdout(std::process::Stdio::null())
                    .spawn()
                    .unwrap()
                })
                .collect();
            for mut child in children {
                assert!(child.wait().unwrap().success());
            }
            let ms = t0.elapsed().as_secs_f64() * 1000.0;
            if same {
                siloed_same_floor.push(ms);
            } else {
                siloed_floor.push(ms);
            }
        }
    }
    let (p, pf, pc, s, sf, sh) = (
        common::median(&pooled),
        common::median(&pooled_floor),
        common::median(&pooled_computed),
        common::median(&siloed),
        common::median(&siloed_floor),
        common::median(&siloed_same_floor),
    );
    println!("bulk onboarding (provision --file), medians of {reps}, {cores} cores");
    println!(
        "  pooled  {pooled_n:>5} tenants  tenantctl {p:>8.0} ms   floor: {pooled_n} bcrypt hashes on {cores} threads {pf:>8.0} ms   ratio {:.2} (target <= 1.2)   [computed N x one hash / cores: {pc:.0} ms, ratio {:.2}]",
        p / pf,
        p / pc
    );
    println!(
        "  siloed  {siloed_n:>5} tenants  tenantctl {s:>8.0} ms   floor: psql creating the same databases (role, copy of the tenant schema, owner hashed at cost 12 by pgcrypto), {silo_conc} sessions {sh:>8.0} ms   ratio {:.2} (target <= 1.2)",
        s / sh
    );
    println!(
        "                                              bare loop: CREATE ROLE + empty CREATE DATABASE, no owner, {silo_conc} sessions {sf:>8.0} ms   ratio {:.2} (bcrypt alone is {siloed_n} x {:.0} ms / {cores} cores = {:.0} ms of it)",
        s / sf,
        bcrypt_ms(),
        bcrypt_ms() * siloed_n as f64 / cores as f64
    );
    // Where a siloed tenant's time goes: each journaled step's median, as its run timed it
    // (the step's work, under the concurrency above, without its journal entry).
    let mut ctl = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    let rows = ctl
        .query(
            "SELECT j.name, 0, percentile_cont(0.5) WITHIN GROUP (ORDER BY j.duration_ms)
               FROM provisioning_journal j JOIN tenants t ON t.id = j.tenant_id
              WHERE t.tier = 'premium'
              GROUP BY j.name ORDER BY min(j.completed_at)",
            &[],
        )
        .unwrap();
    let steps: Vec<String> = rows
        .iter()
        .map(|r| format!("{} {:.0}", r.get::<_, String>(0), r.get::<_, f64>(2)))
        .collect();
    println!(
        "  siloed, median ms per journaled step: {}",
        steps.join(", ")
    );
}
