//! Running the lifecycle hooks of `[hooks]` (see `hook`). A hook is one `/bin/sh -c` command,
//! run in the config file's directory in a process group of its own, with the tenant's JSON
//! (the view `show -o json` prints) on stdin and `TENANTCTL_*` variables naming the tenant and
//! the event, under the time limit `hooks.timeout` (on expiry the whole group is killed).
//! Its output goes to stderr, line by line, escaped; the last line of its stderr names the
//! cause when it fails.
//!
//! Hooks run in order; each success is recorded (`hook_runs`) against the run it belongs to,
//! the status change that put the tenant where it is (`ControlDb::hook_run`). The first failure
//! stops the rest and fails the command (exit 1); running the command again runs only the
//! hooks of that run that have not succeeded. A hook that ran but whose success was not
//! recorded (a crash in between) runs again: hooks must be idempotent.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use super::{failpoint, ControlPlane, Reporter};
use crate::action::Action;
use crate::excerpt::{escape, excerpt_n, REASON_CHARS};
use crate::hook::{label, Event};
use crate::tenant::Tenant;

/// Runs the hooks of `event` for `t` that have not succeeded in its current run. Nothing at
/// all (not even a read) when none are configured.
pub async fn run(
    plane: &ControlPlane,
    t: &Tenant,
    event: Event,
    reporter: &dyn Reporter,
) -> Result<()> {
    let commands = plane.ctx.hooks.of(event);
    if commands.is_empty() {
        return Ok(());
    }
    let run = current_run(plane, t).await?;
    let done = plane.control.succeeded_hooks(t.id, event, run).await?;
    let view = super::tenants::view(plane, t.clone()).await?;
    let mut stdin = serde_json::to_vec_pretty(&view).context("rendering the tenant's JSON")?;
    stdin.push(b'\n');
    for (i, command) in commands.iter().enumerate() {
        let position = i as i32 + 1;
        let name = label(event, i + 1, command);
        if done.iter().any(|(p, c)| *p == position && c == command) {
            reporter.status(&format!("hook {name} ... already done"));
            continue;
        }
        reporter.status(&format!("hook {name} ..."));
        let t0 = Instant::now();
        let ran = blocking(|| execute(plane, t, event, i + 1, command, &stdin, reporter));
        if let Err(why) = ran {
            return Err(anyhow::anyhow!(
                "hook {name} failed for tenant `{}`: {why}",
                t.slug
            ));
        }
        reporter.status(&format!(
            "hook {name} ... ok {} ms",
            t0.elapsed().as_millis()
        ));
        failpoint(&plane.ctx, &format!("hook:{event}:{position}:ran"));
        let ms = i32::try_from(t0.elapsed().as_millis()).unwrap_or(i32::MAX);
        plane
            .control
            .record_hook(t.id, event, run, position, command, ms)
            .await?;
        failpoint(&plane.ctx, &format!("hook:{event}:{position}"));
    }
    Ok(())
}

/// For a command run again on a tenant its last run finished (`suspend` of a suspended
/// tenant): whether that run, whose last status change was `finish`, still owes hooks of
/// `event` (as configured now) that have not succeeded.
pub async fn owed(plane: &ControlPlane, t: &Tenant, event: Event, finish: Action) -> Result<bool> {
    let commands = plane.ctx.hooks.of(event);
    if commands.is_empty() {
        return Ok(false);
    }
    let Some((run, action)) = plane.control.hook_run(t).await? else {
        return Ok(false);
    };
    if action != finish {
        return Ok(false);
    }
    let done = plane.control.succeeded_hooks(t.id, event, run).await?;
    Ok(commands
        .iter()
        .enumerate()
        .any(|(i, c)| !done.iter().any(|(p, d)| *p == i as i32 + 1 && d == c)))
}

/// The tenant's current run; 0 for a tenant whose status no audit entry explains.
async fn current_run(plane: &ControlPlane, t: &Tenant) -> Result<i64> {
    Ok(plane.control.hook_run(t).await?.map_or(0, |(id, _)| id))
}

/// One line of a hook's output, or the end of one of its streams.
enum Line {
    Out(String),
    Err(String),
    Closed,
}

/// Runs one hook to its end, forwarding its output; `Err` says why it failed.
fn execute(
    plane: &ControlPlane,
    t: &Tenant,
    event: Event,
    position: usize,
    command: &str,
    stdin: &[u8],
    reporter: &dyn Reporter,
) -> Result<(), String> {
    let ctx = &plane.ctx;
    let timeout = ctx.hooks.timeout;
    let short = format!("{}[{position}]", event.key());
    let mut cmd = Command::new("/bin/sh");
    cmd.arg("-c")
        .arg(command)
        .current_dir(&ctx.hooks_dir)
        .env_clear()
        .envs(ctx.hook_env.iter().map(|(k, v)| (k, v)))
        .env("TENANTCTL_EVENT", event.as_str())
        .env("TENANTCTL_TENANT_ID", t.id.to_string())
        .env("TENANTCTL_SLUG", t.slug.as_str())
        .env("TENANTCTL_TIER", &t.tier)
        .env("TENANTCTL_ISOLATION", t.isolation.as_str())
        .env("TENANTCTL_STATUS", t.status.to_string())
        .env("TENANTCTL_DATABASE", &t.database)
        .env("TENANTCTL_ROLE", &t.role)
        .env("TENANTCTL_OWNER_EMAIL", &t.owner_email)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own process group, so that a timeout ends whatever it started too.
        .process_group(0);
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("could not start /bin/sh: {e}"))?;
    let group = child.id() as libc::pid_t;
    let (tx, rx) = mpsc::channel();
    if let Some(mut input) = child.stdin.take() {
        let data = stdin.to_vec();
        // A hook that does not read its stdin closes it: not an error.
        std::thread::spawn(move || {
            let _ = input.write_all(&data);
        });
    }
    if let Some(out) = child.stdout.take() {
        forward(out, tx.clone(), Line::Out);
    }
    if let Some(err) = child.stderr.take() {
        forward(err, tx.clone(), Line::Err);
    }
    drop(tx);
    let deadline = Instant::now() + timeout;
    let mut last_err: Option<String> = None;
    let mut status = None;
    let mut open = true;
    loop {
        match rx.recv_timeout(Duration::from_millis(20)) {
            Ok(Line::Out(line)) => reporter.status(&format!("{short}: {}", escape(&line))),
            Ok(Line::Err(line)) => {
                reporter.status(&format!("{short}: {}", escape(&line)));
                if !line.trim().is_empty() {
                    last_err = Some(line);
                }
            }
            Ok(Line::Closed) | Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => open = false,
        }
        if status.is_none() {
            status = child
                .try_wait()
                .map_err(|e| format!("waiting for it: {e}"))?;
        }
        if status.is_some() && !open {
            break;
        }
        if Instant::now() >= deadline {
            // SAFETY: killpg has no memory preconditions; the group is the hook's own.
            unsafe { libc::killpg(group, libc::SIGKILL) };
            let _ = child.wait();
            return Err(format!(
                "killed after its time limit of {} s (hooks.timeout){}",
                timeout.as_secs(),
                last_line(&last_err)
            ));
        }
    }
    let status = status.expect("the loop ends once it exited");
    if status.success() {
        return Ok(());
    }
    let how = match (
        status.code(),
        std::os::unix::process::ExitStatusExt::signal(&status),
    ) {
        (Some(code), _) => format!("exit status {code}"),
        (None, Some(sig)) => format!("killed by signal {sig}"),
        (None, None) => status.to_string(),
    };
    Err(format!("{how}{}", last_line(&last_err)))
}

fn last_line(line: &Option<String>) -> String {
    match line {
        Some(l) => format!(
            "; last line on its stderr: `{}`",
            excerpt_n(l.trim(), REASON_CHARS)
        ),
        None => "; nothing on its stderr".to_owned(),
    }
}

/// Sends the lines of `stream` (lossy UTF-8, at most 64 KiB each) to `tx`, then `Closed`.
fn forward<R: Read + Send + 'static>(stream: R, tx: mpsc::Sender<Line>, wrap: fn(String) -> Line) {
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stream);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match (&mut reader).take(64 * 1024).read_until(b'\n', &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    let line = String::from_utf8_lossy(&buf);
                    let line = line.trim_end_matches(['\n', '\r']).to_owned();
                    if tx.send(wrap(line)).is_err() {
                        return;
                    }
                }
            }
        }
        let _ = tx.send(Line::Closed);
    });
}

/// Runs a hook's synchronous wait: off the worker thread where the runtime has workers, in
/// place on a single-threaded runtime (a one-shot lifecycle command, where nothing else runs
/// meanwhile; `block_in_place` would panic there).
fn blocking<T>(f: impl FnOnce() -> T) -> T {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current() {
        Ok(h) if h.runtime_flavor() == RuntimeFlavor::MultiThread => tokio::task::block_in_place(f),
        _ => f(),
    }
}
