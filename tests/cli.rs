//! The command line's contract: help, exit codes, and bad input that changes nothing.

use crate::support::{bare_cmd, TestEnv};

#[test]
fn help_documents_the_exit_codes() {
    let out = bare_cmd().arg("--help").output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let help = String::from_utf8_lossy(&out.stdout);
    for line in [
        "0  success",
        "1  the operation failed",
        "2  bad input",
        "3  refused by state",
    ] {
        assert!(help.contains(line), "--help lacks `{line}`:\n{help}");
    }
    for cmd in ["provision", "list", "show", "local"] {
        assert!(help.contains(cmd), "--help lacks `{cmd}`");
    }
}

#[test]
fn usage_errors_exit_2() {
    for args in [
        &["frobnicate"][..],
        &["provision"],
        &["provision", "acme"],
        &["provision", "acme", "--tier"],
        &["list", "--output", "xml"],
    ] {
        let out = bare_cmd().args(args).output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.stdout.is_empty(), "{args:?} wrote to stdout");
    }
}

/// Asserts a run exited 2 with one `error:` line naming `needle`, and that nothing exists:
/// not the control database, no database or role under the prefix, no bucket directory.
#[track_caller]
fn refused_cleanly(env: &TestEnv, args: &[&str], needle: &str) {
    let run = env.run(args).expect(2);
    let lines: Vec<&str> = run.stderr.lines().collect();
    assert_eq!(
        lines.len(),
        1,
        "one line expected for {args:?}:\n{}",
        run.stderr
    );
    assert!(
        lines[0].starts_with("error: ") && lines[0].contains(needle),
        "{args:?}: {}",
        lines[0]
    );
    assert!(run.stdout.is_empty());
    assert!(
        !env.database_exists(&env.control_db),
        "{args:?} created the control database"
    );
    assert_eq!(
        env.owned_objects(),
        (vec![], vec![]),
        "{args:?} created databases or roles"
    );
    assert!(!env.storage_root().exists(), "{args:?} created buckets");
}

#[test]
fn bad_slugs_exit_2_and_change_nothing() {
    let env = TestEnv::bare();
    let long = format!("a{}", "b".repeat(40));
    for slug in [
        "Acme",
        "1acme",
        "ac--me",
        "acme-",
        "ab",
        &long,
        "ac_me",
        "postgres",
        "template1",
        "pooled",
        "x\"; DROP DATABASE postgres; --",
    ] {
        refused_cleanly(
            &env,
            &["provision", slug, "--tier", "premium"],
            // A value longer than 40 characters is shown cut, with its length.
            &match slug.get(..40).filter(|_| slug.len() > 40) {
                Some(head) => format!("invalid slug `{head}… ({} bytes)`", slug.len()),
                None => format!("invalid slug `{slug}`"),
            },
        );
    }
}

#[test]
fn unknown_tier_names_the_allowed_ones() {
    let env = TestEnv::bare();
    refused_cleanly(
        &env,
        &["provision", "acme", "--tier", "gold"],
        "unknown tier `gold`: the tiers are enterprise, free, premium",
    );
}

#[test]
fn bad_flags_exit_2() {
    let env = TestEnv::bare();
    refused_cleanly(
        &env,
        &[
            "provision",
            "acme",
            "--tier",
            "free",
            "--owner-email",
            "not-an-address",
        ],
        "invalid --owner-email `not-an-address`",
    );
    refused_cleanly(
        &env,
        &[
            "provision",
            "acme",
            "--tier",
            "free",
            "--password-file",
            "/nonexistent/dir/pw",
        ],
        "invalid --password-file",
    );
    let run = env
        .run_env(
            &["provision", "acme", "--tier", "free"],
            &[("TENANTCTL_NAME_PREFIX", "pg_bad")],
        )
        .expect(2);
    assert!(
        run.stderr.contains("invalid name prefix `pg_bad`"),
        "{}",
        run.stderr
    );
}

#[test]
fn invalid_tiers_files_exit_2_naming_file_line_and_key() {
    let env = TestEnv::bare();
    let good = tenantctl::tier::BUILTIN;
    let cases = [
        (
            good.replace("users = 5\n", "users = 5\nseats = 2\n"),
            "key `seats`",
        ),
        (
            good.replace("storage_mb = 1000\n", "storage_mb = -1000\n"),
            "key `storage_mb`",
        ),
        (
            good.replace("monthly_price = \"499.00\"", "monthly_price = 499.00"),
            "key `monthly_price`",
        ),
        (
            good.replace(
                "isolation = \"siloed\"\nmonthly_price = \"499.00\"",
                "monthly_price = \"499.00\"",
            ),
            "missing field `isolation`",
        ),
        ("currency = \"USD\"\n[tiers.free\n".to_owned(), "line 2"),
    ];
    for (i, (text, needle)) in cases.iter().enumerate() {
        let path = env.dir.path().join(format!("tiers{i}.toml"));
        std::fs::write(&path, text).unwrap();
        let path_s = path.display().to_string();
        refused_cleanly(
            &env,
            &["provision", "acme", "--tier", "premium", "--tiers", &path_s],
            needle,
        );
        let run = env.run(&["provision", "acme", "--tier", "premium", "--tiers", &path_s]);
        assert!(
            run.stderr.contains(&format!("invalid tiers file {path_s}")),
            "{}",
            run.stderr
        );
    }
    refused_cleanly(
        &env,
        &[
            "provision",
            "acme",
            "--tier",
            "premium",
            "--tiers",
            "/nonexistent/tiers.toml",
        ],
        "cannot read tiers file /nonexistent/tiers.toml",
    );
}

#[test]
fn unreachable_server_exits_1_without_showing_the_password() {
    let run = bare_cmd()
        .args([
            "list",
            "--database-url",
            "postgres://bob:hunter2@127.0.0.1:1/ctl",
        ])
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(stderr.starts_with("error: "), "{stderr}");
    assert!(stderr.contains("127.0.0.1"), "{stderr}");
    assert!(!stderr.contains("hunter2"), "password leaked: {stderr}");
}

#[test]
fn config_file_settings_apply_and_flags_override_them() {
    let env = TestEnv::new();
    let cfg = env.dir.path().join("tenantctl.toml");
    std::fs::write(&cfg, "storage_root = \"from-file\"\nactor = \"filebot\"\n").unwrap();
    // TestEnv sets TENANTCTL_STORAGE_ROOT; drop it so the file's value shows.
    let out = env
        .cmd()
        .env_remove("TENANTCTL_STORAGE_ROOT")
        .args(["provision", "acme", "--tier", "free"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(env.dir.path().join("from-file/acme-uploads").is_dir());
    let actor: String = env
        .control()
        .query_one(
            "SELECT actor FROM audit_log WHERE action = 'provision'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(actor, "filebot");
    // A flag beats the file.
    let run = env
        .run(&[
            "provision",
            "beta",
            "--tier",
            "free",
            "--actor",
            "flagbot",
            "--config",
            cfg.to_str().unwrap(),
        ])
        .expect(0);
    drop(run);
    let n = env.scalar_i64(
        "SELECT count(*) FROM audit_log WHERE actor = 'flagbot' AND slug = 'beta'",
        &[],
    );
    assert_eq!(n, 2);
    std::fs::write(&cfg, "storage_rot = \"x\"\n").unwrap();
    let run = env.run(&["list"]).expect(2);
    assert!(
        run.stderr.contains("invalid config file") && run.stderr.contains("storage_rot"),
        "{}",
        run.stderr
    );
}
