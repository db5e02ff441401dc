//! Foreign keys: the old column's own, and other tables' that reference it.
//!
//! | dialect | the old column's foreign key | a foreign key that references the old column |
//! |---|---|---|
//! | Postgres | recreated for the new column `NOT VALID`, then validated | noted: point it at the new column before the contract |
//! | MySQL/MariaDB | added for the new column in place with `foreign_key_checks` off (the verified copy holds checked values); the original dropped by name with the old column | noted |
//! | SQLite | declared inline: declared again with the new column; a table-level `FOREIGN KEY`: refused | refused (DROP COLUMN would leave it dangling) |

use super::{CarriedForeignKey, Carry, Cx, ForeignKeyCtx, ReferenceCtx, parts, strings, swap};
use crate::catalog::{ForeignKeyFacts, TableFacts};
use crate::name::{Ident, TableName};
use crate::plan::PlanningError;
use crate::plan::recipes::cols_text;

pub(super) fn postgres(cx: &Cx<'_>, carry: &mut Carry, taken: &mut Vec<String>) {
    let (t, old, new) = (cx.t, cx.old, cx.new);
    for fk in cx
        .facts
        .foreign_keys
        .iter()
        .filter(|f| f.columns.contains(old))
    {
        let Some(name) = &fk.name else { continue };
        carry.foreign_keys.push(fk_copy(fk, name, old, new, taken));
    }
    carry.notes.extend(referencing_notes(
        t,
        cx.facts,
        old,
        new,
        &format!("add a foreign key to {new} NOT VALID, VALIDATE it, drop the old one, with a `sql` change; {new} has the same unique index by then"),
    ));
}

pub(super) fn mysql(cx: &Cx<'_>, carry: &mut Carry, taken: &mut Vec<String>) {
    let (t, old, new) = (cx.t, cx.old, cx.new);
    for fk in cx
        .facts
        .foreign_keys
        .iter()
        .filter(|f| f.columns.contains(old))
    {
        let Some(name) = &fk.name else { continue };
        carry.drop_foreign_keys.push(name.as_str().to_string());
        let mut copy = fk_copy(fk, name, old, new, taken);
        // The copy equals the old column, which the old key checks.
        copy.validate = false;
        carry.foreign_keys.push(copy);
    }
    carry.notes.extend(referencing_notes(
        t,
        cx.facts,
        old,
        new,
        &format!("{new} has the same unique index by then: add the new key with an add_foreign_key change, drop the old one with a `sql` change"),
    ));
}

/// Refuses what SQLite's DROP COLUMN cannot drop: a table-level foreign key
/// naming the column, and another table's key referencing it.
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
    if let Some(fk) = cx
        .facts
        .referenced_by
        .iter()
        .find(|f| f.referenced_columns.contains(old))
    {
        return Err(cx.r.unsupported(format!(
            "{} ({}) references {t}.{old}: SQLite's DROP COLUMN at the contract would leave that foreign key pointing at a column that no longer exists; rebuild both tables with a `sql` change instead",
            fk.table,
            cols_text(&fk.columns)
        )));
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

/// Notes for other tables' foreign keys that reference the old column:
/// they are not moved, and the contract fails while they exist; `how` says
/// how to point them at `new` on this database.
fn referencing_notes(
    t: &TableName,
    facts: &TableFacts,
    old: &Ident,
    new: &Ident,
    how: &str,
) -> Vec<String> {
    facts
        .referenced_by
        .iter()
        .filter(|f| f.referenced_columns.contains(old))
        .map(|fk| {
            let name = fk
                .name
                .as_ref()
                .map_or_else(String::new, |n| format!(" {n}"));
            format!(
                "foreign key{name} of {} ({}) references {t}.{old} and is not moved: the contract's DROP COLUMN fails while it exists. Before the contract, point it at {new}: {how}",
                fk.table,
                cols_text(&fk.columns)
            )
        })
        .collect()
}
