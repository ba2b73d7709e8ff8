//! `Tenant`: a tenant as the control database records it, its status, and the names of the
//! PostgreSQL objects and buckets derived from its slug.

use std::fmt;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::exit::Failure;
use crate::slug::Slug;
use crate::tier::Isolation;

/// `provisioning → active ⇄ suspended`, `active|suspended → deleted → active` (restore), and
/// `deleting` while a purge runs. Each lifecycle command first writes its own intermediate
/// status (`suspending`, `resuming`, `deprovisioning`, `restoring`), then changes the data
/// plane, then writes its final status. An intermediate status promises nothing about the data
/// plane (it may be open, closed or in between), so the status never claims more closure than
/// there is; both the interrupted command and its inverse accept it and converge.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Provisioning,
    Active,
    Suspending,
    Suspended,
    Resuming,
    Deprovisioning,
    Deleted,
    Restoring,
    Deleting,
}

impl Status {
    pub const ALL: [Status; 9] = [
        Status::Provisioning,
        Status::Active,
        Status::Suspending,
        Status::Suspended,
        Status::Resuming,
        Status::Deprovisioning,
        Status::Deleted,
        Status::Restoring,
        Status::Deleting,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Provisioning => "provisioning",
            Status::Active => "active",
            Status::Suspending => "suspending",
            Status::Suspended => "suspended",
            Status::Resuming => "resuming",
            Status::Deprovisioning => "deprovisioning",
            Status::Deleted => "deleted",
            Status::Restoring => "restoring",
            Status::Deleting => "deleting",
        }
    }

    /// A status a lifecycle command writes before it touches the data plane and replaces when
    /// it is done: the data plane may be anywhere between the two ends.
    pub fn is_intermediate(self) -> bool {
        matches!(
            self,
            Status::Provisioning
                | Status::Suspending
                | Status::Resuming
                | Status::Deprovisioning
                | Status::Restoring
                | Status::Deleting
        )
    }

    /// Statuses that promise a closed data plane: no login, no connection, no pooled rows.
    pub fn is_closed(self) -> bool {
        matches!(self, Status::Suspended | Status::Deleted)
    }

    pub fn parse(s: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|st| st.as_str() == s)
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One row of `tenants`.
#[derive(Clone, Debug)]
pub struct Tenant {
    pub id: Uuid,
    pub slug: String,
    pub name: String,
    pub tier: String,
    pub isolation: Isolation,
    pub status: Status,
    pub database: String,
    pub role: String,
    pub owner_email: String,
    pub created_at: DateTime<Utc>,
    pub activated_at: Option<DateTime<Utc>>,
    /// Set while the tenant is softly deleted; retention counts from it.
    pub deleted_at: Option<DateTime<Utc>>,
}

/// The bucket kinds every tenant gets, as `<slug>-<kind>`.
pub const BUCKET_KINDS: [&str; 3] = ["uploads", "assets", "backups"];

pub fn bucket_names(slug: &str) -> Vec<String> {
    BUCKET_KINDS.iter().map(|k| format!("{slug}-{k}")).collect()
}

/// Derives database and role names from slugs under one prefix, so that several control planes
/// (or parallel tests) can share a server. Slugs cannot be `pooled`, `app` or `owner`, so the
/// shared names never collide with a tenant's.
#[derive(Clone, Debug)]
pub struct Naming {
    prefix: String,
}

pub const DEFAULT_PREFIX: &str = "tenant_";

impl Naming {
    /// A prefix is 1 to 20 characters of `[a-z0-9_]` starting with a letter, and not `pg_`:
    /// with a 40-character slug that stays under PostgreSQL's 63-byte identifier limit.
    pub fn new(prefix: &str) -> Result<Naming, Failure> {
        let ok = (1..=20).contains(&prefix.len())
            && prefix.starts_with(|c: char| c.is_ascii_lowercase())
            && prefix
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
            && !prefix.starts_with("pg_");
        if !ok {
            return Err(Failure::BadInput(format!(
                "invalid name prefix `{}`: use 1 to 20 of a-z, 0-9 and '_', starting with a letter, not `pg_`",
                crate::excerpt::excerpt(prefix)
            )));
        }
        Ok(Naming {
            prefix: prefix.to_owned(),
        })
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// A siloed tenant's database, and its login role (same name, separate namespaces).
    pub fn siloed(&self, slug: &Slug) -> String {
        format!("{}{}", self.prefix, slug)
    }

    /// The shared database of the pooled tiers.
    pub fn pooled_database(&self) -> String {
        format!("{}pooled", self.prefix)
    }

    /// The login role pooled applications connect as: no superuser, no BYPASSRLS.
    pub fn pooled_app_role(&self) -> String {
        format!("{}app", self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_stay_within_postgres_limits() {
        let n = Naming::new("abcdefghijklmnopqrst").unwrap();
        let slug: Slug = format!("a{}", "b".repeat(39)).parse().unwrap();
        assert!(n.siloed(&slug).len() <= 63);
        assert_eq!(
            Naming::new(DEFAULT_PREFIX).unwrap().pooled_database(),
            "tenant_pooled"
        );
    }

    #[test]
    fn prefixes_are_checked() {
        for bad in ["", "pg_x", "Tenant", "a-b", "abcdefghijklmnopqrstu"] {
            assert!(Naming::new(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn status_round_trips() {
        for s in Status::ALL {
            assert_eq!(Status::parse(s.as_str()), Some(s));
            // Every status is either a promise of closure, open (active), or in between.
            assert!(
                s.is_closed() as u8 + s.is_intermediate() as u8 + (s == Status::Active) as u8 == 1
            );
        }
        assert!(Status::parse("gone").is_none());
    }
}
