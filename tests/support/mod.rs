//! Test support: one throwaway cluster per test process, and per test a `TestEnv` with its own
//! control database, its own name prefix (so its tenant databases and roles are its own), its
//! own data directory and bucket root. Everything it made is dropped when the test passes.

pub mod cluster;
pub mod fleet;
pub mod managed;
pub mod s3;

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

pub use cluster::cluster;

static NEXT: AtomicUsize = AtomicUsize::new(1);

pub const BIN: &str = env!("CARGO_BIN_EXE_tenantctl");

/// A finished run of the binary.
#[derive(Debug)]
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    fn from(out: Output) -> Run {
        Run {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Asserts the exit code, showing the output when it differs.
    #[track_caller]
    pub fn expect(self, code: i32) -> Run {
        assert_eq!(
            self.code,
            Some(code),
            "exit code; stdout:\n{}\nstderr:\n{}",
            self.stdout,
            self.stderr
        );
        self
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}", self.stdout))
    }
}

/// One test's world. By default tenantctl runs as its own least-privilege admin role
/// (`adm<id>`: LOGIN CREATEDB CREATEROLE and nothing else, as managed PostgreSQL gives it);
/// `TestEnv::superuser()` runs it as the cluster's superuser instead. The connection helpers
/// (`admin`, `control`) stay superuser, for assertions and fixtures.
pub struct TestEnv {
    pub prefix: String,
    pub control_db: String,
    pub dir: tempfile::TempDir,
    /// The role tenantctl connects as; `None`: the cluster's superuser.
    pub admin_role: Option<String>,
    /// Whether the fleet's extra servers were given this environment's admin role (and so
    /// need cleaning up).
    fleet_used: AtomicBool,
}

impl TestEnv {
    /// A test environment whose control database is set up (`tenantctl init`, as an operator
    /// does once on their server); tenantctl runs as a fresh least-privilege admin role
    /// (LOGIN CREATEDB CREATEROLE, nothing else), the way managed PostgreSQL gives it.
    pub fn new() -> TestEnv {
        let env = TestEnv::bare();
        env.run(&["init", "-q"]).expect(0);
        env
    }

    /// Like `new`, without a control database.
    pub fn bare() -> TestEnv {
        let mut env = TestEnv::superuser_bare();
        let role = format!("adm{}", env.control_db.trim_start_matches("ctl"));
        env.admin("postgres")
            .batch_execute(&format!(
                "CREATE ROLE \"{role}\" LOGIN CREATEDB CREATEROLE NOSUPERUSER NOBYPASSRLS NOREPLICATION"
            ))
            .unwrap();
        env.admin_role = Some(role);
        env
    }

    /// tenantctl runs as the cluster's superuser: for the tests that pin that path.
    pub fn superuser() -> TestEnv {
        let env = TestEnv::superuser_bare();
        env.run(&["init", "-q"]).expect(0);
        env
    }

    fn superuser_bare() -> TestEnv {
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let id = format!("{}_{n}", std::process::id() % 100_000);
        let dir = tempfile::Builder::new()
            .prefix("tenantctl-env-")
            .tempdir()
            .unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        cluster();
        TestEnv {
            prefix: format!("t{id}_"),
            control_db: format!("ctl_{id}"),
            dir,
            admin_role: None,
            fleet_used: AtomicBool::new(false),
        }
    }

    /// The connection string tenantctl is given for `db`: as this test's admin role.
    pub fn url(&self, db: &str) -> String {
        match &self.admin_role {
            Some(role) => format!("{} user={role}", cluster().url(db)),
            None => cluster().url(db),
        }
    }

    pub fn storage_root(&self) -> PathBuf {
        self.dir.path().join("buckets")
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The binary, pointed at this test's control database, prefix and directories, with
    /// nothing inherited that could point it elsewhere.
    pub fn cmd(&self) -> Command {
        let mut cmd = bare_cmd();
        cmd.env("TENANTCTL_DATABASE_URL", self.url(&self.control_db))
            .env("TENANTCTL_NAME_PREFIX", &self.prefix)
            .env("TENANTCTL_STORAGE_ROOT", self.storage_root())
            .env("TENANTCTL_DATA_DIR", self.data_dir())
            .current_dir(self.dir.path());
        cmd
    }

    pub fn run(&self, args: &[&str]) -> Run {
        Run::from(self.cmd().args(args).output().unwrap())
    }

    pub fn run_env(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        let mut cmd = self.cmd();
        for (k, v) in env {
            cmd.env(k, v);
        }
        Run::from(cmd.args(args).output().unwrap())
    }

    /// Runs every command line at once, as separate processes, and waits for them all.
    pub fn run_concurrently(&self, argvs: &[Vec<String>]) -> Vec<Run> {
        let children: Vec<_> = argvs
            .iter()
            .map(|argv| {
                self.cmd()
                    .args(argv)
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        children
            .into_iter()
            .map(|c| Run::from(c.wait_with_output().unwrap()))
            .collect()
    }

    /// The fleet's two extra servers (`s2`, `s3`), with this environment's admin role on them
    /// (LOGIN CREATEDB CREATEROLE, as on the main cluster), not yet registered.
    pub fn extras(&self) -> &'static [fleet::Extra; 2] {
        let extras = fleet::extras();
        if !self.fleet_used.swap(true, Ordering::SeqCst) {
            if let Some(role) = &self.admin_role {
                for x in extras {
                    x.superuser("postgres")
                        .batch_execute(&format!(
                            "CREATE ROLE \"{role}\" LOGIN CREATEDB CREATEROLE NOSUPERUSER NOBYPASSRLS NOREPLICATION"
                        ))
                        .unwrap();
                }
            }
        }
        extras
    }

    /// The extra server `name` (`s2` or `s3`).
    pub fn extra(&self, name: &str) -> &'static fleet::Extra {
        self.extras()
            .iter()
            .find(|x| x.name == name)
            .unwrap_or_else(|| panic!("no extra server {name}"))
    }

    /// The URL `server add` is given for extra server `name`: its socket, this environment's
    /// admin role, database `postgres`, no password (the socket trusts).
    pub fn server_url(&self, name: &str) -> String {
        let role = self
            .admin_role
            .as_deref()
            .unwrap_or(tenantctl::cluster::SUPERUSER);
        self.extra(name).url(role, "postgres")
    }

    /// `server add NAME URL ARGS...` for extra server `name`; it must succeed.
    pub fn add_server(&self, name: &str, args: &[&str]) {
        let url = self.server_url(name);
        let mut argv = vec!["server", "add", name, url.as_str(), "-q"];
        argv.extend_from_slice(args);
        self.run(&argv).expect(0);
    }

    /// The siloed database (and role) name of `slug`.
    pub fn silo(&self, slug: &str) -> String {
        format!("{}{slug}", self.prefix)
    }

    pub fn pooled_db(&self) -> String {
        format!("{}pooled", self.prefix)
    }

    pub fn app_role(&self) -> String {
        format!("{}app", self.prefix)
    }

    /// A superuser connection to `db`.
    pub fn admin(&self, db: &str) -> postgres::Client {
        postgres::Client::connect(&cluster().url(db), postgres::NoTls).unwrap()
    }

    pub fn control(&self) -> postgres::Client {
        self.admin(&self.control_db)
    }

    /// A connection as `role` (trusted on the test cluster's socket) to `db`.
    pub fn connect_as(&self, role: &str, db: &str) -> Result<postgres::Client, postgres::Error> {
        let mut cfg: postgres::Config = cluster().url(db).parse().unwrap();
        cfg.user(role);
        cfg.connect(postgres::NoTls)
    }

    pub fn database_exists(&self, db: &str) -> bool {
        let mut c = self.admin("postgres");
        c.query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&db])
            .unwrap()
            .is_some()
    }

    /// The silo template database (`<prefix>template1`), which the first siloed provisioning
    /// creates and which outlives every tenant.
    pub fn template_db(&self) -> String {
        format!("{}template1", self.prefix)
    }

    /// Databases and roles under this test's prefix, the silo template excepted (it is no
    /// tenant's: what tenants leave behind is counted without it; `template_db` names it).
    pub fn owned_objects(&self) -> (Vec<String>, Vec<String>) {
        let mut c = self.admin("postgres");
        let pat = format!("{}%", self.prefix.replace('_', "\\_"));
        let dbs = c
            .query(
                "SELECT datname FROM pg_database WHERE datname LIKE $1 AND datname <> $2 ORDER BY 1",
                &[&pat, &self.template_db()],
            )
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        let roles = c
            .query(
                "SELECT rolname FROM pg_roles WHERE rolname LIKE $1 ORDER BY 1",
                &[&pat],
            )
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        (dbs, roles)
    }

    /// Test fixture: moves the audit entries of `slug`'s `action` to `at`, so that billing sees
    /// a history in a past month. The append-only trigger is lifted for this one statement.
    pub fn backdate(&self, slug: &str, action: &str, at: &str) {
        let mut c = self.control();
        let mut tx = c.transaction().unwrap();
        tx.batch_execute("ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only")
            .unwrap();
        let n = tx
            .execute(
                "UPDATE audit_log SET at = $3::text::timestamptz WHERE slug = $1 AND action = $2",
                &[&slug, &action, &at],
            )
            .unwrap();
        assert!(n > 0, "no `{action}` entry for {slug}");
        tx.batch_execute("ALTER TABLE audit_log ENABLE TRIGGER audit_log_append_only")
            .unwrap();
        tx.commit().unwrap();
    }

    /// Provisions `slug` on `tier` quietly (its password to /dev/null); it must succeed.
    pub fn provision(&self, slug: &str, tier: &str) {
        self.run(&[
            "provision",
            slug,
            "--tier",
            tier,
            "-q",
            "--password-file",
            "/dev/null",
        ])
        .expect(0);
    }

    /// Provisions `slug` on `tier` with its history moved to `at`.
    pub fn provision_at(&self, slug: &str, tier: &str, at: &str) {
        self.provision(slug, tier);
        self.backdate(slug, "provision.start", at);
        self.backdate(slug, "provision", at);
        self.backdate_creation(slug, at);
    }

    /// Test fixture: moves `slug`'s creation time to `at`, so that usage of earlier days lies
    /// within its life (usage times before a tenant's creation are refused).
    pub fn backdate_creation(&self, slug: &str, at: &str) {
        let n = self
            .control()
            .execute(
                "UPDATE tenants SET created_at = $2::text::timestamptz WHERE slug = $1",
                &[&slug, &at],
            )
            .unwrap();
        assert_eq!(n, 1, "no tenant {slug}");
    }

    /// One value from the control database.
    pub fn scalar_i64(&self, sql: &str, params: &[&(dyn postgres::types::ToSql + Sync)]) -> i64 {
        self.control().query_one(sql, params).unwrap().get(0)
    }
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        if std::thread::panicking() {
            return; // keep everything for a post-mortem
        }
        let mut c = self.admin("postgres");
        let (dbs, roles) = self.owned_objects();
        let mut all_dbs = dbs;
        all_dbs.push(self.control_db.clone());
        all_dbs.push(self.template_db());
        for db in all_dbs {
            let _ = c.batch_execute(&format!("DROP DATABASE IF EXISTS \"{db}\" WITH (FORCE)"));
        }
        for role in roles {
            let _ = c.batch_execute(&format!("DROP ROLE IF EXISTS \"{role}\""));
        }
        if let Some(role) = &self.admin_role {
            // Whatever it still owns or was granted elsewhere (the shared `postgres` database).
            let _ = c.batch_execute(&format!(
                "DROP OWNED BY \"{role}\"; DROP ROLE IF EXISTS \"{role}\""
            ));
        }
        if self.fleet_used.load(Ordering::SeqCst) {
            let pat = format!("{}%", self.prefix.replace('_', "\\_"));
            for x in fleet::extras() {
                let mut c = x.superuser("postgres");
                let mut names = |sql: &str| -> Vec<String> {
                    c.query(sql, &[&pat])
                        .unwrap()
                        .iter()
                        .map(|r| r.get(0))
                        .collect()
                };
                let dbs = names("SELECT datname FROM pg_database WHERE datname LIKE $1");
                let roles = names("SELECT rolname FROM pg_roles WHERE rolname LIKE $1");
                for db in dbs {
                    let _ =
                        c.batch_execute(&format!("DROP DATABASE IF EXISTS \"{db}\" WITH (FORCE)"));
                }
                for role in roles {
                    let _ = c.batch_execute(&format!("DROP ROLE IF EXISTS \"{role}\""));
                }
                if let Some(role) = &self.admin_role {
                    let _ = c.batch_execute(&format!(
                        "DROP OWNED BY \"{role}\"; DROP ROLE IF EXISTS \"{role}\""
                    ));
                }
            }
        }
    }
}

/// The tenant schema's migrations in order, as `(version, "V2__suspensions")`, read from
/// `sql/tenant` so that a new migration does not need every test to be edited.
pub fn tenant_migrations() -> Vec<(i32, String)> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("sql/tenant");
    let mut all: Vec<(i32, String)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let name = e.unwrap().file_name().to_string_lossy().into_owned();
            let stem = name.trim_end_matches(".sql").to_owned();
            let version = stem[1..stem.find("__").unwrap()].parse().unwrap();
            (version, stem)
        })
        .collect();
    all.sort();
    all
}

/// The binary with an environment that points it nowhere.
pub fn bare_cmd() -> Command {
    let mut cmd = Command::new(BIN);
    for var in [
        "DATABASE_URL",
        "PGHOST",
        "PGHOSTADDR",
        "PGPORT",
        "PGUSER",
        "PGPASSWORD",
        "PGDATABASE",
        "PGSSLMODE",
        "PGSSLROOTCERT",
        "PGSSLCERT",
        "PGSSLKEY",
        "PGCONNECT_TIMEOUT",
        "PGAPPNAME",
        "PGPASSFILE",
        "TENANTCTL_DATABASE_URL",
        "TENANTCTL_CONFIG",
        "TENANTCTL_DATA_DIR",
        "TENANTCTL_TIERS",
        "TENANTCTL_STORAGE_ROOT",
        "TENANTCTL_NAME_PREFIX",
        "TENANTCTL_FAILPOINT",
        "TENANTCTL_ACTOR",
        "AWS_PROFILE",
        "AWS_SESSION_TOKEN",
        "AWS_SHARED_CREDENTIALS_FILE",
    ] {
        cmd.env_remove(var);
    }
    // The test S3 server's credentials; only read when a config file selects the s3 backend.
    cmd.env("AWS_ACCESS_KEY_ID", s3::ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", s3::SECRET_KEY);
    cmd.stdin(Stdio::null());
    cmd
}

/// The password `provision` printed on stderr.
pub fn shown_password(stderr: &str) -> String {
    let line = stderr
        .lines()
        .find(|l| l.contains("temporary password"))
        .unwrap_or_else(|| panic!("no password shown on stderr:\n{stderr}"));
    line.split("temporary password ")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned()
}
