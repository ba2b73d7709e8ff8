//! `report revenue` and `report margin` against hand-computed figures: a fleet on three tiers
//! billed for September and October 2026 (history backdated into them), with a new tenant, an
//! upgrade mid-month, a deprovision mid-month, a churn, overage, and storage measurements.

use crate::support::TestEnv;

/// The shipped tier table plus declared costs.
const COSTS: &str = "\n[costs]\nsilo_per_month = \"40.00\"\npooled_tenant_per_month = \"2.00\"\nstorage_gb_month = \"0.10\"\n";

fn tiers_with_costs(env: &TestEnv) -> String {
    let path = env.dir.path().join("tiers-costs.toml");
    let shipped = include_str!("../tiers.toml");
    std::fs::write(&path, format!("{shipped}{COSTS}")).unwrap();
    path.to_str().unwrap().to_owned()
}

fn record(env: &TestEnv, slug: &str, resource: &str, n: &str, at: &str) {
    env.run(&["usage", "record", slug, resource, n, "--at", at])
        .expect(0);
}

fn measure_storage(env: &TestEnv, slug: &str, mb: i64) {
    let n = env
        .control()
        .execute(
            "INSERT INTO measured_usage (tenant_id, resource, quantity)
             SELECT id, 'storage_mb', $2 FROM tenants WHERE slug = $1
             ON CONFLICT (tenant_id, resource) DO UPDATE SET quantity = EXCLUDED.quantity",
            &[&slug, &mb],
        )
        .unwrap();
    assert_eq!(n, 1, "no tenant {slug}");
}

/// The fleet, billed for 2026-09 and 2026-10:
/// - alpha (premium since August): 499.00 both months; 13 compute hours in October (3 over
///   the 10 included at 2.00: 6.00 overage).
/// - beta (premium from 16 September): 15/30 days = 249.50 plus 2.35 of API overage in
///   September (12,345 against 10,000 at 0.001), 499.00 in October.
/// - gamma (premium since August, enterprise from 11 October 15:00): 499.00 in September;
///   October 10/31 days of premium = 160.97 and 21/31 of enterprise (4999.00) = 3386.42.
/// - delta (premium since August, deprovisioned 5 October): 499.00, then 5/31 days = 80.48.
/// - omega (premium since August, deprovisioned 30 September): 499.00, then nothing (churned).
/// - freebie (free since August): 0.00 both months, never paying.
fn fleet(env: &TestEnv) {
    env.provision_at("alpha", "premium", "2026-08-01T00:00:00Z");
    env.provision_at("beta", "premium", "2026-09-16T09:30:00Z");
    env.provision_at("gamma", "premium", "2026-08-01T00:00:00Z");
    env.run(&["set-tier", "gamma", "enterprise"]).expect(0);
    env.backdate("gamma", "set-tier", "2026-10-11T15:00:00Z");
    env.provision_at("delta", "premium", "2026-08-01T00:00:00Z");
    env.provision_at("omega", "premium", "2026-08-01T00:00:00Z");
    env.provision_at("freebie", "free", "2026-08-01T00:00:00Z");
    record(env, "beta", "api_requests", "12345", "2026-09-20");
    record(env, "alpha", "compute_hours", "13", "2026-10-03");
    env.run(&["deprovision", "delta"]).expect(0);
    env.backdate("delta", "deprovision", "2026-10-05T12:00:00Z");
    env.run(&["deprovision", "omega"]).expect(0);
    env.backdate("omega", "deprovision", "2026-09-30T10:00:00Z");
    env.run(&["bill", "--period", "2026-09", "-q"]).expect(0);
    env.run(&["bill", "--period", "2026-10", "-q"]).expect(0);
}

fn tier<'a>(month: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    month["tiers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["tier"] == name)
        .unwrap_or_else(|| panic!("no tier {name}: {month}"))
}

/// (mrr, arr, paying, arpa, new, expansion, contraction, churned, net, revenue, overage, share)
fn figures(f: &serde_json::Value) -> Vec<String> {
    [
        "mrr",
        "arr",
        "tenants_paying",
        "arpa",
        "previous_mrr",
        "new_mrr",
        "expansion_mrr",
        "contraction_mrr",
        "churned_mrr",
        "net_new_mrr",
        "revenue",
        "overage",
        "overage_share_percent",
    ]
    .iter()
    .map(|k| match &f[*k] {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    })
    .collect()
}

#[test]
fn revenue_per_tier_and_in_total_against_hand_computed_figures() {
    let env = TestEnv::new();
    fleet(&env);
    // Without --period: the last billed month, October.
    let r = env
        .run(&["report", "revenue", "--months", "2", "-o", "json"])
        .expect(0)
        .json();
    assert_eq!(r["period"], "2026-10");
    assert_eq!(r["currency"], "USD");
    let months = r["months"].as_array().unwrap();
    assert_eq!(months.len(), 2);
    let (sep, oct) = (&months[0], &months[1]);
    assert_eq!(
        (sep["period"].as_str(), sep["billed"].as_bool()),
        (Some("2026-09"), Some(true))
    );
    assert_eq!(
        (oct["period"].as_str(), oct["billed"].as_bool()),
        (Some("2026-10"), Some(true))
    );

    // September against an August without invoices: everything is new.
    // MRR 499 × 4 + 249.50 = 2245.50; ARPA 2245.50 / 5 = 449.10; overage 2.35 of 2247.85.
    assert_eq!(
        figures(&sep["total"]),
        [
            "2245.50", "26946.00", "5", "449.10", "0.00", "2245.50", "0.00", "0.00", "0.00",
            "2245.50", "2247.85", "2.35", "0.10"
        ]
    );

    // October: 499 + 499 + (160.97 + 3386.42) + 80.48 = 4625.87, 4 paying (freebie pays 0).
    // Expansion: beta 249.50 (its first month was prorated) + gamma 3048.39 = 3297.89;
    // contraction: delta 499 - 80.48 = 418.52; churned: omega 499.00.
    // Net 3297.89 - 418.52 - 499.00 = 2380.37 = 4625.87 - 2245.50. ARPA 4625.87 / 4 = 1156.4675.
    // Revenue 4625.87 + 6.00 = 4631.87; overage share 6.00 / 4631.87 = 0.1295..%.
    assert_eq!(
        figures(&oct["total"]),
        [
            "4625.87", "55510.44", "4", "1156.47", "2245.50", "0.00", "3297.89", "418.52",
            "499.00", "2380.37", "4631.87", "6.00", "0.13"
        ]
    );

    // Per tier, per (tenant, tier): gamma's move churns it from premium (its 160.97 is a
    // contraction of 338.03 there) and makes it new in enterprise.
    // Premium: 499 + 499 + 160.97 + 80.48 = 1239.45 against 2245.50: expansion 249.50 (beta),
    // contraction 338.03 + 418.52 = 756.55, churned 499.00 (omega); ARPA 309.8625.
    assert_eq!(
        figures(tier(oct, "premium")),
        [
            "1239.45", "14873.40", "4", "309.86", "2245.50", "0.00", "249.50", "756.55", "499.00",
            "-1006.05", "1245.45", "6.00", "0.48"
        ]
    );
    assert_eq!(
        figures(tier(oct, "enterprise")),
        [
            "3386.42", "40637.04", "1", "3386.42", "0.00", "3386.42", "0.00", "0.00", "0.00",
            "3386.42", "3386.42", "0.00", "0.00"
        ]
    );
    assert_eq!(
        figures(tier(oct, "free")),
        [
            "0.00", "0.00", "0", "null", "0.00", "0.00", "0.00", "0.00", "0.00", "0.00", "0.00",
            "0.00", "null"
        ]
    );

    // One month by default; CSV has a row per tier and one for the fleet.
    let r = env
        .run(&["report", "revenue", "--period", "2026-09", "-o", "json"])
        .expect(0)
        .json();
    assert_eq!(r["months"].as_array().unwrap().len(), 1);
    assert_eq!(r["months"][0]["total"]["mrr"], "2245.50");
    let csv = env
        .run(&["report", "revenue", "-o", "csv"])
        .expect(0)
        .stdout;
    let lines: Vec<&str> = csv.lines().collect();
    assert!(
        lines[0].starts_with("period,billed,scope,tier,currency,mrr,arr,"),
        "{csv}"
    );
    assert_eq!(lines.len(), 1 + 3 + 1, "{csv}");
    assert!(
        lines.contains(
            &"2026-10,true,total,,USD,4625.87,55510.44,4,1156.47,2245.50,0.00,3297.89,418.52,499.00,2380.37,4631.87,6.00,0.13"
        ),
        "{csv}"
    );
    // The table names the fleet's row and says what MRR is.
    let table = env.run(&["report", "revenue"]).expect(0).stdout;
    assert!(
        table.contains("(all)") && table.contains("4625.87"),
        "{table}"
    );
    assert!(table.contains("overage apart"), "{table}");

    // A month with no billing run is reported, flagged and said on stderr.
    let run = env
        .run(&[
            "report", "revenue", "--period", "2026-10", "--months", "3", "-o", "json",
        ])
        .expect(0);
    let aug = &run.json()["months"][0];
    assert_eq!(
        (aug["period"].as_str(), aug["billed"].as_bool()),
        (Some("2026-08"), Some(false))
    );
    assert_eq!(aug["total"]["mrr"], "0.00");
    assert!(
        run.stderr.contains("not billed yet") && run.stderr.contains("2026-08"),
        "{}",
        run.stderr
    );
    // A month that has not ended has no invoices to report.
    let run = env
        .run(&["report", "revenue", "--period", "2099-01"])
        .expect(2);
    assert!(run.stderr.contains("has not ended"), "{}", run.stderr);
}

#[test]
fn margin_per_tenant_and_tier_against_hand_computed_figures() {
    let env = TestEnv::new();
    fleet(&env);
    measure_storage(&env, "alpha", 2048);
    measure_storage(&env, "beta", 10240);
    measure_storage(&env, "gamma", 1024);
    measure_storage(&env, "delta", 512);
    measure_storage(&env, "freebie", 100);
    let tiers = tiers_with_costs(&env);

    let m = env
        .run(&["report", "margin", "--tiers", &tiers, "-o", "json"])
        .expect(0)
        .json();
    assert_eq!(
        (m["period"].as_str(), m["days"].as_i64()),
        (Some("2026-10"), Some(31))
    );
    assert_eq!(m["costs"]["storage_gb_month"], "0.10");
    let row = |f: &serde_json::Value| -> Vec<String> {
        [
            "revenue",
            "fixed_cost",
            "storage_cost",
            "cost",
            "gross_margin",
            "gross_margin_percent",
        ]
        .iter()
        .map(|k| match &f[*k] {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        })
        .collect()
    };
    let tenant = |slug: &str| {
        m["tenants"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["slug"] == slug)
            .unwrap_or_else(|| panic!("no {slug}: {m}"))
            .clone()
    };
    // Costs: silo 40.00 and pooled tenant 2.00 a month, 0.10 a GB-month (1024 MB), × billed
    // days / 31, each rounded once.
    // alpha: 31 days, 2 GB: 40.00 + 0.20; revenue 499 + 6.00 overage.
    assert_eq!(
        row(&tenant("alpha")),
        ["505.00", "40.00", "0.20", "40.20", "464.80", "92.04"]
    );
    assert_eq!(tenant("alpha")["storage_mb"], 2048);
    // beta: 10 GB: 1.00.
    assert_eq!(
        row(&tenant("beta")),
        ["499.00", "40.00", "1.00", "41.00", "458.00", "91.78"]
    );
    // gamma: premium 10 days (12.90 + 0.03), enterprise 21 days (27.10 + 0.07).
    let gamma = tenant("gamma");
    assert_eq!(
        row(&gamma),
        ["3547.39", "40.00", "0.10", "40.10", "3507.29", "98.87"]
    );
    assert_eq!(gamma["tiers"], serde_json::json!(["premium", "enterprise"]));
    assert_eq!(gamma["billed_days"], 31);
    // delta: 5 days of a silo 6.45, half a GB 0.0080.. -> 0.01.
    assert_eq!(
        row(&tenant("delta")),
        ["80.48", "6.45", "0.01", "6.46", "74.02", "91.97"]
    );
    assert_eq!(tenant("delta")["billed_days"], 5);
    // freebie pays nothing and costs its pooled share and 100 MB (0.0097.. -> 0.01).
    assert_eq!(
        row(&tenant("freebie")),
        ["0.00", "2.00", "0.01", "2.01", "-2.01", "null"]
    );
    assert!(m["tenants"]
        .as_array()
        .unwrap()
        .iter()
        .all(|t| t["slug"] != "omega"));

    let tier_row = |name: &str| {
        m["tiers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["tier"] == name)
            .unwrap_or_else(|| panic!("no tier {name}: {m}"))
            .clone()
    };
    let premium = tier_row("premium");
    assert_eq!(
        (premium["tenants"].as_i64(), premium["isolation"].as_str()),
        (Some(4), Some("siloed"))
    );
    assert_eq!(
        row(&premium),
        ["1245.45", "99.35", "1.24", "100.59", "1144.86", "91.92"]
    );
    assert_eq!(
        row(&tier_row("enterprise")),
        ["3386.42", "27.10", "0.07", "27.17", "3359.25", "99.20"]
    );
    assert_eq!(
        row(&tier_row("free")),
        ["0.00", "2.00", "0.01", "2.01", "-2.01", "null"]
    );
    assert_eq!(
        row(&m["total"]),
        ["4631.87", "128.45", "1.32", "129.77", "4502.10", "97.20"]
    );

    // No measurement: storage costs nothing and says so with a null.
    env.control()
        .execute(
            "DELETE FROM measured_usage WHERE resource = 'storage_mb'",
            &[],
        )
        .unwrap();
    let m = env
        .run(&[
            "report", "margin", "--period", "2026-09", "--tiers", &tiers, "-o", "json",
        ])
        .expect(0)
        .json();
    assert!(m["tenants"][0]["storage_mb"].is_null());
    assert_eq!(m["total"]["storage_cost"], "0.00");
    // September: five silos of 30 days (beta 15: 20.00) and freebie's 2.00.
    assert_eq!(m["total"]["fixed_cost"], "182.00");

    let csv = env
        .run(&["report", "margin", "--tiers", &tiers, "-o", "csv"])
        .expect(0)
        .stdout;
    assert!(
        csv.starts_with("period,scope,slug,tier,isolation,"),
        "{csv}"
    );
    assert!(
        csv.contains("2026-10,tenant,gamma,premium enterprise,,,31,,USD,3547.39,40.00,0.00,40.00,3507.39,98.87"),
        "{csv}"
    );
}

#[test]
fn margin_needs_declared_costs_and_reports_need_a_billed_month() {
    let env = TestEnv::new();
    let run = env.run(&["report", "revenue"]).expect(3);
    assert!(
        run.stderr.contains("no month has been billed yet"),
        "{}",
        run.stderr
    );
    env.run(&["report", "margin"]).expect(3);

    env.provision_at("alpha", "premium", "2026-08-01T00:00:00Z");
    env.run(&["bill", "--period", "2026-09", "-q"]).expect(0);
    let run = env.run(&["report", "margin"]).expect(2);
    assert!(
        run.stderr
            .contains("declares no infrastructure costs: add a [costs] table"),
        "{}",
        run.stderr
    );
    // A costs table with an unknown key or a negative amount: file, line and key.
    for (body, needle) in [
        ("silo_per_month = \"40\"\npooled_tenant_per_month = \"2\"\nstorage_gb_month = \"0.1\"\negress = \"1\"\n", "key `egress`"),
        ("silo_per_month = \"-40\"\npooled_tenant_per_month = \"2\"\nstorage_gb_month = \"0.1\"\n", "key `silo_per_month`"),
        ("silo_per_month = \"40\"\npooled_tenant_per_month = \"2\"\n", "missing field `storage_gb_month`"),
    ] {
        let path = env.dir.path().join("bad-costs.toml");
        let text = format!("{}\n[costs]\n{body}", include_str!("../tiers.toml"));
        std::fs::write(&path, &text).unwrap();
        let run = env
            .run(&["report", "margin", "--tiers", path.to_str().unwrap()])
            .expect(2);
        assert!(run.stderr.contains(needle), "{needle}: {}", run.stderr);
        assert!(run.stderr.contains("bad-costs.toml, line"), "{}", run.stderr);
    }
}
