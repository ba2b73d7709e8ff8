//! `tenantctl init` and `tenantctl doctor`.

use anyhow::Result;

use crate::config::Settings;
use crate::ops::doctor;
use crate::output::Output;
use crate::progress::TerminalReporter;
use crate::words;

pub async fn init(settings: Settings, out: &Output, reporter: &TerminalReporter) -> Result<()> {
    let out = out.printer::<doctor::InitView>()?;
    out.print(&doctor::init(&settings.into(), reporter).await?)
}

/// Exit 1 when the report found a problem; the report is printed either way.
pub async fn doctor(settings: Settings, out: &Output, reporter: &TerminalReporter) -> Result<()> {
    let out = out.printer::<doctor::Report>()?;
    let report = doctor::doctor(&settings.into(), reporter).await?;
    out.print(&report)?;
    if report.ok {
        Ok(())
    } else {
        Err(anyhow::anyhow!(
            "doctor found {}",
            words::count_len(report.problems.len(), "problem")
        ))
    }
}
