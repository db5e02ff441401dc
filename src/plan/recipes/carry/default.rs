//! The column's default (MySQL: with `ON UPDATE` and the comment, which a
//! `MODIFY` must restate or lose).
//!
//! A default is moved to the new column at the contract, not before: while
//! both columns exist, a default on the new one would look like a value the
//! writer set, and the sync trigger would copy it over the old column
//! (a `nextval` default would also draw two numbers per insert). Rename and
//! type change alike; offline, Postgres moves whatever default the old
//! column has when the contract runs. MySQL/MariaDB: see [`mysql_extras`].

use crate::catalog::ColumnCensus;

/// MySQL/MariaDB: what a column definition restated by `MODIFY` must keep
/// beyond type, character set, collation and default: `ON UPDATE …` and the
/// comment (`information_schema.COLUMNS.EXTRA` and `COLUMN_COMMENT`).
pub(crate) fn mysql_extras(census: Option<&ColumnCensus>) -> (Option<String>, Option<String>) {
    census.map_or((None, None), |c| (c.on_update.clone(), c.comment.clone()))
}
