//! `Slug`: a tenant's key, its subdomain, and the root of every name derived from it.

use std::fmt;
use std::str::FromStr;

use crate::error::Failure;
use crate::excerpt::excerpt;

/// Words a tenant may not take: PostgreSQL's own databases and roles, names tenantctl uses for
/// shared objects (`pooled`, `app`, `owner` under the name prefix), and common service
/// subdomains.
pub const RESERVED: &[&str] = &[
    "postgres",
    "template0",
    "template1",
    "public",
    "none",
    "tenantctl",
    "pooled",
    "app",
    "owner",
    "admin",
    "root",
    "www",
    "api",
    "mail",
    "smtp",
    "ftp",
    "localhost",
    "status",
    "support",
    "docs",
];

/// A validated DNS label: `^[a-z][a-z0-9-]{1,38}[a-z0-9]$`, no `--`, not reserved.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Slug(String);

impl Slug {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl serde::Serialize for Slug {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl PartialEq<str> for Slug {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for Slug {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

impl fmt::Display for Slug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

// Rows hold slugs this or an earlier tenantctl validated on the way in: they are taken as
// stored, so that a word reserved later never makes an existing tenant unreadable.
crate::sql_text::text_sql!(Slug, |s| Some(Slug(s.to_owned())));

const RULE: &str = "a slug is a DNS label of 3 to 40 characters: lowercase letters, digits and \
                    '-', starting with a letter, ending with a letter or digit, without '--'";

impl FromStr for Slug {
    type Err = Failure;

    fn from_str(s: &str) -> Result<Self, Failure> {
        crate::label::check(s, "slug", 3..=40, RULE)?;
        if RESERVED.contains(&s) {
            return Err(Failure::BadInput(format!(
                "invalid slug `{}`: it is reserved (reserved: {})",
                excerpt(s),
                RESERVED.join(", ")
            )));
        }
        Ok(Slug(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_dns_labels() {
        for ok in [
            "acme",
            "a1b",
            "acme-corp",
            "x9-2",
            &format!("a{}", "b".repeat(39)),
        ] {
            assert_eq!(ok.parse::<Slug>().unwrap().as_str(), ok);
        }
    }

    #[test]
    fn refuses_everything_else() {
        let long = format!("a{}", "b".repeat(40));
        for bad in [
            "",
            "ab",
            "Acme",
            "1acme",
            "-acme",
            "acme-",
            "ac--me",
            "ac_me",
            "acmé",
            "ac me",
            &long,
            "postgres",
            "template1",
            "admin",
            "pooled",
        ] {
            let err = bad.parse::<Slug>().unwrap_err().to_string();
            assert!(err.contains(&format!("`{}`", excerpt(bad))), "{err}");
        }
    }
}
