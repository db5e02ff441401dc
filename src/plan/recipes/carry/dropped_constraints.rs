//! What a dropped column takes with it: the indexes and constraints that
//! use it together with other columns.
//!
//! Postgres drops every index and constraint that uses the column
//! (`UNIQUE (tenant, kind)` goes, and with it the uniqueness of `tenant`'s
//! pairs), so each is noted. SQLite refuses the drop (at the irreversible
//! deploy) when a PRIMARY KEY, UNIQUE or table CHECK or table-level FOREIGN
//! KEY names the column, so those are refused here, before anything runs.
//! MySQL drops them by name with the column (`drop_column.rs` notes
//! composite indexes).

use super::review::{Fate, Subject};
use crate::dialect::Dialect;
use crate::plan::recipes::cols_text;
use crate::plan::{PlanningError, Recipe};

pub(super) fn review(
    r: &Recipe<'_>,
    s: &Subject<'_>,
    notes: &mut Vec<String>,
) -> Result<(), PlanningError> {
    if !matches!(s.fate, Fate::Dropped) {
        return Ok(());
    }
    let (t, c, f) = (s.table, s.column, s.facts);
    match s.dialect {
        Dialect::Sqlite => {
            let refuse = |what: String| {
                r.unsupported(format!(
                    "{what} names {t}.{c}, and SQLite's DROP COLUMN fails on such a column, at the irreversible deploy. Way forward: rebuild {t} without {c} with a `sql` change"
                ))
            };
            if f.primary_key.contains(c) {
                return Err(refuse("the PRIMARY KEY".to_string()));
            }
            if let Some(u) = f.uniques.iter().find(|u| u.columns.contains(c)) {
                return Err(refuse(format!("UNIQUE ({})", cols_text(&u.columns))));
            }
            if let Some(k) = f
                .checks
                .iter()
                .find(|k| k.columns.contains(c) && k.column.as_ref() != Some(c))
            {
                return Err(refuse(format!("CHECK ({})", k.expression)));
            }
            if let Some(fk) = f
                .foreign_keys
                .iter()
                .find(|fk| fk.columns.contains(c) && !fk.declared_inline)
            {
                return Err(refuse(format!(
                    "the table-level FOREIGN KEY ({})",
                    cols_text(&fk.columns)
                )));
            }
        }
        Dialect::Postgres => {
            for i in f
                .indexes
                .iter()
                .filter(|i| i.uses(c) && i.columns_used.len() > 1)
            {
                notes.push(format!(
                    "{} {} on {t} ({}) uses {c} and goes with it; if the other columns still need it, add it again without {c} before the drop",
                    if i.primary {
                        "primary key index"
                    } else if i.unique {
                        "unique index"
                    } else {
                        "index"
                    },
                    i.name,
                    cols_text(&i.columns_used)
                ));
            }
            for k in f
                .checks
                .iter()
                .filter(|k| k.columns.contains(c) && k.columns.len() > 1)
            {
                notes.push(format!(
                    "check {} ({}) uses {c} and other columns, and goes with it",
                    k.name.as_ref().map_or("", |n| n.as_str()),
                    k.expression
                ));
            }
        }
        Dialect::Mysql => {}
    }
    Ok(())
}
