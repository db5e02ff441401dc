//! Checking a plan against the live schema before anything runs: every
//! table and column a change needs exists, and nothing it creates does yet.

use std::collections::HashMap;

use super::PlanningError;
use crate::catalog::{Catalog, Lookup, RelationKind};
use crate::dialect::Dialect;
use crate::intent::{Intent, PlanFile};
use crate::name::{Ident, TableName};

/// The tables the changes of `file` read or change, in order of first
/// mention: each change's table, a renamed table's new name, a foreign key's
/// referenced table. Read these ([`Catalog::read`]) before planning against
/// an environment and before [`validate_against`].
pub fn tables_touched(file: &PlanFile) -> Vec<TableName> {
    let mut out: Vec<TableName> = Vec::new();
    let mut add = |t: &TableName| {
        if !out.contains(t) {
            out.push(t.clone());
        }
    };
    for intent in &file.changes {
        if let Some(t) = intent.table() {
            add(t);
        }
        match intent {
            Intent::RenameTable(i) => add(&renamed(&i.from, &i.to)),
            Intent::AddForeignKey(i) => add(&i.references.table),
            _ => {}
        }
    }
    out
}

/// A table renamed to `to` lives in `from`'s schema.
fn renamed(from: &TableName, to: &TableName) -> TableName {
    from.sibling(to.name.clone())
}

/// Checks every change of `file` against the live schema in `catalog`:
///
/// | change | needs |
/// |---|---|
/// | `rename_column` | the table; `from` exists, `to` does not |
/// | `add_column` | the table; the column does not exist |
/// | `change_column_type` | the table and the column; the new column does not exist (unless the change is a one-step ALTER) |
/// | `drop_column`, `set_not_null` | the table and the column |
/// | `rename_table` | `from` exists, `to` does not |
/// | `add_index` | the table and its columns |
/// | `add_foreign_key` | both tables and their columns |
/// | `add_check`, `drop_table` | the table |
///
/// Changes are checked in order, each against the schema as the changes
/// before it leave it (a column added by one change may be indexed by the
/// next). A table the catalog never read ([`Lookup::NotRead`]) is not judged;
/// read [`tables_touched`] first. A `sql` change may create or drop anything,
/// so the changes after it are not checked.
///
/// Only a plan that has not started in the environment can be checked: once
/// its first phase has run, the columns it adds exist by design. Call this
/// before the first phase, never to re-check a plan in progress.
///
/// The error names the change (`changes[0] (rename_column users.emial → …)`),
/// what does not match, and the nearest existing name when one looks like a
/// typo.
pub fn validate_against(file: &PlanFile, catalog: &Catalog) -> Result<(), PlanningError> {
    let mut schema = Schema {
        catalog,
        overlay: HashMap::new(),
    };
    for (change, intent) in file.changes.iter().enumerate() {
        let fail = |message: String| PlanningError::LiveSchema {
            change,
            desc: intent.to_string(),
            message,
        };
        match intent {
            Intent::Sql(_) => return Ok(()),
            Intent::RenameColumn(i) => {
                schema.column(&i.table, &i.from).map_err(fail)?;
                schema.no_column(&i.table, &i.to, "").map_err(fail)?;
                schema.add(&i.table, &i.to);
            }
            Intent::AddColumn(i) => {
                schema.no_column(&i.table, &i.column, "").map_err(fail)?;
                schema.add(&i.table, &i.column);
            }
            Intent::ChangeColumnType(i) => {
                schema.column(&i.table, &i.column).map_err(fail)?;
                let coercible = i.using.is_none()
                    && catalog
                        .server()
                        .is_none_or(|s| s.dialect == Dialect::Postgres)
                    && catalog
                        .column(&i.table, &i.column)
                        .and_then(|c| c.ty.as_ref())
                        .is_some_and(|from| Dialect::Postgres.is_binary_coercible(from, &i.ty));
                if !coercible {
                    let new = i
                        .new_column
                        .clone()
                        .or_else(|| Ident::new(format!("{}_new", i.column)).ok());
                    if let Some(new) = new {
                        let why = if i.new_column.is_some() {
                            ""
                        } else {
                            ", where the new type would go; choose another with `new_column`"
                        };
                        schema.no_column(&i.table, &new, why).map_err(fail)?;
                        schema.add(&i.table, &new);
                    }
                }
            }
            Intent::DropColumn(i) => schema.column(&i.table, &i.column).map_err(fail)?,
            Intent::SetNotNull(i) => schema.column(&i.table, &i.column).map_err(fail)?,
            Intent::RenameTable(i) => {
                schema.table(&i.from).map_err(fail)?;
                let to = renamed(&i.from, &i.to);
                schema.no_table(&to).map_err(fail)?;
                let columns = schema.columns(&i.from).unwrap_or_default();
                schema
                    .overlay
                    .insert(to, Some((RelationKind::View, columns)));
            }
            Intent::AddIndex(i) => {
                for c in &i.columns {
                    schema.column(&i.table, c).map_err(fail)?;
                }
                schema.table(&i.table).map_err(fail)?;
            }
            Intent::AddForeignKey(i) => {
                schema.table(&i.table).map_err(fail)?;
                for c in &i.columns {
                    schema.column(&i.table, c).map_err(fail)?;
                }
                let parent = &i.references.table;
                schema.table(parent).map_err(fail)?;
                for c in &i.references.columns {
                    schema.column(parent, c).map_err(fail)?;
                }
            }
            Intent::AddCheck(i) => schema.table(&i.table).map_err(fail)?,
            Intent::DropTable(i) => schema.table(&i.table).map_err(fail)?,
        }
    }
    Ok(())
}

/// The live schema as the changes checked so far leave it.
struct Schema<'a> {
    catalog: &'a Catalog,
    /// Tables as changed by earlier changes (`None`: known not to exist).
    overlay: HashMap<TableName, Option<(RelationKind, Vec<Ident>)>>,
}

/// What is known of a table: `None` when it was never read.
type Known = Option<Option<(RelationKind, Vec<Ident>)>>;

impl Schema<'_> {
    fn known(&self, t: &TableName) -> Known {
        if let Some(o) = self.overlay.get(t) {
            return Some(o.clone());
        }
        match self.catalog.lookup(t) {
            Lookup::Found(f) => Some(Some((
                f.kind,
                f.columns.iter().map(|c| c.name.clone()).collect(),
            ))),
            Lookup::Missing => Some(None),
            Lookup::NotRead => None,
        }
    }

    fn columns(&self, t: &TableName) -> Option<Vec<Ident>> {
        self.known(t).flatten().map(|(_, c)| c)
    }

    /// The table exists (as a table). `Ok` when it was never read.
    fn table(&self, t: &TableName) -> Result<(), String> {
        match self.known(t) {
            None | Some(Some((RelationKind::Table, _))) => Ok(()),
            Some(Some((RelationKind::View, _))) => Err(format!(
                "`{t}` is a view, not a table; the change applies to tables"
            )),
            Some(Some((RelationKind::Other, _))) => Err(format!(
                "`{t}` is not a table (the name belongs to another kind of object)"
            )),
            Some(None) => {
                let names: Vec<String> = self
                    .catalog
                    .table_names()
                    .iter()
                    .map(ToString::to_string)
                    .collect();
                let names: Vec<&str> = names.iter().map(String::as_str).collect();
                Err(format!(
                    "table `{t}` does not exist{}",
                    crate::suggest::did_you_mean(&t.to_string(), &names)
                ))
            }
        }
    }

    /// No table, view or other object has that name.
    fn no_table(&self, t: &TableName) -> Result<(), String> {
        match self.known(t) {
            Some(Some((kind, _))) => Err(format!(
                "a {} named `{t}` already exists",
                match kind {
                    RelationKind::Table => "table",
                    RelationKind::View => "view",
                    RelationKind::Other => "relation",
                }
            )),
            _ => Ok(()),
        }
    }

    /// The table exists and has the column.
    fn column(&self, t: &TableName, c: &Ident) -> Result<(), String> {
        self.table(t)?;
        let Some(columns) = self.columns(t) else {
            return Ok(());
        };
        if columns.contains(c) {
            return Ok(());
        }
        let names: Vec<&str> = columns.iter().map(Ident::as_str).collect();
        Err(format!(
            "table `{t}` has no column `{c}`{}",
            crate::suggest::did_you_mean(c.as_str(), &names)
        ))
    }

    /// The table exists and has no such column yet.
    fn no_column(&self, t: &TableName, c: &Ident, why: &str) -> Result<(), String> {
        self.table(t)?;
        match self.columns(t) {
            Some(columns) if columns.contains(c) => {
                Err(format!("table `{t}` already has a column `{c}`{why}"))
            }
            _ => Ok(()),
        }
    }

    fn add(&mut self, t: &TableName, c: &Ident) {
        if let Some(Some((kind, mut columns))) = self.known(t) {
            columns.push(c.clone());
            self.overlay.insert(t.clone(), Some((kind, columns)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{ColumnFacts, ServerVersion, TableFacts};
    use crate::intent::parse_plan;
    use crate::name::SqlType;

    fn t(s: &str) -> TableName {
        match TableName::parse(s) {
            Ok(t) => t,
            Err(e) => panic!("{e}"),
        }
    }

    fn col(name: &str, ty: &str) -> ColumnFacts {
        ColumnFacts {
            name: Ident::new(name).unwrap_or_else(|e| panic!("{e}")),
            type_sql: ty.into(),
            ty: SqlType::parse(ty).ok(),
            nullable: true,
            default: None,
            charset: None,
            collation: None,
        }
    }

    /// users (id, email, name varchar(20)), customers (id), a view `people`,
    /// `ghosts` looked up and missing.
    fn catalog() -> Catalog {
        let mut c = Catalog::offline().with_server(ServerVersion::postgres(150_000));
        c.insert(
            t("users"),
            TableFacts {
                columns: vec![
                    col("id", "bigint"),
                    col("email", "text"),
                    col("name", "character varying(20)"),
                ],
                ..TableFacts::default()
            },
        );
        c.insert(
            t("customers"),
            TableFacts {
                columns: vec![col("id", "bigint")],
                ..TableFacts::default()
            },
        );
        c.insert(
            t("people"),
            TableFacts {
                kind: RelationKind::View,
                columns: vec![col("id", "bigint")],
                ..TableFacts::default()
            },
        );
        c.insert_missing(t("ghosts"));
        c.insert_missing(t("accounts"));
        c.insert_missing(t("usres"));
        c.set_table_names(vec![t("users"), t("customers"), t("people")]);
        c
    }

    fn check(changes: &str) -> Result<(), String> {
        let text = format!("name: t\nchanges:\n{changes}");
        let file = parse_plan(&text, "t.yaml", "t").map_err(|e| format!("parse: {e}"))?;
        validate_against(&file, &catalog()).map_err(|e| e.to_string())
    }

    fn refused(changes: &str, needles: &[&str]) {
        match check(changes) {
            Ok(()) => panic!("{changes} should be refused"),
            Err(e) => {
                for n in needles {
                    assert!(e.contains(n), "{e:?} should contain {n:?}");
                }
            }
        }
    }

    #[test]
    fn each_mismatch_is_named() {
        refused(
            "  - rename_column: { table: users, from: emial, to: mail }\n",
            &[
                "changes[0] (rename_column users.emial → mail)",
                "does not match the live schema",
                "table `users` has no column `emial`; did you mean `email`?",
            ],
        );
        refused(
            "  - rename_column: { table: users, from: email, to: name }\n",
            &["table `users` already has a column `name`"],
        );
        refused(
            "  - add_column: { table: users, column: email, type: text }\n",
            &["changes[0] (add_column", "already has a column `email`"],
        );
        refused(
            "  - add_column: { table: usres, column: x, type: text }\n",
            &["table `usres` does not exist; did you mean `users`?"],
        );
        refused(
            "  - change_column_type: { table: users, column: nope, type: bigint }\n",
            &["has no column `nope`"],
        );
        refused(
            "  - change_column_type: { table: users, column: id, type: text, new_column: email }\n",
            &["already has a column `email`"],
        );
        refused(
            "  - drop_column: { table: users, column: gone }\n",
            &[
                "changes[0] (drop_column users.gone)",
                "has no column `gone`",
            ],
        );
        refused(
            "  - set_not_null: { table: users, column: mail }\n",
            &["has no column `mail`"],
        );
        refused(
            "  - rename_table: { from: ghosts, to: spirits }\n",
            &["table `ghosts` does not exist"],
        );
        refused(
            "  - rename_table: { from: users, to: customers }\n",
            &["a table named `customers` already exists"],
        );
        refused(
            "  - add_index: { table: users, columns: [email, nam] }\n",
            &["has no column `nam`; did you mean `name`?"],
        );
        refused(
            "  - add_foreign_key: { table: users, columns: [id], references: { table: customers, columns: [idd] } }\n",
            &["table `customers` has no column `idd`; did you mean `id`?"],
        );
        refused(
            "  - add_foreign_key: { table: users, columns: [id], references: { table: accounts, columns: [id] } }\n",
            &["table `accounts` does not exist"],
        );
        refused(
            "  - add_check: { table: ghosts, name: c, check: 'x > 0' }\n",
            &["table `ghosts` does not exist"],
        );
        refused(
            "  - drop_table: { table: people }\n",
            &["`people` is a view, not a table"],
        );
        refused(
            "  - add_column: { table: users, column: x, type: text }\n  - drop_column: { table: users, column: y }\n",
            &["changes[1] (drop_column users.y)"],
        );
    }

    #[test]
    fn matching_plans_pass() {
        for ok in [
            "  - rename_column: { table: users, from: email, to: mail }\n",
            // A column added by an earlier change may be used by a later one.
            "  - add_column: { table: users, column: region, type: text }\n  - add_index: { table: users, columns: [region] }\n",
            "  - change_column_type: { table: users, column: id, type: text }\n",
            // Binary coercible: no new column, so `name_new` may exist or not.
            "  - change_column_type: { table: users, column: name, type: varchar(50), new_column: email }\n",
            "  - rename_table: { from: users, to: members }\n",
            "  - add_foreign_key: { table: users, columns: [id], references: { table: customers, columns: [id] } }\n",
            // Tables never read are not judged.
            "  - drop_column: { table: orders, column: whatever }\n",
            // After a `sql` change nothing is judged.
            "  - sql: { phases: [ { up: 'CREATE TABLE ghosts (id int)' } ] }\n  - add_column: { table: ghosts, column: x, type: text }\n",
        ] {
            assert_eq!(check(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn the_tables_to_read() {
        let text = "name: t\nchanges:\n  - rename_table: { from: billing.invoices, to: bills }\n  - add_foreign_key: { table: users, columns: [a], references: { table: billing.invoices, columns: [id] } }\n";
        let file = parse_plan(text, "t.yaml", "t").unwrap_or_else(|e| panic!("{e}"));
        let names: Vec<String> = tables_touched(&file)
            .iter()
            .map(|t| t.to_string())
            .collect();
        assert_eq!(names, ["billing.invoices", "billing.bills", "users"]);
    }
}
