//! The silo template: new siloed databases are copies of a closed, current template database
//! that tenantctl marks, keeps closed, migrates (under `migrate`, or before the next copy) and
//! never requires: a database of that name that is not this plane's template is left alone.

use crate::support::{tenant_migrations, TestEnv};

/// `(comment, datallowconn, whether PUBLIC may connect)` of database `db`.
fn catalog(env: &TestEnv, db: &str) -> Option<(Option<String>, bool, bool)> {
    env.admin("postgres")
        .query_opt(
            "SELECT shobj_description(d.oid, 'pg_database'), d.datallowconn,
                    EXISTS (SELECT 1 FROM aclexplode(coalesce(d.datacl, acldefault('d', d.datdba))) a
                            WHERE a.grantee = 0 AND a.privilege_type = 'CONNECT')
             FROM pg_database d WHERE d.datname = $1",
            &[&db],
        )
        .unwrap()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
}

fn plane_id(env: &TestEnv) -> String {
    env.control()
        .query_one("SELECT id::text FROM control_plane", &[])
        .unwrap()
        .get(0)
}

fn latest() -> i32 {
    tenant_migrations().last().unwrap().0
}

fn versions(env: &TestEnv, db: &str) -> Vec<i32> {
    env.admin(db)
        .query(
            "SELECT version FROM refinery_schema_history ORDER BY version",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

fn all_versions() -> Vec<i32> {
    tenant_migrations().into_iter().map(|(v, _)| v).collect()
}

/// The template's mark at `version`.
fn mark(env: &TestEnv, version: i32) -> String {
    format!("tenantctl:{}:template:v{version}", plane_id(env))
}

/// Makes the template look as an older tenantctl left it: its history without V2 and later,
/// its mark at V1 (the later migrations are written to be re-runnable).
fn age_template(env: &TestEnv, open: bool) {
    let tpl = env.template_db();
    let mut pg = env.admin("postgres");
    pg.batch_execute(&format!("ALTER DATABASE \"{tpl}\" ALLOW_CONNECTIONS true"))
        .unwrap();
    env.admin(&tpl)
        .execute(
            "DELETE FROM refinery_schema_history WHERE version >= 2",
            &[],
        )
        .unwrap();
    pg.batch_execute(&format!(
        "COMMENT ON DATABASE \"{tpl}\" IS '{}'; ALTER DATABASE \"{tpl}\" ALLOW_CONNECTIONS {open}",
        mark(env, 1)
    ))
    .unwrap();
}

/// The template as a current copy source: marked at the latest version, closed, PUBLIC
/// without CONNECT, its history complete (read by opening it for a moment).
fn assert_template_current(env: &TestEnv) {
    let tpl = env.template_db();
    assert_eq!(
        catalog(env, &tpl),
        Some((Some(mark(env, latest())), false, false)),
        "{tpl}"
    );
    let mut pg = env.admin("postgres");
    pg.batch_execute(&format!("ALTER DATABASE \"{tpl}\" ALLOW_CONNECTIONS true"))
        .unwrap();
    let history = versions(env, &tpl);
    pg.batch_execute(&format!("ALTER DATABASE \"{tpl}\" ALLOW_CONNECTIONS false"))
        .unwrap();
    assert_eq!(history, all_versions());
}

#[test]
fn silos_are_copies_of_a_closed_current_template() {
    let env = TestEnv::new();
    env.run(&["provision", "free1", "--tier", "free"]).expect(0);
    assert_eq!(catalog(&env, &env.template_db()), None, "pooled needs none");
    for slug in ["acme", "beta"] {
        env.run(&["provision", slug, "--tier", "premium", "-q"])
            .expect(0);
        let db = env.silo(slug);
        assert_eq!(versions(&env, &db), all_versions(), "{db}");
        // The copy is the tenant's, not the template's: its own mark, PUBLIC cannot connect.
        let (comment, allow, public) = catalog(&env, &db).unwrap();
        assert!(!comment.unwrap().contains(":template:"));
        assert!(allow);
        assert!(!public);
        // The schema is usable by the tenant's role as before.
        let mut app = env.connect_as(&db, &db).unwrap();
        app.batch_execute("SELECT count(*) FROM users").unwrap();
    }
    assert_template_current(&env);

    let doctor = env.run(&["doctor", "-o", "json"]).json();
    let templates = doctor["templates"].as_array().unwrap();
    assert_eq!(templates.len(), 1, "{doctor}");
    assert_eq!(templates[0]["server"], "main");
    assert_eq!(templates[0]["database"], env.template_db());
    assert_eq!(templates[0]["version"], latest());
    assert_eq!(templates[0]["current"], true);
    let status = env.run(&["migrate", "status"]).expect(0);
    assert!(status.stderr.contains("up to date"), "{}", status.stderr);

    // Purging every silo leaves the template, as it leaves the pooled database.
    for slug in ["acme", "beta"] {
        env.run(&["deprovision", slug, "--purge", "--yes"])
            .expect(0);
    }
    assert!(env.database_exists(&env.template_db()));
}

#[test]
fn migrate_and_the_next_copy_bring_an_old_template_up_to_date() {
    let env = TestEnv::new();
    env.run(&["provision", "acme", "--tier", "premium", "-q"])
        .expect(0);

    age_template(&env, false);
    let run = env.run(&["migrate"]).expect(0);
    assert!(
        run.stderr.contains(&format!(
            "silo template `{}` on server `main`: applied V2",
            env.template_db()
        )),
        "{}",
        run.stderr
    );
    assert_template_current(&env);

    // A migration of the template killed midway (open, old mark): the next silo's
    // provisioning finishes it before copying, and the copy is current.
    age_template(&env, true);
    env.run(&["provision", "beta", "--tier", "premium", "-q"])
        .expect(0);
    assert_template_current(&env);
    assert_eq!(versions(&env, &env.silo("beta")), all_versions());
}

#[test]
fn a_database_under_the_templates_name_that_is_not_ours_is_left_alone() {
    let env = TestEnv::new();
    let tpl = env.template_db();
    let mut pg = env.admin("postgres");
    pg.batch_execute(&format!("CREATE DATABASE \"{tpl}\""))
        .unwrap();
    pg.batch_execute(&format!(
        "COMMENT ON DATABASE \"{tpl}\" IS 'someone else''s'"
    ))
    .unwrap();
    env.run(&["provision", "acme", "--tier", "premium", "-q"])
        .expect(0);
    assert_eq!(versions(&env, &env.silo("acme")), all_versions());
    assert_eq!(
        catalog(&env, &tpl),
        Some((Some("someone else's".to_owned()), true, true)),
        "untouched"
    );
    let doctor = env.run(&["doctor", "-o", "json"]).json();
    assert_eq!(doctor["template"]["version"], serde_json::Value::Null);
    assert!(
        doctor["problems"].as_array().unwrap().iter().any(|p| p
            .as_str()
            .unwrap()
            .contains("is not this control plane's template")),
        "{doctor}"
    );
    env.run(&["migrate"]).expect(0);
    assert_eq!(
        catalog(&env, &tpl).unwrap().0.as_deref(),
        Some("someone else's")
    );
}

#[test]
fn a_run_killed_before_the_template_was_marked_is_finished_by_the_next() {
    let env = TestEnv::new();
    let crashed = env.run_env(
        &["provision", "acme", "--tier", "premium", "-q"],
        &[("TENANTCTL_FAILPOINT", "template:unmarked")],
    );
    assert_ne!(crashed.code, Some(0), "{}", crashed.stderr);
    let (comment, _, _) = catalog(&env, &env.template_db()).unwrap();
    assert_eq!(comment, None, "created, not yet marked");
    env.run(&["provision", "acme", "--tier", "premium", "-q"])
        .expect(0);
    assert_template_current(&env);
    assert_eq!(versions(&env, &env.silo("acme")), all_versions());
    assert_eq!(
        env.scalar_i64("SELECT count(*) FROM database_claims", &[]),
        0
    );
}

/// A refresh that fails for a passing reason (here a failpoint's one error) is not remembered
/// for the rest of the process: a bulk run creates that silo empty, and the next silo makes the
/// template, which the ones after it are copied from.
#[test]
fn a_failed_template_refresh_is_tried_again_by_the_next_silo_of_a_bulk_run() {
    let env = TestEnv::new();
    let path = env.dir.path().join("silos.csv");
    std::fs::write(
        &path,
        "slug,tier,name,owner_email\nsilo-a,premium,,\nsilo-b,premium,,\nsilo-c,premium,,\n",
    )
    .unwrap();
    let file = path.to_str().unwrap();
    // One at a time: silo-a's refresh fails (it is created empty and migrated), silo-b's
    // creates the template, silo-c is copied from it. Remembering the failure would leave the
    // run without a template at all.
    env.run_env(
        &["provision", "--file", file, "--concurrency", "1"],
        &[("TENANTCTL_FAILPOINT", "error-once:template:refresh")],
    )
    .expect(0);
    assert_template_current(&env);
    for slug in ["silo-a", "silo-b", "silo-c"] {
        assert_eq!(versions(&env, &env.silo(slug)), all_versions(), "{slug}");
    }
    assert_eq!(
        env.scalar_i64("SELECT count(*) FROM tenants WHERE status = 'active'", &[]),
        3
    );
}

/// A single `provision` whose template refresh fails says why its silo is not a copy, and
/// still provisions it.
#[test]
fn a_failed_template_refresh_is_said_and_the_silo_is_still_made() {
    let env = TestEnv::new();
    let run = env
        .run_env(
            &["provision", "acme", "--tier", "premium"],
            &[("TENANTCTL_FAILPOINT", "error-once:template:refresh")],
        )
        .expect(0);
    assert!(
        run.stderr
            .contains("not copying this silo on server `main` from a template"),
        "{}",
        run.stderr
    );
    assert_eq!(versions(&env, &env.silo("acme")), all_versions());
    env.run(&["provision", "beta", "--tier", "premium", "-q"])
        .expect(0);
    assert_template_current(&env);
}

/// A refresh that keeps failing is tried a bounded number of times, then given up for the
/// run: every silo is still made (empty, then migrated), and none is left without its schema.
#[test]
fn a_template_refresh_that_keeps_failing_is_given_up_and_every_silo_is_made() {
    let env = TestEnv::new();
    let path = env.dir.path().join("silos.csv");
    let mut text = "slug,tier,name,owner_email\n".to_owned();
    for i in 0..4 {
        text.push_str(&format!("silo-{i},premium,,\n"));
    }
    std::fs::write(&path, text).unwrap();
    let run = env
        .run_env(
            &["provision", "--file", path.to_str().unwrap(), "-o", "json"],
            &[("TENANTCTL_FAILPOINT", "error:template:refresh")],
        )
        .expect(0);
    assert_eq!(
        run.json()["provisioned"].as_u64(),
        Some(4),
        "{}",
        run.stdout
    );
    assert_eq!(catalog(&env, &env.template_db()), None);
    for i in 0..4 {
        assert_eq!(
            versions(&env, &env.silo(&format!("silo-{i}"))),
            all_versions()
        );
    }
    // One provision alone says it gives up after its attempts.
    let run = env
        .run_env(
            &["provision", "acme", "--tier", "premium"],
            &[("TENANTCTL_FAILPOINT", "error:template:refresh")],
        )
        .expect(0);
    assert!(
        run.stderr.contains("the next one tries again"),
        "{}",
        run.stderr
    );
}
