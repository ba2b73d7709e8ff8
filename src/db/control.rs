//! `ControlDb`: the control database, opened (and migrated) once; its pool. The tables are read
//! and written by the files named after them: `tenants`, `journal`, `quotas`, `locks`, `audit`,
//! `usage`, `billing`, `lifecycle`, `features`, `backup`.

use anyhow::{Context, Result};
use std::sync::{Arc, Mutex};

use deadpool_postgres::{Object, Pool};
use tokio_postgres::Client;

use super::{already_exists, database_missing, ident, migrate, Server};
use crate::resource::Resource;

/// Cheap to clone: the pool and the server settings are shared.
#[derive(Clone)]
pub struct ControlDb {
    pool: Pool,
    server: Server,
    name: String,
    /// The connection that checked the schema version, handed to the first `conn()`: a
    /// one-shot command then uses one connection, and skips the pool's recycling round trip.
    first: Arc<Mutex<Option<Object>>>,
    /// Sessions of released locks (`SessionLock::release`), for the next lock: a bulk run
    /// locks each of its tenants, and a new session costs the server a backend's start.
    spare: Arc<Mutex<Vec<Client>>>,
    /// This control plane's id (`control_plane`), read once: it is in every mark.
    plane_id: Arc<tokio::sync::OnceCell<uuid::Uuid>>,
}

/// Why the named control database cannot be used as it stands. `db` says what it found;
/// `ops` decides what that means to the caller (`ops::unusable`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unusable {
    /// An operator's server has no database of that name.
    Missing,
    /// The database has no tenantctl control schema.
    NoSchema,
    /// Its control schema is at `version`, newer than this binary's latest (`known`): an
    /// older binary would not know its rules.
    Newer { version: i32, known: i32 },
    /// `init` found `relations` that are not tenantctl's in a database without the control
    /// schema (nor the migration history a killed `init` leaves).
    Foreign { relations: i64 },
}

/// An opening's answer: the control database, or why it is unusable. The outer `Result` of
/// the functions that return it is an operational failure (unreachable server, failed query).
pub type Opened<T> = std::result::Result<T, Unusable>;

impl ControlDb {
    /// Opens the control database named by `server` and applies its pending migrations (an
    /// upgrade). The local cluster's is created when missing; on an operator's server a
    /// missing database, or one without the control schema, is `Unusable`, and nothing is
    /// created.
    pub async fn open(server: Server) -> Result<Opened<ControlDb>> {
        if server.embedded() {
            // The common case costs one connection and one query; anything else (a database
            // to create, migrations to apply) is `init`'s work.
            let name = server.control_database().to_owned();
            let pool = server.pool(&name, 4)?;
            if let Ok(client) = server.first_pooled(&pool, &name).await {
                if current_version(&client).await? == Some(migrate::control_latest()) {
                    return Ok(Ok(ControlDb::with_first(pool, server, name, Some(client))));
                }
            }
            return Ok(Self::init(server).await?.map(|(control, _, _)| control));
        }
        let name = server.control_database().to_owned();
        let pool = server.pool(&name, 4)?;
        let mut client = match server.first_pooled(&pool, &name).await {
            Ok(c) => c,
            Err(e) if database_missing(&e) => return Ok(Err(Unusable::Missing)),
            Err(e) => return Err(e),
        };
        let Some(v) = current_version(&client).await? else {
            return Ok(Err(Unusable::NoSchema));
        };
        if let Err(newer) = not_newer(v) {
            return Ok(Err(newer));
        }
        if v < migrate::control_latest() {
            migrate::control(&mut client).await?;
        }
        Ok(Ok(ControlDb::with_first(pool, server, name, Some(client))))
    }

    /// `tenantctl init`: creates the control database if it is missing and applies its
    /// migrations. Returns whether the database was created and the migrations applied.
    pub async fn init(server: Server) -> Result<Opened<(ControlDb, bool, Vec<String>)>> {
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
            if let Err(newer) = not_newer(v) {
                return Ok(Err(newer));
            }
        } else if !created {
            if let Some(relations) = foreign_relations(&client).await? {
                return Ok(Err(Unusable::Foreign { relations }));
            }
        }
        let applied = migrate::control(&mut client).await?;
        drop(client);
        let pool = server.pool(&name, 4)?;
        Ok(Ok((
            ControlDb::with_first(pool, server, name, None),
            created,
            applied,
        )))
    }

    /// Opens the control database only if it exists and is migrated, changing nothing
    /// (for `--dry-run`): `None` when there is none (the local cluster's) or it has no control
    /// schema; on an operator's server a missing database is `Unusable::Missing`.
    pub async fn open_existing(server: Server) -> Result<Opened<Option<ControlDb>>> {
        let name = server.control_database().to_owned();
        let pool = server.pool(&name, 2)?;
        let client = match server.first_pooled(&pool, &name).await {
            Ok(c) => c,
            Err(e) if database_missing(&e) && server.embedded() => return Ok(Ok(None)),
            Err(e) if database_missing(&e) => return Ok(Err(Unusable::Missing)),
            Err(e) => return Err(e),
        };
        let Some(v) = current_version(&client).await? else {
            return Ok(Ok(None));
        };
        if let Err(newer) = not_newer(v) {
            return Ok(Err(newer));
        }
        // A control database left behind by an older tenantctl lacks columns every read
        // needs; migrating it would change something, so say what to do instead.
        let pending = migrate::control_pending(v);
        if !pending.is_empty() {
            anyhow::bail!(
                "the control database `{name}` lacks migrations {} of this tenantctl; run `tenantctl init` once to apply them",
                pending.join(", ")
            );
        }
        Ok(Ok(Some(ControlDb::with_first(
            pool,
            server,
            name,
            Some(client),
        ))))
    }

    /// Opens the control database only if it exists, applying its pending migrations as
    /// `open` does, but never creating it: `None` when it does not exist (read-only commands).
    /// On an operator's server this is `open`: a missing control database is
    /// `Unusable::Missing`, and `init` changes nothing either.
    pub async fn open_if_exists(server: Server) -> Result<Opened<Option<ControlDb>>> {
        if !server.embedded() {
            return Ok(Self::open(server).await?.map(Some));
        }
        let name = server.control_database().to_owned();
        let pool = server.pool(&name, 4)?;
        let mut client = match server.first_pooled(&pool, &name).await {
            Ok(c) => c,
            Err(e) if database_missing(&e) => return Ok(Ok(None)),
            Err(e) => return Err(e),
        };
        let v = current_version(&client).await?;
        if let Some(Err(newer)) = v.map(not_newer) {
            return Ok(Err(newer));
        }
        if v != Some(migrate::control_latest()) {
            migrate::control(&mut client).await?;
        }
        Ok(Ok(Some(ControlDb::with_first(
            pool,
            server,
            name,
            Some(client),
        ))))
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

    /// The same control database with a pool of `size` connections, for an operation that runs
    /// many others at once (`provision --file`): a provisioning run may hold one pooled
    /// connection while it asks for a second, so N at once need more than N.
    pub fn widened(&self, size: usize) -> Result<ControlDb> {
        let pool = self.server.pool(&self.name, size)?;
        Ok(ControlDb {
            plane_id: self.plane_id.clone(),
            ..ControlDb::with_first(pool, self.server.clone(), self.name.clone(), None)
        })
    }

    fn with_first(pool: Pool, server: Server, name: String, first: Option<Object>) -> ControlDb {
        ControlDb {
            pool,
            server,
            name,
            first: Arc::new(Mutex::new(first)),
            spare: Arc::default(),
            plane_id: Arc::default(),
        }
    }

    /// The cell `plane_id` fills once.
    pub(super) fn plane_id_cell(&self) -> &tokio::sync::OnceCell<uuid::Uuid> {
        &self.plane_id
    }

    /// A connection of its own to the control database, outside the pool (a session lock
    /// lives as long as it).
    pub(super) async fn session(&self) -> Result<Client> {
        loop {
            let spare = self.spare.lock().ok().and_then(|mut s| s.pop());
            match spare {
                Some(client) if !client.is_closed() => return Ok(client),
                Some(_) => continue,
                None => return self.server.connect(&self.name).await,
            }
        }
    }

    /// A session whose locks were all released, kept for the next `session()` (a few at
    /// most: as many as ran at once).
    pub(super) fn keep_session(&self, client: Client) {
        const SPARE: usize = 32;
        if let Ok(mut s) = self.spare.lock() {
            if s.len() < SPARE && !client.is_closed() {
                s.push(client);
            }
        }
    }

    pub(super) async fn conn(&self) -> Result<Conn> {
        let first = self.first.lock().map(|mut f| f.take()).unwrap_or(None);
        if let Some(client) = first {
            return Ok(Conn(client));
        }
        self.pool.get().await.map(Conn).with_context(|| {
            format!(
                "connecting to the control database on {}",
                self.server.shown()
            )
        })
    }
}

/// A pooled connection to the control database whose statements are prepared once per
/// connection (deadpool's statement cache; the control pool's `Fast` recycling keeps it), then
/// run in one round trip without being parsed again. tokio-postgres runs a statement given as
/// text in two (prepare, then execute), parsed every time: a bulk run of 1,000 tenants sent
/// about 60 statements per tenant, and those round trips, with their wake-ups on both sides,
/// took CPU from the bcrypt hashing that decides its time. (Named statements need a session
/// of their own, as the control plane's advisory locks already do: no transaction-pooling
/// PgBouncer between tenantctl and its control database.)
pub struct Conn(Object);

/// A transaction on a `Conn`, its statements prepared the same way.
pub struct Tx<'a>(deadpool_postgres::Transaction<'a>);

type Params<'p> = &'p [&'p (dyn tokio_postgres::types::ToSql + Sync)];

macro_rules! cached_statements {
    ($t:ty) => {
        impl $t {
            pub async fn query(
                &self,
                sql: &str,
                params: Params<'_>,
            ) -> std::result::Result<Vec<tokio_postgres::Row>, tokio_postgres::Error> {
                let st = self.0.prepare_cached(sql).await?;
                self.0.query(&st, params).await
            }

            pub async fn query_one(
                &self,
                sql: &str,
                params: Params<'_>,
            ) -> std::result::Result<tokio_postgres::Row, tokio_postgres::Error> {
                let st = self.0.prepare_cached(sql).await?;
                self.0.query_one(&st, params).await
            }

            pub async fn query_opt(
                &self,
                sql: &str,
                params: Params<'_>,
            ) -> std::result::Result<Option<tokio_postgres::Row>, tokio_postgres::Error> {
                let st = self.0.prepare_cached(sql).await?;
                self.0.query_opt(&st, params).await
            }

            pub async fn execute(
                &self,
                sql: &str,
                params: Params<'_>,
            ) -> std::result::Result<u64, tokio_postgres::Error> {
                let st = self.0.prepare_cached(sql).await?;
                self.0.execute(&st, params).await
            }
        }
    };
}
cached_statements!(Conn);
cached_statements!(Tx<'_>);

impl Conn {
    pub async fn transaction(&mut self) -> std::result::Result<Tx<'_>, tokio_postgres::Error> {
        self.0.transaction().await.map(Tx)
    }
}

impl<'a> Tx<'a> {
    pub async fn commit(self) -> std::result::Result<(), tokio_postgres::Error> {
        self.0.commit().await
    }

    pub async fn rollback(self) -> std::result::Result<(), tokio_postgres::Error> {
        self.0.rollback().await
    }
}

impl std::ops::Deref for Conn {
    type Target = Object;
    fn deref(&self) -> &Object {
        &self.0
    }
}

impl std::ops::DerefMut for Conn {
    fn deref_mut(&mut self) -> &mut Object {
        &mut self.0
    }
}

/// To the driver's transaction (what the functions generic over a client take).
impl<'a> std::ops::Deref for Tx<'a> {
    type Target = tokio_postgres::Transaction<'a>;
    fn deref(&self) -> &tokio_postgres::Transaction<'a> {
        &self.0
    }
}

impl<'a> std::ops::DerefMut for Tx<'a> {
    fn deref_mut(&mut self) -> &mut tokio_postgres::Transaction<'a> {
        &mut self.0
    }
}

/// `(resource, limit)` pairs as the two arrays an `unnest` insert binds.
type LimitColumns = (Vec<Resource>, Vec<i64>, Vec<bool>);

pub(super) fn limit_columns(limits: &[(Resource, u64, bool)]) -> Result<LimitColumns> {
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

/// The newest applied control migration, `None` when the database has no control schema, in
/// one query when the schema is there (every command asks: it should not cost migrations'
/// worth of queries); only a database without migration history pays a second one.
async fn current_version(client: &Client) -> Result<Option<i32>> {
    // The simple protocol: one round trip, where a prepared statement costs two.
    match client
        .simple_query(
            "SELECT coalesce(max(version), 0), to_regclass('public.tenants') IS NOT NULL FROM refinery_schema_history",
        )
        .await
    {
        Ok(messages) => {
            let row = messages
                .iter()
                .find_map(|m| match m {
                    tokio_postgres::SimpleQueryMessage::Row(r) => Some(r),
                    _ => None,
                })
                .context("reading the control schema's version: no row")?;
            if row.get(1) != Some("t") {
                return Ok(None);
            }
            let v = row.get(0).unwrap_or("0");
            Ok(Some(v.parse().with_context(|| {
                format!("reading the control schema's version: `{v}`")
            })?))
        }
        Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::UNDEFINED_TABLE) => {
            schema_version(client).await
        }
        Err(e) => Err(e).context("reading the control schema's version"),
    }
}

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
/// `PGDATABASE` left set, a URL pasted from the application's configuration). The number of
/// such relations, `None` when there are none.
async fn foreign_relations(client: &Client) -> Result<Option<i64>> {
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
    Ok((no_history && relations > 0).then_some(relations))
}

/// `Unusable::Newer` when the control schema is newer than this binary's.
fn not_newer(version: i32) -> Opened<()> {
    let known = migrate::control_latest();
    if version > known {
        return Err(Unusable::Newer { version, known });
    }
    Ok(())
}

/// Creates the control database from a maintenance database (`postgres`, else `template1`).
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
