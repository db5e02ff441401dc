//! Publications (Postgres 15+ logical replication) whose column list names
//! the column: refused. DROP COLUMN fails while the list names it, and
//! changing what a publication sends changes what subscribers receive.

use super::review::{Subject, dependents, refuse};
use crate::catalog::DependentKind;
use crate::plan::{PlanningError, Recipe};

pub(super) fn review(r: &Recipe<'_>, s: &Subject<'_>) -> Result<(), PlanningError> {
    match dependents(s, DependentKind::Publication).next() {
        Some(d) => Err(refuse(
            r,
            s,
            &format!("publication {} (its column list for {})", d.name, s.table),
            "Postgres refuses to drop a column a publication's column list names",
            &format!(
                "ALTER PUBLICATION {} SET TABLE {} (…) without {} (a `sql` change in an earlier plan; subscribers stop receiving it)",
                d.name, s.table, s.column
            ),
        )),
        None => Ok(()),
    }
}
