//! `LocalDirStore`: buckets as directories under one root.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::BucketStore;

pub struct LocalDirStore {
    root: PathBuf,
}

impl LocalDirStore {
    pub fn new(root: PathBuf) -> Self {
        LocalDirStore { root }
    }
}

impl BucketStore for LocalDirStore {
    fn create(&self, bucket: &str) -> Result<()> {
        let dir = self.root.join(bucket);
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("creating bucket directory {}", dir.display()))
    }

    fn remove(&self, bucket: &str) -> Result<()> {
        let dir = self.root.join(bucket);
        match std::fs::remove_dir_all(&dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(e).with_context(|| format!("removing bucket directory {}", dir.display()))
            }
            _ => Ok(()),
        }
    }

    fn exists(&self, bucket: &str) -> Result<bool> {
        Ok(self.root.join(bucket).is_dir())
    }

    fn size(&self, bucket: &str) -> Result<u64> {
        fn walk(dir: &Path) -> std::io::Result<u64> {
            let mut total = 0;
            for entry in std::fs::read_dir(dir)? {
                let entry = entry?;
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
        if !dir.is_dir() {
            return Ok(0);
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
    fn creating_twice_is_fine() {
        let root = std::env::temp_dir().join(format!("tenantctl-store-{}", std::process::id()));
        let store = LocalDirStore::new(root.clone());
        store.create("acme-uploads").unwrap();
        store.create("acme-uploads").unwrap();
        assert!(store.exists("acme-uploads").unwrap());
        assert!(!store.exists("acme-assets").unwrap());
        std::fs::create_dir_all(root.join("acme-uploads/a/b")).unwrap();
        std::fs::write(root.join("acme-uploads/x"), [0u8; 10]).unwrap();
        std::fs::write(root.join("acme-uploads/a/b/y"), [0u8; 5]).unwrap();
        assert_eq!(store.size("acme-uploads").unwrap(), 15);
        assert_eq!(store.size("acme-assets").unwrap(), 0);
        store.remove("acme-uploads").unwrap();
        store.remove("acme-uploads").unwrap();
        assert!(!store.exists("acme-uploads").unwrap());
        std::fs::remove_dir_all(root).unwrap();
    }
}
