//! `rename-table`: renaming a table in one step.
//!
//! Postgres: `ALTER TABLE … RENAME TO` takes ACCESS EXCLUSIVE, briefly
//! (13.3.1). MySQL: `RENAME TABLE` takes an exclusive metadata lock
//! (17.12.1, "Renaming a table": INSTANT). The previous release keeps
//! querying the old name.

use sqlparser::ast::{AlterTableOperation, ObjectName, RenameTableNameKind, Statement};

use super::{Cx, Hit, Rule, brief_lock, shown};

pub const RULE: Rule = Rule {
    id: "rename-table",
    summary: "a table renamed in one step breaks the release still running",
    once_per_file: false,
    check,
};

fn hit(cx: &Cx, from: &ObjectName, to: &ObjectName) -> Hit {
    Hit {
        message: format!("renames table {} to {}", shown(from), shown(to)),
        lock: brief_lock(cx.dialect),
        why: format!(
            "the release that is running still queries `{from}`: its queries fail from the moment the rename commits until every instance runs the new release"
        ),
        instead: "the `rename_table` intent (`phasegate plan rename-table OLD NEW`): rename, and keep a view with the old name for the old release until the contract phase".to_string(),
    }
}

fn check(cx: &Cx) -> Vec<Hit> {
    match cx.statement {
        Statement::AlterTable(a) => a
            .operations
            .iter()
            .filter_map(|op| match op {
                AlterTableOperation::RenameTable { table_name } => {
                    let (RenameTableNameKind::As(to) | RenameTableNameKind::To(to)) = table_name;
                    Some(hit(cx, &a.name, to))
                }
                _ => None,
            })
            .collect(),
        Statement::RenameTable(renames) => renames
            .iter()
            .map(|r| hit(cx, &r.old_name, &r.new_name))
            .collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::at;
    use crate::dialect::Dialect;

    #[test]
    fn both_spellings_are_found() {
        assert_eq!(
            at(
                Dialect::Postgres,
                "rename-table",
                "ALTER TABLE invoices RENAME TO bills;"
            ),
            vec![(1, 1)]
        );
        assert_eq!(
            at(
                Dialect::Mysql,
                "rename-table",
                "SELECT 1;\n  RENAME TABLE invoices TO bills;"
            ),
            vec![(2, 3)]
        );
    }

    #[test]
    fn renaming_a_column_is_not_renaming_the_table() {
        assert!(
            at(
                Dialect::Postgres,
                "rename-table",
                "ALTER TABLE a RENAME COLUMN b TO c;"
            )
            .is_empty()
        );
    }
}
