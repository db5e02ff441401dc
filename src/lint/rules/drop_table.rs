//! `drop-table`: a table dropped while the previous release may still use it.
//!
//! Postgres: `DROP TABLE` takes ACCESS EXCLUSIVE (13.3.1). MySQL: an
//! exclusive metadata lock. SQLite: the database's write lock.

use sqlparser::ast::{ObjectType, Statement};

use super::{Cx, Hit, Rule, brief_lock};

pub const RULE: Rule = Rule {
    id: "drop-table",
    summary: "a table dropped while the release still running may use it",
    once_per_file: false,
    check,
};

fn check(cx: &Cx) -> Vec<Hit> {
    let Statement::Drop {
        object_type: ObjectType::Table,
        names,
        temporary: false,
        ..
    } = cx.statement
    else {
        return Vec::new();
    };
    names
        .iter()
        .filter(|n| !cx.new_tables.contains(&super::key(n, cx.dialect)))
        .map(|n| Hit {
            message: format!("drops table {n}"),
            lock: brief_lock(cx.dialect),
            why: format!(
                "the release that is running may still query `{n}`: its queries fail from the moment the drop commits, and the data is gone (no rollback)"
            ),
            instead: "the `drop_table` intent (`phasegate plan drop-table TABLE`): the app stops using it first; the drop is a later, irreversible phase with its gates (backup, approval)".to_string(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::testing::at;
    use crate::dialect::Dialect;

    #[test]
    fn dropping_a_table_is_found_unless_the_file_created_it() {
        let sql = "DROP TABLE audit_log;\nCREATE TABLE tmp (a int);\nDROP TABLE tmp;";
        assert_eq!(at(Dialect::Postgres, "drop-table", sql), vec![(1, 1)]);
    }
}
