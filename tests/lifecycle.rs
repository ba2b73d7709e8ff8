//! `suspend`, `resume`, `deprovision`, `restore`, `purge`, `audit`: every transition and every
//! refused one, enforced in the data plane, and crash-safe.

use crate::support::TestEnv;

fn status(env: &TestEnv, slug: &str) -> Option<String> {
    env.control()
        .query_opt("SELECT status FROM tenants WHERE slug = $1", &[&slug])
        .unwrap()
        .map(|r| r.get(0))
}

fn tenant_id(env: &TestEnv, slug: &str) -> String {
    env.control()
        .query_one("SELECT id::text FROM tenants WHERE slug = $1", &[&slug])
        .unwrap()
        .get(0)
}

/// Rows the pooled application role sees with `slug`'s context set.
fn pooled_rows_seen(env: &TestEnv, slug: &str) -> i64 {
    let id = tenant_id(env, slug);
    let mut app = env.connect_as(&env.app_role(), &env.pooled_db()).unwrap();
    let mut tx = app.transaction().unwrap();
    tx.execute("SELECT set_config('app.tenant_id', $1, true)", &[&id])
        .unwrap();
    tx.query_one("SELECT count(*) FROM users", &[])
        .unwrap()
        .get(0)
}

#[test]
fn transitions_and_refused_transitions() {
    let env = TestEnv::new();
    env.run(&["provision", "acme", "--tier", "premium"])
        .expect(0);
    let audits = || env.scalar_i64("SELECT count(*) FROM audit_log", &[]);

    let refused = |args: &[&str], needle: &str| {
        let before = (status(&env, "acme"), audits());
        let run = env.run(args).expect(3);
        assert!(run.stderr.contains(needle), "{args:?}: {}", run.stderr);
        assert_eq!(
            (status(&env, "acme"), audits()),
            before,
            "{args:?} changed something"
        );
    };
    refused(
        &["resume", "acme"],
        "cannot resume tenant `acme`: it is active",
    );
    refused(
        &["restore", "acme"],
        "cannot restore tenant `acme`: it is active",
    );
    refused(&["suspend", "ghost"], "no tenant `ghost`");

    let v = env
        .run(&[
            "suspend",
            "acme",
            "--reason",
            "unpaid invoice",
            "-o",
            "json",
        ])
        .expect(0)
        .json();
    assert_eq!(v["status"], "suspended");
    refused(&["suspend", "acme"], "it is suspended");
    refused(&["provision", "acme", "--tier", "premium"], "is suspended");
    assert_eq!(
        env.run(&["resume", "acme", "-o", "json"]).expect(0).json()["status"],
        "active"
    );

    let v = env
        .run(&["deprovision", "acme", "-o", "json"])
        .expect(0)
        .json();
    assert_eq!(v["status"], "deleted");
    assert!(!v["deleted_at"].is_null());
    refused(&["suspend", "acme"], "it is deleted");
    refused(&["resume", "acme"], "it is deleted");
    refused(&["deprovision", "acme"], "it is deleted");
    // The slug stays reserved.
    refused(&["provision", "acme", "--tier", "premium"], "is deleted");
    assert_eq!(
        env.run(&["restore", "acme", "-o", "json"]).expect(0).json()["status"],
        "active"
    );

    env.run(&["suspend", "Acme"]).expect(2);
    let actions: Vec<(String, Option<String>, Option<String>, serde_json::Value)> = env
        .control()
        .query("SELECT action, from_status, to_status, details FROM audit_log WHERE slug = 'acme' ORDER BY id", &[])
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect();
    let names: Vec<&str> = actions.iter().map(|a| a.0.as_str()).collect();
    assert_eq!(
        names,
        [
            "provision.start",
            "provision",
            "suspend.start",
            "suspend",
            "resume.start",
            "resume",
            "deprovision.start",
            "deprovision",
            "restore.start",
            "restore"
        ]
    );
    assert_eq!(actions[3].3["reason"], "unpaid invoice");
    // Each command writes its intermediate status first, its final status when done.
    let moves: Vec<(Option<&str>, Option<&str>)> = actions[2..]
        .iter()
        .map(|a| (a.1.as_deref(), a.2.as_deref()))
        .collect();
    assert_eq!(
        moves,
        [
            (Some("active"), Some("suspending")),
            (Some("suspending"), Some("suspended")),
            (Some("suspended"), Some("resuming")),
            (Some("resuming"), Some("active")),
            (Some("active"), Some("deprovisioning")),
            (Some("deprovisioning"), Some("deleted")),
            (Some("deleted"), Some("restoring")),
            (Some("restoring"), Some("active")),
        ]
    );
}

#[test]
fn a_suspended_silo_refuses_its_role_and_ends_its_sessions() {
    let env = TestEnv::new();
    env.run(&["provision", "acme", "--tier", "premium"])
        .expect(0);
    let (db, role) = (env.silo("acme"), env.silo("acme"));
    let mut live = env.connect_as(&role, &db).unwrap();
    live.query_one("SELECT 1", &[]).unwrap();

    env.run(&["suspend", "acme"]).expect(0);
    assert!(
        live.query_one("SELECT 1", &[]).is_err(),
        "the live session survived the suspension"
    );
    let err = env
        .connect_as(&role, &db)
        .err()
        .expect("the suspended role connected");
    let msg = err
        .as_db_error()
        .map(|e| e.message().to_owned())
        .unwrap_or_default();
    assert!(
        msg.contains("not permitted to log in")
            || msg.contains("not currently accepting connections")
            || msg.contains("permission denied"),
        "{msg}"
    );
    let mut pg = env.admin("postgres");
    let r = pg
        .query_one(
            "SELECT rolcanlogin FROM pg_roles WHERE rolname = $1",
            &[&role],
        )
        .unwrap();
    assert!(!r.get::<_, bool>(0));
    let r = pg
        .query_one(
            "SELECT datallowconn FROM pg_database WHERE datname = $1",
            &[&db],
        )
        .unwrap();
    assert!(!r.get::<_, bool>(0));

    env.run(&["resume", "acme"]).expect(0);
    let mut back = env.connect_as(&role, &db).expect("resumed role connects");
    back.query_one("SELECT count(*) FROM users", &[]).unwrap();
    let r = pg
        .query_one(
            "SELECT rolcanlogin, rolsuper, rolbypassrls FROM pg_roles WHERE rolname = $1",
            &[&role],
        )
        .unwrap();
    assert_eq!(
        (
            r.get::<_, bool>(0),
            r.get::<_, bool>(1),
            r.get::<_, bool>(2)
        ),
        (true, false, false)
    );
    // Exactly what was there: only the tenant's role may connect.
    let other = env.connect_as(&env.app_role(), &db);
    assert!(other.is_err());
}

#[test]
fn pooled_rows_vanish_while_suspended_even_with_the_tenants_context() {
    let env = TestEnv::new();
    env.run(&["provision", "alpha", "--tier", "free"]).expect(0);
    env.run(&["provision", "bravo", "--tier", "free"]).expect(0);
    assert_eq!(pooled_rows_seen(&env, "alpha"), 1);
    env.run(&["suspend", "alpha"]).expect(0);
    assert_eq!(pooled_rows_seen(&env, "alpha"), 0);
    assert_eq!(
        pooled_rows_seen(&env, "bravo"),
        1,
        "another tenant is untouched"
    );
    // Nor can it write.
    let id = tenant_id(&env, "alpha");
    let mut app = env.connect_as(&env.app_role(), &env.pooled_db()).unwrap();
    let mut tx = app.transaction().unwrap();
    tx.execute("SELECT set_config('app.tenant_id', $1, true)", &[&id])
        .unwrap();
    let insert = tx.execute("INSERT INTO users (tenant_id, email, password_hash) VALUES ($1::text::uuid, 'new@a.io', 'h')", &[&id]);
    assert!(insert.is_err(), "a suspended tenant wrote a row");
    drop(tx);
    // The rows are still there (as the superuser sees).
    let kept: i64 = env
        .admin(&env.pooled_db())
        .query_one(
            "SELECT count(*) FROM users WHERE tenant_id = $1::text::uuid",
            &[&id],
        )
        .unwrap()
        .get(0);
    assert_eq!(kept, 1);
    env.run(&["resume", "alpha"]).expect(0);
    assert_eq!(pooled_rows_seen(&env, "alpha"), 1);
}

#[test]
fn restore_brings_back_every_row() {
    let env = TestEnv::new();
    env.run(&["provision", "silo", "--tier", "premium"])
        .expect(0);
    env.run(&["provision", "pool", "--tier", "free"]).expect(0);
    for (slug, db) in [("silo", env.silo("silo")), ("pool", env.pooled_db())] {
        let id = tenant_id(&env, slug);
        let mut c = env.admin(&db);
        c.execute(
            "INSERT INTO applications (tenant_id, user_id, name)
             SELECT tenant_id, id, 'app-' || g FROM users, generate_series(1, 25) g WHERE tenant_id = $1::text::uuid",
            &[&id],
        )
        .unwrap();
    }
    let count = |db: &str, slug: &str| -> i64 {
        env.admin(db)
            .query_one("SELECT (SELECT count(*) FROM users WHERE tenant_id = $1::text::uuid) + (SELECT count(*) FROM applications WHERE tenant_id = $1::text::uuid)", &[&tenant_id(&env, slug)])
            .unwrap()
            .get(0)
    };
    let before = (
        count(&env.silo("silo"), "silo"),
        count(&env.pooled_db(), "pool"),
    );
    env.run(&["deprovision", "silo"]).expect(0);
    env.run(&["deprovision", "pool"]).expect(0);
    assert!(env
        .connect_as(&env.silo("silo"), &env.silo("silo"))
        .is_err());
    assert_eq!(pooled_rows_seen(&env, "pool"), 0);
    env.run(&["restore", "silo"]).expect(0);
    env.run(&["restore", "pool"]).expect(0);
    assert_eq!(
        (
            count(&env.silo("silo"), "silo"),
            count(&env.pooled_db(), "pool")
        ),
        before
    );
    assert_eq!(before, (26, 26));
    env.connect_as(&env.silo("silo"), &env.silo("silo"))
        .expect("restored role connects");
    assert_eq!(pooled_rows_seen(&env, "pool"), 1);
}

/// Nothing of `slug` left: database, role, pooled rows, control rows, buckets.
#[track_caller]
fn assert_gone(env: &TestEnv, slug: &str, id: &str, siloed: bool) {
    if siloed {
        assert!(!env.database_exists(&env.silo(slug)));
        let roles: i64 = env
            .admin("postgres")
            .query_one(
                "SELECT count(*) FROM pg_roles WHERE rolname = $1",
                &[&env.silo(slug)],
            )
            .unwrap()
            .get(0);
        assert_eq!(roles, 0);
    } else {
        let mut pool = env.admin(&env.pooled_db());
        for t in [
            "users",
            "applications",
            "deployments",
            "api_keys",
            "tenant_suspensions",
        ] {
            let n: i64 = pool
                .query_one(
                    &format!("SELECT count(*) FROM {t} WHERE tenant_id = $1::text::uuid"),
                    &[&id],
                )
                .unwrap()
                .get(0);
            assert_eq!(n, 0, "{t} keeps rows of {slug}");
        }
    }
    for t in [
        "tenants",
        "quotas",
        "usage_events",
        "usage_totals",
        "measured_usage",
        "provisioning_journal",
    ] {
        let col = if t == "tenants" { "id" } else { "tenant_id" };
        let n = env.scalar_i64(
            &format!("SELECT count(*) FROM {t} WHERE {col} = $1::text::uuid"),
            &[&id],
        );
        assert_eq!(n, 0, "{t} keeps rows of {slug}");
    }
    for b in ["uploads", "assets", "backups"] {
        assert!(!env.storage_root().join(format!("{slug}-{b}")).exists());
    }
}

#[test]
fn purge_leaves_nothing_and_frees_the_slug() {
    let env = TestEnv::new();
    env.run(&["provision", "silo", "--tier", "premium"])
        .expect(0);
    env.run(&["provision", "pool", "--tier", "free"]).expect(0);
    env.run(&["provision", "keep", "--tier", "free"]).expect(0);
    env.run(&["usage", "record", "silo", "api_requests", "5"])
        .expect(0);
    env.run(&["usage", "record", "pool", "api_requests", "5"])
        .expect(0);
    env.run(&["quota", "show", "pool"]).expect(0);
    let (silo_id, pool_id) = (tenant_id(&env, "silo"), tenant_id(&env, "pool"));

    // Without a terminal, --purge needs --yes, and nothing changes without it.
    let run = env.run(&["deprovision", "silo", "--purge"]).expect(2);
    assert!(run.stderr.contains("without --yes"), "{}", run.stderr);
    assert_eq!(status(&env, "silo").as_deref(), Some("active"));

    let v = env
        .run(&["deprovision", "silo", "--purge", "--yes", "-o", "json"])
        .expect(0)
        .json();
    assert_eq!(v[0]["database"], env.silo("silo"));
    env.run(&["deprovision", "pool", "--purge", "--yes"])
        .expect(0);
    assert_gone(&env, "silo", &silo_id, true);
    assert_gone(&env, "pool", &pool_id, false);
    assert_eq!(
        pooled_rows_seen(&env, "keep"),
        1,
        "another pooled tenant is untouched"
    );
    // History stays; the slug is free again.
    let purges = env.scalar_i64("SELECT count(*) FROM audit_log WHERE action = 'purge'", &[]);
    assert_eq!(purges, 2);
    env.run(&["provision", "silo", "--tier", "premium"])
        .expect(0);
    env.run(&["deprovision", "ghost", "--purge", "--yes"])
        .expect(3);
}

#[test]
fn purge_expired_honours_retention() {
    let env = TestEnv::new();
    env.run(&["provision", "old", "--tier", "premium"])
        .expect(0);
    env.run(&["provision", "new", "--tier", "free"]).expect(0);
    env.run(&["deprovision", "old"]).expect(0);
    env.run(&["deprovision", "new"]).expect(0);
    let old_id = tenant_id(&env, "old");
    env.control()
        .execute(
            "UPDATE tenants SET deleted_at = now() - interval '31 days', purge_after = now() - interval '1 day'
             WHERE slug = 'old'",
            &[],
        )
        .unwrap();

    let run = env.run(&["restore", "old"]).expect(3);
    assert!(
        run.stderr.contains("retention period ended"),
        "{}",
        run.stderr
    );
    env.run(&["purge", "--expired"]).expect(2);
    let v = env
        .run(&["purge", "--expired", "--yes", "-o", "json"])
        .expect(0)
        .json();
    assert_eq!(v.as_array().unwrap().len(), 1);
    assert_eq!(v[0]["slug"], "old");
    assert_gone(&env, "old", &old_id, true);
    assert_eq!(status(&env, "new").as_deref(), Some("deleted"));
    // Retention is fixed at deletion: a shorter one configured later does not expire it.
    let v = env
        .run_env(
            &["purge", "--expired", "--yes", "-o", "json"],
            &[("TENANTCTL_RETENTION_DAYS", "0")],
        )
        .expect(0)
        .json();
    assert_eq!(v, serde_json::json!([]));
    assert_eq!(status(&env, "new").as_deref(), Some("deleted"));
    env.run_env(&["list"], &[("TENANTCTL_RETENTION_DAYS", "forever")])
        .expect(2);
}

#[test]
fn killed_lifecycle_operations_converge_when_run_again() {
    let env = TestEnv::new();
    for (i, point) in ["purge:deleting", "purge:data", "purge:buckets"]
        .iter()
        .enumerate()
    {
        for (tier, siloed) in [("premium", true), ("free", false)] {
            let slug = format!("p{i}-{tier}");
            env.run(&["provision", &slug, "--tier", tier]).expect(0);
            let id = tenant_id(&env, &slug);
            let crashed = env.run_env(
                &["deprovision", &slug, "--purge", "--yes"],
                &[("TENANTCTL_FAILPOINT", point)],
            );
            assert_eq!(crashed.code, None, "{point}: {}", crashed.stderr);
            assert_eq!(status(&env, &slug).as_deref(), Some("deleting"));
            env.run(&["deprovision", &slug, "--purge", "--yes"])
                .expect(0);
            assert_gone(&env, &slug, &id, siloed);
        }
    }
    // An interrupted purge is also finished by `purge --expired`.
    env.run(&["provision", "half", "--tier", "premium"])
        .expect(0);
    let id = tenant_id(&env, "half");
    env.run_env(
        &["deprovision", "half", "--purge", "--yes"],
        &[("TENANTCTL_FAILPOINT", "purge:data")],
    );
    env.run(&["purge", "--expired", "--yes"]).expect(0);
    assert_gone(&env, "half", &id, true);

    // Interrupted suspend, resume, deprovision and restore: tests/faults.rs.
}

#[test]
fn audit_lists_actions_as_json_and_filters() {
    let env = TestEnv::new();
    env.run(&["provision", "acme", "--tier", "free", "--actor", "alice"])
        .expect(0);
    env.run(&["provision", "beta", "--tier", "free"]).expect(0);
    env.run(&["suspend", "acme", "--reason", "abuse", "--actor", "bob"])
        .expect(0);
    env.run(&["quota", "set", "acme", "users", "3"]).expect(0);
    let v = env.run(&["audit", "acme", "-o", "json"]).expect(0).json();
    let actions: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "provision.start",
            "provision",
            "suspend.start",
            "suspend",
            "quota.set"
        ]
    );
    let suspend = &v[3];
    assert_eq!(
        (
            suspend["actor"].as_str(),
            suspend["from_status"].as_str(),
            suspend["to_status"].as_str()
        ),
        (Some("bob"), Some("suspending"), Some("suspended"))
    );
    assert_eq!(suspend["details"]["reason"], "abuse");
    assert!(suspend["at"].is_string());
    let all = env.run(&["audit", "-o", "json"]).expect(0).json();
    assert_eq!(all.as_array().unwrap().len(), 7);
    let future = env
        .run(&["audit", "--since", "2999-01-01", "-o", "json"])
        .expect(0)
        .json();
    assert_eq!(future, serde_json::json!([]));
    env.run(&["audit", "--since", "someday"]).expect(2);
    let table = env.run(&["audit", "acme"]).expect(0).stdout;
    assert!(
        table.contains("suspend") && table.contains("bob"),
        "{table}"
    );
}

#[test]
fn a_tenant_deprovisioned_mid_provisioning_restores_to_provisioning_and_finishes() {
    let env = TestEnv::new();
    let crashed = env.run_env(
        &["provision", "half", "--tier", "premium"],
        &[("TENANTCTL_FAILPOINT", "after-step:3")],
    );
    assert_eq!(crashed.code, None);
    env.run(&["deprovision", "half"]).expect(0);
    assert_eq!(
        env.run(&["restore", "half", "-o", "json"]).expect(0).json()["status"],
        "provisioning"
    );
    env.run(&["provision", "half", "--tier", "premium"])
        .expect(0);
    assert_eq!(status(&env, "half").as_deref(), Some("active"));
    env.connect_as(&env.silo("half"), &env.silo("half"))
        .expect("the finished tenant's role connects");
    // Crashed before its database existed: deprovision and restore have nothing to close or open.
    let crashed = env.run_env(
        &["provision", "early", "--tier", "premium"],
        &[("TENANTCTL_FAILPOINT", "after-step:1")],
    );
    assert_eq!(crashed.code, None);
    env.run(&["deprovision", "early"]).expect(0);
    env.run(&["restore", "early"]).expect(0);
    env.run(&["provision", "early", "--tier", "premium"])
        .expect(0);
    assert_eq!(status(&env, "early").as_deref(), Some("active"));
}

/// Billing reads completed transitions only: a tenant left `resuming` is billed as the suspended
/// tenant it still was (every day), one left `restoring` as the deleted tenant it still was
/// (no day after its deletion).
#[test]
fn interrupted_resume_and_restore_bill_like_where_they_started() {
    let env = TestEnv::new();
    env.provision_at("halfback", "premium", "2026-09-01T00:00:00Z");
    env.run(&["suspend", "halfback"]).expect(0);
    env.backdate("halfback", "suspend.start", "2026-10-05T00:00:00Z");
    env.backdate("halfback", "suspend", "2026-10-05T00:00:01Z");
    let crashed = env.run_env(
        &["resume", "halfback"],
        &[("TENANTCTL_FAILPOINT", "resume:opened")],
    );
    assert_eq!(crashed.code, None);
    env.backdate("halfback", "resume.start", "2026-10-10T00:00:00Z");

    env.provision_at("halfgone", "premium", "2026-09-01T00:00:00Z");
    env.run(&["deprovision", "halfgone"]).expect(0);
    env.backdate("halfgone", "deprovision.start", "2026-10-05T12:00:00Z");
    env.backdate("halfgone", "deprovision", "2026-10-05T12:00:01Z");
    let crashed = env.run_env(
        &["restore", "halfgone"],
        &[("TENANTCTL_FAILPOINT", "restore:opened")],
    );
    assert_eq!(crashed.code, None);
    env.backdate("halfgone", "restore.start", "2026-10-10T00:00:00Z");
    assert_eq!(
        (status(&env, "halfback"), status(&env, "halfgone")),
        (Some("resuming".into()), Some("restoring".into()))
    );

    let dry = env
        .run(&["bill", "--period", "2026-10", "--dry-run", "-o", "json"])
        .expect(0)
        .json();
    let base_days = |slug: &str| {
        let inv = dry["invoices"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["slug"] == slug)
            .unwrap_or_else(|| panic!("no invoice for {slug}: {dry}"));
        let base = &inv["lines"][0];
        assert!(base["resource"].is_null(), "{inv}");
        (base["quantity"].as_i64().unwrap(), base["amount"].clone())
    };
    // 499.00 for all 31 days; 499.00 × 5 / 31 = 80.48.
    assert_eq!(base_days("halfback"), (31, serde_json::json!("499.00")));
    assert_eq!(base_days("halfgone"), (5, serde_json::json!("80.48")));
}
