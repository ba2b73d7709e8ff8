//! Every line of SQL and every connection pool lives under here.
//!
//! - `Server`: how to reach the PostgreSQL server, and connections to any of its databases.
//! - `audit`: the audit log's one insert, `append`.
//! - `billing`: billing runs, invoice facts, invoices written exactly once.
//! - `control`: opening the control database (and migrating it); its pool.
//! - `tenants`, `journal`, `quotas`, `locks`: the tenants table, the provisioning journal, the
//!   quota rows (with the usage that counts against them, and `quota set`), the advisory locks.
//! - `credentials`: a siloed tenant's login password (a SCRAM verifier), audited.
//! - `dataplane`: tenant databases and roles: creation, access, the owner user.
//! - `doctor`: the server's version, the session's TLS, the admin role's attributes.
//! - `fleet`: `Fleet`, the seam through which every tenant database and admin connection is
//!   reached, on whichever server of the fleet holds it.
//! - `servers`: the registry of the fleet's servers (control V17), their load, the placement
//!   lock's users.
//! - `features`: feature entitlements in the control database and in tenant databases.
//! - `hooks`: the lifecycle run a tenant's hooks belong to, and the hooks that succeeded.
//! - `metrics`: the fleet's state in a few set-based reads, for `tenantctl metrics`.
//! - `report`: billed months, invoice lines summed, storage measurements, for `report`.
//! - `usage`: one metered event and its monthly total.
//! - `import`: a usage file's events in one transaction (COPY, the fast path, hard limits).
//! - `measurements`: the history of measured usage, and closing a month of it for billing.
//! - `moves`: the move of a tenant's data in flight and its journal; `copy`: a tenant's rows
//!   copied between two tenant databases and verified.
//! - `migrate`: the refinery migrations of both schemas, each run under an advisory lock.
//! - `lifecycle`: status transitions, purge of control rows, the audit log.
//! - `ident`: the one place identifiers are quoted.
//! - `ownership`: this control plane's id and the claims on databases being created.

pub mod audit;
pub mod backup;
pub mod billing;
pub mod buckets;
pub mod control;
pub mod copy;
pub mod credentials;
pub mod dataplane;
pub mod doctor;
pub mod features;
pub mod fleet;
pub mod hooks;
pub mod ident;
pub mod import;
pub mod journal;
pub mod lifecycle;
pub mod locks;
pub mod measurements;
pub mod metrics;
pub mod migrate;
pub mod moves;
pub mod ownership;
pub mod quotas;
pub mod report;
pub mod servers;
pub mod tenants;
pub mod usage;

use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use deadpool_postgres::{
    Manager, ManagerConfig, Object, Pool, PoolError, RecyclingMethod, Runtime,
};
use openssl::ssl::{SslConnector, SslConnectorBuilder, SslFiletype, SslMethod, SslVerifyMode};
use openssl::x509::store::{X509Lookup, X509StoreBuilder};
use postgres_openssl::MakeTlsConnector;
use tokio_postgres::config::SslMode as DriverSslMode;
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, NoTls};

use crate::conninfo::{ConnParams, SslMode, APPLICATION_NAME, DEFAULT_CONNECT_TIMEOUT};
use crate::error::Failure;

pub use fleet::Fleet;

/// Every session waits at most this long for a lock (a table, a row, `CREATE DATABASE`'s lock
/// on its template, an advisory lock): a lock held by a stuck session ends in an error.
pub const LOCK_TIMEOUT: &str = "30s";
/// Statements on the control database end after this long. Tenant databases get none: a
/// tenant migration may legitimately rebuild a large table.
pub const CONTROL_STATEMENT_TIMEOUT: &str = "10min";

/// How connections are encrypted.
#[derive(Clone)]
enum Tls {
    None,
    OpenSsl(MakeTlsConnector),
}

/// The server tenantctl manages, and how it is shown in messages (never with a password).
#[derive(Clone)]
pub struct Server {
    base: tokio_postgres::Config,
    tls: Tls,
    sslmode: SslMode,
    shown: String,
    control: String,
    connect_timeout: Duration,
    /// The local cluster: initialised on demand; an operator's server needs `tenantctl init`.
    embedded: bool,
    /// The first host (or socket directory) and port, for connection URLs given to tenants.
    endpoint: (String, u16),
}

impl Server {
    /// The local cluster: a unix socket, no TLS.
    pub fn local(mut base: tokio_postgres::Config, shown: String) -> Server {
        let control = base
            .get_dbname()
            .unwrap_or(crate::config::DEFAULT_CONTROL_DB)
            .to_owned();
        let host = match base.get_hosts().first() {
            Some(tokio_postgres::config::Host::Unix(p)) => p.display().to_string(),
            Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
            None => "localhost".to_owned(),
        };
        let endpoint = (host, base.get_ports().first().copied().unwrap_or(5432));
        base.application_name(APPLICATION_NAME)
            .connect_timeout(DEFAULT_CONNECT_TIMEOUT)
            .options(format!("-c lock_timeout={LOCK_TIMEOUT}"));
        Server {
            base,
            tls: Tls::None,
            sslmode: SslMode::Disable,
            shown,
            control,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            embedded: true,
            endpoint,
        }
    }

    /// An operator's server, with TLS as `sslmode` asks (libpq's meaning of each mode).
    pub fn external(p: &ConnParams) -> Result<Server, Failure> {
        let mut c = tokio_postgres::Config::new();
        for h in &p.hosts {
            c.host(h);
        }
        for port in &p.ports {
            c.port(*port);
        }
        c.user(&p.user)
            .dbname(&p.dbname)
            .application_name(&p.application_name)
            .connect_timeout(p.connect_timeout)
            .keepalives(p.keepalives)
            .keepalives_idle(p.keepalives_idle)
            .keepalives_interval(Duration::from_secs(10))
            .keepalives_retries(3);
        if let Some(pw) = &p.password {
            c.password(pw);
        }
        let mut options = format!("-c lock_timeout={LOCK_TIMEOUT}");
        if let Some(o) = &p.options {
            options = format!("{o} {options}");
        }
        c.options(&options);
        // libpq never encrypts a unix-socket connection, and a server always answers `N` to
        // TLS over one: under `prefer` (the default) asking costs a round trip and building
        // the connector loads the system's CA bundle (≈20 ms), for nothing.
        let only_sockets = !p.hosts.is_empty() && p.hosts.iter().all(|h| h.starts_with('/'));
        let tls = match p.sslmode {
            SslMode::Prefer if only_sockets => {
                c.ssl_mode(DriverSslMode::Disable);
                Tls::None
            }
            SslMode::Disable => {
                c.ssl_mode(DriverSslMode::Disable);
                Tls::None
            }
            mode => {
                c.ssl_mode(if mode == SslMode::Prefer {
                    DriverSslMode::Prefer
                } else {
                    DriverSslMode::Require
                });
                Tls::OpenSsl(connector(p)?)
            }
        };
        Ok(Server {
            base: c,
            tls,
            sslmode: p.sslmode,
            shown: p.shown(),
            control: p.dbname.clone(),
            connect_timeout: p.connect_timeout,
            embedded: false,
            endpoint: (
                p.hosts
                    .first()
                    .cloned()
                    .unwrap_or_else(|| "localhost".to_owned()),
                p.ports.first().copied().unwrap_or(5432),
            ),
        })
    }

    /// The control database: the one the configured URL names.
    pub fn control_database(&self) -> &str {
        &self.control
    }

    pub fn shown(&self) -> &str {
        &self.shown
    }

    pub fn sslmode(&self) -> SslMode {
        self.sslmode
    }

    /// The first host (or socket directory) and port.
    pub fn endpoint(&self) -> (&str, u16) {
        (&self.endpoint.0, self.endpoint.1)
    }

    /// True for the local cluster, which initialises itself.
    pub fn embedded(&self) -> bool {
        self.embedded
    }

    /// The same server, another database (with the control database's statement timeout).
    pub fn config_for(&self, dbname: &str) -> tokio_postgres::Config {
        let mut c = self.base.clone();
        c.dbname(dbname);
        if dbname == self.control {
            let options = format!(
                "{} -c statement_timeout={CONTROL_STATEMENT_TIMEOUT}",
                c.get_options().unwrap_or_default()
            );
            c.options(options.trim());
        }
        c
    }

    /// A plain connection, for a lock holder or a short job in one database. The whole
    /// connection (TCP, TLS, authentication) must finish within the connect timeout.
    /// Whether database `dbname` answers a query: connects and runs `SELECT 1` (`doctor`).
    pub async fn ping(&self, dbname: &str) -> Result<()> {
        self.connect(dbname)
            .await?
            .simple_query("SELECT 1")
            .await
            .with_context(|| format!("querying database `{dbname}`"))?;
        Ok(())
    }

    pub async fn connect(&self, dbname: &str) -> Result<Client> {
        let config = self.config_for(dbname);
        let attempt = async {
            match &self.tls {
                Tls::None => {
                    let (client, conn) = config.connect(NoTls).await?;
                    tokio::spawn(async move {
                        // The error surfaces on the client's next call; nothing to do here.
                        let _ = conn.await;
                    });
                    Ok::<_, tokio_postgres::Error>(client)
                }
                Tls::OpenSsl(tls) => {
                    let (client, conn) = config.connect(tls.clone()).await?;
                    tokio::spawn(async move {
                        let _ = conn.await;
                    });
                    Ok(client)
                }
            }
        };
        let context = || format!("connecting to database `{dbname}` on {}", self.shown);
        match tokio::time::timeout(self.connect_timeout, attempt).await {
            Ok(r) => r.map_err(|e| self.clear_error(e)).with_context(context),
            Err(_) => Err(anyhow!(
                "no answer within {} s (connect_timeout)",
                self.connect_timeout.as_secs()
            ))
            .with_context(context),
        }
    }

    /// The first connection of `pool` (of database `dbname`), its failure worded as `connect`
    /// words it: a command's schema check and its own queries then share one connection
    /// instead of paying for a second one (≈6 ms each over a unix socket).
    pub async fn first_pooled(&self, pool: &Pool, dbname: &str) -> Result<Object> {
        let context = || format!("connecting to database `{dbname}` on {}", self.shown);
        match pool.get().await {
            Ok(o) => Ok(o),
            Err(PoolError::Backend(e)) => Err(self.clear_error(e)).with_context(context),
            Err(PoolError::Timeout(_)) => Err(anyhow!(
                "no answer within {} s (connect_timeout)",
                self.connect_timeout.as_secs()
            ))
            .with_context(context),
            Err(e) => Err(anyhow::Error::new(e)).with_context(context),
        }
    }

    /// A failed TLS handshake as one clear sentence (OpenSSL's reason, once, and what to
    /// check); any other error as it is.
    fn clear_error(&self, e: tokio_postgres::Error) -> anyhow::Error {
        // postgres-openssl's handshake error shows OpenSSL's error stack, then ": " and the
        // certificate verification result; its source is the OpenSSL error.
        let mut link: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(&e);
        let mut found = None;
        while let Some(l) = link {
            if let Some(ssl) = l
                .source()
                .and_then(|s| s.downcast_ref::<openssl::ssl::Error>())
            {
                found = Some((l.to_string(), ssl));
                break;
            }
            link = l.source();
        }
        let Some((outer, ssl)) = found else {
            return e.into();
        };
        let verify = outer
            .strip_prefix(&ssl.to_string())
            .map(|v| v.trim_start_matches([':', ' ']).to_owned())
            .filter(|v| !v.is_empty());
        let reason = verify.unwrap_or_else(|| {
            ssl.ssl_error()
                .and_then(|st| st.errors().first().and_then(|x| x.reason()))
                .unwrap_or("TLS error")
                .to_owned()
        });
        anyhow!(
            "TLS handshake failed, the server's certificate was refused (sslmode={}): {reason}; check sslrootcert (the CA that signed the server's certificate){}",
            self.sslmode.as_str(),
            if self.sslmode == SslMode::VerifyFull {
                " and that the host is a name the certificate carries"
            } else {
                ""
            }
        )
    }

    /// A small pool for one database: the control database (its own rows, and the fleet's
    /// admin connections). Recycling is `Fast` (no statement between checkouts): nothing sets
    /// session state on these connections — no `SET`, no `app.tenant_id` (that is the data
    /// plane's, on connections of their own), no `LISTEN`; temporary tables are `ON COMMIT
    /// DROP`; session advisory locks live on connections of their own (`locks.rs`), except the
    /// migration lock, which is released on the same connection. `Clean` ran seven statements
    /// per checkout, about 33 times per provisioned tenant. A pool on a tenant database would
    /// need `Clean` (a session-level `set_config` leaked into the next checkout with `Fast`).
    /// New connections time out like `connect`.
    pub fn pool(&self, dbname: &str, size: usize) -> Result<Pool> {
        self.pool_recycled(dbname, size, RecyclingMethod::Fast)
    }

    /// A pool for a tenant database (the shared pooled one): `Clean` recycling resets session
    /// state (a leaked `app.tenant_id`, a temporary table) before the next checkout.
    pub fn pool_resetting(&self, dbname: &str, size: usize) -> Result<Pool> {
        self.pool_recycled(dbname, size, RecyclingMethod::Clean)
    }

    fn pool_recycled(&self, dbname: &str, size: usize, method: RecyclingMethod) -> Result<Pool> {
        let cfg = ManagerConfig {
            recycling_method: method,
        };
        let mgr = match &self.tls {
            Tls::None => Manager::from_config(self.config_for(dbname), NoTls, cfg),
            Tls::OpenSsl(tls) => Manager::from_config(self.config_for(dbname), tls.clone(), cfg),
        };
        Pool::builder(mgr)
            .max_size(size)
            .runtime(Runtime::Tokio1)
            .create_timeout(Some(self.connect_timeout))
            .build()
            .with_context(|| format!("building a connection pool for `{dbname}`"))
    }
}

/// `sslrootcert=system`: the roots the system trusts, where libpq would find them (its
/// OpenSSL's default paths). An OpenSSL built into tenantctl (the `vendored-openssl` feature)
/// has its own compiled-in directory (`/usr/local/ssl`), not the distribution's, so the bundle
/// and directory are probed where systems keep them (`SSL_CERT_FILE` and `SSL_CERT_DIR` first,
/// as OpenSSL itself honours them), beside OpenSSL's own defaults.
fn system_roots(b: &mut SslConnectorBuilder) -> Result<(), Failure> {
    let err = |e: openssl::error::ErrorStack| {
        Failure::BadInput(format!("loading the system's root certificates: {e}"))
    };
    // OpenSSL's own defaults (its directory, `SSL_CERT_FILE`, `SSL_CERT_DIR` as OpenSSL splits
    // it) are kept: where the probe finds nothing they may still hold the roots, and where
    // neither does, the connection fails on the server's certificate and says what to check.
    b.set_default_verify_paths().map_err(err)?;
    let found = openssl_probe::probe();
    if let Some(file) = &found.cert_file {
        b.set_ca_file(file).map_err(err)?;
    }
    for dir in &found.cert_dir {
        let Some(dir) = dir.to_str() else { continue };
        b.cert_store_mut()
            .add_lookup(X509Lookup::hash_dir())
            .and_then(|l| l.add_dir(dir, SslFiletype::PEM))
            .map_err(err)?;
    }
    Ok(())
}

/// The OpenSSL connector for a mode: `prefer`/`require` encrypt without checking the
/// certificate (unless a root certificate is configured, when `require` checks the chain, as
/// libpq does); `verify-ca` checks the chain; `verify-full` the chain and the host name.
fn connector(p: &ConnParams) -> Result<MakeTlsConnector, Failure> {
    let tls_err =
        |what: &str, e: openssl::error::ErrorStack| Failure::BadInput(format!("{what}: {e}"));
    let mut b =
        SslConnector::builder(SslMethod::tls_client()).map_err(|e| tls_err("setting up TLS", e))?;
    let verify = match p.sslmode {
        SslMode::VerifyCa | SslMode::VerifyFull => true,
        SslMode::Require => p.sslrootcert.is_some(),
        SslMode::Disable | SslMode::Prefer => false,
    };
    if verify {
        match p.sslrootcert.as_deref() {
            Some(path) if path.as_os_str() == "system" => system_roots(&mut b)?,
            Some(path) => {
                // Only the named file, as libpq: the connector starts with OpenSSL's default
                // roots (`SSL_CERT_FILE`, the system's bundle with a system OpenSSL), which
                // would let `verify-ca` accept any publicly signed certificate.
                let empty = X509StoreBuilder::new()
                    .map_err(|e| tls_err("setting up TLS", e))?
                    .build();
                b.set_cert_store(empty);
                if !path.is_file() {
                    return Err(Failure::BadInput(format!(
                        "root certificate file {} does not exist or is not a file (sslrootcert)",
                        crate::excerpt::excerpt(&path.display().to_string())
                    )));
                }
                b.set_ca_file(path).map_err(|e| {
                    tls_err(
                        &format!(
                            "reading root certificate {}",
                            crate::excerpt::excerpt(&path.display().to_string())
                        ),
                        e,
                    )
                })?
            }
            None => {
                return Err(Failure::BadInput(format!(
                    "sslmode={} needs a root certificate: set sslrootcert=/path/to/ca.pem (or sslrootcert=system), or put it in ~/.postgresql/root.crt",
                    p.sslmode.as_str()
                )))
            }
        }
        b.set_verify(SslVerifyMode::PEER);
    } else {
        b.set_verify(SslVerifyMode::NONE);
    }
    if let Some(cert) = &p.sslcert {
        let shown = crate::excerpt::excerpt(&cert.display().to_string());
        b.set_certificate_chain_file(cert)
            .map_err(|e| tls_err(&format!("reading client certificate {shown} (sslcert)"), e))?;
        let key = p
            .sslkey
            .clone()
            .unwrap_or_else(|| cert.with_extension("key"));
        let key_shown = crate::excerpt::excerpt(&key.display().to_string());
        b.set_private_key_file(&key, SslFiletype::PEM)
            .map_err(|e| tls_err(&format!("reading client key {key_shown} (sslkey)"), e))?;
        b.check_private_key()
            .map_err(|e| tls_err(&format!("client key {key_shown} does not match {shown}"), e))?;
    }
    let mut tls = MakeTlsConnector::new(b.build());
    let full = p.sslmode == SslMode::VerifyFull;
    tls.set_callback(move |cfg, _domain| {
        // The host name is checked only by verify-full (openssl checks it by default, against
        // an IP address SAN when the host is an address).
        if !full {
            cfg.set_verify_hostname(false);
        }
        Ok(())
    });
    Ok(tls)
}

/// True for the errors two concurrent `CREATE DATABASE`/`CREATE ROLE` of one name produce:
/// the loser sees 42P04/42710, or 23505 when both passed the existence check.
pub(crate) fn already_exists(err: &tokio_postgres::Error) -> bool {
    matches!(
        err.code(),
        Some(c) if *c == SqlState::DUPLICATE_DATABASE
            || *c == SqlState::DUPLICATE_OBJECT
            || *c == SqlState::UNIQUE_VIOLATION
    )
}

/// True when the database named in a connection attempt does not exist.
pub(crate) fn database_missing(err: &anyhow::Error) -> bool {
    err.chain()
        .filter_map(|e| e.downcast_ref::<tokio_postgres::Error>())
        .any(|e| e.code() == Some(&SqlState::INVALID_CATALOG_NAME))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `sslrootcert=system` loads the distribution's roots, wherever this build's OpenSSL keeps
    /// its own defaults (a built-in OpenSSL looks under /usr/local/ssl, where Debian has none).
    /// Checked in a child test process without `SSL_CERT_FILE` and `SSL_CERT_DIR`, which some
    /// environments set and which would hide a missing probe.
    #[test]
    fn system_roots_are_the_distributions_bundle() {
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "db::tests::system_roots_in_a_clean_environment",
                "--ignored",
                "--nocapture",
            ])
            .env_remove("SSL_CERT_FILE")
            .env_remove("SSL_CERT_DIR")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && text.contains("1 passed"),
            "{text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    #[test]
    #[ignore = "run by system_roots_are_the_distributions_bundle, in a clean environment"]
    fn system_roots_in_a_clean_environment() {
        assert!(std::env::var_os("SSL_CERT_FILE").is_none());
        let mut b = SslConnector::builder(SslMethod::tls_client()).unwrap();
        let bundle = std::path::Path::new("/etc/ssl/certs/ca-certificates.crt");
        system_roots(&mut b).unwrap();
        let loaded = b.build().context().cert_store().all_certificates().len();
        let expected = std::fs::read_to_string(bundle)
            .expect("this test needs Debian's ca-certificates bundle")
            .matches("-----BEGIN CERTIFICATE-----")
            .count();
        assert!(expected > 0 && loaded >= expected, "{loaded} of {expected}");
    }
}
