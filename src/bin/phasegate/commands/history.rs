//! `history`: the event log, as text or JSON.

use std::fmt::Write;

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::Serialize;

use phasegate::execute::Workspace;
use phasegate::tracker::{Event, EventKind};

use super::envelope::Report;
use super::first_line;

/// `history`'s fields in the JSON document.
#[derive(Debug, Serialize, JsonSchema)]
pub struct HistoryPayload {
    pub env: String,
    /// The plan asked for, as named on the command line (`null`: every plan).
    pub plan: Option<String>,
    /// The events, oldest first.
    pub events: Vec<HistoryEvent>,
}

/// One event of the log.
#[derive(Debug, Serialize, JsonSchema)]
pub struct HistoryEvent {
    pub id: i64,
    pub at: DateTime<Utc>,
    /// `null` for environment-wide events (backups).
    pub plan: Option<String>,
    pub kind: EventKind,
    pub phase: Option<usize>,
    pub step: Option<String>,
    /// The event's detail: a JSON object or list when the event records one
    /// (a plan's start, a backfill's checkpoint), else the text (an app
    /// version, an error, a backup's location).
    pub detail: serde_json::Value,
    /// Who or what recorded it.
    pub actor: String,
}

impl From<&Event> for HistoryEvent {
    fn from(e: &Event) -> HistoryEvent {
        HistoryEvent {
            id: e.id,
            at: e.at,
            plan: e.plan.clone(),
            kind: e.kind,
            phase: e.phase,
            step: e.step.clone(),
            detail: detail_value(&e.detail),
            actor: e.actor.clone(),
        }
    }
}

/// A detail that is a JSON object or list as that value; any other text
/// (an app version such as `2`, which parses as a number) as a string.
fn detail_value(detail: &str) -> serde_json::Value {
    let t = detail.trim_start();
    if (t.starts_with('{') || t.starts_with('['))
        && let Ok(v) = serde_json::from_str::<serde_json::Value>(detail)
    {
        return v;
    }
    serde_json::Value::String(detail.to_string())
}

/// `phasegate history`.
pub async fn run(ws: &Workspace<'_>, env: &str, plan: Option<&str>) -> Report<HistoryPayload> {
    let events = match ws.history(env, plan).await {
        Ok(e) => e,
        Err(e) => return Report::from_error("history", &e),
    };
    let payload = HistoryPayload {
        env: env.to_string(),
        plan: plan.map(str::to_string),
        events: events.iter().map(HistoryEvent::from).collect(),
    };
    Report::done("history", text(&events), payload)
}

/// The log, one event a line.
fn text(events: &[Event]) -> String {
    let mut out = String::new();
    for e in events {
        let _ = writeln!(
            out,
            "{}  {:<18} {:<28} {}{}{}  ({})",
            e.at.format("%Y-%m-%d %H:%M:%S"),
            e.kind.name(),
            e.plan.as_deref().unwrap_or("-"),
            e.phase.map(|p| format!("phase {p} ")).unwrap_or_default(),
            e.step.as_deref().unwrap_or(""),
            if e.kind == EventKind::PlanStarted
                || e.kind == EventKind::ChangeAccepted
                || e.detail.is_empty()
            {
                String::new()
            } else {
                format!(" {}", first_line(&e.detail))
            },
            e.actor
        );
    }
    if events.is_empty() {
        out.push_str("no events\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::detail_value;

    #[test]
    fn a_json_detail_is_a_value_and_text_stays_text() {
        assert_eq!(
            detail_value(r#"{"last":["7"],"updated":7}"#)["updated"],
            serde_json::json!(7)
        );
        assert_eq!(detail_value("2"), serde_json::json!("2"));
        assert_eq!(detail_value("v1.2"), serde_json::json!("v1.2"));
        assert_eq!(detail_value("{not json"), serde_json::json!("{not json"));
    }
}
