//! The added cost of TLS per command: `tenantctl quota check` as a whole process against the
//! managed-like test server (tests/support/managed.rs: TCP, scram-sha-256), with
//! `sslmode=verify-full`, `sslmode=require` (no certificate check) and `sslmode=disable`, runs
//! interleaved; medians, p95 and the ratio verify-full / disable.
//!
//! `cargo bench --bench tls` (BENCH_RUNS=40 by default).

#[path = "../tests/support/cluster.rs"]
#[allow(dead_code)]
mod cluster;
#[allow(dead_code)]
mod common;
#[path = "../tests/support/managed.rs"]
#[allow(dead_code)]
mod managed;

fn main() {
    if common::listing() {
        return;
    }
    let runs: usize = common::count("BENCH_RUNS", 40);
    let m = managed::managed();
    let pw = managed::ADMIN_PASSWORD
        .replace('%', "%25")
        .replace(' ', "%20")
        .replace('\'', "%27");
    let db = "tlsbench_ctl";
    let tls = format!(
        "postgres://admin:{pw}@localhost:{}/{db}?sslmode=verify-full&sslrootcert={}",
        m.port,
        m.ca.display()
    );
    let require = format!(
        "postgres://admin:{pw}@localhost:{}/{db}?sslmode=require",
        m.port
    );
    let plain = format!(
        "postgres://admin:{pw}@localhost:{}/{db}?sslmode=disable",
        m.port
    );
    let buckets = std::env::temp_dir().join("tenantctl-tlsbench-buckets");
    let envs = [("TENANTCTL_STORAGE_ROOT", buckets.to_str().unwrap())];
    common::tenantctl(&tls, "tlsb_", &envs, &["init"]);
    common::tenantctl(
        &tls,
        "tlsb_",
        &envs,
        &[
            "provision",
            "acme",
            "--tier",
            "premium",
            "--password-file",
            "/dev/null",
        ],
    );
    let args = ["quota", "check", "acme", "api_requests"];
    // Warm-up, then interleaved runs so that drift in the machine's load hits both alike.
    common::tenantctl(&tls, "tlsb_", &envs, &args);
    common::tenantctl(&plain, "tlsb_", &envs, &args);
    let (mut with, mut req, mut without) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..runs {
        with.push(common::tenantctl(&tls, "tlsb_", &envs, &args));
        req.push(common::tenantctl(&require, "tlsb_", &envs, &args));
        without.push(common::tenantctl(&plain, "tlsb_", &envs, &args));
    }
    let (mw, mo) = (common::median(&with), common::median(&without));
    println!("quota check, {runs} runs each (whole process, ms):");
    println!(
        "  sslmode=verify-full  median {mw:7.1}  p95 {:7.1}",
        common::p95(&with)
    );
    println!(
        "  sslmode=require      median {:7.1}  p95 {:7.1}",
        common::median(&req),
        common::p95(&req)
    );
    println!(
        "  sslmode=disable      median {mo:7.1}  p95 {:7.1}",
        common::p95(&without)
    );
    println!(
        "  TLS adds {:.1} ms per command (ratio {:.2})",
        mw - mo,
        mw / mo
    );
}
