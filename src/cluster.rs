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
/// account cannot read does not matter.
pub fn command_as(program: &Path, account: Option<(u32, u32)>) -> Command {
    let mut cmd = Command::new(program);
    cmd.current_dir("/").stdin(Stdio::null());
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
    pub socket_dir: String,
    pub initialized: bool,
    pub running: bool,
    pub pid: Option<u32>,
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

    /// The postmaster's pid if it is alive (from `postmaster.pid`).
    pub fn running_pid(&self) -> Option<u32> {
        let text = fs::read_to_string(self.pgdata.join("postmaster.pid")).ok()?;
        let pid: i32 = text.lines().next()?.trim().parse().ok()?;
        // SAFETY: kill with signal 0 only checks that the process exists.
        let alive = unsafe { libc::kill(pid, 0) } == 0
            || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM);
        (alive && self.socket_dir.join(".s.PGSQL.5432").exists()).then_some(pid as u32)
    }

    pub fn status(&self) -> ClusterStatus {
        let pid = self.running_pid();
        ClusterStatus {
            data_dir: self.data_dir.display().to_string(),
            pgdata: self.pgdata.display().to_string(),
            socket_dir: self.socket_dir.display().to_string(),
            initialized: self.is_initialized(),
            running: pid.is_some(),
            pid,
        }
    }

    /// Initialises the cluster if needed and starts it if it is not running, under a file lock
    /// so that concurrent tenantctl processes do it once. Returns true if it started it now.
    pub fn ensure_running(&self) -> Result<bool> {
        if self.running_pid().is_some() {
            return Ok(false);
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
        if self.running_pid().is_some() {
            return Ok(false);
        }
        let bindir = pg_bindir(self.bindir_hint.as_deref())?;
        if !self.is_initialized() {
            self.init(&bindir, account)?;
        }
        private_dir(&self.socket_dir, account)?;
        let out = command_as(&bindir.join("pg_ctl"), account)
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

    /// Stops the cluster; false if it was not running.
    pub fn stop(&self) -> Result<bool> {
        if self.running_pid().is_none() {
            return Ok(false);
        }
        let bindir = pg_bindir(self.bindir_hint.as_deref())?;
        let out = command_as(&bindir.join("pg_ctl"), server_account()?)
            .arg("stop")
            .arg("-D")
            .arg(&self.pgdata)
            .args(["-m", "fast", "-w", "-t", "60", "-s"])
            .output()
            .context("running pg_ctl stop")?;
        check(&out, "stopping the local cluster")?;
        Ok(true)
    }

    /// Connection settings for one database of the cluster.
    pub fn connect_config(&self, dbname: &str) -> tokio_postgres::Config {
        let mut c = tokio_postgres::Config::new();
        c.host_path(&self.socket_dir)
            .port(5432)
            .user(SUPERUSER)
            .dbname(dbname);
        c
    }
}
