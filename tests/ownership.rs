//! Ownership: tenantctl marks what it creates and touches nothing else; names never collide;
//! `purge --expired` carries on past a failure; retention is fixed at deletion; API key hashes
//! are unique per tenant; a second concurrent `provision` waits briefly, then says "in progress".

use std::time::{Duration, Instant};

use crate::support::TestEnv;

fn comment(env: &TestEnv, catalog: &str, name: &str) -> Option<String> {
    let sql = match catalog {
        "pg_database" => {
            "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = $1"
        }
        _ => "SELECT shobj_description(oid, 'pg_authid') FROM pg_roles WHERE rolname = $1",
    };
    env.admin("postgres")
        .query_one(sql, &[&name])
        .unwrap()
        .get(0)
}

fn role_exists(env: &TestEnv, role: &str) -> bool {
    env.admin("postgres")
        .query_opt("SELECT 1 FROM pg_roles WHERE rolname = $1", &[&role])
        .unwrap()
        .is_some()
}

fn tenant_count(env: &TestEnv, slug: &str) -> i64 {
    env.scalar_i64("SELECT count(*) FROM tenants WHERE slug = $1", &[&slug])
}

fn status(env: &TestEnv, slug: &str) -> Option<String> {
    env.control()
        .query_opt("SELECT status FROM tenants WHERE slug = $1", &[&slug])
        .unwrap()
        .map(|r| r.get(0))
}

/// A database of someone else's, with a table and a row, under the test's prefix.
fn foreign_database(env: &TestEnv, name: &str) {
    env.admin("postgres")
        .batch_execute(&format!("CREATE DATABASE \"{name}\""))
        .unwrap();
    env.admin(name)
        .batch_execute("CREATE TABLE precious (v text); INSERT INTO precious VALUES ('keep me')")
        .unwrap();
}

fn precious_rows(env: &TestEnv, db: &str) -> i64 {
    env.admin(db)
        .query_one("SELECT count(*) FROM precious", &[])
        .unwrap()
        .get(0)
}

fn one_line(stderr: &str) -> &str {
    let lines: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error")).collect();
    assert_eq!(lines.len(), 1, "one error line expected:\n{stderr}");
    lines[0]
}

#[test]
fn created_objects_carry_this_control_planes_mark() {
    let env = TestEnv::new();
    env.run(&["provision", "acme", "--tier", "premium", "-q"])
        .expect(0);
    env.run(&["provision", "tiny", "--tier", "free", "-q"])
        .expect(0);
    let mut c = env.control();
    let plane: String = c
        .query_one("SELECT id::text FROM control_plane", &[])
        .unwrap()
        .get(0);
    let acme: String = c
        .query_one("SELECT id::text FROM tenants WHERE slug = 'acme'", &[])
        .unwrap()
        .get(0);
    let mark = format!("tenantctl:{plane}:{acme}");
    assert_eq!(
        comment(&env, "pg_database", &env.silo("acme")),
        Some(mark.clone())
    );
    assert_eq!(comment(&env, "pg_authid", &env.silo("acme")), Some(mark));
    let pooled = format!("tenantctl:{plane}:pooled");
    assert_eq!(
        comment(&env, "pg_database", &env.pooled_db()),
        Some(pooled.clone())
    );
    assert_eq!(comment(&env, "pg_authid", &env.app_role()), Some(pooled));
}

#[test]
fn a_foreign_database_is_refused_kept_and_never_dropped() {
    let env = TestEnv::new();
    let db = env.silo("victim");
    env.run(&["list"]).expect(0);
    foreign_database(&env, &db);
    let run = env
        .run(&["provision", "victim", "--tier", "premium", "-q"])
        .expect(3);
    let line = one_line(&run.stderr);
    assert!(line.contains(&format!("database `{db}`")), "{line}");
    assert_eq!(tenant_count(&env, "victim"), 0, "nothing recorded");
    assert!(!role_exists(&env, &db), "no role created");
    assert_eq!(precious_rows(&env, &db), 1);
    assert_eq!(comment(&env, "pg_database", &db), None, "not adopted");
    env.run(&["deprovision", "victim", "--purge", "--yes"])
        .expect(3);
    assert_eq!(precious_rows(&env, &db), 1, "the foreign database survives");
}

#[test]
fn a_foreign_role_is_refused_kept_and_never_dropped() {
    let env = TestEnv::new();
    let name = env.silo("victim");
    env.run(&["list"]).expect(0);
    env.admin("postgres")
        .batch_execute(&format!("CREATE ROLE \"{name}\" LOGIN"))
        .unwrap();
    let run = env
        .run(&["provision", "victim", "--tier", "premium", "-q"])
        .expect(3);
    assert!(
        one_line(&run.stderr).contains(&format!("role `{name}`")),
        "{}",
        run.stderr
    );
    assert_eq!(tenant_count(&env, "victim"), 0);
    assert!(!env.database_exists(&name), "no database created");
    env.run(&["deprovision", "victim", "--purge", "--yes"])
        .expect(3);
    assert!(role_exists(&env, &name), "the foreign role survives");
}

#[test]
fn a_foreign_pooled_database_is_refused() {
    let env = TestEnv::new();
    env.run(&["list"]).expect(0);
    foreign_database(&env, &env.pooled_db());
    let run = env
        .run(&["provision", "tiny", "--tier", "free", "-q"])
        .expect(3);
    assert!(
        one_line(&run.stderr).contains(&format!("database `{}`", env.pooled_db())),
        "{}",
        run.stderr
    );
    assert_eq!(tenant_count(&env, "tiny"), 0);
    assert_eq!(precious_rows(&env, &env.pooled_db()), 1);
}

#[test]
fn an_object_that_lost_its_mark_is_never_changed_or_dropped_until_adopted() {
    let env = TestEnv::new();
    env.run(&["provision", "acme", "--tier", "premium", "-q"])
        .expect(0);
    let name = env.silo("acme");
    // As a tenant provisioned before marks existed looks.
    env.admin("postgres")
        .batch_execute(&format!(
            "COMMENT ON DATABASE \"{name}\" IS NULL; COMMENT ON ROLE \"{name}\" IS NULL"
        ))
        .unwrap();
    for args in [
        &["suspend", "acme"][..],
        &["deprovision", "acme"],
        &["deprovision", "acme", "--purge", "--yes"],
    ] {
        let run = env.run(args).expect(3);
        assert!(
            one_line(&run.stderr).contains("tenantctl adopt"),
            "{args:?}: {}",
            run.stderr
        );
        assert_eq!(status(&env, "acme").as_deref(), Some("active"), "{args:?}");
    }
    let run = env.run(&["migrate", "-o", "json"]).expect(1);
    let failed: Vec<serde_json::Value> = run
        .json()
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["result"] == "failed")
        .cloned()
        .collect();
    assert_eq!(failed.len(), 1, "{}", run.stdout);
    assert_eq!(failed[0]["database"], name.as_str());
    assert!(failed[0]["error"]
        .as_str()
        .unwrap()
        .contains("no tenantctl mark"));
    assert!(env.database_exists(&name));
    let mut c = env.connect_as(&name, &name).expect("still open");
    c.batch_execute("SELECT 1").unwrap();

    // Marked for another tenant: adopt refuses it too.
    env.admin("postgres")
        .batch_execute(&format!(
            "COMMENT ON DATABASE \"{name}\" IS 'tenantctl:00000000-0000-0000-0000-000000000000:other'"
        ))
        .unwrap();
    env.run(&["adopt", "acme"]).expect(3);
    env.admin("postgres")
        .batch_execute(&format!("COMMENT ON DATABASE \"{name}\" IS NULL"))
        .unwrap();

    let v = env.run(&["adopt", "acme", "-o", "json"]).expect(0).json();
    assert_eq!(v["marked"].as_array().unwrap().len(), 2, "{v}");
    assert_eq!(
        env.scalar_i64(
            "SELECT count(*) FROM audit_log WHERE slug = 'acme' AND action = 'adopt'",
            &[],
        ),
        1
    );
    env.run(&["suspend", "acme"]).expect(0);
    env.run(&["deprovision", "acme", "--purge", "--yes"])
        .expect(0);
    assert!(!env.database_exists(&name));
}

#[test]
fn a_run_killed_between_create_and_mark_is_finished_by_the_next() {
    let env = TestEnv::new();
    let crashed = env.run_env(
        &["provision", "acme", "--tier", "premium", "-q"],
        &[("TENANTCTL_FAILPOINT", "create-database:unmarked")],
    );
    assert_ne!(crashed.code, Some(0), "{}", crashed.stderr);
    let name = env.silo("acme");
    assert!(env.database_exists(&name));
    assert_eq!(comment(&env, "pg_database", &name), None);
    env.run(&["provision", "acme", "--tier", "premium", "-q"])
        .expect(0);
    assert!(comment(&env, "pg_database", &name)
        .unwrap()
        .starts_with("tenantctl:"));
    assert_eq!(
        env.scalar_i64("SELECT count(*) FROM database_claims", &[]),
        0
    );

    // Killed in the same gap, then purged instead of finished: the claim makes it ours.
    let crashed = env.run_env(
        &["provision", "beta", "--tier", "premium", "-q"],
        &[("TENANTCTL_FAILPOINT", "create-database:unmarked")],
    );
    assert_ne!(crashed.code, Some(0), "{}", crashed.stderr);
    assert_eq!(comment(&env, "pg_database", &env.silo("beta")), None);
    env.run(&["deprovision", "beta", "--purge", "--yes"])
        .expect(0);
    assert!(!env.database_exists(&env.silo("beta")));
}

/// The shared pooled database between its CREATE and its mark (a first pooled tenant's run in
/// that gap, or killed there) is ours by its claim: another tenant's provisioning must not take
/// it for someone else's (it did, under concurrent first pooled tenants of a bulk run).
#[test]
fn a_pooled_database_killed_between_create_and_mark_blocks_no_other_tenant() {
    let env = TestEnv::new();
    let crashed = env.run_env(
        &["provision", "first", "--tier", "free", "-q"],
        &[("TENANTCTL_FAILPOINT", "create-database:unmarked")],
    );
    assert_ne!(crashed.code, Some(0), "{}", crashed.stderr);
    let pooled = env.pooled_db();
    assert!(env.database_exists(&pooled));
    assert_eq!(comment(&env, "pg_database", &pooled), None);

    env.run(&["provision", "second", "--tier", "free", "-q"])
        .expect(0);
    assert!(comment(&env, "pg_database", &pooled)
        .unwrap()
        .starts_with("tenantctl:"));
    assert_eq!(
        env.scalar_i64("SELECT count(*) FROM database_claims", &[]),
        0
    );
    env.run(&["provision", "first", "--tier", "free", "-q"])
        .expect(0);
    for slug in ["first", "second"] {
        assert_eq!(
            env.scalar_i64(
                "SELECT count(*) FROM tenants WHERE slug = $1 AND status = 'active'",
                &[&slug],
            ),
            1,
            "{slug}"
        );
    }

    // Without a claim an unmarked database of that name is still refused, and nothing is
    // recorded for the tenant that asked.
    env.admin("postgres")
        .batch_execute(&format!("COMMENT ON DATABASE \"{pooled}\" IS NULL"))
        .unwrap();
    let refused = env
        .run(&["provision", "third", "--tier", "free", "-q"])
        .expect(3);
    assert!(
        refused.stderr.contains("no tenantctl mark"),
        "{}",
        refused.stderr
    );
    assert_eq!(
        env.scalar_i64("SELECT count(*) FROM tenants WHERE slug = 'third'", &[]),
        0
    );
}

#[test]
fn names_that_could_collide_are_refused_before_connecting() {
    let env = TestEnv::bare();
    // A control database a slug could produce: `provision control` would grant it to a tenant.
    let control = env.silo("control");
    let url = env.url(&control);
    let run = env
        .run_env(
            &["provision", "control", "--tier", "premium"],
            &[("TENANTCTL_DATABASE_URL", url.as_str())],
        )
        .expect(2);
    assert!(
        one_line(&run.stderr).contains("control database"),
        "{}",
        run.stderr
    );
    assert!(!env.database_exists(&control));
    // Prefixes that do not end with '_' would let `tenant_a` + `cme` meet `tenant_` + `acme`.
    for bad in ["tenant_a", "tenant", "x"] {
        let run = env
            .run_env(&["list"], &[("TENANTCTL_NAME_PREFIX", bad)])
            .expect(2);
        assert!(
            one_line(&run.stderr).contains("name prefix"),
            "{}",
            run.stderr
        );
    }
    assert!(!env.database_exists(&env.control_db), "nothing was created");
}

#[test]
fn purge_expired_carries_on_past_a_broken_tenant_and_names_it() {
    let env = TestEnv::new();
    for slug in ["aaa", "bbb", "ccc"] {
        env.run(&["provision", slug, "--tier", "premium", "-q"])
            .expect(0);
        env.run_env(&["deprovision", slug], &[("TENANTCTL_RETENTION_DAYS", "0")])
            .expect(0);
    }
    // bbb is stuck in `deleting`, and its database cannot be dropped (it lost its mark).
    let bbb = env.silo("bbb");
    env.control()
        .execute(
            "UPDATE tenants SET status = 'deleting' WHERE slug = 'bbb'",
            &[],
        )
        .unwrap();
    env.admin("postgres")
        .batch_execute(&format!("COMMENT ON DATABASE \"{bbb}\" IS NULL"))
        .unwrap();
    let run = env
        .run(&["purge", "--expired", "--yes", "-o", "json"])
        .expect(1);
    let line = one_line(&run.stderr);
    assert!(line.contains("`bbb`") && !line.contains("`aaa`"), "{line}");
    let slugs: Vec<String> = run
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["slug"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(slugs, ["aaa", "ccc"]);
    assert!(!env.database_exists(&env.silo("aaa")));
    assert!(!env.database_exists(&env.silo("ccc")));
    assert!(env.database_exists(&bbb));
    assert_eq!(tenant_count(&env, "aaa") + tenant_count(&env, "ccc"), 0);
    assert_eq!(status(&env, "bbb").as_deref(), Some("deleting"));
}

#[test]
fn retention_is_fixed_when_the_tenant_is_deleted() {
    let env = TestEnv::new();
    env.run(&["provision", "keep", "--tier", "premium", "-q"])
        .expect(0);
    env.run(&["provision", "short", "--tier", "free", "-q"])
        .expect(0);
    env.run(&["deprovision", "keep"]).expect(0); // default: 30 days
    env.run_env(
        &["deprovision", "short"],
        &[("TENANTCTL_RETENTION_DAYS", "0")],
    )
    .expect(0);
    let days = env.scalar_i64(
        "SELECT round(extract(epoch FROM purge_after - deleted_at) / 86400)::bigint FROM tenants WHERE slug = 'keep'",
        &[],
    );
    assert_eq!(days, 30);
    let v = env.run(&["show", "keep", "-o", "json"]).expect(0).json();
    assert!(v["purge_after"].is_string(), "{v}");

    // A shorter retention configured later neither expires `keep` nor stops its restore...
    let v = env
        .run_env(
            &["purge", "--expired", "--yes", "-o", "json"],
            &[("TENANTCTL_RETENTION_DAYS", "0")],
        )
        .expect(0)
        .json();
    let slugs: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["slug"].as_str().unwrap())
        .collect();
    assert_eq!(
        slugs,
        ["short"],
        "only the tenant deleted with 0 days expired"
    );
    env.run_env(&["restore", "keep"], &[("TENANTCTL_RETENTION_DAYS", "0")])
        .expect(0);
    assert_eq!(status(&env, "keep").as_deref(), Some("active"));
    assert_eq!(
        env.scalar_i64(
            "SELECT count(*) FROM tenants WHERE slug = 'keep' AND purge_after IS NULL",
            &[]
        ),
        1
    );
}

#[test]
fn api_key_hashes_are_unique_per_tenant_not_across_pooled_tenants() {
    let env = TestEnv::new();
    for slug in ["one", "two"] {
        env.run(&["provision", slug, "--tier", "free", "-q"])
            .expect(0);
    }
    let mut app = env.connect_as(&env.app_role(), &env.pooled_db()).unwrap();
    let insert = |app: &mut postgres::Client, slug: &str| {
        let id: String = env
            .control()
            .query_one("SELECT id::text FROM tenants WHERE slug = $1", &[&slug])
            .unwrap()
            .get(0);
        let mut tx = app.transaction().unwrap();
        tx.execute("SELECT set_config('app.tenant_id', $1, true)", &[&id])
            .unwrap();
        let r = tx.execute(
            "INSERT INTO api_keys (tenant_id, user_id, key_hash)
             SELECT tenant_id, id, 'same-hash' FROM users LIMIT 1",
            &[],
        );
        match r {
            Ok(n) => {
                tx.commit().unwrap();
                Ok(n)
            }
            Err(e) => Err(e),
        }
    };
    assert_eq!(insert(&mut app, "one").unwrap(), 1);
    assert_eq!(
        insert(&mut app, "two").expect("another tenant's hash reveals nothing"),
        1
    );
    let dup = insert(&mut app, "one").unwrap_err();
    assert_eq!(
        dup.code(),
        Some(&postgres::error::SqlState::UNIQUE_VIOLATION)
    );
}

#[test]
fn a_second_provision_waits_two_seconds_then_says_in_progress() {
    let env = TestEnv::new();
    env.run(&["usage", "refresh"]).expect(0);
    let lock = |c: &mut postgres::Client| {
        c.execute(
            "SELECT pg_advisory_lock(hashtextextended('tenantctl:tenant:acme', 0))",
            &[],
        )
        .unwrap();
    };
    // Held for longer than the grace: exit 3 "in progress", nothing recorded.
    let mut holder = env.control();
    lock(&mut holder);
    let t0 = Instant::now();
    let run = env
        .run(&["provision", "acme", "--tier", "premium", "-q"])
        .expect(3);
    assert!(t0.elapsed() >= Duration::from_secs(2), "waited the grace");
    assert!(
        one_line(&run.stderr).contains("in progress"),
        "{}",
        run.stderr
    );
    assert_eq!(tenant_count(&env, "acme"), 0);
    // Released within the grace (a killed run's session ending): the waiting run proceeds.
    let release = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(500));
        drop(holder);
    });
    env.run(&["provision", "acme", "--tier", "premium", "-q"])
        .expect(0);
    release.join().unwrap();
    assert_eq!(status(&env, "acme").as_deref(), Some("active"));
}

#[test]
fn marks_work_without_superuser() {
    // TestEnv runs tenantctl as a role with LOGIN CREATEDB CREATEROLE only.
    let env = TestEnv::new();
    assert!(env.admin_role.is_some());
    env.run(&["provision", "acme", "--tier", "premium", "-q"])
        .expect(0);
    assert!(comment(&env, "pg_database", &env.silo("acme"))
        .unwrap()
        .starts_with("tenantctl:"));
    assert!(comment(&env, "pg_authid", &env.silo("acme"))
        .unwrap()
        .starts_with("tenantctl:"));
    env.run(&["deprovision", "acme", "--purge", "--yes"])
        .expect(0);
    assert!(!env.database_exists(&env.silo("acme")));
}

#[test]
fn migration_v5_backfills_purge_after_from_the_audited_retention() {
    let env = TestEnv::bare();
    env.admin("postgres")
        .batch_execute(&format!("CREATE DATABASE \"{}\"", env.control_db))
        .unwrap();
    let mut c = env.control();
    let sql = |v: &str| {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("sql/control");
        let file = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.file_name().unwrap().to_string_lossy().starts_with(v))
            .unwrap();
        std::fs::read_to_string(file).unwrap()
    };
    for v in ["V1__", "V2__", "V3__", "V4__"] {
        c.batch_execute(&sql(v)).unwrap();
    }
    // Deleted before V5: one audited with 7 days, one with no retention in its entry.
    c.batch_execute(
        "INSERT INTO tenants (slug, name, tier, isolation, status, database_name, role_name,
                              owner_email, owner_name, deleted_at)
         VALUES ('seven', 's', 'premium', 'siloed', 'deleted', 'x_seven', 'x_seven', 'o@s.example', 'O',
                 '2026-11-01T00:00:00Z'),
                ('plain', 'p', 'premium', 'siloed', 'deleted', 'x_plain', 'x_plain', 'o@p.example', 'O',
                 '2026-11-01T00:00:00Z');
         INSERT INTO audit_log (actor, action, tenant_id, slug, details)
         SELECT 'ops', 'deprovision', id, slug, '{\"retention_days\": 7}' FROM tenants WHERE slug = 'seven';",
    )
    .unwrap();
    c.batch_execute(&sql("V5__")).unwrap();
    let mut after = |slug: &str| -> String {
        c.query_one(
            "SELECT to_char(purge_after AT TIME ZONE 'UTC', 'YYYY-MM-DD') FROM tenants WHERE slug = $1",
            &[&slug],
        )
        .unwrap()
        .get(0)
    };
    assert_eq!(after("seven"), "2026-11-08");
    assert_eq!(after("plain"), "2026-12-01");
}

/// Buckets are marked like databases: a bucket directory tenantctl did not make for this
/// tenant (something an operator keeps there, or another control plane's tenant of the same
/// slug sharing the bucket root) is never adopted, emptied or removed.
#[test]
fn a_bucket_that_is_not_the_tenants_is_refused_and_never_removed() {
    let a = TestEnv::new();
    let b = TestEnv::new();
    let root = a.storage_root();
    let shared = [("TENANTCTL_STORAGE_ROOT", root.to_str().unwrap())];

    // Control plane A provisions acme and its application stores a file.
    a.run(&["provision", "acme", "--tier", "premium", "-q"])
        .expect(0);
    let file = root.join("acme-uploads/invoice.pdf");
    std::fs::write(&file, "A's data").unwrap();

    // Control plane B, same bucket root: its `acme` is refused before anything is recorded.
    let run = b
        .run_env(&["provision", "acme", "--tier", "premium", "-q"], &shared)
        .expect(3);
    assert!(
        one_line(&run.stderr).contains("refusing to touch bucket"),
        "{}",
        run.stderr
    );
    assert_eq!(tenant_count(&b, "acme"), 0);
    assert!(!b.database_exists(&b.silo("acme")));

    // A directory an operator keeps under a tenant's bucket name: refused the same way.
    std::fs::create_dir_all(root.join("beta-assets")).unwrap();
    std::fs::write(root.join("beta-assets/keep.txt"), "mine").unwrap();
    b.run_env(&["provision", "beta", "--tier", "free", "-q"], &shared)
        .expect(3);
    assert_eq!(tenant_count(&b, "beta"), 0);

    // A bucket whose mark was lost: purge refuses before changing anything; adopt marks it.
    std::fs::remove_file(root.join("acme-uploads/.tenantctl-bucket")).unwrap();
    let run = a
        .run(&["deprovision", "acme", "--purge", "--yes"])
        .expect(3);
    assert!(run.stderr.contains("acme-uploads"), "{}", run.stderr);
    assert_eq!(status(&a, "acme").as_deref(), Some("active"));
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "A's data");
    a.run(&["adopt", "acme"]).expect(0);
    a.run(&["deprovision", "acme", "--purge", "--yes"])
        .expect(0);
    assert!(!root.join("acme-uploads").exists());
    assert_eq!(
        std::fs::read_to_string(root.join("beta-assets/keep.txt")).unwrap(),
        "mine"
    );
}

/// Provisions siloed `slug` and kills the run while the server is still executing its `CREATE
/// DATABASE` (held in flight by an uncommitted rename of another database to its name), then
/// runs `args` and, 1.5 s later, lets the CREATE go on: `args` ends (its exit code is returned)
/// and so does the killed run's CREATE before this returns. An operator's Ctrl-C and "never
/// mind": the killed run's advisory lock is gone with its idle session, its CREATE is not.
fn after_a_kill_during_create_database(env: &TestEnv, slug: &str, args: &[&str]) -> i32 {
    let db = env.silo(slug);
    let scratch = format!("{db}_scratch");
    env.admin("postgres")
        .batch_execute(&format!("CREATE DATABASE \"{scratch}\""))
        .unwrap();
    let mut holder = env.admin("postgres");
    let mut hold = holder.transaction().unwrap();
    hold.batch_execute(&format!("ALTER DATABASE \"{scratch}\" RENAME TO \"{db}\""))
        .unwrap();

    let mut provision = env
        .cmd()
        .args(["provision", slug, "--tier", "premium", "-q"])
        .args(["--password-file", "/dev/null"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Plain, or as a copy of the silo template (`… TEMPLATE "…"`).
    let create = format!("CREATE DATABASE \"{db}\"%");
    let in_flight = || {
        env.admin("postgres")
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE query LIKE $1",
                &[&create],
            )
            .unwrap()
            .get::<_, i64>(0)
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while in_flight() == 0 {
        assert!(
            Instant::now() < deadline,
            "provision never reached CREATE DATABASE"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    provision.kill().unwrap();
    provision.wait().unwrap();

    let run = env
        .cmd()
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Give a command that does not wait the time to finish, then let the CREATEs go on.
    std::thread::sleep(Duration::from_millis(1500));
    hold.rollback().unwrap();
    let out = run.wait_with_output().unwrap();
    while in_flight() > 0 {
        assert!(
            Instant::now() < deadline,
            "the killed run's CREATE never ended"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    env.admin("postgres")
        .batch_execute(&format!("DROP DATABASE \"{scratch}\""))
        .unwrap();
    eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    out.status.code().unwrap()
}

/// Purged at once after that kill: the purge waits for the CREATE and drops what it creates;
/// otherwise the database appears after the purge, unmarked, and the slug is blocked for good.
#[test]
fn purge_waits_for_a_create_database_a_killed_run_left_running() {
    let env = TestEnv::new();
    let db = env.silo("ghost");
    let code = after_a_kill_during_create_database(
        &env,
        "ghost",
        &["deprovision", "ghost", "--purge", "--yes", "-q"],
    );
    assert_eq!(code, 0);
    assert!(
        !env.database_exists(&db),
        "the purge left database {db} behind"
    );
    assert!(!role_exists(&env, &db));
    assert_eq!(tenant_count(&env, "ghost"), 0);
    assert_eq!(
        env.scalar_i64(
            "SELECT count(*) FROM database_claims WHERE database_name = $1",
            &[&db]
        ),
        0,
        "a claim outlived the purge"
    );
    // The slug is free again.
    env.provision("ghost", "premium");
}

/// Deprovisioned (soft) at once after that kill: `deleted` promises no login and no connection,
/// so the command waits for the CREATE and closes what it creates, and the role (created
/// before the database, with LOGIN) loses its login; then restore and provision finish it.
#[test]
fn deprovision_closes_a_silo_a_killed_run_was_still_creating() {
    let env = TestEnv::new();
    let db = env.silo("ghost");
    let code = after_a_kill_during_create_database(&env, "ghost", &["deprovision", "ghost", "-q"]);
    assert_eq!(code, 0);
    assert_eq!(status(&env, "ghost").as_deref(), Some("deleted"));
    let mut admin = env.admin("postgres");
    let login: bool = admin
        .query_one(
            "SELECT rolcanlogin FROM pg_roles WHERE rolname = $1",
            &[&db],
        )
        .unwrap()
        .get(0);
    assert!(!login, "a deleted tenant's role can log in");
    let open: Option<bool> = admin
        .query_opt(
            "SELECT datallowconn FROM pg_database WHERE datname = $1",
            &[&db],
        )
        .unwrap()
        .map(|r| r.get(0));
    assert_ne!(
        open,
        Some(true),
        "a deleted tenant's database takes connections"
    );
    assert!(env.connect_as(&db, &db).is_err());

    env.run(&["restore", "ghost", "-q"]).expect(0);
    env.provision("ghost", "premium");
    assert_eq!(status(&env, "ghost").as_deref(), Some("active"));
    assert!(env.connect_as(&db, &db).is_ok());
}

/// A bucket's mark file replaced by a symlink (the tenant owns what is inside its bucket) is
/// never written through: adopt refuses it and the file the link points at is left as it was.
#[test]
fn adopt_never_writes_a_mark_through_a_symlink() {
    let env = TestEnv::new();
    env.run(&["provision", "acme", "--tier", "premium", "-q"])
        .expect(0);
    let precious = env.dir.path().join("precious.txt");
    std::fs::write(&precious, "operator's file").unwrap();
    let mark = env.storage_root().join("acme-uploads/.tenantctl-bucket");
    std::fs::remove_file(&mark).unwrap();
    std::os::unix::fs::symlink(&precious, &mark).unwrap();

    let run = env.run(&["adopt", "acme"]).expect(3);
    assert!(
        one_line(&run.stderr).contains("acme-uploads"),
        "{}",
        run.stderr
    );
    assert_eq!(
        std::fs::read_to_string(&precious).unwrap(),
        "operator's file"
    );
    assert!(std::fs::symlink_metadata(&mark)
        .unwrap()
        .file_type()
        .is_symlink());
}

/// A bucket is measured (and billed) as a tenant's only if it carries that tenant's mark: under
/// a bucket root two control planes share, the other plane's `acme` is not this plane's.
#[test]
fn a_bucket_of_another_control_plane_is_never_measured_as_the_tenants() {
    let a = TestEnv::new();
    let b = TestEnv::new();
    let root = a.storage_root();
    let shared = [("TENANTCTL_STORAGE_ROOT", root.to_str().unwrap())];
    // B's acme was provisioned under B's own root; A's acme lives in the shared one.
    b.run(&["provision", "acme", "--tier", "premium", "-q"])
        .expect(0);
    a.run(&["provision", "acme", "--tier", "premium", "-q"])
        .expect(0);
    std::fs::write(root.join("acme-uploads/big"), vec![7u8; 50 << 20]).unwrap();

    // B now pointed at the shared root: its acme's storage is not measured from A's buckets.
    let run = b
        .run_env(&["quota", "show", "acme", "-o", "json"], &shared)
        .expect(1);
    assert!(
        one_line(&run.stderr).contains("not created by this control plane"),
        "{}",
        run.stderr
    );
    let run = b
        .run_env(&["usage", "refresh", "-o", "json"], &shared)
        .expect(1);
    assert_eq!(run.json()["failed"][0]["slug"], "acme", "{}", run.stdout);
    // A measures its own.
    let lines = a
        .run(&["quota", "show", "acme", "-o", "json"])
        .expect(0)
        .json();
    let storage = lines
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["resource"] == "storage_mb")
        .unwrap()
        .clone();
    assert!(storage["used"].as_i64().unwrap() >= 50, "{storage}");
}
