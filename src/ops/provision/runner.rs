//! The step runner of `provision`: skips the steps the journal records as done, runs, times
//! and reports the others, journals each by its stable name (`Step`), and offers the crash
//! points the fault tests use (`after-step:<n>`, `before-journal:<n>`, `n` the step's number).

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use anyhow::Result;

use super::Request;
use crate::ops::{failpoint, ControlPlane, Reporter, StepResult};
use crate::step::Step;
use crate::tenant::Tenant;

/// Drives the steps of one run.
pub(super) struct Run<'a> {
    pub plane: &'a ControlPlane,
    pub req: &'a Request,
    pub reporter: &'a dyn Reporter,
    /// The steps the journal had when the run began.
    pub done: BTreeSet<Step>,
}

impl Run<'_> {
    /// Reports `step` as already done.
    pub fn skip(&self, step: Step) {
        let (n, total) = (step.number(), Step::ALL.len());
        self.reporter.step_started(n, total, step.label());
        self.reporter.step_finished(
            n,
            total,
            step.label(),
            StepResult::AlreadyDone,
            Duration::ZERO,
        );
    }

    /// Runs `step` and reports it; the step journals itself.
    pub async fn step<T, F, Fut>(&self, step: Step, work: F) -> Result<T>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        let (n, total, name) = (step.number(), Step::ALL.len(), step.label());
        self.reporter.step_started(n, total, name);
        let t0 = Instant::now();
        match work().await {
            Ok(v) => {
                self.reporter
                    .step_finished(n, total, name, StepResult::Done, t0.elapsed());
                failpoint(&self.plane.ctx, &format!("after-step:{n}"));
                Ok(v)
            }
            Err(e) => {
                self.reporter
                    .step_finished(n, total, name, StepResult::Failed, t0.elapsed());
                Err(e.context(format!(
                    "step {n}/{total} ({name}) failed for tenant `{}`; fix the cause and run the same command again to resume",
                    self.req.slug
                )))
            }
        }
    }

    /// Runs `step` unless the journal has it, then journals it. A crash between the work and
    /// the journal entry makes the next run redo the step, which every step tolerates. The
    /// activation is journaled atomically with its work, so an active tenant always has a
    /// complete journal.
    pub async fn step_journaled<F, Fut>(&self, step: Step, tenant: &Tenant, work: F) -> Result<()>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<()>>,
    {
        if self.done.contains(&step) {
            self.skip(step);
            return Ok(());
        }
        let t0 = Instant::now();
        let plane = self.plane;
        self.step(step, || async move {
            work().await?;
            failpoint(&plane.ctx, &format!("before-journal:{}", step.number()));
            if step == Step::Activate {
                return Ok(()); // activation journals itself, in its own transaction
            }
            plane
                .control
                .journal_step(tenant.id, step, millis(t0.elapsed()))
                .await
        })
        .await
    }
}

pub(super) fn millis(d: Duration) -> i32 {
    i32::try_from(d.as_millis()).unwrap_or(i32::MAX)
}
