//! The event log in an environment's database, through sqlx's `Any` driver:
//! one code path for Postgres, SQLite and MySQL/MariaDB, with
//! dialect-specific SQL where they differ (placeholders, auto-increment,
//! locking).

use std::time::{Duration, Instant};

use chrono::{DateTime, TimeZone, Utc};
use sqlx::AnyConnection;
use sqlx::{AssertSqlSafe, Connection, Row};

use super::{Event, EventKind, NewEvent, PhaseStatus, derive};
use crate::dialect::{Dialect, mysql_lock_wait};

/// The version of phasegate's own tables. A later release that changes them
/// migrates from the version it finds here.
pub const SCHEMA_VERSION: i64 = 1;

/// The advisory-lock key of an environment's database ("phasegat" in ASCII).
const LOCK_KEY: i64 = 0x7068_6173_6567_6174;
/// The key that serialises creating phasegate's tables.
const SCHEMA_LOCK_KEY: i64 = LOCK_KEY + 1;
/// How long releasing the lock, and closing the connection, may take.
pub const RELEASE_WAIT: Duration = Duration::from_secs(5);

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
}

/// An open connection to one environment's database and its event log.
pub struct Store {
    conn: AnyConnection,
    dialect: Dialect,
    env: String,
    url: String,
    /// SQLite: the connection holding the side-car lock file, while locked.
    lock_conn: Option<AnyConnection>,
    /// False when opened read-only on a database phasegate never wrote to.
    has_log: bool,
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
        Store::connect(env, url, dialect, timeout, true).await
    }

    /// Connects without creating anything: a database phasegate never wrote
    /// to reads as an empty log (for `status` and `history`).
    pub async fn open_read_only(
        env: &str,
        url: &str,
        dialect: Dialect,
        timeout: Duration,
    ) -> Result<Store, TrackerError> {
        Store::connect(env, url, dialect, timeout, false).await
    }

    async fn connect(
        env: &str,
        url: &str,
        dialect: Dialect,
        timeout: Duration,
        create: bool,
    ) -> Result<Store, TrackerError> {
        sqlx::any::install_default_drivers();
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
            crate::session::bound(&mut conn, dialect, crate::session::MIN_IDLE),
        )
        .await;
        let mut store = Store {
            conn,
            dialect,
            env: env.to_string(),
            url: url.to_string(),
            lock_conn: None,
            has_log: true,
        };
        store.create_schema(create, timeout).await?;
        Ok(store)
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
        sqlx::raw_sql(AssertSqlSafe(sql))
            .execute(&mut self.conn)
            .await
            .map(|_| ())
            .map_err(|e| self.db_error(e))
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

    async fn create_schema(&mut self, create: bool, wait: Duration) -> Result<(), TrackerError> {
        // Reading first: an existing log needs no write lock, so opening an
        // environment never queues behind a run that holds it.
        let exists_sql = match self.dialect {
            Dialect::Postgres => {
                "SELECT count(*) FROM pg_catalog.pg_tables WHERE tablename = 'phasegate_meta' AND schemaname = current_schema()"
            }
            Dialect::Sqlite => {
                "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'phasegate_meta'"
            }
            Dialect::Mysql => {
                "SELECT count(*) FROM information_schema.tables WHERE table_name = 'phasegate_meta' AND table_schema = DATABASE()"
            }
        };
        let exists: i64 = sqlx::query_scalar(exists_sql)
            .fetch_one(&mut self.conn)
            .await
            .map_err(|e| self.db_error(e))?;
        if exists == 0 {
            if !create {
                self.has_log = false;
                return Ok(());
            }
            self.create_tables(wait).await?;
        }
        self.check_schema_version().await
    }

    /// Creates phasegate's tables, waiting at most `wait` for SQLite's write lock.
    async fn create_tables(&mut self, wait: Duration) -> Result<(), TrackerError> {
        let busy = wait.as_millis();
        let ddl = match self.dialect {
            // DDL commits as it goes on MySQL: every statement is safe to
            // repeat, so a creation killed halfway is finished by the next.
            Dialect::Mysql => format!(
                "DO GET_LOCK({lock}, {secs});
                 CREATE TABLE IF NOT EXISTS phasegate_meta (
                   `key` varchar(64) NOT NULL PRIMARY KEY,
                   value text NOT NULL
                 ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
                 CREATE TABLE IF NOT EXISTS phasegate_events (
                   id bigint NOT NULL AUTO_INCREMENT PRIMARY KEY,
                   at_ms bigint NOT NULL,
                   plan varchar(255) NULL,
                   kind varchar(64) NOT NULL,
                   phase bigint NULL,
                   step text NULL,
                   detail longtext NOT NULL,
                   actor text NOT NULL,
                   KEY phasegate_events_plan_idx (plan, id)
                 ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
                 DROP TRIGGER IF EXISTS phasegate_events_no_update;
                 CREATE TRIGGER phasegate_events_no_update BEFORE UPDATE ON phasegate_events FOR EACH ROW
                   SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'phasegate_events is append-only';
                 DROP TRIGGER IF EXISTS phasegate_events_no_delete;
                 CREATE TRIGGER phasegate_events_no_delete BEFORE DELETE ON phasegate_events FOR EACH ROW
                   SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'phasegate_events is append-only';
                 INSERT IGNORE INTO phasegate_meta (`key`, value) VALUES ('schema_version', '{SCHEMA_VERSION}');
                 DO RELEASE_LOCK({lock});",
                lock = mysql_lock_name(SCHEMA_LOCK_KEY),
                secs = wait.as_secs().max(1),
            ),
            Dialect::Postgres => format!(
                "BEGIN;
                 SELECT pg_advisory_xact_lock({SCHEMA_LOCK_KEY});
                 CREATE TABLE IF NOT EXISTS phasegate_meta (key text PRIMARY KEY, value text NOT NULL);
                 CREATE TABLE IF NOT EXISTS phasegate_events (
                   id bigserial PRIMARY KEY,
                   at_ms bigint NOT NULL,
                   plan text,
                   kind text NOT NULL,
                   phase bigint,
                   step text,
                   detail text NOT NULL DEFAULT '',
                   actor text NOT NULL
                 );
                 CREATE INDEX IF NOT EXISTS phasegate_events_plan_idx ON phasegate_events (plan, id);
                 CREATE OR REPLACE FUNCTION phasegate_events_append_only() RETURNS trigger
                   LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'phasegate_events is append-only'; END $$;
                 DROP TRIGGER IF EXISTS phasegate_events_append_only ON phasegate_events;
                 CREATE TRIGGER phasegate_events_append_only BEFORE UPDATE OR DELETE ON phasegate_events
                   FOR EACH ROW EXECUTE FUNCTION phasegate_events_append_only();
                 INSERT INTO phasegate_meta (key, value) VALUES ('schema_version', '{SCHEMA_VERSION}') ON CONFLICT (key) DO NOTHING;
                 COMMIT;"
            ),
            Dialect::Sqlite => format!(
                "PRAGMA busy_timeout = {busy};
                 BEGIN IMMEDIATE;
                 CREATE TABLE IF NOT EXISTS phasegate_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
                 CREATE TABLE IF NOT EXISTS phasegate_events (
                   id INTEGER PRIMARY KEY AUTOINCREMENT,
                   at_ms INTEGER NOT NULL,
                   plan TEXT,
                   kind TEXT NOT NULL,
                   phase INTEGER,
                   step TEXT,
                   detail TEXT NOT NULL DEFAULT '',
                   actor TEXT NOT NULL
                 );
                 CREATE INDEX IF NOT EXISTS phasegate_events_plan_idx ON phasegate_events (plan, id);
                 CREATE TRIGGER IF NOT EXISTS phasegate_events_no_update BEFORE UPDATE ON phasegate_events
                   BEGIN SELECT RAISE(ABORT, 'phasegate_events is append-only'); END;
                 CREATE TRIGGER IF NOT EXISTS phasegate_events_no_delete BEFORE DELETE ON phasegate_events
                   BEGIN SELECT RAISE(ABORT, 'phasegate_events is append-only'); END;
                 INSERT OR IGNORE INTO phasegate_meta (key, value) VALUES ('schema_version', '{SCHEMA_VERSION}');
                 COMMIT;"
            ),
        };
        if let Err(e) = self.exec(&ddl).await {
            self.rollback().await;
            if self.dialect == Dialect::Mysql {
                let _ = self
                    .exec(&format!(
                        "DO RELEASE_LOCK({})",
                        mysql_lock_name(SCHEMA_LOCK_KEY)
                    ))
                    .await;
            }
            return Err(e);
        }
        self.check_schema_version().await
    }

    /// Refuses tables written by a newer phasegate.
    async fn check_schema_version(&mut self) -> Result<(), TrackerError> {
        // `key` is a reserved word on MySQL.
        let sql = format!(
            "SELECT value FROM phasegate_meta WHERE {} = 'schema_version'",
            self.dialect.quote_ident("key")
        );
        let found: String = sqlx::query_scalar(AssertSqlSafe(sql))
            .fetch_one(&mut self.conn)
            .await
            .map_err(|e| self.db_error(e))?;
        let found = found.parse::<i64>().unwrap_or(i64::MAX);
        if found > SCHEMA_VERSION {
            return Err(TrackerError::NewerSchema {
                env: self.env.clone(),
                found,
            });
        }
        Ok(())
    }

    /// Takes this environment's lock, waiting up to `wait` for another run.
    ///
    /// Postgres: a session advisory lock. MySQL: a named lock (`GET_LOCK`)
    /// for this database, a server-wide name. SQLite: an exclusive lock on a
    /// side-car file (`<database>.phasegate-lock`), so the database itself
    /// stays writable by the application between phasegate's transactions.
    /// Every one dies with its session: a killed run never leaves it held.
    pub async fn lock(&mut self, wait: Duration) -> Result<(), TrackerError> {
        let busy = |env: &str, start: Instant| TrackerError::Busy {
            env: env.to_string(),
            waited: start.elapsed(),
        };
        let start = Instant::now();
        let try_lock = match self.dialect {
            Dialect::Postgres => format!("pg_try_advisory_lock({LOCK_KEY})"),
            Dialect::Mysql => format!(
                "COALESCE(GET_LOCK({}, 0), 0) = 1",
                mysql_lock_name(LOCK_KEY)
            ),
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
            let got: i64 = sqlx::query_scalar(AssertSqlSafe(format!(
                "SELECT CASE WHEN {try_lock} THEN 1 ELSE 0 END"
            )))
            .fetch_one(&mut self.conn)
            .await
            .map_err(|e| self.db_error(e))?;
            if got == 1 {
                return Ok(());
            }
            if start.elapsed() >= wait {
                return Err(busy(&self.env, start));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Releases the lock, waiting at most [`RELEASE_WAIT`] (a connection
    /// that went silent never answers; its session, and the lock, end on the
    /// server's side, see `crate::session`).
    pub async fn unlock(&mut self) {
        let _ = tokio::time::timeout(RELEASE_WAIT, self.unlock_now()).await;
    }

    async fn unlock_now(&mut self) {
        match self.dialect {
            Dialect::Postgres => {
                let _ = sqlx::raw_sql(AssertSqlSafe(format!(
                    "SELECT pg_advisory_unlock({LOCK_KEY})"
                )))
                .execute(&mut self.conn)
                .await;
            }
            Dialect::Sqlite => {
                if let Some(mut conn) = self.lock_conn.take() {
                    let _ = sqlx::raw_sql("ROLLBACK").execute(&mut conn).await;
                    let _ = conn.close().await;
                }
            }
            Dialect::Mysql => {
                let _ = sqlx::raw_sql(AssertSqlSafe(format!(
                    "DO RELEASE_LOCK({})",
                    mysql_lock_name(LOCK_KEY)
                )))
                .execute(&mut self.conn)
                .await;
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

    /// Appends an event (inside the caller's transaction, if one is open).
    pub async fn append(
        &mut self,
        e: &NewEvent,
        at: DateTime<Utc>,
        actor: &str,
    ) -> Result<(), TrackerError> {
        let sql = match self.dialect {
            Dialect::Postgres => {
                "INSERT INTO phasegate_events (at_ms, plan, kind, phase, step, detail, actor) VALUES ($1, $2, $3, $4, $5, $6, $7)"
            }
            Dialect::Sqlite => {
                "INSERT INTO phasegate_events (at_ms, plan, kind, phase, step, detail, actor) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"
            }
            Dialect::Mysql => {
                "INSERT INTO phasegate_events (at_ms, plan, kind, phase, step, detail, actor) VALUES (?, ?, ?, ?, ?, ?, ?)"
            }
        };
        sqlx::query(sql)
            .bind(at.timestamp_millis())
            .bind(e.plan.clone())
            .bind(e.kind.name())
            .bind(e.phase.map(|p| p as i64))
            .bind(e.step.clone())
            .bind(e.detail.clone())
            .bind(actor.to_string())
            .execute(&mut self.conn)
            .await
            .map(|_| ())
            .map_err(|err| self.db_error(err))
    }

    /// The events of `plan` (or of every plan), with the environment-wide ones, in order.
    pub async fn events(&mut self, plan: Option<&str>) -> Result<Vec<Event>, TrackerError> {
        if !self.has_log {
            return Ok(Vec::new());
        }
        let base = "SELECT id, at_ms, plan, kind, phase, step, detail, actor FROM phasegate_events";
        let rows = match plan {
            Some(p) => {
                let sql = match self.dialect {
                    Dialect::Postgres => {
                        format!("{base} WHERE plan = $1 OR plan IS NULL ORDER BY id")
                    }
                    Dialect::Sqlite => {
                        format!("{base} WHERE plan = ?1 OR plan IS NULL ORDER BY id")
                    }
                    Dialect::Mysql => format!("{base} WHERE plan = ? OR plan IS NULL ORDER BY id"),
                };
                sqlx::query(AssertSqlSafe(sql))
                    .bind(p.to_string())
                    .fetch_all(&mut self.conn)
                    .await
            }
            None => {
                sqlx::query(AssertSqlSafe(format!("{base} ORDER BY id")))
                    .fetch_all(&mut self.conn)
                    .await
            }
        }
        .map_err(|e| self.db_error(e))?;
        rows.iter()
            .map(|r| {
                let get = |e: sqlx::Error| self.db_error(e);
                let kind: String = r.try_get("kind").map_err(get)?;
                let at_ms: i64 = r.try_get("at_ms").map_err(get)?;
                let phase: Option<i64> = r.try_get("phase").map_err(get)?;
                Ok(Event {
                    id: r.try_get("id").map_err(get)?,
                    at: Utc
                        .timestamp_millis_opt(at_ms)
                        .single()
                        .unwrap_or(DateTime::<Utc>::UNIX_EPOCH),
                    plan: r.try_get("plan").map_err(get)?,
                    kind: EventKind::parse(&kind).ok_or_else(|| TrackerError::UnknownEvent {
                        env: self.env.clone(),
                        kind: kind.clone(),
                    })?,
                    phase: phase.and_then(|p| usize::try_from(p).ok()),
                    step: r.try_get("step").map_err(get)?,
                    detail: r.try_get("detail").map_err(get)?,
                    actor: r.try_get("actor").map_err(get)?,
                })
            })
            .collect()
    }

    /// Releases the lock and closes the connection, each within [`RELEASE_WAIT`].
    pub async fn close(mut self) {
        self.unlock().await;
        let _ = tokio::time::timeout(RELEASE_WAIT, self.conn.close()).await;
    }
}

/// SQLite's "database is locked" / "database is busy".
pub fn is_busy(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.code().as_deref().is_some_and(|c| c == "5" || c == "6")
        || db.message().contains("database is locked"))
}

/// The server-wide name of a MySQL named lock for this database: `key`
/// and a digest of the database name, within MySQL's 64-character limit.
fn mysql_lock_name(key: i64) -> String {
    format!("CONCAT('phasegate:{key:x}:', SHA1(DATABASE()))")
}

/// `sqlite:///x/app.db?mode=rwc` → `sqlite:///x/app.db.phasegate-lock?mode=rwc`.
fn sqlite_lock_url(url: &str) -> String {
    let (path, _) = url.split_once('?').unwrap_or((url, ""));
    format!("{path}.phasegate-lock?mode=rwc")
}

/// For a service at start-up: has this database reached (at least migrated)
/// phase `phase` of plan `plan`? Fail fast when the schema is older than the
/// code. Reads the event log only; never writes.
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
    sqlx::any::install_default_drivers();
    let env = "database".to_string();
    let mut conn = AnyConnection::connect(database_url)
        .await
        .map_err(|source| TrackerError::Connect {
            env: env.clone(),
            source,
        })?;
    let sql = if database_url.starts_with("sqlite") {
        "SELECT id, at_ms, plan, kind, phase, step, detail, actor FROM phasegate_events WHERE plan = ?1 ORDER BY id"
    } else if database_url.starts_with("mysql") {
        "SELECT id, at_ms, plan, kind, phase, step, detail, actor FROM phasegate_events WHERE plan = ? ORDER BY id"
    } else {
        "SELECT id, at_ms, plan, kind, phase, step, detail, actor FROM phasegate_events WHERE plan = $1 ORDER BY id"
    };
    let rows = match sqlx::query(sql)
        .bind(plan.to_string())
        .fetch_all(&mut conn)
        .await
    {
        Ok(rows) => rows,
        // No event log: nothing was ever applied here.
        Err(sqlx::Error::Database(e)) if e.message().contains("phasegate_events") => {
            return Ok(false);
        }
        Err(source) => return Err(TrackerError::Database { env, source }),
    };
    let events: Vec<Event> = rows
        .iter()
        .filter_map(|r| {
            let kind = EventKind::parse(&r.try_get::<String, _>("kind").ok()?)?;
            Some(Event {
                id: r.try_get("id").ok()?,
                at: DateTime::<Utc>::UNIX_EPOCH,
                plan: None,
                kind,
                phase: r
                    .try_get::<Option<i64>, _>("phase")
                    .ok()?
                    .and_then(|p| usize::try_from(p).ok()),
                step: r.try_get("step").ok()?,
                detail: r.try_get("detail").ok()?,
                actor: String::new(),
            })
        })
        .collect();
    let _ = conn.close().await;
    let phases = events
        .iter()
        .filter_map(|e| e.phase)
        .max()
        .unwrap_or(0)
        .max(phase);
    let state = derive(&events, phases);
    Ok(state
        .phase(phase)
        .is_some_and(|p| p.status >= PhaseStatus::Migrated))
}
