//! Buckets: the `BucketStore` trait every backend implements, and the backends.
//!
//! - `local`: a directory tree, one directory per bucket (the default).

pub mod local;

use anyhow::Result;

/// Where a tenant's buckets live. Creating a bucket that exists is not an error.
pub trait BucketStore: Send + Sync {
    /// Creates the bucket if it does not exist.
    fn create(&self, bucket: &str) -> Result<()>;
    /// Removes the bucket and everything in it; a missing bucket is fine.
    fn remove(&self, bucket: &str) -> Result<()>;
    /// Whether the bucket exists.
    fn exists(&self, bucket: &str) -> Result<bool>;
    /// Bytes stored in the bucket (0 if it does not exist).
    fn size(&self, bucket: &str) -> Result<u64>;
    /// Where the bucket is, as the backend names it (a path, a URL).
    fn location(&self, bucket: &str) -> String;
}
