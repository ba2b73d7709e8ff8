//! The embedded default: with nothing configured, tenantctl runs its own cluster.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::support::bare_cmd;

/// Stops the cluster however the test ends.
struct StopOnDrop(std::path::PathBuf);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        let _ = bare_cmd()
            .env("TENANTCTL_DATA_DIR", &self.0)
            .args(["local", "stop"])
            .output();
    }
}

#[test]
fn provision_with_nothing_configured_runs_a_local_cluster() {
    let dir = tempfile::Builder::new()
        .prefix("tenantctl-local-")
        .tempdir()
        .unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let data = dir.path().join("d");
    let _stop = StopOnDrop(data.clone());
    let run = |args: &[&str]| {
        let out = bare_cmd()
            .env("TENANTCTL_DATA_DIR", &data)
            .current_dir(dir.path())
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };

    let (code, stdout, _) = run(&["local", "status", "-o", "json"]);
    assert_eq!(code, Some(0));
    let s: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(
        (s["initialized"].as_bool(), s["running"].as_bool()),
        (Some(false), Some(false))
    );

    let (code, stdout, stderr) = run(&["provision", "acme", "--tier", "premium"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "started the local PostgreSQL cluster in {}",
            data.display()
        )),
        "{stderr}"
    );
    assert!(stdout.contains("tenant_acme"), "{stdout}");
    assert!(data.join("buckets/acme-uploads").is_dir());

    let (code, stdout, _) = run(&["local", "status", "-o", "json"]);
    assert_eq!(code, Some(0));
    let s: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(s["running"], true);
    // Unix socket only: no TCP listener configured.
    let conf = std::fs::read_to_string(data.join("pg/postgresql.conf")).unwrap();
    assert!(conf.contains("listen_addresses = ''"));

    // The note about the local cluster is for when tenantctl starts it, not every command.
    let (code, stdout, stderr) = run(&["list", "-o", "json"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(!stderr.contains("local PostgreSQL cluster"), "{stderr}");
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v[0]["slug"], "acme");
    assert_eq!(v[0]["database"], "tenant_acme");

    let (code, stdout, _) = run(&["local", "stop"]);
    assert_eq!(code, Some(0));
    assert!(stdout.contains("stopped"), "{stdout}");
    let (_, stdout, _) = run(&["local", "status", "-o", "json"]);
    let s: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(s["running"], false);
    // It starts again on demand, data intact, and says so.
    let (code, stdout, stderr) = run(&["show", "acme", "-o", "json"]);
    assert_eq!(code, Some(0));
    assert!(
        stderr.contains("started the local PostgreSQL cluster"),
        "{stderr}"
    );
    assert!(stdout.contains("\"status\": \"active\""));
}

/// libpq's variables, pointing at another server, as an operator's shell may hold them.
const FOREIGN_PG_VARS: [(&str, &str); 7] = [
    ("PGPORT", "55998"),
    ("PGHOST", "/nonexistent/elsewhere"),
    ("PGDATA", "/nonexistent/elsewhere/pgdata"),
    ("PGOPTIONS", "-c no_such.setting=1 -c search_path=nowhere"),
    ("PGDATABASE", "somebody_elses_db"),
    ("PGUSER", "somebody_else"),
    ("PGPASSWORD", "not-ours"),
];

/// A data directory in a temp dir the `postgres` user can enter (the tests run as root).
fn local_dir() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::Builder::new()
        .prefix("tenantctl-local-")
        .tempdir()
        .unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let data = dir.path().join("d");
    (dir, data)
}

/// Runs tenantctl on the local cluster in `data` with `vars` added to its environment.
fn run_local(data: &Path, vars: &[(&str, &str)], args: &[&str]) -> (Option<i32>, String, String) {
    let mut cmd = bare_cmd();
    cmd.env("TENANTCTL_DATA_DIR", data).args(args);
    for (k, v) in vars {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn status_json(data: &Path, vars: &[(&str, &str)]) -> serde_json::Value {
    let (code, stdout, stderr) = run_local(data, vars, &["local", "status", "-o", "json"]);
    assert_eq!(code, Some(0), "{stderr}");
    serde_json::from_str(&stdout).unwrap()
}

/// Whether `pid` is still a live process, given a few seconds to finish exiting: `pg_ctl stop`
/// returns once the server has removed its `postmaster.pid`, just before it exits. A zombie
/// waiting for its parent's `wait` counts as gone.
fn alive(pid: u64) -> bool {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok();
        // The state follows the command name, which is in parentheses.
        let live = state
            .as_deref()
            .and_then(|s| s.rsplit_once(") "))
            .is_some_and(|(_, rest)| !rest.starts_with('Z'));
        if !live || std::time::Instant::now() > deadline {
            return live;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[test]
fn pg_variables_of_the_shell_do_not_reach_the_local_cluster() {
    let (_dir, data) = local_dir();
    let _stop = StopOnDrop(data.clone());
    let vars = &FOREIGN_PG_VARS[..];
    // PGHOST, PGHOSTADDR, PGPORT, PGUSER and PGDATABASE name a server: by the documented
    // precedence (flag > TENANTCTL_DATABASE_URL > PG* > tenantctl.toml > local cluster) they
    // point tenantctl at it, so the commands that pick a server get only the others. The local
    // cluster's programs must see none of them (a bogus PGOPTIONS would stop the server).
    let naming_a_server = ["PGHOST", "PGHOSTADDR", "PGPORT", "PGUSER", "PGDATABASE"];
    let others: Vec<(&str, &str)> = vars
        .iter()
        .copied()
        .filter(|(k, _)| !naming_a_server.contains(k))
        .collect();
    let (code, stderr) = {
        let (code, _, stderr) = run_local(&data, vars, &["list"]);
        (code, stderr)
    };
    assert_eq!(code, Some(1), "PG* name another server: {stderr}");
    assert!(stderr.contains("/nonexistent/elsewhere"), "{stderr}");
    assert!(!stderr.contains("not-ours"), "{stderr}");
    let vars = &others[..];

    let (code, stdout, stderr) =
        run_local(&data, vars, &["provision", "acme", "--tier", "premium"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.contains("tenant_acme"), "{stdout}");

    let (code, stdout, stderr) = run_local(&data, vars, &["list", "-o", "json"]);
    assert_eq!(code, Some(0), "{stderr}");
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v[0]["slug"], "acme");

    let s = status_json(&data, vars);
    assert_eq!(s["running"], true, "{s}");
    assert_eq!(s["reachable"], true, "{s}");
    assert_eq!(s["state"], "ready", "{s}");
    let socket = data.join("run/.s.PGSQL.5432");
    assert_eq!(s["socket"], socket.display().to_string(), "{s}");
    assert!(socket.exists());
    let pid = s["pid"].as_u64().unwrap();
    assert!(alive(pid));
    // `local status|stop` concern the local cluster alone: every PG* variable may be set.
    let all = &FOREIGN_PG_VARS[..];
    let (code, stdout, stderr) = run_local(&data, all, &["local", "status"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.contains("reachable    yes"), "{stdout}");

    let (code, stdout, stderr) = run_local(&data, all, &["local", "stop"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(stdout, "stopped the local cluster\n");
    assert!(!alive(pid), "the server (pid {pid}) was left running");
    assert!(!data.join("pg/postmaster.pid").exists());
    let s = status_json(&data, vars);
    assert_eq!(
        (&s["running"], &s["pid"]),
        (&false.into(), &serde_json::Value::Null)
    );
}

/// Starts the local cluster in `data` the way an older tenantctl did with `PGPORT` in the
/// shell: on another port, so its socket is not where tenantctl connects.
fn start_on_inherited_port(data: &Path, port: &str) {
    use tenantctl::cluster::{command_as, pg_bindir, server_account};
    let bindir = pg_bindir(None).unwrap();
    let out = command_as(&bindir.join("pg_ctl"), server_account().unwrap())
        .env("PGPORT", port)
        .arg("start")
        .arg("-D")
        .arg(data.join("pg"))
        .arg("-l")
        .arg(data.join("pg/server.log"))
        .args(["-w", "-t", "60", "-s"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_server_listening_elsewhere_is_reported_and_stopped() {
    let (_dir, data) = local_dir();
    let _stop = StopOnDrop(data.clone());
    let (code, _, stderr) = run_local(&data, &[], &["provision", "acme", "--tier", "premium"]);
    assert_eq!(code, Some(0), "{stderr}");
    let (code, _, stderr) = run_local(&data, &[], &["local", "stop"]);
    assert_eq!(code, Some(0), "{stderr}");
    start_on_inherited_port(&data, "55997");
    let elsewhere = data.join("run/.s.PGSQL.55997");

    let s = status_json(&data, &[]);
    assert_eq!(s["running"], true, "{s}");
    assert_eq!(s["reachable"], false, "{s}");
    assert_eq!(s["socket"], elsewhere.display().to_string(), "{s}");
    let problem = s["problem"].as_str().unwrap();
    assert!(problem.contains("tenantctl local stop"), "{problem}");
    let pid = s["pid"].as_u64().unwrap();
    let (_, stdout, _) = run_local(&data, &[], &["local", "status"]);
    assert!(
        stdout.contains(&format!("yes (pid {pid}, ready)")),
        "{stdout}"
    );
    assert!(
        stdout.contains("reachable    no: the local cluster"),
        "{stdout}"
    );

    // A command that needs it says what is wrong and how to fix it, and starts nothing.
    let (code, _, stderr) = run_local(&data, &[], &["list"]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains(".s.PGSQL.55997"), "{stderr}");
    assert!(stderr.contains("`tenantctl local stop`"), "{stderr}");
    assert_eq!(status_json(&data, &[])["pid"], pid);

    let (code, stdout, stderr) = run_local(&data, &[], &["local", "stop"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(stdout, "stopped the local cluster\n");
    assert!(!alive(pid), "the server (pid {pid}) was left running");

    // The next command starts it where tenantctl expects it, data intact.
    let (code, stdout, stderr) = run_local(&data, &[], &["list", "-o", "json"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.contains("\"acme\""), "{stdout}");
    assert_eq!(status_json(&data, &[])["reachable"], true);
}

#[test]
fn a_stale_pid_file_naming_another_process_is_not_a_server() {
    let (_dir, data) = local_dir();
    std::fs::create_dir_all(data.join("pg")).unwrap();
    let mut other = std::process::Command::new("sleep")
        .arg("60")
        .spawn()
        .unwrap();
    std::fs::write(
        data.join("pg/postmaster.pid"),
        format!(
            "{}\n{}\n0\n5432\n{}\n\n0 0\nready\n",
            other.id(),
            data.join("pg").display(),
            data.join("run").display()
        ),
    )
    .unwrap();

    let s = status_json(&data, &[]);
    assert_eq!(
        (&s["running"], &s["reachable"]),
        (&false.into(), &false.into()),
        "{s}"
    );
    let (code, stdout, stderr) = run_local(&data, &[], &["local", "stop"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(stdout, "the local cluster was not running\n");
    assert!(
        other.try_wait().unwrap().is_none(),
        "the unrelated process was signalled"
    );
    let _ = other.kill();
    let _ = other.wait();
}
