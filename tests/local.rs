//! The embedded default: with nothing configured, tenantctl runs its own cluster.

use std::os::unix::fs::PermissionsExt;

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

    let (code, stdout, stderr) = run(&["list", "-o", "json"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stderr.contains("using the local PostgreSQL cluster"),
        "{stderr}"
    );
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v[0]["slug"], "acme");
    assert_eq!(v[0]["database"], "tenant_acme");

    let (code, stdout, _) = run(&["local", "stop"]);
    assert_eq!(code, Some(0));
    assert!(stdout.contains("stopped"), "{stdout}");
    let (_, stdout, _) = run(&["local", "status", "-o", "json"]);
    let s: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(s["running"], false);
    // It starts again on demand, data intact.
    let (code, stdout, _) = run(&["show", "acme", "-o", "json"]);
    assert_eq!(code, Some(0));
    assert!(stdout.contains("\"status\": \"active\""));
}
