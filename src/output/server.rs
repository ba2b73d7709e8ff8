//! The server side: the local cluster (`local status|stop`), a tenant's credentials, `init`
//! and `doctor`.

use serde::Serialize;

use super::{fields, yes_no, Render};
use crate::cluster::ClusterStatus;
use crate::ops::credentials::CredentialsView;
use crate::ops::doctor::{InitView, Report};
use crate::words;

/// `local stop`: whether there was a cluster to stop.
#[derive(Debug, Serialize)]
pub struct Stopped {
    pub stopped: bool,
}

impl Render for Stopped {
    fn human(&self) -> String {
        if self.stopped {
            "stopped the local cluster\n"
        } else {
            "the local cluster was not running\n"
        }
        .to_owned()
    }
}

impl Render for ClusterStatus {
    fn human(&self) -> String {
        let s = self;
        fields(vec![
            ("data dir", s.data_dir.clone()),
            ("cluster", s.pgdata.clone()),
            ("socket dir", s.socket_dir.clone()),
            ("initialized", s.initialized.to_string()),
            (
                "running",
                match s.pid {
                    Some(pid) => format!(
                        "yes (pid {pid}, {})",
                        s.state.as_deref().unwrap_or("state unknown")
                    ),
                    None => "no".to_owned(),
                },
            ),
            ("socket", s.socket.clone().unwrap_or_default()),
            (
                "reachable",
                match (&s.problem, s.reachable) {
                    (_, true) => "yes".to_owned(),
                    (Some(problem), false) => format!("no: {problem}"),
                    (None, false) => "no".to_owned(),
                },
            ),
        ])
    }
}

impl Render for CredentialsView {
    fn human(&self) -> String {
        let v = self;
        match &v.tenant_context {
            Some(ctx) => format!(
                "tenant `{}` is pooled: its application connects to database `{}` on {}:{} as the shared role `{}` (its password is the operator's) and sets its tenant context at the start of every transaction (it ends with the transaction, so a connection pool never hands one tenant's context to the next): {ctx}\n",
                v.slug, v.database, v.host, v.port, v.role
            ),
            None => fields(vec![
                ("slug", v.slug.to_string()),
                ("role", v.role.clone()),
                ("database", v.database.clone()),
                ("server", format!("{}:{}", v.host, v.port)),
                ("sslmode", v.sslmode.clone()),
                ("rotated", v.rotated.to_string()),
                (
                    "valid until",
                    v.valid_until
                        .map(|t| t.to_rfc3339())
                        .unwrap_or_else(|| "never".to_owned()),
                ),
            ]),
        }
    }
}

impl Render for InitView {
    fn human(&self) -> String {
        let v = self;
        let applied = words::count_len(v.applied.len(), "migration");
        let what = match (v.created, v.applied.len()) {
            (true, _) => format!(
                "created control database `{}` and applied {applied}",
                v.database
            ),
            (false, 0) => format!(
                "control database `{}` is up to date: nothing to do",
                v.database
            ),
            (false, _) => format!("control database `{}`: applied {applied}", v.database),
        };
        format!("{what} on {}\n", v.server)
    }
}

impl Render for Report {
    fn human(&self) -> String {
        let r = self;
        let mut rows = vec![
            ("server", r.server.clone()),
            ("server version", r.server_version.clone()),
            (
                "tls",
                match (&r.tls_version, r.tls) {
                    (Some(v), true) => format!("yes ({v}, sslmode={})", r.sslmode),
                    _ => format!("no (sslmode={})", r.sslmode),
                },
            ),
            ("admin role", r.role.clone()),
            ("superuser", yes_no(r.superuser)),
            ("bypassrls", yes_no(r.bypassrls)),
        ];
        for p in &r.privileges {
            rows.push((
                p.name,
                match &p.grant {
                    None => "yes".to_owned(),
                    Some(g) => format!("MISSING: {g}"),
                },
            ));
        }
        rows.push(("control database", r.control_database.clone()));
        rows.push((
            "control schema",
            match r.schema_version {
                None => "none (run `tenantctl init`)".to_owned(),
                Some(v) if r.pending_migrations.is_empty() => format!("V{v}, up to date"),
                Some(v) => format!("V{v}, pending {}", r.pending_migrations.join(", ")),
            },
        ));
        for c in &r.servers {
            rows.push((
                "server",
                format!(
                    "{} ({}): {}",
                    c.name,
                    c.url,
                    match &c.error {
                        None => {
                            let missing: Vec<&str> = c
                                .privileges
                                .iter()
                                .filter(|p| !p.held)
                                .map(|p| p.name)
                                .collect();
                            if missing.is_empty() {
                                "reachable, privileges held".to_owned()
                            } else {
                                format!("reachable, MISSING {}", missing.join(" "))
                            }
                        }
                        Some(e) => format!("UNREACHABLE: {e}"),
                    }
                ),
            ));
        }
        for d in &r.databases {
            rows.push((
                "tenant database",
                format!(
                    "{} on {}: {}",
                    d.database,
                    d.server,
                    match &d.error {
                        None => "reachable".to_owned(),
                        Some(e) => format!("UNREACHABLE: {e}"),
                    }
                ),
            ));
        }
        for t in &r.templates {
            rows.push((
                "silo template",
                match t.version {
                    None => format!("{} on {}: not this control plane's", t.database, t.server),
                    Some(v) => format!(
                        "{} on {}: V{v}{}{}",
                        t.database,
                        t.server,
                        if v == t.latest {
                            ", up to date".to_owned()
                        } else {
                            format!(" (latest V{}; refreshed by the next siloed provisioning or `migrate`)", t.latest)
                        },
                        if t.closed { "" } else { ", TAKES CONNECTIONS" }
                    ),
                },
            ));
        }
        let mut text = fields(rows);
        if r.ok {
            text.push_str("all is well\n");
        }
        for p in &r.problems {
            text.push_str(&format!("problem: {p}\n"));
        }
        text
    }
}
