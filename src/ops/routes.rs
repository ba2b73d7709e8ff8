//! Routing: where an active tenant's application connects (`route`), and the table of every
//! active tenant (`routes`) that PgBouncer or a gateway uses so that applications connect to a
//! slug and never need to know the placement. Reads only; no password anywhere.

use anyhow::Result;
use serde::Serialize;

use super::{tenants, ControlPlane};
use crate::error::Failure;
use crate::region::Region;
use crate::server_name::ServerName;
use crate::slug::Slug;
use crate::tenant::{Status, Tenant};
use crate::tier::Isolation;

/// Where one tenant's application connects. JSON names are a contract.
#[derive(Debug, Clone, Serialize)]
pub struct RouteView {
    pub slug: String,
    pub isolation: Isolation,
    pub server: ServerName,
    /// The server's region; `null` when it has none.
    pub region: Option<Region>,
    /// The server's first host, or its unix-socket directory.
    pub host: String,
    pub port: u16,
    pub database: String,
    /// The login role: the tenant's own (siloed) or the shared application role (pooled).
    pub role: String,
    pub sslmode: String,
    /// `postgresql://role@host:port/database?sslmode=...`, without a password.
    pub url: String,
    /// Pooled tenants: the tenant id the application must set in each transaction
    /// (`SELECT set_config('app.tenant_id', '<id>', true)`); `null` for a silo.
    pub tenant_id: Option<uuid::Uuid>,
}

async fn route_of(plane: &ControlPlane, t: &Tenant, region: Option<Region>) -> Result<RouteView> {
    let e = plane.fleet.endpoint(&t.server).await?;
    let host = if e.host.contains(':') && !e.host.starts_with('/') {
        format!("[{}]", e.host)
    } else {
        super::credentials::percent(&e.host)
    };
    let url = format!(
        "postgresql://{}@{host}:{}/{}?sslmode={}",
        super::credentials::percent(&t.role),
        e.port,
        super::credentials::percent(&t.database),
        e.sslmode.as_str()
    );
    Ok(RouteView {
        slug: t.slug.to_string(),
        isolation: t.isolation,
        server: t.server.clone(),
        region,
        host: e.host,
        port: e.port,
        database: t.database.clone(),
        role: t.role.clone(),
        sslmode: e.sslmode.as_str().to_owned(),
        url,
        tenant_id: (t.isolation == Isolation::Pooled).then_some(t.id),
    })
}

/// `route <slug>`: an active tenant's route (exit 3 for any other status: a suspended or
/// deleted tenant's application has nowhere to connect).
pub async fn route(plane: &ControlPlane, slug: &Slug) -> Result<RouteView> {
    let t = tenants::find(plane, slug).await?;
    if t.status != Status::Active {
        return Err(Failure::Refused(format!(
            "tenant `{slug}` is {}: only an active tenant has a route",
            t.status
        ))
        .into());
    }
    let region = super::servers::region_of(plane, &t.server).await?;
    route_of(plane, &t, region).await
}

/// `routes`: every active tenant's route, by slug. Suspended, deleted and unfinished tenants
/// are absent.
pub async fn routes(plane: &ControlPlane) -> Result<Vec<RouteView>> {
    let regions = tenants::regions(plane).await?;
    let mut out = Vec::new();
    for t in plane.control.list_tenants().await? {
        if t.status == Status::Active {
            let region = regions.get(&t.server).cloned().flatten();
            out.push(route_of(plane, &t, region).await?);
        }
    }
    Ok(out)
}
