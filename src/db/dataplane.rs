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
use crate::error::Failure;
use crate::excerpt::excerpt;

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

    /// The siloed tenants' template database at tenant schema `version`:
    /// `tenantctl:<control plane id>:template:v<version>`. The version is part of the mark so
    /// that one catalog read tells whether the template is this plane's and current (a closed
    /// template takes no connection, not even to read its migration history); it is rewritten
    /// only once the template is migrated and closed again.
    pub fn template(control_plane: Uuid, version: i32) -> Mark {
        Mark(format!("tenantctl:{control_plane}:template:v{version}"))
    }

    /// The version in a template mark of `control_plane` (`None`: not such a mark).
    pub fn template_version(comment: &str, control_plane: Uuid) -> Option<i32> {
        comment
            .strip_prefix(&format!("tenantctl:{control_plane}:template:v"))?
            .parse()
            .ok()
            .filter(|v: &i32| *v >= 0)
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
///
/// The attributes are given at creation only: a role tenantctl created was never a superuser,
/// never bypassed row-level security and never replicated, and only a superuser may even name
/// those attributes in `ALTER ROLE` ("must be superuser to alter superuser roles"), so an
/// existing role is checked (read only) instead, and a marked role that somehow has one of
/// them is refused rather than used. The attributes a CREATEROLE admin may change (LOGIN,
/// CREATEDB, CREATEROLE) are set again.
pub async fn ensure_app_role(admin: &Client, role: &str, mark: &Mark) -> Result<()> {
    let obj = Object::Role(role);
    let q = ident::quote(role);
    if !ensure_ours(admin, obj, mark).await? {
        let lit = postgres_protocol::escape::escape_literal(mark.as_str());
        match admin
            .batch_execute(&format!(
                "CREATE ROLE {q} LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE NOREPLICATION;
                 COMMENT ON ROLE {q} IS {lit}"
            ))
            .await
        {
            Ok(()) => return Ok(()),
            // Someone else created it meanwhile: ours only if it carries our mark.
            Err(e) if already_exists(&e) => require_ours(admin, obj, mark).await?,
            Err(e) => return Err(e).with_context(|| format!("creating role `{role}`")),
        }
    }
    let attrs = admin
        .query_one(
            "SELECT rolsuper OR rolbypassrls OR rolreplication,
                    rolcanlogin AND NOT rolcreatedb AND NOT rolcreaterole
             FROM pg_roles WHERE rolname = $1",
            &[&role],
        )
        .await
        .with_context(|| format!("reading the attributes of role `{role}`"))?;
    let (unsafe_attrs, as_set): (bool, bool) = (attrs.get(0), attrs.get(1));
    if unsafe_attrs {
        anyhow::bail!(
            "role `{role}` carries this control plane's mark but is a superuser, bypasses row-level \
             security or may replicate; tenantctl never creates such a role and will not use it"
        );
    }
    if as_set {
        // Already so (the shared application role, provisioning after provisioning): an
        // ALTER would rewrite a shared catalog row for nothing.
        return Ok(());
    }
    admin
        .batch_execute(&format!("ALTER ROLE {q} LOGIN NOCREATEDB NOCREATEROLE"))
        .await
        .with_context(|| format!("setting the attributes of role `{role}`"))
}

/// Makes the connecting role a member of `role` (a tenant's login role), unless it already
/// has its privileges (a member, or a superuser). `pg_terminate_backend` and
/// `DROP DATABASE ... WITH (FORCE)` may end a session only for a superuser, a member of
/// `pg_signal_backend`, or a role that has the privileges of the session's role; a CREATEROLE
/// admin may grant itself any non-superuser role (PostgreSQL 15; 16 and later need the ADMIN
/// OPTION its creator gets), so tenantctl does that rather than ask for `pg_signal_backend`,
/// which would let it end any non-superuser's sessions on the server. Membership makes the
/// admin inherit the tenant role's privileges: CONNECT on the tenant database and the table
/// grants, which the admin has as their owner anyway. Checked against `mark` first.
pub async fn ensure_member(admin: &Client, mark: &Mark, role: &str) -> Result<()> {
    require_ours(admin, Object::Role(role), mark).await?;
    let has_privileges = || async {
        let has: bool = admin
            .query_one(
                "SELECT pg_has_role(current_user, (SELECT oid FROM pg_roles WHERE rolname = $1), 'USAGE')",
                &[&role],
            )
            .await
            .with_context(|| format!("reading the admin's membership in role `{role}`"))?
            .get(0);
        anyhow::Ok(has)
    };
    if has_privileges().await? {
        return Ok(());
    }
    admin
        .batch_execute(&format!("GRANT {} TO CURRENT_USER", ident::quote(role)))
        .await
        .with_context(|| {
            format!(
                "granting the admin membership in role `{role}` (needed to end its sessions; \
                 the admin role needs CREATEROLE)"
            )
        })?;
    // A NOINHERIT admin is a member without the role's privileges: it could neither see nor
    // end the tenant's sessions, and a suspension would leave them open without a word.
    if !has_privileges().await? {
        anyhow::bail!(
            "the admin role is a member of `{role}` but does not inherit its privileges (it is \
             NOINHERIT), so it cannot end the tenant's sessions; give it INHERIT (ALTER ROLE \
             <admin> INHERIT, as a superuser or a CREATEROLE role) and run the command again"
        );
    }
    Ok(())
}

/// Creates database `name`, owned by the connecting role; false if it already existed (a
/// concurrent creator won). No check and no mark: the caller claims the name first and marks
/// the database after (`write_mark`). `CREATE DATABASE` cannot run in a transaction.
pub async fn create_database(admin: &Client, name: &str) -> Result<bool> {
    create_database_from(admin, name, None).await
}

/// `create_database`, as a copy of `template` when one is given (the siloed tenants' template,
/// which the caller saw closed and current). A template the server cannot copy now — a session
/// in it (a newer tenantctl migrating it: PostgreSQL waits 5 s, then refuses), or gone — is no
/// error: the database is created empty instead, and the caller's schema step migrates it.
pub async fn create_database_from(
    admin: &Client,
    name: &str,
    template: Option<&str>,
) -> Result<bool> {
    use tokio_postgres::error::SqlState;
    let q = ident::quote(name);
    if let Some(template) = template {
        let sql = format!("CREATE DATABASE {q} TEMPLATE {}", ident::quote(template));
        match admin.batch_execute(&sql).await {
            Ok(()) => return Ok(true),
            Err(e) if already_exists(&e) => return Ok(false),
            Err(e)
                if e.code() == Some(&SqlState::OBJECT_IN_USE)
                    || e.code() == Some(&SqlState::INVALID_CATALOG_NAME) => {}
            Err(e) => {
                return Err(e).with_context(|| {
                    format!("creating database `{name}` from the template `{template}`")
                })
            }
        }
    }
    match admin.batch_execute(&format!("CREATE DATABASE {q}")).await {
        Ok(()) => Ok(true),
        Err(e) if already_exists(&e) => Ok(false),
        Err(e) => Err(e).with_context(|| format!("creating database `{name}`")),
    }
}

/// The template database `name` of `control_plane`, as the catalog has it. Reads only.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TemplateFound {
    Absent,
    /// Marked as this plane's template at tenant schema `version`; `open`: it takes
    /// connections (a migration of it is under way, or was interrupted).
    Ours {
        version: i32,
        open: bool,
    },
    /// It exists without a template mark of this plane: its comment, whether the connecting
    /// role owns it, whether it takes connections.
    Foreign {
        comment: Option<String>,
        owned_by_us: bool,
        open: bool,
    },
}

pub async fn inspect_template(
    admin: &Client,
    name: &str,
    control_plane: Uuid,
) -> Result<TemplateFound> {
    let row = admin
        .query_opt(
            "SELECT shobj_description(d.oid, 'pg_database'), d.datallowconn,
                    d.datdba = (SELECT oid FROM pg_roles WHERE rolname = current_user)
             FROM pg_database d WHERE d.datname = $1",
            &[&name],
        )
        .await
        .with_context(|| format!("reading the mark of the template `{name}`"))?;
    let Some(row) = row else {
        return Ok(TemplateFound::Absent);
    };
    let (comment, open, owned_by_us): (Option<String>, bool, bool) =
        (row.get(0), row.get(1), row.get(2));
    Ok(
        match comment
            .as_deref()
            .and_then(|c| Mark::template_version(c, control_plane))
        {
            Some(version) => TemplateFound::Ours { version, open },
            None => TemplateFound::Foreign {
                comment,
                owned_by_us,
                open,
            },
        },
    )
}

/// Drops the template `name` if it carries a template mark of `control_plane` (any version),
/// under the template lock (`server remove`: it holds no tenant's data, and a copy being made
/// of it makes the drop fail, changing nothing). Whether it was there to drop.
pub async fn drop_template(admin: &Client, name: &str, control_plane: Uuid) -> Result<bool> {
    if !matches!(
        inspect_template(admin, name, control_plane).await?,
        TemplateFound::Ours { .. }
    ) {
        return Ok(false);
    }
    admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS {}", ident::quote(name)))
        .await
        .with_context(|| format!("dropping the template `{name}`"))?;
    Ok(true)
}

/// Lets connections into the template (marked `mark`) for its migration; only under the
/// template lock.
pub async fn open_template(admin: &Client, name: &str, mark: &Mark) -> Result<()> {
    require_ours(admin, Object::Database(name), mark).await?;
    admin
        .batch_execute(&format!(
            "ALTER DATABASE {} ALLOW_CONNECTIONS true",
            ident::quote(name)
        ))
        .await
        .with_context(|| format!("opening the template `{name}` for its migration"))
}

/// Closes the template (marked `mark`) to connections again, PUBLIC's CONNECT included (a new
/// database grants it; copies never inherit a database's privileges), then marks it
/// `migrated`: a copy is made only of a closed template whose mark says it is current.
pub async fn close_template(
    admin: &Client,
    name: &str,
    mark: &Mark,
    migrated: &Mark,
) -> Result<()> {
    require_ours(admin, Object::Database(name), mark).await?;
    let q = ident::quote(name);
    admin
        .batch_execute(&format!(
            "ALTER DATABASE {q} ALLOW_CONNECTIONS false; REVOKE ALL ON DATABASE {q} FROM PUBLIC"
        ))
        .await
        .with_context(|| format!("closing the template `{name}`"))?;
    write_mark(admin, Object::Database(name), migrated).await
}

/// Only `role` may connect to `db` (besides superusers): a new database lets PUBLIC connect.
/// Read first: when PUBLIC has nothing and `role` has CONNECT (the shared pooled database,
/// provisioning after provisioning), nothing is rewritten.
pub async fn restrict_connect(admin: &Client, mark: &Mark, db: &str, role: &str) -> Result<()> {
    require_ours(admin, Object::Database(db), mark).await?;
    require_ours(admin, Object::Role(role), mark).await?;
    let restricted: bool = admin
        .query_one(
            "SELECT NOT EXISTS (SELECT 1 FROM aclexplode(coalesce(d.datacl, acldefault('d', d.datdba))) a
                                WHERE a.grantee = 0)
                AND EXISTS (SELECT 1 FROM aclexplode(coalesce(d.datacl, acldefault('d', d.datdba))) a
                            JOIN pg_roles r ON r.oid = a.grantee
                            WHERE r.rolname = $2 AND a.privilege_type = 'CONNECT')
             FROM pg_database d WHERE d.datname = $1",
            &[&db, &role],
        )
        .await
        .with_context(|| format!("reading who may connect to `{db}`"))?
        .get(0);
    if restricted {
        return Ok(());
    }
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
/// entitlements). Repeated after every migration, for new tables. Read first: when the role
/// has exactly that already (the shared application role at every pooled provisioning, every
/// database at a `migrate` with nothing pending), nothing is rewritten — a GRANT rewrites the
/// ACL of every table and makes every session of the database reload its caches.
pub async fn grant_app_access(client: &Client, role: &str) -> Result<()> {
    if app_access_granted(client, role).await? {
        return Ok(());
    }
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

/// Whether `role` has what `grant_app_access` gives: USAGE on `public`; SELECT, INSERT, UPDATE
/// and DELETE on every table, view and sequence-less relation of it but three: nothing on
/// refinery's history, only SELECT on `tenant_suspensions` and `tenant_features`. Reads only.
async fn app_access_granted(client: &Client, role: &str) -> Result<bool> {
    Ok(client
        .query_one(
            "SELECT has_schema_privilege($1, 'public', 'USAGE') AND coalesce(bool_and(
                 CASE c.relname
                   WHEN 'refinery_schema_history' THEN
                     NOT has_table_privilege($1, c.oid, 'SELECT, INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER')
                   WHEN 'tenant_suspensions' THEN has_table_privilege($1, c.oid, 'SELECT')
                     AND NOT has_table_privilege($1, c.oid, 'INSERT, UPDATE, DELETE, TRUNCATE')
                   WHEN 'tenant_features' THEN has_table_privilege($1, c.oid, 'SELECT')
                     AND NOT has_table_privilege($1, c.oid, 'INSERT, UPDATE, DELETE, TRUNCATE')
                   ELSE has_table_privilege($1, c.oid, 'SELECT') AND has_table_privilege($1, c.oid, 'INSERT')
                     AND has_table_privilege($1, c.oid, 'UPDATE') AND has_table_privilege($1, c.oid, 'DELETE')
                 END), true)
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'm', 'f')",
            &[&role],
        )
        .await
        .with_context(|| format!("reading the grants of role `{role}`"))?
        .get(0))
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
/// TOAST) times the tenant's share of the row bytes of `tenants` in that table.
///
/// Read as the admin, which bypasses no row-level security (FORCE applies to the tables'
/// owner too; a superuser would bypass it, a managed server's admin does not): each tenant is
/// read with its own context set, one tenant after another in one transaction, the statements
/// pipelined (a tenant's `set_config` and its read travel together, in order, without a round
/// trip each). A suspended tenant's rows are hidden by the policies even then, so its
/// suspension is lifted inside this transaction, which is rolled back: no other session ever
/// sees it lifted. `tenants` must be every tenant with rows in the database (any status),
/// since the shares are of their rows; rows of a tenant id the control plane does not know
/// are not seen and count for no one.
pub async fn pooled_usage(client: &mut Client, tenants: &[Uuid]) -> Result<Vec<(Uuid, i64, i64)>> {
    let tables: Vec<String> = tenant_tables(client)
        .await?
        .into_iter()
        .filter(|t| t != "tenant_suspensions") // tenantctl's bookkeeping, not the tenant's data
        .collect();
    if tables.is_empty() || tenants.is_empty() {
        return Ok(Vec::new());
    }
    let per_table = tables
        .iter()
        .map(|t| {
            format!(
                // The filter too: a superuser (or BYPASSRLS) sees every row whatever the context.
                "SELECT {lit}::text, count(*), coalesce(sum(pg_column_size(x.*)), 0)::bigint FROM {q} x WHERE tenant_id = $1",
                lit = postgres_protocol::escape::escape_literal(t),
                q = ident::quote(t)
            )
        })
        .collect::<Vec<_>>()
        .join(" UNION ALL ");
    let sizes =
        "SELECT t, pg_total_relation_size(format('%I', t)::regclass) FROM unnest($1::text[]) t";
    let tx = client
        .transaction()
        .await
        .context("starting the measurement")?;
    let table_sizes: std::collections::HashMap<String, i64> = tx
        .query(sizes, &[&tables])
        .await
        .context("reading the tenant tables' sizes")?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let set = tx
        .prepare("SELECT set_config('app.tenant_id', $1, true)")
        .await
        .context("preparing the tenant context")?;
    let lift = tx
        .prepare("DELETE FROM tenant_suspensions WHERE tenant_id = $1")
        .await
        .context("preparing the measurement")?;
    let read = tx
        .prepare(&per_table)
        .await
        .context("preparing the measurement")?;
    let ids: Vec<String> = tenants.iter().map(|t| t.to_string()).collect();
    // One future per tenant, each three statements in order; polled together so that
    // tokio-postgres pipelines them (requests go out in the order they are first polled).
    let reads = tenants.iter().zip(&ids).map(|(tenant, id)| {
        let (tx, set, lift, read) = (&tx, &set, &lift, &read);
        async move {
            let (_, _, rows) = futures_util::future::try_join3(
                tx.execute(set, &[id]),
                tx.execute(lift, &[tenant]),
                tx.query(read, &[tenant]),
            )
            .await?;
            Ok::<_, tokio_postgres::Error>((*tenant, rows))
        }
    });
    let measured = join_in_order(reads.map(Box::pin).collect())
        .await
        .context("measuring the pooled tenants")?;
    tx.rollback()
        .await
        .context("ending the measurement (rolled back)")?;

    let mut totals: std::collections::HashMap<String, i128> = std::collections::HashMap::new();
    let mut per_tenant = Vec::with_capacity(measured.len());
    for (tenant, rows) in &measured {
        let rows: Vec<(String, i64, i64)> = rows
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect();
        for (t, _, b) in &rows {
            *totals.entry(t.clone()).or_default() += i128::from(*b);
        }
        per_tenant.push((*tenant, rows));
    }
    Ok(per_tenant
        .into_iter()
        .map(|(tenant, rows)| {
            let mut users = 0;
            let mut bytes: i128 = 0;
            for (t, n, b) in rows {
                if t == "users" {
                    users = n;
                }
                let all = totals.get(&t).copied().unwrap_or(0);
                if all > 0 {
                    let size = i128::from(table_sizes.get(&t).copied().unwrap_or(0));
                    bytes += size * i128::from(b) / all;
                }
            }
            (tenant, users, i64::try_from(bytes).unwrap_or(i64::MAX))
        })
        .collect())
}

/// Cuts a siloed tenant off: its role cannot log in or connect, its database refuses every new
/// connection (superusers too), and live sessions are terminated. Idempotent.
pub async fn close_silo(admin: &Client, mark: &Mark, db: &str, role: &str) -> Result<()> {
    require_ours(admin, Object::Database(db), mark).await?;
    // Before anything changes: without it the sessions could not be ended below.
    ensure_member(admin, mark, role).await?;
    let (db_q, role_q) = (ident::quote(db), ident::quote(role));
    admin
        .batch_execute(&format!(
            "ALTER ROLE {role_q} NOLOGIN;
             REVOKE CONNECT ON DATABASE {db_q} FROM {role_q};
             ALTER DATABASE {db_q} ALLOW_CONNECTIONS false;"
        ))
        .await
        .with_context(|| format!("closing database `{db}` and role `{role}`"))?;
    end_sessions(admin, db, role).await
}

/// Ends the client sessions in `db` and those of `role`, as far as the admin may see them: a
/// non-superuser sees (and may signal) the sessions of roles whose privileges it has — its
/// own, and a tenant's once `ensure_member` ran — while other roles' sessions show no
/// `backend_type` and are left (a superuser's, an operator's). Background workers (autovacuum)
/// are left too: only a superuser may signal them, and they hold no tenant session.
async fn end_sessions(admin: &Client, db: &str, role: &str) -> Result<()> {
    admin
        .execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
             WHERE (datname = $1 OR usename = $2) AND pid <> pg_backend_pid()
               AND backend_type = 'client backend'",
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
    if has_role {
        // So that the tenant's sessions can be ended below.
        ensure_member(admin, mark, role).await?;
    }
    if has_db {
        // No new session from here on (superusers' included), the visible ones are ended, and
        // a plain DROP waits (up to 5 s) for them to exit and stops autovacuum workers itself.
        // Not `WITH (FORCE)`: for a non-superuser it refuses outright when any session in the
        // database, an autovacuum worker included, belongs to a role it may not signal.
        let db_q = ident::quote(db);
        admin
            .batch_execute(&format!("ALTER DATABASE {db_q} ALLOW_CONNECTIONS false"))
            .await
            .with_context(|| format!("closing database `{db}`"))?;
        end_sessions(admin, db, role).await?;
        admin
            .batch_execute(&format!("DROP DATABASE IF EXISTS {db_q}"))
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

/// Drives every future to completion, polling them in order (tokio-postgres sends a request
/// when its future is first polled, so this pipelines them in that order); the outputs in the
/// same order, or the first error. The first pass polls them all (sending every request); then,
/// since the server answers in order, only from the first unfinished one onwards, up to the
/// first that is still waiting (so that each wake-up costs little however many there are).
async fn join_in_order<T, E, F>(mut futures: Vec<std::pin::Pin<Box<F>>>) -> Result<Vec<T>, E>
where
    F: std::future::Future<Output = Result<T, E>>,
{
    use std::task::Poll;
    let mut out: Vec<Option<T>> = futures.iter().map(|_| None).collect();
    let mut first_pass = true;
    let mut next = 0;
    std::future::poll_fn(|cx| {
        let mut i = next;
        while i < futures.len() {
            if out[i].is_none() {
                match futures[i].as_mut().poll(cx) {
                    Poll::Ready(Ok(v)) => out[i] = Some(v),
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                    Poll::Pending if first_pass => {}
                    Poll::Pending => break,
                }
            }
            if i == next && out[i].is_some() {
                next += 1;
            }
            i += 1;
        }
        first_pass = false;
        if next == futures.len() {
            Poll::Ready(Ok(()))
        } else {
            Poll::Pending
        }
    })
    .await?;
    Ok(out
        .into_iter()
        .map(|v| v.expect("every future finished"))
        .collect())
}
