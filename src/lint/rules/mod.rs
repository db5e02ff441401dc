//! The lint rules, one file each with its tests (squawk's layout).
//!
//! Locks are named as the databases document them: Postgres, "Explicit
//! Locking", section 13.3.1 "Table-Level Locks" (the table of lock modes and
//! the commands that take each) and the `ALTER TABLE` page ("Notes": which
//! forms rewrite the table or scan it); MySQL, "InnoDB and Online DDL",
//! section 17.12.1 "Online DDL Operations" (each operation's ALGORITHM, in
//! place or not, whether concurrent DML is permitted); SQLite, "File
//! Locking And Concurrency" (one writer at a time: a schema change holds the
//! database's write lock until it commits).

use sqlparser::ast::{Expr, ObjectName, Statement, Value};

use super::schema::{Schema, table_key};
use crate::dialect::Dialect;

mod add_required_column;
mod blocking_index;
mod concurrently_in_transaction;
mod drop_column;
mod drop_table;
mod missing_lock_timeout;
mod rename_column;
mod rename_table;
mod type_change;
mod validating_constraint;

#[cfg(test)]
pub(crate) mod testing;

/// What a rule sees of one statement.
pub struct Cx<'a> {
    pub statement: &'a Statement,
    pub dialect: Dialect,
    /// A transaction block is open where the statement runs.
    pub in_transaction: bool,
    /// A lock timeout was set earlier in the file.
    pub lock_timeout_set: bool,
    /// Columns the linted files created before this statement.
    pub schema: &'a Schema,
    /// Tables this file created before this statement (keys, see [`key`]).
    pub new_tables: &'a [String],
}

/// One problem a rule found in a statement (the driver adds where).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hit {
    pub message: String,
    pub lock: String,
    pub why: String,
    pub instead: String,
}

/// A rule: its id (what `-- phasegate: accept <id>` names), a one-line
/// summary (docs/lint.md), and its check.
pub struct Rule {
    pub id: &'static str,
    pub summary: &'static str,
    /// Reported at most once per file (the first statement that breaks it).
    pub once_per_file: bool,
    pub check: fn(&Cx) -> Vec<Hit>,
}

/// Every rule, in the order findings of one statement are listed.
pub const RULES: &[Rule] = &[
    rename_column::RULE,
    rename_table::RULE,
    add_required_column::RULE,
    blocking_index::RULE,
    validating_constraint::RULE,
    type_change::RULE,
    drop_column::RULE,
    drop_table::RULE,
    missing_lock_timeout::RULE,
    concurrently_in_transaction::RULE,
];

/// The id of the rule that still runs on tables the file created.
pub const MISSING_LOCK_TIMEOUT: &str = missing_lock_timeout::RULE.id;

/// Every id an accept marker may name: the rules', and `parse-error`.
pub fn ids() -> Vec<&'static str> {
    RULES
        .iter()
        .map(|r| r.id)
        .chain([super::PARSE_ERROR])
        .collect()
}

/// A table's name for messages, as written (`public.users`).
pub fn shown(name: &ObjectName) -> String {
    name.to_string()
}

/// The table's key (see [`table_key`]).
pub fn key(name: &ObjectName, dialect: Dialect) -> String {
    table_key(name, dialect)
}

/// Whether `statement` sets the lock timeout: Postgres `SET [LOCAL|SESSION]
/// lock_timeout` or `SELECT set_config('lock_timeout', …)`; MySQL `SET
/// [SESSION] lock_wait_timeout` (or `innodb_lock_wait_timeout`); SQLite
/// `PRAGMA busy_timeout`; to a value that turns it on (not zero, not
/// `DEFAULT`: [`super::timeout`]).
pub fn sets_lock_timeout(statement: &Statement, dialect: Dialect) -> bool {
    super::timeout::effect(statement, dialect).is_some_and(|e| e.on)
}

/// A string literal's text, when `e` is one.
pub fn string_literal(e: &Expr) -> Option<String> {
    match e {
        Expr::Value(v) => match &v.value {
            Value::SingleQuotedString(s) | Value::DoubleQuotedString(s) => Some(s.clone()),
            _ => None,
        },
        _ => None,
    }
}

/// The lock a brief catalog-only change takes, per dialect.
pub fn brief_lock(dialect: Dialect) -> String {
    match dialect {
        Dialect::Postgres => "ACCESS EXCLUSIVE on the table, briefly (catalog only); while it waits for running transactions, every query on the table queues behind it".to_string(),
        Dialect::Mysql => "an exclusive metadata lock on the table, briefly (ALGORITHM=INSTANT or INPLACE); while it waits for open transactions, every query on the table queues behind it".to_string(),
        Dialect::Sqlite => "the database's write lock until the migration commits".to_string(),
    }
}

/// SQLite's one lock, for rules whose lock is the same everywhere there.
pub const SQLITE_WRITE_LOCK: &str = "the database's write lock until the migration commits (other writers wait or fail with SQLITE_BUSY)";

/// The existing table a statement changes (`ALTER TABLE`, `CREATE INDEX`),
/// as a key: changes to a table the same file created are not reported
/// (it is empty, and no release uses it yet).
pub fn target(statement: &Statement, dialect: Dialect) -> Option<String> {
    match statement {
        Statement::AlterTable(a) => Some(key(&a.name, dialect)),
        Statement::CreateIndex(ci) => Some(key(&ci.table_name, dialect)),
        _ => None,
    }
}

/// The table a statement creates, as a key.
pub fn created(statement: &Statement, dialect: Dialect) -> Option<String> {
    match statement {
        Statement::CreateTable(t) => Some(key(&t.name, dialect)),
        _ => None,
    }
}
