//! `rename_column … strategy: view` on Postgres: the rename's cost against
//! the table's size (issue 13's target: the same time within noise at 100k
//! and 10M rows), beside the copy strategy's phase 1 at the smaller sizes.
//!
//! Run: `cargo bench --bench rename_view`. Sizes:
//! `PHASEGATE_BENCH_VIEW_ROWS` (comma-separated row counts, default
//! `100000,10000000`); `PHASEGATE_BENCH_VIEW_COPY_MAX` (default `1000000`):
//! the copy strategy is timed too at sizes up to it. Server from
//! `PHASEGATE_TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`); a server that cannot be
//! reached is reported and skipped.
//!
//! For each size it makes a scratch database with `users` (`id` primary
//! key, `name`, an integer `counter`, 5% NULL names), and through
//! phasegate's own `apply` (lock timeout, retries, the log) times deploy 1
//! (the swap: rename the table aside, create the view), deploy 3 (the
//! contract: drop the view, rename the column and the table back) after
//! deploy 2 is marked, and each one's WAL (`pg_current_wal_lsn()` before
//! and after; the cluster's, so other sessions' writes count too). The log
//! is made by an earlier plan, so it is not in the times. It checks that
//! the rows are all there under the new name.
//! With the copy strategy (at sizes up to `PHASEGATE_BENCH_VIEW_COPY_MAX`)
//! it times phase 1 (add column, sync trigger, backfill, verify) on an
//! identical table for comparison.

use std::str::FromStr;
use std::time::Instant;

use phasegate::config::Config;
use phasegate::execute::Workspace;
use phasegate::tracker::SystemClock;
use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::{AssertSqlSafe, ConnectOptions, Connection};

type Error = Box<dyn std::error::Error>;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let sizes =
        std::env::var("PHASEGATE_BENCH_VIEW_ROWS").unwrap_or_else(|_| "100000,10000000".into());
    let copy_max: i64 = std::env::var("PHASEGATE_BENCH_VIEW_COPY_MAX")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    for rows in sizes
        .split(',')
        .filter_map(|s| s.trim().parse::<i64>().ok())
    {
        if let Err(e) = one(rows, rows <= copy_max).await {
            println!("postgres {rows} rows: failed or skipped: {e}");
        }
    }
}

async fn one(rows: i64, copy: bool) -> Result<(), Error> {
    let admin = std::env::var("PHASEGATE_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let name = format!("phasegate_bench_view_{}_{rows}", std::process::id());
    let mut conn = PgConnection::connect(&admin).await?;
    sqlx::raw_sql(AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await?;
    let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
    let url = format!("{base}/{name}");
    let result = measure(&url, rows, copy).await;
    let _ = sqlx::raw_sql(AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
    )))
    .execute(&mut conn)
    .await;
    result
}

async fn measure(url: &str, rows: i64, copy: bool) -> Result<(), Error> {
    let mut conn = PgConnectOptions::from_str(url)?.connect().await?;
    let tables: &[&str] = if copy {
        &["users", "copied"]
    } else {
        &["users"]
    };
    let fill = Instant::now();
    for t in tables {
        sqlx::raw_sql(AssertSqlSafe(format!(
            "CREATE TABLE {t} (id bigint PRIMARY KEY, name text, counter int NOT NULL DEFAULT 0);
             INSERT INTO {t} (id, name) SELECT i, CASE WHEN i % 20 = 0 THEN NULL ELSE 'name ' || i END
               FROM generate_series(1, {rows}) AS i;"
        )))
        .execute(&mut conn)
        .await?;
        sqlx::raw_sql(AssertSqlSafe(format!("VACUUM ANALYZE {t}")))
            .execute(&mut conn)
            .await?;
    }
    let fill_secs = fill.elapsed().as_secs_f64();
    let size: i64 = sqlx::query_scalar("SELECT pg_total_relation_size('users')")
        .fetch_one(&mut conn)
        .await?;

    let dir = std::env::temp_dir().join(format!(
        "phasegate-bench-view-{}-{rows}",
        std::process::id()
    ));
    std::fs::create_dir_all(dir.join("plans"))?;
    std::fs::write(
        dir.join("plans/view.yaml"),
        "changes:\n  - rename_column: { table: users, from: name, to: full_name, strategy: view }\n",
    )?;
    std::fs::write(
        dir.join("plans/copy.yaml"),
        "changes:\n  - rename_column: { table: copied, from: name, to: full_name }\n",
    )?;
    // A first plan makes phasegate's log, so the timed applies do not include it.
    std::fs::write(
        dir.join("plans/init.yaml"),
        "changes:\n  - sql: { phases: [ { up: \"SELECT 1\", down: \"SELECT 1\" } ] }\n",
    )?;
    let config_text = format!("environments:\n  - name: bench\n    database_url: {url}\n");
    let config = Config::parse(&config_text, &dir.join("phasegate.yaml"), &dir, &|_| None)?;
    let clock = SystemClock;
    let ws = Workspace::new(&config, &clock, "bench");

    ws.apply("bench", "init", false).await?;
    let swap = timed(&mut conn, ws.apply("bench", "view", false)).await?;
    ws.mark("bench", "view", 2, "v2").await?;
    let contract = timed(&mut conn, ws.apply("bench", "view", false)).await?;
    let (count, named): (i64, i64) = sqlx::query_as("SELECT count(*), count(full_name) FROM users")
        .fetch_one(&mut conn)
        .await?;
    if count != rows || named != rows - rows / 20 {
        return Err(
            format!("after the contract users has {count} rows, {named} with full_name").into(),
        );
    }
    println!(
        "postgres {rows} rows ({:.0} MB, filled in {fill_secs:.1} s), strategy: view:",
        size as f64 / 1e6
    );
    println!(
        "  deploy 1, swap in the view:      {:.1} ms, WAL {} bytes",
        swap.0 * 1e3,
        swap.1
    );
    println!(
        "  deploy 3, contract (swap back):  {:.1} ms, WAL {} bytes",
        contract.0 * 1e3,
        contract.1
    );
    if copy {
        let phase1 = timed(&mut conn, ws.apply("bench", "copy", false)).await?;
        println!(
            "  strategy: copy, phase 1 on an identical table: {:.2} s, WAL {:.0} MB",
            phase1.0,
            phase1.1 as f64 / 1e6
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// Seconds an `apply` took and the WAL (bytes) written meanwhile.
async fn timed<T, E: std::fmt::Display>(
    conn: &mut PgConnection,
    apply: impl std::future::Future<Output = Result<T, E>>,
) -> Result<(f64, i64), Error> {
    let before: String = sqlx::query_scalar("SELECT pg_current_wal_lsn()::text")
        .fetch_one(&mut *conn)
        .await?;
    let start = Instant::now();
    apply.await.map_err(|e| e.to_string())?;
    let secs = start.elapsed().as_secs_f64();
    let wal: i64 = sqlx::query_scalar("SELECT (pg_current_wal_lsn() - $1::pg_lsn)::bigint")
        .bind(before)
        .fetch_one(&mut *conn)
        .await?;
    Ok((secs, wal))
}
