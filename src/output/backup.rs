//! Object storage and backups: `storage policy`, `backup`, `backups list|prune`,
//! `restore-backup`.

use super::{table, table_text, Render};
use crate::excerpt::escape;
use crate::ops::backup::{BackupAll, BackupView, Pruned, Restored};
use crate::ops::storage::Policy;
use crate::words;

/// The policy is a JSON document whatever the format: it is meant to be attached as is.
impl Render for Policy {
    fn human(&self) -> String {
        format!(
            "{}\n",
            serde_json::to_string_pretty(&self.0).expect("a JSON value serialises")
        )
    }
}

impl Render for BackupView {
    fn human(&self) -> String {
        format!(
            "backed up `{}`: backup {} ({} bytes, {}) in {}\n",
            self.slug,
            self.id,
            self.bytes,
            words::count_s(self.rows, "row"),
            escape(&self.location)
        )
    }
}

impl Render for BackupAll {
    fn human(&self) -> String {
        let mut t = table(&["SLUG", "RESULT", "BACKUP", "BYTES"]);
        for b in &self.backed_up {
            t.add_row(vec![
                b.slug.clone(),
                "ok".to_owned(),
                b.id.clone(),
                b.bytes.to_string(),
            ]);
        }
        for (what, list) in [("skipped", &self.skipped), ("failed", &self.failed)] {
            for s in list {
                t.add_row(vec![
                    s.slug.clone(),
                    format!("{what}: {}", escape(&s.reason)),
                    String::new(),
                    String::new(),
                ]);
            }
        }
        table_text(&t)
    }
}

impl Render for [BackupView] {
    fn human(&self) -> String {
        if self.is_empty() {
            return "no backups\n".to_owned();
        }
        let mut t = table(&["ID", "CREATED", "BYTES", "ROWS"]);
        for b in self {
            t.add_row(vec![
                b.id.clone(),
                words::second(&b.created_at),
                b.bytes.to_string(),
                b.rows.to_string(),
            ]);
        }
        table_text(&t)
    }
}

impl Render for Pruned {
    fn human(&self) -> String {
        format!(
            "`{}`: deleted {}, kept {}{}\n",
            self.slug,
            words::count_len(self.deleted.len(), "backup"),
            self.kept.len(),
            if self.leftovers > 0 {
                format!(
                    ", removed {} of unfinished backups",
                    words::count_len(self.leftovers, "object")
                )
            } else {
                String::new()
            }
        )
    }
}

impl Render for Restored {
    fn human(&self) -> String {
        let rows: Vec<String> = self
            .tables
            .iter()
            .map(|t| format!("{} {}", t.table, t.rows))
            .collect();
        format!(
            "restored `{}` from backup {}: {}\n",
            self.slug,
            self.backup_id,
            rows.join(", ")
        )
    }
}
