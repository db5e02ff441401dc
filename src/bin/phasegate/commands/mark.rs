//! `mark`: recording a phase's app deploy.

use schemars::JsonSchema;
use serde::Serialize;

use phasegate::execute::{RunError, Workspace};
use phasegate::tracker::gates::Gate;

use super::envelope::Report;

/// `mark`'s fields in the JSON document.
#[derive(Debug, Serialize, JsonSchema)]
pub struct MarkPayload {
    /// The plan's name (as given on the command line when the mark was not recorded).
    pub plan: String,
    pub env: String,
    pub phase: usize,
    /// The app version recorded (`null` when none was: held back).
    pub app_version: Option<String>,
    /// The gates checked before recording the deploy.
    pub gates: Vec<Gate>,
}

/// `phasegate mark`.
pub async fn run(
    ws: &Workspace<'_>,
    env: &str,
    plan: &str,
    phase: usize,
    app_version: &str,
) -> Report<MarkPayload> {
    match ws.mark(env, plan, phase, app_version).await {
        Ok(v) => Report::done(
            "mark",
            format!("{plan}: phase {phase} deployed in {env} (app {app_version})\n"),
            MarkPayload {
                plan: v.plan,
                env: v.env,
                phase,
                app_version: Some(app_version.to_string()),
                gates: v.gates,
            },
        ),
        Err(e) => {
            let payload = match &e {
                RunError::Blocked(v) => Some(MarkPayload {
                    plan: v.plan.clone(),
                    env: v.env.clone(),
                    phase,
                    app_version: None,
                    gates: v.gates.clone(),
                }),
                _ => None,
            };
            Report::from_error("mark", &e).with_payload(payload)
        }
    }
}
