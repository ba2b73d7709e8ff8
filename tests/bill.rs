//! `bill` and `invoices`: proration, overage, exactly once under retries, concurrency and
//! crashes, dry runs equal to real ones, late usage, upgrade hints, self-explaining lines, the
//! purge warning. Every test bills finished months only (history is backdated into them).

use crate::support::TestEnv;

fn invoices(env: &TestEnv, period: &str) -> serde_json::Value {
    env.run(&["invoices", "list", "--period", period, "-o", "json"])
        .expect(0)
        .json()
}

fn by_slug<'a>(list: &'a serde_json::Value, slug: &str) -> &'a serde_json::Value {
    list.as_array()
        .unwrap()
        .iter()
        .find(|i| i["slug"] == slug)
        .unwrap_or_else(|| panic!("no invoice for {slug}: {list}"))
}

#[test]
fn proration_overage_and_hard_limits_against_hand_computed_amounts() {
    let env = TestEnv::new();
    // Created mid-September: 15 of 30 days.
    env.provision_at("newco", "premium", "2026-09-16T09:30:00Z");
    // Active since August, deprovisioned on 10 September: 10 days.
    env.provision_at("gone", "premium", "2026-08-01T00:00:00Z");
    env.run(&["deprovision", "gone"]).expect(0);
    env.backdate("gone", "deprovision", "2026-09-10T12:00:00Z");
    // A free tenant whose limit was raised by hand: usage past the tier's limit, never billed.
    env.provision_at("freebie", "free", "2026-08-01T00:00:00Z");
    env.run(&["quota", "set", "freebie", "api_requests", "5000"])
        .expect(0);
    env.run(&[
        "usage",
        "record",
        "freebie",
        "api_requests",
        "3000",
        "--at",
        "2026-09-05",
    ])
    .expect(0);
    // Overage: 12,345 requests against 10,000 at 0.001 = 2.345 -> 2.35; 13 compute hours
    // against 10 at 2.00 = 6.00.
    env.run(&[
        "usage",
        "record",
        "newco",
        "api_requests",
        "12345",
        "--at",
        "2026-09-20",
    ])
    .expect(0);
    env.run(&[
        "usage",
        "record",
        "newco",
        "compute_hours",
        "13",
        "--at",
        "2026-09-21",
    ])
    .expect(0);
    // Not billed in September: a tenant created in October.
    env.provision("later", "premium");
    env.backdate("later", "provision.start", "2026-10-02T00:00:00Z");
    env.backdate("later", "provision", "2026-10-02T00:00:00Z");

    let run = env
        .run(&["bill", "--period", "2026-09", "-o", "json"])
        .expect(0)
        .json();
    assert_eq!(run["tenants_billed"], 3);
    let list = invoices(&env, "2026-09");
    assert_eq!(list.as_array().unwrap().len(), 3);

    let newco = by_slug(&list, "newco");
    assert_eq!(newco["currency"], "USD");
    let lines = newco["lines"].as_array().unwrap();
    assert_eq!(lines.len(), 3, "{newco}");
    assert_eq!(
        (
            lines[0]["resource"].is_null(),
            lines[0]["quantity"].as_i64(),
            lines[0]["amount"].as_str()
        ),
        (true, Some(15), Some("249.50"))
    );
    assert_eq!(lines[0]["unit_price"], "499.00");
    let api = lines
        .iter()
        .find(|l| l["resource"] == "api_requests")
        .unwrap();
    assert_eq!(
        (
            api["quantity"].as_i64(),
            api["unit_price"].as_str(),
            api["amount"].as_str()
        ),
        (Some(2345), Some("0.001"), Some("2.35"))
    );
    let compute = lines
        .iter()
        .find(|l| l["resource"] == "compute_hours")
        .unwrap();
    assert_eq!(
        (compute["quantity"].as_i64(), compute["amount"].as_str()),
        (Some(3), Some("6.00"))
    );
    assert_eq!(newco["total"], "257.85");
    for l in lines {
        for f in [
            "description",
            "resource",
            "quantity",
            "unit_price",
            "amount",
        ] {
            assert!(l.get(f).is_some(), "line lacks {f}: {l}");
        }
    }

    let gone = by_slug(&list, "gone");
    assert_eq!(gone["lines"][0]["quantity"], 10);
    assert_eq!(gone["total"], "166.33"); // 499 * 10/30 = 166.333..
    let freebie = by_slug(&list, "freebie");
    assert_eq!(
        freebie["lines"].as_array().unwrap().len(),
        1,
        "a hard-limit tier is never billed overage"
    );
    assert_eq!(freebie["total"], "0.00");
    assert_eq!(run["total"], "424.18");
}

#[test]
fn a_tier_change_mid_period_bills_each_tier_per_day() {
    let env = TestEnv::new();
    env.provision_at("mover", "premium", "2026-08-01T00:00:00Z");
    env.run(&["set-tier", "mover", "enterprise"]).expect(0);
    env.backdate("mover", "set-tier", "2026-09-11T15:00:00Z");
    env.run(&["bill", "--period", "2026-09"]).expect(0);
    let inv = by_slug(&invoices(&env, "2026-09"), "mover").clone();
    let lines = inv["lines"].as_array().unwrap();
    assert_eq!(
        (
            lines[0]["tier"].as_str(),
            lines[0]["quantity"].as_i64(),
            lines[0]["amount"].as_str()
        ),
        (Some("premium"), Some(10), Some("166.33"))
    );
    assert_eq!(
        (
            lines[1]["tier"].as_str(),
            lines[1]["quantity"].as_i64(),
            lines[1]["amount"].as_str()
        ),
        (Some("enterprise"), Some(20), Some("3332.67"))
    );
    assert_eq!(inv["total"], "3499.00");
}

#[test]
fn repeated_and_concurrent_runs_leave_one_invoice_per_tenant() {
    let env = TestEnv::new();
    for s in ["a-one", "a-two", "a-three"] {
        env.provision_at(s, "premium", "2026-08-01T00:00:00Z");
    }
    let argv: Vec<String> = ["bill", "--period", "2026-09", "-o", "json"]
        .map(String::from)
        .to_vec();
    let mut billed = 0;
    for run in env.run_concurrently(&[argv.clone(), argv.clone(), argv]) {
        match run.code {
            Some(0) => billed += run.json()["tenants_billed"].as_i64().unwrap(),
            Some(3) => assert!(run.stderr.contains("busy"), "{}", run.stderr),
            other => panic!("exit {other:?}: {}", run.stderr),
        }
    }
    assert_eq!(billed, 3, "each tenant billed by exactly one run");
    let count = || {
        env.scalar_i64(
            "SELECT count(*) FROM invoices WHERE period = '2026-09-01'",
            &[],
        )
    };
    assert_eq!(count(), 3);
    let again = env.run(&["bill", "--period", "2026-09"]).expect(0);
    assert!(again.stdout.contains("billed already"), "{}", again.stdout);
    assert_eq!(count(), 3);
    assert_eq!(env.scalar_i64("SELECT count(*) FROM invoice_lines", &[]), 3);
}

#[test]
fn a_run_killed_midway_finishes_the_rest_without_touching_the_finished() {
    let env = TestEnv::new();
    for i in 0..5 {
        env.provision_at(&format!("kill{i}"), "premium", "2026-08-01T00:00:00Z");
    }
    let crashed = env.run_env(
        &["bill", "--period", "2026-09"],
        &[
            ("TENANTCTL_FAILPOINT", "bill:batch"),
            ("TENANTCTL_BILL_BATCH", "2"),
        ],
    );
    assert_eq!(crashed.code, None, "{}", crashed.stderr);
    let first: Vec<(i64, String)> = env
        .control()
        .query("SELECT id, created_at::text FROM invoices ORDER BY id", &[])
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(first.len(), 2);
    let finished: Option<String> = env
        .control()
        .query_one("SELECT finished_at::text FROM billing_runs", &[])
        .unwrap()
        .get(0);
    assert!(finished.is_none());

    let run = env
        .run_env(
            &["bill", "--period", "2026-09", "-o", "json"],
            &[("TENANTCTL_BILL_BATCH", "2")],
        )
        .expect(0);
    assert!(run.stderr.contains("finishing the run"), "{}", run.stderr);
    assert_eq!(run.json()["tenants_billed"], 3);
    let after: Vec<(i64, String)> = env
        .control()
        .query("SELECT id, created_at::text FROM invoices ORDER BY id", &[])
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(after.len(), 5);
    assert_eq!(
        &after[..2],
        &first[..],
        "the invoices of the first run are untouched"
    );
    let (n, total): (i32, i64) = {
        let r = env
            .control()
            .query_one(
                "SELECT invoices, total_cents FROM billing_runs WHERE finished_at IS NOT NULL",
                &[],
            )
            .unwrap();
        (r.get(0), r.get(1))
    };
    assert_eq!((n, total), (5, 5 * 49_900));
}

#[test]
fn dry_run_prints_exactly_what_the_run_writes_and_writes_nothing() {
    let env = TestEnv::new();
    env.provision_at("alpha", "premium", "2026-09-03T00:00:00Z");
    env.provision_at("bravo", "enterprise", "2026-08-01T00:00:00Z");
    env.run(&[
        "usage",
        "record",
        "alpha",
        "sandboxes",
        "9",
        "--at",
        "2026-09-09",
    ])
    .expect(0);
    env.run(&[
        "usage",
        "record",
        "bravo",
        "api_requests",
        "123456",
        "--at",
        "2026-09-09",
    ])
    .expect(0);
    let strip = |v: &serde_json::Value| -> Vec<serde_json::Value> {
        v["invoices"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| {
                let mut i = i.clone();
                i.as_object_mut().unwrap().remove("id");
                i
            })
            .collect()
    };
    let dry = env
        .run(&["bill", "--period", "2026-09", "--dry-run", "-o", "json"])
        .expect(0)
        .json();
    assert_eq!(dry["dry_run"], true);
    assert_eq!(
        env.scalar_i64("SELECT count(*) FROM invoices", &[])
            + env.scalar_i64("SELECT count(*) FROM billing_runs", &[]),
        0
    );
    let real = env
        .run(&["bill", "--period", "2026-09", "-o", "json"])
        .expect(0)
        .json();
    assert_eq!(strip(&dry), strip(&real));
    assert_eq!(dry["total"], real["total"]);
    assert_eq!(strip(&real).len(), 2);
    let csv = env
        .run(&["invoices", "list", "--period", "2026-09", "-o", "csv"])
        .expect(0)
        .stdout;
    let rows: Vec<&str> = csv.lines().collect();
    assert!(
        rows[0].starts_with("invoice_id,slug,period,currency,line_no,kind,description"),
        "{csv}"
    );
    let lines = env.scalar_i64("SELECT count(*) FROM invoice_lines", &[]);
    assert_eq!(rows.len() as i64, lines + 1);
}

#[test]
fn usage_that_arrives_after_its_period_was_billed_is_billed_next_time() {
    let env = TestEnv::new();
    env.provision_at("late", "premium", "2026-07-01T00:00:00Z");
    env.run(&[
        "usage",
        "record",
        "late",
        "api_requests",
        "11000",
        "--at",
        "2026-08-10",
    ])
    .expect(0);
    env.run(&["bill", "--period", "2026-08"]).expect(0);
    assert_eq!(
        by_slug(&invoices(&env, "2026-08"), "late")["total"],
        "500.00"
    ); // 499 + 1.00
       // 2,000 more August requests arrive in September.
    env.run(&[
        "usage",
        "record",
        "late",
        "api_requests",
        "2000",
        "--at",
        "2026-08-28",
    ])
    .expect(0);
    env.run(&["bill", "--period", "2026-09"]).expect(0);
    let sep = by_slug(&invoices(&env, "2026-09"), "late").clone();
    let adj = sep["lines"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["kind"] == "adjustment")
        .unwrap_or_else(|| panic!("{sep}"));
    assert_eq!(
        (
            adj["quantity"].as_i64(),
            adj["amount"].as_str(),
            adj["usage_period"].as_str()
        ),
        (Some(2000), Some("2.00"), Some("2026-08"))
    );
    assert_eq!(sep["total"], "501.00");
    // Billed once: October has no second adjustment for it.
    env.run(&["bill", "--period", "2026-10"]).expect(0);
    let oct = by_slug(&invoices(&env, "2026-10"), "late").clone();
    assert!(
        oct["lines"]
            .as_array()
            .unwrap()
            .iter()
            .all(|l| l["kind"] != "adjustment"),
        "{oct}"
    );
}

#[test]
fn an_upgrade_hint_when_the_next_tier_would_cost_less() {
    let env = TestEnv::new();
    env.provision_at("heavy", "premium", "2026-08-01T00:00:00Z");
    env.provision_at("light", "premium", "2026-08-01T00:00:00Z");
    env.run(&[
        "usage",
        "record",
        "heavy",
        "api_requests",
        "12000000",
        "--at",
        "2026-09-10",
    ])
    .expect(0);
    let run = env.run(&["bill", "--period", "2026-09"]).expect(0);
    assert!(run.stdout.contains("(1 upgrade hint)"), "{}", run.stdout);
    assert!(
        run.stdout
            .contains("enterprise would have cost 10949.00 (saving 1540.00)"),
        "{}",
        run.stdout
    );
    let list = invoices(&env, "2026-09");
    // premium: 499 + 11,990,000 * 0.001 = 12489.00; enterprise: 4999 + 11,900,000 * 0.0005 = 10949.00
    assert_eq!(by_slug(&list, "heavy")["total"], "12489.00");
    assert_eq!(
        by_slug(&list, "heavy")["upgrade_hint"],
        serde_json::json!({"tier": "enterprise", "would_cost": "10949.00", "saving": "1540.00"})
    );
    assert!(by_slug(&list, "light")["upgrade_hint"].is_null());
    let id = by_slug(&list, "heavy")["id"].as_i64().unwrap().to_string();
    let shown = env.run(&["invoices", "show", &id]).expect(0).stdout;
    assert!(
        shown.contains("saving 1540.00") && shown.contains("12489.00 USD"),
        "{shown}"
    );
}

#[test]
fn bad_billing_input() {
    let env = TestEnv::bare();
    for p in ["2026-13", "2026-9", "last"] {
        let run = env.run(&["bill", "--period", p]).expect(2);
        assert!(
            run.stderr.contains(&format!("invalid period `{p}`")),
            "{}",
            run.stderr
        );
    }
    assert!(
        !env.database_exists(&env.control_db),
        "bad input created the control database"
    );
    env.run(&["init", "-q"]).expect(0);
    env.run(&["invoices", "show", "999"]).expect(3);
    env.run(&["list", "-o", "csv"]).expect(2);
    // The default period is the previous month; with no tenants it bills nothing.
    let v = env.run(&["bill", "-o", "json"]).expect(0).json();
    assert_eq!(v["tenants_billed"], 0);
}

/// The month `offset` months from the current one (UTC), as YYYY-MM: tests of "not ended yet"
/// follow the real clock.
fn month(env: &TestEnv, offset: i32) -> String {
    env.control()
        .query_one(
            "SELECT to_char(date_trunc('month', now() AT TIME ZONE 'UTC') + make_interval(months => $1), 'YYYY-MM')",
            &[&offset],
        )
        .unwrap()
        .get(0)
}

#[test]
fn a_month_that_has_not_ended_is_never_billed_only_previewed() {
    let env = TestEnv::new();
    env.provision_at("acme", "premium", "2026-08-01T00:00:00Z");
    let (current, next) = (month(&env, 0), month(&env, 1));
    let written = |env: &TestEnv| {
        env.scalar_i64(
            "SELECT (SELECT count(*) FROM billing_runs) + (SELECT count(*) FROM invoices)",
            &[],
        )
    };
    for args in [
        vec!["bill", "--period", &current],
        vec!["bill", "--period", &next],
        vec!["bill", "--period", &next, "--dry-run"],
        vec!["bill", "--period", "9999-12"],
    ] {
        let run = env.run(&args).expect(2);
        assert_eq!(run.stderr.lines().count(), 1, "{args:?}: {}", run.stderr);
        assert!(
            run.stderr.contains("has not ended"),
            "{args:?}: {}",
            run.stderr
        );
        assert_eq!(written(&env), 0, "{args:?}");
    }
    for bad in ["0999-01", "10000-01", "0000-01"] {
        let run = env.run(&["bill", "--period", bad]).expect(2);
        assert!(run.stderr.contains("1970 to 9999"), "{bad}: {}", run.stderr);
    }
    // The current month may be previewed, labelled as unfinished, writing nothing.
    let preview = env
        .run(&["bill", "--dry-run", "--period", &current, "-o", "json"])
        .expect(0)
        .json();
    assert_eq!(preview["unfinished"], true, "{preview}");
    assert_eq!(preview["dry_run"], true);
    by_slug(&preview["invoices"], "acme");
    let table = env
        .run(&["bill", "--dry-run", "--period", &current])
        .expect(0);
    assert!(
        table.stdout.contains("preview of an unfinished month"),
        "{}",
        table.stdout
    );
    // A finished month is not labelled so.
    let last = env
        .run(&[
            "bill",
            "--dry-run",
            "--period",
            &month(&env, -1),
            "-o",
            "json",
        ])
        .expect(0)
        .json();
    assert_eq!(last["unfinished"], false);
    assert_eq!(written(&env), 0);
}

fn record(env: &TestEnv, slug: &str, resource: &str, n: &str, at: &str, key: &str) {
    env.run(&[
        "usage", "record", slug, resource, n, "--at", at, "--key", key,
    ])
    .expect(0);
}

fn lines_of(inv: &serde_json::Value) -> Vec<serde_json::Value> {
    inv["lines"].as_array().unwrap().clone()
}

/// Issue 15, bug 1: late usage of a month whose invoice covered none of that resource was
/// never billed.
#[test]
fn late_usage_of_a_resource_the_billed_month_had_none_of_is_an_adjustment() {
    let env = TestEnv::new();
    env.provision_at("lateco", "premium", "2026-07-01T00:10:00Z");
    env.run(&["bill", "--period", "2026-07"]).expect(0);
    assert_eq!(
        by_slug(&invoices(&env, "2026-07"), "lateco")["total"],
        "499.00"
    );
    record(
        &env,
        "lateco",
        "compute_hours",
        "30",
        "2026-07-15T10:00:00Z",
        "k1",
    );
    env.run(&["bill", "--period", "2026-08"]).expect(0);
    let aug = by_slug(&invoices(&env, "2026-08"), "lateco").clone();
    let lines = lines_of(&aug);
    assert_eq!(lines.len(), 2, "{aug}");
    let adj = &lines[1];
    // (30 − 10) × 2.00 = 40.00; quantity is the billed units, the late units are their own field.
    assert_eq!(
        (
            adj["kind"].as_str(),
            adj["resource"].as_str(),
            adj["usage_period"].as_str(),
            adj["tier"].as_str(),
            adj["quantity"].as_i64(),
            adj["unit_price"].as_str(),
            adj["amount"].as_str(),
        ),
        (
            Some("adjustment"),
            Some("compute_hours"),
            Some("2026-07"),
            Some("premium"),
            Some(20),
            Some("2.00"),
            Some("40.00")
        )
    );
    assert_eq!(
        (
            adj["included"].as_i64(),
            adj["month_usage"].as_i64(),
            adj["late_units"].as_i64()
        ),
        (Some(10), Some(30), Some(30))
    );
    assert!(
        adj["description"]
            .as_str()
            .unwrap()
            .contains("30 units recorded after its invoice"),
        "{adj}"
    );
    assert_eq!(aug["total"], "539.00");
    assert!(aug["upgrade_hint"].is_null());
    // Exactly once: September has no second adjustment, and the purge warning is quiet now.
    env.run(&["bill", "--period", "2026-09"]).expect(0);
    let sep = by_slug(&invoices(&env, "2026-09"), "lateco").clone();
    assert_eq!(sep["total"], "499.00", "{sep}");
}

/// Issue 15, bug 2: the hint compared the next tier with the whole invoice, adjustments for
/// earlier months included.
#[test]
fn the_upgrade_hint_ignores_adjustments_for_earlier_months() {
    let env = TestEnv::new();
    env.provision_at("hintco", "premium", "2026-07-01T00:10:00Z");
    record(
        &env,
        "hintco",
        "sandboxes",
        "6",
        "2026-07-10T10:00:00Z",
        "k1",
    );
    env.run(&["bill", "--period", "2026-07"]).expect(0);
    // 499.00 + (6 − 5) × 25.00
    assert_eq!(
        by_slug(&invoices(&env, "2026-07"), "hintco")["total"],
        "524.00"
    );
    record(
        &env,
        "hintco",
        "sandboxes",
        "800",
        "2026-07-20T10:00:00Z",
        "k2",
    );
    let run = env
        .run(&["bill", "--period", "2026-08", "-o", "json"])
        .expect(0)
        .json();
    assert_eq!(run["upgrade_hints"], 0);
    let aug = by_slug(&invoices(&env, "2026-08"), "hintco").clone();
    // (806 − 5) × 25.00 − 25.00 = 20,000.00 for July; August itself is 499.00 against
    // enterprise's 4,999.00: no hint.
    assert_eq!(aug["total"], "20499.00");
    let adj = &lines_of(&aug)[1];
    assert_eq!(
        (
            adj["quantity"].as_i64(),
            adj["amount"].as_str(),
            adj["late_units"].as_i64()
        ),
        (Some(800), Some("20000.00"), Some(800))
    );
    assert!(aug["upgrade_hint"].is_null(), "{aug}");
}

#[test]
fn every_line_checks_by_itself_and_the_tier_is_in_table_and_csv() {
    let env = TestEnv::new();
    env.provision_at("check", "premium", "2026-07-01T00:00:00Z");
    record(&env, "check", "api_requests", "12345", "2026-07-03", "a1");
    env.run(&["bill", "--period", "2026-07"]).expect(0);
    record(&env, "check", "api_requests", "1000", "2026-07-04", "a2");
    env.run(&["bill", "--period", "2026-08"]).expect(0);
    let aug = by_slug(&invoices(&env, "2026-08"), "check").clone();
    let micros = |s: &str| -> i64 {
        let (w, f) = s.split_once('.').unwrap();
        w.parse::<i64>().unwrap() * 1_000_000 + format!("{f:0<6}").parse::<i64>().unwrap()
    };
    let cents_of = |units: i64, price: &str| (units * micros(price) + 5_000) / 10_000;
    for l in lines_of(&by_slug(&invoices(&env, "2026-07"), "check").clone())
        .into_iter()
        .chain(lines_of(&aug))
    {
        let amount = micros(l["amount"].as_str().unwrap()) / 10_000;
        let price = l["unit_price"].as_str().unwrap();
        let q = l["quantity"].as_i64().unwrap();
        match l["kind"].as_str().unwrap() {
            "base" => assert!(l["included"].is_null(), "{l}"),
            "overage" => {
                let (inc, used) = (
                    l["included"].as_i64().unwrap(),
                    l["month_usage"].as_i64().unwrap(),
                );
                assert_eq!(q, used - inc, "{l}");
                assert_eq!(amount, cents_of(q, price), "{l}");
            }
            _ => {
                let inc = l["included"].as_i64().unwrap();
                let now = l["month_usage"].as_i64().unwrap();
                let late = l["late_units"].as_i64().unwrap();
                let (after, before) = ((now - inc).max(0), (now - late - inc).max(0));
                assert_eq!(q, after - before, "{l}");
                assert_eq!(
                    amount,
                    cents_of(after, price) - cents_of(before, price),
                    "{l}"
                );
            }
        }
    }
    // 13,345 − 10,000 = 3,345 × 0.001 = 3.345 → 3.35, minus the 2.35 billed: 1.00.
    assert_eq!(aug["total"], "500.00");
    let id = aug["id"].as_i64().unwrap().to_string();
    let table = env.run(&["invoices", "show", &id]).expect(0).stdout;
    assert!(
        table.contains("TIER") && table.contains("premium"),
        "{table}"
    );
    let csv = env
        .run(&["invoices", "list", "--period", "2026-08", "-o", "csv"])
        .expect(0)
        .stdout;
    let rows: Vec<&str> = csv.lines().collect();
    assert!(
        rows[0].ends_with(
            ",tier,quantity,unit_price,amount,usage_period,invoice_total,included,month_usage,late_units"
        ),
        "{csv}"
    );
    assert!(
        rows[2].contains(",premium,") && rows[2].ends_with(",10000,13345,1000"),
        "{csv}"
    );
}

#[test]
fn purging_a_tenant_with_unbilled_usage_warns() {
    let env = TestEnv::new();
    env.provision_at("paid", "premium", "2026-07-01T00:00:00Z");
    env.provision_at("owes", "premium", "2026-07-01T00:00:00Z");
    record(&env, "paid", "api_requests", "500", "2026-07-02", "p1");
    record(&env, "owes", "api_requests", "500", "2026-07-02", "o1");
    env.run(&["bill", "--period", "2026-07"]).expect(0);
    // Recorded after July's invoice: not billed yet.
    record(&env, "owes", "compute_hours", "3", "2026-07-05", "o2");
    for slug in ["paid", "owes"] {
        env.run(&["deprovision", slug]).expect(0);
    }
    let quiet = env
        .run(&["deprovision", "paid", "--purge", "--yes"])
        .expect(0);
    assert!(!quiet.stderr.contains("warning"), "{}", quiet.stderr);
    // A cron job runs with -q: the warning reaches it anyway, like an error would.
    let warned = env
        .run(&["deprovision", "owes", "--purge", "--yes", "-q"])
        .expect(0);
    assert!(
        warned.stderr.contains(
            "warning: `owes` has usage no invoice has billed yet (3 compute_hours of 2026-07)"
        ),
        "{}",
        warned.stderr
    );
}

/// V8 gives invoices written before it the zero coverage rows they lacked, so late usage of
/// their months is billed too.
#[test]
fn v8_backfills_the_zero_coverage_of_earlier_invoices() {
    let env = TestEnv::new();
    env.provision_at("legacy", "premium", "2026-07-01T00:00:00Z");
    env.run(&["bill", "--period", "2026-07"]).expect(0);
    // As an invoice written before V8 left it: no rows for resources without usage.
    let mut c = env.control();
    c.execute("DELETE FROM billed_usage WHERE quantity = 0", &[])
        .unwrap();
    let sql = include_str!("../sql/control/V8__billing_lines_explain.sql");
    let backfill = &sql[sql.find("INSERT INTO billed_usage").unwrap()..];
    assert_eq!(c.execute(backfill, &[]).unwrap(), 3);
    let tier: String = c
        .query_one("SELECT DISTINCT tier FROM billed_usage", &[])
        .unwrap()
        .get(0);
    assert_eq!(tier, "premium");
    record(&env, "legacy", "sandboxes", "7", "2026-07-09", "s1");
    env.run(&["bill", "--period", "2026-08"]).expect(0);
    // (7 − 5) × 25.00
    assert_eq!(
        by_slug(&invoices(&env, "2026-08"), "legacy")["total"],
        "549.00"
    );
}

/// The summary counts read right: "billed 1 tenant", "0 upgrade hints".
#[test]
fn the_summary_reads_singular_for_one_tenant() {
    let env = TestEnv::new();
    env.provision_at("solo", "free", "2026-08-01T00:00:00Z");
    let run = env
        .run(&["bill", "--period", "2026-09", "--dry-run"])
        .expect(0);
    assert!(
        run.stdout
            .contains("dry run, nothing written: would bill 1 tenant for 2026-09: total"),
        "{}",
        run.stdout
    );
    let run = env.run(&["bill", "--period", "2026-09"]).expect(0);
    assert!(
        run.stdout
            .contains("billed 1 tenant for 2026-09: total 0.00"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("(0 upgrade hints)"), "{}", run.stdout);
    // CSV carries rows only; the summary goes to stderr.
    let run = env
        .run(&["bill", "--period", "2026-09", "-o", "csv"])
        .expect(0);
    assert!(run.stdout.starts_with("invoice_id,slug,"), "{}", run.stdout);
    assert!(
        run.stderr.contains("2026-09 was billed already"),
        "{}",
        run.stderr
    );
}

// ---- measured resources: users at the month's peak, storage_mb in MB-months ----

/// Test fixture: one day's history row, as `usage refresh` folds a day's measurements.
#[allow(clippy::too_many_arguments)]
fn measured_day(
    env: &TestEnv,
    slug: &str,
    resource: &str,
    day: &str,
    peak: i64,
    first_at: &str,
    last: (i64, &str),
    area: i64,
) {
    let at = |s: &str| chrono::DateTime::parse_from_rfc3339(s).unwrap();
    let day = chrono::NaiveDate::parse_from_str(day, "%Y-%m-%d").unwrap();
    let n = env
        .control()
        .execute(
            "INSERT INTO measurements (tenant_id, resource, day, samples, peak, first_at, last_value, last_at, area)
             SELECT id, $2, $3, 1, $4, $5, $6, $7, $8 FROM tenants WHERE slug = $1",
            &[&slug, &resource, &day, &peak, &at(first_at), &last.0, &at(last.1), &area],
        )
        .unwrap();
    assert_eq!(n, 1);
}

#[test]
fn usage_refresh_appends_to_the_measurement_history() {
    let env = TestEnv::new();
    env.provision("meas", "premium");
    env.run(&["usage", "refresh", "meas"]).expect(0);
    std::thread::sleep(std::time::Duration::from_millis(1100));
    env.run(&["usage", "refresh", "meas"]).expect(0);
    let rows = env
        .control()
        .query(
            "SELECT m.resource, m.samples, m.peak, m.last_value, m.area,
                    extract(epoch FROM m.last_at - m.first_at)::bigint, m.day = (now() AT TIME ZONE 'UTC')::date,
                    u.quantity
             FROM measurements m JOIN tenants t ON t.id = m.tenant_id
             JOIN measured_usage u ON u.tenant_id = m.tenant_id AND u.resource = m.resource
             WHERE t.slug = 'meas' ORDER BY 1",
            &[],
        )
        .unwrap();
    assert_eq!(rows.len(), 2, "one row per measured resource and day");
    for r in &rows {
        let resource: String = r.get(0);
        let (samples, peak, last, area, secs): (i32, i64, i64, i64, i64) =
            (r.get(1), r.get(2), r.get(3), r.get(4), r.get(5));
        assert_eq!(
            samples, 2,
            "{resource}: both refreshes folded into today's row"
        );
        assert!(r.get::<_, bool>(6), "{resource}: dated today");
        assert_eq!(
            r.get::<_, i64>(7),
            last,
            "{resource}: the latest level is kept for checks"
        );
        assert!(secs >= 1, "{resource}: {secs}");
        // The level is constant between two refreshes: the integral is level × seconds.
        assert_eq!((peak, area), (last, last * secs), "{resource}");
    }
}

#[test]
fn users_bill_at_the_months_peak_and_storage_as_its_average() {
    let env = TestEnv::new();
    env.provision_at("meter", "premium", "2026-09-01T00:00:00Z");
    env.provision_at("freeb", "free", "2026-09-01T00:00:00Z");
    // `measured_usage` names the measured pairs; today's measurement lies after October.
    env.run(&["usage", "refresh"]).expect(0);
    for slug in ["meter", "freeb"] {
        // September's last levels carry into October: 3 users, 800 MB.
        measured_day(
            &env,
            slug,
            "users",
            "2026-09-20",
            3,
            "2026-09-20T08:00:00Z",
            (3, "2026-09-20T08:00:00Z"),
            0,
        );
        measured_day(
            &env,
            slug,
            "storage_mb",
            "2026-09-20",
            800,
            "2026-09-20T08:00:00Z",
            (800, "2026-09-20T08:00:00Z"),
            0,
        );
        // 9 users from 12:00 to 18:00 on the 10th, then 4: the month's peak is 9.
        measured_day(
            &env,
            slug,
            "users",
            "2026-10-10",
            9,
            "2026-10-10T12:00:00Z",
            (4, "2026-10-10T18:00:00Z"),
            9 * 6 * 3600,
        );
        // 2,000 MB from the 10th, 00:00; 3,000 MB from the 21st, 00:00, then 1,000 MB from
        // 12:00 (that day averages 2,000); no measurement on the other days (carried forward).
        measured_day(
            &env,
            slug,
            "storage_mb",
            "2026-10-10",
            2000,
            "2026-10-10T00:00:00Z",
            (2000, "2026-10-10T00:00:00Z"),
            0,
        );
        measured_day(
            &env,
            slug,
            "storage_mb",
            "2026-10-21",
            3000,
            "2026-10-21T00:00:00Z",
            (1000, "2026-10-21T12:00:00Z"),
            3000 * 12 * 3600,
        );
    }
    env.run(&["bill", "--period", "2026-10"]).expect(0);
    let oct = invoices(&env, "2026-10");
    let meter = by_slug(&oct, "meter");
    let line = |r: &str| {
        lines_of(meter)
            .into_iter()
            .find(|l| l["resource"] == r)
            .unwrap_or_else(|| panic!("no {r} line: {meter}"))
    };
    // Users: peak 9 against 5 included, 4 × 15.00.
    let users = line("users");
    assert_eq!(
        (
            &users["kind"],
            &users["quantity"],
            &users["amount"],
            &users["included"],
            &users["month_usage"]
        ),
        (
            &"overage".into(),
            &4.into(),
            &"60.00".into(),
            &5.into(),
            &9.into()
        ),
        "{users}"
    );
    assert!(
        users["description"]
            .as_str()
            .unwrap()
            .contains("peak of 9 users"),
        "{users}"
    );
    // Storage: MB-days 800 × 9 + 2,000 × 11 + 2,000 + 1,000 × 10 = 41,200; / 31 days =
    // 1,329.03 → 1,329 MB-months, 329 over 1,000 × 0.05 = 16.45.
    let storage = line("storage_mb");
    assert_eq!(
        (
            &storage["quantity"],
            &storage["amount"],
            &storage["month_usage"]
        ),
        (&329.into(), &"16.45".into(), &1329.into()),
        "{storage}"
    );
    assert!(
        storage["description"]
            .as_str()
            .unwrap()
            .contains("1329 storage_mb-months (the month's average)"),
        "{storage}"
    );
    assert_eq!(meter["total"], "575.45"); // 499.00 + 60.00 + 16.45
                                          // Free: hard limits (no overage price) for users and storage: nothing billed.
    let freeb = by_slug(&oct, "freeb");
    assert_eq!(lines_of(freeb).len(), 1, "{freeb}");
    assert_eq!(freeb["total"], "0.00");
    // What each invoice covered, per measured resource, is recorded like metered usage.
    let covered = env
        .control()
        .query(
            "SELECT i.slug, b.resource, b.quantity FROM billed_usage b JOIN invoices i ON i.id = b.invoice_id
             WHERE b.resource IN ('users', 'storage_mb') ORDER BY 1, 2",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get::<_, String>(0), r.get::<_, String>(1), r.get::<_, i64>(2)))
        .collect::<Vec<_>>();
    let expect = |s: &str| {
        vec![
            (s.to_owned(), "storage_mb".to_owned(), 1329),
            (s.to_owned(), "users".to_owned(), 9),
        ]
    };
    assert_eq!(covered, [expect("freeb"), expect("meter")].concat());
    // A re-run creates nothing, and a measurement stored now belongs to a later month.
    env.run(&["usage", "refresh"]).expect(0);
    let again = env
        .run(&["bill", "--period", "2026-10", "-o", "json"])
        .expect(0)
        .json();
    assert_eq!(again["already_billed"], true, "{again}");
    assert_eq!(env.scalar_i64("SELECT count(*) FROM invoices", &[]), 2);
    assert_eq!(env.scalar_i64("SELECT count(*) FROM invoice_lines", &[]), 4);
    assert_eq!(invoices(&env, "2026-10"), oct);
}

#[test]
fn measured_usage_of_part_of_a_month_bills_that_part() {
    let env = TestEnv::new();
    // Created on October 21st (11 of 31 days billed) at a constant 3,100 MB and 7 users.
    env.provision_at("late-start", "premium", "2026-10-21T10:00:00Z");
    env.run(&["usage", "refresh", "late-start"]).expect(0);
    measured_day(
        &env,
        "late-start",
        "users",
        "2026-10-21",
        7,
        "2026-10-21T10:00:00Z",
        (7, "2026-10-21T10:00:00Z"),
        0,
    );
    measured_day(
        &env,
        "late-start",
        "storage_mb",
        "2026-10-21",
        3100,
        "2026-10-21T00:00:00Z",
        (3100, "2026-10-21T00:00:00Z"),
        0,
    );
    env.run(&["bill", "--period", "2026-10"]).expect(0);
    let inv = by_slug(&invoices(&env, "2026-10"), "late-start").clone();
    let q = |r: &str| {
        lines_of(&inv)
            .into_iter()
            .find(|l| l["resource"] == r)
            .map(|l| {
                (
                    l["month_usage"].as_i64().unwrap(),
                    l["amount"].as_str().unwrap().to_owned(),
                )
            })
    };
    // Users: the peak, whatever the days: 7 − 5 = 2 × 15.00.
    assert_eq!(q("users"), Some((7, "30.00".to_owned())), "{inv}");
    // Storage: 3,100 × 11 / 31 = 1,100 MB-months; 100 over × 0.05 = 5.00.
    assert_eq!(q("storage_mb"), Some((1100, "5.00".to_owned())), "{inv}");
}

#[test]
fn quota_check_says_how_measured_overage_is_billed() {
    let env = TestEnv::new();
    env.provision("soft", "premium");
    let users = env
        .run(&["quota", "check", "soft", "users", "--amount", "10"])
        .expect(0);
    assert!(
        users
            .stdout
            .contains("over the soft limit of 5, billed if the month's peak of users passes it"),
        "{}",
        users.stdout
    );
    let storage = env
        .run(&["quota", "check", "soft", "storage_mb", "--amount", "5000"])
        .expect(0);
    assert!(
        storage
            .stdout
            .contains("billed if the month's average (MB-months) passes it"),
        "{}",
        storage.stdout
    );
    let api = env
        .run(&[
            "quota",
            "check",
            "soft",
            "api_requests",
            "--amount",
            "20000",
        ])
        .expect(0);
    assert!(api.stdout.contains("billed as overage"), "{}", api.stdout);
}
