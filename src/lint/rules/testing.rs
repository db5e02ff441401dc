//! Test helpers shared by the rules' tests.

use crate::dialect::Dialect;
use crate::lint::{Finding, lint_text, schema::Schema};

/// The findings of `sql` linted as one file in `dialect`.
pub fn lint(dialect: Dialect, sql: &str) -> Vec<Finding> {
    lint_text("t.sql", sql, dialect, &mut Schema::default())
}

/// (line, column) of each finding of `rule` in `sql`.
pub fn at(dialect: Dialect, rule: &str, sql: &str) -> Vec<(u64, u64)> {
    lint(dialect, sql)
        .into_iter()
        .filter(|f| f.rule == rule)
        .map(|f| (f.line, f.column))
        .collect()
}
