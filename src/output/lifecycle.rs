//! Lifecycle results that are not a tenant: purges, adoption, and the audit log.

use super::{table, table_text, Render};
use crate::db::lifecycle::AuditEntry;
use crate::excerpt::escape;
use crate::ops::lifecycle::Purged;
use crate::ops::ownership::Adopted;
use crate::words;

impl Render for [Purged] {
    fn human(&self) -> String {
        let mut text = String::new();
        for p in self {
            let what = match (&p.database, &p.role) {
                (Some(db), Some(role)) => format!("database {db}, role {role}"),
                _ => words::count(p.pooled_rows, "pooled row", "pooled rows"),
            };
            text.push_str(&format!(
                "purged `{}`: {what}, buckets {}\n",
                p.slug,
                p.buckets.join(", ")
            ));
        }
        if self.is_empty() {
            text.push_str("nothing to purge\n");
        }
        text
    }
}

impl Render for Adopted {
    fn human(&self) -> String {
        let list = |v: &[String]| {
            if v.is_empty() {
                "none".to_owned()
            } else {
                v.join(", ")
            }
        };
        format!(
            "tenant `{}`: marked {}; already marked {}; missing {}\n",
            self.slug,
            list(&self.marked),
            list(&self.already_marked),
            list(&self.missing)
        )
    }
}

impl Render for [AuditEntry] {
    fn human(&self) -> String {
        let mut t = table(&["AT", "ACTOR", "ACTION", "SLUG", "FROM", "TO", "DETAILS"]);
        let text = |s: Option<String>| escape(&s.unwrap_or_default());
        for e in self {
            // Stored text is escaped: rows written before its characters were checked may hold
            // a raw newline or escape sequence (from `--actor`).
            t.add_row(vec![
                words::second(&e.at),
                escape(&e.actor),
                escape(&e.action.to_string()),
                text(e.slug.as_ref().map(ToString::to_string)),
                text(e.from_status.as_ref().map(ToString::to_string)),
                text(e.to_status.as_ref().map(ToString::to_string)),
                escape(&e.details.to_string()),
            ]);
        }
        table_text(&t)
    }
}
