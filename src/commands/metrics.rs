//! `tenantctl metrics [--textfile PATH]`.

use anyhow::Result;

use crate::cli::{MetricsArgs, OutputFormat};
use crate::config::Settings;
use crate::exit::Failure;
use crate::ops::metrics::{self, Fleet};
use crate::ops::ControlPlane;
use crate::output_document;
use crate::progress::TerminalReporter;

pub async fn run(
    settings: Settings,
    args: &MetricsArgs,
    reporter: &TerminalReporter,
) -> Result<()> {
    if settings.output == OutputFormat::Json {
        return Err(Failure::BadInput(
            "`metrics` prints Prometheus text only; drop --output json".to_owned(),
        )
        .into());
    }
    let fleet = match ControlPlane::open_read_only(settings, reporter, true).await? {
        Some(plane) => metrics::gather(&plane).await?,
        None => Fleet::empty(),
    };
    let text = crate::output_metrics::render(&fleet)?;
    match &args.textfile {
        Some(path) => output_document::to_file_atomically(path, text.as_bytes()),
        None => output_document::to_stdout(text.as_bytes()),
    }
}
