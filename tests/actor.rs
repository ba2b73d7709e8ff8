//! Who the audit log names: under cron or a systemd unit (no $USER, no $LOGNAME) the account
//! name of the effective uid, not `uid:N`.

use std::process::Command;

use crate::support::TestEnv;

fn id_un() -> String {
    let out = Command::new("id").arg("-un").output().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

fn last_actor(env: &TestEnv) -> String {
    env.control()
        .query_one("SELECT actor FROM audit_log ORDER BY id DESC LIMIT 1", &[])
        .unwrap()
        .get(0)
}

#[test]
fn without_user_or_logname_the_actor_is_the_account_name() {
    let env = TestEnv::new();
    env.provision("acme", "free");
    let run = |args: &[&str], extra: &[(&str, &str)]| {
        let mut cmd = env.cmd();
        cmd.env_remove("USER").env_remove("LOGNAME");
        for (k, v) in extra {
            cmd.env(k, v);
        }
        let out = cmd.args(args).output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(&["suspend", "acme", "-q"], &[]);
    let actor = last_actor(&env);
    assert_eq!(actor, id_un());
    assert!(!actor.starts_with("uid:"), "{actor}");
    // $USER and --actor still come first.
    run(&["resume", "acme", "-q"], &[("USER", "alice")]);
    assert_eq!(last_actor(&env), "alice");
    run(&["suspend", "acme", "-q", "--actor", "ops-bot"], &[]);
    assert_eq!(last_actor(&env), "ops-bot");
}
