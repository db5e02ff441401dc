//! A fleet through a phase: many Postgres databases and many SQLite files,
//! each with a small table, rolled through the phase of an `add_column`
//! plan by `apply` in waves (canary 1, doubling), as `phasegate apply
//! --env <fleet>` does.
//!
//! Run: `cargo bench --bench fleet`. Sizes:
//! `PHASEGATE_BENCH_FLEET_POSTGRES` (databases, default `100`; `0` skips),
//! `PHASEGATE_BENCH_FLEET_SQLITE` (files, default `1000`; `0` skips),
//! `PHASEGATE_BENCH_FLEET_PARALLELISM` (comma-separated, default `1,4`:
//! one run per value, each on fresh databases),
//! `PHASEGATE_BENCH_FLEET_ROWS` (rows per table, default `100`). Figures:
//! docs/workflow.md, "Fleets". The
//! Postgres server is `PHASEGATE_TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`); one that cannot be
//! reached is reported and skipped. Scratch databases and files are
//! removed afterwards.
//!
//! For each run it reports the wall time of the whole `apply` (planning
//! against the canary, reading every database's log, the waves), the
//! databases per second, and each database's own `apply` time (its lock,
//! log, live schema, plan, the `ALTER TABLE` and its records): mean, p50,
//! p99 and max.

use std::str::FromStr;
use std::time::{Duration, Instant};

use phasegate::config::Config;
use phasegate::execute::{TargetOutcome, Workspace};
use phasegate::tracker::SystemClock;
use sqlx::postgres::PgConnectOptions;
use sqlx::{AssertSqlSafe, ConnectOptions, Connection};

type Error = Box<dyn std::error::Error>;

const PLAN: &str =
    "name: add-note\nchanges:\n  - add_column: { table: accounts, column: note, type: text }\n";

fn var(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_string())
}

#[tokio::main]
async fn main() {
    let rows: u32 = var("PHASEGATE_BENCH_FLEET_ROWS", "100")
        .parse()
        .unwrap_or(100);
    let parallelism: Vec<usize> = var("PHASEGATE_BENCH_FLEET_PARALLELISM", "1,4")
        .split(',')
        .filter_map(|p| p.trim().parse().ok())
        .filter(|p| *p > 0)
        .collect();
    let pg: usize = var("PHASEGATE_BENCH_FLEET_POSTGRES", "100")
        .parse()
        .unwrap_or(100);
    let sqlite: usize = var("PHASEGATE_BENCH_FLEET_SQLITE", "1000")
        .parse()
        .unwrap_or(1000);
    for &p in &parallelism {
        if pg > 0
            && let Err(e) = postgres(pg, rows, p).await
        {
            println!("postgres fleet of {pg}, parallelism {p}: failed or skipped: {e}");
        }
        if sqlite > 0
            && let Err(e) = sqlite_fleet(sqlite, rows, p).await
        {
            println!("sqlite fleet of {sqlite}, parallelism {p}: failed or skipped: {e}");
        }
    }
}

/// A scratch project folder with the plan, removed when dropped.
struct Project(std::path::PathBuf);

impl Project {
    fn new(tag: &str) -> Result<Project, Error> {
        let dir = std::env::temp_dir().join(format!(
            "phasegate-bench-fleet-{tag}-{}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("plans"))?;
        std::fs::create_dir_all(dir.join("tenants"))?;
        std::fs::write(dir.join("plans/add-note.yaml"), PLAN)?;
        Ok(Project(dir))
    }
}

impl Drop for Project {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs `apply` across the fleet of `config` and prints the figures.
async fn run(label: &str, project: &Project, config: &str) -> Result<(), Error> {
    let path = project.0.join("phasegate.yaml");
    std::fs::write(&path, config)?;
    let config = Config::load(Some(&path), &project.0)?;
    let clock = SystemClock;
    let ws = Workspace::new(&config, &clock, "bench");
    let started = Instant::now();
    let report = ws.apply_fleet("fleet", "add-note", false).await?;
    let wall = started.elapsed();
    if let Some(stop) = &report.stopped {
        return Err(format!("the rollout stopped: {stop:?}").into());
    }
    let applied = report
        .results
        .iter()
        .filter(|t| t.outcome == TargetOutcome::Applied)
        .count();
    let mut each: Vec<f64> = report.results.iter().filter_map(|t| t.seconds).collect();
    each.sort_by(f64::total_cmp);
    let at = |q: f64| {
        each.get(((each.len() as f64 - 1.0) * q).round() as usize)
            .copied()
            .unwrap_or_default()
            * 1000.0
    };
    let mean = each.iter().sum::<f64>() / each.len().max(1) as f64 * 1000.0;
    println!(
        "{label}: {applied} of {} databases through phase 1 in {} waves: wall {:.2}s ({:.1} databases/s); each database's apply: mean {mean:.1} ms, p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        report.targets,
        report.waves,
        wall.as_secs_f64(),
        applied as f64 / wall.as_secs_f64(),
        at(0.5),
        at(0.99),
        at(1.0),
    );
    Ok(())
}

async fn sqlite_fleet(n: usize, rows: u32, parallelism: usize) -> Result<(), Error> {
    let project = Project::new(&format!("sqlite-{parallelism}"))?;
    let setup = Instant::now();
    for i in 0..n {
        let path = project.0.join("tenants").join(format!("t{i:05}.db"));
        let mut c =
            sqlx::SqliteConnection::connect(&format!("sqlite://{}?mode=rwc", path.display()))
                .await?;
        sqlx::raw_sql(AssertSqlSafe(format!(
            "CREATE TABLE accounts (id INTEGER PRIMARY KEY, name TEXT);
             WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < {rows})
             INSERT INTO accounts (name) SELECT 'n' || i FROM s;"
        )))
        .execute(&mut c)
        .await?;
        c.close().await?;
    }
    println!(
        "sqlite: {n} files of {rows} rows made in {:.1}s",
        setup.elapsed().as_secs_f64()
    );
    let config = format!(
        "environments:\n  - name: fleet\n    database_urls_from: {{ glob: \"tenants/*.db\" }}\n    waves: {{ canary: 1, growth: 2, parallelism: {parallelism} }}\n"
    );
    run(
        &format!("sqlite fleet of {n}, parallelism {parallelism}"),
        &project,
        &config,
    )
    .await
}

async fn postgres(n: usize, rows: u32, parallelism: usize) -> Result<(), Error> {
    let url = var(
        "PHASEGATE_TEST_POSTGRES_URL",
        "postgres://postgres@127.0.0.1:5432/postgres",
    );
    let opts = PgConnectOptions::from_str(&url)?;
    let mut admin = tokio::time::timeout(Duration::from_secs(5), opts.connect())
        .await
        .map_err(|_| "no answer within 5s")??;
    let project = Project::new(&format!("pg-{parallelism}"))?;
    let names: Vec<String> = (0..n)
        .map(|i| {
            format!(
                "phasegate_bench_fleet_{}_{parallelism}_{i}",
                std::process::id()
            )
        })
        .collect();
    let setup = Instant::now();
    let made = async {
        let mut urls = Vec::new();
        for name in &names {
            sqlx::raw_sql(AssertSqlSafe(format!("CREATE DATABASE {name}")))
                .execute(&mut admin)
                .await?;
            let mut c = opts.clone().database(name).connect().await?;
            sqlx::raw_sql(AssertSqlSafe(format!(
                "CREATE TABLE accounts (id bigint PRIMARY KEY, name text);
                 INSERT INTO accounts SELECT g, 'n' || g FROM generate_series(1, {rows}) g;"
            )))
            .execute(&mut c)
            .await?;
            c.close().await?;
            urls.push(with_database(&url, name));
        }
        Ok::<_, Error>(urls)
    }
    .await;
    let result = match made {
        Ok(urls) => {
            println!(
                "postgres: {n} databases of {rows} rows made in {:.1}s",
                setup.elapsed().as_secs_f64()
            );
            let list = urls
                .iter()
                .map(|u| format!("\"{u}\""))
                .collect::<Vec<_>>()
                .join(", ");
            let config = format!(
                "environments:\n  - name: fleet\n    database_urls: [ {list} ]\n    waves: {{ canary: 1, growth: 2, parallelism: {parallelism} }}\n"
            );
            run(
                &format!("postgres fleet of {n}, parallelism {parallelism}"),
                &project,
                &config,
            )
            .await
        }
        Err(e) => Err(e),
    };
    for name in &names {
        let _ = sqlx::raw_sql(AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
        )))
        .execute(&mut admin)
        .await;
    }
    result
}

/// `url` with its database replaced by `name` (its query kept).
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = url.split_once('?').map_or((url, ""), |(b, q)| (b, q));
    let after = base.find("://").map_or(0, |i| i + 3);
    let base = match base[after..].find('/') {
        Some(slash) => &base[..after + slash],
        None => base,
    };
    if query.is_empty() {
        format!("{base}/{name}")
    } else {
        format!("{base}/{name}?{query}")
    }
}
