//! The column types the linted files have created so far: a later
//! `ALTER COLUMN … TYPE` is only known to be catalog-only when the type it
//! changes from is known (`Dialect::is_binary_coercible`).

use std::collections::HashMap;

use sqlparser::ast::{
    AlterColumnOperation, AlterTableOperation, ObjectName, ObjectType, RenameTableNameKind,
    Statement,
};

use crate::dialect::Dialect;
use crate::name::SqlType;

/// Columns seen in `CREATE TABLE` and `ADD COLUMN`, by (table, column),
/// with their type when phasegate can read it.
#[derive(Debug, Default, Clone)]
pub struct Schema {
    columns: HashMap<(String, String), Option<SqlType>>,
}

/// A name as the database folds it: an unquoted Postgres name is lower-cased;
/// MySQL and SQLite compare column names without case.
pub fn fold(ident: &sqlparser::ast::Ident, dialect: Dialect) -> String {
    if ident.quote_style.is_some() && dialect == Dialect::Postgres {
        ident.value.clone()
    } else {
        ident.value.to_lowercase()
    }
}

/// The table part of a (possibly schema-qualified) name, folded.
pub fn table_key(name: &ObjectName, dialect: Dialect) -> String {
    name.0
        .last()
        .and_then(|p| p.as_ident())
        .map(|i| fold(i, dialect))
        .unwrap_or_default()
}

impl Schema {
    /// The type of `table.column`, if a linted file created it with a type phasegate reads.
    pub fn column_type(&self, table: &str, column: &str) -> Option<&SqlType> {
        self.columns
            .get(&(table.to_string(), column.to_string()))
            .and_then(Option::as_ref)
    }

    fn set(&mut self, table: &str, column: &str, ty: &sqlparser::ast::DataType) {
        self.columns.insert(
            (table.to_string(), column.to_string()),
            SqlType::parse(&ty.to_string()).ok(),
        );
    }

    /// Records what `statement` does to tables and columns.
    pub fn observe(&mut self, statement: &Statement, dialect: Dialect) {
        match statement {
            Statement::CreateTable(t) => {
                let table = table_key(&t.name, dialect);
                for c in &t.columns {
                    self.set(&table, &fold(&c.name, dialect), &c.data_type);
                }
            }
            Statement::AlterTable(a) => {
                let mut table = table_key(&a.name, dialect);
                for op in &a.operations {
                    match op {
                        AlterTableOperation::AddColumn { column_def, .. } => self.set(
                            &table,
                            &fold(&column_def.name, dialect),
                            &column_def.data_type,
                        ),
                        AlterTableOperation::AlterColumn {
                            column_name,
                            op: AlterColumnOperation::SetDataType { data_type, .. },
                        } => self.set(&table, &fold(column_name, dialect), data_type),
                        AlterTableOperation::ModifyColumn {
                            col_name,
                            data_type,
                            ..
                        } => self.set(&table, &fold(col_name, dialect), data_type),
                        AlterTableOperation::ChangeColumn {
                            old_name,
                            new_name,
                            data_type,
                            ..
                        } => {
                            self.columns
                                .remove(&(table.clone(), fold(old_name, dialect)));
                            self.set(&table, &fold(new_name, dialect), data_type);
                        }
                        AlterTableOperation::RenameColumn {
                            old_column_name,
                            new_column_name,
                        } => {
                            if let Some(t) = self
                                .columns
                                .remove(&(table.clone(), fold(old_column_name, dialect)))
                            {
                                self.columns
                                    .insert((table.clone(), fold(new_column_name, dialect)), t);
                            }
                        }
                        AlterTableOperation::DropColumn { column_names, .. } => {
                            for c in column_names {
                                self.columns.remove(&(table.clone(), fold(c, dialect)));
                            }
                        }
                        AlterTableOperation::RenameTable { table_name } => {
                            let (RenameTableNameKind::As(n) | RenameTableNameKind::To(n)) =
                                table_name;
                            let to = table_key(n, dialect);
                            self.rename_table(&table, &to);
                            table = to;
                        }
                        _ => {}
                    }
                }
            }
            Statement::RenameTable(renames) => {
                for r in renames {
                    self.rename_table(
                        &table_key(&r.old_name, dialect),
                        &table_key(&r.new_name, dialect),
                    );
                }
            }
            Statement::Drop {
                object_type: ObjectType::Table,
                names,
                ..
            } => {
                for n in names {
                    let t = table_key(n, dialect);
                    self.columns.retain(|(table, _), _| *table != t);
                }
            }
            _ => {}
        }
    }

    fn rename_table(&mut self, from: &str, to: &str) {
        let moved: Vec<_> = self
            .columns
            .iter()
            .filter(|((t, _), _)| t == from)
            .map(|((_, c), ty)| (c.clone(), ty.clone()))
            .collect();
        self.columns.retain(|(t, _), _| t != from);
        for (c, ty) in moved {
            self.columns.insert((to.to_string(), c), ty);
        }
    }
}
