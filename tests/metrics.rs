//! `tenantctl metrics`: Prometheus text for a known fleet, checked value by value, accepted by
//! `promtool check metrics`, and written atomically with --textfile.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};

use chrono::{Datelike, Duration, Utc};

use crate::support::TestEnv;

/// `name{labels}` → value, for every sample line.
fn samples(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (k, v) = l.rsplit_once(' ').unwrap();
            (k.to_owned(), v.parse().unwrap())
        })
        .collect()
}

#[track_caller]
fn value(s: &BTreeMap<String, f64>, key: &str) -> f64 {
    *s.get(key)
        .unwrap_or_else(|| panic!("no sample `{key}` in:\n{s:#?}"))
}

/// `promtool check metrics` on `text`: its verdict and output. Prometheus's own linter: it
/// parses the text and checks the naming conventions (units, no `_total` on a gauge...).
fn promtool(text: &str) -> (bool, String) {
    use std::io::Write;
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian package `prometheus`) must be installed: .ci/run installs it");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), said)
}

#[test]
fn a_known_fleet_reads_right_and_promtool_accepts_it() {
    let env = TestEnv::new();
    let now = Utc::now();
    let this_month = now.date_naive().with_day(1).unwrap();
    let last_month = (this_month - Duration::days(1)).with_day(1).unwrap();
    let long_ago = format!("{}T00:00:00Z", last_month - Duration::days(40));
    env.provision_at("acme", "free", &long_ago);
    env.provision_at("bigco", "premium", &long_ago);
    env.provision("sleepy", "free");
    env.run(&["suspend", "sleepy", "-q"]).expect(0);
    env.run(&["usage", "record", "bigco", "api_requests", "2500", "-q"])
        .expect(0);
    env.run(&["quota", "set", "acme", "api_requests", "4000", "-q"])
        .expect(0);
    env.run(&["quota", "set", "acme", "sandboxes", "0", "-q"])
        .expect(0);
    env.run(&["usage", "refresh", "-q"]).expect(0);
    let period = last_month.format("%Y-%m").to_string();
    env.run(&["bill", "--period", &period, "-q"]).expect(0);
    // A provisioning that died (no tenantctl holds its lock) and one under way (the test holds
    // the lock the way a running tenantctl does).
    let mut c = env.control();
    let pooled = env.pooled_db();
    for slug in ["dead", "busy"] {
        c.execute(
            "INSERT INTO tenants (slug, name, tier, isolation, database_name, role_name, owner_email, owner_name, updated_at, server)
             VALUES ($1, $1, 'free', 'pooled', $2, 'y', 'o@x', 'O', now() - interval '2 hours', 'main')",
            &[&slug, &pooled],
        )
        .unwrap();
    }
    c.execute(
        "SELECT pg_advisory_lock(hashtextextended('tenantctl:tenant:busy', 0))",
        &[],
    )
    .unwrap();
    // bigco's silo one migration behind.
    let mut silo = env.admin(&env.silo("bigco"));
    silo.execute(
        "DELETE FROM refinery_schema_history WHERE version = (SELECT max(version) FROM refinery_schema_history)",
        &[],
    )
    .unwrap();

    let run = env.run(&["metrics"]).expect(0);
    assert!(run.stderr.is_empty(), "{}", run.stderr);
    let text = run.stdout;
    assert!(text.ends_with("# EOF\n"), "{text}");
    let (ok, said) = promtool(&text);
    assert!(ok, "promtool check metrics refused it:\n{said}\n{text}");
    assert!(
        said.trim().is_empty(),
        "promtool found problems:\n{said}\n{text}"
    );
    let s = samples(&text);

    // Tenants by tier, isolation and status.
    assert_eq!(
        value(
            &s,
            r#"tenantctl_tenants{tier="free",isolation="pooled",status="active"}"#
        ),
        1.0
    );
    assert_eq!(
        value(
            &s,
            r#"tenantctl_tenants{tier="free",isolation="pooled",status="suspended"}"#
        ),
        1.0
    );
    assert_eq!(
        value(
            &s,
            r#"tenantctl_tenants{tier="premium",isolation="siloed",status="active"}"#
        ),
        1.0
    );
    assert_eq!(
        value(
            &s,
            r#"tenantctl_tenants{tier="free",isolation="pooled",status="provisioning"}"#
        ),
        2.0
    );

    // Usage, limit and ratio: metered this month, measured (users: the owner) as refreshed.
    let q = |name: &str, slug: &str, tier: &str, res: &str| {
        value(
            &s,
            &format!(r#"tenantctl_{name}{{slug="{slug}",tier="{tier}",resource="{res}"}}"#),
        )
    };
    assert_eq!(q("quota_used", "bigco", "premium", "api_requests"), 2500.0);
    assert_eq!(
        q("quota_limit", "bigco", "premium", "api_requests"),
        10000.0
    );
    assert_eq!(
        q("quota_used_ratio", "bigco", "premium", "api_requests"),
        0.25
    );
    assert_eq!(q("quota_limit", "acme", "free", "api_requests"), 4000.0);
    assert_eq!(q("quota_used", "acme", "free", "api_requests"), 0.0);
    assert_eq!(q("quota_used", "acme", "free", "users"), 1.0);
    assert_eq!(q("quota_used_ratio", "acme", "free", "users"), 1.0);
    assert_eq!(q("quota_used", "bigco", "premium", "users"), 1.0);
    assert_eq!(q("quota_used_ratio", "bigco", "premium", "users"), 0.2);
    assert_eq!(q("quota_limit", "acme", "free", "sandboxes"), 0.0);
    assert!(
        !s.contains_key(
            r#"tenantctl_quota_used_ratio{slug="acme",tier="free",resource="sandboxes"}"#
        ),
        "a limit of 0 has no ratio"
    );

    // The last billing run: two tenants billed for last month, 499.00 for bigco, 0 for acme.
    assert_eq!(
        value(
            &s,
            &format!(r#"tenantctl_billing_last_run_info{{period="{period}"}}"#)
        ),
        1.0
    );
    let start = last_month
        .and_hms_opt(0, 0, 0)
        .unwrap()
        .and_utc()
        .timestamp() as f64;
    assert_eq!(
        value(
            &s,
            "tenantctl_billing_last_run_period_start_timestamp_seconds"
        ),
        start
    );
    assert_eq!(value(&s, "tenantctl_billing_last_run_complete"), 1.0);
    assert_eq!(value(&s, "tenantctl_billing_last_run_invoices"), 2.0);
    assert_eq!(
        value(&s, r#"tenantctl_billing_last_run_amount{currency="USD"}"#),
        499.0
    );
    let started = value(&s, "tenantctl_billing_last_run_started_timestamp_seconds");
    let finished = value(&s, "tenantctl_billing_last_run_finished_timestamp_seconds");
    let duration = value(&s, "tenantctl_billing_last_run_duration_seconds");
    assert!(
        (now.timestamp() as f64 - 5.0..=Utc::now().timestamp() as f64 + 1.0).contains(&started)
    );
    assert!(
        (finished - started - duration).abs() < 0.002,
        "{started} {finished} {duration}"
    );

    // Tenant databases: the pooled one current, bigco's silo behind.
    assert_eq!(
        value(&s, r#"tenantctl_tenant_databases{schema="behind"}"#),
        1.0
    );
    assert_eq!(
        value(&s, r#"tenantctl_tenant_databases{schema="current"}"#),
        1.0
    );
    assert_eq!(
        value(&s, r#"tenantctl_tenant_databases{schema="unknown"}"#),
        0.0
    );

    // Provisioning: one interrupted, one running, each with its age.
    assert_eq!(
        value(
            &s,
            r#"tenantctl_tenants_in_transition{status="provisioning",state="interrupted"}"#
        ),
        1.0
    );
    assert_eq!(
        value(
            &s,
            r#"tenantctl_tenants_in_transition{status="provisioning",state="running"}"#
        ),
        1.0
    );
    let age = value(
        &s,
        r#"tenantctl_tenant_transition_age_seconds{slug="dead",status="provisioning",state="interrupted"}"#,
    );
    assert!((7190.0..7300.0).contains(&age), "{age}");
    assert!(s.contains_key(
        r#"tenantctl_tenant_transition_age_seconds{slug="busy",status="provisioning",state="running"}"#
    ));

    // Units are declared, names follow them.
    assert!(
        text.contains("# UNIT tenantctl_tenant_transition_age_seconds seconds"),
        "{text}"
    );
    assert!(
        text.contains("# TYPE tenantctl_quota_used_ratio gauge"),
        "{text}"
    );
}

#[test]
fn without_tenants_it_still_reports_and_textfile_replaces_atomically() {
    let env = TestEnv::new();
    let dir = env.dir.path().join("textfile");
    std::fs::create_dir(&dir).unwrap();
    let path = dir.join("tenantctl.prom");
    std::fs::write(&path, "stale\n").unwrap();
    let run = env
        .run(&["metrics", "--textfile", path.to_str().unwrap()])
        .expect(0);
    assert!(run.stdout.is_empty(), "{}", run.stdout);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.ends_with("# EOF\n"), "{text}");
    let s = samples(&text);
    assert_eq!(
        value(&s, r#"tenantctl_tenant_databases{schema="behind"}"#),
        0.0
    );
    assert_eq!(
        value(
            &s,
            r#"tenantctl_tenants_in_transition{status="provisioning",state="interrupted"}"#
        ),
        0.0
    );
    assert!(!text.contains("billing_last_run"), "no run yet:\n{text}");
    let (ok, said) = promtool(&text);
    assert!(ok && said.trim().is_empty(), "{said}");
    // Nothing but the file itself is left in the directory (no temporary file).
    let names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names, vec!["tenantctl.prom".to_owned()]);
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&path).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o644);

    // A directory that does not exist: exit 1, naming the file, nothing written.
    let missing = env.dir.path().join("nope/tenantctl.prom");
    let run = env
        .run(&["metrics", "--textfile", missing.to_str().unwrap()])
        .expect(1);
    assert!(run.stderr.contains("tenantctl.prom"), "{}", run.stderr);
    assert!(!Path::new(&missing).exists());
}

#[test]
fn the_documented_alert_rules_load_and_billing_not_run_fires_from_the_second() {
    let rules = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/tenantctl.rules.yml");
    let out = Command::new("promtool")
        .args(["check", "rules"])
        .arg(&rules)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    // promtool's clock starts at 1970-01-01: January billed (period start 0); the alert stays
    // quiet through February and on March 1st, and fires on March 2nd.
    let dir = tempfile::tempdir().unwrap();
    let test = dir.path().join("test.yml");
    std::fs::write(
        &test,
        format!(
            r#"rule_files:
  - {}
evaluation_interval: 1h
tests:
  - interval: 1d
    input_series:
      - series: 'tenantctl_billing_last_run_period_start_timestamp_seconds{{job="node"}}'
        values: '0x70'
    alert_rule_test:
      - eval_time: 45d
        alertname: TenantctlBillingNotRun
        exp_alerts: []
      - eval_time: 59d
        alertname: TenantctlBillingNotRun
        exp_alerts: []
      - eval_time: 60d
        alertname: TenantctlBillingNotRun
        exp_alerts:
          - exp_labels: {{severity: critical}}
            exp_annotations: {{summary: "last month has no billing run: check the bill job"}}
"#,
            rules.display()
        ),
    )
    .unwrap();
    let out = Command::new("promtool")
        .args(["test", "rules"])
        .arg(&test)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
