//! Whether the run holding an environment's lock is still alive.
//!
//! A phasegate process that is killed (or whose host loses the network)
//! leaves behind whatever statement it had sent: the server carries on with
//! it (`execute::session`), and where that statement's session holds the
//! environment's lock, the lock stays held too. From outside, such a
//! leftover and a live run busy with a long step look alike: the lock is
//! taken, and the step recorded as started runs on a connected session. A
//! run must wait for a live one, and refuse at once, naming the session,
//! when the one before it is gone.
//!
//! To tell them apart, the run that holds the lock also holds a second,
//! *presence* lock on an idle connection of its own that never runs a
//! statement. The server ends an idle session as soon as its client's
//! socket closes (the session is blocked reading its next command, and
//! reads end-of-file), so the presence lock dies with the process, while a
//! statement still running on the server keeps the environment's lock. A
//! host that vanishes without closing its sockets is noticed later, when
//! the keepalive bounds of `crate::session_bounds` end the session.
//!
//! Postgres: a session advisory lock (Postgres docs, "Advisory Locks").
//! MySQL/MariaDB: a named lock, `GET_LOCK` (MySQL 5.7 and MariaDB 10.0.2
//! on: a session may hold several). SQLite has no server sessions: its
//! lock is a file lock that dies with the process, and there is nothing
//! to tell apart.

use std::time::{Duration, Instant};

use sqlx::{AnyConnection, AssertSqlSafe, Connection};

use super::schema::mysql_lock_name;
use super::store::{LOCK_KEY, RELEASE_WAIT};
use crate::dialect::Dialect;

/// The presence lock's key: the environment lock's, plus two (plus one is
/// the schema lock's).
const PRESENCE_KEY: i64 = LOCK_KEY + 2;
/// How long taking the presence lock may wait: only a probe
/// ([`holder_alive`]) ever holds it besides the run, and only for one
/// statement.
const TAKE_WAIT: Duration = Duration::from_secs(5);

/// The SQL expression that tries session lock `key` once without waiting,
/// true when taken: shared by the environment's lock (`store`) and the
/// presence lock. `None` for SQLite, whose lock is a file lock.
pub(super) fn try_lock_expr(dialect: Dialect, key: i64) -> Option<String> {
    match dialect {
        Dialect::Postgres => Some(format!("pg_try_advisory_lock({key})")),
        Dialect::Mysql => Some(format!(
            "COALESCE(GET_LOCK({}, 0), 0) = 1",
            mysql_lock_name(key)
        )),
        Dialect::Sqlite => None,
    }
}

/// The statement that releases session lock `key`. `None` for SQLite.
pub(super) fn release_lock_sql(dialect: Dialect, key: i64) -> Option<String> {
    match dialect {
        Dialect::Postgres => Some(format!("SELECT pg_advisory_unlock({key})")),
        Dialect::Mysql => Some(format!("DO RELEASE_LOCK({})", mysql_lock_name(key))),
        Dialect::Sqlite => None,
    }
}

/// The SQL that tries the presence lock once, answering 1 when taken
/// (compared in SQL: each driver spells a boolean its own way).
fn try_sql(dialect: Dialect) -> Option<String> {
    let try_lock = try_lock_expr(dialect, PRESENCE_KEY)?;
    Some(format!("SELECT CASE WHEN {try_lock} THEN 1 ELSE 0 END"))
}

/// Tries the presence lock once on `conn`, within `wait`: `Some(true)` when
/// taken, `Some(false)` when another session holds it, `None` when the
/// server did not answer or refused.
async fn try_once(conn: &mut AnyConnection, sql: &str, wait: Duration) -> Option<bool> {
    let answer = tokio::time::timeout(
        wait,
        sqlx::query_scalar::<_, i64>(AssertSqlSafe(sql.to_string())).fetch_one(conn),
    )
    .await;
    match answer {
        Ok(Ok(got)) => Some(got == 1),
        _ => None,
    }
}

/// The presence lock, held on a connection of its own while a run holds the
/// environment's lock; released (and the connection closed) by
/// [`Presence::release`], or by the server when the process dies.
pub struct Presence {
    conn: AnyConnection,
}

impl std::fmt::Debug for Presence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Presence")
    }
}

impl Presence {
    /// Connects to `url` (already in the driver's spelling; within 5 s)
    /// and takes the presence lock, trying every 50 ms for up to 5 s (a
    /// probe holds it for one statement). `None` for SQLite, and when the connection or the
    /// lock cannot be had: presence is a hint for other runs, so a run
    /// goes on without it (they then judge it gone only when a step it
    /// recorded still runs and the environment's lock is free or held by
    /// a leftover, and otherwise wait as before).
    pub(crate) async fn take(url: &str, dialect: Dialect) -> Option<Presence> {
        let sql = try_sql(dialect)?;
        let mut conn = tokio::time::timeout(TAKE_WAIT, AnyConnection::connect(url))
            .await
            .ok()?
            .ok()?;
        let _ = tokio::time::timeout(
            TAKE_WAIT,
            crate::session_bounds::bound(&mut conn, dialect, crate::session_bounds::MIN_IDLE),
        )
        .await;
        let start = Instant::now();
        loop {
            match try_once(&mut conn, &sql, TAKE_WAIT).await {
                Some(true) => return Some(Presence { conn }),
                Some(false) if start.elapsed() < TAKE_WAIT => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                _ => {
                    let _ = tokio::time::timeout(RELEASE_WAIT, conn.close()).await;
                    return None;
                }
            }
        }
    }

    /// Releases the lock by closing its connection, within
    /// [`RELEASE_WAIT`] (a session that ends frees its locks).
    pub(crate) async fn release(self) {
        let _ = tokio::time::timeout(RELEASE_WAIT, self.conn.close()).await;
    }
}

/// Whether a live run holds the presence lock of the database `conn` is
/// connected to: tries it once and, when taken, gives it straight back
/// (`false`: no live run). `None` when that cannot be told (SQLite, no
/// answer within `wait`, a refusal).
pub(crate) async fn holder_alive(
    conn: &mut AnyConnection,
    dialect: Dialect,
    wait: Duration,
) -> Option<bool> {
    let sql = try_sql(dialect)?;
    let taken = try_once(conn, &sql, wait).await?;
    if taken && let Some(release) = release_lock_sql(dialect, PRESENCE_KEY) {
        let _ = tokio::time::timeout(
            RELEASE_WAIT,
            sqlx::raw_sql(AssertSqlSafe(release)).execute(&mut *conn),
        )
        .await;
    }
    Some(!taken)
}
