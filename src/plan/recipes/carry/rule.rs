//! Rules (Postgres `CREATE RULE`, other than a view's own) that use the
//! column: refused, since DROP COLUMN fails while they exist and phasegate
//! does not rewrite rule actions.

use super::review::{Subject, dependents, refuse};
use crate::catalog::DependentKind;
use crate::plan::{PlanningError, Recipe};

pub(super) fn review(r: &Recipe<'_>, s: &Subject<'_>) -> Result<(), PlanningError> {
    match dependents(s, DependentKind::Rule).next() {
        Some(d) => Err(refuse(
            r,
            s,
            &format!("rule {}", d.name),
            "Postgres refuses to drop a column a rule uses",
            "drop the rule or redefine it without the column in an earlier plan (a `sql` change)",
        )),
        None => Ok(()),
    }
}
