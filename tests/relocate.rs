//! `move <slug> --to <server>`: a siloed tenant's database moved to another server of the fleet
//! and back, every row compared as JSON table by table; the tenant's role logging in on the new
//! server and not on the old; `show` and `route` naming the new server; the source's database
//! and role gone; a crash at every step converging when run again (or, before the switch,
//! cancelled by `--to` the old server); `kill -9` at seeded random moments, each re-run
//! converging; a purge settling a move left midway; refusals (pooled tenant, own server,
//! unknown, draining, not taking the tier, full, unreachable, another region) changing nothing.

use std::os::unix::process::CommandExt;
use std::process::Stdio;
use std::time::Instant;

use crate::support::TestEnv;

const TABLES: [&str; 4] = ["users", "applications", "deployments", "api_keys"];

const STEPS: [&str; 11] = [
    "record_move",
    "close_source",
    "create_target",
    "apply_schema",
    "copy_rows",
    "copy_buckets",
    "switch",
    "sync_features",
    "remove_source",
    "reopen",
    "finish",
];

/// A superuser connection to `db` on fleet server `server` (`main` is the test cluster).
fn on(env: &TestEnv, server: &str, db: &str) -> postgres::Client {
    match server {
        "main" => env.admin(db),
        other => env.extra(other).superuser(db),
    }
}

fn exists(env: &TestEnv, server: &str, kind: &str, name: &str) -> bool {
    let sql = match kind {
        "database" => "SELECT 1 FROM pg_database WHERE datname = $1",
        _ => "SELECT 1 FROM pg_roles WHERE rolname = $1",
    };
    on(env, server, "postgres")
        .query_opt(sql, &[&name])
        .unwrap()
        .is_some()
}

/// Whether the tenant's own role logs in to its database on `server` (the sockets trust).
fn tenant_connects(env: &TestEnv, server: &str, role: &str) -> bool {
    match server {
        "main" => env.connect_as(role, role).is_ok(),
        other => {
            postgres::Client::connect(&env.extra(other).url(role, role), postgres::NoTls).is_ok()
        }
    }
}

fn tenant_id(env: &TestEnv, slug: &str) -> uuid::Uuid {
    env.control()
        .query_one("SELECT id FROM tenants WHERE slug = $1", &[&slug])
        .unwrap()
        .get(0)
}

fn record(env: &TestEnv, slug: &str) -> (String, String) {
    let r = env
        .control()
        .query_one(
            "SELECT status, server FROM tenants WHERE slug = $1",
            &[&slug],
        )
        .unwrap();
    (r.get(0), r.get(1))
}

/// Gives the tenant `n` users, each with an application, two deployments and an api key.
fn fill(c: &mut postgres::Client, id: uuid::Uuid, n: i32, tag: &str) {
    c.execute(
        "WITH u AS (
           INSERT INTO users (tenant_id, email, password_hash, full_name, role)
           SELECT $1, $3 || g || '@x.test', 'h' || g, E'Name \\t\\n ' || g, 'member'
           FROM generate_series(1, $2) g RETURNING id, tenant_id),
         a AS (
           INSERT INTO applications (tenant_id, user_id, name, description, sandbox_id)
           SELECT tenant_id, id, 'app ' || $3, NULL, 'sb-' || id FROM u RETURNING id, tenant_id, user_id),
         d AS (
           INSERT INTO deployments (tenant_id, application_id, version, deployed_at)
           SELECT tenant_id, id, v, now() FROM a, (VALUES ('v1'), ('v2')) vs(v) RETURNING id)
         INSERT INTO api_keys (tenant_id, user_id, key_hash, expires_at)
         SELECT tenant_id, user_id, md5(random()::text), now() + interval '1 year' FROM a",
        &[&id, &n, &tag],
    )
    .unwrap();
}

/// Every row of the tenant's silo on `server`, table by table, as JSON text ordered by id.
fn rows(env: &TestEnv, server: &str, slug: &str) -> Vec<(String, Vec<String>)> {
    let mut c = on(env, server, &env.silo(slug));
    TABLES
        .iter()
        .map(|t| {
            let rows = c
                .query(
                    &format!("SELECT row_to_json(x)::text FROM {t} x ORDER BY id"),
                    &[],
                )
                .unwrap()
                .iter()
                .map(|r| r.get(0))
                .collect();
            (t.to_string(), rows)
        })
        .collect()
}

/// A premium tenant `slug` on `main` with 30 users and their rows; returns them.
fn silo_on_main(env: &TestEnv, slug: &str) -> Vec<(String, Vec<String>)> {
    env.run(&[
        "provision",
        slug,
        "--tier",
        "premium",
        "--server",
        "main",
        "-q",
        "--password-file",
        "/dev/null",
    ])
    .expect(0);
    let id = tenant_id(env, slug);
    fill(&mut on(env, "main", &env.silo(slug)), id, 30, "a");
    let before = rows(env, "main", slug);
    assert_eq!(before[2].1.len(), 60, "deployments to move");
    before
}

/// The tenant is active on `server` alone, with `before`'s rows, reachable as itself there
/// only, and nothing of a move is left.
#[track_caller]
fn assert_on(env: &TestEnv, slug: &str, server: &str, before: &[(String, Vec<String>)]) {
    let silo = env.silo(slug);
    assert_eq!(record(env, slug), ("active".to_owned(), server.to_owned()));
    assert_eq!(rows(env, server, slug), before, "every row on {server}");
    assert!(
        tenant_connects(env, server, &silo),
        "its role logs in on {server}"
    );
    for other in ["main", "s2"].into_iter().filter(|s| *s != server) {
        assert!(
            !exists(env, other, "database", &silo),
            "no database left on {other}"
        );
        assert!(
            !exists(env, other, "role", &silo),
            "no role left on {other}"
        );
        assert!(!tenant_connects(env, other, &silo));
    }
    let left: i64 = env
        .control()
        .query_one(
            "SELECT count(*) FROM moves m JOIN tenants t ON t.id = m.tenant_id WHERE t.slug = $1",
            &[&slug],
        )
        .unwrap()
        .get(0);
    assert_eq!(left, 0, "no move recorded");
}

#[test]
fn a_silo_moves_to_another_server_and_back_with_every_row() {
    let env = TestEnv::new();
    env.add_server("s2", &[]);
    let before = silo_on_main(&env, "acme");

    let run = env
        .run(&["move", "acme", "--to", "s2", "-o", "json"])
        .expect(0);
    let v = run.json();
    assert_eq!(v["server"], "s2");
    assert_eq!(v["status"], "active");
    assert_eq!(v["database"], env.silo("acme"));
    assert!(run.stderr.contains("[5/11] copy rows"), "{}", run.stderr);
    assert!(run.stderr.contains("copied 151 rows"), "{}", run.stderr);
    assert_on(&env, "acme", "s2", &before);
    let shown = env.run(&["show", "acme", "-o", "json"]).expect(0).json();
    assert_eq!(shown["server"], "s2");
    let route = env.run(&["route", "acme", "-o", "json"]).expect(0).json();
    assert_eq!(route["server"], "s2");
    assert_eq!(route["host"], env.extra("s2").socket.display().to_string());
    // The audit trail: start, the switch naming both servers, the end.
    let trail: Vec<(String, serde_json::Value)> = env
        .control()
        .query(
            "SELECT a.action, a.details FROM audit_log a JOIN tenants t ON t.id = a.tenant_id
             WHERE t.slug = 'acme' AND a.action LIKE 'move%' ORDER BY a.id",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(trail.len(), 3, "{trail:?}");
    assert_eq!(trail[1].1["to_server"], "s2", "{trail:?}");
    assert_eq!(trail[1].1["from_server"], "main", "{trail:?}");

    // And back, writes made on s2 coming along.
    let id = tenant_id(&env, "acme");
    fill(&mut on(&env, "s2", &env.silo("acme")), id, 3, "b");
    let before = rows(&env, "s2", "acme");
    env.run(&["move", "acme", "--to", "main", "-q"]).expect(0);
    assert_on(&env, "acme", "main", &before);
}

#[test]
fn a_suspended_silo_moves_and_stays_suspended() {
    let env = TestEnv::new();
    env.add_server("s2", &[]);
    let before = silo_on_main(&env, "sleepy");
    env.run(&["suspend", "sleepy", "-q"]).expect(0);
    env.run(&["move", "sleepy", "--to", "s2", "-q"]).expect(0);
    assert_eq!(
        record(&env, "sleepy"),
        ("suspended".to_owned(), "s2".to_owned())
    );
    assert!(!tenant_connects(&env, "s2", &env.silo("sleepy")));
    assert!(!exists(&env, "main", "database", &env.silo("sleepy")));
    env.run(&["resume", "sleepy", "-q"]).expect(0);
    assert_on(&env, "sleepy", "s2", &before);
}

/// What a refusal must leave alone: the record, the rows, the databases on both servers.
fn unchanged(env: &TestEnv, slug: &str, before: &[(String, Vec<String>)]) {
    assert_eq!(record(env, slug), ("active".to_owned(), "main".to_owned()));
    assert_eq!(rows(env, "main", slug), before);
    assert!(tenant_connects(env, "main", &env.silo(slug)));
    assert!(!exists(env, "s2", "database", &env.silo(slug)));
    assert!(!exists(env, "s2", "role", &env.silo(slug)));
}

#[test]
fn refused_moves_change_nothing() {
    let env = TestEnv::new();
    env.add_server("s2", &[]);
    let before = silo_on_main(&env, "acme");
    env.provision("tiny", "free");

    let r = env.run(&["move", "tiny", "--to", "s2"]).expect(3);
    assert!(r.stderr.contains("set-tier"), "{}", r.stderr);
    let r = env.run(&["move", "acme", "--to", "main"]).expect(3);
    assert!(r.stderr.contains("already"), "{}", r.stderr);
    let r = env.run(&["move", "acme", "--to", "nowhere"]).expect(3);
    assert!(r.stderr.contains("no server `nowhere`"), "{}", r.stderr);
    env.run(&["move", "ghost", "--to", "s2"]).expect(3);
    env.run(&["server", "drain", "s2", "-q"]).expect(0);
    let r = env.run(&["move", "acme", "--to", "s2"]).expect(3);
    assert!(r.stderr.contains("draining"), "{}", r.stderr);
    env.run(&["server", "undrain", "s2", "-q"]).expect(0);
    env.run(&["server", "set", "s2", "--capacity", "0", "-q"])
        .expect(0);
    let r = env.run(&["move", "acme", "--to", "s2"]).expect(3);
    assert!(r.stderr.contains("full"), "{}", r.stderr);
    env.run(&["server", "set", "s2", "--capacity", "5", "-q"])
        .expect(0);
    env.control()
        .execute(
            "UPDATE servers SET tiers = ARRAY['enterprise'] WHERE name = 's2'",
            &[],
        )
        .unwrap();
    let r = env.run(&["move", "acme", "--to", "s2"]).expect(3);
    assert!(r.stderr.contains("does not take tier"), "{}", r.stderr);
    env.control()
        .execute("UPDATE servers SET tiers = NULL WHERE name = 's2'", &[])
        .unwrap();
    // Regions that differ need the target's named.
    env.control()
        .execute(
            "UPDATE servers SET region = CASE name WHEN 'main' THEN 'eu' ELSE 'us' END",
            &[],
        )
        .unwrap();
    let r = env.run(&["move", "acme", "--to", "s2"]).expect(3);
    assert!(r.stderr.contains("--region us"), "{}", r.stderr);
    env.run(&["move", "acme", "--to", "s2", "--region", "eu"])
        .expect(3);
    unchanged(&env, "acme", &before);
    // Unreachable: exit 1, nothing changed.
    env.control()
        .execute(
            "UPDATE servers SET region = NULL, url = 'host=/nonexistent user=nobody dbname=postgres' WHERE name = 's2'",
            &[],
        )
        .unwrap();
    let r = env.run(&["move", "acme", "--to", "s2"]).expect(1);
    assert!(r.stderr.contains("s2"), "{}", r.stderr);
    assert_eq!(
        record(&env, "acme"),
        ("active".to_owned(), "main".to_owned())
    );
    assert_eq!(rows(&env, "main", "acme"), before);
    // With the region confirmed, it moves.
    env.control()
        .execute(
            "UPDATE servers SET url = $1, region = 'us' WHERE name = 's2'",
            &[&env.server_url("s2")],
        )
        .unwrap();
    env.control()
        .execute("UPDATE servers SET region = 'eu' WHERE name = 'main'", &[])
        .unwrap();
    env.run(&["move", "acme", "--to", "s2", "--region", "us", "-q"])
        .expect(0);
    assert_on(&env, "acme", "s2", &before);
}

/// Crashes `move slug --to to` at `point` (it must die by the signal).
#[track_caller]
fn crash(env: &TestEnv, slug: &str, to: &str, point: &str) {
    let run = env.run_env(
        &["move", slug, "--to", to, "-q"],
        &[("TENANTCTL_FAILPOINT", point)],
    );
    assert_eq!(
        run.code, None,
        "{point}: expected a crash, got {:?}\n{}",
        run.code, run.stderr
    );
}

fn crash_points() -> Vec<String> {
    let mut points = vec!["move:copy_rows:restored".to_owned()];
    for s in STEPS {
        points.push(format!("move:{s}"));
        points.push(format!("move:{s}:journaled"));
    }
    points
}

#[test]
fn a_move_crashed_at_any_step_converges_when_run_again() {
    let env = TestEnv::new();
    env.add_server("s2", &[]);
    let before = silo_on_main(&env, "acme");
    let mut here = "main";
    for point in crash_points() {
        let there = if here == "main" { "s2" } else { "main" };
        crash(&env, "acme", there, &point);
        if point.starts_with("move:finish") {
            // Killed after its last transaction: moved, and a re-run is refused as a move to
            // the server it is on.
            assert_on(&env, "acme", there, &before);
            env.run(&["move", "acme", "--to", there]).expect(3);
            here = there;
            continue;
        }
        assert_eq!(record(&env, "acme").0, "moving", "{point}");
        // Until the switch the source is the tenant's data and it is closed to the tenant.
        if !point.starts_with("move:record_move") {
            assert!(!tenant_connects(&env, here, &env.silo("acme")), "{point}");
        }
        env.run(&["move", "acme", "--to", there, "-q"]).expect(0);
        assert_on(&env, "acme", there, &before);
        here = there;
    }
}

#[test]
fn a_move_crashed_before_its_switch_is_cancelled_by_its_old_server() {
    let env = TestEnv::new();
    env.add_server("s2", &[]);
    let before = silo_on_main(&env, "acme");
    for point in [
        "move:close_source",
        "move:copy_rows:restored",
        "move:copy_buckets:journaled",
    ] {
        crash(&env, "acme", "s2", point);
        // Anything else names both ways out.
        let r = env.run(&["suspend", "acme"]).expect(3);
        assert!(
            r.stderr.contains("move acme --to s2") && r.stderr.contains("move acme --to main"),
            "{}",
            r.stderr
        );
        env.run(&["set-tier", "acme", "enterprise"]).expect(3);
        env.run(&["move", "acme", "--to", "main", "-q"]).expect(0);
        assert_on(&env, "acme", "main", &before);
    }
    // After the switch the old server no longer cancels.
    crash(&env, "acme", "s2", "move:switch");
    let r = env.run(&["move", "acme", "--to", "main"]).expect(3);
    assert!(!r.stderr.contains("cancel"), "{}", r.stderr);
    env.run(&["move", "acme", "--to", "s2", "-q"]).expect(0);
    assert_on(&env, "acme", "s2", &before);
}

#[test]
fn a_purge_settles_a_server_move_left_midway_and_names_the_server() {
    let env = TestEnv::new();
    env.add_server("s2", &[]);
    for (slug, point) in [
        ("before", "move:copy_rows:journaled"),
        ("after", "move:switch"),
    ] {
        silo_on_main(&env, slug);
        crash(&env, slug, "s2", point);
        let purged = env
            .run(&["deprovision", slug, "--purge", "--yes"])
            .expect(0);
        assert!(
            purged.stderr.contains(&format!(
                "settled the move of tenant `{slug}` to server `s2` before purging it"
            )),
            "{point}: {}",
            purged.stderr
        );
        assert!(!purged.stderr.contains("tier"), "{}", purged.stderr);
        let silo = env.silo(slug);
        for server in ["main", "s2"] {
            assert!(!exists(&env, server, "database", &silo), "{point} {server}");
            assert!(!exists(&env, server, "role", &silo), "{point} {server}");
        }
        assert_eq!(
            env.scalar_i64("SELECT count(*) FROM tenants WHERE slug = $1", &[&slug]),
            0
        );
    }
    assert_eq!(env.scalar_i64("SELECT count(*) FROM moves", &[]), 0);
}

/// SplitMix64: small, seedable, the same on every platform.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A fraction in [0, 1).
    fn fraction(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// `TENANTCTL_KILL_SEED` (to replay a run), else one from the clock: every run of the suite
/// kills at other moments.
fn kill_seed() -> u64 {
    match std::env::var("TENANTCTL_KILL_SEED") {
        Ok(v) => v.trim().parse().expect("TENANTCTL_KILL_SEED: a number"),
        Err(_) => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64,
    }
}

/// The steps of the tenant's move journaled so far.
fn journaled(env: &TestEnv, slug: &str) -> Vec<String> {
    env.control()
        .query(
            "SELECT j.step FROM move_journal j JOIN tenants t ON t.id = j.tenant_id
             WHERE t.slug = $1 ORDER BY j.completed_at",
            &[&slug],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

/// Whether database `db` on `server` takes connections (a source closed midway may not).
fn allows_connections(env: &TestEnv, server: &str, db: &str) -> bool {
    on(env, server, "postgres")
        .query_one(
            "SELECT datallowconn FROM pg_database WHERE datname = $1",
            &[&db],
        )
        .unwrap()
        .get(0)
}

/// `move` killed with SIGKILL at moments drawn from a seed over the span one move takes here,
/// back and forth between `main` and `s2`; on odd draws the whole process group dies (its
/// `pg_dump` and `pg_restore` too), else tenantctl alone (they are orphaned mid-copy). After
/// each kill the database the tenant record names exists on the server it names, with every
/// row when it can be read (until the switch that is the source); the same command run again
/// ends with the tenant active on the target alone, every row once, nothing of the move left.
#[test]
fn kill_9_at_random_moments_of_server_moves_then_rerun_converges() {
    const RUNS: usize = 16;
    let seed = kill_seed();
    eprintln!(
        "kill -9 of moves: seed {seed}; replay: TENANTCTL_KILL_SEED={seed} cargo test --test tenantctl relocate::kill_9 -- --nocapture"
    );
    let mut rng = Rng(seed);
    let env = TestEnv::new();
    env.add_server("s2", &[]);
    let slug = "victim";
    let silo = env.silo(slug);
    silo_on_main(&env, slug);
    let id = tenant_id(&env, slug);
    fill(&mut on(&env, "main", &silo), id, 300, "k");
    let mut before = rows(&env, "main", slug);
    // How long one move takes on this machine: the moments are drawn over a little more.
    let t0 = Instant::now();
    env.run(&["move", slug, "--to", "s2", "-q"]).expect(0);
    let span = t0.elapsed().mul_f64(1.1);
    assert_on(&env, slug, "s2", &before);
    let mut here = "s2";
    for run in 0..RUNS {
        let there = if here == "main" { "s2" } else { "main" };
        let delay = span.mul_f64(rng.fraction());
        let group = rng.next() % 2 == 1;
        let mut cmd = env.cmd();
        cmd.args(["move", slug, "--to", there, "-q"])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if group {
            cmd.process_group(0);
        }
        let mut child = cmd.spawn().unwrap();
        std::thread::sleep(delay);
        if group {
            let pgid = child.id() as i32;
            // SAFETY: kill(2) of a process group this test made; no memory is involved.
            assert_eq!(unsafe { libc::kill(-pgid, libc::SIGKILL) }, 0);
        } else {
            let _ = child.kill();
        }
        let exited = child.wait().unwrap();
        let (status, server) = record(&env, slug);
        let steps = journaled(&env, slug);
        eprintln!(
            "run {run}: {here} -> {there}, killed {} after {} ms ({exited}): {status} on {server}, journal {steps:?}",
            if group { "with its group" } else { "alone" },
            delay.as_millis(),
        );
        let ctx = format!("seed {seed}, run {run}");
        // The database the record names is there (the source is dropped only after the
        // switch), with every row when it can be read.
        assert!(
            exists(&env, &server, "database", &silo),
            "{ctx}: the tenant's database on {server}"
        );
        if allows_connections(&env, &server, &silo) {
            assert_eq!(rows(&env, &server, slug), before, "{ctx}: rows on {server}");
        }
        if (status.as_str(), server.as_str()) == ("active", there) {
            // Finished before the kill: a re-run is a move to the server it is on.
            env.run(&["move", slug, "--to", there]).expect(3);
        } else {
            let rerun = env.run(&["move", slug, "--to", there, "-q"]);
            assert_eq!(rerun.code, Some(0), "{ctx}: re-run\n{}", rerun.stderr);
        }
        assert_on(&env, slug, there, &before);
        // Writes on the new side go along with the next move.
        fill(&mut on(&env, there, &silo), id, 2, &format!("r{run}"));
        before = rows(&env, there, slug);
        here = there;
    }
    // Each move started, switched and finished once, however it was killed.
    let audited = |action: &str| {
        env.scalar_i64(
            "SELECT count(*) FROM audit_log WHERE slug = $1 AND action = $2",
            &[&slug, &action],
        )
    };
    let moves = 1 + RUNS as i64;
    assert_eq!(audited("move.start"), moves, "seed {seed}");
    assert_eq!(audited("move"), 2 * moves, "seed {seed}: switch and finish");
}
