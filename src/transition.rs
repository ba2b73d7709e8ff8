//! `Transition`: the one table of the moves a tenant's status may make, each with the audit
//! action that records it. `ops::lifecycle` and `ops::provision` consult it; nothing else says
//! which status may go where.
//!
//! A lifecycle command first writes its intermediate status (`suspending`, `resuming`,
//! `deprovisioning`, `restoring`, `deleting`; action `<command>.start`), then changes the data
//! plane, then writes its final status (action `<command>`). Each `.start` move is taken from
//! the command's own intermediate status and its inverse's as well (suspend ⇄ resume,
//! deprovision ⇄ restore), so that either finishes an interrupted run. A move of the tenant's
//! data (`set-tier` across isolation models) is its own inverse: `moving` is taken by the same
//! command going on, or (before its switch) going back, and it ends where it started from.

use crate::action::Action;
use crate::tenant::Status;

use Status::*;

/// A move from any of `from` to `to`, audited as `action`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transition {
    pub from: &'static [Status],
    pub to: Status,
    pub action: Action,
}

const fn mv(from: &'static [Status], to: Status, action: Action) -> Transition {
    Transition { from, to, action }
}

/// Every allowed move. The end of a purge is no move: the tenant's row is deleted (audited as
/// `purge`, from `deleting`).
pub const TRANSITIONS: &[Transition] = &[
    // provision: recording a new tenant has no status to start from.
    mv(&[], Provisioning, Action::ProvisionStart),
    mv(&[Provisioning], Active, Action::Provision),
    // suspend ⇄ resume
    mv(
        &[Active, Suspending, Resuming],
        Suspending,
        Action::SuspendStart,
    ),
    mv(&[Suspending], Suspended, Action::Suspend),
    mv(
        &[Suspended, Resuming, Suspending],
        Resuming,
        Action::ResumeStart,
    ),
    mv(&[Resuming], Active, Action::Resume),
    // deprovision ⇄ restore
    mv(
        &[
            Provisioning,
            Active,
            Suspended,
            Suspending,
            Resuming,
            Deprovisioning,
            Restoring,
        ],
        Deprovisioning,
        Action::DeprovisionStart,
    ),
    mv(&[Deprovisioning], Deleted, Action::Deprovision),
    mv(
        &[Deleted, Restoring, Deprovisioning],
        Restoring,
        Action::RestoreStart,
    ),
    mv(&[Restoring], Active, Action::Restore),
    // A tenant deprovisioned before it was ever activated goes back to be provisioned.
    mv(&[Restoring], Provisioning, Action::Restore),
    // purge removes everything, from anywhere.
    mv(&Status::ALL, Deleting, Action::PurgeStart),
    // set-tier changes no status; across isolation models its switch happens while moving.
    mv(&[Active], Active, Action::SetTier),
    mv(&[Suspended], Suspended, Action::SetTier),
    mv(&[Moving], Moving, Action::SetTier),
    // A move of the tenant's data: `moving`, then back to the status it started from.
    mv(&[Active, Suspended, Moving], Moving, Action::MoveStart),
    mv(&[Moving], Active, Action::Move),
    mv(&[Moving], Suspended, Action::Move),
];

impl Transition {
    /// The statuses `action` may start from.
    pub fn sources(action: Action) -> Vec<Status> {
        let mut out: Vec<Status> = Vec::new();
        for t in TRANSITIONS.iter().filter(|t| t.action == action) {
            for s in t.from {
                if !out.contains(s) {
                    out.push(*s);
                }
            }
        }
        out
    }

    /// Where `action` takes a tenant that is `from`, if it may: the first listed move.
    pub fn target(action: Action, from: Status) -> Option<Status> {
        TRANSITIONS
            .iter()
            .find(|t| t.action == action && t.from.contains(&from))
            .map(|t| t.to)
    }

    /// Whether `action` may move a tenant from `from` to `to`.
    pub fn allows(action: Action, from: Status, to: Status) -> bool {
        TRANSITIONS
            .iter()
            .any(|t| t.action == action && t.to == to && t.from.contains(&from))
    }

    /// The status `action` writes (its first move's target).
    pub fn via(action: Action) -> Status {
        TRANSITIONS
            .iter()
            .find(|t| t.action == action)
            .map(|t| t.to)
            .unwrap_or_else(|| panic!("no transition is audited as {action}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The commands as (start, finish, inverse's start).
    const COMMANDS: [(Action, Action, Action); 5] = [
        (Action::SuspendStart, Action::Suspend, Action::ResumeStart),
        (Action::ResumeStart, Action::Resume, Action::SuspendStart),
        (
            Action::DeprovisionStart,
            Action::Deprovision,
            Action::RestoreStart,
        ),
        (
            Action::RestoreStart,
            Action::Restore,
            Action::DeprovisionStart,
        ),
        (Action::MoveStart, Action::Move, Action::MoveStart),
    ];

    /// An interrupted command leaves its intermediate status: the command and its inverse
    /// both take it, and its finishing move starts from it.
    #[test]
    fn every_intermediate_status_is_taken_by_its_command_and_its_inverse() {
        for (start, finish, inverse) in COMMANDS {
            let via = Transition::via(start);
            assert!(via.is_intermediate(), "{start}");
            assert!(Transition::sources(start).contains(&via), "{start}");
            assert!(Transition::sources(inverse).contains(&via), "{inverse}");
            assert_eq!(Transition::sources(finish), [via], "{finish}");
        }
        assert!(!Transition::sources(Action::DeprovisionStart).contains(&Deleting));
        assert_eq!(Transition::sources(Action::PurgeStart), Status::ALL);
        assert_eq!(Transition::via(Action::PurgeStart), Deleting);
    }

    /// No move makes the status claim more closure than the data plane has: a closed status is
    /// reached only by a finishing move, from the intermediate status that closed it.
    #[test]
    fn closed_statuses_are_reached_only_from_intermediate_ones() {
        for t in TRANSITIONS {
            if t.to.is_closed() && !t.from.contains(&t.to) {
                assert!(t.from.iter().all(|s| s.is_intermediate()), "{t:?}");
            }
        }
    }

    #[test]
    fn single_moves() {
        assert!(Transition::allows(Action::Restore, Restoring, Provisioning));
        assert!(Transition::allows(Action::Restore, Restoring, Active));
        assert!(!Transition::allows(Action::Restore, Deleted, Active));
        assert_eq!(
            Transition::target(Action::SetTier, Suspended),
            Some(Suspended)
        );
        assert_eq!(Transition::target(Action::SetTier, Deleted), None);
        assert_eq!(Transition::target(Action::SetTier, Moving), Some(Moving));
        assert!(Transition::allows(Action::Move, Moving, Suspended));
        assert!(Transition::allows(Action::Move, Moving, Active));
        assert!(!Transition::allows(Action::MoveStart, Deleted, Moving));
        assert_eq!(
            Transition::target(Action::Provision, Provisioning),
            Some(Active)
        );
    }
}
