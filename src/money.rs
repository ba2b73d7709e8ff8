//! `Money`: exact amounts in millionths of the currency unit, so that per-unit prices such as
//! 0.0005 per API request stay exact. Never a float.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer};

/// Millionths per currency unit.
const SCALE: i64 = 1_000_000;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Money(i64);

impl Money {
    pub const fn from_micros(micros: i64) -> Self {
        Money(micros)
    }

    pub const fn micros(self) -> i64 {
        self.0
    }
}

impl FromStr for Money {
    type Err = String;

    /// Parses a non-negative decimal with at most six fractional digits: "499", "499.00",
    /// "0.0005".
    fn from_str(s: &str) -> Result<Self, String> {
        let err = || {
            format!(
                "`{}` is not an amount (a decimal such as \"499.00\", at most 6 decimals, not negative)",
                crate::excerpt::excerpt(s)
            )
        };
        let (whole, frac) = s.split_once('.').unwrap_or((s, ""));
        if whole.is_empty()
            || !whole.bytes().all(|b| b.is_ascii_digit())
            || !frac.bytes().all(|b| b.is_ascii_digit())
            || frac.len() > 6
            || (s.contains('.') && frac.is_empty())
        {
            return Err(err());
        }
        let whole: i64 = whole.parse().map_err(|_| err())?;
        let frac_value: i64 = format!("{frac:0<6}").parse().map_err(|_| err())?;
        whole
            .checked_mul(SCALE)
            .and_then(|w| w.checked_add(frac_value))
            .map(Money)
            .ok_or_else(err)
    }
}

impl fmt::Display for Money {
    /// Two decimals at least, more only where the amount has them: "499.00", "0.0005".
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let abs = self.0.unsigned_abs();
        let whole = abs / SCALE as u64;
        let mut frac = format!("{:06}", abs % SCALE as u64);
        while frac.len() > 2 && frac.ends_with('0') {
            frac.pop();
        }
        write!(f, "{sign}{whole}.{frac}")
    }
}

impl<'de> Deserialize<'de> for Money {
    /// Prices are written as strings ("499.00") so that TOML never rounds them through a float;
    /// whole numbers are accepted as integers too.
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Int(i64),
            Text(String),
            Float(f64),
        }
        match Raw::deserialize(d)? {
            Raw::Int(i) if i >= 0 => i
                .checked_mul(SCALE)
                .map(Money)
                .ok_or_else(|| serde::de::Error::custom(format!("`{i}` is too large"))),
            Raw::Int(i) => Err(serde::de::Error::custom(format!(
                "`{i}` is negative; an amount is 0 or more"
            ))),
            Raw::Text(s) => s.parse().map_err(serde::de::Error::custom),
            Raw::Float(x) => Err(serde::de::Error::custom(format!(
                "`{x}` is a float; write amounts as strings, such as \"{x:.2}\", so they stay exact"
            ))),
        }
    }
}

impl serde::Serialize for Money {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_exactly() {
        for (text, micros, shown) in [
            ("499.00", 499_000_000, "499.00"),
            ("499", 499_000_000, "499.00"),
            ("0.0005", 500, "0.0005"),
            ("4999.5", 4_999_500_000, "4999.50"),
            ("0", 0, "0.00"),
        ] {
            let m: Money = text.parse().unwrap();
            assert_eq!(m.micros(), micros);
            assert_eq!(m.to_string(), shown);
        }
    }

    #[test]
    fn refuses_non_amounts() {
        for bad in ["-1", "1.", ".5", "1.2345678", "abc", "1e3", "", "1,00"] {
            assert!(bad.parse::<Money>().is_err(), "{bad}");
        }
    }
}
