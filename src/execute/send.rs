//! Sending a step's SQL: statement by statement when the step is not
//! transactional, each with the environment's `lock_timeout` and bounded
//! retries, and, when one fails, an account of what ran before it.
//!
//! Postgres runs a text of several statements sent at once as one implicit
//! transaction, where `CREATE INDEX CONCURRENTLY` refuses to run; MySQL
//! commits each DDL statement, so a retry of the whole text would repeat
//! statements that already ran; SQLite, outside a transaction, commits each
//! statement too. A non-transactional step (and its down, on rollback) is
//! therefore split ([`statements`]) and sent one statement at a time
//! ([`run_units`]); a retry repeats only the statement that gave way.

use std::time::Duration;

use sqlx::AssertSqlSafe;

use super::RunError;
use super::deadline::{self, LOST};
use super::progress::{LockWait, Progress};
use super::steps::{GAVE_WAY, StepError, postlude, prelude};
use crate::config::Environment;
use crate::db_error::DbError;
use crate::dialect::Dialect;
use crate::name::TableName;
use crate::plan::Step;
use crate::tracker::{Store, is_busy};

/// How a step that is not transactional is sent: statement by statement on
/// Postgres (a text of several statements would run as one implicit
/// transaction, which `CREATE INDEX CONCURRENTLY` refuses) and on MySQL
/// (which commits each DDL statement, so a retry must repeat only the one
/// that gave way), and on SQLite (which commits each statement run outside a
/// transaction: a failure must say which ones ran).
pub(super) fn statements(dialect: Dialect, sql: &str) -> Vec<String> {
    crate::dialect::statements::split(dialect, sql)
}

/// A unit of a step (the whole step, or one of its statements) that failed:
/// which one, after how many tries, and the database's error.
pub(super) struct UnitFailure {
    /// The unit that failed, from 0.
    pub n: usize,
    /// How many units the step has.
    pub of: usize,
    /// How many times it was tried.
    pub tries: u32,
    pub error: sqlx::Error,
}

/// What phasegate was running when a unit failed.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Running {
    /// The step's up, by `apply`.
    Up,
    /// The step's down, by `rollback`.
    Down,
}

impl UnitFailure {
    /// The step's error: what ran before the failing unit, whether it gave
    /// way on a lock, and the database's error with its fields.
    pub(super) fn into_step_error(
        self,
        step: &str,
        phase: usize,
        env: &Environment,
        plan: &str,
        running: Running,
    ) -> StepError {
        let mut parts: Vec<String> = Vec::new();
        if running == Running::Down {
            parts.push(format!(
                "rolling it back failed, and phase {phase} is partly undone"
            ));
        }
        let (n, of) = (self.n + 1, self.of);
        let lost = deadline::is_lost(&self.error);
        if lost {
            parts.push(format!(
                "{LOST} while it ran{}",
                if of > 1 {
                    format!(" statement {n} of {of}")
                } else {
                    String::new()
                }
            ));
        }
        if self.n > 0 {
            let (ran, them) = if self.n == 1 {
                (format!("statement 1 of {of} ran and committed"), "it")
            } else {
                (
                    format!("statements 1–{} of {of} ran and committed", self.n),
                    "them",
                )
            };
            parts.push(match running {
                Running::Up => format!(
                    "{ran} (running the step again runs {them} again: undo {them}, or finish the step by hand and record it: `phasegate resolve --env {} {plan} --step {step} --as applied`)",
                    env.name
                ),
                Running::Down => format!("{ran} (running rollback again runs {them} again)"),
            });
        }
        let failed = if of > 1 {
            format!("statement {n} of {of}")
        } else {
            String::new()
        };
        if is_lock_timeout(&self.error) {
            parts.push(format!(
                "{failed}{}{GAVE_WAY} within {}, {} times (a long transaction holds the table; phasegate gave way each time)",
                if failed.is_empty() { "" } else { " " },
                lock_wait_text(env),
                self.tries
            ));
        } else if lost {
            parts.push(match running {
                Running::Up => "whether that statement took effect is unknown".to_string(),
                Running::Down => "whether that statement took effect is unknown; run rollback again once the server has ended the lost session (it holds the environment's lock until then)".to_string(),
            });
        } else if !failed.is_empty() {
            parts.push(format!("{failed} failed"));
        }
        StepError {
            step: step.to_string(),
            phase,
            message: parts.join("; "),
            database: Some(Box::new(DbError::from_sqlx(&self.error))),
        }
    }
}

/// Runs `units` in order with `run_one`, retrying the one that gave way on
/// its lock (`lock_retries` times, with backoff) and never one that ran;
/// each try within the environment's statement deadline
/// ([`deadline::statement_deadline`]). A lost connection ends the step.
pub(super) async fn run_units(
    store: &mut Store,
    env: &Environment,
    units: &[String],
    (progress, step): (&dyn Progress, &Step),
    mut run_one: impl AsyncFnMut(&mut Store, &str) -> Result<(), sqlx::Error>,
) -> Result<(), UnitFailure> {
    let deadline = deadline::statement_deadline(env);
    for (n, unit) in units.iter().enumerate() {
        let index = concurrent_index(unit).filter(|_| env.dialect == Dialect::Postgres);
        let mut attempt = 0;
        loop {
            let Err(error) = deadline::within(deadline, run_one(store, unit)).await else {
                break;
            };
            if deadline::is_lost(&error) {
                // Nothing more can be sent on this connection (a silent
                // one would not answer): the step fails here.
                return Err(UnitFailure {
                    n,
                    of: units.len(),
                    tries: attempt + 1,
                    error,
                });
            }
            if env.dialect == Dialect::Mysql {
                // A failed unit skips the rest of its step, which may hold
                // the reset of a session setting it changed (add_foreign_key
                // turns foreign_key_checks off around its ALTER).
                let _ = store.exec("SET SESSION foreign_key_checks = 1").await;
            }
            if let Some(ix) = &index {
                // Best effort: the unit's own error is the one to report,
                // and the next run drops the invalid index before it builds.
                let _ = drop_invalid_index(store, ix).await;
            }
            if is_lock_timeout(&error) && attempt < env.lock_retries {
                attempt += 1;
                let pause = gave_way(progress, step, env, step.table.as_ref(), attempt);
                tokio::time::sleep(pause).await;
                continue;
            }
            return Err(UnitFailure {
                n,
                of: units.len(),
                tries: attempt + 1,
                error,
            });
        }
    }
    Ok(())
}

pub(super) async fn outside_transaction(
    store: &mut Store,
    env: &Environment,
    sql: &str,
) -> Result<(), sqlx::Error> {
    let before = prelude(env, false);
    if !before.is_empty() {
        sqlx::raw_sql(AssertSqlSafe(before.join("\n")))
            .execute(store.conn())
            .await?;
    }
    let result = sqlx::raw_sql(AssertSqlSafe(sql.to_string()))
        .execute(store.conn())
        .await
        .map(|_| ());
    let after = postlude(env, false);
    if !after.is_empty() {
        let _ = sqlx::raw_sql(AssertSqlSafe(after.join("\n")))
            .execute(store.conn())
            .await;
    }
    result
}

/// The statement gave up waiting for a lock: Postgres `lock_not_available`,
/// SQLite busy, MySQL `ER_LOCK_WAIT_TIMEOUT` (a metadata or a row lock).
pub(super) fn is_lock_timeout(e: &sqlx::Error) -> bool {
    let sqlx::Error::Database(db) = e else {
        return false;
    };
    is_busy(e)
        || db.code().as_deref() == Some("55P03")
        || db
            .try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>()
            .is_some_and(|m| m.number() == 1205)
}

/// How long a lock wait lasted, as the database applied `lock_timeout`
/// (MySQL rounds it up to whole seconds).
fn lock_wait_text(env: &Environment) -> String {
    let ms = env.lock_timeout.as_millis();
    match env.dialect {
        Dialect::Mysql => format!("{}s", ms.div_ceil(1000).max(1)),
        Dialect::Postgres | Dialect::Sqlite => format!("{ms}ms"),
    }
}

/// Tells `progress` that a statement of `step` on `table` gave way on its
/// lock and that try `attempt` + 1 (`attempt`: the retries so far, from 1)
/// comes after a pause; returns the pause ([`backoff`]).
pub(super) fn gave_way(
    progress: &dyn Progress,
    step: &Step,
    env: &Environment,
    table: Option<&TableName>,
    attempt: u32,
) -> Duration {
    let pause = backoff(attempt);
    progress.lock_wait(
        step,
        &LockWait {
            table: table.map(ToString::to_string),
            attempt: attempt + 1,
            attempts: env.lock_retries.saturating_add(1),
            waited: lock_waited(env),
            retry_in: pause,
        },
    );
    pause
}

/// How long a statement waits for a lock before it gives way: the
/// environment's `lock_timeout`, in whole seconds on MySQL (which rounds it up).
fn lock_waited(env: &Environment) -> Duration {
    match env.dialect {
        Dialect::Mysql => {
            Duration::from_secs(env.lock_timeout.as_millis().div_ceil(1000).max(1) as u64)
        }
        Dialect::Postgres | Dialect::Sqlite => env.lock_timeout,
    }
}

/// 0.5s, 1s, 2s … plus up to 50% jitter, so retries from several runs do not align.
pub(super) fn backoff(attempt: u32) -> Duration {
    let base = Duration::from_millis(500) * 2u32.saturating_pow(attempt.saturating_sub(1).min(6));
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    base + base.mul_f64(f64::from(nanos % 1000) / 2000.0)
}

/// The index a `CREATE [UNIQUE] INDEX CONCURRENTLY [IF NOT EXISTS] "name" ON "schema"."table"`
/// builds, as a quoted, schema-qualified name for `to_regclass`.
pub(crate) fn concurrent_index(sql: &str) -> Option<String> {
    let upper = sql.to_ascii_uppercase();
    let at = upper.find("INDEX CONCURRENTLY")?;
    if !upper[..at].trim_start().starts_with("CREATE") {
        return None;
    }
    let mut rest = sql[at + "INDEX CONCURRENTLY".len()..].trim_start();
    if rest.to_ascii_uppercase().starts_with("IF NOT EXISTS") {
        rest = rest["IF NOT EXISTS".len()..].trim_start();
    }
    let (name, after) = quoted_name(rest)?;
    let after = after.trim_start();
    if !after.to_ascii_uppercase().starts_with("ON") {
        return None;
    }
    let (first, tail) = quoted_name(after[2..].trim_start())?;
    // `"schema"."table"`: the index lives in the table's schema.
    Some(match tail.strip_prefix('.') {
        Some(t) if quoted_name(t).is_some() => format!("{first}.{name}"),
        _ => name,
    })
}

/// A leading `"quoted"` identifier (with `""` escapes) and what follows it.
fn quoted_name(s: &str) -> Option<(String, &str)> {
    let body = s.strip_prefix('"')?;
    let mut i = 0;
    let bytes = body.as_bytes();
    while i < bytes.len() {
        if bytes[i] == b'"' {
            if bytes.get(i + 1) == Some(&b'"') {
                i += 2;
                continue;
            }
            return Some((format!("\"{}\"", &body[..i]), &body[i + 1..]));
        }
        i += 1;
    }
    None
}

pub(super) async fn drop_invalid_index(store: &mut Store, qualified: &str) -> Result<(), RunError> {
    let lit = Dialect::Postgres.quote_literal(qualified);
    let invalid: i64 = sqlx::query_scalar(AssertSqlSafe(format!(
        "SELECT count(*) FROM pg_index WHERE indexrelid = to_regclass({lit}) AND NOT indisvalid"
    )))
    .fetch_one(store.conn())
    .await
    .map_err(|e| store.db_error(e))?;
    if invalid > 0 {
        store
            .exec(&format!("DROP INDEX CONCURRENTLY IF EXISTS {qualified}"))
            .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_index_a_concurrent_build_creates() {
        let sql = "CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS \"users_email_key\"\n  ON \"billing\".\"users\" (\"email\");";
        assert_eq!(
            concurrent_index(sql).as_deref(),
            Some("\"billing\".\"users_email_key\"")
        );
        let sql = "CREATE INDEX CONCURRENTLY \"we\"\"ird\" ON \"t\" (\"c\")";
        assert_eq!(concurrent_index(sql).as_deref(), Some("\"we\"\"ird\""));
        assert_eq!(
            concurrent_index("DROP INDEX CONCURRENTLY IF EXISTS \"x\""),
            None
        );
        assert_eq!(concurrent_index("CREATE INDEX \"x\" ON \"t\" (c)"), None);
    }
}
