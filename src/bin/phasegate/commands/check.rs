//! `phasegate check`: exit 0 when ENV's database has reached phase N of a
//! plan, 1 when not (saying where it is and what to run), 2 on error; with
//! `--format json`, one JSON document on stdout whatever happens.
//!
//! The document carries the envelope of the CLI contract (`schema_version`,
//! `command`, `outcome`, `exit_code`, `error`), built here until the shared
//! envelope lands.

use std::path::{Path, PathBuf};

use phasegate::config::{Config, ConfigError};
use phasegate::execute::{Check, RunError, Workspace};
use phasegate::tracker::reach::Reached;
use phasegate::tracker::{Next, PhaseStatus, SystemClock, TrackerError};
use serde_json::{Map, Value, json};

use crate::Failure;
use crate::cli::{Command, Out};

/// What `check` was asked, from the command line.
struct Ask {
    env: String,
    plan: String,
    phase: usize,
    what: Reached,
    format: Out,
}

/// Runs `phasegate check` (the only command it is called for).
pub async fn run(config: Option<PathBuf>, command: Command) -> Result<String, Failure> {
    let Command::Check {
        env,
        plan,
        phase,
        deployed,
        format,
    } = command
    else {
        return Err(Failure::input("error: not a check command"));
    };
    let ask = Ask {
        env,
        plan,
        phase,
        what: if deployed {
            Reached::Deployed
        } else {
            Reached::Applied
        },
        format,
    };
    let result = async {
        let config = Config::load(config.as_deref(), Path::new(".")).map_err(RunError::Config)?;
        let clock = SystemClock;
        let ws = Workspace::new(&config, &clock, super::actor());
        ws.check(&ask.env, &ask.plan, ask.phase, ask.what).await
    }
    .await;
    match result {
        Ok(c) if c.reached => {
            let text = reached_text(&c);
            if ask.format == Out::Json {
                Ok(document(&ask, Some(&c), None, 0))
            } else {
                Ok(text)
            }
        }
        Ok(c) => {
            let text = not_reached_text(&ask, &c);
            if ask.format == Out::Json {
                crate::out(&document(&ask, Some(&c), None, 1));
            }
            Err(Failure {
                message: text.trim_end().to_string(),
                code: 1,
            })
        }
        Err(e) => {
            let message = format!("error: {e}");
            if ask.format == Out::Json {
                crate::out(&document(&ask, None, Some(&e), 2));
            }
            Err(Failure { message, code: 2 })
        }
    }
}

/// What was asked of the phase, in words.
fn needs(what: Reached) -> &'static str {
    match what {
        Reached::Applied => "its migrations applied",
        Reached::Deployed => "its migrations applied and its app code marked deployed",
    }
}

fn reached_text(c: &Check) -> String {
    let deployed = if c.phase_deployed >= c.phase {
        "its app code is marked deployed"
    } else {
        "its app code is not marked deployed yet"
    };
    format!(
        "{}: phase {} of {} reached in {}: its migrations are applied; {deployed}\n",
        c.plan, c.phase, c.phases, c.env
    )
}

fn not_reached_text(ask: &Ask, c: &Check) -> String {
    let mut out = format!(
        "{}: phase {} of {} not reached in {} (needs {})\n",
        c.plan,
        c.phase,
        c.phases,
        c.env,
        needs(c.require)
    );
    let now = if c.started {
        let upto = if c.phase_applied == 0 && c.phase_deployed == 0 {
            String::new()
        } else {
            format!(
                " (migrations applied up to phase {}, app code deployed up to phase {})",
                c.phase_applied, c.phase_deployed
            )
        };
        format!(
            "phase {} of {}: {}{upto}",
            c.current_phase, c.phases, c.state
        )
    } else {
        format!("{} has not started in {}", c.plan, c.env)
    };
    out.push_str(&format!("  now: {now}\n"));
    for o in &c.outstanding {
        let what = match (&o.error, o.undo) {
            (Some(e), false) => format!("failed: {}", super::first_line(e)),
            (Some(e), true) => format!("failed to roll back: {}", super::first_line(e)),
            (None, false) => "started and never finished".to_string(),
            (None, true) => "began rolling back and never finished".to_string(),
        };
        out.push_str(&format!("  step {} of phase {} {what}\n", o.step, o.phase));
    }
    out.push_str(&format!("  next: {}\n", next_command(ask, c)));
    out
}

/// What to run to move the plan on in this environment.
fn next_command(ask: &Ask, c: &Check) -> String {
    let (env, plan) = (&ask.env, &ask.plan);
    if !c.outstanding.is_empty() {
        return format!(
            "`phasegate gate --env {env} {plan}` says what to do about the step that failed or never finished"
        );
    }
    match c.next {
        Next::Deploy(n) => format!(
            "deploy phase {n}'s app code, then `phasegate mark --env {env} {plan} --phase {n} --app-version <VERSION>`"
        ),
        Next::Apply(n) if c.state == PhaseStatus::RollingBack => format!(
            "phase {n} is partly rolled back: `phasegate rollback --env {env} {plan}` finishes the rollback, `phasegate apply --env {env} {plan}` applies it again"
        ),
        Next::Apply(n) => format!("`phasegate apply --env {env} {plan}` (phase {n})"),
        Next::Complete => format!("nothing: {plan} is complete in {env}"),
    }
}

/// The snake_case kind of an error, for the JSON document.
fn error_kind(e: &RunError) -> &'static str {
    match e {
        RunError::Config(ConfigError::UnknownEnvironment { .. }) => "unknown_environment",
        RunError::Config(_) => "config",
        RunError::NotFound(_) => "unknown_plan",
        RunError::Plan(_) => "invalid_plan",
        RunError::Templates(_) => "templates",
        RunError::Planning { .. } => "planning",
        // The one refusal `check` makes: a phase the plan does not have.
        RunError::Refused(_) => "phase_out_of_range",
        RunError::Tracker(
            TrackerError::Connect { .. }
            | TrackerError::Timeout { .. }
            | TrackerError::NoDatabase { .. },
        ) => "database_unreachable",
        RunError::Tracker(TrackerError::Tampered { .. }) => "log_tampered",
        RunError::Tracker(TrackerError::OtherEnvironment { .. }) => "other_environment",
        RunError::Tracker(TrackerError::NewerSchema { .. }) => "newer_schema",
        RunError::Tracker(_) | RunError::Catalog(_) => "database",
        _ => "error",
    }
}

/// The one JSON document `check --format json` prints.
fn document(ask: &Ask, c: Option<&Check>, e: Option<&RunError>, code: u8) -> String {
    let mut doc = Map::new();
    doc.insert("schema_version".into(), json!(1));
    doc.insert("command".into(), json!("check"));
    let outcome = match code {
        0 => "done",
        1 => "blocked",
        _ => "error",
    };
    doc.insert("outcome".into(), json!(outcome));
    doc.insert("exit_code".into(), json!(code));
    doc.insert("plan".into(), json!(ask.plan));
    doc.insert("env".into(), json!(ask.env));
    doc.insert("phase".into(), json!(ask.phase));
    doc.insert("require".into(), json!(ask.what));
    if let Some(c) = c {
        if let Ok(Value::Object(fields)) = serde_json::to_value(c) {
            doc.extend(fields);
        }
        if !c.reached {
            doc.insert("run".into(), json!(next_command(ask, c)));
        }
    }
    if let Some(e) = e {
        let text = e.to_string();
        let mut lines = text.lines();
        let mut error = Map::new();
        error.insert("kind".into(), json!(error_kind(e)));
        error.insert("message".into(), json!(lines.next().unwrap_or_default()));
        let rest: Vec<&str> = lines.map(str::trim).filter(|l| !l.is_empty()).collect();
        if !rest.is_empty() {
            error.insert("detail".into(), json!(rest.join("\n")));
        }
        doc.insert("error".into(), Value::Object(error));
    }
    super::json(&Value::Object(doc))
}
