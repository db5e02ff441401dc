//! `gate`: may the plan's next step run? Its outcome and exit code.

use phasegate::execute::Workspace;
use phasegate::tracker::Next;
use phasegate::tracker::gates::Verdict;

use super::envelope::{Outcome, Report};
use super::verdict_text;

/// `phasegate gate`: done (0) when the next step may run, nothing to do (0)
/// when the plan is complete, waiting for deploy (3) when the next step is
/// a migrated phase's app deploy, blocked (1) when a gate blocks.
pub async fn run(ws: &Workspace<'_>, env: &str, plan: &str) -> Report<Verdict> {
    let v = match ws.gate(env, plan).await {
        Ok(v) => v,
        Err(e) => return Report::from_error("gate", &e),
    };
    let reasons = || {
        Some(
            v.blocked()
                .map(|g| format!("{}: {}", g.name, g.reason))
                .collect::<Vec<_>>()
                .join("; "),
        )
    };
    let (outcome, message) = match v.next {
        Next::Complete => (
            Outcome::NothingToDo,
            Some(format!(
                "{} is complete in {}: nothing to do",
                v.plan, v.env
            )),
        ),
        Next::Deploy(_) => (Outcome::WaitingForDeploy, reasons()),
        _ if !v.may_proceed() => (Outcome::Blocked, reasons()),
        _ => (Outcome::Done, None),
    };
    Report::done("gate", verdict_text(&v), v).with_outcome(outcome, message)
}
