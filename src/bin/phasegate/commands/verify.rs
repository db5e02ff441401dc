//! `verify`: running a phase's verification queries.

use std::fmt::Write;

use schemars::JsonSchema;
use serde::Serialize;

use phasegate::execute::Workspace;
use phasegate::tracker::gates::VerifyOutcome;

use super::envelope::{Outcome, Report};

/// `verify`'s fields in the JSON document.
#[derive(Debug, Serialize, JsonSchema)]
pub struct VerifyPayload {
    /// The plan, as named on the command line.
    pub plan: String,
    pub env: String,
    /// The phase whose queries ran.
    pub phase: usize,
    /// True when every query returned what it expects.
    pub passed: bool,
    pub results: Vec<VerifyResult>,
}

/// One verification query's answer.
#[derive(Debug, Serialize, JsonSchema)]
pub struct VerifyResult {
    /// The verify step's id.
    pub step: String,
    /// The value the query must return.
    pub expect: i64,
    /// The value it returned (`null` when it could not run).
    pub got: Option<i64>,
    /// Why it could not run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub passed: bool,
}

impl From<&VerifyOutcome> for VerifyResult {
    fn from(r: &VerifyOutcome) -> VerifyResult {
        VerifyResult {
            step: r.step.clone(),
            expect: r.expect,
            got: r.got.as_ref().ok().copied(),
            error: r.got.as_ref().err().cloned(),
            passed: r.passed(),
        }
    }
}

/// `phasegate verify`: done (0) when every query passes, blocked (1) when one fails.
pub async fn run(
    ws: &Workspace<'_>,
    env: &str,
    plan: &str,
    phase: Option<usize>,
) -> Report<VerifyPayload> {
    let (n, results) = match ws.verify(env, plan, phase).await {
        Ok(r) => r,
        Err(e) => return Report::from_error("verify", &e),
    };
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
    let failed = results.iter().filter(|r| !r.passed()).count();
    let payload = VerifyPayload {
        plan: plan.to_string(),
        env: env.to_string(),
        phase: n,
        passed: failed == 0,
        results: results.iter().map(VerifyResult::from).collect(),
    };
    let report = Report::done("verify", out, payload);
    if failed == 0 {
        return report;
    }
    report.with_outcome(
        Outcome::Blocked,
        Some(format!(
            "{failed} of {} verification queries of phase {n} failed",
            results.len()
        )),
    )
}
