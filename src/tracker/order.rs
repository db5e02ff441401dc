//! The promotion order a plan started under: recorded with `plan_started`
//! (and again with each `change_accepted`) in every environment's log, and
//! read from the environment where the plan started first, so that an
//! environment that joined later (a renamed or replaced one, which records
//! the order of its own day) cannot stand in for one the plan was promised
//! to pass through.

use chrono::{DateTime, Utc};

use super::gates::GateContext;
use super::{Event, EventKind, derive};

/// The order recorded in one environment's log for one plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartedOrder {
    /// The environment whose log it was read from.
    pub env: String,
    /// When the plan first started there (its first `plan_started` event).
    pub at: DateTime<Utc>,
    /// The environments in promotion order, as last recorded there (at
    /// `plan_started`, or the last `accept-change` since).
    pub order: Vec<String>,
}

/// The order recorded for `plan` in `env`'s log, from its `events` (any
/// plans', in log order); `None` when the plan never started there or the
/// phasegate that started it recorded no order.
pub fn started_order(env: &str, events: &[Event], plan: &str) -> Option<StartedOrder> {
    let mine: Vec<Event> = events
        .iter()
        .filter(|e| e.plan.as_deref() == Some(plan))
        .cloned()
        .collect();
    let at = mine
        .iter()
        .find(|e| e.kind == EventKind::PlanStarted)
        .map(|e| e.at)?;
    let order = derive(&mine, 0).order?;
    Some(StartedOrder {
        env: env.to_string(),
        at,
        order,
    })
}

/// The order the plan started under, and the environment it was read
/// from: of the orders recorded in this environment and the ones before it
/// that could be read (`GateContext::started`), the one where the plan
/// started earliest (the first listed on a tie).
fn recorded_order<'c>(ctx: &GateContext<'c>) -> Option<(&'c str, &'c [String])> {
    let first = ctx
        .started
        .iter()
        .enumerate()
        .min_by_key(|(i, s)| (s.at, *i))
        .map(|(_, s)| s)?;
    Some((first.env.as_str(), first.order.as_slice()))
}

/// Why the promotion gate holds because environments that came before this
/// one when the plan started are no longer before it in `phasegate.yaml`
/// (removed, renamed, or moved after it); `None` when none is missing.
/// Environments added since only make the order longer, and are not a
/// reason.
pub(super) fn skipped_environments(ctx: &GateContext<'_>) -> Option<String> {
    let (source, recorded) = recorded_order(ctx)?;
    let env = ctx.env.name.as_str();
    let pos = recorded.iter().position(|e| e == env)?;
    let now_before: &[String] = ctx
        .order_now
        .iter()
        .position(|e| e == env)
        .map_or(&[], |i| &ctx.order_now[..i]);
    let missing: Vec<&str> = recorded[..pos]
        .iter()
        .filter(|e| !now_before.contains(e))
        .map(String::as_str)
        .collect();
    if missing.is_empty() {
        return None;
    }
    let (was, it) = if missing.len() == 1 {
        ("was", "it")
    } else {
        ("were", "them")
    };
    Some(format!(
        "{} {was} before {env} in the promotion order when {} started ({}), and phasegate.yaml no longer has {it} before {env}: put {it} back and promote through {it} first. If leaving {it} out is deliberate, record the order in phasegate.yaml now with `phasegate accept-change --env {source} {} --reason \"…\"`",
        missing.join(", "),
        ctx.plan.name,
        recorded.join(" → "),
        ctx.plan_label,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn event(id: i64, secs: i64, plan: &str, kind: EventKind, order: &[&str]) -> Event {
        Event {
            id,
            at: Utc.timestamp_opt(secs, 0).single().unwrap_or_default(),
            plan: Some(plan.to_string()),
            kind,
            phase: None,
            step: None,
            detail: serde_json::json!({ "environments": order }).to_string(),
            actor: "t".into(),
        }
    }

    #[test]
    fn the_first_start_and_the_last_recorded_order() {
        let events = [
            event(1, 10, "other", EventKind::PlanStarted, &["x"]),
            event(
                2,
                20,
                "p",
                EventKind::PlanStarted,
                &["dev", "staging", "prod"],
            ),
            event(
                3,
                30,
                "p",
                EventKind::ChangeAccepted,
                &["dev", "qa", "prod"],
            ),
        ];
        let found = started_order("dev", &events, "p");
        assert_eq!(
            found,
            Some(StartedOrder {
                env: "dev".into(),
                at: events[1].at,
                order: vec!["dev".into(), "qa".into(), "prod".into()],
            })
        );
        assert_eq!(started_order("dev", &events, "never"), None);
        // An accepted change alone is not a start.
        assert_eq!(started_order("dev", &events[2..], "p"), None);
    }
}
