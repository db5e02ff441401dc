//! The database ends phasegate's session under it — Postgres
//! `pg_terminate_backend`, MariaDB `KILL CONNECTION` — during a concurrent
//! index build and mid-backfill; and a backfill killed right after its last,
//! empty batch. Each ends with an error naming the step, the connection
//! lost, the state its object may be in and the command to run next; and
//! after those commands the plan completes with the schema and the log
//! agreeing.

mod common;
mod executor_support;

use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{TestDb, TestResult, fail, with_mysql, with_postgres, with_sqlite};
use executor_support::{ENV, Project, series};
use phasegate::dialect::Dialect;
use phasegate::execute::{Progress, Workspace};
use phasegate::plan::Step;
use phasegate::tracker::SystemClock;

const PLAN: &str = "fault";
const LOST: &str = "the connection to the database was lost";

async fn big_table(db: &TestDb, rows: u32) -> TestResult {
    db.exec(&format!(
        "CREATE TABLE big (id {} PRIMARY KEY, amount integer NOT NULL)",
        db.pick3("bigint", "INTEGER", "bigint")
    ))
    .await?;
    db.exec(&format!(
        "INSERT INTO big (id, amount) SELECT i, i % 1000 FROM {}",
        series(db, rows)
    ))
    .await?;
    Ok(())
}

const BACKFILL: &str =
    "  - add_column: { table: big, column: doubled, type: bigint, backfill: amount * 2 }\n";

fn run(project: &Project, args: &[&str]) -> TestResult<std::process::Child> {
    Ok(Command::new(env!("CARGO_BIN_EXE_phasegate"))
        .arg("--config")
        .arg(project.config_path())
        .args(args)
        .current_dir(&project.dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?)
}

async fn finish(mut child: std::process::Child, limit: Duration) -> TestResult<Output> {
    let t = Instant::now();
    loop {
        if child.try_wait()?.is_some() {
            return Ok(child.wait_with_output()?);
        }
        if t.elapsed() > limit {
            child.kill()?;
            let out = child.wait_with_output()?;
            return Err(fail(format!(
                "still running after {}s: {}",
                limit.as_secs(),
                String::from_utf8_lossy(&out.stderr)
            )));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn apply_ok(project: &Project) -> TestResult<Output> {
    let out = finish(
        run(project, &["apply", "--env", ENV, PLAN])?,
        Duration::from_secs(120),
    )
    .await?;
    if !out.status.success() {
        return Err(fail(format!(
            "apply failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    Ok(out)
}

fn expect_in(text: &str, needed: &[&str]) -> TestResult {
    for n in needed {
        if !text.contains(n) {
            return Err(fail(format!("the error does not say `{n}`:\n{text}")));
        }
    }
    Ok(())
}

/// Ends the session that holds phasegate's lock in this database; true when one did.
async fn end_phasegate_session(db: &TestDb) -> TestResult<bool> {
    match db.dialect {
        Dialect::Postgres => Ok(db
            .scalar(
                "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_locks \
                  WHERE locktype = 'advisory' AND database = (SELECT oid FROM pg_database WHERE datname = current_database())) AS t",
            )
            .await?
            > 0),
        Dialect::Mysql => {
            let holder = db
                .scalar(
                    "SELECT COALESCE(IS_USED_LOCK(CONCAT('phasegate:7068617365676174:', SHA1(DATABASE()))), 0)",
                )
                .await?;
            if holder == 0 {
                return Ok(false);
            }
            db.exec(&format!("KILL CONNECTION {holder}")).await?;
            Ok(true)
        }
        Dialect::Sqlite => Err(fail("SQLite has no sessions to end")),
    }
}

fn key_of(detail: &str) -> Option<String> {
    serde_json::from_str::<serde_json::Value>(detail)
        .ok()
        .and_then(|v| v["last"][0].as_str().map(str::to_string))
}

fn int_key(detail: &str) -> i64 {
    key_of(detail)
        .and_then(|k| k.trim_matches('\'').parse().ok())
        .unwrap_or(-1)
}

/// The plan's end state: every row backfilled, the backfill applied once,
/// the phase recorded, its verification passing.
async fn completed(db: &TestDb, project: &Project) -> TestResult {
    let wrong = db
        .scalar("SELECT count(*) FROM big WHERE doubled IS NULL OR doubled <> amount * 2")
        .await?;
    if wrong != 0 {
        return Err(fail(format!("{wrong} rows not backfilled")));
    }
    let events = executor_support::events(db).await;
    let applied = events
        .iter()
        .filter(|e| e.1 == "step_applied" && e.2.as_deref() == Some("1.backfill"))
        .count();
    if applied != 1 {
        return Err(fail(format!("1.backfill recorded applied {applied} times")));
    }
    if !events
        .iter()
        .any(|e| e.1 == "phase_migrated" || e.1 == "phase_deployed")
    {
        return Err(fail("phase 1 not recorded"));
    }
    let clock = SystemClock;
    let ws = Workspace::new(&project.config, &clock, "fault");
    let (_, outcomes) = ws.verify(ENV, PLAN, Some(1)).await?;
    if outcomes.iter().any(|o| !o.passed()) {
        return Err(fail(format!("verification fails: {outcomes:?}")));
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// The session ended mid-backfill
// ---------------------------------------------------------------------------

async fn session_ended_mid_backfill(db: TestDb) -> TestResult {
    big_table(&db, 20_000).await?;
    let project = Project::new(
        &db,
        &["backfill_batch_size: 100", "backfill_pause: 20ms"],
        PLAN,
        &format!("name: {PLAN}\nchanges:\n{BACKFILL}"),
    )?;
    let child = run(&project, &["apply", "--env", ENV, PLAN])?;
    let t0 = Instant::now();
    loop {
        let progress = executor_support::events(&db)
            .await
            .iter()
            .filter(|e| e.1 == "backfill_progress")
            .count();
        if progress >= 5 && end_phasegate_session(&db).await? {
            break;
        }
        if t0.elapsed() > Duration::from_secs(60) {
            return Err(fail("the backfill never started"));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let out = finish(child, Duration::from_secs(60)).await?;
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    println!("{}: {stderr}", db.dialect);
    if out.status.success() {
        return Err(fail(format!(
            "apply succeeded though its session was ended: {stderr}"
        )));
    }
    expect_in(
        &stderr,
        &[
            "step 1.backfill",
            LOST,
            "resume after the last checkpoint",
            &format!("`phasegate apply --env {ENV} {PLAN}`"),
        ],
    )?;
    let events = executor_support::events(&db).await;
    let last_id = events.last().map_or(0, |e| e.0);
    let checkpoint = events
        .iter()
        .filter(|e| e.1 == "backfill_progress")
        .map(|e| int_key(&e.3))
        .max()
        .unwrap_or(-1);
    // The documented next command.
    apply_ok(&project).await?;
    let resumed: Vec<i64> = executor_support::events(&db)
        .await
        .iter()
        .filter(|e| e.0 > last_id && e.1 == "backfill_progress")
        .map(|e| int_key(&e.3))
        .collect();
    if resumed.first().is_some_and(|k| *k <= checkpoint) {
        return Err(fail(format!(
            "the resumed run walked from before the checkpoint {checkpoint}: {resumed:?}"
        )));
    }
    completed(&db, &project).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_terminate_backend_mid_backfill_names_the_step_and_apply_resumes() {
    with_postgres(session_ended_mid_backfill).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_connection_mid_backfill_names_the_step_and_apply_resumes_on_mariadb() {
    with_mysql(session_ended_mid_backfill).await;
}

// ---------------------------------------------------------------------------
// The session ended during a concurrent index build (Postgres)
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_terminate_backend_during_a_concurrent_index_build_names_the_invalid_index_and_resolve()
{
    with_postgres(|db| async move {
        big_table(&db, 2_000).await?;
        let project = Project::new(
            &db,
            &["lock_timeout: 30s"],
            PLAN,
            &format!("name: {PLAN}\nchanges:\n  - add_index: {{ table: big, columns: [amount] }}\n"),
        )?;
        // An open snapshot in this database: the build, once its index
        // exists (INVALID), waits for it to end.
        let mut reader = executor_support::Conn::open(&db).await?;
        reader
            .exec("BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT count(*) FROM big;")
            .await?;
        let child = run(&project, &["apply", "--env", ENV, PLAN])?;
        let t0 = Instant::now();
        loop {
            let ended = db
                .scalar(
                    "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                      WHERE datname = current_database() AND state = 'active' \
                        AND query ILIKE 'CREATE INDEX CONCURRENTLY%' AND wait_event_type = 'Lock') AS t",
                )
                .await?;
            if ended > 0 {
                break;
            }
            if t0.elapsed() > Duration::from_secs(60) {
                return Err(fail("the index build never waited"));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        reader.exec("COMMIT").await?;
        reader.close().await;
        let out = finish(child, Duration::from_secs(60)).await?;
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        println!("{stderr}");
        if out.status.success() {
            return Err(fail(format!("apply succeeded: {stderr}")));
        }
        let events = executor_support::events(&db).await;
        let step = events
            .iter()
            .find(|e| e.1 == "step_started")
            .and_then(|e| e.2.clone())
            .ok_or_else(|| fail("no step_started recorded"))?;
        let resolve = format!("phasegate resolve --env {ENV} {PLAN} --step {step} --as applied");
        expect_in(
            &stderr,
            &[&format!("step {step}"), LOST, "INVALID", &resolve, "--as not-applied"],
        )?;
        // The log says started, not finished; the schema holds the INVALID index.
        let invalid = db
            .scalar(
                "SELECT count(*) FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid \
                  WHERE c.relname = 'big' AND NOT i.indisvalid",
            )
            .await?;
        if invalid != 1 {
            return Err(fail(format!("{invalid} invalid indexes on big after the cut")));
        }
        // What the error says to do: it is not applied (INVALID) …
        let out = finish(
            run(&project, &["resolve", "--env", ENV, PLAN, "--step", &step, "--as", "not-applied"])?,
            Duration::from_secs(60),
        )
        .await?;
        if !out.status.success() {
            return Err(fail(format!("resolve failed: {}", String::from_utf8_lossy(&out.stderr))));
        }
        // … so apply drops it and builds it again.
        apply_ok(&project).await?;
        let (valid, invalid) = (
            db.scalar(
                "SELECT count(*) FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid \
                  WHERE c.relname = 'big' AND i.indisvalid AND NOT i.indisprimary",
            )
            .await?,
            db.scalar(
                "SELECT count(*) FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid \
                  WHERE c.relname = 'big' AND NOT i.indisvalid",
            )
            .await?,
        );
        let applied = executor_support::events(&db)
            .await
            .iter()
            .filter(|e| e.1 == "step_applied" && e.2.as_deref() == Some(step.as_str()))
            .count();
        if (valid, invalid, applied) != (1, 0, 1) {
            return Err(fail(format!(
                "after resolve and apply: {valid} valid, {invalid} invalid indexes, {step} applied {applied} times"
            )));
        }
        Ok(())
    })
    .await;
}

// ---------------------------------------------------------------------------
// Killed after the last, empty batch
// ---------------------------------------------------------------------------

/// Ends the run (a panic in its task: its connections dropped, as by a
/// kill) at the `at`-th progress report of the backfill.
struct DieAt {
    calls: AtomicUsize,
    at: usize,
}

impl Progress for DieAt {
    fn backfill(&self, _step: &Step, _updated: u64, _total: Option<u64>) {
        if self.calls.fetch_add(1, Ordering::SeqCst) + 1 == self.at {
            panic!("killed after the last batch (as planned by the test)");
        }
    }
}

async fn killed_after_the_empty_batch(db: TestDb) -> TestResult {
    // 30 rows in batches of 10: three full batches, then an empty one.
    big_table(&db, 30).await?;
    let project = Project::new(
        &db,
        &[
            "backfill_batch_size: 10",
            "backfill_pause: 0ms",
            "lock_wait: 30s",
        ],
        PLAN,
        &format!("name: {PLAN}\nchanges:\n{BACKFILL}"),
    )?;
    // Reports: the start, three batches, the empty batch (5th), the sweep.
    let first = {
        use futures::FutureExt;
        let clock = SystemClock;
        let die = DieAt {
            calls: AtomicUsize::new(0),
            at: 5,
        };
        let ws = Workspace::new(&project.config, &clock, "fault").with_progress(&die);
        std::panic::AssertUnwindSafe(ws.apply(ENV, PLAN, false))
            .catch_unwind()
            .await
    };
    if first.as_ref().is_ok_and(|r| r.is_ok()) {
        return Err(fail("the first run was not killed"));
    }
    let events = executor_support::events(&db).await;
    if events
        .iter()
        .any(|e| e.1 == "step_applied" && e.2.as_deref() == Some("1.backfill"))
    {
        return Err(fail(
            "the first run finished the backfill before it was killed",
        ));
    }
    let checkpoints: Vec<String> = events
        .iter()
        .filter(|e| e.1 == "backfill_progress")
        .map(|e| e.3.clone())
        .collect();
    // Every checkpoint names a real key; the last one the table's last.
    let bad_checkpoints = checkpoints.len() != 3
        || checkpoints
            .iter()
            .any(|c| key_of(c).is_none_or(|k| k == "NULL"))
        || checkpoints.last().map(|c| int_key(c)) != Some(30);
    let last_id = events.last().map_or(0, |e| e.0);
    let clock = SystemClock;
    let ws = Workspace::new(&project.config, &clock, "fault");
    ws.apply(ENV, PLAN, false).await?;
    // The resumed run finds nothing after the last key: no batch to record.
    let again: Vec<String> = executor_support::events(&db)
        .await
        .iter()
        .filter(|e| e.0 > last_id && e.1 == "backfill_progress")
        .map(|e| e.3.clone())
        .collect();
    if bad_checkpoints || !again.is_empty() {
        return Err(fail(format!(
            "{}: the killed run's checkpoints are {checkpoints:?}; the resumed run's {again:?} (none expected)",
            db.dialect
        )));
    }
    completed(&db, &project).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backfill_killed_after_its_empty_last_batch_resumes_with_nothing_left_on_mariadb() {
    with_mysql(killed_after_the_empty_batch).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backfill_killed_after_its_empty_last_batch_resumes_with_nothing_left_on_sqlite() {
    with_sqlite(killed_after_the_empty_batch).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backfill_killed_after_its_empty_last_batch_resumes_with_nothing_left_on_postgres() {
    with_postgres(killed_after_the_empty_batch).await;
}

/// A long transaction holds the plan's table `ACCESS EXCLUSIVE`: reading the
/// live schema (`plan --env`, and `apply` before any step) waits at most the
/// catalog's lock wait, then fails saying so, instead of hanging until the
/// transaction ends.
#[tokio::test]
async fn a_table_locked_by_a_long_transaction_bounds_the_schema_read_on_postgres() {
    with_postgres(|db| async move {
        big_table(&db, 100).await?;
        let project = Project::new(&db, &[], PLAN, &format!("name: {PLAN}\nchanges:\n{BACKFILL}"))?;
        let mut holder = executor_support::Conn::open(&db).await?;
        holder.exec("BEGIN").await?;
        holder.exec("LOCK TABLE big IN ACCESS EXCLUSIVE MODE").await?;
        let started = Instant::now();
        let bound = phasegate::catalog::LOCK_WAIT + Duration::from_secs(20);
        let plan = finish(run(&project, &["plan", "--env", ENV, PLAN])?, bound).await;
        let apply = finish(run(&project, &["apply", "--env", ENV, PLAN])?, bound).await;
        let waited = started.elapsed();
        holder.exec("ROLLBACK").await?;
        holder.close().await;
        for (what, out) in [("plan --env", plan?), ("apply", apply?)] {
            let err = String::from_utf8_lossy(&out.stderr).into_owned();
            if out.status.code() != Some(2) || !err.contains("lock timeout") {
                return Err(fail(format!(
                    "{what} under a held lock: exit {:?}, expected 2 naming the lock timeout:\n{err}",
                    out.status.code()
                )));
            }
        }
        // Both ended near the lock wait, far from the transaction's end.
        if waited < phasegate::catalog::LOCK_WAIT {
            return Err(fail(format!("ended after {waited:?}: before the lock wait?")));
        }
        // And with the lock gone, the same commands run.
        let out = finish(run(&project, &["apply", "--env", ENV, PLAN])?, bound).await?;
        if !out.status.success() {
            return Err(fail(format!(
                "apply after the lock ended: {}",
                String::from_utf8_lossy(&out.stderr)
            )));
        }
        Ok(())
    })
    .await;
}
