//! `add_foreign_key`: the application writes only valid references first;
//! then orphans are verified absent, the key is added NOT VALID (a brief
//! lock on both tables, no scan) and validated in its own transaction
//! (a scan that blocks no reads or writes).
//!
//! SQLite cannot add a constraint to an existing table without rebuilding
//! it, so triggers enforce the reference and the ON DELETE action.
//!
//! MySQL/MariaDB have no NOT VALID. After the app stage and the orphan
//! verification, the key is added with `foreign_key_checks = 0` and
//! `ALGORITHM=INPLACE, LOCK=NONE`: InnoDB then neither scans existing rows
//! nor copies the table (it adds the constraint, and an index on the columns
//! when there is none, in place); the verification is what stands for the
//! scan. New writes are checked as soon as the key exists.

use minijinja::context;

use super::{beside, cols_text, names, partitioned, table_value};
use crate::dialect::Dialect;
use crate::intent::{AddForeignKey, OnDelete};
use crate::plan::{Blocks, LockDuration, PlanningError, Recipe, derived_name};

pub(super) fn expand(r: &mut Recipe<'_>, i: &AddForeignKey) -> Result<(), PlanningError> {
    let (t, p) = (&i.table, &i.references.table);
    partitioned::check_foreign_key(r, t, p)?;
    if r.dialect == Dialect::Mysql && i.on_delete == Some(OnDelete::SetDefault) {
        return Err(r.unsupported(
            "InnoDB rejects ON DELETE SET DEFAULT; use cascade, set_null, restrict or no_action",
        ));
    }
    if r.dialect == Dialect::Sqlite && i.on_delete == Some(OnDelete::SetDefault) {
        return Err(r.unsupported("SQLite's trigger-enforced foreign keys support on_delete cascade, set_null, restrict and no_action, not set_default"));
    }
    let cols = i
        .columns
        .iter()
        .map(|c| c.as_str())
        .collect::<Vec<_>>()
        .join("_");
    let name = i
        .name
        .clone()
        .unwrap_or_else(|| derived_name(&[t.name.as_str(), &cols, "fkey"]));
    let pairs: Vec<(String, String)> = i
        .columns
        .iter()
        .zip(&i.references.columns)
        .map(|(c, rc)| (c.as_str().to_string(), rc.as_str().to_string()))
        .collect();
    // MySQL: InnoDB needs an index leading with the columns; one it creates
    // itself would outlive a rollback, so the step names it and drops it.
    let has_index = r.catalog.table(t).is_some_and(|f| {
        f.indexes.iter().any(|ix| {
            ix.keys.len() >= i.columns.len()
                && ix
                    .keys
                    .iter()
                    .zip(&i.columns)
                    .all(|(k, c)| k.column.as_ref() == Some(c))
        })
    });
    let ctx = context! {
        add_index => !has_index,
        table => table_value(t),
        table_name => t.name.as_str(),
        parent => table_value(p),
        parent_name => p.name.as_str(),
        columns => names(&i.columns),
        parent_columns => names(&i.references.columns),
        pairs,
        on_delete => i.on_delete.map(OnDelete::sql),
        constraint => &name,
        trigger_insert => beside(t, &derived_name(&[name.as_str(), "ins"])),
        trigger_update => beside(t, &derived_name(&[name.as_str(), "upd"])),
        trigger_parent => beside(t, &derived_name(&[name.as_str(), "del"])),
        message => format!("{name}: {t}({}) must reference an existing {p}({})", cols_text(&i.columns), cols_text(&i.references.columns)),
        parent_message => format!("{name}: rows of {t} still reference this {p} row"),
    };
    let sql = r.render(
        "add_foreign_key",
        &ctx,
        &[
            "verify_orphans",
            "add_not_valid",
            "drop_constraint",
            "validate",
        ],
    )?;
    for c in &i.columns {
        r.effects.uses.push((t.clone(), c.clone()));
    }
    for c in &i.references.columns {
        r.effects.uses.push((p.clone(), c.clone()));
    }
    let (cols, pcols) = (cols_text(&i.columns), cols_text(&i.references.columns));
    r.app(
        "app_valid_references",
        format!("Write only ({cols}) values of {t} that exist in {p}({pcols}) (or NULL); fix existing orphans"),
    );
    r.verify(
        "verify_orphans",
        format!("No row of {t} references a missing {p} row"),
        sql.get("verify_orphans"),
        0,
    );
    match r.dialect {
        Dialect::Postgres => {
            let lock = r.lock(
                "SHARE ROW EXCLUSIVE",
                &[t, p],
                Blocks::Writes,
                LockDuration::Brief,
            );
            r.migration(
                "add_not_valid",
                format!("Add foreign key {name} NOT VALID: checked for new writes, existing rows not scanned"),
                sql.get("add_not_valid"),
                Some(sql.get("drop_constraint")),
                lock,
            );
            r.validate(
                "validate",
                format!("Validate {name}: scans {t} without blocking reads or writes"),
                sql.get("validate"),
                t,
            );
        }
        Dialect::Mysql => {
            let lock = r.lock(
                "metadata lock (ALGORITHM=INPLACE, LOCK=NONE; foreign_key_checks=0)",
                &[t, p],
                Blocks::Nothing,
                LockDuration::Brief,
            );
            r.migration(
                "add_foreign_key",
                format!("Add foreign key {name} in place with foreign_key_checks=0: existing rows are not scanned (the verification checked them), new writes are checked"),
                sql.get("add_not_valid"),
                Some(sql.get("drop_constraint")),
                lock,
            );
        }
        Dialect::Sqlite => {
            let lock = r.lock("", &[t, p], Blocks::ReadsAndWrites, LockDuration::Brief);
            r.migration(
                "enforce_reference",
                format!("Triggers that enforce {name} on writes to {t} and deletes from {p} (SQLite cannot add a constraint in place)"),
                sql.get("add_not_valid"),
                Some(sql.get("drop_constraint")),
                lock,
            );
        }
    }
    r.note(format!(
        "an index on {t}({cols}) keeps deletes from {p} and joins fast; add one with add_index if there is none"
    ));
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::dialect::Dialect;
    use crate::plan::recipes::testing::{plan, shape, sql_of};

    #[test]
    fn not_valid_then_validate() {
        let p = plan(
            Dialect::Postgres,
            "  - add_foreign_key: { table: orders, columns: [user_id], references: { table: users, columns: [id] }, on_delete: cascade }\n",
        );
        assert_eq!(
            shape(&p),
            vec![
                vec!["app:app_valid_references"],
                vec![
                    "verify:verify_orphans",
                    "migration:add_not_valid",
                    "migration:validate"
                ]
            ]
        );
        let add = sql_of(&p, "add_not_valid");
        assert!(add.contains("ON DELETE CASCADE NOT VALID"), "{add}");
    }
}
