//! Ctrl-C (SIGINT) while a command runs: the run stops where it is, and
//! stderr says what was interrupted and the exact command that goes on from
//! there; the exit code is 130.
//!
//! Stopping at once is safe for the log: each step commits with its record,
//! each backfill batch with its checkpoint, and the server rolls back what
//! was not committed when the connection closes. A step that runs outside a
//! transaction is recorded as started before it runs, so an interrupted one
//! is found by the next run, as after a `kill -9`.

use std::path::Path;
use std::sync::Mutex;

use phasegate::plan::{Step, StepKind};

use crate::cli::{Command, Out};
use crate::commands::envelope::{ErrorBody, Outcome, Rendered, Report};

/// The exit code of an interrupted command (128 + SIGINT).
pub const EXIT: u8 = 130;

/// How long the cancel request for a step's statement may take
/// (connection included) after Ctrl-C.
pub const CANCEL_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// How long, after the server took the cancel request, the run may take to
/// record the step's failure before it is stopped where it is.
pub const SETTLE_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// The step running now, as the progress reports tell it.
struct Running {
    id: String,
    kind: StepKind,
    transactional: bool,
    /// A backfill's rows done so far (earlier runs included).
    done: Option<u64>,
}

static RUNNING: Mutex<Option<Running>> = Mutex::new(None);

/// A step starts (from the progress reports).
pub fn step_started(step: &Step) {
    if let Ok(mut r) = RUNNING.lock() {
        *r = Some(Running {
            id: step.id.clone(),
            kind: step.kind,
            transactional: step.transactional,
            done: None,
        });
    }
}

/// A step waits for a lock (from the progress reports): the step running
/// now, if no report said so before.
pub fn step_waiting(step: &Step) {
    let known = RUNNING
        .lock()
        .is_ok_and(|r| r.as_ref().is_some_and(|r| r.id == step.id));
    if !known {
        step_started(step);
    }
}

/// A backfill has walked `done` rows (from the progress reports).
pub fn backfill_done(done: u64) {
    if let Ok(mut r) = RUNNING.lock()
        && let Some(r) = r.as_mut()
    {
        r.done = Some(done);
    }
}

/// What was asked on the command line, kept for the message after an interrupt.
pub struct Invocation {
    /// The command's name (`apply`, `rollback`, …).
    command: &'static str,
    /// The command that goes on from where the run stopped, for `apply`
    /// and `rollback`; `None` for the others.
    resume: Option<String>,
    /// `--format json` was asked: stdout gets one JSON document.
    format: Out,
}

impl Invocation {
    pub fn of(config: Option<&Path>, database: Option<&str>, command: &Command) -> Invocation {
        // The global options, as given.
        let config = config
            .map(|c| format!(" --config {}", quoted(&c.display().to_string())))
            .into_iter()
            .chain(database.map(|db| format!(" --database {}", quoted(db))))
            .collect::<String>();
        let (name, resume) = match command {
            Command::Apply { env, plan, .. } => (
                "apply",
                Some(format!(
                    "phasegate{config} apply --env {} {}",
                    quoted(env),
                    quoted(plan)
                )),
            ),
            Command::Rollback {
                env,
                plan,
                app_reverted,
                ..
            } => (
                "rollback",
                Some(format!(
                    "phasegate{config} rollback --env {} {}{}",
                    quoted(env),
                    quoted(plan),
                    if *app_reverted { " --app-reverted" } else { "" }
                )),
            ),
            other => (other.name(), None),
        };
        Invocation {
            command: name,
            resume,
            format: command.format(),
        }
    }

    /// What stderr says after an interrupt: where it stopped and what to run.
    pub fn message(&self, settled: bool) -> String {
        let running = RUNNING.lock().ok().and_then(|r| {
            r.as_ref().map(|r| Running {
                id: r.id.clone(),
                kind: r.kind,
                transactional: r.transactional,
                done: r.done,
            })
        });
        let Some(resume) = &self.resume else {
            return format!(
                "interrupted (Ctrl-C): `phasegate {}` did not finish; run it again",
                self.command
            );
        };
        let mut out = match &running {
            Some(r) => format!(
                "interrupted (Ctrl-C) during step {} of `phasegate {}`",
                r.id, self.command
            ),
            None => format!("interrupted (Ctrl-C) during `phasegate {}`", self.command),
        };
        let apply = self.command == "apply";
        let going_on = match &running {
            Some(r) if apply && r.kind == StepKind::Backfill => format!(
                "; every committed batch is kept{}.\nTo resume after the last checkpoint, run:\n  {resume}",
                r.done
                    .map_or(String::new(), |d| format!(" ({} rows done)", grouped(d)))
            ),
            Some(r) if !r.transactional && settled => format!(
                "; its statement was cancelled on the server and the step recorded as failed: it runs again from its start.\nTo {}, run:\n  {resume}",
                if apply { "resume" } else { "go on" }
            ),
            Some(r) if apply && !r.transactional => format!(
                "; every step that finished is recorded.\nTo resume, run:\n  {resume}\n(the step runs outside a transaction: if apply then reports it as started and never finished, check the database and record what happened with `phasegate resolve`, as that message says)"
            ),
            _ if apply => {
                format!("; every step that finished is recorded.\nTo resume, run:\n  {resume}")
            }
            _ => format!("; every step undone so far is recorded.\nTo go on, run:\n  {resume}"),
        };
        out.push_str(&going_on);
        out
    }

    /// What the run ends with: the message on stderr and, with `--format
    /// json`, one JSON document with outcome `interrupted` (exit 130) on
    /// stdout, its `error.hint` the command that goes on.
    ///
    /// `settled`: the step running outside a transaction had its statement
    /// cancelled and its failure recorded before the run stopped.
    pub fn report(&self, settled: bool) -> Rendered {
        let message = self.message(settled);
        let mut error = ErrorBody::new("interrupted", &message);
        error.hint = self.resume.clone();
        Report::<()> {
            command: self.command,
            outcome: Outcome::Interrupted,
            text: message.clone(),
            message: Some(message),
            error: Some(error),
            payload: None,
        }
        .render(self.format)
    }
}

/// An argument as a POSIX shell reads it back: as it is when it holds only
/// safe characters, else in single quotes.
fn quoted(arg: &str) -> String {
    let safe = !arg.is_empty()
        && arg
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-./:=@%+,".contains(c));
    if safe {
        arg.to_string()
    } else {
        format!("'{}'", arg.replace('\'', "'\\''"))
    }
}

/// `12345678` as `12,345,678`.
pub fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_are_quoted_only_when_a_shell_needs_it() {
        assert_eq!(quoted("plans/add-x.yaml"), "plans/add-x.yaml");
        assert_eq!(quoted("my plan"), "'my plan'");
        assert_eq!(quoted("it's"), "'it'\\''s'");
        assert_eq!(quoted(""), "''");
    }

    #[test]
    fn numbers_are_grouped_by_thousands() {
        assert_eq!(grouped(0), "0");
        assert_eq!(grouped(999), "999");
        assert_eq!(grouped(1000), "1,000");
        assert_eq!(grouped(12_345_678), "12,345,678");
    }
}
