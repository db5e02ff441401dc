//! A backfill that waits while a replica falls behind (`max_replica_lag`,
//! `replica_urls`).
//!
//! Every batch writes WAL that each replica must replay; a backfill that
//! outruns a replica makes its readers see old data and, with
//! `hot_standby_feedback` or replication slots, holds back the primary's
//! vacuum and WAL removal. So before each batch the backfill reads how far
//! behind each configured replica is, and while one is further behind than
//! `max_replica_lag` it waits, polling every second, reporting each wait
//! (`Progress::replica_wait`). A replica that cannot be reached counts as
//! behind: nothing says it has caught up; one whose server refuses the
//! connection (an unknown database or role) stops the step. A wait of more than
//! [`MAX_WAIT`] stops the step; its committed batches are kept, and the
//! next `apply` resumes after them.
//!
//! The lag is read on the replica itself: 0 when it has replayed all the
//! WAL it received, else the time since the last transaction it replayed
//! committed on the primary (`pg_last_xact_replay_timestamp()`, Postgres
//! docs, "Recovery Information Functions"). The primary's
//! `pg_stat_replication.replay_lag` is not used: it is measured when the
//! replica reports progress, so a replica whose replay stopped keeps
//! showing the last small value.

use std::time::{Duration, Instant};

use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, PgConnection};

use super::super::progress::ReplicaWait;
use super::super::steps::failure;
use super::super::{RunError, StepContext};
use crate::config::{Environment, ReplicaLag};
use crate::db_error::describe;
use crate::plan::Step;

/// The longest one batch waits for the replicas before the step stops.
pub const MAX_WAIT: Duration = Duration::from_secs(3600);

/// How often a waiting backfill reads the lag again.
const POLL: Duration = Duration::from_secs(1);

/// Seconds the replica is behind; -1 on a server that is not a replica.
const LAG_SQL: &str = "SELECT CASE \
       WHEN NOT pg_is_in_recovery() THEN -1 \
       WHEN pg_last_wal_receive_lsn() IS NOT DISTINCT FROM pg_last_wal_replay_lsn() THEN 0 \
       ELSE COALESCE(EXTRACT(epoch FROM now() - pg_last_xact_replay_timestamp()), 0) END::float8";

/// The replicas an environment's backfills wait for, with their open
/// connections (opened on first use, opened again after an error).
pub(super) struct Replicas {
    lag: Option<ReplicaLag>,
    conns: Vec<Option<PgConnection>>,
    /// How long a connection or a read of the lag may take.
    bound: Duration,
}

/// One replica's state: how far behind, or why it could not be read.
enum Behind {
    By(Duration),
    Unknown(String),
}

impl Replicas {
    pub fn new(env: &Environment) -> Replicas {
        let lag = env.replica_lag.clone();
        let n = lag.as_ref().map_or(0, |l| l.urls.len());
        Replicas {
            lag,
            conns: (0..n).map(|_| None).collect(),
            bound: env.connect_timeout,
        }
    }

    /// Returns once every replica is at most `max_replica_lag` behind (at
    /// once when none is configured); an error when one stayed behind for
    /// [`MAX_WAIT`] or is not a replica.
    pub async fn wait(&mut self, cx: &StepContext<'_>, step: &Step) -> Result<(), RunError> {
        let Some(lag) = self.lag.clone() else {
            return Ok(());
        };
        let started = Instant::now();
        loop {
            let mut worst: Option<(usize, Behind)> = None;
            for (i, url) in lag.urls.iter().enumerate() {
                let behind = match self.read(i, url).await {
                    Err(Unreadable::Refused(e)) => {
                        return Err(failure(
                            step,
                            cx.phase,
                            format!(
                                "replica_urls entry {} ({}) refused the connection: {e}; fix the entry (or remove max_replica_lag) and run `phasegate apply --env {} {}` again, to resume after the last checkpoint",
                                i + 1,
                                shown(url),
                                cx.env.name,
                                cx.plan
                            ),
                        ));
                    }
                    Ok(s) if s < 0.0 => {
                        return Err(failure(
                            step,
                            cx.phase,
                            format!(
                                "replica_urls entry {} ({}) is not a replica: pg_is_in_recovery() is false there; list the replicas of {}'s database",
                                i + 1,
                                shown(url),
                                cx.env.name
                            ),
                        ));
                    }
                    Ok(s) => Behind::By(Duration::from_secs_f64(s.min(1e9))),
                    Err(Unreadable::Now(e)) => Behind::Unknown(e),
                };
                let over = match &behind {
                    Behind::By(d) => *d > lag.max,
                    Behind::Unknown(_) => true,
                };
                let worse = match (&worst, &behind) {
                    (None, _) => true,
                    (Some((_, Behind::By(a))), Behind::By(b)) => b > a,
                    (Some((_, Behind::By(_))), Behind::Unknown(_)) => true,
                    (Some((_, Behind::Unknown(_))), _) => false,
                };
                if over && worse {
                    worst = Some((i, behind));
                }
            }
            let Some((i, behind)) = worst else {
                return Ok(());
            };
            let waited = started.elapsed();
            let (lag_now, error) = match behind {
                Behind::By(d) => (Some(d), None),
                Behind::Unknown(e) => (None, Some(e)),
            };
            if waited >= MAX_WAIT {
                let why = match (&lag_now, &error) {
                    (Some(d), _) => format!("{:.1}s behind", d.as_secs_f64()),
                    (None, Some(e)) => format!("unreadable ({e})"),
                    (None, None) => "behind".into(),
                };
                return Err(failure(
                    step,
                    cx.phase,
                    format!(
                        "replica {} has been more than max_replica_lag ({}) behind for {} (now {why}); the committed batches are kept: run `phasegate apply --env {} {}` once it has caught up, to resume after the last checkpoint",
                        shown(&lag.urls[i]),
                        humantime::format_duration(lag.max),
                        humantime::format_duration(MAX_WAIT),
                        cx.env.name,
                        cx.plan
                    ),
                ));
            }
            cx.progress.replica_wait(
                step,
                &ReplicaWait {
                    replica: shown(&lag.urls[i]),
                    lag: lag_now,
                    max: lag.max,
                    error,
                    waited,
                },
            );
            tokio::time::sleep(POLL).await;
        }
    }

    /// Seconds replica `i` is behind, read on a connection kept open.
    async fn read(&mut self, i: usize, url: &str) -> Result<f64, Unreadable> {
        let bound = self.bound;
        if self.conns[i].is_none() {
            let opts: PgConnectOptions = url
                .parse()
                .map_err(|e: sqlx::Error| Unreadable::Refused(describe(&e)))?;
            let conn = tokio::time::timeout(bound, opts.connect())
                .await
                .map_err(|_| {
                    Unreadable::Now(format!(
                        "no connection within {}",
                        humantime::format_duration(bound)
                    ))
                })?
                .map_err(|e| match e {
                    // The server answered and said no (an unknown
                    // database or role, a failed password): waiting will
                    // not change that.
                    sqlx::Error::Database(_) => Unreadable::Refused(describe(&e)),
                    _ => Unreadable::Now(describe(&e)),
                })?;
            self.conns[i] = Some(conn);
        }
        let Some(conn) = self.conns[i].as_mut() else {
            return Err(Unreadable::Now("no connection".into()));
        };
        let read = sqlx::query_scalar::<_, f64>(LAG_SQL).fetch_one(conn);
        match tokio::time::timeout(bound, read).await {
            Ok(Ok(s)) => Ok(s),
            Ok(Err(e)) => {
                self.conns[i] = None;
                Err(Unreadable::Now(describe(&e)))
            }
            Err(_) => {
                self.conns[i] = None;
                Err(Unreadable::Now(format!(
                    "no answer within {}",
                    humantime::format_duration(bound)
                )))
            }
        }
    }
}

/// Why a replica's lag could not be read.
enum Unreadable {
    /// For now (no connection, no answer): the backfill waits.
    Now(String),
    /// For good (the server refused the connection: an unknown database
    /// or role, a failed password): the step stops.
    Refused(String),
}

/// The URL without its password (the catalog's redaction, as every
/// message that names a database does).
fn shown(url: &str) -> String {
    crate::catalog::redact(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replica_is_shown_without_its_password() {
        assert_eq!(
            shown("postgres://app:s3cret@replica-1:5432/app"),
            "postgres://app:***@replica-1:5432/app"
        );
        assert_eq!(
            shown("postgres://replica-1/app"),
            "postgres://replica-1/app"
        );
    }
}
