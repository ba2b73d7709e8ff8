//! Quoting of identifiers (database and role names), which cannot be bound parameters.
//! Names reach here already validated by `Slug` and `Naming`; quoting is the second guard.

/// `"name"`, with embedded quotes doubled.
pub fn quote(name: &str) -> String {
    postgres_protocol::escape::escape_identifier(name)
}

#[cfg(test)]
mod tests {
    #[test]
    fn quotes_hostile_names() {
        assert_eq!(super::quote("tenant_acme-corp"), "\"tenant_acme-corp\"");
        assert_eq!(
            super::quote("x\"; DROP DATABASE y; --"),
            "\"x\"\"; DROP DATABASE y; --\""
        );
    }
}
