//! The commands that work with environments: they load the config, call
//! [`phasegate::execute::Workspace`], and render what it returns.

use std::fmt::Write;
use std::path::{Path, PathBuf};

use phasegate::config::Config;
use phasegate::execute::{RunError, Workspace};
use phasegate::tracker::SystemClock;

use crate::Failure;
use crate::cli::{Command, Out};

mod check;
mod init;
mod install;
mod progress;
mod status;
mod verdict;

pub use init::init;
pub use install::{completions, man};
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

pub async fn run(config: Option<PathBuf>, command: Command) -> Result<String, Failure> {
    if let Command::Check { .. } = command {
        return check::run(config, command).await;
    }
    let config =
        Config::load(config.as_deref(), Path::new(".")).map_err(|e| fail(RunError::Config(e)))?;
    let clock = SystemClock;
    let progress = Progress::new();
    let ws = Workspace::new(&config, &clock, actor()).with_progress(&progress);
    match command {
        Command::Plan(_)
        | Command::Init
        | Command::Check { .. }
        | Command::Completions { .. }
        | Command::Man { .. } => Ok(String::new()),
        Command::Status { env, format } => {
            let envs = ws.status(env.as_deref()).await.map_err(fail)?;
            let out = if format == Out::Json {
                json(&envs)
            } else {
                status_text(&envs)
            };
            // An environment that cannot be read is not "fine": the report
            // still goes to stdout, and the exit code says it is incomplete.
            let unread: Vec<&str> = envs
                .iter()
                .filter(|e| e.unreachable.is_some())
                .map(|e| e.env.as_str())
                .collect();
            if unread.is_empty() {
                return Ok(out);
            }
            crate::out(&out);
            Err(Failure {
                message: format!(
                    "error: {} of {} environments could not be read: {} (see above)",
                    unread.len(),
                    envs.len(),
                    unread.join(", ")
                ),
                code: 2,
            })
        }
        Command::Gate { env, plan, format } => {
            let v = ws.gate(&env, &plan).await.map_err(fail)?;
            let out = if format == Out::Json {
                json(&v)
            } else {
                verdict_text(&v)
            };
            if v.may_proceed() {
                Ok(out)
            } else {
                Err(Failure {
                    message: out,
                    code: 1,
                })
            }
        }
        Command::Apply {
            env,
            plan,
            dry_run,
            format,
        } => {
            let a = ws.apply(&env, &plan, dry_run).await.map_err(fail)?;
            if format == Out::Json {
                return Ok(json(&a));
            }
            let mut out = String::new();
            if let Some(sql) = &a.dry_run {
                let _ = writeln!(
                    out,
                    "-- dry run: phase {} of {} of {} in {}; nothing was run",
                    a.phase, a.phases, a.plan, a.env
                );
                for line in sql {
                    let _ = writeln!(out, "{line}");
                }
                return Ok(out);
            }
            let _ = writeln!(
                out,
                "{}: phase {} of {} applied in {}",
                a.plan, a.phase, a.phases, a.env
            );
            for s in &a.skipped {
                let _ = writeln!(out, "  skipped {s} (done by an earlier run)");
            }
            for s in &a.ran {
                let _ = writeln!(out, "  ran {s}");
            }
            if a.deployed {
                let _ = writeln!(out, "No app stage: phase {} is deployed.", a.phase);
            } else {
                let _ = writeln!(out, "Now deploy the app code for phase {}:", a.phase);
                for s in &a.app {
                    let _ = writeln!(out, "  - {s}");
                }
                let _ = writeln!(
                    out,
                    "then: phasegate mark --env {} {plan} --phase {} --app-version <VERSION>",
                    a.env, a.phase
                );
            }
            Ok(out)
        }
        Command::Mark {
            env,
            plan,
            phase,
            app_version,
        } => {
            ws.mark(&env, &plan, phase, &app_version)
                .await
                .map_err(fail)?;
            Ok(format!(
                "{plan}: phase {phase} deployed in {env} (app {app_version})\n"
            ))
        }
        Command::Rollback {
            env,
            plan,
            app_reverted,
        } => {
            let n = ws.rollback(&env, &plan, app_reverted).await.map_err(fail)?;
            Ok(format!("{plan}: phase {n} rolled back in {env}\n"))
        }
        Command::Approve {
            env,
            plan,
            phase,
            by,
        } => {
            let by = by.unwrap_or_else(actor);
            ws.approve(&env, &plan, phase, &by).await.map_err(fail)?;
            Ok(format!("{plan}: phase {phase} approved in {env} by {by}\n"))
        }
        Command::Backup { env, location } => {
            let at = ws.backup(&env, location.as_deref()).await.map_err(fail)?;
            Ok(format!("backup of {env} recorded: {at}\n"))
        }
        Command::Verify { env, plan, phase } => {
            let (n, results) = ws.verify(&env, &plan, phase).await.map_err(fail)?;
            let mut out = format!("{plan}: verification of phase {n} in {env}\n");
            if results.is_empty() {
                let _ = writeln!(out, "  phase {n} has no verification queries");
            }
            for r in &results {
                let got = match &r.got {
                    Ok(v) => v.to_string(),
                    Err(e) => format!("error: {e}"),
                };
                let _ = writeln!(
                    out,
                    "  {} {}: returned {got}, expected {}",
                    if r.passed() { "pass" } else { "FAIL" },
                    r.step,
                    r.expect
                );
            }
            if results.iter().all(|r| r.passed()) {
                Ok(out)
            } else {
                Err(Failure {
                    message: out,
                    code: 1,
                })
            }
        }
        Command::History { env, plan, format } => {
            let events = ws.history(&env, plan.as_deref()).await.map_err(fail)?;
            if format == Out::Json {
                return Ok(json(&events));
            }
            let mut out = String::new();
            for e in &events {
                let _ = writeln!(
                    out,
                    "{}  {:<18} {:<28} {}{}{}  ({})",
                    e.at.format("%Y-%m-%d %H:%M:%S"),
                    e.kind.name(),
                    e.plan.as_deref().unwrap_or("-"),
                    e.phase.map(|p| format!("phase {p} ")).unwrap_or_default(),
                    e.step.as_deref().unwrap_or(""),
                    if e.kind == phasegate::tracker::EventKind::PlanStarted
                        || e.kind == phasegate::tracker::EventKind::ChangeAccepted
                        || e.detail.is_empty()
                    {
                        String::new()
                    } else {
                        format!(" {}", first_line(&e.detail))
                    },
                    e.actor
                );
            }
            if events.is_empty() {
                out.push_str("no events\n");
            }
            Ok(out)
        }
        Command::AcceptChange { env, plan, reason } => {
            ws.accept_change(&env, &plan, &reason).await.map_err(fail)?;
            Ok(format!(
                "{plan}: the edited plan is now the one in force in {env}\n"
            ))
        }
        Command::Resolve {
            env,
            plan,
            step,
            outcome,
        } => {
            // The step's change is in the database: applied, or not rolled back.
            let present = outcome == "applied" || outcome == "not-rolled-back";
            let r = ws
                .resolve(&env, &plan, &step, present)
                .await
                .map_err(fail)?;
            if r.undo {
                let (recorded, next) = if r.applied {
                    (
                        "not rolled back",
                        format!(
                            "the next `phasegate rollback --env {env} {plan}` undoes it again, then the steps before it"
                        ),
                    )
                } else {
                    (
                        "rolled back",
                        format!(
                            "the next `phasegate rollback --env {env} {plan}` goes on with the steps of phase {} before it",
                            r.phase
                        ),
                    )
                };
                let what = if r.interrupted {
                    "started and never finished"
                } else {
                    "failed"
                };
                return Ok(format!(
                    "{}: step {} (phase {}), whose rollback {what}, is recorded as {recorded} in {}.\n{next}\n",
                    r.plan, r.step, r.phase, r.env
                ));
            }
            let what = if r.interrupted {
                "started and never finished"
            } else {
                "failed"
            };
            let next = match (&r.applied, &r.checkpoint) {
                (true, _) => format!(
                    "phasegate will not run it again: the next `phasegate apply --env {env} {plan}` goes on with the rest of phase {}",
                    r.phase
                ),
                (false, Some(c)) => format!(
                    "the next `phasegate apply --env {env} {plan}` runs it again, resuming the backfill after its last checkpoint ({} rows done)",
                    c.updated
                ),
                (false, None) => format!(
                    "the next `phasegate apply --env {env} {plan}` runs it again from its start"
                ),
            };
            Ok(format!(
                "{}: step {} (phase {}), which {what}, is recorded as {} in {}.\n{next}\n",
                r.plan,
                r.step,
                r.phase,
                if r.applied { "applied" } else { "not applied" },
                r.env
            ))
        }
    }
}

/// The first line of a text (a reason, a database error) for one-line listings.
fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or("")
}

fn json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string_pretty(v)
        .map(|s| s + "\n")
        .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}\n"))
}
