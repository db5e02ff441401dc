//! The one JSON document every environment command prints with `--format
//! json`, whatever happens (docs/json.md): the envelope (`schema_version`,
//! `command`, `outcome`, `exit_code`, `message`, `error`) around the
//! command's own payload, flattened into the same object.
//!
//! A command builds a [`Report`] (its outcome, its text for people, its
//! payload) and [`Report::render`] turns it into what goes to stdout and
//! stderr, and the exit code.

use schemars::JsonSchema;
use serde::Serialize;

use phasegate::execute::RunError;

use super::verdict_text;
use crate::cli::Out;

/// The version of the JSON contract; bumped only for incompatible changes.
pub const SCHEMA_VERSION: u32 = 1;

/// How a command ended; each outcome has one exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The step ran (exit 0).
    Done,
    /// Done already: the plan is complete, the phase marked, the approval recorded (exit 0).
    NothingToDo,
    /// A gate or a rule holds it back: try again later or do what the reasons say (exit 1).
    Blocked,
    /// Bad input, config or plan, an unreachable database, a step that failed (exit 2).
    Error,
    /// A phase's migrations ran: deploy its app code and `mark` it first (exit 3).
    WaitingForDeploy,
    /// Interrupted (Ctrl-C); the message says how to resume (exit 130).
    Interrupted,
}

impl Outcome {
    /// The process exit code of this outcome (docs/workflow.md, "Exit codes").
    pub fn exit_code(self) -> u8 {
        match self {
            Outcome::Done | Outcome::NothingToDo => 0,
            Outcome::Blocked => 1,
            Outcome::Error => 2,
            Outcome::WaitingForDeploy => 3,
            Outcome::Interrupted => 130,
        }
    }
}

/// What went wrong, for outcome `error`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct ErrorBody {
    /// What kind of error, in snake_case (`config`, `unknown_environment`,
    /// `plan_not_found`, `plan_invalid`, `planning`, `unreachable`,
    /// `locked`, `log_tampered`, `other_environment`, `newer_schema`,
    /// `tracker`, `catalog`, `step_failed`, `invalid_request`, `backup_failed`,
    /// `templates`, `usage`).
    pub kind: String,
    /// The error's first line.
    pub message: String,
    /// The rest of the error, when it has several lines.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// What to do about it, when phasegate knows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

impl ErrorBody {
    /// `text` split into its first line (`message`) and the rest (`detail`).
    pub fn new(kind: &str, text: &str) -> ErrorBody {
        let (message, detail) = match text.split_once('\n') {
            Some((first, rest)) if !rest.trim().is_empty() => {
                (first.to_string(), Some(rest.trim_end().to_string()))
            }
            _ => (text.trim_end().to_string(), None),
        };
        ErrorBody {
            kind: kind.to_string(),
            message,
            detail,
            hint: None,
        }
    }

    /// The body for a library error.
    pub fn of(e: &RunError) -> ErrorBody {
        ErrorBody::new(error_kind(e), &e.to_string())
    }
}

/// The `kind` of a library error in the JSON `error` object.
pub fn error_kind(e: &RunError) -> &'static str {
    use phasegate::config::ConfigError;
    use phasegate::tracker::TrackerError;
    match e {
        RunError::Target { source, .. } => error_kind(source),
        RunError::Config(ConfigError::UnknownEnvironment { .. }) => "unknown_environment",
        RunError::Config(_) => "config",
        RunError::NotFound(_) => "plan_not_found",
        RunError::Plan(_) => "plan_invalid",
        RunError::Templates(_) => "templates",
        RunError::Planning { .. } => "planning",
        RunError::Tracker(TrackerError::Connect { .. } | TrackerError::Timeout { .. })
        | RunError::Tracker(TrackerError::NoDatabase { .. }) => "unreachable",
        RunError::Tracker(TrackerError::Busy { .. } | TrackerError::WriteLocked { .. }) => "locked",
        RunError::Tracker(TrackerError::Tampered { .. }) => "log_tampered",
        RunError::Tracker(TrackerError::OtherEnvironment { .. }) => "other_environment",
        RunError::Tracker(TrackerError::NewerSchema { .. }) => "newer_schema",
        RunError::Tracker(_) => "tracker",
        RunError::Catalog(_) => "catalog",
        RunError::Step(_) => "step_failed",
        RunError::Invalid(_) => "invalid_request",
        RunError::Backup(_) => "backup_failed",
        RunError::Blocked(_) => "blocked",
        RunError::Refused(_) => "refused",
        RunError::Waiting(_) => "waiting_for_deploy",
        RunError::NothingToDo(_) => "nothing_to_do",
    }
}

/// The JSON document: the envelope and, flattened into it, the payload.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Envelope<P> {
    /// Always 1 (see [`SCHEMA_VERSION`]).
    pub schema_version: u32,
    /// The command that ran: `apply`, `gate`, …
    pub command: String,
    pub outcome: Outcome,
    /// The process exit code (0, 1, 2, 3 or 130).
    pub exit_code: u8,
    /// For people: why nothing was done, what blocks, what to do next.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// For outcome `error`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorBody>,
    /// The command's own fields; absent when the command got nowhere (a
    /// config error, an unknown environment).
    #[serde(flatten)]
    pub payload: Option<P>,
}

/// What a command ends with: stdout, stderr, exit code.
#[derive(Debug, Default)]
pub struct Rendered {
    pub stdout: String,
    pub stderr: String,
    pub code: u8,
}

/// What a command did, ready to render as text or JSON.
#[derive(Debug)]
pub struct Report<P> {
    pub command: &'static str,
    pub outcome: Outcome,
    /// For people: stdout when the outcome's exit code is 0, else stderr.
    pub text: String,
    /// The envelope's `message`.
    pub message: Option<String>,
    pub error: Option<ErrorBody>,
    pub payload: Option<P>,
}

impl<P: Serialize> Report<P> {
    /// The step ran.
    pub fn done(command: &'static str, text: String, payload: P) -> Report<P> {
        Report {
            command,
            outcome: Outcome::Done,
            text,
            message: None,
            error: None,
            payload: Some(payload),
        }
    }

    /// The report of a library error: its outcome (blocked, waiting,
    /// nothing to do or error), its text and its error body. No payload:
    /// add one with [`Report::with_payload`].
    pub fn from_error(command: &'static str, e: &RunError) -> Report<P> {
        let (outcome, text) = match e {
            RunError::NothingToDo(m) => (Outcome::NothingToDo, format!("{m}\n")),
            RunError::Blocked(v) => (
                Outcome::Blocked,
                format!("{}blocked: not run", verdict_text(v)),
            ),
            RunError::Refused(m) => (Outcome::Blocked, format!("refused: {m}")),
            RunError::Waiting(w) => (Outcome::WaitingForDeploy, waiting_text(w)),
            RunError::Plan(phasegate::intent::PlanError::Invalid(_)) => {
                (Outcome::Error, format!("error: {e}"))
            }
            other => (Outcome::Error, format!("error: {other}")),
        };
        let (message, error) = match outcome {
            Outcome::Error => (None, Some(ErrorBody::of(e))),
            _ => (Some(e.to_string()), None),
        };
        Report {
            command,
            outcome,
            text,
            message,
            error,
            payload: None,
        }
    }

    /// The same report with `payload`.
    pub fn with_payload(mut self, payload: Option<P>) -> Report<P> {
        self.payload = payload;
        self
    }

    /// The same report with another outcome (and so another exit code).
    pub fn with_outcome(mut self, outcome: Outcome, message: Option<String>) -> Report<P> {
        self.outcome = outcome;
        self.message = message;
        self
    }

    /// Stdout, stderr and exit code for `format`: with JSON, the one
    /// document on stdout and the text (when the command did not succeed)
    /// on stderr for the log; with text, the text on stdout on success and
    /// on stderr otherwise.
    pub fn render(self, format: Out) -> Rendered {
        let code = self.outcome.exit_code();
        let mut text = self.text;
        if !text.is_empty() && !text.ends_with('\n') {
            text.push('\n');
        }
        if format == Out::Text {
            return if code == 0 {
                Rendered {
                    stdout: text,
                    stderr: String::new(),
                    code,
                }
            } else {
                Rendered {
                    stdout: String::new(),
                    stderr: text,
                    code,
                }
            };
        }
        let envelope = Envelope {
            schema_version: SCHEMA_VERSION,
            command: self.command.to_string(),
            outcome: self.outcome,
            exit_code: code,
            message: self.message,
            error: self.error,
            payload: self.payload,
        };
        Rendered {
            stdout: to_json(&envelope),
            stderr: if code == 0 { String::new() } else { text },
            code,
        }
    }
}

/// An error before any command could start (a bad config, an argument
/// clap refused): the envelope alone, or the text.
pub fn failure(command: &'static str, format: Out, e: &RunError) -> Rendered {
    Report::<()>::from_error(command, e).render(format)
}

/// An error of `kind` that is no library error (an argument clap refused,
/// an async runtime that would not start).
pub fn error_only(command: &'static str, format: Out, kind: &str, text: &str) -> Rendered {
    Report::<()> {
        command,
        outcome: Outcome::Error,
        text: format!("error: {text}"),
        message: None,
        error: Some(ErrorBody::new(kind, text)),
        payload: None,
    }
    .render(format)
}

/// `value` as pretty JSON with a final newline. Serializing these types
/// cannot fail (string keys, no custom serializers); should it, the
/// document says so rather than printing nothing.
pub fn to_json<T: Serialize>(value: &T) -> String {
    match serde_json::to_string_pretty(value) {
        Ok(s) => s + "\n",
        Err(e) => {
            let doc = serde_json::json!({
                "schema_version": SCHEMA_VERSION,
                "command": "unknown",
                "outcome": "error",
                "exit_code": 2,
                "error": { "kind": "internal", "message": e.to_string() },
            });
            format!("{doc}\n")
        }
    }
}

/// What `apply` and `gate` say when the next step is a phase's app deploy.
pub fn waiting_text(w: &phasegate::execute::Waiting) -> String {
    use std::fmt::Write;
    let v = &w.verdict;
    let mut out = format!(
        "{}: phase {} is migrated in {}: waiting for its app deploy (phase {} of {})\n",
        v.plan, w.phase, v.env, w.phase, v.phases
    );
    if !w.app.is_empty() {
        let _ = writeln!(out, "Deploy the app code for phase {}:", w.phase);
        for s in &w.app {
            let _ = writeln!(out, "  - {s}");
        }
    }
    let _ = writeln!(
        out,
        "then: phasegate mark --env {} {} --phase {} --app-version VERSION",
        v.env, w.label, w.phase
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_of_several_lines_splits_into_message_and_detail() {
        let b = ErrorBody::new("plan_invalid", "plans/x.yaml:3:5: bad\n  3 | x\n");
        assert_eq!(b.message, "plans/x.yaml:3:5: bad");
        assert_eq!(b.detail.as_deref(), Some("  3 | x"));
        let b = ErrorBody::new("config", "one line\n");
        assert_eq!((b.message.as_str(), b.detail), ("one line", None));
    }

    #[test]
    fn json_goes_to_stdout_alone_and_the_text_to_stderr() {
        let r = Report::<()>::from_error("apply", &RunError::Refused("not now".into()))
            .render(Out::Json);
        assert_eq!(r.code, 1);
        let v: serde_json::Value = serde_json::from_str(&r.stdout).expect("one JSON document");
        assert_eq!(v["outcome"], "blocked");
        assert_eq!(v["exit_code"], 1);
        assert_eq!(v["message"], "not now");
        assert!(r.stderr.contains("refused: not now"), "{}", r.stderr);
        let r = Report::<()>::from_error("mark", &RunError::NothingToDo("marked".into()))
            .render(Out::Text);
        assert_eq!((r.code, r.stdout.as_str()), (0, "marked\n"));
    }
}
