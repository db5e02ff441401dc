//! `rename_table`: an updatable view under the new name, so the new code can
//! use it while the old code uses the table; then, in one short transaction,
//! the view goes and the table takes its name.
//!
//! A Postgres view over one table is updatable as it is. SQLite views are
//! read-only, so INSTEAD OF triggers write through; they need the table's
//! columns and primary key, read from the live schema.

use minijinja::context;

use super::{beside, names, table_value};
use crate::dialect::Dialect;
use crate::intent::RenameTable;
use crate::name::Ident;
use crate::plan::{Blocks, LockDuration, PlanningError, Recipe, derived_name};

pub(super) fn expand(r: &mut Recipe<'_>, i: &RenameTable) -> Result<(), PlanningError> {
    let (from, to) = (&i.from, &i.to.name);
    let view = from.sibling(to.clone());
    let facts = r.catalog.table(from).cloned();
    let columns: Vec<Ident> = facts
        .as_ref()
        .map(|f| f.columns.iter().map(|c| c.name.clone()).collect())
        .unwrap_or_default();
    // Each column's default as the database prints it, for SQLite's
    // INSTEAD OF INSERT trigger (which sees NULL for an omitted column).
    let defaults: Vec<Option<String>> = facts
        .as_ref()
        .map(|f| f.columns.iter().map(|c| c.default.clone()).collect())
        .unwrap_or_default();
    let key: Vec<Ident> = facts
        .as_ref()
        .map(|f| f.primary_key.clone())
        .unwrap_or_default();
    if r.dialect == Dialect::Sqlite && (columns.is_empty() || key.is_empty()) {
        r.note(format!(
            "SQLite views are read-only: writing through {to} needs INSTEAD OF triggers, which phasegate writes when it can read {from}'s columns and primary key (plan against the database); without them, new code may only read {to} until the contract"
        ));
    }
    let name = from.name.as_str();
    let ctx = context! {
        table => table_value(from),
        table_name => name,
        view => table_value(&view),
        new_name => to,
        columns => names(&columns),
        defaults,
        key => names(&key),
        trigger_insert => beside(from, &derived_name(&[to.as_str(), "write_ins"])),
        trigger_update => beside(from, &derived_name(&[to.as_str(), "write_upd"])),
        trigger_delete => beside(from, &derived_name(&[to.as_str(), "write_del"])),
        parked_view => beside(from, &derived_name(&[to.as_str(), "phasegate_view"])),
    };
    let sql = r.render(
        "rename_table",
        &ctx,
        &["create_view", "drop_view", "contract", "contract_back"],
    )?;
    r.effects.replaces_table = Some((from.clone(), "renames"));
    // CREATE VIEW takes only ACCESS SHARE on the table it reads.
    let lock = r.lock(
        if r.dialect == Dialect::Mysql {
            "shared metadata lock"
        } else {
            "ACCESS SHARE"
        },
        &[from],
        Blocks::Nothing,
        LockDuration::Brief,
    );
    r.note(format!(
        "the view's columns are fixed when it is created: a column added to {from} before the contract does not show through {to}"
    ));
    r.migration(
        "create_view",
        format!("Create view {view} over {from}, so both names work"),
        sql.get("create_view"),
        Some(sql.get("drop_view")),
        lock,
    );
    r.app(
        "app_use_new_name",
        format!("Use {to} instead of {} in every query", from.name),
    );
    let lock = r.lock(
        if r.dialect == Dialect::Mysql {
            "exclusive metadata lock (RENAME TABLE, atomic)"
        } else {
            "ACCESS EXCLUSIVE"
        },
        &[from],
        Blocks::ReadsAndWrites,
        LockDuration::Brief,
    );
    if r.dialect == Dialect::Mysql {
        r.note(format!(
            "rolling back the contract renames {to} back to {from} and then recreates the view: between the two statements {to} does not exist"
        ));
    }
    let s = r.migration(
        "contract",
        if r.dialect == Dialect::Mysql {
            format!("In one RENAME TABLE: move view {view} aside and rename table {from} to {to}; then drop the view")
        } else {
            format!("In one transaction: drop view {view} and rename table {from} to {to}")
        },
        sql.get("contract"),
        Some(sql.get("contract_back")),
        lock,
    );
    r.step(s).table = Some(from.clone());
    r.effects.names_table = Some((view, s));
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::dialect::Dialect;
    use crate::plan::recipes::testing::{plan, reversible, shape, sql_of};

    #[test]
    fn view_then_rename() {
        let p = plan(
            Dialect::Postgres,
            "  - rename_table: { from: billing.invoices, to: bills }\n",
        );
        assert_eq!(
            shape(&p),
            vec![
                vec!["migration:create_view", "app:app_use_new_name"],
                vec!["migration:contract"]
            ]
        );
        assert_eq!(reversible(&p), vec![true, true]);
        assert!(
            sql_of(&p, "create_view")
                .contains(r#"CREATE VIEW "billing"."bills" AS SELECT * FROM "billing"."invoices""#)
        );
    }
}
