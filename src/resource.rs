//! `Resource`: what a tier limits and a tenant uses, and its `Kind` (metered or measured).
//!
//! The `resources!` table below is the one definition of the resources: their names (serde,
//! clap, the database, messages), their order (display, `quota reset`) and their kind. Adding
//! a resource is one line here plus its fields in `tier::Limits` and `tier::Overage` (the
//! compiler then names every `match` that must learn it) and its limit in `tiers.toml`.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

use crate::error::Failure;
use crate::excerpt::excerpt;

/// How a resource's usage is known.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// Counted from `usage record` / `usage import` events, per calendar month (UTC).
    Metered,
    /// Measured from the data plane by `usage refresh` / `quota show`: a current level.
    Measured,
}

macro_rules! resources {
    ($($(#[$doc:meta])* $variant:ident = $name:literal, $kind:ident;)+) => {
        /// A resource every tier limits. Serialised (JSON, database, command line) as its name.
        #[derive(
            Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash,
            Serialize, serde::Deserialize, clap::ValueEnum,
        )]
        pub enum Resource {
            $($(#[$doc])* #[serde(rename = $name)] #[value(name = $name)] $variant,)+
        }

        impl Resource {
            /// Every resource, in display order.
            pub const ALL: &'static [Resource] = &[$(Resource::$variant),+];

            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Resource::$variant => $name,)+
                }
            }

            pub const fn kind(self) -> Kind {
                match self {
                    $(Resource::$variant => Kind::$kind,)+
                }
            }
        }
    };
}

resources! {
    /// The tenant's user rows.
    Users = "users", Measured;
    /// Its database (or share of the pooled one) plus its buckets, in whole MiB.
    StorageMb = "storage_mb", Measured;
    Sandboxes = "sandboxes", Metered;
    ComputeHours = "compute_hours", Metered;
    ApiRequests = "api_requests", Metered;
}

impl Resource {
    /// The resource of that exact name.
    pub fn parse(s: &str) -> Option<Resource> {
        Resource::ALL.iter().copied().find(|r| r.as_str() == s)
    }

    /// The metered resources, in display order.
    pub fn metered() -> impl Iterator<Item = Resource> {
        Resource::ALL
            .iter()
            .copied()
            .filter(|r| r.kind() == Kind::Metered)
    }

    /// The names of `resources`, joined for a message: `a, b, c`.
    pub fn list(resources: impl Iterator<Item = Resource>) -> String {
        resources
            .map(Resource::as_str)
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// A metered resource, or a bad-input error (measured ones are not recorded).
    pub fn check_metered(self) -> Result<Resource, Failure> {
        match self.kind() {
            Kind::Metered => Ok(self),
            Kind::Measured => Err(Failure::BadInput(format!(
                "resource `{self}` is measured, not metered: `tenantctl usage refresh` measures it; \
                 the metered resources are {}",
                Resource::list(Resource::metered())
            ))),
        }
    }
}

impl fmt::Display for Resource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Resource {
    type Err = Failure;

    /// A known resource, or a bad-input error naming the value and listing the resources.
    fn from_str(s: &str) -> Result<Resource, Failure> {
        Resource::parse(s).ok_or_else(|| {
            Failure::BadInput(format!(
                "unknown resource `{}`: the resources are {}",
                excerpt(s),
                Resource::list(Resource::ALL.iter().copied())
            ))
        })
    }
}

crate::sql_text::text_sql!(Resource, Resource::parse);

#[cfg(test)]
mod tests {
    use super::*;
    use clap::ValueEnum;

    #[test]
    fn names_kinds_and_order() {
        assert_eq!(
            Resource::list(Resource::ALL.iter().copied()),
            "users, storage_mb, sandboxes, compute_hours, api_requests"
        );
        assert_eq!(
            Resource::list(Resource::metered()),
            "sandboxes, compute_hours, api_requests"
        );
        assert_eq!(Resource::Users.kind(), Kind::Measured);
        assert_eq!(Resource::ApiRequests.kind(), Kind::Metered);
        for r in Resource::ALL {
            assert_eq!(r.as_str().parse::<Resource>().unwrap(), *r);
            assert_eq!(serde_json::to_value(r).unwrap(), r.as_str());
            let back: Resource = serde_json::from_value(r.as_str().into()).unwrap();
            assert_eq!(back, *r);
            let clap_name = r.to_possible_value().unwrap();
            assert_eq!(clap_name.get_name(), r.as_str());
        }
        assert_eq!(Resource::value_variants(), Resource::ALL);
    }

    #[test]
    fn crosses_the_database_as_its_name() {
        use tokio_postgres::types::{FromSql, ToSql, Type};
        let mut buf = bytes::BytesMut::new();
        Resource::StorageMb.to_sql(&Type::TEXT, &mut buf).unwrap();
        assert_eq!(&buf[..], b"storage_mb");
        assert_eq!(
            Resource::from_sql(&Type::TEXT, &buf).unwrap(),
            Resource::StorageMb
        );
        let e = Resource::from_sql(&Type::TEXT, b"seats").unwrap_err();
        assert_eq!(
            e.to_string(),
            "unknown Resource `seats` in the control database"
        );
        assert!(!<Resource as ToSql>::accepts(&Type::INT4));
    }

    #[test]
    fn bad_names_keep_their_messages() {
        let e = "seats".parse::<Resource>().unwrap_err().to_string();
        assert_eq!(e, "unknown resource `seats`: the resources are users, storage_mb, sandboxes, compute_hours, api_requests");
        assert!("API_REQUESTS".parse::<Resource>().is_err());
        let e = Resource::Users.check_metered().unwrap_err().to_string();
        assert_eq!(e, "resource `users` is measured, not metered: `tenantctl usage refresh` measures it; the metered resources are sandboxes, compute_hours, api_requests");
    }
}
