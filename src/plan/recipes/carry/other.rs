//! Any other object the database records as depending on the column
//! (Postgres `pg_depend`: an object of a kind phasegate has no rule for):
//! refused, named as Postgres describes it, since DROP COLUMN would fail on
//! it at the irreversible deploy.

use super::review::{Subject, dependents, refuse};
use crate::catalog::DependentKind;
use crate::plan::{PlanningError, Recipe};

pub(super) fn review(r: &Recipe<'_>, s: &Subject<'_>) -> Result<(), PlanningError> {
    match dependents(s, DependentKind::Other).next() {
        Some(d) => Err(refuse(
            r,
            s,
            &d.name,
            "the database records it as depending on the column, and phasegate has no rule for carrying it",
            "drop it or make it stop using the column in an earlier plan (a `sql` change)",
        )),
        None => Ok(()),
    }
}
