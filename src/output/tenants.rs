//! Tenants: one tenant (`show` and every lifecycle command), the list, provisioning's result
//! and its dry-run plan.

use super::{fields, table, table_text, Render};
use crate::excerpt::escape;
use crate::ops::provision::{Outcome, Plan};
use crate::ops::tenants::TenantView;
use crate::words;

impl Render for TenantView {
    fn human(&self) -> String {
        let v = self;
        let buckets = v
            .buckets
            .iter()
            .map(|b| format!("{} ({})", b.name, b.location))
            .collect::<Vec<_>>();
        let quotas = v
            .quotas
            .iter()
            .map(|(r, q)| format!("{r}={}", q.limit))
            .collect::<Vec<_>>();
        let time = |t: Option<&chrono::DateTime<chrono::Utc>>| {
            t.map(|d| d.to_rfc3339()).unwrap_or_else(|| "-".to_owned())
        };
        fields(vec![
            ("slug", v.slug.to_string()),
            ("id", v.id.to_string()),
            ("name", v.name.clone()),
            ("tier", v.tier.to_string()),
            ("isolation", v.isolation.to_string()),
            ("status", v.status.to_string()),
            ("server", v.server.to_string()),
            ("region", region_text(v.region.as_ref())),
            ("database", v.database.clone()),
            ("role", v.role.clone()),
            ("owner", v.owner_email.clone()),
            ("created", time(Some(&v.created_at))),
            ("deleted", time(v.deleted_at.as_ref())),
            ("purge after", time(v.purge_after.as_ref())),
            // One line: the table escapes a newline in a cell as a literal `\n`.
            ("buckets", buckets.join(", ")),
            ("quotas", quotas.join(" ")),
            ("features", v.features.join(" ")),
        ])
    }
}

/// A region as the tables show it: `-` for none.
pub(super) fn region_text(region: Option<&crate::region::Region>) -> String {
    region.map_or_else(|| "-".to_owned(), |r| r.to_string())
}

impl Render for [TenantView] {
    fn human(&self) -> String {
        let mut t = table(&[
            "SLUG",
            "NAME",
            "TIER",
            "ISOLATION",
            "STATUS",
            "SERVER",
            "DATABASE",
            "CREATED",
        ]);
        for v in self {
            t.add_row(vec![
                v.slug.to_string(),
                escape(&v.name),
                v.tier.to_string(),
                v.isolation.to_string(),
                v.status.to_string(),
                v.server.to_string(),
                v.database.clone(),
                words::minute(&v.created_at),
            ]);
        }
        table_text(&t)
    }
}

impl Render for Outcome {
    fn human(&self) -> String {
        self.tenant.human()
    }
}

impl Render for Plan {
    fn human(&self) -> String {
        let p = self;
        let mut text = format!(
            "dry run: provision `{}` on tier `{}` ({}), server `{}`, database `{}`, role `{}`{}\n",
            p.slug,
            p.tier,
            p.isolation,
            p.server,
            p.database,
            p.role,
            p.status
                .as_ref()
                .map(|s| format!(", currently {s}"))
                .unwrap_or_default()
        );
        for s in &p.steps {
            text.push_str(&format!(
                "[{}/{}] {} ... {}\n",
                s.step,
                p.steps.len(),
                s.name,
                s.state
            ));
        }
        text
    }
}

/// `provision --file`: one summary line (the failed rows go to stderr first, see `bulk_failures`).
impl Render for crate::ops::bulk::Summary {
    fn human(&self) -> String {
        format!(
            "{}: {} provisioned, {} already active (skipped), {} failed; passwords in {} ({} at a time, {} ms)\n",
            words::count_len(self.rows, "row"),
            self.provisioned,
            self.skipped,
            self.failed.len(),
            escape(&self.password_file),
            self.concurrency,
            self.duration_ms
        )
    }
}

/// The rows of a bulk provisioning that failed, one line each on stderr (also under `-o json`,
/// whose summary lists them too).
pub fn bulk_failures(s: &crate::ops::bulk::Summary) {
    for f in &s.failed {
        super::stderr_line(&format!(
            "line {}: tenant `{}` failed: {}",
            f.line,
            f.slug,
            escape(&f.error)
        ));
    }
}
