//! Unique constraints on the old column.
//!
//! Postgres: the constraint is attached to the copy of its index with `ADD
//! CONSTRAINT … UNIQUE USING INDEX` (no scan), deferrability kept.
//! MySQL/MariaDB: a unique key is an index ([`super::index`]).
//! SQLite: refused — SQLite's DROP COLUMN cannot drop a UNIQUE column, so
//! the contract could never run.

use super::{Cx, UniqueCtx};
use crate::catalog::IndexFacts;
use crate::name::Ident;
use crate::plan::PlanningError;

/// The unique constraint `index` implements, attached to its copy `copy`.
pub(super) fn postgres(
    cx: &Cx<'_>,
    index: &IndexFacts,
    copy: &Ident,
    taken: &mut Vec<String>,
) -> Option<UniqueCtx> {
    let (old, new) = (cx.old, cx.new);
    cx.facts
        .uniques
        .iter()
        .find(|u| u.index == index.name)
        .map(|u| {
            let constraint = if u.name == index.name {
                copy.clone()
            } else {
                super::carried_name(u.name.as_str(), old, new, taken)
            };
            UniqueCtx {
                constraint: constraint.as_str().to_string(),
                index: copy.as_str().to_string(),
                deferrable: u.deferrable,
                deferred: u.initially_deferred,
            }
        })
}

pub(super) fn sqlite(cx: &Cx<'_>) -> Result<(), PlanningError> {
    match cx.facts.uniques.iter().find(|u| u.columns.contains(cx.old)) {
        Some(u) => Err(super::sqlite_refusal(
            cx,
            format!(
                "{}.{} has a UNIQUE constraint ({})",
                cx.t,
                cx.old,
                crate::plan::recipes::cols_text(&u.columns)
            ),
        )),
        None => Ok(()),
    }
}
