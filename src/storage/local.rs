//! `LocalDirStore`: buckets as directories under one root. A bucket's mark is the file
//! `.tenantctl-bucket` inside it, written into a scratch directory that is then renamed into
//! place without replacing anything, so a bucket never exists without its mark.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use bytes::Bytes;

use super::{check_key, refusal, BucketStore, ObjectInfo, Owner, TenantBucket};

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
    fn owner(&self, bucket: &TenantBucket, mark: &str) -> Result<Owner> {
        let dir = self.root.join(bucket.name());
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

    fn create(&self, bucket: &TenantBucket, mark: &str) -> Result<()> {
        let dir = self.root.join(bucket.name());
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
            ".creating.{}.{}.{}",
            bucket.name(),
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

    fn remove(&self, bucket: &TenantBucket, mark: &str) -> Result<()> {
        let dir = self.root.join(bucket.name());
        let parked = self.parked(&bucket.name(), mark);
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

    fn adopt(&self, bucket: &TenantBucket, mark: &str) -> Result<bool> {
        let dir = self.root.join(bucket.name());
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
                        Err(crate::error::Failure::Refused(format!(
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

    fn size(&self, bucket: &TenantBucket) -> Result<u64> {
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
        let dir = self.root.join(bucket.name());
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

    fn location(&self, bucket: &TenantBucket) -> String {
        self.root.join(bucket.name()).display().to_string()
    }

    fn put(&self, bucket: &TenantBucket, key: &str, data: Bytes) -> Result<()> {
        check_key(key)?;
        let path = self.root.join(bucket.name()).join(key);
        let dir = path.parent().expect("a key has a parent");
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        // Written aside, flushed, then renamed into place: never half an object under its key.
        let scratch = dir.join(format!(
            ".writing.{}.{}",
            std::process::id(),
            rand::random::<u32>()
        ));
        let written = (|| -> std::io::Result<()> {
            use std::io::Write;
            let mut f = std::fs::File::create(&scratch)?;
            f.write_all(&data)?;
            f.sync_all()?;
            std::fs::rename(&scratch, &path)
        })();
        if written.is_err() {
            let _ = std::fs::remove_file(&scratch);
        }
        written.with_context(|| format!("writing {}", path.display()))
    }

    fn get(&self, bucket: &TenantBucket, key: &str) -> Result<Option<Bytes>> {
        check_key(key)?;
        let path = self.root.join(bucket.name()).join(key);
        match std::fs::read(&path) {
            Ok(data) => Ok(Some(Bytes::from(data))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
        }
    }

    fn list(&self, bucket: &TenantBucket, prefix: &str) -> Result<Vec<ObjectInfo>> {
        fn walk(dir: &Path, rel: &str, out: &mut Vec<ObjectInfo>) -> std::io::Result<()> {
            let entries = match std::fs::read_dir(dir) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
                other => other?,
            };
            for entry in entries {
                let entry = entry?;
                let name = entry.file_name().to_string_lossy().into_owned();
                if name == MARK_FILE || name.starts_with(".writing.") {
                    continue;
                }
                let key = if rel.is_empty() {
                    name
                } else {
                    format!("{rel}/{name}")
                };
                let meta = entry.metadata()?;
                if meta.is_dir() {
                    walk(&entry.path(), &key, out)?;
                } else {
                    out.push(ObjectInfo {
                        key,
                        size: meta.len(),
                    });
                }
            }
            Ok(())
        }
        let dir = self.root.join(bucket.name());
        let mut out = Vec::new();
        walk(&dir, "", &mut out).with_context(|| format!("listing {}", dir.display()))?;
        out.retain(|o| o.key.starts_with(prefix));
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    fn delete(&self, bucket: &TenantBucket, key: &str) -> Result<()> {
        check_key(key)?;
        let dir = self.root.join(bucket.name());
        let path = dir.join(key);
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(e).with_context(|| format!("deleting {}", path.display()))
            }
            _ => {}
        }
        // As in object storage, a "directory" is there only while something is under it.
        let mut parent = path.parent();
        while let Some(p) = parent.filter(|p| *p != dir) {
            if std::fs::remove_dir(p).is_err() {
                break;
            }
            parent = p.parent();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_carry_their_mark_and_foreign_ones_are_left_alone() {
        let root = std::env::temp_dir().join(format!("tenantctl-store-{}", std::process::id()));
        let store = LocalDirStore::new(root.clone());
        let b = |kind: &'static str| TenantBucket {
            slug: "acme".into(),
            kind,
            pooled: false,
        };
        let (up, assets) = (&b("uploads"), &b("assets"));
        let (ours, theirs) = ("tenantctl:a:b", "tenantctl:a:c");
        store.create(up, ours).unwrap();
        store.create(up, ours).unwrap();
        assert_eq!(store.owner(up, ours).unwrap(), Owner::Ours);
        assert_eq!(store.owner(assets, ours).unwrap(), Owner::Absent);
        assert!(store.create(up, theirs).is_err());
        assert!(store.remove(up, theirs).is_err());
        std::fs::create_dir_all(root.join("acme-uploads/a/b")).unwrap();
        std::fs::write(root.join("acme-uploads/x"), [0u8; 10]).unwrap();
        std::fs::write(root.join("acme-uploads/a/b/y"), [0u8; 5]).unwrap();
        assert_eq!(store.size(up).unwrap(), 15);
        assert_eq!(store.size(assets).unwrap(), 0);
        store.remove(up, ours).unwrap();
        store.remove(up, ours).unwrap();
        assert_eq!(store.owner(up, ours).unwrap(), Owner::Absent);
        // A directory nobody marked is never adopted by create, nor removed.
        std::fs::create_dir_all(root.join("acme-assets")).unwrap();
        assert!(store.create(assets, ours).is_err());
        assert!(store.remove(assets, ours).is_err());
        assert!(root.join("acme-assets").is_dir());
        assert!(store.adopt(assets, ours).unwrap());
        store.remove(assets, ours).unwrap();
        std::fs::remove_dir_all(root).unwrap();
    }
}
