//! The provisioning journal: which steps of a tenant's provisioning are done, by stable name.

use anyhow::{Context, Result};
use uuid::Uuid;

use super::control::ControlDb;
use crate::step::Step;

impl ControlDb {
    /// The steps the tenant's journal records as done. A step name this version does not
    /// know (journaled by a newer tenantctl) is an error, never skipped silently.
    pub async fn completed_steps(&self, tenant: Uuid) -> Result<Vec<Step>> {
        let rows = self
            .conn()
            .await?
            .query(
                "SELECT step FROM provisioning_journal WHERE tenant_id = $1",
                &[&tenant],
            )
            .await
            .context("reading the provisioning journal")?;
        rows.iter()
            .map(|r| r.try_get(0).context("reading the provisioning journal"))
            .collect()
    }

    /// Journals `step` as done (its stable name; its label as it reads today).
    pub async fn journal_step(&self, tenant: Uuid, step: Step, duration_ms: i32) -> Result<()> {
        self.conn()
            .await?
            .execute(
                "INSERT INTO provisioning_journal (tenant_id, step, name, duration_ms) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (tenant_id, step) DO NOTHING",
                &[&tenant, &step, &step.label(), &duration_ms],
            )
            .await
            .with_context(|| format!("journaling step {step}"))?;
        Ok(())
    }
}
