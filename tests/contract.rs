//! The contracts scripts rely on, as snapshots: the exact key set of every `--output json`
//! result (nested objects and array elements included) and the `--help` of every subcommand.
//! A change to either is a visible diff under `tests/snapshots/`: run the tests with
//! `TENANTCTL_BLESS=1` to rewrite the snapshots, and review the diff.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::support::{bare_cmd, TestEnv, BIN};

fn snapshots() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots")
}

fn blessing() -> bool {
    std::env::var_os("TENANTCTL_BLESS").is_some_and(|v| v == "1")
}

/// Compares `actual` with the snapshot `rel` (or, blessing, writes it); a difference is
/// recorded in `failures`, so that one run lists every changed contract.
fn check_snapshot(rel: &str, actual: &str, failures: &mut Vec<String>) {
    let path = snapshots().join(rel);
    if blessing() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, actual).unwrap();
        return;
    }
    match std::fs::read_to_string(&path) {
        Ok(expected) if expected == actual => {}
        Ok(expected) => failures.push(format!(
            "{rel} differs (TENANTCTL_BLESS=1 rewrites it):\n--- expected\n{expected}\n--- actual\n{actual}"
        )),
        Err(_) => failures.push(format!(
            "{rel} is missing (TENANTCTL_BLESS=1 writes it):\n{actual}"
        )),
    }
}

/// Snapshot files in `dir` that no check produced: a contract that went away.
fn stale(dir: &str, produced: &BTreeSet<String>, failures: &mut Vec<String>) {
    for entry in std::fs::read_dir(snapshots().join(dir)).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        let rel = format!("{dir}/{name}");
        if !produced.contains(&rel) {
            if blessing() {
                std::fs::remove_file(snapshots().join(&rel)).unwrap();
            } else {
                failures.push(format!("{rel}: no command produces it any more"));
            }
        }
    }
}

fn report(failures: Vec<String>) {
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// Every key path of a JSON value: `a`, `a.b`, `list[]`, `list[].c`; a top-level array's
/// elements are `[]`. Paths in `opaque` are listed but not entered (free-form JSON such as an
/// audit entry's details, whose keys depend on the action).
fn key_paths(v: &Value, opaque: &[&str]) -> BTreeSet<String> {
    fn walk(v: &Value, path: &str, opaque: &[&str], out: &mut BTreeSet<String>) {
        if opaque.contains(&path) {
            return;
        }
        match v {
            Value::Object(map) => {
                for (k, child) in map {
                    let p = if path.is_empty() {
                        k.clone()
                    } else {
                        format!("{path}.{k}")
                    };
                    out.insert(p.clone());
                    walk(child, &p, opaque, out);
                }
            }
            Value::Array(items) => {
                let p = format!("{path}[]");
                for item in items {
                    if item.is_object() || item.is_array() {
                        walk(item, &p, opaque, out);
                    }
                }
            }
            _ => {}
        }
    }
    let mut out = BTreeSet::new();
    walk(v, "", opaque, &mut out);
    out
}

/// Records the key set of a run's JSON stdout as snapshot `json/<name>.keys`.
struct JsonContracts {
    failures: Vec<String>,
    produced: BTreeSet<String>,
}

impl JsonContracts {
    fn check(&mut self, name: &str, stdout: &str, opaque: &[&str]) {
        let v: Value = serde_json::from_str(stdout)
            .unwrap_or_else(|e| panic!("{name}: stdout is not JSON ({e}):\n{stdout}"));
        let mut text: String = key_paths(&v, opaque)
            .into_iter()
            .map(|p| format!("{p}\n"))
            .collect();
        if text.is_empty() {
            text = "(no keys)\n".to_owned();
        }
        let rel = format!("json/{name}.keys");
        check_snapshot(&rel, &text, &mut self.failures);
        self.produced.insert(rel);
    }

    /// Runs `args` with `-o json`, expects `code`, checks the key set.
    fn run(&mut self, env: &TestEnv, name: &str, code: i32, args: &[&str]) -> Value {
        let mut argv = args.to_vec();
        argv.extend(["-o", "json"]);
        let run = env.run(&argv).expect(code);
        self.check(name, &run.stdout, &[]);
        run.json()
    }
}

#[test]
fn every_json_output_has_its_pinned_key_set() {
    let env = TestEnv::new();
    let mut c = JsonContracts {
        failures: Vec::new(),
        produced: BTreeSet::new(),
    };
    c.run(&env, "init", 0, &["init"]);
    // A siloed tenant with an upgrade hint (billed for a past month), and a pooled one.
    let run = env
        .run(&[
            "provision",
            "heavy",
            "--tier",
            "premium",
            "--password-file",
            "/dev/null",
            "-o",
            "json",
        ])
        .expect(0);
    c.check("provision", &run.stdout, &[]);
    env.backdate("heavy", "provision.start", "2026-08-01T00:00:00Z");
    env.backdate("heavy", "provision", "2026-08-01T00:00:00Z");
    env.backdate_creation("heavy", "2026-08-01T00:00:00Z");
    env.provision("pool", "free");
    c.run(
        &env,
        "provision-dry-run",
        0,
        &["provision", "next", "--tier", "free", "--dry-run"],
    );
    c.run(&env, "list", 0, &["list"]);
    c.run(&env, "show", 0, &["show", "heavy"]);
    c.run(&env, "set-tier", 0, &["set-tier", "pool", "free"]);
    c.run(&env, "suspend", 0, &["suspend", "pool", "--reason", "test"]);
    c.run(&env, "resume", 0, &["resume", "pool"]);
    c.run(&env, "adopt", 0, &["adopt", "heavy"]);

    c.run(
        &env,
        "usage-record",
        0,
        &[
            "usage",
            "record",
            "heavy",
            "api_requests",
            "12000000",
            "--at",
            "2026-09-10",
        ],
    );
    let file = env.dir.path().join("events.csv");
    std::fs::write(
        &file,
        "heavy,api_requests,1,2026-09-11,k1\nghost,api_requests,1,2026-09-11,k2\n",
    )
    .unwrap();
    c.run(
        &env,
        "usage-import",
        3,
        &["usage", "import", file.to_str().unwrap()],
    );
    c.run(&env, "usage-refresh", 0, &["usage", "refresh"]);
    // A failed measurement, for the keys of its element: a bucket that is a file.
    env.provision("broken", "free");
    let bucket = env.storage_root().join("broken-uploads");
    std::fs::remove_dir_all(&bucket).unwrap();
    std::fs::write(&bucket, b"not a directory").unwrap();
    c.run(
        &env,
        "usage-refresh-failed",
        1,
        &["usage", "refresh", "broken"],
    );

    c.run(&env, "quota-show", 0, &["quota", "show", "heavy"]);
    c.run(
        &env,
        "quota-set",
        0,
        &["quota", "set", "heavy", "sandboxes", "9"],
    );
    c.run(&env, "quota-reset", 0, &["quota", "reset", "heavy"]);
    c.run(
        &env,
        "quota-check",
        0,
        &["quota", "check", "heavy", "sandboxes"],
    );

    c.run(&env, "features-show", 0, &["features", "show", "heavy"]);
    c.run(
        &env,
        "features-grant",
        0,
        &["features", "grant", "heavy", "x-ray"],
    );
    c.run(
        &env,
        "features-revoke",
        0,
        &["features", "revoke", "heavy", "x-ray"],
    );
    c.run(
        &env,
        "features-reset",
        0,
        &["features", "reset", "heavy", "x-ray"],
    );
    c.run(
        &env,
        "features-check",
        3,
        &["features", "check", "heavy", "x-ray"],
    );
    c.run(&env, "features-refresh", 0, &["features", "refresh"]);

    let run = c.run(&env, "bill", 0, &["bill", "--period", "2026-09"]);
    assert_eq!(run["upgrade_hints"], 1, "the hint's keys are pinned: {run}");
    let list = c.run(&env, "invoices-list", 0, &["invoices", "list"]);
    let id = list[0]["id"].to_string();
    c.run(&env, "invoices-show", 0, &["invoices", "show", &id]);
    c.run(&env, "report-revenue", 0, &["report", "revenue"]);
    let tiers = env.dir.path().join("tiers-costs.toml");
    std::fs::write(
        &tiers,
        format!(
            "{}\n[costs]\nsilo_per_month = \"40\"\npooled_tenant_per_month = \"2\"\nstorage_gb_month = \"0.10\"\n",
            include_str!("../tiers.toml")
        ),
    )
    .unwrap();
    c.run(
        &env,
        "report-margin",
        0,
        &["report", "margin", "--tiers", tiers.to_str().unwrap()],
    );

    c.run(
        &env,
        "credentials-siloed",
        0,
        &["credentials", "heavy", "--password-file", "/dev/null"],
    );
    c.run(&env, "credentials-pooled", 0, &["credentials", "pool"]);
    // The fleet: a second server (doctor then lists it), routes.
    let url = env.server_url("s2");
    c.run(
        &env,
        "server-add",
        0,
        &["server", "add", "s2", &url, "--pooled"],
    );
    c.run(&env, "server-list", 0, &["server", "list"]);
    c.run(&env, "server-drain", 0, &["server", "drain", "s2"]);
    c.run(&env, "server-undrain", 0, &["server", "undrain", "s2"]);
    c.run(
        &env,
        "server-set",
        0,
        &["server", "set", "s2", "--capacity", "10"],
    );
    c.run(&env, "route-siloed", 0, &["route", "heavy"]);
    c.run(&env, "route-pooled", 0, &["route", "pool"]);
    let run = env.run(&["routes", "--format", "json"]).expect(0);
    c.check("routes", &run.stdout, &[]);
    c.run(&env, "move", 0, &["move", "heavy", "--to", "s2"]);
    env.run(&["move", "heavy", "--to", "main", "-q"]).expect(0);
    // Drained, so that the tenants made below stay on main and s2 can be removed at the end.
    env.run(&["server", "drain", "s2", "-q"]).expect(0);

    // Bulk onboarding: one row provisioned, one refused (`pool` is on another tier), so that
    // the element of `failed` is pinned too.
    let tenants = env.dir.path().join("tenants.csv");
    std::fs::write(
        &tenants,
        "slug,tier,name,owner_email\nbulk,free,Bulk Co,ops@bulk.example\npool,premium,,\n",
    )
    .unwrap();
    let passwords = env.dir.path().join("tenants.passwords");
    c.run(
        &env,
        "provision-file",
        1,
        &[
            "provision",
            "--file",
            tenants.to_str().unwrap(),
            "--password-file",
            passwords.to_str().unwrap(),
        ],
    );

    // The backup commands: a silo's backup, the list, a restore, a prune of the older one,
    // and `--all` with a suspended silo skipped.
    let first = c.run(&env, "backup", 0, &["backup", "heavy"]);
    let id = first["id"].as_str().unwrap().to_owned();
    c.run(&env, "backups-list", 0, &["backups", "list", "heavy"]);
    c.run(
        &env,
        "restore-backup",
        0,
        &["restore-backup", "heavy", &id, "--yes"],
    );
    env.run(&["backup", "heavy"]).expect(0);
    c.run(
        &env,
        "backups-prune",
        0,
        &["backups", "prune", "heavy", "--keep", "1"],
    );
    env.run(&["suspend", "heavy", "--reason", "test"]).expect(0);
    let all = c.run(&env, "backup-all", 0, &["backup", "--all"]);
    assert_eq!(all["skipped"][0]["slug"], "heavy", "{all}");
    env.run(&["resume", "heavy"]).expect(0);
    c.run(&env, "migrate", 0, &["migrate"]);
    c.run(&env, "migrate-status", 0, &["migrate", "status"]);
    // Exit 1: the test server has no TLS, which doctor reports as a problem.
    c.run(&env, "doctor", 1, &["doctor"]);

    c.run(&env, "deprovision", 0, &["deprovision", "pool"]);
    c.run(&env, "restore", 0, &["restore", "pool"]);
    c.run(
        &env,
        "deprovision-purge",
        0,
        &["deprovision", "pool", "--purge", "--yes"],
    );
    // Retention 0: deleted now, expired now.
    env.run_env(
        &["deprovision", "heavy"],
        &[("TENANTCTL_RETENTION_DAYS", "0")],
    )
    .expect(0);
    c.run(&env, "purge-expired", 0, &["purge", "--expired", "--yes"]);
    c.run(&env, "server-remove", 0, &["server", "remove", "s2"]);

    let run = env.run(&["audit", "-o", "json"]).expect(0);
    c.check("audit", &run.stdout, &["[].details"]);

    // The local cluster's commands, on a data directory where none was made.
    let dir = tempfile::tempdir().unwrap();
    for (name, args) in [
        ("local-status", ["local", "status"]),
        ("local-stop", ["local", "stop"]),
    ] {
        let out = bare_cmd()
            .env("TENANTCTL_DATA_DIR", dir.path().join("d"))
            .args(args)
            .args(["-o", "json"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{name}");
        c.check(name, &String::from_utf8_lossy(&out.stdout), &[]);
    }

    let mut failures = c.failures;
    stale("json", &c.produced, &mut failures);
    report(failures);
}

/// The subcommands listed under `Commands:` in a help text (without `help`).
fn subcommands(help: &str) -> Vec<String> {
    help.split("\nCommands:\n")
        .nth(1)
        .map(|rest| {
            rest.lines()
                .take_while(|l| !l.trim().is_empty())
                .filter(|l| l.starts_with("  ") && !l.starts_with("   "))
                .filter_map(|l| l.split_whitespace().next())
                .filter(|name| *name != "help")
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn every_subcommand_help_is_pinned() {
    let mut failures = Vec::new();
    let mut produced = BTreeSet::new();
    let mut queue = vec![Vec::<String>::new()];
    while let Some(path) = queue.pop() {
        let out = std::process::Command::new(BIN)
            .args(&path)
            .arg("--help")
            .env_remove("COLUMNS")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{path:?} --help");
        let help = String::from_utf8(out.stdout).unwrap();
        let rel = format!(
            "help/{}.txt",
            std::iter::once("tenantctl".to_owned())
                .chain(path.iter().cloned())
                .collect::<Vec<_>>()
                .join("-")
        );
        check_snapshot(&rel, &help, &mut failures);
        produced.insert(rel);
        for sub in subcommands(&help) {
            let mut p = path.clone();
            p.push(sub);
            queue.push(p);
        }
    }
    assert!(produced.len() > 30, "found only {produced:?}");
    stale("help", &produced, &mut failures);
    report(failures);
}
