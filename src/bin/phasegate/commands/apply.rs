//! `apply`: its text, its JSON payload, its outcome.

use std::fmt::Write;

use schemars::JsonSchema;
use serde::Serialize;

use phasegate::execute::{Applied, RunError, Workspace};
use phasegate::tracker::Next;
use phasegate::tracker::gates::Gate;

use super::envelope::{Outcome, Report};

/// The message of `apply --dry-run`.
const DRY_RUN: &str = "dry run: nothing was run";

/// `apply`'s fields in the JSON document.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ApplyPayload {
    /// The plan's name.
    pub plan: String,
    pub env: String,
    /// The phase applied now (or held back, or waiting for its app deploy).
    pub phase: Option<usize>,
    pub phases: usize,
    /// True when the phase has no app stage, so it went straight to
    /// deployed (always false with `--dry-run`: nothing ran).
    pub deployed: bool,
    /// The app-code changes to ship now (for the phase applied, or the one waiting for its deploy).
    pub app: Vec<String>,
    /// Steps run now, in order (empty with `--dry-run`).
    pub ran: Vec<String>,
    /// Steps skipped because an earlier, interrupted run completed them
    /// (empty with `--dry-run`).
    pub skipped: Vec<String>,
    /// Every gate, held or blocked, with the reason.
    pub gates: Vec<Gate>,
    /// What the plan does next in this environment.
    pub next: Next,
    /// With `--dry-run`: the SQL that would run, in order. Nothing ran:
    /// `ran` and `skipped` are empty, `deployed` is false and the message
    /// is "dry run: nothing was run".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dry_run: Option<Vec<String>>,
}

impl From<&Applied> for ApplyPayload {
    fn from(a: &Applied) -> ApplyPayload {
        let next = match (a.dry_run.is_some(), a.deployed) {
            (true, _) => Next::Apply(a.phase),
            (false, false) => Next::Deploy(a.phase),
            (false, true) if a.phase < a.phases => Next::Apply(a.phase + 1),
            (false, true) => Next::Complete,
        };
        ApplyPayload {
            plan: a.plan.clone(),
            env: a.env.clone(),
            phase: Some(a.phase),
            phases: a.phases,
            deployed: a.deployed,
            app: a.app.clone(),
            ran: a.ran.clone(),
            skipped: a.skipped.clone(),
            gates: a.gates.clone(),
            next,
            dry_run: a.dry_run.clone(),
        }
    }
}

/// The payload of a held-back apply: the gates, and what waits.
fn held_back(e: &RunError) -> Option<ApplyPayload> {
    let (v, phase, app) = match e {
        RunError::Blocked(v) => (v.as_ref(), v.phase, Vec::new()),
        RunError::Waiting(w) => (&w.verdict, Some(w.phase), w.app.clone()),
        _ => return None,
    };
    Some(ApplyPayload {
        plan: v.plan.clone(),
        env: v.env.clone(),
        phase,
        phases: v.phases,
        deployed: false,
        app,
        ran: Vec::new(),
        skipped: Vec::new(),
        gates: v.gates.clone(),
        next: v.next,
        dry_run: None,
    })
}

/// `phasegate apply`.
pub async fn run(ws: &Workspace<'_>, env: &str, plan: &str, dry_run: bool) -> Report<ApplyPayload> {
    match ws.apply(env, plan, dry_run).await {
        Ok(a) if a.dry_run.is_some() => {
            Report::done("apply", text(&a, plan), ApplyPayload::from(&a))
                .with_outcome(Outcome::Done, Some(DRY_RUN.to_string()))
        }
        Ok(a) => Report::done("apply", text(&a, plan), ApplyPayload::from(&a)),
        Err(e) => Report::from_error("apply", &e).with_payload(held_back(&e)),
    }
}

/// What `apply` did, for people.
fn text(a: &Applied, plan: &str) -> String {
    let mut out = String::new();
    if let Some(sql) = &a.dry_run {
        let _ = writeln!(
            out,
            "-- dry run: phase {} of {} of {} in {}; nothing was run",
            a.phase, a.phases, a.plan, a.env
        );
        for line in sql {
            let _ = writeln!(out, "{line}");
        }
        return out;
    }
    let _ = writeln!(
        out,
        "{}: phase {} of {} applied in {}",
        a.plan, a.phase, a.phases, a.env
    );
    for s in &a.skipped {
        let _ = writeln!(out, "  skipped {s} (done by an earlier run)");
    }
    for s in &a.ran {
        let _ = writeln!(out, "  ran {s}");
    }
    if a.deployed {
        let _ = writeln!(out, "No app stage: phase {} is deployed.", a.phase);
    } else {
        let _ = writeln!(out, "Now deploy the app code for phase {}:", a.phase);
        for s in &a.app {
            let _ = writeln!(out, "  - {s}");
        }
        let _ = writeln!(
            out,
            "then: phasegate mark --env {} {plan} --phase {} --app-version VERSION",
            a.env, a.phase
        );
    }
    out
}
