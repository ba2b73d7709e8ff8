//! `Event` and `Hooks`: the lifecycle events an operator may hook commands to (`[hooks]` in
//! `tenantctl.toml`), checked strictly when the settings are resolved. `ops::hooks` runs them.
//!
//! Each hook is one string run with `/bin/sh -c`, so that a pipeline (`kubectl create … -o yaml
//! | kubectl apply -f -`) is one hook. tenantctl never puts a value into the string: the tenant
//! reaches the hook only through its stdin (the tenant's JSON) and `TENANTCTL_*` variables.

use std::fmt;
use std::time::Duration;

use serde::Deserialize;

use crate::error::Failure;
use crate::excerpt::{excerpt, is_unsafe_char};

/// The time a hook may take unless `hooks.timeout` says otherwise.
pub const DEFAULT_TIMEOUT_SECS: u64 = 60;
/// The longest `hooks.timeout` allowed (an hour).
pub const MAX_TIMEOUT_SECS: u64 = 3600;
/// Hooks per event, and bytes per hook: a configuration, not a script.
pub const MAX_HOOKS: usize = 20;
pub const MAX_COMMAND_BYTES: usize = 4096;

/// A lifecycle event with hooks: after each command's change, before a purge's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Event {
    Provision,
    Suspend,
    Resume,
    Deprovision,
    Restore,
    Purge,
}

impl Event {
    pub const ALL: [Event; 6] = [
        Event::Provision,
        Event::Suspend,
        Event::Resume,
        Event::Deprovision,
        Event::Restore,
        Event::Purge,
    ];

    /// The stored name (`hook_runs.event`) and `TENANTCTL_EVENT`: the command's name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Event::Provision => "provision",
            Event::Suspend => "suspend",
            Event::Resume => "resume",
            Event::Deprovision => "deprovision",
            Event::Restore => "restore",
            Event::Purge => "purge",
        }
    }

    /// Its key under `[hooks]`: every event's hooks run after it, but a purge's before it.
    pub const fn key(self) -> &'static str {
        match self {
            Event::Provision => "after_provision",
            Event::Suspend => "after_suspend",
            Event::Resume => "after_resume",
            Event::Deprovision => "after_deprovision",
            Event::Restore => "after_restore",
            Event::Purge => "before_purge",
        }
    }

    pub fn parse(s: &str) -> Option<Event> {
        Event::ALL.into_iter().find(|e| e.as_str() == s)
    }
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

crate::sql_text::text_sql!(Event, Event::parse);

/// `[hooks]` as written in the config file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HooksFile {
    timeout: Option<i64>,
    #[serde(default)]
    after_provision: Vec<String>,
    #[serde(default)]
    after_suspend: Vec<String>,
    #[serde(default)]
    after_resume: Vec<String>,
    #[serde(default)]
    after_deprovision: Vec<String>,
    #[serde(default)]
    after_restore: Vec<String>,
    #[serde(default)]
    before_purge: Vec<String>,
}

/// The hooks configured, checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hooks {
    pub timeout: Duration,
    commands: Vec<(Event, Vec<String>)>,
}

impl Default for Hooks {
    fn default() -> Hooks {
        Hooks {
            timeout: Duration::from_secs(DEFAULT_TIMEOUT_SECS),
            commands: Vec::new(),
        }
    }
}

impl Hooks {
    /// Checks `[hooks]`: a bad value is a `BadInput` naming its key (`hooks.timeout`,
    /// `hooks.after_provision[2]`), an excerpt of the value and what is allowed.
    pub fn from_file(file: HooksFile) -> Result<Hooks, Failure> {
        let timeout = match file.timeout {
            None => DEFAULT_TIMEOUT_SECS,
            Some(t) if (1..=MAX_TIMEOUT_SECS as i64).contains(&t) => t as u64,
            Some(t) => {
                return Err(Failure::BadInput(format!(
                    "invalid hooks.timeout `{t}` in the config file: a whole number of seconds from 1 to {MAX_TIMEOUT_SECS}"
                )))
            }
        };
        let mut commands = Vec::new();
        for (event, list) in [
            (Event::Provision, file.after_provision),
            (Event::Suspend, file.after_suspend),
            (Event::Resume, file.after_resume),
            (Event::Deprovision, file.after_deprovision),
            (Event::Restore, file.after_restore),
            (Event::Purge, file.before_purge),
        ] {
            if list.len() > MAX_HOOKS {
                return Err(Failure::BadInput(format!(
                    "invalid hooks.{} in the config file: {} hooks, at most {MAX_HOOKS}",
                    event.key(),
                    list.len()
                )));
            }
            for (i, cmd) in list.iter().enumerate() {
                check_command(event, i + 1, cmd)?;
            }
            if !list.is_empty() {
                commands.push((event, list));
            }
        }
        Ok(Hooks {
            timeout: Duration::from_secs(timeout),
            commands,
        })
    }

    /// The commands of `event`, in the order they run (position 1 first).
    pub fn of(&self, event: Event) -> &[String] {
        self.commands
            .iter()
            .find(|(e, _)| *e == event)
            .map(|(_, c)| c.as_slice())
            .unwrap_or(&[])
    }
}

fn check_command(event: Event, position: usize, cmd: &str) -> Result<(), Failure> {
    let bad = |why: &str| {
        Failure::BadInput(format!(
            "invalid hooks.{}[{position}] `{}` in the config file: {why}",
            event.key(),
            excerpt(cmd)
        ))
    };
    if cmd.trim().is_empty() {
        return Err(bad("a command for /bin/sh -c, not empty"));
    }
    if cmd.len() > MAX_COMMAND_BYTES {
        return Err(bad(&format!("at most {MAX_COMMAND_BYTES} bytes")));
    }
    // A NUL cannot reach a process; other controls (tabs, newlines) are shell syntax.
    if cmd.contains('\0')
        || cmd
            .chars()
            .any(|c| is_unsafe_char(c) && !"\t\n".contains(c))
    {
        return Err(bad(
            "a command for /bin/sh -c without control characters other than tab and newline",
        ));
    }
    Ok(())
}

/// How a hook is named in messages: its key, its position from 1 and an excerpt of its command.
pub fn label(event: Event, position: usize, command: &str) -> String {
    format!("{}[{position}] `{}`", event.key(), excerpt(command))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Hooks, String> {
        let file: HooksFile = toml::from_str(text).map_err(|e| e.to_string())?;
        Hooks::from_file(file).map_err(|e| e.to_string())
    }

    #[test]
    fn events_have_stable_names_and_keys() {
        for e in Event::ALL {
            assert_eq!(Event::parse(e.as_str()), Some(e));
            assert!(e.key().ends_with(e.as_str()), "{e}");
        }
    }

    #[test]
    fn hooks_parse_in_order_with_a_default_timeout() {
        let h = parse("after_provision = ['a', 'b | c']\nbefore_purge = ['d']").unwrap();
        assert_eq!(h.timeout, Duration::from_secs(DEFAULT_TIMEOUT_SECS));
        assert_eq!(h.of(Event::Provision), ["a", "b | c"]);
        assert_eq!(h.of(Event::Purge), ["d"]);
        assert!(h.of(Event::Suspend).is_empty());
        assert_eq!(
            parse("timeout = 5").unwrap().timeout,
            Duration::from_secs(5)
        );
    }

    #[test]
    fn bad_values_name_their_key() {
        for (text, key) in [
            ("timeout = 0", "hooks.timeout"),
            ("timeout = 3601", "hooks.timeout"),
            ("after_suspend = ['ok', '  ']", "hooks.after_suspend[2]"),
            ("after_resume = [\"a\\u001b[31m\"]", "hooks.after_resume[1]"),
        ] {
            let e = parse(text).unwrap_err();
            assert!(e.contains(key), "{text}: {e}");
        }
        assert!(parse("after_provison = ['x']")
            .unwrap_err()
            .contains("after_provison"));
        assert!(parse("after_provision = 'x'").is_err());
    }
}
