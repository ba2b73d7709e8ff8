//! Tenant-schema migrations: what a run did per database, and each database's state.

use super::{table, table_text, yes_no, Render};
use crate::ops::migrate::{DatabaseResult, DatabaseState};
use crate::words;

/// A database's tenants in one cell: the slug, or a count for the pooled database.
fn tenants_cell<S: ToString>(slugs: &[S]) -> String {
    match slugs {
        [one] => one.to_string(),
        many => words::count_len(many.len(), "tenant"),
    }
}

impl Render for [DatabaseResult] {
    fn human(&self) -> String {
        let mut t = table(&[
            "DATABASE", "SERVER", "TENANTS", "RESULT", "APPLIED", "MS", "ERROR",
        ]);
        for r in self {
            t.add_row(vec![
                r.database.clone(),
                r.server.to_string(),
                tenants_cell(&r.tenants),
                r.result.to_string(),
                r.applied.join(" "),
                r.duration_ms.to_string(),
                r.error.clone().unwrap_or_default(),
            ]);
        }
        table_text(&t)
    }
}

impl Render for [DatabaseState] {
    fn human(&self) -> String {
        let mut t = table(&[
            "DATABASE", "SERVER", "TENANTS", "VERSION", "LATEST", "BEHIND", "PENDING", "NOTE",
        ]);
        for s in self {
            t.add_row(vec![
                s.database.clone(),
                s.server.to_string(),
                tenants_cell(&s.tenants),
                s.version
                    .map(|v| v.to_string())
                    .unwrap_or_else(|| "?".to_owned()),
                s.latest.to_string(),
                yes_no(s.behind),
                s.pending.join(" "),
                s.note.clone().unwrap_or_default(),
            ]);
        }
        table_text(&t)
    }
}
