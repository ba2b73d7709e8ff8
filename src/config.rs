//! `Settings`: every setting resolved once, flag > environment > `tenantctl.toml` > default.
//! This is the only module that reads environment variables.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::Deserialize;

use crate::cli::{GlobalArgs, OutputFormat};
use crate::exit::Failure;
use crate::tenant::{Naming, DEFAULT_PREFIX};
use crate::tier::Tiers;

/// The control database's name when a URL names none.
pub const DEFAULT_CONTROL_DB: &str = "tenantctl";

/// Days a deprovisioned tenant is kept, unless configured.
pub const DEFAULT_RETENTION_DAYS: i64 = 30;

/// Where the control database is.
#[derive(Clone, Debug)]
pub enum DatabaseTarget {
    /// An operator's server; `shown` is the URL with any password masked.
    Url {
        config: Box<tokio_postgres::Config>,
        shown: String,
    },
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
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

impl Settings {
    pub fn resolve(args: &GlobalArgs) -> Result<Settings, Failure> {
        let (file, file_dir) = load_file(args)?;
        let rel = |p: PathBuf| match &file_dir {
            Some(dir) if p.is_relative() => dir.join(p),
            _ => p,
        };

        let url = args
            .database_url
            .clone()
            .or_else(|| env("TENANTCTL_DATABASE_URL"))
            .or_else(|| env("DATABASE_URL"))
            .or(file.database_url);
        let database = match url {
            Some(url) => parse_url(&url)?,
            None => DatabaseTarget::Local,
        };

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
            DatabaseTarget::Url { config, .. } => {
                naming.check_foreign(
                    "control database",
                    config.get_dbname().unwrap_or(DEFAULT_CONTROL_DB),
                )?;
                if let Some(user) = config.get_user() {
                    naming.check_foreign("database user", user)?;
                }
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
        })
    }

    /// The tier table: the configured file, or the built-in one.
    pub fn load_tiers(&self) -> Result<Tiers, Failure> {
        match &self.tiers_path {
            Some(path) => Tiers::load(path),
            None => Ok(Tiers::builtin()),
        }
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

fn parse_url(url: &str) -> Result<DatabaseTarget, Failure> {
    let shown = redact(url);
    let mut config = tokio_postgres::Config::from_str(url).map_err(|e| {
        Failure::BadInput(format!(
            "invalid database URL `{shown}`: {e}; expected postgres://USER@HOST/DB or `host=... dbname=...`"
        ))
    })?;
    if config.get_dbname().is_none() {
        config.dbname(DEFAULT_CONTROL_DB);
    }
    Ok(DatabaseTarget::Url {
        config: Box::new(config),
        shown,
    })
}

/// The URL with its password masked, for messages. Handles both URL and key=value forms.
pub fn redact(url: &str) -> String {
    if let Some(rest) = url
        .strip_prefix("postgres://")
        .or_else(|| url.strip_prefix("postgresql://"))
    {
        let scheme = &url[..url.len() - rest.len()];
        let (authority, tail) = rest.split_at(rest.find(['/', '?']).unwrap_or(rest.len()));
        let authority = match authority.rsplit_once('@') {
            Some((userinfo, host)) => match userinfo.split_once(':') {
                Some((user, _)) => format!("{user}:***@{host}"),
                None => authority.to_owned(),
            },
            None => authority.to_owned(),
        };
        let tail = match tail.split_once('?') {
            Some((path, query)) => {
                let query = query
                    .split('&')
                    .map(|kv| match kv.split_once('=') {
                        Some(("password", _)) => "password=***".to_owned(),
                        _ => kv.to_owned(),
                    })
                    .collect::<Vec<_>>()
                    .join("&");
                format!("{path}?{query}")
            }
            None => tail.to_owned(),
        };
        return format!("{scheme}{authority}{tail}");
    }
    url.split_whitespace()
        .map(|kv| match kv.split_once('=') {
            Some(("password", _)) => "password=***".to_owned(),
            _ => kv.to_owned(),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_show() {
        assert_eq!(
            redact("postgres://bob:s3cret@db:5432/ctl"),
            "postgres://bob:***@db:5432/ctl"
        );
        assert_eq!(
            redact("postgresql://bob@db/ctl?password=s3cret&sslmode=disable"),
            "postgresql://bob@db/ctl?password=***&sslmode=disable"
        );
        assert_eq!(
            redact("host=/tmp user=bob password=s3cret dbname=x"),
            "host=/tmp user=bob password=*** dbname=x"
        );
    }

    #[test]
    fn url_without_database_uses_the_default_control_database() {
        match parse_url("postgres://bob@localhost").unwrap() {
            DatabaseTarget::Url { config, .. } => {
                assert_eq!(config.get_dbname(), Some(DEFAULT_CONTROL_DB))
            }
            DatabaseTarget::Local => unreachable!(),
        }
    }

    #[test]
    fn bad_url_is_bad_input_without_the_password() {
        let err = parse_url("postgres://bob:s3cret@host:notaport/db")
            .unwrap_err()
            .to_string();
        assert!(!err.contains("s3cret"), "{err}");
        assert!(err.starts_with("invalid database URL"), "{err}");
    }
}
