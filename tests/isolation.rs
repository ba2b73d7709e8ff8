//! Isolation as an attacker would probe it: pooled rows behind forced RLS, siloed databases
//! behind CONNECT privileges.

use crate::support::TestEnv;

#[test]
fn pooled_rls_shows_no_rows_without_context_and_only_own_rows_with_it() {
    let env = TestEnv::new();
    env.run(&["provision", "alpha", "--tier", "free"]).expect(0);
    env.run(&["provision", "bravo", "--tier", "free"]).expect(0);
    let ids: Vec<(String, String)> = env
        .control()
        .query("SELECT slug, id::text FROM tenants ORDER BY slug", &[])
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let (alpha, bravo) = (&ids[0].1, &ids[1].1);

    // The application role is neither superuser nor BYPASSRLS.
    let mut pg = env.admin("postgres");
    let r = pg
        .query_one(
            "SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = $1",
            &[&env.app_role()],
        )
        .unwrap();
    assert_eq!((r.get::<_, bool>(0), r.get::<_, bool>(1)), (false, false));

    // Every tenant table: ENABLE and FORCE row level security.
    let mut admin = env.admin(&env.pooled_db());
    let unguarded: Vec<String> = admin
        .query(
            "SELECT relname::text FROM pg_class WHERE relkind = 'r' AND relnamespace = 'public'::regnamespace
             AND relname <> 'refinery_schema_history' AND NOT (relrowsecurity AND relforcerowsecurity)",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(
        unguarded.is_empty(),
        "tables without forced RLS: {unguarded:?}"
    );

    let mut app = env.connect_as(&env.app_role(), &env.pooled_db()).unwrap();
    for table in ["users", "applications", "deployments", "api_keys"] {
        let n: i64 = app
            .query_one(&format!("SELECT count(*) FROM {table}"), &[])
            .unwrap()
            .get(0);
        assert_eq!(n, 0, "{table} shows rows without a tenant context");
    }
    // With alpha's context: alpha's owner only.
    let mut tx = app.transaction().unwrap();
    tx.execute("SELECT set_config('app.tenant_id', $1, true)", &[alpha])
        .unwrap();
    let seen: Vec<String> = tx
        .query("SELECT tenant_id::text FROM users", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(seen, std::slice::from_ref(alpha));
    // Writing a row for bravo under alpha's context is refused by WITH CHECK.
    let forged = tx.execute(
        "INSERT INTO users (tenant_id, email, password_hash) VALUES ($1::text::uuid, 'x@y.z', 'h')",
        &[bravo],
    );
    assert!(forged.is_err(), "a row for another tenant was accepted");
    drop(tx);
    // After that transaction the setting is '' (not unset): still no rows, and no error.
    let n: i64 = app
        .query_one("SELECT count(*) FROM users", &[])
        .unwrap()
        .get(0);
    assert_eq!(n, 0);
    // The app role cannot read refinery's history or the control database.
    assert!(app
        .query("SELECT * FROM refinery_schema_history", &[])
        .is_err());
    assert!(env.connect_as(&env.app_role(), &env.control_db).is_err());
}

#[test]
fn a_siloed_role_connects_to_its_own_database_only() {
    let env = TestEnv::new();
    env.run(&["provision", "alpha", "--tier", "premium"])
        .expect(0);
    env.run(&["provision", "bravo", "--tier", "enterprise"])
        .expect(0);
    env.run(&["provision", "charlie", "--tier", "free"])
        .expect(0);
    let alpha = env.silo("alpha");
    let bravo = env.silo("bravo");

    let mut own = env
        .connect_as(&alpha, &alpha)
        .expect("a tenant role connects to its own database");
    let n: i64 = own
        .query_one("SELECT count(*) FROM users", &[])
        .unwrap()
        .get(0);
    assert_eq!(
        n, 0,
        "no rows without the tenant context, even in its own database"
    );

    for (role, db) in [
        (&alpha, &bravo),
        (&bravo, &alpha),
        (&alpha, &env.pooled_db()),
        (&alpha, &env.control_db),
    ] {
        let err = env
            .connect_as(role, db)
            .err()
            .unwrap_or_else(|| panic!("{role} connected to {db}"));
        let msg = err
            .as_db_error()
            .map(|e| e.message().to_owned())
            .unwrap_or_else(|| err.to_string());
        assert!(
            msg.contains("permission denied for database"),
            "{role} → {db}: {msg}"
        );
    }
    // The pooled application role cannot reach a silo either.
    assert!(env.connect_as(&env.app_role(), &alpha).is_err());
}
