//! Recipes: how each intent kind becomes steps. One file per kind; each
//! renders its SQL from `templates/<dialect>/<kind>.sql` and tests beside it
//! check the shape of the plan it makes (the SQL itself is executed against
//! real databases in `tests/`).

mod add_check;
mod add_column;
mod add_foreign_key;
mod add_index;
mod carry;
mod change_column_type;
mod copy_column;
mod drop_column;
mod drop_table;
mod rename_column;
mod rename_table;
mod set_not_null;
mod sql;

use minijinja::Value;

use super::{PlanningError, Recipe};
use crate::intent::Intent;
use crate::name::{Ident, TableName};

pub(crate) fn expand(r: &mut Recipe<'_>, intent: &Intent) -> Result<(), PlanningError> {
    match intent {
        Intent::RenameColumn(i) => rename_column::expand(r, i),
        Intent::AddColumn(i) => add_column::expand(r, i),
        Intent::ChangeColumnType(i) => change_column_type::expand(r, i),
        Intent::DropColumn(i) => drop_column::expand(r, i),
        Intent::RenameTable(i) => rename_table::expand(r, i),
        Intent::AddIndex(i) => add_index::expand(r, i),
        Intent::AddForeignKey(i) => add_foreign_key::expand(r, i),
        Intent::SetNotNull(i) => set_not_null::expand(r, i),
        Intent::AddCheck(i) => add_check::expand(r, i),
        Intent::DropTable(i) => drop_table::expand(r, i),
        Intent::Sql(i) => sql::expand(r, i),
    }
}

/// A table as template context: the list of its name parts, which the
/// `ident` filter quotes as a qualified name.
fn table_value(t: &TableName) -> Value {
    Value::from(
        t.parts()
            .into_iter()
            .map(str::to_string)
            .collect::<Vec<_>>(),
    )
}

/// An object (function, index, view) in the same schema as `table`.
fn beside(table: &TableName, name: &Ident) -> Value {
    table_value(&table.sibling(name.clone()))
}

fn names(cols: &[Ident]) -> Value {
    Value::from(
        cols.iter()
            .map(|c| c.as_str().to_string())
            .collect::<Vec<_>>(),
    )
}

fn cols_text(cols: &[Ident]) -> String {
    cols.iter()
        .map(Ident::as_str)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
pub(crate) mod testing {
    use crate::catalog::Catalog;
    use crate::dialect::Dialect;
    use crate::dialect::templates::Templates;
    use crate::intent::parse_plan;
    use crate::plan::{Plan, Planner, PlanningError};

    /// Plans YAML `changes:` text offline.
    pub fn plan(dialect: Dialect, changes: &str) -> Plan {
        match plan_with(dialect, &Catalog::offline(), changes) {
            Ok(p) => p,
            Err(e) => panic!("{e}"),
        }
    }

    /// Plans YAML `changes:` text with what `catalog` knows.
    pub fn plan_with(
        dialect: Dialect,
        catalog: &Catalog,
        changes: &str,
    ) -> Result<Plan, PlanningError> {
        let text = format!("name: t\nchanges:\n{changes}");
        let file = match parse_plan(&text, "test.yaml", "t") {
            Ok(f) => f,
            Err(e) => panic!("{e}"),
        };
        let templates = Templates::builtin(dialect);
        Planner::new(&templates, catalog).plan(&file)
    }

    /// Each phase as `kind:slug` strings.
    pub fn shape(plan: &Plan) -> Vec<Vec<String>> {
        plan.phases
            .iter()
            .map(|ph| {
                plan.phase_steps(ph)
                    .map(|s| {
                        let slug = s.id.split_once('.').map_or(s.id.as_str(), |(_, b)| b);
                        format!("{}:{}", s.kind.name(), slug)
                    })
                    .collect()
            })
            .collect()
    }

    pub fn reversible(plan: &Plan) -> Vec<bool> {
        plan.phases.iter().map(|p| p.reversible).collect()
    }

    pub fn sql_of<'a>(plan: &'a Plan, slug: &str) -> &'a str {
        plan.steps
            .iter()
            .find(|s| s.id.ends_with(&format!(".{slug}")))
            .and_then(|s| s.sql.as_deref())
            .unwrap_or_else(|| panic!("no step {slug} with SQL"))
    }
}

/// One-phase paths only where the server supports them.
#[cfg(test)]
mod version_tests {
    use super::testing::{plan_with, reversible, shape, sql_of};
    use crate::catalog::{Catalog, ServerVersion};
    use crate::dialect::Dialect;

    fn pg(num: u32) -> Catalog {
        Catalog::offline().with_server(ServerVersion::postgres(num))
    }

    fn sqlite(v: &str) -> Catalog {
        match ServerVersion::sqlite(v) {
            Some(v) => Catalog::offline().with_server(v),
            None => panic!("{v}"),
        }
    }

    const REQUIRED_WITH_DEFAULT: &str = "  - add_column: { table: users, column: active, type: boolean, nullable: false, default: 'true' }\n";

    #[test]
    fn a_required_column_with_a_default_is_one_step_from_postgres_11() {
        let p = plan_with(Dialect::Postgres, &pg(110_000), REQUIRED_WITH_DEFAULT);
        assert_eq!(
            p.map(|p| shape(&p)).map_err(|e| e.to_string()),
            Ok(vec![vec![
                "migration:add_column".to_string(),
                "app:app_use".into()
            ]])
        );
        let p = match plan_with(Dialect::Postgres, &pg(100_023), REQUIRED_WITH_DEFAULT) {
            Ok(p) => p,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(
            shape(&p),
            vec![vec![
                "migration:add_column",
                "migration:set_default",
                "backfill:backfill",
                "verify:verify_no_nulls",
                "migration:check_not_valid",
                "migration:validate_check",
                "migration:set_not_null",
                "app:app_use",
            ]]
        );
        assert!(!sql_of(&p, "add_column").contains("DEFAULT"));
        assert!(sql_of(&p, "backfill").contains("\"active\" = true"));
        assert!(
            p.notes
                .iter()
                .any(|n| n.text.contains("Postgres 10.23 rewrites the whole table")),
            "{:?}",
            p.notes
        );
    }

    #[test]
    fn set_not_null_scans_before_postgres_12() {
        let changes = "  - set_not_null: { table: users, column: email }\n";
        for (num, scans) in [(110_005, true), (120_000, false)] {
            let p = match plan_with(Dialect::Postgres, &pg(num), changes) {
                Ok(p) => p,
                Err(e) => panic!("{e}"),
            };
            let step = p.steps.iter().find(|s| s.id == "1.set_not_null");
            let duration = step.and_then(|s| s.lock.as_ref()).map(|l| l.duration);
            assert_eq!(
                duration == Some(crate::plan::LockDuration::Scan),
                scans,
                "{num}"
            );
            assert_eq!(
                p.notes
                    .iter()
                    .any(|n| n.text.contains("scans the whole of users")),
                scans,
                "{num}"
            );
        }
    }

    #[test]
    fn sqlite_before_3_35_cannot_drop_a_column() {
        let old = sqlite("3.34.1");
        for changes in [
            "  - drop_column: { table: users, column: legacy }\n",
            "  - rename_column: { table: users, from: name, to: full_name }\n",
            "  - change_column_type: { table: users, column: n, type: integer }\n",
        ] {
            match plan_with(Dialect::Sqlite, &old, changes) {
                Err(e) => assert!(
                    e.to_string().contains("needs ALTER TABLE … DROP COLUMN")
                        && e.to_string().contains(
                            "which SQLite has from 3.35 on; this database runs SQLite 3.34.1"
                        ),
                    "{e}"
                ),
                Ok(_) => panic!("{changes} should be refused on SQLite 3.34"),
            }
            assert!(plan_with(Dialect::Sqlite, &sqlite("3.35.0"), changes).is_ok());
        }
        // Adding works, but cannot be undone.
        let p = match plan_with(
            Dialect::Sqlite,
            &old,
            "  - add_column: { table: users, column: nick, type: text }\n",
        ) {
            Ok(p) => p,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(reversible(&p), vec![false]);
        assert!(
            p.notes
                .iter()
                .any(|n| n.text.contains("has no DROP COLUMN"))
        );
    }

    #[test]
    fn triggers_use_execute_procedure_before_postgres_11() {
        let changes = "  - rename_column: { table: users, from: name, to: full_name }\n";
        for (num, word) in [
            (100_000, "EXECUTE PROCEDURE"),
            (110_000, "EXECUTE FUNCTION"),
        ] {
            let p = match plan_with(Dialect::Postgres, &pg(num), changes) {
                Ok(p) => p,
                Err(e) => panic!("{e}"),
            };
            assert!(sql_of(&p, "sync_trigger").contains(word), "{num}");
        }
    }

    #[test]
    fn a_version_of_another_dialect_is_ignored() {
        // A Postgres catalog does not make SQLite plans refuse anything.
        let changes = "  - drop_column: { table: users, column: legacy }\n";
        assert!(plan_with(Dialect::Sqlite, &pg(90_600), changes).is_ok());
    }
}
