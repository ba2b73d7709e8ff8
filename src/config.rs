//! `Settings`: every setting resolved once, flag > environment > `tenantctl.toml` > default.
//! This is the only module that reads environment variables.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::cli::{GlobalArgs, OutputFormat};
use crate::conninfo::{self, ConnParams};
use crate::error::Failure;
use crate::tenant::{Naming, DEFAULT_PREFIX};
use crate::tier::Tiers;

/// The control database's name when a URL names none.
pub const DEFAULT_CONTROL_DB: &str = "tenantctl";

/// Days a deprovisioned tenant is kept, unless configured.
pub const DEFAULT_RETENTION_DAYS: i64 = 30;

/// Where the control database is.
#[derive(Clone, Debug)]
pub enum DatabaseTarget {
    /// An operator's server, from a connection string and/or the PG* variables.
    Url(Box<ConnParams>),
    /// The local cluster tenantctl runs itself under the data directory.
    Local,
}

#[derive(Clone, Debug)]
pub struct Settings {
    pub database: DatabaseTarget,
    pub data_dir: PathBuf,
    /// `None`: the built-in tier table.
    pub tiers_path: Option<PathBuf>,
    pub storage_root: PathBuf,
    /// Where buckets live: the local directory tree (`storage_root`) or an S3-compatible store.
    pub storage: StorageBackend,
    pub naming: Naming,
    pub actor: String,
    pub output: OutputFormat,
    pub quiet: bool,
    /// PostgreSQL's binaries for the local cluster (`TENANTCTL_PG_BINDIR`, else `pg_config`).
    pub pg_bindir: Option<PathBuf>,
    /// How long a deprovisioned tenant is kept for `restore` before `purge --expired` removes it.
    pub retention_days: i32,
    /// Invoices written per transaction by `bill` (500; debug builds read
    /// `TENANTCTL_BILL_BATCH`, so tests can kill a run between small batches).
    pub bill_batch: usize,
    /// Debug builds only: crash on purpose at a named point (`TENANTCTL_FAILPOINT`), for tests.
    pub failpoint: Option<String>,
    /// Warnings found while resolving (a `.pgpass` readable by others), shown once.
    pub warnings: Vec<String>,
    /// `[hooks]`: the commands run at lifecycle events (none unless configured).
    pub hooks: crate::hook::Hooks,
    /// The directory hooks run in: the config file's (relative paths in a hook read as in the
    /// file), else the current directory.
    pub hooks_dir: PathBuf,
    /// The environment a hook inherits: tenantctl's, without what may carry a secret (see
    /// `hook_environment`).
    pub hook_env: Vec<(std::ffi::OsString, std::ffi::OsString)>,
    /// Where the passwords of the fleet's other servers come from (`[servers.NAME]`, `.pgpass`).
    pub server_access: ServerAccess,
}

/// `tenantctl.toml`. Relative paths are relative to the file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    database_url: Option<String>,
    data_dir: Option<PathBuf>,
    tiers: Option<PathBuf>,
    storage_root: Option<PathBuf>,
    name_prefix: Option<String>,
    actor: Option<String>,
    retention_days: Option<i64>,
    storage: Option<crate::storage::s3::StorageFile>,
    hooks: Option<crate::hook::HooksFile>,
    /// `[servers.NAME]`: where a registered server's password comes from.
    #[serde(default)]
    servers: BTreeMap<String, ServerFile>,
}

/// `[servers.NAME]` in tenantctl.toml: one of the two, naming where the password of the admin
/// role on server NAME is (never the password itself).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ServerFile {
    /// A file whose first line is the password (mode 0600 or stricter).
    password_file: Option<PathBuf>,
    /// An environment variable holding the password.
    password_env: Option<String>,
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

impl Settings {
    pub fn resolve(args: &GlobalArgs) -> Result<Settings, Failure> {
        let (mut file, file_dir) = load_file(args)?;
        let rel = |p: PathBuf| match &file_dir {
            Some(dir) if p.is_relative() => dir.join(p),
            _ => p,
        };

        let mut warnings = Vec::new();
        let explicit = match (&args.database_url, env("TENANTCTL_DATABASE_URL")) {
            (Some(url), _) => Some((url.clone(), "--database-url")),
            (None, Some(url)) => Some((url, "TENANTCTL_DATABASE_URL")),
            (None, None) => None,
        };
        let database = resolve_database(explicit, file.database_url, &mut warnings)?;
        let server_access = resolve_server_access(std::mem::take(&mut file.servers), &rel)?;

        let data_dir = args
            .data_dir
            .clone()
            .or_else(|| env("TENANTCTL_DATA_DIR").map(PathBuf::from))
            .or(file.data_dir.map(rel))
            .unwrap_or_else(default_data_dir);
        let data_dir = absolute(data_dir)?;

        let tiers_path = args
            .tiers
            .clone()
            .or_else(|| env("TENANTCTL_TIERS").map(PathBuf::from))
            .or(file.tiers.map(rel));

        let storage_root = args
            .storage_root
            .clone()
            .or_else(|| env("TENANTCTL_STORAGE_ROOT").map(PathBuf::from))
            .or(file.storage_root.map(rel))
            .unwrap_or_else(|| data_dir.join("buckets"));
        let storage_root = absolute(storage_root)?;

        let storage = resolve_storage(file.storage)?;
        let hooks = crate::hook::Hooks::from_file(file.hooks.unwrap_or_default())?;
        let hooks_dir = match &file_dir {
            Some(dir) => dir.clone(),
            None => absolute(PathBuf::from("."))?,
        };

        let prefix = args
            .name_prefix
            .clone()
            .or_else(|| env("TENANTCTL_NAME_PREFIX"))
            .or(file.name_prefix)
            .unwrap_or_else(|| DEFAULT_PREFIX.to_owned());
        let naming = Naming::new(&prefix)?;
        // Before anything connects: no slug may produce the control database's name (or the
        // admin role's), or `provision` could grant a tenant the control database.
        match &database {
            DatabaseTarget::Url(params) => {
                naming.check_foreign("control database", &params.dbname)?;
                Naming::check_control_database(&params.dbname)?;
                naming.check_foreign("database user", &params.user)?;
            }
            DatabaseTarget::Local => {
                naming.check_foreign("control database", DEFAULT_CONTROL_DB)?
            }
        }

        let actor = args
            .actor
            .clone()
            .or_else(|| env("TENANTCTL_ACTOR"))
            .or(file.actor)
            .or_else(|| env("USER"))
            .or_else(|| env("LOGNAME"))
            // Cron and systemd units set no $USER: the account's name, as `id -un` says it.
            .or_else(account_name)
            // SAFETY: geteuid has no preconditions and cannot fail.
            .unwrap_or_else(|| format!("uid:{}", unsafe { libc::geteuid() }));

        let retention_days = match env("TENANTCTL_RETENTION_DAYS") {
            Some(v) => v.parse::<i64>().ok().ok_or_else(|| {
                Failure::BadInput(format!(
                    "invalid TENANTCTL_RETENTION_DAYS `{}`: a whole number of days from 0 to 3650",
                    crate::excerpt::excerpt(&v)
                ))
            })?,
            None => file.retention_days.unwrap_or(DEFAULT_RETENTION_DAYS),
        };
        if !(0..=3650).contains(&retention_days) {
            return Err(Failure::BadInput(format!(
                "invalid retention_days `{retention_days}`: a whole number of days from 0 to 3650"
            )));
        }

        Ok(Settings {
            database,
            data_dir,
            tiers_path,
            storage_root,
            storage,
            naming,
            actor,
            output: args.output,
            quiet: args.quiet,
            pg_bindir: env("TENANTCTL_PG_BINDIR").map(PathBuf::from),
            retention_days: retention_days as i32,
            bill_batch: env("TENANTCTL_BILL_BATCH")
                .filter(|_| cfg!(debug_assertions))
                .and_then(|v| v.parse().ok())
                .filter(|n| *n > 0)
                .unwrap_or(500),
            failpoint: if cfg!(debug_assertions) {
                env("TENANTCTL_FAILPOINT")
            } else {
                None
            },
            warnings,
            hooks,
            hooks_dir,
            hook_env: hook_environment(),
            server_access,
        })
    }

    /// The tier table: the configured file, or the built-in one.
    pub fn load_tiers(&self) -> Result<Tiers, Failure> {
        Tiers::configured(self.tiers_path.as_deref())
    }
}

/// What a hook inherits: the environment without tenantctl's own variables (`TENANTCTL_*`:
/// the hook gets its own set, and `TENANTCTL_DATABASE_URL` may hold a password) and without
/// the variables that carry a password or key: `PGPASSWORD`, `DATABASE_URL`,
/// `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`. Hooks never receive a
/// password: one that needs a credential reads it from its own file (a kubeconfig, a profile).
fn hook_environment() -> Vec<(std::ffi::OsString, std::ffi::OsString)> {
    const SECRETS: &[&str] = &[
        "PGPASSWORD",
        "DATABASE_URL",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
    ];
    std::env::vars_os()
        .filter(|(k, _)| {
            let k = k.to_string_lossy();
            !k.starts_with("TENANTCTL_") && !SECRETS.contains(&k.as_ref())
        })
        .collect()
}

/// Where buckets live.
#[derive(Clone, Debug)]
pub enum StorageBackend {
    /// Directories under `Settings::storage_root`.
    Local,
    /// An S3-compatible store, with the credentials found in the environment.
    S3(Box<crate::storage::s3::S3Settings>),
}

/// `[storage]` in the config file, with the credentials from the AWS environment variables
/// (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`) or else the profile
/// `AWS_PROFILE` (default `default`) of `AWS_SHARED_CREDENTIALS_FILE` (default
/// `~/.aws/credentials`). Credentials are never written anywhere.
fn resolve_storage(
    file: Option<crate::storage::s3::StorageFile>,
) -> Result<StorageBackend, Failure> {
    let Some(file) = file else {
        return Ok(StorageBackend::Local);
    };
    let credentials = match (env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY")) {
        (Some(key), Some(secret)) => Some(crate::storage::s3::Credentials {
            key_id: key,
            secret,
            token: env("AWS_SESSION_TOKEN"),
        }),
        _ => {
            let path = env("AWS_SHARED_CREDENTIALS_FILE")
                .map(PathBuf::from)
                .or_else(|| env("HOME").map(|h| PathBuf::from(h).join(".aws/credentials")));
            let profile = env("AWS_PROFILE").unwrap_or_else(|| "default".to_owned());
            match path.and_then(|p| std::fs::read_to_string(p).ok()) {
                Some(text) => crate::storage::s3::profile_credentials(&text, &profile),
                None => None,
            }
        }
    };
    match crate::storage::s3::S3Settings::from_file(file, credentials)? {
        Some(s3) => Ok(StorageBackend::S3(Box::new(s3))),
        None => Ok(StorageBackend::Local),
    }
}

fn load_file(args: &GlobalArgs) -> Result<(FileConfig, Option<PathBuf>), Failure> {
    let explicit = args
        .config
        .clone()
        .or_else(|| env("TENANTCTL_CONFIG").map(PathBuf::from));
    let path = match explicit {
        Some(p) => p,
        None => {
            let p = PathBuf::from("tenantctl.toml");
            if !p.is_file() {
                return Ok((FileConfig::default(), None));
            }
            p
        }
    };
    let text = crate::text_file::read(&path, "config file", crate::text_file::SMALL_TOML)?;
    let file: FileConfig = toml::from_str(&text).map_err(|e| {
        let line = e
            .span()
            .map(|s| format!(", line {}", text[..s.start].matches('\n').count() + 1))
            .unwrap_or_default();
        Failure::BadInput(format!(
            "invalid config file {}{line}: {}",
            crate::text_file::shown(&path),
            crate::excerpt::excerpt_n(&e.message().trim().replace('\n', " "), 200)
        ))
    })?;
    let dir = absolute(path)?.parent().map(Path::to_path_buf);
    Ok((file, dir))
}

fn absolute(p: PathBuf) -> Result<PathBuf, Failure> {
    std::path::absolute(&p)
        .map_err(|e| Failure::BadInput(format!("invalid path {}: {e}", p.display())))
}

/// As root the local cluster runs as `postgres`, which cannot enter `/root`: use `/var/lib`.
fn default_data_dir() -> PathBuf {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        return PathBuf::from("/var/lib/tenantctl");
    }
    if let Some(xdg) = env("XDG_DATA_HOME") {
        return PathBuf::from(xdg).join("tenantctl");
    }
    match env("HOME") {
        Some(home) => PathBuf::from(home).join(".local/share/tenantctl"),
        None => PathBuf::from(".tenantctl"),
    }
}

/// The variables that name a server: any of them set (and no URL from the flag or
/// TENANTCTL_DATABASE_URL) means an external server described by the PG* variables, even when
/// `tenantctl.toml` has a `database_url`.
const PG_SERVER_VARS: &[&str] = &["PGHOST", "PGHOSTADDR", "PGPORT", "PGUSER", "PGDATABASE"];

/// The PG* variables, as libpq reads them, and the key each fills when the string lacks it.
const PG_VARS: &[(&str, &str)] = &[
    ("PGHOST", "host"),
    ("PGHOSTADDR", "hostaddr"),
    ("PGPORT", "port"),
    ("PGUSER", "user"),
    ("PGPASSWORD", "password"),
    ("PGDATABASE", "dbname"),
    ("PGSSLMODE", "sslmode"),
    ("PGSSLROOTCERT", "sslrootcert"),
    ("PGSSLCERT", "sslcert"),
    ("PGSSLKEY", "sslkey"),
    ("PGCONNECT_TIMEOUT", "connect_timeout"),
    ("PGAPPNAME", "application_name"),
    ("PGPASSFILE", "passfile"),
];

/// flag > TENANTCTL_DATABASE_URL > PG* variables > tenantctl.toml > the local cluster. The
/// PG* variables also fill what a chosen string leaves out (PGPASSWORD with a URL that has no
/// password), as libpq does; `.pgpass` comes last for the password. None of this touches the
/// local cluster, which has its own fixed connection.
fn resolve_database(
    explicit: Option<(String, &'static str)>,
    from_file: Option<String>,
    warnings: &mut Vec<String>,
) -> Result<DatabaseTarget, Failure> {
    let pg_env = PG_SERVER_VARS.iter().any(|v| env(v).is_some());
    let (source, origin) = match (explicit, pg_env, from_file) {
        (Some(s), _, _) => s,
        (None, true, _) => (String::new(), "the PG* variables"),
        (None, false, Some(s)) => (s, "database_url in the config file"),
        (None, false, None) => return Ok(DatabaseTarget::Local),
    };
    // A bad value names where the connection string came from (never its password).
    let bad = |e: Failure| match e {
        Failure::BadInput(m) => Failure::BadInput(format!("invalid database URL ({origin}): {m}")),
        other => other,
    };
    let mut pairs = conninfo::parse(&source).map_err(bad)?;
    for (var, key) in PG_VARS {
        pairs.fill(key, env(var));
    }
    let home = env("HOME").map(PathBuf::from);
    let os_user = env("USER")
        .or_else(|| env("LOGNAME"))
        .unwrap_or_else(|| "postgres".to_owned());
    let mut params = ConnParams::from_pairs(&pairs, &os_user, DEFAULT_CONTROL_DB, home.as_deref())
        .map_err(bad)?;
    if params.password.is_none() {
        let passfile = pairs
            .get("passfile")
            .map(PathBuf::from)
            .or_else(|| home.as_ref().map(|h| h.join(".pgpass")));
        if let Some(path) = passfile {
            params.password = read_pgpass(&path, &params, warnings);
        }
    }
    home_tls_defaults(&mut params, home.as_deref());
    Ok(DatabaseTarget::Url(Box::new(params)))
}

/// libpq's default files under ~/.postgresql, used when present and the string names none.
fn home_tls_defaults(params: &mut ConnParams, home: Option<&Path>) {
    if let Some(dir) = home.map(|h| h.join(".postgresql")) {
        let present = |name: &str| Some(dir.join(name)).filter(|p| p.is_file());
        if params.sslrootcert.is_none() {
            params.sslrootcert = present("root.crt");
        }
        if params.sslcert.is_none() {
            params.sslcert = present("postgresql.crt");
        }
        if params.sslkey.is_none() && params.sslcert.is_some() {
            params.sslkey = present("postgresql.key");
        }
    }
}

/// The maintenance database tenantctl's admin connections use on a registered server whose
/// URL names none (managed services have it too).
pub const DEFAULT_SERVER_DB: &str = "postgres";

/// How the fleet's registered servers (all but the control database's own, which uses the
/// configured connection) get their passwords: the server's section of tenantctl.toml
/// (`password_file` or `password_env`), else `.pgpass` (PGPASSFILE, else ~/.pgpass) matched
/// against the server's host, port, database and user. Their stored URLs carry none, and the
/// PG* variables do not apply to them: a registered server's URL is complete by itself.
#[derive(Clone, Debug)]
pub struct ServerAccess {
    per_server: BTreeMap<String, ServerSecret>,
    passfile: Option<PathBuf>,
    home: Option<PathBuf>,
    os_user: String,
}

/// Where one server's password is. `Debug` never shows a value.
#[derive(Clone)]
enum ServerSecret {
    File(PathBuf),
    Env { var: String, value: Option<String> },
}

impl std::fmt::Debug for ServerSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ServerSecret::File(p) => write!(f, "File({})", p.display()),
            ServerSecret::Env { var, .. } => write!(f, "Env({var})"),
        }
    }
}

/// `[servers.NAME]`, checked: a valid server name, exactly one of the two keys, and the
/// variable read now (this module is the only reader of the environment).
fn resolve_server_access(
    file: BTreeMap<String, ServerFile>,
    rel: &dyn Fn(PathBuf) -> PathBuf,
) -> Result<ServerAccess, Failure> {
    let mut per_server = BTreeMap::new();
    for (name, section) in file {
        let server: crate::server_name::ServerName = name.parse().map_err(|e| match e {
            Failure::BadInput(m) => {
                Failure::BadInput(format!("invalid [servers] section in the config file: {m}"))
            }
            other => other,
        })?;
        if server.is_control() {
            return Err(Failure::BadInput(format!(
                "invalid [servers.{server}] in the config file: `{server}` is the control database's own server, whose password comes with the control connection (--database-url, TENANTCTL_DATABASE_URL, PGPASSWORD, .pgpass)"
            )));
        }
        let secret = match (section.password_file, section.password_env) {
            (Some(path), None) => ServerSecret::File(rel(path)),
            (None, Some(var)) => {
                if var.is_empty() || !var.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                    return Err(Failure::BadInput(format!(
                        "invalid password_env `{}` in [servers.{server}] of the config file: the name of an environment variable (A-Z, a-z, 0-9, '_')",
                        crate::excerpt::excerpt(&var)
                    )));
                }
                let value = env(&var);
                ServerSecret::Env { var, value }
            }
            _ => {
                return Err(Failure::BadInput(format!(
                    "invalid [servers.{server}] in the config file: give exactly one of password_file and password_env"
                )))
            }
        };
        per_server.insert(name, secret);
    }
    let home = env("HOME").map(PathBuf::from);
    let passfile = env("PGPASSFILE")
        .map(PathBuf::from)
        .or_else(|| home.as_ref().map(|h| h.join(".pgpass")));
    Ok(ServerAccess {
        per_server,
        passfile,
        home,
        os_user: env("USER")
            .or_else(|| env("LOGNAME"))
            .unwrap_or_else(|| "postgres".to_owned()),
    })
}

impl ServerAccess {
    /// A URL given to `server add`: parsed as libpq parses it (no PG* variable fills it), and
    /// refused if it carries a password (exit 2; the message never shows it). Returns the
    /// string to store (the URL's own settings as key=value, the user and database filled in,
    /// no password) and the parameters to connect with (password found as `params` finds it).
    pub fn new_server(&self, name: &str, url: &str) -> Result<(String, ConnParams), Failure> {
        let bad = |e: Failure| match e {
            Failure::BadInput(m) => Failure::BadInput(format!("invalid server URL: {m}")),
            other => other,
        };
        let mut pairs = conninfo::parse(url).map_err(bad)?;
        if pairs.get("password").is_some() {
            return Err(Failure::BadInput(
                "the server URL carries a password, which tenantctl never stores: remove it and put the password in ~/.pgpass (or PGPASSFILE), or name a password_file or password_env in [servers.NAME] of tenantctl.toml".to_owned(),
            ));
        }
        let params = ConnParams::from_pairs(
            &pairs,
            &self.os_user,
            DEFAULT_SERVER_DB,
            self.home.as_deref(),
        )
        .map_err(bad)?;
        pairs.0.insert("user".to_owned(), params.user.clone());
        pairs.0.insert("dbname".to_owned(), params.dbname.clone());
        let stored = conninfo::to_keywords(&pairs);
        let params = self.params(name, &stored)?;
        Ok((stored, params))
    }

    /// The connection parameters of registered server `name` from its stored URL, with its
    /// password: `[servers.NAME]` first, else `.pgpass`. A password file that cannot be read
    /// (or that others may read) is an error naming it; a `.pgpass` that others may read is
    /// skipped, as libpq skips it.
    pub fn params(&self, name: &str, stored: &str) -> Result<ConnParams, Failure> {
        let bad = |e: Failure| match e {
            Failure::BadInput(m) => Failure::BadInput(format!(
                "invalid URL of server `{}` in the control database: {m}",
                crate::excerpt::excerpt(name)
            )),
            other => other,
        };
        let pairs = conninfo::parse(stored).map_err(bad)?;
        let mut params = ConnParams::from_pairs(
            &pairs,
            &self.os_user,
            DEFAULT_SERVER_DB,
            self.home.as_deref(),
        )
        .map_err(bad)?;
        params.password = match self.per_server.get(name) {
            Some(ServerSecret::File(path)) => Some(read_password_file(path, name)?),
            Some(ServerSecret::Env { var, value }) => Some(value.clone().ok_or_else(|| {
                Failure::BadInput(format!(
                    "the password of server `{name}` comes from ${var} ([servers.{name}] in the config file), which is not set"
                ))
            })?),
            None => {
                let passfile = pairs
                    .get("passfile")
                    .map(PathBuf::from)
                    .or_else(|| self.passfile.clone());
                let mut ignored = Vec::new();
                passfile.and_then(|p| read_pgpass(&p, &params, &mut ignored))
            }
        };
        home_tls_defaults(&mut params, self.home.as_deref());
        Ok(params)
    }
}

/// A server's `password_file`: its first line. Refused when others may read it (as libpq
/// refuses such a `.pgpass`), when it is not a regular file, or when it is larger than 4 KiB.
fn read_password_file(path: &Path, server: &str) -> Result<String, Failure> {
    use std::os::unix::fs::PermissionsExt;
    let shown = crate::text_file::shown(path);
    let bad = |why: String| {
        Failure::BadInput(format!(
            "password_file {shown} of server `{server}` ([servers.{server}] in the config file): {why}"
        ))
    };
    let meta = std::fs::metadata(path).map_err(|e| bad(e.to_string()))?;
    if !meta.is_file() {
        return Err(bad("not a regular file".to_owned()));
    }
    if meta.permissions().mode() & 0o077 != 0 {
        return Err(bad(
            "it has group or world access; permissions should be u=rw (0600) or less".to_owned(),
        ));
    }
    if meta.len() > 4096 {
        return Err(bad("larger than 4 KiB".to_owned()));
    }
    let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
    let line = text.lines().next().unwrap_or_default();
    if line.is_empty() {
        return Err(bad("its first line is empty".to_owned()));
    }
    Ok(line.to_owned())
}

/// The `.pgpass` password for the control database's connection. As libpq: a file that is not
/// a regular file is skipped quietly, one readable by group or others is skipped with a
/// warning. The match is made once, for the control database, and the password found is used
/// for every database of that server.
fn read_pgpass(path: &Path, params: &ConnParams, warnings: &mut Vec<String>) -> Option<String> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).ok()?;
    if !meta.is_file() {
        return None;
    }
    if meta.permissions().mode() & 0o077 != 0 {
        warnings.push(format!(
            "warning: password file {} has group or world access and is ignored; permissions should be u=rw (0600) or less",
            crate::excerpt::excerpt(&path.display().to_string())
        ));
        return None;
    }
    // A password file is a few lines; refuse to read a huge one.
    if meta.len() > 1 << 20 {
        warnings.push(format!(
            "warning: password file {} is larger than 1 MiB and is ignored",
            crate::excerpt::excerpt(&path.display().to_string())
        ));
        return None;
    }
    let text = std::fs::read_to_string(path).ok()?;
    let port = params.ports.first().copied().unwrap_or(5432);
    conninfo::pgpass_lookup(
        &text,
        params
            .hosts
            .first()
            .map(String::as_str)
            .unwrap_or("localhost"),
        port,
        &params.dbname,
        &params.user,
    )
}

/// The name of the effective user's account (the passwd database: /etc/passwd, LDAP...), if it
/// has one that is valid UTF-8.
fn account_name() -> Option<String> {
    let mut buf = vec![0u8; 4096];
    loop {
        // SAFETY: every pointer is valid for the call: `pwd` and `result` are locals, `buf` is
        // a live buffer of the length given; the strings read come from `buf` while it lives.
        let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        let rc = unsafe {
            libc::getpwuid_r(
                libc::geteuid(),
                &mut pwd,
                buf.as_mut_ptr().cast(),
                buf.len(),
                &mut result,
            )
        };
        if rc == libc::ERANGE && buf.len() < 1 << 20 {
            buf.resize(buf.len() * 2, 0);
            continue;
        }
        if rc != 0 || result.is_null() || pwd.pw_name.is_null() {
            return None;
        }
        let name = unsafe { std::ffi::CStr::from_ptr(pwd.pw_name) };
        return name
            .to_str()
            .ok()
            .filter(|n| !n.is_empty())
            .map(str::to_owned);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn access() -> ServerAccess {
        ServerAccess {
            per_server: BTreeMap::new(),
            passfile: None,
            home: None,
            os_user: "ops".to_owned(),
        }
    }

    #[test]
    fn a_new_server_is_stored_without_a_password_with_its_user_and_database() {
        let (stored, params) = access()
            .new_server(
                "db2",
                "postgres://db2.example:6432?sslmode=verify-full&sslrootcert=/ca.pem",
            )
            .unwrap();
        assert_eq!(
            stored,
            "dbname='postgres' host='db2.example' port='6432' sslmode='verify-full' sslrootcert='/ca.pem' user='ops'"
        );
        assert_eq!(params.password, None);
        assert_eq!(params.dbname, "postgres");
        for with in [
            "host=db2 password=hunter2",
            "postgres://u:hunter2@db2/postgres",
            "postgres://db2/postgres?password=hunter2",
        ] {
            let err = access().new_server("db2", with).unwrap_err().to_string();
            assert!(err.contains("carries a password"), "{with}: {err}");
            assert!(!err.contains("hunter2"), "{with}: {err}");
        }
    }

    #[test]
    fn a_servers_password_comes_from_its_section() {
        let mut a = access();
        a.per_server.insert(
            "db3".to_owned(),
            ServerSecret::Env {
                var: "DB3_PW".to_owned(),
                value: Some("s3cret".to_owned()),
            },
        );
        a.per_server.insert(
            "db4".to_owned(),
            ServerSecret::Env {
                var: "DB4_PW".to_owned(),
                value: None,
            },
        );
        let p = a.params("db3", "host=db3 user=ops").unwrap();
        assert_eq!(p.password.as_deref(), Some("s3cret"));
        assert!(!format!("{a:?}").contains("s3cret"));
        let err = a.params("db4", "host=db4").unwrap_err().to_string();
        assert!(err.contains("$DB4_PW"), "{err}");
        assert_eq!(a.params("db5", "host=db5").unwrap().password, None);
    }

    #[test]
    fn url_without_database_uses_the_default_control_database() {
        let p = ConnParams::from_pairs(
            &conninfo::parse("postgres://bob@localhost").unwrap(),
            "me",
            DEFAULT_CONTROL_DB,
            None,
        )
        .unwrap();
        assert_eq!(p.dbname, DEFAULT_CONTROL_DB);
    }
}
