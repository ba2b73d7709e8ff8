//! Whole documents tenantctl emits as they are, not as tables or JSON: completion scripts,
//! manual pages, the metrics text. To stdout (a closed pipe is not an error), or to a file
//! replaced atomically, so that a reader (node_exporter's textfile collector) sees the old
//! document or the new one, never half of one.

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// Writes `bytes` to stdout; a reader that went away ends the output quietly.
pub fn to_stdout(bytes: &[u8]) -> Result<()> {
    let mut out = io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other.context("writing to stdout")?),
    }
}

/// Replaces `path` with `bytes` atomically: a temporary file beside it (same directory, so the
/// same filesystem), written and synced, then renamed over it. The temporary name starts with
/// a dot and does not end in `.prom`, so the textfile collector never reads it; it is removed
/// if anything fails. The file is world-readable (0644): metrics carry no secrets.
pub fn to_file_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let name = path
        .file_name()
        .with_context(|| format!("{} names no file", path.display()))?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let mut tmp_name = OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".tmp.{}", std::process::id()));
    let tmp = dir.join(tmp_name);
    let written = write_synced(&tmp, bytes).and_then(|()| {
        fs::rename(&tmp, path)
            .with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))
    });
    if written.is_err() {
        let _ = fs::remove_file(&tmp);
        return written;
    }
    // The rename itself is durable once the directory is synced.
    if let Ok(d) = File::open(&dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

fn write_synced(tmp: &Path, bytes: &[u8]) -> Result<()> {
    // A stale temporary file of a killed run with the same pid is replaced, not appended to.
    let _ = fs::remove_file(tmp);
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .open(tmp)
        .with_context(|| format!("creating {}", tmp.display()))?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .with_context(|| format!("writing {}", tmp.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_the_file_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tenantctl.prom");
        fs::write(&path, "old\n").unwrap();
        to_file_atomically(&path, b"new\n").unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "new\n");
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![OsString::from("tenantctl.prom")]);
    }

    #[test]
    fn a_missing_directory_fails_and_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("no/such/dir/tenantctl.prom");
        let err = to_file_atomically(&path, b"x").unwrap_err();
        assert!(format!("{err:#}").contains("tenantctl.prom"), "{err:#}");
    }
}
