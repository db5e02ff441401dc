//! `apply`: its text, its JSON payload, its outcome.

use std::fmt::Write;

use schemars::JsonSchema;
use serde::Serialize;

use phasegate::execute::{Applied, FleetApplied, FleetStop, RunError, TargetOutcome, Workspace};
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
    /// For a fleet environment: the rollout across its databases (the
    /// fields above are the fleet's: `ran`, `skipped` and `gates` are each
    /// database's, in here). Absent for an ordinary environment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fleet: Option<FleetApplied>,
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
            fleet: None,
        }
    }
}

impl From<&FleetApplied> for ApplyPayload {
    fn from(f: &FleetApplied) -> ApplyPayload {
        let everywhere = f.at_phase == f.targets;
        let next = match (everywhere && f.dry_run.is_none(), f.deployed) {
            (false, _) => Next::Apply(f.phase),
            (true, false) => Next::Deploy(f.phase),
            (true, true) if f.phase < f.phases => Next::Apply(f.phase + 1),
            (true, true) => Next::Complete,
        };
        ApplyPayload {
            plan: f.plan.clone(),
            env: f.env.clone(),
            phase: Some(f.phase),
            phases: f.phases,
            deployed: f.deployed && everywhere && f.dry_run.is_none(),
            app: f.app.clone(),
            ran: Vec::new(),
            skipped: Vec::new(),
            gates: Vec::new(),
            next,
            dry_run: f.dry_run.clone(),
            fleet: Some(f.clone()),
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
        fleet: None,
    })
}

/// `phasegate apply`.
pub async fn run(ws: &Workspace<'_>, env: &str, plan: &str, dry_run: bool) -> Report<ApplyPayload> {
    if ws.target.is_none() && ws.fleet(env).is_ok() {
        return run_fleet(ws, env, plan, dry_run).await;
    }
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

/// `phasegate apply` on a fleet: done (0) when every database is at the
/// phase, or the rollout paused between waves as configured; waiting for
/// deploy (3) when nothing was left to apply and the phase's app code is
/// next; blocked (1) when a gate held a database back; error (2) when one
/// failed. The report names each database that ran, failed or waits.
async fn run_fleet(
    ws: &Workspace<'_>,
    env: &str,
    plan: &str,
    dry_run: bool,
) -> Report<ApplyPayload> {
    let f = match ws.apply_fleet(env, plan, dry_run).await {
        Ok(f) => f,
        Err(e) => return Report::from_error("apply", &e),
    };
    let text = fleet_text(&f, plan);
    let payload = ApplyPayload::from(&f);
    let report = Report::done("apply", text, payload);
    if f.dry_run.is_some() {
        return report.with_outcome(Outcome::Done, Some(DRY_RUN.to_string()));
    }
    match &f.stopped {
        Some(FleetStop::Failed {
            index,
            database,
            error,
        }) => {
            let mut r = report.with_outcome(Outcome::Error, None);
            r.error = Some(super::envelope::ErrorBody::new(
                "step_failed",
                &format!("database {index} of {} in {env} ({database}) failed: {error}", f.targets),
            ));
            r
        }
        Some(FleetStop::Blocked {
            index,
            database,
            error,
        }) => report.with_outcome(
            Outcome::Blocked,
            Some(format!(
                "database {index} of {} in {env} ({database}) was held back: {error}",
                f.targets
            )),
        ),
        Some(FleetStop::Paused { after_wave }) => report.with_outcome(
            Outcome::Done,
            Some(format!(
                "paused after wave {after_wave} of {} (waves.pause): {} of {} databases at phase {}; `phasegate apply --env {env} {plan}` runs the next wave",
                f.waves, f.at_phase, f.targets, f.phase
            )),
        ),
        None if f.applied().next().is_none() && !f.deployed => report.with_outcome(
            Outcome::WaitingForDeploy,
            Some(format!(
                "phase {} is migrated in every database of {env}: deploy its app code, then `phasegate mark --env {env} {plan} --phase {} --app-version <VERSION>`",
                f.phase, f.phase
            )),
        ),
        None => report,
    }
}

/// What `apply` did across a fleet, for people: the summary, each database
/// that ran, failed or was held back, the ones left, and what next.
fn fleet_text(f: &FleetApplied, plan: &str) -> String {
    let mut out = String::new();
    if let Some(sql) = &f.dry_run {
        let _ = writeln!(
            out,
            "-- dry run: phase {} of {} of {} in {} ({} databases; the SQL of the first still to apply it, each plans against its own schema); nothing was run",
            f.phase, f.phases, f.plan, f.env, f.targets
        );
        for line in sql {
            let _ = writeln!(out, "{line}");
        }
        return out;
    }
    let _ = writeln!(
        out,
        "{}: phase {} of {} in {}: {} of {} databases at phase {} ({} waves; {:.1}s)",
        f.plan, f.phase, f.phases, f.env, f.at_phase, f.targets, f.phase, f.waves, f.seconds
    );
    let mut left = Vec::new();
    let mut already = 0;
    for t in &f.results {
        let took = super::took(t.seconds);
        match t.outcome {
            TargetOutcome::Applied => {
                let _ = writeln!(
                    out,
                    "  wave {:<3} applied      {}{took} (ran {})",
                    t.wave,
                    t.database,
                    if t.ran.is_empty() {
                        "nothing new".to_string()
                    } else {
                        t.ran.join(", ")
                    }
                );
            }
            TargetOutcome::Failed | TargetOutcome::Blocked => {
                let word = if t.outcome == TargetOutcome::Failed {
                    "FAILED"
                } else {
                    "held back"
                };
                let _ = writeln!(
                    out,
                    "  wave {:<3} {word:<12} {}{took}: {}",
                    t.wave,
                    t.database,
                    t.error
                        .as_deref()
                        .unwrap_or_default()
                        .replace('\n', "\n      ")
                );
            }
            TargetOutcome::AtPhase => already += 1,
            TargetOutcome::NotStarted => left.push(t),
        }
    }
    if already > 0 {
        let _ = writeln!(
            out,
            "  {already} database(s) were at phase {} already: skipped",
            f.phase
        );
    }
    if !left.is_empty() {
        let _ = writeln!(out, "  not started: {} database(s)", left.len());
        for t in left.iter().take(20) {
            let _ = writeln!(out, "    wave {:<3} {}", t.wave, t.database);
        }
        if left.len() > 20 {
            let _ = writeln!(out, "    … and {} more", left.len() - 20);
        }
    }
    match &f.stopped {
        Some(FleetStop::Failed {
            index, database, ..
        }) => {
            let _ = writeln!(
                out,
                "stopped: database {index} ({database}) failed; the databases of its wave already running finished, no other started. Fix it, then `phasegate apply --env {} {plan}` again: databases at phase {} are skipped.",
                f.env, f.phase
            );
        }
        Some(FleetStop::Blocked {
            index, database, ..
        }) => {
            let _ = writeln!(
                out,
                "stopped: database {index} ({database}) was held back; `phasegate apply --env {} {plan}` again once it may run.",
                f.env
            );
        }
        Some(FleetStop::Paused { after_wave }) => {
            let _ = writeln!(
                out,
                "paused after wave {after_wave} (waves.pause): `phasegate apply --env {} {plan}` runs the next wave.",
                f.env
            );
        }
        None if f.deployed => {
            let _ = writeln!(
                out,
                "No app stage: phase {} is deployed in every database.",
                f.phase
            );
        }
        None => {
            let _ = writeln!(out, "Now deploy the app code for phase {}:", f.phase);
            for s in &f.app {
                let _ = writeln!(out, "  - {s}");
            }
            let _ = writeln!(
                out,
                "then: phasegate mark --env {} {plan} --phase {} --app-version VERSION",
                f.env, f.phase
            );
        }
    }
    out
}
