//! `MoveStep` and `MoveKind`: the steps of a move of a tenant's data (`ops::moves`), journaled
//! by stable name in `move_journal`, and what kind of move it is. As for provisioning's `Step`,
//! a step's position gives its number (`[5/11]`) and is never stored.

use std::fmt;

use serde::Serialize;

/// One step of a move, in the order they run. The steps before `Switch` are run again by every
/// run that finds the switch not done (the source is authoritative until then, and the copy is
/// redone into a cleaned target); those after it run once, as their journal says.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MoveStep {
    /// The move's row and the `moving` status, in one transaction.
    RecordMove,
    /// The source closed to the tenant, as a suspension closes it; open to tenantctl.
    CloseSource,
    /// The target database (and role) created and marked, closed to the tenant.
    CreateTarget,
    /// Both databases at the newest tenant schema.
    ApplySchema,
    /// The tenant's rows copied into the cleaned target in foreign-key order, and verified.
    CopyRows,
    /// The tenant's bucket objects copied where the target isolation keeps them.
    CopyBuckets,
    /// The tenant record (isolation, tier, database, role), quotas and features switched to
    /// the target, in one control transaction with its audit entry.
    Switch,
    /// The entitled features written into the target.
    SyncFeatures,
    /// The source's copy of the tenant removed (its marks checked first).
    RemoveSource,
    /// The target opened to the tenant as the status it returns to says.
    Reopen,
    /// `moving` replaced by that status; the move's row removed.
    Finish,
}

impl MoveStep {
    pub const ALL: [MoveStep; 11] = [
        MoveStep::RecordMove,
        MoveStep::CloseSource,
        MoveStep::CreateTarget,
        MoveStep::ApplySchema,
        MoveStep::CopyRows,
        MoveStep::CopyBuckets,
        MoveStep::Switch,
        MoveStep::SyncFeatures,
        MoveStep::RemoveSource,
        MoveStep::Reopen,
        MoveStep::Finish,
    ];

    /// The stable name the journal keys the step by; never changed once shipped.
    pub const fn as_str(self) -> &'static str {
        match self {
            MoveStep::RecordMove => "record_move",
            MoveStep::CloseSource => "close_source",
            MoveStep::CreateTarget => "create_target",
            MoveStep::ApplySchema => "apply_schema",
            MoveStep::CopyRows => "copy_rows",
            MoveStep::CopyBuckets => "copy_buckets",
            MoveStep::Switch => "switch",
            MoveStep::SyncFeatures => "sync_features",
            MoveStep::RemoveSource => "remove_source",
            MoveStep::Reopen => "reopen",
            MoveStep::Finish => "finish",
        }
    }

    /// What progress lines call it.
    pub const fn label(self) -> &'static str {
        match self {
            MoveStep::RecordMove => "record move",
            MoveStep::CloseSource => "close source",
            MoveStep::CreateTarget => "create target",
            MoveStep::ApplySchema => "apply schema",
            MoveStep::CopyRows => "copy rows",
            MoveStep::CopyBuckets => "copy buckets",
            MoveStep::Switch => "switch",
            MoveStep::SyncFeatures => "sync features",
            MoveStep::RemoveSource => "remove source",
            MoveStep::Reopen => "reopen",
            MoveStep::Finish => "finish",
        }
    }

    /// Its position, from 1.
    pub fn number(self) -> usize {
        MoveStep::ALL
            .iter()
            .position(|s| *s == self)
            .expect("every step is in ALL")
            + 1
    }

    /// Whether it comes after the switch: done once, never redone.
    pub fn after_switch(self) -> bool {
        self > MoveStep::Switch
    }

    pub fn parse(s: &str) -> Option<MoveStep> {
        MoveStep::ALL.into_iter().find(|st| st.as_str() == s)
    }
}

impl fmt::Display for MoveStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

crate::sql_text::text_sql!(MoveStep, MoveStep::parse);

/// What a move changes: the isolation model (with the tier), or the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MoveKind {
    /// pooled → siloed: the tenant's rows out of the shared database into a silo of its own.
    Upgrade,
    /// siloed → pooled: the silo's rows into the shared database.
    Downgrade,
    /// A silo to another server (`move --to`).
    Server,
}

impl MoveKind {
    pub const fn as_str(self) -> &'static str {
        match self {
            MoveKind::Upgrade => "upgrade",
            MoveKind::Downgrade => "downgrade",
            MoveKind::Server => "server",
        }
    }

    pub fn parse(s: &str) -> Option<MoveKind> {
        [MoveKind::Upgrade, MoveKind::Downgrade, MoveKind::Server]
            .into_iter()
            .find(|k| k.as_str() == s)
    }
}

impl fmt::Display for MoveKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

crate::sql_text::text_sql!(MoveKind, MoveKind::parse);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_stable_and_the_switch_divides_the_steps() {
        let names: Vec<&str> = MoveStep::ALL.iter().map(|s| s.as_str()).collect();
        assert_eq!(
            names,
            [
                "record_move",
                "close_source",
                "create_target",
                "apply_schema",
                "copy_rows",
                "copy_buckets",
                "switch",
                "sync_features",
                "remove_source",
                "reopen",
                "finish"
            ]
        );
        for (i, s) in MoveStep::ALL.into_iter().enumerate() {
            assert_eq!(s.number(), i + 1);
            assert_eq!(MoveStep::parse(s.as_str()), Some(s));
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
            assert_eq!(s.after_switch(), i > 6, "{s}");
        }
        for k in [MoveKind::Upgrade, MoveKind::Downgrade, MoveKind::Server] {
            assert_eq!(MoveKind::parse(k.as_str()), Some(k));
        }
    }
}
