//! Backfills in keyset batches over the primary key.
//!
//! Each batch updates a key range in its own short transaction, which also
//! records a checkpoint (the batch's last key), so a run killed halfway
//! resumes after the last committed batch without redoing it. Batches take
//! `backfill_batch_size` rows, or are sized toward `backfill_batch_time`
//! (`backfill/sizing.rs`). Before each batch the walk waits while a replica
//! is further behind than `max_replica_lag`, or with `pause_for_vacuum`
//! while a VACUUM runs on the table (`backfill/throttle.rs`).
//!
//! The keyset walk visits every row that existed when it passed; rows
//! written behind it meanwhile are caught by a final sweep of the step's
//! "still pending" predicate, unless a sync trigger kept them in step
//! ([`Backfill::synced`]); the verification step that follows proves none
//! is left.
//!
//! A batch that finds no rows (the walk is past the table's last key)
//! records no checkpoint: the last one stays, and a run resumed after it
//! finds nothing left. Each batch is bounded by the environment's batch
//! deadline (`deadline.rs`); a lost connection fails the step with what was
//! kept and the command that resumes it.
//!
//! A batch reads its last key first (the `n`th after the checkpoint, in one
//! walk of the key's index), then the UPDATE walks that key range
//! (`backfill/sql.rs`, each dialect's syntax). phasegate's sync triggers
//! skip a batch's rows: by a session mark on Postgres and MySQL
//! ([`batch_prelude`]); on SQLite the batch drops them inside its own
//! transaction and makes them again before it commits
//! (`backfill/sqlite_triggers.rs`).

mod count;
mod sizing;
mod sql;
mod sqlite_triggers;
mod throttle;

use sqlx::{AssertSqlSafe, Row};

use sizing::Sizer;
use sql::{batch_bounds, nth_key, quoted, range_update};
use throttle::Throttle;

use super::deadline::{self, LOST};
use super::progress::{BackfillProgress, RowCount};
use super::send::{gave_way, is_lock_timeout};
use super::steps::{db_failure, failure, into_sqlx, prelude, query_value};
use super::{RunError, StepContext};
use crate::config::Environment;
use crate::dialect::{Dialect, MYSQL_BACKFILL_MARK, POSTGRES_BACKFILL_MARK};
use crate::name::TableName;
use crate::plan::{Backfill, RollbackFill, Step};
use crate::session_bounds;
use crate::tracker::{Checkpoint, EventKind, NewEvent, Store};

pub(super) async fn run(
    store: &mut Store,
    cx: &StepContext<'_>,
    step: &Step,
    b: &Backfill,
) -> Result<(), RunError> {
    // MySQL/MariaDB: the sync trigger cannot tell the backfill's write of
    // the new column from the application's (MySQL has no CAST to most
    // column types to compare with), so the backfill's session says so; the
    // trigger then leaves the old column as it is (templates/mysql/rename_column.sql).
    let mysql = cx.env.dialect == Dialect::Mysql;
    let within = deadline::batch_deadline(cx.env);
    let idle = session_bounds::idle_bound(cx.env.backfill_pause);
    if idle > session_bounds::MIN_IDLE {
        // The server must not take a pause between batches for a dead client.
        // Best effort, as when the session opened (tracker/store.rs).
        match deadline::within(
            within,
            session_bounds::bound(store.conn(), cx.env.dialect, idle),
        )
        .await
        {
            Err(e) if deadline::is_lost(&e) => {
                return Err(lost_backfill(
                    step,
                    cx,
                    "setting the session's idle bound".into(),
                    &e,
                ));
            }
            _ => {}
        }
    }
    if mysql {
        let mark = sqlx::raw_sql(AssertSqlSafe(format!("SET {MYSQL_BACKFILL_MARK} = 1")));
        deadline::within(within, mark.execute(store.conn()))
            .await
            .map_err(|e| lost_backfill(step, cx, "marking the backfill's session".into(), &e))?;
    }
    let done = run_batches(store, cx, step, b).await;
    let lost = matches!(&done, Err(RunError::Step(f)) if f.message.contains(LOST));
    if mysql && !lost {
        // The connection is phasegate's own; a failure here only leaves the
        // mark on a session that ends with the run.
        let _ = sqlx::raw_sql(AssertSqlSafe(format!("SET {MYSQL_BACKFILL_MARK} = NULL")))
            .execute(store.conn())
            .await;
    }
    done
}

async fn run_batches(
    store: &mut Store,
    cx: &StepContext<'_>,
    step: &Step,
    b: &Backfill,
) -> Result<(), RunError> {
    let key = walk_key(store, b).await?;
    if key.is_empty() {
        return Err(failure(
            step,
            cx.phase,
            format!(
                "table {} has no primary key, and a batched backfill walks the primary key: add one, or backfill it yourself in a `sql` step",
                b.table
            ),
        ));
    }
    let within = deadline::batch_deadline(cx.env);
    let mut total = count_rows(store, cx, b).await;
    let mut sizer = Sizer::new(cx.env.backfill_batch);
    let mut last: Option<Vec<String>> = cx.checkpoint.map(|c| c.last.clone());
    let mut updated = cx.checkpoint.map_or(0, |c| c.updated);
    // Where the walk stands, earlier runs included (a checkpoint written
    // before phasegate recorded it has only the rows it updated).
    let resumed_from = cx.checkpoint.map_or(0, |c| c.scanned.max(c.updated));
    let mut scanned = resumed_from;
    let mut scanned_now = 0u64;
    let report = |scanned: u64, updated: u64, total: Option<RowCount>, finished: bool| {
        let p = BackfillProgress {
            done: scanned,
            resumed_from,
            updated,
            total,
            finished,
        };
        cx.progress.backfill_progress(step, &p);
    };
    report(scanned, updated, total, false);
    let mut throttle = Throttle::new(cx.env, &b.table);
    loop {
        // Not while a replica is further behind than max_replica_lag, nor
        // (pause_for_vacuum) while a VACUUM runs on the table.
        throttle.wait(store, cx, step).await?;
        let mut attempt = 0;
        let n = sizer.rows();
        let (batch, took) = loop {
            let started = std::time::Instant::now();
            let one = batch(
                store,
                cx,
                step,
                b,
                &key,
                last.as_deref(),
                n,
                updated,
                scanned,
            );
            match deadline::within(within, one).await {
                Ok(r) => break (r, started.elapsed()),
                Err(e) if is_lock_timeout(&e) && attempt < cx.env.lock_retries => {
                    attempt += 1;
                    let pause = gave_way(cx.progress, step, cx.env, Some(&b.table), attempt);
                    tokio::time::sleep(pause).await;
                }
                Err(e) => {
                    let after = last.as_ref().map_or("the start".to_string(), |l| {
                        format!("key ({})", l.join(", "))
                    });
                    return Err(lost_backfill(step, cx, format!("batch after {after}"), &e));
                }
            }
        };
        sizer.observe(batch.scanned, took);
        scanned_now += batch.scanned;
        scanned += batch.scanned;
        updated += batch.updated;
        if total.is_none() && batch.scanned > 0 {
            // Counting failed before the first batch (the table was
            // locked): once a batch got through, count again.
            total = count_rows(store, cx, b).await;
        }
        report(scanned, updated, total, false);
        if batch.scanned < n {
            break;
        }
        last = Some(batch.last);
        if !cx.env.backfill_pause.is_zero() {
            tokio::time::sleep(cx.env.backfill_pause).await;
        }
    }
    // Rows written behind the walk (a key lower than where it was) and left
    // pending; none when a sync trigger kept every write in step.
    if !b.synced {
        let budget = scanned_now + 3 * sizer.rows();
        match sweep(store, cx.env, b, &key, &mut sizer, budget).await {
            Ok(done) => updated += done,
            Err(e) => return Err(lost_backfill(step, cx, "final sweep".into(), &e)),
        }
    }
    report(scanned, updated, total, true);
    let applied = NewEvent::plan(cx.plan, EventKind::StepApplied)
        .phase(cx.phase)
        .step(&step.id);
    if cx.env.dialect == Dialect::Sqlite {
        // No network to lose; the application may hold the write lock.
        return super::steps::append_giving_way(store, cx.env, &applied, cx.clock, cx.actor).await;
    }
    let record = async {
        store
            .append(&applied, cx.clock.now(), cx.actor)
            .await
            .map_err(into_sqlx)
    };
    deadline::within(within, record)
        .await
        .map_err(|e| lost_backfill(step, cx, "recording the step applied".into(), &e))
}

/// A backfill's error: `what` it was doing and the database's error; when
/// the connection was lost, with what was kept and the command to run next.
fn lost_backfill(step: &Step, cx: &StepContext<'_>, what: String, e: &sqlx::Error) -> RunError {
    if !deadline::is_lost(e) {
        return db_failure(step, cx.phase, what, e);
    }
    let next = deadline::after_lost_backfill(&cx.env.name, cx.plan);
    db_failure(
        step,
        cx.phase,
        format!("{LOST} during the {what}; {next}"),
        e,
    )
}

/// The table's rows for the progress report, within the batch deadline
/// (`None`: unknown; see `backfill/count.rs`).
async fn count_rows(store: &mut Store, cx: &StepContext<'_>, b: &Backfill) -> Option<RowCount> {
    let within = deadline::batch_deadline(cx.env);
    deadline::within(within, async {
        Ok(count::table_rows(store, cx.env, &b.table).await)
    })
    .await
    .ok()
    .flatten()
}

/// Updates the rows still pending, a batch of `sizer`'s size at a time,
/// each batch its own transaction, until a batch finds fewer or `budget`
/// rows were updated (rows that keep turning pending behind it are left to
/// the verification); returns the rows updated. Without a key (a table with
/// no primary key) all pending rows are updated at once.
async fn sweep(
    store: &mut Store,
    env: &Environment,
    b: &Backfill,
    key: &[String],
    sizer: &mut Sizer,
    budget: u64,
) -> Result<u64, sqlx::Error> {
    let dialect = env.dialect;
    let t = dialect.quote_table(&b.table);
    let keys = quoted(dialect, key).join(", ");
    let (set, pending) = (&b.set, &b.pending);
    let sql = |n: u64| match dialect {
        _ if key.is_empty() => format!("UPDATE {t} SET {set} WHERE {pending}"),
        // MySQL cannot read the table it updates in a subquery, but its
        // UPDATE takes ORDER BY and LIMIT.
        Dialect::Mysql => {
            format!("UPDATE {t} SET {set} WHERE ({pending}) ORDER BY {keys} LIMIT {n}")
        }
        Dialect::Postgres | Dialect::Sqlite => format!(
            "UPDATE {t} SET {set} WHERE ({keys}) IN (SELECT {keys} FROM {t} WHERE ({pending}) LIMIT {n}) AND ({pending})"
        ),
    };
    let mut updated = 0;
    let within = deadline::batch_deadline(env);
    while updated < budget {
        let n = sizer.rows();
        let started = std::time::Instant::now();
        let swept = deadline::within(within, async {
            sqlx::raw_sql(AssertSqlSafe(batch_prelude(env)))
                .execute(store.conn())
                .await?;
            let done = sqlx::raw_sql(AssertSqlSafe(sql(n)))
                .execute(store.conn())
                .await?
                .rows_affected();
            sqlx::raw_sql("COMMIT").execute(store.conn()).await?;
            Ok::<u64, sqlx::Error>(done)
        })
        .await;
        match swept {
            Ok(done) => {
                sizer.observe(done, started.elapsed());
                updated += done;
                if done < n || key.is_empty() {
                    break;
                }
            }
            Err(e) => {
                if !deadline::is_lost(&e) {
                    store.rollback().await;
                }
                return Err(e);
            }
        }
    }
    Ok(updated)
}

/// What opens a batch's transaction: the environment's step prelude (the
/// lock and statement timeouts) and, on Postgres, the mark that phasegate's
/// sync triggers skip: a batch computes the new column itself, and the
/// trigger's own work on its rows would only repeat it
/// (`templates/postgres/rename_column.sql`).
fn batch_prelude(env: &Environment) -> String {
    let mut lines = prelude(env, true);
    if env.dialect == Dialect::Postgres {
        lines.push(format!("SET LOCAL {POSTGRES_BACKFILL_MARK} = 'on';"));
    }
    lines.join("\n")
}

/// Before a step's rollback: gives the rows `fill` counts their value, in
/// batches, or refuses, naming what the plan must say, when it has none.
pub(super) async fn before_rollback(
    store: &mut Store,
    env: &Environment,
    step: &Step,
    fill: &RollbackFill,
) -> Result<(), RunError> {
    let pending = query_value(store, &fill.count).await.map_err(|e| {
        RunError::Refused(format!(
            "rolling back step {}: counting the rows it must fill failed: {e}",
            step.id
        ))
    })?;
    if pending <= 0 {
        return Ok(());
    }
    let Some(b) = &fill.backfill else {
        return Err(RunError::Refused(format!(
            "step {} ({}) cannot be rolled back: {pending} row(s) need a value first: {}",
            step.id, step.description, fill.missing
        )));
    };
    let key = walk_key(store, b).await?;
    let mut sizer = Sizer::new(env.backfill_batch);
    let budget = pending.unsigned_abs() + 3 * sizer.rows();
    sweep(store, env, b, &key, &mut sizer, budget)
        .await
        .map(|_| ())
        .map_err(|e| {
            RunError::Refused(format!(
                "rolling back step {}: filling the rows written without the column failed: {e}; fix the cause and run rollback again",
                step.id
            ))
        })
}

struct Batch {
    scanned: u64,
    updated: u64,
    /// The batch's last key, as SQL literals.
    last: Vec<String>,
}

/// One batch in its own transaction, with its checkpoint.
///
/// Its statements go as plain text (`raw_sql`), not prepared: each batch's
/// SQL is new (its key bounds), so a prepared statement would be parsed
/// once, cached and evicted; on MySQL/MariaDB the eviction's
/// `COM_STMT_CLOSE` followed by the next execute met delayed ACKs and cost
/// about 40 ms a statement (measured: 130 ms a batch on MariaDB 10.11).
#[allow(clippy::too_many_arguments)]
async fn batch(
    store: &mut Store,
    cx: &StepContext<'_>,
    step: &Step,
    b: &Backfill,
    key: &[String],
    after: Option<&[String]>,
    n: u64,
    updated_before: u64,
    scanned_before: u64,
) -> Result<Batch, sqlx::Error> {
    let dialect = cx.env.dialect;
    let result = async {
        sqlx::raw_sql(AssertSqlSafe(batch_prelude(cx.env)))
            .execute(store.conn())
            .await?;
        let suspended = if dialect == Dialect::Sqlite {
            Some(sqlite_triggers::suspend(store, b).await?)
        } else {
            None
        };
        let batch = walk(store, dialect, b, key, after, n).await?;
        // An empty batch (the walk is past the last key) moves nothing: its
        // "last key" (none) must not replace the
        // checkpoint, or a run resumed after it would walk the whole table
        // again (an empty key means "from the start").
        if batch.scanned > 0 {
            let checkpoint = Checkpoint {
                last: batch.last.clone(),
                updated: updated_before + batch.updated,
                scanned: scanned_before + batch.scanned,
            };
            let event = NewEvent::plan(cx.plan, EventKind::BackfillProgress)
                .phase(cx.phase)
                .step(&step.id)
                .detail(serde_json::to_string(&checkpoint).unwrap_or_default());
            store
                .append(&event, cx.clock.now(), cx.actor)
                .await
                .map_err(into_sqlx)?;
        }
        if let Some(suspended) = suspended {
            sqlite_triggers::restore(store, suspended).await?;
        }
        sqlx::raw_sql("COMMIT").execute(store.conn()).await?;
        Ok(batch)
    }
    .await;
    if matches!(&result, Err(e) if !deadline::is_lost(e)) {
        store.rollback().await;
    }
    result
}

/// A batch's own work: its last key (the `n`th after `after`; for the
/// short last batch, the count of what is left and its last key), then the
/// UPDATE of that key range.
async fn walk(
    store: &mut Store,
    dialect: Dialect,
    b: &Backfill,
    key: &[String],
    after: Option<&[String]>,
    n: u64,
) -> Result<Batch, sqlx::Error> {
    let nth = sqlx::raw_sql(AssertSqlSafe(nth_key(dialect, b, key, after, n)))
        .fetch_optional(store.conn())
        .await?;
    let (scanned, last) = match nth {
        Some(row) => (n, last_key(dialect, &row, key.len())?),
        None => {
            let (count, last_sql) = batch_bounds(dialect, b, key, after, n);
            let scanned: i64 = sqlx::raw_sql(AssertSqlSafe(count))
                .fetch_one(store.conn())
                .await?
                .try_get(0)?;
            let last = match sqlx::raw_sql(AssertSqlSafe(last_sql))
                .fetch_optional(store.conn())
                .await?
            {
                Some(row) => last_key(dialect, &row, key.len())?,
                None => Vec::new(),
            };
            (scanned.max(0) as u64, last)
        }
    };
    let updated = if last.is_empty() {
        0
    } else {
        sqlx::raw_sql(AssertSqlSafe(range_update(dialect, b, key, after, &last)))
            .execute(store.conn())
            .await?
            .rows_affected()
    };
    Ok(Batch {
        scanned,
        updated,
        last,
    })
}

/// A batch's last key read by [`nth_key`] or [`batch_bounds`], as SQL
/// literals: on SQLite with the key's storage class (a text literal would
/// compare unlike the integer it was), on Postgres and MySQL as text.
fn last_key(
    dialect: Dialect,
    row: &sqlx::any::AnyRow,
    columns: usize,
) -> Result<Vec<String>, sqlx::Error> {
    let mut last = Vec::with_capacity(columns);
    for i in 0..columns {
        last.push(if dialect == Dialect::Sqlite {
            let kind: String = row.try_get(format!("type_{i}").as_str())?;
            let text: Option<String> = row.try_get(format!("text_{i}").as_str())?;
            dialect.typed_literal(&kind, text.as_deref())
        } else {
            let text: Option<String> = row.try_get(format!("last_{i}").as_str())?;
            text.map_or_else(|| "NULL".to_string(), |t| dialect.quote_literal(&t))
        });
    }
    Ok(last)
}

/// The first batch's statements, for `--dry-run`.
pub(super) fn example_batch(env: &Environment, b: &Backfill, key: &[String]) -> String {
    let n = u64::from(env.backfill_batch.first_rows());
    let last = nth_key(env.dialect, b, key, None, n);
    let bound: Vec<String> = (0..key.len()).map(|i| format!("@last_{i}")).collect();
    format!(
        "-- the batch's last key, read first:\n{last};\n{};",
        range_update(env.dialect, b, key, None, &bound)
    )
}

/// The key the batches walk: the one the plan chose from the live schema
/// (see `plan::key`), or, for a plan made without the table's schema, the
/// primary key read now.
pub(super) async fn walk_key(store: &mut Store, b: &Backfill) -> Result<Vec<String>, RunError> {
    match &b.key {
        Some(key) => Ok(key.iter().map(|k| k.as_str().to_string()).collect()),
        None => primary_key(store, &b.table).await,
    }
}

/// The table's primary-key columns; SQLite tables without one walk `rowid`.
async fn primary_key(store: &mut Store, table: &TableName) -> Result<Vec<String>, RunError> {
    let dialect = store.dialect();
    let rows: Vec<String> = match dialect {
        Dialect::Mysql => {
            sqlx::query_scalar(
                "SELECT CAST(column_name AS CHAR) FROM information_schema.key_column_usage \
                  WHERE table_schema = COALESCE(?, DATABASE()) AND table_name = ? \
                    AND constraint_name = 'PRIMARY' ORDER BY ordinal_position",
            )
            .bind(table.schema.as_ref().map(|s| s.as_str().to_string()))
            .bind(table.name.as_str().to_string())
            .fetch_all(store.conn())
            .await
        }
        Dialect::Postgres => {
            sqlx::query_scalar(
                "SELECT a.attname::text FROM pg_index i \
               JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord) ON true \
               JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum \
              WHERE i.indrelid = to_regclass($1) AND i.indisprimary ORDER BY k.ord",
            )
            .bind(dialect.quote_table(table))
            .fetch_all(store.conn())
            .await
        }
        Dialect::Sqlite => {
            sqlx::query_scalar(
                "SELECT name FROM pragma_table_info(?1, ?2) WHERE pk > 0 ORDER BY pk",
            )
            .bind(table.name.as_str().to_string())
            .bind(
                table
                    .schema
                    .as_ref()
                    .map_or("main", |s| s.as_str())
                    .to_string(),
            )
            .fetch_all(store.conn())
            .await
        }
    }
    .map_err(|e| store.db_error(e))?;
    if rows.is_empty() && dialect == Dialect::Sqlite {
        return Ok(vec!["rowid".to_string()]);
    }
    Ok(rows)
}
