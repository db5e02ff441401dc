//! `rollback`: undoing the latest phase that ran, when it can be undone.

use crate::plan::StepKind;
use crate::tracker::gates::human;
use crate::tracker::{Event, EventKind, NewEvent, PhaseStatus, derive};

use super::{RunError, Workspace, backfill, backups, send};

impl Workspace<'_> {
    /// `phasegate rollback`: undoes the latest phase that ran, if it can be undone.
    pub async fn rollback(
        &self,
        env: &str,
        target: &str,
        app_reverted: bool,
    ) -> Result<usize, RunError> {
        let env = self.env(env)?;
        let loaded = self.load(target)?;
        self.locked_plan(env, &loaded, false, async |store, plan, events| {
            let state = derive(&events, plan.phases.len());
            let Some(n) = state.latest_started() else {
                return Err(RunError::Refused(format!("nothing to roll back: no phase of {} has run in {}", loaded.label, env.name)));
            };
            let phase = &plan.phases[n - 1];
            if !phase.reversible {
                let what: Vec<&str> = plan.phase_steps(phase).filter(|s| !s.reversible).map(|s| s.description.as_str()).collect();
                let restore = match backups(&events).last() {
                    Some((at, loc)) => format!("restore the backup taken {} ago ({loc})", human(self.clock.now().signed_duration_since(*at).to_std().unwrap_or_default())),
                    None => "restore a backup of the database (none was recorded with `phasegate backup`)".to_string(),
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
            // What ran, undone in reverse order, as planned (against the
            // schema recorded when the plan started here).
            let now = self.clock.now();
            for id in applied_in_order(&events, n).iter().rev() {
                let Some(step) = plan.phase_steps(phase).find(|s| &s.id == id) else {
                    continue;
                };
                let (Some(sql), transactional) = (step.rollback_sql.clone(), step.transactional)
                else {
                    continue;
                };
                if let Some(fill) = &step.rollback_fill {
                    backfill::before_rollback(store, env, step, fill).await?;
                }
                send::undo(store, env, &sql, transactional)
                    .await
                    .map_err(|f| RunError::Step(f.into_step_error(id, n, env, send::Running::Down)))?;
            }
            store.append(&NewEvent::plan(&plan.name, EventKind::PhaseRolledBack).phase(n), now, &self.actor).await?;
            Ok(n)
        })
        .await
    }
}

/// The steps of phase `n` applied (or resolved as applied) since it last
/// rolled back, in the order they ran.
fn applied_in_order(events: &[Event], n: usize) -> Vec<String> {
    let since = events
        .iter()
        .rposition(|e| e.kind == EventKind::PhaseRolledBack && e.phase == Some(n))
        .map_or(0, |i| i + 1);
    let mut out: Vec<String> = Vec::new();
    for e in &events[since..] {
        let applied = match e.kind {
            EventKind::StepApplied => true,
            EventKind::StepResolved => e.detail == "applied",
            _ => false,
        };
        if applied
            && e.phase == Some(n)
            && let Some(id) = &e.step
            && !out.contains(id)
        {
            out.push(id.clone());
        }
    }
    out
}
