//! `rename_column`: expand (new column + sync + backfill), switch, contract;
//! with `strategy: view`, [`super::rename_column_view`] instead.

use super::copy_column::{self, Copy};
use super::partitioned::{self, ColumnChange};
use crate::dialect::Dialect;
use crate::intent::{RenameColumn, RenameStrategy, SyncMode};
use crate::plan::{PlanningError, Recipe};

pub(super) fn expand(r: &mut Recipe<'_>, i: &RenameColumn) -> Result<(), PlanningError> {
    if i.strategy == RenameStrategy::View {
        return super::rename_column_view::expand(r, i);
    }
    let live = r.catalog.column(&i.table, &i.from).cloned();
    if live.is_none() {
        match r.dialect {
            Dialect::Postgres => r.note(format!(
                "{} gets the type of {} read from the catalog when the step runs (plan against the database to see it spelled out)",
                i.to, i.from
            )),
            Dialect::Mysql => {
                return Err(r.unsupported(format!(
                    "MySQL needs {}'s full definition (type, character set) to add {} beside it: plan against the database (`phasegate plan --env ENV PLAN`) so it is read from the live schema",
                    i.from, i.to
                )));
            }
            Dialect::Sqlite => r.note(format!(
                "planned offline: {} is added without a declared type (values are copied unchanged); plan against the database to copy {}'s type",
                i.to, i.from
            )),
        }
    }
    partitioned::check_column_change(
        r,
        &i.table,
        &i.from,
        ColumnChange::Copy {
            trigger: i.sync == SyncMode::Trigger,
        },
    )?;
    copy_column::expand(
        r,
        Copy {
            kind: "rename_column",
            table: &i.table,
            old: &i.from,
            new: &i.to,
            // A column's own collation (case-insensitive ICU on Postgres,
            // NOCASE on SQLite) decides what its comparisons and unique
            // index call equal, so the copy keeps it. (MySQL's is in the
            // column's definition, carried whole.)
            new_type: live.as_ref().map(|c| {
                match super::column_census(r, &i.table, &i.from).and_then(|cc| cc.collation) {
                    Some(coll) if r.dialect != Dialect::Mysql => {
                        format!("{} COLLATE {}", c.type_sql, r.dialect.quote_table(&coll))
                    }
                    _ => c.type_sql.clone(),
                }
            }),
            cast: false,
            forward: None,
            reverse: None,
            old_default: live.as_ref().and_then(|c| c.default.clone()),
            move_default: live.is_none(),
            old_required: live.as_ref().map(|c| !c.nullable && c.default.is_none()),
            sync: i.sync,
        },
    )
}

#[cfg(test)]
mod tests {
    use crate::dialect::Dialect;
    use crate::plan::recipes::testing::{plan, reversible, shape, sql_of};

    #[test]
    fn trigger_rename_is_three_deploys_with_an_irreversible_contract() {
        // MySQL plans a rename only against the live schema (mysql_tests).
        for d in [Dialect::Postgres, Dialect::Sqlite] {
            let p = plan(
                d,
                "  - rename_column: { table: users, from: name, to: full_name }\n",
            );
            assert_eq!(
                shape(&p),
                vec![
                    vec![
                        "migration:add_column",
                        "migration:sync_trigger",
                        "backfill:backfill",
                        "verify:verify"
                    ],
                    vec!["app:app_switch"],
                    vec!["migration:contract"],
                ],
                "{d}"
            );
            assert_eq!(reversible(&p), vec![true, true, false]);
        }
    }

    #[test]
    fn app_sync_rename_is_the_dual_write_recipe() {
        let p = plan(
            Dialect::Postgres,
            "  - rename_column: { table: users, from: name, to: full_name, sync: app }\n",
        );
        assert_eq!(
            shape(&p),
            vec![
                vec!["migration:add_column", "app:app_write_both"],
                vec!["backfill:backfill", "verify:verify", "app:app_read_new"],
                vec!["migration:relax_old", "app:app_stop_writing_old"],
                vec!["migration:contract"],
            ]
        );
    }

    #[test]
    fn awkward_names_are_quoted() {
        let p = plan(
            Dialect::Postgres,
            "  - rename_column: { table: user, from: 'we\"ird', to: full_name }\n",
        );
        let contract = sql_of(&p, "contract");
        assert!(
            contract.contains(r#"ALTER TABLE "user" DROP COLUMN "we""ird";"#),
            "{contract}"
        );
    }
}
