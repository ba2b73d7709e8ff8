//! Everything tenantctl prints: results on stdout (tables, JSON or CSV), status lines and
//! errors on stderr. The only module allowed to print. A closed stdout (`| head`) is not an
//! error.
//!
//! # Views and `Render`
//!
//! A command's result is a view: a `#[derive(Serialize)]` struct (or a slice of them) returned
//! by `ops`. JSON is always serde's rendering of the view (its field names are a contract,
//! pinned by `tests/contract.rs`); the table format and, for views of exported rows, CSV come
//! from the view's `Render` implementation, one per view, in the file of its topic below. The
//! format is matched once, in `Printer::print`.
//!
//! A command asks for its `Printer` before it does anything: a view without a CSV form refuses
//! `--output csv` there (exit 2, nothing changed), so which commands export CSV is declared by
//! the views themselves, not by a list.
//!
//! - `tenants`: one tenant, the list, provisioning results and plans.
//! - `lifecycle`: purges, adoption, the audit log.
//! - `quota`, `usage`, `billing`, `features`, `migrate`, `report`: their commands' views.
//! - `fleet`: the fleet's servers, tenants' routes, the PgBouncer routing table.
//! - `server`: the local cluster, credentials, `init` and `doctor`.
//! - `backup`: the storage policy, backups and restores.

#![allow(clippy::print_stdout, clippy::print_stderr)]

mod backup;
mod billing;
pub mod document;
mod features;
mod fleet;
mod lifecycle;
pub mod metrics;
mod migrate;
mod quota;
mod report;
mod server;
mod tenants;
mod usage;

use std::io::{self, Write};
use std::marker::PhantomData;

use anyhow::Result;
use comfy_table::{presets, ContentArrangement, Table};
use serde::Serialize;

use crate::cli::OutputFormat;
use crate::error::Failure;
use crate::excerpt::escape;

pub use fleet::pgbouncer as fleet_pgbouncer;
pub use server::Stopped;
pub use tenants::bulk_failures;

/// A result view: JSON from its `Serialize`, the rest from here.
pub trait Render: Serialize {
    /// The `table` format: a table, `key value` fields or a sentence, ending in a newline.
    fn human(&self) -> String;

    /// The `csv` format, for views of rows that are exported (invoices). `None`: the view has no
    /// CSV form and `--output csv` is refused before the command runs.
    const CSV: Option<fn(&Self) -> String> = None;

    /// A line for people on stderr that goes with the CSV rows (which carry no summary).
    fn csv_note(&self) -> Option<String> {
        None
    }
}

/// Prints the error and its causes once, as `error: outer: inner`.
/// The error and its causes on one line, with anything that could drive the terminal or break
/// the line (a newline in a server's message, an escape sequence in a value) escaped.
pub fn error(err: &anyhow::Error) {
    eprintln!("error: {}", crate::excerpt::escape(&format!("{err:#}")));
}

/// A command-line error from clap, on one line like every other error: clap's first line,
/// with the value or argument it quotes shortened and escaped (clap prints them raw, so a
/// megabyte argument or an escape sequence would reach the terminal), and a pointer to --help.
pub fn usage_error(err: &clap::Error) {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    if err.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
        eprintln!("error: a subcommand is required; see --help for the subcommands");
        return;
    }
    let mut text = err.render().to_string();
    for kind in [ContextKind::InvalidValue, ContextKind::InvalidArg] {
        if let Some(ContextValue::String(v)) = err.get(kind) {
            if !v.is_empty() {
                text = text.replace(v.as_str(), &crate::excerpt::excerpt(v));
            }
        }
    }
    // The first paragraph: the message, and the list of missing arguments if any.
    let first = text
        .split("\n\n")
        .next()
        .unwrap_or_default()
        .lines()
        .map(str::trim)
        .collect::<Vec<_>>()
        .join(" ");
    let first = first.strip_prefix("error: ").unwrap_or(&first);
    eprintln!(
        "error: {} (see --help)",
        crate::excerpt::excerpt_n(first, 300)
    );
}

/// One line for people, on stderr.
pub fn stderr_line(line: &str) {
    eprintln!("{line}");
}

/// Writes to stdout; a reader that went away ends the output quietly.
fn emit(text: &str) -> Result<()> {
    let mut out = io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other?),
    }
}

/// The format chosen on the command line; hands out a `Printer` per view.
pub struct Output {
    format: OutputFormat,
}

impl Output {
    pub fn new(format: OutputFormat) -> Output {
        Output { format }
    }

    /// The printer of view `V`. Called by a command before it does anything: a format the view
    /// does not have is bad input, and nothing has changed yet.
    pub fn printer<V: Render + ?Sized>(&self) -> Result<Printer<V>, Failure> {
        if self.format == OutputFormat::Csv && V::CSV.is_none() {
            return Err(csv_refused());
        }
        Ok(Printer {
            format: self.format,
            view: PhantomData,
        })
    }
}

/// Whether a command that prints a document of its own (Prometheus text) may run: `--output`
/// must be left at its default, refused before anything runs otherwise.
pub fn document_only(format: OutputFormat, what: &str) -> Result<(), Failure> {
    match format {
        OutputFormat::Table => Ok(()),
        OutputFormat::Csv => Err(csv_refused()),
        OutputFormat::Json => Err(Failure::BadInput(format!(
            "`{what}` prints Prometheus text only; drop --output json"
        ))),
    }
}

fn csv_refused() -> Failure {
    Failure::BadInput(
        "--output csv is for `bill`, `invoices` and `report`: this command's result is not rows to export; use table or json here"
            .to_owned(),
    )
}

/// Prints views of one type in the format asked for; only `Output::printer` makes one, so the
/// format was checked against the view before the command ran.
pub struct Printer<V: ?Sized> {
    format: OutputFormat,
    view: PhantomData<fn(&V)>,
}

impl<V: Render + ?Sized> Printer<V> {
    /// The one place that matches on the format.
    pub fn print(&self, view: &V) -> Result<()> {
        match (self.format, V::CSV) {
            (OutputFormat::Json, _) => emit(&format!("{}\n", serde_json::to_string_pretty(view)?)),
            (OutputFormat::Csv, Some(csv)) => {
                if let Some(note) = view.csv_note() {
                    stderr_line(&note);
                }
                emit(&csv(view))
            }
            (OutputFormat::Table | OutputFormat::Csv, _) => emit(&view.human()),
        }
    }
}

/// A table of rows under a header: no borders, columns as wide as their widest cell.
fn table(headers: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_preset(presets::NOTHING)
        .set_content_arrangement(ContentArrangement::Disabled)
        .set_header(headers.to_vec());
    t
}

/// A finished table as text, ending in a newline.
fn table_text(t: &Table) -> String {
    format!("{}\n", t.trim_fmt())
}

/// `key value` lines, values escaped (a newline in a value would break the layout).
fn fields(rows: Vec<(&str, String)>) -> String {
    let mut t = Table::new();
    t.load_preset(presets::NOTHING)
        .set_content_arrangement(ContentArrangement::Disabled);
    for (k, v) in rows {
        t.add_row(vec![k.to_owned(), escape(&v)]);
    }
    table_text(&t)
}

fn yes_no(b: bool) -> String {
    if b { "yes" } else { "no" }.to_owned()
}

/// A CSV field, quoted when it needs to be.
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

/// One CSV record, ending in a newline.
fn csv_record<S: AsRef<str>>(fields: &[S]) -> String {
    let mut line = fields
        .iter()
        .map(|f| csv_field(f.as_ref()))
        .collect::<Vec<_>>()
        .join(",");
    line.push('\n');
    line
}
