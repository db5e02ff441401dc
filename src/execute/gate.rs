//! Evaluating the gates: what `gate` reports, and what holds `apply` and
//! `mark` back.

use crate::config::Environment;
use crate::plan::Plan;
use crate::tracker::gates::{self, GateContext, Verdict};
use crate::tracker::order::{StartedOrder, started_order};
use crate::tracker::{
    Event, Next, PhaseStatus, PlanState, Store, derive, interrupted_elsewhere, plan_events,
};

use super::{LoadedPlan, RunError, Workspace, backups, steps};

impl Workspace<'_> {
    /// The plan's state in the environment promoted from, or why it cannot be
    /// read; an error when that environment's URL names an unset `${VAR}`.
    async fn previous_state(
        &self,
        env: &Environment,
        plan: &Plan,
    ) -> Result<Option<(String, Result<PlanState, String>)>, RunError> {
        let Some(prev) = self.config.previous(&env.name)? else {
            return Ok(None);
        };
        if let Some(fleet) = &prev.fleet {
            return Ok(Some(
                self.furthest_behind(prev, fleet, &plan.name, plan.phases.len())
                    .await,
            ));
        }
        let state = async {
            let mut store = self.open_read_only(prev).await.map_err(|e| e.to_string())?;
            let events = store
                .events(Some(&plan.name))
                .await
                .map_err(|e| e.to_string());
            store.close().await;
            Ok(derive(&events?, plan.phases.len()))
        }
        .await;
        Ok(Some((prev.name.clone(), state)))
    }

    /// The promotion orders recorded where the plan started: in each
    /// environment before `env` in `phasegate.yaml` that can be read (read
    /// at once; one that cannot be read is left out, and the promotion gate
    /// reports the previous one's error itself), then in `env` from its
    /// events `all`.
    async fn started_orders(
        &self,
        env: &Environment,
        plan: &Plan,
        all: &[Event],
    ) -> Vec<StartedOrder> {
        let earlier = self
            .config
            .environments
            .iter()
            .take_while(|e| e.name != env.name);
        let reads = earlier.map(|e| async move {
            let mut store = self.open_read_only(e).await.ok()?;
            let events = store.events(Some(&plan.name)).await;
            store.close().await;
            started_order(&e.name, &events.ok()?, &plan.name)
        });
        let mut found: Vec<StartedOrder> = futures::future::join_all(reads)
            .await
            .into_iter()
            .flatten()
            .collect();
        found.extend(started_order(&env.name, all, &plan.name));
        found
    }

    /// Evaluates every gate for the plan's next step, as `apply` would, from
    /// `all` the environment's events (other plans' interrupted steps hold
    /// this one too).
    pub(super) async fn judge(
        &self,
        store: &mut Store,
        env: &Environment,
        plan: &Plan,
        loaded: &LoadedPlan,
        all: &[Event],
        marking: Option<usize>,
    ) -> Result<(PlanState, Verdict), RunError> {
        let events = &plan_events(all, &plan.name);
        let state = derive(events, plan.phases.len());
        let previous = self.previous_state(env, plan).await?;
        let backups = backups(events);
        let target = match marking {
            Some(p) => Some(p),
            None => match state.next() {
                Next::Apply(n) => Some(n),
                Next::Deploy(n) => Some((n + 1).min(plan.phases.len())),
                Next::Complete => None,
            },
        };
        let verify = match target {
            Some(p) if p > 1 => {
                let prev_steps: Vec<_> = plan.phase_steps(&plan.phases[p - 2]).collect();
                Some(steps::verify_all(store, &prev_steps).await)
            }
            _ => None,
        };
        let order_now = self.order_now();
        let started = self.started_orders(env, plan, all).await;
        let elsewhere = interrupted_elsewhere(all, &plan.name);
        let ctx = GateContext {
            plan,
            plan_label: &loaded.label,
            env,
            state: &state,
            previous_env: previous
                .as_ref()
                .map(|(n, s)| (n.as_str(), s.as_ref().map_err(Clone::clone))),
            backups: &backups,
            now: self.clock.now(),
            text_now: &loaded.text,
            verify: verify.as_deref(),
            elsewhere: &elsewhere,
            order_now: &order_now,
            started: &started,
        };
        let mut verdict = gates::verdict(&ctx);
        if let Some(p) = marking {
            verdict.phase = Some(p);
            verdict.gates = gates::evaluate(
                &ctx,
                p,
                state
                    .phase(p)
                    .is_some_and(|r| r.status == PhaseStatus::Migrated),
            );
        }
        Ok((state, verdict))
    }

    /// `phasegate gate`: may the plan's next step run in `env`?
    pub async fn gate(&self, env: &str, target: &str) -> Result<Verdict, RunError> {
        if self.target.is_none()
            && let Ok((e, fleet)) = self.fleet(env)
        {
            return Box::pin(self.gate_fleet(e, fleet, target)).await;
        }
        let env = self.env(env)?;
        let env = &*env;
        let loaded = self.load(target)?;
        let plan = self.plan_live(&loaded, env).await?;
        let mut store = self.open_read_only(env).await?;
        let events = store.events(None).await?;
        let (_, verdict) = self
            .judge(&mut store, env, &plan, &loaded, &events, None)
            .await?;
        store.close().await;
        Ok(verdict)
    }
}
