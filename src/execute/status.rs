//! The commands that read and record nothing: `status`, `history` and
//! `verify`.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::catalog::Catalog;
use crate::plan::StepKind;
use crate::tracker::gates::human;
use crate::tracker::gates::{self, Gate, GateContext, VerifyOutcome};
use crate::tracker::order::{StartedOrder, started_order};
use crate::tracker::{Event, Next, PhaseStatus, derive, interrupted_elsewhere, plan_events};

use super::{LoadedPlan, RunError, Workspace, backups, check_phase, steps};

/// What `status` reads of one environment: its log, the live schema of the
/// plans' tables, and the refusals for interrupted steps still running there.
type EnvRead = (Vec<Event>, Catalog, Vec<String>);

/// One environment as `status` sees it.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct EnvStatus {
    pub env: String,
    /// `None` when reachable; otherwise why not.
    pub unreachable: Option<String>,
    pub plans: Vec<PlanStatus>,
}

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct PlanStatus {
    pub plan: String,
    pub phases: usize,
    /// Phases deployed, counting from the first.
    pub deployed: usize,
    /// The phase in progress (or the last one, when complete) and its state.
    pub phase: usize,
    pub state: PhaseStatus,
    pub since: Option<DateTime<Utc>>,
    pub next: Next,
    /// Gates that hold the next step back.
    pub blocked: Vec<Gate>,
}

impl Workspace<'_> {
    /// `phasegate verify`: runs the verification queries of `phase`, or
    /// else of the latest phase that ran and has some, reporting each. A
    /// plan with no verification queries is [`RunError::Invalid`]; one none
    /// of whose phases with queries has run yet is [`RunError::Refused`].
    pub async fn verify(
        &self,
        env: &str,
        target: &str,
        phase: Option<usize>,
    ) -> Result<(usize, Vec<VerifyOutcome>), RunError> {
        let env = self.env(env)?;
        let loaded = self.load(target)?;
        let plan = self.plan_live(&loaded, env).await?;
        if let Some(n) = phase {
            check_phase(&plan, n)?;
        }
        let checked: Vec<usize> = (1..=plan.phases.len())
            .filter(|&n| {
                plan.phase_steps(&plan.phases[n - 1])
                    .any(|s| s.kind == StepKind::Verify)
            })
            .collect();
        if phase.is_none() && checked.is_empty() {
            return Err(RunError::Invalid(format!(
                "{} has no verification queries",
                loaded.label
            )));
        }
        let mut store = self.open_read_only(env).await?;
        let result = async {
            let events = store.events(Some(&plan.name)).await?;
            let state = derive(&events, plan.phases.len());
            let ran = |n: usize| {
                state
                    .phase(n)
                    .is_some_and(|r| r.status != PhaseStatus::Pending)
            };
            let n = match phase {
                Some(n) => n,
                None => *checked.iter().rev().find(|&&n| ran(n)).ok_or_else(|| {
                    RunError::Refused(format!(
                        "no phase of {} with verification queries has run in {} (phases with them: {})",
                        loaded.label,
                        env.name,
                        checked
                            .iter()
                            .map(ToString::to_string)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ))
                })?,
            };
            let steps: Vec<_> = plan.phase_steps(&plan.phases[n - 1]).collect();
            Ok((n, steps::verify_all(&mut store, &steps).await))
        }
        .await;
        store.close().await;
        result
    }

    /// `phasegate history`: the event log of an environment (or of one plan there).
    pub async fn history(&self, env: &str, plan: Option<&str>) -> Result<Vec<Event>, RunError> {
        let env = self.env(env)?;
        let name = match plan {
            Some(target) => Some(self.load(target)?.file.name),
            None => None,
        };
        let mut store = self.open_read_only(env).await?;
        let events = store.events(name.as_deref()).await?;
        store.close().await;
        Ok(events)
    }

    /// `phasegate status`: every plan in every environment (or one), read
    /// concurrently, each environment within its own timeout.
    pub async fn status(&self, only: Option<&str>) -> Result<Vec<EnvStatus>, RunError> {
        if let Some(name) = only {
            self.env(name)?;
        }
        let mut plans = Vec::new();
        for name in crate::intent::plan_names(&self.config.plans_dir()) {
            plans.push(self.load(&name)?);
        }
        let envs = &self.config.environments;
        let plan_refs: Vec<&LoadedPlan> = plans.iter().collect();
        let plan_refs = &plan_refs;
        let reads = envs.iter().map(|env| async move {
            let read = async {
                let mut store = self.open_read_only(env).await.map_err(|e| e.to_string())?;
                let events = store.events(None).await.map_err(|e| e.to_string());
                // Interrupted steps the server still runs (`session.rs`).
                let running = match &events {
                    Ok(ev) => super::session::running_now(&mut store, env, ev).await,
                    Err(_) => Vec::new(),
                };
                store.close().await;
                // Planned live, as apply would: the live schema can change a plan's phases.
                let catalog = self
                    .read_catalog(env, plan_refs)
                    .await
                    .map_err(|e| e.to_string())?;
                Ok((events?, catalog, running))
            };
            match tokio::time::timeout(env.connect_timeout, read).await {
                Ok(r) => r,
                Err(_) => Err(format!("no answer within {}", human(env.connect_timeout))),
            }
        });
        let logs: Vec<Result<EnvRead, String>> = futures::future::join_all(reads).await;
        let mut out = Vec::new();
        for (i, env) in envs.iter().enumerate() {
            if only.is_some_and(|o| o != env.name) {
                continue;
            }
            let (events, catalog, running) = match &logs[i] {
                Ok((e, c, r)) => (e, c, r),
                Err(why) => {
                    out.push(EnvStatus {
                        env: env.name.clone(),
                        unreachable: Some(why.clone()),
                        plans: Vec::new(),
                    });
                    continue;
                }
            };
            let mut rows = Vec::new();
            for loaded in &plans {
                let mine = plan_events(events, &loaded.file.name);
                // A plan that started here is planned against the schema it started with.
                let snapshot = derive(&mine, 0)
                    .catalog
                    .and_then(|c| serde_json::from_str::<Catalog>(&c).ok());
                let started = mine.iter().any(|e| e.plan.is_some());
                let plan = self.plan_with(
                    loaded,
                    env.dialect,
                    snapshot.as_ref().unwrap_or(catalog),
                    started,
                )?;
                let state = derive(&mine, plan.phases.len());
                let prev_state = i.checked_sub(1).map(|p| {
                    let s = logs[p].as_ref().map(|(ev, _, _)| {
                        let theirs: Vec<Event> = ev
                            .iter()
                            .filter(|e| e.plan.as_deref() == Some(&plan.name))
                            .cloned()
                            .collect();
                        derive(&theirs, plan.phases.len())
                    });
                    (envs[p].name.as_str(), s.map_err(|e| e.clone()))
                });
                let backups = backups(&mine);
                let order_now = self.order_now();
                // The orders recorded where the plan started, here and before here.
                let started: Vec<StartedOrder> = logs[..=i]
                    .iter()
                    .zip(envs.iter())
                    .filter_map(|(log, e)| {
                        started_order(&e.name, &log.as_ref().ok()?.0, &plan.name)
                    })
                    .collect();
                let elsewhere = interrupted_elsewhere(events, &plan.name);
                let ctx = GateContext {
                    plan: &plan,
                    plan_label: &loaded.label,
                    env,
                    state: &state,
                    previous_env: prev_state
                        .as_ref()
                        .map(|(n, s)| (*n, s.as_ref().map_err(Clone::clone))),
                    backups: &backups,
                    now: self.clock.now(),
                    text_now: &loaded.text,
                    verify: None,
                    elsewhere: &elsewhere,
                    order_now: &order_now,
                    started: &started,
                };
                let verdict = gates::verdict(&ctx);
                let current = match state.next() {
                    Next::Apply(n) | Next::Deploy(n) => n,
                    Next::Complete => plan.phases.len(),
                };
                let record = state.phase(current);
                // A step still running on the server holds every plan here.
                let mut blocked: Vec<Gate> = verdict.blocked().cloned().collect();
                blocked.extend(running.iter().map(|m| Gate {
                    name: "running",
                    held: false,
                    reason: m.clone(),
                }));
                rows.push(PlanStatus {
                    plan: plan.name.clone(),
                    phases: plan.phases.len(),
                    deployed: state.deployed_count(),
                    phase: current,
                    state: record.map_or(PhaseStatus::Pending, |r| r.status),
                    since: record.and_then(|r| r.since),
                    next: state.next(),
                    blocked,
                });
            }
            out.push(EnvStatus {
                env: env.name.clone(),
                unreachable: None,
                plans: rows,
            });
        }
        Ok(out)
    }
}
