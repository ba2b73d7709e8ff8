//! Backups in the databases: a pooled tenant's rows out (COPY, one snapshot) and back in (one
//! transaction), a silo's row counts from the snapshot `pg_dump` uses, the staging and retired
//! databases of a siloed restore, how `pg_dump`/`pg_restore` reach the server, and the restore
//! journal (`backup_restores`).

use anyhow::{Context, Result};
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tokio_postgres::{Client, IsolationLevel};
use uuid::Uuid;

use super::control::ControlDb;
use super::dataplane::{ensure_ours, Mark, Object};
use super::{ident, Server};

/// Tables of the tenant schema that tenantctl writes from the control database (suspension,
/// entitlements): a restore keeps the tenant's current ones, so a backup leaves them out.
const CONTROLLED: [&str; 2] = ["tenant_suspensions", "tenant_features"];

/// One table of a pooled backup: its columns (in COPY order) and rows in COPY text format.
#[derive(Debug, Clone)]
pub struct TableCopy {
    pub table: String,
    pub columns: Vec<String>,
    pub rows: i64,
    pub data: Bytes,
}

/// The tenant tables (a `tenant_id` column) but the controlled ones, parents before children
/// (foreign keys), ties by name.
pub async fn tables_in_fk_order(client: &Client) -> Result<Vec<String>> {
    let rows = client
        .query(
            "SELECT c.relname::text,
                    coalesce(array_agg(DISTINCT p.relname::text)
                             FILTER (WHERE p.relname IS NOT NULL AND p.oid <> c.oid), '{}')
             FROM pg_class c
             JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = 'public'
             JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped
             LEFT JOIN pg_constraint k ON k.conrelid = c.oid AND k.contype = 'f'
             LEFT JOIN pg_class p ON p.oid = k.confrelid
             WHERE c.relkind IN ('r', 'p')
             GROUP BY c.relname ORDER BY 1",
            &[],
        )
        .await
        .context("listing the tenant tables and their foreign keys")?;
    let mut pending: Vec<(String, Vec<String>)> = rows
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .filter(|(t, _): &(String, Vec<String>)| !CONTROLLED.contains(&t.as_str()))
        .collect();
    let names: Vec<String> = pending.iter().map(|(t, _)| t.clone()).collect();
    let mut order: Vec<String> = Vec::new();
    while !pending.is_empty() {
        let ready = pending.iter().position(|(_, parents)| {
            parents
                .iter()
                .all(|p| order.contains(p) || !names.contains(p))
        });
        let Some(i) = ready else {
            anyhow::bail!(
                "the tenant tables' foreign keys form a cycle ({}); tenantctl backs up tables parents first",
                pending.iter().map(|(t, _)| t.as_str()).collect::<Vec<_>>().join(", ")
            );
        };
        order.push(pending.remove(i).0);
    }
    Ok(order)
}

async fn columns(client: &impl tokio_postgres::GenericClient, table: &str) -> Result<Vec<String>> {
    Ok(client
        .query(
            "SELECT attname::text FROM pg_attribute
             WHERE attrelid = ('public.' || quote_ident($1))::regclass AND attnum > 0 AND NOT attisdropped
             ORDER BY attnum",
            &[&table],
        )
        .await
        .with_context(|| format!("reading the columns of {table}"))?
        .iter()
        .map(|r| r.get(0))
        .collect())
}

fn column_list(columns: &[String]) -> String {
    columns
        .iter()
        .map(|c| ident::quote(c))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A pooled tenant's rows, table by table in foreign-key order, from one REPEATABLE READ
/// snapshot, under the tenant's context (the admin is subject to the forced policies). A
/// suspended tenant's rows are hidden by its suspension row: the transaction deletes that row,
/// reads, and rolls back, so nothing changes.
pub async fn copy_out_pooled(client: &mut Client, tenant: Uuid) -> Result<Vec<TableCopy>> {
    let tables = tables_in_fk_order(client).await?;
    let tx = client
        .build_transaction()
        .isolation_level(IsolationLevel::RepeatableRead)
        .start()
        .await
        .context("starting the backup's snapshot")?;
    tx.execute(
        "SELECT set_config('app.tenant_id', $1, true)",
        &[&tenant.to_string()],
    )
    .await
    .context("setting the tenant context")?;
    tx.execute(
        "DELETE FROM tenant_suspensions WHERE tenant_id = $1",
        &[&tenant],
    )
    .await
    .context("looking past the tenant's suspension")?;
    let mut out = Vec::new();
    for table in tables {
        let columns = columns(&tx, &table).await?;
        // A uuid's text is hex digits and dashes: safe inside the statement (COPY takes no
        // parameters); the policy confines the rows to the tenant's anyway.
        let sql = format!(
            "COPY (SELECT {} FROM {} WHERE tenant_id = '{tenant}') TO STDOUT",
            column_list(&columns),
            ident::quote(&table)
        );
        let stream = tx
            .copy_out(&sql)
            .await
            .with_context(|| format!("copying the tenant's rows out of {table}"))?;
        let mut stream = std::pin::pin!(stream);
        let mut data = Vec::new();
        while let Some(chunk) = stream.next().await {
            data.extend_from_slice(&chunk.with_context(|| format!("reading rows of {table}"))?);
        }
        // COPY's text format escapes newlines inside values: one line per row.
        let rows = data.iter().filter(|b| **b == b'\n').count() as i64;
        out.push(TableCopy {
            table,
            columns,
            rows,
            data: Bytes::from(data),
        });
    }
    tx.rollback()
        .await
        .context("ending the backup's snapshot")?;
    Ok(out)
}

/// Replaces a pooled tenant's rows with `tables` in one transaction: deleted children first,
/// loaded parents first. COPY cannot write into a table under row-level security, so each
/// table is copied into a temporary table and inserted from there (the policies' WITH CHECK
/// confines every row to the tenant). The tenant's suspension is kept as it is. Returns the
/// rows loaded per table.
pub async fn restore_pooled(
    client: &mut Client,
    tenant: Uuid,
    tables: &[TableCopy],
    before_commit: impl FnOnce(),
) -> Result<Vec<(String, i64)>> {
    let existing = tables_in_fk_order(client).await?;
    for t in tables {
        anyhow::ensure!(
            existing.contains(&t.table),
            "the backup has table {} that the tenant schema no longer has",
            t.table
        );
    }
    let tx = client.transaction().await.context("starting the restore")?;
    tx.execute(
        "SELECT set_config('app.tenant_id', $1, true)",
        &[&tenant.to_string()],
    )
    .await
    .context("setting the tenant context")?;
    let suspended = tx
        .execute(
            "DELETE FROM tenant_suspensions WHERE tenant_id = $1",
            &[&tenant],
        )
        .await
        .context("looking past the tenant's suspension")?
        > 0;
    for table in existing.iter().rev() {
        tx.execute(
            &format!("DELETE FROM {} WHERE tenant_id = $1", ident::quote(table)),
            &[&tenant],
        )
        .await
        .with_context(|| format!("deleting the tenant's rows from {table}"))?;
    }
    let mut loaded = Vec::new();
    for t in tables {
        let cols = column_list(&t.columns);
        let (table_q, tmp_q) = (
            ident::quote(&t.table),
            ident::quote(&format!("restore_{}", t.table)),
        );
        tx.batch_execute(&format!(
            "CREATE TEMP TABLE {tmp_q} ON COMMIT DROP AS SELECT {cols} FROM {table_q} WITH NO DATA"
        ))
        .await
        .with_context(|| format!("preparing the load of {}", t.table))?;
        let sink = tx
            .copy_in(&format!("COPY {tmp_q} ({cols}) FROM STDIN"))
            .await
            .with_context(|| format!("loading rows of {}", t.table))?;
        let mut sink = std::pin::pin!(sink);
        sink.send(t.data.clone())
            .await
            .with_context(|| format!("loading rows of {}", t.table))?;
        sink.as_mut()
            .finish()
            .await
            .with_context(|| format!("loading rows of {}", t.table))?;
        let n = tx
            .execute(
                &format!("INSERT INTO {table_q} ({cols}) SELECT {cols} FROM {tmp_q}"),
                &[],
            )
            .await
            .with_context(|| format!("restoring rows of {}", t.table))?;
        anyhow::ensure!(
            n as i64 == t.rows,
            "restoring {}: {n} rows loaded, the backup has {}",
            t.table,
            t.rows
        );
        loaded.push((t.table.clone(), n as i64));
    }
    if suspended {
        tx.execute(
            "INSERT INTO tenant_suspensions (tenant_id) VALUES ($1)",
            &[&tenant],
        )
        .await
        .context("keeping the tenant's suspension")?;
    }
    before_commit();
    tx.commit().await.context("committing the restore")?;
    Ok(loaded)
}

/// Rows per tenant table (but the controlled ones) of a silo, as `tenant` sees them, within
/// the transaction `client` has open (the snapshot `pg_dump` is given).
pub async fn count_rows(
    client: &impl tokio_postgres::GenericClient,
    tenant: Uuid,
) -> Result<Vec<(String, i64)>> {
    client
        .execute(
            "SELECT set_config('app.tenant_id', $1, true)",
            &[&tenant.to_string()],
        )
        .await
        .context("setting the tenant context")?;
    let tables: Vec<String> = client
        .query(
            "SELECT c.relname::text FROM pg_class c
             JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = 'public'
             JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped
             WHERE c.relkind IN ('r', 'p') ORDER BY 1",
            &[],
        )
        .await
        .context("listing the tenant tables")?
        .iter()
        .map(|r| r.get(0))
        .filter(|t: &String| !CONTROLLED.contains(&t.as_str()))
        .collect();
    let mut out = Vec::new();
    for t in tables {
        let n: i64 = client
            .query_one(&format!("SELECT count(*) FROM {}", ident::quote(&t)), &[])
            .await
            .with_context(|| format!("counting rows of {t}"))?
            .get(0);
        out.push((t, n));
    }
    Ok(out)
}

/// Opens a REPEATABLE READ transaction and exports its snapshot for `pg_dump --snapshot`.
pub async fn export_snapshot(client: &Client) -> Result<String> {
    client
        .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .await
        .context("starting the backup's snapshot")?;
    Ok(client
        .query_one("SELECT pg_export_snapshot()", &[])
        .await
        .context("exporting the backup's snapshot")?
        .get(0))
}

/// Renames database `from` (which must carry `mark`) to `to`, after closing its sessions.
pub async fn rename_database(admin: &Client, mark: &Mark, from: &str, to: &str) -> Result<()> {
    anyhow::ensure!(
        ensure_ours(admin, Object::Database(from), mark).await?,
        "database `{from}` does not exist"
    );
    let from_q = ident::quote(from);
    admin
        .batch_execute(&format!("ALTER DATABASE {from_q} ALLOW_CONNECTIONS false"))
        .await
        .with_context(|| format!("closing database `{from}`"))?;
    end_sessions(admin, from).await?;
    admin
        .batch_execute(&format!(
            "ALTER DATABASE {from_q} RENAME TO {}",
            ident::quote(to)
        ))
        .await
        .with_context(|| format!("renaming database `{from}` to `{to}`"))
}

/// Lets everyone the database's grants allow connect again (`rename_database` closed it).
pub async fn reopen_database(admin: &Client, mark: &Mark, db: &str) -> Result<()> {
    anyhow::ensure!(
        ensure_ours(admin, Object::Database(db), mark).await?,
        "database `{db}` does not exist"
    );
    admin
        .batch_execute(&format!(
            "ALTER DATABASE {} ALLOW_CONNECTIONS true",
            ident::quote(db)
        ))
        .await
        .with_context(|| format!("opening database `{db}`"))
}

/// Drops database `db` if it exists and carries `mark` (one without it is refused).
pub async fn drop_database(admin: &Client, mark: &Mark, db: &str) -> Result<()> {
    if !ensure_ours(admin, Object::Database(db), mark).await? {
        return Ok(());
    }
    let db_q = ident::quote(db);
    admin
        .batch_execute(&format!("ALTER DATABASE {db_q} ALLOW_CONNECTIONS false"))
        .await
        .with_context(|| format!("closing database `{db}`"))?;
    end_sessions(admin, db).await?;
    admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS {db_q}"))
        .await
        .with_context(|| format!("dropping database `{db}`"))
}

async fn end_sessions(admin: &Client, db: &str) -> Result<()> {
    admin
        .execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
             WHERE datname = $1 AND pid <> pg_backend_pid() AND backend_type = 'client backend'",
            &[&db],
        )
        .await
        .with_context(|| format!("terminating the sessions of `{db}`"))?;
    Ok(())
}

impl Server {
    /// The libpq environment that points `pg_dump`/`pg_restore` at database `db` as
    /// tenantctl's admin role (the password goes through the environment, never the command
    /// line). TLS client certificates are not passed on.
    pub fn libpq_env(&self, db: &str) -> Vec<(&'static str, String)> {
        use tokio_postgres::config::Host;
        let c = self.config_for(db);
        let mut env = vec![("PGDATABASE", db.to_owned())];
        if let Some(h) = c.get_hosts().first() {
            env.push((
                "PGHOST",
                match h {
                    Host::Tcp(h) => h.clone(),
                    Host::Unix(p) => p.display().to_string(),
                },
            ));
        }
        if let Some(p) = c.get_ports().first() {
            env.push(("PGPORT", p.to_string()));
        }
        if let Some(u) = c.get_user() {
            env.push(("PGUSER", u.to_owned()));
        }
        if let Some(pw) = c.get_password() {
            env.push(("PGPASSWORD", String::from_utf8_lossy(pw).into_owned()));
        }
        env.push(("PGSSLMODE", self.sslmode().as_str().to_owned()));
        env.push(("PGAPPNAME", "tenantctl".to_owned()));
        env
    }
}

/// A restore in flight, as journaled.
#[derive(Debug, Clone)]
pub struct RestoreJournal {
    pub backup_id: String,
    pub phase: String,
    pub staging_database: Option<String>,
    pub retired_database: Option<String>,
}

impl ControlDb {
    pub async fn restore_journal(&self, tenant: Uuid) -> Result<Option<RestoreJournal>> {
        let row = self
            .conn()
            .await?
            .query_opt(
                "SELECT backup_id, phase, staging_database, retired_database
                 FROM backup_restores WHERE tenant_id = $1",
                &[&tenant],
            )
            .await
            .context("reading the restore journal")?;
        Ok(row.map(|r| RestoreJournal {
            backup_id: r.get(0),
            phase: r.get(1),
            staging_database: r.get(2),
            retired_database: r.get(3),
        }))
    }

    /// Starts (or restarts) the journal of a restore in phase `loading`.
    pub async fn begin_restore(
        &self,
        tenant: Uuid,
        backup_id: &str,
        staging: Option<&str>,
        retired: Option<&str>,
        actor: &str,
    ) -> Result<()> {
        self.conn()
            .await?
            .execute(
                "INSERT INTO backup_restores
                   (tenant_id, backup_id, phase, staging_database, retired_database, actor)
                 VALUES ($1, $2, 'loading', $3, $4, $5)
                 ON CONFLICT (tenant_id) DO UPDATE SET backup_id = $2, phase = 'loading',
                   staging_database = $3, retired_database = $4, actor = $5, started_at = now()",
                &[&tenant, &backup_id, &staging, &retired, &actor],
            )
            .await
            .context("journaling the restore")?;
        Ok(())
    }

    /// The staging database verified: from here on the restore goes forward.
    pub async fn restore_swapping(&self, tenant: Uuid) -> Result<()> {
        self.conn()
            .await?
            .execute(
                "UPDATE backup_restores SET phase = 'swapping' WHERE tenant_id = $1",
                &[&tenant],
            )
            .await
            .context("journaling the restore's swap")?;
        Ok(())
    }

    pub async fn end_restore(&self, tenant: Uuid) -> Result<()> {
        self.conn()
            .await?
            .execute(
                "DELETE FROM backup_restores WHERE tenant_id = $1",
                &[&tenant],
            )
            .await
            .context("closing the restore journal")?;
        Ok(())
    }
}
