//! `blocking-index`: an index built while writes to the table wait.
//!
//! Postgres: `CREATE INDEX` without `CONCURRENTLY` takes SHARE (13.3.1:
//! "Acquired by CREATE INDEX (without CONCURRENTLY)"), which blocks
//! INSERT, UPDATE and DELETE for the whole build; `ADD CONSTRAINT … UNIQUE`
//! or `PRIMARY KEY` (without `USING INDEX`) builds its index under ACCESS
//! EXCLUSIVE. MySQL: a secondary index is built in place with concurrent
//! DML by default (17.12.1, "Creating or adding a secondary index"), but
//! the server picks a stronger lock by itself when it cannot (a FULLTEXT or
//! SPATIAL index, a change combined with others in one ALTER); only
//! `ALGORITHM=INPLACE, LOCK=NONE` makes it refuse instead of locking.
//! SQLite has no other way to build an index (one writer at a time), so
//! nothing is reported there.

use sqlparser::ast::{
    AlterTableAlgorithm, AlterTableLock, AlterTableOperation, Statement, TableConstraint,
};

use super::{Cx, Hit, Rule, shown};
use crate::dialect::Dialect;

pub const RULE: Rule = Rule {
    id: "blocking-index",
    summary: "an index built while writes wait (Postgres without CONCURRENTLY; MySQL without ALGORITHM=INPLACE, LOCK=NONE)",
    once_per_file: false,
    check,
};

const INSTEAD: &str = "the `add_index` intent (`phasegate plan add-index TABLE COLS`): Postgres builds it CONCURRENTLY outside a transaction, MySQL with ALGORITHM=INPLACE, LOCK=NONE";

/// Whether MySQL options say `ALGORITHM=INPLACE` (or INSTANT) and `LOCK=NONE`.
fn mysql_online(ops: &[AlterTableOperation]) -> bool {
    let algorithm = ops.iter().any(|o| {
        matches!(
            o,
            AlterTableOperation::Algorithm {
                algorithm: AlterTableAlgorithm::Inplace | AlterTableAlgorithm::Instant,
                ..
            }
        )
    });
    let lock = ops.iter().any(|o| {
        matches!(
            o,
            AlterTableOperation::Lock {
                lock: AlterTableLock::None,
                ..
            }
        )
    });
    algorithm && lock
}

fn mysql_hit(what: String) -> Hit {
    Hit {
        message: format!("{what} without ALGORITHM=INPLACE, LOCK=NONE"),
        lock: "INPLACE with concurrent DML by default, but the server takes a SHARED or EXCLUSIVE lock (or copies the table) by itself when it cannot build in place".to_string(),
        why: "if the server falls back to a stronger lock, writes to the table wait for the whole build; stating ALGORITHM=INPLACE, LOCK=NONE makes it refuse instead".to_string(),
        instead: INSTEAD.to_string(),
    }
}

fn check(cx: &Cx) -> Vec<Hit> {
    match (cx.statement, cx.dialect) {
        (Statement::CreateIndex(ci), Dialect::Postgres) if !ci.concurrently => vec![Hit {
            message: format!(
                "builds index {}on {} without CONCURRENTLY",
                ci.name.as_ref().map_or(String::new(), |n| format!("{n} ")),
                shown(&ci.table_name)
            ),
            lock: "SHARE on the table for the whole build: reads go on, INSERT/UPDATE/DELETE wait".to_string(),
            why: "writes to the table stop for as long as the index takes to build (minutes on a large table)".to_string(),
            instead: INSTEAD.to_string(),
        }],
        (Statement::CreateIndex(ci), Dialect::Mysql) if !mysql_online(&ci.alter_options) => {
            vec![mysql_hit(format!(
                "builds index {}on {}",
                ci.name.as_ref().map_or(String::new(), |n| format!("{n} ")),
                shown(&ci.table_name)
            ))]
        }
        (Statement::AlterTable(a), Dialect::Postgres) => a
            .operations
            .iter()
            .filter_map(|op| match op {
                AlterTableOperation::AddConstraint {
                    constraint: c @ (TableConstraint::Unique(_) | TableConstraint::PrimaryKey(_)),
                    ..
                } => Some(Hit {
                    message: format!("adds {} to {} and builds its index in place", kind(c), shown(&a.name)),
                    lock: "ACCESS EXCLUSIVE on the table for the whole index build: reads and writes wait".to_string(),
                    why: "every query on the table waits for as long as the index takes to build".to_string(),
                    instead: "build a unique index CONCURRENTLY first (the `add_index` intent with `unique: true`), then `ADD CONSTRAINT … USING INDEX`".to_string(),
                }),
                _ => None,
            })
            .collect(),
        (Statement::AlterTable(a), Dialect::Mysql) if !mysql_online(&a.operations) => a
            .operations
            .iter()
            .filter_map(|op| match op {
                AlterTableOperation::AddConstraint {
                    constraint:
                        c @ (TableConstraint::Unique(_)
                        | TableConstraint::Index(_)
                        | TableConstraint::FulltextOrSpatial(_)
                        | TableConstraint::PrimaryKey(_)),
                    ..
                } => Some(mysql_hit(format!("adds {} to {}", kind(c), shown(&a.name)))),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

fn kind(c: &TableConstraint) -> &'static str {
    match c {
        TableConstraint::Unique(_) => "a UNIQUE constraint",
        TableConstraint::PrimaryKey(_) => "a PRIMARY KEY",
        TableConstraint::FulltextOrSpatial(_) => "a FULLTEXT or SPATIAL index",
        _ => "an index",
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::at;
    use crate::dialect::Dialect;

    const RULE: &str = "blocking-index";

    #[test]
    fn postgres_wants_concurrently() {
        let sql = "CREATE INDEX i ON users (email);\nCREATE INDEX CONCURRENTLY j ON users (name);\nALTER TABLE users ADD CONSTRAINT u UNIQUE (email);\nALTER TABLE users ADD CONSTRAINT u2 UNIQUE USING INDEX j;";
        assert_eq!(at(Dialect::Postgres, RULE, sql), vec![(1, 1), (3, 1)]);
    }

    #[test]
    fn mysql_wants_inplace_and_no_lock() {
        let sql = "CREATE INDEX i ON users (email);\nALTER TABLE users ADD INDEX j (name), ALGORITHM=INPLACE, LOCK=NONE;\nALTER TABLE users ADD INDEX k (name);";
        assert_eq!(at(Dialect::Mysql, RULE, sql), vec![(1, 1), (3, 1)]);
    }

    #[test]
    fn an_index_on_a_table_created_in_the_same_file_is_fine() {
        let sql = "CREATE TABLE t (a int);\nCREATE INDEX i ON t (a);";
        assert!(at(Dialect::Postgres, RULE, sql).is_empty());
    }

    #[test]
    fn sqlite_has_no_other_way() {
        assert!(at(Dialect::Sqlite, RULE, "CREATE INDEX i ON users (email);").is_empty());
    }
}
