//! How long phasegate waits for the database's answer before it gives up on
//! the connection, and recognising a connection that was lost.
//!
//! A network path that goes silent (a half-open TCP connection) never
//! returns an error by itself: without a deadline the client would wait for
//! ever, and its session — with the environment's lock — would live on. So
//! every statement phasegate sends over the network has a client-side
//! deadline derived from the environment's settings, and the server is asked
//! to end a session whose client went silent ([`crate::session_bounds`]). When a
//! deadline passes, or the connection breaks (the server ended the session,
//! the socket closed: "expected to read 5 bytes, got 0 bytes at EOF"), the
//! step fails with an error naming the step, saying the connection was lost,
//! what state its object may be in, and what to run next (see `steps.rs`).
//!
//! SQLite has no network: its waits are bounded by its busy timeout.

use std::time::Duration;

use crate::config::Environment;
use crate::dialect::Dialect;

/// What phasegate adds to a statement's own bound before it gives up on
/// the connection: the time the answer may take to arrive.
pub const MARGIN: Duration = Duration::from_secs(15);

/// The bound of a backfill batch when the environment sets no
/// `statement_timeout` (a batch touches at most `backfill_batch_size` rows,
/// or as many as take `backfill_batch_time`).
pub const DEFAULT_BATCH: Duration = Duration::from_secs(300);

/// How long phasegate waits for one statement of a migration, a rollback or
/// a verification: `statement_timeout` + `lock_timeout` + [`MARGIN`].
/// `None` without a `statement_timeout` (a DDL may rightly run for hours;
/// then only the server's keepalives end a dead session) and on SQLite.
pub fn statement_deadline(env: &Environment) -> Option<Duration> {
    if env.dialect == Dialect::Sqlite {
        return None;
    }
    env.statement_timeout.map(|t| t + env.lock_timeout + MARGIN)
}

/// How long phasegate waits for one backfill batch (its statements, its
/// checkpoint and its commit): `statement_timeout` (or [`DEFAULT_BATCH`])
/// + `lock_timeout` + [`MARGIN`]. `None` on SQLite.
pub fn batch_deadline(env: &Environment) -> Option<Duration> {
    if env.dialect == Dialect::Sqlite {
        return None;
    }
    Some(env.statement_timeout.unwrap_or(DEFAULT_BATCH) + env.lock_timeout + MARGIN)
}

/// Runs `work`, giving up when `deadline` passes with an I/O error
/// (`TimedOut`) that says how long phasegate waited.
pub async fn within<T>(
    deadline: Option<Duration>,
    work: impl Future<Output = Result<T, sqlx::Error>>,
) -> Result<T, sqlx::Error> {
    let Some(d) = deadline else {
        return work.await;
    };
    match tokio::time::timeout(d, work).await {
        Ok(done) => done,
        Err(_) => Err(sqlx::Error::Io(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!(
                "no answer from the database within {}s (the network path or the server went silent); phasegate gave up on the connection",
                d.as_secs()
            ),
        ))),
    }
}

/// The connection is gone or unusable: an I/O error (the socket closed,
/// reset, or a deadline passed), the server ending the session (Postgres
/// SQLSTATE class 08 and 57P01–57P03, e.g. `pg_terminate_backend`; MySQL
/// 1927 "Connection was killed", 2006/2013 "gone away"/"lost connection",
/// 1053 shutdown), or SQLite's worker thread gone.
pub fn is_lost(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_) | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Protocol(m) => m.contains("expected to read") || m.contains("EOF"),
        sqlx::Error::Database(db) => {
            let code = db.code();
            let code = code.as_deref().unwrap_or_default();
            code.starts_with("08")
                || matches!(code, "57P01" | "57P02" | "57P03" | "70100")
                || db
                    .try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>()
                    .is_some_and(|m| matches!(m.number(), 1053 | 1927 | 2006 | 2013))
        }
        _ => false,
    }
}

/// How a lost connection begins a step's message (`steps::run` looks for
/// it: the step's failure cannot be recorded on that connection).
pub const LOST: &str = "the connection to the database was lost";

/// What to do after the connection was lost while a step's up ran: the
/// state its change may be in and the next command. `started`: the step was
/// recorded as started (it is not transactional); `index`: the index a
/// Postgres concurrent build in it creates.
pub fn after_lost_up(
    env: &str,
    plan: &str,
    step: &str,
    started: bool,
    index: Option<&str>,
) -> String {
    let freed = "if the next run finds the environment held, the server has not yet ended the lost session: it does within minutes (docs/workflow.md, \"Lost connections\")";
    if !started {
        return format!(
            "the step's change and its record in the log commit together or not at all, so the database and the log agree either way: run `phasegate apply --env {env} {plan}` again (it skips the step if its commit got through; {freed})"
        );
    }
    let index = index.map_or(String::new(), |ix| {
        format!(
            " (a concurrent index build cut off leaves the index {ix} INVALID: `SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass('{}')`; resolved as not applied, apply drops it and builds it again)",
            ix.replace('\'', "''")
        )
    });
    format!(
        "the step is recorded as started and not finished: check the database{index}, then `phasegate resolve --env {env} {plan} --step {step} --as applied` if its change is there, or `phasegate resolve --env {env} {plan} --step {step} --as not-applied` if not (apply then runs it again); {freed}"
    )
}

/// What to do after the connection was lost during a backfill: the batches
/// committed are kept, the one in flight ends with the session.
pub fn after_lost_backfill(env: &str, plan: &str) -> String {
    format!(
        "the batches committed before it are kept with their checkpoint, the batch in flight ends with the session: run `phasegate apply --env {env} {plan}` again to resume after the last checkpoint (if it finds the environment held, the server has not yet ended the lost session: it does within minutes, docs/workflow.md, \"Lost connections\")"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_errors_and_server_ended_sessions_are_lost_connections() {
        let eof = sqlx::Error::Io(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "expected to read 5 bytes, got 0 bytes at EOF",
        ));
        assert!(is_lost(&eof));
        assert!(!is_lost(&sqlx::Error::RowNotFound));
        assert!(!is_lost(&sqlx::Error::Protocol(
            "unexpected message".into()
        )));
    }

    #[test]
    fn after_a_lost_connection_each_step_kind_names_its_next_command() {
        let started = after_lost_up("prod", "p", "1.create_index", true, Some("\"ix\""));
        assert!(
            started.contains("`phasegate resolve --env prod p --step 1.create_index --as applied`"),
            "{started}"
        );
        assert!(started.contains("\"ix\" INVALID"), "{started}");
        assert!(started.contains("to_regclass('\"ix\"')"), "{started}");
        let tx = after_lost_up("prod", "p", "1.add_column", false, None);
        assert!(tx.contains("`phasegate apply --env prod p` again"), "{tx}");
        assert!(!tx.contains("resolve"), "{tx}");
        let fill = after_lost_backfill("prod", "p");
        assert!(
            fill.contains("`phasegate apply --env prod p` again to resume"),
            "{fill}"
        );
    }

    #[tokio::test]
    async fn a_deadline_ends_a_silent_wait() {
        let silent = std::future::pending::<Result<(), sqlx::Error>>();
        let r = within(Some(Duration::from_millis(10)), silent).await;
        assert!(matches!(&r, Err(e) if is_lost(e)), "{r:?}");
        let r = within(None, async { Ok::<_, sqlx::Error>(1) }).await;
        assert!(matches!(r, Ok(1)));
    }
}
