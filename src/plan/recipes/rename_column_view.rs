//! `rename_column` with `strategy: view` (Postgres): a rename that copies
//! nothing, so its cost does not grow with the table.
//!
//! Deploy 1, in one short transaction: the table is renamed aside
//! (`users` → `users_phasegate_base`) and a view takes its name, showing
//! every column plus the renamed one a second time under its new name
//! (`SELECT *, name AS full_name`). Such a view is automatically updatable
//! (Postgres docs, CREATE VIEW, "Updatable Views"), so the running release
//! (`name`) and the new one (`full_name`) both read and write through the
//! same name with the same connection settings. Deploy 2 switches the
//! application. Deploy 3, the contract, in one transaction: the view goes,
//! the column takes its new name and the table its old one. Every phase can
//! be rolled back: nothing is dropped.
//!
//! What a view cannot do (`TRUNCATE`, `COPY … FROM`, `MERGE` before
//! Postgres 17, `ALTER TABLE`, a new foreign key that references it,
//! `ON CONFLICT ON CONSTRAINT`, `pg_get_serial_sequence` by the table's name,
//! one statement writing both names) is in the plan's notes and in
//! `docs/intents.md`. MySQL/MariaDB (a view that shows a column twice is
//! not insertable) and SQLite (views are read-only) are refused.

use minijinja::context;

use super::table_value;
use crate::catalog::RelationKind;
use crate::dialect::Dialect;
use crate::intent::RenameColumn;
use crate::plan::{Blocks, LockDuration, PlanningError, Recipe, derived_name};

/// Postgres's system column names (Postgres docs, 5.6 "System Columns").
const SYSTEM_COLUMNS: [&str; 6] = ["tableoid", "xmin", "cmin", "xmax", "cmax", "ctid"];

/// What does not work through the view while it stands, for the plan's notes.
const VIEW_LIMITS: &str = "TRUNCATE, COPY … FROM and COPY … TO (use COPY (SELECT …) TO), MERGE (before Postgres 17), ALTER TABLE, CREATE INDEX or CREATE TRIGGER on the name, a new foreign key that references it, INSERT … ON CONFLICT ON CONSTRAINT (name the columns instead), pg_get_serial_sequence() with the table's name (currval/nextval of the sequence's own name work), system columns (xmin, ctid, tableoid: optimistic locking on xmin fails), functions that take the table's row type (it follows the table aside), FROM ONLY on a partitioned table (it reads every partition through the view), and TG_TABLE_NAME in the table's triggers (the table's name is its base name meanwhile); GRANT and REVOKE on the name act on the view and are carried to the table at the contract";

pub(super) fn expand(r: &mut Recipe<'_>, i: &RenameColumn) -> Result<(), PlanningError> {
    let (t, old, new) = (&i.table, &i.from, &i.to);
    match r.dialect {
        Dialect::Postgres => {}
        Dialect::Mysql => {
            return Err(r.unsupported(format!(
                "`strategy: view` is Postgres only: a MySQL/MariaDB view that shows column {old} twice (as {old} and {new}) is not insertable (MySQL manual, \"Updatable and Insertable Views\"), so the running release's inserts would fail; use the default `strategy: copy`"
            )));
        }
        Dialect::Sqlite => {
            return Err(r.unsupported(format!(
                "`strategy: view` is Postgres only: SQLite views are read-only, so the releases' writes to {t} would fail; use the default `strategy: copy`"
            )));
        }
    }
    // Postgres's system columns (Postgres docs, 5.6 "System Columns"): the
    // view would show such a name, and the contract could not rename to it.
    if SYSTEM_COLUMNS.contains(&new.as_str()) {
        return Err(r.unsupported(format!(
            "{new} is the name of a system column of every Postgres table: the contract could not rename {old} to it"
        )));
    }
    if let Some(facts) = r.catalog.table(t) {
        let p = &facts.partitioning;
        if let Some(parent) = p.partition_of.as_ref().or(p.inherits.first()) {
            return Err(r.unsupported(format!(
                "{t} is a partition of or inherits from {parent}: Postgres renames its columns only through its parent, so the contract could not rename {old}; rename the column on {parent}, or with `strategy: copy`"
            )));
        }
        if let Some(child) = p.inherited_by.first() {
            return Err(r.unsupported(format!(
                "{child} inherits from {t}: through a view, SELECT, UPDATE and DELETE … FROM ONLY {t} would reach the rows of the tables that inherit from it too; rename with `strategy: copy`"
            )));
        }
        if facts.kind != RelationKind::Table {
            return Err(r.unsupported(format!(
                "{t} is not a table (a view already stands under its name: is another plan renaming one of its columns through a view?); finish that plan first"
            )));
        }
        if facts.column(new).is_some() {
            return Err(r.unsupported(format!(
                "{t} already has a column {new}: the view cannot show {old} under that name"
            )));
        }
        // Code that names the column keeps working through the view, and
        // fails on every write once the contract renames the column.
        for trigger in &facts.census.triggers {
            if trigger.mentions.contains(old) {
                let whose = if trigger.phasegate {
                    "phasegate's sync trigger (another plan in progress keeps this column in step)"
                } else {
                    "trigger"
                };
                let about: Vec<String> = [
                    (!trigger.when.is_empty()).then(|| trigger.when.clone()),
                    trigger.on.as_ref().map(|on| format!("on {on}")),
                    trigger.function.as_ref().map(|f| format!("function {f}")),
                ]
                .into_iter()
                .flatten()
                .collect();
                return Err(r.unsupported(format!(
                    "{whose} {} ({}) names column {old}: phasegate cannot rewrite trigger code, and once the contract renames {old} to {new} every write that fires it fails; change it so it no longer uses {old} (or drop it) in an earlier plan (a `sql` change), or finish that plan first",
                    trigger.name,
                    about.join(", "),
                )));
            }
        }
    }
    let base = t.sibling(derived_name(&[t.name.as_str(), "phasegate_base"]));
    let ctx = context! {
        table => table_value(t),
        table_name => t.name.as_str(),
        base => table_value(&base),
        base_name => base.name.as_str(),
        old => old.as_str(),
        new => new.as_str(),
        comment => format!(
            "phasegate: rename_column {t}.{old} → {new} (strategy: view); the table is {base} until the contract"
        ),
    };
    let sql = r.render(
        "rename_column_view",
        &ctx,
        &["swap_in", "swap_out", "contract", "contract_back"],
    )?;
    // Both statements' locks are held to the end of one transaction.
    let swap_lock = r.lock(
        "ACCESS EXCLUSIVE",
        &[t],
        Blocks::ReadsAndWrites,
        LockDuration::Brief,
    );
    r.effects.replaces_table = Some((t.clone(), "shows through a view"));
    r.effects.uses.push((t.clone(), old.clone()));
    r.note(format!(
        "{t} is a view over {base} from the first deploy to the contract; through it the releases' reads and writes (INSERT with defaults and RETURNING, ON CONFLICT (columns), UPDATE of either name, DELETE, SELECT … FOR UPDATE) work as on the table, its triggers, constraints and foreign keys stay in force, each role keeps the privileges it had (the view gets the table's grants), and row-level security applies to each caller (Postgres 15+; the swap stops with an error on an older server, or when the table also has column privileges); a table in a publication stops the swap (its changes would be published under {base}); what does not work through a view: {VIEW_LIMITS}"
    ));
    r.note(format!(
        "no statement may write both {old} and {new} (they are one column: \"multiple assignments to same column\"); an ORM that reads the columns from the catalog sees both names through the view and must be told to ignore {old} (Rails: ignored_columns), and one that reads the primary key from the catalog finds none on a view (Rails: set primary_key)"
    ));
    let swap = r.migration(
        "swap_in_view",
        format!(
            "In one transaction: rename table {t} to {}, and create view {t} over it showing {old} also as {new}",
            base.name
        ),
        sql.get("swap_in"),
        Some(sql.get("swap_out")),
        swap_lock,
    );
    r.step(swap).table = Some(t.clone());
    r.effects.creates.push((t.clone(), new.clone(), swap));
    r.next_deploy();
    r.app(
        "app_switch",
        format!(
            "Use {new} instead of {old} in every query (never both in one statement); deploy everywhere before the contract"
        ),
    );
    r.next_deploy();
    let contract_lock = r.lock(
        "ACCESS EXCLUSIVE",
        &[t],
        Blocks::ReadsAndWrites,
        LockDuration::Brief,
    );
    let contract = r.migration(
        "contract",
        format!(
            "In one transaction: drop view {t}, rename table {} back to {} and column {old} to {new}",
            base.name, t.name
        ),
        sql.get("contract"),
        Some(sql.get("contract_back")),
        contract_lock,
    );
    r.step(contract).table = Some(t.clone());
    r.effects.removes.push((t.clone(), old.clone(), contract));
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::catalog::Catalog;
    use crate::dialect::Dialect;
    use crate::plan::recipes::testing::{plan, plan_with, reversible, shape, sql_of};

    const VIEW: &str =
        "  - rename_column: { table: users, from: name, to: full_name, strategy: view }\n";

    #[test]
    fn three_deploys_each_reversible_and_nothing_copied() {
        let p = plan(Dialect::Postgres, VIEW);
        assert_eq!(
            shape(&p),
            vec![
                vec!["migration:swap_in_view"],
                vec!["app:app_switch"],
                vec!["migration:contract"],
            ]
        );
        assert_eq!(reversible(&p), vec![true, true, true]);
        assert!(p.steps.iter().all(|s| s.backfill.is_none()));
        let swap = sql_of(&p, "swap_in_view");
        assert!(
            swap.starts_with(
                "ALTER TABLE \"users\" RENAME TO \"users_phasegate_base\";\nCREATE VIEW \"users\" AS\n  SELECT *, \"name\" AS \"full_name\" FROM \"users_phasegate_base\";"
            ),
            "{swap}"
        );
        let contract = sql_of(&p, "contract");
        assert!(contract.starts_with("DO $phasegate$"), "{contract}");
        assert!(contract.ends_with(
            "DROP VIEW \"users\";\nALTER TABLE \"users_phasegate_base\" RENAME TO \"users\";\nALTER TABLE \"users\" RENAME COLUMN \"name\" TO \"full_name\";"
        ), "{contract}");
    }

    #[test]
    fn schema_qualified_and_awkward_names_are_quoted() {
        let p = plan(
            Dialect::Postgres,
            "  - rename_column: { table: billing.invoices, from: 'we\"ird', to: full_name, strategy: view }\n",
        );
        let swap = sql_of(&p, "swap_in_view");
        for needle in [
            r#"ALTER TABLE "billing"."invoices" RENAME TO "invoices_phasegate_base";"#,
            r#"SELECT *, "we""ird" AS "full_name" FROM "billing"."invoices_phasegate_base";"#,
            r#"WHERE att.attname = 'we"ird')"#,
        ] {
            assert!(swap.contains(needle), "{needle} in {swap}");
        }
    }

    #[test]
    fn other_dialects_are_refused_with_the_reason() {
        for (d, needle) in [
            (Dialect::Mysql, "not insertable"),
            (Dialect::Sqlite, "read-only"),
        ] {
            let err = plan_with(d, &Catalog::offline(), VIEW)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(
                err.contains(needle) && err.contains("strategy: copy"),
                "{d}: {err}"
            );
        }
    }

    #[test]
    fn sync_with_the_view_strategy_is_refused() {
        let text = "name: t\nchanges:\n  - rename_column: { table: users, from: name, to: full_name, strategy: view, sync: app }\n";
        let err = match crate::intent::parse_plan(text, "t.yaml", "t") {
            Ok(_) => String::from("accepted"),
            Err(e) => e.to_string(),
        };
        assert!(
            err.contains("`sync` applies to `strategy: copy` only"),
            "{err}"
        );
    }
}
