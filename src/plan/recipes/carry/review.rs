//! The objects a change cannot carry, reviewed the same way for a column
//! that is replaced (rename, type change through a new column) and one that
//! is dropped: each kind's file says whether the plan goes on (with a note)
//! or is refused before anything runs, naming the object and the way
//! forward.

use crate::catalog::TableFacts;
use crate::dialect::Dialect;
use crate::name::{Ident, TableName};
use crate::plan::{PlanningError, Recipe};

/// What the change does to the column.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Fate<'a> {
    /// A new column takes its place; the old one is dropped at the contract.
    Replaced { by: &'a Ident },
    /// The column is dropped.
    Dropped,
}

/// The column under review.
pub(crate) struct Subject<'a> {
    pub table: &'a TableName,
    pub column: &'a Ident,
    pub facts: &'a TableFacts,
    pub fate: Fate<'a>,
    pub dialect: Dialect,
}

impl Subject<'_> {
    /// "the contract's DROP COLUMN" or "the DROP COLUMN".
    pub fn the_drop(&self) -> &'static str {
        match self.fate {
            Fate::Replaced { .. } => "the contract's DROP COLUMN",
            Fate::Dropped => "the DROP COLUMN",
        }
    }

    /// What to do after removing the object's use of the column.
    pub fn then(&self) -> String {
        match self.fate {
            Fate::Replaced { by } => format!(
                "recreate it over {by} once the contract has run (or make it use {by} before then)"
            ),
            Fate::Dropped => "then plan this drop again".to_string(),
        }
    }
}

/// Reviews every kind of object that hangs on the column; the notes to add
/// to the plan, or the first refusal.
pub(crate) fn review(r: &Recipe<'_>, s: &Subject<'_>) -> Result<Vec<String>, PlanningError> {
    let mut notes = Vec::new();
    super::system_versioning::review(r, s)?;
    super::foreign_key::review(r, s)?;
    super::replica_identity::review(r, s)?;
    super::trigger::review(r, s, &mut notes)?;
    super::generated::review(r, s)?;
    super::view::review(r, s)?;
    super::rule::review(r, s)?;
    super::policy::review(r, s)?;
    super::publication::review(r, s)?;
    super::statistics::review(s, &mut notes);
    super::other::review(r, s)?;
    super::sequence::review_drop(r, s, &mut notes)?;
    super::dropped_constraints::review(r, s, &mut notes)?;
    Ok(notes)
}

/// The dependents of kind `kind` that use the column.
pub(super) fn dependents<'a>(
    s: &'a Subject<'a>,
    kind: crate::catalog::DependentKind,
) -> impl Iterator<Item = &'a crate::catalog::Dependent> {
    s.facts
        .census
        .dependents_of(s.column)
        .filter(move |d| d.kind == kind)
}

/// The refusal for object `what` (kind and name) that uses the column:
/// `why` the change cannot go on, and `fix`, what to do first.
pub(super) fn refuse(
    r: &Recipe<'_>,
    s: &Subject<'_>,
    what: &str,
    why: &str,
    fix: &str,
) -> PlanningError {
    r.unsupported(format!(
        "{what} uses {}.{}, so {} would fail or break it ({why}). Way forward: {fix}, {}",
        s.table,
        s.column,
        s.the_drop(),
        s.then()
    ))
}

/// [`refuse`] with a way forward that says all of it (no "then …").
pub(super) fn refuse_exact(
    r: &Recipe<'_>,
    s: &Subject<'_>,
    what: &str,
    why: &str,
    fix: &str,
) -> PlanningError {
    r.unsupported(format!(
        "{what} uses {}.{}, so {} would fail or break it ({why}). Way forward: {fix}",
        s.table,
        s.column,
        s.the_drop()
    ))
}
