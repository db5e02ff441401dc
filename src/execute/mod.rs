//! Execution: running plans against environments, under the tracker's lock
//! and gates. This is the layer the CLI's `apply`, `mark`, `rollback`,
//! `approve`, `backup`, `gate`, `status`, `history`, `accept-change` and
//! `resolve` call; a CD pipeline or a test can call it the same way.

mod backfill;
mod send;
pub mod steps;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::catalog::Catalog;
use crate::config::{Config, ConfigError, Environment};
use crate::dialect::Dialect;
use crate::dialect::templates::{TemplateError, Templates};
use crate::intent::{PlanError, PlanFile, PlanNotFound};
use crate::plan::Step;
use crate::plan::{Plan, Planner, PlanningError, StepKind};
use crate::tracker::gates::human;
use crate::tracker::gates::{self, Gate, GateContext, Verdict, VerifyOutcome};
use crate::tracker::{
    Checkpoint, Clock, Event, EventKind, NewEvent, Next, PhaseStatus, PlanState, Store,
    TrackerError, derive, interrupted_elsewhere, plan_events,
};

pub use steps::StepError;

/// Why a command could not do what it was asked.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    NotFound(#[from] PlanNotFound),
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error(transparent)]
    Templates(#[from] TemplateError),
    #[error("{plan}: {source}")]
    Planning { plan: String, source: PlanningError },
    #[error(transparent)]
    Tracker(#[from] TrackerError),
    #[error("reading the live schema: {0}")]
    Catalog(#[from] crate::catalog::CatalogError),
    #[error(transparent)]
    Step(#[from] StepError),
    /// A gate holds the step back; the verdict says which and why.
    #[error("blocked: {}", .0.blocked().map(|g| format!("{}: {}", g.name, g.reason)).collect::<Vec<_>>().join("; "))]
    Blocked(Box<Verdict>),
    /// The command does not apply to the plan's state (with what to do instead).
    #[error("{0}")]
    Refused(String),
    #[error("backup command failed: {0}")]
    Backup(String),
}

impl RunError {
    /// 1 when a gate or a rule refused the step (try again later, or do
    /// something else first); 2 for every error.
    pub fn exit_code(&self) -> u8 {
        match self {
            RunError::Blocked(_) | RunError::Refused(_) => 1,
            _ => 2,
        }
    }
}

/// A plan as loaded for a run: the file, its text, its label in messages.
#[derive(Debug, Clone)]
pub struct LoadedPlan {
    pub file: PlanFile,
    pub text: String,
    /// How the user named it (path or name), for commands in messages.
    pub label: String,
}

/// A plan made for an environment, with the schema it was made against.
#[derive(Debug, Clone)]
pub struct LivePlan {
    pub plan: Plan,
    pub catalog: Catalog,
}

impl std::ops::Deref for LivePlan {
    type Target = Plan;
    fn deref(&self) -> &Plan {
        &self.plan
    }
}

/// What `resolve` recorded, and so what the next `apply` does with the step.
#[derive(Debug, Clone, Serialize)]
pub struct Resolution {
    pub plan: String,
    pub env: String,
    pub step: String,
    pub phase: usize,
    /// Recorded as applied (the next apply skips it) or not (it runs again).
    pub applied: bool,
    /// The step had started and never finished (rather than failed).
    pub interrupted: bool,
    /// For a backfill recorded as not applied: where the rerun resumes.
    pub checkpoint: Option<Checkpoint>,
}

/// What `apply` did.
#[derive(Debug, Clone, Serialize)]
pub struct Applied {
    pub plan: String,
    pub env: String,
    pub phase: usize,
    pub phases: usize,
    /// Steps run now, in order.
    pub ran: Vec<String>,
    /// Steps skipped because an earlier, interrupted run completed them.
    pub skipped: Vec<String>,
    /// True when the phase has no app stage, so it went straight to deployed.
    pub deployed: bool,
    /// What the application must ship now (empty when `deployed`).
    pub app: Vec<String>,
    pub gates: Vec<Gate>,
    /// For `--dry-run`: the SQL that would run, in order.
    pub dry_run: Option<Vec<String>>,
}

/// One environment as `status` sees it.
#[derive(Debug, Clone, Serialize)]
pub struct EnvStatus {
    pub env: String,
    /// `None` when reachable; otherwise why not.
    pub unreachable: Option<String>,
    pub plans: Vec<PlanStatus>,
}

#[derive(Debug, Clone, Serialize)]
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

/// Where a long step reports how far it got. The library never prints; the
/// binary draws a progress bar on a terminal and plain lines otherwise.
pub trait Progress: Send + Sync {
    /// A step is about to run.
    fn step(&self, _step: &Step) {}
    /// A backfill has updated `updated` rows of about `total`.
    fn backfill(&self, _step: &Step, _updated: u64, _total: Option<u64>) {}
}

/// Reports nothing.
pub struct NoProgress;

impl Progress for NoProgress {}

/// What a step needs to know while it runs.
pub(crate) struct StepContext<'a> {
    pub plan: &'a str,
    pub phase: usize,
    pub env: &'a Environment,
    pub clock: &'a dyn Clock,
    pub actor: &'a str,
    pub progress: &'a dyn Progress,
    /// Where an interrupted backfill of this step stopped.
    pub checkpoint: Option<&'a Checkpoint>,
}

/// A project: its config, plans and templates, and the clock and actor to record with.
pub struct Workspace<'a> {
    pub config: &'a Config,
    pub clock: &'a dyn Clock,
    /// Who is recorded as doing things (the OS user unless told otherwise).
    pub actor: String,
    pub progress: &'a dyn Progress,
}

impl<'a> Workspace<'a> {
    pub fn new(config: &'a Config, clock: &'a dyn Clock, actor: impl Into<String>) -> Self {
        Workspace {
            config,
            clock,
            actor: actor.into(),
            progress: &NoProgress,
        }
    }

    /// Reports the progress of long steps to `progress`.
    pub fn with_progress(mut self, progress: &'a dyn Progress) -> Self {
        self.progress = progress;
        self
    }

    /// Loads a plan by path or by name under the project's plans/.
    pub fn load(&self, target: &str) -> Result<LoadedPlan, RunError> {
        let path = crate::intent::locate_plan(&self.config.plans_dir(), target)?;
        let file = crate::intent::load_plan(&path)?;
        let text = file.source.clone().unwrap_or_default();
        Ok(LoadedPlan {
            file,
            text,
            label: target.to_string(),
        })
    }

    /// Plans `plan` with `catalog`; `started`: the plan has started in the
    /// environment (see [`Planner::started`]).
    fn plan_with(
        &self,
        plan: &LoadedPlan,
        dialect: Dialect,
        catalog: &Catalog,
        started: bool,
    ) -> Result<Plan, RunError> {
        let templates = Templates::with_overrides(dialect, &self.config.root.join("templates"))?;
        let planner = Planner::new(&templates, catalog);
        let planner = if started { planner.started() } else { planner };
        planner
            .plan(&plan.file)
            .map_err(|source| RunError::Planning {
                plan: plan.label.clone(),
                source,
            })
    }

    /// Plans `plan` for `env`. A plan that has not started there is made
    /// against the live schema and server version, after checking every
    /// change against that schema (no such column, column already there);
    /// the schema is recorded when the plan starts. A plan that has started is
    /// made against that recorded schema, so later phases are the ones that
    /// were reviewed, not ones re-derived from a schema the earlier phases
    /// changed.
    pub async fn plan_live(
        &self,
        plan: &LoadedPlan,
        env: &Environment,
    ) -> Result<LivePlan, RunError> {
        let mut store = self.open_read_only(env).await?;
        let events = store.events(Some(&plan.file.name)).await;
        store.close().await;
        let events = events?;
        if events.iter().any(|e| e.plan.is_some()) {
            let state = derive(&events, 0);
            if let Some(catalog) = state
                .catalog
                .as_deref()
                .and_then(|c| serde_json::from_str::<Catalog>(c).ok())
            {
                return Ok(LivePlan {
                    plan: self.plan_with(plan, env.dialect, &catalog, true)?,
                    catalog,
                });
            }
            // Started by a phasegate that did not record the schema: plan live.
            let catalog = self.read_catalog(env, &[plan]).await?;
            return Ok(LivePlan {
                plan: self.plan_with(plan, env.dialect, &catalog, true)?,
                catalog,
            });
        }
        let catalog = self.read_catalog(env, &[plan]).await?;
        crate::plan::validate_against(&plan.file, &catalog).map_err(|source| {
            RunError::Planning {
                plan: plan.label.clone(),
                source,
            }
        })?;
        Ok(LivePlan {
            plan: self.plan_with(plan, env.dialect, &catalog, false)?,
            catalog,
        })
    }

    /// `phasegate plan --env E`: the plan as `apply` would run it there.
    pub async fn plan_against(&self, env: &str, target: &str) -> Result<Plan, RunError> {
        let env = self.env(env)?;
        let loaded = self.load(target)?;
        Ok(self.plan_live(&loaded, env).await?.plan)
    }

    /// The live schema of every table the plans touch.
    async fn read_catalog(
        &self,
        env: &Environment,
        plans: &[&LoadedPlan],
    ) -> Result<Catalog, RunError> {
        let mut tables = Vec::new();
        for p in plans {
            for t in crate::plan::tables_touched(&p.file) {
                if !tables.contains(&t) {
                    tables.push(t);
                }
            }
        }
        Ok(Catalog::read_with_timeout(&env.database_url, &tables, env.connect_timeout).await?)
    }

    fn env(&self, name: &str) -> Result<&'a Environment, RunError> {
        Ok(self.config.environment(name)?)
    }

    async fn open(&self, env: &Environment) -> Result<Store, RunError> {
        Ok(Store::open(
            &env.name,
            &env.database_url,
            env.dialect,
            env.connect_timeout,
        )
        .await?)
    }

    /// For commands that only read: creates nothing in the database.
    async fn open_read_only(&self, env: &Environment) -> Result<Store, RunError> {
        Ok(Store::open_read_only(
            &env.name,
            &env.database_url,
            env.dialect,
            env.connect_timeout,
        )
        .await?)
    }

    /// The plan's state in the environment promoted from, or why it cannot be read.
    async fn previous_state(
        &self,
        env: &Environment,
        plan: &Plan,
    ) -> Option<(String, Result<PlanState, String>)> {
        let prev = self.config.previous(&env.name)?;
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
        Some((prev.name.clone(), state))
    }

    /// Evaluates every gate for the plan's next step, as `apply` would, from
    /// `all` the environment's events (other plans' interrupted steps hold
    /// this one too).
    async fn judge(
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
        let previous = self.previous_state(env, plan).await;
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
        let env = self.env(env)?;
        let loaded = self.load(target)?;
        let plan = self.plan_live(&loaded, env).await?;
        let mut store = self.open(env).await?;
        let events = store.events(None).await?;
        let (_, verdict) = self
            .judge(&mut store, env, &plan, &loaded, &events, None)
            .await?;
        store.close().await;
        Ok(verdict)
    }

    /// `phasegate apply`: runs the next phase's migrations in `env`, if its gates hold.
    pub async fn apply(&self, env: &str, target: &str, dry_run: bool) -> Result<Applied, RunError> {
        let env = self.env(env)?;
        let loaded = self.load(target)?;
        let plan = self.plan_live(&loaded, env).await?;
        let mut store = self.open(env).await?;
        store.lock(env.lock_wait).await?;
        let result = self
            .apply_locked(&mut store, env, &plan, &loaded, dry_run)
            .await;
        store.unlock().await;
        store.close().await;
        result
    }

    async fn apply_locked(
        &self,
        store: &mut Store,
        env: &Environment,
        plan: &LivePlan,
        loaded: &LoadedPlan,
        dry_run: bool,
    ) -> Result<Applied, RunError> {
        let events = store.events(None).await?;
        let (state, verdict) = self.judge(store, env, plan, loaded, &events, None).await?;
        let phase_no = match state.next() {
            Next::Complete => {
                return Err(RunError::Refused(format!(
                    "{} is complete in {}: every phase is deployed",
                    loaded.label, env.name
                )));
            }
            Next::Deploy(_) => return Err(RunError::Blocked(Box::new(verdict))),
            Next::Apply(n) => n,
        };
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
            report.dry_run = Some(sql);
            return Ok(report);
        }

        store.set_lock_wait(env.lock_timeout).await?;
        if state.checksum.is_none() {
            let detail = started_detail(plan, loaded);
            let started = NewEvent::plan(&plan.name, EventKind::PlanStarted).detail(detail);
            // SQLite: the application may hold the write lock; give way like a step does.
            let mut attempt = 0;
            loop {
                match store.append(&started, self.clock.now(), &self.actor).await {
                    Ok(()) => break,
                    Err(TrackerError::Database { source, .. })
                        if crate::tracker::is_busy(&source) =>
                    {
                        if attempt >= env.lock_retries {
                            return Err(TrackerError::WriteLocked {
                                env: env.name.clone(),
                                lock_timeout: env.lock_timeout,
                                attempts: attempt + 1,
                            }
                            .into());
                        }
                        attempt += 1;
                        tokio::time::sleep(send::backoff(attempt)).await;
                    }
                    Err(e) => return Err(e.into()),
                }
            }
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
        let mut events = vec![NewEvent::plan(&plan.name, EventKind::PhaseMigrated).phase(phase_no)];
        if report.deployed {
            events.push(NewEvent::plan(&plan.name, EventKind::PhaseDeployed).phase(phase_no));
        }
        self.record(store, &events, now).await?;
        Ok(report)
    }

    /// Appends events in one transaction.
    async fn record(
        &self,
        store: &mut Store,
        events: &[NewEvent],
        at: DateTime<Utc>,
    ) -> Result<(), RunError> {
        store.begin().await?;
        for e in events {
            if let Err(err) = store.append(e, at, &self.actor).await {
                store.rollback().await;
                return Err(err.into());
            }
        }
        Ok(store.commit().await?)
    }
}

impl Workspace<'_> {
    /// Runs `body` holding the environment's lock (and, on SQLite, its write
    /// transaction), with the plan's events read under it.
    async fn locked<T>(
        &self,
        env: &Environment,
        plan_name: Option<&str>,
        body: impl AsyncFnOnce(&mut Store, Vec<Event>) -> Result<T, RunError>,
    ) -> Result<T, RunError> {
        let mut store = self.open(env).await?;
        store.lock(env.lock_wait).await?;
        let result = async {
            store.set_lock_wait(env.lock_timeout).await?;
            let events = store.events(plan_name).await?;
            body(&mut store, events).await
        }
        .await;
        store.unlock().await;
        store.close().await;
        result
    }

    /// `phasegate mark`: records that phase `phase`'s app code is deployed.
    pub async fn mark(
        &self,
        env: &str,
        target: &str,
        phase: usize,
        app_version: &str,
    ) -> Result<Verdict, RunError> {
        let env = self.env(env)?;
        let loaded = self.load(target)?;
        let plan = self.plan_live(&loaded, env).await?;
        check_phase(&plan, phase)?;
        // Every plan's events: the gates look at other plans' interrupted steps.
        self.locked(env, None, async |store, events| {
            let state = derive(&plan_events(&events, &plan.name), plan.phases.len());
            let app_only = plan.phase_steps(&plan.phases[phase - 1]).all(|s| s.kind == StepKind::App);
            match state.next() {
                Next::Deploy(n) if n == phase => {}
                Next::Apply(n) if n == phase && app_only => {}
                Next::Apply(n) if n == phase => {
                    return Err(RunError::Refused(format!(
                        "phase {phase} has migrations that have not run in {}: `phasegate apply --env {} {}` first",
                        env.name, env.name, loaded.label
                    )));
                }
                Next::Complete => {
                    return Err(RunError::Refused(format!("{} is complete in {}", loaded.label, env.name)));
                }
                Next::Deploy(n) | Next::Apply(n) => {
                    let status = state.phase(phase).map_or(PhaseStatus::Pending, |r| r.status);
                    return Err(RunError::Refused(format!(
                        "phase {phase} is {status} in {}; the phase to deploy and mark next is {n}",
                        env.name
                    )));
                }
            }
            let (state, verdict) = self.judge(store, env, &plan, &loaded, &events, Some(phase)).await?;
            if !verdict.may_proceed() {
                return Err(RunError::Blocked(Box::new(verdict)));
            }
            let now = self.clock.now();
            let mut events = Vec::new();
            if state.checksum.is_none() {
                let detail = started_detail(&plan, &loaded);
                events.push(NewEvent::plan(&plan.name, EventKind::PlanStarted).detail(detail));
            }
            if state.phase(phase).is_some_and(|r| r.status < PhaseStatus::Migrated) {
                events.push(NewEvent::plan(&plan.name, EventKind::PhaseMigrated).phase(phase));
            }
            events.push(NewEvent::plan(&plan.name, EventKind::PhaseDeployed).phase(phase).detail(app_version));
            self.record(store, &events, now).await?;
            Ok(verdict)
        })
        .await
    }

    /// `phasegate rollback`: undoes the latest phase that ran, if it can be undone.
    pub async fn rollback(
        &self,
        env: &str,
        target: &str,
        app_reverted: bool,
    ) -> Result<usize, RunError> {
        let env = self.env(env)?;
        let loaded = self.load(target)?;
        let plan = self.plan_live(&loaded, env).await?;
        self.locked(env, Some(&plan.name), async |store, events| {
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

    /// `phasegate approve`: records an approval of phase `phase`.
    pub async fn approve(
        &self,
        env: &str,
        target: &str,
        phase: usize,
        by: &str,
    ) -> Result<(), RunError> {
        let env = self.env(env)?;
        let loaded = self.load(target)?;
        let plan = self.plan_live(&loaded, env).await?;
        check_phase(&plan, phase)?;
        self.locked(env, Some(&plan.name), async |store, _| {
            store
                .append(
                    &NewEvent::plan(&plan.name, EventKind::Approved).phase(phase),
                    self.clock.now(),
                    by,
                )
                .await?;
            Ok(())
        })
        .await
    }

    /// `phasegate backup`: runs the environment's `backup_command` if it has
    /// one, then records where the backup went. Returns that location.
    pub async fn backup(&self, env: &str, location: Option<&str>) -> Result<String, RunError> {
        let env = self.env(env)?;
        let location = match (&env.backup_command, location) {
            (Some(cmd), given) => {
                let out = tokio::process::Command::new("sh")
                    .arg("-c")
                    .arg(cmd)
                    .env("PHASEGATE_ENV", &env.name)
                    .env("PHASEGATE_DATABASE_URL", &env.database_url)
                    .current_dir(&self.config.root)
                    .output()
                    .await
                    .map_err(|e| RunError::Backup(format!("cannot run `{cmd}`: {e}")))?;
                if !out.status.success() {
                    return Err(RunError::Backup(format!(
                        "`{cmd}` exited with {}: {}",
                        out.status,
                        String::from_utf8_lossy(&out.stderr).trim()
                    )));
                }
                let printed = String::from_utf8_lossy(&out.stdout);
                given
                    .map(str::to_string)
                    .or_else(|| {
                        printed
                            .lines()
                            .rev()
                            .find(|l| !l.trim().is_empty())
                            .map(|l| l.trim().to_string())
                    })
                    .unwrap_or_else(|| format!("taken by `{cmd}`"))
            }
            (None, Some(given)) => given.to_string(),
            (None, None) => {
                return Err(RunError::Refused(format!(
                    "{} has no backup_command: take the backup yourself and record it with --location",
                    env.name
                )));
            }
        };
        self.locked(env, None, async |store, _| {
            store
                .append(
                    &NewEvent {
                        plan: None,
                        kind: EventKind::Backup,
                        phase: None,
                        step: None,
                        detail: location.clone(),
                    },
                    self.clock.now(),
                    &self.actor,
                )
                .await?;
            Ok(location.clone())
        })
        .await
    }

    /// `phasegate accept-change`: records the edited plan as the one in force here.
    pub async fn accept_change(
        &self,
        env: &str,
        target: &str,
        reason: &str,
    ) -> Result<(), RunError> {
        let env = self.env(env)?;
        let loaded = self.load(target)?;
        let plan = self.plan_live(&loaded, env).await?;
        self.locked(env, Some(&plan.name), async |store, events| {
            let state = derive(&events, plan.phases.len());
            let now_sum = crate::tracker::checksum(&loaded.text);
            match &state.checksum {
                None => {
                    return Err(RunError::Refused(format!(
                        "{} has not started in {}: there is nothing to accept",
                        loaded.label, env.name
                    )));
                }
                Some(c) if *c == now_sum => {
                    return Err(RunError::Refused(format!(
                        "{} is unchanged since it started in {}",
                        loaded.label, env.name
                    )));
                }
                Some(_) => {}
            }
            let detail = serde_json::json!({
                "checksum": now_sum,
                "text": loaded.text,
                "reason": reason,
            })
            .to_string();
            store
                .append(
                    &NewEvent::plan(&plan.name, EventKind::ChangeAccepted).detail(detail),
                    self.clock.now(),
                    &self.actor,
                )
                .await?;
            Ok(())
        })
        .await
    }

    /// `phasegate resolve`: settles a step that failed or never finished, by hand.
    pub async fn resolve(
        &self,
        env: &str,
        target: &str,
        step: &str,
        applied: bool,
    ) -> Result<Resolution, RunError> {
        let env = self.env(env)?;
        let loaded = self.load(target)?;
        let plan = self.plan_live(&loaded, env).await?;
        self.locked(env, Some(&plan.name), async |store, events| {
            let state = derive(&events, plan.phases.len());
            let Some(o) = state.outstanding.iter().find(|o| o.step == step) else {
                let open: Vec<&str> = state.outstanding.iter().map(|o| o.step.as_str()).collect();
                return Err(RunError::Refused(format!(
                    "step {step} has nothing outstanding in {}{}",
                    env.name,
                    if open.is_empty() {
                        String::new()
                    } else {
                        format!(" (outstanding: {})", open.join(", "))
                    }
                )));
            };
            let event = NewEvent::plan(&plan.name, EventKind::StepResolved)
                .phase(o.phase)
                .step(step)
                .detail(if applied { "applied" } else { "not_applied" });
            store.append(&event, self.clock.now(), &self.actor).await?;
            Ok(Resolution {
                plan: plan.name.clone(),
                env: env.name.clone(),
                step: step.to_string(),
                phase: o.phase,
                applied,
                interrupted: o.error.is_none(),
                checkpoint: state.checkpoints.get(step).cloned(),
            })
        })
        .await
    }

    /// `phasegate verify`: runs the verification queries of the latest phase
    /// that ran (or of `phase`), reporting each.
    pub async fn verify(
        &self,
        env: &str,
        target: &str,
        phase: Option<usize>,
    ) -> Result<(usize, Vec<VerifyOutcome>), RunError> {
        let env = self.env(env)?;
        let loaded = self.load(target)?;
        let plan = self.plan_live(&loaded, env).await?;
        let mut store = self.open(env).await?;
        let events = store.events(Some(&plan.name)).await?;
        let state = derive(&events, plan.phases.len());
        let n = match phase.or(state.latest_started()) {
            Some(n) => n,
            None => {
                store.close().await;
                return Err(RunError::Refused(format!(
                    "no phase of {} has run in {}",
                    loaded.label, env.name
                )));
            }
        };
        check_phase(&plan, n)?;
        let steps: Vec<_> = plan.phase_steps(&plan.phases[n - 1]).collect();
        let outcomes = steps::verify_all(&mut store, &steps).await;
        store.close().await;
        Ok((n, outcomes))
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
                store.close().await;
                // Planned live, as apply would: the live schema can change a plan's phases.
                let catalog = self
                    .read_catalog(env, plan_refs)
                    .await
                    .map_err(|e| e.to_string())?;
                Ok((events?, catalog))
            };
            match tokio::time::timeout(env.connect_timeout, read).await {
                Ok(r) => r,
                Err(_) => Err(format!("no answer within {}", human(env.connect_timeout))),
            }
        });
        let logs: Vec<Result<(Vec<Event>, Catalog), String>> =
            futures::future::join_all(reads).await;
        let mut out = Vec::new();
        for (i, env) in envs.iter().enumerate() {
            if only.is_some_and(|o| o != env.name) {
                continue;
            }
            let (events, catalog) = match &logs[i] {
                Ok((e, c)) => (e, c),
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
                    let s = logs[p].as_ref().map(|(ev, _)| {
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
                };
                let verdict = gates::verdict(&ctx);
                let current = match state.next() {
                    Next::Apply(n) | Next::Deploy(n) => n,
                    Next::Complete => plan.phases.len(),
                };
                let record = state.phase(current);
                rows.push(PlanStatus {
                    plan: plan.name.clone(),
                    phases: plan.phases.len(),
                    deployed: state.deployed_count(),
                    phase: current,
                    state: record.map_or(PhaseStatus::Pending, |r| r.status),
                    since: record.and_then(|r| r.since),
                    next: state.next(),
                    blocked: verdict.blocked().cloned().collect(),
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

/// What `plan_started` records: the plan file's checksum and text (for the
/// drift gate) and the schema the plan was made against (for every later
/// phase).
fn started_detail(plan: &LivePlan, loaded: &LoadedPlan) -> String {
    serde_json::json!({
        "checksum": crate::tracker::checksum(&loaded.text),
        "text": loaded.text,
        "catalog": plan.catalog,
    })
    .to_string()
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

fn check_phase(plan: &Plan, phase: usize) -> Result<(), RunError> {
    if phase == 0 || phase > plan.phases.len() {
        return Err(RunError::Refused(format!(
            "{} has phases 1 to {}; there is no phase {phase}",
            plan.name,
            plan.phases.len()
        )));
    }
    Ok(())
}

fn backups(events: &[Event]) -> Vec<(DateTime<Utc>, String)> {
    events
        .iter()
        .filter(|e| e.kind == EventKind::Backup)
        .map(|e| (e.at, e.detail.clone()))
        .collect()
}
