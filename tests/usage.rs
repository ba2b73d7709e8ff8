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
    env.backdate_creation("acme", "2026-10-01T00:00:00Z"); // usage of earlier days below
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
    env.backdate_creation("acme", "2026-10-01T00:00:00Z"); // usage of earlier days below
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
    env.backdate_creation("acme", "2026-10-01T00:00:00Z"); // usage of earlier days below
    env.backdate_creation("bigco", "2026-10-01T00:00:00Z");
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
    env.backdate_creation("acme", "2026-10-01T00:00:00Z"); // usage of earlier days below
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

/// Now plus `offset` (a PostgreSQL interval such as '-1 minute'), as RFC 3339 UTC: usage times
/// are bounded by the real clock.
fn at(env: &TestEnv, offset: &str) -> String {
    env.control()
        .query_one(
            "SELECT to_char((now() + $1::text::interval) AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')",
            &[&offset],
        )
        .unwrap()
        .get(0)
}

#[test]
fn usage_times_lie_within_the_tenants_life_give_or_take_five_minutes() {
    let env = TestEnv::new();
    env.run(&["provision", "acme", "--tier", "premium"])
        .expect(0);
    let (tomorrow, soon, just_before) = (
        at(&env, "1 day"),
        at(&env, "2 minutes"),
        at(&env, "-2 minutes"),
    );
    for (when, needle) in [
        ("0000-01-01", "years 1970 to 9999"),
        ("2000-01-01", "before the tenant was created"),
        (tomorrow.as_str(), "in the future"),
    ] {
        let run = env
            .run(&["usage", "record", "acme", "api_requests", "1", "--at", when])
            .expect(2);
        assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
        assert!(run.stderr.contains(needle), "{when}: {}", run.stderr);
        // The import refuses the same time the same way, naming the line, applying nothing.
        let csv = env.dir.path().join("t.csv");
        std::fs::write(
            &csv,
            format!("acme,api_requests,1,{soon},ok-1\nacme,api_requests,1,{when},bad-2\n"),
        )
        .unwrap();
        let run = env
            .run(&["usage", "import", csv.to_str().unwrap()])
            .expect(2);
        assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
        assert!(
            run.stderr.contains("line 2:") && run.stderr.contains(needle),
            "{when}: {}",
            run.stderr
        );
        assert!(!run.stderr.contains("COPY"), "{}", run.stderr);
        assert_eq!(events(&env, "acme"), 0, "{when}");
    }
    // Within the skew: a little before the creation, a little ahead of now.
    for when in [&just_before, &soon] {
        env.run(&["usage", "record", "acme", "api_requests", "1", "--at", when])
            .expect(0);
    }
    assert_eq!(total(&env, "acme", "api_requests"), 2);
}

#[test]
fn quantities_and_monthly_totals_cannot_overflow() {
    let env = TestEnv::new();
    env.run(&["provision", "dave", "--tier", "premium"])
        .expect(0);
    for q in [
        "9223372036854775807",
        "1000000000001",
        "99999999999999999999",
    ] {
        let run = env
            .run(&["usage", "record", "dave", "sandboxes", q])
            .expect(2);
        // Out of i64: clap's "invalid value '…'"; out of range: tenantctl's "quantity … is out
        // of range"; either names the value.
        assert!(run.stderr.contains(q), "{}", run.stderr);
    }
    assert_eq!(events(&env, "dave"), 0);
    env.run(&["usage", "record", "dave", "sandboxes", "1000000000000"])
        .expect(0);
    // The next unit would pass the monthly maximum: refused, nothing recorded.
    let run = env
        .run(&["usage", "record", "dave", "sandboxes", "1"])
        .expect(2);
    assert!(run.stderr.contains("would make the"), "{}", run.stderr);
    assert!(
        !run.stderr.contains("out of range for type"),
        "{}",
        run.stderr
    );
    // Many in-range rows of one import cannot push the total past it either.
    let csv = env.dir.path().join("big.csv");
    let rows: String = (0..3)
        .map(|i| {
            format!(
                "dave,compute_hours,400000000000,{},c{i}\n",
                at(&env, "-1 minute")
            )
        })
        .collect();
    std::fs::write(
        &csv,
        format!("dave,sandboxes,1,{},s1\n{rows}", at(&env, "-1 minute")),
    )
    .unwrap();
    let run = env
        .run(&["usage", "import", csv.to_str().unwrap()])
        .expect(2);
    assert!(
        run.stderr.contains("line 1: the sandboxes total")
            && run.stderr.contains("line 4: the compute_hours total"),
        "{}",
        run.stderr
    );
    assert_eq!(events(&env, "dave"), 1);
    assert_eq!(total(&env, "dave", "sandboxes"), 1_000_000_000_000);
    // The bill shows the true overage: (10^12 - 5) × 25.00.
    let preview = env
        .run(&[
            "bill",
            "--dry-run",
            "--period",
            &at(&env, "0 s")[..7],
            "-o",
            "json",
        ])
        .expect(0)
        .json();
    let lines = preview["invoices"][0]["lines"].as_array().unwrap().clone();
    let over = lines
        .iter()
        .find(|l| l["kind"] == "overage")
        .unwrap_or_else(|| panic!("{preview}"));
    assert_eq!(over["amount"], "24999999999875.00", "{preview}");
}

#[test]
fn tier_file_limits_and_prices_beyond_the_range_are_refused_before_anything_is_created() {
    let env = TestEnv::new();
    let builtin =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tiers.toml")).unwrap();
    for (from, to, key) in [
        (
            "sandboxes = 5\n",
            "sandboxes = 18446744073709551615\n",
            "sandboxes",
        ),
        (
            "api_requests = 10000\n",
            "api_requests = 1000000000001\n",
            "api_requests",
        ),
        ("users = \"15.00\"", "users = \"1000.01\"", "users"),
        (
            "monthly_price = \"499.00\"",
            "monthly_price = \"1000000.01\"",
            "monthly_price",
        ),
    ] {
        let file = env.dir.path().join("big.toml");
        assert!(builtin.contains(from), "{from}");
        std::fs::write(&file, builtin.replacen(from, to, 1)).unwrap();
        for dry in [true, false] {
            let mut args = vec![
                "--tiers",
                file.to_str().unwrap(),
                "provision",
                "acme",
                "--tier",
                "premium",
            ];
            if dry {
                args.push("--dry-run");
            }
            let run = env.run(&args).expect(2);
            assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
            assert!(
                run.stderr.contains("big.toml, line ")
                    && run.stderr.contains(&format!("key `{key}`"))
                    && run.stderr.contains("out of range"),
                "{}",
                run.stderr
            );
            assert!(!run.stderr.contains("password"), "{}", run.stderr);
        }
    }
    assert!(!env.database_exists(&env.silo("acme")));
}

#[test]
fn the_tenants_stored_hard_limit_applies_whatever_the_tier_file() {
    let env = TestEnv::new();
    env.run(&["provision", "acme", "--tier", "free"]).expect(0);
    assert_eq!(
        env.scalar_i64("SELECT count(*) FROM quotas q JOIN tenants t ON t.id = q.tenant_id WHERE t.slug = 'acme' AND q.hard", &[]),
        5
    );
    let builtin =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tiers.toml")).unwrap();
    // A tier file without `free`, and one whose `free` has overage prices (soft limits).
    let notfree = env.dir.path().join("notfree.toml");
    let start = builtin.find("[tiers.free]").unwrap();
    let end = builtin.find("[tiers.premium]").unwrap();
    std::fs::write(
        &notfree,
        format!("{}{}", &builtin[..start], &builtin[end..]),
    )
    .unwrap();
    let softfree = env.dir.path().join("softfree.toml");
    std::fs::write(
        &softfree,
        builtin.replacen(
            "api_requests = 1000\n",
            "api_requests = 1000\n\n[tiers.free.overage]\napi_requests = \"0.01\"\n",
            1,
        ),
    )
    .unwrap();
    let now = at(&env, "-1 minute");
    let csv = env.dir.path().join("u.csv");
    std::fs::write(
        &csv,
        format!("acme,api_requests,600,{now},a\nacme,api_requests,600,{now},b\nacme,api_requests,400,{now},c\n"),
    )
    .unwrap();
    let tiers = notfree.to_str().unwrap();
    let run = env
        .run(&["--tiers", tiers, "usage", "import", csv.to_str().unwrap()])
        .expect(2);
    assert!(run.stderr.contains("tier `free`"), "{}", run.stderr);
    let run = env
        .run(&[
            "--tiers",
            tiers,
            "usage",
            "record",
            "acme",
            "api_requests",
            "1600",
        ])
        .expect(2);
    assert!(run.stderr.contains("tier `free`"), "{}", run.stderr);
    assert_eq!(events(&env, "acme"), 0);
    // The tier file says soft; the tenant's stored limit is hard: 1,600 never pass 1,000.
    let tiers = softfree.to_str().unwrap();
    let v = env
        .run(&[
            "--tiers",
            tiers,
            "usage",
            "import",
            csv.to_str().unwrap(),
            "-o",
            "json",
        ])
        .expect(3)
        .json();
    assert_eq!(
        (v["accepted"].as_i64(), v["refused"].as_i64()),
        (Some(1), Some(2)),
        "{v}"
    );
    env.run(&[
        "--tiers",
        tiers,
        "usage",
        "record",
        "acme",
        "api_requests",
        "401",
    ])
    .expect(3);
    assert_eq!(total(&env, "acme", "api_requests"), 600);
    let q = env
        .run(&[
            "--tiers",
            tiers,
            "quota",
            "check",
            "acme",
            "api_requests",
            "--amount",
            "401",
            "-o",
            "json",
        ])
        .expect(3)
        .json();
    assert_eq!(q["hard"], true, "{q}");
}

#[test]
fn refresh_measures_what_it_can_around_a_suspended_silo_and_names_failures() {
    let env = TestEnv::new();
    for (slug, tier) in [("closed", "premium"), ("open", "premium"), ("pool", "free")] {
        env.run(&["provision", slug, "--tier", tier]).expect(0);
    }
    env.run(&["usage", "refresh"]).expect(0);
    let when = |slug: &str, r: &str| -> String {
        env.control()
            .query_one(
                "SELECT m.measured_at::text FROM measured_usage m JOIN tenants t ON t.id = m.tenant_id WHERE t.slug = $1 AND m.resource = $2",
                &[&slug, &r],
            )
            .unwrap()
            .get(0)
    };
    let before = (
        when("closed", "users"),
        when("closed", "storage_mb"),
        when("pool", "users"),
    );
    env.run(&["suspend", "closed"]).expect(0);
    // Closed by design: exit 0, its users kept and said so, its size measured all the same.
    let run = env.run(&["usage", "refresh"]).expect(0);
    assert!(
        run.stdout.contains("skipped `closed`: users kept"),
        "{}",
        run.stdout
    );
    assert_eq!(when("closed", "users"), before.0);
    assert_ne!(when("closed", "storage_mb"), before.1);
    assert_ne!(when("pool", "users"), before.2);
    let run = env.run(&["quota", "show", "closed"]).expect(0);
    assert!(run.stderr.contains("not measured now"), "{}", run.stderr);
    let v = env
        .run(&["usage", "refresh", "-o", "json"])
        .expect(0)
        .json();
    assert_eq!(v["skipped"][0]["slug"], "closed", "{v}");
    assert_eq!(v["failed"].as_array().map(Vec::len), Some(0), "{v}");
    // An active silo that cannot be reached: exit 1 naming it, never a stored 0, and the
    // others are measured all the same.
    env.admin("postgres")
        .batch_execute(&format!(
            "ALTER DATABASE \"{}\" ALLOW_CONNECTIONS false",
            env.silo("open")
        ))
        .unwrap();
    let (open_users, pool_users) = (when("open", "users"), when("pool", "users"));
    let run = env.run(&["usage", "refresh"]).expect(1);
    assert!(run.stderr.contains("`open`"), "{}", run.stderr);
    assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
    assert_eq!(when("open", "users"), open_users);
    assert_ne!(when("pool", "users"), pool_users);
    assert_eq!(
        env.scalar_i64("SELECT m.quantity FROM measured_usage m JOIN tenants t ON t.id = m.tenant_id WHERE t.slug = 'open' AND m.resource = 'users'", &[]),
        1
    );
    let run = env.run(&["quota", "show", "open"]).expect(1);
    assert!(
        run.stderr.contains("could not measure users"),
        "{}",
        run.stderr
    );
    env.admin("postgres")
        .batch_execute(&format!(
            "ALTER DATABASE \"{}\" ALLOW_CONNECTIONS true",
            env.silo("open")
        ))
        .unwrap();
}

#[test]
fn an_import_racing_a_purge_refuses_the_purged_tenants_rows_and_applies_the_rest() {
    let env = TestEnv::new();
    for slug in ["victim", "other"] {
        env.run(&["provision", slug, "--tier", "premium"]).expect(0);
    }
    let now = at(&env, "-1 minute");
    let csv = env.dir.path().join("u.csv");
    std::fs::write(
        &csv,
        format!("other,api_requests,5,{now},o1\nvictim,api_requests,7,{now},v1\nother,api_requests,6,{now},o2\n"),
    )
    .unwrap();
    // A purge's last transaction, in flight while the import starts: it commits once the
    // import is waiting on it.
    let mut purge = env.control();
    let mut tx = purge.transaction().unwrap();
    tx.execute(
        "DELETE FROM usage_events WHERE tenant_id = (SELECT id FROM tenants WHERE slug = 'victim')",
        &[],
    )
    .unwrap();
    tx.execute("DELETE FROM tenants WHERE slug = 'victim'", &[])
        .unwrap();
    let mut cmd = env.cmd();
    cmd.args(["usage", "import", csv.to_str().unwrap(), "-o", "json"]);
    let child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let db = env.control_db.clone();
    let mut watcher = env.admin("postgres");
    let t0 = std::time::Instant::now();
    loop {
        let waiting: i64 = watcher
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND wait_event_type = 'Lock'",
                &[&db],
            )
            .unwrap()
            .get(0);
        if waiting > 0 {
            break;
        }
        assert!(
            t0.elapsed().as_secs() < 20,
            "the import never waited on the purge"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    tx.commit().unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (v["accepted"].as_i64(), v["refused"].as_i64()),
        (Some(2), Some(1)),
        "{v}"
    );
    assert_eq!(v["refused_rows"][0]["slug"], "victim", "{v}");
    assert_eq!(total(&env, "other", "api_requests"), 11);
    assert_eq!(
        env.scalar_i64("SELECT count(*) FROM usage_events WHERE key = 'v1'", &[]),
        0
    );
}

#[test]
fn a_limit_whose_hardness_is_not_stored_takes_it_from_the_tier_file() {
    let env = TestEnv::new();
    env.run(&["provision", "acme", "--tier", "free"]).expect(0);
    // As the V7 backfill leaves rows of tiers it does not know.
    env.control()
        .execute("UPDATE quotas SET hard = NULL", &[])
        .unwrap();
    let builtin =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tiers.toml")).unwrap();
    let softfree = env.dir.path().join("softfree.toml");
    std::fs::write(
        &softfree,
        builtin.replacen(
            "api_requests = 1000\n",
            "api_requests = 1000\n\n[tiers.free.overage]\napi_requests = \"0.01\"\n",
            1,
        ),
    )
    .unwrap();
    env.run(&["usage", "record", "acme", "api_requests", "1001"])
        .expect(3);
    let tiers = softfree.to_str().unwrap();
    env.run(&[
        "--tiers",
        tiers,
        "usage",
        "record",
        "acme",
        "api_requests",
        "1001",
    ])
    .expect(0);
    let csv = env.dir.path().join("u.csv");
    std::fs::write(
        &csv,
        format!("acme,api_requests,5,{},k\n", at(&env, "-1 minute")),
    )
    .unwrap();
    env.run(&["usage", "import", csv.to_str().unwrap()])
        .expect(3);
    env.run(&["--tiers", tiers, "usage", "import", csv.to_str().unwrap()])
        .expect(0);
    assert_eq!(total(&env, "acme", "api_requests"), 1006);
}

/// Counts read right: "1 row", "1 of 1 rows refused", "0 duplicates".
#[test]
fn import_counts_read_right() {
    let env = TestEnv::new();
    let file = env.dir.path().join("one.csv");
    std::fs::write(&file, "ghost,api_requests,1,2026-09-11,k1\n").unwrap();
    let run = env
        .run(&["usage", "import", file.to_str().unwrap()])
        .expect(3);
    assert!(
        run.stdout
            .contains(": 1 row: 0 accepted, 0 duplicates, 1 refused ("),
        "{}",
        run.stdout
    );
    assert!(
        run.stderr.contains("1 of 1 rows refused (listed above)"),
        "{}",
        run.stderr
    );
    env.provision("acme", "free");
    env.backdate_creation("acme", "2026-09-01T00:00:00Z");
    std::fs::write(
        &file,
        "acme,api_requests,1,2026-09-11,k1\nacme,api_requests,1,2026-09-11,k1\n",
    )
    .unwrap();
    let run = env
        .run(&["usage", "import", file.to_str().unwrap()])
        .expect(0);
    assert!(
        run.stdout
            .contains(": 2 rows: 1 accepted, 1 duplicate, 0 refused ("),
        "{}",
        run.stdout
    );
    let run = env.run(&["usage", "refresh"]).expect(0);
    assert!(
        run.stdout.starts_with("measured 1 tenant in "),
        "{}",
        run.stdout
    );
}

/// The import's fast path (groups that cannot reach a limit go in with one INSERT) and its
/// careful path (groups that can, in file order) in one file, imported by four processes at
/// once: every key counts once, the hard limit holds, totals equal the events.
#[test]
fn concurrent_imports_mixing_untouched_and_contested_limits_count_each_key_once() {
    let env = TestEnv::new();
    env.run(&["provision", "acme", "--tier", "free"]).expect(0);
    env.run(&["provision", "bigco", "--tier", "premium"])
        .expect(0);
    env.backdate_creation("acme", "2026-10-01T00:00:00Z");
    env.backdate_creation("bigco", "2026-10-01T00:00:00Z");
    env.run(&[
        "usage",
        "record",
        "bigco",
        "api_requests",
        "7",
        "--at",
        "2026-10-02",
        "--key",
        "b0",
    ])
    .expect(0);
    let csv = env.dir.path().join("u.csv");
    // acme October: 300 + 200 (+ a repeated key) under the hard limit of 1000: untouched.
    // acme November: 600, then 600 that would pass 1000: refused, and so is every later row
    // of the month (file order: refused from the first row that passes the limit).
    // bigco: soft; b0 was recorded before, b1 repeats within the file.
    std::fs::write(
        &csv,
        "acme,api_requests,300,2026-10-20,a1\n\
         acme,api_requests,200,2026-10-21,a2\n\
         acme,api_requests,200,2026-10-22,a2\n\
         acme,api_requests,600,2026-11-01,n1\n\
         acme,api_requests,600,2026-11-02,n2\n\
         acme,api_requests,400,2026-11-03,n3\n\
         bigco,api_requests,5000,2026-10-20,b1\n\
         bigco,api_requests,5000,2026-10-21,b1\n\
         bigco,api_requests,7,2026-10-22,b0\n\
         bigco,compute_hours,3,2026-10-23,b2\n",
    )
    .unwrap();
    let argv: Vec<String> = ["usage", "import", csv.to_str().unwrap(), "-o", "json"]
        .map(String::from)
        .to_vec();
    let runs = env.run_concurrently(&vec![argv; 4]);
    let mut accepted = 0;
    for run in &runs {
        assert_eq!(run.code, Some(3), "{}", run.stderr);
        let v = run.json();
        accepted += v["accepted"].as_i64().unwrap();
        let refused: Vec<i64> = v["refused_rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["line"].as_i64().unwrap())
            .collect();
        assert_eq!(refused, [5, 6], "{v}");
    }
    assert_eq!(
        accepted, 5,
        "the five new keys, counted by exactly one import each"
    );
    let oct = "SELECT quantity FROM usage_totals u JOIN tenants t ON t.id = u.tenant_id WHERE t.slug = $1 AND u.resource = $2 AND period = $3::text::date";
    assert_eq!(
        env.scalar_i64(oct, &[&"acme", &"api_requests", &"2026-10-01"]),
        500
    );
    assert_eq!(
        env.scalar_i64(oct, &[&"acme", &"api_requests", &"2026-11-01"]),
        600
    );
    assert_eq!(
        env.scalar_i64(oct, &[&"bigco", &"api_requests", &"2026-10-01"]),
        5007
    );
    assert_eq!(
        env.scalar_i64(oct, &[&"bigco", &"compute_hours", &"2026-10-01"]),
        3
    );
    assert_eq!(events(&env, "acme"), 3);
    assert_eq!(events(&env, "bigco"), 3);
    // Totals are exactly the sum of the events behind them.
    assert_eq!(
        env.scalar_i64(
            "SELECT count(*) FROM usage_totals u WHERE quantity <> (SELECT sum(quantity) FROM usage_events e WHERE e.tenant_id = u.tenant_id AND e.resource = u.resource AND e.period = u.period)",
            &[]
        ),
        0
    );
}

/// A file mostly seen before (a replay with rows appended, one of them twice) is filtered
/// set-based before it is inserted: the new keys count once, in the totals too.
#[test]
fn a_replay_with_new_rows_counts_only_the_new_keys_once() {
    let env = TestEnv::new();
    env.run(&["provision", "bigco", "--tier", "premium"])
        .expect(0);
    env.backdate_creation("bigco", "2026-10-01T00:00:00Z");
    let csv = env.dir.path().join("u.csv");
    let old: String = (0..40)
        .map(|i| format!("bigco,api_requests,2,2026-10-{:02},k{i}\n", 1 + i % 28))
        .collect();
    std::fs::write(&csv, &old).unwrap();
    env.run(&["usage", "import", csv.to_str().unwrap()])
        .expect(0);
    assert_eq!(total(&env, "bigco", "api_requests"), 80);
    std::fs::write(
        &csv,
        format!("{old}bigco,api_requests,5,2026-10-20,n1\nbigco,api_requests,5,2026-10-21,n1\nbigco,compute_hours,3,2026-10-22,n2\n"),
    )
    .unwrap();
    let v = env
        .run(&["usage", "import", csv.to_str().unwrap(), "-o", "json"])
        .expect(0)
        .json();
    assert_eq!(
        (v["accepted"].as_i64(), v["duplicates"].as_i64()),
        (Some(2), Some(41)),
        "{v}"
    );
    assert_eq!(total(&env, "bigco", "api_requests"), 85);
    assert_eq!(total(&env, "bigco", "compute_hours"), 3);
    assert_eq!(events(&env, "bigco"), 42);
}

#[test]
fn a_large_import_on_every_core_stores_each_row_as_its_line_says() {
    // 60,000 rows (3.8 MB): parsed, sorted and encoded in pieces on several threads, staged in
    // 1 MiB messages. Keys in another script (that a split inside a character is safe is
    // `usage_file`'s unit test), times with microseconds, and a leap second at the end of October,
    // which PostgreSQL stores as November's first moment: it counts in November.
    let env = TestEnv::new();
    env.run(&["provision", "acme", "--tier", "premium"])
        .expect(0);
    env.backdate_creation("acme", "2026-10-01T00:00:00Z");
    let n: i64 = 60_000;
    // Row i's time, as its line gives it and as it must be read back.
    let time_of = |i: i64| {
        format!(
            "2026-10-{:02}T10:{:02}:{:02}.{:06}Z",
            i % 28 + 1,
            i % 60,
            (i / 60) % 60,
            i
        )
    };
    let mut csv = String::from("slug,resource,quantity,time,key\n");
    for i in 0..n {
        let resource = if i % 3 == 0 {
            "compute_hours"
        } else {
            "api_requests"
        };
        csv.push_str(&format!(
            "acme,{resource},{},{},ключ-{i}\n",
            i % 5 + 1,
            time_of(i)
        ));
    }
    csv.push_str("acme,api_requests,7,2026-10-31T23:59:60Z,leap\n");
    let file = env.dir.path().join("large.csv");
    std::fs::write(&file, &csv).unwrap();
    let run = env
        .run(&["usage", "import", file.to_str().unwrap()])
        .expect(0);
    assert_eq!(events(&env, "acme"), n + 1, "{}", run.stdout);
    let want = |res: i64| -> i64 {
        (0..n)
            .filter(|i| (i % 3 == 0) == (res == 0))
            .map(|i| i % 5 + 1)
            .sum()
    };
    assert_eq!(total(&env, "acme", "compute_hours"), want(0));
    assert_eq!(total(&env, "acme", "api_requests"), want(1) + 7);
    // Rows read back exactly as their lines gave them.
    for i in [0, 1, 4_999, 29_999, 59_999] {
        let (at, period, quantity): (String, String, i64) = {
            let row = env
                .control()
                .query_one(
                    "SELECT to_char(e.at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'),
                            to_char(e.period, 'YYYY-MM-DD'), e.quantity
                       FROM usage_events e JOIN tenants t ON t.id = e.tenant_id
                      WHERE t.slug = 'acme' AND e.key = $1",
                    &[&format!("ключ-{i}")],
                )
                .unwrap();
            (row.get(0), row.get(1), row.get(2))
        };
        let want_at = time_of(i);
        assert_eq!(
            (at.as_str(), period.as_str(), quantity),
            (want_at.as_str(), "2026-10-01", i % 5 + 1)
        );
    }
    let leap: (String, String) = {
        let row = env
            .control()
            .query_one(
                "SELECT to_char(e.at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS'), to_char(e.period, 'YYYY-MM')
                   FROM usage_events e WHERE e.key = 'leap'",
                &[],
            )
            .unwrap();
        (row.get(0), row.get(1))
    };
    assert_eq!(
        leap,
        ("2026-11-01T00:00:00".to_owned(), "2026-11".to_owned())
    );
    // A replay adds nothing.
    env.run(&["usage", "import", file.to_str().unwrap()])
        .expect(0);
    assert_eq!(events(&env, "acme"), n + 1);
    assert_eq!(total(&env, "acme", "api_requests"), want(1) + 7);
}
