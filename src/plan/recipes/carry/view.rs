//! Views and materialized views that use the column: refused, all dialects.
//!
//! Postgres binds a view to the column itself (`pg_depend`), so DROP COLUMN
//! fails with "other objects depend on it"; MySQL/MariaDB let the column go
//! and every later query of the view fails; SQLite's DROP COLUMN fails on a
//! view that names the column. A view's text could be rewritten for the new
//! column only by parsing it, and its output column names would change:
//! phasegate names the view and the way forward instead of guessing.

use super::review::{Subject, dependents, refuse};
use crate::catalog::DependentKind;
use crate::dialect::Dialect;
use crate::plan::{PlanningError, Recipe};

pub(super) fn review(r: &Recipe<'_>, s: &Subject<'_>) -> Result<(), PlanningError> {
    for kind in [DependentKind::View, DependentKind::MaterializedView] {
        if let Some(v) = dependents(s, kind).next() {
            let why = match s.dialect {
                Dialect::Mysql => {
                    "MySQL lets the column go, and every query of the view fails after"
                }
                Dialect::Postgres => "Postgres binds a view to the column and refuses to drop it",
                Dialect::Sqlite => "SQLite refuses to drop a column a view names",
            };
            return Err(refuse(
                r,
                s,
                &format!("{} {}", kind.noun(), v.name),
                why,
                &format!(
                    "drop {} or redefine it without {} in an earlier plan (a `sql` change)",
                    v.name, s.column
                ),
            ));
        }
    }
    Ok(())
}
