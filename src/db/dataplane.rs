//! The data plane: tenant databases and login roles, who may connect to them, and the rows
//! provisioning writes into the tenant schema.

use anyhow::{Context, Result};
use tokio_postgres::Client;
use uuid::Uuid;

use super::{already_exists, ident};

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

/// Makes sure a login role for applications exists: LOGIN, and neither SUPERUSER, BYPASSRLS,
/// CREATEDB nor CREATEROLE, even if a role of that name was there before.
pub async fn ensure_app_role(admin: &Client, role: &str) -> Result<()> {
    let attrs = "LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE NOREPLICATION";
    let exists = admin
        .query_opt("SELECT 1 FROM pg_roles WHERE rolname = $1", &[&role])
        .await
        .with_context(|| format!("looking up role `{role}`"))?
        .is_some();
    if !exists {
        match admin
            .batch_execute(&format!("CREATE ROLE {} {attrs}", ident::quote(role)))
            .await
        {
            Ok(()) => return Ok(()),
            Err(e) if already_exists(&e) => {}
            Err(e) => return Err(e).with_context(|| format!("creating role `{role}`")),
        }
    }
    admin
        .batch_execute(&format!("ALTER ROLE {} {attrs}", ident::quote(role)))
        .await
        .with_context(|| format!("setting the attributes of role `{role}`"))
}

/// Creates database `name` unless it exists; true if this call created it. `CREATE DATABASE`
/// cannot run in a transaction, so this is one statement on its own.
pub async fn ensure_database(admin: &Client, name: &str) -> Result<bool> {
    let exists = admin
        .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&name])
        .await
        .with_context(|| format!("looking up database `{name}`"))?
        .is_some();
    if exists {
        return Ok(false);
    }
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
pub async fn restrict_connect(admin: &Client, db: &str, role: &str) -> Result<()> {
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
pub async fn close_silo(admin: &Client, db: &str, role: &str) -> Result<()> {
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

/// Lets connections into a closed silo again, for tenantctl only: the role stays NOLOGIN and
/// without CONNECT until `open_silo_to_tenant`.
pub async fn allow_connections(admin: &Client, db: &str) -> Result<()> {
    admin
        .batch_execute(&format!(
            "ALTER DATABASE {} ALLOW_CONNECTIONS true",
            ident::quote(db)
        ))
        .await
        .with_context(|| format!("reopening database `{db}`"))
}

/// Gives the tenant's role back its login and its CONNECT: exactly what provisioning set.
pub async fn open_silo_to_tenant(admin: &Client, db: &str, role: &str) -> Result<()> {
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

/// Removes a siloed tenant's database (closing its sessions) and role, if they exist.
pub async fn drop_silo(admin: &Client, db: &str, role: &str) -> Result<()> {
    admin
        .batch_execute(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            ident::quote(db)
        ))
        .await
        .with_context(|| format!("dropping database `{db}`"))?;
    admin
        .batch_execute(&format!("DROP ROLE IF EXISTS {}", ident::quote(role)))
        .await
        .with_context(|| format!("dropping role `{role}`"))
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
