//! Pinned step SQL: what runs is what was reviewed.
//!
//! When a plan starts in an environment (`plan_started`), and whenever an
//! edit is accepted on purpose (`change_accepted`), the event's detail holds
//! a `steps` key: for every step of the plan as it was planned then, its up
//! and down SQL and a checksum of everything that decides what the step runs
//! (kind, up, down, whether it runs in a transaction, a verification's
//! expected value, a backfill's and a rollback fill's parts). Every later
//! command plans the plan again (against the schema recorded at the start)
//! and compares: a step whose checksum differs, or a step added or removed,
//! is drift, whatever caused it — an edited plan file, a template override
//! added under `templates/`, a phasegate upgrade that renders other SQL.
//!
//! A log written before steps were pinned has no `steps` key: such a plan is
//! "not pinned"; the drift gate then compares only the plan file's text (as
//! before) and says so, and `phasegate accept-change` pins the steps as they
//! are planned now.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::plan::{Plan, Step};

/// One step as pinned: its SQL (for messages) and the checksum compared.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PinnedStep {
    /// SHA-256 (hex) of the step's kind, up and down SQL, transactionality,
    /// expected value, backfill and rollback fill, as JSON.
    pub sum: String,
    /// The SQL the step runs (`None` for app steps; a backfill's is a sketch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub up: Option<String>,
    /// The SQL that undoes it (`None` when it has none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub down: Option<String>,
}

/// Pinned steps by step id (`1.add_column`).
pub type Pins = BTreeMap<String, PinnedStep>;

/// The pins of every step of `plan`.
pub fn pins(plan: &Plan) -> Pins {
    plan.steps.iter().map(|s| (s.id.clone(), pin(s))).collect()
}

fn pin(step: &Step) -> PinnedStep {
    let what = serde_json::json!({
        "kind": step.kind,
        "up": step.sql,
        "down": step.rollback_sql,
        "transactional": step.transactional,
        "reversible": step.reversible,
        "expect": step.expect,
        "backfill": step.backfill,
        "rollback_fill": step.rollback_fill,
    });
    PinnedStep {
        sum: super::checksum(&what.to_string()),
        up: step.sql.clone(),
        down: step.rollback_sql.clone(),
    }
}

/// How each step differs between the pinned steps and the ones planned now,
/// one line per step, in step-id order; empty when they agree.
pub fn changed_steps(pinned: &Pins, now: &Pins) -> Vec<String> {
    let mut out = Vec::new();
    for (id, was) in pinned {
        match now.get(id) {
            None => out.push(format!("{id}: no longer in the plan")),
            Some(is) if is.sum == was.sum => {}
            Some(is) => {
                let before = out.len();
                let parts = [
                    ("SQL", &was.up, &is.up),
                    ("rollback SQL", &was.down, &is.down),
                ];
                for (what, was, is) in parts {
                    if was != is {
                        out.push(format!(
                            "{id}: its {what} changed\n      was: {}\n      now: {}",
                            one_line(was.as_deref()),
                            one_line(is.as_deref())
                        ));
                    }
                }
                if out.len() == before {
                    out.push(format!(
                        "{id}: how it runs changed (transaction, backfill or expected value)"
                    ));
                }
            }
        }
    }
    for id in now.keys().filter(|id| !pinned.contains_key(*id)) {
        out.push(format!("{id}: new in the plan"));
    }
    out
}

/// SQL on one line, shortened to 160 characters.
fn one_line(sql: Option<&str>) -> String {
    let Some(sql) = sql else {
        return "(none)".into();
    };
    let flat = sql.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() > 160 {
        format!("{}…", flat.chars().take(160).collect::<String>())
    } else {
        flat
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(sum: &str, up: &str) -> PinnedStep {
        PinnedStep {
            sum: sum.into(),
            up: Some(up.into()),
            down: None,
        }
    }

    #[test]
    fn names_each_changed_added_and_removed_step() {
        let was: Pins = [
            ("1.a".to_string(), p("x", "DROP COLUMN legacy")),
            ("1.b".to_string(), p("y", "SELECT 1")),
        ]
        .into();
        let now: Pins = [
            ("1.a".to_string(), p("z", "DROP COLUMN other")),
            ("1.c".to_string(), p("w", "SELECT 2")),
        ]
        .into();
        let lines = changed_steps(&was, &now);
        assert_eq!(lines.len(), 3, "{lines:?}");
        assert!(lines[0].starts_with("1.a: its SQL changed"), "{lines:?}");
        assert!(lines[0].contains("was: DROP COLUMN legacy"), "{lines:?}");
        assert!(lines[0].contains("now: DROP COLUMN other"), "{lines:?}");
        assert_eq!(lines[1], "1.b: no longer in the plan");
        assert_eq!(lines[2], "1.c: new in the plan");
        assert!(changed_steps(&was, &was).is_empty());
    }
}
