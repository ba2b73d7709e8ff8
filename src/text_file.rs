//! `read`: the one way tenantctl reads a text file a user names (the tier table, the config
//! file, a usage import). Only a regular file is read (a directory, FIFO, socket or device such
//! as `/dev/zero` is refused before a byte is read, so nothing blocks or grows without end), of
//! at most `Limits::max_bytes`, every line at most `Limits::max_line` bytes, valid UTF-8; a
//! leading UTF-8 byte-order mark is dropped. Every refusal is bad input (exit 2) that names the
//! file.

use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use crate::error::Failure;
use crate::excerpt::excerpt_n;

/// How big a file of one kind may be.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// The whole file, in bytes.
    pub max_bytes: u64,
    /// One line, in bytes, without its line ending.
    pub max_line: usize,
}

/// `tiers.toml` and `tenantctl.toml`: 1 MiB, lines of at most 4 KiB.
pub const SMALL_TOML: Limits = Limits {
    max_bytes: 1 << 20,
    max_line: 4096,
};

/// A usage import: 1 GiB (about 15 million events of typical length), lines of at most 4 KiB
/// (a row's longest valid form is well under 1 KiB).
pub const USAGE_CSV: Limits = Limits {
    max_bytes: 1 << 30,
    max_line: 4096,
};

/// How a path a user gave appears in a message: escaped, and cut if very long.
pub fn shown(path: &Path) -> String {
    excerpt_n(&path.display().to_string(), 160)
}

/// Reads `path` as `what` ("tiers file", "usage file", ...) within `limits`.
pub fn read(path: &Path, what: &str, limits: Limits) -> Result<String, Failure> {
    let shown = shown(path);
    let bad = |why: String| Failure::BadInput(format!("cannot read {what} {shown}: {why}"));
    if path.as_os_str() == "-" {
        return Err(bad(
            "`-` is not supported: standard input cannot be checked as a regular file; give a file path"
                .to_owned(),
        ));
    }
    // O_NONBLOCK: opening a FIFO must not wait for a writer; O_NOCTTY: a terminal device
    // named by mistake must not become the controlling terminal.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(|e| bad(e.to_string()))?;
    let meta = file.metadata().map_err(|e| bad(e.to_string()))?;
    if !meta.is_file() {
        let kind = if meta.is_dir() {
            "a directory"
        } else {
            "not a regular file (a device, FIFO or socket)"
        };
        return Err(bad(format!("it is {kind}; give a regular file")));
    }
    let too_big = || {
        bad(format!(
            "it is larger than {} bytes, the most a {what} may be",
            limits.max_bytes
        ))
    };
    if meta.len() > limits.max_bytes {
        return Err(too_big());
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(limits.max_bytes + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| bad(e.to_string()))?;
    if bytes.len() as u64 > limits.max_bytes {
        return Err(too_big());
    }
    let mut text = String::from_utf8(bytes).map_err(|e| {
        let at = e.utf8_error().valid_up_to();
        let line = e.as_bytes()[..at].iter().filter(|b| **b == b'\n').count() + 1;
        bad(format!("line {line} is not UTF-8 text (byte {at})"))
    })?;
    if text.starts_with('\u{feff}') {
        text.drain(..'\u{feff}'.len_utf8());
    }
    if let Some((n, line)) = text
        .split('\n')
        .enumerate()
        .find(|(_, l)| l.trim_end_matches('\r').len() > limits.max_line)
    {
        return Err(bad(format!(
            "line {} is {} bytes long, more than the {} a line may be",
            n + 1,
            line.len(),
            limits.max_line
        )));
    }
    Ok(text)
}

/// How many bad rows an error about a file explains in full.
const EXPLAINED_ROWS: usize = 3;
/// How many more it names by line number before it says "and N more".
const NAMED_ROWS: usize = 10;

/// The one-line refusal of a file with bad rows (`usage import`, `provision --file`): the
/// first three row errors in full, the lines of the next ten, how many there were, and that
/// nothing happened. (Ten explanations of the same mistake made a line of a few thousand
/// characters that nobody reads at 3 a.m.; the first ones say what is wrong, the line numbers
/// where else to look.) Each error starts with `line N: `.
pub fn bad_rows(
    what: &str,
    origin: &str,
    errors: Vec<String>,
    noun: &str,
    nothing: &str,
) -> Failure {
    let n = errors.len();
    let mut parts: Vec<String> = errors.iter().take(EXPLAINED_ROWS).cloned().collect();
    let named: Vec<&str> = errors
        .iter()
        .skip(EXPLAINED_ROWS)
        .take(NAMED_ROWS)
        .map(|e| {
            e.strip_prefix("line ")
                .and_then(|rest| rest.split(':').next())
                .unwrap_or(e)
        })
        .collect();
    if !named.is_empty() {
        let more = n.saturating_sub(EXPLAINED_ROWS + NAMED_ROWS);
        let tail = if more > 0 {
            format!(" and {more} more")
        } else {
            String::new()
        };
        let lines = if named.len() == 1 { "line" } else { "lines" };
        parts.push(format!("also bad: {lines} {}{tail}", named.join(", ")));
    }
    Failure::BadInput(format!(
        "invalid {what} {origin}: {} ({}; {nothing})",
        parts.join("; "),
        crate::words::count_len(n, noun)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(name: &str, bytes: &[u8]) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        (dir, p)
    }

    const TINY: Limits = Limits {
        max_bytes: 64,
        max_line: 10,
    };

    #[test]
    fn bad_rows_explains_three_and_names_the_next_lines() {
        let errors = |n: usize| -> Vec<String> {
            (2..2 + n)
                .map(|l| format!("line {l}: invalid slug `s{l}`: too short"))
                .collect()
        };
        let one = bad_rows(
            "tenant file",
            "f.csv",
            errors(1),
            "bad row",
            "nothing created",
        );
        assert_eq!(
            one.to_string(),
            "invalid tenant file f.csv: line 2: invalid slug `s2`: too short (1 bad row; nothing created)"
        );
        let four = bad_rows(
            "tenant file",
            "f.csv",
            errors(4),
            "bad row",
            "nothing created",
        );
        assert_eq!(
            four.to_string(),
            "invalid tenant file f.csv: line 2: invalid slug `s2`: too short; line 3: invalid slug `s3`: too short; \
             line 4: invalid slug `s4`: too short; also bad: line 5 (4 bad rows; nothing created)"
        );
        let many = bad_rows(
            "tenant file",
            "f.csv",
            errors(20),
            "bad row",
            "nothing created",
        )
        .to_string();
        assert!(
            many.ends_with(
                "; also bad: lines 5, 6, 7, 8, 9, 10, 11, 12, 13, 14 and 7 more (20 bad rows; nothing created)"
            ),
            "{many}"
        );
        assert!(!many.contains("`s5`"), "{many}");
    }

    #[test]
    fn reads_a_regular_file_and_drops_a_bom() {
        let (_d, p) = tmp("a.txt", "\u{feff}slug,x\nb\n".as_bytes());
        assert_eq!(read(&p, "test file", TINY).unwrap(), "slug,x\nb\n");
    }

    #[test]
    fn refuses_devices_directories_and_fifos() {
        let e = read(Path::new("/dev/zero"), "test file", TINY).unwrap_err();
        assert!(e.to_string().contains("not a regular file"), "{e}");
        let d = tempfile::tempdir().unwrap();
        let e = read(d.path(), "test file", TINY).unwrap_err();
        assert!(e.to_string().contains("a directory"), "{e}");
        let fifo = d.path().join("fifo");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let e = read(&fifo, "test file", TINY).unwrap_err();
        assert!(e.to_string().contains("not a regular file"), "{e}");
    }

    #[test]
    fn refuses_big_files_long_lines_and_binary() {
        let (_d, p) = tmp("big", &[b'a'; 65]);
        let e = read(&p, "test file", TINY).unwrap_err().to_string();
        assert!(e.contains("larger than 64 bytes"), "{e}");
        let (_d, p) = tmp("long", b"short\n12345678901\n");
        let e = read(&p, "test file", TINY).unwrap_err().to_string();
        assert!(e.contains("line 2 is 11 bytes long"), "{e}");
        let (_d, p) = tmp("bin", b"ok\n\xff\xfe\n");
        let e = read(&p, "test file", TINY).unwrap_err().to_string();
        assert!(e.contains("line 2 is not UTF-8"), "{e}");
    }
}
