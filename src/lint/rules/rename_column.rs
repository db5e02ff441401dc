//! `rename-column`: renaming a column in one step.
//!
//! The previous release still reads and writes the old name: from the
//! moment the rename commits until the new release is everywhere, its
//! queries fail. Postgres: `RENAME COLUMN` takes ACCESS EXCLUSIVE, briefly
//! (13.3.1). MySQL: `RENAME COLUMN` / `CHANGE old new` is INSTANT or
//! INPLACE (17.12.1, "Renaming a column"), with an exclusive metadata lock.

use sqlparser::ast::{AlterTableOperation, Statement};

use super::{Cx, Hit, Rule, brief_lock, shown};

pub const RULE: Rule = Rule {
    id: "rename-column",
    summary: "a column renamed in one step breaks the release still running",
    once_per_file: false,
    check,
};

fn check(cx: &Cx) -> Vec<Hit> {
    let Statement::AlterTable(a) = cx.statement else {
        return Vec::new();
    };
    let mut hits = Vec::new();
    for op in &a.operations {
        let (from, to) = match op {
            AlterTableOperation::RenameColumn {
                old_column_name,
                new_column_name,
            } => (old_column_name, new_column_name),
            AlterTableOperation::ChangeColumn {
                old_name, new_name, ..
            } if super::super::schema::fold(old_name, cx.dialect)
                != super::super::schema::fold(new_name, cx.dialect) =>
            {
                (old_name, new_name)
            }
            _ => continue,
        };
        hits.push(Hit {
            message: format!(
                "renames column {}.{} to {}",
                shown(&a.name),
                from,
                to
            ),
            lock: brief_lock(cx.dialect),
            why: format!(
                "the release that is running still reads and writes `{from}`: its queries fail from the moment the rename commits until every instance runs the new release"
            ),
            instead: "the `rename_column` intent (`phasegate plan rename TABLE.OLD NEW`): add the new column, keep both in sync, backfill, switch the app, then drop the old one".to_string(),
        });
    }
    hits
}

#[cfg(test)]
mod tests {
    use super::super::testing::at;
    use crate::dialect::Dialect;

    #[test]
    fn a_rename_is_found_in_every_dialect() {
        let sql = "SET lock_timeout = '2s';\nALTER TABLE users RENAME COLUMN name TO full_name;";
        assert_eq!(at(Dialect::Postgres, "rename-column", sql), vec![(2, 1)]);
        let sql = "ALTER TABLE users RENAME COLUMN name TO full_name;";
        assert_eq!(at(Dialect::Sqlite, "rename-column", sql), vec![(1, 1)]);
    }

    #[test]
    fn mysql_change_renames_only_when_the_name_differs() {
        let sql = "ALTER TABLE users CHANGE name full_name varchar(255);\nALTER TABLE users CHANGE Email email varchar(255);";
        assert_eq!(at(Dialect::Mysql, "rename-column", sql), vec![(1, 1)]);
    }

    #[test]
    fn adding_a_column_is_no_rename() {
        let sql = "ALTER TABLE users ADD COLUMN full_name text;";
        assert!(at(Dialect::Postgres, "rename-column", sql).is_empty());
    }
}
