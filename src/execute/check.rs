//! `phasegate check`: has an environment's database reached a phase of a
//! plan? For services at start-up and for scripts. Reads the verified log;
//! creates and writes nothing.

use serde::Serialize;

use crate::catalog::Catalog;
use crate::tracker::reach::{self, Reached};
use crate::tracker::{Event, Next, Outstanding, PhaseStatus, derive, gates};

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
    /// Whether the plan file was found. When it was not (a service image
    /// that does not ship plans/), the answer is the log's alone: the
    /// phases recorded when the plan started here.
    pub plan_file_found: bool,
    /// When the plan file (or its steps' SQL) changed since the plan
    /// started here and the change is not accepted: what changed, with the
    /// way forward (`accept-change`). The answer is then the log's: the
    /// phases as recorded, reached as recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drift: Option<String>,
}

impl Workspace<'_> {
    /// `phasegate check`: whether `phase` of the plan has reached `what` in
    /// `env`. Read-only: a database phasegate never wrote to has reached
    /// nothing. An unknown environment or plan, a phase the plan does not
    /// have, an unreachable database or a log that fails its chain check is
    /// an error.
    ///
    /// The log decides: a plan whose file is gone is answered from the
    /// phases its log records (an error only when the log does not know
    /// the plan either), and a plan whose file drifted since it started is
    /// answered as recorded, with the drift said.
    pub async fn check(
        &self,
        env: &str,
        target: &str,
        phase: usize,
        what: Reached,
    ) -> Result<Check, RunError> {
        let env = self.env(env)?;
        let env = &*env;
        let loaded = match self.load(target) {
            Ok(loaded) => loaded,
            Err(RunError::NotFound(missing)) => {
                let mut store = self.open_read_only(env).await?;
                let events = store.events(Some(target)).await;
                store.close().await;
                let events: Vec<Event> = events?;
                let phases = reach::recorded_phases(&events)
                    .filter(|_| events.iter().any(|e| e.plan.as_deref() == Some(target)))
                    .ok_or(RunError::NotFound(missing))?;
                if phase == 0 || phase > phases {
                    return Err(RunError::Invalid(format!(
                        "{target} has {phases} phase{} as recorded in {} (its plan file is not found); there is no phase {phase}",
                        if phases == 1 { "" } else { "s" },
                        env.name
                    )));
                }
                return Ok(answer(AnswerOf {
                    plan: target,
                    env: &env.name,
                    phase,
                    phases,
                    what,
                    events: &events,
                    plan_file_found: false,
                    drift: None,
                }));
            }
            Err(e) => return Err(e),
        };
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
        let drift = gates::drift(
            &plan,
            &derive(&events, plan.phases.len()),
            &loaded.label,
            &env.name,
            &loaded.text,
        )
        .err();
        // Drifted: the phases as recorded when it started (or was last
        // accepted), as the view and `status` count them.
        let phases = match drift {
            Some(_) => reach::recorded_phases(&events).unwrap_or(plan.phases.len()),
            None => plan.phases.len(),
        };
        Ok(answer(AnswerOf {
            plan: &plan.name,
            env: &env.name,
            phase,
            phases,
            what,
            events: &events,
            plan_file_found: true,
            drift,
        }))
    }
}

/// What [`answer`] answers from.
struct AnswerOf<'a> {
    plan: &'a str,
    env: &'a str,
    phase: usize,
    phases: usize,
    what: Reached,
    events: &'a [Event],
    plan_file_found: bool,
    drift: Option<String>,
}

/// `check`'s answer from the plan's events, counting `phases` phases.
fn answer(a: AnswerOf<'_>) -> Check {
    let state = derive(a.events, a.phases);
    let next = state.next();
    let current = match next {
        Next::Apply(n) | Next::Deploy(n) => n,
        Next::Complete => a.phases,
    };
    Check {
        plan: a.plan.to_string(),
        env: a.env.to_string(),
        phase: a.phase,
        phases: a.phases,
        require: a.what,
        reached: reach::reached(&state, a.phase, a.what),
        phase_applied: reach::highest(&state, Reached::Applied),
        phase_deployed: reach::highest(&state, Reached::Deployed),
        current_phase: current,
        state: state
            .phase(current)
            .map_or(PhaseStatus::Pending, |r| r.status),
        next,
        started: a.events.iter().any(|e| e.plan.is_some()),
        outstanding: state.outstanding,
        plan_file_found: a.plan_file_found,
        drift: a.drift,
    }
}
