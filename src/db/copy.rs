//! Copying one tenant's rows from one tenant database to another (a move between isolation
//! models): every tenant table but the ones tenantctl derives from the control database, parents
//! before children, from one snapshot of the source into one transaction of the target, with
//! both databases' schema versions and the row counts checked before it commits.
//!
//! Row-level security is forced on every tenant table, for their owner (tenantctl's admin) too,
//! and `COPY FROM` refuses a table under row-level security. So each table is streamed with
//! binary `COPY … TO STDOUT` (the source, under the tenant's context) into `COPY … FROM STDIN` of
//! a temporary table of the target, and inserted from there with `INSERT … SELECT` under the
//! tenant's context: the policies' `WITH CHECK` confines every row to the tenant, which is what
//! makes the same path safe for the shared pooled database. Measured against turning FORCE off
//! for a direct `COPY` (possible in a silo only) and against batched `INSERT`s: see
//! docs/decisions.md "Moves".

use anyhow::{Context, Result};
use bytes::{Bytes, BytesMut};
use futures_util::{SinkExt, StreamExt};
use tokio_postgres::{Client, IsolationLevel, Transaction};
use uuid::Uuid;

use super::backup::tables_in_fk_order;
use super::ident;

/// How much COPY data is gathered before it is sent on: the source sends one message per row.
const CHUNK: usize = 256 * 1024;

/// Rows of one table, as copied and verified.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct TableRows {
    pub table: String,
    pub rows: i64,
}

/// The tenant schema version of the database `client` is connected to (0: none applied).
pub async fn schema_version(client: &impl tokio_postgres::GenericClient) -> Result<i32> {
    Ok(client
        .query_one(
            "SELECT coalesce(max(version), 0) FROM refinery_schema_history",
            &[],
        )
        .await
        .context("reading the tenant schema's version")?
        .get(0))
}

/// The columns of `table` that take values, in order (generated ones excepted).
async fn columns(client: &impl tokio_postgres::GenericClient, table: &str) -> Result<Vec<String>> {
    Ok(client
        .query(
            "SELECT attname::text FROM pg_attribute
             WHERE attrelid = ('public.' || quote_ident($1))::regclass AND attnum > 0
               AND NOT attisdropped AND attgenerated = ''
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

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

/// Starts a transaction with `tenant`'s context set in which its suspension row (the pooled
/// database's way of hiding it) is lifted, returning when it was set, if it was: the caller
/// puts it back before committing, or rolls back, so that no other session ever sees it lifted.
async fn tenant_view<'c>(
    client: &'c mut Client,
    tenant: Uuid,
    isolation: IsolationLevel,
) -> Result<(Transaction<'c>, Option<chrono::DateTime<chrono::Utc>>)> {
    let tx = client
        .build_transaction()
        .isolation_level(isolation)
        .start()
        .await
        .context("starting a transaction")?;
    tx.execute(
        "SELECT set_config('app.tenant_id', $1, true)",
        &[&tenant.to_string()],
    )
    .await
    .context("setting the tenant context")?;
    let since = tx
        .query_opt(
            "DELETE FROM tenant_suspensions WHERE tenant_id = $1 RETURNING since",
            &[&tenant],
        )
        .await
        .context("looking past the tenant's suspension")?
        .map(|r| r.get(0));
    Ok((tx, since))
}

/// Replaces `tenant`'s rows in the target with its rows in the source, in one target
/// transaction: the target's rows of the tenant deleted (children first), each table copied
/// parents first, every table's count checked against the source's snapshot, and both schema
/// versions compared, before `before_commit` runs and the target commits. The source is only
/// read (its transaction is rolled back). Either database's suspension row of the tenant stays
/// as it was. Returns the rows per table. Nothing of the target changes on an error.
pub async fn copy_tenant_rows(
    source: &mut Client,
    target: &mut Client,
    tenant: Uuid,
    before_commit: impl FnOnce(),
) -> Result<Vec<TableRows>> {
    let tables = tables_in_fk_order(target).await?;
    let source_tables = tables_in_fk_order(source).await?;
    anyhow::ensure!(
        sorted(tables.clone()) == sorted(source_tables.clone()),
        "the source and target databases have different tenant tables ({} and {}); migrate both and run the command again",
        source_tables.join(", "),
        tables.join(", ")
    );
    let (src, _) = tenant_view(source, tenant, IsolationLevel::RepeatableRead).await?;
    let (dst, since) = tenant_view(target, tenant, IsolationLevel::ReadCommitted).await?;
    let (from_version, to_version) = (schema_version(&src).await?, schema_version(&dst).await?);
    anyhow::ensure!(
        from_version == to_version,
        "the source database is at tenant schema version {from_version} and the target at {to_version}; run the command again (it migrates both)"
    );
    for table in tables.iter().rev() {
        dst.execute(
            &format!(
                "DELETE FROM public.{} WHERE tenant_id = $1",
                ident::quote(table)
            ),
            &[&tenant],
        )
        .await
        .with_context(|| format!("cleaning the target's rows of {table}"))?;
    }
    let mut copied = Vec::new();
    for table in &tables {
        let cols = columns(&dst, table).await?;
        anyhow::ensure!(
            sorted(cols.clone()) == sorted(columns(&src, table).await?),
            "table {table} has different columns in the source and target databases; migrate both and run the command again"
        );
        let expected = copy_table(&src, &dst, tenant, table, &cols).await?;
        copied.push(TableRows {
            table: table.clone(),
            rows: expected,
        });
    }
    // Verified as the tenant will read them: every table holds exactly the source's rows.
    for t in &copied {
        let found: i64 = dst
            .query_one(
                &format!(
                    "SELECT count(*) FROM public.{} WHERE tenant_id = $1",
                    ident::quote(&t.table)
                ),
                &[&tenant],
            )
            .await
            .with_context(|| format!("counting the copied rows of {}", t.table))?
            .get(0);
        anyhow::ensure!(
            found == t.rows,
            "the copy did not verify: table {} has {found} rows of the tenant in the target, {} in the source; nothing was committed",
            t.table,
            t.rows
        );
    }
    anyhow::ensure!(
        schema_version(&dst).await? == from_version,
        "the target database was migrated during the copy; run the command again"
    );
    if let Some(since) = since {
        dst.execute(
            "INSERT INTO tenant_suspensions (tenant_id, since) VALUES ($1, $2)",
            &[&tenant, &since],
        )
        .await
        .context("keeping the tenant's suspension in the target")?;
    }
    before_commit();
    dst.commit().await.context("committing the copy")?;
    src.rollback()
        .await
        .context("ending the read of the source")?;
    Ok(copied)
}

/// One table: the source's rows of the tenant into a temporary table of the target, then into
/// the table under the tenant's context. Returns the source's count, which the insert matched.
async fn copy_table(
    src: &Transaction<'_>,
    dst: &Transaction<'_>,
    tenant: Uuid,
    table: &str,
    cols: &[String],
) -> Result<i64> {
    let list = column_list(cols);
    let table_q = format!("public.{}", ident::quote(table));
    let tmp_q = ident::quote(&format!("tenantctl_move_{table}"));
    let expected: i64 = src
        .query_one(
            &format!("SELECT count(*) FROM {table_q} WHERE tenant_id = $1"),
            &[&tenant],
        )
        .await
        .with_context(|| format!("counting the source's rows of {table}"))?
        .get(0);
    dst.batch_execute(&format!(
        "CREATE TEMP TABLE {tmp_q} ON COMMIT DROP AS SELECT {list} FROM {table_q} WITH NO DATA"
    ))
    .await
    .with_context(|| format!("preparing the copy of {table}"))?;
    // A uuid's text is hex digits and dashes: safe inside the statement (COPY takes no
    // parameters); the policy confines the rows to the tenant anyway.
    let out = src
        .copy_out(&format!(
            "COPY (SELECT {list} FROM {table_q} WHERE tenant_id = '{tenant}') TO STDOUT (FORMAT binary)"
        ))
        .await
        .with_context(|| format!("reading the source's rows of {table}"))?;
    let sink = dst
        .copy_in(&format!("COPY {tmp_q} ({list}) FROM STDIN (FORMAT binary)"))
        .await
        .with_context(|| format!("writing rows of {table}"))?;
    let mut out = std::pin::pin!(out);
    let mut sink = std::pin::pin!(sink);
    let mut buf = BytesMut::with_capacity(CHUNK);
    while let Some(chunk) = out.next().await {
        buf.extend_from_slice(&chunk.with_context(|| format!("reading rows of {table}"))?);
        if buf.len() >= CHUNK {
            let full: Bytes = buf.split().freeze();
            sink.send(full)
                .await
                .with_context(|| format!("writing rows of {table}"))?;
        }
    }
    if !buf.is_empty() {
        sink.send(buf.freeze())
            .await
            .with_context(|| format!("writing rows of {table}"))?;
    }
    sink.as_mut()
        .finish()
        .await
        .with_context(|| format!("writing rows of {table}"))?;
    let inserted = dst
        .execute(
            &format!("INSERT INTO {table_q} ({list}) SELECT {list} FROM {tmp_q}"),
            &[],
        )
        .await
        .with_context(|| format!("inserting the rows of {table}"))?;
    anyhow::ensure!(
        inserted as i64 == expected,
        "copying {table}: {inserted} rows inserted, the source has {expected}"
    );
    dst.batch_execute(&format!("DROP TABLE {tmp_q}"))
        .await
        .with_context(|| format!("finishing the copy of {table}"))?;
    Ok(expected)
}
