//! The tracker: what has happened to each plan in each environment, kept as
//! an append-only event log in that environment's own database
//! (`phasegate_events`), and the state derived from it.
//!
//! Nothing is ever updated in place: the phase a plan has reached, whether it
//! is waiting for its app deploy, what failed, what was approved — all are
//! read back from the log by [`derive`]. On Postgres and SQLite the event for
//! a transactional step is written in the same transaction as its DDL, so the
//! log and the schema cannot disagree.

mod chain;
#[cfg(unix)]
mod file_lock;
pub mod gates;
mod guards;
pub mod order;
pub mod pins;
mod presence;
pub mod reach;
pub mod record_sql;
#[cfg(test)]
mod rollback_state_tests;
mod schema;
mod status_view;
mod store;

use std::collections::BTreeSet;
use std::fmt;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use serde::Serialize;

pub use status_view::{STATUS_COLUMNS, STATUS_VIEW};
pub use store::{Store, TRACKER_WAIT, TrackerError, is_busy, phase_reached};

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// The plan's first run here; `detail` holds its checksum and text.
    PlanStarted,
    /// An edited plan accepted on purpose; `detail` holds the new checksum and text.
    ChangeAccepted,
    /// A non-transactional step began (its completion is recorded separately).
    StepStarted,
    StepApplied,
    /// `detail` holds the error.
    StepFailed,
    /// Someone settled an interrupted or failed step by hand; `detail` says how.
    StepResolved,
    PhaseMigrated,
    /// The phase's app code is deployed; `detail` holds the app version.
    PhaseDeployed,
    PhaseRolledBack,
    Approved,
    /// Environment-wide: a backup was taken; `detail` holds where it went.
    Backup,
    /// A backfill batch committed; `detail` holds the last key done and the
    /// rows updated so far (JSON), recorded in the batch's own transaction.
    BackfillProgress,
    /// `rollback` began undoing a step that cannot be undone in a
    /// transaction (its completion is recorded separately).
    StepRollbackStarted,
    /// A step's undo committed (for a transactional step, in the same
    /// transaction as its rollback SQL). The phase stays partly rolled back
    /// until `phase_rolled_back`.
    StepRolledBack,
    /// A step's undo failed; `detail` holds the error.
    StepRollbackFailed,
}

impl EventKind {
    pub const ALL: [EventKind; 15] = [
        EventKind::PlanStarted,
        EventKind::ChangeAccepted,
        EventKind::StepStarted,
        EventKind::StepApplied,
        EventKind::StepFailed,
        EventKind::StepResolved,
        EventKind::PhaseMigrated,
        EventKind::PhaseDeployed,
        EventKind::PhaseRolledBack,
        EventKind::Approved,
        EventKind::Backup,
        EventKind::BackfillProgress,
        EventKind::StepRollbackStarted,
        EventKind::StepRolledBack,
        EventKind::StepRollbackFailed,
    ];

    pub fn name(self) -> &'static str {
        match self {
            EventKind::PlanStarted => "plan_started",
            EventKind::ChangeAccepted => "change_accepted",
            EventKind::StepStarted => "step_started",
            EventKind::StepApplied => "step_applied",
            EventKind::StepFailed => "step_failed",
            EventKind::StepResolved => "step_resolved",
            EventKind::PhaseMigrated => "phase_migrated",
            EventKind::PhaseDeployed => "phase_deployed",
            EventKind::PhaseRolledBack => "phase_rolled_back",
            EventKind::Approved => "approved",
            EventKind::Backup => "backup",
            EventKind::BackfillProgress => "backfill_progress",
            EventKind::StepRollbackStarted => "step_rollback_started",
            EventKind::StepRolledBack => "step_rolled_back",
            EventKind::StepRollbackFailed => "step_rollback_failed",
        }
    }

    pub fn parse(s: &str) -> Option<EventKind> {
        EventKind::ALL.into_iter().find(|k| k.name() == s)
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One entry of the log.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    pub id: i64,
    pub at: DateTime<Utc>,
    /// `None` for environment-wide events (backups).
    pub plan: Option<String>,
    pub kind: EventKind,
    pub phase: Option<usize>,
    pub step: Option<String>,
    /// Free text or JSON, by kind (see [`EventKind`]).
    pub detail: String,
    /// Who or what recorded it (the OS user, or `--by`).
    pub actor: String,
}

/// An event about to be recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    pub plan: Option<String>,
    pub kind: EventKind,
    pub phase: Option<usize>,
    pub step: Option<String>,
    pub detail: String,
}

impl NewEvent {
    pub fn plan(plan: &str, kind: EventKind) -> NewEvent {
        NewEvent {
            plan: Some(plan.to_string()),
            kind,
            phase: None,
            step: None,
            detail: String::new(),
        }
    }
    pub fn phase(mut self, phase: usize) -> NewEvent {
        self.phase = Some(phase);
        self
    }
    pub fn step(mut self, step: &str) -> NewEvent {
        self.step = Some(step.to_string());
        self
    }
    pub fn detail(mut self, detail: impl Into<String>) -> NewEvent {
        self.detail = detail.into();
        self
    }
}

/// Where a phase stands in one environment: `pending → migrated → deployed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PhaseStatus {
    Pending,
    /// Some of its steps ran; the rest will on the next `apply`.
    Migrating,
    /// `rollback` undid some of its steps (each recorded by
    /// `step_rolled_back`) and stopped; the next `rollback` undoes the rest.
    RollingBack,
    /// Its migrations ran; its app code is not yet marked deployed.
    Migrated,
    Deployed,
}

impl fmt::Display for PhaseStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PhaseStatus::Pending => "pending",
            PhaseStatus::Migrating => "migrating",
            PhaseStatus::RollingBack => "partly rolled back",
            PhaseStatus::Migrated => "migrated",
            PhaseStatus::Deployed => "deployed",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PhaseRecord {
    pub status: PhaseStatus,
    pub applied_steps: BTreeSet<String>,
    pub migrated_at: Option<DateTime<Utc>>,
    pub deployed_at: Option<DateTime<Utc>>,
    pub app_version: Option<String>,
    /// (when, by whom)
    pub approved: Option<(DateTime<Utc>, String)>,
    /// When the status last changed.
    pub since: Option<DateTime<Utc>>,
}

/// A step that failed, or started and never finished, and is not settled.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct Outstanding {
    pub phase: usize,
    pub step: String,
    pub since: DateTime<Utc>,
    /// The error, for a failure; `None` for a step that started and never finished.
    pub error: Option<String>,
    /// True when it is the step's undo (by `rollback`) that failed or never
    /// finished, not the step itself.
    pub undo: bool,
}

/// Where an unfinished backfill stopped: the last key it did, and the rows
/// it updated so far.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct Checkpoint {
    /// The primary-key values (as text) of the last row of the last committed batch.
    pub last: Vec<String>,
    pub updated: u64,
    /// The rows the walk had passed (0 in a checkpoint written before
    /// phasegate recorded it): where a resumed run's progress starts.
    #[serde(default)]
    pub scanned: u64,
}

/// A plan's state in one environment, derived from its events.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlanState {
    /// The checksum and text recorded when the plan started here (or last accepted).
    pub checksum: Option<String>,
    pub text: Option<String>,
    pub phases: Vec<PhaseRecord>,
    pub outstanding: Vec<Outstanding>,
    /// Backfills that committed batches but did not finish, by step id.
    pub checkpoints: std::collections::BTreeMap<String, Checkpoint>,
    /// The live schema the plan was made against when it started here (JSON
    /// of a [`crate::catalog::Catalog`]): every later phase is planned against
    /// it, so the plan stays the one that was reviewed.
    pub catalog: Option<String>,
    /// The environments, in promotion order, when the plan started here (or
    /// when a change was last accepted here): the promotion gate holds the
    /// plan to it, so removing an environment from `phasegate.yaml` mid-plan
    /// does not let the next one skip it. `None` for plans started by a
    /// phasegate that did not record it.
    pub order: Option<Vec<String>>,
    /// The steps as pinned when the plan started here (or an edit was last
    /// accepted); `None` for a log written before steps were pinned.
    pub pinned: Option<pins::Pins>,
}

/// What the plan does next in this environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(tag = "action", content = "phase", rename_all = "snake_case")]
pub enum Next {
    /// Run phase N's migrations (`apply`).
    Apply(usize),
    /// Phase N is migrated; deploy its app code, then `mark`.
    Deploy(usize),
    /// Every phase is deployed.
    Complete,
}

impl PlanState {
    pub fn next(&self) -> Next {
        match self
            .phases
            .iter()
            .position(|p| p.status != PhaseStatus::Deployed)
        {
            None => Next::Complete,
            Some(i) if self.phases[i].status == PhaseStatus::Migrated => Next::Deploy(i + 1),
            Some(i) => Next::Apply(i + 1),
        }
    }

    /// The highest phase that is not pending (the one `rollback` undoes).
    pub fn latest_started(&self) -> Option<usize> {
        self.phases
            .iter()
            .rposition(|p| p.status != PhaseStatus::Pending)
            .map(|i| i + 1)
    }

    /// How many phases are deployed, counting from the first.
    pub fn deployed_count(&self) -> usize {
        self.phases
            .iter()
            .take_while(|p| p.status == PhaseStatus::Deployed)
            .count()
    }

    pub fn phase(&self, n: usize) -> Option<&PhaseRecord> {
        n.checked_sub(1).and_then(|i| self.phases.get(i))
    }
}

/// The events of `plan` and the environment-wide ones (plan `None`), in order.
pub fn plan_events(all: &[Event], plan: &str) -> Vec<Event> {
    all.iter()
        .filter(|e| e.plan.as_deref().is_none_or(|p| p == plan))
        .cloned()
        .collect()
}

/// The steps of every plan other than `except` that started in this
/// environment and never finished, as (plan, step). Such a step may have
/// left a table half-changed, so it holds every plan in the environment,
/// not only its own, until it is resolved.
pub fn interrupted_elsewhere(events: &[Event], except: &str) -> Vec<(String, Outstanding)> {
    interrupted_steps(events)
        .into_iter()
        .filter(|(plan, _)| plan != except)
        .collect()
}

/// Every step of every plan in `events` that started (applying or undoing
/// it) and never finished nor failed, as (plan, step), plans in name order.
pub fn interrupted_steps(events: &[Event]) -> Vec<(String, Outstanding)> {
    let mut plans: Vec<&str> = events.iter().filter_map(|e| e.plan.as_deref()).collect();
    plans.sort_unstable();
    plans.dedup();
    let mut out = Vec::new();
    for plan in plans {
        let theirs: Vec<Event> = events
            .iter()
            .filter(|e| e.plan.as_deref() == Some(plan))
            .cloned()
            .collect();
        let phases = theirs.iter().filter_map(|e| e.phase).max().unwrap_or(0);
        for o in derive(&theirs, phases).outstanding {
            if o.error.is_none() {
                out.push((plan.to_string(), o));
            }
        }
    }
    out
}

/// Reads a plan's state from its events (in log order).
pub fn derive(events: &[Event], phase_count: usize) -> PlanState {
    let blank = PhaseRecord {
        status: PhaseStatus::Pending,
        applied_steps: BTreeSet::new(),
        migrated_at: None,
        deployed_at: None,
        app_version: None,
        approved: None,
        since: None,
    };
    let mut s = PlanState {
        checksum: None,
        text: None,
        phases: vec![blank.clone(); phase_count],
        outstanding: Vec::new(),
        checkpoints: std::collections::BTreeMap::new(),
        catalog: None,
        order: None,
        pinned: None,
    };
    for e in events {
        let idx = e
            .phase
            .and_then(|p| p.checked_sub(1))
            .filter(|&i| i < phase_count);
        let settle = |s: &mut PlanState, step: &Option<String>| {
            s.outstanding.retain(|o| Some(&o.step) != step.as_ref());
        };
        match e.kind {
            EventKind::PlanStarted | EventKind::ChangeAccepted => {
                if let Ok(v) = serde_json::from_str::<serde_json::Value>(&e.detail) {
                    s.checksum = v["checksum"].as_str().map(str::to_string);
                    s.text = v["text"].as_str().map(str::to_string);
                    if let Some(c) = v.get("catalog").filter(|c| !c.is_null()) {
                        s.catalog = Some(c.to_string());
                    }
                    if let Some(order) = v.get("environments").and_then(|o| o.as_array()) {
                        s.order = Some(
                            order
                                .iter()
                                .filter_map(|e| e.as_str().map(str::to_string))
                                .collect(),
                        );
                    }
                    s.pinned = v
                        .get("steps")
                        .and_then(|p| serde_json::from_value(p.clone()).ok());
                }
            }
            EventKind::StepStarted
            | EventKind::StepFailed
            | EventKind::StepRollbackStarted
            | EventKind::StepRollbackFailed => {
                settle(&mut s, &e.step);
                if let (Some(step), Some(i)) = (&e.step, idx) {
                    let failed = matches!(
                        e.kind,
                        EventKind::StepFailed | EventKind::StepRollbackFailed
                    );
                    let undo = matches!(
                        e.kind,
                        EventKind::StepRollbackStarted | EventKind::StepRollbackFailed
                    );
                    if undo {
                        // A rollback began here: the phase is no longer as
                        // deployed, even if this was its first undo and it
                        // failed before changing anything.
                        rolling_back(&mut s.phases[i], e.at);
                    }
                    s.outstanding.push(Outstanding {
                        phase: i + 1,
                        step: step.clone(),
                        since: e.at,
                        error: failed.then(|| e.detail.clone()),
                        undo,
                    });
                }
            }
            EventKind::StepRolledBack => {
                settle(&mut s, &e.step);
                if let (Some(step), Some(i)) = (&e.step, idx) {
                    rolled_back(&mut s.phases[i], step, e.at);
                }
            }
            EventKind::BackfillProgress => {
                if let (Some(step), Ok(c)) =
                    (&e.step, serde_json::from_str::<Checkpoint>(&e.detail))
                {
                    s.checkpoints.insert(step.clone(), c);
                }
            }
            EventKind::StepApplied => {
                settle(&mut s, &e.step);
                if let Some(step) = &e.step {
                    s.checkpoints.remove(step);
                }
                if let (Some(step), Some(i)) = (&e.step, idx) {
                    let p = &mut s.phases[i];
                    p.applied_steps.insert(step.clone());
                    if matches!(p.status, PhaseStatus::Pending | PhaseStatus::RollingBack) {
                        p.status = PhaseStatus::Migrating;
                        p.since = Some(e.at);
                    }
                }
            }
            EventKind::StepResolved => {
                settle(&mut s, &e.step);
                if let (Some(step), Some(i)) = (&e.step, idx) {
                    match e.detail.as_str() {
                        "applied" => {
                            s.phases[i].applied_steps.insert(step.clone());
                        }
                        ROLLED_BACK => rolled_back(&mut s.phases[i], step, e.at),
                        _ => {}
                    }
                }
            }
            EventKind::PhaseMigrated => {
                if let Some(i) = idx {
                    let p = &mut s.phases[i];
                    p.status = PhaseStatus::Migrated;
                    p.migrated_at = Some(e.at);
                    p.since = Some(e.at);
                }
            }
            EventKind::PhaseDeployed => {
                if let Some(i) = idx {
                    let p = &mut s.phases[i];
                    p.status = PhaseStatus::Deployed;
                    p.deployed_at = Some(e.at);
                    p.since = Some(e.at);
                    p.app_version = Some(e.detail.clone()).filter(|v| !v.is_empty());
                }
            }
            EventKind::PhaseRolledBack => {
                if let Some(i) = idx {
                    let approved = s.phases[i].approved.take();
                    s.phases[i] = PhaseRecord {
                        since: Some(e.at),
                        approved,
                        ..blank.clone()
                    };
                    s.outstanding.retain(|o| o.phase != i + 1);
                    s.checkpoints
                        .retain(|step, _| !step_in_phase(step, events, i + 1));
                }
            }
            EventKind::Approved => {
                if let Some(i) = idx {
                    s.phases[i].approved = Some((e.at, e.actor.clone()));
                }
            }
            EventKind::Backup => {}
        }
    }
    s
}

/// `step_resolved`'s detail for an undo settled as done by hand
/// (`resolve --as rolled-back`); `not_rolled_back` settles it as not done.
pub const ROLLED_BACK: &str = "rolled_back";

/// `step` of phase `p` is undone: no longer applied, and the phase, unless
/// nothing of it had run, partly rolled back.
fn rolled_back(p: &mut PhaseRecord, step: &str, at: DateTime<Utc>) {
    p.applied_steps.remove(step);
    rolling_back(p, at);
}

/// Phase `p` is being rolled back (unless nothing of it had run).
fn rolling_back(p: &mut PhaseRecord, at: DateTime<Utc>) {
    if p.status != PhaseStatus::Pending && p.status != PhaseStatus::RollingBack {
        p.status = PhaseStatus::RollingBack;
        p.since = Some(at);
    }
}

/// Whether the log places `step` in phase `phase`.
fn step_in_phase(step: &str, events: &[Event], phase: usize) -> bool {
    events
        .iter()
        .any(|e| e.phase == Some(phase) && e.step.as_deref() == Some(step))
}

/// The time, injectable so soak periods can be tested without sleeping.
pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
}

/// The real clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that only moves when told to.
#[derive(Debug, Clone)]
pub struct ManualClock(Arc<Mutex<DateTime<Utc>>>);

impl ManualClock {
    pub fn new(start: DateTime<Utc>) -> ManualClock {
        ManualClock(Arc::new(Mutex::new(start)))
    }
    pub fn advance(&self, by: chrono::Duration) {
        if let Ok(mut t) = self.0.lock() {
            *t += by;
        }
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        self.0
            .lock()
            .map(|t| *t)
            .unwrap_or_else(|e| *e.into_inner())
    }
}

/// The checksum the drift gate compares: SHA-256 of the plan file's bytes.
pub fn checksum(text: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(text.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(kind: EventKind, phase: Option<usize>, step: Option<&str>, detail: &str) -> Event {
        Event {
            id: 0,
            at: DateTime::<Utc>::UNIX_EPOCH,
            plan: Some("p".into()),
            kind,
            phase,
            step: step.map(str::to_string),
            detail: detail.into(),
            actor: "t".into(),
        }
    }

    #[test]
    fn phases_move_pending_migrated_deployed() {
        let events = vec![
            ev(
                EventKind::PlanStarted,
                None,
                None,
                r#"{"checksum":"abc","text":"x"}"#,
            ),
            ev(EventKind::StepApplied, Some(1), Some("1.add_column"), ""),
            ev(EventKind::PhaseMigrated, Some(1), None, ""),
        ];
        let s = derive(&events, 3);
        assert_eq!(s.checksum.as_deref(), Some("abc"));
        assert_eq!(s.next(), Next::Deploy(1));
        let mut more = events.clone();
        more.push(ev(EventKind::PhaseDeployed, Some(1), None, "v1.2"));
        let s = derive(&more, 3);
        assert_eq!(s.next(), Next::Apply(2));
        assert_eq!(s.phases[0].app_version.as_deref(), Some("v1.2"));
        assert_eq!(s.deployed_count(), 1);
    }

    #[test]
    fn failures_stay_outstanding_until_the_step_succeeds_or_is_resolved() {
        let mut events = vec![ev(EventKind::StepFailed, Some(1), Some("1.a"), "boom")];
        assert_eq!(derive(&events, 1).outstanding.len(), 1);
        events.push(ev(EventKind::StepApplied, Some(1), Some("1.a"), ""));
        assert!(derive(&events, 1).outstanding.is_empty());
        events.push(ev(EventKind::StepStarted, Some(1), Some("1.b"), ""));
        assert_eq!(derive(&events, 1).outstanding[0].error, None);
        events.push(ev(EventKind::StepResolved, Some(1), Some("1.b"), "applied"));
        let s = derive(&events, 1);
        assert!(s.outstanding.is_empty());
        assert!(s.phases[0].applied_steps.contains("1.b"));
    }

    #[test]
    fn a_backfill_checkpoint_lasts_until_the_step_is_applied() {
        let mut events = vec![ev(
            EventKind::BackfillProgress,
            Some(1),
            Some("1.backfill"),
            r#"{"last":["500"],"updated":480}"#,
        )];
        let s = derive(&events, 1);
        assert_eq!(
            s.checkpoints
                .get("1.backfill")
                .map(|c| (c.last.clone(), c.updated)),
            Some((vec!["500".to_string()], 480))
        );
        events.push(ev(EventKind::StepApplied, Some(1), Some("1.backfill"), ""));
        assert!(derive(&events, 1).checkpoints.is_empty());
    }

    #[test]
    fn rollback_returns_a_phase_to_pending() {
        let events = vec![
            ev(EventKind::StepApplied, Some(1), Some("1.a"), ""),
            ev(EventKind::PhaseMigrated, Some(1), None, ""),
            ev(EventKind::PhaseRolledBack, Some(1), None, ""),
        ];
        let s = derive(&events, 2);
        assert_eq!(s.next(), Next::Apply(1));
        assert!(s.phases[0].applied_steps.is_empty());
        assert_eq!(s.latest_started(), None);
    }
}
