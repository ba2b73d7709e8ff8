//! `Feature`: the name of a feature entitlement (`api-access`), as tiers and tenants carry it.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::Failure;
use crate::excerpt::excerpt;

/// Longest feature name, in characters (all ASCII, so also bytes).
pub const MAX_LEN: usize = 40;

/// The rule, as errors and `--help` state it.
pub const RULE: &str =
    "a feature name is 1 to 40 characters of lowercase letters, digits, '-' and \
                        '_', starting with a letter, ending with a letter or digit, without two \
                        separators in a row";

/// A validated feature name: `^[a-z]([-_]?[a-z0-9])*$`, at most `MAX_LEN` characters. The same
/// rule is a CHECK constraint in the control database and in every tenant database.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Feature(String);

impl Feature {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Feature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn is_valid(s: &str) -> bool {
    let b = s.as_bytes();
    let sep = |c: u8| c == b'-' || c == b'_';
    !b.is_empty()
        && b.len() <= MAX_LEN
        && b[0].is_ascii_lowercase()
        && b.iter()
            .all(|&c| c.is_ascii_lowercase() || c.is_ascii_digit() || sep(c))
        && !sep(b[b.len() - 1])
        && !b.windows(2).any(|w| sep(w[0]) && sep(w[1]))
}

impl FromStr for Feature {
    type Err = Failure;

    fn from_str(s: &str) -> Result<Self, Failure> {
        if is_valid(s) {
            Ok(Feature(s.to_owned()))
        } else {
            Err(Failure::BadInput(format!(
                "invalid feature `{}`: {RULE}",
                excerpt(s)
            )))
        }
    }
}

impl TryFrom<String> for Feature {
    type Error = Failure;

    fn try_from(s: String) -> Result<Self, Failure> {
        s.parse()
    }
}

impl From<Feature> for String {
    fn from(f: Feature) -> String {
        f.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_lowercase_identifiers() {
        for ok in [
            "a",
            "sso",
            "api-access",
            "audit_export",
            "v2",
            "x-1-y",
            &"a".repeat(40),
        ] {
            assert_eq!(ok.parse::<Feature>().unwrap().as_str(), ok);
        }
    }

    #[test]
    fn refuses_everything_else() {
        for bad in [
            "",
            "Api",
            "1api",
            "-api",
            "_api",
            "api-",
            "api_",
            "api--access",
            "api-_access",
            "api access",
            "apí",
            "api.access",
            "a\nb",
            &"a".repeat(41),
        ] {
            let err = bad.parse::<Feature>().unwrap_err().to_string();
            assert!(err.starts_with("invalid feature `"), "{err}");
            assert!(!err.contains('\n'), "{err}");
        }
    }
}
