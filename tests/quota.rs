//! `quota show|set|reset|check`: every number matches the rows; hard and soft limits.

use crate::support::TestEnv;

fn line<'a>(lines: &'a serde_json::Value, resource: &str) -> &'a serde_json::Value {
    lines
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["resource"] == resource)
        .unwrap()
}

#[test]
fn show_matches_the_rows() {
    let env = TestEnv::new();
    env.run(&["provision", "acme", "--tier", "premium"])
        .expect(0);
    env.backdate_creation("acme", "2020-01-01T00:00:00Z"); // usage of earlier days below
    env.run(&["usage", "record", "acme", "api_requests", "12000"])
        .expect(0);
    env.run(&["usage", "record", "acme", "compute_hours", "3"])
        .expect(0);
    // Last month's usage does not count against this month.
    env.run(&[
        "usage",
        "record",
        "acme",
        "compute_hours",
        "5",
        "--at",
        "2020-01-15",
    ])
    .expect(0);
    std::fs::write(
        env.storage_root().join("acme-uploads/blob"),
        vec![7u8; 3 << 20],
    )
    .unwrap();

    let lines = env
        .run(&["quota", "show", "acme", "-o", "json"])
        .expect(0)
        .json();
    assert_eq!(lines.as_array().unwrap().len(), 5);
    for l in lines.as_array().unwrap() {
        for field in ["resource", "limit", "used", "remaining", "hard"] {
            assert!(!l[field].is_null(), "{field} missing in {l}");
        }
    }
    let api = line(&lines, "api_requests");
    assert_eq!(
        (
            api["limit"].as_i64(),
            api["used"].as_i64(),
            api["remaining"].as_i64(),
            api["hard"].as_bool()
        ),
        (Some(10_000), Some(12_000), Some(0), Some(false))
    );
    assert_eq!(api["overage"], 2000);
    assert_eq!(api["overage_price"], "0.001");
    let compute = line(&lines, "compute_hours");
    assert_eq!(
        (compute["used"].as_i64(), compute["remaining"].as_i64()),
        (Some(3), Some(7))
    );

    let users = line(&lines, "users");
    let user_rows: i64 = env
        .admin(&env.silo("acme"))
        .query_one("SELECT count(*) FROM users", &[])
        .unwrap()
        .get(0);
    assert_eq!(users["used"].as_i64(), Some(user_rows));
    let storage = line(&lines, "storage_mb");
    let db_bytes: i64 = env
        .admin("postgres")
        .query_one("SELECT pg_database_size($1)", &[&env.silo("acme")])
        .unwrap()
        .get(0);
    let expected = (db_bytes + (3 << 20) + (1 << 20) - 1) >> 20;
    assert_eq!(storage["used"].as_i64(), Some(expected));
    assert_eq!(storage["remaining"].as_i64(), Some(1000 - expected));

    let table = env.run(&["quota", "show", "acme"]).expect(0).stdout;
    assert!(
        table.contains("api_requests")
            && table.contains("12000")
            && table.contains("soft (0.001/unit)"),
        "{table}"
    );
}

#[test]
fn check_answers_with_exit_codes() {
    let env = TestEnv::new();
    env.run(&["provision", "free1", "--tier", "free"]).expect(0);
    env.run(&["provision", "paid", "--tier", "premium"])
        .expect(0);
    env.run(&["usage", "record", "free1", "api_requests", "998"])
        .expect(0);

    let ok = env
        .run(&[
            "quota",
            "check",
            "free1",
            "api_requests",
            "--amount",
            "2",
            "-o",
            "json",
        ])
        .expect(0)
        .json();
    assert_eq!(
        (
            ok["allowed"].as_bool(),
            ok["limit"].as_i64(),
            ok["used"].as_i64(),
            ok["remaining"].as_i64()
        ),
        (Some(true), Some(1000), Some(998), Some(2))
    );
    let no = env
        .run(&[
            "quota",
            "check",
            "free1",
            "api_requests",
            "--amount",
            "3",
            "-o",
            "json",
        ])
        .expect(3);
    assert_eq!(no.json()["allowed"], false);
    assert!(
        no.stderr.contains("would pass the hard limit of 1000"),
        "{}",
        no.stderr
    );
    // The free tier's single user is used by the owner: a second one is refused.
    env.run(&["quota", "show", "free1"]).expect(0);
    env.run(&["quota", "check", "free1", "users"]).expect(3);
    // Soft: allowed, overage reported.
    let soft = env
        .run(&[
            "quota",
            "check",
            "paid",
            "api_requests",
            "--amount",
            "10500",
            "-o",
            "json",
        ])
        .expect(0)
        .json();
    assert_eq!(
        (
            soft["allowed"].as_bool(),
            soft["hard"].as_bool(),
            soft["overage"].as_i64()
        ),
        (Some(true), Some(false), Some(500))
    );
    // Checking records nothing.
    assert_eq!(env.scalar_i64("SELECT count(*) FROM usage_events", &[]), 1);
    env.run(&["quota", "check", "free1", "seats"]).expect(2);
    env.run(&["quota", "check", "ghost", "users"]).expect(3);
    env.run(&["quota", "check", "free1", "users", "--amount", "0"])
        .expect(2);
}

#[test]
fn set_and_reset_are_audited_and_bad_values_change_nothing() {
    let env = TestEnv::new();
    env.run(&["provision", "acme", "--tier", "premium"])
        .expect(0);
    let v = env
        .run(&[
            "quota", "set", "acme", "users", "12", "-o", "json", "--actor", "carol",
        ])
        .expect(0)
        .json();
    assert_eq!(
        (v[0]["limit"].as_i64(), v[0]["source"].as_str()),
        (Some(12), Some("override"))
    );
    env.run(&["quota", "set", "acme", "api_requests", "1"])
        .expect(0);
    let v = env
        .run(&["quota", "reset", "acme", "users", "-o", "json"])
        .expect(0)
        .json();
    assert_eq!(
        (v[0]["limit"].as_i64(), v[0]["source"].as_str()),
        (Some(5), Some("tier"))
    );
    let api: i64 = env.scalar_i64(
        "SELECT limit_value FROM quotas WHERE resource = 'api_requests'",
        &[],
    );
    assert_eq!(api, 1, "resetting users leaves other overrides");
    env.run(&["quota", "reset", "acme"]).expect(0);
    assert_eq!(
        env.scalar_i64("SELECT count(*) FROM quotas WHERE source = 'override'", &[]),
        0
    );
    let audit: Vec<(String, String, serde_json::Value)> = env
        .control()
        .query("SELECT actor, action, details FROM audit_log WHERE action LIKE 'quota.%' ORDER BY id LIMIT 1", &[])
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert_eq!(audit[0].0, "carol");
    assert_eq!(audit[0].1, "quota.set");
    assert_eq!(
        audit[0].2,
        serde_json::json!({"resource": "users", "from": 5, "to": 12})
    );

    let before = env.scalar_i64("SELECT count(*) FROM audit_log", &[]);
    env.run(&["quota", "set", "acme", "seats", "3"]).expect(2);
    env.run(&["quota", "set", "acme", "users", "-1"]).expect(2);
    env.run(&["quota", "set", "acme", "users", "many"])
        .expect(2);
    env.run(&["quota", "set", "ghost", "users", "3"]).expect(3);
    assert_eq!(
        env.scalar_i64("SELECT count(*) FROM audit_log", &[]),
        before
    );
}

/// A failed measurement names its cause: the reason an operator needs (here the OS error of a
/// bucket nested deeper than a path can reach) sits at the end of a message longer than a
/// value's excerpt, and was cut to `measuring… (N bytes)`.
#[test]
fn a_failed_measurement_shows_its_cause() {
    let env = TestEnv::new();
    env.run(&["provision", "acme", "--tier", "premium", "-q"])
        .expect(0);
    // 300 levels of a 16-character name: past PATH_MAX (4096) from the bucket root, made
    // relative to each level's descriptor (no path reaches the bottom).
    let top = std::ffi::CString::new(
        env.storage_root()
            .join("acme-uploads")
            .to_str()
            .unwrap()
            .as_bytes(),
    )
    .unwrap();
    let name = std::ffi::CString::new("dddddddddddddddd").unwrap();
    // SAFETY: valid NUL-terminated strings; each descriptor is closed once.
    unsafe {
        let mut fd = libc::open(top.as_ptr(), libc::O_DIRECTORY | libc::O_RDONLY);
        assert!(fd >= 0);
        for _ in 0..300 {
            assert_eq!(libc::mkdirat(fd, name.as_ptr(), 0o755), 0);
            let next = libc::openat(fd, name.as_ptr(), libc::O_DIRECTORY | libc::O_RDONLY);
            assert!(next >= 0);
            libc::close(fd);
            fd = next;
        }
        libc::close(fd);
    }

    let run = env.run(&["quota", "show", "acme"]).expect(1);
    assert!(run.stderr.contains("name too long"), "{}", run.stderr);
    assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
    let run = env.run(&["usage", "refresh", "acme"]).expect(1);
    assert!(run.stdout.contains("name too long"), "{}", run.stdout);
}

/// What stands where a bucket goes but is no directory is never measured as the tenant's: a
/// symlink (its target is elsewhere, and would be billed) or a file (which read 0, silently).
#[test]
fn a_bucket_that_is_no_directory_is_a_failed_measurement_not_a_number() {
    let env = TestEnv::new();
    env.run(&["provision", "acme", "--tier", "premium", "-q"])
        .expect(0);
    let root = env.storage_root();
    let elsewhere = env.dir.path().join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    std::fs::write(elsewhere.join("big"), vec![7u8; 50 << 20]).unwrap();
    std::fs::remove_dir_all(root.join("acme-uploads")).unwrap();
    std::os::unix::fs::symlink(&elsewhere, root.join("acme-uploads")).unwrap();
    let run = env.run(&["quota", "show", "acme"]).expect(1);
    assert!(run.stderr.contains("bucket acme-uploads"), "{}", run.stderr);

    std::fs::remove_file(root.join("acme-uploads")).unwrap();
    std::fs::write(root.join("acme-uploads"), vec![7u8; 5 << 20]).unwrap();
    let run = env.run(&["quota", "show", "acme"]).expect(1);
    assert!(run.stderr.contains("bucket acme-uploads"), "{}", run.stderr);
    let run = env.run(&["usage", "refresh"]).expect(1);
    assert!(run.stdout.contains("bucket acme-uploads"), "{}", run.stdout);
}

/// One unit reads singular, in results and in refusals: "1 sandbox", "2 sandboxes".
#[test]
fn one_unit_reads_singular() {
    let env = TestEnv::new();
    env.provision("acme", "free"); // sandboxes: a hard limit of 1
    let run = env.run(&["quota", "check", "acme", "sandboxes"]).expect(0);
    assert_eq!(
        run.stdout,
        "allowed: 1 sandbox for acme (used 0 of 1, 1 remaining)\n"
    );
    let run = env
        .run(&["usage", "record", "acme", "sandboxes", "1", "--key", "a"])
        .expect(0);
    assert!(
        run.stdout.starts_with("recorded 1 sandbox for acme ("),
        "{}",
        run.stdout
    );
    let run = env
        .run(&["usage", "record", "acme", "sandboxes", "1", "--key", "b"])
        .expect(3);
    assert!(
        run.stderr
            .contains("refused: 1 sandbox for `acme` would make 2"),
        "{}",
        run.stderr
    );
    let run = env
        .run(&["quota", "check", "acme", "users", "--amount", "2"])
        .expect(3);
    assert!(
        run.stdout.starts_with("refused: 2 users for acme"),
        "{}",
        run.stdout
    );
    assert!(
        run.stderr.contains("refused: 2 users for `acme`"),
        "{}",
        run.stderr
    );
}
