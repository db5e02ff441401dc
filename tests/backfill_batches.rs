//! How a backfill sizes its batches, and that phasegate's sync trigger
//! stays out of the backfill's own writes, on real databases.
//!
//! With `backfill_batch_time` the first batch takes 1,000 rows and each
//! next one at most twice the last: with a target of an hour every batch is
//! fast, so a 30,000-row table goes in batches of 1,000, 2,000, 4,000,
//! 8,000 and the 15,000 left — five checkpoints at 1,000, 3,000, 7,000,
//! 15,000 and 30,000 rows — where `backfill_batch_size: 1000` takes thirty.
//! On Postgres the batches set `phasegate.backfill` for their transaction,
//! and the trigger's `WHEN` skips them: `pg_stat_user_functions` (with
//! `track_functions = 'pl'` for the database) counts no call of the sync
//! function for the 30,000 rows the backfill wrote, and one for one write
//! of the application's afterwards.

mod common;
mod executor_support;

use std::time::{Duration, Instant};

use sqlx::Connection;

use common::{TestDb, TestResult, fail, with_mysql, with_postgres, with_sqlite};
use executor_support::{ENV, Project, events, series};
use phasegate::dialect::Dialect;
use phasegate::execute::Workspace;
use phasegate::tracker::SystemClock;

const ROWS: u32 = 30_000;
const PLAN: &str = "rename";

/// The `scanned` of each checkpoint the backfill recorded, in order.
async fn checkpoints(db: &TestDb) -> TestResult<Vec<u64>> {
    let mut scanned = Vec::new();
    for (_, kind, _, detail) in events(db).await {
        if kind == "backfill_progress" {
            let v: serde_json::Value = serde_json::from_str(&detail)?;
            scanned.push(
                v["scanned"]
                    .as_u64()
                    .ok_or_else(|| fail(format!("no scanned in checkpoint {detail}")))?,
            );
        }
    }
    Ok(scanned)
}

/// Renames `amount` of a 30,000-row table with `settings`; returns the
/// checkpoints, after checking every row was copied.
async fn rename(db: &TestDb, settings: &[&str]) -> TestResult<Vec<u64>> {
    db.exec(&format!(
        "CREATE TABLE big (id {} PRIMARY KEY, amount integer)",
        db.pick3("bigint", "INTEGER", "bigint")
    ))
    .await?;
    db.exec(&format!(
        "INSERT INTO big (id, amount) SELECT i, CASE WHEN i % 10 = 0 THEN NULL ELSE (i * 7919) % 100000 END FROM {}",
        series(db, ROWS)
    ))
    .await?;
    let plan = format!(
        "name: {PLAN}\nchanges:\n  - rename_column: {{ table: big, from: amount, to: total }}\n"
    );
    let project = Project::new(db, settings, PLAN, &plan)?;
    let clock = SystemClock;
    let ws = Workspace::new(&project.config, &clock, "batches");
    ws.apply(ENV, PLAN, false).await?;
    let (_, outcomes) = ws.verify(ENV, PLAN, Some(1)).await?;
    if outcomes.iter().any(|o| !o.passed()) {
        return Err(fail(format!("verification fails: {outcomes:?}")));
    }
    let wrong = db
        .scalar(&format!(
            "SELECT count(*) FROM big WHERE NOT ({})",
            db.pick3(
                "total IS NOT DISTINCT FROM amount",
                "total IS amount",
                "total <=> amount"
            )
        ))
        .await?;
    if wrong != 0 {
        return Err(fail(format!("{wrong} row(s) where total is not amount")));
    }
    checkpoints(db).await
}

async fn timed_batches_double(db: TestDb) -> TestResult {
    let got = rename(&db, &["backfill_batch_time: 1h"]).await?;
    if got != [1000, 3000, 7000, 15_000, 30_000] {
        return Err(fail(format!(
            "{}: timed batches should double from 1,000 rows, checkpoints at {got:?}",
            db.dialect.name()
        )));
    }
    Ok(())
}

async fn a_fixed_size_stays_fixed(db: TestDb) -> TestResult {
    let got = rename(&db, &["backfill_batch_size: 1000"]).await?;
    let want: Vec<u64> = (1..=u64::from(ROWS) / 1000).map(|i| i * 1000).collect();
    if got != want {
        return Err(fail(format!(
            "{}: batches of 1,000 rows should checkpoint every 1,000, got {got:?}",
            db.dialect.name()
        )));
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timed_batches_double_from_a_thousand_rows_on_postgres() {
    with_postgres(timed_batches_double).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timed_batches_double_from_a_thousand_rows_on_mysql() {
    with_mysql(timed_batches_double).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timed_batches_double_from_a_thousand_rows_on_sqlite() {
    with_sqlite(timed_batches_double).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fixed_batch_size_stays_fixed_on_mysql() {
    with_mysql(a_fixed_size_stays_fixed).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fixed_batch_size_stays_fixed_on_sqlite() {
    with_sqlite(a_fixed_size_stays_fixed).await;
}

/// The calls of the sync trigger's function that the statistics hold,
/// waiting (at most 30 s) until they show at least `least`: a session's
/// function statistics reach the shared ones when it ends.
async fn sync_function_calls(db: &TestDb, least: i64) -> TestResult<i64> {
    let sql = "SELECT COALESCE(sum(s.calls), 0)::bigint FROM pg_trigger t \
                 JOIN pg_stat_user_functions s ON s.funcid = t.tgfoid \
                WHERE t.tgrelid = 'big'::regclass AND NOT t.tgisinternal";
    let until = Instant::now() + Duration::from_secs(30);
    loop {
        // A new transaction each time: the statistics are read once per
        // transaction (`stats_fetch_consistency`).
        let calls = db.scalar(sql).await?;
        if calls >= least || Instant::now() > until {
            return Ok(calls);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn the_backfill_skips_the_sync_trigger(db: TestDb) -> TestResult {
    if db.dialect != Dialect::Postgres {
        return Err(fail("a Postgres test"));
    }
    db.exec(&format!(
        "ALTER DATABASE {} SET track_functions = 'pl'",
        db.ident(&db.name)
    ))
    .await?;
    let got = rename(&db, &[]).await?;
    if got.last() != Some(&u64::from(ROWS)) {
        return Err(fail(format!(
            "the backfill did not walk the table: {got:?}"
        )));
    }
    // One write of the application's, in a session of its own that ends
    // (its statistics reach the shared ones then).
    let mut app = sqlx::PgConnection::connect(&db.url).await?;
    sqlx::raw_sql("UPDATE big SET amount = 5 WHERE id = 1")
        .execute(&mut app)
        .await?;
    app.close().await?;
    let calls = sync_function_calls(&db, 1).await?;
    if calls != 1 {
        return Err(fail(format!(
            "the sync function ran {calls} time(s): once for the application's write, and never for the backfill's {ROWS} rows, expected"
        )));
    }
    let total = db
        .scalar("SELECT total::bigint FROM big WHERE id = 1")
        .await?;
    if total != 5 {
        return Err(fail(format!(
            "the application's write of amount was not mirrored: total is {total}"
        )));
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_backfill_does_not_run_the_sync_trigger_on_postgres() {
    with_postgres(the_backfill_skips_the_sync_trigger).await;
}

/// A row the application moves from ahead of the walk to behind it during
/// the backfill (an update of its key only) gets its new column all the
/// same: SQLite's sync trigger runs for every update of the table.
async fn a_row_moved_behind_the_walk_is_swept(db: TestDb) -> TestResult {
    db.exec("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)")
        .await?;
    db.exec(&format!(
        "INSERT INTO users (id, name) SELECT i, 'n' || i FROM {}",
        series(&db, 20_000)
    ))
    .await?;
    let project = Project::new(
        &db,
        &["backfill_batch_size: 100", "backfill_pause: 10ms"],
        PLAN,
        "changes:\n  - rename_column: { table: users, from: name, to: full_name }\n",
    )?;
    let clock = SystemClock;
    let ws = Workspace::new(&project.config, &clock, "batches");
    let apply = ws.apply(ENV, PLAN, false);
    let mover = async {
        // Once the walk has started, move the last row to a key before it.
        let end = Instant::now() + Duration::from_secs(60);
        while checkpoints(&db).await?.is_empty() {
            if Instant::now() > end {
                return Err(fail("the backfill never recorded a checkpoint"));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let moved = db
            .exec("UPDATE users SET id = -id WHERE id = 19999")
            .await?;
        let passed = checkpoints(&db).await?.last().copied().unwrap_or(0);
        if moved != 1 || passed >= 19_999 {
            return Err(fail(format!(
                "the row was not moved ahead of the walk ({moved} moved, walk at {passed})"
            )));
        }
        Ok(())
    };
    let (applied, moved) = tokio::join!(apply, mover);
    moved?;
    applied?;
    let row = db
        .text("SELECT full_name FROM users WHERE id = -19999")
        .await?;
    if row.as_deref() != Some("n19999") {
        return Err(fail(format!(
            "the moved row's full_name is {row:?}, not 'n19999'"
        )));
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_row_moved_behind_the_walk_is_swept_on_sqlite() {
    with_sqlite(a_row_moved_behind_the_walk_is_swept).await;
}

/// The stored text of the rename's update trigger on `big`.
async fn sqlite_sync_trigger(db: &TestDb) -> TestResult<String> {
    db.text("SELECT sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'big' AND name LIKE '%sync_upd'")
        .await?
        .ok_or_else(|| fail("the sync update trigger is missing"))
}

/// SQLite: each batch drops phasegate's update trigger inside its own
/// transaction and makes it again before it commits (the schema changes at
/// every batch; the trigger's text is the same afterwards and it mirrors
/// the application's writes). A batch that fails takes its drop back: the
/// trigger is there, and mirrors writes, after a failed run too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_batches_run_without_the_update_trigger_and_put_it_back() {
    with_sqlite(|db| async move {
        db.exec("CREATE TABLE big (id INTEGER PRIMARY KEY, amount integer)")
            .await?;
        db.exec(&format!(
            "INSERT INTO big (id, amount) SELECT i, i * 3 FROM {}",
            series(&db, ROWS)
        ))
        .await?;
        // The application's own trigger, which refuses any update of row
        // 15,000: the batch that holds it fails.
        db.exec(
            "CREATE TRIGGER frozen BEFORE UPDATE ON big WHEN NEW.id = 15000 \
             BEGIN SELECT RAISE(ABORT, 'row 15000 is frozen'); END",
        )
        .await?;
        let plan = format!(
            "name: {PLAN}\nchanges:\n  - rename_column: {{ table: big, from: amount, to: total }}\n"
        );
        let project = Project::new(&db, &["backfill_batch_size: 1000"], PLAN, &plan)?;
        let clock = SystemClock;
        let ws = Workspace::new(&project.config, &clock, "batches");
        let failed = ws.apply(ENV, PLAN, false).await;
        match &failed {
            Err(e) if e.to_string().contains("row 15000 is frozen") => {}
            other => return Err(fail(format!("the batch holding row 15000 should fail: {other:?}"))),
        }
        let after_failure = sqlite_sync_trigger(&db).await?;
        if !after_failure.contains("AFTER UPDATE ON") {
            return Err(fail(format!("not the sync trigger: {after_failure}")));
        }
        if checkpoints(&db).await?.last() != Some(&14_000) {
            return Err(fail(format!(
                "the batches before the failed one should be kept: {:?}",
                checkpoints(&db).await?
            )));
        }
        // The trigger works: a write ahead of the walk is mirrored.
        db.exec("UPDATE big SET amount = 7 WHERE id = 20000").await?;
        if db.scalar("SELECT total FROM big WHERE id = 20000").await? != 7 {
            return Err(fail("after the failed batch, the sync trigger did not mirror a write"));
        }
        db.exec("DROP TRIGGER frozen").await?;
        let before = db.scalar("PRAGMA schema_version").await?;
        ws.apply(ENV, PLAN, false).await?;
        let changes = db.scalar("PRAGMA schema_version").await? - before;
        // Sixteen batches (15,001 to 30,000, and the empty one past the end
        // that finds nothing): the schema changed in each that updated rows.
        if changes < 15 {
            return Err(fail(format!(
                "the schema changed {changes} time(s) during 16 batches: the batches did not drop the trigger"
            )));
        }
        if sqlite_sync_trigger(&db).await? != after_failure {
            return Err(fail(format!(
                "the trigger was not made again as it was:\n{after_failure}\nbecame\n{}",
                sqlite_sync_trigger(&db).await?
            )));
        }
        let wrong = db.scalar("SELECT count(*) FROM big WHERE total IS NOT amount").await?;
        if wrong != 0 {
            return Err(fail(format!("{wrong} row(s) where total is not amount")));
        }
        db.exec("UPDATE big SET total = 11 WHERE id = 5").await?;
        if db.scalar("SELECT amount FROM big WHERE id = 5").await? != 11 {
            return Err(fail("after the backfill, the sync trigger did not mirror a write of total"));
        }
        Ok(())
    })
    .await;
}
