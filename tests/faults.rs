//! Faults: a crash at every step, a real `kill -9`, and six concurrent runs; each re-run must
//! converge to one active tenant with one database, one owner, its quotas and its buckets.

use std::process::Stdio;
use std::time::Duration;

use crate::support::TestEnv;

/// The state a finished provisioning must have, whatever happened before.
#[track_caller]
fn assert_converged(env: &TestEnv, slug: &str, siloed: bool) {
    let mut ctl = env.control();
    let rows = ctl
        .query("SELECT status, id FROM tenants WHERE slug = $1", &[&slug])
        .unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].get::<_, String>(0), "active");
    let id: uuid::Uuid = rows[0].get(1);
    let steps: i64 = ctl
        .query_one(
            "SELECT count(*) FROM provisioning_journal WHERE tenant_id = $1",
            &[&id],
        )
        .unwrap()
        .get(0);
    assert_eq!(steps, 7, "journal of {slug}");
    let quotas: i64 = ctl
        .query_one("SELECT count(*) FROM quotas WHERE tenant_id = $1", &[&id])
        .unwrap()
        .get(0);
    assert_eq!(quotas, 5, "quotas of {slug}");
    let activations: i64 = ctl
        .query_one(
            "SELECT count(*) FROM audit_log WHERE tenant_id = $1 AND action = 'provision'",
            &[&id],
        )
        .unwrap()
        .get(0);
    assert_eq!(activations, 1, "one activation audited for {slug}");
    let db = if siloed {
        env.silo(slug)
    } else {
        env.pooled_db()
    };
    assert!(env.database_exists(&db), "database {db}");
    let mut tdb = env.admin(&db);
    let owners: i64 = tdb
        .query_one("SELECT count(*) FROM users WHERE tenant_id = $1", &[&id])
        .unwrap()
        .get(0);
    assert_eq!(owners, 1, "owner rows of {slug}");
    let migrations: i64 = tdb
        .query_one("SELECT count(*) FROM refinery_schema_history", &[])
        .unwrap()
        .get(0);
    assert_eq!(
        migrations,
        crate::support::tenant_migrations().len() as i64,
        "every tenant migration applied once"
    );
    for b in ["uploads", "assets", "backups"] {
        assert!(env.storage_root().join(format!("{slug}-{b}")).is_dir());
    }
}

#[test]
fn a_crash_at_any_step_is_finished_by_running_the_same_command_again() {
    let env = TestEnv::new();
    let mut points: Vec<String> = (1..=7).map(|n| format!("after-step:{n}")).collect();
    // Step 1 and step 7 journal in the transaction that does their work.
    points.extend((2..=6).map(|n| format!("before-journal:{n}")));
    for (i, point) in points.iter().enumerate() {
        let (slug, tier, siloed) = if i % 2 == 0 {
            (format!("crash{i}"), "premium", true)
        } else {
            (format!("crash{i}"), "free", false)
        };
        let crashed = env.run_env(
            &["provision", &slug, "--tier", tier],
            &[("TENANTCTL_FAILPOINT", point)],
        );
        assert_eq!(
            crashed.code, None,
            "{point}: expected a crash (a signal), got {:?}\n{}",
            crashed.code, crashed.stderr
        );
        let rerun = env.run(&["provision", &slug, "--tier", tier]).expect(0);
        let step: usize = point.split(':').nth(1).unwrap().parse().unwrap();
        let skipped = rerun.stderr.matches("already done").count();
        let expected_skips = if point.starts_with("after-step") {
            step
        } else {
            step - 1
        };
        if step < 7 {
            assert!(
                rerun.stderr.contains("resuming"),
                "{point}: {}",
                rerun.stderr
            );
            assert_eq!(
                skipped, expected_skips,
                "{point}: steps skipped on re-run:\n{}",
                rerun.stderr
            );
        }
        assert_converged(&env, &slug, siloed);
    }
    // Nothing orphaned: only the databases and roles of the tenants that exist.
    let (dbs, roles) = env.owned_objects();
    let silos = points
        .iter()
        .enumerate()
        .filter(|(i, _)| i % 2 == 0)
        .count();
    assert_eq!(dbs.len(), silos + 1, "{dbs:?}");
    assert_eq!(roles.len(), silos + 1, "{roles:?}");
}

#[test]
fn kill_9_at_random_moments_then_rerun_converges() {
    let env = TestEnv::new();
    for (i, delay_ms) in [40u64, 120, 250, 400, 700].into_iter().enumerate() {
        let slug = format!("killed{i}");
        let mut child = env
            .cmd()
            .args(["provision", &slug, "--tier", "premium"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        // SIGKILL: no destructor, no rollback but the server's.
        let _ = child.kill();
        let _ = child.wait();
        env.run(&["provision", &slug, "--tier", "premium"])
            .expect(0);
        assert_converged(&env, &slug, true);
    }
}

#[test]
fn six_concurrent_provisions_make_one_tenant() {
    let env = TestEnv::new();
    let argv: Vec<String> = ["provision", "delta", "--tier", "premium"]
        .map(String::from)
        .to_vec();
    let mut winners = 0;
    for run in env.run_concurrently(&vec![argv; 6]) {
        let stderr = &run.stderr;
        match run.code {
            Some(0) => winners += 1,
            Some(3) => assert!(
                stderr.contains("in progress"),
                "a loser must say `in progress`:\n{stderr}"
            ),
            other => panic!("unexpected exit {other:?}:\n{stderr}"),
        }
        assert!(
            !stderr.contains("db error"),
            "raw PostgreSQL error:\n{stderr}"
        );
    }
    assert!(winners >= 1);
    env.run(&["provision", "delta", "--tier", "premium"])
        .expect(0);
    assert_converged(&env, "delta", true);
    let (dbs, _) = env.owned_objects();
    assert_eq!(dbs, [env.silo("delta")]);
}

#[test]
fn concurrent_first_runs_on_a_fresh_server_share_the_control_and_pooled_databases() {
    let env = TestEnv::new();
    let argvs: Vec<Vec<String>> = ["p-one", "p-two", "p-three", "p-four"]
        .iter()
        .map(|slug| {
            ["provision", slug, "--tier", "free"]
                .map(String::from)
                .to_vec()
        })
        .collect();
    for run in env.run_concurrently(&argvs) {
        run.expect(0);
    }
    for slug in ["p-one", "p-two", "p-three", "p-four"] {
        assert_converged(&env, slug, false);
    }
}
