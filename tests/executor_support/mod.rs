//! What the executor tests (`zero_downtime.rs`, `backfill_resume.rs`) share:
//! a scratch project (phasegate.yaml + plans/) pointing at a test database,
//! the application's client connections, and a small deterministic RNG.
//!
//! The databases themselves come from the common harness (`with_postgres`,
//! `with_sqlite`, `with_mysql`); this module only adds what the executor
//! needs around them.

#![allow(dead_code)]

pub mod proxy;

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use phasegate::config::Config;
use phasegate::dialect::Dialect;
use sqlx::mysql::MySqlConnection;
use sqlx::postgres::PgConnection;
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use sqlx::{AssertSqlSafe, Connection, Row};

use crate::common::{self, TestDb, TestResult, fail};

/// The one environment every executor test configures.
pub const ENV: &str = "test";

/// A scratch project folder (`phasegate.yaml`, `plans/`) for one test
/// database, removed when dropped, with the side-car lock file phasegate
/// keeps beside a SQLite database.
pub struct Project {
    pub dir: PathBuf,
    pub config: Config,
    /// The SQLite database whose `.phasegate-lock` file is removed on drop.
    sqlite: Option<String>,
}

impl Project {
    /// A project whose single environment [`ENV`] points at `db`, with
    /// `settings` (YAML lines such as `backfill_batch_size: 500`), and the
    /// plan `name` whose file holds `plan`.
    pub fn new(db: &TestDb, settings: &[&str], name: &str, plan: &str) -> TestResult<Project> {
        static N: AtomicUsize = AtomicUsize::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let dir = std::env::temp_dir().join(format!(
            "phasegate-exec-{}-{}-{nanos}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::create_dir_all(dir.join("plans"))?;
        let mut text = format!(
            "environments:\n  - name: {ENV}\n    database_url: '{}'\n",
            db.url.clone().replace('\'', "''")
        );
        for s in settings {
            text.push_str(&format!("    {s}\n"));
        }
        let path = dir.join("phasegate.yaml");
        std::fs::write(&path, &text)?;
        std::fs::write(dir.join("plans").join(format!("{name}.yaml")), plan)?;
        let config = Config::parse(&text, &path, &dir, &|_| None)
            .map_err(|e| fail(format!("the test's config does not parse: {e}\n{text}")))?;
        Ok(Project {
            dir,
            config,
            sqlite: (db.dialect == Dialect::Sqlite).then(|| db.name.clone()),
        })
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.join("phasegate.yaml")
    }

    /// Runs `phasegate ARGS` in the project's folder with its config, no stdin.
    pub fn run(&self, args: &[&str]) -> TestResult<std::process::Output> {
        Ok(std::process::Command::new(env!("CARGO_BIN_EXE_phasegate"))
            .arg("--config")
            .arg(self.config_path())
            .args(args)
            .current_dir(&self.dir)
            .stdin(std::process::Stdio::null())
            .output()?)
    }
}

impl Drop for Project {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
        if let Some(db) = &self.sqlite {
            for suffix in ["", "-journal", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{db}.phasegate-lock{suffix}"));
            }
        }
    }
}

/// A `FROM` item of `n` rows with one integer column `i` = 1..=n:
/// [`TestDb::series`] on Postgres and SQLite; on MySQL the digits of
/// `i - 1` cross-joined, because a recursive CTE stops at 1,000 iterations
/// on MySQL 8 (`cte_max_recursion_depth`) and on servers configured alike
/// (MariaDB's `max_recursive_iterations`, 1000 on the test server), and the
/// executor tests fill 10,000 and 100,000 rows.
pub fn series(db: &TestDb, n: u32) -> String {
    if db.dialect != Dialect::Mysql {
        return db.series(n);
    }
    let digit = "(SELECT 0 AS d UNION ALL SELECT 1 UNION ALL SELECT 2 UNION ALL SELECT 3 UNION ALL SELECT 4 \
                 UNION ALL SELECT 5 UNION ALL SELECT 6 UNION ALL SELECT 7 UNION ALL SELECT 8 UNION ALL SELECT 9)";
    // As many digits as n - 1 has.
    let width = (n.max(1) - 1).to_string().len() as u32;
    let places: Vec<String> = (0..width).map(|p| format!("{digit} AS d{p}")).collect();
    let sum: Vec<String> = (0..width)
        .map(|p| format!("{} * d{p}.d", 10u32.pow(p)))
        .collect();
    format!(
        "(SELECT i FROM (SELECT {} + 1 AS i FROM {}) AS digits WHERE i <= {n}) AS s",
        sum.join(" + "),
        places.join(" CROSS JOIN ")
    )
}

// ---------------------------------------------------------------------------
// The application's connections
// ---------------------------------------------------------------------------

/// One connection of the application, of any dialect.
pub enum Conn {
    Pg(PgConnection),
    Sqlite(SqliteConnection),
    My(MySqlConnection),
}

/// A parameter of an application query.
#[derive(Debug, Clone)]
pub enum Val {
    Int(i64),
    Text(Option<String>),
}

/// An application query: SQL with `$1`, `$2`… placeholders (rewritten to
/// `?1`, `?2`… on SQLite, and to positional `?` on MySQL, the parameters
/// bound in the order their placeholders appear) and its parameters, sent
/// as a prepared statement as an application would.
#[derive(Debug, Clone)]
pub struct Query {
    pub sql: String,
    pub args: Vec<Val>,
}

impl Query {
    pub fn new(sql: &str, args: Vec<Val>) -> Query {
        Query {
            sql: sql.to_string(),
            args,
        }
    }
}

pub fn int(v: i64) -> Val {
    Val::Int(v)
}

pub fn text(v: impl Into<String>) -> Val {
    Val::Text(Some(v.into()))
}

pub fn null() -> Val {
    Val::Text(None)
}

/// `$1` → `?1`: SQLite's numbered parameters.
fn sqlite_placeholders(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '$' && chars.peek().is_some_and(char::is_ascii_digit) {
            out.push('?');
        } else {
            out.push(c);
        }
    }
    out
}

/// `$2 … $1` → `? … ?`: MySQL's placeholders are positional, so the SQL
/// comes back with the (1-based) parameter numbers in the order they
/// appear, to bind in that order.
fn mysql_placeholders(sql: &str) -> (String, Vec<usize>) {
    let mut out = String::with_capacity(sql.len());
    let mut order = Vec::new();
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '$' && chars.peek().is_some_and(char::is_ascii_digit) {
            let mut n = 0usize;
            while let Some(d) = chars.peek().and_then(|c| c.to_digit(10)) {
                n = n * 10 + d as usize;
                chars.next();
            }
            order.push(n);
            out.push('?');
        } else {
            out.push(c);
        }
    }
    (out, order)
}

impl Conn {
    /// A new connection to `db`; on SQLite with a busy timeout of 5s, as an
    /// application sharing the file with a writer would set. On MySQL with
    /// the server's defaults (`lock_wait_timeout`, `innodb_lock_wait_timeout`),
    /// as an application would connect.
    pub async fn open(db: &TestDb) -> TestResult<Conn> {
        Ok(match db.dialect {
            Dialect::Mysql => Conn::My(MySqlConnection::connect(&db.url.clone()).await?),
            Dialect::Postgres => Conn::Pg(PgConnection::connect(&db.url.clone()).await?),
            Dialect::Sqlite => {
                let opts = SqliteConnectOptions::new()
                    .filename(&db.name)
                    .busy_timeout(Duration::from_secs(5));
                Conn::Sqlite(SqliteConnection::connect_with(&opts).await?)
            }
        })
    }

    /// Runs `q`; for a query that returns rows, the first column of the
    /// first row as text (`Some(None)` for NULL), `None` when no row came back.
    pub async fn run(&mut self, q: &Query) -> Result<Option<Option<String>>, sqlx::Error> {
        macro_rules! go {
            ($c:expr, $sql:expr) => {
                go!($c, $sql, q.args.iter())
            };
            ($c:expr, $sql:expr, $args:expr) => {{
                let mut query = sqlx::query(AssertSqlSafe($sql));
                for a in $args {
                    query = match a {
                        Val::Int(i) => query.bind(*i),
                        Val::Text(t) => query.bind(t.clone()),
                    };
                }
                match query.fetch_optional(&mut *$c).await? {
                    Some(row) => Ok(Some(row.try_get::<Option<String>, _>(0)?)),
                    None => Ok(None),
                }
            }};
        }
        match self {
            Conn::Pg(c) => go!(c, q.sql.clone()),
            Conn::Sqlite(c) => go!(c, sqlite_placeholders(&q.sql)),
            Conn::My(c) => {
                let (sql, order) = mysql_placeholders(&q.sql);
                let args: Vec<&Val> = order
                    .iter()
                    .map(|n| {
                        q.args.get(n.wrapping_sub(1)).ok_or_else(|| {
                            sqlx::Error::Protocol(format!("${n} has no parameter in {}", q.sql))
                        })
                    })
                    .collect::<Result<_, _>>()?;
                go!(c, sql, args)
            }
        }
    }

    /// Runs SQL without parameters (several statements allowed).
    pub async fn exec(&mut self, sql: &str) -> Result<(), sqlx::Error> {
        match self {
            Conn::Pg(c) => sqlx::raw_sql(AssertSqlSafe(sql.to_string()))
                .execute(&mut *c)
                .await
                .map(|_| ()),
            Conn::Sqlite(c) => sqlx::raw_sql(AssertSqlSafe(sql.to_string()))
                .execute(&mut *c)
                .await
                .map(|_| ()),
            Conn::My(c) => sqlx::raw_sql(AssertSqlSafe(sql.to_string()))
                .execute(&mut *c)
                .await
                .map(|_| ()),
        }
    }

    pub async fn close(self) {
        let _ = match self {
            Conn::Pg(c) => c.close().await,
            Conn::Sqlite(c) => c.close().await,
            Conn::My(c) => c.close().await,
        };
    }
}

// ---------------------------------------------------------------------------
// Determinism
// ---------------------------------------------------------------------------

/// xorshift64*: the same seed gives the same workload on every run.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    /// A number in `lo..=hi`.
    pub fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + self.below((hi - lo + 1) as u64) as i64
    }

    /// True with probability `percent`%.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

// ---------------------------------------------------------------------------
// The event log, read directly
// ---------------------------------------------------------------------------

/// `(id, kind, step, detail)` of every event in the log, in order (empty
/// when the log does not exist yet).
pub async fn events(db: &TestDb) -> Vec<(i64, String, Option<String>, String)> {
    let sql = "SELECT id, kind, step, detail FROM phasegate_events ORDER BY id";
    macro_rules! read {
        ($p:expr) => {
            sqlx::query(sql).fetch_all($p).await.map(|rows| {
                rows.iter()
                    .filter_map(|r| {
                        Some((
                            r.try_get(0).ok()?,
                            r.try_get(1).ok()?,
                            r.try_get(2).ok()?,
                            r.try_get(3).ok()?,
                        ))
                    })
                    .collect()
            })
        };
    }
    let rows = match &db.pool {
        common::Pool::Postgres(p) => read!(p),
        common::Pool::Sqlite(p) => read!(p),
        common::Pool::Mysql(p) => read!(p),
    };
    rows.unwrap_or_default()
}
