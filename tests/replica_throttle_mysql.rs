//! A backfill waits while a real MariaDB replica falls behind, and finishes
//! once it catches up.
//!
//! The test starts its own MariaDB primary (with a binary log) and a
//! replica of it (`mariadb-install-db` once, the data folder copied, two
//! `mariadbd`s on free ports with their sockets in a temporary folder, as
//! the `mysql` user when run as root), and replicates with GTIDs. Then, on
//! two tables, phase 1 of a rename is applied with `max_replica_lag: 1s`
//! and the replica in `replica_urls`:
//!
//! - with the replica's SQL thread stopped (`Seconds_Behind_Master` NULL),
//!   the backfill reports the replica as not replicating, naming the SQL
//!   thread, and writes no batch; after `START REPLICA SQL_THREAD` it
//!   finishes, every row copied, on the replica too;
//! - with `MASTER_DELAY` holding the replica 2 s and more behind, it
//!   reports the seconds and writes no batch; once the delay is lifted it
//!   finishes.
//!
//! Both servers are killed and their files removed afterwards, also when
//! the test fails. A primary listed as a replica, and a replica that
//! refuses the connection, stop the backfill (on the shared MariaDB).

mod common;
mod executor_support;
mod throttle_support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{TestResult, fail};
use phasegate::execute::{LagReading, ReplicaWait, Workspace};
use phasegate::tracker::SystemClock;
use sqlx::{AssertSqlSafe, Connection, MySqlConnection};
use throttle_support::{
    Waits, eventually, fail_with_logs, free_port, have, have_all, is_root, rename_project, scratch,
};

const ROWS: i64 = 20_000;
const BATCH: i64 = 1_000;

/// A primary and its replica, killed and removed on drop.
struct Pair {
    dir: PathBuf,
    primary: u16,
    replica: u16,
    servers: Vec<Child>,
}

impl Drop for Pair {
    fn drop(&mut self) {
        for s in &mut self.servers {
            let _ = s.kill();
            let _ = s.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn url(port: u16, db: &str) -> String {
    format!("mysql://root@127.0.0.1:{port}/{db}")
}

/// Starts `mariadbd` on `data` and `port` (its socket, pid file and error
/// log in `dir`), dropping root for `mysql` when run as root.
fn mariadbd(dir: &Path, name: &str, port: u16, id: u32, root: bool) -> TestResult<Child> {
    let path = |suffix: &str| {
        dir.join(format!("{name}{suffix}"))
            .to_string_lossy()
            .to_string()
    };
    let mut args = vec![
        "--no-defaults".to_string(),
        format!("--datadir={}", path("")),
        format!("--port={port}"),
        "--bind-address=127.0.0.1".into(),
        format!("--socket={}", path(".sock")),
        format!("--pid-file={}", path(".pid")),
        format!("--log-error={}", path(".err")),
        format!("--server-id={id}"),
        format!("--log-bin={}", path("-bin")),
        "--innodb-buffer-pool-size=32M".into(),
        "--innodb-flush-log-at-trx-commit=0".into(),
        "--sync-binlog=0".into(),
        "--binlog-format=ROW".into(),
    ];
    if root {
        args.push("--user=mysql".into());
    }
    let program = if have("mariadbd") {
        "mariadbd"
    } else {
        "/usr/sbin/mariadbd"
    };
    Ok(Command::new(program)
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?)
}

/// A connection to `port`, once the server there accepts one (within 60 s).
async fn connect(port: u16, db: &str) -> TestResult<MySqlConnection> {
    eventually(
        &format!("a connection to {}", url(port, db)),
        60,
        move || async move { Ok(MySqlConnection::connect(&url(port, db)).await.ok()) },
    )
    .await
}

/// Starts a primary and a replica of it, replicating.
async fn start_pair() -> TestResult<Pair> {
    let root = is_root();
    let dir = scratch("mariadb-replica", root.then_some("mysql"))?;
    let mut pair = Pair {
        dir: dir.clone(),
        primary: free_port()?,
        replica: free_port()?,
        servers: Vec::new(),
    };
    let primary = dir.join("primary");
    let mut install = vec![
        "--no-defaults".to_string(),
        format!("--datadir={}", primary.to_string_lossy()),
        "--auth-root-authentication-method=normal".into(),
        "--skip-test-db".into(),
    ];
    if root {
        install.push("--user=mysql".into());
    }
    let install: Vec<&str> = install.iter().map(String::as_str).collect();
    throttle_support::run(None, "mariadb-install-db", &install)?;
    // The replica starts from the same, still empty, data folder.
    throttle_support::run(
        None,
        "cp",
        &[
            "-a",
            &primary.to_string_lossy(),
            &dir.join("replica").to_string_lossy(),
        ],
    )?;
    pair.servers
        .push(mariadbd(&dir, "primary", pair.primary, 1, root)?);
    pair.servers
        .push(mariadbd(&dir, "replica", pair.replica, 2, root)?);
    connect(pair.primary, "mysql").await?;
    let mut replica = connect(pair.replica, "mysql").await?;
    sqlx::raw_sql(AssertSqlSafe(format!(
        "CHANGE MASTER TO MASTER_HOST = '127.0.0.1', MASTER_PORT = {}, MASTER_USER = 'root', \
         MASTER_USE_GTID = slave_pos, MASTER_CONNECT_RETRY = 1; START REPLICA",
        pair.primary
    )))
    .execute(&mut replica)
    .await?;
    Ok(pair)
}

async fn scalar(conn: &mut MySqlConnection, sql: &str) -> TestResult<i64> {
    Ok(sqlx::query_scalar::<_, i64>(AssertSqlSafe(sql.to_string()))
        .fetch_one(conn)
        .await?)
}

async fn exec(conn: &mut MySqlConnection, sql: &str) -> TestResult {
    sqlx::raw_sql(AssertSqlSafe(sql.to_string()))
        .execute(conn)
        .await?;
    Ok(())
}

/// Waits until `sql` gives `want` on `conn` (within 60 s; an error, such
/// as a table not replicated yet, counts as not yet).
async fn until(conn: &mut MySqlConnection, sql: &str, want: i64) -> TestResult {
    let end = Instant::now() + Duration::from_secs(60);
    loop {
        let got = scalar(conn, sql).await.map_err(|e| e.to_string());
        if got == Ok(want) {
            return Ok(());
        }
        if Instant::now() > end {
            return Err(fail(format!(
                "`{sql}` gave {got:?}, not {want}, within 60 s"
            )));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The checkpoints the backfills recorded so far.
const CHECKPOINTS: &str = "SELECT count(*) FROM phasegate_events WHERE kind = 'backfill_progress'";

/// Applies phase 1 of plan `plan` (a rename on `table`) on the pair's
/// primary while `hold` keeps the replica behind: the backfill must report
/// waits that `expected` accepts and write no batch for two seconds, then
/// `release` lets the replica catch up and the backfill must finish.
async fn held_then_released(
    pair: &Pair,
    plan: &str,
    table: &str,
    expected: fn(&LagReading) -> bool,
    release: &str,
) -> TestResult {
    let config = rename_project(
        &pair.dir,
        plan,
        table,
        &url(pair.primary, "throttle"),
        &url(pair.replica, "throttle"),
        BATCH,
    )?;
    let waits = Waits::default();
    let clock = SystemClock;
    let ws = Workspace::new(&config, &clock, "throttle").with_progress(&waits);
    let before = {
        let mut primary = connect(pair.primary, "throttle").await?;
        scalar(&mut primary, CHECKPOINTS).await.unwrap_or(0)
    };
    let watch = async {
        let w = &waits;
        eventually(
            "the backfill reporting waits for the replica",
            60,
            move || async move { Ok((w.replica_waits().len() >= 2).then_some(())) },
        )
        .await?;
        let mut watcher = connect(pair.primary, "throttle").await?;
        let held = scalar(&mut watcher, CHECKPOINTS).await?;
        tokio::time::sleep(Duration::from_secs(2)).await;
        let still = scalar(&mut watcher, CHECKPOINTS).await?;
        let seen = waits.replica_waits();
        let mut replica = connect(pair.replica, "throttle").await?;
        exec(&mut replica, release).await?;
        if held != before || still != before {
            return Err(fail(format!(
                "batches ran while the replica was behind: {} then {} checkpoint(s)",
                held - before,
                still - before
            )));
        }
        match seen.iter().find(|w| !expected(&w.lag)) {
            None => Ok(seen),
            Some(w) => Err(fail(format!("an unexpected wait: {w:?}"))),
        }
    };
    let apply = async {
        tokio::time::timeout(Duration::from_secs(60), ws.apply("prod", plan, false))
            .await
            .map_err(|_| fail("apply did not finish within 60 s of the replica catching up"))
    };
    let started = Instant::now();
    let (watched, applied) = tokio::join!(watch, apply);
    let seen = watched?;
    applied??;
    let took = started.elapsed();
    let mut primary = connect(pair.primary, "throttle").await?;
    let copied = scalar(
        &mut primary,
        &format!("SELECT count(*) FROM {table} WHERE total <=> amount"),
    )
    .await?;
    if copied != ROWS {
        return Err(fail(format!("{copied} of {ROWS} rows copied")));
    }
    let batches = scalar(&mut primary, CHECKPOINTS).await? - before;
    if batches != ROWS / BATCH {
        return Err(fail(format!(
            "{batches} checkpoints, expected one per {BATCH} rows"
        )));
    }
    // The replica applies it all once released.
    let mut replica = connect(pair.replica, "throttle").await?;
    until(
        &mut replica,
        &format!("SELECT count(*) FROM {table} WHERE total <=> amount"),
        ROWS,
    )
    .await?;
    let first: Option<&ReplicaWait> = seen.first();
    eprintln!("{table}: held and released in {took:?}; first wait {first:?}");
    Ok(())
}

async fn throttled_by_a_lagging_replica(pair: &Pair) -> TestResult {
    let mut primary = connect(pair.primary, "mysql").await?;
    exec(&mut primary, "CREATE DATABASE throttle").await?;
    let mut primary = connect(pair.primary, "throttle").await?;
    for table in ["stopped", "late"] {
        exec(
            &mut primary,
            &format!(
                "CREATE TABLE {table} (id bigint PRIMARY KEY, amount integer);
                 SET SESSION max_recursive_iterations = {ROWS};
                 INSERT INTO {table} WITH RECURSIVE s (i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < {ROWS}) \
                   SELECT i, i % 1000 FROM s;"
            ),
        )
        .await?;
    }
    let mut replica = connect(pair.replica, "mysql").await?;
    until(&mut replica, "SELECT count(*) FROM throttle.late", ROWS).await?;

    // The SQL thread stopped: Seconds_Behind_Master is NULL.
    exec(&mut replica, "STOP REPLICA SQL_THREAD").await?;
    held_then_released(
        pair,
        "rename_stopped",
        "stopped",
        |l| matches!(l, LagReading::Stopped(why) if why.contains("replication SQL thread is not running")),
        "START REPLICA SQL_THREAD",
    )
    .await?;

    // Applied 30 s late: after a write and two seconds, 2 s behind and more.
    exec(
        &mut replica,
        "STOP REPLICA; CHANGE MASTER TO MASTER_DELAY = 30; START REPLICA",
    )
    .await?;
    exec(
        &mut primary,
        "CREATE TABLE written_before_the_apply (id int)",
    )
    .await?;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    held_then_released(
        pair,
        "rename_late",
        "late",
        |l| matches!(l, LagReading::Behind(d) if *d >= Duration::from_secs(2)),
        "STOP REPLICA; CHANGE MASTER TO MASTER_DELAY = 0; START REPLICA",
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backfill_waits_for_a_lagging_mariadb_replica_and_finishes_after_it_catches_up() {
    if !have_all(&["mariadb-install-db"], "MariaDB replica to throttle on") {
        return;
    }
    let started = Instant::now();
    let pair = match start_pair().await {
        Ok(p) => p,
        Err(e) => panic!("starting a MariaDB primary and replica: {e}"),
    };
    eprintln!("primary and replica up in {:?}", started.elapsed());
    if let Err(e) = throttled_by_a_lagging_replica(&pair).await {
        fail_with_logs(e, &pair.dir, &["primary.err", "replica.err"]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mariadb_primary_listed_as_a_replica_stops_the_backfill() {
    common::with_mysql(|db| async move {
        let url = db.url.clone();
        let e = throttle_support::apply_with_replica(&db, &url).await?;
        if !(e.contains("replica_urls entry 1")
            && e.contains("is not a replica")
            && e.contains("replicates from no primary"))
        {
            return Err(fail(format!("unexpected error: {e}")));
        }
        if db
            .scalar("SELECT count(*) FROM big WHERE total IS NOT NULL")
            .await?
            != 0
        {
            return Err(fail("a batch ran before the replica was read"));
        }
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mariadb_replica_that_refuses_the_connection_stops_the_backfill_at_once() {
    common::with_mysql(|db| async move {
        let missing = db.url.replace(&db.name, "phasegate_no_such_replica_db");
        let e = throttle_support::apply_with_replica(&db, &missing).await?;
        if !(e.contains("refused the connection") && e.contains("Unknown database")) {
            return Err(fail(format!("unexpected error: {e}")));
        }
        Ok(())
    })
    .await;
}
