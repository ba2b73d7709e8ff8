//! Claims on buckets (`bucket_claims`): see `ops::ownership::create_bucket`.

use anyhow::{Context, Result};

use super::control::ControlDb;

impl ControlDb {
    /// Records that this control plane is about to create or remove the bucket at `location`
    /// with `mark`.
    pub async fn claim_bucket(&self, location: &str, mark: &str) -> Result<()> {
        self.conn()
            .await?
            .execute(
                "INSERT INTO bucket_claims (location, mark) VALUES ($1, $2)
                 ON CONFLICT (location) DO UPDATE SET mark = EXCLUDED.mark, claimed_at = now()",
                &[&location, &mark],
            )
            .await
            .with_context(|| format!("claiming bucket {location}"))?;
        Ok(())
    }

    /// Whether this control plane's claim on the bucket with `mark` stands.
    pub async fn bucket_claimed(&self, location: &str, mark: &str) -> Result<bool> {
        Ok(self
            .conn()
            .await?
            .query_opt(
                "SELECT 1 FROM bucket_claims WHERE location = $1 AND mark = $2",
                &[&location, &mark],
            )
            .await
            .with_context(|| format!("reading the claim on bucket {location}"))?
            .is_some())
    }

    pub async fn release_bucket_claim(&self, location: &str) -> Result<()> {
        self.conn()
            .await?
            .execute(
                "DELETE FROM bucket_claims WHERE location = $1",
                &[&location],
            )
            .await
            .with_context(|| format!("releasing the claim on bucket {location}"))?;
        Ok(())
    }
}
