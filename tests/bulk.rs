//! `provision --file`: bulk onboarding. Every row checked before anything is created,
//! passwords only in a 0600 file, a re-run after a crash finishes what is missing.

use std::os::unix::fs::PermissionsExt;

use crate::support::TestEnv;

fn write(env: &TestEnv, name: &str, text: &str) -> String {
    let path = env.dir.path().join(name);
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_owned()
}

fn tenants(env: &TestEnv) -> i64 {
    env.scalar_i64("SELECT count(*) FROM tenants", &[])
}

/// Every `slug,password` line of the file, checked against the owner's bcrypt hash.
fn check_passwords(env: &TestEnv, path: &str, slugs: &[&str]) {
    let meta = std::fs::metadata(path).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines: Vec<(String, String)> = text
        .lines()
        .map(|l| {
            let (s, p) = l.split_once(',').unwrap();
            (s.to_owned(), p.to_owned())
        })
        .collect();
    lines.sort();
    let mut want: Vec<&str> = slugs.to_vec();
    want.sort();
    assert_eq!(
        lines.iter().map(|l| l.0.as_str()).collect::<Vec<_>>(),
        want,
        "one line per tenant:\n{text}"
    );
    for (slug, password) in &lines {
        let database: String = env
            .control()
            .query_one("SELECT database_name FROM tenants WHERE slug = $1", &[slug])
            .unwrap()
            .get(0);
        let mut db = env.admin(&database);
        assert!(password.len() >= 20, "{slug}: {password}");
        let email = format!("owner@{slug}.localhost");
        let hash: String = db
            .query_one(
                "SELECT password_hash FROM users WHERE email = $1",
                &[&email],
            )
            .unwrap()
            .get(0);
        assert!(bcrypt::verify(password, &hash).unwrap(), "{slug}");
    }
}

#[test]
fn a_bad_row_names_its_line_and_nothing_is_created() {
    let env = TestEnv::new();
    let cases = [
        (
            "slug,tier,name,owner_email\nacme,free,,\nBad_Slug,free,,\n",
            "line 3",
        ),
        (
            "slug,tier,name,owner_email\nacme,free,,\nbigco,platinum,,\n",
            "line 3",
        ),
        (
            "slug,tier,name,owner_email\nacme,free,,\nbigco,free,,not-an-email\n",
            "line 3",
        ),
        (
            "slug,tier,name,owner_email\nacme,free,,\nbigco,free\n",
            "line 3",
        ),
        (
            "slug,tier,name,owner_email\nacme,free,,\nbigco,free,,\nacme,premium,,\n",
            "line 4",
        ),
        ("acme,free,,\n", "line 1"),
    ];
    for (i, (text, line)) in cases.iter().enumerate() {
        let file = write(&env, &format!("t{i}.csv"), text);
        let run = env.run(&["provision", "--file", &file]).expect(2);
        assert!(run.stderr.contains(line), "{text}: {}", run.stderr);
        assert!(run.stderr.contains("nothing created"), "{}", run.stderr);
        assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
        assert_eq!(tenants(&env), 0, "{text}");
        assert!(!std::path::Path::new(&format!("{file}.passwords")).exists());
    }
    assert!(!env.database_exists(&env.pooled_db()));
    // A file of many bad rows (a column shifted by a spreadsheet, say): one short line that
    // explains the first three and names the rest by line, not 500 copies of one explanation.
    let mut text = "slug,tier,name,owner_email\n".to_owned();
    for i in 0..500 {
        text.push_str(&format!("Bad_{i},free,,\n"));
    }
    let file = write(&env, "many.csv", &text);
    let run = env.run(&["provision", "--file", &file]).expect(2);
    let err = run.stderr.trim_end();
    assert_eq!(run.stderr.lines().count(), 1, "{err}");
    assert!(err.len() < 1_000, "{} characters: {err}", err.len());
    assert!(err.contains("line 2: invalid slug `Bad_0`"), "{err}");
    assert!(err.contains("line 4: invalid slug `Bad_2`"), "{err}");
    assert!(
        err.contains("also bad: lines 5, 6, 7, 8, 9, 10, 11, 12, 13, 14 and 487 more"),
        "{err}"
    );
    assert!(err.ends_with("(500 bad rows; nothing created)"), "{err}");
    assert_eq!(tenants(&env), 0);
}

#[test]
fn tenants_are_provisioned_with_passwords_only_in_a_0600_file_and_a_rerun_skips_them() {
    let env = TestEnv::new();
    let file = write(
        &env,
        "t.csv",
        "slug,tier,name,owner_email\n\
         acme,free,Acme Inc,\n\
         bigco,premium,,\n\
         \"cyan\",free,\"Cyan, Ltd\",\n",
    );
    let pw = env.dir.path().join("pw.txt");
    let pw = pw.to_str().unwrap();
    let run = env
        .run(&[
            "provision",
            "--file",
            &file,
            "--password-file",
            pw,
            "--concurrency",
            "3",
            "-o",
            "json",
        ])
        .expect(0);
    let v = run.json();
    assert_eq!(
        (
            v["rows"].as_u64(),
            v["provisioned"].as_u64(),
            v["skipped"].as_u64(),
            v["failed"].as_array().map(Vec::len),
            v["concurrency"].as_u64()
        ),
        (Some(3), Some(3), Some(0), Some(0), Some(3))
    );
    assert_eq!(
        env.scalar_i64("SELECT count(*) FROM tenants WHERE status = 'active'", &[]),
        3
    );
    assert_eq!(
        env.scalar_i64("SELECT count(*) FROM tenants WHERE name = 'Cyan, Ltd'", &[]),
        1
    );
    check_passwords(&env, pw, &["acme", "bigco", "cyan"]);
    let secrets = std::fs::read_to_string(pw).unwrap();
    for line in secrets.lines() {
        let password = line.split_once(',').unwrap().1;
        assert!(!run.stdout.contains(password) && !run.stderr.contains(password));
    }
    assert!(!std::path::Path::new(&format!("{pw}.partial")).exists());

    // A re-run with one more row: the three are skipped (no new password), one is added.
    std::fs::write(
        &file,
        "slug,tier,name,owner_email\nacme,free,Acme Inc,\nbigco,premium,,\ncyan,free,\"Cyan, Ltd\",\ndelta,free,,\n",
    )
    .unwrap();
    let run = env
        .run(&[
            "provision",
            "--file",
            &file,
            "--password-file",
            pw,
            "-o",
            "json",
        ])
        .expect(0);
    assert_eq!(
        (
            run.json()["provisioned"].as_u64(),
            run.json()["skipped"].as_u64()
        ),
        (Some(1), Some(3))
    );
    let again = std::fs::read_to_string(pw).unwrap();
    assert!(
        again.starts_with(&secrets),
        "earlier lines kept as they were"
    );
    check_passwords(&env, pw, &["acme", "bigco", "cyan", "delta"]);
    for line in again.lines() {
        let password = line.split_once(',').unwrap().1;
        assert!(!run.stdout.contains(password) && !run.stderr.contains(password));
    }
}

#[test]
fn a_rerun_after_a_crash_finishes_every_tenant_with_one_password_line_each() {
    let env = TestEnv::new();
    let slugs: Vec<String> = (0..5).map(|i| format!("crash{i}")).collect();
    let mut text = "slug,tier,name,owner_email\n".to_owned();
    for s in &slugs {
        text.push_str(&format!("{s},free,,\n"));
    }
    let file = write(&env, "t.csv", &text);
    let pw = format!("{file}.passwords");
    // After a tenant's activation (its password staged, not yet appended), then before
    // step 4 is journaled (a password that the re-run replaces).
    for point in ["after-step:7", "before-journal:4"] {
        let crashed = env.run_env(
            &["provision", "--file", &file, "--concurrency", "2"],
            &[("TENANTCTL_FAILPOINT", point)],
        );
        assert_eq!(crashed.code, None, "{point}: {}", crashed.stderr);
    }
    let run = env
        .run(&["provision", "--file", &file, "-o", "json"])
        .expect(0);
    let v = run.json();
    assert_eq!(v["failed"].as_array().map(Vec::len), Some(0), "{v}");
    assert_eq!(
        env.scalar_i64("SELECT count(*) FROM tenants WHERE status = 'active'", &[]),
        5
    );
    let refs: Vec<&str> = slugs.iter().map(String::as_str).collect();
    check_passwords(&env, &pw, &refs);
    let again = env
        .run(&["provision", "--file", &file, "-o", "json"])
        .expect(0);
    assert_eq!(again.json()["skipped"].as_u64(), Some(5));
    check_passwords(&env, &pw, &refs);
}

/// More siloed tenants at once than the control pool's usual four connections: each run holds
/// a pooled connection while asking for another, which once hung every run for ever.
#[test]
fn siloed_tenants_at_a_concurrency_above_the_usual_pool_size_all_finish() {
    let env = TestEnv::new();
    let mut text = "slug,tier,name,owner_email\n".to_owned();
    for i in 0..6 {
        text.push_str(&format!("silo{i},premium,,\n"));
    }
    let file = write(&env, "t.csv", &text);
    let run = env
        .run(&[
            "provision",
            "--file",
            &file,
            "--concurrency",
            "6",
            "-o",
            "json",
        ])
        .expect(0);
    assert_eq!(run.json()["provisioned"].as_u64(), Some(6));
    let refs: Vec<String> = (0..6).map(|i| format!("silo{i}")).collect();
    let refs: Vec<&str> = refs.iter().map(String::as_str).collect();
    check_passwords(&env, &format!("{file}.passwords"), &refs);
    let too_many = env
        .run(&["provision", "--file", &file, "--concurrency", "21"])
        .expect(2);
    assert!(
        too_many.stderr.contains("at most 20"),
        "{}",
        too_many.stderr
    );
}
