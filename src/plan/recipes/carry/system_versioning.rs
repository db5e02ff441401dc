//! MariaDB tables `WITH SYSTEM VERSIONING`: refused. Their columns cannot
//! be added, changed or dropped unless the session sets
//! `system_versioning_alter_history = KEEP`, which rewrites history rows
//! too (MariaDB error 4119 otherwise): a decision for the table's owner.

use super::review::Subject;
use crate::plan::{PlanningError, Recipe};

pub(super) fn review(r: &Recipe<'_>, s: &Subject<'_>) -> Result<(), PlanningError> {
    if !s.facts.census.system_versioned {
        return Ok(());
    }
    Err(r.unsupported(format!(
        "{} is a system-versioned table: MariaDB refuses to change its columns (error 4119) unless the session sets system_versioning_alter_history = KEEP, which alters its history rows as well. Way forward: change {} with a `sql` change that sets it, in a maintenance window",
        s.table, s.column
    )))
}
