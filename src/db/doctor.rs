//! What `tenantctl doctor` reads from the server: its version, the session's TLS, and the
//! connected role's attributes. Reads only.

use anyhow::{Context, Result};
use tokio_postgres::Client;

/// The session as the server sees it.
pub struct SessionFacts {
    pub server_version: String,
    pub ssl: bool,
    pub ssl_version: Option<String>,
    pub application_name: String,
    pub role: String,
    pub superuser: bool,
    pub login: bool,
    pub createdb: bool,
    pub createrole: bool,
    pub bypassrls: bool,
}

pub async fn session_facts(client: &Client) -> Result<SessionFacts> {
    let row = client
        .query_one(
            "SELECT current_setting('server_version'), \
                    coalesce(s.ssl, false), s.version, \
                    r.rolname::text, r.rolsuper, r.rolcanlogin, r.rolcreatedb, r.rolcreaterole, \
                    r.rolbypassrls, \
                    (SELECT a.application_name FROM pg_stat_activity a \
                      WHERE a.pid = pg_backend_pid()) \
               FROM pg_roles r \
               LEFT JOIN pg_stat_ssl s ON s.pid = pg_backend_pid() \
              WHERE r.rolname = current_user",
            &[],
        )
        .await
        .context("reading the server's version and the admin role's attributes")?;
    Ok(SessionFacts {
        server_version: row.get(0),
        ssl: row.get(1),
        ssl_version: row.get(2),
        role: row.get(3),
        superuser: row.get(4),
        login: row.get(5),
        createdb: row.get(6),
        createrole: row.get(7),
        bypassrls: row.get(8),
        application_name: row.get::<_, Option<String>>(9).unwrap_or_default(),
    })
}
