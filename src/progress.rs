//! `TerminalReporter`: the `ops::Reporter` people see. A spinner per step when stderr is a
//! terminal, plain `[3/7] apply schema ... ok 41 ms` lines otherwise, nothing with `--quiet`
//! (but a secret is always shown: it is shown only once).

use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

use crate::cli::OutputFormat;
use crate::ops::{Reporter, StepResult};
use crate::output;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Spinner,
    Lines,
    Quiet,
}

pub struct TerminalReporter {
    mode: Mode,
    spinner: Mutex<Option<ProgressBar>>,
    bar: Mutex<Option<ProgressBar>>,
}

impl TerminalReporter {
    /// Decides once, from the flags and whether stderr is a terminal.
    pub fn new(quiet: bool, format: OutputFormat) -> TerminalReporter {
        let mode = if quiet {
            Mode::Quiet
        } else if std::io::stderr().is_terminal() && format == OutputFormat::Table {
            Mode::Spinner
        } else {
            Mode::Lines
        };
        TerminalReporter {
            mode,
            spinner: Mutex::new(None),
            bar: Mutex::new(None),
        }
    }

    /// Prints a line without tearing a running spinner.
    fn line(&self, text: &str) {
        let guard = self.spinner.lock().unwrap_or_else(|e| e.into_inner());
        match guard.as_ref() {
            Some(bar) => bar.suspend(|| output::stderr_line(text)),
            None => output::stderr_line(text),
        }
    }
}

impl Reporter for TerminalReporter {
    fn step_started(&self, step: usize, total: usize, name: &str) {
        if self.mode != Mode::Spinner {
            return;
        }
        let bar = ProgressBar::new_spinner();
        bar.set_style(
            ProgressStyle::with_template("{spinner} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar.set_message(format!("[{step}/{total}] {name} ..."));
        bar.enable_steady_tick(Duration::from_millis(80));
        *self.spinner.lock().unwrap_or_else(|e| e.into_inner()) = Some(bar);
    }

    fn step_finished(
        &self,
        step: usize,
        total: usize,
        name: &str,
        result: StepResult,
        elapsed: Duration,
    ) {
        if let Some(bar) = self
            .spinner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            bar.finish_and_clear();
        }
        if self.mode == Mode::Quiet {
            return;
        }
        let outcome = match result {
            StepResult::Done => format!("ok {} ms", elapsed.as_millis()),
            StepResult::AlreadyDone => "already done".to_owned(),
            StepResult::Failed => format!("failed after {} ms", elapsed.as_millis()),
        };
        output::stderr_line(&format!("[{step}/{total}] {name} ... {outcome}"));
    }

    fn status(&self, message: &str) {
        if self.mode != Mode::Quiet {
            self.line(message);
        }
    }

    fn secret(&self, message: &str) {
        self.line(message);
    }

    fn warning(&self, message: &str) {
        self.line(message);
    }

    fn progress(&self, done: usize, total: usize, what: &str) {
        if self.mode != Mode::Spinner {
            return;
        }
        let mut bar = self.bar.lock().unwrap_or_else(|e| e.into_inner());
        if done == 0 {
            let b = ProgressBar::new(total as u64);
            b.set_style(
                ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} {elapsed}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            b.set_message(what.to_owned());
            *bar = Some(b);
        } else if let Some(b) = bar.as_ref() {
            b.set_position(done as u64);
        }
        if done >= total {
            if let Some(b) = bar.take() {
                b.finish_and_clear();
            }
        }
    }
}
