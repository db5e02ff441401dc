//! Backfill throughput and its cost to the application, on local Postgres.
//!
//! Run: `cargo bench --bench backfill_1m` (Postgres from
//! `PHASEGATE_TEST_POSTGRES_URL`, default `postgres://postgres@127.0.0.1:5432/postgres`;
//! `PHASEGATE_BENCH_ROWS` changes the table size, default 1,000,000).
//!
//! It creates a scratch database with two identical tables, `users` and
//! `users_plain`. On `users` it applies phase 1 of `rename_column users.name
//! → full_name` with phasegate (add column, sync trigger, batched backfill,
//! verify) while a client loops single-row updates. The baseline is what a
//! person would run by hand on `users_plain`: `ADD COLUMN` and one `UPDATE`,
//! no trigger, while the same client loops there. For comparison it also
//! times that one `UPDATE` again on `users`, after a VACUUM, with
//! phasegate's sync trigger in place (the trigger's share of the cost).
//! It reports rows/s of each, the ratio of the backfill to the plain
//! baseline (target ≥ 0.8, issue 13), and the client's p50/p99 latency
//! during each (target p99 < 50 ms during the backfill).

use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use phasegate::config::Config;
use phasegate::execute::{Progress, Workspace};
use phasegate::plan::{Step, StepKind};
use phasegate::tracker::SystemClock;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{AssertSqlSafe, Connection, PgConnection};

/// Timestamps of the backfill step: when it started, when the next step did.
#[derive(Default)]
struct Timing {
    backfill: std::sync::Mutex<(Option<Instant>, Option<Instant>)>,
    running: Arc<AtomicBool>,
}

impl Progress for Timing {
    fn step(&self, step: &Step) {
        if let Ok(mut t) = self.backfill.lock() {
            match step.kind {
                StepKind::Backfill => {
                    t.0 = Some(Instant::now());
                    self.running.store(true, Ordering::SeqCst);
                }
                _ if t.0.is_some() && t.1.is_none() => {
                    t.1 = Some(Instant::now());
                    self.running.store(false, Ordering::SeqCst);
                }
                _ => {}
            }
        }
    }
}

/// Loops `UPDATE <table> SET counter = counter + 1 WHERE id = $1` while
/// `on` is set (and until `stop`), returning each update's latency.
async fn client_on(
    opts: PgConnectOptions,
    table: &'static str,
    rows: i64,
    on: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
) -> Vec<Duration> {
    let mut conn = match PgConnection::connect_with(&opts).await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("client cannot connect: {e}");
            return Vec::new();
        }
    };
    let mut latencies = Vec::new();
    let mut id: i64 = 7;
    while !stop.load(Ordering::SeqCst) {
        if !on.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(1)).await;
            continue;
        }
        id = (id * 7919 + 13) % rows + 1;
        let start = Instant::now();
        let sql = format!("UPDATE {table} SET counter = counter + 1 WHERE id = $1");
        let r = sqlx::query(AssertSqlSafe(sql))
            .bind(id)
            .execute(&mut conn)
            .await;
        if r.is_ok() {
            latencies.push(start.elapsed());
        }
    }
    latencies
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1e3
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if let Err(e) = run().await {
        eprintln!("backfill_1m: {e}");
        std::process::exit(1);
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::var("PHASEGATE_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let rows: i64 = std::env::var("PHASEGATE_BENCH_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let admin_opts = PgConnectOptions::from_str(&url)?;
    let mut admin = match PgConnection::connect_with(&admin_opts).await {
        Ok(c) => c,
        Err(e) => {
            println!("backfill_1m: skipped: no Postgres at {url} ({e})");
            return Ok(());
        }
    };
    let db = format!("phasegate_bench_{}", std::process::id());
    sqlx::raw_sql(AssertSqlSafe(format!("CREATE DATABASE {db}")))
        .execute(&mut admin)
        .await?;
    let result = bench(&admin_opts.clone().database(&db), &url, &db, rows).await;
    sqlx::raw_sql(AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {db} WITH (FORCE)"
    )))
    .execute(&mut admin)
    .await?;
    result
}

async fn bench(
    opts: &PgConnectOptions,
    url: &str,
    db: &str,
    rows: i64,
) -> Result<(), Box<dyn std::error::Error>> {
    let pool = PgPoolOptions::new()
        .max_connections(2)
        .connect_with(opts.clone())
        .await?;
    for table in ["users", "users_plain"] {
        sqlx::raw_sql(AssertSqlSafe(format!(
            "CREATE TABLE {table} (id bigserial PRIMARY KEY, name text, counter integer NOT NULL DEFAULT 0);
             INSERT INTO {table} (name) SELECT CASE WHEN i % 20 = 0 THEN NULL ELSE 'user ' || i END FROM generate_series(1, {rows}) AS i;"
        )))
        .execute(&pool)
        .await?;
        // Its own statement: VACUUM cannot run inside the implicit
        // transaction of a multi-statement string.
        sqlx::raw_sql(AssertSqlSafe(format!("VACUUM ANALYZE {table}")))
            .execute(&pool)
            .await?;
    }

    // A project folder with the plan and one environment.
    let dir = std::env::temp_dir().join(format!("phasegate-bench-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("plans"))?;
    std::fs::write(
        dir.join("plans/rename.yaml"),
        "changes:\n  - rename_column: { table: users, from: name, to: full_name }\n",
    )?;
    let base = url.rsplit_once('/').map_or(url, |(b, _)| b);
    let config_text = format!("environments:\n  - name: bench\n    database_url: {base}/{db}\n");
    let config = Config::parse(&config_text, &dir.join("phasegate.yaml"), &dir, &|_| None)?;

    let stop = Arc::new(AtomicBool::new(false));
    let timing = Timing::default();
    let on = timing.running.clone();
    let loop_during_backfill =
        tokio::spawn(client_on(opts.clone(), "users", rows, on, stop.clone()));
    let clock = SystemClock;
    let ws = Workspace::new(&config, &clock, "bench").with_progress(&timing);
    let applied = ws.apply("bench", "rename", false).await?;
    stop.store(true, Ordering::SeqCst);
    let mut during_backfill = loop_during_backfill.await?;
    let (Some(start), Some(end)) = timing
        .backfill
        .lock()
        .map(|t| *t)
        .map_err(|_| "timing lock")?
    else {
        return Err(format!("the backfill step did not run (ran: {:?})", applied.ran).into());
    };
    let backfill_secs = (end - start).as_secs_f64();

    // The baseline: what a person would run by hand, on the identical
    // table that has no trigger.
    let (plain_secs, mut during_update) = one_update(
        &pool,
        opts,
        rows,
        "users_plain",
        "ALTER TABLE users_plain ADD COLUMN full_name text; UPDATE users_plain SET full_name = name",
    )
    .await?;
    // The same UPDATE on `users`, sync trigger in place, after a VACUUM.
    sqlx::raw_sql("VACUUM ANALYZE users").execute(&pool).await?;
    let (trigger_secs, _) = one_update(
        &pool,
        opts,
        rows,
        "users",
        "UPDATE users SET full_name = name",
    )
    .await?;
    let _ = std::fs::remove_dir_all(&dir);
    pool.close().await;

    during_backfill.sort();
    during_update.sort();
    let backfill_rps = rows as f64 / backfill_secs;
    let update_rps = rows as f64 / plain_secs;
    println!(
        "backfill_1m: {rows} rows, batch size {}",
        config.environments[0].backfill_batch_size
    );
    println!("  phasegate backfill:  {backfill_secs:.2} s, {backfill_rps:.0} rows/s");
    println!("  plain ADD COLUMN + UPDATE (no trigger): {plain_secs:.2} s, {update_rps:.0} rows/s");
    println!(
        "  the same UPDATE with the sync trigger:  {trigger_secs:.2} s, {:.0} rows/s",
        rows as f64 / trigger_secs
    );
    println!(
        "  ratio (backfill / plain ADD COLUMN + UPDATE): {:.2} (target >= 0.8)",
        backfill_rps / update_rps
    );
    println!(
        "  concurrent single-row updates during the backfill: {} done, p50 {:.2} ms, p99 {:.2} ms, max {:.1} ms (target p99 < 50 ms)",
        during_backfill.len(),
        percentile(&during_backfill, 0.5),
        percentile(&during_backfill, 0.99),
        during_backfill
            .last()
            .map_or(f64::NAN, |d| d.as_secs_f64() * 1e3)
    );
    println!(
        "  concurrent single-row updates during the plain UPDATE: {} done, p50 {:.2} ms, p99 {:.2} ms, max {:.1} ms",
        during_update.len(),
        percentile(&during_update, 0.5),
        percentile(&during_update, 0.99),
        during_update
            .last()
            .map_or(f64::NAN, |d| d.as_secs_f64() * 1e3)
    );
    Ok(())
}

/// Runs `sql` (one or more statements) on `pool` while [`client`] loops
/// single-row updates on `table`: the seconds it took, and the client's
/// latencies.
async fn one_update(
    pool: &sqlx::PgPool,
    opts: &PgConnectOptions,
    rows: i64,
    table: &'static str,
    sql: &str,
) -> Result<(f64, Vec<Duration>), Box<dyn std::error::Error>> {
    let stop = Arc::new(AtomicBool::new(false));
    let on = Arc::new(AtomicBool::new(true));
    let looping = tokio::spawn(client_on(opts.clone(), table, rows, on, stop.clone()));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let t = Instant::now();
    sqlx::raw_sql(AssertSqlSafe(sql.to_string()))
        .execute(pool)
        .await?;
    let secs = t.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.store(true, Ordering::SeqCst);
    Ok((secs, looping.await?))
}
