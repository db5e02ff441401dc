//! `concurrently-in-transaction`: `CREATE INDEX CONCURRENTLY` inside a
//! transaction block.
//!
//! Postgres refuses it ("CREATE INDEX CONCURRENTLY cannot run inside a
//! transaction block", the CREATE INDEX page, "Building Indexes
//! Concurrently"), so the migration fails part-way. The block is an
//! explicit `BEGIN` in the file, or the runner's own: dbmate, goose and
//! sql-migrate wrap each file in one unless its marker says not to
//! (`-- migrate:up transaction:false`, `-- +goose NO TRANSACTION`,
//! `-- +migrate Up notransaction`).

use sqlparser::ast::Statement;

use super::{Cx, Hit, Rule, shown};
use crate::dialect::Dialect;

pub const RULE: Rule = Rule {
    id: "concurrently-in-transaction",
    summary: "CREATE INDEX CONCURRENTLY inside a transaction block (Postgres refuses it)",
    once_per_file: false,
    check,
};

fn check(cx: &Cx) -> Vec<Hit> {
    match cx.statement {
        Statement::CreateIndex(ci)
            if cx.dialect == Dialect::Postgres && ci.concurrently && cx.in_transaction =>
        {
            vec![Hit {
                message: format!(
                    "builds an index on {} CONCURRENTLY inside a transaction block",
                    shown(&ci.table_name)
                ),
                lock: "none taken: Postgres refuses the statement (ERROR: CREATE INDEX CONCURRENTLY cannot run inside a transaction block)".to_string(),
                why: "the migration fails at this statement; with a runner that wraps the file in a transaction, everything before it is rolled back".to_string(),
                instead: "run it outside a transaction: drop the BEGIN/COMMIT around it, or mark the file for the runner (`-- migrate:up transaction:false`, `-- +goose NO TRANSACTION`); the `add_index` intent does this for you".to_string(),
            }]
        }
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::at;
    use crate::dialect::Dialect;

    const RULE: &str = "concurrently-in-transaction";

    #[test]
    fn inside_begin_commit_only() {
        let sql = "CREATE INDEX CONCURRENTLY a ON t (x);\nBEGIN;\nCREATE INDEX CONCURRENTLY b ON t (y);\nCOMMIT;\nCREATE INDEX CONCURRENTLY c ON t (z);";
        assert_eq!(at(Dialect::Postgres, RULE, sql), vec![(3, 1)]);
    }

    #[test]
    fn a_runner_that_wraps_the_file_counts() {
        let sql = "-- migrate:up\nCREATE INDEX CONCURRENTLY a ON t (x);\n";
        assert_eq!(at(Dialect::Postgres, RULE, sql), vec![(2, 1)]);
        let sql = "-- migrate:up transaction:false\nCREATE INDEX CONCURRENTLY a ON t (x);\n";
        assert!(at(Dialect::Postgres, RULE, sql).is_empty());
    }
}
