//! `provision`: what a user checks after it ran: rows, databases, roles, files, output.

use std::os::unix::fs::PermissionsExt;

use crate::support::{shown_password, TestEnv};

const PREMIUM: [(&str, i64); 5] = [
    ("api_requests", 10_000),
    ("compute_hours", 10),
    ("sandboxes", 5),
    ("storage_mb", 1000),
    ("users", 5),
];

fn quotas(env: &TestEnv, slug: &str) -> Vec<(String, i64)> {
    env.control()
        .query(
            "SELECT q.resource, q.limit_value FROM quotas q JOIN tenants t ON t.id = q.tenant_id
             WHERE t.slug = $1 ORDER BY 1",
            &[&slug],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

#[test]
fn siloed_tenant_gets_database_role_schema_owner_quotas_buckets() {
    let env = TestEnv::new();
    let run = env
        .run(&[
            "provision",
            "acme",
            "--tier",
            "premium",
            "--name",
            "Acme Corp",
            "--owner-email",
            "ops@acme.example",
        ])
        .expect(0);
    for step in [
        "[1/8] record tenant ... ok",
        "[2/8] create database ... ok",
        "[3/8] apply schema ... ok",
        "[4/8] create owner ... ok",
        "[5/8] seed quotas and features ... ok",
        "[6/8] create buckets ... ok",
        "[7/8] run hooks ... ok",
        "[8/8] activate ... ok",
    ] {
        assert!(
            run.stderr.contains(step),
            "missing `{step}` in:\n{}",
            run.stderr
        );
    }
    assert!(
        run.stdout.contains("acme") && run.stdout.contains("active"),
        "{}",
        run.stdout
    );
    assert!(!run.stdout.contains("[1/8]"), "progress went to stdout");

    let mut ctl = env.control();
    let row = ctl.query_one("SELECT status, tier, isolation, name, database_name, role_name, id::text FROM tenants WHERE slug = 'acme'", &[]).unwrap();
    let (status, tier, isolation, name, db, role, id): (
        String,
        String,
        String,
        String,
        String,
        String,
        String,
    ) = (
        row.get(0),
        row.get(1),
        row.get(2),
        row.get(3),
        row.get(4),
        row.get(5),
        row.get(6),
    );
    assert_eq!(
        (
            status.as_str(),
            tier.as_str(),
            isolation.as_str(),
            name.as_str()
        ),
        ("active", "premium", "siloed", "Acme Corp")
    );
    assert_eq!(db, env.silo("acme"));
    assert_eq!(role, env.silo("acme"));
    let steps: i64 = ctl.query_one("SELECT count(*) FROM provisioning_journal j JOIN tenants t ON t.id = j.tenant_id WHERE t.slug = 'acme'", &[]).unwrap().get(0);
    assert_eq!(steps, 8);

    // The database and a login role that is nothing more.
    assert!(env.database_exists(&db));
    let mut pg = env.admin("postgres");
    let r = pg.query_one("SELECT rolcanlogin, rolsuper, rolbypassrls, rolcreatedb, rolcreaterole FROM pg_roles WHERE rolname = $1", &[&role]).unwrap();
    assert_eq!(
        (
            r.get::<_, bool>(0),
            r.get::<_, bool>(1),
            r.get::<_, bool>(2),
            r.get::<_, bool>(3),
            r.get::<_, bool>(4)
        ),
        (true, false, false, false, false)
    );

    // The schema, applied once, and the owner with a bcrypt hash of the password shown.
    let mut tdb = env.admin(&db);
    let tables: Vec<String> = tdb
        .query("SELECT relname::text FROM pg_class WHERE relkind = 'r' AND relnamespace = 'public'::regnamespace ORDER BY 1", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        tables,
        [
            "api_keys",
            "applications",
            "deployments",
            "refinery_schema_history",
            "tenant_features",
            "tenant_suspensions",
            "users"
        ]
    );
    let owners = tdb
        .query(
            "SELECT tenant_id::text, email, full_name, role, password_hash FROM users",
            &[],
        )
        .unwrap();
    assert_eq!(owners.len(), 1);
    let o = &owners[0];
    assert_eq!(o.get::<_, String>(0), id);
    assert_eq!(o.get::<_, String>(1), "ops@acme.example");
    assert_eq!(o.get::<_, String>(3), "owner");
    let hash: String = o.get(4);
    let password = shown_password(&run.stderr);
    assert!(
        password.len() >= 22,
        "password too short for 128 bits: {password}"
    );
    assert!(hash.starts_with("$2"), "{hash}");
    assert!(
        bcrypt::verify(&password, &hash).unwrap(),
        "the stored hash does not match the shown password"
    );

    // The password is stored nowhere in plain text and not on stdout.
    assert!(!run.stdout.contains(&password));
    let leaks: i64 = ctl
        .query_one("SELECT count(*) FROM audit_log a, tenants t WHERE a::text LIKE '%' || $1 || '%' OR t::text LIKE '%' || $1 || '%'", &[&password])
        .unwrap()
        .get(0);
    assert_eq!(leaks, 0);

    assert_eq!(
        quotas(&env, "acme"),
        PREMIUM.map(|(r, l)| (r.to_owned(), l))
    );
    for b in ["acme-uploads", "acme-assets", "acme-backups"] {
        assert!(env.storage_root().join(b).is_dir(), "bucket {b} missing");
    }
    let audit: Vec<(String, Option<String>, Option<String>)> = ctl
        .query(
            "SELECT action, from_status, to_status FROM audit_log WHERE slug = 'acme' ORDER BY id",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert_eq!(
        audit,
        [
            (
                "provision.start".to_owned(),
                None,
                Some("provisioning".to_owned())
            ),
            (
                "provision".to_owned(),
                Some("provisioning".to_owned()),
                Some("active".to_owned())
            )
        ]
    );
    let appended = ctl.execute("UPDATE audit_log SET actor = 'mallory'", &[]);
    assert!(appended.is_err(), "audit_log accepted an UPDATE");
}

#[test]
fn pooled_tenant_lives_in_the_shared_database() {
    let env = TestEnv::new();
    env.run(&["provision", "small", "--tier", "free"]).expect(0);
    env.run(&["provision", "tiny", "--tier", "free"]).expect(0);
    let mut ctl = env.control();
    let rows = ctl
        .query(
            "SELECT database_name, role_name, isolation FROM tenants ORDER BY slug",
            &[],
        )
        .unwrap();
    for r in &rows {
        assert_eq!(r.get::<_, String>(0), env.pooled_db());
        assert_eq!(r.get::<_, String>(1), env.app_role());
        assert_eq!(r.get::<_, String>(2), "pooled");
    }
    // One shared database, one application role, no per-tenant database.
    let (dbs, roles) = env.owned_objects();
    assert_eq!(dbs, [env.pooled_db()]);
    assert_eq!(roles, [env.app_role()]);
    let mut pool = env.admin(&env.pooled_db());
    let owners: i64 = pool
        .query_one("SELECT count(*) FROM users WHERE role = 'owner'", &[])
        .unwrap()
        .get(0);
    assert_eq!(owners, 2);
    let tenants: i64 = pool
        .query_one("SELECT count(DISTINCT tenant_id) FROM users", &[])
        .unwrap()
        .get(0);
    assert_eq!(tenants, 2);
    assert_eq!(
        quotas(&env, "tiny"),
        [
            ("api_requests", 1000),
            ("compute_hours", 1),
            ("sandboxes", 1),
            ("storage_mb", 100),
            ("users", 1)
        ]
        .map(|(r, l)| (r.to_owned(), l))
    );
}

#[test]
fn rerun_on_an_active_tenant_is_a_no_op_and_another_tier_is_refused() {
    let env = TestEnv::new();
    env.run(&["provision", "acme", "--tier", "premium"])
        .expect(0);
    let hash_before: String = env
        .admin(&env.silo("acme"))
        .query_one("SELECT password_hash FROM users", &[])
        .unwrap()
        .get(0);

    let again = env
        .run(&["provision", "acme", "--tier", "premium", "-o", "json"])
        .expect(0);
    assert!(again.stderr.contains("already active"), "{}", again.stderr);
    assert!(
        !again.stderr.contains("temporary password"),
        "a no-op re-run must not issue a password"
    );
    let json = again.json();
    assert_eq!(json["changed"], false);
    assert_eq!(json["tenant"]["status"], "active");
    let hash_after: String = env
        .admin(&env.silo("acme"))
        .query_one("SELECT password_hash FROM users", &[])
        .unwrap()
        .get(0);
    assert_eq!(hash_before, hash_after);

    let other = env
        .run(&["provision", "acme", "--tier", "enterprise"])
        .expect(3);
    assert!(
        other.stderr.contains("already active on tier `premium`"),
        "{}",
        other.stderr
    );
    assert!(
        other.stderr.contains("tenantctl set-tier acme enterprise"),
        "{}",
        other.stderr
    );
    let tier: String = env
        .control()
        .query_one("SELECT tier FROM tenants WHERE slug = 'acme'", &[])
        .unwrap()
        .get(0);
    assert_eq!(tier, "premium");
    let audits = env.scalar_i64("SELECT count(*) FROM audit_log", &[]);
    assert_eq!(
        audits, 2,
        "refused and no-op runs must not write the audit log"
    );
}

#[test]
fn password_file_gets_the_password_with_mode_0600_and_stderr_does_not() {
    let env = TestEnv::new();
    let path = env.dir.path().join("owner.pw");
    std::fs::write(&path, "old contents that are longer than a password\n").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let run = env
        .run(&[
            "provision",
            "acme",
            "--tier",
            "free",
            "--password-file",
            path.to_str().unwrap(),
        ])
        .expect(0);
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let password = std::fs::read_to_string(&path).unwrap().trim().to_owned();
    assert_eq!(password.len(), 24);
    assert!(!run.stderr.contains(&password) && !run.stdout.contains(&password));
    assert!(!run.stderr.contains("temporary password"));
    let hash: String = env
        .admin(&env.pooled_db())
        .query_one("SELECT password_hash FROM users", &[])
        .unwrap()
        .get(0);
    assert!(bcrypt::verify(&password, &hash).unwrap());
}

#[test]
fn dry_run_changes_nothing_and_lists_the_steps() {
    let env = TestEnv::bare();
    let dry = |env: &TestEnv| {
        env.run(&[
            "provision",
            "acme",
            "--tier",
            "premium",
            "--dry-run",
            "-o",
            "json",
        ])
    };
    // Before `init`, an operator's server has no control plane: exit 2, naming `init`.
    let run = dry(&env).expect(2);
    assert!(run.stderr.contains("tenantctl init"), "{}", run.stderr);
    assert!(!env.database_exists(&env.control_db));
    assert_eq!(env.owned_objects(), (vec![], vec![]));
    assert!(!env.storage_root().exists());

    env.run(&["init", "-q"]).expect(0);
    let plan = dry(&env).expect(0).json();
    assert_eq!(plan["dry_run"], true);
    assert_eq!(plan["database"], env.silo("acme"));
    assert_eq!(plan["steps"].as_array().unwrap().len(), 8);
    assert!(plan["steps"]
        .as_array()
        .unwrap()
        .iter()
        .all(|s| s["state"] == "pending"));
    assert_eq!(env.owned_objects(), (vec![], vec![]));
    assert!(!env.storage_root().exists());

    // On an existing control database it reads the journal, still writing nothing.
    env.run(&["provision", "beta", "--tier", "free"]).expect(0);
    let before = env.scalar_i64("SELECT count(*) FROM tenants", &[]);
    let run = env
        .run(&[
            "provision",
            "beta",
            "--tier",
            "free",
            "--dry-run",
            "-o",
            "json",
        ])
        .expect(0);
    assert!(run.json()["steps"]
        .as_array()
        .unwrap()
        .iter()
        .all(|s| s["state"] == "done"));
    env.run(&["provision", "acme", "--tier", "premium", "--dry-run"])
        .expect(0);
    assert_eq!(env.scalar_i64("SELECT count(*) FROM tenants", &[]), before);
    assert!(!env.database_exists(&env.silo("acme")));
}

#[test]
fn another_tier_table_is_honoured() {
    let env = TestEnv::new();
    let path = env.dir.path().join("tiers.toml");
    std::fs::write(
        &path,
        "currency = \"EUR\"\n[tiers.gold]\nisolation = \"siloed\"\nmonthly_price = \"99\"\n\
         [tiers.gold.limits]\nusers = 7\nstorage_mb = 70\nsandboxes = 3\ncompute_hours = 2\napi_requests = 700\n",
    )
    .unwrap();
    let run = env
        .run_env(
            &["provision", "acme", "--tier", "gold"],
            &[("TENANTCTL_TIERS", path.to_str().unwrap())],
        )
        .expect(0);
    drop(run);
    assert_eq!(
        quotas(&env, "acme"),
        [
            ("api_requests", 700),
            ("compute_hours", 2),
            ("sandboxes", 3),
            ("storage_mb", 70),
            ("users", 7)
        ]
        .map(|(r, l)| (r.to_owned(), l))
    );
    assert!(env.database_exists(&env.silo("acme")));
    // The built-in tiers are not in that table.
    let run = env
        .run(&[
            "provision",
            "beta",
            "--tier",
            "premium",
            "--tiers",
            path.to_str().unwrap(),
        ])
        .expect(2);
    assert!(
        run.stderr
            .contains("unknown tier `premium`: the tiers are gold"),
        "{}",
        run.stderr
    );
}

#[test]
fn set_tier_moves_within_an_isolation_model() {
    let env = TestEnv::new();
    env.run(&["provision", "acme", "--tier", "premium"])
        .expect(0);
    env.control()
        .execute("UPDATE quotas SET limit_value = 77, source = 'override' FROM tenants t WHERE t.id = tenant_id AND resource = 'users'", &[])
        .unwrap();
    let v = env
        .run(&[
            "set-tier",
            "acme",
            "enterprise",
            "-o",
            "json",
            "--actor",
            "alice",
        ])
        .expect(0)
        .json();
    assert_eq!(v["tier"], "enterprise");
    assert_eq!(v["quotas"]["api_requests"]["limit"], 100_000);
    assert_eq!(
        v["quotas"]["users"]["limit"], 77,
        "an override survives a tier change"
    );
    let (actor, details): (String, serde_json::Value) = {
        let r = env
            .control()
            .query_one(
                "SELECT actor, details FROM audit_log WHERE action = 'set-tier'",
                &[],
            )
            .unwrap();
        (r.get(0), r.get(1))
    };
    assert_eq!(actor, "alice");
    assert_eq!(
        details,
        serde_json::json!({"from_tier": "premium", "to_tier": "enterprise"})
    );
    // The same tier again: a no-op. Provision now confirms the new tier.
    env.run(&["set-tier", "acme", "enterprise"]).expect(0);
    env.run(&["provision", "acme", "--tier", "enterprise"])
        .expect(0);
    // Unknown tenants, unknown tiers: refused, nothing changed (across isolation models the
    // tenant's data moves: tests/moves.rs).
    env.run(&["set-tier", "ghost", "free"]).expect(3);
    env.run(&["set-tier", "acme", "gold"]).expect(2);
    let tier: String = env
        .control()
        .query_one("SELECT tier FROM tenants", &[])
        .unwrap()
        .get(0);
    assert_eq!(tier, "enterprise");
    assert_eq!(
        env.scalar_i64(
            "SELECT count(*) FROM audit_log WHERE action = 'set-tier'",
            &[]
        ),
        1
    );
}

#[test]
fn quiet_hides_progress_but_still_shows_the_password_once() {
    let env = TestEnv::new();
    let run = env
        .run(&["provision", "acme", "--tier", "free", "--quiet"])
        .expect(0);
    assert!(!run.stderr.contains("[1/8]"), "{}", run.stderr);
    assert!(!run.stderr.contains("PostgreSQL cluster"), "{}", run.stderr);
    let password = shown_password(&run.stderr);
    assert_eq!(run.stderr.matches(&password).count(), 1);
    assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
}
