//! Buckets on a real S3-compatible server (`s3s-fs`, started once per test process): siloed
//! tenants' buckets of their own, pooled tenants' prefixes in shared buckets, measured and
//! purged there; foreign buckets left alone; `storage policy`; the bucket-name rules.

use crate::support::s3::{files, S3Env};
use crate::support::TestEnv;

fn mark(env: &TestEnv, slug: &str) -> String {
    let plane: String = env
        .control()
        .query_one("SELECT id::text FROM control_plane", &[])
        .map(|r| r.get(0))
        .unwrap_or_default();
    let id: String = env
        .control()
        .query_one("SELECT id::text FROM tenants WHERE slug = $1", &[&slug])
        .unwrap()
        .get(0);
    format!("tenantctl:{plane}:{id}")
}

fn storage_mb(env: &TestEnv, slug: &str) -> i64 {
    env.scalar_i64(
        "SELECT m.quantity FROM measured_usage m JOIN tenants t ON t.id = m.tenant_id \
         WHERE t.slug = $1 AND m.resource = 'storage_mb'",
        &[&slug],
    )
}

#[test]
fn silo_and_pooled_buckets_are_created_measured_and_purged() {
    let env = TestEnv::new();
    let s3 = S3Env::new(&env);
    env.provision("silo", "premium");
    env.provision("pool", "free");

    for kind in ["uploads", "assets", "backups"] {
        let b = s3.silo_bucket("silo", kind);
        assert_eq!(files(&b), vec![".tenantctl-bucket"], "{}", b.display());
        let text = std::fs::read_to_string(b.join(".tenantctl-bucket")).unwrap();
        assert_eq!(text.trim(), mark(&env, "silo"));
        let p = s3.pooled_prefix("pool", kind);
        assert_eq!(files(&p), vec![".tenantctl-bucket"]);
        let text = std::fs::read_to_string(p.join(".tenantctl-bucket")).unwrap();
        assert_eq!(text.trim(), mark(&env, "pool"));
        // The shared bucket carries the control plane's mark, not a tenant's.
        let shared =
            std::fs::read_to_string(s3.shared_bucket(kind).join(".tenantctl-bucket")).unwrap();
        assert!(shared.trim().ends_with(":shared"), "{shared}");
    }
    let show = env.run(&["show", "pool", "-o", "json"]).expect(0).json();
    let loc = show["buckets"][0]["location"].as_str().unwrap().to_owned();
    assert_eq!(loc, format!("s3://{}-uploads/pool/", s3.shared));

    // 3 MiB in the silo's uploads (two objects, one nested), 2 MiB in the pooled prefix.
    let up = s3.silo_bucket("silo", "uploads");
    std::fs::create_dir_all(up.join("a/b")).unwrap();
    std::fs::write(up.join("x.bin"), vec![1u8; 2 << 20]).unwrap();
    std::fs::write(up.join("a/b/y.bin"), vec![1u8; 1 << 20]).unwrap();
    let pp = s3.pooled_prefix("pool", "assets");
    std::fs::write(pp.join("z.bin"), vec![1u8; 2 << 20]).unwrap();
    env.run(&["usage", "refresh"]).expect(0);
    let silo_db: i64 = env
        .admin("postgres")
        .query_one("SELECT pg_database_size($1)", &[&env.silo("silo")])
        .unwrap()
        .get(0);
    assert_eq!(
        storage_mb(&env, "silo"),
        (silo_db + (3 << 20) + (1 << 20) - 1) >> 20
    );
    let pool_mb = storage_mb(&env, "pool");
    assert!((2..10).contains(&pool_mb), "{pool_mb}");

    // An object of another pooled tenant's in the shared bucket is not counted, nor removed.
    let other = s3.shared_bucket("uploads").join("other");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::write(other.join("keep.bin"), b"keep").unwrap();

    env.run(&["deprovision", "silo", "--purge", "--yes"])
        .expect(0);
    env.run(&["deprovision", "pool", "--purge", "--yes"])
        .expect(0);
    for kind in ["uploads", "assets", "backups"] {
        assert!(!s3.silo_bucket("silo", kind).exists(), "{kind}");
        assert!(files(&s3.pooled_prefix("pool", kind)).is_empty(), "{kind}");
        // The shared buckets stay: other pooled tenants live there.
        assert!(s3.shared_bucket(kind).join(".tenantctl-bucket").is_file());
    }
    assert_eq!(std::fs::read(other.join("keep.bin")).unwrap(), b"keep");
    // The slug is free again, on the store too.
    env.provision("silo", "premium");
}

#[test]
fn a_foreign_bucket_is_never_adopted_emptied_or_deleted() {
    let env = TestEnv::new();
    let s3 = S3Env::new(&env);
    // Someone else's bucket under the silo's name, and a prefix under the pooled one's.
    let theirs = s3.silo_bucket("acme", "assets");
    std::fs::create_dir_all(&theirs).unwrap();
    std::fs::write(theirs.join("data.bin"), b"theirs").unwrap();
    let run = env
        .run(&["provision", "acme", "--tier", "premium"])
        .expect(3);
    assert!(
        run.stderr.contains("refusing to touch bucket")
            && run
                .stderr
                .contains(&format!("s3://{}acme-assets/", s3.bucket_prefix)),
        "{}",
        run.stderr
    );
    assert_eq!(files(&theirs), vec!["data.bin"]);

    env.provision("pool", "free");
    let prefix = s3.pooled_prefix("late", "uploads");
    std::fs::create_dir_all(&prefix).unwrap();
    std::fs::write(prefix.join("f"), b"x").unwrap();
    env.run(&["provision", "late", "--tier", "free"]).expect(3);
    assert_eq!(files(&prefix), vec!["f"]);

    // A tenant whose bucket was replaced by a foreign one (its mark gone) is not purged there.
    env.provision("silo", "premium");
    let up = s3.silo_bucket("silo", "uploads");
    std::fs::write(up.join(".tenantctl-bucket"), "tenantctl:someone:else\n").unwrap();
    std::fs::write(up.join("keep"), b"k").unwrap();
    let run = env
        .run(&["deprovision", "silo", "--purge", "--yes"])
        .expect(3);
    assert!(run.stderr.contains("someone:else"), "{}", run.stderr);
    assert_eq!(files(&up), vec![".tenantctl-bucket", "keep"]);
}

#[test]
fn a_purge_killed_while_deleting_objects_converges_on_rerun() {
    let env = TestEnv::new();
    let s3 = S3Env::new(&env);
    env.provision("silo", "premium");
    env.provision("pool", "free");
    let up = s3.silo_bucket("silo", "uploads");
    let pp = s3.pooled_prefix("pool", "uploads");
    for i in 0..20 {
        std::fs::write(up.join(format!("o{i:02}")), b"data").unwrap();
        std::fs::write(pp.join(format!("o{i:02}")), b"data").unwrap();
    }
    for slug in ["silo", "pool"] {
        let run = env.run_env(
            &["deprovision", slug, "--purge", "--yes"],
            &[("TENANTCTL_FAILPOINT", "storage:removing-objects")],
        );
        assert_ne!(run.code, Some(0), "{}", run.stderr);
    }
    // Killed midway: the marks are still there (so the re-run knows the rest is ours).
    assert!(up.join(".tenantctl-bucket").is_file());
    assert!(pp.join(".tenantctl-bucket").is_file());
    // `purge --expired` finishes interrupted purges.
    env.run(&["purge", "--expired", "--yes"]).expect(0);
    assert!(!up.exists());
    assert!(files(&pp).is_empty());
    for kind in ["assets", "backups"] {
        assert!(!s3.silo_bucket("silo", kind).exists());
    }
}

#[test]
fn storage_policy_confines_to_the_tenants_buckets_or_prefixes() {
    let env = TestEnv::new();
    let s3 = S3Env::new(&env);
    env.provision("silo", "premium");
    env.provision("pool", "free");
    let v = env.run(&["storage", "policy", "silo"]).expect(0).json();
    assert_eq!(v["Version"], "2012-10-17");
    let text = v.to_string();
    let silo_up = format!("arn:aws:s3:::{}silo-uploads", s3.bucket_prefix);
    assert!(text.contains(&format!("\"{silo_up}\"")), "{text}");
    assert!(text.contains(&format!("\"{silo_up}/*\"")), "{text}");
    let v = env.run(&["storage", "policy", "pool"]).expect(0).json();
    let text = v.to_string();
    assert!(
        text.contains(&format!("arn:aws:s3:::{}-uploads/pool/*", s3.shared)),
        "{text}"
    );
    assert!(text.contains("\"s3:prefix\""), "{text}");
    assert!(!text.contains(&format!("arn:aws:s3:::{}-uploads/*", s3.shared)));
    env.run(&["storage", "policy", "ghost"]).expect(3);
}

#[test]
fn bad_storage_settings_are_refused_naming_the_value() {
    let env = TestEnv::new();
    let write = |body: &str| {
        std::fs::write(env.dir.path().join("tenantctl.toml"), body).unwrap();
    };
    for (body, needle) in [
        (
            "[storage]\nbackend = \"s3\"\nshared_buckets = \"Bad_Name\"\n",
            "`Bad_Name`",
        ),
        (
            "[storage]\nbackend = \"s3\"\nshared_buckets = \"a..b\"\n",
            "`a..b`",
        ),
        (
            "[storage]\nbackend = \"s3\"\nbucket_prefix = \"UP-\"\n",
            "`UP-`",
        ),
        (
            "[storage]\nbackend = \"s3\"\nendpoint = \"ftp://x\"\n",
            "`ftp://x`",
        ),
        ("[storage]\nbackend = \"gcs\"\n", "gcs"),
        (
            "[storage]\nendpoint = \"http://x\"\n",
            "backend is not `s3`",
        ),
    ] {
        write(body);
        let run = env.run(&["list"]).expect(2);
        assert!(run.stderr.contains(needle), "{body}: {}", run.stderr);
        assert_eq!(run.stderr.trim().lines().count(), 1, "{}", run.stderr);
    }
    // The local backend has no policies.
    std::fs::remove_file(env.dir.path().join("tenantctl.toml")).unwrap();
    env.provision("acme", "free");
    let run = env.run(&["storage", "policy", "acme"]).expect(2);
    assert!(run.stderr.contains("s3"), "{}", run.stderr);
}

#[test]
fn a_bucket_a_killed_run_left_unmarked_is_finished_not_refused() {
    let env = TestEnv::new();
    let s3 = S3Env::new(&env);
    // Killed between CreateBucket and writing the mark: an empty bucket without a mark.
    let run = env.run_env(
        &["provision", "silo", "--tier", "premium"],
        &[("TENANTCTL_FAILPOINT", "storage:created-unmarked")],
    );
    assert_ne!(run.code, Some(0), "{}", run.stderr);
    let up = s3.silo_bucket("silo", "uploads");
    assert!(up.is_dir() && files(&up).is_empty());
    // The claim written before it was created lets the re-run mark it and go on.
    env.provision("silo", "premium");
    for kind in ["uploads", "assets", "backups"] {
        let b = s3.silo_bucket("silo", kind);
        assert_eq!(files(&b), vec![".tenantctl-bucket"], "{kind}");
    }
    // Killed between deleting the mark and DeleteBucket: the next purge finishes.
    let run = env.run_env(
        &["deprovision", "silo", "--purge", "--yes"],
        &[("TENANTCTL_FAILPOINT", "storage:unmarked")],
    );
    assert_ne!(run.code, Some(0), "{}", run.stderr);
    assert!(up.is_dir() && files(&up).is_empty());
    env.run(&["purge", "--expired", "--yes"]).expect(0);
    for kind in ["uploads", "assets", "backups"] {
        assert!(!s3.silo_bucket("silo", kind).exists(), "{kind}");
    }
    assert_eq!(env.scalar_i64("SELECT count(*) FROM bucket_claims", &[]), 0);
    // Without a claim, an empty unmarked bucket is someone else's: refused, left alone.
    let theirs = s3.silo_bucket("late", "uploads");
    std::fs::create_dir_all(&theirs).unwrap();
    env.run(&["provision", "late", "--tier", "premium"])
        .expect(3);
    assert!(theirs.is_dir());
}
