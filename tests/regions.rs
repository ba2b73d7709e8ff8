//! Regions (issue 16): `server add|set --region`, `provision --region` placing a tenant only on
//! a server of that region (by the usual rules among them) or refusing before anything exists,
//! the region in `show`, `route` and `server list`, and `set-tier` across isolation models
//! keeping a tenant in its region. The fleet: `main` (the control database's own, no region)
//! and the throwaway `s2` and `s3` of `support::fleet`.

use serde_json::Value;

use crate::support::TestEnv;

fn quiet<'a>(slug: &'a str, tier: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
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

fn show(env: &TestEnv, slug: &str) -> Value {
    env.run(&["show", slug, "-o", "json"]).expect(0).json()
}

fn region_of_server(list: &Value, name: &str) -> Value {
    list.as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no server {name}: {list}"))["region"]
        .clone()
}

/// Whether database `db` / role `role` exists on any server of the test fleet.
fn anywhere(env: &TestEnv, db: &str, role: &str) -> (bool, bool) {
    let mut database = env.database_exists(db);
    let mut role_found = env
        .admin("postgres")
        .query_opt("SELECT 1 FROM pg_roles WHERE rolname = $1", &[&role])
        .unwrap()
        .is_some();
    for x in env.extras() {
        database |= x.database_exists(db);
        role_found |= x
            .superuser("postgres")
            .query_opt("SELECT 1 FROM pg_roles WHERE rolname = $1", &[&role])
            .unwrap()
            .is_some();
    }
    (database, role_found)
}

/// A fleet of three: main (no region), s2 in us-east-1 and s3 in eu-west-2, both pooled.
fn three_regions() -> TestEnv {
    let env = TestEnv::new();
    env.add_server("s2", &["--region", "us-east-1", "--pooled"]);
    env.add_server("s3", &["--pooled"]);
    env.run(&["server", "set", "s3", "--region", "eu-west-2", "-q"])
        .expect(0);
    env
}

#[test]
fn placement_by_region_lands_only_in_the_region_and_every_view_shows_it() {
    let env = three_regions();
    let list = env.run(&["server", "list", "-o", "json"]).expect(0).json();
    assert_eq!(region_of_server(&list, "main"), Value::Null);
    assert_eq!(region_of_server(&list, "s2"), "us-east-1");
    assert_eq!(region_of_server(&list, "s3"), "eu-west-2");
    let table = env.run(&["server", "list"]).expect(0).stdout;
    assert!(
        table.contains("REGION") && table.contains("eu-west-2"),
        "{table}"
    );
    // Without a region, every server is a candidate: main first (equal capacity, by name).
    env.run(&quiet("anywhere", "premium", &[])).expect(0);
    assert_eq!(show(&env, "anywhere")["server"], "main");
    assert_eq!(show(&env, "anywhere")["region"], Value::Null);
    // With one, only that region's servers: silos and pooled tenants alike, however loaded
    // the others are.
    for slug in ["eu1", "eu2", "eu3"] {
        env.run(&quiet(slug, "premium", &["--region", "eu-west-2"]))
            .expect(0);
        let v = show(&env, slug);
        assert_eq!(v["server"], "s3", "{v}");
        assert_eq!(v["region"], "eu-west-2");
        assert!(env.extra("s3").database_exists(&env.silo(slug)));
        assert!(!env.database_exists(&env.silo(slug)));
    }
    let run = env
        .run(&quiet(
            "us1",
            "free",
            &["--region", "us-east-1", "-o", "json"],
        ))
        .expect(0);
    assert_eq!(run.json()["tenant"]["server"], "s2");
    assert_eq!(run.json()["tenant"]["region"], "us-east-1");
    // --server inside the region is taken; `show` in a table says the region too.
    env.run(&quiet(
        "pinned",
        "premium",
        &["--server", "s2", "--region", "us-east-1"],
    ))
    .expect(0);
    assert_eq!(show(&env, "pinned")["server"], "s2");
    assert!(env
        .run(&["show", "pinned"])
        .expect(0)
        .stdout
        .contains("us-east-1"));
    // route and routes carry the region; null where the server has none.
    let route = env.run(&["route", "eu1", "-o", "json"]).expect(0).json();
    assert_eq!(route["region"], "eu-west-2");
    assert_eq!(route["server"], "s3");
    let route = env
        .run(&["route", "anywhere", "-o", "json"])
        .expect(0)
        .json();
    assert_eq!(route["region"], Value::Null);
    let routes = env.run(&["routes", "-o", "json"]).expect(0).json();
    let us1 = routes
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["slug"] == "us1")
        .unwrap();
    assert_eq!(us1["region"], "us-east-1");
    let listed = env.run(&["list", "-o", "json"]).expect(0).json();
    assert!(listed
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t["slug"] == "eu2" && t["region"] == "eu-west-2"));
    // A finished tenant asked again for another region is refused: --region places new
    // tenants only.
    let run = env
        .run(&quiet("eu1", "premium", &["--region", "us-east-1"]))
        .expect(3);
    assert!(
        run.stderr
            .contains("in region `eu-west-2`, not in region `us-east-1`"),
        "{}",
        run.stderr
    );
    env.run(&quiet("eu1", "premium", &["--region", "eu-west-2"]))
        .expect(0);
    // Bulk: --region holds for every row.
    let csv = env.dir.path().join("tenants.csv");
    std::fs::write(
        &csv,
        "slug,tier,name,owner_email\nbulk1,premium,,\nbulk2,free,,\n",
    )
    .unwrap();
    let pw = env.dir.path().join("tenants.passwords");
    env.run(&[
        "provision",
        "--file",
        csv.to_str().unwrap(),
        "--password-file",
        pw.to_str().unwrap(),
        "--region",
        "us-east-1",
        "-q",
    ])
    .expect(0);
    assert_eq!(show(&env, "bulk1")["server"], "s2");
    assert_eq!(show(&env, "bulk2")["server"], "s2");
    // A server that holds tenants keeps its region; an unset region may be set (its tenants
    // are then in it), and an empty server's region may be corrected.
    let run = env
        .run(&["server", "set", "s3", "--region", "eu-central-1"])
        .expect(3);
    assert!(
        run.stderr
            .contains("server `s3` is in region `eu-west-2` and holds 3 tenants"),
        "{}",
        run.stderr
    );
    let list = env.run(&["server", "list", "-o", "json"]).expect(0).json();
    assert_eq!(region_of_server(&list, "s3"), "eu-west-2");
    let set = env
        .run(&[
            "server",
            "set",
            "main",
            "--region",
            "us-west-2",
            "-o",
            "json",
        ])
        .expect(0)
        .json();
    assert_eq!(set["region"], "us-west-2");
    assert_eq!(show(&env, "anywhere")["region"], "us-west-2");
    let audit: i64 = env
        .control()
        .query_one(
            "SELECT count(*) FROM audit_log WHERE details->>'to_region' = 'us-west-2'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(audit, 1);
}

#[test]
fn a_refused_region_placement_changes_nothing() {
    let env = three_regions();
    env.run(&["server", "drain", "s3", "-q"]).expect(0);
    let refusals: [(&[&str], &str); 4] = [
        (
            &["--region", "ap-south-1"],
            "no server is in region `ap-south-1`",
        ),
        (
            &["--region", "eu-west-2"],
            "no server in region `eu-west-2` can take a new siloed tenant",
        ),
        (
            &["--server", "main", "--region", "us-east-1"],
            "server `main` is in no region, not in region `us-east-1`",
        ),
        (
            &["--server", "s2", "--region", "eu-west-2"],
            "server `s2` is in region `us-east-1`, not in region `eu-west-2`",
        ),
    ];
    for (extra, why) in refusals {
        for dry_run in [false, true] {
            let mut extra = extra.to_vec();
            if dry_run {
                extra.push("--dry-run");
            }
            let run = env.run(&quiet("lost", "premium", &extra)).expect(3);
            assert!(run.stderr.contains(why), "{extra:?}: {}", run.stderr);
            assert!(!run.stderr.contains("s2 is") || why.contains("s2"));
        }
        let rows: i64 = env
            .control()
            .query_one("SELECT count(*) FROM tenants WHERE slug = 'lost'", &[])
            .unwrap()
            .get(0);
        assert_eq!(rows, 0, "{extra:?}");
        let claims: i64 = env
            .control()
            .query_one("SELECT count(*) FROM database_claims", &[])
            .unwrap()
            .get(0);
        assert_eq!(claims, 0);
        let silo = env.silo("lost");
        assert_eq!(anywhere(&env, &silo, &silo), (false, false), "{extra:?}");
    }
    // The draining server's message names only servers of the region.
    let run = env
        .run(&quiet("lost", "premium", &["--region", "eu-west-2"]))
        .expect(3);
    assert!(run.stderr.contains("s3 is draining"), "{}", run.stderr);
    assert!(!run.stderr.contains("main"), "{}", run.stderr);
    // A pooled tenant refused the same way leaves no row in any pooled database.
    env.run(&quiet("lostpool", "free", &["--region", "ap-south-1"]))
        .expect(3);
    env.run(&["show", "lostpool"]).expect(3);
    for x in env.extras() {
        assert!(!x.database_exists(&env.pooled_db()), "{}", x.name);
    }
    // A bulk run whose region cannot take its rows creates none of them.
    let csv = env.dir.path().join("lost.csv");
    std::fs::write(&csv, "slug,tier,name,owner_email\nlost1,premium,,\n").unwrap();
    let pw = env.dir.path().join("lost.passwords");
    let run = env.run(&[
        "provision",
        "--file",
        csv.to_str().unwrap(),
        "--password-file",
        pw.to_str().unwrap(),
        "--region",
        "ap-south-1",
        "-q",
    ]);
    assert_ne!(run.code, Some(0), "{}", run.stderr);
    env.run(&["show", "lost1"]).expect(3);
    let silo = env.silo("lost1");
    assert_eq!(anywhere(&env, &silo, &silo), (false, false));
}

#[test]
fn a_tier_change_across_isolation_models_keeps_the_tenant_in_its_region() {
    let env = three_regions();
    // Unregioned, main would win both placements (as much capacity left, fewest pooled
    // tenants, first by name); the region keeps the tenant on s2.
    env.run(&quiet("grow", "free", &["--region", "us-east-1"]))
        .expect(0);
    assert_eq!(show(&env, "grow")["server"], "s2");
    env.run(&["set-tier", "grow", "premium", "-q"]).expect(0);
    let v = show(&env, "grow");
    assert_eq!(v["server"], "s2", "{v}");
    assert_eq!(v["region"], "us-east-1");
    assert_eq!(v["isolation"], "siloed");
    assert!(env.extra("s2").database_exists(&env.silo("grow")));
    env.run(&["set-tier", "grow", "free", "-q"]).expect(0);
    let v = show(&env, "grow");
    assert_eq!(v["server"], "s2", "{v}");
    assert_eq!(v["isolation"], "pooled");
    assert!(!env.extra("s2").database_exists(&env.silo("grow")));
    // When no server of its region can take the silo, the upgrade is refused, even though
    // main could: nothing changes.
    env.run(&["server", "drain", "s2", "-q"]).expect(0);
    let run = env.run(&["set-tier", "grow", "premium"]).expect(3);
    assert!(
        run.stderr
            .contains("no server in region `us-east-1` can take a new siloed tenant"),
        "{}",
        run.stderr
    );
    let v = show(&env, "grow");
    assert_eq!(v["status"], "active");
    assert_eq!(v["tier"], "free");
    assert_eq!(v["server"], "s2");
    let silo = env.silo("grow");
    assert_eq!(anywhere(&env, &silo, &silo), (false, false));
    let moves: i64 = env
        .control()
        .query_one("SELECT count(*) FROM moves", &[])
        .unwrap()
        .get(0);
    assert_eq!(moves, 0);
}
