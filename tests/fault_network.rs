//! A network path that goes silent mid-backfill (a half-open TCP
//! connection: no error, no close, no answer), through a loopback proxy
//! (`executor_support::proxy`) that stops forwarding once the backfill has
//! committed some batches.
//!
//! `apply` must end non-zero within the documented bound (docs/workflow.md,
//! "Lost connections": `statement_timeout` + `lock_timeout` + 15 s, and up
//! to 2 × 5 s to give up the lock and the connection), with an error that
//! names the step, says the connection was lost and what to run next; once
//! the proxy is gone, a second `apply` on a direct connection takes the lock
//! and resumes after the last checkpoint to the end, the rows, the schema
//! and the log agreeing.
//!
//! And the sessions phasegate opens ask the server to end them when their
//! client goes silent (src/session.rs): the settings read back on such a
//! session, and a session holding the lock inside a transaction whose path
//! stays silent for good is ended by the server after
//! `session_bounds::IDLE_IN_TRANSACTION` (60 s), freeing the lock for a direct run
//! (Postgres, MariaDB).

mod common;
mod executor_support;

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{TestDb, TestResult, fail, with_mysql, with_postgres};
use executor_support::proxy::{Proxy, via};
use executor_support::{ENV, Project, series};
use phasegate::dialect::Dialect;
use phasegate::execute::Workspace;
use phasegate::tracker::{Store, SystemClock};

const PLAN: &str = "silent";
const ROWS: u32 = 20_000;
/// The environment's settings: the bound below follows from them.
const SETTINGS: &[&str] = &[
    "backfill_batch_size: 100",
    "backfill_pause: 20ms",
    "statement_timeout: 5s",
    "lock_timeout: 1s",
    "lock_wait: 60s",
];
/// docs/workflow.md: statement_timeout + lock_timeout + 15 s, plus 2 × 5 s
/// to release the lock and close the connection.
const BOUND: Duration = Duration::from_secs(5 + 1 + 15 + 10);
/// Process start-up and a machine shared with other builds.
const SLACK: Duration = Duration::from_secs(15);

async fn big_table(db: &TestDb) -> TestResult {
    db.exec("CREATE TABLE big (id bigint PRIMARY KEY, amount integer NOT NULL)")
        .await?;
    db.exec(&format!(
        "INSERT INTO big (id, amount) SELECT i, i % 1000 FROM {}",
        series(db, ROWS)
    ))
    .await?;
    Ok(())
}

fn plan_text() -> String {
    format!(
        "name: {PLAN}\nchanges:\n  - add_column: {{ table: big, column: doubled, type: bigint, backfill: amount * 2 }}\n"
    )
}

fn apply(project: &Project, config: &str) -> TestResult<std::process::Child> {
    Ok(Command::new(env!("CARGO_BIN_EXE_phasegate"))
        .arg("--config")
        .arg(project.dir.join(config))
        .args(["apply", "--env", ENV, PLAN])
        .current_dir(&project.dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?)
}

/// Waits for `child` at most `limit`, killing it after.
async fn finish(mut child: std::process::Child, limit: Duration) -> TestResult<(Output, Duration)> {
    let t = Instant::now();
    loop {
        if child.try_wait()?.is_some() {
            return Ok((child.wait_with_output()?, t.elapsed()));
        }
        if t.elapsed() > limit {
            child.kill()?;
            let out = child.wait_with_output()?;
            return Err(fail(format!(
                "still running after {}s: {}{}",
                limit.as_secs(),
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn key_of(detail: &str) -> i64 {
    serde_json::from_str::<serde_json::Value>(detail)
        .ok()
        .and_then(|v| v["last"][0].as_str().map(str::to_string))
        .and_then(|k| k.trim_matches('\'').parse().ok())
        .unwrap_or(-1)
}

async fn silent_path_mid_backfill(db: TestDb) -> TestResult {
    big_table(&db).await?;
    let project = Project::new(&db, SETTINGS, PLAN, &plan_text())?;
    let proxy = Proxy::start(via(&db.url, 1)?.1).await?;
    let (proxied_url, _) = via(&db.url, proxy.port)?;
    let direct = std::fs::read_to_string(project.config_path())?;
    std::fs::write(
        project.dir.join("proxied.yaml"),
        direct.replace(&db.url, &proxied_url),
    )?;

    let child = apply(&project, "proxied.yaml")?;
    // Silent once the backfill has committed some batches.
    let t0 = Instant::now();
    let before = loop {
        let events = executor_support::events(&db).await;
        let progress: Vec<_> = events
            .into_iter()
            .filter(|e| e.1 == "backfill_progress")
            .collect();
        if progress.len() >= 5 {
            proxy.go_silent();
            break progress;
        }
        if t0.elapsed() > Duration::from_secs(60) {
            return Err(fail("the backfill never started"));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let (out, took) = finish(child, Duration::from_secs(90)).await?;
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    let report = format!(
        "{}: apply ended {}ms after the path went silent ({}), bound {}s: {stderr}",
        db.dialect,
        took.as_millis(),
        out.status,
        BOUND.as_secs()
    );
    println!("{report}");
    if out.status.success() {
        return Err(fail(format!(
            "apply succeeded over a silent path: {report}"
        )));
    }
    if took > BOUND + SLACK {
        return Err(fail(format!(
            "apply outlived the documented bound: {report}"
        )));
    }
    for needed in [
        "step 1.backfill",
        "the connection to the database was lost",
        // The command to run again, with the --config this run was given.
        &format!(
            "phasegate --config {} apply --env {ENV} {PLAN}",
            project.dir.join("proxied.yaml").display()
        ),
    ] {
        if !stderr.contains(needed) {
            return Err(fail(format!("the error does not say `{needed}`: {report}")));
        }
    }

    // The path is gone: the server sees the sockets close and ends the
    // session. A direct run takes the lock and resumes.
    proxy.stop();
    let last_before = events_max_id(&db).await;
    let checkpoint = executor_support::events(&db)
        .await
        .iter()
        .filter(|e| e.1 == "backfill_progress")
        .map(|e| key_of(&e.3))
        .max()
        .unwrap_or(-1);
    let (out, _) = finish(apply(&project, "phasegate.yaml")?, Duration::from_secs(120)).await?;
    if !out.status.success() {
        return Err(fail(format!(
            "the second apply failed: {}",
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    let events = executor_support::events(&db).await;
    let resumed: Vec<i64> = events
        .iter()
        .filter(|e| e.0 > last_before && e.1 == "backfill_progress")
        .map(|e| key_of(&e.3))
        .collect();
    if resumed.first().is_some_and(|k| *k <= checkpoint) || checkpoint < key_of(&before[4].3) {
        return Err(fail(format!(
            "the second run did not resume after the checkpoint {checkpoint}: {resumed:?}"
        )));
    }
    // The schema and the log agree: the column is there and filled, the
    // step applied once, the phase recorded.
    let wrong = db
        .scalar("SELECT count(*) FROM big WHERE doubled IS NULL OR doubled <> amount * 2")
        .await?;
    if wrong != 0 {
        return Err(fail(format!("{wrong} rows not backfilled")));
    }
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

async fn events_max_id(db: &TestDb) -> i64 {
    executor_support::events(db).await.last().map_or(0, |e| e.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_path_mid_backfill_ends_apply_within_the_bound_and_a_direct_run_resumes_on_postgres()
 {
    with_postgres(silent_path_mid_backfill).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_path_mid_backfill_ends_apply_within_the_bound_and_a_direct_run_resumes_on_mysql()
{
    with_mysql(silent_path_mid_backfill).await;
}

/// The settings a phasegate session carries, read back on that session.
async fn session_bounds(db: TestDb) -> TestResult {
    let mut store = Store::open(ENV, &db.url, db.dialect, Duration::from_secs(10)).await?;
    let (sql, expected): (&str, &[i64]) = match db.dialect {
        Dialect::Postgres => (
            "SELECT CAST(setting AS bigint) FROM pg_settings WHERE name IN \
             ('idle_in_transaction_session_timeout', 'idle_session_timeout', 'tcp_keepalives_count', \
              'tcp_keepalives_idle', 'tcp_keepalives_interval', 'tcp_user_timeout') ORDER BY name",
            // In pg_settings' units (ms, s), by name.
            &[60_000, 300_000, 3, 10, 5, 30_000],
        ),
        Dialect::Mysql => (
            "SELECT CAST(@@session.wait_timeout AS SIGNED) UNION ALL SELECT CAST(@@session.net_read_timeout AS SIGNED) \
             UNION ALL SELECT CAST(@@session.idle_transaction_timeout AS SIGNED)",
            &[300, 60, 60],
        ),
        Dialect::Sqlite => return Ok(()),
    };
    let got: Vec<i64> = sqlx::query_scalar(sql).fetch_all(store.conn()).await?;
    store.close().await;
    if got != expected {
        return Err(fail(format!(
            "{}: the session's bounds are {got:?}, expected {expected:?}",
            db.dialect
        )));
    }
    Ok(())
}

#[tokio::test]
async fn a_phasegate_session_asks_postgres_to_end_it_when_its_client_goes_silent() {
    with_postgres(session_bounds).await;
}

#[tokio::test]
async fn a_phasegate_session_asks_mariadb_to_end_it_when_its_client_goes_silent() {
    with_mysql(session_bounds).await;
}

/// A session that holds the environment's lock inside a transaction, whose
/// path then goes silent for good (the proxy never closes its sockets): the
/// server ends it after `session_bounds::IDLE_IN_TRANSACTION`, and the lock with
/// it, so a direct run can take the lock without the path ever returning.
async fn silent_holder_is_ended_by_the_server(db: TestDb) -> TestResult {
    let proxy = Proxy::start(via(&db.url, 1)?.1).await?;
    let (proxied_url, _) = via(&db.url, proxy.port)?;
    let wait = Duration::from_secs(10);
    let mut silent = Store::open(ENV, &proxied_url, db.dialect, wait).await?;
    silent.lock(Duration::from_secs(1)).await?;
    silent.begin().await?;
    let held = match db.dialect {
        Dialect::Postgres => {
            // The environment lock's key, 0x7068_6173_6567_6174, split the
            // way pg_locks shows a bigint advisory key (Postgres docs,
            // "pg_locks"): the run's presence lock is a different key.
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' \
              AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) \
              AND classid = 1885888883 AND objid = 1701273972 AND objsubid = 1"
        }
        _ => {
            "SELECT CASE WHEN IS_USED_LOCK(CONCAT('phasegate:7068617365676174:', SHA1(DATABASE()))) IS NULL THEN 0 ELSE 1 END"
        }
    };
    if db.scalar(held).await? != 1 {
        return Err(fail("the proxied session does not hold the lock"));
    }
    proxy.go_silent();
    let t0 = Instant::now();
    let limit = phasegate::session_bounds::IDLE_IN_TRANSACTION + SLACK + Duration::from_secs(15);
    while db.scalar(held).await? != 0 {
        if t0.elapsed() > limit {
            return Err(fail(format!(
                "{}: the server still holds the silent session's lock after {}s",
                db.dialect,
                limit.as_secs()
            )));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    println!(
        "{}: the server ended the silent session after {}ms",
        db.dialect,
        t0.elapsed().as_millis()
    );
    let mut direct = Store::open(ENV, &db.url, db.dialect, wait).await?;
    direct.lock(Duration::from_secs(5)).await?;
    direct.close().await;
    drop(silent);
    proxy.stop();
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_ends_a_silent_session_holding_the_lock_in_a_transaction() {
    with_postgres(silent_holder_is_ended_by_the_server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_ends_a_silent_session_holding_the_lock_in_a_transaction() {
    with_mysql(silent_holder_is_ended_by_the_server).await;
}
