//! `phasegate check`: has an environment's database reached a phase of a
//! plan? For services at start-up and for scripts. Reads the verified log;
//! creates and writes nothing.

use serde::Serialize;

use crate::catalog::Catalog;
use crate::tracker::reach::{self, Reached};
use crate::tracker::{Next, Outstanding, PhaseStatus, derive};

use super::{RunError, Workspace, check_phase};

/// What `phasegate check` found.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Check {
    /// The plan's name.
    pub plan: String,
    /// The environment asked about.
    pub env: String,
    /// The phase asked about.
    pub phase: usize,
    /// How many phases the plan has (as `status` counts them).
    pub phases: usize,
    /// What was asked of the phase: its migrations applied, or its app code deployed too.
    pub require: Reached,
    /// Whether the phase has reached it.
    pub reached: bool,
    /// The highest phase whose migrations are applied (0: none).
    pub phase_applied: usize,
    /// The highest phase marked deployed (0: none).
    pub phase_deployed: usize,
    /// The phase in progress (the last one, when complete), as `status` shows it.
    pub current_phase: usize,
    /// That phase's state.
    pub state: PhaseStatus,
    /// What the plan does next here (as `status` and `gate` say).
    pub next: Next,
    /// Whether the plan has started in this environment.
    pub started: bool,
    /// Steps that failed, or started and never finished, and are not settled.
    pub outstanding: Vec<Outstanding>,
}

impl Workspace<'_> {
    /// `phasegate check`: whether `phase` of the plan has reached `what` in
    /// `env`. Read-only: a database phasegate never wrote to has reached
    /// nothing. An unknown environment or plan, a phase the plan does not
    /// have, an unreachable database or a log that fails its chain check is
    /// an error.
    pub async fn check(
        &self,
        env: &str,
        target: &str,
        phase: usize,
        what: Reached,
    ) -> Result<Check, RunError> {
        let env = self.env(env)?;
        let loaded = self.load(target)?;
        let mut store = self.open_read_only(env).await?;
        let events = store.events(Some(&loaded.file.name)).await;
        store.close().await;
        let events = events?;
        let started = events.iter().any(|e| e.plan.is_some());
        // Counted as `status` counts them: a plan that started here is
        // planned against the schema it started with, otherwise live.
        let snapshot = derive(&events, 0)
            .catalog
            .and_then(|c| serde_json::from_str::<Catalog>(&c).ok());
        let plan = match snapshot {
            Some(catalog) => self.plan_with(&loaded, env.dialect, &catalog, true)?,
            None => {
                let catalog = self.read_catalog(env, &[&loaded]).await?;
                match self.plan_with(&loaded, env.dialect, &catalog, started) {
                    Ok(plan) => plan,
                    // Not started: the answer is "not reached" whatever the
                    // live schema; the phases are counted offline.
                    Err(_) if !started => {
                        self.plan_with(&loaded, env.dialect, &Catalog::offline(), false)?
                    }
                    Err(e) => return Err(e),
                }
            }
        };
        check_phase(&plan, phase)?;
        let state = derive(&events, plan.phases.len());
        let next = state.next();
        let current = match next {
            Next::Apply(n) | Next::Deploy(n) => n,
            Next::Complete => plan.phases.len(),
        };
        Ok(Check {
            plan: plan.name.clone(),
            env: env.name.clone(),
            phase,
            phases: plan.phases.len(),
            require: what,
            reached: reach::reached(&state, phase, what),
            phase_applied: reach::highest(&state, Reached::Applied),
            phase_deployed: reach::highest(&state, Reached::Deployed),
            current_phase: current,
            state: state
                .phase(current)
                .map_or(PhaseStatus::Pending, |r| r.status),
            next,
            started,
            outstanding: state.outstanding,
        })
    }
}
