//! Fleet benchmark (issue 11): placing tenants on three servers against one, side by side,
//! through the binary only (`init`, `server add`, `server set`, `provision --file`, `server
//! list -o json`).
//!
//! - pooled: BENCH_FLEET_POOLED (default 1000, the size) free tenants by `provision
//!   --file tenants.csv --concurrency BENCH_CONCURRENCY` (default 2 × cores) onto a fleet of
//!   three servers (`main`, the control database's, and `s2`, `s3` added with `server add
//!   --pooled`), and the same file onto `main` alone. Printed: how many landed on each server,
//!   ms per tenant for each, the ratio three/one, and the bcrypt floor (N × one cost-12 hash /
//!   cores) that bounds both.
//! - siloed: BENCH_FLEET_SILOED (default 60) premium tenants at BENCH_SILO_CONCURRENCY
//!   (default 4) onto three servers whose capacities add up to N (N/2 on `main`, N/3 on `s2`,
//!   the rest on `s3`), so that placement by most capacity left spreads them by capacity,
//!   against one server.
//!
//! Each side runs on fresh control databases, BENCH_REPS times (default 1), alternating one
//! server and three; medians printed. Before each measured pooled run three tenants are
//! provisioned (untimed), so every pooled server has its pooled database. Three throwaway
//! clusters (the tests' `main`, `s2` and `s3`: fsync off, unix sockets), tenantctl as their
//! superuser. `cargo bench --bench fleet`; a quick run:
//! `BENCH_FLEET_POOLED=100 BENCH_FLEET_SILOED=30 BENCH_REPS=3 cargo bench --bench fleet`.

#[path = "../tests/support/cluster.rs"]
#[allow(dead_code)]
mod cluster;
#[allow(dead_code)]
mod common;
#[path = "../tests/support/fleet.rs"]
#[allow(dead_code)]
mod fleet;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use tenantctl::cluster::SUPERUSER;

/// One setup: a control database on `main` with its name prefix and bucket root, and the
/// servers it has.
struct Setup {
    control: String,
    prefix: String,
    storage: String,
    /// `(name, URL)` of the servers added to `main`.
    added: Vec<(&'static str, String)>,
}

impl Setup {
    fn url(&self) -> String {
        cluster::cluster().url(&self.control)
    }

    fn tenantctl(&self, args: &[&str]) -> f64 {
        let envs = [("TENANTCTL_STORAGE_ROOT", self.storage.as_str())];
        common::tenantctl(&self.url(), &self.prefix, &envs, args)
    }

    /// Tenants per server, from `server list -o json`.
    fn tenants(&self) -> BTreeMap<String, i64> {
        let out = Command::new(common::BIN)
            .args(["server", "list", "-o", "json"])
            .env("TENANTCTL_DATABASE_URL", self.url())
            .env("TENANTCTL_NAME_PREFIX", &self.prefix)
            .env("TENANTCTL_STORAGE_ROOT", &self.storage)
            .stderr(Stdio::inherit())
            .output()
            .unwrap();
        assert!(out.status.success(), "server list");
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        v.as_array()
            .unwrap()
            .iter()
            .map(|s| {
                (
                    s["name"].as_str().unwrap().to_owned(),
                    s["tenants"].as_i64().unwrap(),
                )
            })
            .collect()
    }

    /// Drops what an earlier run left on every server, then `init` and `server add`.
    fn fresh(&self, extra_args: &[&[&str]]) {
        self.clean();
        self.tenantctl(&["init"]);
        for (i, (name, url)) in self.added.iter().enumerate() {
            let mut args = vec!["server", "add", name, url.as_str()];
            args.extend_from_slice(extra_args.get(i).copied().unwrap_or(&[]));
            self.tenantctl(&args);
        }
    }

    fn clean(&self) {
        let c = cluster::cluster();
        let mut pg = postgres::Client::connect(&c.url("postgres"), postgres::NoTls).unwrap();
        common::drop_leftovers(&mut pg, &self.control, &[&self.prefix]);
        for x in fleet::extras() {
            common::drop_leftovers(&mut x.superuser("postgres"), &self.control, &[&self.prefix]);
        }
        let _ = std::fs::remove_dir_all(&self.storage);
    }
}

/// A `slug,tier,name,owner_email` file of `n` tenants `{tag}{i}` on `tier`.
fn tenants_file(dir: &Path, tag: &str, n: usize, tier: &str) -> String {
    let path = dir.join(format!("{tag}.csv"));
    let mut text = "slug,tier,name,owner_email\n".to_owned();
    for i in 0..n {
        writeln!(text, "{tag}{i},{tier},,").unwrap();
    }
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_owned()
}

/// What landed where: `after - before` per server, as `main 334, s2 333, s3 333`.
fn spread(before: &BTreeMap<String, i64>, after: &BTreeMap<String, i64>) -> String {
    after
        .iter()
        .map(|(name, n)| format!("{name} {}", n - before.get(name).copied().unwrap_or(0)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Medians and the spread of one side (one server or three).
#[derive(Default)]
struct Side {
    ms: Vec<f64>,
    spread: String,
}

impl Side {
    fn per_tenant(&self, n: usize) -> f64 {
        common::median(&self.ms) / n as f64
    }
}

fn main() {
    if common::listing() {
        return;
    }
    let pooled_n = common::count("BENCH_FLEET_POOLED", 1000);
    let siloed_n = common::count("BENCH_FLEET_SILOED", 60);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let concurrency = common::count("BENCH_CONCURRENCY", (2 * cores).min(16));
    let silo_concurrency = common::count("BENCH_SILO_CONCURRENCY", 4);
    let reps = common::count("BENCH_REPS", 1);
    cluster::cluster();
    let extras = fleet::extras();
    let urls: Vec<(&'static str, String)> = extras
        .iter()
        .map(|x| (x.name, x.url(SUPERUSER, "postgres")))
        .collect();
    let root = tempfile::Builder::new()
        .prefix("tenantctl-fleetbench-")
        .tempdir()
        .unwrap();
    let dir = root.path();
    let setup = |name: &str, fleet: bool| Setup {
        control: format!("{name}ctl"),
        prefix: format!("{name}_"),
        storage: dir
            .join(format!("buckets-{name}"))
            .to_str()
            .unwrap()
            .to_owned(),
        added: if fleet { urls.clone() } else { Vec::new() },
    };
    let (pooled1, pooled3) = (setup("fbp1", false), setup("fbp3", true));
    let (siloed1, siloed3) = (setup("fbs1", false), setup("fbs3", true));
    let conc = concurrency.to_string();
    let silo_conc = silo_concurrency.to_string();

    let (mut p1, mut p3, mut s1, mut s3) = Default::default();
    for rep in 0..reps {
        for (setup, side) in [(&pooled1, &mut p1), (&pooled3, &mut p3)] {
            let side: &mut Side = side;
            setup.fresh(&[&["--pooled"], &["--pooled"]]);
            let warm = tenants_file(dir, &format!("warm{rep}x"), 3, "free");
            setup.tenantctl(&["provision", "--file", &warm]);
            let file = tenants_file(dir, &format!("p{rep}x"), pooled_n, "free");
            let before = setup.tenants();
            let t0 = Instant::now();
            setup.tenantctl(&["provision", "--file", &file, "--concurrency", &conc]);
            side.ms.push(t0.elapsed().as_secs_f64() * 1000.0);
            side.spread = spread(&before, &setup.tenants());
            eprintln!(
                "rep {rep}: {pooled_n} pooled on {} server(s): {:.0} ms ({})",
                setup.added.len() + 1,
                side.ms.last().unwrap(),
                side.spread
            );
        }
        // Capacities that add up to N: placement by most capacity left fills them evenly in
        // proportion, and the fleet is full at the end.
        let (cap_main, cap_s2) = (siloed_n / 2, siloed_n / 3);
        let cap_s3 = siloed_n - cap_main - cap_s2;
        let caps = [cap_main.to_string(), cap_s2.to_string(), cap_s3.to_string()];
        for (setup, side) in [(&siloed1, &mut s1), (&siloed3, &mut s3)] {
            let side: &mut Side = side;
            if setup.added.is_empty() {
                setup.fresh(&[]);
            } else {
                setup.fresh(&[&["--capacity", &caps[1]], &["--capacity", &caps[2]]]);
                setup.tenantctl(&["server", "set", "main", "--capacity", &caps[0]]);
            }
            let file = tenants_file(dir, &format!("s{rep}x"), siloed_n, "premium");
            let before = setup.tenants();
            let t0 = Instant::now();
            setup.tenantctl(&["provision", "--file", &file, "--concurrency", &silo_conc]);
            side.ms.push(t0.elapsed().as_secs_f64() * 1000.0);
            side.spread = spread(&before, &setup.tenants());
            eprintln!(
                "rep {rep}: {siloed_n} siloed on {} server(s): {:.0} ms ({})",
                setup.added.len() + 1,
                side.ms.last().unwrap(),
                side.spread
            );
        }
    }
    let bcrypt_ms = {
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

    println!(
        "placing tenants on a fleet (provision --file), medians of {reps}, {cores} cores, ms per tenant"
    );
    let (one, three) = (p1.per_tenant(pooled_n), p3.per_tenant(pooled_n));
    println!(
        "  pooled {pooled_n:>5} (--concurrency {concurrency}): one server {one:>7.1} ms/tenant ({})   three servers {three:>7.1} ms/tenant ({})   ratio {:.2}",
        p1.spread,
        p3.spread,
        three / one
    );
    println!(
        "         bcrypt floor (one cost-12 hash / {cores} cores): {:.1} ms/tenant",
        bcrypt_ms / cores as f64
    );
    let (one, three) = (s1.per_tenant(siloed_n), s3.per_tenant(siloed_n));
    println!(
        "  siloed {siloed_n:>5} (--concurrency {silo_concurrency}): one server {one:>7.1} ms/tenant ({})   three servers {three:>7.1} ms/tenant ({}; capacities {}, {}, {})   ratio {:.2}",
        s1.spread,
        s3.spread,
        siloed_n / 2,
        siloed_n / 3,
        siloed_n - siloed_n / 2 - siloed_n / 3,
        three / one
    );
    for s in [&pooled1, &pooled3, &siloed1, &siloed3] {
        s.clean();
    }
}
