//! Words that read right, for people (messages and tables; never JSON): a count with its noun in the right number ("1 tenant", "2 tenants"),
//! a quantity of a resource ("1 sandbox"), and a time that says its zone.

use chrono::{DateTime, Utc};

/// `n` and the noun, singular for exactly one: `count(1, "tenant", "tenants")` is `1 tenant`.
pub fn count(n: impl Into<i128>, singular: &str, plural: &str) -> String {
    let n = n.into();
    format!("{n} {}", if n == 1 { singular } else { plural })
}

/// A count of a noun whose plural is the noun + `s`.
pub fn count_s(n: impl Into<i128>, singular: &str) -> String {
    count(n, singular, &format!("{singular}s"))
}

/// A `usize` count (lengths of lists), which `Into<i128>` does not take.
pub fn count_len(n: usize, singular: &str) -> String {
    count_s(n as u64, singular)
}

/// A quantity of a resource, as people say it: `1 sandbox`, `2 sandboxes`, `1 user`,
/// `1 api_request`. Resource names are plurals; `storage_mb` is a unit and stays as it is.
pub fn quantity(n: i64, resource: impl std::fmt::Display) -> String {
    let resource = resource.to_string();
    if n != 1 && n != -1 {
        return format!("{n} {resource}");
    }
    let one = if let Some(stem) = resource.strip_suffix("xes") {
        format!("{stem}x")
    } else if let Some(stem) = resource.strip_suffix('s') {
        stem.to_owned()
    } else {
        resource
    };
    format!("{n} {one}")
}

/// A time in a table cell, to the minute, with its zone.
pub fn minute(t: &DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

/// A time in a table cell, to the second, with its zone.
pub fn second(t: &DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_agree_with_their_noun() {
        assert_eq!(count_s(1u8, "tenant"), "1 tenant");
        assert_eq!(count_s(0u8, "tenant"), "0 tenants");
        assert_eq!(count_len(2, "row"), "2 rows");
        assert_eq!(count(1u8, "is", "are"), "1 is");
    }

    #[test]
    fn resources_read_singular_for_one() {
        assert_eq!(quantity(1, "sandboxes"), "1 sandbox");
        assert_eq!(quantity(2, "sandboxes"), "2 sandboxes");
        assert_eq!(quantity(1, "users"), "1 user");
        assert_eq!(quantity(1, "api_requests"), "1 api_request");
        assert_eq!(quantity(1, "compute_hours"), "1 compute_hour");
        assert_eq!(quantity(1, "storage_mb"), "1 storage_mb");
        assert_eq!(quantity(5, "storage_mb"), "5 storage_mb");
    }

    #[test]
    fn times_say_their_zone() {
        let t = "2026-11-05T09:07:03Z".parse::<DateTime<Utc>>().unwrap();
        assert_eq!(minute(&t), "2026-11-05 09:07 UTC");
        assert_eq!(second(&t), "2026-11-05 09:07:03 UTC");
    }
}
