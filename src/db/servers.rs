//! The `servers` table (control V17): the fleet's registry, each server's load as placement and
//! `server list` see it, and the changes `server add|drain|undrain|set|remove` make, each with
//! its audit entry. Catalog reads on a server itself (`server_facts`) are here too.

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use tokio_postgres::{GenericClient, Row};

use super::control::ControlDb;
use crate::action::Action;
use crate::placement::Candidate;
use crate::region::Region;
use crate::server_name::ServerName;

/// One row of `servers`.
#[derive(Debug, Clone)]
pub struct ServerRow {
    pub name: ServerName,
    /// The libpq key=value string, without a password; `None` for the control database's own
    /// server, reached through the configured connection.
    pub url: Option<String>,
    pub control: bool,
    pub capacity: i64,
    /// `None`: every tier.
    pub tiers: Option<Vec<String>>,
    pub pooled: bool,
    pub draining: bool,
    pub region: Option<Region>,
    pub created_at: DateTime<Utc>,
}

/// A server's tenants, counted from the control database.
#[derive(Debug, Clone, Copy, Default)]
pub struct Load {
    /// Siloed tenants, any status, and the silos moves in flight are creating there (what
    /// capacity counts).
    pub silos: i64,
    /// Tenants in its pooled database, any status.
    pub pooled_tenants: i64,
}

/// What `server add` records.
pub struct NewServer<'a> {
    pub name: &'a ServerName,
    pub url: &'a str,
    pub capacity: i32,
    pub tiers: Option<&'a [String]>,
    pub pooled: bool,
    pub region: Option<&'a Region>,
    pub system_id: &'a str,
}

const COLUMNS: &str = "name, url, control, capacity, tiers, pooled, draining, region, created_at";
/// The same, of `servers s` in a join.
const S_COLUMNS: &str =
    "s.name, s.url, s.control, s.capacity, s.tiers, s.pooled, s.draining, s.region, s.created_at";

fn row_from(r: &Row) -> Result<ServerRow> {
    Ok(ServerRow {
        name: r.try_get("name").context("reading servers")?,
        url: r.get("url"),
        control: r.get("control"),
        capacity: i64::from(r.get::<_, i32>("capacity")),
        tiers: r.get("tiers"),
        pooled: r.get("pooled"),
        draining: r.get("draining"),
        region: r.try_get("region").context("reading servers")?,
        created_at: r.get("created_at"),
    })
}

impl ServerRow {
    /// The server as placement sees it, with its load.
    pub fn candidate(&self, load: Load) -> Candidate {
        Candidate {
            name: self.name.clone(),
            capacity: self.capacity,
            silos: load.silos,
            pooled_tenants: load.pooled_tenants,
            tiers: self.tiers.clone(),
            pooled: self.pooled,
            draining: self.draining,
            region: self.region.clone(),
        }
    }
}

impl ControlDb {
    /// Every registered server, by name.
    pub async fn servers(&self) -> Result<Vec<ServerRow>> {
        let rows = self
            .conn()
            .await?
            .query(&format!("SELECT {COLUMNS} FROM servers ORDER BY name"), &[])
            .await
            .context("reading the servers")?;
        rows.iter().map(row_from).collect()
    }

    pub async fn find_server(&self, name: &ServerName) -> Result<Option<ServerRow>> {
        let row = self
            .conn()
            .await?
            .query_opt(
                &format!("SELECT {COLUMNS} FROM servers WHERE name = $1"),
                &[name],
            )
            .await
            .with_context(|| format!("reading server {name}"))?;
        row.as_ref().map(row_from).transpose()
    }

    /// Every server with its load, in one query (by name): counted per (server, isolation),
    /// which the index `tenants_server` answers without reading the table (≈15 ms for 100,000
    /// tenants, measured; once per placement).
    pub async fn server_loads(&self) -> Result<Vec<(ServerRow, Load)>> {
        let rows = self
            .conn()
            .await?
            .query(
                &format!(
                    "SELECT {S_COLUMNS},
                            coalesce(c.silos, 0)
                              -- The silo a move in flight is creating there, until the
                              -- tenant's own row counts it (after the switch).
                              + (SELECT count(*) FROM moves m JOIN tenants mt ON mt.id = m.tenant_id
                                  WHERE m.to_server = s.name AND m.to_isolation = 'siloed'
                                    AND NOT (mt.isolation = 'siloed' AND mt.server = s.name))
                              AS silos,
                            coalesce(c.pooled_tenants, 0) AS pooled_tenants
                       FROM servers s
                       LEFT JOIN (SELECT server,
                                         count(*) FILTER (WHERE isolation = 'siloed') AS silos,
                                         count(*) FILTER (WHERE isolation = 'pooled') AS pooled_tenants
                                    FROM tenants GROUP BY server) c ON c.server = s.name
                      ORDER BY s.name"
                ),
                &[],
            )
            .await
            .context("reading the servers' load")?;
        rows.iter()
            .map(|r| {
                Ok((
                    row_from(r)?,
                    Load {
                        silos: r.get("silos"),
                        pooled_tenants: r.get("pooled_tenants"),
                    },
                ))
            })
            .collect()
    }

    /// The registered server whose PostgreSQL system identifier is `id`, if any (the control
    /// database's own server is recognised by the caller: its identifier is not stored).
    pub async fn server_with_system_id(&self, id: &str) -> Result<Option<ServerName>> {
        Ok(self
            .conn()
            .await?
            .query_opt("SELECT name FROM servers WHERE system_id = $1", &[&id])
            .await
            .context("reading the servers")?
            .map(|r| r.get(0)))
    }

    /// Registers a server, audited. False when the name is taken (nothing written).
    pub async fn add_server(&self, new: &NewServer<'_>, actor: &str) -> Result<bool> {
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await.context("starting a transaction")?;
        let added = tx
            .execute(
                "INSERT INTO servers (name, url, capacity, tiers, pooled, region, system_id)
                 VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (name) DO NOTHING",
                &[
                    new.name,
                    &new.url,
                    &new.capacity,
                    &new.tiers,
                    &new.pooled,
                    &new.region,
                    &new.system_id,
                ],
            )
            .await
            .with_context(|| format!("registering server {}", new.name))?
            == 1;
        if !added {
            return Ok(false);
        }
        let details = serde_json::json!({
            "server": new.name,
            "url": new.url,
            "capacity": new.capacity,
            "tiers": new.tiers,
            "pooled": new.pooled,
            "region": new.region,
        });
        super::audit::append_fleet(&*tx, actor, Action::ServerAdd, &details).await?;
        tx.commit().await.context("committing the new server")?;
        Ok(true)
    }

    /// Sets or clears `draining`, audited when it changes. `None`: no such server;
    /// `Some(false)`: it already was so.
    pub async fn set_draining(
        &self,
        name: &ServerName,
        draining: bool,
        actor: &str,
    ) -> Result<Option<bool>> {
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await.context("starting a transaction")?;
        let Some(was): Option<bool> = tx
            .query_opt(
                "SELECT draining FROM servers WHERE name = $1 FOR UPDATE",
                &[name],
            )
            .await
            .with_context(|| format!("reading server {name}"))?
            .map(|r| r.get(0))
        else {
            return Ok(None);
        };
        if was == draining {
            return Ok(Some(false));
        }
        tx.execute(
            "UPDATE servers SET draining = $2 WHERE name = $1",
            &[name, &draining],
        )
        .await
        .with_context(|| format!("changing server {name}"))?;
        let action = if draining {
            Action::ServerDrain
        } else {
            Action::ServerUndrain
        };
        let details = serde_json::json!({ "server": name });
        super::audit::append_fleet(&*tx, actor, action, &details).await?;
        tx.commit().await.context("committing the server change")?;
        Ok(Some(true))
    }

    /// Sets the capacity, audited when it changes. `None`: no such server; else the old one.
    pub async fn set_capacity(
        &self,
        name: &ServerName,
        capacity: i32,
        actor: &str,
    ) -> Result<Option<i64>> {
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await.context("starting a transaction")?;
        let Some(was): Option<i32> = tx
            .query_opt(
                "SELECT capacity FROM servers WHERE name = $1 FOR UPDATE",
                &[name],
            )
            .await
            .with_context(|| format!("reading server {name}"))?
            .map(|r| r.get(0))
        else {
            return Ok(None);
        };
        if was != capacity {
            tx.execute(
                "UPDATE servers SET capacity = $2 WHERE name = $1",
                &[name, &capacity],
            )
            .await
            .with_context(|| format!("changing server {name}"))?;
            let details = serde_json::json!({ "server": name, "from_capacity": was, "to_capacity": capacity });
            super::audit::append_fleet(&*tx, actor, Action::ServerSet, &details).await?;
            tx.commit().await.context("committing the server change")?;
        }
        Ok(Some(i64::from(was)))
    }

    /// Sets the region, audited when it changes. `None`: no such server; else the old one.
    /// The caller holds the placement lock and has decided the change may be made.
    pub async fn set_region(
        &self,
        name: &ServerName,
        region: &Region,
        actor: &str,
    ) -> Result<Option<Option<Region>>> {
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await.context("starting a transaction")?;
        let Some(row) = tx
            .query_opt(
                "SELECT region FROM servers WHERE name = $1 FOR UPDATE",
                &[name],
            )
            .await
            .with_context(|| format!("reading server {name}"))?
        else {
            return Ok(None);
        };
        let was: Option<Region> = row.try_get(0).context("reading servers")?;
        if was.as_ref() != Some(region) {
            tx.execute(
                "UPDATE servers SET region = $2 WHERE name = $1",
                &[name, region],
            )
            .await
            .with_context(|| format!("changing server {name}"))?;
            let details =
                serde_json::json!({ "server": name, "from_region": was, "to_region": region });
            super::audit::append_fleet(&*tx, actor, Action::ServerSet, &details).await?;
            tx.commit().await.context("committing the server change")?;
        }
        Ok(Some(was))
    }

    /// Removes an empty server, audited. The tenants (any status) and database claims that
    /// name it are counted in the same transaction, with the server's row locked: `Ok(n)` with
    /// n > 0 means it still holds n and nothing was removed. `None`: no such server.
    pub async fn remove_server(&self, name: &ServerName, actor: &str) -> Result<Option<i64>> {
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await.context("starting a transaction")?;
        let found = tx
            .query_opt("SELECT 1 FROM servers WHERE name = $1 FOR UPDATE", &[name])
            .await
            .with_context(|| format!("reading server {name}"))?;
        if found.is_none() {
            return Ok(None);
        }
        let held: i64 = tx
            .query_one(
                "SELECT (SELECT count(*) FROM tenants WHERE server = $1)
                      + (SELECT count(*) FROM database_claims WHERE server = $1)",
                &[name],
            )
            .await
            .with_context(|| format!("counting the tenants of server {name}"))?
            .get(0);
        if held > 0 {
            return Ok(Some(held));
        }
        tx.execute("DELETE FROM servers WHERE name = $1", &[name])
            .await
            .with_context(|| format!("removing server {name}"))?;
        let details = serde_json::json!({ "server": name });
        super::audit::append_fleet(&*tx, actor, Action::ServerRemove, &details).await?;
        tx.commit().await.context("committing the removal")?;
        Ok(Some(0))
    }
}

/// What `server add` and `server list` read on a server itself.
#[derive(Debug, Clone)]
pub struct ServerFacts {
    /// PostgreSQL's system identifier: one per cluster (shared by its physical replicas).
    pub system_id: String,
    pub version: String,
}

/// The system identifier and version of the server `client` is connected to
/// (`pg_control_system()` needs no privilege).
pub async fn server_facts(client: &impl GenericClient) -> Result<ServerFacts> {
    let row = client
        .query_one(
            "SELECT system_identifier::text, current_setting('server_version')
               FROM pg_control_system()",
            &[],
        )
        .await
        .context("reading the server's system identifier")?;
    Ok(ServerFacts {
        system_id: row.get(0),
        version: row.get(1),
    })
}

/// This control plane's databases on the server `admin` is connected to (those carrying its
/// mark, siloed or pooled, staging databases of a restore included) and their total size.
pub async fn plane_databases(
    admin: &impl GenericClient,
    plane_id: uuid::Uuid,
) -> Result<(i64, i64)> {
    let pattern = format!("tenantctl:{plane_id}:%");
    let row = admin
        .query_one(
            "SELECT count(*), coalesce(sum(pg_database_size(oid)), 0)::bigint
               FROM pg_database WHERE shobj_description(oid, 'pg_database') LIKE $1",
            &[&pattern],
        )
        .await
        .context("reading the server's databases")?;
    Ok((row.get(0), row.get(1)))
}
