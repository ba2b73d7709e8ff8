//! One file per subcommand: arguments → one `ops` call → render. No SQL here.
//!
//! A command first takes the `Printer` of the view it will print (`out.printer::<View>()?`), so a
//! format the view does not have (`--output csv` where there are no rows to export) is refused
//! before anything else happens.

mod adopt;
mod audit;
mod backup;
mod bill;
mod completions;
mod credentials;
mod doctor;
mod features;
mod lifecycle;
mod list;
mod local;
mod metrics;
mod migrate;
mod move_tenant;
mod provision;
mod quota;
mod report;
mod route;
mod server;
mod set_tier;
mod show;
mod storage;
mod usage;

use anyhow::Result;

use crate::cli::Command;
use crate::config::Settings;
use crate::ops::{Context, Opening};
use crate::output::Output;
use crate::progress::TerminalReporter;

/// The one place the operations' context is cut out of the settings: what is left behind
/// (`output`, `quiet`, `warnings`, where the control database and the buckets are) belongs to
/// the terminal or to opening the control plane.
impl From<&Settings> for Context {
    fn from(s: &Settings) -> Context {
        Context {
            actor: s.actor.clone(),
            naming: s.naming.clone(),
            retention_days: s.retention_days,
            tiers_path: s.tiers_path.clone(),
            data_dir: s.data_dir.clone(),
            pg_bindir: s.pg_bindir.clone(),
            storage_root: s.storage_root.clone(),
            hooks: s.hooks.clone(),
            hooks_dir: s.hooks_dir.clone(),
            hook_env: s.hook_env.clone(),
            bill_batch: s.bill_batch,
            failpoint: s.failpoint.clone(),
        }
    }
}

/// So that a command opens the control plane with its settings: `ControlPlane::open(settings, …)`.
impl From<Settings> for Opening {
    fn from(s: Settings) -> Opening {
        Opening {
            ctx: Context::from(&s),
            database: s.database,
            storage: s.storage,
            server_access: s.server_access,
        }
    }
}

/// The commands that need neither settings nor a database (`completions`, `man`): run before
/// the configuration is resolved, so a broken config file or an unset variable cannot stop
/// them. `None` for every other command.
pub fn run_without_settings(command: &Command) -> Option<Result<()>> {
    match command {
        Command::Completions(args) => Some(completions::completions(args)),
        Command::Man(args) => Some(completions::man(args)),
        _ => None,
    }
}

pub async fn dispatch(command: Command, settings: Settings) -> Result<()> {
    // The actor is stored in every audit entry: bounded, printable text.
    crate::field::check(
        "actor (--actor, TENANTCTL_ACTOR, `actor` in the config file or $USER)",
        &settings.actor,
        crate::field::ACTOR_MAX,
    )?;
    let out = Output::new(settings.output);
    let reporter = TerminalReporter::new(settings.quiet, settings.output);
    match command {
        Command::Provision(args) => provision::run(settings, &args, &out, &reporter).await,
        Command::List => list::run(settings, &out, &reporter).await,
        Command::Show(args) => show::run(settings, &args, &out, &reporter).await,
        Command::SetTier(args) => set_tier::run(settings, &args, &out, &reporter).await,
        Command::Move(args) => move_tenant::run(settings, &args, &out, &reporter).await,
        Command::Suspend(args) => lifecycle::suspend(settings, &args, &out, &reporter).await,
        Command::Resume(args) => lifecycle::resume(settings, &args, &out, &reporter).await,
        Command::Deprovision(args) => {
            lifecycle::deprovision(settings, &args, &out, &reporter).await
        }
        Command::Restore(args) => lifecycle::restore(settings, &args, &out, &reporter).await,
        Command::Purge(args) => lifecycle::purge(settings, &args, &out, &reporter).await,
        Command::Adopt(args) => adopt::run(settings, &args, &out, &reporter).await,
        Command::Audit(args) => audit::run(settings, &args, &out, &reporter).await,
        Command::Migrate(args) => migrate::run(settings, &args, &out, &reporter).await,
        Command::Bill(args) => bill::run(settings, &args, &out, &reporter).await,
        Command::Invoices(cmd) => bill::invoices(settings, cmd, &out, &reporter).await,
        Command::Report(cmd) => report::run(settings, cmd, &out, &reporter).await,
        Command::Quota(cmd) => quota::run(settings, cmd, &out, &reporter).await,
        Command::Features(cmd) => features::run(settings, cmd, &out, &reporter).await,
        Command::Usage(cmd) => usage::run(settings, cmd, &out, &reporter).await,
        Command::Local(cmd) => local::run(&settings, cmd, &out).await,
        Command::Credentials(args) => credentials::run(settings, &args, &out, &reporter).await,
        Command::Storage(cmd) => storage::run(settings, cmd, &out, &reporter).await,
        Command::Backup(args) => backup::backup(settings, &args, &out, &reporter).await,
        Command::Backups(cmd) => backup::backups(settings, cmd, &out, &reporter).await,
        Command::RestoreBackup(args) => backup::restore(settings, &args, &out, &reporter).await,
        Command::Server(cmd) => server::run(settings, cmd, &out, &reporter).await,
        Command::Route(args) => route::route(settings, &args, &out, &reporter).await,
        Command::Routes(args) => route::routes(settings, &args, &out, &reporter).await,
        Command::Init => doctor::init(settings, &out, &reporter).await,
        Command::Doctor => doctor::doctor(settings, &out, &reporter).await,
        Command::Metrics(args) => metrics::run(settings, &args, &reporter).await,
        Command::Completions(args) => completions::completions(&args),
        Command::Man(args) => completions::man(&args),
    }
}
