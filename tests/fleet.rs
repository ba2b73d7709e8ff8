//! The fleet (issue 11): three servers (the control database's own `main` and the throwaway
//! `s2` and `s3` of `support::fleet`), placement by capacity and load, `--server`, draining, a
//! full fleet refused before anything exists, removing servers, `server add`'s checks (no
//! password stored, privileges, the same cluster twice), passwords from the config file and
//! `.pgpass`, and a server that cannot be reached during fleet-wide commands.

use serde_json::Value;

use crate::support::{managed, TestEnv};

fn server_of(env: &TestEnv, slug: &str) -> String {
    env.run(&["show", slug, "-o", "json"]).expect(0).json()["server"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn provision_args<'a>(slug: &'a str, tier: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut argv = vec![
        "provision",
        slug,
        "--tier",
        tier,
        "-q",
        "--password-file",
        "/dev/null",
    ];
    argv.extend_from_slice(extra);
    argv
}

/// Whether database `db` exists on server `server` of the test fleet.
fn exists_on(env: &TestEnv, server: &str, db: &str) -> bool {
    match server {
        "main" => env.database_exists(db),
        other => env.extra(other).database_exists(db),
    }
}

fn servers(env: &TestEnv) -> Value {
    env.run(&["server", "list", "-o", "json"]).expect(0).json()
}

fn server<'a>(list: &'a Value, name: &str) -> &'a Value {
    list.as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no server {name}: {list}"))
}

#[test]
fn the_control_server_is_registered_and_existing_tenants_are_on_it() {
    let env = TestEnv::new();
    env.provision("acme", "premium");
    env.provision("tiny", "free");
    let list = servers(&env);
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    let main = server(&list, "main");
    assert_eq!(main["control"], true);
    assert_eq!(main["pooled"], true);
    assert_eq!(main["capacity"], 2000);
    assert_eq!(main["capacity_left"], 1999);
    assert_eq!(main["tenants"], 2);
    assert_eq!(main["siloed_tenants"], 1);
    assert_eq!(main["pooled_tenants"], 1);
    assert_eq!(main["databases"], 3); // the silo, the pooled database and the silo template
    assert!(main["bytes"].as_i64().unwrap() > 1_000_000);
    assert_eq!(main["reachable"], true);
    assert_eq!(server_of(&env, "acme"), "main");
    assert_eq!(server_of(&env, "tiny"), "main");
    // The control server's URL is not stored: it is the configured connection.
    let stored: Option<String> = env
        .control()
        .query_one("SELECT url FROM servers WHERE name = 'main'", &[])
        .unwrap()
        .get(0);
    assert_eq!(stored, None);
}

#[test]
fn siloed_tenants_go_where_most_capacity_is_left_and_a_full_fleet_creates_nothing() {
    let env = TestEnv::new();
    env.run(&["server", "set", "main", "--capacity", "3", "-q"])
        .expect(0);
    env.add_server("s2", &["--capacity", "3"]);
    env.add_server("s3", &["--capacity", "2"]);
    // Left: main 3, s2 3, s3 2; each tenant goes to the most left, ties by name.
    let expected = ["main", "s2", "main", "s2", "s3", "main", "s2", "s3"];
    for (i, want) in expected.iter().enumerate() {
        let slug = format!("silo{i}");
        let run = env
            .run(&provision_args(&slug, "premium", &["-o", "json"]))
            .expect(0);
        assert_eq!(run.json()["tenant"]["server"], *want, "{slug}");
        assert_eq!(server_of(&env, &slug), *want);
        assert!(exists_on(&env, want, &env.silo(&slug)), "{slug} on {want}");
        for other in ["main", "s2", "s3"].iter().filter(|o| *o != want) {
            assert!(!exists_on(&env, other, &env.silo(&slug)));
        }
    }
    // The status line says where it went.
    let list = servers(&env);
    for name in ["main", "s2", "s3"] {
        assert_eq!(server(&list, name)["capacity_left"], 0, "{list}");
    }
    // Full: refused before step 1, nothing recorded or created anywhere.
    let run = env
        .run(&provision_args("onemore", "premium", &[]))
        .expect(3);
    assert!(
        run.stderr
            .contains("no server can take a new siloed tenant"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("main is full (3 of 3 siloed tenants)"));
    assert!(run.stderr.contains("nothing was created"));
    env.run(&["show", "onemore"]).expect(3);
    for name in ["main", "s2", "s3"] {
        assert!(!exists_on(&env, name, &env.silo("onemore")));
    }
    // Pooled tenants do not count against capacity: main's pooled database still takes them.
    env.provision("tiny", "free");
    assert_eq!(server_of(&env, "tiny"), "main");
    // More capacity makes room again.
    env.run(&["server", "set", "s3", "--capacity", "5", "-q"])
        .expect(0);
    env.provision("onemore", "premium");
    assert_eq!(server_of(&env, "onemore"), "s3");
}

#[test]
fn pooled_tenants_go_to_the_least_loaded_pooled_server() {
    let env = TestEnv::new();
    env.add_server("s2", &[]); // not pooled
    env.add_server("s3", &["--pooled"]);
    let mut placed = Vec::new();
    for i in 0..4 {
        let slug = format!("free{i}");
        let run = env.run(&provision_args(&slug, "free", &[])).expect(0);
        let on = server_of(&env, &slug);
        assert!(
            run.stderr.is_empty(),
            "quiet: no status line: {}",
            run.stderr
        );
        placed.push(on);
    }
    assert_eq!(placed, ["main", "s3", "main", "s3"]);
    // Each pooled server has its own pooled database, with its own tenants' rows.
    assert!(env.extra("s3").database_exists(&env.pooled_db()));
    assert!(!env.extra("s2").database_exists(&env.pooled_db()));
    let t1: uuid::Uuid = env
        .control()
        .query_one("SELECT id FROM tenants WHERE slug = 'free1'", &[])
        .unwrap()
        .get(0);
    let mut s3 = env.extra("s3").superuser(&env.pooled_db());
    let owners: i64 = s3
        .query_one("SELECT count(*) FROM users WHERE tenant_id = $1", &[&t1])
        .unwrap()
        .get(0);
    assert_eq!(owners, 1);
    let list = servers(&env);
    assert_eq!(server(&list, "s3")["pooled_tenants"], 2);
    assert_eq!(server(&list, "s3")["databases"], 1);
    // A pooled tenant on s3 is suspended and resumed there, its rows hidden by the policy.
    env.run(&["suspend", "free1", "-q"]).expect(0);
    env.run(&["resume", "free1", "-q"]).expect(0);
    // With no pooled server left that takes new tenants, a pooled tenant is refused.
    env.run(&["server", "drain", "main", "-q"]).expect(0);
    env.run(&["server", "drain", "s3", "-q"]).expect(0);
    let run = env.run(&provision_args("free9", "free", &[])).expect(3);
    assert!(
        run.stderr.contains("s2 takes no pooled tenants"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("main is draining"), "{}", run.stderr);
}

#[test]
fn server_flag_draining_and_tiers() {
    let env = TestEnv::new();
    env.add_server("s2", &["--tier", "premium,enterprise"]);
    // --server overrides the rule (main has as much left, and comes first by name).
    let run = env
        .run(&provision_args("pinned", "premium", &["--server", "s2"]))
        .expect(0);
    assert!(run.stderr.is_empty());
    assert_eq!(server_of(&env, "pinned"), "s2");
    assert!(env.extra("s2").database_exists(&env.silo("pinned")));
    // A status line (without -q) says where the tenant goes: main, with one more place left.
    let run = env
        .run(&[
            "provision",
            "spoken",
            "--tier",
            "premium",
            "--password-file",
            "/dev/null",
        ])
        .expect(0);
    assert!(
        run.stderr
            .contains("placing tenant `spoken` on server `main`"),
        "{}",
        run.stderr
    );
    // s2 does not take the free tier, nor pooled tenants.
    let run = env
        .run(&provision_args("nofree", "free", &["--server", "s2"]))
        .expect(3);
    assert!(
        run.stderr.contains("s2 does not take tier `free`"),
        "{}",
        run.stderr
    );
    // Draining: no new tenant, by the rule or by --server; its tenants stay and work.
    env.run(&["server", "drain", "s2", "-q"]).expect(0);
    let again = env.run(&["server", "drain", "s2"]).expect(0);
    assert!(again.stderr.contains("already"), "{}", again.stderr);
    let run = env
        .run(&provision_args("late", "premium", &["--server", "s2"]))
        .expect(3);
    assert!(run.stderr.contains("s2 is draining"), "{}", run.stderr);
    env.run(&["show", "late"]).expect(3);
    env.provision("elsewhere", "premium");
    assert_eq!(server_of(&env, "elsewhere"), "main");
    env.run(&["suspend", "pinned", "-q"]).expect(0);
    env.run(&["resume", "pinned", "-q"]).expect(0);
    env.run(&["server", "undrain", "s2", "-q"]).expect(0);
    // main now holds two silos, s2 one: s2 has more left.
    env.provision("back", "premium");
    assert_eq!(server_of(&env, "back"), "s2");
    // An unknown server, and a re-run of an active tenant naming another server.
    let run = env
        .run(&provision_args("ghost", "premium", &["--server", "nope"]))
        .expect(3);
    assert!(run.stderr.contains("no server `nope`"), "{}", run.stderr);
    let run = env
        .run(&provision_args("pinned", "premium", &["--server", "main"]))
        .expect(3);
    assert!(run.stderr.contains("on server `s2`"), "{}", run.stderr);
    // The drain and undrain are audited, with no tenant.
    let audit = env.run(&["audit", "-o", "json"]).expect(0).json();
    let actions: Vec<&str> = audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["slug"].is_null())
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["server.add", "server.drain", "server.undrain"]);
}

#[test]
fn only_an_empty_server_is_removed_never_the_control_one() {
    let env = TestEnv::new();
    env.add_server("s2", &[]);
    env.run(&provision_args("tenant", "premium", &["--server", "s2"]))
        .expect(0);
    env.run(&["deprovision", "tenant", "-q"]).expect(0);
    let run = env.run(&["server", "remove", "s2"]).expect(3);
    assert!(
        run.stderr.contains("still holds 1 tenant"),
        "{}",
        run.stderr
    );
    assert_eq!(servers(&env).as_array().unwrap().len(), 2);
    env.run(&["deprovision", "tenant", "--purge", "--yes", "-q"])
        .expect(0);
    assert!(!env.extra("s2").database_exists(&env.silo("tenant")));
    // The silo template the tenant was copied from goes with the server, nothing else.
    assert!(env.extra("s2").database_exists(&env.template_db()));
    let run = env.run(&["server", "remove", "s2", "-o", "json"]).expect(0);
    assert_eq!(run.json()["removed"], true);
    assert!(!env.extra("s2").database_exists(&env.template_db()));
    assert_eq!(servers(&env).as_array().unwrap().len(), 1);
    let run = env.run(&["server", "remove", "main"]).expect(3);
    assert!(run.stderr.contains("cannot be removed"), "{}", run.stderr);
    env.run(&["server", "remove", "s2"]).expect(3);
    // Removed, it can be added again.
    env.add_server("s2", &[]);
}

#[test]
fn server_add_checks_the_url_the_privileges_and_the_cluster() {
    let env = TestEnv::new();
    let url = env.server_url("s2");
    // A password is refused and never echoed, in either form.
    for with_password in [
        format!("{url} password=hunter2secret"),
        format!(
            "postgresql://admin:hunter2secret@localhost/postgres?host={}",
            env.extra("s2").socket.display()
        ),
    ] {
        let run = env.run(&["server", "add", "s2", &with_password]).expect(2);
        assert!(run.stderr.contains("carries a password"), "{}", run.stderr);
        assert!(!run.stderr.contains("hunter2secret"));
    }
    // Unreachable: exit 1, nothing registered.
    let run = env
        .run(&[
            "server",
            "add",
            "s2",
            "host=/nonexistent/tenantctl-socket user=x dbname=postgres",
        ])
        .expect(1);
    assert!(run.stderr.contains("error:"), "{}", run.stderr);
    // A role without CREATEDB CREATEROLE: refused naming what to grant.
    let weak = format!("weak{}", env.control_db.trim_start_matches("ctl"));
    env.extra("s2")
        .superuser("postgres")
        .batch_execute(&format!("CREATE ROLE \"{weak}\" LOGIN"))
        .unwrap();
    let run = env
        .run(&[
            "server",
            "add",
            "s2",
            &env.extra("s2").url(&weak, "postgres"),
        ])
        .expect(3);
    env.extra("s2")
        .superuser("postgres")
        .batch_execute(&format!("DROP ROLE \"{weak}\""))
        .unwrap();
    assert!(run.stderr.contains("ALTER ROLE"), "{}", run.stderr);
    assert!(run.stderr.contains("CREATEDB"), "{}", run.stderr);
    // The control database's own cluster under another name: refused.
    let again = crate::support::cluster().url("postgres");
    let again = match &env.admin_role {
        Some(r) => format!("{again} user={r}"),
        None => again,
    };
    let run = env.run(&["server", "add", "again", &again]).expect(3);
    assert!(run.stderr.contains("of server `main`"), "{}", run.stderr);
    // A template as the admin database: refused.
    let run = env
        .run(&[
            "server",
            "add",
            "s2",
            &url.replace("dbname=postgres", "dbname=template1"),
        ])
        .expect(2);
    assert!(run.stderr.contains("template"), "{}", run.stderr);
    assert_eq!(servers(&env).as_array().unwrap().len(), 1);
    // Accepted; the same name or the same cluster again is refused.
    let added = env
        .run(&["server", "add", "s2", &url, "--capacity", "7", "-o", "json"])
        .expect(0)
        .json();
    assert_eq!(added["name"], "s2");
    assert_eq!(added["capacity"], 7);
    assert_eq!(added["control"], false);
    env.run(&["server", "add", "s2", &url]).expect(3);
    let run = env.run(&["server", "add", "other", &url]).expect(3);
    assert!(run.stderr.contains("of server `s2`"), "{}", run.stderr);
}

/// A server reached over TCP with a password (the managed test server, scram-sha-256 over
/// TLS): the password comes from the config file's `password_env`, `password_file`, or
/// `.pgpass`, and is stored nowhere in the control database.
#[test]
fn passwords_come_from_the_config_file_or_pgpass_and_are_never_stored() {
    let env = TestEnv::new();
    let m = managed::managed();
    let url = m.kv("127.0.0.1", "admin", "postgres", "sslmode=require");
    let config = env.dir.path().join("tenantctl.toml");
    // No password anywhere: the server refuses the connection; exit 1, nothing stored.
    let run = env.run(&["server", "add", "cloud", &url]).expect(1);
    assert!(!run.stderr.contains(managed::ADMIN_PASSWORD));
    // From an environment variable named in the config file.
    std::fs::write(
        &config,
        "[servers.cloud]\npassword_env = \"CLOUD_DB_PASSWORD\"\n",
    )
    .unwrap();
    let with_env = [("CLOUD_DB_PASSWORD", managed::ADMIN_PASSWORD)];
    let run = env.run_env(&["server", "add", "cloud", &url, "-q"], &with_env);
    run.expect(0);
    let run = env
        .run_env(
            &provision_args("remote", "premium", &["--server", "cloud"]),
            &with_env,
        )
        .expect(0);
    assert!(run.stderr.is_empty(), "{}", run.stderr);
    assert_eq!(server_of(&env, "remote"), "cloud");
    let exists: bool = m
        .superuser("postgres")
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)",
            &[&env.silo("remote")],
        )
        .unwrap()
        .get(0);
    assert!(exists);
    // Without the variable, a command that needs the server says where the password comes from.
    let run = env.run(&["suspend", "remote"]).expect(2);
    assert!(run.stderr.contains("CLOUD_DB_PASSWORD"), "{}", run.stderr);
    // From a password file (0600), and from .pgpass (PGPASSFILE) without a [servers] section.
    let pwfile = env.dir.path().join("cloud.password");
    std::fs::write(&pwfile, format!("{}\n", managed::ADMIN_PASSWORD)).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&pwfile, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::write(
        &config,
        "[servers.cloud]\npassword_file = \"cloud.password\"\n",
    )
    .unwrap();
    env.run(&["suspend", "remote", "-q"]).expect(0);
    std::fs::remove_file(&config).unwrap();
    let pgpass = env.dir.path().join("pgpass");
    std::fs::write(
        &pgpass,
        format!(
            "127.0.0.1:{}:*:admin:{}\n",
            m.port,
            managed::ADMIN_PASSWORD
                .replace('\\', "\\\\")
                .replace(':', "\\:")
        ),
    )
    .unwrap();
    std::fs::set_permissions(&pgpass, std::fs::Permissions::from_mode(0o600)).unwrap();
    let pgpass_env = [("PGPASSFILE", pgpass.to_str().unwrap())];
    env.run_env(&["resume", "remote", "-q"], &pgpass_env)
        .expect(0);
    let list = env
        .run_env(&["server", "list", "-o", "json"], &pgpass_env)
        .expect(0)
        .json();
    assert_eq!(server(&list, "cloud")["reachable"], true);
    assert_eq!(server(&list, "cloud")["databases"], 2); // the silo and the silo template
                                                        // Nothing in the control database holds the password.
    let mut c = env.control();
    for table in ["servers", "audit_log", "tenants"] {
        let text: String = c
            .query_one(
                &format!("SELECT coalesce(string_agg(t::text, ' '), '') FROM {table} t"),
                &[],
            )
            .unwrap()
            .get(0);
        assert!(
            !text.contains(managed::ADMIN_PASSWORD) && !text.contains("adm1n"),
            "{table}: {text}"
        );
    }
    let stored: String = c
        .query_one("SELECT url FROM servers WHERE name = 'cloud'", &[])
        .unwrap()
        .get(0);
    assert!(!stored.contains("password"), "{stored}");
    assert!(stored.contains("sslmode='require'"), "{stored}");
    // Clean up the managed server, which outlives this environment's prefix cleanup.
    env.run_env(
        &["deprovision", "remote", "--purge", "--yes", "-q"],
        &pgpass_env,
    )
    .expect(0);
    env.run(&["server", "remove", "cloud", "-q"]).expect(0);
}

/// Breaks server `name` for this environment only: its stored URL points at a socket directory
/// that does not exist, as if the server were down (connection refused at once).
fn make_unreachable(env: &TestEnv, name: &str) {
    let socket = env.extra(name).socket.display().to_string();
    let n = env
        .control()
        .execute(
            "UPDATE servers SET url = replace(url, $2, '/nonexistent/tenantctl-down') WHERE name = $1",
            &[&name, &socket],
        )
        .unwrap();
    assert_eq!(n, 1);
}

#[test]
fn an_unreachable_server_stops_only_its_own_tenants() {
    let env = TestEnv::new();
    env.add_server("s2", &[]);
    env.add_server("s3", &["--pooled"]);
    for (slug, tier, on) in [
        ("here", "premium", "main"),
        ("there", "premium", "s2"),
        ("down", "premium", "s3"),
        ("downpool", "free", "s3"),
    ] {
        env.run(&provision_args(slug, tier, &["--server", on]))
            .expect(0);
        env.backdate(slug, "provision.start", "2026-09-01T00:00:00Z");
        env.backdate(slug, "provision", "2026-09-01T00:00:00Z");
        env.backdate_creation(slug, "2026-09-01T00:00:00Z");
    }
    make_unreachable(&env, "s3");

    // migrate: the others are migrated; exit 1 naming s3.
    let run = env.run(&["migrate", "-o", "json"]).expect(1);
    assert!(
        run.stderr.contains("could not reach server `s3`"),
        "{}",
        run.stderr
    );
    let results = run.json();
    let result_of = |db: &str, on: &str| {
        results
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["database"] == db && r["server"] == on)
            .unwrap_or_else(|| panic!("no {db} on {on}: {results}"))["result"]
            .clone()
    };
    assert_eq!(result_of(&env.silo("here"), "main"), "current");
    assert_eq!(result_of(&env.silo("there"), "s2"), "current");
    assert_eq!(result_of(&env.silo("down"), "s3"), "failed");
    assert_eq!(result_of(&env.pooled_db(), "s3"), "failed");

    // A lifecycle command on a tenant of another server works; on s3 it fails, changing nothing.
    env.run(&["suspend", "there", "-q"]).expect(0);
    let run = env.run(&["suspend", "down"]).expect(1);
    assert!(run.stderr.contains("server `s3`"), "{}", run.stderr);
    let show = env.run(&["show", "down", "-o", "json"]).expect(0).json();
    assert_eq!(show["status"], "active");

    // bill reads only the control database: every tenant is billed, s3's too.
    let bill = env
        .run(&["bill", "--period", "2026-09", "-o", "json"])
        .expect(0)
        .json();
    assert_eq!(bill["tenants_billed"], 4, "{bill}");

    // usage refresh measures the others and names the ones it could not.
    let run = env.run(&["usage", "refresh", "-o", "json"]).expect(1);
    let v = run.json();
    let failed: Vec<&str> = v["failed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["slug"].as_str().unwrap())
        .collect();
    assert_eq!(failed, ["down", "downpool"], "{v}");
    assert!(run.stderr.contains("down"), "{}", run.stderr);

    // server list and doctor report it, exit 1.
    let run = env.run(&["server", "list", "-o", "json"]).expect(1);
    let list = run.json();
    assert_eq!(server(&list, "s3")["reachable"], false);
    assert_eq!(server(&list, "s2")["reachable"], true);
    assert!(
        run.stderr.contains("could not reach server `s3`"),
        "{}",
        run.stderr
    );
    let run = env.run(&["doctor", "-o", "json"]).expect(1);
    let report = run.json();
    let problems = report["problems"].to_string();
    assert!(
        problems.contains("server `s3` is unreachable"),
        "{problems}"
    );
    assert!(!problems.contains("server `s2`"), "{problems}");

    // migrate status names it; features refresh refreshes the others and exits 1 naming it.
    let status = env
        .run(&["migrate", "status", "-o", "json"])
        .expect(0)
        .json();
    let down_state = status
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["database"] == env.silo("down"))
        .unwrap();
    assert!(
        down_state["note"]
            .as_str()
            .unwrap()
            .contains("server `s3` is unreachable"),
        "{down_state}"
    );
    let run = env.run(&["features", "refresh", "-o", "json"]).expect(1);
    let refreshed: Vec<String> = run
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["slug"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(refreshed, ["here", "there"], "{}", run.stdout);
    assert!(run.stderr.contains("`down`, `downpool`"), "{}", run.stderr);

    // routes lists every active tenant, the unreachable server's too (no connection needed).
    let routes = env.run(&["routes", "--format", "json"]).expect(0).json();
    let slugs: Vec<&str> = routes
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["slug"].as_str().unwrap())
        .collect();
    assert_eq!(slugs, ["down", "downpool", "here"]);
}

/// The owner rows of tenant `slug` in database `db` of `server` (as the superuser, who
/// bypasses row-level security).
fn users_on(env: &TestEnv, server: &str, db: &str, slug: &str) -> i64 {
    let id: uuid::Uuid = env
        .control()
        .query_one("SELECT id FROM tenants WHERE slug = $1", &[&slug])
        .unwrap()
        .get(0);
    let mut c = match server {
        "main" => env.admin(db),
        other => env.extra(other).superuser(db),
    };
    c.query_one("SELECT count(*) FROM users WHERE tenant_id = $1", &[&id])
        .unwrap()
        .get(0)
}

#[test]
fn a_move_across_isolation_models_places_its_target_like_a_new_tenant() {
    let env = TestEnv::new();
    env.run(&["server", "set", "main", "--capacity", "0", "-q"])
        .expect(0);
    env.add_server("s2", &[]);
    env.provision("grow", "free");
    assert_eq!(server_of(&env, "grow"), "main");
    // The upgrade's silo goes where a new premium silo would: main is full, so s2.
    env.run(&["set-tier", "grow", "premium", "-q"]).expect(0);
    assert_eq!(server_of(&env, "grow"), "s2");
    assert!(env.extra("s2").database_exists(&env.silo("grow")));
    assert!(!env.database_exists(&env.silo("grow")));
    assert_eq!(users_on(&env, "s2", &env.silo("grow"), "grow"), 1);
    assert_eq!(users_on(&env, "main", &env.pooled_db(), "grow"), 0);
    let list = servers(&env);
    assert_eq!(server(&list, "s2")["siloed_tenants"], 1);
    assert_eq!(server(&list, "main")["pooled_tenants"], 0);
    // The downgrade's rows go to the least-loaded pooled server: main (s2 is not pooled).
    env.run(&["set-tier", "grow", "free", "-q"]).expect(0);
    assert_eq!(server_of(&env, "grow"), "main");
    assert!(!env.extra("s2").database_exists(&env.silo("grow")));
    assert_eq!(users_on(&env, "main", &env.pooled_db(), "grow"), 1);
    // With no server to take the silo, the upgrade is refused and nothing changes.
    env.run(&["server", "drain", "s2", "-q"]).expect(0);
    let run = env.run(&["set-tier", "grow", "premium"]).expect(3);
    assert!(run.stderr.contains("no server can take"), "{}", run.stderr);
    let show = env.run(&["show", "grow", "-o", "json"]).expect(0).json();
    assert_eq!(show["status"], "active");
    assert_eq!(show["tier"], "free");
    assert_eq!(show["server"], "main");
}

#[test]
fn a_tenant_on_another_server_resumes_there_and_its_whole_life_happens_there() {
    let env = TestEnv::new();
    env.add_server("s2", &[]);
    // Killed after its database was created on s2: the re-run (without --server) resumes there.
    let run = env.run_env(
        &provision_args("far", "premium", &["--server", "s2"]),
        &[("TENANTCTL_FAILPOINT", "after-step:2")],
    );
    assert_eq!(run.code, None, "killed: {}", run.stderr);
    env.run(&provision_args("far", "premium", &[])).expect(0);
    assert_eq!(server_of(&env, "far"), "s2");
    assert!(env.extra("s2").database_exists(&env.silo("far")));
    assert!(!env.database_exists(&env.silo("far")));
    assert_eq!(users_on(&env, "s2", &env.silo("far"), "far"), 1);
    // Credentials: the role on s2 gets the password, and logs in with it over the socket.
    let pwfile = env.dir.path().join("far.url");
    env.run(&[
        "credentials",
        "far",
        "--password-file",
        pwfile.to_str().unwrap(),
        "-q",
    ])
    .expect(0);
    let url = std::fs::read_to_string(&pwfile).unwrap();
    assert!(url.contains(&format!("@{}", "%2F")), "{url}");
    let verifier: Option<String> = env
        .extra("s2")
        .superuser("postgres")
        .query_one(
            "SELECT rolpassword FROM pg_authid WHERE rolname = $1",
            &[&env.silo("far")],
        )
        .unwrap()
        .get(0);
    assert!(verifier.unwrap().starts_with("SCRAM-SHA-256$"));
    // A backup (pg_dump against s2) and its restore (pg_restore into a staging database there).
    let backup = env.run(&["backup", "far", "-o", "json"]).expect(0).json();
    let id = backup["id"].as_str().unwrap().to_owned();
    env.run(&["restore-backup", "far", &id, "--yes", "-q"])
        .expect(0);
    assert_eq!(users_on(&env, "s2", &env.silo("far"), "far"), 1);
    // Measured there, suspended, resumed, deprovisioned, restored, purged: all on s2.
    env.run(&["usage", "refresh", "far", "-q"]).expect(0);
    for cmd in ["suspend", "resume", "deprovision", "restore"] {
        env.run(&[cmd, "far", "-q"]).expect(0);
    }
    env.run(&["deprovision", "far", "--purge", "--yes", "-q"])
        .expect(0);
    assert!(!env.extra("s2").database_exists(&env.silo("far")));
    let roles: i64 = env
        .extra("s2")
        .superuser("postgres")
        .query_one(
            "SELECT count(*) FROM pg_roles WHERE rolname = $1",
            &[&env.silo("far")],
        )
        .unwrap()
        .get(0);
    assert_eq!(roles, 0);
    env.run(&["server", "remove", "s2", "-q"]).expect(0);
}

#[test]
fn bulk_onboarding_places_every_row() {
    let env = TestEnv::new();
    env.run(&["server", "set", "main", "--capacity", "2", "-q"])
        .expect(0);
    env.add_server("s2", &["--capacity", "2"]);
    let file = env.dir.path().join("tenants.csv");
    std::fs::write(
        &file,
        "slug,tier,name,owner_email\nbulk-a,premium,,\nbulk-b,premium,,\nbulk-c,premium,,\nbulk-d,premium,,\nbulk-e,free,,\n",
    )
    .unwrap();
    let pw = env.dir.path().join("tenants.passwords");
    env.run(&[
        "provision",
        "--file",
        file.to_str().unwrap(),
        "--password-file",
        pw.to_str().unwrap(),
        "--concurrency",
        "4",
        "-q",
    ])
    .expect(0);
    // Four silos at once on two servers of two places each: exactly two each, never three.
    let list = servers(&env);
    assert_eq!(server(&list, "main")["siloed_tenants"], 2, "{list}");
    assert_eq!(server(&list, "s2")["siloed_tenants"], 2, "{list}");
    assert_eq!(server_of(&env, "bulk-e"), "main");
    for slug in ["bulk-a", "bulk-b", "bulk-c", "bulk-d"] {
        let on = server_of(&env, slug);
        assert!(exists_on(&env, &on, &env.silo(slug)), "{slug} on {on}");
    }
}
