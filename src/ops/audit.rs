//! Reading the audit log: every lifecycle action, who did it, from which status to which.

use anyhow::Result;
use chrono::{DateTime, Utc};

use super::ControlPlane;
use crate::db::lifecycle::AuditEntry;
use crate::slug::Slug;

/// `audit [slug] [--since]`, oldest first.
pub async fn entries(
    plane: &ControlPlane,
    slug: Option<&Slug>,
    since: Option<DateTime<Utc>>,
) -> Result<Vec<AuditEntry>> {
    plane.control.audit(slug.map(Slug::as_str), since).await
}
