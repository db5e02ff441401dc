//! `rollback`: undoing the latest phase that ran (or, with `--phase N`, phase N).

use schemars::JsonSchema;
use serde::Serialize;

use phasegate::execute::Workspace;

use super::envelope::Report;

/// `rollback`'s fields in the JSON document.
#[derive(Debug, Serialize, JsonSchema)]
pub struct RollbackPayload {
    /// The plan, as named on the command line.
    pub plan: String,
    pub env: String,
    /// The phase rolled back.
    pub phase: usize,
}

/// `phasegate rollback`.
pub async fn run(
    ws: &Workspace<'_>,
    env: &str,
    plan: &str,
    phase: Option<usize>,
    app_reverted: bool,
) -> Report<RollbackPayload> {
    match ws.rollback_phase(env, plan, phase, app_reverted).await {
        Ok(n) => Report::done(
            "rollback",
            format!("{plan}: phase {n} rolled back in {env}\n"),
            RollbackPayload {
                plan: plan.to_string(),
                env: env.to_string(),
                phase: n,
            },
        ),
        Err(e) => Report::from_error("rollback", &e),
    }
}
