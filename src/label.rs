//! The DNS-label rule that slugs and the fleet's names share (`Slug`, `ServerName`, `Region`):
//! lowercase letters, digits and '-', starting with a letter, ending with a letter or digit,
//! without `--`, within a length range (in characters). One check, so the three refuse the
//! same way.

use std::ops::RangeInclusive;

use crate::error::Failure;
use crate::excerpt::excerpt;

/// `s` as a name of that rule, or bad input: "invalid {what} `{s}`: {why}; {rule}".
pub(crate) fn check(
    s: &str,
    what: &str,
    length: RangeInclusive<usize>,
    rule: &str,
) -> Result<(), Failure> {
    let bad =
        |why: &str| Failure::BadInput(format!("invalid {what} `{}`: {why}; {rule}", excerpt(s)));
    debug_assert!(*length.start() >= 1);
    let n = s.chars().count();
    if !length.contains(&n) {
        return Err(bad(&format!("it has {n} characters")));
    }
    if !s.as_bytes()[0].is_ascii_lowercase() {
        return Err(bad("it does not start with a lowercase letter"));
    }
    if let Some(c) = s
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
    {
        return Err(bad(&format!(
            "`{}` is not allowed",
            excerpt(&c.to_string())
        )));
    }
    if s.ends_with('-') {
        return Err(bad("it ends with '-'"));
    }
    if s.contains("--") {
        return Err(bad("it contains '--'"));
    }
    Ok(())
}

/// `as_str`, `Display` and `Serialize` (as the plain string) of a validated name type
/// `$t(String)`.
macro_rules! name_type {
    ($t:ident) => {
        impl $t {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl serde::Serialize for $t {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        impl std::fmt::Display for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}
pub(crate) use name_type;
