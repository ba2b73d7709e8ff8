//! Quotas: limits against usage (`quota show|set|reset`) and the answer of `quota check`.

use super::{table, table_text, Render};
use crate::ops::quota::{Check, QuotaLine};
use crate::words;

impl Render for [QuotaLine] {
    fn human(&self) -> String {
        let mut t = table(&[
            "RESOURCE",
            "KIND",
            "LIMIT",
            "USED",
            "REMAINING",
            "LIMIT IS",
            "SOURCE",
            "PERIOD",
        ]);
        for l in self {
            t.add_row(vec![
                l.resource.to_string(),
                format!("{:?}", l.kind).to_lowercase(),
                l.limit.to_string(),
                l.used.to_string(),
                l.remaining.to_string(),
                match &l.overage_price {
                    Some(p) => format!("soft ({p}/unit)"),
                    None => "hard".to_owned(),
                },
                l.source.to_string(),
                l.period
                    .as_ref()
                    .map(ToString::to_string)
                    .unwrap_or_else(|| "now".to_owned()),
            ]);
        }
        table_text(&t)
    }
}

impl Render for Check {
    fn human(&self) -> String {
        let c = self;
        let verdict = if c.allowed { "allowed" } else { "refused" };
        let reason = c
            .reason
            .as_ref()
            .map(|r| format!(": {r}"))
            .unwrap_or_default();
        format!(
            "{verdict}: {} for {} (used {} of {}, {} remaining){reason}\n",
            words::quantity(c.amount, c.resource),
            c.slug,
            c.used,
            c.limit,
            c.remaining
        )
    }
}
