//! Row-level security policies (Postgres) whose USING or WITH CHECK uses the
//! column: refused. DROP COLUMN fails while they exist, and a policy cannot
//! be rewritten to the new column without changing who sees which rows
//! while both columns exist, which is the owner's call.

use super::review::{Subject, dependents, refuse};
use crate::catalog::DependentKind;
use crate::plan::{PlanningError, Recipe};

pub(super) fn review(r: &Recipe<'_>, s: &Subject<'_>) -> Result<(), PlanningError> {
    match dependents(s, DependentKind::Policy).next() {
        Some(d) => Err(refuse(
            r,
            s,
            &format!("row-level security policy {}", d.name),
            "Postgres refuses to drop a column a policy uses",
            &format!(
                "ALTER POLICY {} so it does not use {} (a `sql` change in an earlier plan)",
                d.name.replacen(" on ", " ON ", 1),
                s.column
            ),
        )),
        None => Ok(()),
    }
}
