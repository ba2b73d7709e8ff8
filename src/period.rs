//! `Period`: a calendar month in UTC, the unit of metered usage and of billing; and the
//! parsing of the times users give (`--at`, the import's time column).

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Datelike, NaiveDate, NaiveTime, Utc};

/// The years the calendar code handles: periods and usage times outside them are bad input.
pub const FIRST_YEAR: i32 = 1970;
pub const LAST_YEAR: i32 = 9999;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Period {
    first: NaiveDate,
}

impl Period {
    /// The month that contains `at` (UTC).
    pub fn containing(at: DateTime<Utc>) -> Period {
        let d = at.date_naive();
        Period {
            first: NaiveDate::from_ymd_opt(d.year(), d.month(), 1).expect("day 1 exists"),
        }
    }

    /// Its first day, as stored in the `period` columns.
    pub fn first_day(self) -> NaiveDate {
        self.first
    }

    /// The month before (for `bill`'s default).
    pub fn previous(self) -> Period {
        let prev = self
            .first
            .pred_opt()
            .expect("dates before year 1 are not used");
        Period::containing(prev.and_time(NaiveTime::MIN).and_utc())
    }

    /// The first day of the month after.
    pub fn next_first_day(self) -> NaiveDate {
        let (y, m) = if self.first.month() == 12 {
            (self.first.year() + 1, 1)
        } else {
            (self.first.year(), self.first.month() + 1)
        };
        NaiveDate::from_ymd_opt(y, m, 1).expect("day 1 exists")
    }

    pub fn days(self) -> i64 {
        (self.next_first_day() - self.first).num_days()
    }
}

impl fmt::Display for Period {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}", self.first.year(), self.first.month())
    }
}

/// Stored as its first day (`date`); a date read back is the month that contains it.
impl tokio_postgres::types::ToSql for Period {
    fn to_sql(
        &self,
        ty: &tokio_postgres::types::Type,
        out: &mut bytes::BytesMut,
    ) -> Result<tokio_postgres::types::IsNull, Box<dyn std::error::Error + Sync + Send>> {
        self.first.to_sql(ty, out)
    }

    fn accepts(ty: &tokio_postgres::types::Type) -> bool {
        <NaiveDate as tokio_postgres::types::ToSql>::accepts(ty)
    }

    tokio_postgres::types::to_sql_checked!();
}

impl<'a> tokio_postgres::types::FromSql<'a> for Period {
    fn from_sql(
        ty: &tokio_postgres::types::Type,
        raw: &'a [u8],
    ) -> Result<Period, Box<dyn std::error::Error + Sync + Send>> {
        let d = NaiveDate::from_sql(ty, raw)?;
        Ok(Period::containing(d.and_time(NaiveTime::MIN).and_utc()))
    }

    fn accepts(ty: &tokio_postgres::types::Type) -> bool {
        <NaiveDate as tokio_postgres::types::FromSql>::accepts(ty)
    }
}

impl FromStr for Period {
    type Err = String;

    /// `YYYY-MM`.
    fn from_str(s: &str) -> Result<Period, String> {
        let err = || {
            format!(
                "invalid period `{}`: expected a month as YYYY-MM, such as 2026-11, in the years {FIRST_YEAR} to {LAST_YEAR}",
                crate::excerpt::excerpt(s)
            )
        };
        let (y, m) = s.split_once('-').ok_or_else(err)?;
        if y.len() != 4 || m.len() != 2 {
            return Err(err());
        }
        let (y, m): (i32, u32) = (y.parse().map_err(|_| err())?, m.parse().map_err(|_| err())?);
        let first = NaiveDate::from_ymd_opt(y, m, 1)
            .filter(|_| (FIRST_YEAR..=LAST_YEAR).contains(&y))
            .ok_or_else(err)?;
        Ok(Period { first })
    }
}

/// A time as users write it: RFC 3339 (`2026-11-05T10:00:00Z`, any offset) or a date
/// (`2026-11-05`, midnight UTC).
/// Years outside `FIRST_YEAR..=LAST_YEAR` are refused here, the same for every caller (PostgreSQL
/// has no year 0, so `0000-01-01` would otherwise fail later and differently).
pub fn parse_time(s: &str) -> Result<DateTime<Utc>, String> {
    let t = if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        t.with_timezone(&Utc)
    } else if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        d.and_time(NaiveTime::MIN).and_utc()
    } else {
        return Err(format!(
            "invalid time `{}`: expected RFC 3339 (2026-11-05T10:00:00Z) or a date (2026-11-05)",
            crate::excerpt::excerpt(s)
        ));
    };
    // As PostgreSQL stores it: whole microseconds (a finer fraction is dropped), and a leap
    // second (`23:59:60`) as the first moment of the next minute. The time a command checks,
    // and the period it files the time under, are then the ones the server keeps (a leap
    // second at the end of a month was stored in the next month but counted in its own).
    let t = DateTime::from_timestamp_micros(t.timestamp_micros()).unwrap_or(t);
    if !(FIRST_YEAR..=LAST_YEAR).contains(&t.year()) {
        return Err(format!(
            "invalid time `{}`: years {FIRST_YEAR} to {LAST_YEAR} only",
            crate::excerpt::excerpt(s)
        ));
    }
    Ok(t)
}

/// How far a usage time may lie before the tenant's creation or after now: clocks of the
/// systems that report usage disagree a little, never by more than this.
pub const USAGE_SKEW: chrono::TimeDelta = chrono::TimeDelta::minutes(5);

/// A usage time must lie within [created - USAGE_SKEW, now + USAGE_SKEW]; the error says why not.
pub fn check_usage_time(
    at: DateTime<Utc>,
    created: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<(), String> {
    if at < created - USAGE_SKEW {
        return Err(format!(
            "time {} is before the tenant was created ({}, 5 minutes of clock skew allowed)",
            at.to_rfc3339(),
            created.to_rfc3339()
        ));
    }
    if at > now + USAGE_SKEW {
        return Err(format!(
            "time {} is in the future (now {}, 5 minutes of clock skew allowed)",
            at.to_rfc3339(),
            now.to_rfc3339()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crosses_the_database_as_its_first_day() {
        use tokio_postgres::types::{FromSql, ToSql, Type};
        let p: Period = "2026-11".parse().unwrap();
        let mut buf = bytes::BytesMut::new();
        p.to_sql(&Type::DATE, &mut buf).unwrap();
        assert_eq!(Period::from_sql(&Type::DATE, &buf).unwrap(), p);
        assert_eq!(
            NaiveDate::from_sql(&Type::DATE, &buf).unwrap(),
            p.first_day()
        );
        assert!(!<Period as ToSql>::accepts(&Type::TEXT));
    }

    #[test]
    fn a_time_is_kept_as_the_server_keeps_it() {
        // A leap second is the next minute's first moment (as PostgreSQL stores it): its
        // period is the month it is stored in, not the month it ends.
        let leap = parse_time("2026-10-31T23:59:60Z").unwrap();
        assert_eq!(leap.to_rfc3339(), "2026-11-01T00:00:00+00:00");
        assert_eq!(Period::containing(leap).to_string(), "2026-11");
        // Finer than a microsecond: dropped, as the server would.
        let fine = parse_time("2026-11-05T10:00:00.1234569Z").unwrap();
        assert_eq!(fine.timestamp_subsec_nanos(), 123_456_000);
        assert_eq!(
            parse_time("2026-11-05T10:00:00+02:00")
                .unwrap()
                .to_rfc3339(),
            "2026-11-05T08:00:00+00:00"
        );
    }

    #[test]
    fn months() {
        let p: Period = "2026-02".parse().unwrap();
        assert_eq!(p.days(), 28);
        assert_eq!(p.previous().to_string(), "2026-01");
        assert_eq!(
            "2026-01".parse::<Period>().unwrap().previous().to_string(),
            "2025-12"
        );
        assert_eq!("2024-02".parse::<Period>().unwrap().days(), 29);
        for bad in ["2026-13", "2026-1", "26-01", "2026/01", "", "2026-00"] {
            assert!(bad.parse::<Period>().is_err(), "{bad}");
        }
    }

    #[test]
    fn times() {
        let t = parse_time("2026-11-30T23:30:00-02:00").unwrap();
        assert_eq!(Period::containing(t).to_string(), "2026-12");
        assert_eq!(
            parse_time("2026-11-05").unwrap().to_rfc3339(),
            "2026-11-05T00:00:00+00:00"
        );
        assert!(parse_time("yesterday").unwrap_err().contains("`yesterday`"));
        for bad in [
            "0000-01-01",
            "0000-01-01T00:00:00Z",
            "1969-12-31",
            "+10000-01-01",
        ] {
            assert!(parse_time(bad).is_err(), "{bad}");
        }
        assert!(parse_time("9999-12-31T23:59:59Z").is_ok());
        let e = "0999-01".parse::<Period>().unwrap_err();
        assert!(e.contains("1970 to 9999"), "{e}");
    }
}
