//! The commands that read and record nothing: `status`, `history` and
//! `verify`.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::catalog::Catalog;
use crate::config::{Environment, Slot};
use crate::plan::StepKind;
use crate::tracker::gates::human;
use crate::tracker::gates::{self, Gate, GateContext, VerifyOutcome};
use crate::tracker::order::{StartedOrder, started_order};
use crate::tracker::reach;
use crate::tracker::{Event, Next, PhaseStatus, derive, interrupted_elsewhere, plan_events};

use futures::StreamExt;

use super::{LoadedPlan, RunError, Workspace, backups, check_phase, steps};

/// What `status` reads of one environment: its log, the live schema of the
/// plans' tables, and the refusals for interrupted steps still running there
/// (with their plans).
type EnvRead = (Vec<Event>, Catalog, Vec<(String, String)>);

/// What `status` read of each database of a fleet: (database, read).
type FleetRead = Vec<(String, EnvRead)>;

/// One environment as `status` sees it.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct EnvStatus {
    pub env: String,
    /// `None` when it could be read; otherwise why not (unreachable, an
    /// unset variable in its URL, a log it cannot trust).
    pub unreachable: Option<String>,
    pub plans: Vec<PlanStatus>,
    /// The plans under plans/ that could not be read, or not planned for
    /// this environment, each with its error; the others are in `plans`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub plan_errors: Vec<PlanProblem>,
}

/// A plan `status` could not report, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct PlanProblem {
    pub plan: String,
    pub error: String,
}

/// What `status` read of every environment, and which one a row is for.
#[derive(Clone, Copy)]
struct PlanRead<'r> {
    /// The environment's index in `slots` and `logs`.
    i: usize,
    slots: &'r [Slot<'r>],
    logs: &'r [Result<EnvRead, String>],
    events: &'r [Event],
    catalog: &'r Catalog,
    running: &'r [(String, String)],
    /// For each fleet environment, what was read of each of its databases.
    fleets: &'r [Option<FleetRead>],
}

/// Where a plan stands across a fleet ("N of M databases at phase k"),
/// and in each of its databases.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct FleetRow {
    /// Databases in the fleet (M).
    pub targets: usize,
    /// The highest phase any database has applied (1 when none has) (k).
    pub phase: usize,
    /// Databases that have applied that phase, migrated or deployed (N).
    pub at_phase: usize,
    /// Each database, in fleet order.
    pub databases: Vec<TargetRow>,
}

/// A plan in one database of a fleet.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct TargetRow {
    /// Its URL, the password hidden.
    pub database: String,
    /// Phases deployed, counting from the first.
    pub deployed: usize,
    /// The phase in progress (or the last one, when complete) and its state.
    pub phase: usize,
    pub state: PhaseStatus,
    pub next: Next,
}

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct PlanStatus {
    pub plan: String,
    /// How a command names the plan: its file's name under plans/ (a
    /// plan's `name:` may differ from it), for the commands status suggests.
    #[serde(skip)]
    pub target: String,
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
    /// Whether the plan file was found under plans/. A plan the log knows
    /// whose file is gone is listed from the log alone (the phases recorded
    /// when it started), with no gates.
    pub plan_file_found: bool,
    /// When the plan file (or its steps' SQL) changed since the plan started
    /// here and the change is not accepted: what changed and the way forward
    /// (`accept-change`). The row is then the log's: the phases as recorded,
    /// as `check` and the `phasegate_status` view count them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drift: Option<String>,
    /// For a fleet: the row above is its database furthest behind; this is
    /// every database's (absent for an ordinary environment).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fleet: Option<FleetRow>,
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
        let env = &*env;
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
        let env = &*env;
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
    ///
    /// The report is complete except for named entries: an environment that
    /// cannot be read (unreachable, an unset `${VAR}` in its URL when the
    /// config was loaded with [`crate::config::Config::load`]) is
    /// an [`EnvStatus`] with `unreachable` set, and a plan that cannot be
    /// read or planned there is in its `plan_errors`. Only an unknown `only`
    /// is an error.
    pub async fn status(&self, only: Option<&str>) -> Result<Vec<EnvStatus>, RunError> {
        let slots = self.config.slots();
        if let Some(name) = only
            && !slots.iter().any(|s| s.name() == name)
        {
            self.env(name)?;
        }
        let mut plans = Vec::new();
        let mut unreadable = Vec::new();
        for name in crate::intent::plan_names(&self.config.plans_dir()) {
            match self.load(&name) {
                Ok(p) => plans.push(p),
                Err(e) => unreadable.push(PlanProblem {
                    plan: name,
                    error: e.to_string(),
                }),
            }
        }
        let plan_refs: Vec<&LoadedPlan> = plans.iter().collect();
        let plan_refs = &plan_refs;
        let reads = slots.iter().map(|slot| async move {
            let env = match slot {
                Slot::Usable(env) => *env,
                Slot::Unresolved(u) => return (Err(u.error.clone()), None),
            };
            match &env.fleet {
                None => (self.read_one(env, plan_refs).await, None),
                Some(fleet) => {
                    let targets =
                        futures::stream::iter(fleet.targets.iter().map(|url| async move {
                            let target = env.on_target(url);
                            (
                                crate::catalog::redact(url),
                                self.read_one(&target, plan_refs).await,
                            )
                        }))
                        .buffered(fleet.waves.parallelism.max(8))
                        .collect::<Vec<_>>()
                        .await;
                    let failed: Vec<String> = targets
                        .iter()
                        .filter_map(|(db, r)| r.as_ref().err().map(|e| format!("{db}: {e}")))
                        .collect();
                    if !failed.is_empty() {
                        let why = format!(
                            "{} of {} databases could not be read: {}",
                            failed.len(),
                            targets.len(),
                            failed.join("; ")
                        );
                        return (Err(why), None);
                    }
                    let targets: FleetRead = targets
                        .into_iter()
                        .filter_map(|(db, r)| Some((db, r.ok()?)))
                        .collect();
                    let first = targets.first().map(|(_, r)| r.clone());
                    (
                        first.ok_or_else(|| "a fleet of no database".to_string()),
                        Some(targets),
                    )
                }
            }
        });
        let (logs, fleets): (Vec<Result<EnvRead, String>>, Vec<Option<FleetRead>>) =
            futures::future::join_all(reads).await.into_iter().unzip();
        let mut out = Vec::new();
        for (i, slot) in slots.iter().enumerate() {
            if only.is_some_and(|o| o != slot.name()) {
                continue;
            }
            let (env, (events, catalog, running)) = match (slot, &logs[i]) {
                (Slot::Usable(env), Ok(read)) => (*env, read),
                (_, Err(why)) => {
                    out.push(EnvStatus {
                        env: slot.name().to_string(),
                        unreachable: Some(why.clone()),
                        plans: Vec::new(),
                        plan_errors: unreadable.clone(),
                    });
                    continue;
                }
                (Slot::Unresolved(u), Ok(_)) => {
                    out.push(EnvStatus {
                        env: u.name.clone(),
                        unreachable: Some(u.error.clone()),
                        plans: Vec::new(),
                        plan_errors: unreadable.clone(),
                    });
                    continue;
                }
            };
            let mut rows = Vec::new();
            let mut plan_errors = unreadable.clone();
            for loaded in &plans {
                let read = PlanRead {
                    i,
                    slots: &slots,
                    logs: &logs,
                    events,
                    catalog,
                    running,
                    fleets: &fleets,
                };
                let row = match &fleets[i] {
                    None => self.plan_status(env, loaded, &read),
                    Some(targets) => self.fleet_status(env, loaded, &read, targets),
                };
                match row {
                    Ok(row) => rows.push(row),
                    Err(e) => plan_errors.push(PlanProblem {
                        plan: loaded.file.name.clone(),
                        error: e.to_string(),
                    }),
                }
            }
            rows.extend(logged_only(events, &plans, &plan_errors));
            plan_errors.sort_by(|a, b| a.plan.cmp(&b.plan));
            out.push(EnvStatus {
                env: env.name.clone(),
                unreachable: None,
                plans: rows,
                plan_errors,
            });
        }
        Ok(out)
    }

    /// What `status` reads of one database: its log, the live schema of
    /// the plans' tables, the interrupted steps still running there; within
    /// the environment's `connect_timeout`.
    async fn read_one(
        &self,
        env: &Environment,
        plan_refs: &[&LoadedPlan],
    ) -> Result<EnvRead, String> {
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
    }

    /// One plan's row in a fleet environment: the row of its database
    /// furthest behind, with every database's ([`FleetRow`]). A database
    /// where the plan cannot be planned is the error, naming it.
    fn fleet_status(
        &self,
        env: &Environment,
        loaded: &LoadedPlan,
        read: &PlanRead<'_>,
        targets: &FleetRead,
    ) -> Result<PlanStatus, RunError> {
        let mut rows = Vec::with_capacity(targets.len());
        for (db, (events, catalog, running)) in targets {
            let one = PlanRead {
                events,
                catalog,
                running,
                ..*read
            };
            let row = self
                .plan_status(env, loaded, &one)
                .map_err(|e| RunError::Refused(format!("in database {db} of {}: {e}", env.name)))?;
            let state = derive(&plan_events(events, &row.plan), row.phases);
            rows.push((db.clone(), row, state));
        }
        let states: Vec<&crate::tracker::PlanState> = rows.iter().map(|(_, _, s)| s).collect();
        let (at_phase, phase) = super::fleet::at_phase(&states);
        let databases = rows
            .iter()
            .map(|(db, r, _)| TargetRow {
                database: db.clone(),
                deployed: r.deployed,
                phase: r.phase,
                state: r.state,
                next: r.next,
            })
            .collect();
        let worst = super::fleet::furthest_of(rows.into_iter().map(|(_, r, s)| (r, s)));
        let Some((mut row, _)) = worst else {
            return Err(RunError::Refused(format!("{} has no database", env.name)));
        };
        row.fleet = Some(FleetRow {
            targets: targets.len(),
            phase,
            at_phase,
            databases,
        });
        Ok(row)
    }

    /// One plan's row in one environment's status.
    fn plan_status(
        &self,
        env: &Environment,
        loaded: &LoadedPlan,
        read: &PlanRead<'_>,
    ) -> Result<PlanStatus, RunError> {
        let PlanRead {
            i,
            slots,
            logs,
            events,
            catalog,
            running,
            fleets,
        } = *read;
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
        let drift = gates::drift(&plan, &state, &loaded.label, &env.name, &loaded.text).err();
        // Drifted: the row is the log's, the phases as recorded (as `check`
        // and the view count them); the gates still judge the file as it is.
        let shown = match drift.as_ref().and(reach::recorded_phases(&mine)) {
            Some(n) => derive(&mine, n),
            None => state.clone(),
        };
        let theirs = |ev: &[Event]| {
            let theirs: Vec<Event> = ev
                .iter()
                .filter(|e| e.plan.as_deref() == Some(&plan.name))
                .cloned()
                .collect();
            derive(&theirs, plan.phases.len())
        };
        let prev_state = i.checked_sub(1).map(|p| match &fleets[p] {
            // A fleet before this one: its database furthest behind.
            Some(targets) => {
                let states = targets.iter().map(|(db, (ev, _, _))| (db, theirs(ev)));
                match super::fleet::furthest_of(states) {
                    Some((db, s)) => (
                        super::fleet::behind_name(slots[p].name(), db, targets.len()),
                        Ok(s),
                    ),
                    None => (slots[p].name().to_string(), Err("no database".into())),
                }
            }
            None => (
                slots[p].name().to_string(),
                logs[p]
                    .as_ref()
                    .map(|(ev, _, _)| theirs(ev))
                    .map_err(Clone::clone),
            ),
        });
        let backups = backups(&mine);
        let order_now = self.order_now();
        // The orders recorded where the plan started, here and before here.
        let started: Vec<StartedOrder> = logs[..=i]
            .iter()
            .zip(slots.iter())
            .filter_map(|(log, s)| started_order(s.name(), &log.as_ref().ok()?.0, &plan.name))
            .collect();
        // Another plan's interrupted step holds this one too, but it is
        // explained once, under its own plan; here a pointer to it.
        let elsewhere = interrupted_elsewhere(events, &plan.name);
        let ctx = GateContext {
            plan: &plan,
            plan_label: &loaded.label,
            env,
            state: &state,
            previous_env: prev_state
                .as_ref()
                .map(|(n, s)| (n.as_str(), s.as_ref().map_err(Clone::clone))),
            backups: &backups,
            now: self.clock.now(),
            text_now: &loaded.text,
            verify: None,
            elsewhere: &[],
            order_now: &order_now,
            started: &started,
        };
        let verdict = gates::verdict(&ctx);
        let current = match shown.next() {
            Next::Apply(n) | Next::Deploy(n) => n,
            Next::Complete => shown.phases.len(),
        };
        let record = shown.phase(current);
        let mut blocked: Vec<Gate> = verdict.blocked().cloned().collect();
        if !matches!(state.next(), Next::Complete) {
            blocked.extend(elsewhere.iter().map(|(other, o)| Gate {
                name: "clean",
                held: false,
                reason: format!(
                    "step {} of {other} never finished here; resolve it first (see {other})",
                    o.step
                ),
            }));
        }
        // A step still running on the server holds every plan here: in
        // full under its plan, as a pointer under the others.
        blocked.extend(running.iter().map(|(other, m)| Gate {
            name: "running",
            held: false,
            reason: if *other == plan.name {
                m.clone()
            } else {
                format!("a step of {other} is still running on the server (see {other})")
            },
        }));
        Ok(PlanStatus {
            plan: plan.name.clone(),
            target: loaded.label.clone(),
            phases: shown.phases.len(),
            deployed: shown.deployed_count(),
            phase: current,
            state: record.map_or(PhaseStatus::Pending, |r| r.status),
            since: record.and_then(|r| r.since),
            next: shown.next(),
            blocked,
            plan_file_found: true,
            drift,
            fleet: None,
        })
    }
}

/// The plans the log of an environment knows whose file is not under
/// plans/ (neither loaded nor unreadable): one row each from the log
/// alone, the phases recorded when it started (else the highest phase the
/// log names), marked `plan_file_found: false`.
fn logged_only(
    events: &[Event],
    plans: &[LoadedPlan],
    unreadable: &[PlanProblem],
) -> Vec<PlanStatus> {
    let mut names: Vec<&str> = events.iter().filter_map(|e| e.plan.as_deref()).collect();
    names.sort_unstable();
    names.dedup();
    names
        .into_iter()
        .filter(|n| !plans.iter().any(|p| p.file.name == *n))
        .filter(|n| !unreadable.iter().any(|p| p.plan == *n))
        .map(|name| {
            let mine = plan_events(events, name);
            let phases = reach::recorded_phases(&mine).unwrap_or_else(|| {
                mine.iter()
                    .filter(|e| e.plan.is_some())
                    .filter_map(|e| e.phase)
                    .max()
                    .unwrap_or(0)
            });
            let state = derive(&mine, phases);
            let current = match state.next() {
                Next::Apply(n) | Next::Deploy(n) => n,
                Next::Complete => phases,
            };
            let record = state.phase(current);
            PlanStatus {
                plan: name.to_string(),
                target: name.to_string(),
                phases,
                deployed: state.deployed_count(),
                phase: current,
                state: record.map_or(PhaseStatus::Pending, |r| r.status),
                since: record.and_then(|r| r.since),
                next: state.next(),
                blocked: Vec::new(),
                plan_file_found: false,
                drift: None,
                fleet: None,
            }
        })
        .collect()
}
