//! Fleets (`database_urls`, `database_urls_from` in `phasegate.yaml`):
//! `apply` rolling a phase across every database of an environment in
//! waves, `mark` recording an app deploy on each, `rollback` undoing a
//! phase wherever it is in place (`rollback.rs`), reading where each
//! target stands (for `status`, `gate` and the promotion gate of the next
//! environment), and `--database` picking one database for any command
//! (`pick.rs`).
//!
//! Each target is an ordinary database of the environment: its own event
//! log, lock and marker (the environment's name: targets of one fleet are
//! interchangeable, another environment's database is refused as ever).
//! A wave runs its targets at most [`crate::config::Waves::parallelism`] at a time, as
//! concurrent tasks of this run; a target that fails lets the running ones
//! finish, starts no other, and no later wave runs.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use futures::StreamExt;
use serde::Serialize;

use crate::catalog::redact;
use crate::config::{Environment, Fleet};
use crate::plan::StepKind;
use crate::tracker::{Next, PhaseStatus, PlanState, derive};

use super::{LoadedPlan, NoProgress, RunError, Workspace};

mod pick;
mod rollback;

pub use rollback::{FleetRolledBack, RollbackOutcome, TargetRolledBack};

/// How one target of a fleet came out of `apply`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TargetOutcome {
    /// The phase's migrations ran there now.
    Applied,
    /// It had reached the phase already (an earlier `apply`): skipped.
    AtPhase,
    /// Its run failed; the rollout stopped.
    Failed,
    /// A gate held it back (or a rule refused it); the rollout stopped.
    Blocked,
    /// Not started: an earlier target failed, or the rollout paused.
    NotStarted,
}

/// One target of a fleet in `apply`'s report.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct TargetApplied {
    /// Its place in the fleet, from 1 (the order waves take).
    pub index: usize,
    /// Its database URL, the password hidden.
    pub database: String,
    /// The wave it belongs to, from 1 (the canary's).
    pub wave: usize,
    pub outcome: TargetOutcome,
    /// Steps run now, in order.
    pub ran: Vec<String>,
    /// Steps skipped because an earlier, interrupted run completed them.
    pub skipped: Vec<String>,
    /// How long its run took, in seconds (`None` when it did not run).
    pub seconds: Option<f64>,
    /// Why it failed or was held back.
    pub error: Option<String>,
}

/// Why a fleet's rollout stopped before every target reached the phase.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum FleetStop {
    /// A target failed (the first in fleet order, when several of its wave did).
    Failed {
        index: usize,
        database: String,
        error: String,
    },
    /// A gate held a target back (or a rule refused it).
    Blocked {
        index: usize,
        database: String,
        error: String,
    },
    /// `waves.pause`: stopped after wave `after_wave`; the next `apply`
    /// runs the next one.
    Paused { after_wave: usize },
}

/// What `apply` did across a fleet.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct FleetApplied {
    pub plan: String,
    pub env: String,
    /// The fleet's phase: the lowest phase any target has still to apply
    /// (or deploy).
    pub phase: usize,
    pub phases: usize,
    /// Databases in the fleet.
    pub targets: usize,
    /// Targets at that phase now (its migrations applied, or deployed).
    pub at_phase: usize,
    /// Waves the fleet is rolled out in, and the last one this run got to
    /// (0: none ran).
    pub waves: usize,
    pub last_wave: usize,
    /// True when the phase has no app stage, so each target that applied
    /// it is deployed too.
    pub deployed: bool,
    /// What the application must ship once every target is at the phase.
    pub app: Vec<String>,
    /// Why it stopped short (`None`: every target is at the phase).
    pub stopped: Option<FleetStop>,
    /// Every target, in fleet order.
    pub results: Vec<TargetApplied>,
    /// Wall time of the whole run, in seconds.
    pub seconds: f64,
    /// With `--dry-run`: the SQL the first target still to apply the phase
    /// would run (each target plans against its own schema; nothing ran).
    pub dry_run: Option<Vec<String>>,
}

impl FleetApplied {
    /// The targets that ran the phase now.
    pub fn applied(&self) -> impl Iterator<Item = &TargetApplied> {
        self.results
            .iter()
            .filter(|t| t.outcome == TargetOutcome::Applied)
    }
}

/// One target's state of a plan, or why it could not be read.
pub type TargetState = (String, Result<PlanState, String>);

impl Workspace<'_> {
    /// The fleet of environment `name`; [`RunError::Invalid`] for an
    /// ordinary environment.
    pub fn fleet(&self, name: &str) -> Result<(&Environment, &Fleet), RunError> {
        let env = self.config.environment(name)?;
        match &env.fleet {
            Some(f) => Ok((env, f)),
            None => Err(RunError::Invalid(format!(
                "{name} is one database, not a fleet"
            ))),
        }
    }

    /// Each target's state of plan `plan` (of `phases` phases) in fleet
    /// order, read without creating anything, at most
    /// `waves.parallelism` (at least 8) at a time.
    pub async fn target_states(
        &self,
        env: &Environment,
        fleet: &Fleet,
        plan: &str,
        phases: usize,
    ) -> Vec<TargetState> {
        let reads = fleet.targets.iter().map(|url| async move {
            let target = env.on_target(url);
            let state = async {
                let mut store = self
                    .open_read_only(&target)
                    .await
                    .map_err(|e| e.to_string())?;
                let events = store.events(Some(plan)).await.map_err(|e| e.to_string());
                store.close().await;
                Ok(derive(&events?, phases))
            };
            let state = match tokio::time::timeout(env.connect_timeout, state).await {
                Ok(s) => s,
                Err(_) => Err(format!(
                    "no answer within {}",
                    crate::tracker::gates::human(env.connect_timeout)
                )),
            };
            (redact(url), state)
        });
        futures::stream::iter(reads)
            .buffered(fleet.waves.parallelism.max(8))
            .collect()
            .await
    }

    /// Every target's state of plan `plan`, as [`Workspace::target_states`],
    /// or [`RunError::Refused`] naming each one that cannot be read ("…
    /// cannot be read, so `nothing`"): a command across the fleet starts
    /// only when it can see every database.
    pub(super) async fn readable_states(
        &self,
        env: &Environment,
        fleet: &Fleet,
        plan: &str,
        phases: usize,
        nothing: &str,
    ) -> Result<Vec<(String, PlanState)>, RunError> {
        let states = self.target_states(env, fleet, plan, phases).await;
        let mut read = Vec::with_capacity(states.len());
        let mut unreadable = Vec::new();
        for (db, s) in states {
            match s {
                Ok(s) => read.push((db, s)),
                Err(e) => unreadable.push(format!("{db}: {e}")),
            }
        }
        if !unreadable.is_empty() {
            return Err(RunError::Refused(format!(
                "{} of {} databases of {} cannot be read, so {nothing}: {}",
                unreadable.len(),
                fleet.targets.len(),
                env.name,
                unreadable.join("; ")
            )));
        }
        Ok(read)
    }

    /// `phasegate apply` on a fleet: the fleet's phase (the lowest any
    /// target has still to apply) rolled across its targets in waves
    /// ([`crate::config::Waves::plan`]), skipping targets at that phase already. A target
    /// that fails or is held back stops the rollout (its wave's running
    /// targets finish; the report names it); `waves.pause` stops after
    /// each wave that ran something. [`RunError::NothingToDo`] when every
    /// target has completed the plan; a target that cannot be read is an
    /// error before any wave starts.
    pub async fn apply_fleet(
        &self,
        env_name: &str,
        target: &str,
        dry_run: bool,
    ) -> Result<FleetApplied, RunError> {
        let started = Instant::now();
        let (env, fleet) = self.fleet(env_name)?;
        let loaded = self.load(target)?;
        // The canary's plan gives the phases (each target plans its own
        // steps under its lock, from its own schema).
        let first = env.on_target(&fleet.targets[0]);
        let plan = self.plan_live(&loaded, &first).await?;
        let phases = plan.phases.len();
        let states = self
            .readable_states(env, fleet, &plan.name, phases, "no wave started")
            .await?;
        let nexts: Vec<Next> = states.iter().map(|(_, s)| s.next()).collect();
        let Some(phase) = nexts
            .iter()
            .filter_map(|n| match n {
                Next::Apply(k) | Next::Deploy(k) => Some(*k),
                Next::Complete => None,
            })
            .min()
        else {
            return Err(RunError::NothingToDo(format!(
                "{} is complete in every database of {env_name} ({}): nothing to do",
                loaded.label,
                fleet.targets.len()
            )));
        };
        let app: Vec<String> = plan
            .phase_steps(&plan.phases[phase - 1])
            .filter(|s| s.kind == StepKind::App)
            .map(|s| s.description.clone())
            .collect();
        let todo: Vec<bool> = nexts.iter().map(|n| *n == Next::Apply(phase)).collect();
        let waves = fleet.waves.plan(fleet.targets.len());
        let wave_of = |i: usize| waves.iter().position(|w| w.contains(&i)).unwrap_or(0) + 1;
        let mut results: Vec<TargetApplied> = fleet
            .targets
            .iter()
            .enumerate()
            .map(|(i, url)| TargetApplied {
                index: i + 1,
                database: redact(url),
                wave: wave_of(i),
                outcome: if todo[i] {
                    TargetOutcome::NotStarted
                } else {
                    TargetOutcome::AtPhase
                },
                ran: Vec::new(),
                skipped: Vec::new(),
                seconds: None,
                error: None,
            })
            .collect();
        let mut report = FleetApplied {
            plan: plan.name.clone(),
            env: env.name.clone(),
            phase,
            phases,
            targets: fleet.targets.len(),
            at_phase: 0,
            waves: waves.len(),
            last_wave: 0,
            deployed: app.is_empty(),
            app,
            stopped: None,
            results: Vec::new(),
            seconds: 0.0,
            dry_run: None,
        };
        if dry_run {
            if let Some(i) = todo.iter().position(|t| *t) {
                let one = self
                    .apply_on(
                        &env.on_target(&fleet.targets[i]),
                        &loaded,
                        true,
                        Some(phase),
                    )
                    .await?;
                report.dry_run = one.dry_run;
            }
            report.at_phase = todo.iter().filter(|t| !**t).count();
            report.results = results;
            report.seconds = started.elapsed().as_secs_f64();
            return Ok(report);
        }
        for (w, range) in waves.iter().enumerate() {
            let members: Vec<usize> = range.clone().filter(|i| todo[*i]).collect();
            if members.is_empty() {
                continue;
            }
            report.last_wave = w + 1;
            let ran = self.run_wave(env, fleet, &loaded, phase, &members).await;
            for (i, r) in ran {
                results[i] = TargetApplied { wave: w + 1, ..r };
            }
            let stop = results
                .iter()
                .find(|r| matches!(r.outcome, TargetOutcome::Failed | TargetOutcome::Blocked));
            if let Some(r) = stop {
                let (index, database, error) = (
                    r.index,
                    r.database.clone(),
                    r.error.clone().unwrap_or_default(),
                );
                report.stopped = Some(if r.outcome == TargetOutcome::Failed {
                    FleetStop::Failed {
                        index,
                        database,
                        error,
                    }
                } else {
                    FleetStop::Blocked {
                        index,
                        database,
                        error,
                    }
                });
                break;
            }
            let left = waves[w + 1..]
                .iter()
                .any(|later| later.clone().any(|i| todo[i]));
            if fleet.waves.pause && left {
                report.stopped = Some(FleetStop::Paused { after_wave: w + 1 });
                break;
            }
        }
        report.at_phase = results
            .iter()
            .filter(|r| matches!(r.outcome, TargetOutcome::Applied | TargetOutcome::AtPhase))
            .count();
        report.results = results;
        report.seconds = started.elapsed().as_secs_f64();
        Ok(report)
    }

    /// Runs `members` (target indices) of one wave, at most
    /// `waves.parallelism` at a time; once one fails or is held back, the
    /// ones not yet started are left [`TargetOutcome::NotStarted`]. Long
    /// steps report progress only when the wave runs one target at a time.
    async fn run_wave(
        &self,
        env: &Environment,
        fleet: &Fleet,
        loaded: &LoadedPlan,
        phase: usize,
        members: &[usize],
    ) -> Vec<(usize, TargetApplied)> {
        let stop = AtomicBool::new(false);
        let parallelism = fleet.waves.parallelism.max(1);
        let runs = members.iter().map(|&i| {
            let stop = &stop;
            async move {
                let url = &fleet.targets[i];
                let mut r = TargetApplied {
                    index: i + 1,
                    database: redact(url),
                    wave: 0,
                    outcome: TargetOutcome::NotStarted,
                    ran: Vec::new(),
                    skipped: Vec::new(),
                    seconds: None,
                    error: None,
                };
                if stop.load(Ordering::SeqCst) {
                    return (i, r);
                }
                let mut ws = self.on_target(url);
                if parallelism > 1 && members.len() > 1 {
                    ws.progress = &NoProgress;
                }
                let began = Instant::now();
                let result = ws
                    .apply_on(&env.on_target(url), loaded, false, Some(phase))
                    .await;
                r.seconds = Some(began.elapsed().as_secs_f64());
                match result {
                    Ok(a) => {
                        r.outcome = TargetOutcome::Applied;
                        r.ran = a.ran;
                        r.skipped = a.skipped;
                    }
                    // Another run got it there meanwhile.
                    Err(RunError::NothingToDo(_)) => r.outcome = TargetOutcome::AtPhase,
                    Err(RunError::Waiting(w)) if w.phase >= phase => {
                        r.outcome = TargetOutcome::AtPhase;
                    }
                    Err(e @ (RunError::Blocked(_) | RunError::Refused(_))) => {
                        stop.store(true, Ordering::SeqCst);
                        r.outcome = TargetOutcome::Blocked;
                        r.error = Some(one_database(&e, &r.database));
                    }
                    Err(e) => {
                        stop.store(true, Ordering::SeqCst);
                        r.outcome = TargetOutcome::Failed;
                        r.error = Some(one_database(&e, &r.database));
                    }
                }
                (i, r)
            }
        });
        futures::stream::iter(runs)
            .buffer_unordered(parallelism)
            .collect()
            .await
    }

    /// `phasegate mark` on a fleet: records phase `phase`'s app deploy in
    /// every target, once every target has applied the phase (otherwise
    /// [`RunError::Refused`] naming the ones that have not, and nothing is
    /// recorded). Returns each target's database and what happened there
    /// (`Ok(true)` recorded now, `Ok(false)` marked already, `Err` why not).
    pub async fn mark_fleet(
        &self,
        env_name: &str,
        target: &str,
        phase: usize,
        app_version: &str,
    ) -> Result<Vec<(String, Result<bool, String>)>, RunError> {
        let (env, fleet) = self.fleet(env_name)?;
        let loaded = self.load(target)?;
        let first = env.on_target(&fleet.targets[0]);
        let plan = self.plan_live(&loaded, &first).await?;
        super::check_phase(&plan, phase)?;
        let states = self
            .target_states(env, fleet, &plan.name, plan.phases.len())
            .await;
        let behind: Vec<String> = states
            .iter()
            .filter_map(|(db, s)| match s {
                Err(e) => Some(format!("{db} (cannot be read: {e})")),
                Ok(s) => match s.phase(phase).map(|r| r.status) {
                    Some(PhaseStatus::Migrated | PhaseStatus::Deployed) => None,
                    other => Some(format!(
                        "{db} (phase {phase} is {} there)",
                        other.unwrap_or(PhaseStatus::Pending)
                    )),
                },
            })
            .collect();
        let app_only = plan
            .phase_steps(&plan.phases[phase - 1])
            .all(|s| s.kind == StepKind::App);
        if !behind.is_empty() && !app_only {
            return Err(RunError::Refused(format!(
                "{} of {} databases of {env_name} have not applied phase {phase}, so its app code cannot be marked deployed: {}; run `phasegate apply --env {env_name} {}` first",
                behind.len(),
                fleet.targets.len(),
                behind.join(", "),
                loaded.label
            )));
        }
        let mut out = Vec::new();
        for url in &fleet.targets {
            let ws = self.on_target(url);
            let r = match ws.mark(env_name, target, phase, app_version).await {
                Ok(_) => Ok(true),
                Err(RunError::NothingToDo(_)) => Ok(false),
                Err(e) => Err(e.to_string()),
            };
            out.push((redact(url), r));
        }
        Ok(out)
    }

    /// `phasegate gate` on a fleet: the gates of its database furthest
    /// behind on the plan (the one the rollout waits for), with a `fleet`
    /// gate, held, saying how many databases are at which phase. A
    /// database that cannot be read is the error.
    pub(super) async fn gate_fleet(
        &self,
        env: &Environment,
        fleet: &Fleet,
        target: &str,
    ) -> Result<crate::tracker::gates::Verdict, RunError> {
        let loaded = self.load(target)?;
        let plan = self
            .plan_live(&loaded, &env.on_target(&fleet.targets[0]))
            .await?;
        let states = self
            .target_states(env, fleet, &plan.name, plan.phases.len())
            .await;
        let mut read = Vec::with_capacity(states.len());
        for (i, (db, s)) in states.into_iter().enumerate() {
            match s {
                Ok(s) => read.push((i, s)),
                Err(e) => {
                    return Err(RunError::Refused(format!(
                        "database {db} of {} cannot be read: {e}",
                        env.name
                    )));
                }
            }
        }
        let all: Vec<&PlanState> = read.iter().map(|(_, s)| s).collect();
        let (n, k) = at_phase(&all);
        let Some((i, _)) = furthest_of(read.iter().map(|(i, s)| (*i, s.clone()))) else {
            return Err(RunError::Invalid(format!("{} has no database", env.name)));
        };
        let url = &fleet.targets[i];
        let mut verdict =
            self.on_target(url)
                .gate(&env.name, target)
                .await
                .map_err(|e| match e {
                    RunError::Blocked(_) | RunError::Waiting(_) | RunError::NothingToDo(_) => e,
                    other => RunError::Target {
                        database: redact(url),
                        source: Box::new(other),
                    },
                })?;
        verdict.gates.push(crate::tracker::gates::Gate {
            name: "fleet",
            held: true,
            reason: format!(
                "{n} of {} databases at phase {k}; these gates are those of {}, the furthest behind",
                fleet.targets.len(),
                redact(url)
            ),
        });
        Ok(verdict)
    }

    /// The state of plan `plan` in the environment `prev` for the
    /// promotion gate of the one after it: for a fleet, the target
    /// furthest behind (each target must complete a phase before the next
    /// environment may start it), named with its database and how many
    /// targets there are; a target that cannot be read is the error.
    pub(super) async fn furthest_behind(
        &self,
        prev: &Environment,
        fleet: &Fleet,
        plan: &str,
        phases: usize,
    ) -> (String, Result<PlanState, String>) {
        let states = self.target_states(prev, fleet, plan, phases).await;
        let total = states.len();
        let mut read = Vec::with_capacity(total);
        for (db, s) in states {
            match s {
                Ok(s) => read.push((db, s)),
                Err(e) => {
                    return (
                        format!("{} (database {db}, one of {total})", prev.name),
                        Err(e),
                    );
                }
            }
        }
        match furthest_of(read) {
            Some((db, s)) => (behind_name(&prev.name, &db, total), Ok(s)),
            None => (prev.name.clone(), Err("a fleet of no database".into())),
        }
    }
}

/// A database's error in a fleet's report: its text, and, when it names
/// commands to run (`phasegate resolve …`), that they take `--database` for
/// this database alone.
pub(crate) fn one_database(e: &RunError, database: &str) -> String {
    let text = e.to_string();
    if text.contains("phasegate ") {
        format!(
            "{text} (run the phasegate commands above with `--database {database}`: this database alone)"
        )
    } else {
        text
    }
}

/// How the promotion gate names a fleet by its target furthest behind.
pub(crate) fn behind_name(env: &str, database: &str, total: usize) -> String {
    format!("{env} (database {database}, the furthest behind of its {total})")
}

/// Of `(database, state)` pairs, the one furthest behind (the first on a
/// tie): fewest phases deployed, then a phase still to apply before one
/// waiting for its deploy.
pub(crate) fn furthest_of<T>(
    states: impl IntoIterator<Item = (T, PlanState)>,
) -> Option<(T, PlanState)> {
    let key = |s: &PlanState| rank((s.deployed_count(), s.next()));
    let mut worst: Option<(T, PlanState)> = None;
    for (t, s) in states {
        if worst.as_ref().is_none_or(|(_, w)| key(&s) < key(w)) {
            worst = Some((t, s));
        }
    }
    worst
}

/// Orders targets by how far they are: phases deployed, then a migrated
/// phase ahead of a pending one.
fn rank((deployed, next): (usize, Next)) -> (usize, u8) {
    (
        deployed,
        match next {
            Next::Apply(_) => 0,
            Next::Deploy(_) => 1,
            Next::Complete => 2,
        },
    )
}

/// Where a fleet stands on one plan: "N of M targets at phase k", k the
/// highest phase any target has applied (1 when none has), N the targets
/// that have applied it (migrated or deployed).
pub fn at_phase(states: &[&PlanState]) -> (usize, usize) {
    let reached = |s: &PlanState| {
        s.phases
            .iter()
            .take_while(|p| matches!(p.status, PhaseStatus::Migrated | PhaseStatus::Deployed))
            .count()
    };
    let k = states.iter().map(|s| reached(s)).max().unwrap_or(0).max(1);
    let n = states.iter().filter(|s| reached(s) >= k).count();
    (n, k)
}
