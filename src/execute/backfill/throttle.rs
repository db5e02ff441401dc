//! A backfill that waits while a replica falls behind (`max_replica_lag`,
//! `replica_urls`) or a VACUUM runs on its table (`pause_for_vacuum`).
//!
//! Every batch writes WAL (binlog) that each replica must replay; a backfill
//! that outruns a replica makes its readers see old data and, on Postgres
//! with `hot_standby_feedback` or replication slots, holds back the
//! primary's vacuum and WAL removal. So before each batch the backfill reads
//! how far behind each configured replica is, and while one is further
//! behind than `max_replica_lag`, is not replicating, or cannot be read, it
//! waits, polling every second, reporting each wait (`Progress::replica_wait`).
//! A replica that cannot be reached counts as behind: nothing says it has
//! caught up. Three things stop the step at once, since waiting will not
//! change them: a replica whose server refuses the connection (an unknown
//! database or role, a failed password), one that refuses to show its
//! status for want of a privilege, and one that is not a replica.
//!
//! Each dialect reads the lag its own way, on the replica itself:
//! `throttle/postgres.rs` (the time since the last transaction it replayed
//! committed) and `throttle/mysql.rs` (`Seconds_Behind_Master`, whole
//! seconds; NULL, a stopped replication thread, is waited on with the
//! reason, never read as 0).
//!
//! With `pause_for_vacuum` (Postgres), once the replicas are close enough it
//! also waits while a VACUUM runs on the table (`throttle/vacuum.rs`,
//! `Progress::vacuum_wait`), read on the backfill's own connection. A role
//! that cannot see other roles' VACUUMs (autovacuum's) stops the step before
//! the first batch, naming the grant it needs.
//!
//! A batch that has waited [`MAX_WAIT`] in all stops the step; its committed
//! batches are kept, and the next `apply` resumes after them.

mod mysql;
mod postgres;
mod vacuum;

use std::str::FromStr;
use std::time::{Duration, Instant};

use sqlx::{ConnectOptions, Connection, PgConnection};

use super::super::deadline;
use super::super::progress::{LagReading, ReplicaWait, VacuumWait};
use super::super::steps::failure;
use super::super::{RunError, StepContext};
use super::lost_backfill;
use crate::config::{Environment, ReplicaLag};
use crate::db_error::describe;
use crate::dialect::Dialect;
use crate::name::TableName;
use crate::plan::Step;
use crate::tracker::Store;

/// The longest one batch waits (for the replicas and a VACUUM together)
/// before the step stops.
pub const MAX_WAIT: Duration = Duration::from_secs(3600);

/// How often a waiting backfill reads again.
const POLL: Duration = Duration::from_secs(1);

/// What holds an environment's backfill batches back: its replicas, with
/// their open connections (opened on first use, opened again after an
/// error), and the table whose VACUUMs it waits out.
pub(super) struct Throttle {
    lag: Option<ReplicaLag>,
    replicas: Vec<Option<Replica>>,
    /// How long a connection or a read of the lag may take.
    bound: Duration,
    /// `pause_for_vacuum`: the table, quoted; whether the role may see
    /// every VACUUM was checked once it is `checked`.
    vacuum: Option<String>,
    checked: bool,
}

/// An open connection to one replica.
enum Replica {
    Postgres(PgConnection),
    Mysql(mysql::Replica),
}

/// What one read of a replica found.
enum Read {
    Lag(LagReading),
    /// The server is not a replica: why.
    NotAReplica(String),
}

/// Why the next batch waits.
enum Hold {
    /// Replica `i` of `replica_urls`.
    Replica(usize, LagReading),
    Vacuum(vacuum::Running),
}

/// Why a replica could not be read.
enum Unreadable {
    /// For now (no connection, no answer): the backfill waits.
    Now(String),
    /// For good (the server refused the connection, or to show its status):
    /// the step stops. What happened, as a predicate of the replica
    /// ("refused the connection: …").
    Refused(String),
}

impl Throttle {
    pub fn new(env: &Environment, table: &TableName) -> Throttle {
        let lag = env.replica_lag.clone();
        let n = lag.as_ref().map_or(0, |l| l.urls.len());
        Throttle {
            lag,
            replicas: (0..n).map(|_| None).collect(),
            bound: env.connect_timeout,
            vacuum: (env.pause_for_vacuum && env.dialect == Dialect::Postgres)
                .then(|| Dialect::Postgres.quote_table(table)),
            checked: false,
        }
    }

    /// Returns once every replica is at most `max_replica_lag` behind and
    /// no VACUUM runs on the table (at once when neither is configured); an
    /// error when the wait reached [`MAX_WAIT`], or a replica refused or is
    /// not one.
    pub async fn wait(
        &mut self,
        store: &mut Store,
        cx: &StepContext<'_>,
        step: &Step,
    ) -> Result<(), RunError> {
        if self.lag.is_none() && self.vacuum.is_none() {
            return Ok(());
        }
        let started = Instant::now();
        loop {
            let hold = match self.replica_behind(cx, step).await? {
                Some(h) => Some(h),
                None => self.vacuum_running(store, cx, step).await?,
            };
            let Some(hold) = hold else {
                return Ok(());
            };
            let waited = started.elapsed();
            if waited >= MAX_WAIT {
                return Err(failure(step, cx.phase, self.waited_too_long(cx, &hold)));
            }
            match hold {
                Hold::Replica(i, lag) => cx.progress.replica_wait(
                    step,
                    &ReplicaWait {
                        replica: shown(&self.urls()[i]),
                        lag,
                        max: self.max(),
                        waited,
                    },
                ),
                Hold::Vacuum(v) => cx.progress.vacuum_wait(
                    step,
                    &VacuumWait {
                        table: v.relation,
                        kind: v.kind,
                        pid: v.pid,
                        phase: v.phase,
                        waited,
                    },
                ),
            }
            tokio::time::sleep(POLL).await;
        }
    }

    fn urls(&self) -> &[String] {
        self.lag.as_ref().map_or(&[], |l| &l.urls)
    }

    fn max(&self) -> Duration {
        self.lag.as_ref().map_or(Duration::ZERO, |l| l.max)
    }

    /// The replica furthest over `max_replica_lag` (an unreadable or
    /// stopped one first), if any.
    async fn replica_behind(
        &mut self,
        cx: &StepContext<'_>,
        step: &Step,
    ) -> Result<Option<Hold>, RunError> {
        let Some(lag) = self.lag.clone() else {
            return Ok(None);
        };
        let mut worst: Option<(usize, LagReading)> = None;
        for (i, url) in lag.urls.iter().enumerate() {
            let entry = |what: String| {
                failure(
                    step,
                    cx.phase,
                    format!("replica_urls entry {} ({}) {what}", i + 1, shown(url)),
                )
            };
            let reading = match self.read(i, url, cx.env.dialect).await {
                Err(Unreadable::Refused(e)) => {
                    return Err(entry(format!(
                        "{e}; fix the entry (or remove max_replica_lag) and run `phasegate apply --env {} {}` again, to resume after the last checkpoint",
                        cx.env.name, cx.plan
                    )));
                }
                Ok(Read::NotAReplica(why)) => {
                    return Err(entry(format!(
                        "is not a replica: {why}; list the replicas of {}'s database",
                        cx.env.name
                    )));
                }
                Ok(Read::Lag(l)) => l,
                Err(Unreadable::Now(e)) => LagReading::Unreadable(e),
            };
            let over = match &reading {
                LagReading::Behind(d) => *d > lag.max,
                LagReading::Stopped(_) | LagReading::Unreadable(_) => true,
            };
            let worse = match (&worst, &reading) {
                (None, _) => true,
                (Some((_, LagReading::Behind(a))), LagReading::Behind(b)) => b > a,
                (Some((_, LagReading::Behind(_))), _) => true,
                (Some(_), _) => false,
            };
            if over && worse {
                worst = Some((i, reading));
            }
        }
        Ok(worst.map(|(i, l)| Hold::Replica(i, l)))
    }

    /// The VACUUM running on the table, with `pause_for_vacuum`.
    async fn vacuum_running(
        &mut self,
        store: &mut Store,
        cx: &StepContext<'_>,
        step: &Step,
    ) -> Result<Option<Hold>, RunError> {
        let Some(table) = &self.vacuum else {
            return Ok(None);
        };
        let within = deadline::batch_deadline(cx.env);
        if !self.checked {
            let (sees, role) = deadline::within(within, vacuum::visible(store.conn()))
                .await
                .map_err(|e| {
                    lost_backfill(
                        step,
                        cx,
                        "checking what pause_for_vacuum can see".into(),
                        &e,
                    )
                })?;
            if !sees {
                return Err(failure(
                    step,
                    cx.phase,
                    format!(
                        "pause_for_vacuum: role {role} cannot see other roles' VACUUMs (autovacuum's among them: pg_stat_progress_vacuum hides their table) without the privileges of pg_read_all_stats; run `GRANT pg_read_all_stats TO {role}` (or remove pause_for_vacuum) and `phasegate apply --env {} {}` again, to resume after the last checkpoint",
                        cx.env.name, cx.plan
                    ),
                ));
            }
            self.checked = true;
        }
        deadline::within(within, vacuum::running(store.conn(), table))
            .await
            .map(|r| r.map(Hold::Vacuum))
            .map_err(|e| lost_backfill(step, cx, "reading pg_stat_progress_vacuum".into(), &e))
    }

    /// The step's error after a wait of [`MAX_WAIT`] for `hold`.
    fn waited_too_long(&self, cx: &StepContext<'_>, hold: &Hold) -> String {
        let next = format!(
            "the committed batches are kept: run `phasegate apply --env {} {}`",
            cx.env.name, cx.plan
        );
        let long = humantime::format_duration(MAX_WAIT);
        match hold {
            Hold::Replica(i, lag) => {
                let now = match lag {
                    LagReading::Behind(d) => format!("{:.1}s behind", d.as_secs_f64()),
                    LagReading::Stopped(why) => format!("not replicating: {why}"),
                    LagReading::Unreadable(e) => format!("unreadable ({e})"),
                };
                format!(
                    "replica {} has been more than max_replica_lag ({}) behind for {long} (now {now}); {next} once it has caught up, to resume after the last checkpoint",
                    shown(&self.urls()[*i]),
                    humantime::format_duration(self.max()),
                )
            }
            Hold::Vacuum(v) => format!(
                "{} of {} (pid {}) has run for {long} while the backfill waited (pause_for_vacuum); {next} once it has ended (`SELECT pg_cancel_backend({})` ends it), to resume after the last checkpoint",
                v.kind, v.relation, v.pid, v.pid
            ),
        }
    }

    /// How far behind replica `i` is, read on a connection kept open.
    async fn read(&mut self, i: usize, url: &str, dialect: Dialect) -> Result<Read, Unreadable> {
        let bound = self.bound;
        if self.replicas[i].is_none() {
            self.replicas[i] = Some(match dialect {
                Dialect::Mysql => Replica::Mysql(mysql::Replica::new(connect(url, bound).await?)),
                _ => Replica::Postgres(connect(url, bound).await?),
            });
        }
        let Some(replica) = self.replicas[i].as_mut() else {
            return Err(Unreadable::Now("no connection".into()));
        };
        let read = async {
            match replica {
                Replica::Postgres(c) => postgres::lag(c).await,
                Replica::Mysql(r) => r.lag().await,
            }
        };
        match tokio::time::timeout(bound, read).await {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(e)) => {
                self.replicas[i] = None;
                match mysql::denied(&e) {
                    Some(why) => Err(Unreadable::Refused(format!(
                        "refused to show its replication status: {why}"
                    ))),
                    None => Err(Unreadable::Now(describe(&e))),
                }
            }
            Err(_) => {
                self.replicas[i] = None;
                Err(Unreadable::Now(format!(
                    "no answer within {}",
                    humantime::format_duration(bound)
                )))
            }
        }
    }
}

/// A connection to `url` within `bound`.
async fn connect<C>(url: &str, bound: Duration) -> Result<C, Unreadable>
where
    C: Connection,
    C::Options: FromStr<Err = sqlx::Error>,
{
    let opts: C::Options = url.parse().map_err(|e: sqlx::Error| {
        Unreadable::Refused(format!("is not a usable URL: {}", describe(&e)))
    })?;
    tokio::time::timeout(bound, opts.connect())
        .await
        .map_err(|_| {
            Unreadable::Now(format!(
                "no connection within {}",
                humantime::format_duration(bound)
            ))
        })?
        .map_err(|e| match e {
            // The server answered and said no (an unknown database or
            // role, a failed password): waiting will not change that.
            sqlx::Error::Database(_) => {
                Unreadable::Refused(format!("refused the connection: {}", describe(&e)))
            }
            _ => Unreadable::Now(describe(&e)),
        })
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
            shown("mysql://app:s3cret@replica-1/app"),
            "mysql://app:***@replica-1/app"
        );
        assert_eq!(
            shown("postgres://replica-1/app"),
            "postgres://replica-1/app"
        );
    }
}
