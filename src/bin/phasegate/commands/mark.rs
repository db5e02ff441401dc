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
    /// For a fleet environment: each database, and whether the deploy was
    /// recorded there now (absent for an ordinary environment).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub databases: Option<Vec<MarkedDatabase>>,
}

/// One database of a fleet in `mark`'s report.
#[derive(Debug, Serialize, JsonSchema)]
pub struct MarkedDatabase {
    /// Its URL, the password hidden.
    pub database: String,
    /// True when recorded now, false when marked already.
    pub recorded: bool,
    /// Why it could not be recorded there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// `phasegate mark`.
pub async fn run(
    ws: &Workspace<'_>,
    env: &str,
    plan: &str,
    phase: usize,
    app_version: &str,
) -> Report<MarkPayload> {
    if ws.target.is_none() && ws.fleet(env).is_ok() {
        return run_fleet(ws, env, plan, phase, app_version).await;
    }
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
                databases: None,
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
                    databases: None,
                }),
                _ => None,
            };
            Report::from_error("mark", &e).with_payload(payload)
        }
    }
}

/// `phasegate mark` on a fleet: the deploy recorded in every database once
/// each has applied the phase; an error (2) naming each database where it
/// could not be recorded.
async fn run_fleet(
    ws: &Workspace<'_>,
    env: &str,
    plan: &str,
    phase: usize,
    app_version: &str,
) -> Report<MarkPayload> {
    let marked = match ws.mark_fleet(env, plan, phase, app_version).await {
        Ok(m) => m,
        Err(e) => return Report::from_error("mark", &e),
    };
    let failed: Vec<String> = marked
        .iter()
        .filter_map(|(db, r)| r.as_ref().err().map(|e| format!("{db}: {e}")))
        .collect();
    let now = marked.iter().filter(|(_, r)| r == &Ok(true)).count();
    let payload = MarkPayload {
        plan: plan.to_string(),
        env: env.to_string(),
        phase,
        app_version: Some(app_version.to_string()),
        gates: Vec::new(),
        databases: Some(
            marked
                .iter()
                .map(|(db, r)| MarkedDatabase {
                    database: db.clone(),
                    recorded: r == &Ok(true),
                    error: r.as_ref().err().cloned(),
                })
                .collect(),
        ),
    };
    let text = format!(
        "{plan}: phase {phase} deployed in {env} (app {app_version}): recorded in {now} of {} databases{}\n",
        marked.len(),
        if now < marked.len() - failed.len() {
            " (the others had it already)"
        } else {
            ""
        }
    );
    if failed.is_empty() {
        return Report::done("mark", text, payload);
    }
    let message = format!(
        "phase {phase} could not be marked in {} of {} databases of {env}: {}",
        failed.len(),
        marked.len(),
        failed.join("; ")
    );
    let mut r = Report::done("mark", format!("{text}error: {message}\n"), payload)
        .with_outcome(super::envelope::Outcome::Error, None);
    r.error = Some(super::envelope::ErrorBody::new("tracker", &message));
    r
}
