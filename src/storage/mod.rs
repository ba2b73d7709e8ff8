//! Buckets: the `BucketStore` trait every backend implements, and the backends.
//!
//! - `local`: a directory tree, one directory per bucket (the default).
//! - `s3`: an S3-compatible object store; a pooled tenant's buckets are prefixes in shared
//!   buckets there, a siloed tenant's are buckets of its own.
//!
//! Ownership, as for databases and roles: a backend records, when it creates a bucket, the mark
//! of the control plane and tenant it belongs to, and never adopts, empties or removes a bucket
//! that carries another mark or none (several control planes may share one bucket root).

pub mod local;
pub mod s3;

use std::fmt;
use std::path::Path;

use anyhow::Result;
use bytes::Bytes;

use crate::config::StorageBackend;
use crate::slug::Slug;
use crate::tier::Isolation;

/// One of a tenant's buckets, `<slug>-<kind>` as the operations name it. Where it is depends
/// on the backend: a directory of that name (local), a bucket of its own (s3, siloed tenant)
/// or the prefix `<slug>/` in the shared bucket of its kind (s3, pooled tenant).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TenantBucket {
    pub slug: String,
    pub kind: &'static str,
    pub pooled: bool,
}

impl TenantBucket {
    /// `<slug>-<kind>`.
    pub fn name(&self) -> String {
        format!("{}-{}", self.slug, self.kind)
    }
}

impl fmt::Display for TenantBucket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.slug, self.kind)
    }
}

/// Every bucket of a tenant, in the order of `tenant::BUCKET_KINDS`.
pub fn buckets(slug: &Slug, isolation: Isolation) -> Vec<TenantBucket> {
    crate::tenant::BUCKET_KINDS
        .iter()
        .map(|kind| TenantBucket {
            slug: slug.to_string(),
            kind,
            pooled: isolation == Isolation::Pooled,
        })
        .collect()
}

/// The tenant's `-backups` bucket.
pub fn backups_bucket(slug: &Slug, isolation: Isolation) -> TenantBucket {
    TenantBucket {
        slug: slug.to_string(),
        kind: "backups",
        pooled: isolation == Isolation::Pooled,
    }
}

/// An object in a tenant's bucket: its key relative to the bucket (or the tenant's prefix).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectInfo {
    pub key: String,
    pub size: u64,
}

/// The store `backend` names: directories under `storage_root`, or S3 (armed with the test
/// builds' `failpoint`).
pub fn open(
    backend: &StorageBackend,
    storage_root: &Path,
    failpoint: Option<&str>,
) -> Result<Box<dyn BucketStore>> {
    Ok(match backend {
        StorageBackend::Local => Box::new(local::LocalDirStore::new(storage_root.to_path_buf())),
        StorageBackend::S3(s3) => {
            let mut s3 = (**s3).clone();
            s3.failpoint = failpoint.map(str::to_owned);
            Box::new(s3::S3Store::new(s3)?)
        }
    })
}

/// A key tenantctl writes into a tenant's bucket (backups): printable ASCII path segments,
/// never the mark's name, never `.` or `..`.
pub fn check_key(key: &str) -> Result<()> {
    let ok = !key.is_empty()
        && key.len() <= 512
        && key.split('/').all(|seg| {
            !seg.is_empty()
                && seg != "."
                && seg != ".."
                && seg != local::MARK_FILE
                && seg
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        });
    anyhow::ensure!(ok, "invalid object key `{}`", crate::excerpt::excerpt(key));
    Ok(())
}

/// Who a bucket belongs to, by the mark recorded when it was created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owner {
    Absent,
    /// It carries the mark asked about.
    Ours,
    /// It exists with another mark (`Some`) or none.
    Foreign(Option<String>),
}

/// Where a tenant's buckets live.
pub trait BucketStore: Send + Sync {
    /// Who `bucket` belongs to.
    fn owner(&self, bucket: &TenantBucket, mark: &str) -> Result<Owner>;
    /// Creates the bucket with `mark`; one that exists with `mark` is fine, one that exists
    /// without it is refused (exit 3) and left as it is.
    fn create(&self, bucket: &TenantBucket, mark: &str) -> Result<()>;
    /// Removes the bucket and everything in it if it carries `mark` (a missing bucket is fine;
    /// one without the mark is refused and left as it is). A removal killed midway is finished
    /// by the next call.
    fn remove(&self, bucket: &TenantBucket, mark: &str) -> Result<()>;
    /// Writes `mark` on an existing bucket that carries no mark at all (`adopt`): true if it
    /// did. A bucket marked for someone else is refused.
    fn adopt(&self, bucket: &TenantBucket, mark: &str) -> Result<bool>;
    /// Bytes stored in the bucket (0 if it does not exist).
    fn size(&self, bucket: &TenantBucket) -> Result<u64>;
    /// The bytes of each bucket that carries its mark, in order; a bucket marked otherwise (or
    /// not at all) is an error, not a number. A backend may measure them concurrently.
    fn measure(&self, buckets: &[(TenantBucket, String)]) -> Vec<Result<u64>> {
        buckets
            .iter()
            .map(|(b, mark)| match self.owner(b, mark)? {
                Owner::Foreign(found) => Err(refusal(&self.location(b), found.as_deref()).into()),
                _ => self.size(b),
            })
            .collect()
    }
    /// Where the bucket is, as the backend names it (a path, a URL).
    fn location(&self, bucket: &TenantBucket) -> String;
    /// The bucket and key prefix an access policy names (`None`: the backend has no policies).
    fn placement(&self, _bucket: &TenantBucket) -> Option<(String, String)> {
        None
    }

    // Objects, for backups. The caller has checked that the bucket carries its mark; keys
    // pass `check_key`.

    /// Writes `data` under `key`, replacing what is there, never half-written.
    fn put(&self, bucket: &TenantBucket, key: &str, data: Bytes) -> Result<()>;
    /// The object under `key`, `None` if there is none.
    fn get(&self, bucket: &TenantBucket, key: &str) -> Result<Option<Bytes>>;
    /// Every object whose key starts with `prefix` (the mark excepted), sorted by key.
    fn list(&self, bucket: &TenantBucket, prefix: &str) -> Result<Vec<ObjectInfo>>;
    /// Deletes the object under `key` (a missing one is fine).
    fn delete(&self, bucket: &TenantBucket, key: &str) -> Result<()>;
}

/// The refusal for a bucket that is not the tenant's.
pub fn refusal(location: &str, found: Option<&str>) -> crate::error::Failure {
    let why = match found {
        Some(m) => format!(
            "it is marked `{}`, for another tenant or control plane",
            crate::excerpt::excerpt(m)
        ),
        None => "it carries no tenantctl mark".to_owned(),
    };
    crate::error::Failure::Refused(format!(
        "refusing to touch bucket {}: it exists but was not created by this control plane for this tenant ({why}); \
         tenantctl never adopts, empties or removes what it did not create (a tenant provisioned before \
         marks existed: see `tenantctl adopt`)",
        crate::excerpt::escape(location)
    ))
}
