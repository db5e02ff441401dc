//! `resolve`: settling a step that failed or never finished.

use phasegate::execute::{Resolution, Workspace};

use super::envelope::Report;

/// `phasegate resolve`; `outcome` is the `--as` value.
pub async fn run(
    ws: &Workspace<'_>,
    env: &str,
    plan: &str,
    step: &str,
    outcome: &str,
) -> Report<Resolution> {
    // The step's change is in the database: applied, or not rolled back.
    let present = outcome == "applied" || outcome == "not-rolled-back";
    match ws.resolve(env, plan, step, present).await {
        Ok(r) => Report::done("resolve", text(&r, env, plan), r),
        Err(e) => Report::from_error("resolve", &e),
    }
}

/// What was recorded, and what the next `apply` or `rollback` does.
fn text(r: &Resolution, env: &str, plan: &str) -> String {
    let what = if r.interrupted {
        "started and never finished"
    } else {
        "failed"
    };
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
        return format!(
            "{}: step {} (phase {}), whose rollback {what}, is recorded as {recorded} in {}.\n{next}\n",
            r.plan, r.step, r.phase, r.env
        );
    }
    let next = match (&r.applied, &r.checkpoint) {
        (true, _) => format!(
            "phasegate will not run it again: the next `phasegate apply --env {env} {plan}` goes on with the rest of phase {}",
            r.phase
        ),
        (false, Some(c)) => format!(
            "the next `phasegate apply --env {env} {plan}` runs it again, resuming the backfill after its last checkpoint ({} rows done)",
            c.updated
        ),
        (false, None) => {
            format!("the next `phasegate apply --env {env} {plan}` runs it again from its start")
        }
    };
    format!(
        "{}: step {} (phase {}), which {what}, is recorded as {} in {}.\n{next}\n",
        r.plan,
        r.step,
        r.phase,
        if r.applied { "applied" } else { "not applied" },
        r.env
    )
}
