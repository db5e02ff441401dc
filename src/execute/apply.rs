//! `apply`: running the next phase's migrations, or (`--dry-run`) listing the SQL they would run.

use serde::Serialize;

use crate::config::Environment;
use crate::plan::StepKind;
use crate::tracker::gates::Gate;
use crate::tracker::{Next, Store};

use super::{LivePlan, LoadedPlan, RunError, StepContext, Waiting, Workspace, backfill, steps};

/// What `apply` did.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Applied {
    pub plan: String,
    pub env: String,
    pub phase: usize,
    pub phases: usize,
    /// Steps run now, in order (empty for `--dry-run`).
    pub ran: Vec<String>,
    /// Steps skipped because an earlier, interrupted run completed them
    /// (empty for `--dry-run`).
    pub skipped: Vec<String>,
    /// True when the phase has no app stage, so it went straight to
    /// deployed (false for `--dry-run`: nothing was recorded).
    pub deployed: bool,
    /// What the application must ship now (empty when `deployed`).
    pub app: Vec<String>,
    pub gates: Vec<Gate>,
    /// For `--dry-run`: the SQL that would run, in order (nothing ran).
    pub dry_run: Option<Vec<String>>,
}

impl Workspace<'_> {
    /// `phasegate apply`: runs the next phase's migrations in `env`, if its gates hold.
    pub async fn apply(&self, env: &str, target: &str, dry_run: bool) -> Result<Applied, RunError> {
        let env = self.env(env)?;
        let loaded = self.load(target)?;
        self.apply_on(&env, &loaded, dry_run, None).await
    }

    /// [`Workspace::apply`] on `env` (an environment, or one target of a
    /// fleet); `expect`: the phase the caller means to apply (a fleet's
    /// phase), refused when the target's next phase is another.
    pub(super) async fn apply_on(
        &self,
        env: &Environment,
        loaded: &LoadedPlan,
        dry_run: bool,
        expect: Option<usize>,
    ) -> Result<Applied, RunError> {
        // The lock first: the plan is made from the log and schema as they
        // are once no other run can change them.
        self.locked(env, None, async |store, events| {
            let plan = self.plan_from(loaded, env, &events).await?;
            self.apply_locked(store, env, &plan, loaded, dry_run, expect)
                .await
        })
        .await
    }

    async fn apply_locked(
        &self,
        store: &mut Store,
        env: &Environment,
        plan: &LivePlan,
        loaded: &LoadedPlan,
        dry_run: bool,
        expect: Option<usize>,
    ) -> Result<Applied, RunError> {
        let events = store.events(None).await?;
        let (state, verdict) = self.judge(store, env, plan, loaded, &events, None).await?;
        let phase_no = match state.next() {
            Next::Complete => {
                return Err(RunError::NothingToDo(format!(
                    "{} is complete in {}: every phase is deployed; nothing to do",
                    loaded.label, env.name
                )));
            }
            Next::Deploy(n) => {
                let app = plan
                    .phase_steps(&plan.phases[n - 1])
                    .filter(|s| s.kind == StepKind::App)
                    .map(|s| s.description.clone())
                    .collect();
                return Err(RunError::Waiting(Box::new(Waiting {
                    phase: n,
                    app,
                    label: loaded.label.clone(),
                    verdict,
                })));
            }
            Next::Apply(n) => n,
        };
        if let Some(k) = expect.filter(|k| *k != phase_no) {
            return Err(RunError::Refused(format!(
                "phase {phase_no} of {} is the next to apply in {}, not phase {k}",
                loaded.label, env.name
            )));
        }
        if !verdict.may_proceed() {
            return Err(RunError::Blocked(Box::new(verdict)));
        }
        let phase = &plan.phases[phase_no - 1];
        let done = state
            .phase(phase_no)
            .map(|r| r.applied_steps.clone())
            .unwrap_or_default();
        let (skipped, todo): (Vec<_>, Vec<_>) = plan
            .phase_steps(phase)
            .filter(|s| s.kind != StepKind::App)
            .partition(|s| done.contains(&s.id));
        let app: Vec<String> = plan
            .phase_steps(phase)
            .filter(|s| s.kind == StepKind::App)
            .map(|s| s.description.clone())
            .collect();
        let mut report = Applied {
            plan: plan.name.clone(),
            env: env.name.clone(),
            phase: phase_no,
            phases: plan.phases.len(),
            ran: todo.iter().map(|s| s.id.clone()).collect(),
            skipped: skipped.iter().map(|s| s.id.clone()).collect(),
            deployed: app.is_empty(),
            app,
            gates: verdict.gates.clone(),
            dry_run: None,
        };
        if dry_run {
            let mut sql = Vec::new();
            for s in &todo {
                // A backfill's batches walk the key the plan chose.
                let key = match &s.backfill {
                    Some(b) => backfill::walk_key(store, b).await?,
                    None => Vec::new(),
                };
                sql.extend(steps::dry_run(s, env, &key));
            }
            // Nothing ran: no step ran or was skipped, nothing is deployed.
            report.dry_run = Some(sql);
            report.ran.clear();
            report.skipped.clear();
            report.deployed = false;
            return Ok(report);
        }

        store.set_lock_wait(env.lock_timeout).await?;
        if state.checksum.is_none() {
            let started = super::plan_started(plan, loaded);
            // SQLite: the application may hold the write lock; give way like a step does.
            steps::append_giving_way(store, env, &started, self.clock, &self.actor).await?;
        }
        for step in &todo {
            self.progress.step(step);
            let cx = StepContext {
                plan: &plan.name,
                phase: phase_no,
                env,
                clock: self.clock,
                actor: &self.actor,
                progress: self.progress,
                checkpoint: state.checkpoints.get(&step.id),
            };
            steps::run(store, &cx, step).await?;
        }
        let now = self.clock.now();
        let events = super::phase_done(&plan.name, phase_no, report.deployed);
        self.record(store, &events, now).await?;
        Ok(report)
    }
}
