//! Everything tenantctl prints: results on stdout (tables or JSON), status lines and errors on
//! stderr. The only module allowed to print. A closed stdout (`| head`) is not an error.

#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::io::{self, Write};

use anyhow::Result;
use comfy_table::{presets, ContentArrangement, Table};
use serde::Serialize;

use crate::cli::OutputFormat;
use crate::cluster::ClusterStatus;
use crate::db::lifecycle::AuditEntry;
use crate::excerpt::escape;
use crate::ops::billing::{InvoiceView, RunView};
use crate::ops::credentials::CredentialsView;
use crate::ops::doctor::{InitView, Report};
use crate::ops::features::{Check as FeatureCheck, FeaturesView, Refreshed};
use crate::ops::lifecycle::Purged;
use crate::ops::migrate::{DatabaseResult, DatabaseState};
use crate::ops::ownership::Adopted;
use crate::ops::provision::{Outcome, Plan};
use crate::ops::quota::{Check, QuotaLine};
use crate::ops::tenants::TenantView;
use crate::ops::usage::{ImportView, RecordView, RefreshView};

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

pub struct Output {
    format: OutputFormat,
}

impl Output {
    pub fn new(format: OutputFormat) -> Output {
        Output { format }
    }

    fn json<T: Serialize + ?Sized>(&self, value: &T) -> Result<()> {
        emit(&format!("{}\n", serde_json::to_string_pretty(value)?))
    }

    fn table(headers: &[&str]) -> Table {
        let mut t = Table::new();
        t.load_preset(presets::NOTHING)
            .set_content_arrangement(ContentArrangement::Disabled)
            .set_header(headers.to_vec());
        t
    }

    fn fields(rows: Vec<(&str, String)>) -> String {
        let mut t = Table::new();
        t.load_preset(presets::NOTHING)
            .set_content_arrangement(ContentArrangement::Disabled);
        for (k, v) in rows {
            t.add_row(vec![k.to_owned(), escape(&v)]);
        }
        format!("{}\n", t.trim_fmt())
    }

    pub fn tenant(&self, v: &TenantView) -> Result<()> {
        match self.format {
            OutputFormat::Json => self.json(v),
            OutputFormat::Table | OutputFormat::Csv => emit(&tenant_text(v)),
        }
    }

    pub fn provisioned(&self, o: &Outcome) -> Result<()> {
        match self.format {
            OutputFormat::Json => self.json(o),
            OutputFormat::Table | OutputFormat::Csv => emit(&tenant_text(&o.tenant)),
        }
    }

    pub fn tenants(&self, list: &[TenantView]) -> Result<()> {
        match self.format {
            OutputFormat::Json => self.json(list),
            OutputFormat::Table | OutputFormat::Csv => {
                let mut t = Self::table(&[
                    "SLUG",
                    "NAME",
                    "TIER",
                    "ISOLATION",
                    "STATUS",
                    "DATABASE",
                    "CREATED",
                ]);
                for v in list {
                    t.add_row(vec![
                        v.slug.clone(),
                        escape(&v.name),
                        v.tier.clone(),
                        v.isolation.to_string(),
                        v.status.clone(),
                        v.database.clone(),
                        v.created_at.format("%Y-%m-%d %H:%M").to_string(),
                    ]);
                }
                emit(&format!("{}\n", t.trim_fmt()))
            }
        }
    }

    pub fn plan(&self, p: &Plan) -> Result<()> {
        match self.format {
            OutputFormat::Json => self.json(p),
            OutputFormat::Table | OutputFormat::Csv => {
                let mut text = format!(
                    "dry run: provision `{}` on tier `{}` ({}), database `{}`, role `{}`{}\n",
                    p.slug,
                    p.tier,
                    p.isolation,
                    p.database,
                    p.role,
                    p.status
                        .as_ref()
                        .map(|s| format!(", currently {s}"))
                        .unwrap_or_default()
                );
                for s in &p.steps {
                    text.push_str(&format!(
                        "[{}/{}] {} ... {}\n",
                        s.step,
                        p.steps.len(),
                        s.name,
                        s.state
                    ));
                }
                emit(&text)
            }
        }
    }

    pub fn cluster_status(&self, s: &ClusterStatus) -> Result<()> {
        match self.format {
            OutputFormat::Json => self.json(s),
            OutputFormat::Table | OutputFormat::Csv => emit(&Self::fields(vec![
                ("data dir", s.data_dir.clone()),
                ("cluster", s.pgdata.clone()),
                ("socket dir", s.socket_dir.clone()),
                ("initialized", s.initialized.to_string()),
                (
                    "running",
                    match s.pid {
                        Some(pid) => format!(
                            "yes (pid {pid}, {})",
                            s.state.as_deref().unwrap_or("state unknown")
                        ),
                        None => "no".to_owned(),
                    },
                ),
                ("socket", s.socket.clone().unwrap_or_default()),
                (
                    "reachable",
                    match (&s.problem, s.reachable) {
                        (_, true) => "yes".to_owned(),
                        (Some(problem), false) => format!("no: {problem}"),
                        (None, false) => "no".to_owned(),
                    },
                ),
            ])),
        }
    }

    pub fn credentials(&self, v: &CredentialsView) -> Result<()> {
        match self.format {
            OutputFormat::Json => self.json(v),
            OutputFormat::Table | OutputFormat::Csv => match &v.tenant_context {
                Some(ctx) => emit(&format!(
                    "tenant `{}` is pooled: its application connects to database `{}` on {}:{} as the shared role `{}` (its password is the operator's) and sets its tenant context at the start of every transaction (it ends with the transaction, so a connection pool never hands one tenant's context to the next): {ctx}\n",
                    v.slug, v.database, v.host, v.port, v.role
                )),
                None => emit(&Self::fields(vec![
                    ("slug", v.slug.clone()),
                    ("role", v.role.clone()),
                    ("database", v.database.clone()),
                    ("server", format!("{}:{}", v.host, v.port)),
                    ("sslmode", v.sslmode.clone()),
                    ("rotated", v.rotated.to_string()),
                    (
                        "valid until",
                        v.valid_until
                            .map(|t| t.to_rfc3339())
                            .unwrap_or_else(|| "never".to_owned()),
                    ),
                ])),
            },
        }
    }

    pub fn initialised(&self, v: &InitView) -> Result<()> {
        match self.format {
            OutputFormat::Json => self.json(v),
            OutputFormat::Table | OutputFormat::Csv => {
                let what = match (v.created, v.applied.len()) {
                    (true, n) => format!(
                        "created control database `{}` and applied {n} migration(s)",
                        v.database
                    ),
                    (false, 0) => format!(
                        "control database `{}` is up to date: nothing to do",
                        v.database
                    ),
                    (false, n) => format!(
                        "control database `{}`: applied {n} migration(s)",
                        v.database
                    ),
                };
                emit(&format!("{what} on {}\n", v.server))
            }
        }
    }

    pub fn doctor(&self, r: &Report) -> Result<()> {
        match self.format {
            OutputFormat::Json => self.json(r),
            OutputFormat::Table | OutputFormat::Csv => {
                let yes = |b: bool| if b { "yes" } else { "no" }.to_owned();
                let mut rows = vec![
                    ("server", r.server.clone()),
                    ("server version", r.server_version.clone()),
                    (
                        "tls",
                        match (&r.tls_version, r.tls) {
                            (Some(v), true) => format!("yes ({v}, sslmode={})", r.sslmode),
                            _ => format!("no (sslmode={})", r.sslmode),
                        },
                    ),
                    ("admin role", r.role.clone()),
                    ("superuser", yes(r.superuser)),
                    ("bypassrls", yes(r.bypassrls)),
                ];
                for p in &r.privileges {
                    rows.push((
                        p.name,
                        match &p.grant {
                            None => "yes".to_owned(),
                            Some(g) => format!("MISSING: {g}"),
                        },
                    ));
                }
                rows.push(("control database", r.control_database.clone()));
                rows.push((
                    "control schema",
                    match r.schema_version {
                        None => "none (run `tenantctl init`)".to_owned(),
                        Some(v) if r.pending_migrations.is_empty() => format!("V{v}, up to date"),
                        Some(v) => format!("V{v}, pending {}", r.pending_migrations.join(", ")),
                    },
                ));
                for d in &r.databases {
                    rows.push((
                        "tenant database",
                        format!(
                            "{}: {}",
                            d.database,
                            match &d.error {
                                None => "reachable".to_owned(),
                                Some(e) => format!("UNREACHABLE: {e}"),
                            }
                        ),
                    ));
                }
                let mut text = Self::fields(rows);
                if r.ok {
                    text.push_str("all is well\n");
                }
                for p in &r.problems {
                    text.push_str(&format!("problem: {p}\n"));
                }
                emit(&text)
            }
        }
    }

    pub fn quota_lines(&self, lines: &[QuotaLine]) -> Result<()> {
        match self.format {
            OutputFormat::Json => self.json(lines),
            OutputFormat::Table | OutputFormat::Csv => {
                let mut t = Self::table(&[
                    "RESOURCE",
                    "KIND",
                    "LIMIT",
                    "USED",
                    "REMAINING",
                    "LIMIT IS",
                    "SOURCE",
                    "PERIOD",
                ]);
                for l in lines {
                    t.add_row(vec![
                        l.resource.clone(),
                        format!("{:?}", l.kind).to_lowercase(),
                        l.limit.to_string(),
                        l.used.to_string(),
                        l.remaining.to_string(),
                        match &l.overage_price {
                            Some(p) => format!("soft ({p}/unit)"),
                            None => "hard".to_owned(),
                        },
                        l.source.clone(),
                        l.period.clone().unwrap_or_else(|| "now".to_owned()),
                    ]);
                }
                emit(&format!("{}\n", t.trim_fmt()))
            }
        }
    }

    pub fn check(&self, c: &Check) -> Result<()> {
        match self.format {
            OutputFormat::Json => self.json(c),
            OutputFormat::Table | OutputFormat::Csv => {
                let verdict = if c.allowed { "allowed" } else { "refused" };
                let reason = c
                    .reason
                    .as_ref()
                    .map(|r| format!(": {r}"))
                    .unwrap_or_default();
                emit(&format!(
                    "{verdict}: {} {} for {} (used {} of {}, {} remaining){reason}\n",
                    c.amount, c.resource, c.slug, c.used, c.limit, c.remaining
                ))
            }
        }
    }

    pub fn features(&self, v: &FeaturesView) -> Result<()> {
        match self.format {
            OutputFormat::Json => self.json(v),
            OutputFormat::Table | OutputFormat::Csv => {
                let mut text = format!(
                    "tenant {} (tier {}, {}): {}\n",
                    v.slug,
                    v.tier,
                    v.status,
                    if v.features.is_empty() {
                        "no features now".to_owned()
                    } else {
                        v.features.join(", ")
                    }
                );
                let mut t = Self::table(&["FEATURE", "FROM TIER", "OVERRIDE", "ENTITLED"]);
                for e in &v.entitlements {
                    t.add_row(vec![
                        e.feature.clone(),
                        if e.from_tier { "yes" } else { "no" }.to_owned(),
                        e.override_.clone().unwrap_or_else(|| "-".to_owned()),
                        if e.entitled { "yes" } else { "no" }.to_owned(),
                    ]);
                }
                text.push_str(&format!("{}\n", t.trim_fmt()));
                emit(&text)
            }
        }
    }

    pub fn features_refreshed(&self, list: &[Refreshed]) -> Result<()> {
        match self.format {
            OutputFormat::Json => self.json(list),
            OutputFormat::Table | OutputFormat::Csv => {
                let mut t = Self::table(&["SLUG", "TIER", "STATUS", "CHANGED", "FEATURES"]);
                for r in list {
                    t.add_row(vec![
                        r.slug.clone(),
                        r.tier.clone(),
                        r.status.clone(),
                        if r.changed { "yes" } else { "no" }.to_owned(),
                        r.features.join(" "),
                    ]);
                }
                emit(&format!("{}\n", t.trim_fmt()))
            }
        }
    }

    pub fn feature_check(&self, c: &FeatureCheck) -> Result<()> {
        match self.format {
            OutputFormat::Json => self.json(c),
            OutputFormat::Table | OutputFormat::Csv => emit(&match &c.reason {
                None => format!("yes: {} has {}\n", c.slug, c.feature),
                Some(r) => format!("no: {r}\n"),
            }),
        }
    }

    pub fn recorded(&self, r: &RecordView) -> Result<()> {
        match self.format {
            OutputFormat::Json => self.json(r),
            OutputFormat::Table | OutputFormat::Csv => emit(&match r.total {
                Some(total) => format!(
                    "recorded {} {} for {} ({} total {total})\n",
                    r.quantity, r.resource, r.slug, r.period
                ),
                None => format!(
                    "duplicate key `{}`: already counted, nothing recorded\n",
                    r.key
                ),
            }),
        }
    }

    pub fn imported(&self, v: &ImportView) -> Result<()> {
        match self.format {
            OutputFormat::Json => self.json(v),
            OutputFormat::Table | OutputFormat::Csv => {
                let mut text = format!(
                    "{}: {} rows: {} accepted, {} duplicates, {} refused ({} ms)\n",
                    v.file, v.rows, v.accepted, v.duplicates, v.refused, v.duration_ms
                );
                for r in &v.refused_rows {
                    text.push_str(&format!(
                        "  line {}: {} {}: {}\n",
                        r.line, r.slug, r.resource, r.reason
                    ));
                }
                emit(&text)
            }
        }
    }

    pub fn refreshed(&self, v: &RefreshView) -> Result<()> {
        let mut text = format!("measured {} tenants in {} ms", v.tenants, v.duration_ms);
        for (what, list) in [("skipped", &v.skipped), ("failed", &v.failed)] {
            for u in list {
                text.push_str(&format!(
                    "\n{what} `{}`: {} kept from the last measurement ({})",
                    u.slug,
                    u.kept.join(", "),
                    crate::excerpt::excerpt_n(&u.reason, crate::excerpt::REASON_CHARS)
                ));
            }
        }
        self.message(&text, v)
    }

    pub fn purged(&self, list: &[Purged]) -> Result<()> {
        match self.format {
            OutputFormat::Json => self.json(list),
            OutputFormat::Table | OutputFormat::Csv => {
                let mut text = String::new();
                for p in list {
                    let what = match (&p.database, &p.role) {
                        (Some(db), Some(role)) => format!("database {db}, role {role}"),
                        _ => format!("{} pooled rows", p.pooled_rows),
                    };
                    text.push_str(&format!(
                        "purged `{}`: {what}, buckets {}\n",
                        p.slug,
                        p.buckets.join(", ")
                    ));
                }
                if list.is_empty() {
                    text.push_str("nothing to purge\n");
                }
                emit(&text)
            }
        }
    }

    pub fn adopted(&self, a: &Adopted) -> Result<()> {
        match self.format {
            OutputFormat::Json => self.json(a),
            OutputFormat::Table | OutputFormat::Csv => {
                let list = |v: &[String]| {
                    if v.is_empty() {
                        "none".to_owned()
                    } else {
                        v.join(", ")
                    }
                };
                emit(&format!(
                    "tenant `{}`: marked {}; already marked {}; missing {}\n",
                    a.slug,
                    list(&a.marked),
                    list(&a.already_marked),
                    list(&a.missing)
                ))
            }
        }
    }

    pub fn audit(&self, entries: &[AuditEntry]) -> Result<()> {
        match self.format {
            OutputFormat::Json => self.json(entries),
            OutputFormat::Table | OutputFormat::Csv => {
                let mut t =
                    Self::table(&["AT", "ACTOR", "ACTION", "SLUG", "FROM", "TO", "DETAILS"]);
                for e in entries {
                    // Stored text is escaped: rows written before its characters were
                    // checked may hold a raw newline or escape sequence (from `--actor`).
                    t.add_row(vec![
                        e.at.format("%Y-%m-%d %H:%M:%S").to_string(),
                        escape(&e.actor),
                        escape(&e.action),
                        escape(e.slug.as_deref().unwrap_or_default()),
                        escape(e.from_status.as_deref().unwrap_or_default()),
                        escape(e.to_status.as_deref().unwrap_or_default()),
                        escape(&e.details.to_string()),
                    ]);
                }
                emit(&format!("{}\n", t.trim_fmt()))
            }
        }
    }

    pub fn migrated(&self, results: &[DatabaseResult]) -> Result<()> {
        match self.format {
            OutputFormat::Json => self.json(results),
            OutputFormat::Table | OutputFormat::Csv => {
                let mut t =
                    Self::table(&["DATABASE", "TENANTS", "RESULT", "APPLIED", "MS", "ERROR"]);
                for r in results {
                    t.add_row(vec![
                        r.database.clone(),
                        tenants_cell(&r.tenants),
                        r.result.clone(),
                        r.applied.join(" "),
                        r.duration_ms.to_string(),
                        r.error.clone().unwrap_or_default(),
                    ]);
                }
                emit(&format!("{}\n", t.trim_fmt()))
            }
        }
    }

    pub fn schema_states(&self, states: &[DatabaseState]) -> Result<()> {
        match self.format {
            OutputFormat::Json => self.json(states),
            OutputFormat::Table | OutputFormat::Csv => {
                let mut t = Self::table(&[
                    "DATABASE", "TENANTS", "VERSION", "LATEST", "BEHIND", "PENDING", "NOTE",
                ]);
                for s in states {
                    t.add_row(vec![
                        s.database.clone(),
                        tenants_cell(&s.tenants),
                        s.version
                            .map(|v| v.to_string())
                            .unwrap_or_else(|| "?".to_owned()),
                        s.latest.to_string(),
                        if s.behind { "yes" } else { "no" }.to_owned(),
                        s.pending.join(" "),
                        s.note.clone().unwrap_or_default(),
                    ]);
                }
                emit(&format!("{}\n", t.trim_fmt()))
            }
        }
    }

    pub fn bill_run(&self, run: &RunView) -> Result<()> {
        let summary = if run.already_billed {
            format!("{} was billed already; nothing to do", run.period)
        } else {
            format!(
                "{}{} tenants for {}: total {} {} in {} ms ({} upgrade hints)",
                if run.unfinished {
                    "preview of an unfinished month (usage so far), nothing written: would bill "
                } else if run.dry_run {
                    "dry run, nothing written: would bill "
                } else {
                    "billed "
                },
                run.tenants_billed,
                run.period,
                run.total,
                run.currency,
                run.duration_ms,
                run.upgrade_hints
            )
        };
        match self.format {
            OutputFormat::Json => self.json(run),
            OutputFormat::Csv => {
                stderr_line(&summary);
                emit(&invoices_csv(&run.invoices))
            }
            OutputFormat::Table => {
                let mut text = String::new();
                if !run.invoices.is_empty() {
                    text.push_str(&invoices_table(&run.invoices));
                }
                text.push_str(&summary);
                text.push('\n');
                emit(&text)
            }
        }
    }

    pub fn invoices(&self, list: &[InvoiceView]) -> Result<()> {
        match self.format {
            OutputFormat::Json => self.json(list),
            OutputFormat::Csv => emit(&invoices_csv(list)),
            OutputFormat::Table => emit(&invoices_table(list)),
        }
    }

    pub fn invoice(&self, i: &InvoiceView) -> Result<()> {
        match self.format {
            OutputFormat::Json => self.json(i),
            OutputFormat::Csv => emit(&invoices_csv(std::slice::from_ref(i))),
            OutputFormat::Table => {
                let mut text = Self::fields(vec![
                    ("invoice", i.id.map(|n| n.to_string()).unwrap_or_default()),
                    ("tenant", i.slug.clone()),
                    ("period", i.period.clone()),
                    ("total", format!("{} {}", i.total, i.currency)),
                    ("upgrade hint", hint_text(i)),
                ]);
                let mut t = Self::table(&[
                    "KIND",
                    "DESCRIPTION",
                    "RESOURCE",
                    "TIER",
                    "QUANTITY",
                    "UNIT PRICE",
                    "AMOUNT",
                ]);
                for l in &i.lines {
                    t.add_row(vec![
                        l.kind.clone(),
                        l.description.clone(),
                        l.resource.clone().unwrap_or_default(),
                        l.tier.clone(),
                        l.quantity.to_string(),
                        l.unit_price.clone(),
                        l.amount.clone(),
                    ]);
                }
                text.push_str(&format!("{}\n", t.trim_fmt()));
                emit(&text)
            }
        }
    }

    /// A one-line result for commands whose result is a fact (`local stop`).
    pub fn message<T: Serialize>(&self, text: &str, value: &T) -> Result<()> {
        match self.format {
            OutputFormat::Json => self.json(value),
            OutputFormat::Table | OutputFormat::Csv => emit(&format!("{text}\n")),
        }
    }
}

fn hint_text(i: &InvoiceView) -> String {
    match &i.upgrade_hint {
        Some(h) => format!(
            "{} would have cost {} (saving {})",
            h["tier"].as_str().unwrap_or("?"),
            h["would_cost"].as_str().unwrap_or("?"),
            h["saving"].as_str().unwrap_or("?")
        ),
        None => String::new(),
    }
}

fn invoices_table(list: &[InvoiceView]) -> String {
    let mut t = Output::table(&[
        "ID",
        "SLUG",
        "PERIOD",
        "TOTAL",
        "CURRENCY",
        "LINES",
        "UPGRADE HINT",
    ]);
    for i in list {
        t.add_row(vec![
            i.id.map(|n| n.to_string())
                .unwrap_or_else(|| "-".to_owned()),
            i.slug.clone(),
            i.period.clone(),
            i.total.clone(),
            i.currency.clone(),
            i.lines.len().to_string(),
            hint_text(i),
        ]);
    }
    format!("{}\n", t.trim_fmt())
}

/// A CSV field, quoted when it needs to be.
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

/// One row per invoice line, for finance. `included`, `month_usage` and `late_units` come
/// last (added later), so readers of the earlier columns by position are unaffected.
fn invoices_csv(list: &[InvoiceView]) -> String {
    let opt = |n: Option<i64>| n.map(|n| n.to_string()).unwrap_or_default();
    let mut out = String::from(
        "invoice_id,slug,period,currency,line_no,kind,description,resource,tier,quantity,unit_price,amount,usage_period,invoice_total,included,month_usage,late_units\n",
    );
    for i in list {
        for (n, l) in i.lines.iter().enumerate() {
            let fields = [
                i.id.map(|n| n.to_string()).unwrap_or_default(),
                i.slug.clone(),
                i.period.clone(),
                i.currency.clone(),
                (n + 1).to_string(),
                l.kind.clone(),
                l.description.clone(),
                l.resource.clone().unwrap_or_default(),
                l.tier.clone(),
                l.quantity.to_string(),
                l.unit_price.clone(),
                l.amount.clone(),
                l.usage_period.clone().unwrap_or_default(),
                i.total.clone(),
                opt(l.included),
                opt(l.month_usage),
                opt(l.late_units),
            ];
            out.push_str(
                &fields
                    .iter()
                    .map(|f| csv_field(f))
                    .collect::<Vec<_>>()
                    .join(","),
            );
            out.push('\n');
        }
    }
    out
}

/// A database's tenants in one cell: the slug, or a count for the pooled database.
fn tenants_cell(slugs: &[String]) -> String {
    match slugs {
        [one] => one.clone(),
        many => format!("{} tenants", many.len()),
    }
}

fn tenant_text(v: &TenantView) -> String {
    let buckets = v
        .buckets
        .iter()
        .map(|b| format!("{} ({})", b.name, b.location))
        .collect::<Vec<_>>();
    let quotas = v
        .quotas
        .iter()
        .map(|(r, q)| format!("{r}={}", q.limit))
        .collect::<Vec<_>>();
    Output::fields(vec![
        ("slug", v.slug.clone()),
        ("id", v.id.to_string()),
        ("name", v.name.clone()),
        ("tier", v.tier.clone()),
        ("isolation", v.isolation.to_string()),
        ("status", v.status.clone()),
        ("database", v.database.clone()),
        ("role", v.role.clone()),
        ("owner", v.owner_email.clone()),
        ("created", v.created_at.to_rfc3339()),
        (
            "deleted",
            v.deleted_at
                .map(|d| d.to_rfc3339())
                .unwrap_or_else(|| "-".to_owned()),
        ),
        (
            "purge after",
            v.purge_after
                .map(|d| d.to_rfc3339())
                .unwrap_or_else(|| "-".to_owned()),
        ),
        // One line: the table escapes a newline in a cell as a literal `\n`.
        ("buckets", buckets.join(", ")),
        ("quotas", quotas.join(" ")),
        ("features", v.features.join(" ")),
    ])
}

/// `provision --file`: the summary (JSON: `ops::bulk::Summary` as it is), failures on stderr.
impl Output {
    pub fn bulk_provisioned(&self, s: &crate::ops::bulk::Summary) -> Result<()> {
        for f in &s.failed {
            stderr_line(&format!(
                "line {}: tenant `{}` failed: {}",
                f.line, f.slug, f.error
            ));
        }
        match self.format {
            OutputFormat::Json => self.json(s),
            OutputFormat::Table | OutputFormat::Csv => emit(&format!(
                "{} row(s): {} provisioned, {} already active (skipped), {} failed; passwords in {} ({} at a time, {} ms)",
                s.rows,
                s.provisioned,
                s.skipped,
                s.failed.len(),
                s.password_file,
                s.concurrency,
                s.duration_ms
            )),
        }
    }
}
