//! Execution: running plans against environments, under the tracker's lock
//! and gates. This is the layer the CLI's `apply`, `mark`, `rollback`,
//! `approve`, `backup`, `gate`, `status`, `history`, `accept-change` and
//! `resolve` call; a CD pipeline or a test can call it the same way.
//!
//! This file holds the [`Workspace`], what every command shares (loading and
//! planning a plan, opening the tracker, holding the lock) and [`RunError`];
//! each command family has its own file: `apply.rs`, `rollback.rs`,
//! `records.rs` (`mark`, `approve`, `backup`, `accept-change`, `resolve`),
//! `gate.rs` (the gates, `gate`), `status.rs` (`status`, `history`,
//! `verify`) and `check.rs` (`check`). Running one step is `steps.rs`,
//! sending its SQL `send.rs`, a batched backfill `backfill.rs`
//! (`progress.rs`: what long steps report as they run); `session.rs` finds
//! an interrupted step
//! still running on the server, `presence.rs` checks that a step's objects
//! are in the catalog before `resolve --as applied` records it.

mod apply;
mod backfill;
mod cancel;
mod check;
mod children;
mod deadline;
mod drift;
mod exported;
mod fleet;
mod gate;
mod presence;
mod progress;
mod records;
mod rollback;
mod send;
mod session;
mod status;
pub mod steps;

pub use cancel::{cancel_running_statement, statement_running};
pub use children::end_children;
pub(crate) use send::concurrent_index;

use chrono::{DateTime, Utc};

use crate::catalog::Catalog;
use crate::config::{Config, ConfigError, Environment};
use crate::dialect::Dialect;
use crate::dialect::templates::{TemplateError, Templates};
use crate::intent::{PlanError, PlanFile, PlanNotFound};
use crate::plan::{Plan, Planner, PlanningError};
use crate::tracker::gates::Verdict;
use crate::tracker::{
    Checkpoint, Clock, Event, EventKind, NewEvent, Store, TrackerError, derive, plan_events,
};

pub use exported::ForExport;
pub use fleet::{
    FleetApplied, FleetRolledBack, FleetStop, RollbackOutcome, TargetApplied, TargetOutcome,
    TargetRolledBack, TargetState, at_phase,
};
pub use steps::StepError;

pub use apply::Applied;
pub use check::Check;
pub use progress::{
    BackfillProgress, EXACT_COUNT_LIMIT, LagReading, LockWait, NoProgress, Progress, ReplicaWait,
    RowCount, VacuumKind, VacuumWait,
};
pub use records::Resolution;
pub use status::{EnvStatus, FleetRow, PlanProblem, PlanStatus, TargetRow};

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
    /// Phase N's migrations ran; its app code must be deployed and marked
    /// before anything else can run.
    #[error("{0}")]
    Waiting(Box<Waiting>),
    /// Not a failure: what was asked is done already (the plan is complete,
    /// the phase is marked, the approval recorded). Nothing was recorded.
    #[error("{0}")]
    NothingToDo(String),
    /// The request cannot be right for this plan: a phase it does not have,
    /// an approval for a phase that needs none. The caller's mistake.
    #[error("{0}")]
    Invalid(String),
    #[error("backup command failed: {0}")]
    Backup(String),
    /// What happened on one database of a fleet (its URL, the password
    /// hidden); its exit code is the inner error's.
    #[error("in database {database}: {source}")]
    Target {
        database: String,
        source: Box<RunError>,
    },
}

impl RunError {
    /// The process exit code the error means (docs/workflow.md, "Exit
    /// codes"): 0 nothing to do; 1 a gate or a rule refused the step (try
    /// again later, or do what the reason says first); 3 waiting for the
    /// app deploy of a migrated phase; 2 for every error.
    pub fn exit_code(&self) -> u8 {
        match self {
            RunError::NothingToDo(_) => 0,
            RunError::Blocked(_) | RunError::Refused(_) => 1,
            RunError::Waiting(_) => 3,
            RunError::Target { source, .. } => source.exit_code(),
            _ => 2,
        }
    }
}

/// A plan whose next step is the app deploy of a phase whose migrations ran.
#[derive(Debug, Clone, PartialEq)]
pub struct Waiting {
    /// The phase to deploy and then mark.
    pub phase: usize,
    /// The app-code changes that phase ships.
    pub app: Vec<String>,
    /// How the user named the plan, for the `mark` command in the message.
    pub label: String,
    /// The gates as `gate` reports them (the order gate blocks on the deploy).
    pub verdict: Verdict,
}

impl std::fmt::Display for Waiting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "phase {} of {} is migrated in {}: deploy its app code, then `phasegate mark --env {} {} --phase {} --app-version <VERSION>`",
            self.phase,
            self.verdict.plan,
            self.verdict.env,
            self.verdict.env,
            self.label,
            self.phase
        )
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
    /// The environments of `phasegate.yaml`, in promotion order, when the
    /// plan was made: recorded when it starts (see [`started_detail`]).
    pub order: Vec<String>,
}

impl std::ops::Deref for LivePlan {
    type Target = Plan;
    fn deref(&self) -> &Plan {
        &self.plan
    }
}

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
    /// For a fleet environment: the one database of it a command works on
    /// (a URL of its `Fleet::targets`); see [`Workspace::on_target`].
    pub target: Option<String>,
}

impl<'a> Workspace<'a> {
    pub fn new(config: &'a Config, clock: &'a dyn Clock, actor: impl Into<String>) -> Self {
        Workspace {
            config,
            clock,
            actor: actor.into(),
            progress: &NoProgress,
            target: None,
        }
    }

    /// The same workspace working on one database of a fleet, `url` (one
    /// of its targets): every command then runs there as on an ordinary
    /// environment of the fleet's name and settings.
    pub fn on_target(&self, url: &str) -> Workspace<'a> {
        Workspace {
            config: self.config,
            clock: self.clock,
            actor: self.actor.clone(),
            progress: self.progress,
            target: Some(url.to_string()),
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
        let result = async {
            let mut events = store.events(Some(&plan.file.name)).await?;
            // Read-only commands do not take the lock: a run that starts the
            // plan between reading the log and reading the schema makes the
            // live check fail ("already has a column"). If the log moved
            // meanwhile, plan again from the log as it is now.
            for _ in 0..3 {
                let planned = self.plan_from(plan, env, &events).await;
                if planned.is_ok() {
                    return planned;
                }
                let now = store.events(Some(&plan.file.name)).await?;
                if now == events {
                    return planned;
                }
                events = now;
            }
            self.plan_from(plan, env, &events).await
        }
        .await;
        store.close().await;
        result
    }

    /// [`Workspace::plan_live`] from `events` already read (under the
    /// environment's lock, for the commands that act on the plan).
    async fn plan_from(
        &self,
        plan: &LoadedPlan,
        env: &Environment,
        events: &[Event],
    ) -> Result<LivePlan, RunError> {
        let order = self.order_now();
        let events = plan_events(events, &plan.file.name);
        if events.iter().any(|e| e.plan.is_some()) {
            let state = derive(&events, 0);
            // An edited plan that no longer plans is drift first.
            let drifted = |e: RunError| drift::unplannable_drift(e, &state, plan, env);
            if let Some(catalog) = state
                .catalog
                .as_deref()
                .and_then(|c| serde_json::from_str::<Catalog>(c).ok())
            {
                return Ok(LivePlan {
                    plan: self
                        .plan_with(plan, env.dialect, &catalog, true)
                        .map_err(drifted)?,
                    catalog,
                    order,
                });
            }
            // Started by a phasegate that did not record the schema: plan live.
            let catalog = self.read_catalog(env, &[plan]).await?;
            return Ok(LivePlan {
                plan: self
                    .plan_with(plan, env.dialect, &catalog, true)
                    .map_err(drifted)?,
                catalog,
                order,
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
            order,
        })
    }

    /// `phasegate plan --env E`: the plan as `apply` would run it there.
    pub async fn plan_against(&self, env: &str, target: &str) -> Result<Plan, RunError> {
        let env = self.env(env)?;
        let env = &*env;
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

    /// The environments of `phasegate.yaml`, in promotion order.
    fn order_now(&self) -> Vec<String> {
        self.config.names()
    }

    /// The environment a command works on: `name` from the config, or,
    /// for a fleet, the target this workspace is on ([`Workspace::on_target`]).
    /// A fleet without a target is [`RunError::Invalid`]: a command that
    /// does not run across a fleet must not act on one of its databases
    /// unasked.
    fn env(&self, name: &str) -> Result<std::borrow::Cow<'a, Environment>, RunError> {
        let env = self.config.environment(name)?;
        let Some(fleet) = &env.fleet else {
            return Ok(std::borrow::Cow::Borrowed(env));
        };
        match &self.target {
            Some(url) if fleet.targets.contains(url) => {
                Ok(std::borrow::Cow::Owned(env.on_target(url)))
            }
            Some(url) => Err(RunError::Invalid(format!(
                "{} is not a database of {name}",
                crate::catalog::redact(url)
            ))),
            None => Err(RunError::Invalid(format!(
                "{name} is a fleet of {} databases: this command works on one database; pick it with --database DB (apply, gate, mark, rollback and status run across the fleet)",
                fleet.targets.len()
            ))),
        }
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

    /// Opens the environment's tracker and takes its lock, refusing while a
    /// step interrupted there is still running on the server (see
    /// `session.rs`). A step another phasegate run is running right now
    /// looks the same from outside (its `step_started` recorded, its
    /// session busy), and this run must wait for that one, not refuse: the
    /// lock holder's presence (`tracker::presence`) tells them apart. When
    /// no live run holds the environment, a step found running is a killed
    /// run's leftover, refused at once; otherwise this run waits up to
    /// `lock_wait` for the lock and judges again under it.
    async fn open_locked(&self, env: &Environment) -> Result<Store, RunError> {
        let mut store = self.open(env).await?;
        let leftover = match self.leftover(&mut store, env).await {
            Ok(found) => found,
            Err(e) => {
                store.close().await;
                return Err(e);
            }
        };
        if let Some(why) = leftover {
            store.close().await;
            return Err(RunError::Refused(why));
        }
        if let Err(e) = store.lock(env.lock_wait).await {
            // The run waited for may have been killed meanwhile, its step
            // still running: say so rather than "busy", unless a live run
            // is known to hold the environment.
            let why = match session::refuse_if_running(&mut store, env).await {
                Err(RunError::Refused(why)) if store.holder_alive().await != Some(true) => {
                    Some(why)
                }
                _ => None,
            };
            store.close().await;
            return Err(why.map_or_else(|| e.into(), RunError::Refused));
        }
        if let Err(e) = session::refuse_if_running(&mut store, env).await {
            store.unlock().await;
            store.close().await;
            return Err(e);
        }
        Ok(store)
    }

    /// Before the lock: why this run must refuse at once, when a step
    /// recorded as started still runs on the server and no live run holds
    /// the environment (or that cannot be told: SQLite never has such a
    /// step, and a server that does not answer the presence probe is
    /// judged as before, under the lock).
    async fn leftover(
        &self,
        store: &mut Store,
        env: &Environment,
    ) -> Result<Option<String>, RunError> {
        match session::refuse_if_running(store, env).await {
            Err(RunError::Refused(why)) => match store.holder_alive().await {
                Some(false) => Ok(Some(why)),
                _ => Ok(None),
            },
            Err(other) => Err(other),
            Ok(()) => Ok(None),
        }
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

    /// Runs `body` holding the environment's lock, with the plan's events
    /// (or every event, for `plan_name` `None`) read under it.
    async fn locked<T>(
        &self,
        env: &Environment,
        plan_name: Option<&str>,
        body: impl AsyncFnOnce(&mut Store, Vec<Event>) -> Result<T, RunError>,
    ) -> Result<T, RunError> {
        let mut store = self.open_locked(env).await?;
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

    /// Runs `body` holding the environment's lock, with the plan made
    /// under it: the lock comes before the log and the live schema are read,
    /// so a run that waited for another finds what that run did, never a
    /// check made before it. `all_plans`: `body` gets every plan's events
    /// (the gates look at other plans' interrupted steps), else this plan's
    /// and the environment-wide ones.
    async fn locked_plan<T>(
        &self,
        env: &Environment,
        loaded: &LoadedPlan,
        all_plans: bool,
        body: impl AsyncFnOnce(&mut Store, LivePlan, Vec<Event>) -> Result<T, RunError>,
    ) -> Result<T, RunError> {
        self.locked(env, None, async |store, events| {
            let plan = self.plan_from(loaded, env, &events).await?;
            let events = if all_plans {
                events
            } else {
                plan_events(&events, &plan.name)
            };
            body(store, plan, events).await
        })
        .await
    }
}

/// What `plan_started` records: the plan file's checksum and text (for the
/// drift gate), the schema the plan was made against (for every later
/// phase), the promotion order (`environments`, for the promotion gate)
/// and every step's SQL as planned now (`steps`: what runs later must be
/// what was reviewed, see [`crate::tracker::pins`]), and the number of
/// phases (`phases`, read by the `phasegate_status` view).
fn started_detail(plan: &LivePlan, loaded: &LoadedPlan) -> String {
    serde_json::json!({
        "phases": plan.phases.len(),
        "checksum": crate::tracker::checksum(&loaded.text),
        "text": loaded.text,
        "catalog": plan.catalog,
        "environments": plan.order,
        "steps": crate::tracker::pins::pins(plan),
    })
    .to_string()
}

/// `plan_started` with its detail ([`started_detail`]), as `apply` and the
/// exported SQL record it.
pub(crate) fn plan_started(plan: &LivePlan, loaded: &LoadedPlan) -> NewEvent {
    NewEvent::plan(&plan.name, EventKind::PlanStarted).detail(started_detail(plan, loaded))
}

/// The event of `kind` about step `step` of phase `phase` (`step_started`,
/// `step_applied`, `step_rolled_back`, …), as `apply`, `rollback` and the
/// exported SQL (`crate::export`) record it.
pub(crate) fn step_event(plan: &str, phase: usize, step: &str, kind: EventKind) -> NewEvent {
    NewEvent::plan(plan, kind).phase(phase).step(step)
}

/// What records that phase `phase`'s migrations ran: `phase_migrated`, and
/// `phase_deployed` too when the phase has no app stage (`deployed`), as
/// `apply` and the exported SQL record it.
pub(crate) fn phase_done(plan: &str, phase: usize, deployed: bool) -> Vec<NewEvent> {
    let mut events = vec![NewEvent::plan(plan, EventKind::PhaseMigrated).phase(phase)];
    if deployed {
        events.push(NewEvent::plan(plan, EventKind::PhaseDeployed).phase(phase));
    }
    events
}

/// A phase number the plan has, or [`RunError::Invalid`] saying how many it has.
fn check_phase(plan: &Plan, phase: usize) -> Result<(), RunError> {
    let n = plan.phases.len();
    if phase == 0 || phase > n {
        return Err(RunError::Invalid(format!(
            "{} has {n} phase{}; there is no phase {phase} (phases are 1 to {n})",
            plan.name,
            if n == 1 { "" } else { "s" }
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
