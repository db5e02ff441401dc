//! The event log in an environment's database, through sqlx's `Any` driver:
//! one code path for Postgres, SQLite and MySQL/MariaDB, with
//! dialect-specific SQL where they differ (placeholders, auto-increment,
//! locking).

use std::time::{Duration, Instant};

use chrono::{DateTime, TimeZone, Utc};
use sqlx::AnyConnection;
use sqlx::{AssertSqlSafe, Connection};

use super::chain;
use super::guards;
use super::schema;
use super::{Event, EventKind, NewEvent, derive};
use crate::dialect::{Dialect, mysql_lock_wait};

pub use super::schema::SCHEMA_VERSION;

/// The advisory-lock key of an environment's database ("phasegat" in ASCII).
pub(crate) const LOCK_KEY: i64 = 0x7068_6173_6567_6174;
/// How long releasing the lock, and closing the connection, may take.
pub const RELEASE_WAIT: Duration = Duration::from_secs(5);
/// How long phasegate waits for the answer to one of its own log queries
/// (reading the log, appending an event, one try of the lock): these are
/// small, so an answer that takes longer means the network path or the
/// server went silent ([`TrackerError::Timeout`]).
pub const TRACKER_WAIT: Duration = Duration::from_secs(30);

/// The tracker could not do its work.
#[derive(Debug, thiserror::Error)]
pub enum TrackerError {
    #[error("{env}: cannot connect: {}", crate::db_error::describe(.source))]
    Connect { env: String, source: sqlx::Error },
    #[error("{env}: no answer within {}s", timeout.as_secs_f64())]
    Timeout { env: String, timeout: Duration },
    #[error("{env}: {}", crate::db_error::describe(.source))]
    Database { env: String, source: sqlx::Error },
    #[error("{env}: another phasegate run holds this environment (waited {}s); try again when it finishes", waited.as_secs())]
    Busy { env: String, waited: Duration },
    #[error(
        "{env}: another connection holds the database's write lock (a long transaction?); phasegate gave way after {attempts} tries of {}ms and ran nothing: try again when it is free",
        lock_timeout.as_millis()
    )]
    WriteLocked {
        env: String,
        lock_timeout: Duration,
        attempts: u32,
    },
    #[error(
        "{env}: phasegate's tables are at schema version {found}, newer than this phasegate knows ({SCHEMA_VERSION}); upgrade phasegate"
    )]
    NewerSchema { env: String, found: i64 },
    #[error("{env}: the event log holds an unknown event kind `{kind}`")]
    UnknownEvent { env: String, kind: String },
    /// The log's hash chain or head does not match: rows were deleted,
    /// truncated or edited outside phasegate (see `tracker::chain`).
    #[error(
        "{env}: the event log was tampered with: {what}. phasegate will not act on a log it cannot trust: restore phasegate's tables (phasegate_meta, phasegate_events, phasegate_head, with their triggers) from a backup of this database, then run the command again"
    )]
    Tampered { env: String, what: String },
    /// The database belongs to another environment (its marker in
    /// `phasegate_meta`, written on first use).
    #[error(
        "{env}: this database belongs to environment `{owner}` (recorded in its phasegate_meta when phasegate first used it); two environments must not share a database: give {env} its own database_url"
    )]
    OtherEnvironment { env: String, owner: String },
    /// The SQLite database file could not be opened to take the
    /// environment's lock on it (`tracker::file_lock`).
    #[error("{env}: cannot lock the SQLite database file {path}: {source}")]
    LockFile {
        env: String,
        path: String,
        source: std::io::Error,
    },
    /// A read-only command was pointed at a SQLite file that does not exist.
    #[error(
        "{env}: no SQLite database at {path}: check {env}'s database_url (only commands that write, such as apply, create the file)"
    )]
    NoDatabase { env: String, path: String },
}

/// How a store is opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Open {
    /// Creating or migrating phasegate's tables as needed, claiming the database.
    Write,
    /// Creating nothing; refusing a database another environment owns.
    Read,
    /// Creating nothing, for any environment (`phase_reached`).
    ReadAnyOwner,
}

/// An open connection to one environment's database and its event log.
pub struct Store {
    conn: AnyConnection,
    dialect: Dialect,
    env: String,
    url: String,
    /// SQLite: the lock on the database file, while locked (see `file_lock`).
    #[cfg(unix)]
    file_lock: Option<super::file_lock::FileLock>,
    /// SQLite off Unix: the connection holding the side-car lock file.
    #[cfg(not(unix))]
    lock_conn: Option<AnyConnection>,
    /// Postgres, MySQL: the presence lock, held beside the environment's
    /// lock while it is held (see `presence`).
    presence: Option<super::presence::Presence>,
    /// False when opened read-only on a database phasegate never wrote to.
    has_log: bool,
    /// The version of phasegate's tables found (chain checks from 2 on).
    version: i64,
    /// The environment whose genesis the log's chain starts from: the owner
    /// recorded in `phasegate_meta` (this environment, unless opened for
    /// any owner).
    chain_env: String,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("env", &self.env)
            .field("dialect", &self.dialect)
            .finish()
    }
}

impl Store {
    /// Connects and makes sure phasegate's tables exist.
    pub async fn open(
        env: &str,
        url: &str,
        dialect: Dialect,
        timeout: Duration,
    ) -> Result<Store, TrackerError> {
        Store::connect(env, url, dialect, timeout, Open::Write).await
    }

    /// Connects without creating anything: a database phasegate never wrote
    /// to reads as an empty log (for `status`, `history`, `gate`, `verify`
    /// and `plan --env`). A SQLite file that does not exist is an error
    /// naming the path ([`TrackerError::NoDatabase`]), never created.
    pub async fn open_read_only(
        env: &str,
        url: &str,
        dialect: Dialect,
        timeout: Duration,
    ) -> Result<Store, TrackerError> {
        Store::connect(env, url, dialect, timeout, Open::Read).await
    }

    async fn connect(
        env: &str,
        url: &str,
        dialect: Dialect,
        timeout: Duration,
        mode: Open,
    ) -> Result<Store, TrackerError> {
        let create = mode == Open::Write;
        sqlx::any::install_default_drivers();
        if !create && let Some(path) = missing_sqlite_file(url) {
            return Err(TrackerError::NoDatabase {
                env: env.to_string(),
                path,
            });
        }
        let connect = AnyConnection::connect(url);
        let mut conn = tokio::time::timeout(timeout, connect)
            .await
            .map_err(|_| TrackerError::Timeout {
                env: env.to_string(),
                timeout,
            })?
            .map_err(|source| TrackerError::Connect {
                env: env.to_string(),
                source,
            })?;
        if dialect == Dialect::Mysql {
            // The driver adds PIPES_AS_CONCAT to sql_mode and sets the time
            // zone to UTC; phasegate's SQL, and the triggers it creates
            // (which keep the sql_mode they were created under), must mean
            // what they mean in the application's sessions.
            sqlx::raw_sql(
                "SET SESSION sql_mode = @@GLOBAL.sql_mode, SESSION time_zone = @@GLOBAL.time_zone",
            )
            .execute(&mut conn)
            .await
            .map_err(|source| TrackerError::Database {
                env: env.to_string(),
                source,
            })?;
        }
        // The server ends this session (and frees its locks) when the
        // client dies or the path goes silent (src/session.rs). Best
        // effort: a server or proxy that refuses a setting still serves,
        // without that bound.
        let _ = tokio::time::timeout(
            timeout,
            crate::session_bounds::bound(&mut conn, dialect, crate::session_bounds::MIN_IDLE),
        )
        .await;
        let mut store = Store {
            conn,
            dialect,
            env: env.to_string(),
            url: url.to_string(),
            #[cfg(unix)]
            file_lock: None,
            #[cfg(not(unix))]
            lock_conn: None,
            presence: None,
            has_log: true,
            version: schema::SCHEMA_VERSION,
            chain_env: env.to_string(),
        };
        store.open_schema(mode, timeout).await?;
        Ok(store)
    }

    /// Finds phasegate's tables (creating or migrating them when `create`),
    /// and refuses a database another environment owns or a newer
    /// phasegate wrote.
    async fn open_schema(&mut self, mode: Open, wait: Duration) -> Result<(), TrackerError> {
        let create = mode == Open::Write;
        // Reading first: an existing log needs no lock, so opening an
        // environment never queues behind a run that holds it.
        let mut found = schema::read_version(&mut self.conn, self.dialect)
            .await
            .map_err(|e| self.db_error(e))?;
        if create && found.is_none_or(|v| v < schema::SCHEMA_VERSION) {
            schema::ensure(&mut self.conn, self.dialect, &self.env, wait).await?;
            found = schema::read_version(&mut self.conn, self.dialect)
                .await
                .map_err(|e| self.db_error(e))?;
        }
        let Some(version) = found else {
            // Read-only, and phasegate never finished creating its log here.
            self.has_log = false;
            return Ok(());
        };
        if version > schema::SCHEMA_VERSION {
            return Err(TrackerError::NewerSchema {
                env: self.env.clone(),
                found: version,
            });
        }
        self.version = version;
        let tampered = |env: &str, what: String| TrackerError::Tampered {
            env: env.to_string(),
            what,
        };
        if version >= 2
            && let Some((trigger, table)) = guards::missing_trigger(&mut self.conn, self.dialect)
                .await
                .map_err(|e| self.db_error(e))?
        {
            return Err(tampered(
                &self.env,
                format!(
                    "the trigger {trigger} on {table}, one of the guards phasegate created, is missing or disabled (dropped or disabled outside phasegate), so the log may have been changed while it was unguarded (if a backup shows the log intact, re-creating the trigger from the backup's schema also restores it)"
                ),
            ));
        }
        let owner = schema::read_owner(&mut self.conn, self.dialect)
            .await
            .map_err(|e| self.db_error(e))?;
        match owner {
            Some(owner) if owner != self.env && mode != Open::ReadAnyOwner => {
                Err(TrackerError::OtherEnvironment {
                    env: self.env.clone(),
                    owner,
                })
            }
            Some(owner) => {
                self.chain_env = owner;
                Ok(())
            }
            // From version 2 on the marker is written before the version
            // row, so a log without one had it deleted.
            None if version >= 2 => Err(tampered(
                &self.env,
                "the environment marker in phasegate_meta, which names the environment that owns this database, was deleted".into(),
            )),
            None if create => schema::claim(&mut self.conn, self.dialect, &self.env)
                .await
                .map_err(|e| self.db_error(e)),
            None => Ok(()),
        }
    }

    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    pub fn env(&self) -> &str {
        &self.env
    }

    /// The connection, for running a plan's steps.
    pub fn conn(&mut self) -> &mut AnyConnection {
        &mut self.conn
    }

    pub fn db_error(&self, source: sqlx::Error) -> TrackerError {
        TrackerError::Database {
            env: self.env.clone(),
            source,
        }
    }

    /// Runs SQL that returns nothing (several statements allowed).
    pub async fn exec(&mut self, sql: &str) -> Result<(), TrackerError> {
        let env = self.env.clone();
        bounded(
            &env,
            sqlx::raw_sql(AssertSqlSafe(sql)).execute(&mut self.conn),
        )
        .await
        .map(|_| ())
    }

    /// Opens a transaction that holds the write lock from its first
    /// statement on SQLite, so concurrent runs queue instead of failing late.
    pub async fn begin(&mut self) -> Result<(), TrackerError> {
        let sql = match self.dialect {
            Dialect::Postgres => "BEGIN",
            Dialect::Sqlite => "BEGIN IMMEDIATE",
            Dialect::Mysql => "START TRANSACTION",
        };
        self.exec(sql).await
    }

    pub async fn commit(&mut self) -> Result<(), TrackerError> {
        self.exec("COMMIT").await
    }

    /// Rolls back, ignoring the error of a transaction that is already gone.
    pub async fn rollback(&mut self) {
        let _ = sqlx::raw_sql("ROLLBACK").execute(&mut self.conn).await;
    }

    /// Takes this environment's lock, waiting up to `wait` for another run.
    ///
    /// Postgres: a session advisory lock. MySQL: a named lock (`GET_LOCK`)
    /// for this database, a server-wide name. SQLite on Unix: an advisory
    /// `flock` on the database file itself (`tracker::file_lock`), so every
    /// path to one file (symlink, hard link) takes one lock, nothing is
    /// created, and the database stays writable by the application between
    /// phasegate's transactions; tried every 50ms until `wait`. SQLite
    /// elsewhere: an exclusive lock on a side-car file
    /// (`<database>.phasegate-lock`). Every one dies with its session or
    /// process: a killed run never leaves it held.
    pub async fn lock(&mut self, wait: Duration) -> Result<(), TrackerError> {
        let busy = |env: &str, start: Instant| TrackerError::Busy {
            env: env.to_string(),
            waited: start.elapsed(),
        };
        let start = Instant::now();
        let try_lock = match self.dialect {
            Dialect::Postgres | Dialect::Mysql => {
                super::presence::try_lock_expr(self.dialect, LOCK_KEY).unwrap_or_default()
            }
            #[cfg(unix)]
            Dialect::Sqlite => return self.lock_sqlite_file(wait, start).await,
            #[cfg(not(unix))]
            Dialect::Sqlite => {
                let lock_url = sqlite_lock_url(&self.url);
                let mut conn = AnyConnection::connect(&lock_url).await.map_err(|source| {
                    TrackerError::Connect {
                        env: self.env.clone(),
                        source,
                    }
                })?;
                let take = format!(
                    "PRAGMA busy_timeout = {}; BEGIN EXCLUSIVE",
                    wait.as_millis()
                );
                return match sqlx::raw_sql(AssertSqlSafe(take)).execute(&mut conn).await {
                    Ok(_) => {
                        self.lock_conn = Some(conn);
                        Ok(())
                    }
                    Err(e) if is_busy(&e) => Err(busy(&self.env, start)),
                    Err(e) => Err(self.db_error(e)),
                };
            }
        };
        loop {
            // Compared in SQL: each driver spells a boolean its own way.
            let env = self.env.clone();
            let got: i64 = bounded(
                &env,
                sqlx::query_scalar(AssertSqlSafe(format!(
                    "SELECT CASE WHEN {try_lock} THEN 1 ELSE 0 END"
                )))
                .fetch_one(&mut self.conn),
            )
            .await?;
            if got == 1 {
                self.presence = super::presence::Presence::take(&self.url, self.dialect).await;
                return Ok(());
            }
            if start.elapsed() >= wait {
                return Err(busy(&self.env, start));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Whether the run holding this environment's lock is alive (see
    /// `presence`): `Some(false)` when no live run holds it (the lock is
    /// free, or held only by a statement a killed run left running),
    /// `None` when that cannot be told (SQLite; no answer within
    /// [`TRACKER_WAIT`]).
    pub async fn holder_alive(&mut self) -> Option<bool> {
        super::presence::holder_alive(&mut self.conn, self.dialect, TRACKER_WAIT).await
    }

    /// SQLite on Unix: takes the `flock` on the database file, trying every
    /// 50ms until `wait` has passed ([`TrackerError::Busy`]). An in-memory
    /// database is this process's own: there is nothing to lock.
    #[cfg(unix)]
    async fn lock_sqlite_file(
        &mut self,
        wait: Duration,
        start: Instant,
    ) -> Result<(), TrackerError> {
        use std::str::FromStr;
        let options =
            sqlx::sqlite::SqliteConnectOptions::from_str(&self.url).map_err(|source| {
                TrackerError::Connect {
                    env: self.env.clone(),
                    source,
                }
            })?;
        let path = options.get_filename().to_path_buf();
        if path.as_os_str() == ":memory:" || self.url.contains("mode=memory") {
            return Ok(());
        }
        loop {
            match super::file_lock::try_lock(&path) {
                Ok(Some(lock)) => {
                    self.file_lock = Some(lock);
                    return Ok(());
                }
                Ok(None) => {}
                Err(source) => {
                    return Err(TrackerError::LockFile {
                        env: self.env.clone(),
                        path: path.display().to_string(),
                        source,
                    });
                }
            }
            if start.elapsed() >= wait {
                return Err(TrackerError::Busy {
                    env: self.env.clone(),
                    waited: start.elapsed(),
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Releases the lock, waiting at most [`RELEASE_WAIT`] (a connection
    /// that went silent never answers; its session, and the lock, end on the
    /// server's side, see `crate::session_bounds`).
    pub async fn unlock(&mut self) {
        let _ = tokio::time::timeout(RELEASE_WAIT, self.unlock_now()).await;
    }

    async fn unlock_now(&mut self) {
        if let Some(presence) = self.presence.take() {
            presence.release().await;
        }
        match self.dialect {
            Dialect::Postgres | Dialect::Mysql => {
                if let Some(release) = super::presence::release_lock_sql(self.dialect, LOCK_KEY) {
                    let _ = sqlx::raw_sql(AssertSqlSafe(release))
                        .execute(&mut self.conn)
                        .await;
                }
            }
            #[cfg(unix)]
            Dialect::Sqlite => self.file_lock = None,
            #[cfg(not(unix))]
            Dialect::Sqlite => {
                if let Some(mut conn) = self.lock_conn.take() {
                    let _ = sqlx::raw_sql("ROLLBACK").execute(&mut conn).await;
                    let _ = conn.close().await;
                }
            }
        }
    }

    /// Sets how long this connection's statements wait for a lock
    /// (Postgres `lock_timeout` is set per transaction by the executor;
    /// SQLite's is the connection's busy timeout; MySQL's are the session's
    /// metadata and row lock timeouts, in whole seconds).
    pub async fn set_lock_wait(&mut self, wait: Duration) -> Result<(), TrackerError> {
        match self.dialect {
            Dialect::Sqlite => {
                self.exec(&format!("PRAGMA busy_timeout = {}", wait.as_millis()))
                    .await
            }
            Dialect::Mysql => self.exec(&mysql_lock_wait(wait)).await,
            Dialect::Postgres => Ok(()),
        }
    }

    /// Appends an event (inside the caller's transaction, if one is open),
    /// chained to the last one: it stores the head's hash as its
    /// `prev_hash`, and the insert trigger moves the head to it in the same
    /// statement (see [`chain`]).
    pub async fn append(
        &mut self,
        e: &NewEvent,
        at: DateTime<Utc>,
        actor: &str,
    ) -> Result<(), TrackerError> {
        let env = self.env.clone();
        let prev: String = bounded(
            &env,
            sqlx::query_scalar("SELECT last_hash FROM phasegate_head WHERE id = 1")
                .fetch_optional(&mut self.conn),
        )
        .await?
        .ok_or_else(|| TrackerError::Tampered {
                env: self.env.clone(),
                what: "phasegate_head, which records the log's last event, is missing (its row was deleted or the table truncated)".into(),
            })?;
        let phase = e.phase.map(|p| p as i64);
        let at_ms = at.timestamp_millis();
        let hash = chain::event_hash(
            &prev,
            at_ms,
            e.plan.as_deref(),
            e.kind.name(),
            phase,
            e.step.as_deref(),
            &e.detail,
            actor,
        );
        let sql = match self.dialect {
            Dialect::Postgres => {
                "INSERT INTO phasegate_events (at_ms, plan, kind, phase, step, detail, actor, prev_hash, hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
            }
            Dialect::Sqlite => {
                "INSERT INTO phasegate_events (at_ms, plan, kind, phase, step, detail, actor, prev_hash, hash) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"
            }
            Dialect::Mysql => {
                "INSERT INTO phasegate_events (at_ms, plan, kind, phase, step, detail, actor, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
            }
        };
        let insert = sqlx::query(sql)
            .bind(at_ms)
            .bind(e.plan.clone())
            .bind(e.kind.name())
            .bind(phase)
            .bind(e.step.clone())
            .bind(e.detail.clone())
            .bind(actor.to_string())
            .bind(prev)
            .bind(hash)
            .execute(&mut self.conn);
        bounded(&env, insert).await.map(|_| ())
    }

    /// The events of `plan` (or of every plan), with the environment-wide
    /// ones, in order, after checking the whole log's hash chain against its
    /// head: a log that was truncated, deleted from or edited is
    /// [`TrackerError::Tampered`], naming what is wrong and at which event.
    pub async fn events(&mut self, plan: Option<&str>) -> Result<Vec<Event>, TrackerError> {
        if !self.has_log {
            return Ok(Vec::new());
        }
        let tampered = |env: &str, what: String| TrackerError::Tampered {
            env: env.to_string(),
            what,
        };
        let rows = if self.version >= 2 {
            let Some((rows, head)) = self.read_chain_bounded().await? else {
                return Err(tampered(
                    &self.env,
                    "the table phasegate_events is gone, but phasegate_meta says the log exists"
                        .into(),
                ));
            };
            chain::verify(&rows, head.as_ref(), &self.chain_env)
                .map_err(|what| tampered(&self.env, what))?;
            rows
        } else {
            // A log from before the chain, read without migrating it (read-only).
            schema::read_unchained(&mut self.conn)
                .await
                .map_err(|e| self.db_error(e))?
        };
        rows.into_iter()
            .filter(|r| plan.is_none_or(|p| r.plan.as_deref().is_none_or(|rp| rp == p)))
            .map(|r| {
                Ok(Event {
                    id: r.id,
                    at: Utc
                        .timestamp_millis_opt(r.at_ms)
                        .single()
                        .unwrap_or(DateTime::<Utc>::UNIX_EPOCH),
                    kind: EventKind::parse(&r.kind).ok_or_else(|| TrackerError::UnknownEvent {
                        env: self.env.clone(),
                        kind: r.kind.clone(),
                    })?,
                    plan: r.plan,
                    phase: r.phase.and_then(|p| usize::try_from(p).ok()),
                    step: r.step,
                    detail: r.detail,
                    actor: r.actor,
                })
            })
            .collect()
    }

    /// The log and its head ([`schema::read_chain`] reads the head first, so
    /// a run appending meanwhile is not mistaken for tampering), within
    /// [`TRACKER_WAIT`].
    async fn read_chain_bounded(&mut self) -> Result<Option<schema::Chain>, TrackerError> {
        let dialect = self.dialect;
        let env = self.env.clone();
        bounded(&env, schema::read_chain(&mut self.conn, dialect)).await
    }

    /// Releases the lock and closes the connection, each within [`RELEASE_WAIT`].
    pub async fn close(mut self) {
        self.unlock().await;
        let _ = tokio::time::timeout(RELEASE_WAIT, self.conn.close()).await;
    }
}

/// Runs one of the tracker's own queries within [`TRACKER_WAIT`]: a
/// database error keeps its detail; no answer in time is
/// [`TrackerError::Timeout`].
async fn bounded<T>(
    env: &str,
    work: impl Future<Output = Result<T, sqlx::Error>>,
) -> Result<T, TrackerError> {
    match tokio::time::timeout(TRACKER_WAIT, work).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(source)) => Err(TrackerError::Database {
            env: env.to_string(),
            source,
        }),
        Err(_) => Err(TrackerError::Timeout {
            env: env.to_string(),
            timeout: TRACKER_WAIT,
        }),
    }
}

/// SQLite's "database is locked" / "database is busy".
pub fn is_busy(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.code().as_deref().is_some_and(|c| c == "5" || c == "6")
        || db.message().contains("database is locked"))
}

/// The path of a SQLite URL's file when that file does not exist (`None`
/// for other databases, in-memory ones, and files that exist).
fn missing_sqlite_file(url: &str) -> Option<String> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let (path, _) = rest.split_once('?').unwrap_or((rest, ""));
    if path.is_empty() || path.contains(":memory:") || std::path::Path::new(path).exists() {
        return None;
    }
    Some(path.to_string())
}

/// `sqlite:///x/app.db?mode=rwc` → `sqlite:///x/app.db.phasegate-lock?mode=rwc`
/// (the side-car lock file, off Unix).
#[cfg(not(unix))]
fn sqlite_lock_url(url: &str) -> String {
    let (path, _) = url.split_once('?').unwrap_or((url, ""));
    format!("{path}.phasegate-lock?mode=rwc")
}

/// For a service at start-up: has this database reached (at least migrated)
/// phase `phase` of plan `plan`? Fail fast when the schema is older than the
/// code. Reads the event log only; never writes. "Reached" is
/// [`super::reach::Reached::Applied`], as `phasegate check` without
/// `--deployed` and the `phasegate_status` view's `phase_applied`.
///
/// ```no_run
/// # async fn start() -> Result<(), Box<dyn std::error::Error>> {
/// if !phasegate::tracker::phase_reached("postgres://app@db/app", "rename-users-name", 2).await? {
///     return Err("schema is behind this release: apply phase 2 of rename-users-name first".into());
/// }
/// # Ok(()) }
/// ```
pub async fn phase_reached(
    database_url: &str,
    plan: &str,
    phase: usize,
) -> Result<bool, TrackerError> {
    let dialect = if database_url.starts_with("sqlite") {
        Dialect::Sqlite
    } else if database_url.starts_with("mysql") || database_url.starts_with("mariadb") {
        Dialect::Mysql
    } else {
        Dialect::Postgres
    };
    // Read-only, with the log's chain checked like every read.
    let mut store = Store::connect(
        "database",
        database_url,
        dialect,
        Duration::from_secs(30),
        Open::ReadAnyOwner,
    )
    .await?;
    let events = store.events(Some(plan)).await;
    store.close().await;
    let events: Vec<Event> = events?.into_iter().filter(|e| e.plan.is_some()).collect();
    let phases = events
        .iter()
        .filter_map(|e| e.phase)
        .max()
        .unwrap_or(0)
        .max(phase);
    let state = derive(&events, phases);
    Ok(super::reach::reached(
        &state,
        phase,
        super::reach::Reached::Applied,
    ))
}
