//! `rename_table`: an updatable view under the new name, so the new code can
//! use it while the old code uses the table; then, in one short transaction,
//! the view goes and the table takes its name.
//!
//! A view over one table is updatable as it is on Postgres and MySQL/MariaDB,
//! and a write through it reports its rows and the new row's id as a write
//! to the table does. SQLite is refused: its views are read-only, and a write
//! through INSTEAD OF triggers reports 0 rows changed and no new id.

use minijinja::context;

use super::{beside, names, table_value};
use crate::dialect::Dialect;
use crate::intent::RenameTable;
use crate::name::{Ident, TableName};
use crate::plan::{Blocks, LockDuration, PlanningError, Recipe, derived_name};

pub(super) fn expand(r: &mut Recipe<'_>, i: &RenameTable) -> Result<(), PlanningError> {
    let (from, to) = (&i.from, &i.to.name);
    let view = from.sibling(to.clone());
    if r.dialect == Dialect::Sqlite {
        return Err(r.unsupported(sqlite_refusal(r.dialect, from, to)));
    }
    let facts = r.catalog.table(from);
    let columns: Vec<Ident> = facts
        .map(|f| f.columns.iter().map(|c| c.name.clone()).collect())
        .unwrap_or_default();
    let key: Vec<Ident> = facts.map(|f| f.primary_key.clone()).unwrap_or_default();
    let name = from.name.as_str();
    let ctx = context! {
        table => table_value(from),
        table_name => name,
        view => table_value(&view),
        new_name => to,
        columns => names(&columns),
        key => names(&key),
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

/// Why SQLite cannot rename a table while two releases use it, and the way forward.
fn sqlite_refusal(dialect: Dialect, from: &TableName, to: &Ident) -> String {
    format!(
        "SQLite cannot rename table {from} while the old and the new release both write to it: one of the two names would be a view, and a write through a view (its INSTEAD OF triggers) reports 0 rows changed, leaves last_insert_rowid() unchanged and returns NULL for a generated id in RETURNING, so ORMs take every save as failed; instead, rename it in a `sql` change deployed together with the code that uses {to}, while no instance of the previous release is running: ALTER TABLE {} RENAME TO {}; (SQLite renames it in the indexes, triggers, views and foreign keys that name it too)",
        dialect.quote_table(from),
        dialect.quote_ident(to.as_str()),
    )
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

#[cfg(test)]
mod sqlite_tests {
    use crate::catalog::Catalog;
    use crate::dialect::Dialect;
    use crate::plan::recipes::testing::plan_with;

    #[test]
    fn sqlite_refuses_with_the_reason_and_the_way_forward() {
        let e = plan_with(
            Dialect::Sqlite,
            &Catalog::offline(),
            "  - rename_table: { from: invoices, to: bills }\n",
        );
        let text = e.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(
            text.starts_with(
                "changes[0] (rename_table invoices → bills): SQLite cannot rename table invoices"
            ),
            "{text}"
        );
        assert!(text.contains("reports 0 rows changed"), "{text}");
        assert!(text.contains("rename it in a `sql` change"), "{text}");
    }
}
