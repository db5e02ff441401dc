//! `approve`: approving an irreversible phase.

use schemars::JsonSchema;
use serde::Serialize;

use phasegate::execute::Workspace;

use super::envelope::Report;

/// `approve`'s fields in the JSON document.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ApprovePayload {
    /// The plan, as named on the command line.
    pub plan: String,
    pub env: String,
    pub phase: usize,
    /// Who approved.
    pub by: String,
}

/// `phasegate approve`.
pub async fn run(
    ws: &Workspace<'_>,
    env: &str,
    plan: &str,
    phase: usize,
    by: &str,
) -> Report<ApprovePayload> {
    match ws.approve(env, plan, phase, by).await {
        Ok(()) => Report::done(
            "approve",
            format!("{plan}: phase {phase} approved in {env} by {by}\n"),
            ApprovePayload {
                plan: plan.to_string(),
                env: env.to_string(),
                phase,
                by: by.to_string(),
            },
        ),
        Err(e) => Report::from_error("approve", &e),
    }
}
