//! Whole numbers given on the command line, range-checked by tenantctl rather than by clap: a
//! negative number reaches this check as a number (clap would take `-5` for a flag and say
//! "unexpected argument"), and every out-of-range value gets the same bad-input message.

use std::ops::RangeInclusive;

use crate::error::Failure;

/// `value` if it lies in `range`; else bad input naming `what`, the value and the range.
pub fn in_range(what: &str, value: i64, range: RangeInclusive<i64>) -> Result<i64, Failure> {
    if range.contains(&value) {
        return Ok(value);
    }
    let allowed = if *range.end() == i64::MAX {
        format!("{} or more", range.start())
    } else {
        format!("{} to {}", range.start(), range.end())
    };
    Err(Failure::BadInput(format!(
        "{what} {value} is out of range: {allowed}; nothing changed"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_value_and_the_range() {
        assert_eq!(in_range("limit", 5, 0..=10).unwrap(), 5);
        assert_eq!(in_range("limit", 0, 0..=10).unwrap(), 0);
        assert_eq!(
            in_range("limit", -5, 0..=10).unwrap_err().to_string(),
            "limit -5 is out of range: 0 to 10; nothing changed"
        );
        assert_eq!(
            in_range("invoice id", 0, 1..=i64::MAX)
                .unwrap_err()
                .to_string(),
            "invoice id 0 is out of range: 1 or more; nothing changed"
        );
    }
}
