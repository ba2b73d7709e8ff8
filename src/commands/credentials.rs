//! `tenantctl credentials <slug> [--rotate] [--password-file PATH] [--valid-until TIME]`.

use anyhow::Result;

use crate::cli::CredentialsArgs;
use crate::config::Settings;
use crate::error::Failure;
use crate::ops::{credentials, ControlPlane};
use crate::output::Output;
use crate::period::parse_time;
use crate::progress::TerminalReporter;
use crate::slug::Slug;

pub async fn run(
    settings: Settings,
    args: &CredentialsArgs,
    out: &Output,
    reporter: &TerminalReporter,
) -> Result<()> {
    let out = out.printer::<credentials::CredentialsView>()?;
    let slug: Slug = args.slug.parse()?;
    let valid_until = args
        .valid_until
        .as_deref()
        .map(|s| {
            parse_time(s).map_err(|e| {
                Failure::BadInput(format!(
                    "invalid --valid-until: {}",
                    crate::excerpt::escape(&e)
                ))
            })
        })
        .transpose()?;
    let plane = ControlPlane::open(settings, reporter).await?;
    let req = credentials::Request {
        slug: &slug,
        rotate: args.rotate,
        password_file: args.password_file.as_deref(),
        valid_until,
    };
    out.print(&credentials::credentials(&plane, &req, reporter).await?)
}
