//! `LocalCluster`: the PostgreSQL cluster tenantctl initialises and runs itself under its data
//! directory when no database URL is configured (unix socket only, no TCP port). As root the
//! server runs as the `postgres` user, because `initdb` and `postgres` refuse root.
//! Also the building blocks (finding the binaries, `initdb`) that the test support reuses.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use anyhow::{bail, Context, Result};

/// The superuser `initdb` creates in the local cluster.
pub const SUPERUSER: &str = "postgres";
/// The local cluster's port: no TCP listener, only the name of its socket file `.s.PGSQL.5432`.
pub const PORT: u16 = 5432;
/// A unix socket path may hold 107 bytes; the socket's file name takes 13 of them.
const MAX_SOCKET_DIR: usize = 107 - ".s.PGSQL.5432".len() - 1;

/// The directory of PostgreSQL's server binaries: `explicit`, else `pg_config --bindir`, else
/// the newest `/usr/lib/postgresql/*/bin`.
pub fn pg_bindir(explicit: Option<&Path>) -> Result<PathBuf> {
    if let Some(dir) = explicit {
        return Ok(dir.to_path_buf());
    }
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output() {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if out.status.success() && dir.join("initdb").is_file() {
            return Ok(dir);
        }
    }
    let mut found: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .collect();
    found.sort();
    match found.pop() {
        Some((_, dir)) => Ok(dir),
        None => bail!(
            "PostgreSQL's server binaries were not found (no initdb via pg_config or in /usr/lib/postgresql/*/bin); \
             install the server package (Debian: postgresql-15), set TENANTCTL_PG_BINDIR, or pass --database-url"
        ),
    }
}

/// The account the server must run as: `None` to run as ourselves, `Some((uid, gid))` of the
/// `postgres` user when we are root.
pub fn server_account() -> Result<Option<(u32, u32)>> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Ok(None);
    }
    let name = std::ffi::CString::new(SUPERUSER).expect("no NUL");
    // SAFETY: getpwnam returns NULL or a pointer to static storage that stays valid until the
    // next getpw* call; we copy the two fields out at once.
    let pw = unsafe { libc::getpwnam(name.as_ptr()) };
    if pw.is_null() {
        bail!("running as root, the local cluster must run as the `postgres` user, and there is none; create it or pass --database-url");
    }
    // SAFETY: pw is non-null and points to a valid passwd record (see above).
    Ok(Some(unsafe { ((*pw).pw_uid, (*pw).pw_gid) }))
}

/// A command that runs as `account` when one is given, from `/` so that a cwd the server
/// account cannot read does not matter, with no `PG*` variable of ours: PostgreSQL's programs
/// read `PGDATA`, `PGPORT` and others as defaults, and the operator's shell often holds them for
/// another server. Callers set what they mean. The rest of the environment (`PATH`, locale)
/// is kept, which is why this is not `env_clear`.
pub fn command_as(program: &Path, account: Option<(u32, u32)>) -> Command {
    let mut cmd = Command::new(program);
    cmd.current_dir("/").stdin(Stdio::null());
    // Not a setting, so not config.rs's business: only the names, to take them away.
    for (name, _) in std::env::vars_os() {
        if name.as_encoded_bytes().starts_with(b"PG") {
            cmd.env_remove(name);
        }
    }
    if let Some((uid, gid)) = account {
        // std drops root's supplementary groups when it sets the uid.
        cmd.uid(uid).gid(gid);
    }
    cmd
}

/// Makes `dir` (and its parents) exist, owned by `account` with mode 0700.
pub fn private_dir(dir: &Path, account: Option<(u32, u32)>) -> Result<()> {
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
        .with_context(|| format!("setting the mode of {}", dir.display()))?;
    if let Some((uid, gid)) = account {
        std::os::unix::fs::chown(dir, Some(uid), Some(gid))
            .with_context(|| format!("handing {} to the postgres user", dir.display()))?;
    }
    Ok(())
}

/// Runs `initdb` for a cluster whose superuser is `postgres`, trusted on the local socket
/// only: the socket directory is private to the server's account (and root).
pub fn initdb(bindir: &Path, pgdata: &Path, account: Option<(u32, u32)>) -> Result<()> {
    private_dir(pgdata, account)?;
    let out = command_as(&bindir.join("initdb"), account)
        .arg("-D")
        .arg(pgdata)
        .args([
            "-U",
            SUPERUSER,
            "--auth=trust",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-instructions",
        ])
        .output()
        .with_context(|| format!("running {}", bindir.join("initdb").display()))?;
    check(&out, "initdb")
}

fn check(out: &Output, what: &str) -> Result<()> {
    if out.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    bail!(
        "{what} failed ({}): {}",
        out.status,
        stderr.trim().replace('\n', " | ")
    )
}

/// Fails clearly when `account` could not reach `dir` because an ancestor is closed to others.
fn check_reachable(dir: &Path, account: Option<(u32, u32)>) -> Result<()> {
    let Some((uid, _)) = account else {
        return Ok(());
    };
    for ancestor in dir.ancestors().skip(1) {
        let Ok(meta) = fs::metadata(ancestor) else {
            continue;
        };
        if meta.uid() != uid && meta.mode() & 0o001 == 0 {
            bail!(
                "the local cluster runs as the `postgres` user, which cannot enter {} (mode {:o}); \
                 choose a --data-dir it can reach, such as /var/lib/tenantctl",
                ancestor.display(),
                meta.mode() & 0o777
            );
        }
    }
    Ok(())
}

/// What `local status` reports.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ClusterStatus {
    pub data_dir: String,
    pub pgdata: String,
    /// Where tenantctl expects the server's socket.
    pub socket_dir: String,
    pub initialized: bool,
    pub running: bool,
    /// The postmaster's pid, from its `postmaster.pid`.
    pub pid: Option<u32>,
    /// The socket file the running server says it listens on (`postmaster.pid`).
    pub socket: Option<String>,
    /// The running server's own state: `starting`, `ready`, `stopping`, `standby`.
    pub state: Option<String>,
    /// Whether tenantctl could connect to the running server.
    pub reachable: bool,
    /// Why a running server is not reachable.
    pub problem: Option<String>,
}

/// The lines of a running server's `postmaster.pid` that tenantctl uses: PostgreSQL writes
/// its pid, data directory, start time, port, first socket directory, listen address, shared
/// memory key and state, one a line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Postmaster {
    pub pid: u32,
    pub port: Option<u16>,
    pub socket_dir: Option<PathBuf>,
    pub state: Option<String>,
}

impl Postmaster {
    /// `None` when the file does not name a pid (empty, or cut short while being written).
    pub fn parse(text: &str) -> Option<Postmaster> {
        let lines: Vec<&str> = text.lines().collect();
        let field = |i: usize| lines.get(i).map(|l| l.trim()).filter(|l| !l.is_empty());
        let pid = field(0)?.parse().ok().filter(|&p: &u32| p > 0)?;
        Some(Postmaster {
            pid,
            port: field(3).and_then(|p| p.parse().ok()),
            socket_dir: field(4).map(PathBuf::from),
            state: field(7).map(str::to_owned),
        })
    }

    /// The socket file the server listens on, if it listens on one.
    pub fn socket(&self) -> Option<PathBuf> {
        Some(
            self.socket_dir
                .as_ref()?
                .join(format!(".s.PGSQL.{}", self.port?)),
        )
    }
}

/// Whether `pid` is alive and is the postmaster of `pgdata`: a postmaster works in its data
/// directory, so its `/proc/<pid>/cwd` is that directory. This guards against a stale
/// `postmaster.pid` whose pid now belongs to another process. When `/proc` does not let us
/// look (another user's process), liveness alone decides.
fn is_postmaster_of(pid: u32, pgdata: &Path) -> bool {
    let Ok(pid_t) = i32::try_from(pid) else {
        return false;
    };
    // SAFETY: kill with signal 0 only checks that the process exists.
    let alive = unsafe { libc::kill(pid_t, 0) } == 0
        || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM);
    if !alive {
        return false;
    }
    match fs::read_link(format!("/proc/{pid}/cwd")) {
        Ok(cwd) => match fs::canonicalize(pgdata) {
            Ok(pgdata) => cwd == pgdata,
            Err(_) => false,
        },
        Err(e) => e.kind() == std::io::ErrorKind::PermissionDenied,
    }
}

#[derive(Debug, Clone)]
pub struct LocalCluster {
    data_dir: PathBuf,
    pgdata: PathBuf,
    socket_dir: PathBuf,
    bindir_hint: Option<PathBuf>,
}

impl LocalCluster {
    pub fn new(data_dir: &Path, bindir_hint: Option<&Path>) -> Self {
        LocalCluster {
            data_dir: data_dir.to_path_buf(),
            pgdata: data_dir.join("pg"),
            socket_dir: data_dir.join("run"),
            bindir_hint: bindir_hint.map(Path::to_path_buf),
        }
    }

    pub fn socket_dir(&self) -> &Path {
        &self.socket_dir
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    pub fn is_initialized(&self) -> bool {
        self.pgdata.join("PG_VERSION").is_file()
    }

    /// The socket file tenantctl connects to.
    fn expected_socket(&self) -> PathBuf {
        self.socket_dir.join(format!(".s.PGSQL.{PORT}"))
    }

    /// The server running on this cluster's data directory, found from its own
    /// `postmaster.pid` whatever port or socket it listens on; `None` if none is running.
    pub fn postmaster(&self) -> Option<Postmaster> {
        let text = fs::read_to_string(self.pgdata.join("postmaster.pid")).ok()?;
        let pm = Postmaster::parse(&text)?;
        is_postmaster_of(pm.pid, &self.pgdata).then_some(pm)
    }

    /// Why tenantctl cannot use the running server `pm`, if it listens elsewhere than where
    /// tenantctl connects (as one started with an inherited `PGPORT` did).
    pub fn misplaced(&self, pm: &Postmaster) -> Option<String> {
        let expected = self.expected_socket();
        if pm.socket().as_deref() == Some(expected.as_path()) {
            return None;
        }
        let actual = match pm.socket() {
            Some(s) => format!("listens on {}", s.display()),
            None => "has no unix socket".to_owned(),
        };
        Some(format!(
            "the local cluster in {} is running (pid {}) but {actual}, not on {}; \
             stop it with `tenantctl local stop` and it starts where tenantctl expects it",
            self.data_dir.display(),
            pm.pid,
            expected.display()
        ))
    }

    /// The running server's pid, `None` if none is running, an error if one is running that
    /// tenantctl cannot reach because it listens elsewhere.
    pub fn running_pid(&self) -> Result<Option<u32>> {
        let Some(pm) = self.postmaster() else {
            return Ok(None);
        };
        if let Some(problem) = self.misplaced(&pm) {
            bail!("{problem}");
        }
        Ok(Some(pm.pid))
    }

    /// The status as the files show it; `ops::local` adds whether a connection succeeds.
    pub fn status(&self) -> ClusterStatus {
        let pm = self.postmaster();
        ClusterStatus {
            data_dir: self.data_dir.display().to_string(),
            pgdata: self.pgdata.display().to_string(),
            socket_dir: self.socket_dir.display().to_string(),
            initialized: self.is_initialized(),
            running: pm.is_some(),
            pid: pm.as_ref().map(|p| p.pid),
            socket: pm
                .as_ref()
                .and_then(Postmaster::socket)
                .map(|s| s.display().to_string()),
            state: pm.as_ref().and_then(|p| p.state.clone()),
            reachable: false,
            problem: pm.as_ref().and_then(|p| self.misplaced(p)),
        }
    }

    /// Initialises the cluster if needed and starts it if it is not running, under a file lock
    /// so that concurrent tenantctl processes do it once. Returns true if it started it now.
    pub fn ensure_running(&self) -> Result<bool> {
        // A server still starting has no socket yet: wait for its starter's lock below.
        if let Some(pm) = self.postmaster() {
            if pm.state.as_deref() == Some("ready") {
                return self.running_pid().map(|_| false);
            }
        }
        let socket_len = self.socket_dir.as_os_str().len();
        if socket_len > MAX_SOCKET_DIR {
            bail!(
                "the data directory {} is too long for a unix socket path ({socket_len} bytes, at most {MAX_SOCKET_DIR}); choose a shorter --data-dir",
                self.data_dir.display()
            );
        }
        let account = server_account()?;
        fs::create_dir_all(&self.data_dir)
            .with_context(|| format!("creating the data directory {}", self.data_dir.display()))?;
        check_reachable(&self.pgdata, account)?;
        let lock_path = self.data_dir.join("cluster.lock");
        let lock = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .with_context(|| format!("opening {}", lock_path.display()))?;
        lock.lock()
            .with_context(|| format!("locking {}", lock_path.display()))?;
        if self.running_pid()?.is_some() {
            return Ok(false);
        }
        let bindir = pg_bindir(self.bindir_hint.as_deref())?;
        if !self.is_initialized() {
            self.init(&bindir, account)?;
        }
        private_dir(&self.socket_dir, account)?;
        // The server takes its port from PGPORT when postgresql.conf does not set one.
        let out = command_as(&bindir.join("pg_ctl"), account)
            .env("PGPORT", PORT.to_string())
            .env("PGDATA", &self.pgdata)
            .arg("start")
            .arg("-D")
            .arg(&self.pgdata)
            .arg("-l")
            .arg(self.pgdata.join("server.log"))
            .args(["-w", "-t", "60", "-s"])
            .output()
            .context("running pg_ctl start")?;
        check(
            &out,
            &format!(
                "starting the local cluster (log: {})",
                self.pgdata.join("server.log").display()
            ),
        )?;
        Ok(true)
    }

    /// initdb into a scratch directory, configure, then rename: a crash midway leaves no
    /// half-initialised cluster behind.
    fn init(&self, bindir: &Path, account: Option<(u32, u32)>) -> Result<()> {
        let scratch = self.data_dir.join("pg.init");
        if scratch.exists() {
            fs::remove_dir_all(&scratch)
                .with_context(|| format!("removing {}", scratch.display()))?;
        }
        initdb(bindir, &scratch, account)?;
        let socket = self.socket_dir.display().to_string().replace('\'', "''");
        let mut conf = fs::OpenOptions::new()
            .append(true)
            .open(scratch.join("postgresql.conf"))
            .context("opening postgresql.conf of the new cluster")?;
        writeln!(
            conf,
            "\n# written by tenantctl: unix socket only, private to the server's account\n\
             listen_addresses = ''\nunix_socket_directories = '{socket}'\nunix_socket_permissions = 0700"
        )
        .context("configuring the new cluster")?;
        fs::rename(&scratch, &self.pgdata)
            .with_context(|| format!("moving the new cluster to {}", self.pgdata.display()))
    }

    /// Stops the server running on the cluster's data directory, wherever it listens; false
    /// if none was running. `pg_ctl stop` signals the pid of `postmaster.pid` and waits for the
    /// server to exit; `postmaster()` has checked that the pid is that data directory's server.
    pub fn stop(&self) -> Result<bool> {
        if self.postmaster().is_none() {
            return Ok(false);
        }
        let bindir = pg_bindir(self.bindir_hint.as_deref())?;
        let out = command_as(&bindir.join("pg_ctl"), server_account()?)
            .env("PGDATA", &self.pgdata)
            .arg("stop")
            .arg("-D")
            .arg(&self.pgdata)
            .args(["-m", "fast", "-w", "-t", "60", "-s"])
            .output()
            .context("running pg_ctl stop")?;
        check(&out, "stopping the local cluster")?;
        Ok(true)
    }

    /// Connection settings for one database of the cluster, every one spelled out: nothing
    /// may come from libpq's `PG*` variables, which name the operator's other servers.
    pub fn connect_config(&self, dbname: &str) -> tokio_postgres::Config {
        let mut c = tokio_postgres::Config::new();
        c.host_path(&self.socket_dir)
            .port(PORT)
            .user(SUPERUSER)
            .dbname(dbname)
            .options("")
            .application_name("tenantctl")
            .ssl_mode(tokio_postgres::config::SslMode::Disable)
            .connect_timeout(std::time::Duration::from_secs(10));
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postmaster_pid_lines() {
        let text = "4242\n/var/lib/tenantctl/pg\n1764000000\n55999\n/var/lib/tenantctl/run\n\n  5432001    163840\nready   \n";
        let pm = Postmaster::parse(text).unwrap();
        assert_eq!(pm.pid, 4242);
        assert_eq!(pm.port, Some(55999));
        assert_eq!(pm.state.as_deref(), Some("ready"));
        assert_eq!(
            pm.socket(),
            Some(PathBuf::from("/var/lib/tenantctl/run/.s.PGSQL.55999"))
        );
    }

    #[test]
    fn postmaster_pid_cut_short() {
        assert_eq!(Postmaster::parse(""), None);
        assert_eq!(Postmaster::parse("\n"), None);
        let pm = Postmaster::parse("17\n/x/pg\n").unwrap();
        assert_eq!((pm.pid, pm.port, pm.socket()), (17, None, None));
    }

    #[test]
    fn misplaced_names_both_sockets() {
        let cluster = LocalCluster::new(Path::new("/d"), None);
        let mut pm = Postmaster::parse("9\n/d/pg\n0\n5432\n/d/run\n\n0 0\nready\n").unwrap();
        assert_eq!(cluster.misplaced(&pm), None);
        pm.port = Some(55999);
        let problem = cluster.misplaced(&pm).unwrap();
        assert!(problem.contains("/d/run/.s.PGSQL.55999"), "{problem}");
        assert!(problem.contains("/d/run/.s.PGSQL.5432"), "{problem}");
        assert!(problem.contains("tenantctl local stop"), "{problem}");
    }
}
