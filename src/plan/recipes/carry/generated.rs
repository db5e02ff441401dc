//! Generated columns computed from the column: refused, all dialects.
//!
//! Postgres (12+), MySQL/MariaDB and SQLite all refuse to drop a column a
//! generated column uses, and only Postgres 17 can change a generation
//! expression in place (`ALTER COLUMN … SET EXPRESSION`), which rewrites
//! the table. The plan names the generated column and the way forward.
//! The old column being itself generated is refused by the copy: there is
//! nothing to backfill into a column the database computes.

use super::review::{Fate, Subject, dependents, refuse};
use crate::catalog::DependentKind;
use crate::plan::{PlanningError, Recipe};

pub(super) fn review(r: &Recipe<'_>, s: &Subject<'_>) -> Result<(), PlanningError> {
    if let Some(d) = dependents(s, DependentKind::GeneratedColumn).next() {
        return Err(refuse(
            r,
            s,
            &format!("generated column {}.{}", s.table, d.name),
            "the database refuses to drop a column a generated column is computed from",
            &format!(
                "drop {} or give it an expression without {} in an earlier plan (a `sql` change)",
                d.name, s.column
            ),
        ));
    }
    if let (Fate::Replaced { by }, Some(expression)) =
        (s.fate, s.facts.census.column(s.column).generated)
    {
        return Err(r.unsupported(format!(
            "{}.{} is a generated column (AS ({expression})): the database computes it, so it cannot be copied into {by} and kept in step by a trigger. Way forward: add {by} as a generated column with the same expression and drop {} later, with `sql` changes",
            s.table, s.column, s.column
        )));
    }
    Ok(())
}
