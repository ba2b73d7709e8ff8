//! A throwaway PostgreSQL cluster, started once per test (or benchmark) process: `initdb` and
//! `postgres` on a unix socket in a private temporary directory, as the `postgres` user when
//! running as root. The server dies with the process (PR_SET_PDEATHSIG from a thread that never
//! exits). `TENANTCTL_TEST_DATABASE_URL` points everything at an existing server instead.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use tenantctl::cluster::{command_as, initdb, pg_bindir, private_dir, server_account, SUPERUSER};

/// How to reach the server, as a libpq key=value string without a database name.
pub struct Cluster {
    pub base: String,
}

impl Cluster {
    /// The connection string for one database.
    pub fn url(&self, dbname: &str) -> String {
        format!("{} dbname={dbname}", self.base)
    }
}

static CLUSTER: OnceLock<Cluster> = OnceLock::new();

pub fn cluster() -> &'static Cluster {
    CLUSTER.get_or_init(|| match std::env::var("TENANTCTL_TEST_DATABASE_URL") {
        Ok(url) if !url.is_empty() => Cluster {
            base: without_dbname(&url),
        },
        _ => start(),
    })
}

fn without_dbname(url: &str) -> String {
    let config: tokio_postgres::Config = url
        .parse()
        .expect("TENANTCTL_TEST_DATABASE_URL is not a valid connection string");
    let mut parts = Vec::new();
    for host in config.get_hosts() {
        match host {
            tokio_postgres::config::Host::Tcp(h) => parts.push(format!("host={h}")),
            tokio_postgres::config::Host::Unix(p) => parts.push(format!("host={}", p.display())),
        }
    }
    if let Some(port) = config.get_ports().first() {
        parts.push(format!("port={port}"));
    }
    if let Some(user) = config.get_user() {
        parts.push(format!("user={user}"));
    }
    if let Some(pw) = config.get_password() {
        parts.push(format!("password={}", String::from_utf8_lossy(pw)));
    }
    parts.join(" ")
}

/// Removes the directories of earlier test processes that are gone.
fn sweep(root: &Path) {
    for entry in std::fs::read_dir(root).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(pid) = name.strip_prefix("tenantctl-test-") {
            if !Path::new("/proc").join(pid).exists() {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
}

fn start() -> Cluster {
    let tmp = PathBuf::from("/tmp");
    sweep(&tmp);
    let dir = tmp.join(format!("tenantctl-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // The server's account must be able to enter it.
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
        .args([
            "-c",
            "listen_addresses=",
            "-c",
            "fsync=off",
            "-c",
            "full_page_writes=off",
        ])
        .args([
            "-c",
            "synchronous_commit=off",
            "-c",
            "max_connections=300",
            "-c",
            "shared_buffers=64MB",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(dir.join("server.log")).unwrap());
    spawn_tied(cmd);

    let base = format!("host={} user={SUPERUSER}", socket.display());
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match postgres::Client::connect(&format!("{base} dbname=postgres"), postgres::NoTls) {
            Ok(_) => break,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => panic!("the test cluster did not start: {e}"),
        }
    }
    Cluster { base }
}

/// Starts `cmd` (a server) so that it dies with this process. PR_SET_PDEATHSIG fires when the
/// *thread* that forked the child exits, so the child is spawned from a thread that parks
/// forever.
pub fn spawn_tied(mut cmd: std::process::Command) {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec here.
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGQUIT) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn();
        tx.send(child.map(|_| ())).unwrap();
        loop {
            std::thread::park();
        }
    });
    rx.recv().unwrap().expect("starting postgres");
}
