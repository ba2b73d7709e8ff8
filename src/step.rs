//! `Step`: a provisioning step, journaled by a stable name. Its position in `Step::ALL` gives
//! the order the steps run in and the number shown (`[3/7]`); the journal never stores that
//! number, so a step can be inserted without changing what the journal of a half-provisioned
//! tenant means.

use std::fmt;

use serde::Serialize;

/// One step of `ops::provision`, in the order they run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    RecordTenant,
    CreateDatabase,
    ApplySchema,
    CreateOwner,
    SeedQuotas,
    CreateBuckets,
    /// The `after_provision` hooks (`[hooks]`), each recorded as it succeeds.
    RunHooks,
    Activate,
}

impl Step {
    /// Every step, in the order they run.
    pub const ALL: [Step; 8] = [
        Step::RecordTenant,
        Step::CreateDatabase,
        Step::ApplySchema,
        Step::CreateOwner,
        Step::SeedQuotas,
        Step::CreateBuckets,
        Step::RunHooks,
        Step::Activate,
    ];

    /// The stable name the journal keys the step by (`provisioning_journal.step`): never
    /// changed once shipped, whatever the step's label or position becomes.
    pub const fn as_str(self) -> &'static str {
        match self {
            Step::RecordTenant => "record_tenant",
            Step::CreateDatabase => "create_database",
            Step::ApplySchema => "apply_schema",
            Step::CreateOwner => "create_owner",
            Step::SeedQuotas => "seed_quotas",
            Step::CreateBuckets => "create_buckets",
            Step::RunHooks => "run_hooks",
            Step::Activate => "activate",
        }
    }

    /// What progress lines and `--dry-run` call it.
    pub const fn label(self) -> &'static str {
        match self {
            Step::RecordTenant => "record tenant",
            Step::CreateDatabase => "create database",
            Step::ApplySchema => "apply schema",
            Step::CreateOwner => "create owner",
            Step::SeedQuotas => "seed quotas and features",
            Step::CreateBuckets => "create buckets",
            Step::RunHooks => "run hooks",
            Step::Activate => "activate",
        }
    }

    /// Its position, from 1: shown to people and named by the fault tests' failpoints; never
    /// stored.
    pub fn number(self) -> usize {
        Step::ALL
            .iter()
            .position(|s| *s == self)
            .expect("every step is in ALL")
            + 1
    }

    pub fn parse(s: &str) -> Option<Step> {
        Step::ALL.into_iter().find(|st| st.as_str() == s)
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

crate::sql_text::text_sql!(Step, Step::parse);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_stable_and_numbers_follow_the_order() {
        // The names of V10__journal_step_names.sql: a journal written before it means these.
        let names: Vec<&str> = Step::ALL.iter().map(|s| s.as_str()).collect();
        assert_eq!(
            names,
            [
                "record_tenant",
                "create_database",
                "apply_schema",
                "create_owner",
                "seed_quotas",
                "create_buckets",
                "run_hooks",
                "activate"
            ]
        );
        for (i, s) in Step::ALL.into_iter().enumerate() {
            assert_eq!(s.number(), i + 1);
            assert_eq!(Step::parse(s.as_str()), Some(s));
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        // V10 named the seven steps of its time, numbered as they ran then.
        let migration = include_str!("../sql/control/V10__journal_step_names.sql");
        let v10 = Step::ALL.into_iter().filter(|s| *s != Step::RunHooks);
        for (i, s) in v10.enumerate() {
            assert!(
                migration.contains(&format!("WHEN {} THEN '{}'", i + 1, s.as_str())),
                "{s} in V10"
            );
        }
        assert_eq!(Step::parse("3"), None);
    }
}
