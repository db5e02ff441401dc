//! Backfill throughput and its cost to the application, on Postgres,
//! MySQL/MariaDB and SQLite, against what a person would run by hand.
//!
//! Run: `cargo bench --bench backfill`. Sizes per dialect (comma-separated
//! row counts; empty skips the dialect):
//! `PHASEGATE_BENCH_POSTGRES_ROWS` (default `100000,1000000`; the issue-13
//! figures add `10000000`), `PHASEGATE_BENCH_MYSQL_ROWS` and
//! `PHASEGATE_BENCH_SQLITE_ROWS` (default `100000,1000000` each). Servers
//! from `PHASEGATE_TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`) and
//! `PHASEGATE_TEST_MYSQL_URL` (default `mysql://root@127.0.0.1:3306/mysql`);
//! a server that cannot be reached is reported and skipped.
//! `PHASEGATE_BENCH_BATCH` adds one line to the environment, to compare
//! batch settings (`backfill_batch_time: 50ms`, `backfill_batch_size: 5000`).
//!
//! For each size it makes a scratch database with two identical tables,
//! `users` and `users_plain` (`id` primary key, `name` with 5% NULLs, an
//! integer `counter`). On `users` phasegate applies phase 1 of
//! `rename_column users.name → full_name` (add column, sync trigger,
//! batched backfill, verification) with its default batch sizing; on
//! `users_plain` the baseline is `ADD COLUMN` and one `UPDATE` (no
//! trigger, `ALGORITHM=INSTANT` on MySQL). Meanwhile a client loops
//! single-row updates of random rows of the table being changed. It
//! reports the time and rows/s of the backfill step and of the whole
//! phase, their ratio to the baseline (issue 13's target: ≥ 0.8), and the
//! client's p50/p99 with no migration, during the baseline and during the
//! backfill. Then, with phase 1 in place, it times single-row inserts (the
//! old release's: `name` only) and updates of `name` on `users` (sync
//! trigger) and `users_plain` (none): the trigger's write overhead (target
//! ≤ 1.5×).

use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use phasegate::config::Config;
use phasegate::execute::{BackfillProgress, Progress, Workspace};
use phasegate::plan::{Step, StepKind};
use phasegate::tracker::SystemClock;
use sqlx::AnyConnection;
use sqlx::any::AnyConnectOptions;
use sqlx::{AssertSqlSafe, ConnectOptions, Connection};

type Error = Box<dyn std::error::Error>;

#[derive(Clone, Copy, PartialEq)]
enum Db {
    Postgres,
    Mysql,
    Sqlite,
}

impl Db {
    fn name(self) -> &'static str {
        match self {
            Db::Postgres => "postgres",
            Db::Mysql => "mariadb/mysql",
            Db::Sqlite => "sqlite",
        }
    }

    fn sizes_var(self) -> &'static str {
        match self {
            Db::Postgres => "PHASEGATE_BENCH_POSTGRES_ROWS",
            Db::Mysql => "PHASEGATE_BENCH_MYSQL_ROWS",
            Db::Sqlite => "PHASEGATE_BENCH_SQLITE_ROWS",
        }
    }

    fn create_table(self, table: &str, rows: i64) -> String {
        let name = |i: &str| match self {
            Db::Mysql => format!("IF({i} % 20 = 0, NULL, CONCAT('user ', {i}))"),
            _ => format!("CASE WHEN {i} % 20 = 0 THEN NULL ELSE 'user ' || {i} END"),
        };
        match self {
            Db::Postgres => format!(
                "CREATE TABLE {table} (id bigserial PRIMARY KEY, name text, counter integer NOT NULL DEFAULT 0);
                 INSERT INTO {table} (name) SELECT {} FROM generate_series(1, {rows}) AS i;",
                name("i")
            ),
            // Digits cross-joined: no recursion limit to raise.
            Db::Mysql => {
                let digits = "(SELECT 0 AS d UNION ALL SELECT 1 UNION ALL SELECT 2 UNION ALL SELECT 3 UNION ALL SELECT 4 UNION ALL SELECT 5 UNION ALL SELECT 6 UNION ALL SELECT 7 UNION ALL SELECT 8 UNION ALL SELECT 9)";
                let places = (rows.max(1) as f64).log10().ceil().max(1.0) as u32;
                let from: Vec<String> = (0..places).map(|p| format!("{digits} AS d{p}")).collect();
                let number: Vec<String> = (0..places)
                    .map(|p| format!("d{p}.d * {}", 10_i64.pow(p)))
                    .collect();
                format!(
                    "CREATE TABLE {table} (id bigint AUTO_INCREMENT PRIMARY KEY, name varchar(100), counter integer NOT NULL DEFAULT 0) ENGINE=InnoDB;
                     INSERT INTO {table} (name) SELECT {} FROM (SELECT {} + 1 AS i FROM {}) AS n WHERE i <= {rows} ORDER BY i;",
                    name("i"),
                    number.join(" + "),
                    from.join(" CROSS JOIN ")
                )
            }
            Db::Sqlite => format!(
                "CREATE TABLE {table} (id INTEGER PRIMARY KEY, name TEXT, counter INTEGER NOT NULL DEFAULT 0);
                 WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < {rows})
                 INSERT INTO {table} (name) SELECT {} FROM s;",
                name("i")
            ),
        }
    }

    fn analyze(self, table: &str) -> String {
        match self {
            Db::Postgres => format!("VACUUM ANALYZE {table}"),
            Db::Mysql => format!("ANALYZE TABLE {table}"),
            Db::Sqlite => "ANALYZE".into(),
        }
    }

    fn plain(self) -> &'static str {
        match self {
            Db::Postgres | Db::Sqlite => {
                "ALTER TABLE users_plain ADD COLUMN full_name text; UPDATE users_plain SET full_name = name"
            }
            Db::Mysql => {
                "ALTER TABLE users_plain ADD COLUMN full_name varchar(100), ALGORITHM=INSTANT; UPDATE users_plain SET full_name = name"
            }
        }
    }
}

/// Timestamps of the backfill step: when it started, when the next step
/// did; and each progress report's time and rows passed (one per batch).
#[derive(Default)]
struct Timing {
    backfill: Mutex<(Option<Instant>, Option<Instant>)>,
    batches: Mutex<Vec<(Instant, u64)>>,
    running: Arc<AtomicBool>,
}

impl Timing {
    /// The batches: how many, the rows and duration of the largest, and
    /// the step's time before its first batch (its start record, the key,
    /// the table's count) and after its last (its end record).
    fn batches(&self, start: Instant, end: Instant) -> String {
        let Ok(b) = self.batches.lock() else {
            return String::new();
        };
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        let before = b.first().map_or(0.0, |f| ms(f.0 - start));
        let after = b.last().map_or(0.0, |l| ms(end - l.0));
        let sizes: Vec<(u64, f64)> = b
            .windows(2)
            .filter(|w| w[1].1 > w[0].1)
            .map(|w| (w[1].1 - w[0].1, (w[1].0 - w[0].0).as_secs_f64() * 1e3))
            .collect();
        let largest = sizes
            .iter()
            .max_by_key(|s| s.0)
            .copied()
            .unwrap_or_default();
        format!(
            "{} batches, the largest {} rows in {:.0} ms; {before:.0} ms before the first, {after:.0} ms after the last",
            sizes.len(),
            largest.0,
            largest.1
        )
    }
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

    fn backfill_progress(&self, _step: &Step, p: &BackfillProgress) {
        if let Ok(mut b) = self.batches.lock() {
            b.push((Instant::now(), p.done));
        }
    }
}

/// Loops `UPDATE <table> SET counter = counter + 1 WHERE id = <random>`
/// while `on` is set (until `stop`), returning each update's latency.
async fn client(
    opts: AnyConnectOptions,
    table: &'static str,
    rows: i64,
    on: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
) -> Vec<Duration> {
    let mut conn = match opts.connect().await {
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
        let sql = format!("UPDATE {table} SET counter = counter + 1 WHERE id = {id}");
        let start = Instant::now();
        if sqlx::raw_sql(AssertSqlSafe(sql))
            .execute(&mut conn)
            .await
            .is_ok()
        {
            latencies.push(start.elapsed());
        }
        // About 500 writes/s at most: an application's steady writes, not a
        // second bulk load.
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    latencies
}

fn percentiles(mut l: Vec<Duration>) -> String {
    l.sort();
    let at = |p: f64| {
        if l.is_empty() {
            return f64::NAN;
        }
        let i = ((l.len() as f64 - 1.0) * p).round() as usize;
        l[i].as_secs_f64() * 1e3
    };
    format!(
        "{} writes, p50 {:.2} ms, p99 {:.2} ms, max {:.1} ms",
        l.len(),
        at(0.5),
        at(0.99),
        at(1.0)
    )
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    sqlx::any::install_default_drivers();
    for db in [Db::Postgres, Db::Mysql, Db::Sqlite] {
        let sizes = std::env::var(db.sizes_var()).unwrap_or_else(|_| "100000,1000000".into());
        for rows in sizes
            .split(',')
            .filter_map(|s| s.trim().parse::<i64>().ok())
        {
            if let Err(e) = one(db, rows).await {
                println!("{} {rows} rows: failed or skipped: {e}", db.name());
            }
        }
    }
}

/// A scratch database: its URL, and what removes it.
struct Scratch {
    url: String,
    admin: Option<(String, String)>,
    file: Option<std::path::PathBuf>,
}

impl Scratch {
    async fn new(db: Db, tag: &str) -> Result<Scratch, Error> {
        let name = format!("phasegate_bench_{}_{tag}", std::process::id());
        match db {
            Db::Sqlite => {
                let file = std::env::temp_dir().join(format!("{name}.db"));
                let _ = std::fs::remove_file(&file);
                Ok(Scratch {
                    url: format!("sqlite://{}?mode=rwc", file.display()),
                    admin: None,
                    file: Some(file),
                })
            }
            Db::Postgres | Db::Mysql => {
                let (var, default) = if db == Db::Postgres {
                    (
                        "PHASEGATE_TEST_POSTGRES_URL",
                        "postgres://postgres@127.0.0.1:5432/postgres",
                    )
                } else {
                    (
                        "PHASEGATE_TEST_MYSQL_URL",
                        "mysql://root@127.0.0.1:3306/mysql",
                    )
                };
                let admin = std::env::var(var).unwrap_or_else(|_| default.into());
                let mut conn = AnyConnection::connect(&admin).await?;
                sqlx::raw_sql(AssertSqlSafe(format!("CREATE DATABASE {name}")))
                    .execute(&mut conn)
                    .await?;
                let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
                Ok(Scratch {
                    url: format!("{base}/{name}"),
                    admin: Some((admin.clone(), name)),
                    file: None,
                })
            }
        }
    }

    async fn drop(self, db: Db) {
        if let Some((admin, name)) = &self.admin
            && let Ok(mut conn) = AnyConnection::connect(admin).await
        {
            let force = if db == Db::Postgres {
                " WITH (FORCE)"
            } else {
                ""
            };
            let _ = sqlx::raw_sql(AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {name}{force}"
            )))
            .execute(&mut conn)
            .await;
        }
        if let Some(file) = &self.file {
            for suffix in ["", "-wal", "-shm", "-journal"] {
                let _ = std::fs::remove_file(format!("{}{suffix}", file.display()));
            }
        }
    }
}

async fn one(db: Db, rows: i64) -> Result<(), Error> {
    let scratch = Scratch::new(db, &rows.to_string()).await?;
    let result = measure(db, &scratch.url, rows).await;
    scratch.drop(db).await;
    result
}

async fn measure(db: Db, url: &str, rows: i64) -> Result<(), Error> {
    let opts = AnyConnectOptions::from_str(url)?;
    let mut conn = opts.connect().await?;
    for table in ["users", "users_plain"] {
        sqlx::raw_sql(AssertSqlSafe(db.create_table(table, rows)))
            .execute(&mut conn)
            .await?;
        sqlx::raw_sql(AssertSqlSafe(db.analyze(table)))
            .execute(&mut conn)
            .await?;
    }
    if db == Db::Sqlite {
        // As an application would run it: readers beside one writer.
        sqlx::raw_sql("PRAGMA journal_mode = WAL")
            .execute(&mut conn)
            .await?;
    }

    // The client alone, no migration.
    let idle = during(&opts, rows, "users", async { Ok(()) }).await?.1;

    let dir = std::env::temp_dir().join(format!(
        "phasegate-bench-{}-{}-{rows}",
        std::process::id(),
        db.name().replace('/', "-")
    ));
    std::fs::create_dir_all(dir.join("plans"))?;
    std::fs::write(
        dir.join("plans/rename.yaml"),
        "changes:\n  - rename_column: { table: users, from: name, to: full_name }\n",
    )?;
    // `PHASEGATE_BENCH_BATCH`: another batch setting, e.g. `backfill_batch_time: 50ms`.
    let batch = std::env::var("PHASEGATE_BENCH_BATCH").unwrap_or_default();
    let config_text =
        format!("environments:\n  - name: bench\n    database_url: {url}\n    {batch}\n");
    let config = Config::parse(&config_text, &dir.join("phasegate.yaml"), &dir, &|_| None)?;

    let stop = Arc::new(AtomicBool::new(false));
    let timing = Timing::default();
    let writer = tokio::spawn(client(
        opts.clone(),
        "users",
        rows,
        timing.running.clone(),
        stop.clone(),
    ));
    let clock = SystemClock;
    let ws = Workspace::new(&config, &clock, "bench").with_progress(&timing);
    let phase_start = Instant::now();
    let applied = ws.apply("bench", "rename", false).await;
    let phase_secs = phase_start.elapsed().as_secs_f64();
    stop.store(true, Ordering::SeqCst);
    let during_backfill = writer.await?;
    let applied = applied?;
    let (Some(start), Some(end)) = timing.backfill.lock().map(|t| *t).map_err(|_| "lock")? else {
        return Err(format!("the backfill step did not run (ran: {:?})", applied.ran).into());
    };
    let backfill_secs = (end - start).as_secs_f64();

    let (plain_secs, during_plain) = during(&opts, rows, "users_plain", async {
        let mut c = opts.connect().await?;
        sqlx::raw_sql(AssertSqlSafe(db.plain()))
            .execute(&mut c)
            .await?;
        Ok(())
    })
    .await?;
    let _ = std::fs::remove_dir_all(&dir);

    let r = rows as f64;
    println!("{} {rows} rows:", db.name());
    println!(
        "  plain ADD COLUMN + UPDATE (no trigger):  {plain_secs:.2} s, {:.0} rows/s",
        r / plain_secs
    );
    println!(
        "  phasegate backfill step:                 {backfill_secs:.2} s, {:.0} rows/s, ratio {:.2} (target >= 0.8)",
        r / backfill_secs,
        plain_secs / backfill_secs
    );
    println!("    {}", timing.batches(start, end));
    println!(
        "  phasegate phase 1 (add, trigger, backfill, verify): {phase_secs:.2} s, ratio {:.2}",
        plain_secs / phase_secs
    );
    println!("  client, no migration:      {}", percentiles(idle));
    println!("  client, plain UPDATE:      {}", percentiles(during_plain));
    println!(
        "  client, phasegate backfill: {}",
        percentiles(during_backfill)
    );

    // The sync trigger's cost to the application's writes.
    let per_op = |secs: f64, n: i64| secs / n as f64 * 1e6;
    let n = 2000;
    let mut c = opts.connect().await?;
    let mut line = String::new();
    for (what, sql) in [
        ("insert", "INSERT INTO {t} (name) VALUES ('someone {i}')"),
        (
            "update",
            "UPDATE {t} SET name = 'renamed {i}' WHERE id = {i}",
        ),
    ] {
        let mut secs = [0.0; 2];
        for (k, t) in ["users", "users_plain"].into_iter().enumerate() {
            let started = Instant::now();
            for i in 1..=n {
                let one = sql
                    .replace("{t}", t)
                    .replace("{i}", &(i * 37 % rows + 1).to_string());
                sqlx::raw_sql(AssertSqlSafe(one)).execute(&mut c).await?;
            }
            secs[k] = started.elapsed().as_secs_f64();
        }
        line.push_str(&format!(
            "  single-row {what}s: {:.0} µs with the sync trigger, {:.0} µs without ({:.2}x; target <= 1.5x)\n",
            per_op(secs[0], n),
            per_op(secs[1], n),
            secs[0] / secs[1]
        ));
    }
    print!("{line}");
    Ok(())
}

/// Runs `work` while [`client`] loops on `table`: the seconds it took, and
/// the client's latencies (one second of them when `work` is instant).
async fn during(
    opts: &AnyConnectOptions,
    rows: i64,
    table: &'static str,
    work: impl Future<Output = Result<(), Error>>,
) -> Result<(f64, Vec<Duration>), Error> {
    let stop = Arc::new(AtomicBool::new(false));
    let on = Arc::new(AtomicBool::new(true));
    let looping = tokio::spawn(client(opts.clone(), table, rows, on, stop.clone()));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let t = Instant::now();
    work.await?;
    let secs = t.elapsed().as_secs_f64();
    if secs < 1.0 {
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    stop.store(true, Ordering::SeqCst);
    Ok((secs, looping.await?))
}
