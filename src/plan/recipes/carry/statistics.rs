//! Extended statistics (Postgres `CREATE STATISTICS`) on the column: noted.
//! Postgres drops a statistics object with any column it covers; losing it
//! only changes the planner's estimates, which a user can reasonably accept,
//! so the plan goes on and says so.

use super::review::{Fate, Subject, dependents};
use crate::catalog::DependentKind;

pub(super) fn review(s: &Subject<'_>, notes: &mut Vec<String>) {
    for d in dependents(s, DependentKind::Statistics) {
        let fix = match s.fate {
            Fate::Replaced { by } => format!(
                "; recreate it over {by} after the contract with a `sql` change (CREATE STATISTICS … ON {by}, …) if the query planner needs it"
            ),
            Fate::Dropped => String::new(),
        };
        notes.push(format!(
            "extended statistics object {} covers {}.{} and is dropped with it{fix}",
            d.name, s.table, s.column
        ));
    }
}
