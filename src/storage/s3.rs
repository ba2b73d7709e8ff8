//! `S3Store`: tenant buckets on an S3-compatible object store (AWS S3, MinIO, Ceph, R2, …)
//! through the `object_store` crate.
//!
//! A siloed tenant's bucket is a bucket of its own, `<bucket_prefix><slug>-<kind>`; a pooled
//! tenant's is the prefix `<slug>/` in the shared bucket `<shared_buckets>-<kind>`. Each carries
//! its mark as the object `.tenantctl-bucket` at its root (the bucket's, or the prefix's), which
//! every S3-compatible server stores (bucket tagging is not implemented everywhere). The shared
//! buckets carry the control plane's own mark, `tenantctl:<control plane>:shared`.
//!
//! A removal deletes every object but the mark (paged listing, batched deletes), then the mark,
//! then (a bucket of its own) the bucket: killed before the mark goes, the next removal finds
//! the mark and carries on.
//!
//! `object_store` has no call for creating or deleting a bucket: those two (and the bucket's
//! HEAD) are sent as requests presigned by `object_store`'s own signer, so one set of
//! credentials and one signature implementation serve everything.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use bytes::Bytes;
use futures_util::stream::{StreamExt, TryStreamExt};
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path as ObjectPath;
use object_store::signer::Signer;
use object_store::{ObjectStore, PutPayload};
use reqwest::{Method, StatusCode};
use serde::Deserialize;

use super::local::MARK_FILE;
use super::{refusal, BucketStore, ObjectInfo, Owner, TenantBucket};
use crate::error::Failure;

/// `[storage]` in `tenantctl.toml`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageFile {
    /// `local` (the default: directories under `storage_root`) or `s3`.
    backend: Option<Backend>,
    /// The store's URL (`http://127.0.0.1:9000`); absent: AWS S3 in `region`. With
    /// virtual-hosted requests it contains `{bucket}` where the bucket's name goes.
    endpoint: Option<String>,
    region: Option<String>,
    /// Path-style requests (`https://host/bucket/key`) rather than virtual-hosted ones
    /// (`https://bucket.host/key`). Default: path-style with an `endpoint`, virtual-hosted on AWS.
    path_style: Option<bool>,
    /// Prepended to a siloed tenant's bucket names (`acme-` gives `acme-t1-uploads`).
    bucket_prefix: Option<String>,
    /// The shared buckets of pooled tenants are `<shared_buckets>-uploads`, `-assets`, `-backups`.
    shared_buckets: Option<String>,
    /// Buckets measured at once (1 to 64, default 8).
    concurrency: Option<usize>,
}

#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum Backend {
    Local,
    S3,
}

/// Credentials for the store, from the AWS environment variables or a profile. Never shown.
#[derive(Clone)]
pub struct Credentials {
    pub key_id: String,
    pub secret: String,
    pub token: Option<String>,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Credentials {{ key_id: {:?}, .. }}", self.key_id)
    }
}

/// The resolved S3 settings.
#[derive(Clone, Debug)]
pub struct S3Settings {
    pub endpoint: Option<String>,
    pub region: String,
    pub path_style: bool,
    pub bucket_prefix: String,
    pub shared_buckets: String,
    pub concurrency: usize,
    pub credentials: Option<Credentials>,
    /// Debug builds: `Settings::failpoint`, so a test can kill a removal midway.
    pub failpoint: Option<String>,
}

/// The bucket-name rules of S3: 3 to 63 characters of `a-z`, `0-9`, `.` and `-`, starting and
/// ending with a letter or digit, no `..`, not an IPv4 address, not `xn--…` nor `…-s3alias`.
pub fn check_bucket_name(name: &str) -> std::result::Result<(), &'static str> {
    let b = name.as_bytes();
    if !(3..=63).contains(&b.len()) {
        return Err("a bucket name is 3 to 63 characters");
    }
    if !b
        .iter()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b'.' | b'-'))
    {
        return Err("a bucket name has only a-z, 0-9, '.' and '-'");
    }
    let alnum = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    if !alnum(&b[0]) || !alnum(&b[b.len() - 1]) {
        return Err("a bucket name starts and ends with a letter or digit");
    }
    if name.contains("..") {
        return Err("a bucket name has no `..`");
    }
    if name.parse::<std::net::Ipv4Addr>().is_ok() {
        return Err("a bucket name is not an IP address");
    }
    if name.starts_with("xn--") || name.ends_with("-s3alias") || name.ends_with("--ol-s3") {
        return Err("a bucket name does not start with `xn--` nor end with `-s3alias`");
    }
    Ok(())
}

fn bad(key: &str, value: &str, why: &str) -> Failure {
    Failure::BadInput(format!(
        "invalid [storage] {key} `{}` in the config file: {why}",
        crate::excerpt::excerpt(value)
    ))
}

impl S3Settings {
    /// `None` when the file asks for the local backend.
    pub fn from_file(
        file: StorageFile,
        credentials: Option<Credentials>,
    ) -> Result<Option<S3Settings>, Failure> {
        if file.backend.unwrap_or(Backend::Local) == Backend::Local {
            let s3_only = [
                ("endpoint", file.endpoint.is_some()),
                ("region", file.region.is_some()),
                ("path_style", file.path_style.is_some()),
                ("bucket_prefix", file.bucket_prefix.is_some()),
                ("shared_buckets", file.shared_buckets.is_some()),
                ("concurrency", file.concurrency.is_some()),
            ];
            if let Some((key, _)) = s3_only.iter().find(|(_, set)| *set) {
                return Err(Failure::BadInput(format!(
                    "[storage] {key} is set in the config file but backend is not `s3`; add backend = \"s3\" or remove it"
                )));
            }
            return Ok(None);
        }
        let path_style = file.path_style.unwrap_or(file.endpoint.is_some());
        if let Some(ep) = &file.endpoint {
            let url = reqwest::Url::parse(&ep.replace("{bucket}", "bucket"))
                .ok()
                .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some());
            if url.is_none() {
                return Err(bad("endpoint", ep, "use an http:// or https:// URL"));
            }
            if !path_style && !ep.contains("{bucket}") {
                return Err(bad(
                    "endpoint",
                    ep,
                    "with path_style = false the endpoint names the bucket as `{bucket}` (https://{bucket}.host)",
                ));
            }
            if path_style && ep.contains("{bucket}") {
                return Err(bad(
                    "endpoint",
                    ep,
                    "`{bucket}` is for virtual-hosted requests (path_style = false)",
                ));
            }
        }
        let region = file.region.unwrap_or_else(|| "us-east-1".to_owned());
        let region_ok = !region.is_empty()
            && region.len() <= 32
            && region
                .bytes()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-');
        if !region_ok {
            return Err(bad(
                "region",
                &region,
                "use a region name such as `eu-west-1`",
            ));
        }
        let bucket_prefix = file.bucket_prefix.unwrap_or_default();
        // With the longest slug (40) and kind (`-uploads`, 8) a bucket name stays within 63.
        if bucket_prefix.len() > 15 {
            return Err(bad(
                "bucket_prefix",
                &bucket_prefix,
                "at most 15 characters, so that every tenant's bucket name fits S3's 63",
            ));
        }
        if !bucket_prefix.is_empty() {
            check_bucket_name(&format!("{bucket_prefix}a-uploads"))
                .map_err(|why| bad("bucket_prefix", &bucket_prefix, why))?;
        }
        let shared_buckets = file
            .shared_buckets
            .unwrap_or_else(|| "tenantctl-pooled".to_owned());
        for kind in crate::tenant::BUCKET_KINDS {
            check_bucket_name(&format!("{shared_buckets}-{kind}"))
                .map_err(|why| bad("shared_buckets", &shared_buckets, why))?;
        }
        let concurrency = file.concurrency.unwrap_or(8);
        if !(1..=64).contains(&concurrency) {
            return Err(bad(
                "concurrency",
                &concurrency.to_string(),
                "a number from 1 to 64",
            ));
        }
        Ok(Some(S3Settings {
            endpoint: file.endpoint,
            region,
            path_style,
            bucket_prefix,
            shared_buckets,
            concurrency,
            credentials,
            failpoint: None,
        }))
    }
}

/// The credentials of `profile` in an AWS shared credentials file (INI).
pub fn profile_credentials(text: &str, profile: &str) -> Option<Credentials> {
    let mut in_profile = false;
    let (mut key, mut secret, mut token) = (None, None, None);
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') || line.starts_with(';') || line.is_empty() {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            in_profile = name.trim() == profile;
            continue;
        }
        if !in_profile {
            continue;
        }
        if let Some((k, v)) = line.split_once('=') {
            let v = Some(v.trim().to_owned());
            match k.trim() {
                "aws_access_key_id" => key = v,
                "aws_secret_access_key" => secret = v,
                "aws_session_token" => token = v,
                _ => {}
            }
        }
    }
    Some(Credentials {
        key_id: key?,
        secret: secret?,
        token,
    })
}

/// Runs a future to completion from synchronous code, on the caller's runtime when it has
/// worker threads to spare, else on a runtime of its own in a scoped thread.
fn block<F>(fut: F) -> F::Output
where
    F: Future + Send,
    F::Output: Send,
{
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current() {
        Ok(h) if h.runtime_flavor() == RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(|| h.block_on(fut))
        }
        _ => std::thread::scope(|s| {
            s.spawn(|| {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("a current-thread runtime")
                    .block_on(fut)
            })
            .join()
            .expect("the storage thread")
        }),
    }
}

pub struct S3Store {
    settings: S3Settings,
    http: reqwest::Client,
    clients: Mutex<HashMap<String, Arc<AmazonS3>>>,
}

/// What a bucket-level request found.
enum BucketState {
    Absent,
    Present,
    /// It exists but these credentials may not see it (someone else's).
    Forbidden,
}

impl S3Store {
    pub fn new(settings: S3Settings) -> Result<S3Store> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .context("setting up the HTTP client for object storage")?;
        Ok(S3Store {
            settings,
            http,
            clients: Mutex::new(HashMap::new()),
        })
    }

    /// The physical bucket and key prefix of a tenant bucket.
    fn place(&self, b: &TenantBucket) -> (String, String) {
        if b.pooled {
            (
                format!("{}-{}", self.settings.shared_buckets, b.kind),
                format!("{}/", b.slug),
            )
        } else {
            (
                format!("{}{}-{}", self.settings.bucket_prefix, b.slug, b.kind),
                String::new(),
            )
        }
    }

    fn client(&self, bucket: &str) -> Result<Arc<AmazonS3>> {
        if let Err(why) = check_bucket_name(bucket) {
            return Err(Failure::BadInput(format!(
                "invalid bucket name `{}`: {why}",
                crate::excerpt::excerpt(bucket)
            ))
            .into());
        }
        let mut clients = self.clients.lock().expect("not poisoned");
        if let Some(c) = clients.get(bucket) {
            return Ok(c.clone());
        }
        let s = &self.settings;
        let mut builder = AmazonS3Builder::new()
            .with_bucket_name(bucket)
            .with_region(&s.region)
            .with_virtual_hosted_style_request(!s.path_style);
        if let Some(ep) = &s.endpoint {
            builder = builder
                .with_endpoint(ep.replace("{bucket}", bucket))
                .with_allow_http(ep.starts_with("http://"));
        }
        match &s.credentials {
            Some(c) => {
                builder = builder
                    .with_access_key_id(&c.key_id)
                    .with_secret_access_key(&c.secret);
                if let Some(t) = &c.token {
                    builder = builder.with_token(t);
                }
            }
            None => anyhow::bail!(
                "no credentials for object storage: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY \
                 (and AWS_SESSION_TOKEN), or AWS_PROFILE naming a profile in ~/.aws/credentials"
            ),
        }
        let client = Arc::new(
            builder
                .build()
                .with_context(|| format!("configuring object storage for bucket {bucket}"))?,
        );
        clients.insert(bucket.to_owned(), client.clone());
        Ok(client)
    }

    /// Debug builds: abort at the named point (`Settings::failpoint`), as a kill would.
    fn failpoint(&self, point: &str) {
        if cfg!(debug_assertions) && self.settings.failpoint.as_deref() == Some(point) {
            std::process::abort();
        }
    }

    fn shown(&self, bucket: &str, prefix: &str) -> String {
        format!("s3://{bucket}/{prefix}")
    }

    /// A bucket-level request (HEAD, PUT = create, DELETE), presigned by `object_store`.
    async fn bucket_request(
        &self,
        bucket: &str,
        method: Method,
        body: Option<String>,
    ) -> Result<(StatusCode, String)> {
        let client = self.client(bucket)?;
        let url = client
            .signed_url(
                method.clone(),
                &ObjectPath::from(""),
                Duration::from_secs(300),
            )
            .await
            .with_context(|| format!("signing a request for bucket {bucket}"))?;
        let mut req = self.http.request(method.clone(), url);
        if let Some(body) = body {
            req = req.body(body);
        }
        let resp = req
            .send()
            .await
            .with_context(|| format!("{method} bucket {bucket}"))?;
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        Ok((status, text))
    }

    async fn bucket_state(&self, bucket: &str) -> Result<BucketState> {
        let (status, body) = self.bucket_request(bucket, Method::HEAD, None).await?;
        match status {
            s if s.is_success() => Ok(BucketState::Present),
            StatusCode::NOT_FOUND => Ok(BucketState::Absent),
            StatusCode::FORBIDDEN => Ok(BucketState::Forbidden),
            s => anyhow::bail!("looking up bucket {bucket}: {s} {}", short(&body)),
        }
    }

    /// Creates the bucket; false if it already existed.
    async fn create_bucket(&self, bucket: &str) -> Result<bool> {
        let body = (self.settings.region != "us-east-1").then(|| {
            format!(
                "<CreateBucketConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">\
                 <LocationConstraint>{}</LocationConstraint></CreateBucketConfiguration>",
                self.settings.region
            )
        });
        let (status, text) = self.bucket_request(bucket, Method::PUT, body).await?;
        match status {
            s if s.is_success() => Ok(true),
            StatusCode::CONFLICT => Ok(false),
            s => anyhow::bail!("creating bucket {bucket}: {s} {}", short(&text)),
        }
    }

    async fn delete_bucket(&self, bucket: &str) -> Result<()> {
        let (status, text) = self.bucket_request(bucket, Method::DELETE, None).await?;
        match status {
            s if s.is_success() || s == StatusCode::NOT_FOUND => Ok(()),
            s => anyhow::bail!("deleting bucket {bucket}: {s} {}", short(&text)),
        }
    }

    async fn read_object(&self, bucket: &str, key: &str) -> Result<Option<Bytes>> {
        let client = self.client(bucket)?;
        match client.get(&ObjectPath::from(key)).await {
            Ok(r) => {
                Ok(Some(r.bytes().await.with_context(|| {
                    format!("reading {}", self.shown(bucket, key))
                })?))
            }
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e).with_context(|| format!("reading {}", self.shown(bucket, key))),
        }
    }

    async fn read_mark(&self, bucket: &str, prefix: &str) -> Result<Option<String>> {
        let data = self
            .read_object(bucket, &format!("{prefix}{MARK_FILE}"))
            .await?;
        Ok(data.map(|d| {
            String::from_utf8_lossy(&d[..d.len().min(512)])
                .trim()
                .to_owned()
        }))
    }

    async fn write_mark(&self, bucket: &str, prefix: &str, mark: &str) -> Result<()> {
        let key = format!("{prefix}{MARK_FILE}");
        self.client(bucket)?
            .put(
                &ObjectPath::from(key.as_str()),
                PutPayload::from(format!("{mark}\n")),
            )
            .await
            .with_context(|| format!("marking {}", self.shown(bucket, prefix)))?;
        Ok(())
    }

    /// Every object under `prefix` (paged by `object_store`, 1,000 keys a page).
    async fn list_all(&self, bucket: &str, prefix: &str) -> Result<Vec<(String, u64)>> {
        let client = self.client(bucket)?;
        let p = (!prefix.is_empty()).then(|| ObjectPath::from(prefix));
        client
            .list(p.as_ref())
            .map_ok(|m| (m.location.to_string(), m.size))
            .try_collect()
            .await
            .with_context(|| format!("listing {}", self.shown(bucket, prefix)))
    }

    async fn owner_async(&self, b: &TenantBucket, mark: &str) -> Result<Owner> {
        let (bucket, prefix) = self.place(b);
        match self.bucket_state(&bucket).await? {
            BucketState::Absent => return Ok(Owner::Absent),
            BucketState::Forbidden => return Ok(Owner::Foreign(None)),
            BucketState::Present => {}
        }
        match self.read_mark(&bucket, &prefix).await? {
            Some(m) if m == mark => Ok(Owner::Ours),
            Some(m) => Ok(Owner::Foreign(Some(m))),
            // A bucket without a mark is someone's; a prefix with nothing under it is nobody's.
            None if prefix.is_empty() => Ok(Owner::Foreign(None)),
            None => {
                let client = self.client(&bucket)?;
                let p = ObjectPath::from(prefix.as_str());
                let any = client.list(Some(&p)).next().await.transpose();
                match any.with_context(|| format!("listing {}", self.shown(&bucket, &prefix)))? {
                    Some(_) => Ok(Owner::Foreign(None)),
                    None => Ok(Owner::Absent),
                }
            }
        }
    }

    /// The mark of the shared buckets, from a tenant's mark `tenantctl:<plane>:<tenant>`.
    fn shared_mark(mark: &str) -> String {
        match mark.rsplit_once(':') {
            Some((plane, _)) => format!("{plane}:shared"),
            None => format!("{mark}:shared"),
        }
    }

    /// Creates (and marks) a bucket of our own, or finds it ours.
    async fn ensure_bucket(&self, bucket: &str, mark: &str) -> Result<()> {
        let refuse = |found: Option<String>| -> anyhow::Error {
            refusal(&self.shown(bucket, ""), found.as_deref()).into()
        };
        match self.bucket_state(bucket).await? {
            BucketState::Forbidden => return Err(refuse(None)),
            BucketState::Present => {
                return match self.read_mark(bucket, "").await? {
                    Some(m) if m == mark => Ok(()),
                    other => Err(refuse(other)),
                }
            }
            BucketState::Absent => {}
        }
        if !self.create_bucket(bucket).await? {
            // A concurrent creator (or someone else) won: ours only if it carries our mark.
            return match self.read_mark(bucket, "").await? {
                Some(m) if m == mark => Ok(()),
                other => Err(refuse(other)),
            };
        }
        self.failpoint("storage:created-unmarked");
        self.write_mark(bucket, "", mark).await
    }

    async fn create_async(&self, b: &TenantBucket, mark: &str) -> Result<()> {
        let (bucket, prefix) = self.place(b);
        if prefix.is_empty() {
            return self.ensure_bucket(&bucket, mark).await;
        }
        self.ensure_bucket(&bucket, &Self::shared_mark(mark))
            .await?;
        match self.owner_async(b, mark).await? {
            Owner::Ours => Ok(()),
            Owner::Foreign(found) => {
                Err(refusal(&self.shown(&bucket, &prefix), found.as_deref()).into())
            }
            Owner::Absent => self.write_mark(&bucket, &prefix, mark).await,
        }
    }

    async fn remove_async(&self, b: &TenantBucket, mark: &str) -> Result<()> {
        let (bucket, prefix) = self.place(b);
        match self.owner_async(b, mark).await? {
            Owner::Absent => return Ok(()),
            Owner::Foreign(found) => {
                return Err(refusal(&self.shown(&bucket, &prefix), found.as_deref()).into())
            }
            Owner::Ours => {}
        }
        let client = self.client(&bucket)?;
        let mark_key = format!("{prefix}{MARK_FILE}");
        // Page by page: each listed page is deleted in batches (DeleteObjects, 1,000 keys a
        // request) before the next is fetched; the mark is kept until nothing else is left.
        let p = (!prefix.is_empty()).then(|| ObjectPath::from(prefix.as_str()));
        let keys = client
            .list(p.as_ref())
            .map_ok(|m| m.location)
            .try_filter(|loc| std::future::ready(loc.as_ref() != mark_key));
        let mut deleted = 0usize;
        let mut results = client.delete_stream(keys.boxed());
        while let Some(r) = results.next().await {
            match r {
                Ok(_) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => {
                    return Err(e).with_context(|| {
                        format!("deleting the objects of {}", self.shown(&bucket, &prefix))
                    })
                }
            }
            deleted += 1;
            if deleted == 3 {
                self.failpoint("storage:removing-objects");
            }
        }
        drop(results);
        client
            .delete(&ObjectPath::from(mark_key.as_str()))
            .await
            .or_else(|e| match e {
                object_store::Error::NotFound { .. } => Ok(()),
                e => Err(e),
            })
            .with_context(|| format!("deleting the mark of {}", self.shown(&bucket, &prefix)))?;
        if prefix.is_empty() {
            self.failpoint("storage:unmarked");
            self.delete_bucket(&bucket).await?;
        }
        Ok(())
    }

    /// The bytes of a bucket that carries `mark`.
    async fn measure_one(&self, b: &TenantBucket, mark: &str) -> Result<u64> {
        match self.owner_async(b, mark).await? {
            Owner::Foreign(found) => Err(refusal(&self.location(b), found.as_deref()).into()),
            _ => self.size_async(b).await,
        }
    }

    async fn size_async(&self, b: &TenantBucket) -> Result<u64> {
        let (bucket, prefix) = self.place(b);
        if let BucketState::Absent = self.bucket_state(&bucket).await? {
            return Ok(0);
        }
        let mark_key = format!("{prefix}{MARK_FILE}");
        Ok(self
            .list_all(&bucket, &prefix)
            .await?
            .into_iter()
            .filter(|(k, _)| *k != mark_key)
            .map(|(_, size)| size)
            .sum())
    }
}

fn short(text: &str) -> String {
    crate::excerpt::excerpt_n(text.trim(), 200)
}

impl BucketStore for S3Store {
    fn owner(&self, bucket: &TenantBucket, mark: &str) -> Result<Owner> {
        block(self.owner_async(bucket, mark))
    }

    fn create(&self, bucket: &TenantBucket, mark: &str) -> Result<()> {
        block(self.create_async(bucket, mark))
    }

    fn remove(&self, bucket: &TenantBucket, mark: &str) -> Result<()> {
        block(self.remove_async(bucket, mark))
    }

    fn adopt(&self, bucket: &TenantBucket, mark: &str) -> Result<bool> {
        block(async {
            let (b, prefix) = self.place(bucket);
            match self.owner_async(bucket, mark).await? {
                Owner::Absent | Owner::Ours => Ok(false),
                // Readable and unmarked: the operator says it is the tenant's.
                Owner::Foreign(None) if self.bucket_state(&b).await?.is_present() => {
                    self.write_mark(&b, &prefix, mark).await?;
                    Ok(true)
                }
                Owner::Foreign(found) => {
                    Err(refusal(&self.shown(&b, &prefix), found.as_deref()).into())
                }
            }
        })
    }

    fn size(&self, bucket: &TenantBucket) -> Result<u64> {
        block(self.size_async(bucket))
    }

    fn measure(&self, buckets: &[(TenantBucket, String)]) -> Vec<Result<u64>> {
        type Measuring<'a> = std::pin::Pin<Box<dyn Future<Output = Result<u64>> + Send + 'a>>;
        let futures: Vec<Measuring<'_>> = buckets
            .iter()
            .map(|(b, m)| Box::pin(self.measure_one(b, m)) as Measuring<'_>)
            .collect();
        block(async move {
            futures_util::stream::iter(futures)
                .buffered(self.settings.concurrency)
                .collect()
                .await
        })
    }

    fn location(&self, bucket: &TenantBucket) -> String {
        let (b, prefix) = self.place(bucket);
        self.shown(&b, &prefix)
    }

    fn placement(&self, bucket: &TenantBucket) -> Option<(String, String)> {
        Some(self.place(bucket))
    }

    fn put(&self, bucket: &TenantBucket, key: &str, data: Bytes) -> Result<()> {
        super::check_key(key)?;
        let (b, prefix) = self.place(bucket);
        let full = format!("{prefix}{key}");
        block(async {
            // A single PUT lands whole or not at all.
            self.client(&b)?
                .put(&ObjectPath::from(full.as_str()), PutPayload::from(data))
                .await
                .with_context(|| format!("writing {}", self.shown(&b, &full)))?;
            Ok(())
        })
    }

    fn get(&self, bucket: &TenantBucket, key: &str) -> Result<Option<Bytes>> {
        super::check_key(key)?;
        let (b, prefix) = self.place(bucket);
        block(self.read_object(&b, &format!("{prefix}{key}")))
    }

    fn list(&self, bucket: &TenantBucket, key_prefix: &str) -> Result<Vec<ObjectInfo>> {
        let (b, prefix) = self.place(bucket);
        let mut out: Vec<ObjectInfo> = block(self.list_all(&b, &prefix))?
            .into_iter()
            .filter_map(|(k, size)| {
                let key = k.strip_prefix(&prefix)?.to_owned();
                (key != MARK_FILE && key.starts_with(key_prefix))
                    .then_some(ObjectInfo { key, size })
            })
            .collect();
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    fn delete(&self, bucket: &TenantBucket, key: &str) -> Result<()> {
        super::check_key(key)?;
        let (b, prefix) = self.place(bucket);
        let full = format!("{prefix}{key}");
        block(async {
            match self
                .client(&b)?
                .delete(&ObjectPath::from(full.as_str()))
                .await
            {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                Err(e) => Err(e).with_context(|| format!("deleting {}", self.shown(&b, &full))),
            }
        })
    }
}

impl BucketState {
    fn is_present(&self) -> bool {
        matches!(self, BucketState::Present)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_names_follow_the_s3_rules() {
        assert!(check_bucket_name("acme-uploads").is_ok());
        assert!(check_bucket_name("a.b-c").is_ok());
        for bad in [
            "ab",
            "Acme",
            "a..b",
            "192.168.1.2",
            "-ab",
            "ab-",
            "a_b",
            "xn--ab",
        ] {
            assert!(check_bucket_name(bad).is_err(), "{bad}");
        }
        assert!(check_bucket_name(&"a".repeat(64)).is_err());
    }

    #[test]
    fn profile_credentials_are_read_from_their_section() {
        let text = "[default]\naws_access_key_id = A\naws_secret_access_key = B\n\n[ops]\naws_access_key_id=C\naws_secret_access_key=D\naws_session_token=E\n";
        let c = profile_credentials(text, "ops").unwrap();
        assert_eq!((c.key_id.as_str(), c.secret.as_str()), ("C", "D"));
        assert_eq!(c.token.as_deref(), Some("E"));
        assert!(profile_credentials(text, "none").is_none());
        assert!(!format!("{c:?}").contains('D'));
    }
}
