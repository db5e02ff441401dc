//! Ctrl-C while a step runs outside a transaction (`CREATE INDEX
//! CONCURRENTLY`, MySQL DDL): rather than leave the statement running on the
//! server with no client to record its outcome (the step would then read
//! "started and never finished", and wait for `resolve`), the binary asks
//! the server to cancel it ([`cancel_running_statement`]): the statement
//! fails as if it had failed on its own, the failure is recorded, and the
//! next `apply` runs the step again (a cancelled concurrent build's INVALID
//! index is dropped first). On MySQL/MariaDB the statement is ended too, but
//! its error reads like a lost connection, so the step is left for
//! `resolve`, as the message after Ctrl-C says.
//!
//! The step's server session is the one recorded in its `step_started`
//! (`session.rs`); the cancel goes over a connection of its own: Postgres
//! `pg_cancel_backend` (Postgres docs, "Server Signaling Functions"),
//! MySQL/MariaDB `KILL QUERY` (the statement ends, the connection stays).

use std::sync::Mutex;
use std::time::Duration;

use sqlx::{AssertSqlSafe, Connection};

use super::session::Session;
use crate::dialect::Dialect;

/// The statement that may be cancelled now: the database URL, its dialect,
/// the step and the server session it runs on.
struct Running {
    url: String,
    dialect: Dialect,
    step: String,
    session: Session,
}

static RUNNING: Mutex<Option<Running>> = Mutex::new(None);

/// Registers the session of a step that runs outside a transaction; it is
/// forgotten when the guard drops (the step ended).
pub(crate) fn register(url: &str, dialect: Dialect, step: &str, session: &Session) -> Registered {
    if let Ok(mut r) = RUNNING.lock() {
        *r = Some(Running {
            url: url.to_string(),
            dialect,
            step: step.to_string(),
            session: session.clone(),
        });
    }
    Registered
}

/// Forgets the registered session when dropped.
pub(crate) struct Registered;

impl Drop for Registered {
    fn drop(&mut self) {
        if let Ok(mut r) = RUNNING.lock() {
            *r = None;
        }
    }
}

/// The id of the step running outside a transaction now, if any: the one
/// [`cancel_running_statement`] would cancel.
pub fn statement_running() -> Option<String> {
    RUNNING
        .lock()
        .ok()
        .and_then(|r| r.as_ref().map(|r| r.step.clone()))
}

/// Asks the server to cancel the statement of the step running outside a
/// transaction, over a connection of its own, within `wait` (connection
/// included). `Ok(true)` when the server cancelled it and the run will record
/// the step as failed (Postgres); `Ok(false)` when no such step runs, its
/// session is gone, or the run cannot record the outcome (MySQL/MariaDB:
/// the statement is still ended); `Err` with the reason when the request
/// could not be made.
pub async fn cancel_running_statement(wait: Duration) -> Result<bool, String> {
    let Some((url, dialect, session)) = RUNNING.lock().ok().and_then(|r| {
        r.as_ref()
            .map(|r| (r.url.clone(), r.dialect, r.session.clone()))
    }) else {
        return Ok(false);
    };
    let id = session.connection;
    let work = async {
        match dialect {
            Dialect::Postgres => {
                let start = session
                    .backend_start
                    .as_deref()
                    .map(|s| {
                        format!(
                            " AND CAST(backend_start AS text) = {}",
                            Dialect::Postgres.quote_literal(s)
                        )
                    })
                    .unwrap_or_default();
                let mut c = sqlx::PgConnection::connect(&url)
                    .await
                    .map_err(|e| e.to_string())?;
                let sql = format!(
                    "SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE pid = {id}{start}"
                );
                let rows = sqlx::query(AssertSqlSafe(sql))
                    .fetch_all(&mut c)
                    .await
                    .map_err(|e| e.to_string())?;
                let _ = c.close().await;
                Ok(!rows.is_empty())
            }
            Dialect::Mysql => {
                // Environment URLs are spelt mysql:// already (config.rs).
                let mut c = sqlx::MySqlConnection::connect(&url)
                    .await
                    .map_err(|e| e.to_string())?;
                let done = sqlx::query(AssertSqlSafe(format!("KILL QUERY {id}")))
                    .execute(&mut c)
                    .await;
                let _ = c.close().await;
                match done {
                    // The DDL ends, but its error (SQLSTATE 70100) is also
                    // what a killed connection gives, so the run cannot
                    // tell it from a lost one and leaves the step "started
                    // and never finished" for `resolve`: nothing recorded.
                    Ok(_) => Ok(false),
                    // ER_NO_SUCH_THREAD: the session is gone already.
                    Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("HY000") => {
                        Ok(false)
                    }
                    Err(e) => Err(e.to_string()),
                }
            }
            Dialect::Sqlite => Ok(false),
        }
    };
    tokio::time::timeout(wait, work)
        .await
        .unwrap_or_else(|_| Err(format!("no answer within {}s", wait.as_secs())))
}
