//! The commands that work with environments: they load the config, call
//! [`phasegate::execute::Workspace`], and render what it returns.

use std::path::{Path, PathBuf};

use phasegate::config::Config;
use phasegate::execute::{RunError, Workspace};
use phasegate::tracker::SystemClock;

use crate::Failure;
use crate::cli::{Command, Out};

mod accept_change;
mod apply;
mod approve;
mod backup;
mod check;
pub mod convert;
pub mod envelope;
pub mod export;
mod gate;
mod history;
mod init;
mod install;
pub mod lint;
mod mark;
mod plan_schema;
mod progress;
mod resolve;
mod rollback;
#[cfg(test)]
mod schema;
mod status;
mod status_report;
mod verdict;
mod verify;

use envelope::Rendered;
pub use init::init;
pub use install::{completions, man};
pub use plan_schema::schema_text;
use progress::Progress;
use status::status_text;
pub use verdict::verdict_text;

/// Who is recorded as doing things: the OS user.
fn actor() -> String {
    std::env::var("USER")
        .or_else(|_| std::env::var("USERNAME"))
        .unwrap_or_else(|_| "phasegate".to_string())
}

fn fail(e: RunError) -> Failure {
    let message = match &e {
        RunError::Blocked(v) => format!("{}\nblocked: not run", verdict_text(v)),
        RunError::Plan(phasegate::intent::PlanError::Invalid(_)) => format!("error: {e}"),
        RunError::Refused(m) => format!("refused: {m}"),
        other => format!("error: {other}"),
    };
    Failure {
        message,
        code: e.exit_code(),
    }
}

/// `phasegate plan --env E`: the plan as `apply` would run it there.
pub async fn plan_live(
    config: Option<PathBuf>,
    env: &str,
    file: phasegate::intent::PlanFile,
) -> Result<phasegate::plan::Plan, Failure> {
    let config =
        Config::load(config.as_deref(), Path::new(".")).map_err(|e| fail(RunError::Config(e)))?;
    let clock = SystemClock;
    let ws = Workspace::new(&config, &clock, actor());
    let environment = config
        .environment(env)
        .map_err(|e| fail(RunError::Config(e)))?;
    let label = file
        .path
        .as_ref()
        .map_or_else(|| file.name.clone(), |p| p.display().to_string());
    let loaded = phasegate::execute::LoadedPlan {
        text: file.source.clone().unwrap_or_default(),
        file,
        label,
    };
    ws.plan_live(&loaded, environment)
        .await
        .map(|p| p.plan)
        .map_err(fail)
}

/// How long one database of a fleet took, for the text of `apply` and
/// `rollback` (" in 0.08s"; nothing when it did not run).
pub fn took(seconds: Option<f64>) -> String {
    seconds.map(|s| format!(" in {s:.2}s")).unwrap_or_default()
}

/// Runs an environment command: its report rendered as text or as the one
/// JSON document (`envelope.rs`), and its exit code.
pub async fn run(config: Option<PathBuf>, database: Option<String>, command: Command) -> Rendered {
    let (name, format) = (command.name(), command.format());
    // An environment whose URL names an unset variable is an error only for
    // a command that uses it (`Config::environment`, `Config::previous`);
    // `status` reports it as an entry.
    let config = match Config::load(config.as_deref(), Path::new(".")) {
        Ok(c) => c,
        Err(e) => return envelope::failure(name, format, &RunError::Config(e)),
    };
    let clock = SystemClock;
    let progress = Progress::new();
    let ws = Workspace::new(&config, &clock, actor()).with_progress(&progress);
    // `--database`: the command works on that database of the fleet alone.
    let ws = match (database.as_deref(), command.env()) {
        (None, _) => ws,
        (Some(db), Some(env)) => match ws.on_database(env, db) {
            Ok(one) => one,
            Err(e) => return envelope::failure(name, format, &e),
        },
        (Some(_), None) => {
            let why = match &command {
                Command::Status { .. } => {
                    "status shows every database of a fleet already; --database is for a command that works on one".to_string()
                }
                _ => format!("--database picks one database of a fleet environment: give `{name}` its --env too"),
            };
            return envelope::failure(name, format, &RunError::Invalid(why));
        }
    };
    match command {
        Command::Plan(_)
        | Command::Init
        | Command::Completions { .. }
        | Command::Man { .. }
        | Command::Lint(_)
        | Command::Convert(_)
        | Command::Schema { .. }
        | Command::Estimate { .. } => Rendered::default(),
        Command::Status { env, format } => status_report::run(&ws, env.as_deref(), format).await,
        Command::Gate { env, plan, format } => gate::run(&ws, &env, &plan).await.render(format),
        Command::Apply {
            env,
            plan,
            dry_run,
            format,
        } => apply::run(&ws, &env, &plan, dry_run).await.render(format),
        Command::Mark {
            env,
            plan,
            phase,
            app_version,
            format,
        } => mark::run(&ws, &env, &plan, phase, &app_version)
            .await
            .render(format),
        Command::Rollback {
            env,
            plan,
            phase,
            app_reverted,
            format,
        } => rollback::run(&ws, &env, &plan, phase, app_reverted)
            .await
            .render(format),
        Command::Approve {
            env,
            plan,
            phase,
            by,
            format,
        } => {
            let by = by.unwrap_or_else(actor);
            approve::run(&ws, &env, &plan, phase, &by)
                .await
                .render(format)
        }
        Command::Backup {
            env,
            location,
            format,
        } => backup::run(&ws, &env, location.as_deref())
            .await
            .render(format),
        Command::Verify {
            env,
            plan,
            phase,
            format,
        } => verify::run(&ws, &env, &plan, phase).await.render(format),
        Command::History { env, plan, format } => history::run(&ws, &env, plan.as_deref())
            .await
            .render(format),
        Command::AcceptChange {
            env,
            plan,
            reason,
            format,
        } => accept_change::run(&ws, &env, &plan, &reason)
            .await
            .render(format),
        Command::Resolve {
            env,
            plan,
            step,
            outcome,
            format,
        } => resolve::run(&ws, &env, &plan, &step, &outcome)
            .await
            .render(format),
        Command::Check {
            env,
            plan,
            phase,
            deployed,
            format,
        } => check::run(&ws, &env, &plan, phase, deployed)
            .await
            .render(format),
        Command::Export { args, plan, format } => {
            export::run(&ws, &plan, args).await.render(format)
        }
    }
}

/// The environment commands, which take `--format json`.
pub const ENV_COMMANDS: [&str; 13] = [
    "status",
    "gate",
    "apply",
    "mark",
    "rollback",
    "approve",
    "backup",
    "verify",
    "history",
    "accept-change",
    "resolve",
    "check",
    "export",
];

/// An argument clap refused, for an environment command asked for `--format
/// json`: the JSON document (kind `usage`, exit 2) rather than clap's text,
/// so a pipeline still reads one document. `None`: let clap report it
/// (help, version, or a command without JSON).
pub fn usage_error(e: &clap::Error, args: &[String]) -> Option<Rendered> {
    use clap::error::ErrorKind;
    if matches!(
        e.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        return None;
    }
    let json = args
        .windows(2)
        .any(|w| w[0] == "--format" && w[1] == "json")
        || args.iter().any(|a| a == "--format=json");
    if !json {
        return None;
    }
    // The command is the first word that is neither an option nor the
    // value of the one global option that takes one (--config FILE).
    let mut words = args.iter();
    let mut command = None;
    while let Some(a) = words.next() {
        if a == "--config" {
            words.next();
        } else if !a.starts_with('-') {
            command = Some(a.as_str());
            break;
        }
    }
    let command = ENV_COMMANDS.into_iter().find(|c| Some(*c) == command)?;
    let text = e.render().to_string();
    let text = text.strip_prefix("error: ").unwrap_or(&text);
    Some(envelope::error_only(command, Out::Json, "usage", text))
}

/// The first line of a text (a reason, a database error) for one-line listings.
fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::usage_error;
    use crate::cli::Cli;
    use clap::Parser;

    fn usage(args: &[&str]) -> Option<serde_json::Value> {
        let argv: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let e =
            Cli::try_parse_from(std::iter::once("phasegate").chain(args.iter().copied())).err()?;
        let r = usage_error(&e, &argv)?;
        assert_eq!(r.code, 2);
        serde_json::from_str(&r.stdout).ok()
    }

    #[test]
    fn a_refused_argument_of_an_environment_command_is_json_when_asked() {
        let doc = usage(&[
            "--config", "c.yaml", "apply", "--env", "dev", "--format", "json",
        ])
        .expect("a JSON document");
        assert_eq!(
            (&doc["command"], &doc["error"]["kind"]),
            (&"apply".into(), &"usage".into())
        );
        assert!(
            usage(&["apply", "--env", "dev"]).is_none(),
            "text when not asked"
        );
        // `status` as a shorthand's argument is not the status command.
        assert!(usage(&["plan", "rename", "status", "--format", "json", "--nope"]).is_none());
    }
}
