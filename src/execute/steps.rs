//! Running one step against an environment and recording it.
//!
//! Every transactional step runs in its own short transaction that also
//! writes its `step_applied` event, so the log and the schema cannot
//! disagree. A step that cannot run in a transaction (a concurrent index on
//! Postgres; any DDL on MySQL, which commits each statement; a `sql` change
//! marked `transactional: false`) is recorded as started before it runs and
//! as applied after: one found started and never finished blocks the
//! environment until someone checks the database and says what happened
//! (`phasegate resolve`). Its `step_started` records the server session
//! it runs on (`session.rs`), so a statement the server still runs after
//! the client died is detected before anything re-runs or resolves it. On
//! MySQL, a step run again after it started skips each statement whose
//! objects the catalog already shows (`presence.rs`).
//! Such a step, and its rollback, is sent statement
//! by statement (`send.rs`), and a failure says which statements ran
//! and committed.
//!
//! DDL waits for its lock at most `lock_timeout` (Postgres `lock_timeout`,
//! SQLite's busy timeout, MySQL's `lock_wait_timeout` in whole seconds) and
//! is retried `lock_retries` times with backoff and jitter: a long
//! transaction on the table never makes the application's queries queue
//! behind phasegate for longer than that. A retry repeats only the
//! statement that gave way.
//!
//! A failed step is a [`StepError`] holding the database's error field by
//! field ([`DbError`]: DETAIL, HINT, the object, the SQLSTATE).

use std::time::Duration;

use sqlx::AssertSqlSafe;

use super::deadline::{self, LOST};
use super::presence::took_effect;
use super::send::{
    Running, concurrent_index, drop_invalid_index, outside_transaction, run_units, statements,
};
use super::session::Session;
use super::{RunError, StepContext, backfill};
use crate::config::Environment;
use crate::db_error::{DbError, describe};
use crate::dialect::Dialect;
use crate::output::script;
use crate::plan::{Step, StepKind};
use crate::session_bounds::{self, StepBounds};
use crate::tracker::gates::VerifyOutcome;
use crate::tracker::{EventKind, NewEvent, Store, TrackerError};

/// How the message of a step that gave way on its lock every time begins.
pub(super) const GAVE_WAY: &str = "could not take its lock";

/// A step that did not complete.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("phase {phase}, step {step} failed: {}", self.reason())]
pub struct StepError {
    /// The step's id (`1.add_column`).
    pub step: String,
    /// The phase it belongs to, from 1.
    pub phase: usize,
    /// phasegate's account of the failure: which statements ran, a lock it
    /// gave way on, a verification's result. Empty when the database's
    /// error says it all.
    pub message: String,
    /// The database's error, each field apart, when the database refused.
    pub database: Option<Box<DbError>>,
}

impl StepError {
    /// Why the step failed: phasegate's account, then the database's error.
    pub fn reason(&self) -> String {
        match (&self.database, self.message.is_empty()) {
            (Some(db), true) => db.to_string(),
            (Some(db), false) => format!("{}: {db}", self.message),
            (None, _) => self.message.clone(),
        }
    }
}

pub(super) fn failure(step: &Step, phase: usize, message: String) -> RunError {
    RunError::Step(StepError {
        step: step.id.clone(),
        phase,
        message,
        database: None,
    })
}

/// A step the database refused while phasegate was doing `what`.
pub(super) fn db_failure(step: &Step, phase: usize, what: String, e: &sqlx::Error) -> RunError {
    RunError::Step(StepError {
        step: step.id.clone(),
        phase,
        message: what,
        database: Some(Box::new(DbError::from_sqlx(e))),
    })
}

/// What runs before a step's own SQL, as `--dry-run` shows it and as it is
/// sent (`session_bounds::step_prelude` with the environment's bounds).
pub fn prelude(env: &Environment, transactional: bool) -> Vec<String> {
    session_bounds::step_prelude(env.dialect, bounds(env), transactional)
}

/// What runs after a step's own SQL.
pub fn postlude(env: &Environment, transactional: bool) -> Vec<String> {
    session_bounds::step_postlude(env.dialect, transactional)
}

/// The bounds the environment's steps run under.
pub fn bounds(env: &Environment) -> StepBounds {
    StepBounds {
        lock_timeout: env.lock_timeout,
        statement_timeout: env.statement_timeout,
    }
}

/// Every statement a step sends, in order, as `apply --dry-run` prints them
/// (`output::script`, the renderer `--format sql` uses): a script that runs
/// as printed. A backfill is shown as the first of the batches `apply` runs
/// over `key` (the table's primary key), in comments, then as the one
/// statement that does the whole change.
pub fn dry_run(step: &Step, env: &Environment, key: &[String]) -> Vec<String> {
    if step.sql.is_none() {
        return Vec::new();
    }
    let first = step
        .backfill
        .as_ref()
        .map(|b| backfill::example_batch(env, b, key));
    let batches = first.as_deref().map(|first| script::Batches {
        size: env.backfill_batch.first_rows(),
        target: match env.backfill_batch {
            crate::config::BatchSizing::Rows(_) => None,
            crate::config::BatchSizing::Timed(t) => Some(t),
        },
        key,
        first,
    });
    script::step(step, env.dialect, bounds(env), batches)
}

/// Runs a verification query and returns its single value.
pub async fn query_value(store: &mut Store, sql: &str) -> Result<i64, String> {
    scalar(store, sql).await.map_err(|e| describe(&e))
}

async fn scalar(store: &mut Store, sql: &str) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar::<_, i64>(AssertSqlSafe(sql.trim().trim_end_matches(';').to_string()))
        .fetch_one(store.conn())
        .await
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

/// Runs one step and records it. The caller holds the environment's lock.
pub(super) async fn run(
    store: &mut Store,
    cx: &StepContext<'_>,
    step: &Step,
) -> Result<(), RunError> {
    let result = match (step.kind, &step.backfill) {
        (StepKind::App, _) => return Ok(()),
        (StepKind::Verify, _) => verify(store, cx, step).await,
        (StepKind::Backfill, Some(b)) => backfill::run(store, cx, step, b).await,
        _ => migration(store, cx, step).await,
    };
    if let Err(RunError::Step(f)) = &result {
        if f.message.contains(LOST) {
            // Nothing can be recorded on a lost connection; the log
            // already agrees with the database (see the message).
            return result;
        }
        let event = NewEvent::plan(cx.plan, EventKind::StepFailed)
            .phase(cx.phase)
            .step(&step.id)
            .detail(f.reason());
        // SQLite: a step that gave way because another session holds the
        // database would, waiting to record that, hold the application's
        // new readers back (PENDING lock) for another whole lock_timeout
        // right after giving way. Record it only if that takes no waiting.
        let no_wait = cx.env.dialect == Dialect::Sqlite && f.message.contains(GAVE_WAY);
        if no_wait {
            store.set_lock_wait(Duration::ZERO).await?;
        }
        let recorded = store.append(&event, cx.clock.now(), cx.actor).await;
        if no_wait {
            store.set_lock_wait(cx.env.lock_timeout).await?;
        }
        if let Err(e) = recorded {
            // The step's own error is the one to show, not the log's.
            let mut f = f.clone();
            f.message = if f.message.is_empty() {
                format!("recording this failure failed too ({e})")
            } else {
                format!("{} (recording this failure failed too: {e})", f.message)
            };
            return Err(RunError::Step(f));
        }
    }
    result
}

/// Appends `event` to the log; on SQLite, where the application may hold
/// the database's one write lock past the busy timeout, it gives way and
/// tries again after a pause, `lock_retries` times, like a step's
/// statements, then fails with [`TrackerError::WriteLocked`] (nothing
/// recorded).
pub(super) async fn append_giving_way(
    store: &mut Store,
    env: &Environment,
    event: &NewEvent,
    clock: &dyn crate::tracker::Clock,
    actor: &str,
) -> Result<(), RunError> {
    let mut attempt = 0;
    loop {
        match store.append(event, clock.now(), actor).await {
            Ok(()) => return Ok(()),
            Err(TrackerError::Database { source, .. }) if crate::tracker::is_busy(&source) => {
                if attempt >= env.lock_retries {
                    return Err(TrackerError::WriteLocked {
                        env: env.name.clone(),
                        lock_timeout: env.lock_timeout,
                        attempts: attempt + 1,
                    }
                    .into());
                }
                attempt += 1;
                tokio::time::sleep(super::send::backoff(attempt)).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
}

async fn verify(store: &mut Store, cx: &StepContext<'_>, step: &Step) -> Result<(), RunError> {
    let sql = step.sql.as_deref().unwrap_or_default();
    let expect = step.expect.unwrap_or(0);
    match deadline::within(deadline::statement_deadline(cx.env), scalar(store, sql)).await {
        Ok(got) if got == expect => {
            let applied = super::step_event(cx.plan, cx.phase, &step.id, EventKind::StepApplied);
            append_giving_way(store, cx.env, &applied, cx.clock, cx.actor).await
        }
        Ok(got) => Err(failure(
            step,
            cx.phase,
            format!("returned {got}, expected {expect}"),
        )),
        Err(e) if deadline::is_lost(&e) => Err(db_failure(
            step,
            cx.phase,
            format!(
                "{LOST}; the verification changes nothing: run `phasegate apply --env {} {}` again",
                cx.env.name, cx.plan
            ),
            &e,
        )),
        Err(e) => Err(db_failure(step, cx.phase, String::new(), &e)),
    }
}

async fn migration(store: &mut Store, cx: &StepContext<'_>, step: &Step) -> Result<(), RunError> {
    let sql = step.sql.as_deref().unwrap_or_default();
    let applied = super::step_event(cx.plan, cx.phase, &step.id, EventKind::StepApplied);
    if step.transactional {
        let units = [sql.to_string()];
        return run_units(
            store,
            cx.env,
            &units,
            (cx.progress, step),
            async |store, unit| in_transaction(store, cx.env, unit, &applied, cx).await,
        )
        .await
        .map_err(|f| {
            lost_up(
                f.into_step_error(&step.id, cx.phase, cx.env, cx.plan, Running::Up),
                cx,
                false,
                None,
            )
        });
    }
    // Run before and interrupted (the log has its start)? On MySQL, whose
    // statements commit one by one, the statements whose change the
    // catalog already shows are then skipped (`presence::took_effect`).
    let mysql = cx.env.dialect == Dialect::Mysql;
    let rerun = mysql
        && store.events(Some(cx.plan)).await?.iter().any(|e| {
            e.kind == EventKind::StepStarted && e.step.as_deref() == Some(step.id.as_str())
        });
    // The server session the statements run on, so that one still running
    // after this process died is found, not guessed (`session.rs`).
    let session = Session::current(store, cx.env.dialect).await;
    // Ctrl-C cancels the statement rather than leave it running (cancel.rs).
    let _cancellable = session
        .as_ref()
        .map(|s| super::cancel::register(&cx.env.database_url, cx.env.dialect, &step.id, s));
    store
        .append(
            &super::step_event(cx.plan, cx.phase, &step.id, EventKind::StepStarted)
                .detail(session.map(|s| s.detail()).unwrap_or_default()),
            cx.clock.now(),
            cx.actor,
        )
        .await?;
    let units = statements(cx.env.dialect, sql);
    // A build killed or failed earlier leaves an INVALID index that
    // IF NOT EXISTS would keep: drop it first.
    let postgres = cx.env.dialect == Dialect::Postgres;
    for ix in units
        .iter()
        .filter(|_| postgres)
        .filter_map(|u| concurrent_index(u))
    {
        drop_invalid_index(store, &ix).await?;
    }
    run_units(
        store,
        cx.env,
        &units,
        (cx.progress, step),
        async |store, unit| {
            // Looked up right before the statement: an earlier one of the step
            // (a DROP TRIGGER IF EXISTS) may have undone what the killed run did.
            if rerun
                && took_effect(store, cx.env.dialect, unit)
                    .await
                    .map_err(into_sqlx_run)?
            {
                return Ok(());
            }
            outside_transaction(store, cx.env, unit).await
        },
    )
    .await
    .map_err(|f| {
        let index = units
            .get(f.n)
            .and_then(|u| concurrent_index(u))
            .filter(|_| postgres);
        lost_up(
            f.into_step_error(&step.id, cx.phase, cx.env, cx.plan, Running::Up),
            cx,
            true,
            index.as_deref(),
        )
    })?;
    let record = async { Ok(store.append(&applied, cx.clock.now(), cx.actor).await) };
    let lost = match deadline::within(deadline::batch_deadline(cx.env), record).await {
        Ok(Ok(())) => return Ok(()),
        Ok(Err(TrackerError::Database { source, .. })) if deadline::is_lost(&source) => source,
        Ok(Err(e)) => return Err(e.into()),
        Err(e) => e,
    };
    let error = StepError {
        step: step.id.clone(),
        phase: cx.phase,
        message: format!("the step ran, and then {LOST} while recording it applied"),
        database: Some(Box::new(DbError::from_sqlx(&lost))),
    };
    Err(lost_up(error, cx, true, None))
}

/// A step's error; when its connection was lost, with the state its change
/// may be in and the command to run next.
fn lost_up(mut e: StepError, cx: &StepContext<'_>, started: bool, index: Option<&str>) -> RunError {
    if e.message.contains(LOST) {
        let next = deadline::after_lost_up(&cx.env.name, cx.plan, &e.step, started, index);
        e.message = format!("{}; {next}", e.message);
    }
    RunError::Step(e)
}

/// `BEGIN; SET LOCAL …; <sql>; <event>; COMMIT`, rolled back whole on error.
///
/// Each of phasegate's own statements is sent on its own, and the step's SQL
/// as the user or the template wrote it, alone: text that ends without a `;`
/// or in a `-- comment` is never glued to a `COMMIT` (which would then fail
/// to parse, or be commented out).
pub(super) async fn in_transaction(
    store: &mut Store,
    env: &Environment,
    sql: &str,
    event: &NewEvent,
    cx: &StepContext<'_>,
) -> Result<(), sqlx::Error> {
    let result = async {
        for statement in prelude(env, true) {
            sqlx::raw_sql(AssertSqlSafe(statement))
                .execute(store.conn())
                .await?;
        }
        sqlx::raw_sql(AssertSqlSafe(sql.to_string()))
            .execute(store.conn())
            .await?;
        store
            .append(event, cx.clock.now(), cx.actor)
            .await
            .map_err(into_sqlx)?;
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

/// Undoes one applied step of phase `cx.phase` and records it, the way
/// [`run`] applies one: a transactional step's rollback SQL commits in one
/// transaction with its `step_rolled_back` event; any other's is recorded as
/// started (`step_rollback_started`), sent statement by statement, and
/// recorded as rolled back after. A step without rollback SQL (a
/// verification, an app step) is recorded as rolled back with nothing run.
/// A failure is recorded (`step_rollback_failed`), so the log says exactly
/// which steps were undone, and its error names the step and the commands
/// that go on from there. The caller holds the environment's lock.
pub(super) async fn undo(
    store: &mut Store,
    cx: &StepContext<'_>,
    step: &Step,
    label: &str,
) -> Result<(), RunError> {
    let event = |kind| super::step_event(cx.plan, cx.phase, &step.id, kind);
    let done = event(EventKind::StepRolledBack);
    let Some(sql) = step.rollback_sql.as_deref() else {
        store.append(&done, cx.clock.now(), cx.actor).await?;
        return Ok(());
    };
    if let Some(fill) = &step.rollback_fill {
        // Changes no schema; refused (naming `down`) before anything runs.
        backfill::before_rollback(store, cx.env, step, fill).await?;
    }
    let result = if step.transactional {
        let units = [sql.to_string()];
        run_units(
            store,
            cx.env,
            &units,
            (cx.progress, step),
            async |store, unit| in_transaction(store, cx.env, unit, &done, cx).await,
        )
        .await
    } else {
        // The server session the undo runs on, as for a step's start.
        let session = Session::current(store, cx.env.dialect).await;
        let _cancellable = session
            .as_ref()
            .map(|s| super::cancel::register(&cx.env.database_url, cx.env.dialect, &step.id, s));
        store
            .append(
                &event(EventKind::StepRollbackStarted)
                    .detail(session.map(|s| s.detail()).unwrap_or_default()),
                cx.clock.now(),
                cx.actor,
            )
            .await?;
        run_units(
            store,
            cx.env,
            &statements(cx.env.dialect, sql),
            (cx.progress, step),
            async |store, unit| outside_transaction(store, cx.env, unit).await,
        )
        .await
    };
    let failure = match result {
        Ok(()) if step.transactional => return Ok(()),
        Ok(()) => {
            store.append(&done, cx.clock.now(), cx.actor).await?;
            return Ok(());
        }
        Err(f) => f,
    };
    let mut f = failure.into_step_error(&step.id, cx.phase, cx.env, cx.plan, Running::Down);
    let (env, id) = (&cx.env.name, &step.id);
    // The way on, right after "partly undone" (the database's error stays
    // last, after the statement that failed).
    let way_on = format!(
        " (the steps after {id} are undone and recorded; fix the cause and run `phasegate rollback --env {env} {label}` again, which retries {id} and goes on, or, if you finish or undo it by hand, `phasegate resolve --env {env} {label} --step {id} --as rolled-back` or `phasegate resolve --env {env} {label} --step {id} --as not-rolled-back`)"
    );
    f.message = match f.message.find("partly undone") {
        Some(at) => {
            let at = at + "partly undone".len();
            format!("{}{way_on}{}", &f.message[..at], &f.message[at..])
        }
        None => format!("{}{way_on}", f.message),
    };
    let recorded = store
        .append(
            &event(EventKind::StepRollbackFailed).detail(f.reason()),
            cx.clock.now(),
            cx.actor,
        )
        .await;
    if let Err(e) = recorded {
        f.message = format!("{} (recording this failure failed too: {e})", f.message);
    }
    Err(RunError::Step(f))
}

/// A [`RunError`] met while sending a statement, as the database error it holds.
fn into_sqlx_run(e: RunError) -> sqlx::Error {
    match e {
        RunError::Tracker(t) => into_sqlx(t),
        other => sqlx::Error::Protocol(other.to_string()),
    }
}

pub(super) fn into_sqlx(e: TrackerError) -> sqlx::Error {
    match e {
        TrackerError::Database { source, .. } => source,
        other => sqlx::Error::Protocol(other.to_string()),
    }
}
