//! Least privilege: the suite runs tenantctl as an admin role with LOGIN, CREATEDB and
//! CREATEROLE only (as managed PostgreSQL gives it); these tests prove that is so, pin what
//! needed care without a superuser (ending a tenant's sessions, measuring pooled tenants under
//! forced row-level security), and keep a few runs of the superuser path.

use crate::support::TestEnv;

/// The role that owns the control database (tenantctl created it): the role it connects as.
/// Its (superuser, bypassrls, member of pg_signal_backend).
fn connecting_role(env: &TestEnv) -> (String, bool, bool, bool) {
    let row = env
        .admin("postgres")
        .query_one(
            "SELECT r.rolname::text, r.rolsuper, r.rolbypassrls,
                    pg_has_role(r.oid, 'pg_signal_backend', 'MEMBER')
             FROM pg_database d JOIN pg_roles r ON r.oid = d.datdba WHERE d.datname = $1",
            &[&env.control_db],
        )
        .unwrap();
    (row.get(0), row.get(1), row.get(2), row.get(3))
}

fn measured(env: &TestEnv, slug: &str, resource: &str) -> i64 {
    env.scalar_i64(
        "SELECT m.quantity FROM measured_usage m JOIN tenants t ON t.id = m.tenant_id
         WHERE t.slug = $1 AND m.resource = $2",
        &[&slug, &resource],
    )
}

/// Whether `member` is granted `role` (pg_auth_members), superusers' implicit rights aside.
fn granted(env: &TestEnv, role: &str, member: &str) -> bool {
    env.admin("postgres")
        .query_opt(
            "SELECT 1 FROM pg_auth_members m
             JOIN pg_roles r ON r.oid = m.roleid JOIN pg_roles u ON u.oid = m.member
             WHERE r.rolname = $1 AND u.rolname = $2",
            &[&role, &member],
        )
        .unwrap()
        .is_some()
}

#[test]
fn the_suite_runs_as_a_least_privilege_admin_and_every_lifecycle_works() {
    let env = TestEnv::new();
    env.run(&["provision", "acme", "--tier", "premium", "-q"])
        .expect(0);
    let (admin, superuser, bypassrls, signal) = connecting_role(&env);
    assert_eq!(Some(admin.as_str()), env.admin_role.as_deref());
    assert!(!superuser && !bypassrls && !signal, "{admin} is privileged");

    // A live session of the tenant's role ends with the suspension.
    let silo = env.silo("acme");
    assert!(
        granted(&env, &silo, &admin),
        "membership granted at creation"
    );
    let mut live = env.connect_as(&silo, &silo).unwrap();
    live.query_one("SELECT 1", &[]).unwrap();
    env.run(&["suspend", "acme"]).expect(0);
    assert!(
        live.query_one("SELECT 1", &[]).is_err(),
        "the live session survived"
    );
    env.run(&["resume", "acme"]).expect(0);

    // A purge drops a database the tenant is still connected to.
    let mut live = env.connect_as(&silo, &silo).unwrap();
    live.query_one("SELECT 1", &[]).unwrap();
    env.run(&["deprovision", "acme", "--purge", "--yes"])
        .expect(0);
    assert!(!env.database_exists(&silo));
    assert_eq!(env.owned_objects(), (vec![], vec![]));
}

#[test]
fn a_role_provisioned_before_the_membership_is_granted_it_when_suspended() {
    let env = TestEnv::new();
    env.run(&["provision", "acme", "--tier", "premium", "-q"])
        .expect(0);
    let silo = env.silo("acme");
    let admin = env.admin_role.clone().unwrap();
    // As an older tenantctl left it: no membership.
    env.admin("postgres")
        .batch_execute(&format!("REVOKE \"{silo}\" FROM \"{admin}\""))
        .unwrap();
    assert!(!granted(&env, &silo, &admin));
    let mut live = env.connect_as(&silo, &silo).unwrap();
    live.query_one("SELECT 1", &[]).unwrap();
    env.run(&["suspend", "acme"]).expect(0);
    assert!(
        live.query_one("SELECT 1", &[]).is_err(),
        "the live session survived"
    );
    assert!(granted(&env, &silo, &admin));
}

#[test]
fn pooled_tenants_are_measured_without_bypassing_row_level_security() {
    let env = TestEnv::new();
    for slug in ["free1", "free2", "free3"] {
        env.run(&["provision", slug, "--tier", "free", "-q"])
            .expect(0);
    }
    env.run(&["suspend", "free3"]).expect(0);
    env.run(&["usage", "refresh"]).expect(0);
    for slug in ["free1", "free2", "free3"] {
        assert_eq!(measured(&env, slug, "users"), 1, "{slug}: its owner");
        assert!(measured(&env, slug, "storage_mb") >= 1, "{slug}: its rows");
    }
    // The suspension lifted to measure free3 was never committed.
    let mut pooled = env.admin(&env.pooled_db());
    let suspended: i64 = pooled
        .query_one("SELECT count(*) FROM tenant_suspensions", &[])
        .unwrap()
        .get(0);
    assert_eq!(suspended, 1);
    // The hard limit of one user holds: a measured 0 would let a second one in.
    env.run(&["quota", "check", "free1", "users"]).expect(3);
}

/// The superuser path keeps its own runs: provision (both isolations), a live-session
/// suspension, migrate, measurement, purge.
#[test]
fn the_superuser_path_still_works() {
    let env = TestEnv::superuser();
    env.run(&["provision", "acme", "--tier", "premium", "-q"])
        .expect(0);
    env.run(&["provision", "free1", "--tier", "free", "-q"])
        .expect(0);
    env.run(&["provision", "free2", "--tier", "free", "-q"])
        .expect(0);
    let (admin, superuser, _, _) = connecting_role(&env);
    assert!(superuser, "{admin} should be the superuser");
    let silo = env.silo("acme");
    assert!(
        !granted(&env, &silo, &admin),
        "a superuser needs no membership"
    );

    let mut live = env.connect_as(&silo, &silo).unwrap();
    live.query_one("SELECT 1", &[]).unwrap();
    env.run(&["suspend", "acme"]).expect(0);
    assert!(live.query_one("SELECT 1", &[]).is_err());
    env.run(&["suspend", "free2"]).expect(0);
    env.run(&["migrate", "-q"]).expect(0);
    env.run(&["usage", "refresh"]).expect(0);
    for slug in ["free1", "free2"] {
        assert_eq!(measured(&env, slug, "users"), 1, "{slug}");
        assert!(measured(&env, slug, "storage_mb") >= 1, "{slug}");
    }
    for slug in ["acme", "free1", "free2"] {
        env.run(&["deprovision", slug, "--purge", "--yes"])
            .expect(0);
    }
    let (dbs, roles) = env.owned_objects();
    assert!(
        !dbs.contains(&silo) && !roles.contains(&silo),
        "{dbs:?} {roles:?}"
    );
}

/// A non-superuser admin cannot end a superuser's session: a suspension leaves it (the silo
/// is closed to new ones all the same), and a purge fails until it has gone.
#[test]
fn a_superuser_session_in_a_silo_is_left_by_suspend_and_stops_a_purge() {
    let env = TestEnv::new();
    env.run(&["provision", "acme", "--tier", "premium", "-q"])
        .expect(0);
    let silo = env.silo("acme");
    let mut su = env.admin(&silo);
    su.query_one("SELECT 1", &[]).unwrap();
    env.run(&["suspend", "acme"]).expect(0);
    su.query_one("SELECT 1", &[]).unwrap();
    assert!(env.connect_as(&silo, &silo).is_err());

    let run = env
        .run(&["deprovision", "acme", "--purge", "--yes"])
        .expect(1);
    assert!(
        run.stderr.contains("is being accessed by other users"),
        "{}",
        run.stderr
    );
    assert!(env.database_exists(&silo));
    drop(su);
    env.run(&["deprovision", "acme", "--purge", "--yes"])
        .expect(0);
    assert_eq!(env.owned_objects(), (vec![], vec![]));
}
