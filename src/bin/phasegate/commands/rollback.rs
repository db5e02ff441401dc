//! `rollback`: undoing the latest phase that ran (or, with `--phase N`,
//! phase N); on a fleet, in every database that has it in place.

use std::fmt::Write as _;

use schemars::JsonSchema;
use serde::Serialize;

use phasegate::execute::{FleetRolledBack, RollbackOutcome, Workspace};

use super::envelope::{ErrorBody, Outcome, Report};

/// `rollback`'s fields in the JSON document.
#[derive(Debug, Serialize, JsonSchema)]
pub struct RollbackPayload {
    /// The plan, as named on the command line.
    pub plan: String,
    pub env: String,
    /// The phase rolled back.
    pub phase: usize,
    /// For a fleet environment: the rollback in each of its databases.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fleet: Option<FleetRolledBack>,
}

/// `phasegate rollback`.
pub async fn run(
    ws: &Workspace<'_>,
    env: &str,
    plan: &str,
    phase: Option<usize>,
    app_reverted: bool,
) -> Report<RollbackPayload> {
    if ws.target.is_none() && ws.fleet(env).is_ok() {
        return run_fleet(ws, env, plan, phase, app_reverted).await;
    }
    match ws.rollback_phase(env, plan, phase, app_reverted).await {
        Ok(n) => Report::done(
            "rollback",
            format!("{plan}: phase {n} rolled back in {env}\n"),
            RollbackPayload {
                plan: plan.to_string(),
                env: env.to_string(),
                phase: n,
                fleet: None,
            },
        ),
        Err(e) => Report::from_error("rollback", &e),
    }
}

/// `phasegate rollback` on a fleet: done (0) when the phase is rolled back
/// in every database that had it; error (2), naming the database, when one
/// failed (the others that ran are rolled back; run it again once fixed).
async fn run_fleet(
    ws: &Workspace<'_>,
    env: &str,
    plan: &str,
    phase: Option<usize>,
    app_reverted: bool,
) -> Report<RollbackPayload> {
    let f = match ws.rollback_fleet(env, plan, phase, app_reverted).await {
        Ok(f) => f,
        Err(e) => return Report::from_error("rollback", &e),
    };
    let text = fleet_text(&f, plan, app_reverted);
    let failed = f.failed.clone();
    let report = Report::done(
        "rollback",
        text,
        RollbackPayload {
            plan: plan.to_string(),
            env: env.to_string(),
            phase: f.phase,
            fleet: Some(f.clone()),
        },
    );
    match failed {
        None => report,
        Some(t) if t.outcome == RollbackOutcome::Blocked => report.with_outcome(
            Outcome::Blocked,
            Some(format!(
                "rolling back phase {} in database {} of {} in {env} ({}) was refused: {}",
                f.phase,
                t.index,
                f.targets,
                t.database,
                t.error.as_deref().unwrap_or_default()
            )),
        ),
        Some(t) => {
            let mut r = report.with_outcome(Outcome::Error, None);
            r.error = Some(ErrorBody::new(
                "step_failed",
                &format!(
                    "rolling back phase {} in database {} of {} in {env} ({}) failed: {}",
                    f.phase,
                    t.index,
                    f.targets,
                    t.database,
                    t.error.as_deref().unwrap_or_default()
                ),
            ));
            r
        }
    }
}

/// What `rollback` did across a fleet, for people.
fn fleet_text(f: &FleetRolledBack, plan: &str, app_reverted: bool) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{}: phase {} rolled back in {} of {} databases of {} ({:.1}s)",
        f.plan, f.phase, f.rolled_back, f.targets, f.env, f.seconds
    );
    let mut skipped = 0;
    let mut left = 0;
    for t in &f.results {
        let took = super::took(t.seconds);
        match t.outcome {
            RollbackOutcome::RolledBack => {
                let _ = writeln!(out, "  rolled back  {}{took}", t.database);
            }
            RollbackOutcome::Failed | RollbackOutcome::Blocked => {
                let word = if t.outcome == RollbackOutcome::Failed {
                    "FAILED"
                } else {
                    "refused"
                };
                let _ = writeln!(
                    out,
                    "  {word:<12} {}{took}: {}",
                    t.database,
                    t.error
                        .as_deref()
                        .unwrap_or_default()
                        .replace('\n', "\n      ")
                );
            }
            RollbackOutcome::NotInPlace => skipped += 1,
            RollbackOutcome::NotStarted => left += 1,
        }
    }
    if skipped > 0 {
        let _ = writeln!(
            out,
            "  {skipped} database(s) did not have phase {} in place: skipped",
            f.phase
        );
    }
    if left > 0 {
        let _ = writeln!(out, "  not started: {left} database(s)");
    }
    if let Some(t) = &f.failed {
        let _ = writeln!(
            out,
            "stopped: database {} ({}) did not roll back; the ones already running finished, no other started. Fix it, then `phasegate rollback --env {} {plan} --phase {}{}` again: databases without the phase are skipped.",
            t.index,
            t.database,
            f.env,
            f.phase,
            if app_reverted { " --app-reverted" } else { "" }
        );
    }
    out
}
