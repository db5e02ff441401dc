//! The commands that record a fact in the event log and run no migration:
//! `mark`, `approve`, `backup`, `accept-change` and `resolve`.

use serde::Serialize;

use crate::plan::StepKind;
use crate::tracker::gates::Verdict;
use crate::tracker::{
    Checkpoint, EventKind, NewEvent, Next, PhaseRecord, PhaseStatus, ROLLED_BACK, derive,
    plan_events,
};

use super::drift::refuse_drift;
use super::{RunError, Workspace, check_phase, started_detail};

/// What `resolve` recorded, and so what the next `apply` does with the step.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Resolution {
    pub plan: String,
    pub env: String,
    pub step: String,
    pub phase: usize,
    /// Recorded as applied (the next apply skips it) or not (it runs again).
    pub applied: bool,
    /// The step had started and never finished (rather than failed).
    pub interrupted: bool,
    /// It was the step's undo (by `rollback`) that was outstanding: `applied`
    /// false records it as rolled back (the next rollback goes on with the
    /// steps before it), true as not rolled back (the next rollback undoes it
    /// again).
    pub undo: bool,
    /// For a backfill recorded as not applied: where the rerun resumes.
    pub checkpoint: Option<Checkpoint>,
}

/// What `mark` says of a phase marked deployed already: with which app
/// version and when (and that `given`, if it differs, is not recorded).
fn already_marked(
    label: &str,
    env: &str,
    phase: usize,
    record: &PhaseRecord,
    given: &str,
) -> String {
    let when = record
        .deployed_at
        .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_default();
    let what = match &record.app_version {
        Some(v) => format!("app {v}, {when}"),
        None => format!("no app stage, {when}"),
    };
    let other = match &record.app_version {
        Some(v) if v == given => String::new(),
        _ => format!("; {given} is not recorded"),
    };
    format!(
        "{label}: phase {phase} is already marked deployed in {env} ({what}){other}; nothing recorded"
    )
}

/// Refuses an empty or all-whitespace `value` of `option` (a pipeline's
/// unset variable): [`RunError::Invalid`], before anything is recorded.
pub(crate) fn refuse_blank(option: &str, value: &str) -> Result<(), RunError> {
    if value.trim().is_empty() {
        return Err(RunError::Invalid(format!(
            "{option} is empty: give a value (nothing was recorded)"
        )));
    }
    Ok(())
}

impl Workspace<'_> {
    /// `phasegate mark`: records that phase `phase`'s app code is deployed.
    /// A phase marked already is [`RunError::NothingToDo`].
    pub async fn mark(
        &self,
        env: &str,
        target: &str,
        phase: usize,
        app_version: &str,
    ) -> Result<Verdict, RunError> {
        refuse_blank("--app-version", app_version)?;
        let env = self.env(env)?;
        let env = &*env;
        let loaded = self.load(target)?;
        // Every plan's events: the gates look at other plans' interrupted steps.
        self.locked_plan(env, &loaded, true, async |store, plan, events| {
            check_phase(&plan, phase)?;
            let state = derive(&plan_events(&events, &plan.name), plan.phases.len());
            // Drift first: an edited plan is refused by every command, this
            // one's re-run included.
            refuse_drift(&plan, &state, &loaded, env)?;
            if let Some(r) = state.phase(phase).filter(|r| r.status == PhaseStatus::Deployed) {
                return Err(RunError::NothingToDo(already_marked(&loaded.label, &env.name, phase, r, app_version)));
            }
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
                    return Err(RunError::NothingToDo(format!("{} is complete in {}: nothing to do", loaded.label, env.name)));
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

    /// `phasegate approve`: records an approval of irreversible phase
    /// `phase`. A reversible phase is [`RunError::Invalid`]; one approved
    /// already is [`RunError::NothingToDo`] (who approved it, and when).
    pub async fn approve(
        &self,
        env: &str,
        target: &str,
        phase: usize,
        by: &str,
    ) -> Result<(), RunError> {
        refuse_blank("--by", by)?;
        let env = self.env(env)?;
        let env = &*env;
        let loaded = self.load(target)?;
        self.locked_plan(env, &loaded, false, async |store, plan, events| {
            check_phase(&plan, phase)?;
            if plan.phases[phase - 1].reversible {
                return Err(RunError::Invalid(format!(
                    "phase {phase} of {} is reversible: it needs no approval (only irreversible phases do)",
                    loaded.label
                )));
            }
            let state = derive(&events, plan.phases.len());
            refuse_drift(&plan, &state, &loaded, env)?;
            if let Some((at, who)) = state.phase(phase).and_then(|r| r.approved.as_ref()) {
                return Err(RunError::NothingToDo(format!(
                    "phase {phase} of {} is already approved in {} by {who} at {}; nothing recorded",
                    loaded.label,
                    env.name,
                    at.format("%Y-%m-%d %H:%M:%S UTC")
                )));
            }
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
        if let Some(l) = location {
            refuse_blank("--location", l)?;
        }
        let env = self.env(env)?;
        let env = &*env;
        // Nothing to run and nothing given: this can never succeed as asked.
        if env.backup_command.is_none() && location.is_none() {
            return Err(RunError::Invalid(no_backup_command(&env.name)));
        }
        // Under the lock: no run changes the database while the backup is taken.
        self.locked(env, None, async |store, _| {
            let location = self.take_backup(env, location).await?;
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

    /// Runs the environment's `backup_command` (or takes `location` as
    /// given), returning where the backup went.
    async fn take_backup(
        &self,
        env: &crate::config::Environment,
        location: Option<&str>,
    ) -> Result<String, RunError> {
        let location = match (&env.backup_command, location) {
            (Some(cmd), given) => {
                let mut command = tokio::process::Command::new("sh");
                command
                    .arg("-c")
                    .arg(cmd)
                    .env("PHASEGATE_ENV", &env.name)
                    .env("PHASEGATE_DATABASE_URL", &env.database_url)
                    .current_dir(&self.config.root)
                    .stdin(std::process::Stdio::null())
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped())
                    .kill_on_drop(true);
                // A group of its own, so that an interrupted run can end the
                // command and whatever it started (super::children).
                #[cfg(unix)]
                command.process_group(0);
                let child = command
                    .spawn()
                    .map_err(|e| RunError::Backup(format!("cannot run `{cmd}`: {e}")))?;
                let _tracked = child.id().map(super::children::track);
                let out = child
                    .wait_with_output()
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
            (None, None) => return Err(RunError::Invalid(no_backup_command(&env.name))),
        };
        Ok(location)
    }

    /// `phasegate accept-change`: records the edited plan as the one in force here.
    pub async fn accept_change(
        &self,
        env: &str,
        target: &str,
        reason: &str,
    ) -> Result<(), RunError> {
        refuse_blank("--reason", reason)?;
        let env = self.env(env)?;
        let env = &*env;
        let loaded = self.load(target)?;
        self.locked_plan(env, &loaded, false, async |store, plan, events| {
            let state = derive(&events, plan.phases.len());
            let now_sum = crate::tracker::checksum(&loaded.text);
            let pins = crate::tracker::pins::pins(&plan);
            // A log from before steps were pinned: accepting pins them.
            let pins_differ = state.pinned.as_ref() != Some(&pins);
            match &state.checksum {
                None => {
                    return Err(RunError::Refused(format!(
                        "{} has not started in {}: there is nothing to accept",
                        loaded.label, env.name
                    )));
                }
                Some(c) if *c == now_sum && state.order.as_ref() == Some(&plan.order) && !pins_differ => {
                    // Accepted already (a retried job) or never edited: the
                    // plan in force is this one; nothing to do.
                    return Err(RunError::NothingToDo(format!(
                        "{} is already in force in {} as it is: its file and its steps' SQL are the ones pinned; nothing recorded",
                        loaded.label, env.name
                    )));
                }
                Some(_) => {}
            }
            let detail = serde_json::json!({
                "phases": plan.phases.len(),
                "checksum": now_sum,
                "text": loaded.text,
                "reason": reason,
                "environments": plan.order,
                "steps": pins,
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
        let env = &*env;
        let loaded = self.load(target)?;
        self.locked_plan(env, &loaded, false, async |store, plan, events| {
            let state = derive(&events, plan.phases.len());
            refuse_drift(&plan, &state, &loaded, env)?;
            let Some(o) = state.outstanding.iter().find(|o| o.step == step) else {
                if !plan.steps.iter().any(|s| s.id == step) {
                    return Err(RunError::Invalid(unknown_step(&loaded.label, &plan, step)));
                }
                if let Some(e) = already_resolved(&events, step, applied) {
                    return Err(RunError::NothingToDo(format!(
                        "step {step} of {} is already resolved as {} in {} ({}, by {}); nothing recorded",
                        loaded.label,
                        e.detail.replace('_', " "),
                        env.name,
                        e.at.format("%Y-%m-%d %H:%M:%S UTC"),
                        e.actor
                    )));
                }
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
            // An undo's outcome: the step's change is still there (not
            // rolled back) or gone (rolled back).
            let detail = match (o.undo, applied) {
                (false, true) => "applied",
                (false, false) => "not_applied",
                (true, true) => "not_rolled_back",
                (true, false) => ROLLED_BACK,
            };
            // Recording a change as there (applied) or as gone (rolled
            // back) needs the catalog to agree; recording it as still to
            // do needs nothing: its statements are written to be re-run.
            if let Some(s) = plan.steps.iter().find(|s| s.id == step) {
                match (o.undo, applied) {
                    (false, true) => {
                        super::presence::refuse_unless_present(store, env, &loaded.label, s).await?
                    }
                    (true, false) => {
                        super::presence::refuse_unless_undone(store, env, &loaded.label, s).await?
                    }
                    _ => {}
                }
            }
            let event = NewEvent::plan(&plan.name, EventKind::StepResolved)
                .phase(o.phase)
                .step(step)
                .detail(detail);
            store.append(&event, self.clock.now(), &self.actor).await?;
            Ok(Resolution {
                plan: plan.name.clone(),
                env: env.name.clone(),
                step: step.to_string(),
                phase: o.phase,
                applied,
                interrupted: o.error.is_none(),
                undo: o.undo,
                checkpoint: state.checkpoints.get(step).cloned(),
            })
        })
        .await
    }
}

/// What `backup` says when there is no `backup_command` and no `--location`.
fn no_backup_command(env: &str) -> String {
    format!(
        "{env} has no backup_command: take the backup yourself and record it with `phasegate backup --env {env} --location WHERE`"
    )
}

/// What `resolve` says of a step the plan does not have: the plan's steps,
/// and the nearest one.
fn unknown_step(label: &str, plan: &super::LivePlan, step: &str) -> String {
    let ids: Vec<&str> = plan.steps.iter().map(|s| s.id.as_str()).collect();
    format!(
        "{label} has no step {step}{} (its steps: {})",
        crate::suggest::did_you_mean(step, &ids),
        ids.join(", ")
    )
}

/// The event that settled `step` the way `applied` asks, if nothing about
/// the step happened since: the same `resolve` run again.
fn already_resolved<'e>(
    events: &'e [crate::tracker::Event],
    step: &str,
    applied: bool,
) -> Option<&'e crate::tracker::Event> {
    let last = events
        .iter()
        .rev()
        .find(|e| e.step.as_deref() == Some(step))?;
    let same = match last.detail.as_str() {
        "applied" | "not_rolled_back" => applied,
        "not_applied" => !applied,
        d => d == ROLLED_BACK && !applied,
    };
    (last.kind == EventKind::StepResolved && same).then_some(last)
}
