//! `tenantctl completions SHELL` and `tenantctl man [--dir DIR]`: generated from the clap
//! definition of the command line, so they cannot drift from it. Neither needs a database or a
//! configuration.

use std::fs;

use anyhow::{Context, Result};
use clap::CommandFactory;

use crate::cli::{Cli, CompletionsArgs, ManArgs};
use crate::output::document as output_document;

pub fn completions(args: &CompletionsArgs) -> Result<()> {
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut Cli::command(), "tenantctl", &mut script);
    output_document::to_stdout(&script)
}

pub fn man(args: &ManArgs) -> Result<()> {
    match &args.dir {
        Some(dir) => {
            fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            clap_mangen::generate_to(Cli::command(), dir)
                .with_context(|| format!("writing manual pages to {}", dir.display()))
        }
        None => {
            let mut page = Vec::new();
            // As `generate_to` does for every page: no `help` subcommand, which has no page.
            clap_mangen::Man::new(Cli::command().disable_help_subcommand(true))
                .render(&mut page)
                .context("rendering the manual page")?;
            output_document::to_stdout(&page)
        }
    }
}
