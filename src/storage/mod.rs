//! Buckets: the `BucketStore` trait every backend implements, and the backends.
//!
//! - `local`: a directory tree, one directory per bucket (the default).
//!
//! Ownership, as for databases and roles: a backend records, when it creates a bucket, the mark
//! of the control plane and tenant it belongs to, and never adopts, empties or removes a bucket
//! that carries another mark or none (several control planes may share one bucket root).

pub mod local;

use anyhow::Result;

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
    fn owner(&self, bucket: &str, mark: &str) -> Result<Owner>;
    /// Creates the bucket with `mark`; one that exists with `mark` is fine, one that exists
    /// without it is refused (exit 3) and left as it is.
    fn create(&self, bucket: &str, mark: &str) -> Result<()>;
    /// Removes the bucket and everything in it if it carries `mark` (a missing bucket is fine;
    /// one without the mark is refused and left as it is). A removal killed midway is finished
    /// by the next call.
    fn remove(&self, bucket: &str, mark: &str) -> Result<()>;
    /// Writes `mark` on an existing bucket that carries no mark at all (`adopt`): true if it
    /// did. A bucket marked for someone else is refused.
    fn adopt(&self, bucket: &str, mark: &str) -> Result<bool>;
    /// Bytes stored in the bucket (0 if it does not exist).
    fn size(&self, bucket: &str) -> Result<u64>;
    /// Where the bucket is, as the backend names it (a path, a URL).
    fn location(&self, bucket: &str) -> String;
}

/// The refusal for a bucket that is not the tenant's.
pub fn refusal(location: &str, found: Option<&str>) -> crate::exit::Failure {
    let why = match found {
        Some(m) => format!(
            "it is marked `{}`, for another tenant or control plane",
            crate::excerpt::excerpt(m)
        ),
        None => "it carries no tenantctl mark".to_owned(),
    };
    crate::exit::Failure::Refused(format!(
        "refusing to touch bucket {}: it exists but was not created by this control plane for this tenant ({why}); \
         tenantctl never adopts, empties or removes what it did not create (a tenant provisioned before \
         marks existed: see `tenantctl adopt`)",
        crate::excerpt::escape(location)
    ))
}
