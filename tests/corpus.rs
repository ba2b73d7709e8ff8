//! The bad-input corpus (`tests/corpus/bad_input.tsv`, data so that it grows): hundreds of
//! command lines that must be refused, each run against one environment with tenants already
//! provisioned. Every case asserts its exit code and a piece of its message, a single short
//! `error:` line on stderr without raw control characters, an empty stdout, no panic, and that
//! nothing changed: the control database's rows, `pg_database`, `pg_roles` and the files under
//! the environment's directory (the bucket root among them).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::support::{cluster, TestEnv};

/// A case must end within this (a refusal should be immediate; a hang is a failure).
const CASE_TIMEOUT: Duration = Duration::from_secs(20);
/// The longest acceptable error line, in bytes.
const MAX_ERROR: usize = 400;

struct Case {
    line: usize,
    code: i32,
    needle: String,
    args: Vec<String>,
    env: Vec<(String, String)>,
}

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus")
}

/// `\e \n \r \t \a \\ \u{XXXX}` escapes.
fn unescape(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('e') => out.push('\u{1b}'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('t') => out.push('\t'),
            Some('a') => out.push('\u{7}'),
            Some('\\') => out.push('\\'),
            Some('u') => {
                assert_eq!(chars.next(), Some('{'), "bad \\u escape in {s}");
                let hex: String = chars.by_ref().take_while(|c| *c != '}').collect();
                let n = u32::from_str_radix(&hex, 16).unwrap();
                out.push(char::from_u32(n).unwrap());
            }
            other => panic!("unknown escape \\{other:?} in {s}"),
        }
    }
    out
}

/// `{rep:N:S}`, `{dir}`, `{files}`, `{month:N}` (YYYY-MM, N months from now, UTC),
/// `{date:N}` (YYYY-MM-DD, N days from now), then escapes.
fn expand(s: &str, dir: &Path) -> String {
    let mut s = s
        .replace("{dir}", dir.to_str().unwrap())
        .replace("{files}", corpus_dir().join("files").to_str().unwrap());
    let today = chrono::Utc::now().date_naive();
    while let Some(start) = s.find("{month:").or_else(|| s.find("{date:")) {
        let end = start + s[start..].find('}').expect("closed placeholder");
        let (kind, n) = s[start + 1..end].split_once(':').unwrap();
        let n: i32 = n.parse().unwrap();
        let value = if kind == "month" {
            let months =
                chrono::Datelike::year(&today) * 12 + chrono::Datelike::month0(&today) as i32 + n;
            format!(
                "{:04}-{:02}",
                months.div_euclid(12),
                months.rem_euclid(12) + 1
            )
        } else {
            (today + chrono::Duration::days(n.into()))
                .format("%Y-%m-%d")
                .to_string()
        };
        s.replace_range(start..=end, &value);
    }
    while let Some(start) = s.find("{rep:") {
        let end = start + s[start..].find('}').expect("closed {rep:N:S}");
        let (n, what) = s[start + 5..end].split_once(':').expect("{rep:N:S}");
        let n: usize = n.parse().unwrap();
        s.replace_range(start..=end, &what.repeat(n));
    }
    unescape(&s)
}

fn load(file: &str, dir: &Path) -> Vec<Case> {
    let text = std::fs::read_to_string(corpus_dir().join(file)).unwrap();
    let mut cases = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let mut cols = line.split('\t');
        let code: i32 = cols
            .next()
            .unwrap()
            .parse()
            .unwrap_or_else(|_| panic!("{file}:{}: exit code", i + 1));
        let needle = cols
            .next()
            .unwrap_or_else(|| panic!("{file}:{}: no message column", i + 1))
            .to_owned();
        let mut args = Vec::new();
        let mut env = Vec::new();
        for col in cols {
            match col.strip_prefix("ENV:") {
                Some(kv) => {
                    let (k, v) = kv.split_once('=').expect("ENV:NAME=VALUE");
                    env.push((k.to_owned(), expand(v, dir)));
                }
                None => args.push(expand(col, dir)),
            }
        }
        cases.push(Case {
            line: i + 1,
            code,
            needle,
            args,
            env,
        });
    }
    cases
}

/// Files the cases name under `{dir}`, made at run time.
fn make_fixtures(dir: &Path) {
    let ok = std::process::Command::new("mkfifo")
        .arg(dir.join("fifo"))
        .status()
        .unwrap()
        .success();
    assert!(ok, "mkfifo");
    std::fs::create_dir(dir.join("empty-dir")).unwrap();
    // Sparse: larger than the caps without using the disk.
    std::fs::File::create(dir.join("huge.csv"))
        .unwrap()
        .set_len(2 << 30)
        .unwrap();
    std::fs::File::create(dir.join("huge.toml"))
        .unwrap()
        .set_len(2 << 20)
        .unwrap();
    std::fs::write(
        dir.join("long-line.csv"),
        format!(
            "acme,api_requests,1,2026-11-01,k0\nacme,api_requests,1,2026-11-01,{}\n",
            "k".repeat(10_000)
        ),
    )
    .unwrap();
    std::fs::write(
        dir.join("long-line.toml"),
        format!("currency = \"USD\"\n# {}\n", "x".repeat(5_000)),
    )
    .unwrap();
    std::fs::write(dir.join("binary.csv"), b"\xff\xfe\x00\x01acme\n").unwrap();
    std::fs::write(dir.join("binary.toml"), b"\xff\xfe\x00\x01currency\n").unwrap();
    std::fs::write(
        dir.join("usage-now-acme.csv"),
        format!(
            "acme,api_requests,1,{},k-now\n",
            chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ")
        ),
    )
    .unwrap();
    std::fs::write(dir.join("victim"), "precious\n").unwrap();
    std::os::unix::fs::symlink(dir.join("victim"), dir.join("link-to-victim")).unwrap();
    std::os::unix::fs::symlink(dir.join("elsewhere"), dir.join("dangling-link")).unwrap();
}

/// Everything a refused command must leave as it was.
#[derive(Debug, PartialEq, Eq)]
struct Snapshot {
    control: Vec<(String, i64, String)>,
    databases: Vec<String>,
    roles: Vec<String>,
    files: Vec<(String, u64)>,
}

/// Objects of other tests running in this process at the same time are not ours to compare.
fn foreign(name: &str, env: &TestEnv) -> bool {
    let ours = name.starts_with(&env.prefix)
        || name == env.control_db
        || Some(name) == env.admin_role.as_deref();
    let test_object = |rest: Option<&str>| {
        rest.and_then(|r| r.split('_').next())
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    };
    !ours
        && (test_object(name.strip_prefix('t'))
            || test_object(name.strip_prefix("ctl_"))
            || test_object(name.strip_prefix("adm_")))
}

fn walk(root: &Path, at: &Path, out: &mut Vec<(String, u64)>) {
    let Ok(entries) = std::fs::read_dir(at) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        let meta = std::fs::symlink_metadata(&p).unwrap();
        let rel = p.strip_prefix(root).unwrap().display().to_string();
        out.push((rel, if meta.is_file() { meta.len() } else { 0 }));
        if meta.is_dir() {
            walk(root, &p, out);
        }
    }
}

fn snapshot(env: &TestEnv, pg: &mut postgres::Client, ctl: &mut postgres::Client) -> Snapshot {
    let tables: Vec<String> = ctl
        .query(
            "SELECT tablename::text FROM pg_tables WHERE schemaname = 'public' ORDER BY 1",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let control = tables
        .into_iter()
        .map(|t| {
            let row = ctl
                .query_one(
                    &format!(
                        "SELECT count(*), coalesce(md5(string_agg(x::text, '|' ORDER BY x::text)), '') FROM \"{t}\" x"
                    ),
                    &[],
                )
                .unwrap();
            (t, row.get(0), row.get(1))
        })
        .collect();
    let databases = pg
        .query(
            "SELECT datname::text || ' ' || datallowconn::text || ' ' || coalesce(datacl::text, '') FROM pg_database ORDER BY 1",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get::<_, String>(0))
        .filter(|d| !foreign(d.split(' ').next().unwrap(), env))
        .collect();
    let roles = pg
        .query(
            "SELECT rolname::text || ' ' || rolcanlogin::text FROM pg_roles ORDER BY 1",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get::<_, String>(0))
        .filter(|r| !foreign(r.split(' ').next().unwrap(), env))
        .collect();
    let mut files = Vec::new();
    walk(env.dir.path(), env.dir.path(), &mut files);
    files.sort();
    Snapshot {
        control,
        databases,
        roles,
        files,
    }
}

/// The environment: four tenants in the states the cases need.
fn provisioned_env() -> TestEnv {
    let env = TestEnv::new();
    for (slug, tier) in [
        ("acme", "free"),
        ("bigco", "premium"),
        ("sleepy", "free"),
        ("gone", "free"),
    ] {
        env.provision(slug, tier);
    }
    env.run(&["suspend", "sleepy", "-q"]).expect(0);
    env.run(&["deprovision", "gone", "-q"]).expect(0);
    make_fixtures(env.dir.path());
    env
}

fn has_raw_control(s: &str) -> bool {
    s.trim_end_matches('\n').chars().any(|c| {
        c.is_control() || matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{feff}')
    })
}

/// Runs one case; `Err` says what was wrong.
fn run_case(env: &TestEnv, scratch: &Path, case: &Case) -> Result<(), String> {
    let out_path = scratch.join("stdout");
    let err_path = scratch.join("stderr");
    let mut cmd = env.cmd();
    cmd.args(&case.args)
        .envs(case.env.iter().map(|(k, v)| (k, v)))
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap());
    let mut child = cmd.spawn().unwrap();
    let t0 = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if t0.elapsed() > CASE_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("still running after {CASE_TIMEOUT:?}; killed"));
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let stdout = String::from_utf8_lossy(&std::fs::read(&out_path).unwrap()).into_owned();
    let stderr = String::from_utf8_lossy(&std::fs::read(&err_path).unwrap()).into_owned();
    let shown = |s: &str| {
        s.chars()
            .take(600)
            .collect::<String>()
            .escape_debug()
            .to_string()
    };
    let mut problems = Vec::new();
    if status.code() != Some(case.code) {
        problems.push(format!("exit {:?}, expected {}", status.code(), case.code));
    }
    if !stdout.is_empty() {
        problems.push(format!("stdout not empty: {}", shown(&stdout)));
    }
    if stderr.contains("panicked") || stderr.contains("RUST_BACKTRACE") {
        problems.push("panic".to_owned());
    }
    if !stderr.starts_with("error: ") || stderr.lines().count() != 1 || !stderr.ends_with('\n') {
        problems.push("stderr is not one `error: ` line".to_owned());
    }
    if stderr.len() > MAX_ERROR {
        problems.push(format!("error is {} bytes", stderr.len()));
    }
    if has_raw_control(&stderr) {
        problems.push("raw control or bidi character in the error".to_owned());
    }
    match case.needle.strip_prefix('!') {
        Some(absent) if stderr.contains(absent) => {
            problems.push(format!("error contains `{absent}`"))
        }
        Some(_) => {}
        None if !stderr.contains(&case.needle) => {
            problems.push(format!("error lacks `{}`", case.needle))
        }
        None => {}
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{}; stderr: {}",
            problems.join("; "),
            shown(&stderr)
        ))
    }
}

fn run_corpus(file: &str) {
    let env = provisioned_env();
    let scratch = tempfile::tempdir().unwrap();
    let cases = load(file, env.dir.path());
    let mut pg = env.admin("postgres");
    let mut ctl = env.control();
    let t0 = Instant::now();
    let mut before = snapshot(&env, &mut pg, &mut ctl);
    let mut failures = Vec::new();
    for case in &cases {
        let result = run_case(&env, scratch.path(), case);
        let after = snapshot(&env, &mut pg, &mut ctl);
        let changed = after != before;
        if let Err(e) = result {
            failures.push(format!("{file}:{} {:?}: {e}", case.line, case.args_shown()));
        }
        if changed {
            failures.push(format!(
                "{file}:{} {:?}: changed state:\nbefore {before:?}\nafter  {after:?}",
                case.line,
                case.args_shown()
            ));
            before = after;
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    eprintln!(
        "{file}: {} cases in {:?} (server {})",
        cases.len(),
        t0.elapsed(),
        cluster().url("")
    );
}

impl Case {
    /// The arguments as the failure message shows them: long ones cut.
    fn args_shown(&self) -> Vec<String> {
        self.args
            .iter()
            .map(|a| {
                if a.chars().count() > 60 {
                    format!(
                        "{}… ({} bytes)",
                        a.chars().take(40).collect::<String>(),
                        a.len()
                    )
                } else {
                    a.clone()
                }
            })
            .chain(
                self.env
                    .iter()
                    .map(|(k, v)| format!("{k}={}", v.chars().take(60).collect::<String>())),
            )
            .collect()
    }
}

#[test]
fn every_bad_input_is_refused_cleanly_and_changes_nothing() {
    let env_cases = load("bad_input.tsv", Path::new("/x"));
    assert!(env_cases.len() >= 150, "{} cases", env_cases.len());
    run_corpus("bad_input.tsv");
}
