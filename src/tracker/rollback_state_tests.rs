//! The state a step-by-step rollback leaves, derived from the log: a phase
//! partly rolled back, an undo outstanding, settled by `resolve`; and the
//! steps pinned by `plan_started` and `change_accepted`.

use chrono::{DateTime, Utc};

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
fn a_rollback_that_stopped_leaves_the_phase_partly_rolled_back() {
    let mut events = vec![
        ev(EventKind::StepApplied, Some(1), Some("1.a"), ""),
        ev(EventKind::StepApplied, Some(1), Some("1.b"), ""),
        ev(EventKind::PhaseMigrated, Some(1), None, ""),
        ev(EventKind::StepRolledBack, Some(1), Some("1.b"), ""),
        ev(EventKind::StepRollbackFailed, Some(1), Some("1.a"), "boom"),
    ];
    let s = derive(&events, 2);
    assert_eq!(s.phases[0].status, PhaseStatus::RollingBack);
    assert_eq!(
        s.phases[0].applied_steps.iter().collect::<Vec<_>>(),
        ["1.a"]
    );
    assert_eq!(s.latest_started(), Some(1));
    assert_eq!(s.outstanding.len(), 1);
    assert!(s.outstanding[0].undo && s.outstanding[0].error.is_some());
    // Settled as rolled back by hand: nothing applied, nothing outstanding.
    events.push(ev(
        EventKind::StepResolved,
        Some(1),
        Some("1.a"),
        ROLLED_BACK,
    ));
    let s = derive(&events, 2);
    assert!(s.phases[0].applied_steps.is_empty());
    assert!(s.outstanding.is_empty());
    assert_eq!(s.phases[0].status, PhaseStatus::RollingBack);
    events.push(ev(EventKind::PhaseRolledBack, Some(1), None, ""));
    assert_eq!(derive(&events, 2).latest_started(), None);
}

#[test]
fn an_undo_started_and_never_finished_is_outstanding_until_resolved() {
    let mut events = vec![
        ev(EventKind::StepApplied, Some(1), Some("1.a"), ""),
        ev(EventKind::StepRollbackStarted, Some(1), Some("1.a"), ""),
    ];
    let s = derive(&events, 1);
    assert_eq!(s.outstanding.len(), 1);
    assert!(s.outstanding[0].undo && s.outstanding[0].error.is_none());
    // A rollback began: the phase is no longer as it was applied.
    assert_eq!(s.phases[0].status, PhaseStatus::RollingBack);
    // Not rolled back: still applied, settled.
    events.push(ev(
        EventKind::StepResolved,
        Some(1),
        Some("1.a"),
        "not_rolled_back",
    ));
    let s = derive(&events, 1);
    assert!(s.outstanding.is_empty());
    assert!(s.phases[0].applied_steps.contains("1.a"));
}

#[test]
fn pinned_steps_come_from_the_start_or_the_last_accepted_change() {
    let legacy = vec![ev(
        EventKind::PlanStarted,
        None,
        None,
        r#"{"checksum":"abc","text":"x"}"#,
    )];
    assert_eq!(derive(&legacy, 1).pinned, None);
    let mut events = vec![ev(
        EventKind::PlanStarted,
        None,
        None,
        r#"{"checksum":"abc","text":"x","steps":{"1.a":{"sum":"s1","up":"SELECT 1"}}}"#,
    )];
    let s = derive(&events, 1);
    let pinned = s.pinned.unwrap_or_default();
    assert_eq!(pinned.get("1.a").map(|p| p.sum.as_str()), Some("s1"));
    events.push(ev(
        EventKind::ChangeAccepted,
        None,
        None,
        r#"{"checksum":"def","text":"y","steps":{"1.a":{"sum":"s2"}}}"#,
    ));
    let pinned = derive(&events, 1).pinned.unwrap_or_default();
    assert_eq!(pinned.get("1.a").map(|p| p.sum.as_str()), Some("s2"));
}
