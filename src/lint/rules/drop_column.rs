//! `drop-column`: a column dropped while the previous release may still use it.
//!
//! Postgres: `DROP COLUMN` takes ACCESS EXCLUSIVE, briefly (catalog only,
//! 13.3.1). MySQL: INPLACE with a table rebuild, concurrent DML permitted
//! (17.12.1, "Dropping a column"). SQLite rewrites the table. In every
//! dialect the release that is running may still select or insert it.

use sqlparser::ast::{AlterTableOperation, Statement};

use super::{Cx, Hit, Rule, SQLITE_WRITE_LOCK, shown};
use crate::dialect::Dialect;

pub const RULE: Rule = Rule {
    id: "drop-column",
    summary: "a column dropped while the release still running may use it",
    once_per_file: false,
    check,
};

fn check(cx: &Cx) -> Vec<Hit> {
    let Statement::AlterTable(a) = cx.statement else {
        return Vec::new();
    };
    let mut hits = Vec::new();
    for op in &a.operations {
        let AlterTableOperation::DropColumn { column_names, .. } = op else {
            continue;
        };
        for c in column_names {
            hits.push(Hit {
                message: format!("drops column {}.{c}", shown(&a.name)),
                lock: match cx.dialect {
                    Dialect::Postgres => "ACCESS EXCLUSIVE on the table, briefly (catalog only)".to_string(),
                    Dialect::Mysql => "INPLACE with a table rebuild (concurrent DML permitted), an exclusive metadata lock at its start and end".to_string(),
                    Dialect::Sqlite => SQLITE_WRITE_LOCK.to_string(),
                },
                why: format!(
                    "the release that is running may still select or insert `{c}`: its queries fail from the moment the drop commits, and the data is gone (no rollback)"
                ),
                instead: "the `drop_column` intent (`phasegate plan drop-column TABLE.COL`): the app stops using it in one deploy, the column is dropped in a later, irreversible phase with its gates".to_string(),
            });
        }
    }
    hits
}

#[cfg(test)]
mod tests {
    use super::super::testing::at;
    use crate::dialect::Dialect;

    #[test]
    fn each_dropped_column_is_found() {
        let sql = "ALTER TABLE users DROP COLUMN legacy;\nALTER TABLE users DROP CONSTRAINT c;";
        for d in Dialect::ALL {
            assert_eq!(at(d, "drop-column", sql), vec![(1, 1)], "{d}");
        }
    }
}
