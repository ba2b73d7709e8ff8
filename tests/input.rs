//! Hostile input (issue 8, section 6): bounded reads, bounded and printable stored text, short
//! escaped errors, a byte-order mark, `--password-file` safety, dry runs that create nothing.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::time::{Duration, Instant};

use crate::support::{Run, TestEnv};

/// Stderr is one `error: ` line, short, with nothing that drives a terminal.
#[track_caller]
fn one_short_line(run: &Run) {
    let e = &run.stderr;
    assert!(e.starts_with("error: ") && e.ends_with('\n'), "{e}");
    assert_eq!(e.lines().count(), 1, "{e}");
    assert!(e.len() < 400, "{} bytes: {e}", e.len());
    assert!(
        !e.chars()
            .any(|c| c == '\u{1b}' || c == '\u{202e}' || (c.is_control() && c != '\n')),
        "{e:?}"
    );
}

fn mkfifo(path: &std::path::Path) {
    let ok = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .unwrap()
        .success();
    assert!(ok);
}

#[test]
fn endless_and_special_files_are_refused_within_a_second() {
    let env = TestEnv::new();
    env.provision("acme", "free");
    let fifo = env.dir.path().join("fifo");
    mkfifo(&fifo);
    let fifo = fifo.to_str().unwrap();
    let sparse = env.dir.path().join("huge.csv");
    std::fs::File::create(&sparse)
        .unwrap()
        .set_len(2 << 30)
        .unwrap();
    let sparse = sparse.to_str().unwrap();
    let dir = env.dir.path().to_str().unwrap();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["usage", "import", "/dev/zero"], "not a regular file"),
        (vec!["usage", "import", fifo], "not a regular file"),
        (vec!["usage", "import", dir], "a directory"),
        (
            vec!["usage", "import", sparse],
            "larger than 1073741824 bytes",
        ),
        (
            vec!["--tiers", "/dev/zero", "quota", "show", "acme"],
            "not a regular file",
        ),
        (
            vec!["--tiers", fifo, "provision", "beta", "--tier", "free"],
            "not a regular file",
        ),
        (
            vec!["--config", "/dev/zero", "list"],
            "cannot read config file /dev/zero",
        ),
        (vec!["--config", fifo, "list"], "not a regular file"),
    ];
    for (args, needle) in cases {
        let t0 = Instant::now();
        let run = env.run(&args).expect(2);
        let took = t0.elapsed();
        assert!(took < Duration::from_secs(1), "{args:?} took {took:?}");
        one_short_line(&run);
        assert!(run.stderr.contains(needle), "{args:?}: {}", run.stderr);
    }
    assert_eq!(env.scalar_i64("SELECT count(*) FROM usage_events", &[]), 0);
}

#[test]
fn a_long_line_or_binary_in_a_file_is_refused_by_line() {
    let env = TestEnv::new();
    let long = env.dir.path().join("long.csv");
    std::fs::write(
        &long,
        format!("acme,api_requests,1,2026-11-01,{}\n", "k".repeat(10_000)),
    )
    .unwrap();
    let run = env
        .run(&["usage", "import", long.to_str().unwrap()])
        .expect(2);
    one_short_line(&run);
    assert!(
        run.stderr.contains("line 1 is 10031 bytes long"),
        "{}",
        run.stderr
    );
    let bin = env.dir.path().join("tiers.toml");
    std::fs::write(&bin, b"currency = \"USD\"\n\xff\xfe\x00\x01\n").unwrap();
    let run = env
        .run(&[
            "--tiers",
            bin.to_str().unwrap(),
            "provision",
            "acme",
            "--tier",
            "free",
        ])
        .expect(2);
    one_short_line(&run);
    assert!(run.stderr.contains("line 2 is not UTF-8"), "{}", run.stderr);
}

#[test]
fn a_huge_or_hostile_value_is_shown_as_a_short_escaped_excerpt() {
    let env = TestEnv::new();
    env.provision("acme", "premium");
    let key = "k".repeat(100_000);
    let run = env
        .run(&[
            "usage",
            "record",
            "acme",
            "api_requests",
            "1",
            "--key",
            &key,
        ])
        .expect(2);
    one_short_line(&run);
    assert!(
        run.stderr.contains("100000 characters, more than 200"),
        "{}",
        run.stderr
    );
    for args in [
        vec!["show", "\u{1b}[2J\u{1b}[31macme"],
        vec!["suspend", "acme", "--reason", "late\npayment"],
        vec!["suspend", "acme", "--reason", "\u{202e}gnp.exe"],
        vec![
            "provision",
            "beta",
            "--tier",
            "free",
            "--name",
            "Beta\u{1b}]0;pwned\u{7}",
        ],
        vec![
            "provision",
            "beta",
            "--tier",
            "free",
            "--owner-name",
            "a\u{200b}b",
        ],
        vec![
            "provision",
            "beta",
            "--tier",
            "free",
            "--owner-email",
            "x@y.z\r\nBcc: a@b.c",
        ],
        vec!["quota", "set", "acme", "users", "\u{1b}[31m5"],
        vec!["bill", "--period", &key],
    ] {
        let run = env.run(&args).expect(2);
        one_short_line(&run);
    }
    assert_eq!(env.scalar_i64("SELECT count(*) FROM usage_events", &[]), 0);
    assert_eq!(
        env.scalar_i64("SELECT count(*) FROM tenants WHERE status <> 'active'", &[]),
        0
    );
}

#[test]
fn the_actor_is_bounded_printable_text_and_audit_escapes_old_rows() {
    let env = TestEnv::new();
    env.provision("acme", "free");
    let before = env.scalar_i64("SELECT count(*) FROM audit_log", &[]);
    let run = env
        .run(&[
            "--actor",
            "mallory\n2026-11-25 00:00:00  admin",
            "suspend",
            "acme",
        ])
        .expect(2);
    one_short_line(&run);
    assert!(run.stderr.contains("invalid actor"), "{}", run.stderr);
    let run = env
        .run_env(
            &["suspend", "acme"],
            &[("TENANTCTL_ACTOR", &"a".repeat(101))],
        )
        .expect(2);
    one_short_line(&run);
    assert_eq!(
        env.scalar_i64("SELECT count(*) FROM audit_log", &[]),
        before
    );
    // A row written before the rule existed: its newline and escape are shown escaped.
    env.control()
        .execute(
            "INSERT INTO audit_log (actor, action, slug) VALUES ($1, 'suspend', 'acme')",
            &[&"old\nrow \u{1b}[31m\u{202e}"],
        )
        .unwrap();
    let run = env.run(&["audit", "acme"]).expect(0);
    let rows = env.scalar_i64("SELECT count(*) FROM audit_log WHERE slug = 'acme'", &[]);
    assert_eq!(
        run.stdout.lines().count() as i64,
        rows + 1,
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("old\\nrow \\u{1b}[31m\\u{202e}"),
        "{}",
        run.stdout
    );
}

#[test]
fn a_usage_file_with_a_byte_order_mark_is_read() {
    let env = TestEnv::new();
    env.provision("acme", "premium");
    let file = env.dir.path().join("bom.csv");
    let now = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ");
    std::fs::write(
        &file,
        format!("\u{feff}slug,resource,quantity,time,key\r\nacme,api_requests,7,{now},k1\r\n"),
    )
    .unwrap();
    let run = env
        .run(&["usage", "import", file.to_str().unwrap(), "-o", "json"])
        .expect(0);
    assert_eq!(run.json()["accepted"], 1, "{}", run.stdout);
    let file = env.dir.path().join("bom-no-header.csv");
    std::fs::write(&file, format!("\u{feff}acme,api_requests,5,{now},k2\n")).unwrap();
    env.run(&["usage", "import", file.to_str().unwrap()])
        .expect(0);
    assert_eq!(env.scalar_i64("SELECT count(*) FROM usage_events", &[]), 2);
}

#[test]
fn the_password_file_is_never_written_through_a_link_or_another_users_file() {
    let env = TestEnv::bare();
    let d = env.dir.path();
    // A symlink to a file that must stay as it is.
    let target = d.join("victim");
    std::fs::write(&target, "precious\n").unwrap();
    let link = d.join("link");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let run = env
        .run(&[
            "provision",
            "acme",
            "--tier",
            "free",
            "--password-file",
            link.to_str().unwrap(),
        ])
        .expect(2);
    one_short_line(&run);
    assert!(run.stderr.contains("symbolic link"), "{}", run.stderr);
    // A dangling symlink: following it would create a file elsewhere.
    let dangling = d.join("dangling");
    std::os::unix::fs::symlink(d.join("elsewhere"), &dangling).unwrap();
    env.run(&[
        "provision",
        "acme",
        "--tier",
        "free",
        "--password-file",
        dangling.to_str().unwrap(),
    ])
    .expect(2);
    assert!(!d.join("elsewhere").exists());
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "precious\n");
    assert!(
        !env.database_exists(&env.control_db),
        "refused before anything was made"
    );
    env.run(&["init", "-q"]).expect(0);

    // A file of another user (as root: chown it; otherwise root's files are another user's).
    let theirs = d.join("theirs");
    std::fs::write(&theirs, "theirs\n").unwrap();
    // SAFETY: getuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    if me == 0 {
        std::os::unix::fs::chown(&theirs, Some(65534), Some(65534)).unwrap();
        let run = env
            .run(&[
                "provision",
                "acme",
                "--tier",
                "free",
                "--password-file",
                theirs.to_str().unwrap(),
            ])
            .expect(2);
        one_short_line(&run);
        assert!(
            run.stderr.contains("belongs to uid 65534"),
            "{}",
            run.stderr
        );
        assert_eq!(std::fs::read_to_string(&theirs).unwrap(), "theirs\n");
    }

    // A new file: created 0600 with the password; an own existing 0644 file: replaced, 0600.
    let fresh = d.join("fresh");
    env.run(&[
        "provision",
        "acme",
        "--tier",
        "free",
        "-q",
        "--password-file",
        fresh.to_str().unwrap(),
    ])
    .expect(0);
    let meta = std::fs::metadata(&fresh).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    assert_eq!(std::fs::read_to_string(&fresh).unwrap().trim().len(), 24);
    let own = d.join("own");
    std::fs::write(&own, "old\n").unwrap();
    std::fs::set_permissions(&own, std::fs::Permissions::from_mode(0o644)).unwrap();
    env.run(&[
        "provision",
        "beta",
        "--tier",
        "free",
        "-q",
        "--password-file",
        own.to_str().unwrap(),
    ])
    .expect(0);
    let meta = std::fs::metadata(&own).unwrap();
    assert_eq!((meta.permissions().mode() & 0o777, meta.uid()), (0o600, me));
    assert_eq!(std::fs::read_to_string(&own).unwrap().trim().len(), 24);
    // No temporary file is left behind.
    let leftovers: Vec<_> = std::fs::read_dir(d)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    // /dev/null stays a world-writable device.
    env.provision("gamma", "free");
    assert_eq!(
        std::fs::metadata("/dev/null").unwrap().permissions().mode() & 0o777,
        0o666
    );
}

#[test]
fn read_only_commands_and_dry_runs_never_create_the_control_database() {
    // On an operator's server a missing control database is bad input naming `tenantctl
    // init`, for dry runs and read-only commands alike: nothing is created.
    let env = TestEnv::bare();
    let cases: &[&[&str]] = &[
        &["bill", "--dry-run", "--period", "2026-01"],
        &["migrate", "--dry-run"],
        &["migrate", "status"],
        &["provision", "acme", "--tier", "free", "--dry-run"],
        &["list"],
        &["audit"],
        &["invoices", "list"],
        &["show", "acme"],
        &["invoices", "show", "1"],
        &["quota", "show", "acme"],
        &["quota", "check", "acme", "api_requests"],
    ];
    for args in cases {
        let run = env.run(args).expect(2);
        one_short_line(&run);
        assert!(
            run.stderr.contains("tenantctl init"),
            "{args:?}: {}",
            run.stderr
        );
        assert!(
            !env.database_exists(&env.control_db),
            "`{}` created the control database",
            args.join(" ")
        );
    }
    assert_eq!(env.owned_objects(), (vec![], vec![]));
    // Once initialised, the same commands read an empty control plane.
    env.run(&["init", "-q"]).expect(0);
    let run = env.run(&["list", "-o", "json"]).expect(0);
    assert_eq!(run.json(), serde_json::json!([]));
    let run = env
        .run(&["bill", "--dry-run", "--period", "2026-01", "-o", "json"])
        .expect(0);
    assert_eq!(run.json()["tenants_billed"], 0);
    env.run(&["show", "acme"]).expect(3);
    assert_eq!(env.owned_objects(), (vec![], vec![]));
}
