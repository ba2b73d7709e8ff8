//! Feature entitlements: one tenant's, the answer of `features check`, a refresh.

use super::{table, table_text, yes_no, Render};
use crate::ops::features::{Check, FeaturesView, Refreshed};

impl Render for FeaturesView {
    fn human(&self) -> String {
        let v = self;
        let mut text = format!(
            "tenant {} (tier {}, {}): {}\n",
            v.slug,
            v.tier,
            v.status,
            if v.features.is_empty() {
                "no features now".to_owned()
            } else {
                v.features.join(", ")
            }
        );
        let mut t = table(&["FEATURE", "FROM TIER", "OVERRIDE", "ENTITLED"]);
        for e in &v.entitlements {
            t.add_row(vec![
                e.feature.to_string(),
                yes_no(e.from_tier),
                e.override_
                    .as_ref()
                    .map(ToString::to_string)
                    .unwrap_or_else(|| "-".to_owned()),
                yes_no(e.entitled),
            ]);
        }
        text.push_str(&table_text(&t));
        text
    }
}

impl Render for Check {
    fn human(&self) -> String {
        match &self.reason {
            None => format!("yes: {} has {}\n", self.slug, self.feature),
            Some(r) => format!("no: {r}\n"),
        }
    }
}

impl Render for [Refreshed] {
    fn human(&self) -> String {
        let mut t = table(&["SLUG", "TIER", "STATUS", "CHANGED", "FEATURES"]);
        for r in self {
            t.add_row(vec![
                r.slug.to_string(),
                r.tier.to_string(),
                r.status.to_string(),
                yes_no(r.changed),
                r.features.join(" "),
            ]);
        }
        table_text(&t)
    }
}
