//! The table's own triggers (not phasegate's sync triggers).
//!
//! A trigger whose definition or code names the column is refused, all
//! dialects: phasegate cannot rewrite trigger code. While both columns
//! exist such a trigger races the sync trigger (the order triggers fire in
//! decides which value wins, so verification fails or, worse, passes), and
//! after the contract or drop every write that fires it fails (Postgres:
//! `record "new" has no field …`). A trigger that does not name the column
//! is only noted when it fires on UPDATE: the backfill's batches fire it
//! for every row they touch.

use super::review::{Fate, Subject, refuse};
use crate::plan::{PlanningError, Recipe};

pub(super) fn review(
    r: &Recipe<'_>,
    s: &Subject<'_>,
    notes: &mut Vec<String>,
) -> Result<(), PlanningError> {
    // phasegate's own sync trigger for this very copy (the plan made again
    // after its first phase ran) is expected; any other phasegate sync
    // trigger that names the column belongs to another plan in progress.
    let own: Vec<String> = match s.fate {
        Fate::Replaced { by } => ["sync", "sync_ins", "sync_upd"]
            .iter()
            .map(|suffix| {
                crate::plan::derived_name(&[
                    s.table.name.as_str(),
                    s.column.as_str(),
                    by.as_str(),
                    suffix,
                ])
                .as_str()
                .to_string()
            })
            .collect(),
        Fate::Dropped => Vec::new(),
    };
    for t in s.facts.census.triggers.iter().filter(|t| t.phasegate) {
        if t.mentions.contains(s.column) && !own.iter().any(|o| o == t.name.as_str()) {
            return Err(refuse(
                r,
                s,
                &format!("phasegate's sync trigger {} on {}", t.name, s.table),
                "another plan in progress keeps this column in step with its replacement, and its writes would fail",
                "finish (or roll back) that plan first",
            ));
        }
    }
    for t in s.facts.census.triggers.iter().filter(|t| !t.phasegate) {
        let on = t.on.clone().unwrap_or_else(|| s.table.to_string());
        let what = format!(
            "trigger {} on {on} ({}{}{})",
            t.name,
            if t.when.is_empty() {
                "its code names this table"
            } else {
                t.when.as_str()
            },
            t.function
                .as_ref()
                .map_or_else(String::new, |f| format!(", function {f}")),
            if t.enabled { "" } else { ", disabled" }
        );
        if t.mentions.contains(s.column) {
            let why = match s.fate {
                Fate::Replaced { .. } => {
                    "phasegate cannot rewrite trigger code: while both columns exist it races the sync trigger, and after the contract every write that fires it fails"
                }
                Fate::Dropped => {
                    "phasegate cannot rewrite trigger code, and after the drop every write that fires it fails"
                }
            };
            return Err(refuse(
                r,
                s,
                &what,
                why,
                &format!(
                    "change the trigger so it no longer uses {} (or drop it) in an earlier plan (a `sql` change)",
                    s.column
                ),
            ));
        }
        if t.on.is_none()
            && matches!(s.fate, Fate::Replaced { .. })
            && t.when.to_ascii_uppercase().contains("UPDATE")
        {
            notes.push(format!(
                "{what} fires for every row the backfill updates; if it writes elsewhere (an audit log), expect one write per row"
            ));
        }
    }
    Ok(())
}
