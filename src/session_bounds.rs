//! What phasegate asks of the server for each session that may hold an
//! environment's lock, so that a client that dies or goes silent (a
//! half-open TCP connection, a NAT or firewall that forgot the flow) has its
//! session ended by the server, and the lock and the row locks with it,
//! within a bounded time.
//!
//! sqlx does not expose the socket, so phasegate cannot turn on TCP
//! keepalive on its own side; the client side is bounded by deadlines in the
//! executor instead (`execute::deadline`). These settings bound the server
//! side:
//!
//! - **Postgres**: TCP keepalives on the server's socket (a peer that stops
//!   answering is dropped after [`KEEPALIVE_IDLE`] + [`KEEPALIVE_COUNT`] ×
//!   [`KEEPALIVE_INTERVAL`] of silence, 25 s), `tcp_user_timeout` (data the
//!   server sent unacknowledged for [`USER_TIMEOUT`]), and
//!   `idle_in_transaction_session_timeout` ([`IDLE_IN_TRANSACTION`]: phasegate
//!   never waits inside a transaction), and `idle_session_timeout` (the
//!   `idle` given: phasegate's longest legitimate pause between statements,
//!   see [`idle_bound`]). Settings the server does not know (an older
//!   version) are skipped.
//! - **MySQL/MariaDB**: the session's `wait_timeout` (`idle`), and
//!   `net_read_timeout` / `net_write_timeout`; on MariaDB also
//!   `idle_transaction_timeout` ([`IDLE_IN_TRANSACTION`]).
//! - **SQLite**: nothing (no network).
//!
//! They are asked for on a best-effort basis: a server or proxy that refuses
//! one still serves phasegate, without that bound.

use std::time::Duration;

use sqlx::{AnyConnection, AssertSqlSafe};

use crate::dialect::Dialect;

/// Seconds of silence before the server's first keepalive probe (Postgres).
pub const KEEPALIVE_IDLE: Duration = Duration::from_secs(10);
/// Seconds between keepalive probes (Postgres).
pub const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(5);
/// Unanswered probes before the server drops the connection (Postgres).
pub const KEEPALIVE_COUNT: u32 = 3;
/// How long data the server sent may stay unacknowledged (Postgres `tcp_user_timeout`).
pub const USER_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a session may sit idle inside an open transaction before the
/// server ends it. phasegate sends a transaction's statements back to back.
pub const IDLE_IN_TRANSACTION: Duration = Duration::from_secs(60);
/// The shortest idle bound a session gets (see [`idle_bound`]).
pub const MIN_IDLE: Duration = Duration::from_secs(300);
/// How long the server waits for the rest of a packet it is reading, and
/// for a packet it writes to be taken (MySQL/MariaDB `net_read_timeout`,
/// `net_write_timeout`).
pub const NET_TIMEOUT: Duration = Duration::from_secs(60);

/// How long a phasegate session may sit idle between statements (outside a
/// transaction) before the server ends it: [`MIN_IDLE`], or longer when
/// the environment pauses longer between backfill batches (`pause` + 60 s).
pub fn idle_bound(pause: Duration) -> Duration {
    MIN_IDLE.max(pause + Duration::from_secs(60))
}

/// The statements that ask the server for these bounds, as they are sent.
pub fn settings(dialect: Dialect, idle: Duration) -> Vec<String> {
    let ms = |d: Duration| d.as_millis();
    let secs = |d: Duration| d.as_secs().max(1);
    match dialect {
        // set_config only for settings this server knows
        // (current_setting(…, true) is NULL for the others).
        Dialect::Postgres => vec![format!(
            "SELECT set_config(s.name, s.value, false) FROM (VALUES \
             ('tcp_keepalives_idle', '{}'), ('tcp_keepalives_interval', '{}'), \
             ('tcp_keepalives_count', '{KEEPALIVE_COUNT}'), ('tcp_user_timeout', '{}'), \
             ('idle_in_transaction_session_timeout', '{}'), ('idle_session_timeout', '{}')) \
             AS s(name, value) WHERE current_setting(s.name, true) IS NOT NULL",
            KEEPALIVE_IDLE.as_secs(),
            KEEPALIVE_INTERVAL.as_secs(),
            ms(USER_TIMEOUT),
            ms(IDLE_IN_TRANSACTION),
            ms(idle),
        )],
        Dialect::Mysql => vec![format!(
            "SET SESSION wait_timeout = {}, SESSION net_read_timeout = {}, SESSION net_write_timeout = {}\
             /*M!100300 , SESSION idle_transaction_timeout = {} */",
            secs(idle),
            secs(NET_TIMEOUT),
            secs(NET_TIMEOUT),
            secs(IDLE_IN_TRANSACTION),
        )],
        Dialect::Sqlite => Vec::new(),
    }
}

/// phasegate's `lock_timeout` when an environment sets none: how long each
/// DDL statement waits for its lock before giving way.
pub const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_secs(2);

/// The bounds each step's statements run under: how long a statement waits
/// for its lock, and how long it may run. An environment's `lock_timeout`
/// and `statement_timeout`; [`StepBounds::default`] when planning without one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StepBounds {
    /// How long a statement waits for a lock before it gives way.
    pub lock_timeout: Duration,
    /// `None`: the server's own.
    pub statement_timeout: Option<Duration>,
}

impl Default for StepBounds {
    fn default() -> Self {
        StepBounds {
            lock_timeout: DEFAULT_LOCK_TIMEOUT,
            statement_timeout: None,
        }
    }
}

/// What runs before a step's own SQL: the transaction's start (when
/// `transactional`) and the lock and statement timeouts. `apply` sends
/// exactly these (per statement when the step is not transactional), and the
/// exported scripts print them (`output::script`).
///
/// SQLite's lock wait is its connection's busy timeout, which phasegate sets
/// once per connection ([`sqlite_busy_timeout`]).
pub fn step_prelude(dialect: Dialect, bounds: StepBounds, transactional: bool) -> Vec<String> {
    let ms = |d: Duration| d.as_millis();
    match (dialect, transactional) {
        (Dialect::Postgres, true) => {
            let mut v = vec![
                "BEGIN;".to_string(),
                format!("SET LOCAL lock_timeout = '{}ms';", ms(bounds.lock_timeout)),
            ];
            if let Some(t) = bounds.statement_timeout {
                v.push(format!("SET LOCAL statement_timeout = '{}ms';", ms(t)));
            }
            v
        }
        (Dialect::Postgres, false) => {
            let mut v = vec![format!(
                "SET lock_timeout = '{}ms';",
                ms(bounds.lock_timeout)
            )];
            if let Some(t) = bounds.statement_timeout {
                v.push(format!("SET statement_timeout = '{}ms';", ms(t)));
            }
            v
        }
        (Dialect::Sqlite, true) => vec!["BEGIN IMMEDIATE;".to_string()],
        // The connection's busy timeout bounds each statement's lock wait.
        (Dialect::Sqlite, false) => Vec::new(),
        (Dialect::Mysql, transactional) => {
            // MariaDB bounds any statement with `max_statement_time`; the
            // `/*M! … */` comment runs there only. MySQL has no bound for
            // DDL (`max_execution_time` covers SELECT only).
            let bound = bounds.statement_timeout.map_or(String::new(), |t| {
                format!(" /*M!, SESSION max_statement_time = {} */", t.as_secs_f64())
            });
            let mut v = vec![format!(
                "{}{bound};",
                crate::dialect::mysql_lock_wait(bounds.lock_timeout)
            )];
            if transactional {
                v.push("START TRANSACTION;".to_string());
            }
            v
        }
    }
}

/// What runs after a step's own SQL (see [`step_prelude`]).
pub fn step_postlude(dialect: Dialect, transactional: bool) -> Vec<String> {
    match (dialect, transactional) {
        (Dialect::Postgres, false) => vec![
            "RESET lock_timeout;".into(),
            "RESET statement_timeout;".into(),
        ],
        (Dialect::Mysql | Dialect::Sqlite, false) => Vec::new(),
        _ => vec!["COMMIT;".into()],
    }
}

/// SQLite's lock wait, as phasegate sets it on each connection it opens:
/// `PRAGMA busy_timeout = <ms>;`.
pub fn sqlite_busy_timeout(wait: Duration) -> String {
    format!("PRAGMA busy_timeout = {};", wait.as_millis())
}

/// Sends [`settings`] on `conn`.
pub async fn bound(
    conn: &mut AnyConnection,
    dialect: Dialect,
    idle: Duration,
) -> Result<(), sqlx::Error> {
    for sql in settings(dialect, idle) {
        sqlx::raw_sql(AssertSqlSafe(sql))
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_idle_bound_outlasts_the_backfill_pause() {
        assert_eq!(idle_bound(Duration::ZERO), MIN_IDLE);
        assert_eq!(
            idle_bound(Duration::from_secs(600)),
            Duration::from_secs(660)
        );
    }

    #[test]
    fn each_dialect_asks_for_its_bounds() {
        let pg = settings(Dialect::Postgres, Duration::from_secs(300)).join("\n");
        for s in [
            "('tcp_keepalives_idle', '10')",
            "('tcp_user_timeout', '30000')",
            "('idle_in_transaction_session_timeout', '60000')",
            "('idle_session_timeout', '300000')",
            "current_setting(s.name, true) IS NOT NULL",
        ] {
            assert!(pg.contains(s), "{s} in {pg}");
        }
        let my = settings(Dialect::Mysql, Duration::from_secs(300)).join("\n");
        assert!(my.contains("SESSION wait_timeout = 300"), "{my}");
        assert!(my.contains("idle_transaction_timeout = 60"), "{my}");
        assert!(settings(Dialect::Sqlite, MIN_IDLE).is_empty());
    }

    #[test]
    fn each_step_starts_with_its_lock_and_statement_timeouts() {
        let bounds = StepBounds {
            lock_timeout: Duration::from_millis(1500),
            statement_timeout: Some(Duration::from_secs(60)),
        };
        assert_eq!(
            step_prelude(Dialect::Postgres, bounds, true),
            [
                "BEGIN;",
                "SET LOCAL lock_timeout = '1500ms';",
                "SET LOCAL statement_timeout = '60000ms';"
            ]
        );
        assert_eq!(
            step_prelude(Dialect::Postgres, StepBounds::default(), false),
            ["SET lock_timeout = '2000ms';"]
        );
        assert_eq!(
            step_prelude(Dialect::Mysql, bounds, false),
            [
                "SET SESSION lock_wait_timeout = 2, SESSION innodb_lock_wait_timeout = 2 /*M!, SESSION max_statement_time = 60 */;"
            ]
        );
        assert_eq!(
            step_prelude(Dialect::Sqlite, bounds, true),
            ["BEGIN IMMEDIATE;"]
        );
        assert_eq!(step_postlude(Dialect::Sqlite, true), ["COMMIT;"]);
        assert_eq!(
            sqlite_busy_timeout(bounds.lock_timeout),
            "PRAGMA busy_timeout = 1500;"
        );
    }
}
