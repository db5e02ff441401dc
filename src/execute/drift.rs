//! Drift, as every environment command refuses it: a plan file edited since
//! the plan started in an environment, or a step whose SQL differs from the
//! SQL pinned then (see [`crate::tracker::pins`] and
//! [`crate::tracker::gates::drift`], which the drift gate uses too).

use crate::config::Environment;
use crate::plan::Plan;
use crate::tracker::PlanState;
use crate::tracker::gates;

use super::{LoadedPlan, RunError};

/// Refuses a plan whose file or steps' SQL drifted from what started in
/// `env`, with the drift gate's account of what changed and the way forward.
pub(super) fn refuse_drift(
    plan: &Plan,
    state: &PlanState,
    loaded: &LoadedPlan,
    env: &Environment,
) -> Result<(), RunError> {
    gates::drift(plan, state, &loaded.label, &env.name, &loaded.text)
        .map(|_| ())
        .map_err(|why| RunError::Refused(format!("drift: {why}")))
}

/// A started plan that no longer plans (`e`): when its file changed since
/// it started in `env`, the refusal says so, with the change, instead of the
/// planning error alone; otherwise `e` as it is.
pub(super) fn unplannable_drift(
    e: RunError,
    state: &PlanState,
    loaded: &LoadedPlan,
    env: &Environment,
) -> RunError {
    match gates::text_drift(state, &loaded.label, &env.name, &loaded.text) {
        Some(why) => RunError::Refused(format!(
            "drift: {why}\n  as edited it does not plan against the schema recorded when it started ({e}), so it can be neither run, rolled back nor accepted: restore the plan file as it was when it started"
        )),
        None => e,
    }
}
