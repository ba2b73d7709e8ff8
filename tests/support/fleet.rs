//! Two more throwaway PostgreSQL clusters, so that tests have a fleet of three servers (the
//! main test cluster is the control database's own, `main`): `s2` and `s3`, each `initdb` +
//! `postgres` on a unix socket in the test process's temporary directory (as `postgres` when
//! running as root), started once per test process and dying with it, like the main cluster.
//!
//! A test's environment gets its admin role on them (`TestEnv::fleet`), and its databases and
//! roles there are dropped with the environment, so tests share the clusters as they share the
//! main one.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use tenantctl::cluster::{command_as, initdb, pg_bindir, private_dir, server_account, SUPERUSER};

use super::cluster::spawn_tied;

/// One extra cluster.
pub struct Extra {
    pub name: &'static str,
    /// Its unix-socket directory (port 5432: only the socket file's name).
    pub socket: PathBuf,
}

impl Extra {
    /// A superuser connection to `db`.
    pub fn superuser(&self, db: &str) -> postgres::Client {
        postgres::Client::connect(&self.url(SUPERUSER, db), postgres::NoTls).unwrap()
    }

    /// A key=value connection string for `user` to `db` (trusted on the socket).
    pub fn url(&self, user: &str, db: &str) -> String {
        format!("host={} user={user} dbname={db}", self.socket.display())
    }

    pub fn database_exists(&self, db: &str) -> bool {
        self.superuser("postgres")
            .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&db])
            .unwrap()
            .is_some()
    }
}

static EXTRAS: OnceLock<[Extra; 2]> = OnceLock::new();

/// The two extra clusters, started (in parallel) on first use.
pub fn extras() -> &'static [Extra; 2] {
    EXTRAS.get_or_init(|| {
        let a = std::thread::spawn(|| start("s2"));
        let b = std::thread::spawn(|| start("s3"));
        [a.join().unwrap(), b.join().unwrap()]
    })
}

fn start(name: &'static str) -> Extra {
    let root = PathBuf::from(format!("/tmp/tenantctl-test-{}", std::process::id()));
    std::fs::create_dir_all(&root).unwrap();
    std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o755)).unwrap();
    let dir = root.join(format!("fleet-{name}"));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let bindir = pg_bindir(None).expect("PostgreSQL server binaries (install postgresql-15)");
    let account = server_account().unwrap();
    let pgdata = dir.join("pg");
    let socket = dir.join("run");
    initdb(&bindir, &pgdata, account).expect("initdb");
    private_dir(&socket, account).unwrap();
    let mut cmd = command_as(&bindir.join("postgres"), account);
    cmd.arg("-D")
        .arg(&pgdata)
        .arg("-k")
        .arg(&socket)
        .args(["-c", "listen_addresses=", "-c", "fsync=off"])
        .args(["-c", "full_page_writes=off", "-c", "synchronous_commit=off"])
        .args(["-c", "max_connections=200", "-c", "shared_buffers=32MB"])
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(dir.join("server.log")).unwrap());
    spawn_tied(cmd);
    let extra = Extra { name, socket };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match postgres::Client::connect(&extra.url(SUPERUSER, "postgres"), postgres::NoTls) {
            Ok(_) => break,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => panic!("the fleet's test server {name} did not start: {e}"),
        }
    }
    extra
}
