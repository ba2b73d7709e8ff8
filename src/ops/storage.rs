//! `storage policy <slug>`: the IAM-style policy document that confines an application to a
//! tenant's buckets (siloed) or prefixes in the shared buckets (pooled), for operators to attach
//! to the application's credentials.
//!
//! The application gets its `-uploads` and `-assets` only: `-backups` is written by tenantctl,
//! and an application that could rewrite it could rewrite what a restore brings back. The mark
//! object is denied explicitly, so the application can never make its bucket look foreign (or
//! another tenant's) to tenantctl.

use anyhow::Result;
use serde::Serialize;
use serde_json::{json, Value};

use super::{tenants, ControlPlane};
use crate::error::Failure;
use crate::slug::Slug;
use crate::storage::local::MARK_FILE;

/// The policy document, attached as is: JSON whatever the output format.
#[derive(Debug, Serialize)]
#[serde(transparent)]
pub struct Policy(pub Value);

pub async fn policy(plane: &ControlPlane, slug: &Slug) -> Result<Policy> {
    let t = tenants::find(plane, slug).await?;
    let mut buckets = Vec::new();
    let mut objects = Vec::new();
    let mut marks = Vec::new();
    let mut prefixes = Vec::new();
    for b in crate::storage::buckets(&t.slug, t.isolation)
        .into_iter()
        .filter(|b| b.kind != "backups")
    {
        let Some((bucket, prefix)) = plane.store.placement(&b) else {
            return Err(Failure::BadInput(
                "`storage policy` is for object storage ([storage] backend = \"s3\" in the config \
                 file); the local backend's buckets are directories, which no policy confines"
                    .to_owned(),
            )
            .into());
        };
        buckets.push(format!("arn:aws:s3:::{bucket}"));
        objects.push(format!("arn:aws:s3:::{bucket}/{prefix}*"));
        marks.push(format!("arn:aws:s3:::{bucket}/{prefix}{MARK_FILE}"));
        prefixes.push(prefix);
    }
    let list = if t.isolation == crate::tier::Isolation::Pooled {
        // A shared bucket is listed only under the tenant's own prefix.
        json!({
            "Sid": "ListOwnPrefix",
            "Effect": "Allow",
            "Action": ["s3:ListBucket"],
            "Resource": buckets,
            "Condition": { "StringLike": { "s3:prefix": [format!("{}*", prefixes[0])] } }
        })
    } else {
        json!({
            "Sid": "ListOwnBuckets",
            "Effect": "Allow",
            "Action": ["s3:ListBucket", "s3:GetBucketLocation", "s3:ListBucketMultipartUploads"],
            "Resource": buckets
        })
    };
    Ok(Policy(json!({
        "Version": "2012-10-17",
        "Statement": [
            list,
            {
                "Sid": "ReadWriteOwnObjects",
                "Effect": "Allow",
                "Action": [
                    "s3:GetObject",
                    "s3:PutObject",
                    "s3:DeleteObject",
                    "s3:AbortMultipartUpload",
                    "s3:ListMultipartUploadParts"
                ],
                "Resource": objects
            },
            {
                "Sid": "KeepTenantctlMark",
                "Effect": "Deny",
                "Action": ["s3:PutObject", "s3:DeleteObject"],
                "Resource": marks
            }
        ]
    })))
}
