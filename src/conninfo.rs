//! libpq connection strings, parsed by us: URLs (`postgres://user:pw@host:port/db?k=v`) and
//! `key=value` lists (values single-quoted with `\'` and `\\` escapes, spaces around `=`), as
//! libpq reads them. tokio-postgres's own parser neither knows `sslrootcert`, `sslcert`,
//! `sslkey` nor `verify-ca`/`verify-full`, so the string becomes a `ConnParams` here and
//! `db::Server` builds the driver's config and the TLS connector from it.
//!
//! No message made here ever contains a password: a bad value is shown (escaped, short) only
//! for keys that are not `password`, and `ConnParams::shown` never includes it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::Failure;
use crate::excerpt::excerpt;

/// libpq's `sslmode`, all five of the values this tool supports (`allow` is not).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SslMode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    pub fn parse(v: &str) -> Result<SslMode, Failure> {
        Ok(match v {
            "disable" => SslMode::Disable,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            _ => {
                return Err(Failure::BadInput(format!(
                    "invalid sslmode `{}`: disable, prefer, require, verify-ca or verify-full",
                    excerpt(v)
                )))
            }
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }
}

/// The keys tenantctl accepts, libpq's names. Anything else is bad input (libpq refuses
/// unknown keys too).
const KEYS: &[&str] = &[
    "host",
    "hostaddr",
    "port",
    "user",
    "password",
    "dbname",
    "sslmode",
    "sslrootcert",
    "sslcert",
    "sslkey",
    "connect_timeout",
    "application_name",
    "options",
    "keepalives",
    "keepalives_idle",
    "passfile",
];

/// The raw key/value pairs of one connection string (last one of a key wins, as in libpq).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Pairs(pub BTreeMap<String, String>);

impl Pairs {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    /// Fills `key` only when the string did not set it (environment variables, `.pgpass`).
    pub fn fill(&mut self, key: &str, value: Option<String>) {
        if let Some(v) = value {
            self.0.entry(key.to_owned()).or_insert(v);
        }
    }
}

/// The pairs as a `key='value'` string libpq reads back (quotes and backslashes escaped), in
/// key order: how a registered server's URL is stored.
pub fn to_keywords(pairs: &Pairs) -> String {
    pairs
        .0
        .iter()
        .map(|(k, v)| format!("{k}='{}'", v.replace('\\', "\\\\").replace('\'', "\\'")))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Parses either form. An empty string is an empty set of pairs.
pub fn parse(s: &str) -> Result<Pairs, Failure> {
    let t = s.trim();
    let pairs = if let Some(rest) = t
        .strip_prefix("postgresql://")
        .or_else(|| t.strip_prefix("postgres://"))
    {
        parse_url(rest)?
    } else if t.contains("://") {
        return Err(Failure::BadInput(
            "invalid database URL: the scheme must be postgres:// or postgresql://".to_owned(),
        ));
    } else {
        parse_keywords(t)?
    };
    for key in pairs.0.keys() {
        if !KEYS.contains(&key.as_str()) {
            return Err(Failure::BadInput(format!(
                "invalid connection option `{}`: known are {}",
                excerpt(key),
                KEYS.join(", ")
            )));
        }
    }
    Ok(pairs)
}

fn bad(what: &str) -> Failure {
    Failure::BadInput(format!(
        "invalid connection string: {what}; expected postgres://USER@HOST:PORT/DB?sslmode=... or `host=... dbname=...`"
    ))
}

/// `key = value` pairs separated by whitespace; a value is either single-quoted (with `\'`
/// and `\\`) or runs to the next whitespace (backslash escapes the next character).
fn parse_keywords(s: &str) -> Result<Pairs, Failure> {
    let mut out = BTreeMap::new();
    let mut chars = s.chars().peekable();
    // Set after a password: what follows it may be the rest of a password with a space
    // (`password=s3 cret`) or a quote (`password='it''s'`), so a word there that is no known
    // key is never quoted.
    let mut after_password = false;
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.peek().is_none() {
            break;
        }
        let mut key = String::new();
        while let Some(c) = chars.next_if(|c| *c != '=' && !c.is_whitespace()) {
            key.push(c);
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let has_value = chars.next() == Some('=');
        if after_password && !(has_value && KEYS.contains(&key.as_str())) {
            return Err(bad(
                "something that is no `key=value` follows the password (a space or a quote in it?); quote it as password='...', with \\' for a quote",
            ));
        }
        if !has_value {
            return Err(bad(&format!("missing `=` after `{}`", excerpt(&key))));
        }
        after_password = key == "password";
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let mut value = String::new();
        if chars.next_if_eq(&'\'').is_some() {
            loop {
                match chars.next() {
                    None => {
                        return Err(bad(&format!(
                            "unterminated quoted value of `{}`",
                            excerpt(&key)
                        )))
                    }
                    Some('\'') => break,
                    Some('\\') => match chars.next() {
                        Some(c) => value.push(c),
                        None => {
                            return Err(bad(&format!(
                                "unterminated quoted value of `{}`",
                                excerpt(&key)
                            )))
                        }
                    },
                    Some(c) => value.push(c),
                }
            }
        } else {
            while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
                if c == '\\' {
                    if let Some(n) = chars.next() {
                        value.push(n);
                    }
                } else {
                    value.push(c);
                }
            }
        }
        if key.is_empty() {
            return Err(bad("a value without a key"));
        }
        out.insert(key, value);
    }
    Ok(Pairs(out))
}

fn percent_decode(s: &str, key: &str) -> Result<String, Failure> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| bad(&format!("invalid percent-encoding in the {key}")))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| bad(&format!("the {key} is not UTF-8")))
}

/// `[user[:password]@][host[:port][,...]][/dbname][?k=v&...]`, after the scheme.
fn parse_url(rest: &str) -> Result<Pairs, Failure> {
    // An `@` after the first `/` or `?` is almost always a password with an unencoded `/` or `?`
    // (`postgres://admin:Xy7/Qm3k@db.example/tenantctl`): split there, pieces of the password
    // would become a port, a database name or a parameter, and be shown in the error or in the
    // server's description. Refused, quoting nothing.
    if let (Some(at), Some(cut)) = (rest.rfind('@'), rest.find(['/', '?'])) {
        if at > cut {
            return Err(bad(
                "an `@` after the host part (a password or user name with `/` or `?` in it?); percent-encode `/`, `?`, `#` and `@` in them as %2F, %3F, %23 and %40",
            ));
        }
    }
    let mut out = BTreeMap::new();
    let (main, query) = match rest.split_once('?') {
        Some((m, q)) => (m, Some(q)),
        None => (rest, None),
    };
    let (authority, path) = match main.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (main, None),
    };
    let hostport = match authority.rsplit_once('@') {
        Some((userinfo, hp)) => {
            let (user, password) = match userinfo.split_once(':') {
                Some((u, p)) => (u, Some(p)),
                None => (userinfo, None),
            };
            if !user.is_empty() {
                out.insert("user".to_owned(), percent_decode(user, "user name")?);
            }
            if let Some(p) = password {
                out.insert("password".to_owned(), percent_decode(p, "password")?);
            }
            hp
        }
        None => authority,
    };
    // `postgres://admin:s3cret/db` (the `@host` forgotten) reads as host `admin`, port
    // `s3cret`: a port that is no number, with no user part, is refused without quoting it.
    if !authority.contains('@') {
        let ports = hostport
            .split(',')
            .filter_map(|part| match part.strip_prefix('[') {
                Some(v6) => v6.split_once(']').and_then(|(_, a)| a.strip_prefix(':')),
                None => part.rsplit_once(':').map(|(_, p)| p),
            });
        for port in ports {
            if !port.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad(
                    "a port that is no number (a `user:password` without `@host`?)",
                ));
            }
        }
    }
    if !hostport.is_empty() {
        let mut hosts = Vec::new();
        let mut ports = Vec::new();
        for part in hostport.split(',') {
            let (host, port) = if let Some(v6) = part.strip_prefix('[') {
                let (h, after) = v6
                    .split_once(']')
                    .ok_or_else(|| bad("an IPv6 address without its closing `]`"))?;
                (h, after.strip_prefix(':'))
            } else {
                match part.rsplit_once(':') {
                    Some((h, p)) => (h, Some(p)),
                    None => (part, None),
                }
            };
            hosts.push(percent_decode(host, "host")?);
            ports.push(port.unwrap_or("").to_owned());
        }
        if hosts.iter().any(|h| !h.is_empty()) {
            out.insert("host".to_owned(), hosts.join(","));
        }
        if ports.iter().any(|p| !p.is_empty()) {
            out.insert("port".to_owned(), ports.join(","));
        }
    }
    if let Some(p) = path.filter(|p| !p.is_empty()) {
        out.insert("dbname".to_owned(), percent_decode(p, "database name")?);
    }
    // Set after the password parameter: what follows may be the rest of a password with an
    // unencoded `&`, so it is never quoted unless it is a known `key=value`.
    let mut after_password = false;
    for kv in query.into_iter().flat_map(|q| q.split('&')) {
        if kv.is_empty() {
            continue;
        }
        if after_password && !kv.split_once('=').is_some_and(|(k, _)| KEYS.contains(&k)) {
            return Err(bad(
                "something that is no known `key=value` follows the password parameter (an `&` in the password?); percent-encode `&` as %26",
            ));
        }
        after_password = kv.starts_with("password=");
        let (k, v) = kv
            .split_once('=')
            .ok_or_else(|| bad(&format!("a query parameter without `=`: `{}`", excerpt(kv))))?;
        let k = percent_decode(k, "parameter name")?;
        let v = percent_decode(v, "parameter value")?;
        out.insert(k, v);
    }
    Ok(Pairs(out))
}

/// Everything needed to connect to an operator's server, resolved (defaults applied). Its
/// `Debug` form hides the password.
#[derive(Clone)]
pub struct ConnParams {
    pub hosts: Vec<String>,
    pub ports: Vec<u16>,
    pub user: String,
    pub password: Option<String>,
    pub dbname: String,
    pub sslmode: SslMode,
    /// `None`: `~/.postgresql/root.crt` when it exists (libpq's default); `system`: the
    /// operating system's trust store.
    pub sslrootcert: Option<PathBuf>,
    pub sslcert: Option<PathBuf>,
    pub sslkey: Option<PathBuf>,
    pub connect_timeout: Duration,
    pub application_name: String,
    pub options: Option<String>,
    pub keepalives: bool,
    pub keepalives_idle: Duration,
}

impl std::fmt::Debug for ConnParams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnParams")
            .field("server", &self.shown())
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("sslrootcert", &self.sslrootcert)
            .field("sslcert", &self.sslcert)
            .field("sslkey", &self.sslkey)
            .field("connect_timeout", &self.connect_timeout)
            .field("application_name", &self.application_name)
            .finish_non_exhaustive()
    }
}

/// The connect timeout when none is configured (libpq waits forever; we do not).
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// The application name every connection carries unless one is configured.
pub const APPLICATION_NAME: &str = "tenantctl";

impl ConnParams {
    /// Resolves the pairs: `default_user` is the OS user (libpq's default), `default_db` the
    /// control database's default name.
    pub fn from_pairs(
        p: &Pairs,
        default_user: &str,
        default_db: &str,
        home: Option<&Path>,
    ) -> Result<ConnParams, Failure> {
        let hosts: Vec<String> = p
            .get("host")
            .or(p.get("hostaddr"))
            .map(|h| h.split(',').map(str::to_owned).collect())
            .unwrap_or_else(|| vec!["localhost".to_owned()]);
        let ports: Vec<u16> = match p.get("port") {
            None => vec![5432],
            Some(v) => v
                .split(',')
                .map(|x| {
                    if x.is_empty() {
                        return Ok(5432);
                    }
                    x.parse::<u16>().ok().filter(|n| *n > 0).ok_or_else(|| {
                        Failure::BadInput(format!(
                            "invalid port `{}`: a number from 1 to 65535",
                            excerpt(x)
                        ))
                    })
                })
                .collect::<Result<_, _>>()?,
        };
        if ports.len() != 1 && ports.len() != hosts.len() {
            return Err(Failure::BadInput(format!(
                "{} hosts but {} ports: give one port, or one per host",
                hosts.len(),
                ports.len()
            )));
        }
        let sslmode = match p.get("sslmode") {
            Some(v) => SslMode::parse(v)?,
            None => SslMode::Prefer,
        };
        let path = |k: &str| -> Option<PathBuf> {
            p.get(k)
                .filter(|v| !v.is_empty())
                .map(|v| match (v.strip_prefix("~/"), home) {
                    (Some(rest), Some(h)) => h.join(rest),
                    _ => PathBuf::from(v),
                })
        };
        let connect_timeout = match p.get("connect_timeout") {
            None | Some("") => DEFAULT_CONNECT_TIMEOUT,
            Some(v) => match v.trim().parse::<u64>() {
                // libpq: 0 means wait forever, and values below 2 are taken as 2.
                Ok(0) => Duration::from_secs(365 * 24 * 3600),
                Ok(n) if n <= 86_400 => Duration::from_secs(n.max(2)),
                _ => {
                    return Err(Failure::BadInput(format!(
                        "invalid connect_timeout `{}`: whole seconds from 0 to 86400",
                        excerpt(v)
                    )))
                }
            },
        };
        let keepalives = match p.get("keepalives") {
            None | Some("1") => true,
            Some("0") => false,
            Some(v) => {
                return Err(Failure::BadInput(format!(
                    "invalid keepalives `{}`: 0 or 1",
                    excerpt(v)
                )))
            }
        };
        let keepalives_idle = match p.get("keepalives_idle") {
            None => Duration::from_secs(60),
            Some(v) => {
                Duration::from_secs(v.parse::<u64>().ok().filter(|n| *n > 0).ok_or_else(|| {
                    Failure::BadInput(format!(
                        "invalid keepalives_idle `{}`: whole seconds, at least 1",
                        excerpt(v)
                    ))
                })?)
            }
        };
        Ok(ConnParams {
            hosts,
            ports,
            user: p
                .get("user")
                .filter(|u| !u.is_empty())
                .unwrap_or(default_user)
                .to_owned(),
            password: p.get("password").map(str::to_owned),
            dbname: p
                .get("dbname")
                .filter(|d| !d.is_empty())
                .unwrap_or(default_db)
                .to_owned(),
            sslmode,
            sslrootcert: path("sslrootcert"),
            sslcert: path("sslcert"),
            sslkey: path("sslkey"),
            connect_timeout,
            application_name: p
                .get("application_name")
                .filter(|a| !a.is_empty())
                .unwrap_or(APPLICATION_NAME)
                .to_owned(),
            options: p
                .get("options")
                .filter(|o| !o.is_empty())
                .map(str::to_owned),
            keepalives,
            keepalives_idle,
        })
    }

    /// How the server appears in messages: a URL without the password.
    pub fn shown(&self) -> String {
        let hosts = self
            .hosts
            .iter()
            .enumerate()
            .map(|(i, h)| {
                let port = self
                    .ports
                    .get(i)
                    .or(self.ports.first())
                    .copied()
                    .unwrap_or(5432);
                if h.starts_with('/') {
                    format!("{h}:{port}")
                } else if h.contains(':') {
                    format!("[{h}]:{port}")
                } else {
                    format!("{h}:{port}")
                }
            })
            .collect::<Vec<_>>()
            .join(",");
        format!(
            "postgres://{}@{hosts}/{}?sslmode={}",
            self.user,
            self.dbname,
            self.sslmode.as_str()
        )
    }
}

/// The password `.pgpass` gives for this connection, if any: lines
/// `host:port:database:user:password`, `*` matching anything, `\:` and `\\` escaped; the first
/// matching line wins. For a socket directory the host field is `localhost`, as in libpq.
pub fn pgpass_lookup(text: &str, host: &str, port: u16, db: &str, user: &str) -> Option<String> {
    let host = if host.starts_with('/') {
        "localhost"
    } else {
        host
    };
    let port = port.to_string();
    for line in text.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let mut fields = Vec::new();
        let mut cur = String::new();
        let mut chars = line.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => {
                    if let Some(n) = chars.next() {
                        cur.push(n);
                    }
                }
                ':' if fields.len() < 4 => fields.push(std::mem::take(&mut cur)),
                _ => cur.push(c),
            }
        }
        fields.push(cur);
        if fields.len() != 5 {
            continue;
        }
        let m = |f: &str, v: &str| f == "*" || f == v;
        if m(&fields[0], host) && m(&fields[1], &port) && m(&fields[2], db) && m(&fields[3], user) {
            return Some(fields[4].clone());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(s: &str) -> BTreeMap<String, String> {
        parse(s).unwrap().0
    }

    #[test]
    fn keyword_form_with_spaces_quotes_and_escapes() {
        let m =
            kv("host=db.example  port = 6432 password = s3cret dbname='my db' user='o\\'brien'");
        assert_eq!(m["host"], "db.example");
        assert_eq!(m["port"], "6432");
        assert_eq!(m["password"], "s3cret");
        assert_eq!(m["dbname"], "my db");
        assert_eq!(m["user"], "o'brien");
        let m = kv("password='s3 cret\\\\x'");
        assert_eq!(m["password"], "s3 cret\\x");
    }

    #[test]
    fn url_form() {
        let m = kv(
            "postgresql://bob:p%40ss%20w@db1:5433,db2/ctl?sslmode=verify-full&sslrootcert=/ca.pem",
        );
        assert_eq!(m["user"], "bob");
        assert_eq!(m["password"], "p@ss w");
        assert_eq!(m["host"], "db1,db2");
        assert_eq!(m["port"], "5433,");
        assert_eq!(m["dbname"], "ctl");
        assert_eq!(m["sslmode"], "verify-full");
        assert_eq!(m["sslrootcert"], "/ca.pem");
        let m = kv("postgres://[::1]:5000/x?password=hush");
        assert_eq!(m["host"], "::1");
        assert_eq!(m["port"], "5000");
        assert_eq!(m["password"], "hush");
        let m = kv("postgres://%2Ftmp%2Fsock/x");
        assert_eq!(m["host"], "/tmp/sock");
    }

    #[test]
    fn errors_never_show_the_password() {
        for s in [
            "password='s3 cret",
            "password = s3cret bogus",
            "password=s3cret port=notaport",
            "postgres://u:s3cret@h:notaport/db",
            "postgres://u:s3cret@h/db?password=s3cret&x",
            "postgres://u:s3cret%zz@h/db",
            "password=s3cret sslmode=sometimes",
            "mysql://u:s3cret@h/db",
        ] {
            let err = parse(s)
                .and_then(|p| ConnParams::from_pairs(&p, "me", "ctl", None))
                .map(|_| ())
                .unwrap_err()
                .to_string();
            assert!(!err.contains("s3cret"), "{s}: {err}");
        }
    }

    #[test]
    fn shown_has_no_password_and_defaults_apply() {
        let p = ConnParams::from_pairs(
            &parse("password='s3 cret' host=h").unwrap(),
            "me",
            "ctl",
            None,
        )
        .unwrap();
        assert_eq!(p.shown(), "postgres://me@h:5432/ctl?sslmode=prefer");
        assert_eq!(p.password.as_deref(), Some("s3 cret"));
        assert_eq!(p.connect_timeout, DEFAULT_CONNECT_TIMEOUT);
        assert_eq!(p.application_name, "tenantctl");
        assert!(!format!("{p:?}").contains("s3 cret"));
    }

    #[test]
    fn keywords_round_trip() {
        let p = parse("postgres://o%27b%5Cx@h1,h2:5433/my%20db?sslmode=require&options=-c%20a%3Db")
            .unwrap();
        let text = to_keywords(&p);
        assert_eq!(parse(&text).unwrap(), p, "{text}");
    }

    #[test]
    fn unknown_keys_and_bad_modes_are_bad_input() {
        assert!(parse("hots=x").is_err());
        let p = parse("sslmode=allow").unwrap();
        assert!(ConnParams::from_pairs(&p, "me", "ctl", None).is_err());
    }

    #[test]
    fn pgpass_matching() {
        let text = "# comment\nother:5432:*:bob:no\ndb:5432:*:bob:pa\\:ss\n*:*:*:*:fallback\n";
        assert_eq!(
            pgpass_lookup(text, "db", 5432, "x", "bob").as_deref(),
            Some("pa:ss")
        );
        assert_eq!(
            pgpass_lookup(text, "zz", 1, "x", "amy").as_deref(),
            Some("fallback")
        );
        assert_eq!(
            pgpass_lookup("/tmp:5432:*:*:s", "/tmp", 5432, "x", "u"),
            None
        );
        assert_eq!(
            pgpass_lookup("localhost:5432:*:*:s", "/tmp", 5432, "x", "u").as_deref(),
            Some("s")
        );
    }
}
