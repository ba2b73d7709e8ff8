//! `ControlDb`: the control database. Tenants, the provisioning journal, quotas, the audit log.

use anyhow::{Context, Result};
use deadpool_postgres::Pool;
use tokio_postgres::{Client, Row};
use uuid::Uuid;

use super::{already_exists, database_missing, ident, migrate, Server};
use crate::action::Action;
use crate::error::Failure;
use crate::excerpt::excerpt;
use crate::resource::Resource;
use crate::slug::Slug;
use crate::step::Step;
use crate::tenant::{Status, Tenant};
use crate::tier::Isolation;
use crate::transition::Transition;

/// Cheap to clone: the pool and the server settings are shared.
#[derive(Clone)]
pub struct ControlDb {
    pool: Pool,
    server: Server,
    name: String,
}

/// The key of a tenant's advisory lock is this followed by its slug (`metrics` looks for it
/// in `pg_locks` to tell a running transition from an interrupted one).
pub(super) const TENANT_LOCK_PREFIX: &str = "tenantctl:tenant:";

/// How long `try_lock_tenant` waits for a lock that is held.
const TENANT_LOCK_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

/// What step 1 records.
pub struct NewTenant<'a> {
    pub slug: &'a Slug,
    pub name: &'a str,
    pub tier: &'a str,
    pub isolation: Isolation,
    pub database: &'a str,
    pub role: &'a str,
    pub owner_email: &'a str,
    pub owner_name: &'a str,
}

/// One quota row.
#[derive(Debug, Clone)]
pub struct QuotaRow {
    pub resource: Resource,
    pub limit: i64,
    pub source: String,
}

/// A session advisory lock on its own connection: dropping it closes the session and so
/// releases the lock, as does the death of the process.
pub struct SessionLock {
    _client: Client,
}

pub(super) const TENANT_COLUMNS: &str =
    "id, slug, name, tier, isolation, status, database_name, role_name, \
                              owner_email, created_at, activated_at, deleted_at, purge_after";

pub(super) fn tenant_from(row: &Row) -> Result<Tenant> {
    Ok(Tenant {
        id: row.get("id"),
        slug: row.get("slug"),
        name: row.get("name"),
        tier: row.get("tier"),
        isolation: row.try_get("isolation").context("reading tenants")?,
        status: row.try_get("status").context("reading tenants")?,
        database: row.get("database_name"),
        role: row.get("role_name"),
        owner_email: row.get("owner_email"),
        created_at: row.get("created_at"),
        activated_at: row.get("activated_at"),
        deleted_at: row.get("deleted_at"),
        purge_after: row.get("purge_after"),
    })
}

impl ControlDb {
    /// Opens the control database named by `server` and applies its pending migrations (an
    /// upgrade). The local cluster's is created when missing; on an operator's server a
    /// missing database, or one without the control schema, is bad input that names
    /// `tenantctl init`, and nothing is created.
    pub async fn open(server: Server) -> Result<ControlDb> {
        if server.embedded() {
            return Ok(Self::init(server).await?.0);
        }
        let name = server.control_database().to_owned();
        let init_hint = || {
            Failure::BadInput(format!(
                "control database `{}` does not exist on {}: run `tenantctl init` to create it",
                excerpt(&name),
                server.shown()
            ))
        };
        let mut client = match server.connect(&name).await {
            Ok(c) => c,
            Err(e) if database_missing(&e) => return Err(init_hint().into()),
            Err(e) => return Err(e),
        };
        match schema_version(&client).await? {
            None => {
                return Err(Failure::BadInput(format!(
                    "database `{}` on {} has no tenantctl control schema: run `tenantctl init` to set it up there, or name the right database",
                    excerpt(&name),
                    server.shown()
                ))
                .into())
            }
            Some(v) => refuse_newer(v)?,
        }
        migrate::control(&mut client).await?;
        drop(client);
        let pool = server.pool(&name, 4)?;
        Ok(ControlDb { pool, server, name })
    }

    /// `tenantctl init`: creates the control database if it is missing and applies its
    /// migrations. Returns whether the database was created and the migrations applied.
    pub async fn init(server: Server) -> Result<(ControlDb, bool, Vec<String>)> {
        let name = server.control_database().to_owned();
        let (mut client, created) = match server.connect(&name).await {
            Ok(c) => (c, false),
            Err(e) if database_missing(&e) => {
                create_control_database(&server, &name).await?;
                (server.connect(&name).await?, true)
            }
            Err(e) => return Err(e),
        };
        if let Some(v) = schema_version(&client).await? {
            refuse_newer(v)?;
        } else if !created {
            refuse_foreign_tables(&client, &name).await?;
        }
        let applied = migrate::control(&mut client).await?;
        drop(client);
        let pool = server.pool(&name, 4)?;
        Ok((ControlDb { pool, server, name }, created, applied))
    }

    /// Opens the control database only if it exists and is migrated, changing nothing
    /// (for `--dry-run`).
    pub async fn open_existing(server: Server) -> Result<Option<ControlDb>> {
        let name = server.control_database().to_owned();
        let client = match server.connect(&name).await {
            Ok(c) => c,
            Err(e) if database_missing(&e) && server.embedded() => return Ok(None),
            Err(e) if database_missing(&e) => {
                return Err(Failure::BadInput(format!(
                    "control database `{}` does not exist on {}: run `tenantctl init` to create it",
                    excerpt(&name),
                    server.shown()
                ))
                .into())
            }
            Err(e) => return Err(e),
        };
        let migrated: bool = client
            .query_one("SELECT to_regclass('public.tenants') IS NOT NULL", &[])
            .await
            .context("reading the control schema")?
            .get(0);
        if !migrated {
            return Ok(None);
        }
        let v = schema_version(&client).await?.unwrap_or(0);
        refuse_newer(v)?;
        // A control database left behind by an older tenantctl lacks columns every read
        // needs; migrating it would change something, so say what to do instead.
        let pending = migrate::control_pending(v);
        if !pending.is_empty() {
            anyhow::bail!(
                "the control database `{name}` lacks migrations {} of this tenantctl; run `tenantctl init` once to apply them",
                pending.join(", ")
            );
        }
        let pool = server.pool(&name, 2)?;
        Ok(Some(ControlDb { pool, server, name }))
    }

    /// Opens the control database only if it exists, applying its pending migrations as
    /// `open` does, but never creating it: `None` when it does not exist (read-only commands).
    /// On an operator's server this is `open`: a missing control database is bad input that
    /// names `tenantctl init`, which changes nothing either.
    pub async fn open_if_exists(server: Server) -> Result<Option<ControlDb>> {
        if !server.embedded() {
            return Self::open(server).await.map(Some);
        }
        let name = server.control_database().to_owned();
        let mut client = match server.connect(&name).await {
            Ok(c) => c,
            Err(e) if database_missing(&e) => return Ok(None),
            Err(e) => return Err(e),
        };
        if let Some(v) = schema_version(&client).await? {
            refuse_newer(v)?;
        }
        migrate::control(&mut client).await?;
        drop(client);
        let pool = server.pool(&name, 4)?;
        Ok(Some(ControlDb { pool, server, name }))
    }

    /// The applied control schema version and the names of the migrations still pending.
    pub async fn schema_state(&self) -> Result<(i32, Vec<String>)> {
        let conn = self.conn().await?;
        let v = schema_version(&conn).await?.unwrap_or(0);
        Ok((v, migrate::control_pending(v)))
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub(super) async fn conn(&self) -> Result<deadpool_postgres::Object> {
        self.pool.get().await.with_context(|| {
            format!(
                "connecting to the control database on {}",
                self.server.shown()
            )
        })
    }

    /// The per-tenant lock, waiting at most `TENANT_LOCK_GRACE` for it: `None` if another
    /// process still holds it then. The grace covers a killed run, whose session the server
    /// ends a moment after the process died; a live run elsewhere makes this exit "in
    /// progress" promptly rather than queue behind it.
    pub async fn try_lock_tenant(&self, slug: &Slug) -> Result<Option<SessionLock>> {
        self.try_session_lock(&format!("{TENANT_LOCK_PREFIX}{slug}"), TENANT_LOCK_GRACE)
            .await
    }

    /// A session lock, retried on one connection for up to `grace`: `None` if another session
    /// still holds it then.
    pub(super) async fn try_session_lock(
        &self,
        key: &str,
        grace: std::time::Duration,
    ) -> Result<Option<SessionLock>> {
        let client = self.server.connect(&self.name).await?;
        let deadline = std::time::Instant::now() + grace;
        loop {
            let got: bool = client
                .query_one(
                    "SELECT pg_try_advisory_lock(hashtextextended($1, 0))",
                    &[&key],
                )
                .await
                .with_context(|| format!("taking the lock {key}"))?
                .get(0);
            if got {
                return Ok(Some(SessionLock { _client: client }));
            }
            if std::time::Instant::now() >= deadline {
                return Ok(None);
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    /// The lock around changes to the shared pooled database and its role (concurrent GRANTs
    /// on one object fail with "tuple concurrently updated"); waits for it.
    pub async fn lock_pooled(&self) -> Result<SessionLock> {
        let client = self.server.connect(&self.name).await?;
        client
            .execute(
                "SELECT pg_advisory_lock(hashtextextended($1, 0))",
                &[&"tenantctl:pooled"],
            )
            .await
            .context("waiting for the pooled database's lock")?;
        Ok(SessionLock { _client: client })
    }

    pub async fn find_tenant(&self, slug: &Slug) -> Result<Option<Tenant>> {
        let row = self
            .conn()
            .await?
            .query_opt(
                &format!("SELECT {TENANT_COLUMNS} FROM tenants WHERE slug = $1"),
                &[&slug],
            )
            .await
            .with_context(|| format!("looking up tenant {slug}"))?;
        row.as_ref().map(tenant_from).transpose()
    }

    pub async fn list_tenants(&self) -> Result<Vec<Tenant>> {
        let rows = self
            .conn()
            .await?
            .query(
                &format!("SELECT {TENANT_COLUMNS} FROM tenants ORDER BY slug"),
                &[],
            )
            .await
            .context("listing tenants")?;
        rows.iter().map(tenant_from).collect()
    }

    /// Step 1: the tenant row (status `provisioning`), its journal entry and its audit entry,
    /// in one transaction.
    pub async fn record_tenant(
        &self,
        new: &NewTenant<'_>,
        actor: &str,
        duration_ms: i32,
    ) -> Result<Tenant> {
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await.context("starting a transaction")?;
        let row = tx
            .query_one(
                &format!(
                    "INSERT INTO tenants (slug, name, tier, isolation, database_name, role_name, owner_email, owner_name)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
                     RETURNING {TENANT_COLUMNS}"
                ),
                &[
                    &new.slug,
                    &new.name,
                    &new.tier,
                    &new.isolation,
                    &new.database,
                    &new.role,
                    &new.owner_email,
                    &new.owner_name,
                ],
            )
            .await
            .with_context(|| format!("recording tenant {}", new.slug))?;
        let tenant = tenant_from(&row)?;
        tx.execute(
            "INSERT INTO provisioning_journal (tenant_id, step, name, duration_ms) VALUES ($1, $2, $3, $4)",
            &[&tenant.id, &Step::RecordTenant, &Step::RecordTenant.label(), &duration_ms],
        )
        .await
        .context("journaling step record_tenant")?;
        let details = serde_json::json!({ "tier": new.tier, "isolation": new.isolation.as_str() });
        super::audit::append(
            &*tx,
            super::audit::Entry {
                actor,
                action: Action::ProvisionStart,
                tenant_id: tenant.id,
                slug: new.slug.as_str(),
                from: None,
                to: Some(Status::Provisioning),
                details: &details,
            },
        )
        .await?;
        tx.commit().await.context("committing step record_tenant")?;
        Ok(tenant)
    }

    /// The steps the tenant's journal records as done. A step name this version does not
    /// know (journaled by a newer tenantctl) is an error, never skipped silently.
    pub async fn completed_steps(&self, tenant: Uuid) -> Result<Vec<Step>> {
        let rows = self
            .conn()
            .await?
            .query(
                "SELECT step FROM provisioning_journal WHERE tenant_id = $1",
                &[&tenant],
            )
            .await
            .context("reading the provisioning journal")?;
        rows.iter()
            .map(|r| r.try_get(0).context("reading the provisioning journal"))
            .collect()
    }

    /// Journals `step` as done (its stable name; its label as it reads today).
    pub async fn journal_step(&self, tenant: Uuid, step: Step, duration_ms: i32) -> Result<()> {
        self.conn()
            .await?
            .execute(
                "INSERT INTO provisioning_journal (tenant_id, step, name, duration_ms) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (tenant_id, step) DO NOTHING",
                &[&tenant, &step, &step.label(), &duration_ms],
            )
            .await
            .with_context(|| format!("journaling step {step}"))?;
        Ok(())
    }

    /// Step 5: one row per resource; rows that exist (an earlier run, an override) are kept.
    /// `limits`: (resource, limit, hard).
    pub async fn seed_quotas(&self, tenant: Uuid, limits: &[(Resource, u64, bool)]) -> Result<()> {
        let (resources, values, hard) = limit_columns(limits)?;
        self.conn()
            .await?
            .execute(
                "INSERT INTO quotas (tenant_id, resource, limit_value, hard)
                 SELECT $1, r, l, h FROM unnest($2::text[], $3::bigint[], $4::bool[]) AS q(r, l, h)
                 ON CONFLICT (tenant_id, resource) DO NOTHING",
                &[&tenant, &resources, &values, &hard],
            )
            .await
            .context("seeding quotas")?;
        Ok(())
    }

    pub async fn quotas(&self, tenant: Uuid) -> Result<Vec<QuotaRow>> {
        let rows = self
            .conn()
            .await?
            .query(
                "SELECT resource, limit_value, source FROM quotas WHERE tenant_id = $1 ORDER BY resource",
                &[&tenant],
            )
            .await
            .context("reading quotas")?;
        Ok(rows
            .iter()
            .map(|r| QuotaRow {
                resource: r.get(0),
                limit: r.get(1),
                source: r.get(2),
            })
            .collect())
    }

    /// Every quota row of every tenant, for `list`.
    pub async fn all_quotas(&self) -> Result<Vec<(Uuid, QuotaRow)>> {
        let rows = self
            .conn()
            .await?
            .query("SELECT tenant_id, resource, limit_value, source FROM quotas ORDER BY tenant_id, resource", &[])
            .await
            .context("reading quotas")?;
        Ok(rows
            .iter()
            .map(|r| {
                (
                    r.get(0),
                    QuotaRow {
                        resource: r.get(1),
                        limit: r.get(2),
                        source: r.get(3),
                    },
                )
            })
            .collect())
    }

    /// Moves a tenant to another tier: the tier, the quota rows and features that came from
    /// the tier, and an audit entry, in one transaction.
    pub async fn set_tier(
        &self,
        tenant: &Tenant,
        tier: &str,
        limits: &[(Resource, u64, bool)],
        features: &[&str],
        actor: &str,
    ) -> Result<()> {
        let (resources, values, hard) = limit_columns(limits)?;
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await.context("starting a transaction")?;
        tx.execute(
            "UPDATE tenants SET tier = $2, updated_at = now() WHERE id = $1",
            &[&tenant.id, &tier],
        )
        .await
        .context("changing the tier")?;
        tx.execute(
            "INSERT INTO quotas (tenant_id, resource, limit_value, hard)
             SELECT $1, r, l, h FROM unnest($2::text[], $3::bigint[], $4::bool[]) AS q(r, l, h)
             ON CONFLICT (tenant_id, resource) DO UPDATE SET
                 limit_value = CASE WHEN quotas.source = 'tier' THEN EXCLUDED.limit_value ELSE quotas.limit_value END,
                 hard = EXCLUDED.hard, updated_at = now()",
            &[&tenant.id, &resources, &values, &hard],
        )
        .await
        .context("updating the tier's quotas")?;
        super::features::set_tier_features(&tx, tenant.id, features).await?;
        let details = serde_json::json!({ "from_tier": tenant.tier, "to_tier": tier });
        super::audit::append_unchanged(&*tx, tenant, Action::SetTier, actor, &details).await?;
        tx.commit().await.context("committing the tier change")
    }

    /// The owner's email and name, as step 1 recorded them.
    pub async fn owner(&self, tenant: Uuid) -> Result<(String, String)> {
        let row = self
            .conn()
            .await?
            .query_one(
                "SELECT owner_email, owner_name FROM tenants WHERE id = $1",
                &[&tenant],
            )
            .await
            .context("reading the tenant's owner")?;
        Ok((row.get(0), row.get(1)))
    }

    /// Step 7: the move `activation` (`provisioning → active`), journaled and audited in the
    /// same transaction. Does nothing when the tenant is in none of its `from` statuses.
    pub async fn activate(
        &self,
        tenant: &Tenant,
        activation: &Transition,
        actor: &str,
    ) -> Result<()> {
        let t0 = std::time::Instant::now();
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await.context("starting a transaction")?;
        let previous: Option<Status> = tx
            .query_opt(
                "UPDATE tenants t SET status = $2, activated_at = now(), updated_at = now()
                 FROM (SELECT id, status FROM tenants WHERE id = $1 FOR UPDATE) old
                 WHERE t.id = old.id AND old.status = ANY($3)
                 RETURNING old.status",
                &[&tenant.id, &activation.to, &activation.from],
            )
            .await
            .context("activating the tenant")?
            .map(|r| r.get(0));
        let Some(previous) = previous else {
            return Ok(());
        };
        tx.execute(
            "INSERT INTO provisioning_journal (tenant_id, step, name, duration_ms) VALUES ($1, $2, $3, $4)
             ON CONFLICT (tenant_id, step) DO NOTHING",
            &[
                &tenant.id,
                &Step::Activate,
                &Step::Activate.label(),
                &i32::try_from(t0.elapsed().as_millis()).unwrap_or(i32::MAX),
            ],
        )
        .await
        .context("journaling step activate")?;
        let details =
            serde_json::json!({ "tier": tenant.tier, "isolation": tenant.isolation.as_str() });
        super::audit::append(
            &*tx,
            super::audit::Entry {
                actor,
                action: activation.action,
                tenant_id: tenant.id,
                slug: tenant.slug.as_str(),
                from: Some(previous),
                to: Some(activation.to),
                details: &details,
            },
        )
        .await?;
        tx.commit().await.context("committing step activate")?;
        Ok(())
    }
}

/// `(resource, limit)` pairs as the two arrays an `unnest` insert binds.
type LimitColumns = (Vec<Resource>, Vec<i64>, Vec<bool>);

fn limit_columns(limits: &[(Resource, u64, bool)]) -> Result<LimitColumns> {
    let resources = limits.iter().map(|(r, _, _)| *r).collect();
    let values = limits
        .iter()
        .map(|(r, l, _)| {
            i64::try_from(*l).with_context(|| format!("the {r} limit {l} is too large"))
        })
        .collect::<Result<Vec<i64>>>()?;
    let hard = limits.iter().map(|(_, _, h)| *h).collect();
    Ok((resources, values, hard))
}

/// Creates the control database from a maintenance database (`postgres`, else `template1`).
/// The newest applied control migration, `None` when the database has no control schema.
async fn schema_version(client: &Client) -> Result<Option<i32>> {
    let row = client
        .query_one(
            "SELECT to_regclass('public.tenants') IS NOT NULL \
                 AND to_regclass('public.refinery_schema_history') IS NOT NULL",
            &[],
        )
        .await
        .context("reading the control schema")?;
    if !row.get::<_, bool>(0) {
        return Ok(None);
    }
    let v: Option<i32> = client
        .query_one("SELECT max(version) FROM refinery_schema_history", &[])
        .await
        .context("reading the control schema's version")?
        .get(0);
    Ok(Some(v.unwrap_or(0)))
}

/// `init` never installs the control schema beside someone else's tables: a database that
/// exists, has no control schema (nor the migration history a killed `init` leaves) and holds
/// relations that are not an extension's is an application's database named by mistake (a
/// `PGDATABASE` left set, a URL pasted from the application's configuration).
async fn refuse_foreign_tables(client: &Client, name: &str) -> Result<()> {
    let row = client
        .query_one(
            "SELECT to_regclass('public.refinery_schema_history') IS NULL,
                    (SELECT count(*) FROM pg_class c
                       JOIN pg_namespace n ON n.oid = c.relnamespace
                      WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S')
                        AND n.nspname NOT IN ('pg_catalog', 'information_schema')
                        AND n.nspname NOT LIKE 'pg\\_toast%'
                        AND n.nspname NOT LIKE 'pg\\_temp\\_%'
                        AND NOT EXISTS (SELECT 1 FROM pg_depend d
                                         WHERE d.classid = 'pg_class'::regclass
                                           AND d.objid = c.oid AND d.deptype = 'e'))",
            &[],
        )
        .await
        .context("reading what the control database holds")?;
    let (no_history, relations): (bool, i64) = (row.get(0), row.get(1));
    if no_history && relations > 0 {
        return Err(Failure::Refused(format!(
            "database `{}` already holds {relations} table(s) or other relation(s) that are not \
             tenantctl's: name a new or empty database for the control plane (`tenantctl` if \
             none is named; check TENANTCTL_DATABASE_URL and PGDATABASE)",
            excerpt(name)
        ))
        .into());
    }
    Ok(())
}

/// An older binary never runs against a newer control schema: it would not know its rules.
fn refuse_newer(version: i32) -> Result<(), Failure> {
    let known = migrate::control_latest();
    if version > known {
        return Err(Failure::Refused(format!(
            "the control schema is at version {version}, newer than this tenantctl knows ({known}): upgrade tenantctl"
        )));
    }
    Ok(())
}

async fn create_control_database(server: &Server, name: &str) -> Result<()> {
    let client = match server.connect("postgres").await {
        Ok(c) => c,
        Err(_) => server.connect("template1").await?,
    };
    match client
        .batch_execute(&format!("CREATE DATABASE {}", ident::quote(name)))
        .await
    {
        Ok(()) => Ok(()),
        Err(e) if already_exists(&e) => Ok(()),
        Err(e) => Err(e).with_context(|| format!("creating the control database `{name}`")),
    }
}
