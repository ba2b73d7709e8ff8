//! Connecting to an operator's server (issue 9): TLS in every sslmode against a server with
//! `ssl=on` (tests/support/managed.rs), certificate authentication, the PG* variables and
//! `.pgpass`, timeouts, `init`, `doctor`, and passwords that never show.

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use crate::support::managed::{managed, ADMIN_PASSWORD};
use crate::support::{bare_cmd, Run, TestEnv};

/// `ADMIN_PASSWORD` percent-encoded for a URL.
fn pw_url() -> String {
    ADMIN_PASSWORD
        .replace('%', "%25")
        .replace(' ', "%20")
        .replace('\'', "%27")
}

/// `ADMIN_PASSWORD` quoted for a key=value string.
fn pw_kv() -> String {
    format!(
        "'{}'",
        ADMIN_PASSWORD.replace('\\', "\\\\").replace('\'', "\\'")
    )
}

/// The admin's verify-full URL to `db` on the managed server.
fn admin_url(db: &str) -> String {
    format!(
        "postgres://admin:{}@localhost:{}/{db}?sslmode=verify-full&sslrootcert={}",
        pw_url(),
        managed().port,
        managed().ca.display()
    )
}

fn run_with(env: &TestEnv, url: &str, args: &[&str]) -> Run {
    env.run_env(args, &[("TENANTCTL_DATABASE_URL", url)])
}

/// Drops `db` on the managed server when the test ends (tenant databases and roles made there
/// stay: the server is a throwaway of this test process).
struct Cleanup(String);
impl Drop for Cleanup {
    fn drop(&mut self) {
        let mut c = managed().superuser("postgres");
        let _ = c.batch_execute(&format!(
            "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
            self.0
        ));
    }
}

fn one_error_line(run: &Run) -> &str {
    let lines: Vec<&str> = run.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one line expected:\n{}", run.stderr);
    assert!(lines[0].starts_with("error: "), "{}", lines[0]);
    lines[0]
}

#[test]
fn verify_full_init_and_doctor_over_tls() {
    let env = TestEnv::bare();
    let db = format!("m_{}", env.control_db);
    let _c = Cleanup(db.clone());
    let url = admin_url(&db);

    // Any other command first: exit 2, one line naming init, nothing created.
    let run = run_with(&env, &url, &["list"]).expect(2);
    assert!(
        one_error_line(&run).contains("tenantctl init"),
        "{}",
        run.stderr
    );
    let exists = |db: &str| {
        managed()
            .superuser("postgres")
            .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&db])
            .unwrap()
            .is_some()
    };
    assert!(
        !exists(&db),
        "a command other than init created the control database"
    );

    let run = run_with(&env, &url, &["init"]).expect(0);
    assert!(
        run.stdout.contains("created control database"),
        "{}",
        run.stdout
    );
    let run = run_with(&env, &url, &["init"]).expect(0);
    assert!(run.stdout.contains("nothing to do"), "{}", run.stdout);
    run_with(&env, &url, &["list"]).expect(0);

    let run = run_with(&env, &url, &["doctor", "-o", "json"]).expect(0);
    let r = run.json();
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(r["tls"], true, "{r}");
    assert_eq!(r["sslmode"], "verify-full");
    assert_eq!(r["role"], "admin");
    assert_eq!(r["application_name"], "tenantctl");
    assert_eq!(r["control_exists"], true);
    assert!(r["pending_migrations"].as_array().unwrap().is_empty());
    let run = run_with(&env, &url, &["doctor"]).expect(0);
    assert!(run.stdout.contains("all is well"), "{}", run.stdout);
    assert!(!run.stdout.contains(ADMIN_PASSWORD) && !run.stderr.contains(ADMIN_PASSWORD));

    // require encrypts without checking the certificate: 127.0.0.1 is fine then, and so is
    // verify-ca (the chain is checked, not the name).
    for mode in ["require", "verify-ca"] {
        let url = format!(
            "host=127.0.0.1 port={} user=admin password={} dbname={db} sslmode={mode} sslrootcert={}",
            managed().port,
            pw_kv(),
            managed().ca.display()
        );
        let r = run_with(&env, &url, &["doctor", "-o", "json"])
            .expect(0)
            .json();
        assert_eq!(r["tls"], true, "{mode}: {r}");
    }
    // disable: no TLS, and doctor says so.
    let url = format!(
        "host=127.0.0.1 port={} user=admin password={} dbname={db} sslmode=disable",
        managed().port,
        pw_kv()
    );
    let r = run_with(&env, &url, &["doctor", "-o", "json"])
        .expect(0)
        .json();
    assert_eq!(r["tls"], false, "{r}");
}

#[test]
fn wrong_ca_and_wrong_host_name_are_refused() {
    let env = TestEnv::bare();
    let m = managed();
    let wrong_ca = format!(
        "postgres://admin:{}@localhost:{}/x?sslmode=verify-full&sslrootcert={}",
        pw_url(),
        m.port,
        m.wrong_ca.display()
    );
    let run = run_with(&env, &wrong_ca, &["doctor"]).expect(1);
    let line = one_error_line(&run);
    assert!(
        line.contains("certificate was refused")
            && line.contains("self-signed certificate in certificate chain"),
        "{line}"
    );
    // Only the named root counts, as with libpq: roots OpenSSL would take from its defaults
    // (here SSL_CERT_FILE naming the server's real CA) do not widen it.
    let ca = m.ca.to_str().unwrap();
    let run = env
        .run_env(
            &["doctor"],
            &[
                ("TENANTCTL_DATABASE_URL", wrong_ca.as_str()),
                ("SSL_CERT_FILE", ca),
            ],
        )
        .expect(1);
    assert!(
        one_error_line(&run).contains("certificate was refused"),
        "{}",
        run.stderr
    );
    assert!(
        !line.contains(ADMIN_PASSWORD) && !line.contains(&pw_url()),
        "{line}"
    );

    // The server's certificate names localhost only.
    let wrong_host = format!(
        "postgres://admin:{}@127.0.0.1:{}/x?sslmode=verify-full&sslrootcert={}",
        pw_url(),
        m.port,
        m.ca.display()
    );
    let run = run_with(&env, &wrong_host, &["doctor"]).expect(1);
    let line = one_error_line(&run);
    assert!(
        line.contains("certificate was refused") && line.contains("IP address mismatch"),
        "{line}"
    );

    // verify-full without any root certificate is a configuration error.
    let run = run_with(
        &env,
        &format!(
            "host=localhost port={} user=admin sslmode=verify-full",
            m.port
        ),
        &["doctor"],
    )
    .expect(2);
    assert!(
        one_error_line(&run).contains("sslrootcert"),
        "{}",
        run.stderr
    );
}

/// `sslrootcert=system` trusts what the system trusts, found where distributions keep it (with
/// OpenSSL built into tenantctl, not in OpenSSL's compiled-in directory): the test CA is no
/// system root, so verify-full is refused; named by `SSL_CERT_FILE`, as OpenSSL's users expect,
/// it is trusted.
#[test]
fn sslrootcert_system_trusts_the_systems_roots() {
    let env = TestEnv::bare();
    let m = managed();
    let url = format!(
        "postgres://admin:{}@localhost:{}/postgres?sslmode=verify-full&sslrootcert=system",
        pw_url(),
        m.port
    );
    let run = run_with(&env, &url, &["doctor"]).expect(1);
    assert!(
        one_error_line(&run).contains("certificate was refused"),
        "{}",
        run.stderr
    );
    let ca = m.ca.to_str().unwrap();
    let run = env
        .run_env(
            &["doctor", "-o", "json"],
            &[
                ("TENANTCTL_DATABASE_URL", url.as_str()),
                ("SSL_CERT_FILE", ca),
            ],
        )
        .expect(1);
    let r = run.json();
    assert_eq!(r["tls"], true, "{r}");
    assert_eq!(r["sslmode"], "verify-full", "{r}");
}

#[test]
fn certificate_authentication() {
    let env = TestEnv::bare();
    let m = managed();
    let db = format!("c_{}", env.control_db);
    let _c = Cleanup(db.clone());
    let base = m.kv(
        "localhost",
        "certuser",
        &db,
        &format!("sslmode=verify-full sslrootcert={}", m.ca.display()),
    );
    let with_cert = format!(
        "{base} sslcert={} sslkey={}",
        m.client_cert.display(),
        m.client_key.display()
    );
    run_with(&env, &with_cert, &["init", "-q"]).expect(0);
    let r = run_with(&env, &with_cert, &["doctor", "-o", "json"])
        .expect(0)
        .json();
    assert_eq!(r["role"], "certuser", "{r}");
    // Without the certificate pg_hba's `cert` line refuses.
    let run = run_with(&env, &base, &["list"]).expect(1);
    assert!(run.stderr.contains("certificate"), "{}", run.stderr);
}

#[test]
fn pg_variables_and_pgpass() {
    let env = TestEnv::bare();
    let m = managed();
    let db = format!("p_{}", env.control_db);
    let _c = Cleanup(db.clone());
    let port = m.port.to_string();
    let ca = m.ca.display().to_string();
    let pg = |extra: &[(&str, &str)], args: &[&str]| -> Run {
        let mut cmd = env.cmd();
        cmd.env_remove("TENANTCTL_DATABASE_URL")
            .env("PGHOST", "localhost")
            .env("PGPORT", &port)
            .env("PGUSER", "admin")
            .env("PGDATABASE", &db)
            .env("PGSSLMODE", "verify-full")
            .env("PGSSLROOTCERT", &ca)
            .env("PGPASSFILE", "/nonexistent");
        for (k, v) in extra {
            cmd.env(k, v);
        }
        let out = cmd.args(args).output().unwrap();
        Run {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    };
    // PG* set and no URL: the external server they describe, with PGPASSWORD.
    pg(&[("PGPASSWORD", ADMIN_PASSWORD)], &["init", "-q"]).expect(0);
    let r = pg(&[("PGPASSWORD", ADMIN_PASSWORD)], &["doctor", "-o", "json"])
        .expect(0)
        .json();
    assert_eq!(r["tls"], true);
    // PGPASSWORD fills a URL that has no password; the URL's host beats PGHOST.
    let run = pg(
        &[
            ("PGPASSWORD", ADMIN_PASSWORD),
            ("PGHOST", "/nonexistent"),
            (
                "TENANTCTL_DATABASE_URL",
                &format!("postgres://admin@localhost:{port}/{db}"),
            ),
        ],
        &["list"],
    );
    run.expect(0);

    // .pgpass, 0600: used.
    let passfile = env.dir.path().join("pgpass");
    std::fs::write(
        &passfile,
        format!(
            "localhost:{port}:*:admin:{}\n",
            ADMIN_PASSWORD.replace(':', "\\:")
        ),
    )
    .unwrap();
    std::fs::set_permissions(&passfile, std::fs::Permissions::from_mode(0o600)).unwrap();
    let pf = passfile.display().to_string();
    let run = pg(&[("PGPASSFILE", &pf)], &["list"]).expect(0);
    assert!(!run.stderr.contains("warning"), "{}", run.stderr);
    // 0644: ignored with libpq's warning, so no password and the login fails.
    std::fs::set_permissions(&passfile, std::fs::Permissions::from_mode(0o644)).unwrap();
    let run = pg(&[("PGPASSFILE", &pf)], &["list"]).expect(1);
    assert!(
        run.stderr.contains("has group or world access") && run.stderr.contains("0600"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains(ADMIN_PASSWORD), "{}", run.stderr);
}

#[test]
fn a_server_that_never_answers_times_out() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    // Accept and hold every connection, never writing a byte.
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in listener.incoming() {
            held.push(s);
        }
    });
    let run = move |timeout: Option<u64>| {
        let mut url = format!("host=127.0.0.1 port={port} user=x password=s3cret sslmode=disable");
        if let Some(t) = timeout {
            url.push_str(&format!(" connect_timeout={t}"));
        }
        let started = Instant::now();
        let out = bare_cmd()
            .args(["list", "--database-url", &url])
            .output()
            .unwrap();
        (out, started.elapsed())
    };
    let short = std::thread::spawn(move || run(Some(2)));
    let (out, took) = run(None);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no answer within 10 s"), "{stderr}");
    assert!(!stderr.contains("s3cret"), "{stderr}");
    assert!(took < Duration::from_secs(11), "took {took:?}");
    assert!(took >= Duration::from_secs(10), "took {took:?}");
    let (out, took) = short.join().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no answer within 2 s"));
    assert!(took < Duration::from_secs(3), "took {took:?}");
}

#[test]
fn a_typo_in_the_database_name_creates_nothing() {
    let env = TestEnv::bare();
    let run = env.run(&["list"]).expect(2);
    assert!(
        one_error_line(&run).contains("run `tenantctl init`"),
        "{}",
        run.stderr
    );
    assert!(!env.database_exists(&env.control_db));
    // An existing database without the control schema is not taken over either.
    let url = crate::support::cluster().url("postgres");
    let run = run_with(&env, &url, &["list"]).expect(2);
    assert!(
        one_error_line(&run).contains("no tenantctl control schema"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_newer_control_schema_is_refused() {
    let env = TestEnv::new();
    env.control()
        .batch_execute(
            "INSERT INTO refinery_schema_history (version, name, applied_on, checksum) \
             VALUES (9999, 'future', now()::text, '0')",
        )
        .unwrap();
    for args in [&["list"][..], &["init"][..]] {
        let run = env.run(args).expect(3);
        assert!(
            one_error_line(&run).contains("newer than this tenantctl"),
            "{}",
            run.stderr
        );
    }
}

#[test]
fn doctor_lists_each_missing_privilege_with_its_grant() {
    let env = TestEnv::bare();
    let m = managed();
    let url = format!(
        "{} password=weakpw",
        m.kv(
            "localhost",
            "weak",
            "nodb",
            &format!("sslmode=verify-full sslrootcert={}", m.ca.display())
        )
    );
    let run = run_with(&env, &url, &["doctor"]).expect(1);
    assert!(
        run.stdout.contains("ALTER ROLE \"weak\" CREATEDB;"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("ALTER ROLE \"weak\" CREATEROLE;"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("run `tenantctl init`"),
        "{}",
        run.stdout
    );
    let r = run_with(&env, &url, &["doctor", "-o", "json"])
        .expect(1)
        .json();
    assert_eq!(r["ok"], false);
    let missing: Vec<&str> = r["privileges"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["held"] == false)
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(missing, ["CREATEDB", "CREATEROLE"]);
}

/// Issue 8 §6: a password in any form of connection string never shows, on any path.
#[test]
fn passwords_never_show_in_any_form_or_path() {
    let env = TestEnv::bare();
    let m = managed();
    let secret = "s3cret";
    let forms: Vec<(String, Vec<(&str, String)>)> = vec![
        (format!("postgres://admin:{secret}@127.0.0.1:1/x"), vec![]),
        (
            format!("postgres://admin:{secret}@127.0.0.1:notaport/x"),
            vec![],
        ),
        (
            format!("postgresql://admin@127.0.0.1:1/x?password={secret}&sslmode=disable"),
            vec![],
        ),
        (format!("host=127.0.0.1 port=1 password = {secret}"), vec![]),
        (
            format!("host=127.0.0.1 port=1 password='{secret} with spaces'"),
            vec![],
        ),
        (
            format!("host=127.0.0.1 port=1 password='{secret}\\' quoted' user=admin"),
            vec![],
        ),
        (
            format!("host=127.0.0.1 port=notaport password = {secret}"),
            vec![],
        ),
        (
            format!("host=127.0.0.1 password='{secret} unterminated"),
            vec![],
        ),
        (
            format!("host=127.0.0.1 bogus_key=1 password={secret}"),
            vec![],
        ),
        (
            format!("host=127.0.0.1 sslmode=sometimes password={secret}"),
            vec![],
        ),
        // Unreachable host name.
        (
            format!("postgres://admin:{secret}@nonexistent.invalid/x"),
            vec![],
        ),
        // Authentication failure on the real server, in each form.
        (
            format!(
                "postgres://admin:{secret}@localhost:{}/x?sslmode=require",
                m.port
            ),
            vec![],
        ),
        (
            format!(
                "host=localhost port={} user=admin password='{secret} x' sslmode=require",
                m.port
            ),
            vec![],
        ),
        (
            format!("host=localhost port={} user=admin sslmode=require", m.port),
            vec![("PGPASSWORD", secret.to_owned())],
        ),
    ];
    for (url, env_vars) in &forms {
        for args in [&["list"][..], &["doctor", "-o", "json"][..], &["init"][..]] {
            let mut cmd = env.cmd();
            cmd.env("TENANTCTL_DATABASE_URL", url);
            for (k, v) in env_vars {
                cmd.env(k, v);
            }
            let out = cmd.args(args).output().unwrap();
            let (stdout, stderr) = (
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr),
            );
            assert!(
                matches!(out.status.code(), Some(1) | Some(2)),
                "{url}: {stderr}"
            );
            assert!(
                !stdout.contains(secret) && !stderr.contains(secret),
                "password shown for `{url}` {args:?}:\n{stdout}\n{stderr}"
            );
            assert!(stderr.starts_with("error: "), "{url}: {stderr}");
        }
    }
}

/// Issue 9 item 7: a siloed tenant's login password, stored only as a SCRAM verifier, shown
/// once as a ready URL that works; refused again without --rotate; pooled tenants are told
/// how to connect; not for tenants that are not active.
#[test]
fn credentials_give_a_working_url_once() {
    let env = TestEnv::bare();
    let m = managed();
    let db = format!("k_{}", env.control_db);
    let _c = Cleanup(db.clone());
    let url = admin_url(&db);
    let role = env.silo("acme");
    run_with(&env, &url, &["init", "-q"]).expect(0);
    let pw_file = env.dir.path().join("owner");
    let pw = pw_file.to_str().unwrap();
    run_with(
        &env,
        &url,
        &[
            "provision",
            "acme",
            "--tier",
            "premium",
            "-q",
            "--password-file",
            pw,
        ],
    )
    .expect(0);
    run_with(
        &env,
        &url,
        &[
            "provision",
            "bob",
            "--tier",
            "free",
            "-q",
            "--password-file",
            pw,
        ],
    )
    .expect(0);

    let run = run_with(&env, &url, &["credentials", "acme", "-o", "json"]).expect(0);
    let line = run
        .stderr
        .lines()
        .find(|l| l.contains("connects with"))
        .unwrap_or_else(|| panic!("no URL shown:\n{}", run.stderr));
    let tenant_url = line
        .split_whitespace()
        .find(|w| w.starts_with("postgresql://"))
        .unwrap();
    assert!(tenant_url.contains("sslmode=verify-full"), "{tenant_url}");
    let password = tenant_url
        .split_once("://")
        .unwrap()
        .1
        .split_once('@')
        .unwrap()
        .0
        .split_once(':')
        .unwrap()
        .1
        .to_owned();
    let v = run.json();
    assert_eq!(v["issued"], true);
    assert!(!run.stdout.contains(&password));
    // The server stores a SCRAM verifier, and the password logs in.
    let stored: String = m
        .superuser("postgres")
        .query_one(
            "SELECT rolpassword FROM pg_authid WHERE rolname = $1",
            &[&role],
        )
        .unwrap()
        .get(0);
    assert!(stored.starts_with("SCRAM-SHA-256$"), "{stored}");
    let login = |pw: &str| {
        postgres::Client::connect(
            &format!(
                "host=localhost port={} user={role} dbname={role} password={pw} sslmode=disable",
                m.port
            ),
            postgres::NoTls,
        )
    };
    login(&password).expect("the shown password logs in");
    // Audited, without the password.
    let audit = run_with(&env, &url, &["audit", "acme", "-o", "json"])
        .expect(0)
        .stdout;
    assert!(
        audit.contains("credentials") && !audit.contains(&password),
        "{audit}"
    );

    // Again: refused without --rotate; --rotate replaces it (the old one stops working).
    run_with(&env, &url, &["credentials", "acme"]).expect(3);
    let file = env.dir.path().join("acme.url");
    run_with(
        &env,
        &url,
        &[
            "credentials",
            "acme",
            "--rotate",
            "--valid-until",
            "2099-01-01",
            "--password-file",
            file.to_str().unwrap(),
        ],
    )
    .expect(0);
    assert!(login(&password).is_err(), "the old password still logs in");
    let written = std::fs::read_to_string(&file).unwrap();
    assert!(written.starts_with("postgresql://"), "{written}");
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600
    );

    // Pooled: how to connect, nothing changed.
    let run = run_with(&env, &url, &["credentials", "bob"]).expect(0);
    assert!(run.stdout.contains("app.tenant_id"), "{}", run.stdout);
    // Not active: refused.
    run_with(&env, &url, &["suspend", "acme", "-q"]).expect(0);
    run_with(&env, &url, &["credentials", "acme", "--rotate"]).expect(3);
    run_with(
        &env,
        &url,
        &["credentials", "acme", "--valid-until", "2001-01-01"],
    )
    .expect(2);
}

/// Issue 9's "done when": an operator with only an RDS-style admin URL (`sslmode=verify-full`,
/// a role with LOGIN CREATEDB CREATEROLE and nothing else, scram-sha-256 over TCP) runs init,
/// doctor, every lifecycle command, usage, bill, migrate and credentials.
#[test]
fn an_rds_style_admin_runs_every_command_over_verify_full() {
    let env = TestEnv::bare();
    let db = format!("m_{}", env.control_db);
    let _c = Cleanup(db.clone());
    let url = admin_url(&db);
    let run = |args: &[&str], code: i32| run_with(&env, &url, args).expect(code);
    let attrs: (bool, bool, bool) = {
        let row = managed()
            .superuser("postgres")
            .query_one(
                "SELECT rolsuper, rolbypassrls, rolcreaterole FROM pg_roles WHERE rolname = 'admin'",
                &[],
            )
            .unwrap();
        (row.get(0), row.get(1), row.get(2))
    };
    assert_eq!(attrs, (false, false, true), "the admin is least-privilege");

    run(&["init", "-q"], 0);
    assert_eq!(run(&["doctor", "-o", "json"], 0).json()["ok"], true);
    for (slug, tier) in [("acme", "premium"), ("freeco", "free")] {
        run(
            &[
                "provision",
                slug,
                "--tier",
                tier,
                "-q",
                "--password-file",
                "/dev/null",
            ],
            0,
        );
    }
    run(
        &[
            "usage",
            "record",
            "acme",
            "api_requests",
            "5",
            "--key",
            "k1",
        ],
        0,
    );
    run(&["quota", "check", "freeco", "users"], 3); // the owner fills free's one user
    run(&["usage", "refresh"], 0);
    run(&["suspend", "acme", "--reason", "unpaid"], 0);
    run(&["resume", "acme"], 0);
    run(&["deprovision", "freeco"], 0);
    run(&["restore", "freeco"], 0);
    run(&["migrate", "-q"], 0);
    run(&["bill", "--dry-run", "-o", "json"], 0);
    let creds = run(&["credentials", "acme", "-o", "json"], 0).json();
    assert_eq!(
        (&creds["issued"], &creds["sslmode"]),
        (&true.into(), &"verify-full".into()),
        "{creds}"
    );
    run(&["deprovision", "acme", "--purge", "--yes"], 0);
    let silo = format!("{}acme", env.prefix);
    let gone = managed()
        .superuser("postgres")
        .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&silo])
        .unwrap()
        .is_none();
    assert!(gone, "purge dropped {silo} as the least-privilege admin");
    let v = run(&["list", "-o", "json"], 0).json();
    assert_eq!(v.as_array().unwrap().len(), 1, "{v}");
}

/// A pooled tenant's application is told to set its context for the transaction only
/// (`set_config(..., true)`): a session-wide setting outlives the request on a pooled
/// connection, and the next tenant served on it would read this tenant's rows.
#[test]
fn pooled_credentials_scope_the_tenant_context_to_a_transaction() {
    let env = TestEnv::new();
    env.provision("bob", "free");
    let run = env.run(&["credentials", "bob", "-o", "json"]).expect(0);
    let ctx = run.json()["tenant_context"].as_str().unwrap().to_owned();
    assert!(ctx.ends_with("', true)"), "{ctx}");
    let run = env.run(&["credentials", "bob"]).expect(0);
    assert!(run.stdout.contains("every transaction"), "{}", run.stdout);
    assert!(!run.stdout.contains("', false)"), "{}", run.stdout);
}

/// Mistyped but plausible strings whose parse would cut a password into something that gets
/// quoted: an SQL-style doubled quote, text glued after the closing quote, an unencoded `&` in
/// a `?password=` parameter, a URL with `user:password` but the `@host` forgotten. Refused as
/// bad input (exit 2), one line, quoting no piece of the password.
#[test]
fn mistyped_passwords_are_never_quoted_in_the_error() {
    let env = TestEnv::bare();
    let secret = "s3cret";
    for url in [
        format!("host=127.0.0.1 port=1 password='it''{secret}'"),
        format!("host=127.0.0.1 port=1 password='ab'{secret} user=x"),
        format!("postgres://127.0.0.1:1/x?user=a&password=ab&{secret}"),
        format!("postgres://127.0.0.1:1/x?password=ab&{secret}=1"),
        format!("postgres://admin:{secret}/x"),
    ] {
        let run = run_with(&env, &url, &["list"]).expect(2);
        assert!(
            !run.stderr.contains(secret) && !run.stdout.contains(secret),
            "password shown for `{url}`:\n{}",
            run.stderr
        );
        assert_eq!(run.stderr.lines().count(), 1, "{url}: {}", run.stderr);
    }
    // Still accepted: a known key after the password.
    let run = run_with(
        &env,
        "postgres://127.0.0.1:1/x?password=ab&connect_timeout=2",
        &["list"],
    )
    .expect(1);
    assert!(run.stderr.contains("connecting"), "{}", run.stderr);
}

/// `init` pointed at an application's database (a PGDATABASE left set, a URL pasted from the
/// application's configuration) refuses before installing anything beside its tables; an
/// empty database created beforehand, as managed services have it done, is fine.
#[test]
fn init_never_installs_the_control_schema_beside_an_applications_tables() {
    let env = TestEnv::bare();
    let role = env.admin_role.clone().unwrap();
    let app = format!("{}_app", env.control_db);
    let empty = format!("{}_empty", env.control_db);
    for db in [&app, &empty] {
        env.admin("postgres")
            .batch_execute(&format!("CREATE DATABASE \"{db}\" OWNER \"{role}\""))
            .unwrap();
    }
    env.admin(&app)
        .batch_execute("CREATE TABLE orders (id int); INSERT INTO orders VALUES (1)")
        .unwrap();

    let run = env
        .run_env(&["init"], &[("TENANTCTL_DATABASE_URL", &env.url(&app))])
        .expect(3);
    assert!(run.stderr.contains("not tenantctl's"), "{}", run.stderr);
    assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
    let installed: bool = env
        .admin(&app)
        .query_one(
            "SELECT to_regclass('public.tenants') IS NOT NULL
                 OR to_regclass('public.refinery_schema_history') IS NOT NULL",
            &[],
        )
        .unwrap()
        .get(0);
    assert!(!installed);

    env.run_env(
        &["init", "-q"],
        &[("TENANTCTL_DATABASE_URL", &env.url(&empty))],
    )
    .expect(0);
    // And again, once it is the control database.
    env.run_env(
        &["init", "-q"],
        &[("TENANTCTL_DATABASE_URL", &env.url(&empty))],
    )
    .expect(0);
    for db in [&app, &empty] {
        env.admin("postgres")
            .batch_execute(&format!("DROP DATABASE \"{db}\""))
            .unwrap();
    }
}
