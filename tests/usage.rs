//! `usage record|import|refresh`: exactly-once events, hard limits without races, bulk import.

use crate::support::TestEnv;

fn total(env: &TestEnv, slug: &str, resource: &str) -> i64 {
    env.scalar_i64(
        "SELECT coalesce(sum(u.quantity), 0)::bigint FROM usage_totals u JOIN tenants t ON t.id = u.tenant_id WHERE t.slug = $1 AND u.resource = $2",
        &[&slug, &resource],
    )
}

fn events(env: &TestEnv, slug: &str) -> i64 {
    env.scalar_i64("SELECT count(*) FROM usage_events e JOIN tenants t ON t.id = e.tenant_id WHERE t.slug = $1", &[&slug])
}

#[test]
fn thirty_two_concurrent_records_against_a_hard_limit_of_10_accept_exactly_10() {
    let env = TestEnv::new();
    env.run(&["provision", "acme", "--tier", "free"]).expect(0);
    env.run(&["quota", "set", "acme", "api_requests", "10"])
        .expect(0);
    let argvs: Vec<Vec<String>> = (0..32)
        .map(|i| {
            [
                "usage",
                "record",
                "acme",
                "api_requests",
                "1",
                "--key",
                &format!("req-{i}"),
            ]
            .map(String::from)
            .to_vec()
        })
        .collect();
    let (mut ok, mut refused) = (0, 0);
    for run in env.run_concurrently(&argvs) {
        match run.code {
            Some(0) => ok += 1,
            Some(3) => {
                assert!(
                    run.stderr.contains("over its hard limit of 10"),
                    "{}",
                    run.stderr
                );
                refused += 1;
            }
            other => panic!("exit {other:?}: {}", run.stderr),
        }
    }
    assert_eq!((ok, refused), (10, 22));
    assert_eq!(total(&env, "acme", "api_requests"), 10);
    assert_eq!(events(&env, "acme"), 10);
}

#[test]
fn a_retried_key_counts_once_forever() {
    let env = TestEnv::new();
    env.run(&["provision", "acme", "--tier", "premium"])
        .expect(0);
    let first = env
        .run(&[
            "usage",
            "record",
            "acme",
            "api_requests",
            "120",
            "--key",
            "batch-7",
            "-o",
            "json",
        ])
        .expect(0)
        .json();
    assert_eq!(
        (first["counted"].as_bool(), first["total"].as_i64()),
        (Some(true), Some(120))
    );
    let again = env
        .run(&[
            "usage",
            "record",
            "acme",
            "api_requests",
            "120",
            "--key",
            "batch-7",
            "-o",
            "json",
        ])
        .expect(0)
        .json();
    assert_eq!(
        (again["counted"].as_bool(), again["duplicate"].as_bool()),
        (Some(false), Some(true))
    );
    // Also through an import, and an import replayed.
    let csv = env.dir.path().join("u.csv");
    std::fs::write(&csv, "acme,api_requests,120,2026-11-02T00:00:00Z,batch-7\nacme,api_requests,30,2026-11-02,batch-8\n").unwrap();
    let v = env
        .run(&["usage", "import", csv.to_str().unwrap(), "-o", "json"])
        .expect(0)
        .json();
    assert_eq!(
        (
            v["accepted"].as_i64(),
            v["duplicates"].as_i64(),
            v["refused"].as_i64()
        ),
        (Some(1), Some(1), Some(0))
    );
    let v = env
        .run(&["usage", "import", csv.to_str().unwrap(), "-o", "json"])
        .expect(0)
        .json();
    assert_eq!(
        (v["accepted"].as_i64(), v["duplicates"].as_i64()),
        (Some(0), Some(2))
    );
    assert_eq!(events(&env, "acme"), 2);
    assert_eq!(total(&env, "acme", "api_requests"), 150);
    // Without a key every call counts.
    env.run(&["usage", "record", "acme", "api_requests", "1"])
        .expect(0);
    env.run(&["usage", "record", "acme", "api_requests", "1"])
        .expect(0);
    assert_eq!(total(&env, "acme", "api_requests"), 152);
}

#[test]
fn an_import_with_a_bad_line_applies_nothing() {
    let env = TestEnv::new();
    env.run(&["provision", "acme", "--tier", "premium"])
        .expect(0);
    let csv = env.dir.path().join("bad.csv");
    std::fs::write(
        &csv,
        "slug,resource,quantity,time,key\nacme,api_requests,5,2026-11-02,a\nacme,api_requests,five,2026-11-02,b\nacme,api_requests,5,2026-11-02,c\n",
    )
    .unwrap();
    let run = env
        .run(&["usage", "import", csv.to_str().unwrap()])
        .expect(2);
    assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("line 3: quantity `five` is not a positive integer"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("nothing imported"), "{}", run.stderr);
    assert_eq!(events(&env, "acme"), 0);
    assert_eq!(total(&env, "acme", "api_requests"), 0);
}

#[test]
fn import_counts_and_refuses_past_a_hard_limit_in_file_order() {
    let env = TestEnv::new();
    env.run(&["provision", "acme", "--tier", "free"]).expect(0);
    env.run(&["provision", "bigco", "--tier", "premium"])
        .expect(0);
    env.run(&[
        "usage",
        "record",
        "acme",
        "api_requests",
        "990",
        "--at",
        "2026-10-15",
    ])
    .expect(0);
    let csv = env.dir.path().join("u.csv");
    std::fs::write(
        &csv,
        "acme,api_requests,6,2026-10-20,a1\n\
         acme,api_requests,4,2026-10-21,a2\n\
         acme,api_requests,1,2026-10-22,a3\n\
         acme,api_requests,1,2026-11-01,a4\n\
         bigco,api_requests,50000,2026-10-20,b1\n\
         ghost,api_requests,1,2026-10-20,g1\n",
    )
    .unwrap();
    let run = env
        .run(&["usage", "import", csv.to_str().unwrap(), "-o", "json"])
        .expect(3);
    let v = run.json();
    assert_eq!(
        (
            v["accepted"].as_i64(),
            v["duplicates"].as_i64(),
            v["refused"].as_i64()
        ),
        (Some(4), Some(0), Some(2))
    );
    let refused: Vec<(i64, String)> = v["refused_rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["line"].as_i64().unwrap(),
                r["reason"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        refused,
        [
            (3, "over the hard limit of 1000 for 2026-10".to_owned()),
            (6, "unknown tenant".to_owned())
        ]
    );
    assert!(run.stderr.contains("2 of 6 rows refused"), "{}", run.stderr);
    // October: 990 + 6 + 4 = 1000, the limit exactly; November counts separately.
    let oct = env.scalar_i64("SELECT quantity FROM usage_totals u JOIN tenants t ON t.id = u.tenant_id WHERE t.slug = 'acme' AND period = '2026-10-01'", &[]);
    assert_eq!(oct, 1000);
    let nov = env.scalar_i64("SELECT quantity FROM usage_totals u JOIN tenants t ON t.id = u.tenant_id WHERE t.slug = 'acme' AND period = '2026-11-01'", &[]);
    assert_eq!(nov, 1);
    // Soft limits take everything (billed later as overage).
    assert_eq!(total(&env, "bigco", "api_requests"), 50_000);
    // The totals always equal the events.
    let mismatch = env.scalar_i64(
        "SELECT count(*) FROM (SELECT tenant_id, resource, period, sum(quantity) AS q FROM usage_events GROUP BY 1, 2, 3) e
         FULL JOIN usage_totals u USING (tenant_id, resource, period) WHERE e.q IS DISTINCT FROM u.quantity",
        &[],
    );
    assert_eq!(mismatch, 0);
}

#[test]
fn only_active_tenants_record_usage() {
    let env = TestEnv::new();
    env.run(&["provision", "acme", "--tier", "premium"])
        .expect(0);
    for (command, status) in [("suspend", "suspended"), ("deprovision", "deleted")] {
        if command == "deprovision" {
            env.run(&["resume", "acme"]).expect(0);
        }
        env.run(&[command, "acme"]).expect(0);
        let run = env
            .run(&[
                "usage",
                "record",
                "acme",
                "api_requests",
                "1",
                "--key",
                status,
            ])
            .expect(3);
        assert!(
            run.stderr.contains(&format!("tenant `acme` is {status}")),
            "{}",
            run.stderr
        );
        let run = env
            .run(&["quota", "check", "acme", "api_requests", "-o", "json"])
            .expect(3);
        assert_eq!(run.json()["allowed"], false);
        let csv = env.dir.path().join("u.csv");
        std::fs::write(
            &csv,
            format!("acme,api_requests,1,2026-11-02,imp-{status}\n"),
        )
        .unwrap();
        let run = env
            .run(&["usage", "import", csv.to_str().unwrap(), "-o", "json"])
            .expect(3);
        assert_eq!(
            run.json()["refused_rows"][0]["reason"],
            format!("tenant is {status}")
        );
    }
    assert_eq!(events(&env, "acme"), 0);
    env.run(&["usage", "record", "ghost", "api_requests", "1"])
        .expect(3);
}

#[test]
fn bad_usage_input_exits_2_and_records_nothing() {
    let env = TestEnv::new();
    env.run(&["provision", "acme", "--tier", "premium"])
        .expect(0);
    for (args, needle) in [
        (
            &["usage", "record", "acme", "seats", "1"][..],
            "unknown resource `seats`",
        ),
        (
            &["usage", "record", "acme", "users", "1"],
            "resource `users` is measured",
        ),
        (&["usage", "record", "acme", "api_requests", "0"], "0"),
        (&["usage", "record", "acme", "api_requests", "-3"], "-3"),
        (
            &[
                "usage",
                "record",
                "acme",
                "api_requests",
                "1",
                "--at",
                "tomorrow",
            ],
            "invalid time `tomorrow`",
        ),
        (
            &["usage", "record", "Acme", "api_requests", "1"],
            "invalid slug `Acme`",
        ),
        (
            &["usage", "import", "/nonexistent.csv"],
            "cannot read usage file /nonexistent.csv",
        ),
    ] {
        let run = env.run(args).expect(2);
        assert!(run.stderr.contains(needle), "{args:?}: {}", run.stderr);
    }
    assert_eq!(events(&env, "acme"), 0);
}

#[test]
fn refresh_measures_users_and_storage_of_every_tenant() {
    let env = TestEnv::new();
    env.run(&["provision", "silo", "--tier", "premium"])
        .expect(0);
    env.run(&["provision", "pool", "--tier", "free"]).expect(0);
    let v = env
        .run(&["usage", "refresh", "-o", "json"])
        .expect(0)
        .json();
    assert_eq!(v["tenants"], 2);
    let measured: Vec<(String, String, i64)> = env
        .control()
        .query("SELECT t.slug, m.resource, m.quantity FROM measured_usage m JOIN tenants t ON t.id = m.tenant_id ORDER BY 1, 2", &[])
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert_eq!(measured.len(), 4, "{measured:?}");
    let get = |slug: &str, r: &str| measured.iter().find(|m| m.0 == slug && m.1 == r).unwrap().2;
    assert_eq!(get("silo", "users"), 1);
    assert_eq!(get("pool", "users"), 1);
    let silo_bytes: i64 = env
        .admin("postgres")
        .query_one("SELECT pg_database_size($1)", &[&env.silo("silo")])
        .unwrap()
        .get(0);
    assert_eq!(
        get("silo", "storage_mb"),
        (silo_bytes + (1 << 20) - 1) >> 20
    );
    // A pooled tenant's share of a few rows is well under the shared database's size.
    assert!(
        get("pool", "storage_mb") >= 1 && get("pool", "storage_mb") < 8,
        "{measured:?}"
    );
}
