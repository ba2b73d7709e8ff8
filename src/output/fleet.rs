//! The fleet: its servers (`server list|add|drain|undrain|set|remove`), tenants' routes
//! (`route`) and the routing table as a PgBouncer `[databases]` section (`routes`).

use super::tenants::region_text;
use super::{fields, table, table_text, yes_no, Render};
use crate::excerpt::escape;
use crate::ops::routes::RouteView;
use crate::ops::servers::{Removed, ServerView};

fn tiers_text(tiers: &Option<Vec<String>>) -> String {
    match tiers {
        None => "all".to_owned(),
        Some(ts) => ts.join(","),
    }
}

fn opt(n: Option<i64>) -> String {
    n.map(|n| n.to_string()).unwrap_or_else(|| "?".to_owned())
}

impl Render for ServerView {
    fn human(&self) -> String {
        let s = self;
        fields(vec![
            ("name", s.name.to_string()),
            ("url", s.url.clone()),
            ("control", yes_no(s.control)),
            ("capacity", s.capacity.to_string()),
            ("capacity left", s.capacity_left.to_string()),
            ("tiers", tiers_text(&s.tiers)),
            ("pooled", yes_no(s.pooled)),
            ("draining", yes_no(s.draining)),
            ("region", region_text(s.region.as_ref())),
            (
                "tenants",
                format!(
                    "{} ({} siloed, {} pooled)",
                    s.tenants, s.siloed_tenants, s.pooled_tenants
                ),
            ),
            ("databases", opt(s.databases)),
            ("bytes", opt(s.bytes)),
            (
                "reachable",
                match &s.error {
                    Some(e) => format!("no: {e}"),
                    None if s.reachable => "yes".to_owned(),
                    None => "not checked".to_owned(),
                },
            ),
        ])
    }
}

impl Render for [ServerView] {
    fn human(&self) -> String {
        let mut t = table(&[
            "NAME",
            "URL",
            "TIERS",
            "POOLED",
            "DRAINING",
            "REGION",
            "TENANTS",
            "DATABASES",
            "BYTES",
            "CAPACITY",
            "LEFT",
            "REACHABLE",
        ]);
        for s in self {
            t.add_row(vec![
                format!("{}{}", s.name, if s.control { " (control)" } else { "" }),
                escape(&s.url),
                tiers_text(&s.tiers),
                yes_no(s.pooled),
                yes_no(s.draining),
                region_text(s.region.as_ref()),
                s.tenants.to_string(),
                opt(s.databases),
                opt(s.bytes),
                s.capacity.to_string(),
                s.capacity_left.to_string(),
                match &s.error {
                    None => "yes".to_owned(),
                    Some(e) => format!("NO: {}", escape(e)),
                },
            ]);
        }
        table_text(&t)
    }
}

impl Render for Removed {
    fn human(&self) -> String {
        format!("removed server `{}` from the fleet\n", self.name)
    }
}

impl Render for RouteView {
    fn human(&self) -> String {
        let r = self;
        let mut rows = vec![
            ("slug", r.slug.clone()),
            ("server", r.server.to_string()),
            ("region", region_text(r.region.as_ref())),
            ("host", r.host.clone()),
            ("port", r.port.to_string()),
            ("database", r.database.clone()),
            ("role", r.role.clone()),
            ("sslmode", r.sslmode.clone()),
            ("url", r.url.clone()),
        ];
        if let Some(id) = r.tenant_id {
            rows.push((
                "tenant context",
                format!("SELECT set_config('app.tenant_id', '{id}', true)"),
            ));
        }
        fields(rows)
    }
}

impl Render for [RouteView] {
    fn human(&self) -> String {
        pgbouncer(self)
    }
}

/// A value of a PgBouncer connection string: as it is when it holds nothing PgBouncer's
/// parser splits on, else single-quoted (a quote doubled).
fn pgbouncer_value(v: &str) -> String {
    if !v.is_empty()
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._-:@".contains(&b))
    {
        v.to_owned()
    } else {
        format!("'{}'", v.replace('\'', "''"))
    }
}

/// The routes as PgBouncer's `[databases]` section: each slug to its server's host and port and
/// its database. A slug is `[a-z0-9-]`, which PgBouncer's ini parser takes as a key unquoted
/// (its documentation suggests `"..."` for names with `-`, which PgBouncer 1.18 refuses as a
/// syntax error). No user is set, so a client logs in as its own role (the tenant's, for a
/// silo); PgBouncer's TLS towards the servers is its own `server_tls_sslmode`, listed per server
/// in the comments.
pub fn pgbouncer(routes: &[RouteView]) -> String {
    let mut servers: Vec<(&str, &str)> = routes
        .iter()
        .map(|r| (r.server.as_str(), r.sslmode.as_str()))
        .collect();
    servers.sort();
    servers.dedup();
    let mut text = format!(
        ";; PgBouncer routes written by tenantctl: {} active tenants on {} servers\n",
        routes.len(),
        servers.len()
    );
    for (name, sslmode) in servers {
        text.push_str(&format!(";; server {name}: sslmode={sslmode}\n"));
    }
    text.push_str("[databases]\n");
    for r in routes {
        text.push_str(&format!(
            "{} = host={} port={} dbname={}\n",
            r.slug,
            pgbouncer_value(&r.host),
            r.port,
            pgbouncer_value(&r.database)
        ));
    }
    text
}
