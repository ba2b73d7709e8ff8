//! `tenantctl credentials <slug>`: a password for a siloed tenant's login role, stored on the
//! server only as a SCRAM-SHA-256 verifier computed here (the plain text never travels), and a
//! ready connection URL shown once; for a pooled tenant, how its application connects.

use std::path::Path;

use anyhow::Result;
use chrono::{DateTime, Utc};
use rand::distr::{Alphanumeric, SampleString};
use serde::Serialize;

use super::{failpoint, tenants, ControlPlane, Reporter};
use crate::error::Failure;
use crate::slug::Slug;
use crate::tenant::Status;
use crate::tier::Isolation;

/// Generated passwords: 32 characters of `[A-Za-z0-9]` (≈190 bits).
const PASSWORD_LEN: usize = 32;

pub struct Request<'a> {
    pub slug: &'a Slug,
    pub rotate: bool,
    pub password_file: Option<&'a Path>,
    pub valid_until: Option<DateTime<Utc>>,
}

/// What `credentials` did; never the password.
#[derive(Debug, Serialize)]
pub struct CredentialsView {
    pub slug: String,
    pub isolation: Isolation,
    pub role: String,
    pub database: String,
    pub host: String,
    pub port: u16,
    pub sslmode: String,
    /// True when a password was set (siloed); false for pooled tenants.
    pub issued: bool,
    pub rotated: bool,
    pub valid_until: Option<DateTime<Utc>>,
    /// For pooled tenants: the tenant context its application must set.
    pub tenant_context: Option<String>,
}

pub(crate) fn percent(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

pub async fn credentials(
    plane: &ControlPlane,
    req: &Request<'_>,
    reporter: &dyn Reporter,
) -> Result<CredentialsView> {
    if let Some(t) = req.valid_until {
        if t <= Utc::now() {
            return Err(Failure::BadInput(format!(
                "invalid --valid-until `{}`: it must lie in the future",
                t.to_rfc3339()
            ))
            .into());
        }
    }
    let tenant = tenants::find(plane, req.slug).await?;
    if tenant.status != Status::Active {
        return Err(Failure::Refused(format!(
            "tenant `{}` is {}: credentials are given to active tenants only",
            tenant.slug,
            tenant.status.as_str()
        ))
        .into());
    }
    let endpoint = plane.fleet.endpoint(&tenant.server).await?;
    let (host, port) = (endpoint.host, endpoint.port);
    let mut view = CredentialsView {
        slug: tenant.slug.to_string(),
        isolation: tenant.isolation,
        role: tenant.role.clone(),
        database: tenant.database.clone(),
        host: host.clone(),
        port,
        sslmode: endpoint.sslmode.as_str().to_owned(),
        issued: false,
        rotated: false,
        valid_until: req.valid_until,
        tenant_context: None,
    };
    if tenant.isolation == Isolation::Pooled {
        view.tenant_context = Some(format!(
            "SELECT set_config('app.tenant_id', '{}', true)",
            tenant.id
        ));
        return Ok(view);
    }
    let _lock = plane
        .control
        .try_lock_tenant(&tenant.slug)
        .await?
        .ok_or_else(|| {
            Failure::Refused(format!(
                "tenant `{}`: another run is in progress",
                tenant.slug
            ))
        })?;
    if let Some(at) = plane.control.credentials_issued(&tenant).await? {
        if !req.rotate {
            return Err(Failure::Refused(format!(
                "tenant `{}` was given credentials at {}; pass --rotate to replace them",
                tenant.slug,
                at.format("%Y-%m-%d %H:%M:%SZ")
            ))
            .into());
        }
        view.rotated = true;
    }
    let password = Alphanumeric.sample_string(&mut rand::rng(), PASSWORD_LEN);
    let verifier = postgres_protocol::password::scram_sha_256(password.as_bytes());
    let details = serde_json::json!({
        "rotated": view.rotated,
        "valid_until": req.valid_until,
    });
    // The role lives on the tenant's server: the password is set through the fleet's admin
    // connection, and audited in the control database (see `set_login_verifier` for the order).
    let mut admin = plane.fleet.admin_for(&tenant).await?;
    plane
        .control
        .set_login_verifier(
            &mut admin,
            &tenant,
            &verifier,
            req.valid_until,
            &plane.ctx.actor,
            details,
            || failpoint(&plane.ctx, "credentials:audited"),
        )
        .await?;
    view.issued = true;
    let url = format!(
        "postgresql://{}:{password}@{}:{port}/{}?sslmode={}",
        percent(&tenant.role),
        if host.contains(':') && !host.starts_with('/') {
            format!("[{host}]")
        } else {
            percent(&host)
        },
        percent(&tenant.database),
        view.sslmode
    );
    match req.password_file {
        Some(path) => {
            super::provision::write_secret_file(path, &format!("{url}\n"))?;
            reporter.status(&format!(
                "connection URL of tenant `{}` written to {}",
                tenant.slug,
                path.display()
            ));
        }
        None => reporter.secret(&format!(
            "tenant `{}` connects with {url} (shown once, not stored)",
            tenant.slug
        )),
    }
    Ok(view)
}
