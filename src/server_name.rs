//! `ServerName`: the name a data-plane server is registered under (`server add <name>`), the
//! key every tenant's record points at.

use std::str::FromStr;

use crate::error::Failure;

/// The control database's own server, registered by control migration V17: the server every
/// tenant lived on before there was a fleet, and the only one that cannot be removed.
pub const CONTROL_SERVER: &str = "main";

/// A validated DNS-label-like name: `^[a-z][a-z0-9-]{0,38}[a-z0-9]$`, no `--` (2 to 40
/// characters, the slug's alphabet). The same rule is a CHECK on `servers.name`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServerName(String);

crate::label::name_type!(ServerName);

impl ServerName {
    /// The control database's own server.
    pub fn control() -> ServerName {
        ServerName(CONTROL_SERVER.to_owned())
    }

    pub fn is_control(&self) -> bool {
        self.0 == CONTROL_SERVER
    }
}

// Rows hold names validated on the way in (and by the table's CHECK).
crate::sql_text::text_sql!(ServerName, |s| Some(ServerName(s.to_owned())));

const RULE: &str = "a server name is 2 to 40 characters: lowercase letters, digits and '-', \
                    starting with a letter, ending with a letter or digit, without '--'";

impl FromStr for ServerName {
    type Err = Failure;

    fn from_str(s: &str) -> Result<Self, Failure> {
        crate::label::check(s, "server name", 2..=40, RULE)?;
        Ok(ServerName(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_labels_and_refuses_the_rest() {
        for ok in ["main", "db2", "eu-west-1", "ab", &"a".repeat(40)] {
            assert!(ok.parse::<ServerName>().is_ok(), "{ok}");
        }
        for bad in [
            "",
            "a",
            "Main",
            "1db",
            "db_2",
            "db-",
            "db--2",
            &"a".repeat(41),
            "dé",
        ] {
            assert!(bad.parse::<ServerName>().is_err(), "{bad}");
        }
        assert!(ServerName::control().is_control());
    }
}
