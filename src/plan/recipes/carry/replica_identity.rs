//! The table's replica identity (Postgres `REPLICA IDENTITY USING INDEX`):
//! refused when its index uses the column. Dropping the column drops the
//! index, after which every UPDATE and DELETE of a published table fails
//! ("does not have a replica identity and publishes updates"); Postgres
//! also refuses to relax NOT NULL on such a column. Moving the identity to
//! the copy's index is a replication decision for the owner.

use super::review::{Subject, refuse};
use crate::plan::{PlanningError, Recipe};

pub(super) fn review(r: &Recipe<'_>, s: &Subject<'_>) -> Result<(), PlanningError> {
    let Some(index) = &s.facts.census.replica_identity else {
        return Ok(());
    };
    let uses = s
        .facts
        .indexes
        .iter()
        .any(|i| &i.name == index && i.uses(s.column));
    if !uses {
        return Ok(());
    }
    Err(refuse(
        r,
        s,
        &format!("index {index}, the replica identity of {}", s.table),
        "logical replication identifies rows by it, and updates and deletes of a published table fail without it",
        &format!(
            "in an earlier plan, `ALTER TABLE {} REPLICA IDENTITY DEFAULT` (or USING another index) with a `sql` change",
            s.table
        ),
    ))
}
