//! The data plane: tenant databases and login roles, who may connect to them, and the rows
//! provisioning writes into the tenant schema.
//!
//! Ownership: every database and role tenantctl creates carries a `Mark` as its comment,
//! written in the step that creates it, and every function here that changes, revokes or drops
//! a database or role first calls `ensure_ours`, the one place the mark is read. An object that
//! exists without the expected mark is refused (exit 3), never adopted, changed or dropped.

use std::fmt;

use anyhow::{Context, Result};
use tokio_postgres::Client;
use uuid::Uuid;

use super::{already_exists, ident};
use crate::excerpt::excerpt;
use crate::exit::Failure;

/// The comment that marks a database or role as made by tenantctl:
/// `tenantctl:<control plane id>:<tenant id>` for a siloed tenant's database and role,
/// `tenantctl:<control plane id>:pooled` for the shared pooled database and application role.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mark(String);

impl Mark {
    pub fn tenant(control_plane: Uuid, tenant: Uuid) -> Mark {
        Mark(format!("tenantctl:{control_plane}:{tenant}"))
    }

    pub fn pooled(control_plane: Uuid) -> Mark {
        Mark(format!("tenantctl:{control_plane}:pooled"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A database or a role, by name.
#[derive(Clone, Copy, Debug)]
pub enum Object<'a> {
    Database(&'a str),
    Role(&'a str),
}

impl fmt::Display for Object<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Object::Database(n) => write!(f, "database `{n}`"),
            Object::Role(n) => write!(f, "role `{n}`"),
        }
    }
}

/// What a look-up of an object found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Found {
    Absent,
    /// It carries the expected mark.
    Ours,
    /// It exists without the expected mark: its comment, and (databases) whether the
    /// connecting role owns it.
    Foreign {
        comment: Option<String>,
        owned_by_us: bool,
    },
}

/// Whether `obj` exists: `None` if not, else its comment and (databases) whether the
/// connecting role owns it. Reads only.
pub async fn lookup(admin: &Client, obj: Object<'_>) -> Result<Option<(Option<String>, bool)>> {
    let row = match obj {
        Object::Database(name) => {
            admin
                .query_opt(
                    "SELECT shobj_description(d.oid, 'pg_database'),
                        d.datdba = (SELECT oid FROM pg_roles WHERE rolname = current_user)
                 FROM pg_database d WHERE d.datname = $1",
                    &[&name],
                )
                .await
        }
        Object::Role(name) => {
            admin
                .query_opt(
                    "SELECT shobj_description(r.oid, 'pg_authid'), false
                 FROM pg_roles r WHERE r.rolname = $1",
                    &[&name],
                )
                .await
        }
    }
    .with_context(|| format!("reading the mark of {obj}"))?;
    Ok(row.map(|r| (r.get(0), r.get(1))))
}

/// Reads `obj`'s comment and compares it with `mark`. Reads only.
pub async fn inspect(admin: &Client, obj: Object<'_>, mark: &Mark) -> Result<Found> {
    Ok(match lookup(admin, obj).await? {
        None => Found::Absent,
        Some((comment, _)) if comment.as_deref() == Some(mark.as_str()) => Found::Ours,
        Some((comment, owned_by_us)) => Found::Foreign {
            comment,
            owned_by_us,
        },
    })
}

/// The refusal for an object that exists without the expected mark.
pub fn refusal(obj: Object<'_>, comment: Option<&str>) -> Failure {
    let why = match comment {
        Some(c) if c.starts_with("tenantctl:") => {
            format!(
                "it is marked `{}`, for another tenant or control plane",
                excerpt(c)
            )
        }
        _ => "it carries no tenantctl mark".to_owned(),
    };
    Failure::Refused(format!(
        "refusing to touch {obj}: it exists but was not created by this control plane for this tenant ({why}); \
         tenantctl never adopts, changes or drops what it did not create (a tenant provisioned before \
         marks existed: see `tenantctl adopt`)"
    ))
}

/// The guard every change of a database or role passes first: true when `obj` carries `mark`,
/// false when it does not exist, a refusal (exit 3) naming it when it exists without the mark.
pub async fn ensure_ours(admin: &Client, obj: Object<'_>, mark: &Mark) -> Result<bool> {
    match inspect(admin, obj, mark).await? {
        Found::Ours => Ok(true),
        Found::Absent => Ok(false),
        Found::Foreign { comment, .. } => Err(refusal(obj, comment.as_deref()).into()),
    }
}

/// `ensure_ours` for an object the change needs: its absence is an error too.
async fn require_ours(admin: &Client, obj: Object<'_>, mark: &Mark) -> Result<()> {
    if ensure_ours(admin, obj, mark).await? {
        Ok(())
    } else {
        anyhow::bail!("{obj} does not exist")
    }
}

/// Writes `mark` on `obj`: after the creation of a database (its `CREATE` cannot share a
/// transaction with the comment), or by `adopt`. COMMENT ON DATABASE needs its ownership,
/// COMMENT ON ROLE the CREATEROLE attribute: no superuser needed.
pub async fn write_mark(admin: &Client, obj: Object<'_>, mark: &Mark) -> Result<()> {
    let lit = postgres_protocol::escape::escape_literal(mark.as_str());
    let sql = match obj {
        Object::Database(n) => format!("COMMENT ON DATABASE {} IS {lit}", ident::quote(n)),
        Object::Role(n) => format!("COMMENT ON ROLE {} IS {lit}", ident::quote(n)),
    };
    admin
        .batch_execute(&sql)
        .await
        .with_context(|| format!("marking {obj}"))
}

/// A transaction with `tenant`'s context set (`set_config(..., true)`: it ends with the
/// transaction), the only way rows under forced RLS are reached by a non-superuser owner.
pub(super) async fn tenant_tx(
    client: &mut Client,
    tenant: Uuid,
) -> Result<tokio_postgres::Transaction<'_>> {
    let tx = client
        .transaction()
        .await
        .context("starting a transaction")?;
    tx.execute(
        "SELECT set_config('app.tenant_id', $1, true)",
        &[&tenant.to_string()],
    )
    .await
    .context("setting the tenant context")?;
    Ok(tx)
}

/// Every table of the tenant schema: those with a `tenant_id` column (later migrations' tables
/// included).
async fn tenant_tables(client: &Client) -> Result<Vec<String>> {
    Ok(client
        .query(
            "SELECT table_name::text FROM information_schema.columns
             WHERE table_schema = 'public' AND column_name = 'tenant_id' ORDER BY 1",
            &[],
        )
        .await
        .context("listing the tenant tables")?
        .iter()
        .map(|r| r.get(0))
        .collect())
}

/// Makes sure a login role for applications exists and is ours: LOGIN, and neither
/// SUPERUSER, BYPASSRLS, CREATEDB nor CREATEROLE. A new role is created and marked in one
/// transaction (a multi-statement query is one); an existing one must carry `mark`.
pub async fn ensure_app_role(admin: &Client, role: &str, mark: &Mark) -> Result<()> {
    let attrs = "LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE NOREPLICATION";
    let obj = Object::Role(role);
    if !ensure_ours(admin, obj, mark).await? {
        let lit = postgres_protocol::escape::escape_literal(mark.as_str());
        let q = ident::quote(role);
        match admin
            .batch_execute(&format!(
                "CREATE ROLE {q} {attrs}; COMMENT ON ROLE {q} IS {lit}"
            ))
            .await
        {
            Ok(()) => return Ok(()),
            // Someone else created it meanwhile: ours only if it carries our mark.
            Err(e) if already_exists(&e) => require_ours(admin, obj, mark).await?,
            Err(e) => return Err(e).with_context(|| format!("creating role `{role}`")),
        }
    }
    admin
        .batch_execute(&format!("ALTER ROLE {} {attrs}", ident::quote(role)))
        .await
        .with_context(|| format!("setting the attributes of role `{role}`"))
}

/// Creates database `name`, owned by the connecting role; false if it already existed (a
/// concurrent creator won). No check and no mark: the caller claims the name first and marks
/// the database after (`write_mark`). `CREATE DATABASE` cannot run in a transaction.
pub async fn create_database(admin: &Client, name: &str) -> Result<bool> {
    match admin
        .batch_execute(&format!("CREATE DATABASE {}", ident::quote(name)))
        .await
    {
        Ok(()) => Ok(true),
        Err(e) if already_exists(&e) => Ok(false),
        Err(e) => Err(e).with_context(|| format!("creating database `{name}`")),
    }
}

/// Only `role` may connect to `db` (besides superusers): a new database lets PUBLIC connect.
pub async fn restrict_connect(admin: &Client, mark: &Mark, db: &str, role: &str) -> Result<()> {
    require_ours(admin, Object::Database(db), mark).await?;
    require_ours(admin, Object::Role(role), mark).await?;
    let (db_q, role_q) = (ident::quote(db), ident::quote(role));
    admin
        .batch_execute(&format!(
            "REVOKE ALL ON DATABASE {db_q} FROM PUBLIC; GRANT CONNECT ON DATABASE {db_q} TO {role_q}"
        ))
        .await
        .with_context(|| format!("restricting who may connect to `{db}`"))
}

/// Lets `role` read and write the tenant tables of the database `client` is connected to,
/// but not refinery's history table, and only read `tenant_suspensions` (its policies'
/// subqueries run with the caller's rights) and `tenant_features` (tenantctl writes the
/// entitlements). Repeated after every migration, for new tables.
pub async fn grant_app_access(client: &Client, role: &str) -> Result<()> {
    let role_q = ident::quote(role);
    client
        .batch_execute(&format!(
            "GRANT USAGE ON SCHEMA public TO {role_q};
             GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {role_q};
             REVOKE ALL ON TABLE refinery_schema_history FROM {role_q};
             REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON TABLE tenant_suspensions FROM {role_q};
             REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON TABLE tenant_features FROM {role_q};"
        ))
        .await
        .with_context(|| format!("granting role `{role}` access to the tenant tables"))
}

/// Creates the tenant's owner user, or gives an existing one the new password hash (a re-run
/// after a crash issues a fresh password, since the first may never have been shown).
/// Runs with the tenant's context set, so it also works for a table owner under FORCE RLS.
pub async fn upsert_owner(
    client: &mut Client,
    tenant: Uuid,
    email: &str,
    full_name: &str,
    password_hash: &str,
) -> Result<()> {
    let tx = tenant_tx(client, tenant).await?;
    tx.execute(
        "INSERT INTO users (tenant_id, email, password_hash, full_name, role)
         VALUES ($1, $2, $3, $4, 'owner')
         ON CONFLICT (tenant_id, email) DO UPDATE SET password_hash = EXCLUDED.password_hash",
        &[&tenant, &email, &password_hash, &full_name],
    )
    .await
    .context("writing the owner user")?;
    tx.commit().await.context("committing the owner user")
}

/// Sizes in bytes of the named databases, read from any connection.
pub async fn database_sizes(admin: &Client, dbs: &[&str]) -> Result<Vec<(String, i64)>> {
    let rows = admin
        .query(
            "SELECT datname::text, pg_database_size(datname) FROM pg_database WHERE datname = ANY($1)",
            &[&dbs],
        )
        .await
        .context("reading database sizes")?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// A siloed tenant's user rows, counted with its context set (so that a table owner under
/// FORCE RLS counts them too).
pub async fn count_users(client: &mut Client, tenant: Uuid) -> Result<i64> {
    let tx = tenant_tx(client, tenant).await?;
    let n: i64 = tx
        .query_one(
            "SELECT count(*) FROM users WHERE tenant_id = $1",
            &[&tenant],
        )
        .await
        .context("counting users")?
        .get(0);
    tx.commit().await.context("ending the count")?;
    Ok(n)
}

/// Per tenant of the pooled database: its user rows, and its share of the tenant tables'
/// storage: for each table with a `tenant_id` column, the table's total size (heap, indexes,
/// TOAST) times the tenant's share of the table's row bytes. Reads every tenant's rows, so the
/// connecting role must bypass row-level security (a superuser, or BYPASSRLS).
pub async fn pooled_usage(client: &Client) -> Result<Vec<(Uuid, i64, i64)>> {
    let tables = tenant_tables(client).await?;
    if tables.is_empty() {
        return Ok(Vec::new());
    }
    let per_table = tables
        .iter()
        .map(|t| {
            format!(
                "SELECT {lit} AS tbl, tenant_id, count(*) AS n, sum(pg_column_size(x.*))::numeric AS b FROM {q} x GROUP BY tenant_id",
                lit = postgres_protocol::escape::escape_literal(t),
                q = ident::quote(t)
            )
        })
        .collect::<Vec<_>>()
        .join(" UNION ALL ");
    let sql = format!(
        "WITH rows AS ({per_table}),
         totals AS (SELECT tbl, sum(b) AS all_b FROM rows GROUP BY tbl)
         SELECT r.tenant_id,
                sum(CASE WHEN r.tbl = 'users' THEN r.n ELSE 0 END)::bigint,
                coalesce(sum(pg_total_relation_size(format('%I', r.tbl)::regclass) * r.b / nullif(t.all_b, 0)), 0)::bigint
         FROM rows r JOIN totals t USING (tbl)
         GROUP BY r.tenant_id"
    );
    let rows = client
        .query(&sql, &[])
        .await
        .context("measuring the pooled tenants")?;
    Ok(rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect())
}

/// Cuts a siloed tenant off: its role cannot log in or connect, its database refuses every new
/// connection (superusers too), and live sessions are terminated. Idempotent.
pub async fn close_silo(admin: &Client, mark: &Mark, db: &str, role: &str) -> Result<()> {
    require_ours(admin, Object::Database(db), mark).await?;
    require_ours(admin, Object::Role(role), mark).await?;
    let (db_q, role_q) = (ident::quote(db), ident::quote(role));
    admin
        .batch_execute(&format!(
            "ALTER ROLE {role_q} NOLOGIN;
             REVOKE CONNECT ON DATABASE {db_q} FROM {role_q};
             ALTER DATABASE {db_q} ALLOW_CONNECTIONS false;"
        ))
        .await
        .with_context(|| format!("closing database `{db}` and role `{role}`"))?;
    admin
        .execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
             WHERE (datname = $1 OR usename = $2) AND pid <> pg_backend_pid()",
            &[&db, &role],
        )
        .await
        .with_context(|| format!("terminating the sessions of `{db}`"))?;
    Ok(())
}

/// Cuts off a siloed tenant's role whose database does not exist (provisioning stopped between
/// the two): it cannot log in, and its sessions (in databases open to PUBLIC) are terminated.
/// Idempotent; an absent role is nothing to close.
pub async fn close_role(admin: &Client, mark: &Mark, role: &str) -> Result<()> {
    if !ensure_ours(admin, Object::Role(role), mark).await? {
        return Ok(());
    }
    admin
        .batch_execute(&format!("ALTER ROLE {} NOLOGIN", ident::quote(role)))
        .await
        .with_context(|| format!("closing role `{role}`"))?;
    admin
        .execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
             WHERE usename = $1 AND pid <> pg_backend_pid()",
            &[&role],
        )
        .await
        .with_context(|| format!("terminating the sessions of role `{role}`"))?;
    Ok(())
}

/// Lets connections into a closed silo again, for tenantctl only: the role stays NOLOGIN and
/// without CONNECT until `open_silo_to_tenant`.
pub async fn allow_connections(admin: &Client, mark: &Mark, db: &str) -> Result<()> {
    require_ours(admin, Object::Database(db), mark).await?;
    admin
        .batch_execute(&format!(
            "ALTER DATABASE {} ALLOW_CONNECTIONS true",
            ident::quote(db)
        ))
        .await
        .with_context(|| format!("reopening database `{db}`"))
}

/// Gives the tenant's role back its login and its CONNECT: exactly what provisioning set.
pub async fn open_silo_to_tenant(admin: &Client, mark: &Mark, db: &str, role: &str) -> Result<()> {
    require_ours(admin, Object::Database(db), mark).await?;
    require_ours(admin, Object::Role(role), mark).await?;
    let (db_q, role_q) = (ident::quote(db), ident::quote(role));
    admin
        .batch_execute(&format!(
            "GRANT CONNECT ON DATABASE {db_q} TO {role_q}; ALTER ROLE {role_q} LOGIN;"
        ))
        .await
        .with_context(|| format!("reopening role `{role}`"))
}

/// Whether a database accepts connections (`false` once a silo is closed).
pub async fn accepts_connections(admin: &Client, db: &str) -> Result<Option<bool>> {
    Ok(admin
        .query_opt(
            "SELECT datallowconn FROM pg_database WHERE datname = $1",
            &[&db],
        )
        .await
        .with_context(|| format!("looking up database `{db}`"))?
        .map(|r| r.get(0)))
}

/// Hides (or shows again) a pooled tenant's rows from the application role. Runs with the
/// tenant's context set, so that a table owner under FORCE RLS may write the row.
pub async fn set_pooled_suspension(
    client: &mut Client,
    tenant: Uuid,
    suspended: bool,
) -> Result<()> {
    let sql = if suspended {
        "INSERT INTO tenant_suspensions (tenant_id) VALUES ($1) ON CONFLICT DO NOTHING"
    } else {
        "DELETE FROM tenant_suspensions WHERE tenant_id = $1"
    };
    let tx = tenant_tx(client, tenant).await?;
    tx.execute(sql, &[&tenant])
        .await
        .context("changing the tenant's suspension")?;
    tx.commit()
        .await
        .context("committing the tenant's suspension")
}

/// Removes a siloed tenant's database (closing its sessions) and role, if they exist and carry
/// `mark`; an unmarked one is refused, never dropped.
pub async fn drop_silo(admin: &Client, mark: &Mark, db: &str, role: &str) -> Result<()> {
    // Both checked before either is dropped: a refusal leaves the silo whole.
    let has_db = ensure_ours(admin, Object::Database(db), mark).await?;
    let has_role = ensure_ours(admin, Object::Role(role), mark).await?;
    if has_db {
        admin
            .batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                ident::quote(db)
            ))
            .await
            .with_context(|| format!("dropping database `{db}`"))?;
    }
    if has_role {
        admin
            .batch_execute(&format!("DROP ROLE IF EXISTS {}", ident::quote(role)))
            .await
            .with_context(|| format!("dropping role `{role}`"))?;
    }
    Ok(())
}

/// Deletes every row of a pooled tenant, in every table with a `tenant_id` column.
pub async fn purge_pooled_rows(client: &mut Client, tenant: Uuid) -> Result<u64> {
    let tables = tenant_tables(client).await?;
    let tx = tenant_tx(client, tenant).await?;
    // First: while it stands, the policies hide the rows even from a non-superuser owner.
    tx.execute(
        "DELETE FROM tenant_suspensions WHERE tenant_id = $1",
        &[&tenant],
    )
    .await
    .context("deleting the tenant's suspension")?;
    let mut deleted = 0;
    for t in tables.iter().filter(|t| *t != "tenant_suspensions") {
        deleted += tx
            .execute(
                &format!("DELETE FROM {} WHERE tenant_id = $1", ident::quote(t)),
                &[&tenant],
            )
            .await
            .with_context(|| format!("deleting the tenant's rows from {t}"))?;
    }
    tx.commit()
        .await
        .context("committing the purge of the tenant's rows")?;
    Ok(deleted)
}
