//! `accept-change`: accepting an edited plan file on purpose.

use schemars::JsonSchema;
use serde::Serialize;

use phasegate::execute::Workspace;

use super::envelope::Report;

/// `accept-change`'s fields in the JSON document.
#[derive(Debug, Serialize, JsonSchema)]
pub struct AcceptPayload {
    /// The plan, as named on the command line.
    pub plan: String,
    pub env: String,
    /// Why the change is safe, as recorded.
    pub reason: String,
}

/// `phasegate accept-change`.
pub async fn run(ws: &Workspace<'_>, env: &str, plan: &str, reason: &str) -> Report<AcceptPayload> {
    match ws.accept_change(env, plan, reason).await {
        Ok(()) => Report::done(
            "accept-change",
            format!("{plan}: the edited plan is now the one in force in {env}\n"),
            AcceptPayload {
                plan: plan.to_string(),
                env: env.to_string(),
                reason: reason.to_string(),
            },
        ),
        Err(e) => Report::from_error("accept-change", &e),
    }
}
