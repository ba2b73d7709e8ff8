//! The `tenantctl` binary: parse, run, map the error to an exit code, print it once.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // Usage errors exit 2 and --help/--version exit 0, from clap itself.
    let cli = tenantctl::cli::Cli::parse();
    match tenantctl::run(cli) {
        Ok(()) => ExitCode::from(tenantctl::exit::SUCCESS),
        Err(err) => {
            tenantctl::output::error(&err);
            ExitCode::from(tenantctl::exit::code(&err))
        }
    }
}
