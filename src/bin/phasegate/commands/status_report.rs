//! `status`'s outcome and JSON payload (its text is `status.rs`).

use schemars::JsonSchema;
use serde::Serialize;

use phasegate::execute::{EnvStatus, Workspace};

use super::envelope::{ErrorBody, Outcome, Rendered, Report};
use super::status_text;
use crate::cli::Out;

/// `status`'s fields in the JSON document.
#[derive(Debug, Serialize, JsonSchema)]
pub struct StatusPayload {
    /// Every environment (or the one asked for), in promotion order.
    pub environments: Vec<EnvStatus>,
}

/// `phasegate status`: an environment that cannot be read is an error (exit
/// 2), but the report of the others is printed all the same.
pub async fn run(ws: &Workspace<'_>, env: Option<&str>, format: Out) -> Rendered {
    let envs = match ws.status(env).await {
        Ok(e) => e,
        Err(e) => return Report::<StatusPayload>::from_error("status", &e).render(format),
    };
    let text = status_text(&envs);
    let problem = super::status::incomplete(&envs);
    let mut report = Report::done("status", text.clone(), StatusPayload { environments: envs });
    let Some(problem) = problem else {
        return report.render(format);
    };
    report.outcome = Outcome::Error;
    let plain = problem.strip_prefix("error: ").unwrap_or(&problem);
    // An environment that could not be read, or else a plan that could not
    // be read or planned.
    let kind = if report
        .payload
        .as_ref()
        .is_some_and(|p| p.environments.iter().any(|e| e.unreachable.is_some()))
    {
        "unreachable"
    } else {
        "plan_invalid"
    };
    report.error = Some(ErrorBody::new(kind, plain));
    report.text = problem.clone();
    let mut out = report.render(format);
    if format == Out::Text {
        // The report still goes to stdout; the exit code says it is incomplete.
        out.stdout = text;
        out.stderr = format!("{problem}\n");
    }
    out
}
