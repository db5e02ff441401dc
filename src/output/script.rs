//! The SQL script of a step, as `--format sql`, the Markdown runbook and
//! `apply --dry-run` print it: text that runs as printed when piped into
//! `psql -v ON_ERROR_STOP=1`, `sqlite3 -bail` or `mariadb`.
//!
//! - Every statement is terminated: a statement without its `;` (a `sql`
//!   change, a template override) gets one, on a line of its own when its
//!   last line ends in a comment, and is never glued to a `COMMIT`.
//! - The lock and statement timeouts `apply` runs the step under are set at
//!   its top: the statements `apply` sends
//!   ([`session_bounds::step_prelude`](crate::session_bounds::step_prelude)),
//!   and on SQLite the busy timeout phasegate sets on its connection.
//! - A transactional step runs in one transaction, its SQL as written
//!   (comments kept); any other step (a concurrent index on Postgres, DDL on
//!   MySQL, a `sql` change marked `transactional: false`) runs statement by
//!   statement outside a transaction, each with its timeouts, as `apply`
//!   sends it. On MySQL, a statement with a body (`BEGIN … END`) is set off
//!   with `DELIMITER` for the `mysql`/`mariadb` client.
//! - A backfill runs as one `UPDATE` in one transaction; `phasegate apply`
//!   runs the same change in short batches along the table's key (the
//!   comment says so, and `--dry-run` shows its first batch).
//! - A verification is its query and the value it must return.

use crate::dialect::Dialect;
use crate::dialect::statements::split;
use crate::plan::{Step, StepKind};
use crate::session_bounds::{StepBounds, sqlite_busy_timeout, step_postlude, step_prelude};

/// How `apply` batches a backfill, for `apply --dry-run`: rows per batch,
/// the key the batches walk, and the first batch's SQL.
#[derive(Debug, Clone, Copy)]
pub struct Batches<'a> {
    /// Rows per batch (`backfill_batch_size`), or of the first batch when
    /// the batches are sized toward `target` (`backfill_batch_time`).
    pub size: u32,
    pub target: Option<std::time::Duration>,
    /// The key columns the batches walk.
    pub key: &'a [String],
    /// The first batch's SQL.
    pub first: &'a str,
}

/// The lines that introduce a script: how to run it, and the bounds its
/// steps run under (`source` says whose they are: "phasegate's defaults",
/// "environment prod's").
pub fn header(dialect: Dialect, bounds: StepBounds, source: &str) -> Vec<String> {
    let run = match dialect {
        Dialect::Postgres => "psql -v ON_ERROR_STOP=1 -f FILE",
        Dialect::Sqlite => "sqlite3 -bail DATABASE < FILE",
        Dialect::Mysql => "mariadb DATABASE < FILE (or mysql)",
    };
    let statement = bounds.statement_timeout.map_or_else(
        || "no statement_timeout".to_string(),
        |t| format!("statement_timeout {}ms", t.as_millis()),
    );
    vec![
        format!("-- Runs as printed: {run}."),
        format!(
            "-- Each step sets the bounds `phasegate apply` uses ({source}): lock_timeout {}ms, {statement}.",
            bounds.lock_timeout.as_millis()
        ),
        "-- `phasegate apply` also retries a statement that gave way on its lock, batches backfills, and records each step.".to_string(),
    ]
}

/// A step's script: a comment naming it, then [`statements`].
pub fn step(
    step: &Step,
    dialect: Dialect,
    bounds: StepBounds,
    batches: Option<Batches<'_>>,
) -> Vec<String> {
    let mut lines = vec![format!(
        "-- {} [{}]: {}",
        step.id,
        step.kind.name(),
        step.description
    )];
    lines.extend(statements(step, dialect, bounds, batches));
    lines
}

/// What runs for a step, in order, each statement terminated (nothing for
/// an app step).
pub fn statements(
    step: &Step,
    dialect: Dialect,
    bounds: StepBounds,
    batches: Option<Batches<'_>>,
) -> Vec<String> {
    let Some(sql) = step.sql.as_deref() else {
        return Vec::new();
    };
    let mut lines = Vec::new();
    match step.kind {
        StepKind::App => {}
        StepKind::Verify => {
            lines.push(format!("-- must return {}", step.expect.unwrap_or(0)));
            lines.push(as_written(dialect, sql));
        }
        StepKind::Backfill => {
            match batches {
                Some(b) => {
                    let size = match b.target {
                        None => format!("of {} rows", b.size),
                        Some(t) => format!(
                            "sized to take about {} each (the first {} rows)",
                            humantime::format_duration(t),
                            b.size
                        ),
                    };
                    lines.push(format!(
                        "-- phasegate apply runs this in batches {size} over ({}), each its own transaction; the first:",
                        b.key.join(", ")
                    ));
                    lines.extend(b.first.lines().map(|l| format!("--   {l}")));
                }
                None => lines.push(
                    "-- phasegate apply runs this in batches along the table's key, each its own short transaction.".to_string(),
                ),
            }
            lines.push(
                "-- Run by hand, it is one statement in one transaction (on a large table, prefer `phasegate apply`):".to_string(),
            );
            lines.extend(in_transaction(dialect, bounds, sql));
        }
        _ if step.transactional => lines.extend(in_transaction(dialect, bounds, sql)),
        _ => lines.extend(one_by_one(dialect, bounds, sql)),
    }
    lines
}

/// What `phasegate rollback` runs to undo a step (nothing when it has no
/// rollback SQL), in the step's own form: one transaction, or statement by
/// statement.
pub fn rollback(step: &Step, dialect: Dialect, bounds: StepBounds) -> Vec<String> {
    match step.rollback_sql.as_deref() {
        None => Vec::new(),
        Some(sql) if step.transactional => in_transaction(dialect, bounds, sql),
        Some(sql) => one_by_one(dialect, bounds, sql),
    }
}

/// `sql` in one transaction with its bounds: BEGIN, the timeouts, the SQL
/// as written (terminated), COMMIT.
fn in_transaction(dialect: Dialect, bounds: StepBounds, sql: &str) -> Vec<String> {
    let mut lines = busy_timeout(dialect, bounds);
    lines.extend(step_prelude(dialect, bounds, true));
    lines.push(as_written(dialect, sql));
    lines.extend(step_postlude(dialect, true));
    lines
}

/// `sql` statement by statement outside a transaction, each with its
/// bounds, as `apply` sends it.
fn one_by_one(dialect: Dialect, bounds: StepBounds, sql: &str) -> Vec<String> {
    let mut lines = busy_timeout(dialect, bounds);
    lines.push("-- not in a transaction block: statement by statement".to_string());
    for statement in split(dialect, sql) {
        lines.extend(step_prelude(dialect, bounds, false));
        lines.push(delimited(dialect, &statement));
        lines.extend(step_postlude(dialect, false));
    }
    lines
}

/// SQLite's lock wait, which phasegate sets on its connection.
fn busy_timeout(dialect: Dialect, bounds: StepBounds) -> Vec<String> {
    match dialect {
        Dialect::Sqlite => vec![sqlite_busy_timeout(bounds.lock_timeout)],
        Dialect::Postgres | Dialect::Mysql => Vec::new(),
    }
}

/// One statement, terminated; on MySQL a statement with `;`s of its own (a
/// body) is set off with `DELIMITER`, which the `mysql` client needs.
fn delimited(dialect: Dialect, statement: &str) -> String {
    if dialect == Dialect::Mysql && statement.contains(';') {
        return format!("DELIMITER //\n{}\n//\nDELIMITER ;", statement.trim());
    }
    terminated(statement)
}

/// The text as written (its comments and layout kept), with its last
/// statement terminated. Statements before the last are ended by the `;`
/// that separates them.
pub fn as_written(dialect: Dialect, sql: &str) -> String {
    let text = sql.trim();
    let parts = split(dialect, text);
    let Some(last) = parts.last() else {
        return text.to_string();
    };
    // The split returns slices of the text, trimmed.
    let Some(at) = text.rfind(last.as_str()) else {
        return parts
            .iter()
            .map(|s| terminated(s))
            .collect::<Vec<_>>()
            .join("\n");
    };
    let rest = &text[at + last.len()..];
    if rest.trim_start().starts_with(';') {
        return text.to_string();
    }
    format!("{}{}{rest}", &text[..at], terminated(last))
}

/// A statement as a script shows it: ended by `;`, on a line of its own
/// when the statement's last line holds a `--` or `#` comment (which would
/// swallow it).
pub fn terminated(statement: &str) -> String {
    let s = statement.trim_end();
    if s.ends_with(';') {
        return s.to_string();
    }
    let last = s.lines().last().unwrap_or_default();
    if last.contains("--") || last.contains('#') {
        format!("{s}\n;")
    } else {
        format!("{s};")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_statement_is_ended_where_a_comment_cannot_swallow_the_semicolon() {
        assert_eq!(terminated("DROP TABLE users"), "DROP TABLE users;");
        assert_eq!(terminated("DROP TABLE users;"), "DROP TABLE users;");
        assert_eq!(
            terminated("DROP TABLE users -- done"),
            "DROP TABLE users -- done\n;"
        );
        assert_eq!(terminated("DROP TABLE t /* x */"), "DROP TABLE t /* x */;");
    }

    #[test]
    fn text_as_written_keeps_its_comments_and_gets_its_last_semicolon() {
        let pg = Dialect::Postgres;
        assert_eq!(
            as_written(pg, "-- why\nCREATE TABLE a (id int)"),
            "-- why\nCREATE TABLE a (id int);"
        );
        assert_eq!(
            as_written(pg, "CREATE TABLE a (id int);\n-- done\n"),
            "CREATE TABLE a (id int);\n-- done"
        );
        assert_eq!(
            as_written(pg, "SELECT 1; SELECT 2 -- two"),
            "SELECT 1; SELECT 2 -- two\n;"
        );
        assert_eq!(as_written(pg, "-- only a comment"), "-- only a comment");
        assert_eq!(
            as_written(pg, "DO $$BEGIN PERFORM 1; END$$"),
            "DO $$BEGIN PERFORM 1; END$$;"
        );
    }

    #[test]
    fn a_mysql_body_is_set_off_with_delimiter() {
        let t = "CREATE TRIGGER t BEFORE INSERT ON a FOR EACH ROW BEGIN SET NEW.x = 1; END";
        assert_eq!(
            delimited(Dialect::Mysql, t),
            format!("DELIMITER //\n{t}\n//\nDELIMITER ;")
        );
        assert_eq!(delimited(Dialect::Mysql, "DROP TABLE a"), "DROP TABLE a;");
    }
}
