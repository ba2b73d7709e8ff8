//! The `tenantctl` binary: parse, run, map the error to an exit code, print it once.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // --help and --version print as clap does and exit 0; a usage error is one line, exit 2.
    let cli = match tenantctl::cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => {
            let _ = e.print();
            return ExitCode::from(tenantctl::exit::SUCCESS);
        }
        Err(e) => {
            tenantctl::output::usage_error(&e);
            return ExitCode::from(tenantctl::exit::BAD_INPUT);
        }
    };
    match tenantctl::run(cli) {
        Ok(()) => ExitCode::from(tenantctl::exit::SUCCESS),
        Err(err) => {
            tenantctl::output::error(&err);
            ExitCode::from(tenantctl::exit::code(&err))
        }
    }
}
