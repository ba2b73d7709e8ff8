//! `tenantctl list`.

use anyhow::Result;

use crate::config::Settings;
use crate::ops::{tenants, ControlPlane};
use crate::output::Output;
use crate::progress::TerminalReporter;

pub async fn run(settings: Settings, out: &Output, reporter: &TerminalReporter) -> Result<()> {
    let out = out.printer::<[tenants::TenantView]>()?;
    match ControlPlane::open_read_only(settings, reporter, true).await? {
        Some(plane) => out.print(&tenants::list(&plane).await?),
        None => out.print(&[]),
    }
}
