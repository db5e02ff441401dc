//! Foreign keys: the old column's own, and other tables' that reference it.
//!
//! | dialect | the old column's foreign key | a foreign key that references the old column |
//! |---|---|---|
//! | Postgres | recreated for the new column `NOT VALID`, then validated | refused (DROP COLUMN fails while it exists): see [`review`] |
//! | MySQL/MariaDB | added for the new column in place with `foreign_key_checks` off (the verified copy holds checked values); the original dropped by name with the old column | refused |
//! | SQLite | declared inline: declared again with the new column; a table-level `FOREIGN KEY`: refused | refused (DROP COLUMN would leave it dangling) |

use super::review::{Fate, Subject, refuse_exact};
use super::{CarriedForeignKey, Carry, Cx, ForeignKeyCtx, ReferenceCtx, parts, strings, swap};
use crate::catalog::ForeignKeyFacts;
use crate::name::Ident;
use crate::plan::recipes::cols_text;
use crate::plan::{PlanningError, Recipe};

/// Copies of the old column's named foreign keys for the new one.
/// Postgres adds them `NOT VALID` and validates them if the original was
/// validated; MySQL adds them in place without a scan (the copy equals the
/// old column, which the old key checks) and drops the originals by name
/// with the old column.
pub(super) fn carry(cx: &Cx<'_>, carry: &mut Carry, taken: &mut Vec<String>) {
    let (old, new) = (cx.old, cx.new);
    let mysql = cx.r.dialect == crate::dialect::Dialect::Mysql;
    for fk in cx
        .facts
        .foreign_keys
        .iter()
        .filter(|f| f.columns.contains(old))
    {
        let Some(name) = &fk.name else { continue };
        let mut copy = fk_copy(fk, name, old, new, taken);
        if mysql {
            carry.drop_foreign_keys.push(name.as_str().to_string());
            copy.validate = false;
        }
        carry.foreign_keys.push(copy);
    }
}

/// Refuses what SQLite's DROP COLUMN cannot drop: a table-level foreign key
/// naming the column (another table's key referencing it: [`review`]).
pub(super) fn sqlite_refusals(cx: &Cx<'_>) -> Result<(), PlanningError> {
    let (t, old) = (cx.t, cx.old);
    for fk in cx
        .facts
        .foreign_keys
        .iter()
        .filter(|f| f.columns.contains(old))
    {
        if !fk.declared_inline {
            return Err(super::sqlite_refusal(
                cx,
                format!(
                    "the table-level FOREIGN KEY ({}) of {t} names {old}",
                    cols_text(&fk.columns)
                ),
            ));
        }
    }
    Ok(())
}

/// SQLite: the old column's inline foreign key, declared with the new column.
pub(super) fn sqlite(cx: &Cx<'_>, carry: &mut Carry) {
    if let Some(fk) = cx
        .facts
        .foreign_keys
        .iter()
        .find(|f| f.declared_inline && f.columns == [cx.old.clone()])
    {
        carry.inline_reference = Some(ReferenceCtx {
            parent: fk.references.name.as_str().to_string(),
            parent_columns: strings(&fk.referenced_columns),
            on_delete: fk.on_delete.sql(),
            on_update: fk.on_update.sql(),
        });
    }
}

/// A copy of the old column's foreign key `fk` (named `name`) for `new`.
fn fk_copy(
    fk: &ForeignKeyFacts,
    name: &Ident,
    old: &Ident,
    new: &Ident,
    taken: &mut Vec<String>,
) -> CarriedForeignKey {
    CarriedForeignKey {
        old: name.clone(),
        ctx: ForeignKeyCtx {
            constraint: super::carried_name(name.as_str(), old, new, taken)
                .as_str()
                .to_string(),
            columns: strings(&swap(&fk.columns, old, new)),
            parent: parts(&fk.references),
            parent_columns: strings(&fk.referenced_columns),
            match_full: fk.match_full,
            on_delete: fk.on_delete.sql(),
            on_update: fk.on_update.sql(),
            deferrable: fk.deferrable,
            deferred: fk.initially_deferred,
        },
        parent: fk.references.clone(),
        validate: fk.validated,
    }
}

/// A foreign key (of another table, or a self-reference) that references
/// the column: refused for a rename, type change and drop alike. DROP
/// COLUMN fails while it exists (Postgres: "other objects depend on it";
/// MySQL 1828; SQLite would leave it dangling), so the irreversible deploy
/// could never run; moving it means a new key on the child table, validated,
/// which is a change of its own.
pub(super) fn review(r: &Recipe<'_>, s: &Subject<'_>) -> Result<(), PlanningError> {
    let Some(fk) = s
        .facts
        .referenced_by
        .iter()
        .find(|f| f.referenced_columns.contains(s.column))
    else {
        return Ok(());
    };
    let name = fk
        .name
        .as_ref()
        .map_or_else(String::new, |n| format!(" {n}"));
    let fix = match s.fate {
        Fate::Replaced { by } => format!(
            "in an earlier plan, drop foreign key{name} of {} ({}) (a `sql` change); after this plan's contract, add it again referencing {}.{by} with an add_foreign_key change",
            fk.table,
            cols_text(&fk.columns),
            s.table
        ),
        Fate::Dropped => format!(
            "drop foreign key{name} of {} ({}) in an earlier plan (a `sql` change)",
            fk.table,
            cols_text(&fk.columns)
        ),
    };
    Err(refuse_exact(
        r,
        s,
        &format!(
            "foreign key{name} of {} ({})",
            fk.table,
            cols_text(&fk.columns)
        ),
        "the database refuses to drop a column a foreign key references",
        &fix,
    ))
}
