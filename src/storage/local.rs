//! `LocalDirStore`: buckets as directories under one root.

use std::path::PathBuf;

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

    fn exists(&self, bucket: &str) -> Result<bool> {
        Ok(self.root.join(bucket).is_dir())
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
        std::fs::remove_dir_all(root).unwrap();
    }
}
