//! `show` and `list`: tables for people, JSON whose field names are a contract.

use crate::support::TestEnv;

#[test]
fn show_json_has_the_contract_fields() {
    let env = TestEnv::new();
    env.run(&["provision", "acme", "--tier", "premium"])
        .expect(0);
    env.run(&["provision", "small", "--tier", "free"]).expect(0);

    let v = env
        .run(&["show", "acme", "--output", "json"])
        .expect(0)
        .json();
    let id: String = env
        .control()
        .query_one("SELECT id::text FROM tenants WHERE slug = 'acme'", &[])
        .unwrap()
        .get(0);
    assert_eq!(v["id"], id.as_str());
    assert_eq!(v["slug"], "acme");
    assert_eq!(v["name"], "acme");
    assert_eq!(v["tier"], "premium");
    assert_eq!(v["isolation"], "siloed");
    assert_eq!(v["status"], "active");
    assert_eq!(v["database"], env.silo("acme"));
    assert_eq!(v["role"], env.silo("acme"));
    let buckets = v["buckets"].as_array().unwrap();
    assert_eq!(buckets.len(), 3);
    for b in buckets {
        let name = b["name"].as_str().unwrap();
        assert!(name.starts_with("acme-"));
        assert_eq!(
            b["location"],
            env.storage_root().join(name).display().to_string()
        );
    }
    assert_eq!(v["quotas"]["api_requests"]["limit"], 10_000);
    assert_eq!(v["quotas"]["users"]["limit"], 5);
    assert_eq!(v["quotas"].as_object().unwrap().len(), 5);

    let p = env.run(&["show", "small", "-o", "json"]).expect(0).json();
    assert_eq!(p["isolation"], "pooled");
    assert_eq!(p["database"], env.pooled_db());
    assert_eq!(p["role"], env.app_role());

    let table = env.run(&["show", "acme"]).expect(0).stdout;
    assert!(
        !table.contains("\\n"),
        "no escaped newline between buckets:\n{table}"
    );
    assert!(table.contains("acme-uploads ("), "{table}");
    for needle in [
        "acme",
        "premium",
        "siloed",
        "active",
        &env.silo("acme"),
        "api_requests=10000",
    ] {
        assert!(table.contains(needle), "`{needle}` missing:\n{table}");
    }
    // Every bucket on the buckets line, none joined by an escaped newline.
    let line = table
        .lines()
        .find(|l| l.trim_start().starts_with("buckets"))
        .unwrap();
    for kind in ["uploads", "assets", "backups"] {
        assert!(line.contains(&format!("acme-{kind}")), "{table}");
    }
    assert!(!table.contains("\\n"), "{table}");
}

#[test]
fn list_returns_every_tenant() {
    let env = TestEnv::new();
    assert_eq!(
        env.run(&["list", "-o", "json"]).expect(0).json(),
        serde_json::json!([])
    );
    env.run(&["provision", "bravo", "--tier", "free"]).expect(0);
    env.run(&["provision", "alpha", "--tier", "premium"])
        .expect(0);
    let v = env.run(&["list", "-o", "json"]).expect(0).json();
    let arr = v.as_array().unwrap();
    assert_eq!(
        arr.iter()
            .map(|t| t["slug"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["alpha", "bravo"]
    );
    assert_eq!(arr[1]["quotas"]["users"]["limit"], 1);
    let table = env.run(&["list"]).expect(0).stdout;
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 3, "{table}");
    assert!(lines[0].contains("SLUG") && lines[1].contains("alpha") && lines[2].contains("bravo"));
}

#[test]
fn show_of_an_unknown_tenant_exits_3_and_a_bad_slug_exits_2() {
    let env = TestEnv::new();
    let run = env.run(&["show", "ghost"]).expect(3);
    assert_eq!(
        run.stderr.trim(),
        "error: no tenant `ghost`; `tenantctl list` shows the tenants"
    );
    env.run(&["show", "Ghost"]).expect(2);
}

/// A deleted tenant's table says when its retention ends, as README promises (`show` shows
/// `purge_after`): the operator deciding between `restore` and waiting needs that date.
#[test]
fn show_table_gives_a_deleted_tenants_purge_time() {
    let env = TestEnv::new();
    env.run(&["provision", "acme", "--tier", "free", "-q"])
        .expect(0);
    env.run(&["deprovision", "acme", "-q"]).expect(0);
    let json = env.run(&["show", "acme", "-o", "json"]).expect(0).json();
    let until = json["purge_after"].as_str().unwrap().to_owned();
    let table = env.run(&["show", "acme"]).expect(0).stdout;
    let line = table
        .lines()
        .find(|l| l.trim_start().starts_with("purge after"))
        .unwrap_or_else(|| panic!("no purge after line:\n{table}"));
    // JSON writes `Z`, the table the RFC 3339 offset: compare the date and time.
    assert!(line.contains(&until[..19]), "{line} / {until}");
}

/// Every time in a table says its zone: `list`'s CREATED and `audit`'s AT.
#[test]
fn times_in_tables_say_utc() {
    let env = TestEnv::new();
    env.provision("acme", "free");
    let run = env.run(&["list"]).expect(0);
    let row = run.stdout.lines().nth(1).unwrap();
    assert!(
        regex_like_time(row, 16) && row.trim_end().ends_with(" UTC"),
        "{}",
        run.stdout
    );
    let run = env.run(&["audit", "acme"]).expect(0);
    let row = run.stdout.lines().nth(1).unwrap();
    assert!(regex_like_time(row.trim_start(), 19), "{}", run.stdout);
    assert!(row.trim_start()[19..].starts_with(" UTC"), "{}", run.stdout);
}

/// Whether `text` holds a `YYYY-MM-DD HH:MM[:SS]` time (`len` 16 or 19) somewhere.
fn regex_like_time(text: &str, len: usize) -> bool {
    let shape = |s: &[u8]| {
        s.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            10 => *c == b' ',
            13 | 16 => *c == b':',
            _ => c.is_ascii_digit(),
        })
    };
    text.as_bytes().windows(len).any(shape)
}
