//! `set-tier` across isolation models: a pooled tenant upgraded into a silo of its own and a
//! siloed one downgraded into the pooled database, with every row compared one by one before
//! and after; the tenant's own role reading its rows in its new database; other pooled tenants
//! untouched; a downgrade over a hard limit refused with nothing changed; a crash at every step
//! of the move's journal and `kill -9` at random moments, each re-run converging on the same
//! rows (or, before the switch, a cancel restoring the tenant where it was); billing prorating
//! the tier change by day; a purge of a tenant left moving.

use std::process::Stdio;
use std::time::Duration;

use crate::support::TestEnv;

const TABLES: [&str; 4] = ["users", "applications", "deployments", "api_keys"];

/// The steps of a move, in order (`move_step::MoveStep`).
const STEPS: [&str; 11] = [
    "record_move",
    "close_source",
    "create_target",
    "apply_schema",
    "copy_rows",
    "copy_buckets",
    "switch",
    "sync_features",
    "remove_source",
    "reopen",
    "finish",
];

fn tenant_id(env: &TestEnv, slug: &str) -> uuid::Uuid {
    env.control()
        .query_one("SELECT id FROM tenants WHERE slug = $1", &[&slug])
        .unwrap()
        .get(0)
}

fn status(env: &TestEnv, slug: &str) -> String {
    env.control()
        .query_one("SELECT status FROM tenants WHERE slug = $1", &[&slug])
        .unwrap()
        .get(0)
}

/// Gives the tenant `n` more users, each with an application, two deployments and an api key
/// (as the superuser, in database `db`).
fn fill(env: &TestEnv, db: &str, id: uuid::Uuid, n: i32, tag: &str) {
    env.admin(db)
        .execute(
            "WITH u AS (
               INSERT INTO users (tenant_id, email, password_hash, full_name, role)
               SELECT $1, $3 || g || '@x.test', 'h' || g, E'Name \\t\\n ' || g, 'member'
               FROM generate_series(1, $2) g RETURNING id, tenant_id),
             a AS (
               INSERT INTO applications (tenant_id, user_id, name, description, sandbox_id)
               SELECT tenant_id, id, 'app ' || $3, NULL, 'sb-' || id FROM u RETURNING id, tenant_id, user_id),
             d AS (
               INSERT INTO deployments (tenant_id, application_id, version, deployed_at)
               SELECT tenant_id, id, v, now() FROM a, (VALUES ('v1'), ('v2')) vs(v) RETURNING id)
             INSERT INTO api_keys (tenant_id, user_id, key_hash, expires_at)
             SELECT tenant_id, user_id, md5(random()::text), now() + interval '1 year' FROM a",
            &[&id, &n, &tag],
        )
        .unwrap();
}

/// Every row of the tenant in `db`, table by table, as JSON text ordered by id.
fn rows(env: &TestEnv, db: &str, id: uuid::Uuid) -> Vec<(String, Vec<String>)> {
    let mut c = env.admin(db);
    TABLES
        .iter()
        .map(|t| {
            let rows = c
                .query(
                    &format!(
                        "SELECT row_to_json(x)::text FROM {t} x WHERE tenant_id = $1 ORDER BY id"
                    ),
                    &[&id],
                )
                .unwrap()
                .iter()
                .map(|r| r.get(0))
                .collect();
            (t.to_string(), rows)
        })
        .collect()
}

/// Rows of the tenant left in `db`, in every table with a `tenant_id` (bookkeeping included).
fn leftovers(env: &TestEnv, db: &str, id: uuid::Uuid) -> i64 {
    let mut c = env.admin(db);
    [
        "users",
        "applications",
        "deployments",
        "api_keys",
        "tenant_features",
        "tenant_suspensions",
    ]
    .iter()
    .map(|t| -> i64 {
        c.query_one(
            &format!("SELECT count(*) FROM {t} WHERE tenant_id = $1"),
            &[&id],
        )
        .unwrap()
        .get(0)
    })
    .sum()
}

/// What `role` sees of its tenant's users in `db`, connecting as itself with its context set.
fn seen_by(env: &TestEnv, role: &str, db: &str, id: uuid::Uuid) -> Result<i64, String> {
    let mut c = env.connect_as(role, db).map_err(|e| e.to_string())?;
    let mut tx = c.transaction().map_err(|e| e.to_string())?;
    tx.execute(
        "SELECT set_config('app.tenant_id', $1, true)",
        &[&id.to_string()],
    )
    .map_err(|e| e.to_string())?;
    let n: i64 = tx
        .query_one("SELECT count(*) FROM users", &[])
        .map_err(|e| e.to_string())?
        .get(0);
    Ok(n)
}

fn features(env: &TestEnv, db: &str, id: uuid::Uuid) -> Vec<String> {
    env.admin(db)
        .query(
            "SELECT feature FROM tenant_features WHERE tenant_id = $1 ORDER BY 1",
            &[&id],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

/// The world after a finished upgrade of `slug` (pooled → premium silo) that had `before`.
#[track_caller]
fn assert_upgraded(env: &TestEnv, slug: &str, before: &[(String, Vec<String>)], status_: &str) {
    let id = tenant_id(env, slug);
    let silo = env.silo(slug);
    let r = env
        .control()
        .query_one(
            "SELECT status, tier, isolation, database_name, role_name FROM tenants WHERE id = $1",
            &[&id],
        )
        .unwrap();
    let got: (String, String, String, String, String) =
        (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4));
    assert_eq!(
        got,
        (
            status_.to_owned(),
            "premium".to_owned(),
            "siloed".to_owned(),
            silo.clone(),
            silo.clone()
        )
    );
    if status_ == "active" {
        assert_eq!(rows(env, &silo, id), before, "every row in the silo");
        assert_eq!(
            features(env, &silo, id),
            ["analytics", "api-access"],
            "premium's features in the silo"
        );
    }
    assert_eq!(
        leftovers(env, &env.pooled_db(), id),
        0,
        "nothing left pooled"
    );
    assert_eq!(
        env.scalar_i64("SELECT count(*) FROM moves", &[]),
        0,
        "the move's journal is closed"
    );
    assert_eq!(
        env.scalar_i64(
            "SELECT count(*) FROM audit_log WHERE tenant_id = $1 AND action = 'set-tier' AND details->>'to_isolation' = 'siloed'",
            &[&id]
        ),
        1,
        "one switch into the silo audited"
    );
    let limit = env.scalar_i64(
        "SELECT limit_value FROM quotas WHERE tenant_id = $1 AND resource = 'api_requests'",
        &[&id],
    );
    assert_eq!(limit, 10_000, "premium's quotas");
    let users = before[0].1.len() as i64;
    if status_ == "active" {
        assert_eq!(seen_by(env, &silo, &silo, id), Ok(users));
    } else {
        assert!(seen_by(env, &silo, &silo, id).is_err(), "closed silo");
    }
    let (dbs, roles) = env.owned_objects();
    assert!(dbs.contains(&silo) && roles.contains(&silo));
}

#[test]
fn an_upgrade_copies_every_row_into_a_silo_and_leaves_other_tenants_alone() {
    let env = TestEnv::new();
    env.provision("acme", "free");
    env.provision("other", "free");
    let (acme, other) = (tenant_id(&env, "acme"), tenant_id(&env, "other"));
    let pooled = env.pooled_db();
    fill(&env, &pooled, acme, 40, "a");
    fill(&env, &pooled, other, 7, "o");
    env.run(&["quota", "set", "acme", "sandboxes", "9"])
        .expect(0);
    let before = rows(&env, &pooled, acme);
    let others = rows(&env, &pooled, other);
    assert_eq!(before[2].1.len(), 80, "deployments to copy");

    let run = env
        .run(&["set-tier", "acme", "premium", "-o", "json"])
        .expect(0);
    let v = run.json();
    assert_eq!(v["tier"], "premium");
    assert_eq!(v["isolation"], "siloed");
    assert_eq!(v["status"], "active");
    assert_eq!(v["database"], env.silo("acme"));
    assert_eq!(v["quotas"]["sandboxes"]["limit"], 9, "an override follows");
    assert_eq!(v["quotas"]["users"]["limit"], 5);
    assert!(run.stderr.contains("[5/11] copy rows"), "{}", run.stderr);
    assert!(run.stderr.contains("copied 201 rows"), "{}", run.stderr);
    assert_upgraded(&env, "acme", &before, "active");

    // The other pooled tenant: its rows, and what the application role sees of them.
    assert_eq!(rows(&env, &pooled, other), others);
    assert_eq!(seen_by(&env, &env.app_role(), &pooled, other), Ok(8));
    // The audit trail: the start, the switch (moving), the end.
    let trail: Vec<(String, Option<String>, Option<String>)> = env
        .control()
        .query(
            "SELECT action, from_status, to_status FROM audit_log WHERE tenant_id = $1 AND action IN ('move.start', 'set-tier', 'move') ORDER BY id",
            &[&acme],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    let s = |x: &str| Some(x.to_owned());
    assert_eq!(
        trail,
        [
            ("move.start".to_owned(), s("active"), s("moving")),
            ("set-tier".to_owned(), s("moving"), s("moving")),
            ("move".to_owned(), s("moving"), s("active")),
        ]
    );
    let details: serde_json::Value = env
        .control()
        .query_one(
            "SELECT details FROM audit_log WHERE tenant_id = $1 AND action = 'set-tier'",
            &[&acme],
        )
        .unwrap()
        .get(0);
    assert_eq!(details["from_tier"], "free");
    assert_eq!(details["to_tier"], "premium");
    assert_eq!(details["to_isolation"], "siloed");
    // The same command again is a no-op; the data stays.
    env.run(&["set-tier", "acme", "premium"]).expect(0);
    assert_upgraded(&env, "acme", &before, "active");
    // The buckets (local backend: the same directories) are the tenant's still.
    for b in ["uploads", "assets", "backups"] {
        assert!(env.storage_root().join(format!("acme-{b}")).is_dir());
    }
}

#[test]
fn a_downgrade_copies_the_silo_into_the_pooled_database_and_drops_the_silo() {
    let env = TestEnv::new();
    env.provision("bigco", "premium");
    env.provision("other", "free");
    let (id, other) = (tenant_id(&env, "bigco"), tenant_id(&env, "other"));
    let silo = env.silo("bigco");
    let pooled = env.pooled_db();
    fill(&env, &pooled, other, 3, "o");
    let others = rows(&env, &pooled, other);
    // Free allows one user: the owner only, with its applications and keys.
    env.admin(&silo)
        .execute(
            "WITH a AS (INSERT INTO applications (tenant_id, user_id, name)
                        SELECT tenant_id, id, 'app' || g FROM users, generate_series(1, 6) g
                        RETURNING id, tenant_id, user_id)
             INSERT INTO deployments (tenant_id, application_id, version)
             SELECT tenant_id, id, 'v9' FROM a",
            &[],
        )
        .unwrap();
    let before = rows(&env, &silo, id);
    assert_eq!(before[1].1.len(), 6);

    let v = env
        .run(&["set-tier", "bigco", "free", "-o", "json"])
        .expect(0)
        .json();
    assert_eq!(
        (&v["tier"], &v["isolation"], &v["database"], &v["status"]),
        (
            &serde_json::json!("free"),
            &serde_json::json!("pooled"),
            &serde_json::json!(pooled),
            &serde_json::json!("active")
        )
    );
    assert_eq!(rows(&env, &pooled, id), before, "every row, pooled");
    assert!(!env.database_exists(&silo), "the silo is dropped");
    let (_, roles) = env.owned_objects();
    assert!(!roles.contains(&silo), "its role too: {roles:?}");
    assert_eq!(features(&env, &pooled, id), ["api-access"]);
    assert_eq!(seen_by(&env, &env.app_role(), &pooled, id), Ok(1));
    assert_eq!(rows(&env, &pooled, other), others, "the other tenant");
    assert_eq!(env.scalar_i64("SELECT count(*) FROM moves", &[]), 0);
    // And back up again: the same rows in a new silo.
    env.run(&["set-tier", "bigco", "premium"]).expect(0);
    assert_upgraded(&env, "bigco", &before, "active");
}

#[test]
fn a_suspended_tenant_moves_and_stays_suspended() {
    let env = TestEnv::new();
    env.provision("sleepy", "free");
    let id = tenant_id(&env, "sleepy");
    fill(&env, &env.pooled_db(), id, 3, "s");
    let before = rows(&env, &env.pooled_db(), id);
    env.run(&["suspend", "sleepy"]).expect(0);
    env.run(&["set-tier", "sleepy", "premium"]).expect(0);
    assert_upgraded(&env, "sleepy", &before, "suspended");
    let silo = env.silo("sleepy");
    let allowed: bool = env
        .admin("postgres")
        .query_one(
            "SELECT datallowconn FROM pg_database WHERE datname = $1",
            &[&silo],
        )
        .unwrap()
        .get(0);
    assert!(!allowed, "a suspended silo takes no connections");
    env.run(&["resume", "sleepy"]).expect(0);
    assert_upgraded(&env, "sleepy", &before, "active");
    // Down again while suspended: its rows stay hidden in the pooled database.
    env.admin(&silo)
        .execute("DELETE FROM users WHERE role <> 'owner'", &[])
        .unwrap();
    env.run(&["suspend", "sleepy"]).expect(0);
    env.run(&["set-tier", "sleepy", "free"]).expect(0);
    assert_eq!(status(&env, "sleepy"), "suspended");
    assert_eq!(seen_by(&env, &env.app_role(), &env.pooled_db(), id), Ok(0));
    env.run(&["resume", "sleepy"]).expect(0);
    assert_eq!(seen_by(&env, &env.app_role(), &env.pooled_db(), id), Ok(1));
}

/// Everything a refused command must leave as it was: every control row (hashed per table),
/// the databases and roles of the test, the rows of the silo.
#[derive(Debug, PartialEq, Eq)]
struct World {
    control: Vec<String>,
    objects: (Vec<String>, Vec<String>),
    silo_rows: Vec<String>,
}

fn world(env: &TestEnv, silo: &str) -> World {
    let mut ctl = env.control();
    let tables: Vec<String> = ctl
        .query(
            "SELECT tablename::text FROM pg_tables WHERE schemaname = 'public' ORDER BY 1",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let control = tables
        .iter()
        .map(|t| {
            ctl.query_one(
                &format!(
                    "SELECT '{t}' || coalesce(md5(string_agg(x::text, '|' ORDER BY x::text)), '') FROM \"{t}\" x"
                ),
                &[],
            )
            .unwrap()
            .get(0)
        })
        .collect();
    let silo_rows = env
        .admin(silo)
        .query("SELECT row_to_json(u)::text FROM users u ORDER BY id", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    World {
        control,
        objects: env.owned_objects(),
        silo_rows,
    }
}

#[test]
fn a_downgrade_over_a_hard_limit_is_refused_and_changes_nothing() {
    let env = TestEnv::new();
    env.provision("bigco", "premium");
    let id = tenant_id(&env, "bigco");
    let silo = env.silo("bigco");
    fill(&env, &silo, id, 2, "b"); // three users: free allows one
    env.run(&["usage", "refresh"]).expect(0);
    let before = world(&env, &silo);
    let run = env.run(&["set-tier", "bigco", "free"]).expect(3);
    assert!(
        run.stderr
            .contains("over the tier's hard limits (users 3 > 1)"),
        "{}",
        run.stderr
    );
    assert_eq!(world(&env, &silo), before, "nothing changed");
    assert_eq!(seen_by(&env, &silo, &silo, id), Ok(3), "still open");
    // An override of the limit, which a tier change keeps, lets it through.
    env.run(&["quota", "set", "bigco", "users", "3"]).expect(0);
    env.run(&["set-tier", "bigco", "free"]).expect(0);
    assert_eq!(
        env.scalar_i64(
            "SELECT limit_value FROM quotas WHERE tenant_id = $1 AND resource = 'users'",
            &[&id]
        ),
        3
    );
    assert_eq!(
        rows(&env, &env.pooled_db(), id)[0].1.len(),
        3,
        "the users, pooled"
    );
}

/// Crashes `set-tier slug to` at `point` (it must die by the signal).
#[track_caller]
fn crash(env: &TestEnv, slug: &str, to: &str, point: &str) {
    let run = env.run_env(&["set-tier", slug, to], &[("TENANTCTL_FAILPOINT", point)]);
    assert_eq!(
        run.code, None,
        "{point}: expected a crash, got {:?}\n{}",
        run.code, run.stderr
    );
}

/// The points a move can crash at: after each step's work, after its journal entry, and in the
/// copy's transaction before it commits.
fn crash_points() -> Vec<String> {
    let mut points = vec!["move:copy_rows:before-commit".to_owned()];
    for s in STEPS {
        points.push(format!("move:{s}"));
        points.push(format!("move:{s}:journaled"));
    }
    points
}

#[test]
fn an_upgrade_crashed_at_any_step_converges_when_run_again() {
    let env = TestEnv::new();
    env.provision("other", "free");
    let other = tenant_id(&env, "other");
    fill(&env, &env.pooled_db(), other, 2, "o");
    let others = rows(&env, &env.pooled_db(), other);
    for (i, point) in crash_points().iter().enumerate() {
        let slug = format!("up{i}");
        env.provision(&slug, "free");
        let id = tenant_id(&env, &slug);
        fill(&env, &env.pooled_db(), id, 5, "u");
        let before = rows(&env, &env.pooled_db(), id);
        crash(&env, &slug, "premium", point);
        let finished = point == "move:finish" || point == "move:finish:journaled";
        assert_eq!(
            status(&env, &slug),
            if finished { "active" } else { "moving" },
            "{point}"
        );
        if !finished {
            // Moving: every other command is refused, naming how to go on.
            let refused = env.run(&["resume", &slug]).expect(3);
            assert!(
                refused
                    .stderr
                    .contains(&format!("tenantctl set-tier {slug} premium")),
                "{point}: {}",
                refused.stderr
            );
        }
        let rerun = env.run(&["set-tier", &slug, "premium"]).expect(0);
        assert!(!rerun.stderr.contains("db error"), "{}", rerun.stderr);
        assert_upgraded(&env, &slug, &before, "active");
        assert_eq!(rows(&env, &env.pooled_db(), other), others, "{point}");
    }
    assert_eq!(
        seen_by(&env, &env.app_role(), &env.pooled_db(), other),
        Ok(3)
    );
}

#[test]
fn a_downgrade_crashed_at_any_step_converges_when_run_again() {
    let env = TestEnv::new();
    for (i, point) in crash_points().iter().enumerate().step_by(2) {
        let slug = format!("down{i}");
        env.provision(&slug, "premium");
        let id = tenant_id(&env, &slug);
        env.admin(&env.silo(&slug))
            .execute(
                "INSERT INTO applications (tenant_id, user_id, name) SELECT tenant_id, id, 'a' FROM users",
                &[],
            )
            .unwrap();
        let before = rows(&env, &env.silo(&slug), id);
        crash(&env, &slug, "free", point);
        env.run(&["set-tier", &slug, "free"]).expect(0);
        assert_eq!(status(&env, &slug), "active", "{point}");
        assert_eq!(rows(&env, &env.pooled_db(), id), before, "{point}");
        assert!(!env.database_exists(&env.silo(&slug)), "{point}");
        assert_eq!(seen_by(&env, &env.app_role(), &env.pooled_db(), id), Ok(1));
        assert_eq!(env.scalar_i64("SELECT count(*) FROM moves", &[]), 0);
    }
}

#[test]
fn a_move_crashed_before_its_switch_is_cancelled_by_the_old_tier() {
    let env = TestEnv::new();
    let before_switch: Vec<String> = crash_points()
        .into_iter()
        .filter(|p| {
            !p.starts_with("move:switch")
                && !STEPS[7..]
                    .iter()
                    .any(|s| p.starts_with(&format!("move:{s}")))
        })
        .collect();
    for (i, point) in before_switch.iter().enumerate() {
        let slug = format!("undo{i}");
        env.provision(&slug, "free");
        let id = tenant_id(&env, &slug);
        fill(&env, &env.pooled_db(), id, 2, "u");
        let before = rows(&env, &env.pooled_db(), id);
        crash(&env, &slug, "premium", point);
        let run = env.run(&["set-tier", &slug, "free"]).expect(0);
        assert!(run.stderr.contains("cancelling the move"), "{}", run.stderr);
        assert_eq!(status(&env, &slug), "active", "{point}");
        assert_eq!(rows(&env, &env.pooled_db(), id), before, "{point}");
        assert_eq!(seen_by(&env, &env.app_role(), &env.pooled_db(), id), Ok(3));
        assert!(!env.database_exists(&env.silo(&slug)), "{point}");
        let (_, roles) = env.owned_objects();
        assert!(!roles.contains(&env.silo(&slug)), "{point}: {roles:?}");
        assert_eq!(
            env.scalar_i64(
                "SELECT count(*) FROM audit_log WHERE tenant_id = $1 AND action = 'move' AND details->>'cancelled' = 'true'",
                &[&id]
            ),
            1
        );
    }
    // After the switch the old tier no longer cancels: the move must be finished.
    env.provision("late", "free");
    crash(&env, "late", "premium", "move:switch");
    let run = env.run(&["set-tier", "late", "free"]).expect(3);
    assert!(
        run.stderr
            .contains("tenantctl set-tier late premium` to finish"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("to cancel"), "{}", run.stderr);
    env.run(&["set-tier", "late", "premium"]).expect(0);
}

#[test]
fn kill_9_at_random_moments_of_moves_then_rerun_converges() {
    let env = TestEnv::new();
    for (i, delay_ms) in [30u64, 90, 160, 260, 400, 650].into_iter().enumerate() {
        let slug = format!("kill{i}");
        env.provision(&slug, "free");
        let id = tenant_id(&env, &slug);
        fill(&env, &env.pooled_db(), id, 200, "k");
        let before = rows(&env, &env.pooled_db(), id);
        let mut child = env
            .cmd()
            .args(["set-tier", &slug, "premium"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        let _ = child.kill();
        let _ = child.wait();
        env.run(&["set-tier", &slug, "premium"]).expect(0);
        assert_upgraded(&env, &slug, &before, "active");
        // And down again, killed too.
        env.admin(&env.silo(&slug))
            .execute("DELETE FROM users WHERE role <> 'owner'", &[])
            .unwrap();
        let before = rows(&env, &env.silo(&slug), id);
        let mut child = env
            .cmd()
            .args(["set-tier", &slug, "free"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        let _ = child.kill();
        let _ = child.wait();
        env.run(&["set-tier", &slug, "free"]).expect(0);
        assert_eq!(rows(&env, &env.pooled_db(), id), before);
        assert!(!env.database_exists(&env.silo(&slug)));
        assert_eq!(status(&env, &slug), "active");
    }
}

#[test]
fn a_purge_settles_a_move_left_midway() {
    let env = TestEnv::new();
    for (slug, point) in [
        ("before", "move:copy_rows:journaled"),
        ("after", "move:switch"),
    ] {
        env.provision(slug, "free");
        let id = tenant_id(&env, slug);
        fill(&env, &env.pooled_db(), id, 2, "p");
        crash(&env, slug, "premium", point);
        let purged = env
            .run(&["deprovision", slug, "--purge", "--yes"])
            .expect(0);
        assert!(
            purged.stderr.contains(&format!(
                "settled the move of tenant `{slug}` to tier `premium` before purging it"
            )),
            "{}",
            purged.stderr
        );
        assert_eq!(leftovers(&env, &env.pooled_db(), id), 0, "{slug}");
        assert!(!env.database_exists(&env.silo(slug)), "{slug}");
        assert_eq!(
            env.scalar_i64("SELECT count(*) FROM tenants WHERE id = $1", &[&id]),
            0
        );
    }
    let (dbs, roles) = env.owned_objects();
    assert_eq!(dbs, [env.pooled_db()]);
    assert_eq!(roles, [env.app_role()]);
}

#[test]
fn billing_prorates_an_upgrade_by_day() {
    let env = TestEnv::new();
    env.provision_at("mover", "free", "2026-08-01T00:00:00Z");
    env.run(&["set-tier", "mover", "premium"]).expect(0);
    for action in ["move.start", "set-tier", "move"] {
        env.backdate("mover", action, "2026-09-11T15:00:00Z");
    }
    env.run(&["bill", "--period", "2026-09"]).expect(0);
    let v = env
        .run(&["invoices", "list", "--period", "2026-09", "-o", "json"])
        .expect(0)
        .json();
    let inv = v
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["slug"] == "mover")
        .unwrap_or_else(|| panic!("no invoice for mover: {v}"))
        .clone();
    let lines: Vec<(String, i64, String)> = inv["lines"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["kind"] == "base")
        .map(|l| {
            (
                l["tier"].as_str().unwrap().to_owned(),
                l["quantity"].as_i64().unwrap(),
                l["amount"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        lines,
        [
            ("free".to_owned(), 10, "0.00".to_owned()),
            ("premium".to_owned(), 20, "332.67".to_owned())
        ],
        "{inv}"
    );
}

#[test]
fn on_s3_the_buckets_move_between_shared_prefixes_and_buckets_of_their_own() {
    use crate::support::s3::{files, S3Env};
    let env = TestEnv::new();
    let s3 = S3Env::new(&env);
    env.provision("pool", "free");
    env.provision("other", "free");
    let up = s3.pooled_prefix("pool", "uploads");
    std::fs::create_dir_all(up.join("a/b")).unwrap();
    std::fs::write(up.join("x.bin"), vec![7u8; 3000]).unwrap();
    std::fs::write(up.join("a/b/y.txt"), "hello").unwrap();
    let others = files(&s3.pooled_prefix("other", "uploads"));

    env.run(&["set-tier", "pool", "premium"]).expect(0);
    let silo = s3.silo_bucket("pool", "uploads");
    assert_eq!(
        files(&silo),
        [".tenantctl-bucket", "a/b/y.txt", "x.bin"],
        "the objects, in a bucket of its own"
    );
    assert_eq!(std::fs::read(silo.join("x.bin")).unwrap(), vec![7u8; 3000]);
    for kind in ["uploads", "assets", "backups"] {
        assert!(
            files(&s3.pooled_prefix("pool", kind)).is_empty(),
            "the shared prefix {kind} is removed"
        );
        assert_eq!(files(&s3.silo_bucket("pool", kind))[0], ".tenantctl-bucket");
    }
    assert_eq!(files(&s3.pooled_prefix("other", "uploads")), others);
    let show = env.run(&["show", "pool", "-o", "json"]).expect(0).json();
    assert_eq!(
        show["buckets"][0]["location"],
        format!("s3://{}pool-uploads/", s3.bucket_prefix)
    );

    // And back: the objects return to the shared bucket's prefix, the buckets go.
    env.run(&["set-tier", "pool", "free"]).expect(0);
    assert_eq!(
        files(&s3.pooled_prefix("pool", "uploads")),
        [".tenantctl-bucket", "a/b/y.txt", "x.bin"]
    );
    assert!(!silo.exists(), "the tenant's own bucket is removed");
}
