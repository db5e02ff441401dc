//! A backfill waits while a real streaming replica falls behind, and
//! finishes once it catches up.
//!
//! The test starts its own Postgres primary and a streaming replica of it
//! (`initdb`, `pg_basebackup -R`, `pg_ctl`, on free ports, as the
//! `postgres` user when run as root: `initdb` refuses root), fills a table,
//! pauses the replica's replay (`pg_wal_replay_pause()`) and applies phase
//! 1 of a rename with `max_replica_lag: 1s` and the replica in
//! `replica_urls`. The phase's DDL reaches the replica but is not replayed,
//! so the replica is behind by the time since the fill: the backfill must
//! report waiting for the replica and write no batch, for as long as replay
//! stays paused; after `pg_wal_replay_resume()` it must finish, every row
//! copied. Both servers are stopped and their files removed afterwards,
//! also when the test fails.

mod common;
mod executor_support;
mod throttle_support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{TestResult, fail};
use phasegate::execute::{LagReading, ReplicaWait, Workspace};
use phasegate::tracker::SystemClock;
use sqlx::{AssertSqlSafe, Connection, PgConnection};
use throttle_support::{
    Waits, fail_with_logs, free_port, have_all, is_root, rename_project, scratch,
};

const ROWS: i64 = 20_000;

/// A primary and its replica, stopped and removed on drop.
struct Pair {
    dir: PathBuf,
    primary: u16,
    replica: u16,
    as_postgres: bool,
}

impl Drop for Pair {
    fn drop(&mut self) {
        for data in ["replica", "primary"] {
            let _ = pg(
                self.as_postgres,
                "pg_ctl",
                &[
                    "-D",
                    &self.dir.join(data).to_string_lossy(),
                    "-m",
                    "immediate",
                    "-w",
                    "-t",
                    "30",
                    "stop",
                ],
            );
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Runs a Postgres program (as the `postgres` user when `as_postgres`);
/// its output on failure.
fn pg(as_postgres: bool, program: &str, args: &[&str]) -> TestResult {
    throttle_support::run(as_postgres.then_some("postgres"), program, args)
}

fn append(path: &Path, text: &str) -> TestResult {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new().append(true).open(path)?;
    f.write_all(text.as_bytes())?;
    Ok(())
}

/// Starts a primary and a streaming replica of it.
fn start_pair() -> TestResult<Pair> {
    let root = is_root();
    let dir = scratch("replica", root.then_some("postgres"))?;
    let pair = Pair {
        dir: dir.clone(),
        primary: free_port()?,
        replica: free_port()?,
        as_postgres: root,
    };
    let primary = dir.join("primary");
    let replica = dir.join("replica");
    let socket = dir.to_string_lossy().to_string();
    pg(
        root,
        "initdb",
        &[
            "-D",
            &primary.to_string_lossy(),
            "-A",
            "trust",
            "-U",
            "postgres",
            "--no-sync",
        ],
    )?;
    append(
        &primary.join("postgresql.conf"),
        &format!(
            "\nport = {}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{socket}'\nwal_level = replica\nmax_wal_senders = 4\nfsync = off\nshared_buffers = 32MB\n",
            pair.primary
        ),
    )?;
    let start = |data: &Path, log: &str| {
        pg(
            root,
            "pg_ctl",
            &[
                "-D",
                &data.to_string_lossy(),
                "-l",
                &dir.join(log).to_string_lossy(),
                "-w",
                "-t",
                "60",
                "start",
            ],
        )
    };
    start(&primary, "primary.log")?;
    pg(
        root,
        "pg_basebackup",
        &[
            "-h",
            "127.0.0.1",
            "-p",
            &pair.primary.to_string(),
            "-U",
            "postgres",
            "-D",
            &replica.to_string_lossy(),
            "-R",
            "-X",
            "stream",
        ],
    )?;
    append(
        &replica.join("postgresql.conf"),
        &format!("\nport = {}\n", pair.replica),
    )?;
    start(&replica, "replica.log")?;
    Ok(pair)
}

async fn scalar(conn: &mut PgConnection, sql: &str) -> TestResult<i64> {
    Ok(sqlx::query_scalar::<_, i64>(AssertSqlSafe(sql.to_string()))
        .fetch_one(conn)
        .await?)
}

/// Polls `sql` on `conn` until it returns `want`, for at most `within`.
async fn until(conn: &mut PgConnection, sql: &str, want: i64, within: Duration) -> TestResult {
    let end = Instant::now() + within;
    loop {
        let got = scalar(conn, sql).await?;
        if got == want {
            return Ok(());
        }
        if Instant::now() > end {
            return Err(fail(format!(
                "`{sql}` gave {got}, not {want}, within {within:?}"
            )));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn throttled_by_a_paused_replica(pair: &Pair) -> TestResult {
    let url = |port: u16, db: &str| format!("postgres://postgres@127.0.0.1:{port}/{db}");
    let mut admin = PgConnection::connect(&url(pair.primary, "postgres")).await?;
    until(
        &mut admin,
        "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'",
        1,
        Duration::from_secs(60),
    )
    .await?;
    sqlx::raw_sql("CREATE DATABASE throttle")
        .execute(&mut admin)
        .await?;
    let mut primary = PgConnection::connect(&url(pair.primary, "throttle")).await?;
    sqlx::raw_sql(AssertSqlSafe(format!(
        "CREATE TABLE big (id bigint PRIMARY KEY, amount integer);
         INSERT INTO big SELECT i, i % 1000 FROM generate_series(1, {ROWS}) AS i;"
    )))
    .execute(&mut primary)
    .await?;
    // The replica has the table and its rows, then stops replaying.
    // The database exists on the replica once it replayed its creation.
    let end = Instant::now() + Duration::from_secs(60);
    let mut replica = loop {
        match PgConnection::connect(&url(pair.replica, "throttle")).await {
            Ok(c) => break c,
            Err(e) if Instant::now() > end => {
                return Err(fail(format!("the replica never had the database: {e}")));
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    };
    until(
        &mut replica,
        "SELECT count(*) FROM pg_class WHERE relname = 'big'",
        1,
        Duration::from_secs(60),
    )
    .await?;
    until(
        &mut replica,
        "SELECT count(*) FROM big",
        ROWS,
        Duration::from_secs(60),
    )
    .await?;
    sqlx::raw_sql("SELECT pg_wal_replay_pause()")
        .execute(&mut replica)
        .await?;
    // The last transaction the replica replayed is now over a second old,
    // and it has received WAL it does not replay.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    sqlx::raw_sql("CREATE TABLE written_after_the_pause ()")
        .execute(&mut primary)
        .await?;
    until(
        &mut replica,
        "SELECT (pg_last_wal_receive_lsn() > pg_last_wal_replay_lsn())::int::bigint",
        1,
        Duration::from_secs(60),
    )
    .await?;

    let config = rename_project(
        &pair.dir,
        "rename",
        "big",
        &url(pair.primary, "throttle"),
        &url(pair.replica, "throttle"),
        1000,
    )?;
    let waits = Waits::default();
    let clock = SystemClock;
    let ws = Workspace::new(&config, &clock, "throttle").with_progress(&waits);

    let checkpoints =
        "SELECT count(*) FROM phasegate_events WHERE kind = 'backfill_progress'".to_string();
    let watch = async {
        // The backfill reports waiting, and writes no batch while replay is paused.
        let end = Instant::now() + Duration::from_secs(60);
        while waits.replica_waits().len() < 3 {
            if Instant::now() > end {
                return Err(fail("the backfill never reported waiting for the replica"));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let mut watcher = PgConnection::connect(&url(pair.primary, "throttle")).await?;
        let held = scalar(&mut watcher, &checkpoints).await?;
        tokio::time::sleep(Duration::from_secs(2)).await;
        let still = scalar(&mut watcher, &checkpoints).await?;
        let behind = waits.replica_waits().last().cloned();
        sqlx::raw_sql("SELECT pg_wal_replay_resume()")
            .execute(&mut replica)
            .await?;
        if held != 0 || still != 0 {
            return Err(fail(format!(
                "batches ran while the replica was paused: {held} then {still} checkpoint(s)"
            )));
        }
        match behind {
            Some(ReplicaWait {
                lag: LagReading::Behind(l),
                ..
            }) if l > Duration::from_secs(1) => Ok(()),
            other => Err(fail(format!(
                "the wait should say the replica is over 1s behind: {other:?}"
            ))),
        }
    };
    let apply = async {
        tokio::time::timeout(Duration::from_secs(180), ws.apply("prod", "rename", false))
            .await
            .map_err(|_| fail("apply did not finish within 180 s of the replica resuming"))
    };
    let (watched, applied) = tokio::join!(watch, apply);
    watched?;
    applied??;
    let copied = scalar(
        &mut primary,
        "SELECT count(*) FROM big WHERE total IS NOT DISTINCT FROM amount",
    )
    .await?;
    if copied != ROWS {
        return Err(fail(format!("{copied} of {ROWS} rows copied")));
    }
    let batches = scalar(&mut primary, &checkpoints).await?;
    if batches != ROWS / 1000 {
        return Err(fail(format!(
            "{batches} checkpoints, expected one per 1,000 rows"
        )));
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backfill_waits_for_a_paused_replica_and_finishes_after_it_resumes() {
    if !have_all(&["initdb", "pg_basebackup"], "replica to throttle on") {
        return;
    }
    let pair = match start_pair() {
        Ok(p) => p,
        Err(e) => panic!("starting a primary and a replica: {e}"),
    };
    if let Err(e) = throttled_by_a_paused_replica(&pair).await {
        fail_with_logs(e, &pair.dir, &["primary.log", "replica.log"]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_primary_listed_as_a_replica_stops_the_backfill() {
    common::with_postgres(|db| async move {
        let url = db.url.clone();
        let e = throttle_support::apply_with_replica(&db, &url).await?;
        if !e.contains("is not a replica") {
            return Err(fail(format!("unexpected error: {e}")));
        }
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_that_refuses_the_connection_stops_the_backfill_at_once() {
    common::with_postgres(|db| async move {
        let missing = db.url.replace(&db.name, "phasegate_no_such_replica_db");
        let e = throttle_support::apply_with_replica(&db, &missing).await?;
        if !(e.contains("refused the connection")
            && e.contains("does not exist")
            && !e.contains(" at line "))
        {
            return Err(fail(format!("unexpected error: {e}")));
        }
        Ok(())
    })
    .await;
}
