//! `tenantctl list`.

use anyhow::Result;

use crate::config::Settings;
use crate::ops::{tenants, ControlPlane};
use crate::output::Output;
use crate::progress::TerminalReporter;

pub async fn run(settings: Settings, out: &Output, reporter: &TerminalReporter) -> Result<()> {
    let plane = ControlPlane::open(settings, reporter).await?;
    out.tenants(&tenants::list(&plane).await?)
}
