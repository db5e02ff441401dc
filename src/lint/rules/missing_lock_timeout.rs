//! `missing-lock-timeout`: a file whose DDL waits for its lock without limit.
//!
//! A DDL statement that waits for its lock (behind one long transaction)
//! makes every later query on the table queue behind it: Postgres grants
//! locks in order (13.3.1), MySQL's metadata locks too. A `lock_timeout`
//! (Postgres) or `lock_wait_timeout` (MySQL) set before it turns the wait
//! into an error, which can be retried. Reported once per file, at the
//! first such statement. SQLite: not checked (its `busy_timeout` is the
//! connection's, usually set by the runner).

use sqlparser::ast::{
    AlterTableOperation, ColumnOption, ObjectName, ObjectType, Statement, TableConstraint,
};

use super::{Cx, Hit, Rule, key};
use crate::dialect::Dialect;

pub const RULE: Rule = Rule {
    id: "missing-lock-timeout",
    summary: "DDL in a file that never sets lock_timeout (MySQL: lock_wait_timeout) before it",
    once_per_file: true,
    check,
};

/// Whether the statement waits for a lock on an existing table: any
/// change to one, and a foreign key from a new table to an existing one
/// (SHARE ROW EXCLUSIVE on the referenced table, 13.3.1).
fn takes_lock(cx: &Cx) -> bool {
    let existing = |n: &ObjectName| !cx.new_tables.contains(&key(n, cx.dialect));
    let references_existing = |c: &TableConstraint| matches!(c, TableConstraint::ForeignKey(fk) if existing(&fk.foreign_table));
    match cx.statement {
        Statement::AlterTable(a) if !existing(&a.name) => a.operations.iter().any(|op| {
            matches!(op, AlterTableOperation::AddConstraint { constraint, .. } if references_existing(constraint))
        }),
        Statement::CreateIndex(ci) => existing(&ci.table_name),
        Statement::CreateTable(t) => {
            t.constraints.iter().any(references_existing)
                || t.columns.iter().any(|c| {
                    c.options.iter().any(|o| {
                        matches!(&o.option, ColumnOption::ForeignKey(fk) if existing(&fk.foreign_table))
                    })
                })
        }
        Statement::AlterTable(_) | Statement::RenameTable(_) | Statement::Truncate(_) => true,
        Statement::Drop {
            object_type: ObjectType::Table | ObjectType::Index,
            ..
        } => true,
        _ => false,
    }
}

fn check(cx: &Cx) -> Vec<Hit> {
    if cx.dialect == Dialect::Sqlite || cx.lock_timeout_set || !takes_lock(cx) {
        return Vec::new();
    }
    let set = match cx.dialect {
        Dialect::Mysql => "SET SESSION lock_wait_timeout = 5;",
        _ => "SET lock_timeout = '2s';",
    };
    vec![Hit {
        message: "takes a lock with no lock timeout set before it in this file".to_string(),
        lock: "waits for its lock without limit; meanwhile every query on the table queues behind it".to_string(),
        why: "one long-running transaction on the table turns this statement's wait into an outage of the table".to_string(),
        instead: format!(
            "`{set}` at the top of the file, and retry on timeout (phasegate's apply and exported files set it for every step and retry)"
        ),
    }]
}

#[cfg(test)]
mod tests {
    use super::super::testing::at;
    use crate::dialect::Dialect;

    const RULE: &str = "missing-lock-timeout";

    #[test]
    fn reported_once_at_the_first_ddl_before_a_timeout() {
        let sql = "SELECT 1;\nALTER TABLE a ADD b int;\nALTER TABLE a ADD c int;";
        assert_eq!(at(Dialect::Postgres, RULE, sql), vec![(2, 1)]);
        let sql = "SET lock_timeout = '2s';\nALTER TABLE a ADD b int;";
        assert!(at(Dialect::Postgres, RULE, sql).is_empty());
        let sql = "SELECT set_config('lock_timeout', '2s', false);\nALTER TABLE a ADD b int;";
        assert!(at(Dialect::Postgres, RULE, sql).is_empty());
        let sql = "SET SESSION lock_wait_timeout = 5;\nALTER TABLE a ADD b int;";
        assert!(at(Dialect::Mysql, RULE, sql).is_empty());
        assert_eq!(
            at(Dialect::Mysql, RULE, "ALTER TABLE a ADD b int;"),
            vec![(1, 1)]
        );
    }

    #[test]
    fn a_new_table_locks_the_existing_table_it_references() {
        let sql = "CREATE TABLE t (a int);\nCREATE INDEX i ON t (a);\nALTER TABLE t ADD CONSTRAINT f FOREIGN KEY (a) REFERENCES users (id);";
        assert_eq!(at(Dialect::Postgres, RULE, sql), vec![(3, 1)]);
        let sql = "CREATE TABLE t (a int REFERENCES users (id));";
        assert_eq!(at(Dialect::Postgres, RULE, sql), vec![(1, 1)]);
        let sql = "CREATE TABLE t (a int PRIMARY KEY);\nCREATE TABLE u (b int REFERENCES t (a));";
        assert!(at(Dialect::Postgres, RULE, sql).is_empty());
    }
}
