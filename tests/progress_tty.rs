//! What `phasegate apply` shows while it runs, read from a real terminal:
//! the built binary runs under a pseudo-terminal (`script` from
//! util-linux), and the test reads what it drew there; and the same run
//! with stderr piped, as a CI log gets it.
//!
//! - The bar of a backfill over a table never analyzed (Postgres
//!   `reltuples` -1, MySQL `TABLE_ROWS` not to be trusted, SQLite with no
//!   statistics) shows the table's row count, never `…/0 rows`; its rates
//!   read in human units, never with four decimals.
//! - A table past the exact-count limit shows the planner's estimate,
//!   marked `~`, never below the limit.
//! - A lock held by another session shows a live line for each retry while
//!   the step waits, before it finishes.
//! - Ctrl-C mid-backfill: exit 130 and the exact command that resumes; that
//!   command finishes the plan with every row right, its rate that of its
//!   own run, its position starting at the checkpoint. With `--format json`,
//!   one JSON document with outcome `interrupted`.

mod common;
mod executor_support;
mod tty_support;

use std::process::Command;
use std::time::Duration;

use common::{TestDb, TestResult, fail, with_mysql, with_postgres, with_sqlite};
use executor_support::{Conn, ENV, Project, events, series};
use phasegate::dialect::Dialect;
use tty_support::{Running, grouped, human, never_of_zero, rates, resume_command};

const PLAN: &str = "doubled";
const PLAN_TEXT: &str = "name: doubled
changes:
  - add_column: { table: big, column: doubled, type: bigint, backfill: amount * 2 }
";

// ---------------------------------------------------------------------------
// The database
// ---------------------------------------------------------------------------

/// `big (id, amount)` with `rows` rows, never analyzed: on Postgres with
/// autovacuum off, so `reltuples` stays -1; and a project whose backfill
/// walks it in batches of `batch` with a pause of `pause_ms`.
async fn setup(
    db: &TestDb,
    rows: u32,
    batch: u32,
    pause_ms: u32,
    more: &[&str],
) -> TestResult<Project> {
    let options = if db.dialect == Dialect::Postgres {
        " WITH (autovacuum_enabled = false)"
    } else {
        ""
    };
    db.exec(&format!(
        "CREATE TABLE big (id bigint PRIMARY KEY, amount int NOT NULL){options}"
    ))
    .await?;
    db.exec(&format!(
        "INSERT INTO big (id, amount) SELECT i, i FROM {}",
        series(db, rows)
    ))
    .await?;
    if db.dialect == Dialect::Postgres {
        let reltuples = db
            .scalar("SELECT reltuples::bigint FROM pg_class WHERE oid = 'big'::regclass")
            .await?;
        if reltuples > 0 {
            return Err(fail(format!("big was analyzed: reltuples {reltuples}")));
        }
    }
    let batch = format!("backfill_batch_size: {batch}");
    let pause = format!("backfill_pause: {pause_ms}ms");
    let mut settings = vec![batch.as_str(), pause.as_str()];
    settings.extend_from_slice(more);
    Project::new(db, &settings, PLAN, PLAN_TEXT)
}

/// Every row has its value.
async fn all_filled(db: &TestDb, rows: u32) -> TestResult {
    let wrong = db
        .scalar("SELECT count(*) FROM big WHERE doubled IS NULL OR doubled <> amount * 2")
        .await?;
    let all = db.scalar("SELECT count(*) FROM big").await?;
    if wrong != 0 || all != i64::from(rows) {
        return Err(fail(format!(
            "{}: {wrong} rows without their value, {all} rows (expected {rows})",
            db.dialect
        )));
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// A table never analyzed: the bar shows its rows
// ---------------------------------------------------------------------------

async fn never_analyzed(db: TestDb) -> TestResult {
    const ROWS: u32 = 12_345;
    let project = setup(&db, ROWS, 1000, 80, &[]).await?;
    let run = Running::on_terminal(&project, &["apply", "--env", ENV, PLAN])?;
    let (code, screen, _) = run.finish()?;
    if code != 0 {
        return Err(fail(format!(
            "{}: apply exited {code}:\n{screen}",
            db.dialect
        )));
    }
    never_of_zero(&screen)?;
    let total = format!("/{} rows", human(u64::from(ROWS)));
    let done = format!("done: {} rows", grouped(u64::from(ROWS)));
    // The bar itself, drawn on the terminal (not lines for a log).
    if !screen.contains("1.backfill [") || !screen.contains(&total) || !screen.contains(&done) {
        return Err(fail(format!(
            "{}: the terminal shows no bar of {total} ending `{done}`:\n{screen}",
            db.dialect
        )));
    }
    if rates(&screen)?.is_empty() {
        return Err(fail(format!("{}: no rate shown:\n{screen}", db.dialect)));
    }
    all_filled(&db, ROWS).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_never_analyzed_shows_its_row_count_on_postgres() {
    with_postgres(never_analyzed).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_never_analyzed_shows_its_row_count_on_mariadb() {
    with_mysql(never_analyzed).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_never_analyzed_shows_its_row_count_on_sqlite() {
    with_sqlite(never_analyzed).await;
}

/// Past the exact-count limit (1,000,000 rows), the size is the planner's
/// estimate for a table never analyzed: marked `~`, and not below the limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_past_the_count_limit_shows_an_estimate_on_postgres() {
    with_postgres(|db: TestDb| async move {
        let project = setup(&db, 1_300_000, 5000, 200, &[]).await?;
        let mut run = Running::on_terminal(&project, &["apply", "--env", ENV, PLAN])?;
        let seen = run.wait_for("a bar with a total", |s| s.contains(" rows (") && s.contains("/~"))?;
        run.ctrl_c()?;
        let (code, _, _) = run.finish()?;
        never_of_zero(&seen)?;
        let total = seen
            .split("/~")
            .nth(1)
            .and_then(|t| t.split(' ').next())
            .unwrap_or_default()
            .to_string();
        let millions: f64 = total.trim_end_matches('M').parse().unwrap_or(0.0);
        if !total.ends_with('M') || millions < 1.0 || code != 130 {
            return Err(fail(format!(
                "expected an estimate of at least 1.0M and exit 130, got ~{total} and {code}:\n{seen}"
            )));
        }
        Ok(())
    })
    .await;
}

// ---------------------------------------------------------------------------
// Lock waits, live
// ---------------------------------------------------------------------------

/// Once the bar moves, another session takes a lock that blocks the
/// batches' UPDATE; a line for each retry must show while the step waits.
async fn lock_wait_on_the_bar(db: TestDb) -> TestResult {
    const ROWS: u32 = 10_000;
    let project = setup(
        &db,
        ROWS,
        500,
        100,
        &["lock_timeout: 1s", "lock_retries: 30"],
    )
    .await?;
    let mut run = Running::on_terminal(&project, &["apply", "--env", ENV, PLAN])?;
    run.wait_for("the bar moving", |s| s.contains("1.0k/10.0k rows"))?;
    let mut holder = Conn::open(&db).await?;
    let lock = match db.dialect {
        // SHARE blocks the UPDATE (and nothing phasegate reads).
        Dialect::Postgres => "BEGIN; LOCK TABLE big IN SHARE MODE",
        Dialect::Mysql => "LOCK TABLES big READ",
        Dialect::Sqlite => "BEGIN IMMEDIATE",
    };
    holder.exec(lock).await?;
    let line = "1.backfill: waiting for lock on big (attempt 2 of 31, retrying in ";
    let seen = run.wait_for("a lock-wait line", |s| s.contains(line));
    // The step is still waiting: the line came before it finished.
    let still_running = run.child.try_wait()?.is_none();
    let release = match db.dialect {
        Dialect::Mysql => "UNLOCK TABLES",
        _ => "ROLLBACK",
    };
    holder.exec(release).await?;
    holder.close().await;
    let seen = seen?;
    let (code, screen, _) = run.finish()?;
    if !still_running || code != 0 {
        return Err(fail(format!(
            "{}: running when the line showed: {still_running}; exit {code}:\n{screen}",
            db.dialect
        )));
    }
    let after = seen.split(line).nth(1).unwrap_or_default();
    if !after.starts_with(|c: char| c.is_ascii_digit())
        || !after.contains("s): lock_timeout after 1s")
    {
        return Err(fail(format!(
            "{}: the line does not say how long:\n{seen}",
            db.dialect
        )));
    }
    rates(&screen)?;
    all_filled(&db, ROWS).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_lock_shows_live_retry_lines_on_the_bar_on_postgres() {
    with_postgres(lock_wait_on_the_bar).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_lock_shows_live_retry_lines_on_the_bar_on_mariadb() {
    with_mysql(lock_wait_on_the_bar).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_lock_shows_live_retry_lines_on_the_bar_on_sqlite() {
    with_sqlite(lock_wait_on_the_bar).await;
}

/// Off a terminal (a CI log): a line when each step starts, a line per
/// lock retry as it happens (here the ALTER of `add_column`, blocked from
/// the start), the backfill's first and last lines with its size.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ci_log_gets_a_line_per_lock_retry_and_the_backfill_size_on_postgres() {
    with_postgres(|db: TestDb| async move {
        const ROWS: u32 = 3000;
        let project = setup(&db, ROWS, 1000, 0, &["lock_timeout: 500ms", "lock_retries: 30"]).await?;
        let mut holder = Conn::open(&db).await?;
        holder.exec("BEGIN; LOCK TABLE big IN SHARE MODE").await?;
        let mut run = Running::piped(&project, &["apply", "--env", ENV, PLAN])?;
        let line = "  1.add_column: waiting for lock on big (attempt 2 of 31, retrying in ";
        let seen = run.wait_for("a lock-wait line", |s| s.contains(line));
        let still_running = run.child.try_wait()?.is_none();
        holder.exec("ROLLBACK").await?;
        holder.close().await;
        seen?;
        let (code, _, stderr) = run.finish()?;
        let expected = [
            "running 1.add_column: ",
            "running 1.backfill: ",
            "  1.backfill: 0/3.0k rows (0%)\n",
            "  1.backfill: done: 3,000 rows (3,000 updated) in ",
        ];
        let missing: Vec<&&str> = expected.iter().filter(|e| !stderr.contains(**e)).collect();
        if !still_running || code != 0 || !missing.is_empty() {
            return Err(fail(format!(
                "running when the line showed: {still_running}; exit {code}; missing {missing:?}:\n{stderr}"
            )));
        }
        // No bar drawing in a log.
        if stderr.contains('[') {
            return Err(fail(format!("a bar in a log:\n{stderr}")));
        }
        all_filled(&db, ROWS).await
    })
    .await;
}

// ---------------------------------------------------------------------------
// Ctrl-C
// ---------------------------------------------------------------------------

async fn ctrl_c_mid_backfill(db: TestDb) -> TestResult {
    const ROWS: u32 = 20_000;
    let project = setup(&db, ROWS, 500, 50, &[]).await?;
    let mut run = Running::on_terminal(&project, &["apply", "--env", ENV, PLAN])?;
    run.wait_for("a few batches", |s| s.contains("3.0k/20.0k rows"))?;
    run.ctrl_c()?;
    let (code, screen, _) = run.finish()?;
    let expected = format!(
        "To resume after the last checkpoint, run:\n\n  phasegate --config {} apply --env {ENV} {PLAN}",
        project.config_path().display()
    );
    if code != 130
        || !screen.contains("interrupted (Ctrl-C) during step 1.backfill")
        || !screen.contains(&expected)
    {
        return Err(fail(format!(
            "{}: expected exit 130 and `{expected}`, got {code}:\n{screen}",
            db.dialect
        )));
    }
    // The log: checkpoints, and the step not applied.
    let log = events(&db).await;
    let checkpoints = log.iter().filter(|e| e.1 == "backfill_progress").count();
    let applied = log
        .iter()
        .any(|e| e.1 == "step_applied" && e.2.as_deref() == Some("1.backfill"));
    if checkpoints < 3 || applied {
        return Err(fail(format!(
            "{}: after Ctrl-C the log has {checkpoints} checkpoints, backfill applied: {applied}",
            db.dialect
        )));
    }
    // The printed command, as typed (no terminal: the CI lines).
    let command = resume_command(&screen)?;
    let out = Command::new("sh")
        .args(["-c", &command])
        .current_dir(&project.dir)
        .output()?;
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    if !out.status.success() {
        return Err(fail(format!(
            "{}: `{command}` failed:\n{stderr}",
            db.dialect
        )));
    }
    // It starts at the checkpoint, and rates its own rows only.
    let resumed = stderr
        .lines()
        .find(|l| l.contains("resuming after"))
        .ok_or_else(|| {
            fail(format!(
                "the resumed run does not start at its checkpoint:\n{stderr}"
            ))
        })?;
    let at = resumed
        .split_whitespace()
        .nth(1)
        .and_then(|t| t.split('/').next())
        .unwrap_or_default()
        .to_string();
    if at == "0" || !resumed.contains(&format!("/{} rows", human(u64::from(ROWS)))) {
        return Err(fail(format!("{}: the resumed bar: {resumed}", db.dialect)));
    }
    let done = format!("done: {} rows", grouped(u64::from(ROWS)));
    if !stderr.contains(&done) {
        return Err(fail(format!("{}: no `{done}`:\n{stderr}", db.dialect)));
    }
    // 500 rows a batch and 50 ms between batches: well under 100k rows/s
    // for any run's own rows (a rate over the checkpoint's rows in no time
    // would be billions).
    let too_fast: Vec<f64> = rates(&stderr)?
        .into_iter()
        .filter(|r| *r > 100_000.0)
        .collect();
    if !too_fast.is_empty() {
        return Err(fail(format!(
            "{}: rates {too_fast:?}:\n{stderr}",
            db.dialect
        )));
    }
    all_filled(&db, ROWS).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_mid_backfill_prints_the_command_that_resumes_it_on_postgres() {
    with_postgres(ctrl_c_mid_backfill).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_mid_backfill_prints_the_command_that_resumes_it_on_mariadb() {
    with_mysql(ctrl_c_mid_backfill).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_mid_backfill_prints_the_command_that_resumes_it_on_sqlite() {
    with_sqlite(ctrl_c_mid_backfill).await;
}

/// SIGINT with `--format json`, off a terminal: stdout is one JSON document
/// (outcome `interrupted`, exit code 130), the message on stderr.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigint_with_format_json_prints_one_interrupted_document_on_postgres() {
    with_postgres(|db: TestDb| async move {
        let project = setup(&db, 20_000, 500, 50, &[]).await?;
        let mut run = Running::piped(&project, &["apply", "--env", ENV, PLAN, "--format", "json"])?;
        run.wait_for("the backfill", |s| s.contains("running 1.backfill"))?;
        std::thread::sleep(Duration::from_millis(300));
        run.sigint()?;
        let (code, stdout, stderr) = run.finish()?;
        let doc: serde_json::Value = serde_json::from_str(&stdout)
            .map_err(|e| fail(format!("stdout is not one JSON document ({e}):\n{stdout}")))?;
        let hint = doc["error"]["hint"].as_str().unwrap_or_default();
        if code != 130
            || doc["outcome"] != "interrupted"
            || doc["exit_code"] != 130
            || doc["schema_version"] != 1
            || doc["command"] != "apply"
            || !hint.ends_with(&format!("apply --env {ENV} {PLAN}"))
            || !stderr.contains("To resume after the last checkpoint, run:")
        {
            return Err(fail(format!(
                "exit {code}\nstdout:\n{stdout}\nstderr:\n{stderr}"
            )));
        }
        Ok(())
    })
    .await;
}

/// Ctrl-C while `rollback` gives way on a lock again and again (a line per
/// retry, as in `apply`): exit 130, the rollback command that goes on, and
/// that command, once the lock is gone, rolls the phase back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigint_while_rollback_waits_for_a_lock_prints_the_command_that_goes_on_on_postgres() {
    with_postgres(|db: TestDb| async move {
        let project = setup(&db, 3000, 1000, 0, &["lock_timeout: 500ms", "lock_retries: 30"]).await?;
        let applied = Running::piped(&project, &["apply", "--env", ENV, PLAN])?.finish()?;
        if applied.0 != 0 {
            return Err(fail(format!("apply exited {}:\n{}", applied.0, applied.2)));
        }
        let mut holder = Conn::open(&db).await?;
        holder.exec("BEGIN; LOCK TABLE big IN SHARE MODE").await?;
        let mut run = Running::piped(&project, &["rollback", "--env", ENV, PLAN])?;
        let line = "  1.add_column: waiting for lock on big (attempt 2 of 31, retrying in ";
        let seen = run.wait_for("a lock-wait line", |s| s.contains(line));
        let sent = seen.is_ok() && run.sigint().is_ok();
        let (code, _, stderr) = run.finish()?;
        holder.exec("ROLLBACK").await?;
        holder.close().await;
        seen?;
        let expected = format!(
            "interrupted (Ctrl-C) during step 1.add_column of `phasegate rollback`; every step undone so far is recorded.\nTo go on, run:\n  phasegate --config {} rollback --env {ENV} {PLAN}",
            project.config_path().display()
        );
        if !sent || code != 130 || !stderr.contains(&expected) {
            return Err(fail(format!("expected exit 130 and\n{expected}\ngot {code}:\n{stderr}")));
        }
        let command = resume_command(&stderr)?;
        let out = Command::new("sh")
            .args(["-c", &command])
            .current_dir(&project.dir)
            .output()?;
        let rolled_back = events(&db).await.iter().any(|e| e.1 == "phase_rolled_back");
        if !out.status.success() || !rolled_back || db.has_column("big", "doubled").await? {
            return Err(fail(format!(
                "`{command}` did not roll the phase back (phase_rolled_back: {rolled_back}):\n{}",
                String::from_utf8_lossy(&out.stderr)
            )));
        }
        Ok(())
    })
    .await;
}
