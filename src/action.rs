//! `Action`: what an audit entry records as done. Every audit entry is written with one, and
//! billing reads tenants' histories through their meaning (`is_unfinished_command`,
//! `names_tier`, `ends_billing`), never through a list of names of its own.

use std::fmt;

/// One audit action, stored in `audit_log.action` as its name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    /// `provision` recorded the tenant (`provisioning`); details carry its tier.
    ProvisionStart,
    /// `provision` activated it; details carry its tier.
    Provision,
    SuspendStart,
    Suspend,
    ResumeStart,
    Resume,
    DeprovisionStart,
    Deprovision,
    RestoreStart,
    Restore,
    PurgeStart,
    /// The tenant's rows are gone: the last entry of its history.
    Purge,
    /// A tier change (status unchanged); details carry `to_tier`.
    SetTier,
    QuotaSet,
    QuotaReset,
    FeaturesGrant,
    FeaturesRevoke,
    FeaturesReset,
    FeaturesRefresh,
    Credentials,
    Adopt,
    /// `backup`: details carry the backup's id.
    Backup,
    /// `restore-backup` replaced the tenant's data; details carry the backup's id.
    RestoreBackup,
    /// A move of the tenant's data began (`moving`); details carry what moves where.
    MoveStart,
    /// The move ended (`moving` → the status it started from): done, or cancelled before its
    /// switch (`details.cancelled`).
    Move,
    /// A server joined the fleet (no tenant); details carry its name, URL (no password),
    /// capacity, tiers and whether it is pooled.
    ServerAdd,
    /// A server takes no new tenants (`server drain`); details carry its name.
    ServerDrain,
    /// A drained server takes new tenants again.
    ServerUndrain,
    /// An empty server left the fleet.
    ServerRemove,
    /// A server's capacity changed (`server set`); details carry the old and new capacity.
    ServerSet,
}

impl Action {
    pub const ALL: [Action; 30] = [
        Action::ProvisionStart,
        Action::Provision,
        Action::SuspendStart,
        Action::Suspend,
        Action::ResumeStart,
        Action::Resume,
        Action::DeprovisionStart,
        Action::Deprovision,
        Action::RestoreStart,
        Action::Restore,
        Action::PurgeStart,
        Action::Purge,
        Action::SetTier,
        Action::QuotaSet,
        Action::QuotaReset,
        Action::FeaturesGrant,
        Action::FeaturesRevoke,
        Action::FeaturesReset,
        Action::FeaturesRefresh,
        Action::Credentials,
        Action::Adopt,
        Action::Backup,
        Action::RestoreBackup,
        Action::MoveStart,
        Action::Move,
        Action::ServerAdd,
        Action::ServerDrain,
        Action::ServerUndrain,
        Action::ServerRemove,
        Action::ServerSet,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Action::ProvisionStart => "provision.start",
            Action::Provision => "provision",
            Action::SuspendStart => "suspend.start",
            Action::Suspend => "suspend",
            Action::ResumeStart => "resume.start",
            Action::Resume => "resume",
            Action::DeprovisionStart => "deprovision.start",
            Action::Deprovision => "deprovision",
            Action::RestoreStart => "restore.start",
            Action::Restore => "restore",
            Action::PurgeStart => "purge.start",
            Action::Purge => "purge",
            Action::SetTier => "set-tier",
            Action::QuotaSet => "quota.set",
            Action::QuotaReset => "quota.reset",
            Action::FeaturesGrant => "features.grant",
            Action::FeaturesRevoke => "features.revoke",
            Action::FeaturesReset => "features.reset",
            Action::FeaturesRefresh => "features.refresh",
            Action::Credentials => "credentials",
            Action::Adopt => "adopt",
            Action::Backup => "backup",
            Action::RestoreBackup => "restore-backup",
            Action::MoveStart => "move.start",
            Action::Move => "move",
            Action::ServerAdd => "server.add",
            Action::ServerDrain => "server.drain",
            Action::ServerUndrain => "server.undrain",
            Action::ServerRemove => "server.remove",
            Action::ServerSet => "server.set",
        }
    }

    pub fn parse(s: &str) -> Option<Action> {
        Action::ALL.into_iter().find(|a| a.as_str() == s)
    }

    /// A lifecycle command that has started but may not have completed: billing takes the
    /// standing its completion writes, not its intermediate status. (`provision.start` starts
    /// the history, and `purge.start` ends billing at once: neither is one of these.)
    pub fn is_unfinished_command(self) -> bool {
        matches!(
            self,
            Action::SuspendStart
                | Action::ResumeStart
                | Action::DeprovisionStart
                | Action::RestoreStart
                | Action::MoveStart
        )
    }

    /// Its entry's details name the tenant's tier from then on.
    pub fn names_tier(self) -> bool {
        matches!(
            self,
            Action::ProvisionStart | Action::Provision | Action::SetTier
        )
    }

    /// The tenant is billable no more from then on.
    pub fn ends_billing(self) -> bool {
        self == Action::Purge
    }

    /// The actions a tenant's billing history needs although their entries may name no status
    /// they moved to.
    pub fn billed_without_status() -> Vec<Action> {
        Action::ALL
            .into_iter()
            .filter(|a| a.ends_billing() || *a == Action::SetTier)
            .collect()
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

crate::sql_text::text_sql!(Action, Action::parse);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_are_distinct() {
        let mut seen = std::collections::BTreeSet::new();
        for a in Action::ALL {
            assert_eq!(Action::parse(a.as_str()), Some(a));
            assert!(seen.insert(a.as_str()), "{a} twice");
        }
        assert_eq!(Action::parse("suspend.done"), None);
    }

    #[test]
    fn billing_meanings() {
        let unfinished: Vec<&str> = Action::ALL
            .into_iter()
            .filter(|a| a.is_unfinished_command())
            .map(Action::as_str)
            .collect();
        assert_eq!(
            unfinished,
            [
                "suspend.start",
                "resume.start",
                "deprovision.start",
                "restore.start",
                "move.start"
            ]
        );
        let without: Vec<&str> = Action::billed_without_status()
            .into_iter()
            .map(Action::as_str)
            .collect();
        assert_eq!(without, ["purge", "set-tier"]);
    }
}
