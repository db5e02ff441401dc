//! A MySQL/MariaDB replica's lag, from its replication status.
//!
//! Read on the replica with the first of these its server knows (a syntax
//! error, 1064, moves to the next; the one that worked is kept for the
//! connection):
//!
//! | statement | server | rows |
//! |---|---|---|
//! | `SHOW ALL REPLICAS STATUS` | MariaDB 10.5.1+ | every connection of a multi-source replica |
//! | `SHOW ALL SLAVES STATUS` | MariaDB 10.0–10.5.0 | the same |
//! | `SHOW REPLICA STATUS` | MySQL 8.0.22+ | every channel |
//! | `SHOW SLAVE STATUS` | MySQL before 8.0.22 | every channel |
//!
//! Columns are found by name, never by position (their order differs
//! between versions, MariaDB docs, "SHOW REPLICA STATUS"): the lag is
//! `Seconds_Behind_Source` (MySQL 8.0.22+) or `Seconds_Behind_Master`
//! (MySQL before, and MariaDB, which kept the old column names): whole
//! seconds between the replica's clock and the primary's timestamp of the
//! event it is applying (a `MASTER_DELAY` included), 0 when it applied all it
//! received.
//!
//! What a read means:
//! - a number: the replica is that many seconds behind. It has whole-second
//!   granularity, so `max_replica_lag` is whole seconds on MySQL
//!   (`config::WHOLE_SECONDS_LAG_RANGE`) and "1s behind" is anything from 1
//!   to just under 2 seconds.
//! - `NULL`: the SQL (applier) thread is not running, or it applied all the
//!   relay log and the I/O (receiver) thread is not running (MySQL docs,
//!   `Seconds_Behind_Source`). Nothing is being applied and the primary's
//!   writes pile up, so the backfill waits, saying which thread stopped and
//!   the replica's last error for it (`Last_SQL_Error`, `Last_IO_Error`):
//!   never read as 0.
//! - no row: the server replicates from no primary. It is no replica, and
//!   the step stops (as Postgres' `pg_is_in_recovery()` false does).
//!
//! With several rows (channels, connections) the furthest behind counts,
//! and a stopped one before any number. The statement needs `REPLICA
//! MONITOR` on MariaDB 10.5.9+ (`REPLICATION SLAVE ADMIN` from 10.5.2, else
//! `REPLICATION CLIENT` or `SUPER`) and `REPLICATION CLIENT` on MySQL; a
//! refusal stops the step, naming them.

use std::time::Duration;

use sqlx::mysql::{MySqlConnection, MySqlDatabaseError, MySqlRow};
use sqlx::{Column, Row};

use super::Read;
use crate::execute::progress::LagReading;

/// The statements that read a replica's status, newest first (see the
/// module's documentation).
const STATEMENTS: [&str; 4] = [
    "SHOW ALL REPLICAS STATUS",
    "SHOW ALL SLAVES STATUS",
    "SHOW REPLICA STATUS",
    "SHOW SLAVE STATUS",
];

/// MySQL's and MariaDB's "You have an error in your SQL syntax".
const ER_PARSE_ERROR: u16 = 1064;

/// The privilege errors a status read can meet: 1227 "Access denied; you
/// need (at least one of) the … privilege(s)", 1142, 1044, 1045.
const ACCESS_DENIED: [u16; 4] = [1227, 1142, 1044, 1045];

/// A connection to a MySQL/MariaDB replica, with the status statement its
/// server knows once found.
pub(super) struct Replica {
    conn: MySqlConnection,
    statement: Option<&'static str>,
}

impl Replica {
    pub fn new(conn: MySqlConnection) -> Replica {
        Replica {
            conn,
            statement: None,
        }
    }

    /// How far behind the replica is.
    pub async fn lag(&mut self) -> Result<Read, sqlx::Error> {
        let rows = match self.statement {
            Some(s) => status(&mut self.conn, s).await?,
            None => {
                let mut found = None;
                for s in STATEMENTS {
                    match status(&mut self.conn, s).await {
                        Err(e) if error_number(&e) == Some(ER_PARSE_ERROR) => continue,
                        Err(e) => return Err(e),
                        Ok(rows) => {
                            self.statement = Some(s);
                            found = Some(rows);
                            break;
                        }
                    }
                }
                found.ok_or_else(|| {
                    sqlx::Error::Protocol(format!(
                        "the server knows none of {}",
                        STATEMENTS.join(", ")
                    ))
                })?
            }
        };
        Ok(reading(&rows))
    }
}

/// The replica refused to show its status for want of a privilege: waiting
/// will not change that.
pub(super) fn denied(e: &sqlx::Error) -> Option<String> {
    let n = error_number(e)?;
    ACCESS_DENIED.contains(&n).then(|| {
        format!(
            "{}; reading a replica's status needs REPLICA MONITOR (MariaDB 10.5.9+) or REPLICATION CLIENT (MySQL)",
            crate::db_error::describe(e)
        )
    })
}

fn error_number(e: &sqlx::Error) -> Option<u16> {
    match e {
        sqlx::Error::Database(db) => db
            .try_downcast_ref::<MySqlDatabaseError>()
            .map(MySqlDatabaseError::number),
        _ => None,
    }
}

/// One row of the replica's status: one replication channel (MySQL) or
/// connection (MariaDB), its columns as text.
#[derive(Debug, Default)]
struct Channel {
    /// `Channel_Name` (MySQL) or `Connection_name` (MariaDB); empty for the
    /// default one.
    name: String,
    /// `Seconds_Behind_Source` / `Seconds_Behind_Master`; `None` for NULL.
    behind: Option<String>,
    /// `Replica_SQL_Running` / `Slave_SQL_Running`: `Yes` or `No`.
    sql_running: String,
    /// `Replica_IO_Running` / `Slave_IO_Running`: `Yes`, `No`, `Connecting`
    /// (MariaDB also `Preparing`).
    io_running: String,
    last_sql_error: String,
    last_io_error: String,
}

/// The replica's status rows, each column read as text (the text protocol
/// sends every value as text, whatever the column's type).
async fn status(
    conn: &mut MySqlConnection,
    statement: &'static str,
) -> Result<Vec<Channel>, sqlx::Error> {
    let rows = sqlx::raw_sql(sqlx::AssertSqlSafe(statement))
        .fetch_all(conn)
        .await?;
    Ok(rows.iter().map(channel).collect())
}

fn channel(row: &MySqlRow) -> Channel {
    let text = |names: &[&str]| -> Option<String> {
        let i = row
            .columns()
            .iter()
            .position(|c| names.iter().any(|n| c.name().eq_ignore_ascii_case(n)))?;
        row.try_get_unchecked::<Option<String>, _>(i).ok().flatten()
    };
    Channel {
        name: text(&["Channel_Name", "Connection_name"]).unwrap_or_default(),
        behind: text(&["Seconds_Behind_Source", "Seconds_Behind_Master"]),
        sql_running: text(&["Replica_SQL_Running", "Slave_SQL_Running"]).unwrap_or_default(),
        io_running: text(&["Replica_IO_Running", "Slave_IO_Running"]).unwrap_or_default(),
        last_sql_error: text(&["Last_SQL_Error"]).unwrap_or_default(),
        last_io_error: text(&["Last_IO_Error"]).unwrap_or_default(),
    }
}

/// What the status rows say (see the module's documentation).
fn reading(rows: &[Channel]) -> Read {
    let mut worst: Option<LagReading> = None;
    for c in rows {
        let this = match c.behind.as_deref().map(str::trim) {
            Some(s) => match s.parse::<u64>() {
                Ok(n) => LagReading::Behind(Duration::from_secs(n)),
                Err(_) => LagReading::Stopped(format!(
                    "{}Seconds_Behind_Master is `{s}`, not a number of seconds",
                    of(c)
                )),
            },
            None => LagReading::Stopped(stopped(c)),
        };
        worst = match (worst, this) {
            (None, t) => Some(t),
            (Some(LagReading::Behind(a)), LagReading::Behind(b)) => {
                Some(LagReading::Behind(a.max(b)))
            }
            (Some(LagReading::Behind(_)), t) => Some(t),
            (w, _) => w,
        };
    }
    match worst {
        Some(w) => Read::Lag(w),
        None => Read::NotAReplica(
            "its replication status (SHOW REPLICA STATUS) has no row: it replicates from no primary"
                .into(),
        ),
    }
}

/// `connection 'x': ` for a named channel, else nothing.
fn of(c: &Channel) -> String {
    if c.name.is_empty() {
        String::new()
    } else {
        format!("connection '{}': ", c.name)
    }
}

/// Why a channel's lag is NULL: which thread is not running, and its last
/// error.
fn stopped(c: &Channel) -> String {
    let with = |what: String, error: &str| {
        let error = error.trim();
        if error.is_empty() {
            format!("{}{what}", of(c))
        } else {
            format!("{}{what}: {error}", of(c))
        }
    };
    if !c.sql_running.eq_ignore_ascii_case("Yes") {
        with(
            "replication SQL thread is not running".into(),
            &c.last_sql_error,
        )
    } else if !c.io_running.eq_ignore_ascii_case("Yes") {
        let state = match c.io_running.trim() {
            "" | "No" => String::new(),
            s => format!(" ({s})"),
        };
        with(
            format!("replication I/O thread is not running{state}"),
            &c.last_io_error,
        )
    } else {
        format!("{}Seconds_Behind_Master is NULL", of(c))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn running(behind: Option<&str>) -> Channel {
        Channel {
            behind: behind.map(str::to_string),
            sql_running: "Yes".into(),
            io_running: "Yes".into(),
            ..Channel::default()
        }
    }

    fn lag(rows: &[Channel]) -> Result<LagReading, String> {
        match reading(rows) {
            Read::Lag(l) => Ok(l),
            Read::NotAReplica(why) => Err(why),
        }
    }

    #[test]
    fn a_number_is_whole_seconds_behind_and_the_furthest_channel_counts() {
        assert_eq!(
            lag(&[running(Some("0"))]),
            Ok(LagReading::Behind(Duration::ZERO))
        );
        assert_eq!(
            lag(&[running(Some("3")), running(Some("12")), running(Some("1"))]),
            Ok(LagReading::Behind(Duration::from_secs(12)))
        );
    }

    #[test]
    fn null_is_a_stopped_thread_with_its_error_never_zero() {
        let sql = Channel {
            sql_running: "No".into(),
            last_sql_error: "Error 'Duplicate entry' on query".into(),
            ..running(None)
        };
        assert_eq!(
            lag(&[sql]),
            Ok(LagReading::Stopped(
                "replication SQL thread is not running: Error 'Duplicate entry' on query".into()
            ))
        );
        let io = Channel {
            name: "east".into(),
            io_running: "Connecting".into(),
            last_io_error: "error connecting to master".into(),
            ..running(None)
        };
        assert_eq!(
            lag(&[running(Some("40")), io]),
            Ok(LagReading::Stopped(
                "connection 'east': replication I/O thread is not running (Connecting): error connecting to master"
                    .into()
            ))
        );
        let stopped_first = Channel {
            sql_running: "No".into(),
            ..running(None)
        };
        assert_eq!(
            lag(&[stopped_first, running(Some("40"))]),
            Ok(LagReading::Stopped(
                "replication SQL thread is not running".into()
            ))
        );
    }

    #[test]
    fn no_row_is_no_replica() {
        assert!(lag(&[]).is_err_and(|why| why.contains("replicates from no primary")));
    }
}
