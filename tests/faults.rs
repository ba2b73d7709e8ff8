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
    assert_eq!(steps, 8, "journal of {slug}");
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
    // The tier's features, in the control database and in the data plane alike.
    let features = |c: &mut postgres::Client, sql: &str| -> Vec<String> {
        c.query(sql, &[&id])
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect()
    };
    let entitled = features(
        &mut env.control(),
        "SELECT feature FROM feature_entitlements WHERE tenant_id = $1 AND in_tier ORDER BY 1",
    );
    assert!(!entitled.is_empty(), "features of {slug}");
    let stored = features(
        &mut tdb,
        "SELECT feature FROM tenant_features WHERE tenant_id = $1 ORDER BY 1",
    );
    assert_eq!(stored, entitled, "tenant_features of {slug}");
    for b in ["uploads", "assets", "backups"] {
        assert!(env.storage_root().join(format!("{slug}-{b}")).is_dir());
    }
}

#[test]
fn a_crash_at_any_step_is_finished_by_running_the_same_command_again() {
    let env = TestEnv::new();
    let mut points: Vec<String> = (1..=8).map(|n| format!("after-step:{n}")).collect();
    // Step 1 and step 8 (activate) journal in the transaction that does their work.
    points.extend((2..=7).map(|n| format!("before-journal:{n}")));
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
        if step < 8 {
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

/// How far the tenant's data plane is open, as PostgreSQL itself says.
#[derive(Debug, PartialEq, Eq)]
enum Openness {
    Open,
    Closed,
    /// Some doors open, some shut (the fields that are open).
    Partly(Vec<&'static str>),
}

/// Siloed: can the role log in (`rolcanlogin`), does the database accept connections
/// (`datallowconn`), may the role connect (CONNECT), does a connection as the role work and
/// read its rows. Pooled: does the application role see the tenant's rows with its context.
fn openness(env: &TestEnv, slug: &str, siloed: bool) -> Openness {
    let mut open = Vec::new();
    let mut closed = 0;
    let mut door = |name: &'static str, is_open: bool| {
        if is_open {
            open.push(name);
        } else {
            closed += 1;
        }
    };
    let id: String = env
        .control()
        .query_one("SELECT id::text FROM tenants WHERE slug = $1", &[&slug])
        .unwrap()
        .get(0);
    // The tenant's user rows, read with its context set (without it the policies show none).
    let rows_seen = |c: &mut postgres::Client| -> i64 {
        let mut tx = c.transaction().unwrap();
        tx.execute("SELECT set_config('app.tenant_id', $1, true)", &[&id])
            .unwrap();
        tx.query_one("SELECT count(*) FROM users", &[])
            .map(|r| r.get(0))
            .unwrap_or(-1)
    };
    if siloed {
        let (db, role) = (env.silo(slug), env.silo(slug));
        let r = env
            .admin("postgres")
            .query_one(
                "SELECT r.rolcanlogin, d.datallowconn, has_database_privilege(r.rolname, d.datname, 'CONNECT')
                 FROM pg_roles r, pg_database d WHERE r.rolname = $1 AND d.datname = $2",
                &[&role, &db],
            )
            .unwrap();
        door("rolcanlogin", r.get(0));
        door("datallowconn", r.get(1));
        door("connect privilege", r.get(2));
        let works = env
            .connect_as(&role, &db)
            .is_ok_and(|mut c| rows_seen(&mut c) == 1);
        door("role connects and reads", works);
    } else {
        let mut app = env.connect_as(&env.app_role(), &env.pooled_db()).unwrap();
        door("pooled rows visible", rows_seen(&mut app) == 1);
    }
    match (open.is_empty(), closed) {
        (true, _) => Openness::Closed,
        (false, 0) => Openness::Open,
        _ => Openness::Partly(open),
    }
}

fn status_of(env: &TestEnv, slug: &str) -> String {
    env.control()
        .query_one("SELECT status FROM tenants WHERE slug = $1", &[&slug])
        .unwrap()
        .get(0)
}

/// The status and the data plane agree exactly (after a command finished).
#[track_caller]
fn assert_settled(env: &TestEnv, slug: &str, siloed: bool, expected: &str, context: &str) {
    assert_eq!(status_of(env, slug), expected, "{context}");
    let want = if expected == "active" {
        Openness::Open
    } else {
        Openness::Closed
    };
    assert_eq!(
        openness(env, slug, siloed),
        want,
        "{context}: status {expected}"
    );
}

/// One interrupted transition: a command, the state it starts from, where it may crash, its
/// intermediate status and final status, and its inverse.
struct Case {
    command: &'static str,
    start: &'static str,
    points: &'static [&'static str],
    /// Points only siloed tenants pass.
    siloed_only: &'static [&'static str],
    intermediate: &'static str,
    end: &'static str,
    inverse: &'static str,
}

/// Where a crash at `point` leaves the data plane (so each point is a distinct state).
fn left_at(point: &str, start: &str, siloed: bool) -> Openness {
    match point.split(':').nth(1).unwrap() {
        "marked" if start == "active" => Openness::Open,
        "marked" | "closed" => Openness::Closed,
        "opened" => Openness::Open,
        "connections-allowed" => Openness::Partly(vec!["datallowconn"]),
        "migrated" if siloed => Openness::Partly(vec!["datallowconn"]),
        "migrated" => Openness::Closed,
        other => unreachable!("{other}"),
    }
}

/// For every crash point, siloed and pooled: crash, check that the data plane is never more
/// open than the status says, let the inverse command converge back to the start, crash again
/// at the same point, and let the same command converge to the end.
fn crash_everywhere(case: &Case) {
    let env = TestEnv::new();
    let points = case.points.iter().chain(case.siloed_only);
    for (i, point) in points.enumerate() {
        for (tier, siloed) in [("premium", true), ("free", false)] {
            if !siloed && case.siloed_only.contains(point) {
                continue;
            }
            let slug = format!("c{i}-{tier}");
            let ctx = |what: &str| format!("{} crashed at {point} ({tier}): {what}", case.command);
            env.provision(&slug, tier);
            match case.start {
                "active" => {}
                "suspended" => drop(env.run(&["suspend", &slug]).expect(0)),
                "deleted" => drop(env.run(&["deprovision", &slug]).expect(0)),
                other => unreachable!("{other}"),
            }
            assert_settled(&env, &slug, siloed, case.start, &ctx("before"));
            for (recovery, converged) in [(case.inverse, case.start), (case.command, case.end)] {
                let crashed =
                    env.run_env(&[case.command, &slug], &[("TENANTCTL_FAILPOINT", point)]);
                assert_eq!(crashed.code, None, "{}: {}", ctx("crash"), crashed.stderr);
                // The intermediate status promises nothing (it is never a closed one), so the
                // data plane, wherever the crash left it, is never more open than it says.
                assert_eq!(
                    status_of(&env, &slug),
                    case.intermediate,
                    "{}",
                    ctx("status")
                );
                assert_eq!(
                    openness(&env, &slug, siloed),
                    left_at(point, case.start, siloed),
                    "{}",
                    ctx("data plane")
                );
                env.run(&[recovery, &slug]).expect(0);
                assert_settled(
                    &env,
                    &slug,
                    siloed,
                    converged,
                    &ctx(&format!("then {recovery}")),
                );
            }
        }
    }
}

#[test]
fn an_interrupted_suspend_converges_by_suspend_or_resume() {
    crash_everywhere(&Case {
        command: "suspend",
        start: "active",
        points: &["suspend:marked", "suspend:closed"],
        siloed_only: &[],
        intermediate: "suspending",
        end: "suspended",
        inverse: "resume",
    });
}

#[test]
fn an_interrupted_resume_converges_by_resume_or_suspend() {
    crash_everywhere(&Case {
        command: "resume",
        start: "suspended",
        points: &["resume:marked", "resume:migrated", "resume:opened"],
        siloed_only: &["resume:connections-allowed"],
        intermediate: "resuming",
        end: "active",
        inverse: "suspend",
    });
}

#[test]
fn an_interrupted_deprovision_converges_by_deprovision_or_restore() {
    crash_everywhere(&Case {
        command: "deprovision",
        start: "active",
        points: &["deprovision:marked", "deprovision:closed"],
        siloed_only: &[],
        intermediate: "deprovisioning",
        end: "deleted",
        inverse: "restore",
    });
}

#[test]
fn an_interrupted_restore_converges_by_restore_or_deprovision() {
    crash_everywhere(&Case {
        command: "restore",
        start: "deleted",
        points: &["restore:marked", "restore:migrated", "restore:opened"],
        siloed_only: &["restore:connections-allowed"],
        intermediate: "restoring",
        end: "active",
        inverse: "deprovision",
    });
}

/// The report: `resume` killed after reopening left a tenant that logs in while its
/// status said `suspended`, and `suspend` refused it. Now it says `resuming`, and a purge, too,
/// takes a tenant in any intermediate status.
#[test]
fn a_killed_resume_never_shows_suspended_and_a_purge_takes_any_intermediate_status() {
    let env = TestEnv::new();
    env.run(&["provision", "acme", "--tier", "premium"])
        .expect(0);
    env.run(&["suspend", "acme"]).expect(0);
    let crashed = env.run_env(
        &["resume", "acme"],
        &[("TENANTCTL_FAILPOINT", "resume:opened")],
    );
    assert_eq!(crashed.code, None);
    assert_eq!(openness(&env, "acme", true), Openness::Open);
    assert_eq!(status_of(&env, "acme"), "resuming");
    let v = env.run(&["show", "acme", "-o", "json"]).expect(0).json();
    assert_eq!(v["status"], "resuming");
    // Not active: usage is refused, as for a suspended tenant.
    env.run(&["quota", "check", "acme", "api_requests", "--amount", "1"])
        .expect(3);
    env.run(&["suspend", "acme"]).expect(0);
    assert_settled(
        &env,
        "acme",
        true,
        "suspended",
        "suspend after a killed resume",
    );

    for (cmd, point, status) in [
        ("suspend", "suspend:marked", "suspending"),
        ("restore", "restore:migrated", "restoring"),
        ("deprovision", "deprovision:closed", "deprovisioning"),
    ] {
        let slug = format!("p-{cmd}");
        env.run(&["provision", &slug, "--tier", "premium"])
            .expect(0);
        if cmd == "restore" {
            env.run(&["deprovision", &slug]).expect(0);
        }
        env.run_env(&[cmd, &slug], &[("TENANTCTL_FAILPOINT", point)]);
        assert_eq!(status_of(&env, &slug), status);
        env.run(&["deprovision", &slug, "--purge", "--yes"])
            .expect(0);
        assert!(!env.database_exists(&env.silo(&slug)));
        assert_eq!(
            env.scalar_i64("SELECT count(*) FROM tenants WHERE slug = $1", &[&slug]),
            0
        );
    }
}

/// A journal written before steps were keyed by name (numbers 1 to 7, control schema V9) is
/// converted by V10 on the next run, and the half-provisioned tenant it belongs to resumes
/// after the steps it records, not from the start and not past a step it lacks.
#[test]
fn a_journal_of_step_numbers_is_converted_and_its_tenant_resumes() {
    let env = TestEnv::new();
    let crashed = env.run_env(
        &["provision", "legacy", "--tier", "premium"],
        &[("TENANTCTL_FAILPOINT", "after-step:4")],
    );
    assert_eq!(crashed.code, None, "{}", crashed.stderr);
    // The control database as the previous version left it (V9): numbered steps under the
    // range check, and nothing of V10 and later in the schema or the migration history.
    env.control()
        .batch_execute(
            "ALTER TABLE provisioning_journal DROP CONSTRAINT provisioning_journal_step_check;
             ALTER TABLE provisioning_journal ALTER COLUMN step TYPE smallint USING CASE step
                 WHEN 'record_tenant' THEN 1 WHEN 'create_database' THEN 2
                 WHEN 'apply_schema' THEN 3 WHEN 'create_owner' THEN 4
                 WHEN 'seed_quotas' THEN 5 WHEN 'create_buckets' THEN 6 WHEN 'activate' THEN 7 END;
             ALTER TABLE provisioning_journal
                 ADD CONSTRAINT provisioning_journal_step_check CHECK (step BETWEEN 1 AND 7);
             DROP TABLE backup_restores;
             DROP TABLE bucket_claims;
             DROP TABLE measurements;
             DROP TABLE hook_runs;
             DROP TABLE move_journal;
             DROP TABLE moves;
             ALTER TABLE tenants DROP COLUMN server;
             ALTER TABLE database_claims DROP CONSTRAINT database_claims_pkey;
             ALTER TABLE database_claims DROP COLUMN server;
             ALTER TABLE database_claims ADD PRIMARY KEY (database_name);
             DROP TABLE servers;
             DELETE FROM refinery_schema_history WHERE version >= 10;",
        )
        .unwrap();
    let old: Vec<i16> = env
        .control()
        .query("SELECT step FROM provisioning_journal ORDER BY step", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(old, [1, 2, 3, 4]);

    let rerun = env
        .run(&["provision", "legacy", "--tier", "premium"])
        .expect(0);
    assert!(rerun.stderr.contains("resuming"), "{}", rerun.stderr);
    assert_eq!(
        rerun.stderr.matches("already done").count(),
        4,
        "steps 1-4 skipped:\n{}",
        rerun.stderr
    );
    assert_converged(&env, "legacy", true);
    let names: Vec<String> = env
        .control()
        .query(
            "SELECT step FROM provisioning_journal j JOIN tenants t ON t.id = j.tenant_id
             WHERE t.slug = 'legacy' ORDER BY j.step",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        names,
        [
            "activate",
            "apply_schema",
            "create_buckets",
            "create_database",
            "create_owner",
            "record_tenant",
            "run_hooks",
            "seed_quotas"
        ]
    );
    // The new check keeps the journal's keys names.
    let refused = env.control().batch_execute(
        "INSERT INTO provisioning_journal (tenant_id, step, name, duration_ms)
         SELECT id, '8', 'a number', 0 FROM tenants WHERE slug = 'legacy'",
    );
    assert!(refused.is_err());
}

/// `credentials` sets the password on the tenant's server and audits it in the control
/// database: two commits. A crash between them leaves the audit entry and the role unchanged,
/// never a changed password without an entry; the next run asks for --rotate and converges.
#[test]
fn a_crash_between_the_credentials_audit_and_the_password_leaves_the_role_unchanged() {
    let env = TestEnv::new();
    env.provision("acme", "premium");
    let role = env.silo("acme");
    let valid_until = |env: &TestEnv| -> Option<String> {
        env.admin("postgres")
            .query_one(
                "SELECT to_char(rolvaliduntil AT TIME ZONE 'UTC', 'YYYY-MM-DD') FROM pg_roles WHERE rolname = $1",
                &[&role],
            )
            .unwrap()
            .get(0)
    };
    let before = valid_until(&env);
    let audited = |env: &TestEnv| {
        env.scalar_i64(
            "SELECT count(*) FROM audit_log WHERE slug = 'acme' AND action = 'credentials'",
            &[],
        )
    };
    let crashed = env.run_env(
        &["credentials", "acme", "--valid-until", "2099-01-01"],
        &[("TENANTCTL_FAILPOINT", "credentials:audited")],
    );
    assert_eq!(crashed.code, None, "expected a crash:\n{}", crashed.stderr);
    assert!(
        !crashed.stderr.contains("postgresql://"),
        "no password may be shown before it is set:\n{}",
        crashed.stderr
    );
    assert_eq!(audited(&env), 1, "the audit entry is committed first");
    assert_eq!(valid_until(&env), before, "the role was changed");

    // The log says credentials were issued: a plain re-run is refused, --rotate sets them.
    env.run(&["credentials", "acme"]).expect(3);
    env.run(&[
        "credentials",
        "acme",
        "--rotate",
        "--valid-until",
        "2099-01-01",
    ])
    .expect(0);
    assert_eq!(valid_until(&env).as_deref(), Some("2099-01-01"));
    assert_eq!(audited(&env), 2);
}
