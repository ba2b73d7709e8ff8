//! `Region`: where a server of the fleet is (`server add … --region`, `server set … --region`),
//! and where `provision … --region` places a tenant. A tenant's region is its server's: it is
//! derived, never stored on the tenant (docs/decisions.md, "Regions").

use std::str::FromStr;

use crate::error::Failure;

/// A validated region name: `^[a-z][a-z0-9]*(-[a-z0-9]+)*$`, 2 to 32 characters (lowercase
/// letters, digits and '-', starting with a letter, ending with a letter or digit, no `--`):
/// the form cloud providers name regions in (`us-east-1`, `eu-west-2`, `europe-west1`,
/// `fra1`). Compared exactly: `us-east-1` and `us-east1` are two regions.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Region(String);

crate::label::name_type!(Region);

// Rows hold regions validated on the way in.
crate::sql_text::text_sql!(Region, |s| s.parse::<Region>().ok());

/// What `--region` allows, as error messages and `--help` say it.
pub const RULE: &str = "a region is 2 to 32 characters: lowercase letters, digits and '-', \
                        starting with a letter, ending with a letter or digit, without '--' \
                        (like us-east-1 or eu-west-2)";

impl FromStr for Region {
    type Err = Failure;

    fn from_str(s: &str) -> Result<Self, Failure> {
        crate::label::check(s, "region", 2..=32, RULE)?;
        Ok(Region(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_provider_regions_and_refuses_the_rest() {
        for ok in [
            "us-east-1",
            "eu-west-2",
            "europe-west1",
            "fra1",
            "ap",
            &"a".repeat(32),
        ] {
            assert!(ok.parse::<Region>().is_ok(), "{ok}");
        }
        for bad in [
            "",
            "u",
            "US-EAST-1",
            "1us",
            "us_east_1",
            "us east",
            "us-",
            "us--east",
            "-us",
            &"a".repeat(33),
            "é-1",
            "us-east-1\n",
        ] {
            let err = bad.parse::<Region>().unwrap_err();
            assert!(matches!(err, Failure::BadInput(_)), "{bad}");
        }
    }
}
