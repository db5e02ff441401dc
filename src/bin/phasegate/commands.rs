//! The commands that work with environments: they load the config, call
//! [`phasegate::execute::Workspace`], and render what it returns.

use std::fmt::Write;
use std::path::{Path, PathBuf};

use phasegate::config::{CONFIG_FILE, Config};
use phasegate::execute::{RunError, Workspace};
use phasegate::tracker::gates::{Verdict, human};
use phasegate::tracker::{Next, SystemClock};

use super::{Command, Failure, Out};

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
    let config =
        Config::load(config.as_deref(), Path::new(".")).map_err(|e| fail(RunError::Config(e)))?;
    let clock = SystemClock;
    let progress = Progress::new();
    let ws = Workspace::new(&config, &clock, actor()).with_progress(&progress);
    match command {
        Command::Plan(_) | Command::Init => Ok(String::new()),
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

/// `status` as text: each environment, then each plan's phase and next step.
fn status_text(envs: &[phasegate::execute::EnvStatus]) -> String {
    let mut out = String::new();
    let now = chrono::Utc::now();
    for e in envs {
        let _ = writeln!(out, "{}", e.env);
        if let Some(why) = &e.unreachable {
            let _ = writeln!(out, "  unreachable: {why}");
            continue;
        }
        if e.plans.is_empty() {
            let _ = writeln!(out, "  no plans under plans/");
        }
        for p in &e.plans {
            let since = p
                .since
                .map(|t| {
                    format!(
                        " for {}",
                        human(now.signed_duration_since(t).to_std().unwrap_or_default())
                    )
                })
                .unwrap_or_default();
            let where_ = match p.next {
                Next::Complete => format!("complete ({} of {} phases)", p.phases, p.phases),
                _ => format!("phase {} of {}: {}{since}", p.phase, p.phases, p.state),
            };
            let next = match p.next {
                Next::Complete => String::new(),
                Next::Deploy(n) => {
                    format!("; next: deploy phase {n}'s app code, then mark it")
                }
                Next::Apply(n) if p.blocked.is_empty() => {
                    format!("; next: apply phase {n}")
                }
                Next::Apply(n) => format!(
                    "; phase {n} blocked by {}",
                    p.blocked
                        .iter()
                        .map(|g| format!("{}: {}", g.name, first_line(&g.reason)))
                        .collect::<Vec<_>>()
                        .join("; ")
                ),
            };
            let _ = writeln!(out, "  {:<32} {where_}{next}", p.plan);
        }
    }
    out
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or("")
}

fn json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string_pretty(v)
        .map(|s| s + "\n")
        .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}\n"))
}

/// The gates, one per line, held or blocked, with the reason.
pub fn verdict_text(v: &Verdict) -> String {
    let mut out = String::new();
    match (v.next, v.phase) {
        (Next::Complete, _) => {
            let _ = writeln!(
                out,
                "{} is complete in {}: every phase is deployed",
                v.plan, v.env
            );
            return out;
        }
        (_, Some(p)) => {
            let _ = writeln!(
                out,
                "{}: gates for phase {p} of {} in {}",
                v.plan, v.phases, v.env
            );
        }
        _ => {}
    }
    for g in &v.gates {
        let mark = if g.held { "held   " } else { "BLOCKED" };
        // A reason of several lines (a database error's DETAIL and HINT)
        // stays in the reason's column.
        let reason = g.reason.replace('\n', &format!("\n{:21}", ""));
        let _ = writeln!(out, "  {mark} {:<10} {reason}", g.name);
    }
    let blocked = v.blocked().count();
    if blocked == 0 {
        let _ = writeln!(out, "may proceed");
    } else {
        let _ = writeln!(
            out,
            "{blocked} gate{} blocked",
            if blocked == 1 { "" } else { "s" }
        );
    }
    out
}

const INIT_CONFIG: &str =
    "# phasegate environments, in promotion order: a phase reaches staging only
# after dev completes it, and prod only after staging.
environments:
  - name: dev
    database_url: sqlite://.phasegate/dev.db
  - name: staging
    database_url: sqlite://.phasegate/staging.db
    soak: 1h
  - name: prod
    database_url: sqlite://.phasegate/prod.db
    soak: 24h               # before an irreversible phase, the previous one runs this long
    require_approval: true  # irreversible phases need `phasegate approve`
    require_backup: 24h     # and a backup recorded within this window (`phasegate backup`)
    # backup_command: cp .phasegate/prod.db backups/prod-$(date +%s).db && echo backups/...
    # A real database: database_url: ${PROD_DATABASE_URL}
";

const INIT_PLAN: &str = "# An example: create a table, then rename one of its columns the safe way.
# Try: phasegate plan example-rename
#      phasegate apply --env dev example-rename
description: Create a users table, then rename users.name to full_name
changes:
  - sql:
      phases:
        - up: CREATE TABLE IF NOT EXISTS users (id INTEGER PRIMARY KEY, name TEXT)
          down: DROP TABLE users
  - rename_column: { table: users, from: name, to: full_name }
";

/// `phasegate init`.
pub fn init() -> Result<String, Failure> {
    let write = |path: &Path, text: &str, out: &mut String| -> Result<(), Failure> {
        if path.exists() {
            let _ = writeln!(out, "kept     {} (exists already)", path.display());
            return Ok(());
        }
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| {
                Failure::input(format!("error: cannot create {}: {e}", dir.display()))
            })?;
        }
        std::fs::write(path, text)
            .map_err(|e| Failure::input(format!("error: cannot write {}: {e}", path.display())))?;
        let _ = writeln!(out, "created  {}", path.display());
        Ok(())
    };
    let mut out = String::new();
    write(Path::new(CONFIG_FILE), INIT_CONFIG, &mut out)?;
    write(Path::new("plans/example-rename.yaml"), INIT_PLAN, &mut out)?;
    std::fs::create_dir_all(".phasegate")
        .map_err(|e| Failure::input(format!("error: cannot create .phasegate/: {e}")))?;
    // The example's SQLite databases, empty: read-only commands (status,
    // gate) never create a database, so the ones the config names exist.
    for env in ["dev", "staging", "prod"] {
        write(Path::new(&format!(".phasegate/{env}.db")), "", &mut out)?;
    }
    let _ = writeln!(
        out,
        "\nNext:\n  phasegate plan example-rename\n  phasegate apply --env dev example-rename\n  phasegate status"
    );
    Ok(out)
}

/// Backfill progress: a bar with rows/s and ETA on a terminal, a plain line
/// every few seconds otherwise (CI logs).
pub struct Progress {
    bar: std::sync::Mutex<Option<(String, indicatif::ProgressBar)>>,
    terminal: bool,
    last_line: std::sync::Mutex<std::time::Instant>,
    started: std::sync::Mutex<std::time::Instant>,
}

impl Progress {
    pub fn new() -> Progress {
        use std::io::IsTerminal;
        let now = std::time::Instant::now();
        Progress {
            bar: std::sync::Mutex::new(None),
            terminal: std::io::stderr().is_terminal(),
            last_line: std::sync::Mutex::new(now),
            started: std::sync::Mutex::new(now),
        }
    }
}

impl phasegate::execute::Progress for Progress {
    fn step(&self, step: &phasegate::plan::Step) {
        if let Ok(mut bar) = self.bar.lock()
            && let Some((_, b)) = bar.take()
        {
            b.finish();
        }
        if let Ok(mut t) = self.started.lock() {
            *t = std::time::Instant::now();
        }
        if !self.terminal {
            crate::err_line(format_args!("running {}: {}", step.id, step.description));
        }
    }

    fn backfill(&self, step: &phasegate::plan::Step, updated: u64, total: Option<u64>) {
        if self.terminal {
            let Ok(mut guard) = self.bar.lock() else {
                return;
            };
            let bar = guard.get_or_insert_with(|| {
                let b = indicatif::ProgressBar::new(total.unwrap_or(0));
                let style = indicatif::ProgressStyle::with_template(
                    "{msg} [{bar:30}] {pos}/{len} rows, {per_sec}, ETA {eta}",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
                b.set_style(style.progress_chars("=> "));
                b.set_message(step.id.clone());
                (step.id.clone(), b)
            });
            if let Some(t) = total {
                bar.1.set_length(t.max(updated));
            }
            bar.1.set_position(updated);
            return;
        }
        let Ok(mut last) = self.last_line.lock() else {
            return;
        };
        if last.elapsed() >= std::time::Duration::from_secs(5)
            || total.is_some_and(|t| updated >= t)
        {
            *last = std::time::Instant::now();
            let secs = self
                .started
                .lock()
                .map(|t| t.elapsed().as_secs_f64())
                .unwrap_or(0.0)
                .max(0.001);
            let rate = updated as f64 / secs;
            let of = total.map(|t| format!(" of ~{t}")).unwrap_or_default();
            crate::err_line(format_args!(
                "  {}: {updated}{of} rows, {rate:.0} rows/s",
                step.id
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use phasegate::tracker::gates::Gate;

    #[test]
    fn a_reason_of_several_lines_stays_in_its_column() {
        let v = Verdict {
            plan: "p".into(),
            env: "prod".into(),
            next: Next::Apply(2),
            phase: Some(2),
            phases: 2,
            gates: vec![Gate {
                name: "clean",
                held: false,
                reason: "step 1.sql_1 of phase 1 failed: cannot drop column b (SQLSTATE 2BP01)\n  DETAIL: view v depends on column b".into(),
            }],
        };
        let text = verdict_text(&v);
        assert!(
            text.contains("  BLOCKED clean      step 1.sql_1 of phase 1 failed: cannot drop column b (SQLSTATE 2BP01)\n                       DETAIL: view v depends on column b\n"),
            "{text}"
        );
    }
}
