//! `tenantctl local status|stop`.

use anyhow::Result;

use crate::cli::LocalCommand;
use crate::cluster::ClusterStatus;
use crate::config::Settings;
use crate::ops::local;
use crate::output::{Output, Stopped};

pub async fn run(settings: &Settings, cmd: LocalCommand, out: &Output) -> Result<()> {
    match cmd {
        LocalCommand::Status => {
            let out = out.printer::<ClusterStatus>()?;
            out.print(&local::status(&settings.into()).await)
        }
        LocalCommand::Stop => {
            let out = out.printer::<Stopped>()?;
            out.print(&Stopped {
                stopped: local::stop(&settings.into())?,
            })
        }
    }
}
