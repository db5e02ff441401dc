//! Running one step's SQL against an environment, recording it in the same
//! transaction where the database allows, with a short `lock_timeout` and
//! bounded retries so phasegate never leaves the application's queries
//! queued behind a DDL that waits for a lock.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::AssertSqlSafe;

use super::RunError;
use crate::dialect::Dialect;
use crate::plan::{Step, StepKind};
use crate::tracker::gates::VerifyOutcome;
use crate::tracker::{EventKind, NewEvent, Store, TrackerError};

/// How many times a DDL that timed out waiting for its lock is tried.
pub const LOCK_ATTEMPTS: u32 = 4;

/// A step that did not complete.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("phase {phase}, step {step} failed: {message}")]
pub struct StepError {
    pub step: String,
    pub phase: usize,
    pub message: String,
}

fn failure(step: &Step, phase: usize, message: String) -> RunError {
    RunError::Step(StepError {
        step: step.id.clone(),
        phase,
        message,
    })
}

/// The statements a transactional step runs, in order, as `--dry-run` shows them.
pub fn wrapped(step: &Step, sql: &str, dialect: Dialect, lock_timeout: Duration) -> Vec<String> {
    match (dialect, step.transactional) {
        (Dialect::Postgres, true) => vec![
            "BEGIN;".into(),
            format!("SET LOCAL lock_timeout = '{}ms';", lock_timeout.as_millis()),
            sql.to_string(),
            "COMMIT;".into(),
        ],
        (Dialect::Postgres, false) => vec![
            format!("SET lock_timeout = '{}ms';", lock_timeout.as_millis()),
            sql.to_string(),
            "RESET lock_timeout;".into(),
        ],
        (Dialect::Sqlite, _) => vec![sql.to_string()],
    }
}

/// Runs a verification query and returns its single value.
pub async fn query_value(store: &mut Store, sql: &str) -> Result<i64, String> {
    sqlx::query_scalar::<_, i64>(AssertSqlSafe(sql.trim().trim_end_matches(';').to_string()))
        .fetch_one(store.conn())
        .await
        .map_err(|e| e.to_string())
}

/// Runs the verification steps given, reporting each.
pub async fn verify_all(store: &mut Store, steps: &[&Step]) -> Vec<VerifyOutcome> {
    let mut out = Vec::new();
    for s in steps.iter().filter(|s| s.kind == StepKind::Verify) {
        let got = match &s.sql {
            Some(sql) => query_value(store, sql).await,
            None => Err("no query".into()),
        };
        out.push(VerifyOutcome {
            step: s.id.clone(),
            expect: s.expect.unwrap_or(0),
            got,
        });
    }
    out
}

/// Runs one step on Postgres, each in its own transaction (or none, for a
/// non-transactional step), and records it. The caller holds the lock.
pub async fn run_postgres(
    store: &mut Store,
    plan: &str,
    phase: usize,
    step: &Step,
    lock_timeout: Duration,
    now: &dyn Fn() -> DateTime<Utc>,
    actor: &str,
) -> Result<(), RunError> {
    let Some(sql) = step.sql.as_deref() else {
        return Ok(());
    };
    let applied = NewEvent::plan(plan, EventKind::StepApplied)
        .phase(phase)
        .step(&step.id);
    let failed = |message: String| {
        NewEvent::plan(plan, EventKind::StepFailed)
            .phase(phase)
            .step(&step.id)
            .detail(message)
    };

    if step.kind == StepKind::Verify {
        let expect = step.expect.unwrap_or(0);
        return match query_value(store, sql).await {
            Ok(got) if got == expect => Ok(store.append(&applied, now(), actor).await?),
            Ok(got) => {
                let message = format!("returned {got}, expected {expect}");
                store.append(&failed(message.clone()), now(), actor).await?;
                Err(failure(step, phase, message))
            }
            Err(message) => {
                store.append(&failed(message.clone()), now(), actor).await?;
                Err(failure(step, phase, message))
            }
        };
    }

    if !step.transactional {
        store
            .append(
                &NewEvent::plan(plan, EventKind::StepStarted)
                    .phase(phase)
                    .step(&step.id),
                now(),
                actor,
            )
            .await?;
    }
    let mut attempt = 1;
    loop {
        let result = if step.transactional {
            run_in_transaction(store, sql, lock_timeout, &applied, now(), actor).await
        } else {
            run_outside_transaction(store, sql, lock_timeout).await
        };
        match result {
            Ok(()) => {
                if !step.transactional {
                    store.append(&applied, now(), actor).await?;
                }
                return Ok(());
            }
            Err(e) if is_lock_timeout(&e) && attempt < LOCK_ATTEMPTS => {
                tokio::time::sleep(backoff(attempt)).await;
                attempt += 1;
            }
            Err(e) => {
                let message = if is_lock_timeout(&e) {
                    format!(
                        "could not take its lock within {}ms after {LOCK_ATTEMPTS} attempts (a long transaction holds the table): {e}",
                        lock_timeout.as_millis()
                    )
                } else {
                    e.to_string()
                };
                store.append(&failed(message.clone()), now(), actor).await?;
                return Err(failure(step, phase, message));
            }
        }
    }
}

async fn run_in_transaction(
    store: &mut Store,
    sql: &str,
    lock_timeout: Duration,
    applied: &NewEvent,
    at: DateTime<Utc>,
    actor: &str,
) -> Result<(), sqlx::Error> {
    let body = format!(
        "BEGIN; SET LOCAL lock_timeout = '{}ms'; {sql}",
        lock_timeout.as_millis()
    );
    let result = async {
        sqlx::raw_sql(AssertSqlSafe(body))
            .execute(store.conn())
            .await?;
        store
            .append(applied, at, actor)
            .await
            .map_err(|e| match e {
                TrackerError::Database { source, .. } => source,
                other => sqlx::Error::Protocol(other.to_string()),
            })?;
        sqlx::raw_sql("COMMIT")
            .execute(store.conn())
            .await
            .map(|_| ())
    }
    .await;
    if result.is_err() {
        store.rollback().await;
    }
    result
}

async fn run_outside_transaction(
    store: &mut Store,
    sql: &str,
    lock_timeout: Duration,
) -> Result<(), sqlx::Error> {
    sqlx::raw_sql(AssertSqlSafe(format!(
        "SET lock_timeout = '{}ms'",
        lock_timeout.as_millis()
    )))
    .execute(store.conn())
    .await?;
    let result = sqlx::raw_sql(AssertSqlSafe(sql.to_string()))
        .execute(store.conn())
        .await
        .map(|_| ());
    let _ = sqlx::raw_sql("RESET lock_timeout")
        .execute(store.conn())
        .await;
    result
}

/// Postgres's `lock_not_available`: the statement gave up waiting for its lock.
fn is_lock_timeout(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.code().as_deref() == Some("55P03"))
}

/// 0.5s, 1s, 2s … with up to 50% jitter, so retries from several runs do not align.
fn backoff(attempt: u32) -> Duration {
    let base = Duration::from_millis(500) * 2u32.saturating_pow(attempt.saturating_sub(1));
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    base + base.mul_f64(f64::from(nanos % 1000) / 2000.0)
}

/// Runs one step on SQLite inside the caller's transaction and records it there.
pub async fn run_sqlite(
    store: &mut Store,
    plan: &str,
    phase: usize,
    step: &Step,
    at: DateTime<Utc>,
    actor: &str,
) -> Result<(), RunError> {
    let Some(sql) = step.sql.as_deref() else {
        return Ok(());
    };
    if step.kind == StepKind::Verify {
        let expect = step.expect.unwrap_or(0);
        match query_value(store, sql).await {
            Ok(got) if got == expect => {}
            Ok(got) => {
                return Err(failure(
                    step,
                    phase,
                    format!("returned {got}, expected {expect}"),
                ));
            }
            Err(message) => return Err(failure(step, phase, message)),
        }
    } else {
        sqlx::raw_sql(AssertSqlSafe(sql.to_string()))
            .execute(store.conn())
            .await
            .map_err(|e| failure(step, phase, e.to_string()))?;
    }
    store
        .append(
            &NewEvent::plan(plan, EventKind::StepApplied)
                .phase(phase)
                .step(&step.id),
            at,
            actor,
        )
        .await?;
    Ok(())
}
