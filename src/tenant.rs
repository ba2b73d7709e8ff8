//! `Tenant`: a tenant as the control database records it, its status, and the names of the
//! PostgreSQL objects and buckets derived from its slug.

use std::fmt;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::error::Failure;
use crate::server_name::ServerName;
use crate::slug::Slug;
use crate::tier::Isolation;

/// `provisioning → active ⇄ suspended`, `active|suspended → deleted → active` (restore),
/// `deleting` while a purge runs, and `moving` while its data moves to another database
/// (`set-tier` across isolation models: closed for the copy, then back to where it was). Each lifecycle command first writes its own intermediate
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
    /// Its data is being copied to another database (`ops::moves`): closed to the tenant for
    /// the copy, as when suspended; `active` or `suspended` again once the move is done.
    Moving,
}

impl Status {
    pub const ALL: [Status; 10] = [
        Status::Provisioning,
        Status::Active,
        Status::Suspending,
        Status::Suspended,
        Status::Resuming,
        Status::Deprovisioning,
        Status::Deleted,
        Status::Restoring,
        Status::Deleting,
        Status::Moving,
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
            Status::Moving => "moving",
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
                | Status::Moving
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

crate::sql_text::text_sql!(Status, Status::parse);

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One row of `tenants`.
#[derive(Clone, Debug)]
pub struct Tenant {
    pub id: Uuid,
    pub slug: Slug,
    pub name: String,
    pub tier: String,
    pub isolation: Isolation,
    pub status: Status,
    /// The server the tenant's database is on (its silo, or the pooled database there).
    pub server: ServerName,
    pub database: String,
    pub role: String,
    pub owner_email: String,
    pub created_at: DateTime<Utc>,
    pub activated_at: Option<DateTime<Utc>>,
    /// Set while the tenant is softly deleted.
    pub deleted_at: Option<DateTime<Utc>>,
    /// Fixed when the tenant is deleted (`deleted_at` + the retention then): `restore` works
    /// until then, `purge --expired` removes it after.
    pub purge_after: Option<DateTime<Utc>>,
}

/// The bucket kinds every tenant gets, as `<slug>-<kind>`.
pub const BUCKET_KINDS: [&str; 3] = ["uploads", "assets", "backups"];

pub fn bucket_names(slug: &Slug) -> Vec<String> {
    BUCKET_KINDS.iter().map(|k| format!("{slug}-{k}")).collect()
}

/// Derives database and role names from slugs under one prefix, so that several control planes
/// (or parallel tests) can share a server.
///
/// No two names collide: a prefix ends with `_` and a slug has no `_`, so the prefix of a name
/// is everything up to its last `_` (`tenant_` + `acme` and `tenant_a` + `cme` cannot both be
/// made: `tenant_a` is no prefix). The shared names use the reserved slugs `pooled` and `app`,
/// and the control database may not start with the prefix (`Naming::check_foreign`).
#[derive(Clone, Debug)]
pub struct Naming {
    prefix: String,
}

pub const DEFAULT_PREFIX: &str = "tenant_";

impl Naming {
    /// A prefix is 2 to 20 characters of `[a-z0-9_]`, starting with a letter, ending with `_`,
    /// and not `pg_`: with a 40-character slug that stays under PostgreSQL's 63-byte limit.
    pub fn new(prefix: &str) -> Result<Naming, Failure> {
        let ok = (2..=20).contains(&prefix.len())
            && prefix.starts_with(|c: char| c.is_ascii_lowercase())
            && prefix.ends_with('_')
            && prefix
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
            && !prefix.starts_with("pg_");
        if !ok {
            return Err(Failure::BadInput(format!(
                "invalid name prefix `{}`: use 2 to 20 of a-z, 0-9 and '_', starting with a letter, ending with '_', not `pg_`",
                crate::excerpt::excerpt(prefix)
            )));
        }
        Ok(Naming {
            prefix: prefix.to_owned(),
        })
    }

    /// Refuses a name that is not tenantctl's but that this prefix could produce for a
    /// tenant (the control database, the admin role): every name starting with the prefix is
    /// one some slug or shared object may take.
    pub fn check_foreign(&self, what: &str, name: &str) -> Result<(), Failure> {
        if name.starts_with(&self.prefix) {
            return Err(Failure::BadInput(format!(
                "invalid {what} `{}`: it starts with the name prefix `{}`, which tenantctl keeps for tenant databases and roles; use another name or another prefix",
                crate::excerpt::excerpt(name),
                self.prefix
            )));
        }
        Ok(())
    }

    /// Refuses a control database no control plane should live in: PostgreSQL's templates
    /// (every tenant database is copied from `template1`, so the control schema would be copied
    /// into each, and `CREATE DATABASE` fails while tenantctl itself is connected to it;
    /// `template0` takes no connections), a name with control or invisible characters,
    /// which no message could show on one line, and one longer than the 63 bytes PostgreSQL
    /// keeps.
    pub fn check_control_database(name: &str) -> Result<(), Failure> {
        let why = if matches!(name, "template0" | "template1") {
            "PostgreSQL copies every new database (each siloed tenant's) from its templates"
        } else if name.chars().any(crate::excerpt::is_unsafe_char) {
            "it contains control or invisible characters"
        } else if name.is_empty() || name.len() > 63 {
            // PostgreSQL cuts a longer name silently: messages would name another database.
            "a database name is 1 to 63 bytes"
        } else {
            return Ok(());
        };
        Err(Failure::BadInput(format!(
            "invalid control database `{}`: {why}; name another database (`tenantctl` if none is named)",
            crate::excerpt::excerpt(name)
        )))
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

    /// The siloed tenants' template database: the tenant schema, migrated, that a new silo is
    /// copied from (`ops::template`). `template1` is a reserved slug (since the first
    /// release), so no tenant of any tenantctl has this name.
    pub fn template_database(&self) -> String {
        format!("{}template1", self.prefix)
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
        let n = Naming::new("abcdefghijklmnopqrs_").unwrap();
        let slug: Slug = format!("a{}", "b".repeat(39)).parse().unwrap();
        assert!(n.siloed(&slug).len() <= 63);
        assert_eq!(
            Naming::new(DEFAULT_PREFIX).unwrap().pooled_database(),
            "tenant_pooled"
        );
    }

    #[test]
    fn prefixes_are_checked() {
        for bad in [
            "",
            "_",
            "pg_x_",
            "Tenant_",
            "a-b_",
            "tenant",
            "tenant_a",
            "abcdefghijklmnopqrst_",
        ] {
            assert!(Naming::new(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn foreign_names_under_the_prefix_are_refused() {
        let n = Naming::new("tenant_").unwrap();
        assert!(n
            .check_foreign("control database", "tenant_control")
            .is_err());
        assert!(n.check_foreign("control database", "tenantctl").is_ok());
        assert!(Naming::new("a_b_").is_ok());
        for bad in [
            "template0",
            "template1",
            "ctl\nx",
            "ctl\u{1b}[31m",
            "c\u{202e}tl",
        ] {
            assert!(Naming::check_control_database(bad).is_err(), "{bad}");
        }
        assert!(Naming::check_control_database("tenantctl").is_ok());
        assert!(Naming::check_control_database("ctl space").is_ok());
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
