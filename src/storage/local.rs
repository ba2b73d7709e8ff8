//! `LocalDirStore`: buckets as directories under one root. A bucket's mark is the file
//! `.tenantctl-bucket` inside it, written into a scratch directory that is then renamed into
//! place without replacing anything, so a bucket never exists without its mark.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::{refusal, BucketStore, Owner};

/// The file inside a bucket directory that says who made it.
pub const MARK_FILE: &str = ".tenantctl-bucket";

pub struct LocalDirStore {
    root: PathBuf,
}

impl LocalDirStore {
    pub fn new(root: PathBuf) -> Self {
        LocalDirStore { root }
    }

    /// Where a removal of `bucket` (marked `mark`) parks it while it is deleted: the name says
    /// whose it is, so a leftover from a killed removal is finished without doubt.
    fn parked(&self, bucket: &str, mark: &str) -> PathBuf {
        self.root.join(format!(
            ".purging.{bucket}.{}",
            mark.replace([':', '/'], ".")
        ))
    }
}

/// `rename(2)` that never replaces `to` (a plain rename would replace an empty directory).
fn rename_noreplace(from: &Path, to: &Path) -> std::io::Result<()> {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    let c = |p: &Path| {
        CString::new(p.as_os_str().as_bytes())
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))
    };
    let (from, to) = (c(from)?, c(to)?);
    // SAFETY: both are valid NUL-terminated paths that outlive the call.
    let rc = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            from.as_ptr(),
            libc::AT_FDCWD,
            to.as_ptr(),
            libc::RENAME_NOREPLACE,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

fn read_mark(dir: &Path) -> Result<Option<String>> {
    use std::io::Read;
    let path = dir.join(MARK_FILE);
    match std::fs::symlink_metadata(&path) {
        Ok(m) if m.is_file() => {
            let mut text = String::new();
            std::fs::File::open(&path)
                .and_then(|f| f.take(512).read_to_string(&mut text))
                .with_context(|| format!("reading {}", path.display()))?;
            Ok(Some(text.trim().to_owned()))
        }
        Ok(_) => Ok(None),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("inspecting {}", path.display())),
    }
}

impl BucketStore for LocalDirStore {
    fn owner(&self, bucket: &str, mark: &str) -> Result<Owner> {
        let dir = self.root.join(bucket);
        match std::fs::symlink_metadata(&dir) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Owner::Absent),
            Err(e) => Err(e).with_context(|| format!("inspecting bucket {}", dir.display())),
            // A symlink or a file under a bucket's name is never ours.
            Ok(m) if !m.is_dir() => Ok(Owner::Foreign(None)),
            Ok(_) => Ok(match read_mark(&dir)? {
                Some(m) if m == mark => Owner::Ours,
                other => Owner::Foreign(other),
            }),
        }
    }

    fn create(&self, bucket: &str, mark: &str) -> Result<()> {
        let dir = self.root.join(bucket);
        match self.owner(bucket, mark)? {
            Owner::Ours => return Ok(()),
            Owner::Foreign(found) => {
                return Err(refusal(&dir.display().to_string(), found.as_deref()).into())
            }
            Owner::Absent => {}
        }
        std::fs::create_dir_all(&self.root)
            .with_context(|| format!("creating the bucket root {}", self.root.display()))?;
        let scratch = self.root.join(format!(
            ".creating.{bucket}.{}.{}",
            std::process::id(),
            rand::random::<u32>()
        ));
        let made = (|| -> std::io::Result<()> {
            std::fs::create_dir(&scratch)?;
            std::fs::write(scratch.join(MARK_FILE), format!("{mark}\n"))?;
            rename_noreplace(&scratch, &dir)
        })();
        if made.is_err() {
            let _ = std::fs::remove_dir_all(&scratch);
        }
        match made {
            Ok(()) => Ok(()),
            // A concurrent creator won: fine if it was for this tenant.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                match self.owner(bucket, mark)? {
                    Owner::Ours => Ok(()),
                    Owner::Foreign(found) => {
                        Err(refusal(&dir.display().to_string(), found.as_deref()).into())
                    }
                    Owner::Absent => {
                        anyhow::bail!("bucket {} vanished while created", dir.display())
                    }
                }
            }
            Err(e) => {
                Err(e).with_context(|| format!("creating bucket directory {}", dir.display()))
            }
        }
    }

    fn remove(&self, bucket: &str, mark: &str) -> Result<()> {
        let dir = self.root.join(bucket);
        let parked = self.parked(bucket, mark);
        match self.owner(bucket, mark)? {
            Owner::Foreign(found) => {
                return Err(refusal(&dir.display().to_string(), found.as_deref()).into())
            }
            Owner::Ours => {
                if parked.exists() {
                    std::fs::remove_dir_all(&parked)
                        .with_context(|| format!("removing {}", parked.display()))?;
                }
                rename_noreplace(&dir, &parked)
                    .with_context(|| format!("moving bucket {} aside", dir.display()))?;
            }
            Owner::Absent => {}
        }
        match std::fs::remove_dir_all(&parked) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(e).with_context(|| format!("removing bucket directory {}", parked.display()))
            }
            _ => Ok(()),
        }
    }

    fn adopt(&self, bucket: &str, mark: &str) -> Result<bool> {
        let dir = self.root.join(bucket);
        match self.owner(bucket, mark)? {
            Owner::Absent | Owner::Ours => Ok(false),
            Owner::Foreign(None) if std::fs::symlink_metadata(&dir)?.is_dir() => {
                use std::io::Write;
                // Never through what is already there: the tenant owns the bucket's contents,
                // and a symlink under the mark's name would have us overwrite its target.
                let written = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(dir.join(MARK_FILE))
                    .and_then(|mut f| f.write_all(format!("{mark}\n").as_bytes()));
                match written {
                    Ok(()) => Ok(true),
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                        Err(crate::exit::Failure::Refused(format!(
                            "refusing to mark bucket {}: its {MARK_FILE} exists but is not a \
                             regular file (a symlink, a directory); remove it, then adopt again",
                            crate::excerpt::escape(&dir.display().to_string())
                        ))
                        .into())
                    }
                    Err(e) => Err(e).with_context(|| format!("marking bucket {}", dir.display())),
                }
            }
            Owner::Foreign(found) => {
                Err(refusal(&dir.display().to_string(), found.as_deref()).into())
            }
        }
    }

    fn size(&self, bucket: &str) -> Result<u64> {
        fn walk(dir: &Path) -> std::io::Result<u64> {
            let mut total = 0;
            for entry in std::fs::read_dir(dir)? {
                let entry = entry?;
                if entry.file_name() == MARK_FILE {
                    continue; // tenantctl's, not the tenant's
                }
                let meta = entry.metadata()?;
                total += if meta.is_dir() {
                    walk(&entry.path())?
                } else {
                    meta.len()
                };
            }
            Ok(total)
        }
        let dir = self.root.join(bucket);
        match std::fs::symlink_metadata(&dir) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(e) => {
                return Err(e).with_context(|| format!("inspecting bucket {}", dir.display()))
            }
            // Neither a symlink's target nor a file is the tenant's bucket: measuring the one
            // would bill the tenant for what is elsewhere, the other would read 0 silently.
            Ok(m) if !m.is_dir() => anyhow::bail!(
                "bucket {} is not a directory (a symlink or a file there is not the tenant's bucket)",
                crate::excerpt::escape(&dir.display().to_string())
            ),
            Ok(_) => {}
        }
        walk(&dir).with_context(|| format!("measuring bucket directory {}", dir.display()))
    }

    fn location(&self, bucket: &str) -> String {
        self.root.join(bucket).display().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_carry_their_mark_and_foreign_ones_are_left_alone() {
        let root = std::env::temp_dir().join(format!("tenantctl-store-{}", std::process::id()));
        let store = LocalDirStore::new(root.clone());
        let (ours, theirs) = ("tenantctl:a:b", "tenantctl:a:c");
        store.create("acme-uploads", ours).unwrap();
        store.create("acme-uploads", ours).unwrap();
        assert_eq!(store.owner("acme-uploads", ours).unwrap(), Owner::Ours);
        assert_eq!(store.owner("acme-assets", ours).unwrap(), Owner::Absent);
        assert!(store.create("acme-uploads", theirs).is_err());
        assert!(store.remove("acme-uploads", theirs).is_err());
        std::fs::create_dir_all(root.join("acme-uploads/a/b")).unwrap();
        std::fs::write(root.join("acme-uploads/x"), [0u8; 10]).unwrap();
        std::fs::write(root.join("acme-uploads/a/b/y"), [0u8; 5]).unwrap();
        assert_eq!(store.size("acme-uploads").unwrap(), 15);
        assert_eq!(store.size("acme-assets").unwrap(), 0);
        store.remove("acme-uploads", ours).unwrap();
        store.remove("acme-uploads", ours).unwrap();
        assert_eq!(store.owner("acme-uploads", ours).unwrap(), Owner::Absent);
        // A directory nobody marked is never adopted by create, nor removed.
        std::fs::create_dir_all(root.join("acme-assets")).unwrap();
        assert!(store.create("acme-assets", ours).is_err());
        assert!(store.remove("acme-assets", ours).is_err());
        assert!(root.join("acme-assets").is_dir());
        assert!(store.adopt("acme-assets", ours).unwrap());
        store.remove("acme-assets", ours).unwrap();
        std::fs::remove_dir_all(root).unwrap();
    }
}
