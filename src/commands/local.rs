//! `tenantctl local status|stop`.

use anyhow::Result;

use crate::cli::LocalCommand;
use crate::config::Settings;
use crate::ops::local;
use crate::output::Output;

pub async fn run(settings: &Settings, cmd: LocalCommand, out: &Output) -> Result<()> {
    match cmd {
        LocalCommand::Status => out.cluster_status(&local::status(settings).await),
        LocalCommand::Stop => {
            let stopped = local::stop(settings)?;
            let text = if stopped {
                "stopped the local cluster"
            } else {
                "the local cluster was not running"
            };
            out.message(text, &serde_json::json!({ "stopped": stopped }))
        }
    }
}
