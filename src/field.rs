//! The free text tenantctl stores — display names, owner emails and names, reasons, the actor,
//! idempotency keys — has a maximum length and no control characters, escape sequences, bidi
//! overrides or other invisible format characters (`excerpt::is_unsafe_char`): stored text is
//! later printed to terminals and read in audits, where such characters would hide or fake
//! what it says.

use crate::error::Failure;
use crate::excerpt::{excerpt, is_unsafe_char};

/// A tenant's display name (`--name`), in characters.
pub const NAME_MAX: usize = 200;
/// The owner's full name (`--owner-name`), in characters.
pub const OWNER_NAME_MAX: usize = 200;
/// The owner's email (`--owner-email`), in bytes (RFC 5321's path limit).
pub const EMAIL_MAX: usize = 254;
/// A `--reason` for the audit log, in characters.
pub const REASON_MAX: usize = 500;
/// The actor (`--actor`, `TENANTCTL_ACTOR`, the config file, `$USER`), in characters.
pub const ACTOR_MAX: usize = 100;
/// An idempotency key (`--key`, the import's key column), in characters.
pub const KEY_MAX: usize = 200;

/// What is wrong with `value` as stored text of at most `max_chars` characters, if anything.
pub fn problem(value: &str, max_chars: usize) -> Option<String> {
    let n = value.chars().count();
    if n == 0 {
        return Some("it is empty".to_owned());
    }
    if n > max_chars {
        return Some(format!("it has {n} characters, more than {max_chars}"));
    }
    value.chars().find(|c| is_unsafe_char(*c)).map(|c| {
        format!(
            "it contains `{}`, a control or invisible format character",
            c.escape_default()
        )
    })
}

/// Checks `value` as `what` (such as "--reason"); the error shows an excerpt and the rule.
pub fn check(what: &str, value: &str, max_chars: usize) -> Result<(), Failure> {
    match problem(value, max_chars) {
        None => Ok(()),
        Some(why) => Err(Failure::BadInput(format!(
            "invalid {what} `{}`: {why}; {}",
            excerpt(value),
            rule(max_chars)
        ))),
    }
}

/// The rule, for messages and help.
pub fn rule(max_chars: usize) -> String {
    format!(
        "1 to {max_chars} characters, without control characters, escape sequences or bidi/invisible format characters"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_printable_text() {
        assert!(check("--name", "Zoë & Co. (東京)", NAME_MAX).is_ok());
    }

    #[test]
    fn refuses_empty_long_and_unsafe_text_with_a_short_excerpt() {
        for (bad, needle) in [
            ("", "it is empty"),
            ("a\nb", "`\\n`"),
            ("\u{1b}[31mred", "`\\u{1b}`"),
            ("evil\u{202e}txt", "`\\u{202e}`"),
            ("zero\u{200b}width", "`\\u{200b}`"),
        ] {
            let e = check("--reason", bad, REASON_MAX).unwrap_err().to_string();
            assert!(e.contains(needle), "{e}");
            assert!(!e.contains('\n') && !e.contains('\u{1b}') && !e.contains('\u{202e}'));
        }
        let e = check("--key", &"k".repeat(1_000_000), KEY_MAX)
            .unwrap_err()
            .to_string();
        assert!(e.len() < 300, "{e}");
        assert!(e.contains("1000000 characters, more than 200"), "{e}");
    }
}
