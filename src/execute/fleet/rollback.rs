//! `phasegate rollback` on a fleet: one phase rolled back in every database
//! of the environment that has it in place, so the fleet is at one phase
//! again (after a rollout stopped at a failing database, say).
//!
//! The phase is the one given (`--phase N`), or the latest any database has
//! started. Databases are rolled back in reverse fleet order (the last wave
//! first, the canary last), at most `waves.parallelism` at a time, each as
//! `rollback --phase N` would on its own (so a database where the phase is
//! not in place is skipped, and running the command again is safe). A
//! database that fails stops the run: the ones running finish, no other
//! starts, and the report names it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use futures::StreamExt;
use serde::Serialize;

use crate::catalog::redact;
use crate::tracker::PhaseStatus;

use super::super::{RunError, Workspace, check_phase};

/// How one database of a fleet came out of `rollback`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RollbackOutcome {
    /// The phase was rolled back there now.
    RolledBack,
    /// The phase was not in place there (never applied, or rolled back
    /// already): skipped.
    NotInPlace,
    /// Its rollback failed; the run stopped.
    Failed,
    /// Its rollback was refused (a gate, drift, a rule); the run stopped.
    Blocked,
    /// Not started: another database failed first.
    NotStarted,
}

/// One database of a fleet in `rollback`'s report.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct TargetRolledBack {
    /// Its place in the fleet, from 1.
    pub index: usize,
    /// Its database URL, the password hidden.
    pub database: String,
    pub outcome: RollbackOutcome,
    /// How long its rollback took, in seconds (`None` when it did not run).
    pub seconds: Option<f64>,
    /// Why it failed.
    pub error: Option<String>,
}

/// What `rollback` did across a fleet.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct FleetRolledBack {
    pub plan: String,
    pub env: String,
    /// The phase rolled back.
    pub phase: usize,
    /// Databases in the fleet.
    pub targets: usize,
    /// Databases where the phase is not in place now (rolled back now, or
    /// before).
    pub rolled_back: usize,
    /// The first database (in the order they ran) whose rollback failed
    /// or was refused; `None` when none was.
    pub failed: Option<TargetRolledBack>,
    /// Every database, in fleet order.
    pub results: Vec<TargetRolledBack>,
    /// Wall time of the whole run, in seconds.
    pub seconds: f64,
}

impl Workspace<'_> {
    /// `phasegate rollback` on a fleet (see the module doc): phase `only`,
    /// or the latest any database started, rolled back wherever it is in
    /// place. [`RunError::NothingToDo`] when it is in place nowhere; a
    /// database that cannot be read is an error before any rollback starts.
    pub async fn rollback_fleet(
        &self,
        env_name: &str,
        target: &str,
        only: Option<usize>,
        app_reverted: bool,
    ) -> Result<FleetRolledBack, RunError> {
        let started = Instant::now();
        let (env, fleet) = self.fleet(env_name)?;
        let loaded = self.load(target)?;
        let plan = self
            .plan_live(&loaded, &env.on_target(&fleet.targets[0]))
            .await?;
        if let Some(n) = only {
            check_phase(&plan, n)?;
        }
        let read = self
            .readable_states(
                env,
                fleet,
                &plan.name,
                plan.phases.len(),
                "nothing was rolled back",
            )
            .await?;
        let latest = read.iter().filter_map(|(_, s)| s.latest_started()).max();
        // `--phase N` with a later phase in place somewhere: refused before
        // any database is touched, as `rollback --phase N` is on one.
        if let Some(n) = only {
            let later: Vec<String> = read
                .iter()
                .filter_map(|(db, s)| {
                    let l = s.latest_started().filter(|l| *l > n)?;
                    Some(format!("{db} (phase {l})"))
                })
                .collect();
            if !later.is_empty() {
                return Err(RunError::Refused(format!(
                    "phase {n} cannot be rolled back in {env_name} while a later phase is in place in {} of its {} databases: {}; roll those back first (`phasegate rollback --env {env_name} {}`), nothing was rolled back",
                    later.len(),
                    fleet.targets.len(),
                    later.join(", "),
                    loaded.label
                )));
            }
        }
        let Some(phase) = only.or(latest) else {
            return Err(RunError::NothingToDo(format!(
                "{} has not started in any database of {env_name}: nothing to roll back",
                loaded.label
            )));
        };
        let in_place: Vec<bool> = read
            .iter()
            .map(|(_, s)| {
                s.phase(phase)
                    .is_some_and(|r| r.status != PhaseStatus::Pending)
            })
            .collect();
        if !in_place.contains(&true) {
            return Err(RunError::NothingToDo(format!(
                "phase {phase} of {} is in place in no database of {env_name} ({}): nothing to roll back",
                loaded.label,
                fleet.targets.len()
            )));
        }
        let mut results: Vec<TargetRolledBack> = fleet
            .targets
            .iter()
            .enumerate()
            .map(|(i, url)| TargetRolledBack {
                index: i + 1,
                database: redact(url),
                outcome: if in_place[i] {
                    RollbackOutcome::NotStarted
                } else {
                    RollbackOutcome::NotInPlace
                },
                seconds: None,
                error: None,
            })
            .collect();
        let stop = AtomicBool::new(false);
        let runs = (0..fleet.targets.len())
            .rev()
            .filter(|i| in_place[*i])
            .map(|i| {
                let stop = &stop;
                async move {
                    if stop.load(Ordering::SeqCst) {
                        return (i, None);
                    }
                    let mut ws = self.on_target(&fleet.targets[i]);
                    if fleet.waves.parallelism > 1 {
                        ws.progress = &super::super::NoProgress;
                    }
                    let began = Instant::now();
                    let r = ws
                        .rollback_phase(env_name, target, Some(phase), app_reverted)
                        .await;
                    if r.as_ref()
                        .is_err_and(|e| !matches!(e, RunError::NothingToDo(_)))
                    {
                        stop.store(true, Ordering::SeqCst);
                    }
                    (i, Some((r, began.elapsed().as_secs_f64())))
                }
            });
        let ran: Vec<_> = futures::stream::iter(runs)
            .buffered(fleet.waves.parallelism.max(1))
            .collect()
            .await;
        let mut failed = None;
        for (i, r) in ran {
            let Some((r, seconds)) = r else {
                continue;
            };
            let t = &mut results[i];
            t.seconds = Some(seconds);
            match r {
                Ok(_) => t.outcome = RollbackOutcome::RolledBack,
                Err(RunError::NothingToDo(_)) => t.outcome = RollbackOutcome::NotInPlace,
                Err(e) => {
                    t.outcome = match e {
                        RunError::Blocked(_) | RunError::Refused(_) => RollbackOutcome::Blocked,
                        _ => RollbackOutcome::Failed,
                    };
                    t.error = Some(super::one_database(&e, &t.database));
                    if failed.is_none() {
                        failed = Some(t.clone());
                    }
                }
            }
        }
        Ok(FleetRolledBack {
            plan: plan.name.clone(),
            env: env.name.clone(),
            phase,
            targets: fleet.targets.len(),
            rolled_back: results
                .iter()
                .filter(|r| {
                    matches!(
                        r.outcome,
                        RollbackOutcome::RolledBack | RollbackOutcome::NotInPlace
                    )
                })
                .count(),
            failed,
            results,
            seconds: started.elapsed().as_secs_f64(),
        })
    }
}
