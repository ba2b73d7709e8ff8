//! Shared by the benchmarks: the tenantctl binary and psql run with a wall clock, and the
//! statistics they print.

use std::process::{Command, Stdio};
use std::time::Instant;

pub const BIN: &str = env!("CARGO_BIN_EXE_tenantctl");

/// `cargo test --benches` asks a harness-less bench to list itself: nothing to list.
/// A count from the environment variable `name` (a benchmark's size), else `default`.
pub fn count(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

pub fn listing() -> bool {
    std::env::args().any(|a| a == "--list")
}

/// Runs `tenantctl --quiet ARGS` against `url` with the name `prefix` and `envs`; the wall time
/// in ms. Panics (with stderr) unless it succeeded.
pub fn tenantctl(url: &str, prefix: &str, envs: &[(&str, &str)], args: &[&str]) -> f64 {
    let t0 = Instant::now();
    let out = Command::new(BIN)
        .args(args)
        .arg("--quiet")
        .env("TENANTCTL_DATABASE_URL", url)
        .env("TENANTCTL_NAME_PREFIX", prefix)
        .env_remove("TENANTCTL_FAILPOINT")
        .envs(envs.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let ms = t0.elapsed().as_secs_f64() * 1000.0;
    assert!(
        out.status.success(),
        "tenantctl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    ms
}

/// Runs psql (`-X -q -v ON_ERROR_STOP=1 -d URL ARGS`); the wall time in ms.
pub fn psql(url: &str, args: &[&str]) -> f64 {
    let bindir = tenantctl::cluster::pg_bindir(None).unwrap();
    let t0 = Instant::now();
    let out = Command::new(bindir.join("psql"))
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", url])
        .args(args)
        .stdout(Stdio::null())
        .output()
        .unwrap();
    let ms = t0.elapsed().as_secs_f64() * 1000.0;
    assert!(
        out.status.success(),
        "psql {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    ms
}

fn sorted(v: &[f64]) -> Vec<f64> {
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v
}

pub fn median(v: &[f64]) -> f64 {
    let v = sorted(v);
    if v.len() % 2 == 1 {
        v[v.len() / 2]
    } else {
        (v[v.len() / 2 - 1] + v[v.len() / 2]) / 2.0
    }
}

/// The nearest-rank 95th percentile.
pub fn p95(v: &[f64]) -> f64 {
    let v = sorted(v);
    v[((v.len() as f64 * 0.95).ceil() as usize).clamp(1, v.len()) - 1]
}

/// Drops what an earlier run of a benchmark left on the cluster: its control database and the
/// databases and roles whose names start with one of `prefixes` (each ending in `_`).
pub fn drop_leftovers(pg: &mut postgres::Client, control: &str, prefixes: &[&str]) {
    pg.batch_execute(&format!(
        "DROP DATABASE IF EXISTS \"{control}\" WITH (FORCE)"
    ))
    .unwrap();
    let patterns: Vec<String> = prefixes
        .iter()
        .map(|p| format!("{}%", p.replace('_', "\\_")))
        .collect();
    for row in pg
        .query(
            "SELECT datname FROM pg_database WHERE datname LIKE ANY($1)",
            &[&patterns],
        )
        .unwrap()
    {
        let db: String = row.get(0);
        pg.batch_execute(&format!("DROP DATABASE \"{db}\" WITH (FORCE)"))
            .unwrap();
    }
    for row in pg
        .query(
            "SELECT rolname FROM pg_roles WHERE rolname LIKE ANY($1)",
            &[&patterns],
        )
        .unwrap()
    {
        let r: String = row.get(0);
        pg.batch_execute(&format!("DROP ROLE \"{r}\"")).unwrap();
    }
}
