//! `tenantctl storage policy <slug>`.

use anyhow::Result;

use crate::cli::StorageCommand;
use crate::config::Settings;
use crate::ops::{self, ControlPlane};
use crate::output::Output;
use crate::progress::TerminalReporter;
use crate::slug::Slug;

pub async fn run(
    settings: Settings,
    cmd: StorageCommand,
    out: &Output,
    reporter: &TerminalReporter,
) -> Result<()> {
    match cmd {
        StorageCommand::Policy(args) => {
            let out = out.printer::<ops::storage::Policy>()?;
            let slug: Slug = args.slug.parse()?;
            let plane = ControlPlane::open_read_only(settings, reporter, false)
                .await?
                .ok_or_else(|| ops::tenants::not_found(slug.as_str()))?;
            out.print(&ops::storage::policy(&plane, &slug).await?)
        }
    }
}
