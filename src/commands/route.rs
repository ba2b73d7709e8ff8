//! `tenantctl route <slug> [--url]` and `tenantctl routes [--format pgbouncer|json] [--file]`.

use anyhow::Result;

use crate::cli::{OutputFormat, RouteArgs, RoutesArgs, RoutesFormat};
use crate::config::Settings;
use crate::error::Failure;
use crate::ops::routes::{self, RouteView};
use crate::ops::{tenants, ControlPlane};
use crate::output::{document, Output};
use crate::progress::TerminalReporter;
use crate::slug::Slug;

pub async fn route(
    settings: Settings,
    args: &RouteArgs,
    out: &Output,
    reporter: &TerminalReporter,
) -> Result<()> {
    let printer = out.printer::<RouteView>()?;
    let slug: Slug = args.slug.parse()?;
    if args.url && settings.output != OutputFormat::Table {
        return Err(Failure::BadInput(
            "--url prints the URL alone; drop --output, or drop --url for JSON".to_owned(),
        )
        .into());
    }
    let Some(plane) = ControlPlane::open_read_only(settings, reporter, true).await? else {
        return Err(tenants::not_found(slug.as_str()).into());
    };
    let r = routes::route(&plane, &slug).await?;
    if args.url {
        return document::to_stdout(format!("{}\n", r.url).as_bytes());
    }
    printer.print(&r)
}

pub async fn routes(
    settings: Settings,
    args: &RoutesArgs,
    out: &Output,
    reporter: &TerminalReporter,
) -> Result<()> {
    let format = match (args.format, settings.output) {
        (_, OutputFormat::Csv) => {
            out.printer::<[RouteView]>()?;
            unreachable!("the routes have no CSV form")
        }
        (Some(RoutesFormat::Pgbouncer), OutputFormat::Json) => {
            return Err(Failure::BadInput(
                "--format pgbouncer writes PgBouncer's ini text; drop --output json, or use --format json".to_owned(),
            )
            .into())
        }
        (Some(f), _) => f,
        (None, OutputFormat::Json) => RoutesFormat::Json,
        (None, OutputFormat::Table) => RoutesFormat::Pgbouncer,
    };
    let list = match ControlPlane::open_read_only(settings, reporter, true).await? {
        Some(plane) => routes::routes(&plane).await?,
        None => Vec::new(),
    };
    let text = match format {
        RoutesFormat::Pgbouncer => crate::output::fleet_pgbouncer(&list),
        RoutesFormat::Json => format!("{}\n", serde_json::to_string_pretty(&list)?),
    };
    match &args.file {
        Some(path) => document::to_file_atomically(path, text.as_bytes()),
        None => document::to_stdout(text.as_bytes()),
    }
}
