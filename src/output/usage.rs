//! Usage: one recorded event, an import, a refresh of the measured levels.

use super::Render;
use crate::excerpt::{excerpt_n, REASON_CHARS};
use crate::ops::usage::{ImportView, RecordView, RefreshView};
use crate::words;

impl Render for RecordView {
    fn human(&self) -> String {
        let r = self;
        match r.total {
            Some(total) => format!(
                "recorded {} for {} ({} total {total})\n",
                words::quantity(r.quantity, r.resource),
                r.slug,
                r.period
            ),
            None => format!(
                "duplicate key `{}`: already counted, nothing recorded\n",
                r.key
            ),
        }
    }
}

impl Render for ImportView {
    fn human(&self) -> String {
        let v = self;
        let mut text = format!(
            "{}: {}: {} accepted, {}, {} refused ({} ms)\n",
            v.file,
            words::count_len(v.rows, "row"),
            v.accepted,
            words::count_s(v.duplicates, "duplicate"),
            v.refused,
            v.duration_ms
        );
        for r in &v.refused_rows {
            text.push_str(&format!(
                "  line {}: {} {}: {}\n",
                r.line, r.slug, r.resource, r.reason
            ));
        }
        text
    }
}

impl Render for RefreshView {
    fn human(&self) -> String {
        let v = self;
        let mut text = format!(
            "measured {} in {} ms",
            words::count_len(v.tenants, "tenant"),
            v.duration_ms
        );
        for (what, list) in [("skipped", &v.skipped), ("failed", &v.failed)] {
            for u in list {
                text.push_str(&format!(
                    "\n{what} `{}`: {} kept from the last measurement ({})",
                    u.slug,
                    u.kept
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(", "),
                    excerpt_n(&u.reason, REASON_CHARS)
                ));
            }
        }
        text.push('\n');
        text
    }
}
