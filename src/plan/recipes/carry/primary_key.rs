//! The primary key, when the old column is (part of) it.
//!
//! Postgres: the copy of its index becomes the primary key at the contract,
//! once the old column is dropped (`ADD CONSTRAINT … PRIMARY KEY USING
//! INDEX`: no scan, NOT NULL is already enforced on the copy).
//! MySQL/MariaDB and SQLite: refused — moving a primary key rebuilds the
//! table with writes blocked (MySQL), and SQLite cannot drop a key column.

use super::{Cx, PrimaryKeyCtx};
use crate::catalog::IndexFacts;
use crate::name::Ident;
use crate::plan::PlanningError;

/// The primary key `index` moved onto its copy `copy` at the contract.
pub(super) fn postgres(index: &IndexFacts, copy: &Ident) -> PrimaryKeyCtx {
    PrimaryKeyCtx {
        constraint: index
            .constraint
            .as_ref()
            .unwrap_or(&index.name)
            .as_str()
            .to_string(),
        index: copy.as_str().to_string(),
    }
}

pub(super) fn mysql(cx: &Cx<'_>) -> Result<(), PlanningError> {
    if cx.facts.primary_key.contains(cx.old) {
        return Err(cx.r.unsupported(format!(
            "{}.{} is part of the primary key, which MySQL cannot move to another column without rebuilding the table with writes blocked; do it in a maintenance window with a `sql` change",
            cx.t, cx.old
        )));
    }
    Ok(())
}

pub(super) fn sqlite(cx: &Cx<'_>) -> Result<(), PlanningError> {
    if cx.facts.primary_key.contains(cx.old) {
        return Err(super::sqlite_refusal(
            cx,
            format!("{}.{} is part of the primary key", cx.t, cx.old),
        ));
    }
    Ok(())
}
