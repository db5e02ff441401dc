//! Where long steps report how far they got: the [`Progress`] trait and
//! what it is told. The library never prints; the binary draws a progress
//! bar on a terminal and plain lines otherwise.

use std::time::Duration;

use crate::plan::Step;

/// Where a long step reports how far it got. Every method has a default
/// body that does nothing, so an implementation picks what it shows.
pub trait Progress: Send + Sync {
    /// A step is about to run.
    fn step(&self, _step: &Step) {}

    /// A backfill has updated `updated` rows (earlier, interrupted runs of
    /// it included) of a table of about `total` rows (`None`: unknown).
    /// Called when the backfill starts, after each batch and after its final
    /// sweep; [`Progress::backfill_progress`] calls it by default.
    fn backfill(&self, _step: &Step, _updated: u64, _total: Option<u64>) {}

    /// How far a backfill got, with what a bar and a rate need: called when
    /// the backfill starts (or resumes after a checkpoint), after each batch,
    /// and once more when it is finished. By default it calls
    /// [`Progress::backfill`] with the rows updated and the table's size.
    fn backfill_progress(&self, step: &Step, p: &BackfillProgress) {
        self.backfill(step, p.updated, p.total.map(|t| t.rows));
    }

    /// A statement of `step` gave way on a lock (it waited `lock_timeout`
    /// for it) and is tried again after a pause: called before the pause.
    fn lock_wait(&self, _step: &Step, _wait: &LockWait) {}

    /// A backfill of `step` waits before its next batch because a replica
    /// is further behind than `max_replica_lag`, is not replicating, or
    /// cannot be read: called before each pause of about a second.
    fn replica_wait(&self, _step: &Step, _wait: &ReplicaWait) {}

    /// A backfill of `step` waits before its next batch because a VACUUM
    /// runs on its table (`pause_for_vacuum`): called before each pause of
    /// about a second.
    fn vacuum_wait(&self, _step: &Step, _wait: &VacuumWait) {}
}

/// Reports nothing.
pub struct NoProgress;

impl Progress for NoProgress {}

/// How many rows a backfill's table holds, as found when the backfill
/// starts: counted exactly up to [`EXACT_COUNT_LIMIT`] rows, else the
/// database's estimate (never below that limit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RowCount {
    /// Rows in the table.
    pub rows: u64,
    /// True when counted; false when estimated (the table holds more than
    /// [`EXACT_COUNT_LIMIT`] rows, or counting them took too long).
    pub exact: bool,
}

/// Up to how many rows a backfill counts its table exactly before it runs
/// (a bounded count: about 0.1 s on Postgres, 0.3 s on MariaDB, per million
/// rows); a larger table's size is the database's estimate.
pub const EXACT_COUNT_LIMIT: u64 = 1_000_000;

/// How far a backfill got. Rows are counted from the backfill's start,
/// across interrupted runs: a run resumed after a checkpoint begins at
/// `resumed_from`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackfillProgress {
    /// Rows of the table the walk has passed so far (each visited once,
    /// whether it needed a change or not), earlier runs included.
    pub done: u64,
    /// Rows the walk had passed when this run started: the checkpoint it
    /// resumed from, 0 for a fresh start. Rates belong to this run only:
    /// rows done in this run are `done - resumed_from`.
    pub resumed_from: u64,
    /// Rows changed so far, earlier runs and the final sweep included.
    pub updated: u64,
    /// The table's size when the backfill started (`None`: the count and
    /// the estimate both failed, e.g. the table was locked).
    pub total: Option<RowCount>,
    /// True in the last report: the walk and the final sweep are done.
    pub finished: bool,
}

/// A backfill waiting for a replica to catch up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaWait {
    /// The replica, as `replica_urls` names it, without its password.
    pub replica: String,
    /// What was read there.
    pub lag: LagReading,
    /// The environment's `max_replica_lag`.
    pub max: Duration,
    /// How long this batch has waited so far.
    pub waited: Duration,
}

/// What a replica said about its lag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LagReading {
    /// It is this far behind. Postgres: the time since the last transaction
    /// it replayed committed on the primary (0 once it replayed all it
    /// received); MySQL/MariaDB: `Seconds_Behind_Master` (whole seconds).
    Behind(Duration),
    /// It is not applying what it receives, so its lag is unknown and
    /// growing: why (MySQL/MariaDB: "replication SQL thread is not running",
    /// with the replica's last error when it has one).
    Stopped(String),
    /// It could not be read: why (no connection, no answer in time).
    Unreadable(String),
}

/// A backfill waiting for a VACUUM of its table to end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VacuumWait {
    /// The relation being vacuumed (`pg_stat_progress_vacuum.relid`, as
    /// `regclass` shows it): the table, one of its partitions or its TOAST
    /// table.
    pub table: String,
    /// Who runs it.
    pub kind: VacuumKind,
    /// The server process running it (`pg_cancel_backend` takes it).
    pub pid: i32,
    /// Where it is (`pg_stat_progress_vacuum.phase`, e.g. "scanning heap").
    pub phase: String,
    /// How long this batch has waited so far.
    pub waited: Duration,
}

/// Who runs a VACUUM (`pg_stat_activity.backend_type` and `query`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VacuumKind {
    /// An autovacuum worker.
    Autovacuum,
    /// An autovacuum worker preventing transaction ID wraparound: it does
    /// not give way to other sessions' locks, and may run long.
    AutovacuumWraparound,
    /// A session's own `VACUUM` (a person, a cron job).
    Manual,
}

/// `autovacuum`, `autovacuum (to prevent wraparound)`, `a manual VACUUM`.
impl std::fmt::Display for VacuumKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            VacuumKind::Autovacuum => "autovacuum",
            VacuumKind::AutovacuumWraparound => "autovacuum (to prevent wraparound)",
            VacuumKind::Manual => "a manual VACUUM",
        })
    }
}

/// A statement that gave way on its lock and is tried again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockWait {
    /// The table the step works on, as the plan names it (`None`: the step
    /// names none, e.g. a `sql` change).
    pub table: Option<String>,
    /// The try that comes next, after `retry_in`: 2 for the first retry.
    pub attempt: u32,
    /// How many tries there are in all: the environment's `lock_retries` + 1.
    pub attempts: u32,
    /// How long the try that gave way waited for the lock: the
    /// environment's `lock_timeout` as the database applies it (MySQL rounds
    /// it up to whole seconds).
    pub waited: Duration,
    /// The pause before the next try (backoff with jitter).
    pub retry_in: Duration,
}
