//! `tenantctl metrics [--textfile PATH]`.

use anyhow::Result;

use crate::cli::MetricsArgs;
use crate::config::Settings;
use crate::ops::metrics::{self, Fleet};
use crate::ops::ControlPlane;
use crate::output::document as output_document;
use crate::progress::TerminalReporter;

pub async fn run(
    settings: Settings,
    args: &MetricsArgs,
    reporter: &TerminalReporter,
) -> Result<()> {
    crate::output::document_only(settings.output, "metrics")?;
    let fleet = match ControlPlane::open_read_only(settings, reporter, true).await? {
        Some(plane) => metrics::gather(&plane).await?,
        None => Fleet::empty(),
    };
    let text = crate::output::metrics::render(&fleet)?;
    match &args.textfile {
        Some(path) => output_document::to_file_atomically(path, text.as_bytes()),
        None => output_document::to_stdout(text.as_bytes()),
    }
}
