//! Lifecycle hooks (`[hooks]` in tenantctl.toml): what a hook is given, a failed hook failing
//! its command and retried alone, the time limit, a crash between hooks, a purge stopped by
//! its hook, bad configuration, and the examples in docs/hooks/ (the welcome spool, run for
//! real).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::support::{Run, TestEnv};

fn docs_hook(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("docs/hooks")
        .join(name)
}

/// Writes `tenantctl.toml` with `hooks` as its `[hooks]` table into the test's directory.
fn config(env: &TestEnv, hooks: &str) -> String {
    let path = env.dir.path().join("tenantctl.toml");
    std::fs::write(&path, format!("[hooks]\n{hooks}\n")).unwrap();
    path.display().to_string()
}

fn run(env: &TestEnv, cfg: &str, args: &[&str]) -> Run {
    env.run_env(args, &[("TENANTCTL_CONFIG", cfg)])
}

fn status(env: &TestEnv, slug: &str) -> Option<String> {
    env.control()
        .query_opt("SELECT status FROM tenants WHERE slug = $1", &[&slug])
        .unwrap()
        .map(|r| r.get(0))
}

/// The lines a hook appended to `name` in the test's directory.
fn lines(env: &TestEnv, name: &str) -> Vec<String> {
    std::fs::read_to_string(env.dir.path().join(name))
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn hooks_get_the_tenant_on_stdin_and_in_the_environment_and_no_secret() {
    let env = TestEnv::new();
    let welcome = docs_hook("welcome.sh");
    let cfg = config(
        &env,
        &format!(
            "after_provision = ['cat > stdin.json; env > env.txt', 'sh {} spool']\n\
             after_suspend = ['echo \"$TENANTCTL_EVENT $TENANTCTL_STATUS\" >> events']\n\
             after_resume = ['echo \"$TENANTCTL_EVENT $TENANTCTL_STATUS\" >> events']\n\
             after_deprovision = ['echo \"$TENANTCTL_EVENT $TENANTCTL_STATUS\" >> events']\n\
             after_restore = ['echo \"$TENANTCTL_EVENT $TENANTCTL_STATUS\" >> events']",
            welcome.display()
        ),
    );
    let provisioned = env
        .cmd()
        .env("TENANTCTL_CONFIG", &cfg)
        .env("PGPASSWORD", "pg-secret-never-passed")
        .args([
            "provision",
            "acme",
            "--tier",
            "premium",
            "--owner-email",
            "ops@acme.example",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&provisioned.stderr).into_owned();
    assert_eq!(provisioned.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("[7/8] run hooks ... ok"), "{stderr}");
    assert!(stderr.contains("hook after_provision[2]"), "{stderr}");
    let password = crate::support::shown_password(&stderr);

    // stdin: the tenant as `show -o json` has it, while it is still being provisioned.
    let stdin: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(env.dir.path().join("stdin.json")).unwrap())
            .unwrap();
    let shown = env.run(&["show", "acme", "-o", "json"]).expect(0).json();
    let keys =
        |v: &serde_json::Value| -> Vec<String> { v.as_object().unwrap().keys().cloned().collect() };
    assert_eq!(keys(&stdin), keys(&shown));
    for field in [
        "id",
        "slug",
        "tier",
        "isolation",
        "database",
        "role",
        "owner_email",
    ] {
        assert_eq!(stdin[field], shown[field], "{field}");
    }
    assert_eq!(stdin["status"], "provisioning");
    assert_eq!(shown["status"], "active");

    let vars = std::fs::read_to_string(env.dir.path().join("env.txt")).unwrap();
    let id = shown["id"].as_str().unwrap();
    let silo = env.silo("acme");
    for expected in [
        "TENANTCTL_EVENT=provision".to_owned(),
        "TENANTCTL_SLUG=acme".to_owned(),
        "TENANTCTL_TIER=premium".to_owned(),
        "TENANTCTL_ISOLATION=siloed".to_owned(),
        "TENANTCTL_STATUS=provisioning".to_owned(),
        format!("TENANTCTL_TENANT_ID={id}"),
        format!("TENANTCTL_DATABASE={silo}"),
        "TENANTCTL_OWNER_EMAIL=ops@acme.example".to_owned(),
    ] {
        assert!(
            vars.lines().any(|l| l == expected),
            "{expected} in:\n{vars}"
        );
    }
    // Never a password: not tenantctl's connection, not the storage key, not the owner's.
    for secret in [
        "TENANTCTL_DATABASE_URL",
        "PGPASSWORD",
        "pg-secret-never-passed",
        "AWS_SECRET_ACCESS_KEY",
        "TENANTCTL_NAME_PREFIX",
        &password,
    ] {
        assert!(!vars.contains(secret), "{secret} reached a hook");
        assert!(!stdin.to_string().contains(secret), "{secret} on stdin");
    }

    // The welcome example wrote one message, and a second run of it writes nothing new.
    let message = env.dir.path().join("spool").join(format!("{id}.eml"));
    let text = std::fs::read_to_string(&message).unwrap();
    assert!(text.contains("To: ops@acme.example"), "{text}");
    assert!(text.contains("Subject: Welcome to acme"), "{text}");
    let again = std::process::Command::new("sh")
        .arg(&welcome)
        .arg(env.dir.path().join("spool"))
        .env("TENANTCTL_TENANT_ID", id)
        .env("TENANTCTL_OWNER_EMAIL", "other@example.com")
        .env("TENANTCTL_SLUG", "acme")
        .env("TENANTCTL_TIER", "premium")
        .status()
        .unwrap();
    assert!(again.success());
    assert_eq!(std::fs::read_to_string(&message).unwrap(), text);
    assert_eq!(
        std::fs::read_dir(env.dir.path().join("spool"))
            .unwrap()
            .count(),
        1
    );

    // Each lifecycle command runs its hooks once its final status is written.
    run(&env, &cfg, &["suspend", "acme"]).expect(0);
    run(&env, &cfg, &["resume", "acme"]).expect(0);
    run(&env, &cfg, &["deprovision", "acme"]).expect(0);
    run(&env, &cfg, &["restore", "acme"]).expect(0);
    assert_eq!(
        lines(&env, "events"),
        [
            "suspend suspended",
            "resume active",
            "deprovision deleted",
            "restore active"
        ]
    );
}

#[test]
fn a_failed_hook_fails_provisioning_and_the_rerun_retries_only_it() {
    let env = TestEnv::new();
    let cfg = config(
        &env,
        "after_provision = [\n\
           'echo ran >> first',\n\
           'echo ran >> second; test -e fixed || { echo \"some noise\" >&2; printf \"cannot reach \\\\033[31mmail\\\\n\" >&2; exit 3; }',\n\
         ]",
    );
    let failed = run(
        &env,
        &cfg,
        &[
            "provision",
            "acme",
            "--tier",
            "free",
            "--password-file",
            "/dev/null",
        ],
    )
    .expect(1);
    let last = failed.stderr.lines().last().unwrap();
    assert!(last.starts_with("error: "), "{}", failed.stderr);
    assert!(last.contains("step 7/8 (run hooks) failed"), "{last}");
    assert!(last.contains("after_provision[2]"), "{last}");
    assert!(last.contains("exit status 3"), "{last}");
    // Its last stderr line, escaped: no raw escape sequence reaches the terminal.
    assert!(last.contains("cannot reach \\u{1b}[31mmail"), "{last}");
    assert!(!failed.stderr.contains('\u{1b}'), "{}", failed.stderr);
    assert_eq!(status(&env, "acme").as_deref(), Some("provisioning"));
    assert_eq!(lines(&env, "first").len(), 1);
    assert_eq!(lines(&env, "second").len(), 1);

    // Still failing: only the failed hook runs again.
    run(&env, &cfg, &["provision", "acme", "--tier", "free"]).expect(1);
    assert_eq!(
        (lines(&env, "first").len(), lines(&env, "second").len()),
        (1, 2)
    );

    std::fs::write(env.dir.path().join("fixed"), "").unwrap();
    let ok = run(&env, &cfg, &["provision", "acme", "--tier", "free"]).expect(0);
    assert!(
        ok.stderr
            .contains("after_provision[1] `echo ran >> first` ... already done"),
        "{}",
        ok.stderr
    );
    assert_eq!(status(&env, "acme").as_deref(), Some("active"));
    assert_eq!(
        (lines(&env, "first").len(), lines(&env, "second").len()),
        (1, 3)
    );
    // Active: provisioning again is a no-op that runs no hook.
    run(&env, &cfg, &["provision", "acme", "--tier", "free"]).expect(0);
    assert_eq!(
        (lines(&env, "first").len(), lines(&env, "second").len()),
        (1, 3)
    );
}

#[test]
fn a_hook_past_its_time_limit_is_killed_with_what_it_started() {
    let env = TestEnv::new();
    let cfg = config(
        &env,
        "timeout = 1\nafter_provision = ['sleep 60 & echo $! > background; echo started >&2; sleep 60']",
    );
    let t0 = Instant::now();
    let failed = run(&env, &cfg, &["provision", "slow", "--tier", "free"]).expect(1);
    assert!(t0.elapsed() < Duration::from_secs(30), "{:?}", t0.elapsed());
    assert!(
        failed
            .stderr
            .contains("killed after its time limit of 1 s (hooks.timeout)")
            && failed.stderr.contains("`started`"),
        "{}",
        failed.stderr
    );
    assert_eq!(status(&env, "slow").as_deref(), Some("provisioning"));
    // The process the hook left in the background went with it (its process group).
    let pid = std::fs::read_to_string(env.dir.path().join("background")).unwrap();
    let stat = format!("/proc/{}/stat", pid.trim());
    let deadline = Instant::now() + Duration::from_secs(5);
    while let Ok(s) = std::fs::read_to_string(&stat) {
        // A zombie waiting for init to reap it is dead too.
        if s.rsplit(')').next().unwrap().trim_start().starts_with('Z') {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the background sleep survives: {s}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_crash_between_hooks_is_finished_by_the_rerun_without_repeating_the_first() {
    let env = TestEnv::new();
    let cfg = config(
        &env,
        "after_provision = ['echo ran >> first', 'echo ran >> second']",
    );
    for (slug, point, first_runs) in [
        // Recorded, then killed: the re-run skips it.
        ("after", "hook:provision:1", 1),
        // Killed before its success was recorded: it runs again (hooks are idempotent).
        ("before", "hook:provision:1:ran", 2),
    ] {
        std::fs::remove_file(env.dir.path().join("first")).ok();
        std::fs::remove_file(env.dir.path().join("second")).ok();
        let crashed = env.run_env(
            &["provision", slug, "--tier", "free"],
            &[("TENANTCTL_CONFIG", &cfg), ("TENANTCTL_FAILPOINT", point)],
        );
        assert_eq!(crashed.code, None, "{point}: {}", crashed.stderr);
        assert_eq!(lines(&env, "second").len(), 0);
        let rerun = run(&env, &cfg, &["provision", slug, "--tier", "free"]).expect(0);
        assert!(rerun.stderr.contains("resuming"), "{}", rerun.stderr);
        assert_eq!(status(&env, slug).as_deref(), Some("active"));
        assert_eq!(
            (lines(&env, "first").len(), lines(&env, "second").len()),
            (first_runs, 1),
            "{point}"
        );
    }
}

#[test]
fn a_failed_lifecycle_hook_keeps_the_transition_and_the_same_command_retries_it() {
    let env = TestEnv::new();
    env.provision("acme", "premium");
    let cfg = config(
        &env,
        "after_suspend = [\n\
           'echo ran >> first',\n\
           'echo ran >> second; test -e fixed || { echo \"pager down\" >&2; exit 1; }',\n\
         ]",
    );
    let failed = run(&env, &cfg, &["suspend", "acme"]).expect(1);
    assert!(
        failed.stderr.contains(
            "tenant `acme` is suspended, but its after_suspend hooks did not all succeed"
        ) && failed.stderr.contains("after_suspend[2]")
            && failed.stderr.contains("`pager down`")
            && failed.stderr.contains("run `tenantctl suspend acme` again"),
        "{}",
        failed.stderr
    );
    // The transition is complete: the data plane is closed and the status says so.
    assert_eq!(status(&env, "acme").as_deref(), Some("suspended"));
    assert!(env
        .connect_as(&env.silo("acme"), &env.silo("acme"))
        .is_err());

    std::fs::write(env.dir.path().join("fixed"), "").unwrap();
    let retried = run(&env, &cfg, &["suspend", "acme"]).expect(0);
    assert!(retried.stderr.contains("already"), "{}", retried.stderr);
    assert_eq!(
        (lines(&env, "first").len(), lines(&env, "second").len()),
        (1, 2)
    );
    // Every hook of that suspension succeeded: suspending again is refused, as without hooks.
    run(&env, &cfg, &["suspend", "acme"]).expect(3);
    assert_eq!(
        (lines(&env, "first").len(), lines(&env, "second").len()),
        (1, 2)
    );
    // A new suspension is a new run: its hooks run again.
    run(&env, &cfg, &["resume", "acme"]).expect(0);
    run(&env, &cfg, &["suspend", "acme"]).expect(0);
    assert_eq!(
        (lines(&env, "first").len(), lines(&env, "second").len()),
        (2, 3)
    );
}

#[test]
fn a_failed_before_purge_hook_stops_the_purge() {
    let env = TestEnv::new();
    env.provision("acme", "premium");
    env.run(&["deprovision", "acme"]).expect(0);
    let cfg = config(
        &env,
        "before_purge = [\n\
           'echo \"$TENANTCTL_STATUS\" >> first',\n\
           'echo ran >> second; test -e fixed || { echo \"export failed\" >&2; exit 2; }',\n\
         ]",
    );
    let failed = run(&env, &cfg, &["deprovision", "acme", "--purge", "--yes"]).expect(1);
    assert!(
        failed.stderr.contains("before_purge[2]")
            && failed.stderr.contains("`export failed`")
            && failed.stderr.contains("nothing was removed"),
        "{}",
        failed.stderr
    );
    assert_eq!(status(&env, "acme").as_deref(), Some("deleted"));
    assert!(env.database_exists(&env.silo("acme")));
    assert!(env.storage_root().join("acme-uploads").is_dir());
    // purge --expired reports it and removes nothing either.
    env.control()
        .execute(
            "UPDATE tenants SET purge_after = now() - interval '1 day' WHERE slug = 'acme'",
            &[],
        )
        .unwrap();
    run(&env, &cfg, &["purge", "--expired", "--yes"]).expect(1);
    assert!(env.database_exists(&env.silo("acme")));

    std::fs::write(env.dir.path().join("fixed"), "").unwrap();
    run(&env, &cfg, &["deprovision", "acme", "--purge", "--yes"]).expect(0);
    assert_eq!(status(&env, "acme"), None);
    assert!(!env.database_exists(&env.silo("acme")));
    assert_eq!(lines(&env, "first"), ["deleted"]);
    assert_eq!(lines(&env, "second").len(), 3);
}

#[test]
fn bad_hooks_configuration_exits_2_naming_the_key() {
    let env = TestEnv::new();
    for (hooks, named) in [
        ("timeout = 0", "hooks.timeout"),
        ("timeout = 'soon'", "line 2"),
        ("after_provision = ['ok', '']", "hooks.after_provision[2]"),
        ("after_provision = 'not a list'", "line 2"),
        ("after_provison = ['typo']", "after_provison"),
        ("before_purge = [\"a\\u0000b\"]", "hooks.before_purge[1]"),
    ] {
        let cfg = config(&env, hooks);
        let run = run(&env, &cfg, &["provision", "acme", "--tier", "free"]).expect(2);
        assert_eq!(run.stderr.lines().count(), 1, "{hooks}: {}", run.stderr);
        assert!(run.stderr.contains(named), "{hooks}: {}", run.stderr);
    }
    assert_eq!(status(&env, "acme"), None, "nothing was recorded");
}

#[test]
fn the_kubernetes_namespace_example_is_valid_sh_and_idempotent_by_construction() {
    let path = docs_hook("namespace.sh");
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
        text.contains("kubectl create namespace \"$namespace\" --dry-run=client -o yaml")
            && text.contains("| kubectl apply -f -"),
        "{text}"
    );
    let syntax = std::process::Command::new("sh")
        .arg("-n")
        .arg(&path)
        .status()
        .unwrap();
    assert!(syntax.success());
}
