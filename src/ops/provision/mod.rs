//! Provisioning a tenant: eight numbered steps, each idempotent and journaled.
//!
//! 1. **record tenant**: the server it goes to (`ops::servers::place`, or `--server`; only a
//!    server of `--region` when given), then the `tenants` row naming it (status
//!    `provisioning`), in one transaction with its journal and audit entries, all under the
//!    placement lock. A full fleet is refused here, before
//!    anything exists. Re-run: the row is found (with its server) and the step skipped.
//! 2. **create database**: siloed: the tenant's login role and database, connectable by that
//!    role only; pooled: the shared database and its application role. Each is marked as this
//!    control plane's (its comment) when it is created; an existing object is kept only if it
//!    carries that mark, else refused (exit 3). A new tenant's names are checked before step 1.
//! 3. **apply schema**: the refinery migrations of `sql/tenant`, under an advisory lock, then
//!    table grants to the application role. Applied migrations are not re-run.
//! 4. **create owner**: a random password (≥ 128 bits), its bcrypt hash upserted into `users`,
//!    the password shown once (stderr) or written to `--password-file` (0600). A re-run issues
//!    a new password, because the first may never have reached the user.
//! 5. **seed quotas and features**: the tier's limits, one row per resource (existing rows are
//!    kept); the tier's features and the `--feature` grants, then the entitled set written into
//!    the tenant database's `tenant_features`. A re-run after this step records no new
//!    `--feature`: it refuses one the tenant lacks and names `features grant`.
//! 6. **create buckets**: `<slug>-uploads`, `-assets`, `-backups`; existing ones are fine.
//! 7. **run hooks**: the `after_provision` hooks of `[hooks]` (`ops::hooks`), in order, each
//!    recorded as it succeeds; a failed one fails the run (the tenant stays `provisioning`), and
//!    the re-run runs only the hooks that have not succeeded. Nothing without hooks.
//! 8. **activate**: `provisioning → active`, journaled and audited in one transaction.
//!
//! The whole run holds a per-tenant advisory lock (a second `provision` of the same slug exits
//! "in progress"). The journal lets a run that was killed at any point be finished by running
//! the same command again; a step whose work was done but not journaled is simply redone. The
//! journal keys each step by its stable name (`step::Step`), never by its number, so a step can
//! be inserted here without changing what an existing journal means; `runner` skips, times,
//! reports and journals the steps.

mod runner;

use std::collections::BTreeSet;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::db::fleet::TenantConn;
use anyhow::{Context as _, Result};
use rand::distr::{Alphanumeric, SampleString};
use serde::Serialize;
use tokio_postgres::Client;

use super::tenants::{self, TenantView};
use super::{ownership, Context, ControlPlane, Reporter};
use crate::action::Action;
use crate::db::tenants::NewTenant;
use crate::db::{dataplane, migrate};
use crate::error::Failure;
use crate::excerpt::{excerpt, is_unsafe_char};
use crate::feature::Feature;
use crate::field;
use crate::hook::Event;
use crate::region::Region;
use crate::server_name::ServerName;
use crate::slug::Slug;
use crate::step::Step;
use crate::tenant::{bucket_names, Tenant};
use crate::tier::{Isolation, Tier};
use crate::transition::Transition;
use runner::{millis, Run};

/// bcrypt's cost for the owner's password hash (2^12 rounds, the bcrypt crate's default).
pub const BCRYPT_COST: u32 = 12;
/// 24 alphanumeric characters: log2(62^24) ≈ 143 bits.
const PASSWORD_LEN: usize = 24;

/// A validated provisioning request: everything checked before anything is touched.
#[derive(Debug, Clone)]
pub struct Request {
    pub slug: Slug,
    pub tier_name: String,
    pub tier: Tier,
    pub name: String,
    pub owner_email: String,
    pub owner_name: String,
    pub password_file: Option<PathBuf>,
    /// `--feature`: granted on top of the tier's features (deduplicated).
    pub features: Vec<Feature>,
    /// `--server`: where to place a new tenant, instead of the placement rule.
    pub server: Option<ServerName>,
    /// `--region`: a new tenant goes only to a server of this region.
    pub region: Option<Region>,
}

/// The raw arguments, as a command received them.
pub struct Args<'a> {
    pub slug: &'a str,
    pub tier: &'a str,
    pub name: Option<&'a str>,
    pub owner_email: Option<&'a str>,
    pub owner_name: Option<&'a str>,
    pub password_file: Option<&'a Path>,
    pub features: &'a [String],
    pub server: Option<&'a str>,
    pub region: Option<&'a str>,
}

impl Request {
    /// Checks every argument; a `Failure::BadInput` names the bad value and what is allowed.
    pub fn validate(ctx: &Context, args: &Args<'_>) -> Result<Request, Failure> {
        let slug: Slug = args.slug.parse()?;
        let tiers = ctx.load_tiers()?;
        let tier = tiers.get(args.tier)?.clone();
        let name = args.name.unwrap_or(slug.as_str()).trim().to_owned();
        field::check("--name", &name, field::NAME_MAX)?;
        let owner_email = match args.owner_email {
            Some(e) => e.trim().to_owned(),
            None => format!("owner@{slug}.localhost"),
        };
        if !valid_email(&owner_email) {
            return Err(Failure::BadInput(format!(
                "invalid --owner-email `{}`: expected one address such as ops@acme.example, at most {} bytes, without spaces or control characters",
                excerpt(&owner_email),
                field::EMAIL_MAX
            )));
        }
        let owner_name = args.owner_name.unwrap_or("Owner").trim().to_owned();
        field::check("--owner-name", &owner_name, field::OWNER_NAME_MAX)?;
        if let Some(path) = args.password_file {
            check_password_file(path)?;
        }
        let mut features = args
            .features
            .iter()
            .map(|f| f.parse::<Feature>())
            .collect::<Result<Vec<_>, _>>()?;
        features.sort();
        features.dedup();
        let server = args.server.map(str::parse).transpose()?;
        let region = args.region.map(str::parse).transpose()?;
        Ok(Request {
            slug,
            tier_name: args.tier.to_owned(),
            tier,
            name,
            owner_email,
            owner_name,
            password_file: args.password_file.map(Path::to_path_buf),
            features,
            server,
            region,
        })
    }
}

fn valid_email(e: &str) -> bool {
    let Some((local, domain)) = e.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains('@')
        && e.len() <= field::EMAIL_MAX
        && !e.chars().any(|c| c.is_whitespace() || is_unsafe_char(c))
}

/// `--password-file` must name a new file in an existing directory, or an existing regular
/// file of the running user that is not a symlink (it is replaced), or the null device
/// (`/dev/null`: written to, never chmod-ed). Checked before anything is done, and
/// again when the file is written (`write_secret_file`), which never follows a symlink.
fn check_password_file(path: &Path) -> Result<(), Failure> {
    let bad = |why: &str| {
        Failure::BadInput(format!(
            "invalid --password-file `{}`: {why}",
            crate::text_file::shown(path)
        ))
    };
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if !parent.is_dir() {
        return Err(bad("its directory does not exist"));
    }
    match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(bad(&e.to_string())),
        Ok(meta) => existing_secret_target(&meta).map_err(|why| bad(&why)),
    }
}

/// Whether an existing path (not followed) may receive the password: `Err` says why not.
fn existing_secret_target(meta: &std::fs::Metadata) -> Result<(), String> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let ft = meta.file_type();
    if ft.is_symlink() {
        return Err("it is a symbolic link; name the file itself".to_owned());
    }
    if ft.is_char_device() {
        // Only the null device: writing a secret to /dev/tty or /dev/mem is never meant.
        let null = std::fs::metadata("/dev/null").map(|m| m.rdev()).ok();
        return if Some(meta.rdev()) == null {
            Ok(())
        } else {
            Err("it is a device other than /dev/null".to_owned())
        };
    }
    if !ft.is_file() {
        return Err("it exists and is not a regular file".to_owned());
    }
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    if meta.uid() != me {
        return Err(format!(
            "it exists and belongs to uid {}, not to the running user (uid {me}); remove it or choose another path",
            meta.uid()
        ));
    }
    Ok(())
}

/// What `provision` did.
#[derive(Debug, Serialize)]
pub struct Outcome {
    /// False when the tenant was already active on this tier and nothing was done.
    pub changed: bool,
    pub tenant: TenantView,
}

/// What `provision --dry-run` would do.
#[derive(Debug, Serialize)]
pub struct Plan {
    pub dry_run: bool,
    pub slug: String,
    pub tier: String,
    pub isolation: Isolation,
    pub status: Option<String>,
    /// The server it is on, or would be placed on.
    pub server: ServerName,
    pub database: String,
    pub role: String,
    pub buckets: Vec<String>,
    pub steps: Vec<PlannedStep>,
}

#[derive(Debug, Serialize)]
pub struct PlannedStep {
    pub step: usize,
    pub name: &'static str,
    /// `pending` or `done`.
    pub state: &'static str,
}

fn names_for(ctx: &Context, req: &Request) -> (String, String) {
    match req.tier.isolation {
        Isolation::Siloed => (ctx.naming.siloed(&req.slug), ctx.naming.siloed(&req.slug)),
        Isolation::Pooled => (ctx.naming.pooled_database(), ctx.naming.pooled_app_role()),
    }
}

/// The steps a run would take, reading what exists and changing nothing. `plane` is `None`
/// when there is no control database yet.
pub async fn plan(ctx: &Context, plane: Option<&ControlPlane>, req: &Request) -> Result<Plan> {
    let (database, role) = names_for(ctx, req);
    let mut done = BTreeSet::new();
    let mut status = None;
    // Without a control database yet, everything is on the control database's own server.
    let mut server = req.server.clone().unwrap_or_else(ServerName::control);
    if let Some(plane) = plane {
        match plane.control.find_tenant(&req.slug).await? {
            Some(t) => {
                let region = super::servers::region_of(plane, &t.server).await?;
                refuse_conflicts(&t, region.as_ref(), req)?;
                done.extend(plane.control.completed_steps(t.id).await?);
                status = Some(t.status.to_string());
                server = t.server;
            }
            None => {
                server = super::servers::place(
                    plane,
                    &req.tier_name,
                    req.tier.isolation,
                    req.server.as_ref(),
                    req.region.as_ref(),
                )
                .await?;
            }
        }
    }
    let steps = Step::ALL
        .into_iter()
        .map(|step| PlannedStep {
            step: step.number(),
            name: step.label(),
            state: if done.contains(&step) {
                "done"
            } else {
                "pending"
            },
        })
        .collect();
    Ok(Plan {
        dry_run: true,
        slug: req.slug.to_string(),
        tier: req.tier_name.clone(),
        isolation: req.tier.isolation,
        status,
        server,
        database,
        role,
        buckets: bucket_names(&req.slug),
        steps,
    })
}

/// The move that finishes provisioning (`provisioning → active`), from the one table.
fn activation() -> &'static Transition {
    crate::transition::TRANSITIONS
        .iter()
        .find(|t| t.action == Action::Provision)
        .expect("the table has the activation")
}

/// Refuses a request that conflicts with the tenant's recorded state (exit 3). A recorded
/// tenant may be provisioned while activation may still take it (unfinished), or once it has
/// (done: a no-op on the same tier).
/// `region`: the region of the tenant's server.
fn refuse_conflicts(t: &Tenant, region: Option<&Region>, req: &Request) -> Result<(), Failure> {
    let slug = &t.slug;
    let activation = activation();
    let unfinished = activation.from.contains(&t.status);
    let finished = t.status == activation.to;
    if let Some(server) = req.server.as_ref().filter(|s| **s != t.server) {
        return Err(Failure::Refused(format!(
            "tenant `{slug}` is {} on server `{}`, not `{server}`: --server places new tenants only; run without it to finish or check it",
            t.status, t.server
        )));
    }
    if let Some(asked) = req.region.as_ref().filter(|r| Some(*r) != region) {
        return Err(Failure::Refused(format!(
            "tenant `{slug}` is {} on server `{}`, {}, not in region `{asked}`: --region places new tenants only; run without it to finish or check it",
            t.status,
            t.server,
            match region {
                Some(r) => format!("in region `{r}`"),
                None => "in no region".to_owned(),
            }
        )));
    }
    if finished && t.tier != req.tier_name {
        Err(Failure::Refused(format!(
            "tenant `{slug}` is already active on tier `{}`; to move it to `{}`, run `tenantctl set-tier {slug} {}`",
            t.tier, req.tier_name, req.tier_name
        )))
    } else if unfinished && t.tier != req.tier_name {
        Err(Failure::Refused(format!(
            "tenant `{slug}` is being provisioned on tier `{}`; finish it with `tenantctl provision {slug} --tier {}`, then run `tenantctl set-tier {slug} {}`",
            t.tier, t.tier, req.tier_name
        )))
    } else if finished || unfinished {
        Ok(())
    } else {
        Err(Failure::Refused(format!(
            "tenant `{slug}` is {}; only a new or unfinished tenant can be provisioned",
            t.status
        )))
    }
}

/// Provisions the tenant, resuming an interrupted run. See the module outline.
pub async fn provision(
    plane: &ControlPlane,
    req: &Request,
    reporter: &dyn Reporter,
) -> Result<Outcome> {
    provision_with(plane, req, reporter, None).await
}

/// `provision`, with the owner's password and hash made by the caller (a bulk run hashes on
/// threads of its own, ahead of the tenants); unused when the journal has step 4.
pub(crate) async fn provision_with(
    plane: &ControlPlane,
    req: &Request,
    reporter: &dyn Reporter,
    secret: Option<OwnerSecret>,
) -> Result<Outcome> {
    let slug = &req.slug;
    let lock = plane.control.try_lock_tenant(slug).await?.ok_or_else(|| {
        Failure::Refused(format!(
            "provisioning of tenant `{slug}` is in progress in another tenantctl process; try again when it has finished"
        ))
    })?;
    let existing = plane.control.find_tenant(slug).await?;
    if let Some(t) = &existing {
        let region = super::servers::region_of(plane, &t.server).await?;
        refuse_conflicts(t, region.as_ref(), req)?;
        super::features::refuse_unrecorded(plane, t, &req.features).await?;
        if t.status == activation().to {
            reporter.status(&format!(
                "tenant `{slug}` is already active on tier `{}`; nothing to do",
                t.tier
            ));
            return Ok(Outcome {
                changed: false,
                tenant: tenants::view(plane, t.clone()).await?,
            });
        }
        reporter.status(&format!("resuming the provisioning of tenant `{slug}`"));
    }
    let done: BTreeSet<Step> = match &existing {
        Some(t) => plane
            .control
            .completed_steps(t.id)
            .await?
            .into_iter()
            .collect(),
        None => BTreeSet::new(),
    };
    // bcrypt is the slowest part of a run and needs no database: hash on a blocking thread
    // while steps 1-3 wait on the server.
    let owner_secret =
        (!done.contains(&Step::CreateOwner)).then(|| secret.unwrap_or_else(OwnerSecret::start));
    let run = Run {
        plane,
        req,
        reporter,
        done,
    };

    let tenant = match existing {
        Some(t) => {
            run.skip(Step::RecordTenant);
            t
        }
        None => {
            // Placement, the check of the names there and the tenant's row under one lock (on
            // the tenant lock's session): no other placement takes the chosen server's last
            // place meanwhile. An error returns at once, and the session ends with its locks.
            lock.hold_placement().await?;
            let server = super::servers::place(
                plane,
                &req.tier_name,
                req.tier.isolation,
                req.server.as_ref(),
                req.region.as_ref(),
            )
            .await?;
            // A database or role of the new tenant's names that exists there is not ours:
            // refuse before recording anything.
            let (database, role) = names_for(&plane.ctx, req);
            ownership::check_new(
                plane,
                &server,
                req.tier.isolation,
                &database,
                &role,
                &req.slug,
            )
            .await?;
            reporter.status(&format!("placing tenant `{slug}` on server `{server}`"));
            let t = run
                .step(Step::RecordTenant, || record_tenant(plane, req, &server))
                .await?;
            lock.release_placement().await?;
            t
        }
    };
    // One lock for steps 2 and 3 of a pooled tenant (on the tenant lock's session), one
    // connection to its database for 3 to 5.
    let pooled_lock = match tenant.isolation {
        Isolation::Pooled
            if !(run.done.contains(&Step::CreateDatabase)
                && run.done.contains(&Step::ApplySchema)) =>
        {
            Some(lock.lock_pooled_too(&tenant.server).await?)
        }
        _ => None,
    };
    let mut tenant_db: Option<TenantConn> = None;
    run.step_journaled(Step::CreateDatabase, &tenant, || {
        create_database_step(plane, &tenant, reporter)
    })
    .await?;
    run.step_journaled(Step::ApplySchema, &tenant, || {
        apply_schema(plane, &tenant, &mut tenant_db)
    })
    .await?;
    if let Some(l) = pooled_lock {
        l.release().await?;
    }
    if let Some(secret) = owner_secret {
        run.step_journaled(Step::CreateOwner, &tenant, || {
            create_owner(plane, &tenant, req, reporter, secret, &mut tenant_db)
        })
        .await?;
    } else {
        run.skip(Step::CreateOwner);
    }
    run.step_journaled(Step::SeedQuotas, &tenant, || {
        seed_quotas(plane, &tenant, req, &mut tenant_db)
    })
    .await?;
    drop(tenant_db);
    run.step_journaled(Step::CreateBuckets, &tenant, || {
        create_buckets(plane, &tenant)
    })
    .await?;
    run.step_journaled(Step::RunHooks, &tenant, || {
        super::hooks::run(plane, &tenant, Event::Provision, reporter)
    })
    .await?;
    run.step_journaled(Step::Activate, &tenant, || activate(plane, &tenant))
        .await?;

    let tenant = plane
        .control
        .find_tenant(slug)
        .await?
        .with_context(|| format!("tenant `{slug}` vanished after provisioning"))?;
    // Its session serves the next tenant of a bulk run.
    lock.release(&plane.control).await;
    Ok(Outcome {
        changed: true,
        tenant: tenants::view(plane, tenant).await?,
    })
}

/// Step `record_tenant`.
async fn record_tenant(plane: &ControlPlane, req: &Request, server: &ServerName) -> Result<Tenant> {
    let t0 = Instant::now();
    let (database, role) = names_for(&plane.ctx, req);
    let new = NewTenant {
        slug: &req.slug,
        name: &req.name,
        tier: &req.tier_name,
        isolation: req.tier.isolation,
        server,
        database: &database,
        role: &role,
        owner_email: &req.owner_email,
        owner_name: &req.owner_name,
    };
    plane
        .control
        .record_tenant(&new, &plane.ctx.actor, millis(t0.elapsed()))
        .await
}

/// Step `create_database`. (A pooled tenant's caller holds the pooled lock: concurrent GRANTs on one object
/// fail with "tuple concurrently updated".)
/// Each object is marked in the statement that creates it (the role), or right after with a
/// claim covering the gap (the database); an existing one must carry the tenant's mark.
/// A silo is a copy of the template database of its server when one can be used
/// (`ops::template`: the tenant schema, migrated once; the first silo there creates it), else
/// created empty; step 3 migrates it either way.
async fn create_database_step(
    plane: &ControlPlane,
    t: &Tenant,
    reporter: &dyn Reporter,
) -> Result<()> {
    // Before this step's own admin connection: a refresh of the template takes one too.
    let template = match t.isolation {
        Isolation::Siloed => super::template::for_copy(plane, &t.server, reporter).await,
        Isolation::Pooled => None,
    };
    create_database_from(plane, t, template.as_deref()).await
}

/// `create_database_step` without a template (a move's target: its schema comes from the
/// source).
pub(in crate::ops) async fn create_database(plane: &ControlPlane, t: &Tenant) -> Result<()> {
    create_database_from(plane, t, None).await
}

async fn create_database_from(
    plane: &ControlPlane,
    t: &Tenant,
    template: Option<&str>,
) -> Result<()> {
    let mark = ownership::mark(plane, t).await?;
    let admin = plane.fleet.admin_for(t).await?;
    dataplane::ensure_app_role(&admin, &t.role, &mark).await?;
    if t.isolation == Isolation::Siloed {
        // So that a non-superuser admin can end the tenant's sessions when suspending it.
        dataplane::ensure_member(&admin, &mark, &t.role).await?;
    }
    ownership::ensure_database_from(plane, &admin, &t.server, &t.database, &mark, template).await?;
    dataplane::restrict_connect(&admin, &mark, &t.database, &t.role).await
}

/// The tenant database's connection, opened on first use.
async fn tenant_conn<'c>(
    plane: &ControlPlane,
    t: &Tenant,
    slot: &'c mut Option<TenantConn>,
) -> Result<&'c mut Client> {
    if slot.is_none() {
        *slot = Some(ownership::connect(plane, t).await?);
    }
    Ok(slot.as_mut().expect("just connected"))
}

/// Step `apply_schema`.
pub(in crate::ops) async fn apply_schema(
    plane: &ControlPlane,
    t: &Tenant,
    conn: &mut Option<TenantConn>,
) -> Result<()> {
    let client = tenant_conn(plane, t, conn).await?;
    migrate::tenant(client).await?;
    dataplane::grant_app_access(client, &t.role).await
}

/// The owner's temporary password, and its bcrypt hash being computed elsewhere (a blocking
/// thread, or the hashing threads of a bulk run).
pub(crate) struct OwnerSecret {
    password: String,
    hash: std::pin::Pin<Box<dyn std::future::Future<Output = Result<String>> + Send>>,
}

impl OwnerSecret {
    /// A new password, hashed on tokio's blocking pool.
    fn start() -> OwnerSecret {
        let password = new_password();
        let to_hash = password.clone();
        let job = tokio::task::spawn_blocking(move || bcrypt::hash(to_hash, BCRYPT_COST));
        OwnerSecret {
            password,
            hash: Box::pin(async move {
                job.await
                    .context("hashing the owner's password")?
                    .context("hashing the owner's password")
            }),
        }
    }

    /// `password`, whose hash `hash` yields.
    pub(crate) fn new(
        password: String,
        hash: impl std::future::Future<Output = Result<String>> + Send + 'static,
    ) -> OwnerSecret {
        OwnerSecret {
            password,
            hash: Box::pin(hash),
        }
    }
}

/// A new temporary password for an owner.
pub(crate) fn new_password() -> String {
    Alphanumeric.sample_string(&mut rand::rng(), PASSWORD_LEN)
}

/// Step `create_owner`.
async fn create_owner(
    plane: &ControlPlane,
    t: &Tenant,
    req: &Request,
    reporter: &dyn Reporter,
    secret: OwnerSecret,
    conn: &mut Option<TenantConn>,
) -> Result<()> {
    let hash = secret.hash.await?;
    let password = secret.password;
    // The owner recorded in step 1: a resumed run keeps it, whatever its flags say.
    let (email, name) = plane.control.owner(t.id).await?;
    dataplane::upsert_owner(
        tenant_conn(plane, t, conn).await?,
        t.id,
        &email,
        &name,
        &hash,
    )
    .await?;
    match &req.password_file {
        Some(path) => {
            write_secret_file(path, &password)?;
            reporter.status(&format!(
                "owner password for {email} written to {}",
                path.display()
            ));
        }
        None => reporter.secret(&format!(
            "owner {email} of tenant `{}`: temporary password {password} (shown once, not stored)",
            t.slug
        )),
    }
    Ok(())
}

/// Writes `secret` to `path`, readable by its owner only. A regular file is never written in
/// place: the secret goes to a new temporary file (created exclusively without following
/// links, mode 0600, in the same directory) that is renamed over `path`. What
/// `check_password_file` refuses (a symlink, another user's file, a device other than
/// `/dev/null`) is checked again here without following links; should one appear after that
/// check, the rename replaces it rather than writing through it. `/dev/null` is written to and
/// never chmod-ed: as root, making it 0600 would break every other user of the machine.
pub(crate) fn write_secret_file(path: &Path, secret: &str) -> Result<()> {
    use std::os::unix::fs::FileTypeExt;
    let shown = crate::text_file::shown(path);
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_char_device() => {
            existing_secret_target(&meta).map_err(|why| {
                Failure::BadInput(format!("invalid --password-file `{shown}`: {why}"))
            })?;
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .custom_flags(libc::O_NOFOLLOW | libc::O_NOCTTY)
                .open(path)
                .with_context(|| format!("opening the password file {shown}"))?;
            return writeln!(f, "{secret}")
                .with_context(|| format!("writing the password file {shown}"));
        }
        Ok(meta) => existing_secret_target(&meta).map_err(|why| {
            Failure::BadInput(format!("invalid --password-file `{shown}`: {why}"))
        })?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("inspecting the password file {shown}")),
    }
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "password".to_owned());
    let tmp = dir.join(format!(
        ".{file_name}.{}.{}.tmp",
        std::process::id(),
        rand::distr::Alphanumeric.sample_string(&mut rand::rng(), 8)
    ));
    let written = (|| -> Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&tmp)
            .with_context(|| format!("creating the password file {shown}"))?;
        // The umask may have narrowed it further; never wider than 0600.
        f.set_permissions(std::fs::Permissions::from_mode(0o600))
            .with_context(|| format!("restricting the password file {shown}"))?;
        writeln!(f, "{secret}").with_context(|| format!("writing the password file {shown}"))?;
        f.sync_all()
            .with_context(|| format!("writing the password file {shown}"))?;
        std::fs::rename(&tmp, path)
            .with_context(|| format!("moving the password file into place at {shown}"))
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

/// Step `seed_quotas`.
async fn seed_quotas(
    plane: &ControlPlane,
    t: &Tenant,
    req: &Request,
    conn: &mut Option<TenantConn>,
) -> Result<()> {
    plane
        .control
        .seed_quotas(t.id, &req.tier.quota_rows())
        .await?;
    let client = tenant_conn(plane, t, conn).await?;
    super::features::seed(plane, t, &req.tier.features.0, &req.features, client).await
}

/// Step `create_buckets`. Each bucket carries the tenant's mark; one that exists without it is refused.
async fn create_buckets(plane: &ControlPlane, t: &Tenant) -> Result<()> {
    let mark = ownership::bucket_mark(plane, t).await?;
    for bucket in crate::storage::buckets(&t.slug, t.isolation) {
        ownership::create_bucket(plane, &bucket, &mark).await?;
    }
    Ok(())
}

/// Step `activate`: the table's activation move, journaled in the same transaction.
async fn activate(plane: &ControlPlane, t: &Tenant) -> Result<()> {
    plane
        .control
        .activate(t, activation(), &plane.ctx.actor)
        .await
}
