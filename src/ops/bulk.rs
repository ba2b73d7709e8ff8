//! Bulk onboarding: `provision --file tenants.csv`, for a platform that moves its existing
//! customers in. Each tenant goes through `provision::provision`, unchanged.
//!
//! 1. **read and check every row** (`Batch::read`): header `slug,tier,name,owner_email`, each
//!    row validated as `provision` validates its arguments, a slug twice in the file is bad
//!    input; any bad row: exit 2 naming its line, nothing created.
//! 2. **recover**: a password whose tenant became active but whose line a killed run never
//!    appended to the password file is appended now (see *passwords*).
//! 3. **skip the active**: a tenant already active on its tier is skipped, not re-passworded.
//! 4. **provision the rest, N at a time**: the new tenants' owner passwords are hashed ahead
//!    of them, in file order, on one thread per core that never waits on the server (bcrypt
//!    is most of a tenant's cost: with hashing inside each run, a run waiting on the server
//!    left its core idle); a resumed tenant hashes inside its run, if its journal lacks step
//!    4. Silos are copied from the template database, refreshed once before the first
//!    (`ops::template`). A tenant that fails is named in the summary and the others carry
//!    on; running the same command again finishes what is missing (each tenant resumes from
//!    its journal).
//!
//! *Passwords* never reach the terminal. Each tenant's is written by step 4 of its
//! provisioning into its own 0600 file in a private directory beside the password file
//! (`F.partial/`, mode 0700), then appended as one `slug,password` line to the password file
//! (0600, append-only) and the per-tenant file removed. A crash between the two leaves the
//! per-tenant file, which the next run appends once its tenant is active (before that, the
//! tenant's step 4 may still issue a newer password, which overwrites it).

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Instant;

use anyhow::{Context as _, Result};
use futures_util::StreamExt;
use serde::Serialize;

use super::provision::{self, Args, Request};
use super::{Context, ControlPlane, Reporter, Silent};
use crate::error::Failure;
use crate::excerpt::excerpt;
use crate::tenant::Status;
use crate::text_file;

/// The header a tenant file starts with.
pub const HEADER: [&str; 4] = ["slug", "tier", "name", "owner_email"];
/// `--concurrency` at most: a tenant in flight holds up to four connections (two pooled to the
/// control database, its advisory lock's, its tenant database's), and PostgreSQL's default
/// `max_connections` is 100.
const MAX_CONCURRENCY: usize = 20;
/// The default (2 × cores) at most.
const DEFAULT_CONCURRENCY_MAX: usize = 16;
/// A checked tenant file: nothing has been touched yet.
pub struct Batch {
    pub file: PathBuf,
    pub rows: Vec<(i64, Request)>,
    pub password_file: PathBuf,
    pub concurrency: usize,
}

/// One tenant that could not be provisioned.
#[derive(Debug, Serialize)]
pub struct Failed {
    pub line: i64,
    pub slug: String,
    pub error: String,
}

/// What `provision --file` did (`-o json`: this object).
#[derive(Debug, Serialize)]
pub struct Summary {
    pub file: String,
    pub rows: usize,
    pub provisioned: usize,
    /// Already active on their tier: nothing done, no new password.
    pub skipped: usize,
    pub failed: Vec<Failed>,
    pub password_file: String,
    pub concurrency: usize,
    pub duration_ms: u128,
}

impl Batch {
    /// Step 1: reads `file` and checks every row, the password file and the concurrency.
    pub fn read(
        ctx: &Context,
        file: &Path,
        password_file: Option<&Path>,
        concurrency: Option<usize>,
        region: Option<&str>,
    ) -> Result<Batch, Failure> {
        let origin = text_file::shown(file);
        // `--region` holds for every row: checked once, before the rows.
        if let Some(r) = region {
            r.parse::<crate::region::Region>()?;
        }
        let concurrency = match concurrency {
            Some(0) => {
                return Err(Failure::BadInput(
                    "invalid --concurrency 0: give at least 1".to_owned(),
                ))
            }
            Some(n) if n > MAX_CONCURRENCY => {
                return Err(Failure::BadInput(format!(
                    "invalid --concurrency {n}: at most {MAX_CONCURRENCY} (each tenant in flight holds up to four server connections)"
                )))
            }
            Some(n) => n,
            None => (2 * std::thread::available_parallelism().map_or(1, |n| n.get()))
                .min(DEFAULT_CONCURRENCY_MAX),
        };
        let password_file = match password_file {
            Some(p) => p.to_path_buf(),
            None => {
                let mut p = file.as_os_str().to_owned();
                p.push(".passwords");
                PathBuf::from(p)
            }
        };
        check_password_file(&password_file)?;
        let text = text_file::read(file, "tenant file", text_file::USAGE_CSV)?;
        let mut rows = Vec::new();
        let mut errors = Vec::new();
        let mut first_line: HashMap<String, i64> = HashMap::new();
        let mut header_seen = false;
        for (i, raw) in text.lines().enumerate() {
            let line = i as i64 + 1;
            if raw.trim().is_empty() {
                continue;
            }
            let fields = match crate::usage_file::split_line(raw) {
                Ok(f) => f,
                Err(e) => {
                    errors.push(format!("line {line}: {e}"));
                    continue;
                }
            };
            let fields: Vec<&str> = fields.iter().map(|f| f.trim()).collect();
            if !header_seen {
                if fields != HEADER {
                    return Err(Failure::BadInput(format!(
                        "invalid tenant file {origin}: line {line} must be the header `{}`, found `{}`; nothing created",
                        HEADER.join(","),
                        excerpt(raw)
                    )));
                }
                header_seen = true;
                continue;
            }
            if fields.len() != HEADER.len() {
                errors.push(format!(
                    "line {line}: {} fields, expected {} ({})",
                    fields.len(),
                    HEADER.len(),
                    HEADER.join(",")
                ));
                continue;
            }
            let optional = |f: &str| (!f.is_empty()).then(|| f.to_owned());
            let (name, email) = (optional(fields[2]), optional(fields[3]));
            let checked = Request::validate(
                ctx,
                &Args {
                    slug: fields[0],
                    tier: fields[1],
                    name: name.as_deref(),
                    owner_email: email.as_deref(),
                    owner_name: None,
                    password_file: None,
                    features: &[],
                    server: None,
                    region,
                },
            );
            match checked {
                Err(e) => errors.push(format!("line {line}: {e}")),
                Ok(req) => match first_line.get(req.slug.as_str()) {
                    Some(first) => errors.push(format!(
                        "line {line}: slug `{}` is already on line {first}; each tenant once",
                        req.slug
                    )),
                    None => {
                        first_line.insert(req.slug.as_str().to_owned(), line);
                        rows.push((line, req));
                    }
                },
            }
        }
        if !header_seen {
            return Err(Failure::BadInput(format!(
                "invalid tenant file {origin}: it is empty; expected the header `{}` and one row per tenant",
                HEADER.join(",")
            )));
        }
        if !errors.is_empty() {
            return Err(crate::text_file::bad_rows(
                "tenant file",
                &origin,
                errors,
                "bad row",
                "nothing created",
            ));
        }
        Ok(Batch {
            file: file.to_path_buf(),
            rows,
            password_file,
            concurrency,
        })
    }
}

/// The password file: a new file in an existing directory, or an existing regular file of the
/// running user that nobody else may read (lines are appended to it).
fn check_password_file(path: &Path) -> Result<(), Failure> {
    let bad = |why: &str| {
        Failure::BadInput(format!(
            "invalid --password-file `{}`: {why}",
            text_file::shown(path)
        ))
    };
    match std::fs::symlink_metadata(path) {
        Ok(meta) => {
            // SAFETY: geteuid has no preconditions and cannot fail.
            let me = unsafe { libc::geteuid() };
            if !meta.file_type().is_file() {
                return Err(bad("it exists and is not a regular file"));
            }
            if meta.uid() != me {
                return Err(bad("it belongs to another user"));
            }
            if meta.permissions().mode() & 0o077 != 0 {
                return Err(bad(
                    "others may read it (mode is not 0600); fix its mode or choose a new path",
                ));
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let dir = match path.parent() {
                Some(p) if !p.as_os_str().is_empty() => p,
                _ => Path::new("."),
            };
            if dir.is_dir() {
                Ok(())
            } else {
                Err(bad("its directory does not exist"))
            }
        }
        Err(e) => Err(bad(&e.to_string())),
    }
}

/// The password file, opened for appending, and the private directory of per-tenant files.
struct Passwords {
    file: std::fs::File,
    shown: String,
    partial: PathBuf,
}

impl Passwords {
    fn open(path: &Path) -> Result<Passwords> {
        let shown = text_file::shown(path);
        let file = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(path)
            .with_context(|| format!("opening the password file {shown}"))?;
        let mut partial = path.as_os_str().to_owned();
        partial.push(".partial");
        let partial = PathBuf::from(partial);
        match std::fs::symlink_metadata(&partial) {
            Ok(m) if m.file_type().is_dir() && m.permissions().mode() & 0o077 == 0 => {}
            Ok(_) => anyhow::bail!(
                "{} exists and is not a private directory (mode 0700): remove it",
                text_file::shown(&partial)
            ),
            Err(_) => std::fs::DirBuilder::new()
                .mode(0o700)
                .create(&partial)
                .with_context(|| {
                    format!("creating the directory {}", text_file::shown(&partial))
                })?,
        }
        Ok(Passwords {
            file,
            shown,
            partial,
        })
    }

    /// Where step 4 of `slug`'s provisioning writes its password.
    fn staged(&self, slug: &str) -> PathBuf {
        self.partial.join(slug)
    }

    /// Appends the staged password of `slug` as one line and removes the staged file; false
    /// when there is none.
    fn deliver(&mut self, slug: &str) -> Result<bool> {
        let staged = self.staged(slug);
        let password = match std::fs::read_to_string(&staged) {
            Ok(p) => p,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(e).context("reading a staged password"),
        };
        // One write per line, synced before the staged copy goes.
        self.file
            .write_all(format!("{slug},{}\n", password.trim()).as_bytes())
            .and_then(|()| self.file.sync_data())
            .with_context(|| format!("writing the password file {}", self.shown))?;
        std::fs::remove_file(&staged).context("removing a staged password")?;
        Ok(true)
    }

    /// Step 2: delivers the staged passwords of tenants that are active.
    fn recover(&mut self, active: &HashSet<&str>) -> Result<()> {
        let entries = std::fs::read_dir(&self.partial).context("reading staged passwords")?;
        for entry in entries {
            let name = entry.context("reading staged passwords")?.file_name();
            if let Some(slug) = name.to_str().filter(|s| active.contains(s)) {
                self.deliver(slug)?;
            }
        }
        Ok(())
    }

    /// Removes the private directory once it is empty (a run that left nothing behind).
    fn tidy(&self) {
        let _ = std::fs::remove_dir(&self.partial);
    }
}

/// Steps 2 to 4 (see the module outline).
pub async fn provision_all(
    plane: &mut ControlPlane,
    batch: &Batch,
    reporter: &dyn Reporter,
) -> Result<Summary> {
    let started = Instant::now();
    // A provisioning run may hold one pooled control connection while asking for another: with
    // fewer than N + 1, N runs could each hold one and wait for ever.
    plane.control = plane.control.widened(2 * batch.concurrency + 2)?;
    let plane = &*plane;
    let mut passwords = Passwords::open(&batch.password_file)?;
    let existing: HashMap<String, (Status, String)> = plane
        .control
        .list_tenants()
        .await?
        .into_iter()
        .map(|t| (t.slug.to_string(), (t.status, t.tier.clone())))
        .collect();
    let active: HashSet<&str> = existing
        .iter()
        .filter(|(_, (s, _))| *s == Status::Active)
        .map(|(slug, _)| slug.as_str())
        .collect();
    passwords.recover(&active)?;
    let todo: Vec<&(i64, Request)> = batch
        .rows
        .iter()
        .filter(|(_, req)| {
            existing
                .get(req.slug.as_str())
                .is_none_or(|(s, tier)| !(*s == Status::Active && *tier == req.tier_name))
        })
        .collect();
    let skipped = batch.rows.len() - todo.len();
    if skipped > 0 {
        reporter.status(&format!(
            "{} of the file already active: skipped",
            crate::words::count_len(skipped, "tenant")
        ));
    }
    let new: Vec<&str> = todo
        .iter()
        .map(|(_, req)| req.slug.as_str())
        .filter(|slug| !existing.contains_key(*slug))
        .collect();
    let mut secrets = hash_ahead(&new);
    let total = todo.len();
    reporter.progress(0, total, "tenants");
    let passwords = Mutex::new(passwords);
    let done = std::sync::atomic::AtomicUsize::new(0);
    let results: Vec<Option<Failed>> =
        futures_util::stream::iter(todo.into_iter().map(|(line, req)| {
            let passwords = &passwords;
            let done = &done;
            let secret = secrets.remove(req.slug.as_str());
            async move {
                let slug = req.slug.as_str();
                let mut req = req.clone();
                req.password_file = Some(passwords.lock().expect("not poisoned").staged(slug));
                let outcome = match provision::provision_with(plane, &req, &Silent, secret).await {
                    Ok(_) => passwords
                        .lock()
                        .expect("not poisoned")
                        .deliver(slug)
                        .map(|_| ()),
                    Err(e) => Err(e),
                };
                let n = done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
                reporter.progress(n, total, "tenants");
                outcome.err().map(|e| Failed {
                    line: *line,
                    slug: slug.to_owned(),
                    error: crate::excerpt::excerpt_n(
                        &format!("{e:#}"),
                        crate::excerpt::REASON_CHARS,
                    ),
                })
            }
        }))
        .buffer_unordered(batch.concurrency)
        .collect()
        .await;
    let passwords = passwords.into_inner().expect("not poisoned");
    passwords.tidy();
    let mut failed: Vec<Failed> = results.into_iter().flatten().collect();
    failed.sort_by_key(|f| f.line);
    Ok(Summary {
        file: text_file::shown(&batch.file),
        rows: batch.rows.len(),
        provisioned: total - failed.len(),
        skipped,
        failed,
        password_file: text_file::shown(&batch.password_file),
        concurrency: batch.concurrency,
        duration_ms: started.elapsed().as_millis(),
    })
}

/// A password per slug, each hashed on one of `cores` threads of their own, in `slugs`' order,
/// starting now: the hashing never waits for a tenant's run, nor a run for a core. A hash
/// whose run is gone (its tenant failed earlier) is skipped; the threads end with the work.
fn hash_ahead(slugs: &[&str]) -> HashMap<String, provision::OwnerSecret> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut secrets = HashMap::with_capacity(slugs.len());
    let mut jobs = std::collections::VecDeque::with_capacity(slugs.len());
    for slug in slugs {
        let password = provision::new_password();
        let (tx, rx) = tokio::sync::oneshot::channel::<bcrypt::BcryptResult<String>>();
        jobs.push_back((password.clone(), tx));
        let hash = async move {
            rx.await
                .context("hashing the owner's password: the hashing thread ended")?
                .context("hashing the owner's password")
        };
        secrets.insert(
            (*slug).to_owned(),
            provision::OwnerSecret::new(password, hash),
        );
    }
    let jobs = std::sync::Arc::new(Mutex::new(jobs));
    for _ in 0..cores.min(slugs.len()) {
        let jobs = jobs.clone();
        std::thread::spawn(move || loop {
            let Some((password, tx)) = jobs.lock().expect("not poisoned").pop_front() else {
                return;
            };
            if !tx.is_closed() {
                let _ = tx.send(bcrypt::hash(password, provision::BCRYPT_COST));
            }
        });
    }
    secrets
}

/// The exit of a bulk run: an operational failure (exit 1) when some tenant failed.
pub fn result(summary: &Summary) -> Result<()> {
    if summary.failed.is_empty() {
        return Ok(());
    }
    anyhow::bail!(
        "{} of {} tenants could not be provisioned (see above); run the same command again to finish them",
        summary.failed.len(),
        summary.rows - summary.skipped
    )
}
