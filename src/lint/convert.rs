//! `phasegate convert`: a migration file as a phasegate plan.
//!
//! Each statement that has an intent becomes that intent (a one-step
//! rename becomes `rename_column`, a blocking index `add_index`, a foreign
//! key `add_foreign_key`, …; a nullable `ADD COLUMN` and a concurrent index
//! become their intents too). Statements with no intent (`CREATE TABLE`,
//! data changes, `VALIDATE CONSTRAINT`, a DO block, …) are kept, in order,
//! as `sql` changes (consecutive ones in one), and each is listed in
//! [`Conversion::kept`] with the reason; transaction control (`BEGIN`,
//! `COMMIT`) and lock/statement timeouts are dropped, since phasegate runs
//! each step in its own transaction with its own timeouts.

use sqlparser::ast::{
    AlterColumnOperation, AlterTableOperation, ColumnOption, Expr, ObjectName, ObjectType,
    ReferentialAction, RenameTableNameKind, Set, Statement, TableConstraint,
};

use super::{Parsed, Pos, schema::fold};
use crate::dialect::Dialect;
use crate::intent::{
    AddCheck, AddColumn, AddForeignKey, AddIndex, ChangeColumnType, DropColumn, DropTable, Intent,
    OnDelete, PlanFile, References, RenameColumn, RenameStrategy, RenameTable, SetNotNull,
    SqlPhase, SqlPhases, SyncMode,
};
use crate::name::{Ident, SqlExpr, SqlType, TableName};

/// A file converted: the plan, and what became of each statement.
#[derive(Debug)]
pub struct Conversion {
    pub plan: PlanFile,
    /// Statements that became intents: where, and the intents' kinds.
    pub converted: Vec<(Pos, Vec<&'static str>)>,
    /// Statements kept as `sql` changes: where, the statement's first line, and why no intent.
    pub kept: Vec<(Pos, String, String)>,
}

/// Why a file cannot be converted.
#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    #[error("{file}:{}:{}: cannot read the file: {message}", at.line, at.column)]
    Unreadable {
        file: String,
        at: Pos,
        message: String,
    },
    #[error("{file}: no statements to convert")]
    Empty { file: String },
    /// The converted plan does not plan (phasegate's planner, offline, with
    /// the built-in templates): the planner's reason.
    #[error("{file}: the converted plan would not load: {message}")]
    Unplannable { file: String, message: String },
}

/// Converts `text` (the file `file`, in `dialect`) into a plan named
/// `convert-<file stem>`.
///
/// The plan is planned (offline, with the built-in templates: the planner
/// `phasegate plan` uses) as each statement's intents join it: a statement
/// whose intents the planner refuses with the ones before it (a column
/// added, then its table renamed: intents that contradict) is kept as a
/// `sql` change instead, with the planner's reason. `Err(Unplannable)`
/// when the plan still does not plan, so no plan phasegate refuses is returned.
pub fn convert(file: &str, text: &str, dialect: Dialect) -> Result<Conversion, ConvertError> {
    let parsed = super::parse(dialect, text).map_err(|(at, message)| ConvertError::Unreadable {
        file: file.to_string(),
        at,
        message,
    })?;
    let templates = crate::dialect::templates::Templates::builtin(dialect);
    let mut changes: Vec<Intent> = Vec::new();
    let mut pending_sql: Vec<String> = Vec::new();
    let mut converted = Vec::new();
    let mut kept = Vec::new();
    for p in &parsed {
        if dropped(p, dialect) {
            continue;
        }
        match intents(p, dialect) {
            Ok(list) => {
                let mut trial = changes.clone();
                flush(&mut pending_sql.clone(), &mut trial);
                trial.extend(list.iter().cloned());
                match plans(&trial, &templates) {
                    Ok(()) => {
                        flush(&mut pending_sql, &mut changes);
                        converted.push((p.chunk.start, list.iter().map(Intent::kind).collect()));
                        changes.extend(list);
                    }
                    Err(why) => {
                        kept.push((
                            p.chunk.start,
                            p.chunk.summary(),
                            format!(
                                "as an intent it does not plan with the changes before it ({why})"
                            ),
                        ));
                        pending_sql.push(p.chunk.text());
                    }
                }
            }
            Err(reason) => {
                kept.push((p.chunk.start, p.chunk.summary(), reason));
                pending_sql.push(p.chunk.text());
            }
        }
    }
    flush(&mut pending_sql, &mut changes);
    if changes.is_empty() {
        return Err(ConvertError::Empty {
            file: file.to_string(),
        });
    }
    plans(&changes, &templates).map_err(|message| ConvertError::Unplannable {
        file: file.to_string(),
        message,
    })?;
    Ok(Conversion {
        plan: plan_file(file, changes),
        converted,
        kept,
    })
}

fn plan_file(file: &str, changes: Vec<Intent>) -> PlanFile {
    PlanFile {
        name: plan_name(file),
        description: Some(format!("Converted from {file} by `phasegate convert`.")),
        changes,
        path: None,
        source: None,
    }
}

/// Whether `changes` plan (offline): the planner's refusal as text.
fn plans(
    changes: &[Intent],
    templates: &crate::dialect::templates::Templates,
) -> Result<(), String> {
    let catalog = crate::catalog::Catalog::offline();
    crate::plan::Planner::new(templates, &catalog)
        .plan(&plan_file("convert", changes.to_vec()))
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// `convert-<stem>`, in the characters a plan name allows.
fn plan_name(file: &str) -> String {
    let stem = std::path::Path::new(file)
        .file_stem()
        .map(|s| s.to_string_lossy().to_string())
        .unwrap_or_default();
    let mut name = String::from("convert-");
    for c in stem.chars() {
        if c.is_ascii_alphanumeric() {
            name.push(c.to_ascii_lowercase());
        } else if !name.ends_with('-') {
            name.push('-');
        }
    }
    name.trim_end_matches('-').chars().take(200).collect()
}

fn flush(pending: &mut Vec<String>, changes: &mut Vec<Intent>) {
    if pending.is_empty() {
        return;
    }
    let up = pending.join(";\n") + ";";
    let transactional = !up.to_ascii_uppercase().contains("CONCURRENTLY");
    changes.push(Intent::Sql(SqlPhases {
        phases: vec![SqlPhase {
            up,
            down: None,
            transactional,
            app: None,
        }],
    }));
    pending.clear();
}

/// Statements phasegate does itself: transaction control and timeouts.
fn dropped(p: &Parsed, dialect: Dialect) -> bool {
    match &p.statement {
        Ok(Statement::StartTransaction { .. } | Statement::Commit { .. }) => true,
        Ok(s @ Statement::Set(Set::SingleAssignment { variable, .. })) => {
            super::timeout::effect(s, dialect).is_some()
                || variable
                    .to_string()
                    .to_ascii_lowercase()
                    .ends_with("statement_timeout")
        }
        Ok(s) => super::rules::sets_lock_timeout(s, dialect),
        Err(_) => false,
    }
}

/// A name as the database folds it, as a phasegate identifier.
fn ident(i: &sqlparser::ast::Ident, dialect: Dialect) -> Result<Ident, String> {
    Ident::new(fold(i, dialect)).map_err(|e| format!("`{i}`: {e}"))
}

fn table(n: &ObjectName, dialect: Dialect) -> Result<TableName, String> {
    let parts: Vec<Ident> =
        n.0.iter()
            .map(|p| {
                p.as_ident()
                    .ok_or_else(|| format!("`{n}` is not a plain name"))
                    .and_then(|i| ident(i, dialect))
            })
            .collect::<Result<_, _>>()?;
    match parts.as_slice() {
        [name] => Ok(TableName {
            schema: None,
            name: name.clone(),
        }),
        [schema, name] => Ok(TableName {
            schema: Some(schema.clone()),
            name: name.clone(),
        }),
        _ => Err(format!(
            "`{n}`: a plan names a table as table or schema.table"
        )),
    }
}

fn sql_type(t: &sqlparser::ast::DataType) -> Result<SqlType, String> {
    SqlType::parse(&t.to_string()).map_err(|e| e.to_string())
}

fn expr(e: &Expr) -> Result<SqlExpr, String> {
    SqlExpr::new(e.to_string()).map_err(|e| e.to_string())
}

/// The intents a statement stands for; `Err`: why it has none (it is kept as SQL).
fn intents(p: &Parsed, d: Dialect) -> Result<Vec<Intent>, String> {
    let statement = match &p.statement {
        Ok(s) => s,
        Err(m) if m.is_empty() => return Err("a DO block: no intent".to_string()),
        Err(m) => return Err(format!("phasegate cannot parse it ({m})")),
    };
    let list = match statement {
        Statement::AlterTable(a) => {
            let t = table(&a.name, d)?;
            let mut list = Vec::new();
            for op in &a.operations {
                // MySQL's ALGORITHM= and LOCK=: phasegate picks its own.
                if matches!(
                    op,
                    AlterTableOperation::Algorithm { .. } | AlterTableOperation::Lock { .. }
                ) {
                    continue;
                }
                list.push(operation(&t, op, d)?);
            }
            list
        }
        Statement::CreateIndex(ci) => {
            let columns = index_columns(&ci.columns, d)?;
            if ci.using.is_some() || !ci.include.is_empty() {
                return Err("USING or INCLUDE: add_index builds a plain index".to_string());
            }
            let name = match &ci.name {
                Some(n) => Some(table(n, d)?.name),
                None => None,
            };
            vec![Intent::AddIndex(AddIndex {
                table: table(&ci.table_name, d)?,
                columns,
                unique: ci.unique,
                name,
                predicate: ci.predicate.as_ref().map(expr).transpose()?,
            })]
        }
        Statement::RenameTable(renames) => renames
            .iter()
            .map(|r| {
                let from = table(&r.old_name, d)?;
                let to = from.sibling(table(&r.new_name, d)?.name);
                Ok(Intent::RenameTable(RenameTable { from, to }))
            })
            .collect::<Result<_, String>>()?,
        Statement::Drop {
            object_type: ObjectType::Table,
            names,
            ..
        } => names
            .iter()
            .map(|n| {
                Ok(Intent::DropTable(DropTable {
                    table: table(n, d)?,
                }))
            })
            .collect::<Result<_, String>>()?,
        _ => return Err("no intent does this; kept as written".to_string()),
    };
    for i in &list {
        i.validate().map_err(|m| format!("{}: {m}", i.kind()))?;
    }
    Ok(list)
}

/// An index's columns, when each is a plain column (add_index takes no expressions).
fn index_columns(
    columns: &[sqlparser::ast::IndexColumn],
    d: Dialect,
) -> Result<Vec<Ident>, String> {
    columns
        .iter()
        .map(|c| match &c.column.expr {
            Expr::Identifier(i) if c.operator_class.is_none() => ident(i, d),
            other => Err(format!(
                "`{other}` is an expression, and add_index takes columns"
            )),
        })
        .collect()
}

/// One `ALTER TABLE` operation as an intent.
fn operation(t: &TableName, op: &AlterTableOperation, d: Dialect) -> Result<Intent, String> {
    Ok(match op {
        AlterTableOperation::RenameColumn {
            old_column_name,
            new_column_name,
        } => Intent::RenameColumn(RenameColumn {
            table: t.clone(),
            from: ident(old_column_name, d)?,
            to: ident(new_column_name, d)?,
            sync: SyncMode::Trigger,
            strategy: RenameStrategy::Copy,
        }),
        AlterTableOperation::RenameTable { table_name } => {
            let (RenameTableNameKind::As(n) | RenameTableNameKind::To(n)) = table_name;
            Intent::RenameTable(RenameTable {
                from: t.clone(),
                to: t.sibling(table(n, d)?.name),
            })
        }
        AlterTableOperation::AddColumn { column_def, .. } => {
            let mut not_null = false;
            let mut default = None;
            for o in &column_def.options {
                match &o.option {
                    ColumnOption::NotNull => not_null = true,
                    ColumnOption::Null => {}
                    ColumnOption::Default(e) => default = Some(expr(e)?),
                    other => {
                        return Err(format!(
                            "`{other}`: add_column takes a type, NOT NULL and a default"
                        ));
                    }
                }
            }
            Intent::AddColumn(AddColumn {
                table: t.clone(),
                column: ident(&column_def.name, d)?,
                ty: sql_type(&column_def.data_type)?,
                nullable: !not_null,
                backfill: None,
                default,
            })
        }
        AlterTableOperation::AddConstraint {
            constraint: TableConstraint::ForeignKey(fk),
            ..
        } => {
            if fk.on_update.is_some() {
                return Err("ON UPDATE: add_foreign_key takes ON DELETE only".to_string());
            }
            let on_delete = match fk.on_delete {
                None => None,
                Some(ReferentialAction::NoAction) => Some(OnDelete::NoAction),
                Some(ReferentialAction::Restrict) => Some(OnDelete::Restrict),
                Some(ReferentialAction::Cascade) => Some(OnDelete::Cascade),
                Some(ReferentialAction::SetNull) => Some(OnDelete::SetNull),
                Some(ReferentialAction::SetDefault) => Some(OnDelete::SetDefault),
            };
            Intent::AddForeignKey(AddForeignKey {
                table: t.clone(),
                columns: fk
                    .columns
                    .iter()
                    .map(|c| ident(c, d))
                    .collect::<Result<_, _>>()?,
                references: References {
                    table: table(&fk.foreign_table, d)?,
                    columns: fk
                        .referred_columns
                        .iter()
                        .map(|c| ident(c, d))
                        .collect::<Result<_, _>>()?,
                },
                on_delete,
                name: fk.name.as_ref().map(|n| ident(n, d)).transpose()?,
            })
        }
        AlterTableOperation::AddConstraint {
            constraint: TableConstraint::Index(ic),
            ..
        } if ic.index_type.is_none() => Intent::AddIndex(AddIndex {
            table: t.clone(),
            columns: index_columns(&ic.columns, d)?,
            unique: false,
            name: ic.name.as_ref().map(|n| ident(n, d)).transpose()?,
            predicate: None,
        }),
        AlterTableOperation::AddConstraint {
            constraint: TableConstraint::Check(c),
            ..
        } => {
            let Some(name) = &c.name else {
                return Err("a CHECK without a name: add_check needs one".to_string());
            };
            Intent::AddCheck(AddCheck {
                table: t.clone(),
                name: ident(name, d)?,
                check: expr(&c.expr)?,
            })
        }
        AlterTableOperation::AlterColumn { column_name, op } => match op {
            AlterColumnOperation::SetNotNull => Intent::SetNotNull(SetNotNull {
                table: t.clone(),
                column: ident(column_name, d)?,
                backfill: None,
            }),
            AlterColumnOperation::SetDataType {
                data_type, using, ..
            } => Intent::ChangeColumnType(ChangeColumnType {
                table: t.clone(),
                column: ident(column_name, d)?,
                ty: sql_type(data_type)?,
                using: using.as_ref().map(expr).transpose()?,
                reverse: None,
                new_column: None,
            }),
            other => return Err(format!("`ALTER COLUMN … {other}`: no intent does this")),
        },
        AlterTableOperation::ModifyColumn {
            col_name,
            data_type,
            options,
            ..
        } if options.is_empty() => Intent::ChangeColumnType(ChangeColumnType {
            table: t.clone(),
            column: ident(col_name, d)?,
            ty: sql_type(data_type)?,
            using: None,
            reverse: None,
            new_column: None,
        }),
        AlterTableOperation::DropColumn { column_names, .. } if column_names.len() == 1 => {
            Intent::DropColumn(DropColumn {
                table: t.clone(),
                column: ident(&column_names[0], d)?,
                down: None,
            })
        }
        other => return Err(format!("`{other}`: no intent does this")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rails_style_file_becomes_intents_and_sql() -> Result<(), Box<dyn std::error::Error>> {
        let sql = "BEGIN;\nSET lock_timeout = '2s';\nCREATE TABLE audit (id bigint);\nALTER TABLE users RENAME COLUMN name TO full_name;\nCREATE INDEX idx_email ON users (email);\nALTER TABLE users ADD COLUMN email text NOT NULL;\nCOMMIT;\n";
        let c = convert("db/V7__Rename users.sql", sql, Dialect::Postgres)?;
        assert_eq!(c.plan.name, "convert-v7-rename-users");
        let kinds: Vec<&str> = c.plan.changes.iter().map(Intent::kind).collect();
        assert_eq!(kinds, vec!["sql", "rename_column", "add_index", "sql"]);
        assert_eq!(c.kept.len(), 2, "{:?}", c.kept);
        assert!(
            c.kept[1].2.contains("needs `default` or `backfill`"),
            "{:?}",
            c.kept
        );
        let yaml = c.plan.to_yaml()?;
        let back = crate::intent::parse_plan(&yaml, "x.yaml", "x")?;
        assert_eq!(back.changes, c.plan.changes);
        Ok(())
    }

    #[test]
    fn intents_the_planner_refuses_together_stay_sql() -> Result<(), Box<dyn std::error::Error>> {
        let sql = "ALTER TABLE users ADD COLUMN x int;\nALTER TABLE users RENAME TO people;\n";
        let c = convert("V1.sql", sql, Dialect::Postgres)?;
        let kinds: Vec<&str> = c.plan.changes.iter().map(Intent::kind).collect();
        assert_eq!(kinds, vec!["add_column", "sql"]);
        assert_eq!(c.kept.len(), 1);
        assert!(c.kept[0].2.contains("contradict"), "{}", c.kept[0].2);
        Ok(())
    }
}
