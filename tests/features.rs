//! `features show|grant|revoke|reset|check`, `provision --feature`, `set-tier` and the
//! lifecycle commands keeping `tenant_features` in the data plane in step with the control
//! database; what an application session sees of it.

use serde_json::json;

use crate::support::TestEnv;

fn tenant_id(env: &TestEnv, slug: &str) -> String {
    env.control()
        .query_one("SELECT id::text FROM tenants WHERE slug = $1", &[&slug])
        .unwrap()
        .get(0)
}

/// The `tenant_features` rows `role` sees in `db` with `slug`'s context set, in a transaction.
fn seen_as(env: &TestEnv, role: &str, db: &str, slug: &str) -> Vec<(String, String)> {
    let id = tenant_id(env, slug);
    let mut app = env.connect_as(role, db).unwrap();
    let mut tx = app.transaction().unwrap();
    tx.execute("SELECT set_config('app.tenant_id', $1, true)", &[&id])
        .unwrap();
    tx.query(
        "SELECT tenant_id::text, feature FROM tenant_features ORDER BY feature",
        &[],
    )
    .unwrap()
    .iter()
    .map(|r| (r.get(0), r.get(1)))
    .collect()
}

/// The feature names `slug`'s application sees (pooled: the shared app role; siloed: its own).
fn app_sees(env: &TestEnv, slug: &str, siloed: bool) -> Vec<String> {
    let (role, db) = if siloed {
        (env.silo(slug), env.silo(slug))
    } else {
        (env.app_role(), env.pooled_db())
    };
    let id = tenant_id(env, slug);
    seen_as(env, &role, &db, slug)
        .into_iter()
        .map(|(t, f)| {
            assert_eq!(t, id, "a row of another tenant");
            f
        })
        .collect()
}

/// Every `tenant_features` row of `slug` in `db`, read as the superuser (past every policy).
fn stored(env: &TestEnv, db: &str, slug: &str) -> Vec<String> {
    let id = tenant_id(env, slug);
    env.admin(db)
        .query(
            "SELECT feature FROM tenant_features WHERE tenant_id = $1::text::uuid ORDER BY 1",
            &[&id],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

fn show_json(env: &TestEnv, slug: &str) -> serde_json::Value {
    env.run(&["features", "show", slug, "-o", "json"])
        .expect(0)
        .json()
}

fn audits(env: &TestEnv) -> i64 {
    env.scalar_i64("SELECT count(*) FROM audit_log", &[])
}

#[test]
fn provision_feature_adds_to_the_tier_and_show_and_check_report_it() {
    let env = TestEnv::new();
    let run = env
        .run(&[
            "provision",
            "alpha",
            "--tier",
            "free",
            "--feature",
            "beta-ui",
            "--feature",
            "beta-ui",
            "-o",
            "json",
        ])
        .expect(0);
    assert_eq!(
        run.json()["tenant"]["features"],
        json!(["api-access", "beta-ui"])
    );
    assert!(
        run.stderr.contains("[5/8] seed quotas and features ... ok"),
        "{}",
        run.stderr
    );

    let v = env.run(&["show", "alpha", "-o", "json"]).expect(0).json();
    assert_eq!(v["features"], json!(["api-access", "beta-ui"]));
    let list = env.run(&["list", "-o", "json"]).expect(0).json();
    assert_eq!(list[0]["features"], json!(["api-access", "beta-ui"]));
    let table = env.run(&["show", "alpha"]).expect(0).stdout;
    assert!(table.contains("api-access beta-ui"), "{table}");

    assert_eq!(
        show_json(&env, "alpha"),
        json!({
            "slug": "alpha",
            "tier": "free",
            "status": "active",
            "features": ["api-access", "beta-ui"],
            "entitlements": [
                {"feature": "api-access", "from_tier": true, "override": null, "entitled": true},
                {"feature": "beta-ui", "from_tier": false, "override": "grant", "entitled": true},
            ],
        })
    );
    let table = env.run(&["features", "show", "alpha"]).expect(0).stdout;
    assert!(
        table.contains("beta-ui") && table.contains("grant"),
        "{table}"
    );

    let yes = env
        .run(&["features", "check", "alpha", "api-access", "-o", "json"])
        .expect(0)
        .json();
    assert_eq!(
        yes,
        json!({"slug": "alpha", "feature": "api-access", "status": "active", "enabled": true, "reason": null})
    );
    let no = env
        .run(&["features", "check", "alpha", "sso", "-o", "json"])
        .expect(3);
    assert_eq!(no.json()["enabled"], json!(false));
    assert!(
        no.stderr.contains("nor a grant gives tenant `alpha` `sso`"),
        "{}",
        no.stderr
    );
    env.run(&["features", "check", "alpha", "api-access"])
        .expect(0);
    env.run(&["features", "check", "ghost", "api-access"])
        .expect(3);

    // The grant is audited, once (the duplicate flag is one grant).
    let n = env.scalar_i64(
        "SELECT count(*) FROM audit_log WHERE action = 'features.grant' AND details->>'via' = 'provision'",
        &[],
    );
    assert_eq!(n, 1);
    // The data plane holds the entitled set.
    assert_eq!(
        stored(&env, &env.pooled_db(), "alpha"),
        ["api-access", "beta-ui"]
    );

    // Re-running provision with the same flags is a no-op; asking for more names the command.
    env.run(&[
        "provision",
        "alpha",
        "--tier",
        "free",
        "--feature",
        "beta-ui",
    ])
    .expect(0);
    let before = audits(&env);
    let r = env
        .run(&["provision", "alpha", "--tier", "free", "--feature", "sso"])
        .expect(3);
    assert!(
        r.stderr.contains("tenantctl features grant alpha sso"),
        "{}",
        r.stderr
    );
    assert_eq!(audits(&env), before);
}

#[test]
fn a_pooled_application_session_sees_only_its_own_features() {
    let env = TestEnv::new();
    env.run(&[
        "provision",
        "alpha",
        "--tier",
        "free",
        "--feature",
        "alpha-only",
    ])
    .expect(0);
    env.run(&["provision", "bravo", "--tier", "free"]).expect(0);

    assert_eq!(app_sees(&env, "alpha", false), ["alpha-only", "api-access"]);
    assert_eq!(app_sees(&env, "bravo", false), ["api-access"]);

    // Forced RLS: without a context, no rows; the app role may not write.
    let mut app = env.connect_as(&env.app_role(), &env.pooled_db()).unwrap();
    let n: i64 = app
        .query_one("SELECT count(*) FROM tenant_features", &[])
        .unwrap()
        .get(0);
    assert_eq!(n, 0);
    let mut admin = env.admin(&env.pooled_db());
    let forced: bool = admin
        .query_one(
            "SELECT relrowsecurity AND relforcerowsecurity FROM pg_class WHERE relname = 'tenant_features'",
            &[],
        )
        .unwrap()
        .get(0);
    assert!(forced);
    let alpha = tenant_id(&env, "alpha");
    let mut tx = app.transaction().unwrap();
    tx.execute("SELECT set_config('app.tenant_id', $1, true)", &[&alpha])
        .unwrap();
    let e = tx
        .execute(
            "INSERT INTO tenant_features (tenant_id, feature) VALUES ($1::text::uuid, 'stolen')",
            &[&alpha],
        )
        .unwrap_err();
    assert!(format!("{e:?}").contains("permission denied"), "{e:?}");
    drop(tx);

    // Grant and revoke reach the data plane at once.
    env.run(&["features", "grant", "bravo", "analytics"])
        .expect(0);
    env.run(&["features", "revoke", "bravo", "api-access"])
        .expect(0);
    assert_eq!(app_sees(&env, "bravo", false), ["analytics"]);
    assert_eq!(app_sees(&env, "alpha", false), ["alpha-only", "api-access"]);

    // Suspended: the policy hides the rows; check exits 3; a change made meanwhile is written
    // (hidden) and shows once resumed.
    env.run(&["suspend", "alpha"]).expect(0);
    assert!(app_sees(&env, "alpha", false).is_empty());
    let r = env
        .run(&["features", "check", "alpha", "api-access", "-o", "json"])
        .expect(3);
    assert_eq!(r.json()["enabled"], json!(false));
    assert_eq!(r.json()["reason"], json!("tenant `alpha` is suspended"));
    assert_eq!(show_json(&env, "alpha")["features"], json!([]));
    env.run(&["features", "grant", "alpha", "late"]).expect(0);
    assert!(app_sees(&env, "alpha", false).is_empty());
    // The suspension is still in force (the grant lifted it only inside its transaction).
    let n = env
        .admin(&env.pooled_db())
        .query_one(
            "SELECT count(*) FROM tenant_suspensions WHERE tenant_id = $1::text::uuid",
            &[&alpha],
        )
        .unwrap()
        .get::<_, i64>(0);
    assert_eq!(n, 1);
    env.run(&["resume", "alpha"]).expect(0);
    assert_eq!(
        app_sees(&env, "alpha", false),
        ["alpha-only", "api-access", "late"]
    );

    // Deprovisioned: hidden, no features, no changes; restore brings them back.
    env.run(&["deprovision", "alpha"]).expect(0);
    assert!(app_sees(&env, "alpha", false).is_empty());
    env.run(&["features", "check", "alpha", "late"]).expect(3);
    let before = audits(&env);
    env.run(&["features", "grant", "alpha", "more"]).expect(3);
    assert_eq!(audits(&env), before);
    env.run(&["restore", "alpha"]).expect(0);
    assert_eq!(
        app_sees(&env, "alpha", false),
        ["alpha-only", "api-access", "late"]
    );
    env.run(&["features", "check", "alpha", "late"]).expect(0);
}

#[test]
fn a_siloed_role_sees_its_own_features_and_revoke_overrides_the_tier() {
    let env = TestEnv::new();
    env.run(&["provision", "acme", "--tier", "premium"])
        .expect(0);
    assert_eq!(app_sees(&env, "acme", true), ["analytics", "api-access"]);
    // Its role reads, never writes.
    let mut role = env
        .connect_as(&env.silo("acme"), &env.silo("acme"))
        .unwrap();
    let e = role
        .execute("DELETE FROM tenant_features", &[])
        .unwrap_err();
    assert!(format!("{e:?}").contains("permission denied"), "{e:?}");

    let before = audits(&env);
    let v = env
        .run(&["features", "revoke", "acme", "analytics", "-o", "json"])
        .expect(0)
        .json();
    assert_eq!(v["features"], json!(["api-access"]));
    assert_eq!(
        v["entitlements"][0],
        json!({"feature": "analytics", "from_tier": true, "override": "revoke", "entitled": false})
    );
    assert_eq!(audits(&env), before + 1);
    let a = env.run(&["audit", "acme", "-o", "json"]).expect(0).json();
    let last = a.as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["action"], json!("features.revoke"));
    assert_eq!(last["details"]["feature"], json!("analytics"));
    assert_eq!(last["details"]["in_tier"], json!(true));
    assert_eq!(app_sees(&env, "acme", true), ["api-access"]);
    let r = env
        .run(&["features", "check", "acme", "analytics"])
        .expect(3);
    assert!(r.stdout.contains("revoked"), "{}", r.stdout);

    // A repeated revoke changes nothing and audits nothing.
    let r = env
        .run(&["features", "revoke", "acme", "analytics"])
        .expect(0);
    assert!(r.stderr.contains("nothing changed"), "{}", r.stderr);
    assert_eq!(audits(&env), before + 1);

    // Reset: the tier decides again.
    env.run(&["features", "reset", "acme", "analytics"])
        .expect(0);
    assert_eq!(app_sees(&env, "acme", true), ["analytics", "api-access"]);
    env.run(&["features", "grant", "acme", "beta"]).expect(0);
    env.run(&["features", "reset", "acme", "beta"]).expect(0);
    assert_eq!(app_sees(&env, "acme", true), ["analytics", "api-access"]);
    assert_eq!(
        show_json(&env, "acme")["entitlements"]
            .as_array()
            .unwrap()
            .len(),
        2,
        "a reset grant leaves no row"
    );

    // Suspended silo: closed, so a grant is recorded and written when it is resumed.
    env.run(&["suspend", "acme"]).expect(0);
    env.run(&["features", "check", "acme", "api-access"])
        .expect(3);
    env.run(&["features", "grant", "acme", "beta"]).expect(0);
    assert_eq!(show_json(&env, "acme")["features"], json!([]));
    env.run(&["resume", "acme"]).expect(0);
    assert_eq!(
        app_sees(&env, "acme", true),
        ["analytics", "api-access", "beta"]
    );
}

#[test]
fn a_tier_change_recomputes_the_tier_part_and_keeps_grants_and_revokes() {
    let env = TestEnv::new();
    env.run(&[
        "provision",
        "acme",
        "--tier",
        "premium",
        "--feature",
        "beta",
    ])
    .expect(0);
    env.run(&["features", "revoke", "acme", "analytics"])
        .expect(0);
    env.run(&["features", "grant", "acme", "sso"]).expect(0);

    let v = env
        .run(&["set-tier", "acme", "enterprise", "-o", "json"])
        .expect(0)
        .json();
    assert_eq!(
        v["features"],
        json!(["api-access", "audit-export", "beta", "sso"])
    );
    assert_eq!(
        app_sees(&env, "acme", true),
        ["api-access", "audit-export", "beta", "sso"]
    );

    let v = env
        .run(&["set-tier", "acme", "premium", "-o", "json"])
        .expect(0)
        .json();
    // audit-export leaves with the tier; sso stays (granted), analytics stays revoked.
    assert_eq!(v["features"], json!(["api-access", "beta", "sso"]));
    assert_eq!(app_sees(&env, "acme", true), ["api-access", "beta", "sso"]);
    let e = show_json(&env, "acme")["entitlements"].clone();
    assert_eq!(
        e,
        json!([
            {"feature": "analytics", "from_tier": true, "override": "revoke", "entitled": false},
            {"feature": "api-access", "from_tier": true, "override": null, "entitled": true},
            {"feature": "beta", "from_tier": false, "override": "grant", "entitled": true},
            {"feature": "sso", "from_tier": false, "override": "grant", "entitled": true},
        ])
    );
    // A set-tier to the same tier repairs a data plane left behind (here: by hand).
    env.admin(&env.silo("acme"))
        .execute("DELETE FROM tenant_features", &[])
        .unwrap();
    env.run(&["set-tier", "acme", "premium"]).expect(0);
    assert_eq!(
        stored(&env, &env.silo("acme"), "acme"),
        ["api-access", "beta", "sso"]
    );
}

#[test]
fn bad_feature_names_exit_2_and_change_nothing() {
    let env = TestEnv::bare();
    // Before anything exists: not even the control database is created.
    let r = env
        .run(&[
            "provision",
            "acme",
            "--tier",
            "free",
            "--feature",
            "Beta\u{1b}[31m",
        ])
        .expect(2);
    assert!(
        r.stderr
            .contains("invalid feature `Beta\\u{1b}[31m`: a feature name is 1 to 40"),
        "{}",
        r.stderr
    );
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
    assert!(!env.database_exists(&env.control_db));

    env.run(&["init", "-q"]).expect(0);
    env.run(&["provision", "acme", "--tier", "free"]).expect(0);
    let before = (audits(&env), show_json(&env, "acme"));
    for bad in [
        "",
        "api--access",
        "api-",
        "1api",
        "api access",
        &"a".repeat(41),
    ] {
        for cmd in ["grant", "revoke", "reset", "check"] {
            let r = env.run(&["features", cmd, "acme", bad]).expect(2);
            assert!(
                r.stderr.contains("invalid feature"),
                "{cmd} {bad}: {}",
                r.stderr
            );
        }
        env.run(&["provision", "acme", "--tier", "free", "--feature", bad])
            .expect(2);
    }
    assert_eq!((audits(&env), show_json(&env, "acme")), before);
    assert_eq!(stored(&env, &env.pooled_db(), "acme"), ["api-access"]);
    env.run(&["features", "show", "Not A Slug"]).expect(2);

    // The tier file: a bad or repeated name is an error naming file, line and key.
    let path = env.dir.path().join("tiers.toml");
    let tiers = |features: &str| {
        format!(
            "currency = \"USD\"\n[tiers.free]\nisolation = \"pooled\"\nmonthly_price = \"0\"\n\
             features = {features}\n[tiers.free.limits]\nusers = 1\nstorage_mb = 1\nsandboxes = 1\n\
             compute_hours = 1\napi_requests = 1\n"
        )
    };
    for (features, needle) in [
        ("[\"sso\", \"Api\"]", "invalid feature `Api`"),
        ("[\"sso\", \"sso\"]", "feature `sso` is listed twice"),
    ] {
        std::fs::write(&path, tiers(features)).unwrap();
        let r = env
            .run(&[
                "--tiers",
                path.to_str().unwrap(),
                "provision",
                "bravo",
                "--tier",
                "free",
            ])
            .expect(2);
        assert!(
            r.stderr
                .contains(&format!("{}, line 5, key `features`", path.display()))
                && r.stderr.contains(needle),
            "{}",
            r.stderr
        );
    }
    assert!(env
        .run(&["show", "bravo"])
        .expect(3)
        .stderr
        .contains("no tenant"));
}

#[test]
fn refresh_makes_tenants_follow_an_edited_tier_file_and_keeps_overrides() {
    let env = TestEnv::new();
    let path = env.dir.path().join("tiers.toml");
    let write = |features: &str| {
        std::fs::write(
            &path,
            tenantctl::tier::BUILTIN.replace(
                "features = [\"api-access\", \"analytics\"]",
                &format!("features = {features}"),
            ),
        )
        .unwrap()
    };
    let p = path.to_str().unwrap().to_owned();
    write("[\"api-access\", \"analytics\"]");
    env.run(&["--tiers", &p, "provision", "acme", "--tier", "premium"])
        .expect(0);
    env.run(&["--tiers", &p, "provision", "zeta", "--tier", "free"])
        .expect(0);
    env.run(&["features", "grant", "acme", "beta"]).expect(0);

    write("[\"api-access\", \"reports\"]");
    let r = env
        .run(&["--tiers", &p, "features", "refresh", "-o", "json"])
        .expect(0)
        .json();
    assert_eq!(
        r,
        json!([
            {"slug": "acme", "tier": "premium", "status": "active", "changed": true,
             "features": ["api-access", "beta", "reports"]},
            {"slug": "zeta", "tier": "free", "status": "active", "changed": false,
             "features": ["api-access"]},
        ])
    );
    assert_eq!(
        app_sees(&env, "acme", true),
        ["api-access", "beta", "reports"]
    );
    let n = env.scalar_i64(
        "SELECT count(*) FROM audit_log WHERE action = 'features.refresh' AND slug = 'acme'",
        &[],
    );
    assert_eq!(n, 1);
    // Again: nothing changes, nothing is audited.
    let r = env
        .run(&["--tiers", &p, "features", "refresh", "acme", "-o", "json"])
        .expect(0)
        .json();
    assert_eq!(r[0]["changed"], json!(false));

    // A tenant from before feature entitlements (no rows anywhere) gets its tier's.
    env.control()
        .execute("DELETE FROM feature_entitlements", &[])
        .unwrap();
    env.admin(&env.pooled_db())
        .execute("DELETE FROM tenant_features", &[])
        .unwrap();
    env.run(&["features", "check", "zeta", "api-access"])
        .expect(3);
    env.run(&["features", "refresh", "zeta"]).expect(0);
    assert_eq!(app_sees(&env, "zeta", false), ["api-access"]);
    env.run(&["features", "check", "zeta", "api-access"])
        .expect(0);
    env.run(&["features", "refresh", "ghost"]).expect(3);
}
