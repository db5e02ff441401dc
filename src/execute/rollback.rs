//! `rollback`: undoing the latest phase that ran, when it can be undone.
//!
//! A rollback is all-or-nothing per step and recorded per step, like
//! `apply`: each step's undo commits together with its `step_rolled_back`
//! event (a step that cannot run in a transaction is recorded as started
//! before and as rolled back after), in the reverse of the order the steps
//! ran. A rollback that fails part-way leaves the log saying exactly which
//! steps were undone (the phase reads "partly rolled back"), records the
//! failure, and the next `rollback` goes on from there; `phase_rolled_back`
//! is written only when every step of the phase is undone.
//!
//! What is undone is the plan as it was when it started here (or as an
//! edit was last accepted): a plan file, a template or a phasegate whose SQL
//! differs from the pinned SQL is drift, refused as every command refuses it.

use crate::plan::StepKind;
use crate::tracker::gates::{human, undo_outstanding};
use crate::tracker::{Event, EventKind, NewEvent, PhaseStatus, ROLLED_BACK, derive};

use super::drift::refuse_drift;
use super::{RunError, StepContext, Workspace, backups, check_phase, steps};

impl Workspace<'_> {
    /// `phasegate rollback`: undoes the latest phase that ran, if it can be
    /// undone, step by step (see the module's documentation). Returns the
    /// phase rolled back. A failed step's [`RunError::Step`] names the step and
    /// the commands that go on from there.
    pub async fn rollback(
        &self,
        env: &str,
        target: &str,
        app_reverted: bool,
    ) -> Result<usize, RunError> {
        self.rollback_phase(env, target, None, app_reverted).await
    }

    /// `phasegate rollback --phase N`: like [`Workspace::rollback`], but
    /// only phase `only` (when given), so that running it again is
    /// idempotent: a phase that is rolled back already (or never ran) is
    /// [`RunError::NothingToDo`]; a phase with a later phase still in place
    /// is refused; a phase the plan does not have is [`RunError::Invalid`].
    pub async fn rollback_phase(
        &self,
        env: &str,
        target: &str,
        only: Option<usize>,
        app_reverted: bool,
    ) -> Result<usize, RunError> {
        let env = self.env(env)?;
        let env = &*env;
        let loaded = self.load(target)?;
        self.locked_plan(env, &loaded, false, async |store, plan, events| {
            if let Some(n) = only {
                check_phase(&plan, n)?;
            }
            let state = derive(&events, plan.phases.len());
            refuse_drift(&plan, &state, &loaded, env)?;
            let latest = state.latest_started();
            if let Some(want) = only {
                let undone = state.phase(want).is_none_or(|r| r.status == PhaseStatus::Pending);
                if undone {
                    let when = events
                        .iter()
                        .rev()
                        .find(|e| e.kind == EventKind::PhaseRolledBack && e.phase == Some(want))
                        .map(|e| format!("rolled back {}", e.at.format("%Y-%m-%d %H:%M:%S UTC")));
                    return Err(RunError::NothingToDo(format!(
                        "phase {want} of {} is already {} in {}: nothing to do",
                        loaded.label,
                        when.as_deref().unwrap_or("not applied"),
                        env.name
                    )));
                }
                if let Some(later) = latest.filter(|&l| l > want) {
                    return Err(RunError::Refused(format!(
                        "phase {later} of {} ran after phase {want} in {}: roll it back first (`phasegate rollback --env {} {} --phase {later}`)",
                        loaded.label, env.name, env.name, loaded.label
                    )));
                }
            }
            let Some(n) = latest else {
                return Err(RunError::Refused(format!("nothing to roll back: no phase of {} has run in {}", loaded.label, env.name)));
            };
            let phase = &plan.phases[n - 1];
            if !phase.reversible {
                let what: Vec<&str> = plan.phase_steps(phase).filter(|s| !s.reversible).map(|s| s.description.as_str()).collect();
                let restore = match backups(&events).last() {
                    Some((at, loc)) => format!("restore the backup taken {} ago ({loc})", human(self.clock.now().signed_duration_since(*at).to_std().unwrap_or_default())),
                    None => format!("restore a backup of the database (none was recorded with `phasegate backup --env {}`)", env.name),
                };
                return Err(RunError::Refused(format!(
                    "phase {n} of {} cannot be rolled back: it cannot be undone ({}). To go back, {restore}",
                    loaded.label,
                    what.join("; ")
                )));
            }
            let record = state.phase(n).cloned();
            let has_app = plan.phase_steps(phase).any(|s| s.kind == StepKind::App);
            if record.as_ref().is_some_and(|r| r.status == PhaseStatus::Deployed) && has_app && !app_reverted {
                return Err(RunError::Refused(format!(
                    "phase {n}'s app code is deployed in {}: redeploy the previous release first, then run rollback again with --app-reverted",
                    env.name
                )));
            }
            // An undo that never finished may have run in part: a person must
            // say what the database shows first.
            if let Some(o) = state.outstanding.iter().find(|o| o.undo && o.error.is_none()) {
                return Err(RunError::Refused(undo_outstanding(&loaded.label, &env.name, o)));
            }
            // What ran and is not undone yet, undone in reverse order, as
            // pinned (planned against the schema recorded when the plan
            // started here).
            for id in applied_in_order(&events, n).iter().rev() {
                let Some(step) = plan.phase_steps(phase).find(|s| &s.id == id) else {
                    return Err(RunError::Refused(format!(
                        "step {id} ran in phase {n} in {} but the plan has no such step in phase {n}: restore the plan as it was when it started, then `phasegate rollback --env {} {}`",
                        env.name, env.name, loaded.label
                    )));
                };
                let cx = StepContext {
                    plan: &plan.name,
                    phase: n,
                    env,
                    clock: self.clock,
                    actor: &self.actor,
                    progress: self.progress,
                    checkpoint: None,
                };
                steps::undo(store, &cx, step, &loaded.label).await?;
            }
            store.append(&NewEvent::plan(&plan.name, EventKind::PhaseRolledBack).phase(n), self.clock.now(), &self.actor).await?;
            Ok(n)
        })
        .await
    }
}

/// The steps of phase `n` applied (or resolved as applied) since it last
/// rolled back, and not undone since (by `step_rolled_back` or resolved as
/// rolled back), in the order they ran.
fn applied_in_order(events: &[Event], n: usize) -> Vec<String> {
    let since = events
        .iter()
        .rposition(|e| e.kind == EventKind::PhaseRolledBack && e.phase == Some(n))
        .map_or(0, |i| i + 1);
    let mut out: Vec<String> = Vec::new();
    for e in &events[since..] {
        let Some(id) = e.step.as_ref().filter(|_| e.phase == Some(n)) else {
            continue;
        };
        let applied = match e.kind {
            EventKind::StepApplied => Some(true),
            EventKind::StepResolved if e.detail == "applied" => Some(true),
            EventKind::StepRolledBack => Some(false),
            EventKind::StepResolved if e.detail == ROLLED_BACK => Some(false),
            _ => None,
        };
        match applied {
            Some(true) if !out.contains(id) => out.push(id.clone()),
            Some(false) => out.retain(|s| s != id),
            _ => {}
        }
    }
    out
}
