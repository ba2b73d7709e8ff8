//! `tenantctl server add|list|drain|undrain|set|remove`.

use anyhow::Result;

use crate::cli::ServerCommand;
use crate::config::Settings;
use crate::ops::servers::{self, AddRequest, Removed, ServerView};
use crate::ops::ControlPlane;
use crate::output::Output;
use crate::progress::TerminalReporter;
use crate::region::Region;
use crate::server_name::ServerName;

pub async fn run(
    settings: Settings,
    cmd: ServerCommand,
    out: &Output,
    reporter: &TerminalReporter,
) -> Result<()> {
    match cmd {
        ServerCommand::Add {
            name,
            url,
            capacity,
            tier,
            pooled,
            region,
        } => {
            let out = out.printer::<ServerView>()?;
            // Everything is checked before anything connects; the URL's password above all.
            let req = AddRequest::validate(
                &settings,
                &name,
                &url,
                capacity,
                &tier,
                pooled,
                region.as_deref(),
            )?;
            let plane = ControlPlane::open(settings, reporter).await?;
            out.print(&servers::add(&plane, &req, reporter).await?)
        }
        ServerCommand::List => {
            let out = out.printer::<[ServerView]>()?;
            let Some(plane) = ControlPlane::open_read_only(settings, reporter, true).await? else {
                return out.print(&[]);
            };
            let list = servers::list(&plane).await?;
            out.print(&list)?;
            let down: Vec<servers::Unreached> = list
                .iter()
                .filter_map(|s| {
                    s.error.as_ref().map(|e| servers::Unreached {
                        server: s.name.clone(),
                        error: e.clone(),
                    })
                })
                .collect();
            if down.is_empty() {
                Ok(())
            } else {
                Err(anyhow::anyhow!(
                    "{}",
                    servers::unreached_message(&down, "databases and bytes unknown")
                ))
            }
        }
        ServerCommand::Drain(arg) => draining(settings, &arg.name, true, out, reporter).await,
        ServerCommand::Undrain(arg) => draining(settings, &arg.name, false, out, reporter).await,
        ServerCommand::Set {
            name,
            capacity,
            region,
        } => {
            let out = out.printer::<ServerView>()?;
            let name: ServerName = name.parse()?;
            let capacity = capacity
                .map(|c| crate::number::in_range("--capacity", c, 0..=servers::MAX_CAPACITY))
                .transpose()?;
            let region: Option<Region> = region.as_deref().map(str::parse).transpose()?;
            let plane = ControlPlane::open(settings, reporter).await?;
            // The region first: it is the change that may be refused, and then nothing changed.
            let mut view = None;
            if let Some(r) = &region {
                view = Some(servers::set_region(&plane, &name, r, reporter).await?);
            }
            if let Some(c) = capacity {
                view = Some(servers::set_capacity(&plane, &name, c, reporter).await?);
            }
            out.print(&view.expect("clap requires --capacity or --region"))
        }
        ServerCommand::Remove(arg) => {
            let out = out.printer::<Removed>()?;
            let name: ServerName = arg.name.parse()?;
            let plane = ControlPlane::open(settings, reporter).await?;
            out.print(&servers::remove(&plane, &name, reporter).await?)
        }
    }
}

async fn draining(
    settings: Settings,
    name: &str,
    draining: bool,
    out: &Output,
    reporter: &TerminalReporter,
) -> Result<()> {
    let out = out.printer::<ServerView>()?;
    let name: ServerName = name.parse()?;
    let plane = ControlPlane::open(settings, reporter).await?;
    out.print(&servers::set_draining(&plane, &name, draining, reporter).await?)
}
