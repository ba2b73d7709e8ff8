//! `backup`, `backups list|prune`, `restore-backup`: round trips of a silo and of a pooled
//! tenant (on the S3 server), with rows compared one by one; restores killed midway; backups
//! on the local backend; `backup --all` carrying on past a failure.

use crate::support::s3::S3Env;
use crate::support::TestEnv;

fn tenant_id(env: &TestEnv, slug: &str) -> String {
    env.control()
        .query_one("SELECT id::text FROM tenants WHERE slug = $1", &[&slug])
        .unwrap()
        .get(0)
}

fn db_of(env: &TestEnv, slug: &str) -> String {
    let v = env.run(&["show", slug, "-o", "json"]).expect(0).json();
    v["database"].as_str().unwrap().to_owned()
}

/// Gives the tenant users, applications, deployments and api keys (as the superuser).
fn fill(env: &TestEnv, slug: &str, n: i32, tag: &str) {
    let id = tenant_id(env, slug);
    env.admin(&db_of(env, slug))
        .execute(
            "WITH u AS (
               INSERT INTO users (tenant_id, email, password_hash, full_name)
               SELECT $1::text::uuid, $3 || g || '@x.test', 'h' || g, E'Name \\t\\n ' || g
               FROM generate_series(1, $2) g RETURNING id, tenant_id),
             a AS (
               INSERT INTO applications (tenant_id, user_id, name, description)
               SELECT tenant_id, id, 'app', NULL FROM u RETURNING id, tenant_id, user_id),
             d AS (
               INSERT INTO deployments (tenant_id, application_id, version)
               SELECT tenant_id, id, 'v1' FROM a RETURNING id)
             INSERT INTO api_keys (tenant_id, user_id, key_hash)
             SELECT tenant_id, user_id, md5(random()::text) FROM a",
            &[&id, &n, &tag],
        )
        .unwrap();
}

/// Every row of the tenant, table by table, as text, ordered: compared one by one.
fn rows(env: &TestEnv, slug: &str) -> Vec<(String, Vec<String>)> {
    let id = tenant_id(env, slug);
    let mut c = env.admin(&db_of(env, slug));
    ["users", "applications", "deployments", "api_keys"]
        .iter()
        .map(|t| {
            let rows = c
                .query(
                    &format!(
                        "SELECT row_to_json(x)::text FROM {t} x WHERE tenant_id = $1::text::uuid ORDER BY id"
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

/// Changes the tenant's data: some rows gone, some changed, some new.
fn scribble(env: &TestEnv, slug: &str) {
    let id = tenant_id(env, slug);
    let mut c = env.admin(&db_of(env, slug));
    c.execute(
        "DELETE FROM users WHERE tenant_id = $1::text::uuid AND email LIKE 'u1%'",
        &[&id],
    )
    .unwrap();
    c.execute(
        "UPDATE applications SET name = 'changed' WHERE tenant_id = $1::text::uuid",
        &[&id],
    )
    .unwrap();
    fill(env, slug, 2, "new");
}

fn side_databases(env: &TestEnv) -> Vec<String> {
    env.admin("postgres")
        .query("SELECT datname::text FROM pg_database ORDER BY 1", &[])
        .unwrap()
        .iter()
        .map(|r| r.get::<_, String>(0))
        .filter(|d| d.starts_with(&format!("{}_", env.prefix)))
        .collect()
}

fn backup(env: &TestEnv, slug: &str) -> String {
    let v = env.run(&["backup", slug, "-o", "json"]).expect(0).json();
    assert_eq!(v["slug"], slug);
    v["id"].as_str().unwrap().to_owned()
}

#[test]
fn silo_round_trip_on_s3_restores_every_row_into_a_fresh_database() {
    let env = TestEnv::new();
    let s3 = S3Env::new(&env);
    env.provision("silo", "premium");
    fill(&env, "silo", 30, "u");
    let before = rows(&env, "silo");
    let id = backup(&env, "silo");
    let dump = s3
        .silo_bucket("silo", "backups")
        .join(&id)
        .join("database.dump");
    assert!(std::fs::metadata(&dump).unwrap().len() > 1000);
    let oid_before: u32 = env
        .admin("postgres")
        .query_one(
            "SELECT oid FROM pg_database WHERE datname = $1",
            &[&env.silo("silo")],
        )
        .unwrap()
        .get(0);

    scribble(&env, "silo");
    assert_ne!(rows(&env, "silo"), before);
    // An active tenant is overwritten only with --yes; nothing changes without it.
    let run = env.run(&["restore-backup", "silo", &id]).expect(3);
    assert!(run.stderr.contains("--yes"), "{}", run.stderr);
    let scribbled = rows(&env, "silo");
    assert_ne!(scribbled, before);

    let v = env
        .run(&["restore-backup", "silo", &id, "--yes", "-o", "json"])
        .expect(0)
        .json();
    assert_eq!(v["backup_id"], id.as_str());
    assert_eq!(rows(&env, "silo"), before);
    // A fresh database took the old one's place; nothing else is left beside it.
    let oid_after: u32 = env
        .admin("postgres")
        .query_one(
            "SELECT oid FROM pg_database WHERE datname = $1",
            &[&env.silo("silo")],
        )
        .unwrap()
        .get(0);
    assert_ne!(oid_before, oid_after);
    assert!(
        side_databases(&env).is_empty(),
        "{:?}",
        side_databases(&env)
    );
    // Still the tenant's: marked, its role connects and sees its rows (only it may connect).
    env.connect_as(&env.silo("silo"), &env.silo("silo"))
        .expect("the tenant's role connects to the restored database");
    env.run(&["suspend", "silo"]).expect(0);
    env.run(&["resume", "silo"]).expect(0);
    let audit = env.scalar_i64(
        "SELECT count(*) FROM audit_log WHERE action IN ('backup', 'restore-backup')",
        &[],
    );
    assert_eq!(audit, 2);
}

#[test]
fn pooled_round_trip_on_s3_replaces_only_the_tenants_rows() {
    let env = TestEnv::new();
    let s3 = S3Env::new(&env);
    env.provision("pool", "free");
    env.provision("other", "free");
    fill(&env, "pool", 20, "u");
    fill(&env, "other", 5, "u");
    let before = rows(&env, "pool");
    let id = backup(&env, "pool");
    assert!(s3
        .pooled_prefix("pool", "backups")
        .join(&id)
        .join("manifest.json")
        .is_file());
    scribble(&env, "pool");
    scribble(&env, "other");
    let other = rows(&env, "other");
    // A suspended tenant needs no --yes; its suspension stays.
    env.run(&["suspend", "pool"]).expect(0);
    env.run(&["restore-backup", "pool", &id]).expect(0);
    assert_eq!(rows(&env, "pool"), before);
    assert_eq!(
        rows(&env, "other"),
        other,
        "another tenant's rows are untouched"
    );
    let suspended = env.scalar_i64(
        "SELECT count(*) FROM tenants WHERE slug = 'pool' AND status = 'suspended'",
        &[],
    );
    assert_eq!(suspended, 1);
    // A backup of a suspended pooled tenant sees its rows too.
    let id2 = backup(&env, "pool");
    let list = env
        .run(&["backups", "list", "pool", "-o", "json"])
        .expect(0)
        .json();
    let ids: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![id.as_str(), id2.as_str()]);
    assert_eq!(list[0]["rows"], list[1]["rows"]);
    // Another tenant's backup id is not this tenant's.
    let theirs = backup(&env, "other");
    env.run(&["restore-backup", "pool", &theirs, "--yes"])
        .expect(3);
}

#[test]
fn a_restore_killed_midway_never_leaves_half_the_data() {
    let env = TestEnv::new();
    let _s3 = S3Env::new(&env);
    env.provision("pool", "free");
    env.provision("silo", "premium");
    fill(&env, "pool", 10, "u");
    fill(&env, "silo", 10, "u");
    let (pool_before, silo_before) = (rows(&env, "pool"), rows(&env, "silo"));
    let (pool_id, silo_id) = (backup(&env, "pool"), backup(&env, "silo"));
    scribble(&env, "pool");
    scribble(&env, "silo");
    let (pool_changed, silo_changed) = (rows(&env, "pool"), rows(&env, "silo"));

    // Pooled: killed with every row replaced but not committed: nothing changed.
    let run = env.run_env(
        &["restore-backup", "pool", &pool_id, "--yes"],
        &[("TENANTCTL_FAILPOINT", "restore-backup:before-commit")],
    );
    assert_ne!(run.code, Some(0));
    assert_eq!(rows(&env, "pool"), pool_changed);
    env.run(&["restore-backup", "pool", &pool_id, "--yes"])
        .expect(0);
    assert_eq!(rows(&env, "pool"), pool_before);

    // Siloed, killed after loading and verifying: the tenant's database is untouched, and the
    // next run drops the staging database before starting over.
    let run = env.run_env(
        &["restore-backup", "silo", &silo_id, "--yes"],
        &[("TENANTCTL_FAILPOINT", "restore-backup:verified")],
    );
    assert_ne!(run.code, Some(0));
    assert_eq!(rows(&env, "silo"), silo_changed);
    assert_eq!(side_databases(&env).len(), 1);

    // Killed between the two renames: the tenant has no database for a moment; the next run
    // finishes the swap (no data is half of one and half of the other at any point).
    let run = env.run_env(
        &["restore-backup", "silo", &silo_id, "--yes"],
        &[("TENANTCTL_FAILPOINT", "restore-backup:swapping")],
    );
    assert_ne!(run.code, Some(0));
    assert!(!env.database_exists(&env.silo("silo")));
    let v = env
        .run(&["restore-backup", "silo", &silo_id, "--yes", "-o", "json"])
        .expect(0)
        .json();
    assert!(v["settled"].as_str().unwrap().contains("finished"), "{v}");
    assert_eq!(rows(&env, "silo"), silo_before);
    assert!(
        side_databases(&env).is_empty(),
        "{:?}",
        side_databases(&env)
    );
}

#[test]
fn backups_on_the_local_backend_list_prune_and_all() {
    let env = TestEnv::new();
    env.provision("one", "free");
    env.provision("two", "premium");
    env.provision("bad", "free");
    let a = backup(&env, "one");
    let b = backup(&env, "one");
    let c = backup(&env, "one");
    // A backup killed before its manifest is no backup.
    env.run_env(
        &["backup", "one"],
        &[("TENANTCTL_FAILPOINT", "backup:before-manifest")],
    );
    let list = env.run(&["backups", "list", "one"]).expect(0);
    for id in [&a, &b, &c] {
        assert!(list.stdout.contains(id.as_str()), "{}", list.stdout);
    }
    assert_eq!(list.stdout.lines().count(), 4, "{}", list.stdout);
    let v = env
        .run(&["backups", "prune", "one", "--keep", "1", "-o", "json"])
        .expect(0)
        .json();
    assert_eq!(v["kept"], serde_json::json!([c]));
    assert_eq!(v["deleted"], serde_json::json!([a, b]));
    // The four table objects of the backup killed before its manifest.
    assert_eq!(v["leftovers"], 4);
    let root = env.storage_root().join("one-backups");
    let mut left: Vec<String> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(left, vec![".tenantctl-bucket".to_owned(), c.clone()]);
    env.run(&["backups", "prune", "one", "--keep", "0"])
        .expect(2);

    // --all: one tenant whose backups bucket is not its own fails; the others are backed up.
    std::fs::write(
        env.storage_root().join("bad-backups/.tenantctl-bucket"),
        "tenantctl:someone:else\n",
    )
    .unwrap();
    let run = env.run(&["backup", "--all", "--concurrency", "2", "-o", "json"]);
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    assert!(run.stderr.contains("bad"), "{}", run.stderr);
    let v = run.json();
    let done: Vec<&str> = v["backed_up"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["slug"].as_str().unwrap())
        .collect();
    assert_eq!(done, vec!["one", "two"]);
    assert_eq!(v["failed"][0]["slug"], "bad");

    env.run(&["restore-backup", "one", "not/an-id"]).expect(2);
    env.run(&[
        "restore-backup",
        "one",
        "20990101T000000000Z-00000000",
        "--yes",
    ])
    .expect(3);
    env.run(&["backup", "ghost"]).expect(3);
}
