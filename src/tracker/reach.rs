//! How far a plan has got in one environment, in the terms a service
//! checks at start-up: which phase's migrations are applied, which phase's
//! app code is marked deployed. One definition, shared by
//! [`super::phase_reached`], `phasegate check` and (in SQL) the
//! `phasegate_status` view's `phase_applied` and `phase_deployed`.

use serde::Serialize;

use super::{Event, EventKind, PhaseStatus, PlanState};

/// What "reached" asks of a phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Reached {
    /// Its migrations are applied (`phase_migrated` recorded; the phase is
    /// migrated or deployed, not migrating, partly rolled back or rolled back).
    Applied,
    /// Its migrations are applied and its app code is marked deployed
    /// (`phasegate mark`, or a phase without an app stage).
    Deployed,
}

impl Reached {
    /// Whether a phase in `status` has reached this.
    pub fn holds(self, status: PhaseStatus) -> bool {
        match self {
            Reached::Applied => matches!(status, PhaseStatus::Migrated | PhaseStatus::Deployed),
            Reached::Deployed => status == PhaseStatus::Deployed,
        }
    }
}

/// Whether phase `phase` (1-based) of the plan in `state` has reached `what`.
/// A phase the state does not know is not reached.
pub fn reached(state: &PlanState, phase: usize, what: Reached) -> bool {
    state.phase(phase).is_some_and(|p| what.holds(p.status))
}

/// The highest phase that has reached `what`, 0 when none has (the view's
/// `phase_applied` and `phase_deployed`).
pub fn highest(state: &PlanState, what: Reached) -> usize {
    state
        .phases
        .iter()
        .rposition(|p| what.holds(p.status))
        .map_or(0, |i| i + 1)
}

/// The number of phases the log records for a plan (`events`, its own):
/// `phases` in the detail of its latest `plan_started` or
/// `change_accepted`, as the view reads it. `None` when the plan has not
/// started or started under a phasegate that did not record it.
pub fn recorded_phases(events: &[Event]) -> Option<usize> {
    events
        .iter()
        .rev()
        .find(|e| matches!(e.kind, EventKind::PlanStarted | EventKind::ChangeAccepted))
        .and_then(|e| serde_json::from_str::<serde_json::Value>(&e.detail).ok())
        .and_then(|v| v.get("phases").and_then(serde_json::Value::as_u64))
        .and_then(|n| usize::try_from(n).ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tracker::{Event, EventKind, derive};
    use chrono::{DateTime, Utc};

    fn ev(kind: EventKind, phase: usize, step: Option<&str>) -> Event {
        Event {
            id: 0,
            at: DateTime::<Utc>::UNIX_EPOCH,
            plan: Some("p".into()),
            kind,
            phase: Some(phase),
            step: step.map(str::to_string),
            detail: String::new(),
            actor: "t".into(),
        }
    }

    #[test]
    fn applied_means_migrated_or_deployed_and_deployed_means_marked() {
        let mut events = vec![ev(EventKind::StepApplied, 1, Some("1.a"))];
        let s = derive(&events, 2);
        assert!(
            !reached(&s, 1, Reached::Applied),
            "migrating is not applied"
        );
        events.push(ev(EventKind::PhaseMigrated, 1, None));
        let s = derive(&events, 2);
        assert!(reached(&s, 1, Reached::Applied));
        assert!(!reached(&s, 1, Reached::Deployed));
        assert_eq!(
            (
                highest(&s, Reached::Applied),
                highest(&s, Reached::Deployed)
            ),
            (1, 0)
        );
        events.push(ev(EventKind::PhaseDeployed, 1, None));
        let s = derive(&events, 2);
        assert!(reached(&s, 1, Reached::Deployed));
        assert!(!reached(&s, 2, Reached::Applied));
        assert!(!reached(&s, 3, Reached::Applied), "a phase beyond the plan");
        assert!(!reached(&s, 0, Reached::Applied), "phase 0");
    }

    #[test]
    fn a_phase_partly_rolled_back_is_no_longer_reached() {
        let events = vec![
            ev(EventKind::StepApplied, 1, Some("1.a")),
            ev(EventKind::PhaseMigrated, 1, None),
            ev(EventKind::StepRolledBack, 1, Some("1.a")),
        ];
        let s = derive(&events, 1);
        assert!(!reached(&s, 1, Reached::Applied));
        assert_eq!(highest(&s, Reached::Applied), 0);
    }

    /// The latest `plan_started`/`change_accepted` decides; none, or a
    /// detail without `phases` (an older phasegate), is `None`.
    #[test]
    fn recorded_phases_are_the_latest_start_or_acceptance() {
        let with = |kind, detail: &str| Event {
            detail: detail.to_string(),
            ..ev(kind, 0, None)
        };
        assert_eq!(recorded_phases(&[]), None);
        let mut events = vec![with(EventKind::PlanStarted, r#"{"checksum":"x"}"#)];
        assert_eq!(recorded_phases(&events), None);
        events.push(with(EventKind::PlanStarted, r#"{"phases":1}"#));
        events.push(ev(EventKind::PhaseMigrated, 1, None));
        assert_eq!(recorded_phases(&events), Some(1));
        events.push(with(EventKind::ChangeAccepted, r#"{"phases":3}"#));
        assert_eq!(recorded_phases(&events), Some(3));
    }
}
