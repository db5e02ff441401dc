//! Recipes: how each intent kind becomes steps. One file per kind; each
//! renders its SQL from `templates/<dialect>/<kind>.sql` and tests beside it
//! check the shape of the plan it makes (the SQL itself is executed against
//! real databases in `tests/`).

mod add_check;
mod add_column;
mod add_foreign_key;
mod add_index;
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
    use crate::plan::{Plan, Planner};

    /// Plans YAML `changes:` text offline.
    pub fn plan(dialect: Dialect, changes: &str) -> Plan {
        let text = format!("name: t\nchanges:\n{changes}");
        let file = match parse_plan(&text, "test.yaml", "t") {
            Ok(f) => f,
            Err(e) => panic!("{e}"),
        };
        let templates = Templates::builtin(dialect);
        let catalog = Catalog::offline();
        match Planner::new(&templates, &catalog).plan(&file) {
            Ok(p) => p,
            Err(e) => panic!("{e}"),
        }
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
