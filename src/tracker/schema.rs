//! phasegate's own tables in an environment's database: reading their
//! version, creating them on first use and migrating older ones, safely when
//! several runs open a fresh database at once.
//!
//! The tables: `phasegate_meta` (schema version, and the name of the
//! environment that owns the database), `phasegate_events` (the log, with
//! its hash chain, see [`super::chain`]) and `phasegate_head` (the log's
//! last event), and the read-only view `phasegate_status` over the log
//! ([`super::status_view`]). Creating or migrating them happens under a
//! lock taken before anything is created (Postgres: a transaction-scoped
//! advisory lock, in the transaction that creates them; MySQL: `GET_LOCK`;
//! SQLite: `BEGIN IMMEDIATE`), and the version row is written last, so a
//! run that sees the version row sees every table, trigger, the view and the
//! head row.

use std::time::Duration;

use sqlx::{AnyConnection, AssertSqlSafe, Row};

use super::chain::{self, StoredEvent};
use super::guards;
use super::store::TrackerError;
use crate::dialect::Dialect;

/// The version of phasegate's own tables. 1: the log and meta tables.
/// 2: the hash chain (`prev_hash`, `hash`), `phasegate_head`, the
/// environment marker and the truncate/delete guards. 3: the
/// `phasegate_status` view (see [`super::status_view`]).
pub const SCHEMA_VERSION: i64 = 3;

/// The advisory-lock key that serialises creating phasegate's tables.
const SCHEMA_LOCK_KEY: i64 = 0x7068_6173_6567_6174 + 1;

/// The version row's value, `None` when there is no version row (the
/// tables do not exist, or their creation has not finished).
pub(crate) async fn read_version(
    conn: &mut AnyConnection,
    dialect: Dialect,
) -> Result<Option<i64>, sqlx::Error> {
    if !table_exists(conn, dialect, "phasegate_meta").await? {
        return Ok(None);
    }
    let v: Option<String> = sqlx::query_scalar(AssertSqlSafe(format!(
        "SELECT value FROM phasegate_meta WHERE {} = 'schema_version'",
        dialect.quote_ident("key")
    )))
    .fetch_optional(&mut *conn)
    .await?;
    // An unreadable version is treated as newer than this phasegate knows.
    Ok(v.map(|v| v.trim().parse::<i64>().unwrap_or(i64::MAX)))
}

/// The environment recorded as owning this database, if any.
pub(crate) async fn read_owner(
    conn: &mut AnyConnection,
    dialect: Dialect,
) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar(AssertSqlSafe(format!(
        "SELECT value FROM phasegate_meta WHERE {} = 'environment'",
        dialect.quote_ident("key")
    )))
    .fetch_optional(&mut *conn)
    .await
}

/// Records `env` as the owner when no environment is recorded yet.
pub(crate) async fn claim(
    conn: &mut AnyConnection,
    dialect: Dialect,
    env: &str,
) -> Result<(), sqlx::Error> {
    let sql = format!(
        "{} INTO phasegate_meta ({}, value) VALUES ('environment', {}){}",
        match dialect {
            Dialect::Mysql => "INSERT IGNORE",
            Dialect::Sqlite => "INSERT OR IGNORE",
            Dialect::Postgres => "INSERT",
        },
        dialect.quote_ident("key"),
        dialect.quote_literal(env),
        if dialect == Dialect::Postgres {
            " ON CONFLICT (key) DO NOTHING"
        } else {
            ""
        }
    );
    sqlx::raw_sql(AssertSqlSafe(sql))
        .execute(&mut *conn)
        .await
        .map(|_| ())
}

async fn table_exists(
    conn: &mut AnyConnection,
    dialect: Dialect,
    table: &str,
) -> Result<bool, sqlx::Error> {
    let sql = match dialect {
        Dialect::Postgres => format!(
            "SELECT count(*) FROM pg_catalog.pg_tables WHERE tablename = {} AND schemaname = current_schema()",
            dialect.quote_literal(table)
        ),
        Dialect::Sqlite => format!(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = {}",
            dialect.quote_literal(table)
        ),
        Dialect::Mysql => format!(
            "SELECT count(*) FROM information_schema.tables WHERE table_name = {} AND table_schema = DATABASE()",
            dialect.quote_literal(table)
        ),
    };
    let n: i64 = sqlx::query_scalar(AssertSqlSafe(sql))
        .fetch_one(&mut *conn)
        .await?;
    Ok(n > 0)
}

async fn column_exists(
    conn: &mut AnyConnection,
    dialect: Dialect,
    table: &str,
    column: &str,
) -> Result<bool, sqlx::Error> {
    let sql = match dialect {
        Dialect::Postgres => format!(
            "SELECT count(*) FROM information_schema.columns WHERE table_name = {} AND column_name = {} AND table_schema = current_schema()",
            dialect.quote_literal(table),
            dialect.quote_literal(column)
        ),
        Dialect::Sqlite => format!(
            "SELECT count(*) FROM pragma_table_info({}) WHERE name = {}",
            dialect.quote_literal(table),
            dialect.quote_literal(column)
        ),
        Dialect::Mysql => format!(
            "SELECT count(*) FROM information_schema.columns WHERE table_name = {} AND column_name = {} AND table_schema = DATABASE()",
            dialect.quote_literal(table),
            dialect.quote_literal(column)
        ),
    };
    let n: i64 = sqlx::query_scalar(AssertSqlSafe(sql))
        .fetch_one(&mut *conn)
        .await?;
    Ok(n > 0)
}

async fn exec(conn: &mut AnyConnection, sql: &str) -> Result<(), sqlx::Error> {
    sqlx::raw_sql(AssertSqlSafe(sql.to_string()))
        .execute(&mut *conn)
        .await
        .map(|_| ())
}

/// The server-wide name of a MySQL named lock for this database: `key`
/// and a digest of the database name, within MySQL's 64-character limit.
pub(crate) fn mysql_lock_name(key: i64) -> String {
    format!("CONCAT('phasegate:{key:x}:', SHA1(DATABASE()))")
}

/// Creates phasegate's tables, or migrates older ones, for environment
/// `env`: under the schema lock, re-reading the version once it is held,
/// so of several runs opening a fresh database one creates and the others
/// find the tables made. Waits at most `wait` for the lock.
pub(crate) async fn ensure(
    conn: &mut AnyConnection,
    dialect: Dialect,
    env: &str,
    wait: Duration,
) -> Result<(), TrackerError> {
    let db = |source| TrackerError::Database {
        env: env.to_string(),
        source,
    };
    match dialect {
        Dialect::Postgres => {
            exec(
                conn,
                &format!("BEGIN; SELECT pg_advisory_xact_lock({SCHEMA_LOCK_KEY})"),
            )
            .await
            .map_err(db)?;
        }
        Dialect::Sqlite => {
            let begin = format!(
                "PRAGMA busy_timeout = {}; BEGIN IMMEDIATE",
                wait.as_millis()
            );
            if let Err(e) = exec(conn, &begin).await {
                // The application's write transaction, not another run
                // (runs are serialised by the side-car lock file).
                return Err(if super::is_busy(&e) {
                    TrackerError::WriteLocked {
                        env: env.to_string(),
                        lock_timeout: wait,
                        attempts: 1,
                    }
                } else {
                    db(e)
                });
            }
        }
        Dialect::Mysql => {
            let got: i64 = sqlx::query_scalar(AssertSqlSafe(format!(
                "SELECT COALESCE(GET_LOCK({}, {}), 0)",
                mysql_lock_name(SCHEMA_LOCK_KEY),
                wait.as_secs().max(1)
            )))
            .fetch_one(&mut *conn)
            .await
            .map_err(db)?;
            if got != 1 {
                return Err(TrackerError::Busy {
                    env: env.to_string(),
                    waited: wait,
                });
            }
        }
    }
    let result = create_or_migrate(conn, dialect, env).await.map_err(db);
    match dialect {
        Dialect::Postgres | Dialect::Sqlite => {
            let end = if result.is_ok() { "COMMIT" } else { "ROLLBACK" };
            let ended = exec(conn, end).await;
            if result.is_ok() {
                ended.map_err(db)?;
            }
        }
        Dialect::Mysql => {
            let _ = exec(
                conn,
                &format!("DO RELEASE_LOCK({})", mysql_lock_name(SCHEMA_LOCK_KEY)),
            )
            .await;
        }
    }
    result
}

/// Under the schema lock: brings the tables to [`SCHEMA_VERSION`]. Every
/// statement is safe to repeat, so a creation or migration killed halfway
/// (MySQL commits each DDL as it goes) is finished by the next run.
async fn create_or_migrate(
    conn: &mut AnyConnection,
    dialect: Dialect,
    env: &str,
) -> Result<(), sqlx::Error> {
    if read_version(conn, dialect)
        .await?
        .is_some_and(|v| v >= SCHEMA_VERSION)
    {
        return Ok(());
    }
    exec(conn, tables_sql(dialect)).await?;
    for column in ["prev_hash", "hash"] {
        if !column_exists(conn, dialect, "phasegate_events", column).await? {
            let ty = if dialect == Dialect::Mysql {
                "varchar(64) NULL"
            } else {
                "text"
            };
            exec(
                conn,
                &format!("ALTER TABLE phasegate_events ADD COLUMN {column} {ty}"),
            )
            .await?;
        }
    }
    let has_head: i64 = sqlx::query_scalar("SELECT count(*) FROM phasegate_head")
        .fetch_one(&mut *conn)
        .await?;
    if has_head == 0 {
        chain_existing(conn, dialect, env).await?;
    }
    for sql in guards::guards_sql(dialect) {
        exec(conn, &sql).await?;
    }
    for sql in super::status_view::view_sql(dialect) {
        exec(conn, &sql).await?;
    }
    claim(conn, dialect, env).await?;
    // The version row last: whoever sees it sees everything above.
    let key = dialect.quote_ident("key");
    let version = match dialect {
        Dialect::Postgres => format!(
            "INSERT INTO phasegate_meta (key, value) VALUES ('schema_version', '{SCHEMA_VERSION}') ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value"
        ),
        Dialect::Sqlite => format!(
            "INSERT INTO phasegate_meta (key, value) VALUES ('schema_version', '{SCHEMA_VERSION}') ON CONFLICT (key) DO UPDATE SET value = excluded.value"
        ),
        Dialect::Mysql => format!(
            "INSERT INTO phasegate_meta ({key}, value) VALUES ('schema_version', '{SCHEMA_VERSION}') ON DUPLICATE KEY UPDATE value = VALUES(value)"
        ),
    };
    exec(conn, &version).await
}

/// Computes the chain of the events already in the log (a log written
/// before the chain existed: every row is taken as it is), starting from
/// `env`'s [`chain::genesis`], and writes the head. The update guard is
/// dropped for it and put back by [`guards::guards_sql`].
async fn chain_existing(
    conn: &mut AnyConnection,
    dialect: Dialect,
    env: &str,
) -> Result<(), sqlx::Error> {
    let drop_guard = match dialect {
        Dialect::Postgres => {
            "DROP TRIGGER IF EXISTS phasegate_events_append_only ON phasegate_events"
        }
        Dialect::Sqlite | Dialect::Mysql => "DROP TRIGGER IF EXISTS phasegate_events_no_update",
    };
    exec(conn, drop_guard).await?;
    let rows = read_unchained(conn).await?;
    let mut prev = chain::genesis(env);
    let mut last_id = 0i64;
    let mut count = 0i64;
    for e in &rows {
        let hash = e.expected_hash(&prev);
        let sql = format!(
            "UPDATE phasegate_events SET prev_hash = {}, hash = {} WHERE id = {}",
            dialect.quote_literal(&prev),
            dialect.quote_literal(&hash),
            e.id
        );
        exec(conn, &sql).await?;
        prev = hash;
        last_id = e.id;
        count += 1;
    }
    let head = format!(
        "INSERT INTO phasegate_head (id, last_id, last_hash, events) VALUES (1, {last_id}, {}, {count})",
        dialect.quote_literal(&prev)
    );
    exec(conn, &head).await
}

/// The tables, as created fresh (idempotent).
fn tables_sql(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::Mysql => {
            "CREATE TABLE IF NOT EXISTS phasegate_meta (
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
               prev_hash varchar(64) NULL,
               hash varchar(64) NULL,
               KEY phasegate_events_plan_idx (plan, id)
             ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
             CREATE TABLE IF NOT EXISTS phasegate_head (
               id int NOT NULL PRIMARY KEY,
               last_id bigint NOT NULL,
               last_hash varchar(64) NOT NULL,
               events bigint NOT NULL
             ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"
        }
        Dialect::Postgres => {
            "CREATE TABLE IF NOT EXISTS phasegate_meta (key text PRIMARY KEY, value text NOT NULL);
             CREATE TABLE IF NOT EXISTS phasegate_events (
               id bigserial PRIMARY KEY,
               at_ms bigint NOT NULL,
               plan text,
               kind text NOT NULL,
               phase bigint,
               step text,
               detail text NOT NULL DEFAULT '',
               actor text NOT NULL,
               prev_hash text,
               hash text
             );
             CREATE INDEX IF NOT EXISTS phasegate_events_plan_idx ON phasegate_events (plan, id);
             CREATE TABLE IF NOT EXISTS phasegate_head (
               id integer PRIMARY KEY CHECK (id = 1),
               last_id bigint NOT NULL,
               last_hash text NOT NULL,
               events bigint NOT NULL
             )"
        }
        Dialect::Sqlite => {
            "CREATE TABLE IF NOT EXISTS phasegate_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
             CREATE TABLE IF NOT EXISTS phasegate_events (
               id INTEGER PRIMARY KEY AUTOINCREMENT,
               at_ms INTEGER NOT NULL,
               plan TEXT,
               kind TEXT NOT NULL,
               phase INTEGER,
               step TEXT,
               detail TEXT NOT NULL DEFAULT '',
               actor TEXT NOT NULL,
               prev_hash TEXT,
               hash TEXT
             );
             CREATE INDEX IF NOT EXISTS phasegate_events_plan_idx ON phasegate_events (plan, id);
             CREATE TABLE IF NOT EXISTS phasegate_head (
               id INTEGER PRIMARY KEY CHECK (id = 1),
               last_id INTEGER NOT NULL,
               last_hash TEXT NOT NULL,
               events INTEGER NOT NULL
             )"
        }
    }
}

/// The whole log and its head, as [`read_chain`] returns them (`None`
/// for a head that is missing).
pub(crate) type Chain = (Vec<StoredEvent>, Option<chain::Head>);

/// Reads the whole log with its chain columns, and the head, for
/// [`chain::verify`]; `None` when the event table itself is gone.
pub(crate) async fn read_chain(
    conn: &mut AnyConnection,
    dialect: Dialect,
) -> Result<Option<Chain>, sqlx::Error> {
    if !table_exists(conn, dialect, "phasegate_events").await? {
        return Ok(None);
    }
    // The head first: the log is append-only, so the rows read after it
    // hold every event it counts (and perhaps later ones, which
    // [`chain::verify`] accepts when they follow it).
    let head = read_head(conn, dialect).await?;
    let rows = sqlx::query(
        "SELECT id, at_ms, plan, kind, phase, step, detail, actor, prev_hash, hash FROM phasegate_events ORDER BY id",
    )
    .fetch_all(&mut *conn)
    .await?;
    let mut events = Vec::with_capacity(rows.len());
    for r in &rows {
        events.push(StoredEvent {
            id: r.try_get("id")?,
            at_ms: r.try_get("at_ms")?,
            plan: r.try_get("plan")?,
            kind: r.try_get("kind")?,
            phase: r.try_get("phase")?,
            step: r.try_get("step")?,
            detail: r.try_get("detail")?,
            actor: r.try_get("actor")?,
            prev_hash: r.try_get("prev_hash")?,
            hash: r.try_get("hash")?,
        });
    }
    Ok(Some((events, head)))
}

/// The head row (`None` when it or its table is gone).
async fn read_head(
    conn: &mut AnyConnection,
    dialect: Dialect,
) -> Result<Option<chain::Head>, sqlx::Error> {
    if !table_exists(conn, dialect, "phasegate_head").await? {
        // The head table dropped: as missing as its row.
        return Ok(None);
    }
    sqlx::query("SELECT last_id, last_hash, events FROM phasegate_head WHERE id = 1")
        .fetch_optional(&mut *conn)
        .await?
        .map(|r| -> Result<chain::Head, sqlx::Error> {
            Ok(chain::Head {
                last_id: r.try_get("last_id")?,
                last_hash: r.try_get("last_hash")?,
                events: r.try_get("events")?,
            })
        })
        .transpose()
}

/// Reads a log from before the chain (schema version 1), as it is.
pub(crate) async fn read_unchained(
    conn: &mut AnyConnection,
) -> Result<Vec<StoredEvent>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT id, at_ms, plan, kind, phase, step, detail, actor FROM phasegate_events ORDER BY id",
    )
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(StoredEvent {
                id: r.try_get("id")?,
                at_ms: r.try_get("at_ms")?,
                plan: r.try_get("plan")?,
                kind: r.try_get("kind")?,
                phase: r.try_get("phase")?,
                step: r.try_get("step")?,
                detail: r.try_get("detail")?,
                actor: r.try_get("actor")?,
                prev_hash: None,
                hash: None,
            })
        })
        .collect()
}
