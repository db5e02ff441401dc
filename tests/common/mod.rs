//! Test harness: throwaway databases, a minimal plan executor, and a driver
//! that rolls a plan out phase by phase while the application's old and new
//! releases keep running queries against it.
//!
//! - [`with_postgres`] / [`with_sqlite`] give a test its own empty database
//!   and remove it afterwards, whether the test passes, fails or panics. When
//!   no Postgres answers, the Postgres test prints one `skipped:` line (to
//!   the raw stderr, so `cargo test` shows it) and passes, unless
//!   `PHASEGATE_REQUIRE_DATABASES=1`.
//! - [`TestDb`] runs SQL on either dialect and reads the schema back
//!   ([`TestDb::schema`] is a snapshot used to prove rollbacks).
//! - [`apply_phase`] / [`rollback_phase`] are the executor: migration steps in
//!   a transaction when `transactional`, backfills, verify steps checked
//!   against `expect`, app steps skipped.
//! - [`roll_out`] drives a whole plan through a [`Scenario`]: for each phase,
//!   one-off jobs, apply (proving up/down/up for reversible phases), then the
//!   queries of the release before and of the release the phase ships.

#![allow(dead_code)]

pub mod outcomes;

use std::any::Any;
use std::collections::BTreeMap;
use std::error::Error;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::path::PathBuf;
use std::pin::Pin;
use std::str::FromStr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use phasegate::catalog::Catalog;
use phasegate::dialect::Dialect;
use phasegate::dialect::templates::Templates;
use phasegate::intent::parse_plan;
use phasegate::name::TableName;
use phasegate::plan::{Phase, Plan, Planner, PlanningError, Step, StepKind};
use sqlx::mysql::{MySqlConnectOptions, MySqlConnection, MySqlPoolOptions};
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
use sqlx::{AssertSqlSafe, Connection, MySqlPool, PgPool, SqlitePool};

/// The Postgres server tests create their databases on.
pub const POSTGRES_URL_ENV: &str = "PHASEGATE_TEST_POSTGRES_URL";
pub const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";
/// The MySQL/MariaDB server tests create their databases on.
pub const MYSQL_URL_ENV: &str = "PHASEGATE_TEST_MYSQL_URL";
pub const DEFAULT_MYSQL_URL: &str = "mysql://root@127.0.0.1:3306/test";
/// Set to `1` to make a missing database a failure instead of a skip.
pub const REQUIRE_ENV: &str = "PHASEGATE_REQUIRE_DATABASES";

/// What a test body returns; any error fails the test with its message.
pub type TestResult<T = ()> = Result<T, Box<dyn Error>>;

/// An error with a message, for `return Err(fail(...))`.
pub fn fail(message: impl Into<String>) -> Box<dyn Error> {
    message.into().into()
}

// ---------------------------------------------------------------------------
// Throwaway databases
// ---------------------------------------------------------------------------

/// A connection pool to a test's own database.
#[derive(Clone, Debug)]
pub enum Pool {
    Postgres(PgPool),
    Sqlite(SqlitePool),
    Mysql(MySqlPool),
}

/// A test's own database, of either dialect.
#[derive(Clone, Debug)]
pub struct TestDb {
    pub dialect: Dialect,
    pub pool: Pool,
    /// The database name (Postgres) or file path (SQLite), for messages.
    pub name: String,
    /// A URL that connects to this database (as an environment's `database_url` would).
    pub url: String,
}

/// Runs `$body` with `$p` bound to the pool, whichever dialect it is: the
/// sqlx calls are generic over the database, so one body serves both.
macro_rules! on_pool {
    ($db:expr, $p:ident => $body:expr) => {
        match &$db.pool {
            Pool::Postgres($p) => $body,
            Pool::Sqlite($p) => $body,
            Pool::Mysql($p) => $body,
        }
    };
}

/// A unique database name: `phasegate_test_<pid>_<counter>_<nanos>`.
fn unique_name() -> String {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!(
        "phasegate_test_{}_{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed),
        nanos
    )
}

/// The running test's name (libtest names each test's thread after it).
fn test_name() -> String {
    std::thread::current()
        .name()
        .unwrap_or("<unnamed test>")
        .to_string()
}

/// The URL without its password, for messages.
fn redact(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_string();
    };
    let rest = &url[scheme_end + 3..];
    let Some(at) = rest.find('@') else {
        return url.to_string();
    };
    match rest[..at].find(':') {
        Some(colon) => format!(
            "{}{}:***{}",
            &url[..scheme_end + 3],
            &rest[..colon],
            &rest[at..]
        ),
        None => url.to_string(),
    }
}

fn databases_required() -> bool {
    std::env::var(REQUIRE_ENV).is_ok_and(|v| v == "1")
}

/// Whether a connection error means "nothing answered" (skip) rather than
/// "a server answered and refused" (fail).
fn is_unreachable(e: &sqlx::Error) -> bool {
    matches!(
        e,
        sqlx::Error::Io(_) | sqlx::Error::Tls(_) | sqlx::Error::PoolTimedOut
    )
}

/// A future that turns a panic while polling into an `Err`, so the harness
/// can clean up before re-raising it.
struct CatchUnwind<F>(Pin<Box<F>>);

impl<F: Future> Future for CatchUnwind<F> {
    type Output = Result<F::Output, Box<dyn Any + Send>>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let inner = self.0.as_mut();
        match catch_unwind(AssertUnwindSafe(move || inner.poll(cx))) {
            Ok(Poll::Ready(v)) => Poll::Ready(Ok(v)),
            Ok(Poll::Pending) => Poll::Pending,
            Err(panic) => Poll::Ready(Err(panic)),
        }
    }
}

/// Runs a test body, cleans up, then reports: an `Err` becomes a panic with
/// its message, a panic is re-raised as it was.
async fn run_and_clean<Fut, C>(what: &str, body: Fut, cleanup: C)
where
    Fut: Future<Output = TestResult>,
    C: Future<Output = Result<(), String>>,
{
    let outcome = CatchUnwind(Box::pin(body)).await;
    if let Err(e) = cleanup.await {
        // Reported, but never allowed to hide the test's own result.
        loud(format_args!("warning: could not remove {what}: {e}"));
    }
    match outcome {
        Ok(Ok(())) => {}
        Ok(Err(e)) => panic!("{e}"),
        Err(panic) => resume_unwind(panic),
    }
}

/// The admin connection to a test server, or `None` after printing why the
/// test is skipped: no server answered (a failure instead with
/// `PHASEGATE_REQUIRE_DATABASES=1`). A server that answers and refuses is a
/// failure either way.
async fn connect_admin<C>(
    server: &str,
    shown: &str,
    connect: impl Future<Output = Result<C, sqlx::Error>>,
) -> Option<C> {
    let why = match tokio::time::timeout(Duration::from_secs(5), connect).await {
        Ok(Ok(conn)) => return Some(conn),
        Ok(Err(e)) if !is_unreachable(&e) => {
            panic!("{server} at {shown} answered but refused the connection: {e}")
        }
        Ok(Err(e)) => e.to_string(),
        Err(_) => "connection timed out".to_string(),
    };
    if databases_required() {
        panic!("no {server} at {shown} ({why}) and {REQUIRE_ENV}=1");
    }
    loud(format_args!(
        "skipped: {}: no {server} at {shown} ({why}; {REQUIRE_ENV}=1 makes this a failure)",
        test_name()
    ));
    None
}

/// Writes one line to the raw stderr handle. libtest captures `print!` and
/// `eprint!` (and shows them only for failing tests), not writes to
/// `std::io::stderr()` itself, so a skip shows under plain `cargo test`
/// (tests/loud_skip.rs checks it).
pub fn loud(line: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}

/// Gives `body` a fresh Postgres database on the server at
/// `PHASEGATE_TEST_POSTGRES_URL` (default [`DEFAULT_POSTGRES_URL`]) and drops
/// it afterwards (`WITH (FORCE)`), even when the body fails or panics.
///
/// When no Postgres answers, prints one `skipped:` line and returns, unless
/// `PHASEGATE_REQUIRE_DATABASES=1`, which makes that a failure.
pub async fn with_postgres<F, Fut>(body: F)
where
    F: FnOnce(TestDb) -> Fut,
    Fut: Future<Output = TestResult>,
{
    let url = std::env::var(POSTGRES_URL_ENV).unwrap_or_else(|_| DEFAULT_POSTGRES_URL.into());
    let shown = redact(&url);
    let admin_opts = PgConnectOptions::from_str(&url)
        .unwrap_or_else(|e| panic!("{POSTGRES_URL_ENV}={shown} is not a Postgres URL: {e}"));
    let Some(mut admin) =
        connect_admin("Postgres", &shown, PgConnection::connect_with(&admin_opts)).await
    else {
        return;
    };
    let name = unique_name();
    let quoted = Dialect::Postgres.quote_ident(&name);
    sqlx::raw_sql(AssertSqlSafe(format!("CREATE DATABASE {quoted}")))
        .execute(&mut admin)
        .await
        .unwrap_or_else(|e| panic!("creating database {name} on {shown}: {e}"));

    let pool = PgPoolOptions::new()
        .max_connections(4)
        .acquire_timeout(Duration::from_secs(30))
        .connect_with(admin_opts.clone().database(&name))
        .await;
    let pool = match pool {
        Ok(pool) => pool,
        Err(e) => {
            let _ = drop_postgres(&mut admin, &quoted).await;
            panic!("connecting to test database {name}: {e}");
        }
    };
    let db = TestDb {
        dialect: Dialect::Postgres,
        pool: Pool::Postgres(pool.clone()),
        name: name.clone(),
        url: url_with_database(&url, &name),
    };
    let cleanup = async move {
        pool.close().await;
        drop_postgres(&mut admin, &quoted).await
    };
    run_and_clean(&format!("database {name}"), body(db), cleanup).await;
}

/// The server URL with its database replaced by `database` (query kept).
fn url_with_database(url: &str, database: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, format!("?{q}")),
        None => (url, String::new()),
    };
    let after_scheme = base.find("://").map_or(0, |i| i + 3);
    let base = match base[after_scheme..].find('/') {
        Some(slash) => &base[..after_scheme + slash],
        None => base,
    };
    format!("{base}/{database}{query}")
}

/// Gives `body` a fresh MySQL/MariaDB database on the server at
/// `PHASEGATE_TEST_MYSQL_URL` (default [`DEFAULT_MYSQL_URL`]) and drops it
/// afterwards, even when the body fails or panics. Skips (or, with
/// `PHASEGATE_REQUIRE_DATABASES=1`, fails) when no server answers.
pub async fn with_mysql<F, Fut>(body: F)
where
    F: FnOnce(TestDb) -> Fut,
    Fut: Future<Output = TestResult>,
{
    let url = std::env::var(MYSQL_URL_ENV).unwrap_or_else(|_| DEFAULT_MYSQL_URL.into());
    let shown = redact(&url);
    let admin_opts = MySqlConnectOptions::from_str(&url)
        .unwrap_or_else(|e| panic!("{MYSQL_URL_ENV}={shown} is not a MySQL URL: {e}"));
    let Some(mut admin) =
        connect_admin("MySQL", &shown, MySqlConnection::connect_with(&admin_opts)).await
    else {
        return;
    };
    let name = unique_name();
    let quoted = Dialect::Mysql.quote_ident(&name);
    sqlx::raw_sql(AssertSqlSafe(format!("CREATE DATABASE {quoted}")))
        .execute(&mut admin)
        .await
        .unwrap_or_else(|e| panic!("creating database {name} on {shown}: {e}"));
    let pool = MySqlPoolOptions::new()
        .max_connections(4)
        .acquire_timeout(Duration::from_secs(30))
        .connect_with(admin_opts.clone().database(&name))
        .await;
    let pool = match pool {
        Ok(pool) => pool,
        Err(e) => {
            let _ = drop_mysql(&mut admin, &quoted).await;
            panic!("connecting to test database {name}: {e}");
        }
    };
    let db = TestDb {
        dialect: Dialect::Mysql,
        pool: Pool::Mysql(pool.clone()),
        name: name.clone(),
        url: url_with_database(&url, &name),
    };
    let cleanup = async move {
        pool.close().await;
        drop_mysql(&mut admin, &quoted).await
    };
    run_and_clean(&format!("database {name}"), body(db), cleanup).await;
}

async fn drop_mysql(admin: &mut MySqlConnection, quoted: &str) -> Result<(), String> {
    sqlx::raw_sql(AssertSqlSafe(format!("DROP DATABASE IF EXISTS {quoted}")))
        .execute(&mut *admin)
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

async fn drop_postgres(admin: &mut PgConnection, quoted: &str) -> Result<(), String> {
    sqlx::raw_sql(AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {quoted} WITH (FORCE)"
    )))
    .execute(&mut *admin)
    .await
    .map(|_| ())
    .map_err(|e| e.to_string())
}

/// Gives `body` a fresh SQLite database in a file under the system's
/// temporary folder, removed afterwards (with its journal files) even when
/// the body fails or panics.
pub async fn with_sqlite<F, Fut>(body: F)
where
    F: FnOnce(TestDb) -> Fut,
    Fut: Future<Output = TestResult>,
{
    let path = std::env::temp_dir().join(format!("{}.sqlite3", unique_name()));
    let opts = SqliteConnectOptions::new()
        .filename(&path)
        .create_if_missing(true);
    // One connection: a test is sequential, and SQLite has one writer anyway.
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(opts)
        .await
        .unwrap_or_else(|e| panic!("creating SQLite database {}: {e}", path.display()));
    let db = TestDb {
        dialect: Dialect::Sqlite,
        pool: Pool::Sqlite(pool.clone()),
        name: path.display().to_string(),
        url: format!("sqlite://{}", path.display()),
    };
    let cleanup = async move {
        pool.close().await;
        remove_sqlite_files(&path)
    };
    run_and_clean("the SQLite file", body(db), cleanup).await;
}

fn remove_sqlite_files(path: &std::path::Path) -> Result<(), String> {
    let mut problems = Vec::new();
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let mut p = path.as_os_str().to_owned();
        p.push(suffix);
        let p = PathBuf::from(p);
        match std::fs::remove_file(&p) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => problems.push(format!("{}: {e}", p.display())),
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

// ---------------------------------------------------------------------------
// Running SQL
// ---------------------------------------------------------------------------

/// Rows as `(id, value as text)`: what the tests compare with their models.
pub type Rows = BTreeMap<i64, Option<String>>;

impl TestDb {
    /// Picks the SQL spelling of this dialect.
    pub fn pick<'a>(&self, postgres: &'a str, sqlite: &'a str) -> &'a str {
        match self.dialect {
            Dialect::Postgres => postgres,
            Dialect::Sqlite => sqlite,
            Dialect::Mysql => panic!("no MySQL spelling given: use pick3"),
        }
    }

    /// Picks the SQL spelling of this dialect, MySQL included.
    pub fn pick3<'a>(&self, postgres: &'a str, sqlite: &'a str, mysql: &'a str) -> &'a str {
        match self.dialect {
            Dialect::Postgres => postgres,
            Dialect::Sqlite => sqlite,
            Dialect::Mysql => mysql,
        }
    }

    /// A quoted identifier.
    pub fn ident(&self, name: &str) -> String {
        self.dialect.quote_ident(name)
    }

    /// A quoted table name; `name` is written as in a plan (`schema.table`).
    pub fn table(&self, name: &str) -> String {
        let t = TableName::parse(name)
            .unwrap_or_else(|e| panic!("test table name {name:?} is not valid: {e}"));
        self.dialect.quote_table(&t)
    }

    /// Creates a table (and, on Postgres, its schema when `name` is
    /// qualified); `columns` is the SQL between the parentheses.
    pub async fn create_table(&self, name: &str, columns: &str) -> TestResult {
        let t = TableName::parse(name).map_err(|e| fail(e.to_string()))?;
        if let (Some(schema), Dialect::Postgres) = (&t.schema, self.dialect) {
            self.exec(&format!(
                "CREATE SCHEMA IF NOT EXISTS {}",
                self.ident(schema.as_str())
            ))
            .await?;
        }
        self.exec(&format!("CREATE TABLE {} ({columns})", self.table(name)))
            .await
            .map(|_| ())
    }

    /// A `FROM` item of `n` rows with one integer column `i` = 1..=n:
    /// `generate_series` on Postgres, a recursive CTE on SQLite.
    pub fn series(&self, n: u32) -> String {
        match self.dialect {
            Dialect::Mysql => format!(
                "(WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < {n}) SELECT i FROM s) AS s"
            ),
            Dialect::Postgres => format!("generate_series(1, {n}) AS s(i)"),
            Dialect::Sqlite => format!(
                "(WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < {n}) SELECT i FROM s) AS s"
            ),
        }
    }

    /// Runs one or more statements (no parameters); returns the rows affected.
    pub async fn exec(&self, sql: &str) -> TestResult<u64> {
        let done = on_pool!(self, p => sqlx::raw_sql(AssertSqlSafe(sql.to_string()))
            .execute(p)
            .await
            .map(|r| r.rows_affected()));
        done.map_err(|e| fail(format!("{e}\n--- while running ---\n{sql}")))
    }

    /// Runs statements in one transaction (BEGIN; sql; COMMIT).
    pub async fn exec_in_transaction(&self, sql: &str) -> TestResult {
        let done: Result<(), sqlx::Error> = on_pool!(self, p => async {
            let mut tx = p.begin().await?;
            sqlx::raw_sql(AssertSqlSafe(sql.to_string())).execute(&mut *tx).await?;
            tx.commit().await
        }
        .await);
        done.map_err(|e| {
            fail(format!(
                "{e}\n--- while running (in a transaction) ---\n{sql}"
            ))
        })
    }

    /// Runs `sql`, which must fail; returns the error message.
    pub async fn fails(&self, sql: &str) -> TestResult<String> {
        let result = on_pool!(self, p => sqlx::raw_sql(AssertSqlSafe(sql.to_string()))
            .execute(p)
            .await
            .map(|_| ()));
        match result {
            Ok(()) => Err(fail(format!(
                "expected this to fail on {}, but it succeeded:\n{sql}",
                self.dialect
            ))),
            Err(e) => Ok(e.to_string()),
        }
    }

    /// Runs `sql`, which must fail with a message containing `needle`
    /// (case-insensitive).
    pub async fn assert_fails(&self, sql: &str, needle: &str) -> TestResult {
        let message = self.fails(sql).await?;
        if message.to_lowercase().contains(&needle.to_lowercase()) {
            Ok(())
        } else {
            Err(fail(format!(
                "expected an error containing {needle:?} from:\n{sql}\ngot: {message}"
            )))
        }
    }

    /// A query returning one integer.
    pub async fn scalar(&self, sql: &str) -> TestResult<i64> {
        let v = on_pool!(self, p => sqlx::query_scalar::<_, i64>(AssertSqlSafe(sql.to_string()))
            .persistent(false)
            .fetch_one(p)
            .await);
        v.map_err(|e| fail(format!("{e}\n--- while running ---\n{sql}")))
    }

    /// A query returning one text value (or NULL).
    pub async fn text(&self, sql: &str) -> TestResult<Option<String>> {
        let v = on_pool!(self, p => sqlx::query_scalar::<_, Option<String>>(AssertSqlSafe(sql.to_string()))
            .persistent(false)
            .fetch_one(p)
            .await);
        v.map_err(|e| fail(format!("{e}\n--- while running ---\n{sql}")))
    }

    /// A query returning rows of one text column (NULL as "NULL").
    pub async fn texts(&self, sql: &str) -> TestResult<Vec<String>> {
        let v = on_pool!(self, p => sqlx::query_scalar::<_, Option<String>>(AssertSqlSafe(sql.to_string()))
            .persistent(false)
            .fetch_all(p)
            .await);
        v.map(|rows| {
            rows.into_iter()
                .map(|r| r.unwrap_or_else(|| "NULL".into()))
                .collect()
        })
        .map_err(|e| fail(format!("{e}\n--- while running ---\n{sql}")))
    }

    /// `SELECT id, value` of every row of `table` (SQL as written), the value
    /// cast to text.
    pub async fn rows(&self, table: &str, id: &str, value: &str) -> TestResult<Rows> {
        let sql = match self.dialect {
            Dialect::Mysql => {
                format!(
                    "SELECT CAST({id} AS SIGNED), CAST({value} AS CHAR) FROM {table} ORDER BY 1"
                )
            }
            _ => format!(
                "SELECT CAST({id} AS BIGINT), CAST({value} AS TEXT) FROM {table} ORDER BY 1"
            ),
        };
        let v = on_pool!(self, p => sqlx::query_as::<_, (i64, Option<String>)>(AssertSqlSafe(sql.clone()))
            .persistent(false)
            .fetch_all(p)
            .await);
        v.map(|rows| rows.into_iter().collect())
            .map_err(|e| fail(format!("{e}\n--- while running ---\n{sql}")))
    }

    /// Asserts that `value` of every row of `table` is what `expected` says,
    /// and that no row is missing or extra.
    pub async fn assert_rows(
        &self,
        table: &str,
        value: &str,
        expected: &Rows,
        when: &str,
    ) -> TestResult {
        let actual = self.rows(table, "id", value).await?;
        if &actual == expected {
            return Ok(());
        }
        let missing: Vec<_> = expected
            .keys()
            .filter(|k| !actual.contains_key(k))
            .collect();
        let extra: Vec<_> = actual
            .keys()
            .filter(|k| !expected.contains_key(k))
            .collect();
        let differ: Vec<String> = expected
            .iter()
            .filter_map(|(k, v)| {
                actual
                    .get(k)
                    .filter(|a| *a != v)
                    .map(|a| format!("id {k}: expected {v:?}, found {a:?}"))
            })
            .take(10)
            .collect();
        Err(fail(format!(
            "{when}: {value} of {table} on {} is not as expected ({} rows expected, {} found)\nmissing ids: {missing:?}\nextra ids: {extra:?}\nfirst differences: {differ:#?}",
            self.dialect,
            expected.len(),
            actual.len()
        )))
    }

    /// The live schema of the tables a plan touches, for the planner.
    pub async fn catalog(&self, tables: &[&str]) -> TestResult<Catalog> {
        let names = tables
            .iter()
            .map(|t| TableName::parse(t).map_err(|e| fail(format!("table {t:?}: {e}"))))
            .collect::<TestResult<Vec<_>>>()?;
        let catalog = match &self.pool {
            Pool::Postgres(p) => Catalog::read_postgres(p, &names).await?,
            Pool::Sqlite(p) => Catalog::read_sqlite(p, &names).await?,
            Pool::Mysql(p) => Catalog::read_mysql(p, &names).await?,
        };
        Ok(catalog)
    }

    /// Whether `table` (a plan-style name, `schema.table` allowed) has `column`.
    pub async fn has_column(&self, table: &str, column: &str) -> TestResult<bool> {
        let t = TableName::parse(table).map_err(|e| fail(e.to_string()))?;
        let n = match &self.pool {
            Pool::Postgres(p) => {
                sqlx::query_scalar::<_, i64>(
                    "SELECT count(*) FROM pg_attribute WHERE attrelid = to_regclass($1) \
                     AND attname = $2 AND attnum > 0 AND NOT attisdropped",
                )
                .bind(Dialect::Postgres.quote_table(&t))
                .bind(column)
                .fetch_one(p)
                .await?
            }
            Pool::Sqlite(p) => {
                sqlx::query_scalar::<_, i64>(
                    "SELECT count(*) FROM pragma_table_info(?1) WHERE name = ?2",
                )
                .bind(t.name.as_str())
                .bind(column)
                .fetch_one(p)
                .await?
            }
            Pool::Mysql(p) => {
                sqlx::query_scalar::<_, i64>(
                    "SELECT count(*) FROM information_schema.COLUMNS \
                      WHERE TABLE_SCHEMA = COALESCE(?, DATABASE()) AND TABLE_NAME = ? AND COLUMN_NAME = ?",
                )
                .bind(t.schema.as_ref().map(|s| s.as_str().to_string()))
                .bind(t.name.as_str())
                .bind(column)
                .fetch_one(p)
                .await?
            }
        };
        Ok(n > 0)
    }

    /// Whether a table or view of that (plan-style) name exists.
    pub async fn has_relation(&self, table: &str) -> TestResult<bool> {
        let t = TableName::parse(table).map_err(|e| fail(e.to_string()))?;
        let n = match &self.pool {
            Pool::Postgres(p) => {
                sqlx::query_scalar::<_, i64>("SELECT count(to_regclass($1))")
                    .bind(Dialect::Postgres.quote_table(&t))
                    .fetch_one(p)
                    .await?
            }
            Pool::Sqlite(p) => sqlx::query_scalar::<_, i64>(
                "SELECT count(*) FROM sqlite_master WHERE type IN ('table', 'view') AND name = ?1",
            )
            .bind(t.name.as_str())
            .fetch_one(p)
            .await?,
            Pool::Mysql(p) => {
                sqlx::query_scalar::<_, i64>(
                    "SELECT count(*) FROM information_schema.TABLES \
                  WHERE TABLE_SCHEMA = COALESCE(?, DATABASE()) AND TABLE_NAME = ?",
                )
                .bind(t.schema.as_ref().map(|s| s.as_str().to_string()))
                .bind(t.name.as_str())
                .fetch_one(p)
                .await?
            }
        };
        Ok(n > 0)
    }

    /// The kind of a relation: `table`, `view` or `None`.
    pub async fn relation_kind(&self, table: &str) -> TestResult<Option<String>> {
        let t = TableName::parse(table).map_err(|e| fail(e.to_string()))?;
        let kind = match &self.pool {
            Pool::Postgres(p) => {
                sqlx::query_scalar::<_, String>(
                    "SELECT CASE relkind WHEN 'r' THEN 'table' WHEN 'v' THEN 'view' ELSE relkind::text END \
                       FROM pg_class WHERE oid = to_regclass($1)",
                )
                .bind(Dialect::Postgres.quote_table(&t))
                .fetch_optional(p)
                .await?
            }
            Pool::Sqlite(p) => {
                sqlx::query_scalar::<_, String>(
                    "SELECT type FROM sqlite_master WHERE type IN ('table', 'view') AND name = ?1",
                )
                .bind(t.name.as_str())
                .fetch_optional(p)
                .await?
            }
            Pool::Mysql(p) => {
                sqlx::query_scalar::<_, String>(
                    "SELECT CASE TABLE_TYPE WHEN 'VIEW' THEN 'view' ELSE 'table' END \
                       FROM information_schema.TABLES \
                      WHERE TABLE_SCHEMA = COALESCE(?, DATABASE()) AND TABLE_NAME = ?",
                )
                .bind(t.schema.as_ref().map(|s| s.as_str().to_string()))
                .bind(t.name.as_str())
                .fetch_optional(p)
                .await?
            }
        };
        Ok(kind)
    }

    /// Whether an index of that name exists and (Postgres) is valid.
    pub async fn index_state(&self, index: &str) -> TestResult<Option<bool>> {
        let state =
            match &self.pool {
                Pool::Postgres(p) => sqlx::query_scalar::<_, bool>(
                    "SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid \
                      WHERE c.relname = $1",
                )
                .bind(index)
                .fetch_optional(p)
                .await?,
                Pool::Sqlite(p) => {
                    let n = sqlx::query_scalar::<_, i64>(
                        "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name = ?1",
                    )
                    .bind(index)
                    .fetch_one(p)
                    .await?;
                    // SQLite has no invalid indexes: one that exists is usable.
                    (n > 0).then_some(true)
                }
                Pool::Mysql(p) => {
                    let n = sqlx::query_scalar::<_, i64>(
                        "SELECT count(*) FROM information_schema.STATISTICS \
                          WHERE TABLE_SCHEMA = DATABASE() AND INDEX_NAME = ?",
                    )
                    .bind(index)
                    .fetch_one(p)
                    .await?;
                    (n > 0).then_some(true)
                }
            };
        Ok(state)
    }

    /// Whether the column accepts NULL as far as the catalog says (SQLite
    /// triggers that refuse NULL are not counted).
    pub async fn is_nullable(&self, table: &str, column: &str) -> TestResult<bool> {
        let t = TableName::parse(table).map_err(|e| fail(e.to_string()))?;
        let not_null = match &self.pool {
            Pool::Postgres(p) => {
                sqlx::query_scalar::<_, bool>(
                    "SELECT attnotnull FROM pg_attribute WHERE attrelid = to_regclass($1) \
                     AND attname = $2 AND NOT attisdropped",
                )
                .bind(Dialect::Postgres.quote_table(&t))
                .bind(column)
                .fetch_one(p)
                .await?
            }
            Pool::Sqlite(p) => {
                sqlx::query_scalar::<_, i64>(
                    "SELECT \"notnull\" FROM pragma_table_info(?1) WHERE name = ?2",
                )
                .bind(t.name.as_str())
                .bind(column)
                .fetch_one(p)
                .await?
                    != 0
            }
            Pool::Mysql(p) => {
                sqlx::query_scalar::<_, i64>(
                    "SELECT (IS_NULLABLE = 'NO') + 0 FROM information_schema.COLUMNS \
                      WHERE TABLE_SCHEMA = COALESCE(?, DATABASE()) AND TABLE_NAME = ? AND COLUMN_NAME = ?",
                )
                .bind(t.schema.as_ref().map(|s| s.as_str().to_string()))
                .bind(t.name.as_str())
                .bind(column)
                .fetch_one(p)
                .await?
                    != 0
            }
        };
        Ok(!not_null)
    }

    /// A sorted, textual snapshot of everything user-defined in the schema:
    /// relations, columns (type, NOT NULL, default), constraints (and whether
    /// validated), indexes (and whether valid), triggers, functions, views.
    /// Equal snapshots before a phase and after its rollback prove the
    /// rollback undid it.
    pub async fn schema(&self) -> TestResult<Vec<String>> {
        let sql = match self.dialect {
            Dialect::Postgres => PG_SCHEMA_SNAPSHOT,
            Dialect::Sqlite => SQLITE_SCHEMA_SNAPSHOT,
            Dialect::Mysql => MYSQL_SCHEMA_SNAPSHOT,
        };
        self.texts(sql).await
    }
}

const PG_SCHEMA_SNAPSHOT: &str = r#"
WITH ns AS (
  SELECT oid FROM pg_namespace
   WHERE nspname NOT IN ('pg_catalog', 'information_schema')
     AND nspname NOT LIKE 'pg\_toast%' AND nspname NOT LIKE 'pg\_temp%'
)
SELECT line FROM (
  SELECT format('relation %s kind=%s', c.oid::regclass, c.relkind) AS line
    FROM pg_class c WHERE c.relnamespace IN (SELECT oid FROM ns) AND c.relkind IN ('r', 'v', 'm', 'p', 'f', 'S')
  UNION ALL
  SELECT format('column %s.%I %s notnull=%s default=%s', c.oid::regclass, a.attname,
                format_type(a.atttypid, a.atttypmod), a.attnotnull,
                coalesce(pg_get_expr(d.adbin, d.adrelid), '-'))
    FROM pg_attribute a
    JOIN pg_class c ON c.oid = a.attrelid
    LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
   WHERE c.relnamespace IN (SELECT oid FROM ns) AND c.relkind IN ('r', 'v', 'p')
     AND a.attnum > 0 AND NOT a.attisdropped
  UNION ALL
  SELECT format('constraint %I on %s: %s validated=%s', con.conname, con.conrelid::regclass,
                pg_get_constraintdef(con.oid), con.convalidated)
    FROM pg_constraint con WHERE con.connamespace IN (SELECT oid FROM ns)
  UNION ALL
  SELECT format('index %s valid=%s: %s', i.indexrelid::regclass, i.indisvalid, pg_get_indexdef(i.indexrelid))
    FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
   WHERE c.relnamespace IN (SELECT oid FROM ns)
  UNION ALL
  SELECT format('trigger %s', pg_get_triggerdef(t.oid))
    FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
   WHERE NOT t.tgisinternal AND c.relnamespace IN (SELECT oid FROM ns)
  UNION ALL
  SELECT format('function %s', p.oid::regprocedure)
    FROM pg_proc p WHERE p.pronamespace IN (SELECT oid FROM ns)
  UNION ALL
  SELECT format('view %s: %s', c.oid::regclass, pg_get_viewdef(c.oid))
    FROM pg_class c WHERE c.relnamespace IN (SELECT oid FROM ns) AND c.relkind = 'v'
) AS snapshot
ORDER BY line
"#;

const MYSQL_SCHEMA_SNAPSHOT: &str = r#"
SELECT line FROM (
  SELECT CAST(CONCAT('relation ', TABLE_NAME, ' ', TABLE_TYPE) AS CHAR) AS line
    FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE()
  UNION ALL
  SELECT CAST(CONCAT('column ', TABLE_NAME, '.', COLUMN_NAME, ' ', COLUMN_TYPE, ' nullable=', IS_NULLABLE,
                     ' default=', COALESCE(COLUMN_DEFAULT, '-'), ' collation=', COALESCE(COLLATION_NAME, '-')) AS CHAR)
    FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE()
  UNION ALL
  SELECT CAST(CONCAT('index ', TABLE_NAME, '.', INDEX_NAME, ' unique=', 1 - NON_UNIQUE, ' ', SEQ_IN_INDEX, ':', COALESCE(COLUMN_NAME, '-')) AS CHAR)
    FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = DATABASE()
  UNION ALL
  SELECT CAST(CONCAT('constraint ', TABLE_NAME, '.', CONSTRAINT_NAME, ' ', CONSTRAINT_TYPE) AS CHAR)
    FROM information_schema.TABLE_CONSTRAINTS WHERE TABLE_SCHEMA = DATABASE()
  UNION ALL
  SELECT CAST(CONCAT('trigger ', TRIGGER_NAME, ' ', ACTION_TIMING, ' ', EVENT_MANIPULATION, ' on ', EVENT_OBJECT_TABLE, ': ', ACTION_STATEMENT) AS CHAR)
    FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = DATABASE()
) AS snapshot
ORDER BY line
"#;

const SQLITE_SCHEMA_SNAPSHOT: &str = r#"
SELECT line FROM (
  SELECT type || ' ' || name || ' on ' || tbl_name || ': ' || coalesce(sql, '') AS line
    FROM sqlite_master WHERE type NOT IN ('table', 'view') AND name NOT LIKE 'sqlite_%'
  UNION ALL
  SELECT type || ' ' || name FROM sqlite_master
   WHERE type IN ('table', 'view') AND name NOT LIKE 'sqlite_%'
  UNION ALL
  SELECT 'column ' || m.name || '.' || p.name || ' ' || p.type || ' notnull=' || p."notnull"
         || ' default=' || coalesce(p.dflt_value, '-') || ' pk=' || p.pk
    FROM sqlite_master AS m, pragma_table_info(m.name) AS p
   WHERE m.type IN ('table', 'view') AND m.name NOT LIKE 'sqlite_%'
)
ORDER BY line
"#;

// ---------------------------------------------------------------------------
// Planning
// ---------------------------------------------------------------------------

/// Parses `changes` (the YAML items of a plan's `changes:` list, each line
/// indented by two spaces) and plans them with `catalog`.
pub fn plan_with(
    dialect: Dialect,
    catalog: &Catalog,
    changes: &str,
) -> Result<Plan, Box<dyn Error>> {
    let text = format!("name: lifecycle\nchanges:\n{changes}");
    let file = parse_plan(&text, "lifecycle.yaml", "lifecycle")
        .map_err(|e| fail(format!("plan text does not parse: {e}\n{text}")))?;
    let templates = Templates::builtin(dialect);
    Planner::new(&templates, catalog)
        .plan(&file)
        .map_err(|e| fail(format!("planning failed on {dialect}: {e}")))
}

/// Plans `changes` without knowing the schema: the planner's offline path.
pub fn plan_offline(dialect: Dialect, changes: &str) -> TestResult<Plan> {
    plan_with(dialect, &Catalog::offline(), changes)
}

/// Plans `changes` against the live schema of `tables`.
pub async fn plan_live(db: &TestDb, changes: &str, tables: &[&str]) -> TestResult<Plan> {
    let catalog = db.catalog(tables).await?;
    plan_with(db.dialect, &catalog, changes)
}

/// The planner's own error (for tests of plans that must be refused).
pub fn plan_error(dialect: Dialect, catalog: &Catalog, changes: &str) -> Option<PlanningError> {
    let text = format!("name: lifecycle\nchanges:\n{changes}");
    let file = parse_plan(&text, "lifecycle.yaml", "lifecycle").ok()?;
    let templates = Templates::builtin(dialect);
    Planner::new(&templates, catalog).plan(&file).err()
}

/// Each phase as `kind:slug` strings, e.g. `migration:add_column`.
pub fn shape(plan: &Plan) -> Vec<Vec<String>> {
    plan.phases
        .iter()
        .map(|ph| {
            plan.phase_steps(ph)
                .map(|s| {
                    let slug = s.id.split_once('.').map_or(s.id.as_str(), |(_, b)| b);
                    format!("{}:{}", s.kind.name(), slug)
                })
                .collect()
        })
        .collect()
}

/// Asserts the plan's phases hold these steps (`kind:slug`), in this order.
pub fn assert_shape(plan: &Plan, expected: &[&[&str]]) -> TestResult {
    let actual = shape(plan);
    if actual == expected {
        Ok(())
    } else {
        Err(fail(format!(
            "plan {} on {} has phases {actual:#?}, expected {expected:#?}",
            plan.name, plan.dialect
        )))
    }
}

/// Asserts which phases are reversible.
pub fn assert_reversible(plan: &Plan, expected: &[bool]) -> TestResult {
    let actual: Vec<bool> = plan.phases.iter().map(|p| p.reversible).collect();
    if actual == expected {
        Ok(())
    } else {
        Err(fail(format!(
            "plan on {}: phases reversible {actual:?}, expected {expected:?}",
            plan.dialect
        )))
    }
}

/// The first step whose id ends with `.slug`.
pub fn step<'p>(plan: &'p Plan, slug: &str) -> TestResult<&'p Step> {
    plan.steps
        .iter()
        .find(|s| s.id.ends_with(&format!(".{slug}")))
        .ok_or_else(|| fail(format!("the plan has no step {slug}")))
}

// ---------------------------------------------------------------------------
// The executor
// ---------------------------------------------------------------------------

fn step_error(phase: &Phase, step: &Step, what: &str, sql: &str, e: &dyn Error) -> Box<dyn Error> {
    fail(format!(
        "phase {} step {} ({}) {what} failed: {e}\n--- SQL ---\n{sql}",
        phase.number,
        step.id,
        step.kind.name()
    ))
}

/// Runs one step: a migration inside a transaction when `transactional`,
/// outside otherwise; a backfill's SQL; a verify query, whose single integer
/// must equal `expect`. App steps do nothing (the tests' releases play them).
pub async fn run_step(db: &TestDb, phase: &Phase, step: &Step) -> TestResult {
    let Some(sql) = step.sql.as_deref() else {
        return match step.kind {
            StepKind::App => Ok(()),
            _ => Err(fail(format!("step {} has no SQL", step.id))),
        };
    };
    match step.kind {
        StepKind::App => Ok(()),
        StepKind::Migration if step.transactional => db
            .exec_in_transaction(sql)
            .await
            .map_err(|e| step_error(phase, step, "", sql, e.as_ref())),
        StepKind::Migration | StepKind::Backfill => db
            .exec(sql)
            .await
            .map(|_| ())
            .map_err(|e| step_error(phase, step, "", sql, e.as_ref())),
        StepKind::Verify => {
            let expect = step
                .expect
                .ok_or_else(|| fail(format!("verify step {} has no expected value", step.id)))?;
            let got = db
                .scalar(sql)
                .await
                .map_err(|e| step_error(phase, step, "", sql, e.as_ref()))?;
            if got == expect {
                Ok(())
            } else {
                Err(fail(format!(
                    "phase {} verify step {} returned {got}, expected {expect}: {}\n--- SQL ---\n{sql}",
                    phase.number, step.id, step.description
                )))
            }
        }
    }
}

/// Runs a phase's migration, backfill and verify steps in order (its app
/// steps are what the caller's releases simulate).
pub async fn apply_phase(db: &TestDb, plan: &Plan, phase: &Phase) -> TestResult {
    for step in plan.phase_steps(phase) {
        run_step(db, phase, step).await?;
    }
    Ok(())
}

/// Runs the `rollback_sql` of a phase's steps in reverse order (in a
/// transaction unless the step is not `transactional`), after the step's
/// `rollback_fill` (rows that need a value first: filled in one UPDATE here,
/// or a failure naming what the plan must say). Fails for a phase that is
/// not reversible.
pub async fn rollback_phase(db: &TestDb, plan: &Plan, phase: &Phase) -> TestResult {
    if !phase.reversible {
        return Err(fail(format!(
            "phase {} is irreversible and cannot be rolled back",
            phase.number
        )));
    }
    let steps: Vec<&Step> = plan.phase_steps(phase).collect();
    for step in steps.into_iter().rev() {
        let Some(sql) = step.rollback_sql.as_deref() else {
            continue;
        };
        if let Some(fill) = &step.rollback_fill {
            let pending = db.scalar(&fill.count).await?;
            match (&fill.backfill, pending) {
                (_, 0) => {}
                (Some(b), _) => {
                    db.exec(&db.dialect.backfill_sql(&b.table, &b.set, &b.pending))
                        .await?;
                }
                (None, n) => {
                    return Err(fail(format!(
                        "phase {} step {} cannot be rolled back: {n} row(s) need a value first: {}",
                        phase.number, step.id, fill.missing
                    )));
                }
            }
        }
        let done = if step.transactional {
            db.exec_in_transaction(sql).await
        } else {
            db.exec(sql).await.map(|_| ())
        };
        done.map_err(|e| step_error(phase, step, "rollback", sql, e.as_ref()))?;
    }
    Ok(())
}

/// Applies a phase; a reversible phase is first applied, rolled back (the
/// schema must then equal what it was before), and applied again: up/down/up.
pub async fn deploy_phase(db: &TestDb, plan: &Plan, phase: &Phase) -> TestResult {
    if phase.reversible {
        let before = db.schema().await?;
        apply_phase(db, plan, phase).await?;
        rollback_phase(db, plan, phase).await?;
        let after = db.schema().await?;
        if before != after {
            let gone: Vec<_> = before.iter().filter(|l| !after.contains(l)).collect();
            let left: Vec<_> = after.iter().filter(|l| !before.contains(l)).collect();
            return Err(fail(format!(
                "rolling back phase {} of {} on {} did not restore the schema\nmissing after rollback: {gone:#?}\nleft behind by rollback: {left:#?}",
                phase.number, plan.name, plan.dialect
            )));
        }
    }
    apply_phase(db, plan, phase).await
}

/// The application around a plan: what each release's code does, checks of
/// the data, and one-off jobs. Release 0 is the code before the plan;
/// release k is the code shipped by phase k (the same as release k-1 when
/// phase k has no app step).
#[allow(async_fn_in_trait)]
pub trait Scenario {
    /// The queries (INSERTs, UPDATEs, SELECTs) release `release` runs.
    async fn release(&mut self, db: &TestDb, release: usize) -> TestResult;

    /// Runs after phase `phase` is applied and both releases ran: check the
    /// data and what must now fail.
    async fn check(&mut self, _db: &TestDb, _phase: usize) -> TestResult {
        Ok(())
    }

    /// Runs before phase `phase`'s migrations, once the previous deploy has
    /// reached every instance (e.g. the new code's cleanup of old rows).
    async fn before(&mut self, _db: &TestDb, _phase: usize) -> TestResult {
        Ok(())
    }
}

/// Two scenarios side by side (two intents of one plan, on different tables).
impl<A: Scenario, B: Scenario> Scenario for (A, B) {
    async fn release(&mut self, db: &TestDb, release: usize) -> TestResult {
        self.0.release(db, release).await?;
        self.1.release(db, release).await
    }

    async fn check(&mut self, db: &TestDb, phase: usize) -> TestResult {
        self.0.check(db, phase).await?;
        self.1.check(db, phase).await
    }

    async fn before(&mut self, db: &TestDb, phase: usize) -> TestResult {
        self.0.before(db, phase).await?;
        self.1.before(db, phase).await
    }
}

/// Rolls `plan` out phase by phase: `before`, the phase's steps (with
/// up/down/up for reversible phases), then the queries of release k-1 and of
/// release k, which run side by side during a rolling deploy, then `check`.
pub async fn roll_out(db: &TestDb, plan: &Plan, scenario: &mut impl Scenario) -> TestResult {
    for phase in &plan.phases {
        let k = phase.number;
        let context = |e: Box<dyn Error>, what: &str| {
            fail(format!(
                "{} on {}, phase {k} ({what}): {e}",
                plan.name, plan.dialect
            ))
        };
        scenario
            .before(db, k)
            .await
            .map_err(|e| context(e, "one-off job before the phase"))?;
        deploy_phase(db, plan, phase).await?;
        scenario
            .release(db, k - 1)
            .await
            .map_err(|e| context(e, &format!("release {} queries", k - 1)))?;
        scenario
            .release(db, k)
            .await
            .map_err(|e| context(e, &format!("release {k} queries")))?;
        scenario
            .check(db, k)
            .await
            .map_err(|e| context(e, "checks after the phase"))?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Models of the data
// ---------------------------------------------------------------------------

/// An SQL literal: `'it''s'`, or `NULL`.
pub fn lit(value: Option<&str>) -> String {
    match value {
        Some(v) => format!("'{}'", v.replace('\'', "''")),
        None => "NULL".into(),
    }
}

/// What the tests expect one column of a table to hold, and the next id to
/// insert.
#[derive(Debug, Clone, Default)]
pub struct Model {
    pub rows: Rows,
    next_id: i64,
}

impl Model {
    /// The model of rows read from the database.
    pub fn from_rows(rows: Rows) -> Model {
        let next_id = rows.keys().next_back().map_or(1, |k| k + 1);
        Model { rows, next_id }
    }

    /// Takes an id for a new row holding `value`.
    pub fn insert(&mut self, value: Option<&str>) -> i64 {
        let id = self.next_id;
        self.next_id += 1;
        self.rows.insert(id, value.map(str::to_string));
        id
    }

    pub fn set(&mut self, id: i64, value: Option<&str>) {
        self.rows.insert(id, value.map(str::to_string));
    }

    pub fn remove(&mut self, id: i64) {
        self.rows.remove(&id);
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Ids whose value satisfies `pred`.
    pub fn ids_where(&self, pred: impl Fn(Option<&str>) -> bool) -> Vec<i64> {
        self.rows
            .iter()
            .filter(|(_, v)| pred(v.as_deref()))
            .map(|(k, _)| *k)
            .collect()
    }
}
