//! `migrate`: the tenant schema across 20 tenants, one of them broken on purpose, two runs at
//! once, and silos closed while a run is under way.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::Stdio;

use crate::support::{tenant_migrations, Run, TestEnv};

/// Provisions `n` tenants, a few at a time; every fifth is pooled.
fn provision_many(env: &TestEnv, n: usize) -> Vec<(String, bool)> {
    let tenants: Vec<(String, bool)> = (0..n).map(|i| (format!("m{i:02}"), i % 5 != 4)).collect();
    for chunk in tenants.chunks(5) {
        let argvs: Vec<Vec<String>> = chunk
            .iter()
            .map(|(slug, siloed)| {
                let tier = if *siloed { "premium" } else { "free" };
                [
                    "provision",
                    slug,
                    "--tier",
                    tier,
                    "-q",
                    "--password-file",
                    "/dev/null",
                ]
                .map(String::from)
                .to_vec()
            })
            .collect();
        for run in env.run_concurrently(&argvs) {
            run.expect(0);
        }
    }
    tenants
}

/// Makes every tenant database "behind": forgets every migration after V1 (those are written
/// to be re-runnable; V2 is the first, and fails where `api_keys` is gone).
fn forget_v2(env: &TestEnv, dbs: &[String]) {
    for db in dbs {
        env.admin(db)
            .execute(
                "DELETE FROM refinery_schema_history WHERE version >= 2",
                &[],
            )
            .unwrap();
    }
}

/// Every tenant migration's version: a database that is up to date.
fn all_versions() -> Vec<i32> {
    tenant_migrations().into_iter().map(|(v, _)| v).collect()
}

fn versions(env: &TestEnv, db: &str) -> Vec<i32> {
    env.admin(db)
        .query(
            "SELECT version FROM refinery_schema_history ORDER BY version",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

#[test]
fn migrate_twenty_tenants_with_one_broken_then_two_runs_at_once() {
    let env = TestEnv::new();
    let tenants = provision_many(&env, 20);
    let mut dbs: Vec<String> = tenants
        .iter()
        .filter(|t| t.1)
        .map(|t| env.silo(&t.0))
        .collect();
    dbs.push(env.pooled_db());
    let broken = env.silo("m07");
    forget_v2(&env, &dbs);
    // Break one: the latest migration (V3) alters api_keys, which is gone here.
    env.admin(&broken)
        .batch_execute("DROP TABLE api_keys")
        .unwrap();
    // And suspend one: its database refuses connections, so it is skipped.
    env.run(&["suspend", "m03"]).expect(0);

    let status = env
        .run(&["migrate", "status", "-o", "json"])
        .expect(0)
        .json();
    let behind: Vec<&str> = status
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["behind"] == true)
        .map(|s| s["database"].as_str().unwrap())
        .collect();
    assert_eq!(behind.len(), dbs.len() - 1, "{status}");
    let dry = env
        .run(&["migrate", "--dry-run", "-o", "json"])
        .expect(0)
        .json();
    let first = dry
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["database"] == env.silo("m00"))
        .unwrap();
    let after_v1: Vec<String> = tenant_migrations()
        .into_iter()
        .skip(1)
        .map(|(_, n)| n)
        .collect();
    assert_eq!(first["pending"], serde_json::json!(after_v1));
    assert_eq!(
        versions(&env, &env.silo("m00")),
        [1],
        "dry run changed nothing"
    );

    let run = env
        .run(&["migrate", "--concurrency", "4", "-o", "json"])
        .expect(1);
    assert!(
        run.stderr.contains("migration failed for 1 database:"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains(&broken) && run.stderr.contains("m07"),
        "{}",
        run.stderr
    );
    let results = run.json();
    let by_result = |r: &str| {
        results
            .as_array()
            .unwrap()
            .iter()
            .filter(|x| x["result"] == r)
            .count()
    };
    assert_eq!(
        (
            by_result("migrated"),
            by_result("failed"),
            by_result("skipped")
        ),
        (dbs.len() - 2, 1, 1)
    );
    let failed = results
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["result"] == "failed")
        .unwrap();
    assert_eq!(failed["database"], broken.as_str());
    assert!(
        failed["error"].as_str().unwrap().contains("api_keys"),
        "{failed}"
    );
    for db in dbs
        .iter()
        .filter(|d| **d != broken && **d != env.silo("m03"))
    {
        assert_eq!(versions(&env, db), all_versions(), "{db}");
    }
    assert_eq!(versions(&env, &broken), [1]);

    // Resume migrates the skipped one before reopening it.
    env.run(&["resume", "m03"]).expect(0);
    assert_eq!(versions(&env, &env.silo("m03")), all_versions());

    // Two runs at once over databases that are behind again: each migration applied once,
    // and the tenants still work.
    forget_v2(
        &env,
        &dbs.iter()
            .filter(|d| **d != broken)
            .cloned()
            .collect::<Vec<_>>(),
    );
    let argv: Vec<String> = ["migrate", "--concurrency", "3", "-q"]
        .map(String::from)
        .to_vec();
    for run in env.run_concurrently(&[argv.clone(), argv]) {
        run.expect(1);
    }
    for db in dbs.iter().filter(|d| **d != broken) {
        assert_eq!(versions(&env, db), all_versions(), "{db}");
    }
    let mut app = env.connect_as(&env.silo("m00"), &env.silo("m00")).unwrap();
    app.query_one("SELECT count(*) FROM users", &[]).unwrap();
    let up = env
        .run(&["migrate", "status", "-o", "json"])
        .expect(0)
        .json();
    let still: Vec<&str> = up
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["behind"] == true)
        .map(|s| s["database"].as_str().unwrap())
        .collect();
    assert_eq!(still, [broken.as_str()]);
}

/// Runs `migrate -o json` paused after it listed the tenants (a debug-build failpoint), calls
/// `meanwhile`, then lets it go on.
fn migrate_paused_after_listing(env: &TestEnv, meanwhile: impl FnOnce()) -> Run {
    let mut child = env
        .cmd()
        .args(["migrate", "--concurrency", "2", "-o", "json"])
        .env("TENANTCTL_FAILPOINT", "pause:migrate:listed")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut seen = String::new();
    loop {
        let mut line = String::new();
        assert!(
            stderr.read_line(&mut line).unwrap() > 0,
            "migrate ended before its pause:\n{seen}"
        );
        seen.push_str(&line);
        if line.contains("failpoint migrate:listed: paused") {
            break;
        }
    }
    meanwhile();
    child.stdin.take().unwrap().write_all(b"go\n").unwrap();
    stderr.read_to_string(&mut seen).unwrap();
    let mut stdout = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    Run {
        code: child.wait().unwrap().code(),
        stdout,
        stderr: seen,
    }
}

#[test]
fn silos_suspended_or_deprovisioned_during_a_run_are_skipped_not_failed() {
    let env = TestEnv::new();
    for (slug, tier) in [
        ("run-a", "premium"),
        ("run-b", "premium"),
        ("run-c", "premium"),
        ("run-d", "free"),
    ] {
        env.provision(slug, tier);
    }
    let silos = [env.silo("run-a"), env.silo("run-b"), env.silo("run-c")];
    let mut dbs = silos.to_vec();
    dbs.push(env.pooled_db());
    forget_v2(&env, &dbs);

    // Listed as active, closed before they are migrated.
    let run = migrate_paused_after_listing(&env, || {
        env.run(&["suspend", "run-a"]).expect(0);
        env.run(&["deprovision", "run-b"]).expect(0);
    })
    .expect(0);
    assert!(!run.stderr.contains("failed"), "{}", run.stderr);
    let results = run.json();
    let of = |db: &str| {
        results
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["database"] == db)
            .unwrap_or_else(|| panic!("no result for {db}: {results}"))
            .clone()
    };
    for (db, status) in [(&silos[0], "suspended"), (&silos[1], "deleted")] {
        let r = of(db);
        assert_eq!(r["result"], "skipped", "{r}");
        let why = r["error"].as_str().unwrap();
        assert!(
            why.contains(&format!("tenant became {status} during the run")),
            "{why}"
        );
    }
    // They are migrated when they come back.
    env.run(&["resume", "run-a"]).expect(0);
    assert_eq!(versions(&env, &silos[0]), all_versions());
    assert_eq!(of(&silos[2])["result"], "migrated");
    assert_eq!(of(&env.pooled_db())["result"], "migrated");

    // A real failure is still a failure.
    env.admin(&silos[2])
        .execute(
            "DELETE FROM refinery_schema_history WHERE version >= 2",
            &[],
        )
        .unwrap();
    env.admin(&silos[2])
        .batch_execute("DROP TABLE api_keys")
        .unwrap();
    let run = migrate_paused_after_listing(&env, || {}).expect(1);
    let failed: Vec<serde_json::Value> = run
        .json()
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["result"] == "failed")
        .map(|r| r["database"].clone())
        .collect();
    assert_eq!(failed, [silos[2].as_str()], "{}", run.stdout);
}
