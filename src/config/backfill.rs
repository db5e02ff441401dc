//! How a backfill runs, from `phasegate.yaml`: the size of its batches
//! (`backfill_batch_size` or `backfill_batch_time`), and what makes a batch
//! wait — replicas further behind than `max_replica_lag` (`replica_urls`),
//! a VACUUM on the table (`pause_for_vacuum`, Postgres).

use std::time::Duration;

use serde_saphyr::Location;

use super::{
    At, BATCH_TIME_RANGE, ConfigError, DurationRange, LAG_RANGE, RawEnvironment,
    WHOLE_SECONDS_LAG_RANGE, dialect_of, expand,
};
use crate::dialect::Dialect;

/// A duration field's value, range-checked, at its line and column.
pub(super) type DurationField<'a> =
    dyn Fn(&str, &Option<At<String>>, DurationRange) -> Result<Option<Duration>, ConfigError> + 'a;

/// `max_replica_lag` and the replicas it is read on (`replica_urls`).
#[derive(Debug, Clone, PartialEq)]
pub struct ReplicaLag {
    /// The most a replica may be behind before the next batch waits (whole
    /// seconds on MySQL/MariaDB: [`WHOLE_SECONDS_LAG_RANGE`]).
    pub max: Duration,
    /// The replicas, as connection URLs of the environment's dialect
    /// (`${VAR}`s expanded).
    pub urls: Vec<String>,
}

/// How a backfill sizes its batches (`backfill_batch_size` or
/// `backfill_batch_time` in `phasegate.yaml`; at most one of them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchSizing {
    /// `backfill_batch_size: N`: every batch updates N rows (the last fewer).
    Rows(u32),
    /// `backfill_batch_time: D` (the default, [`BatchSizing::DEFAULT_TIME`]):
    /// the first batch takes [`BatchSizing::FIRST_ROWS`] rows, and each next
    /// one is sized from the rows per second the previous ones reached so
    /// that it holds its row locks for about D (`execute/backfill/sizing.rs`).
    Timed(Duration),
}

impl BatchSizing {
    /// The target batch time when `phasegate.yaml` sets neither: short
    /// enough that a write to a row of the batch waits at most about this
    /// long, long enough that a batch's fixed cost (a round trip, the
    /// checkpoint, the commit's flush) is a few percent of it.
    pub const DEFAULT_TIME: Duration = Duration::from_millis(100);
    /// The first batch of a timed backfill, before its speed is known.
    pub const FIRST_ROWS: u32 = 1000;

    /// The first batch's size.
    pub fn first_rows(self) -> u32 {
        match self {
            BatchSizing::Rows(n) => n,
            BatchSizing::Timed(_) => Self::FIRST_ROWS,
        }
    }
}

/// `max_replica_lag` and `replica_urls` (each needs the other; not on
/// SQLite; every replica of the environment's dialect). The outer error is
/// the file's; the inner one an unset `${VAR}` in a replica URL, which the
/// caller sets aside like one in `database_url` when lenient.
pub(super) fn replica_lag(
    e: &RawEnvironment,
    name: &str,
    dialect: Dialect,
    lookup: &dyn Fn(&str) -> Option<String>,
    at_value: &dyn Fn(&Location, String) -> ConfigError,
    duration: &DurationField<'_>,
) -> Result<Result<Option<ReplicaLag>, ConfigError>, ConfigError> {
    let (m, u) = match (&e.max_replica_lag, &e.replica_urls) {
        (None, None) => return Ok(Ok(None)),
        (Some(m), None) => {
            return Err(at_value(
                &m.referenced,
                format!(
                    "{name}.max_replica_lag needs replica_urls: the replicas whose lag is read"
                ),
            ));
        }
        (None, Some(u)) => {
            return Err(at_value(
                &u.referenced,
                format!(
                    "{name}.replica_urls needs max_replica_lag: how far behind a replica may be before a backfill batch waits"
                ),
            ));
        }
        (Some(m), Some(u)) => (m, u),
    };
    if dialect == Dialect::Sqlite {
        return Err(at_value(
            &m.referenced,
            format!(
                "{name}.max_replica_lag: a SQLite database has no replicas to read the lag of (Postgres and MySQL/MariaDB only)"
            ),
        ));
    }
    if u.value.is_empty() {
        return Err(at_value(
            &u.referenced,
            format!("{name}.replica_urls is empty: list at least one replica"),
        ));
    }
    let mut urls = Vec::with_capacity(u.value.len());
    for (i, r) in u.value.iter().enumerate() {
        let url = match expand(r, lookup) {
            Ok(url) => url,
            Err(var) => {
                return Ok(Err(at_value(
                    &u.referenced,
                    format!("environment variable `{var}` (in {name}'s replica_urls) is not set"),
                )));
            }
        };
        if dialect_of(&url) != Ok(dialect) {
            let (kind, scheme) = match dialect {
                Dialect::Mysql => ("MySQL/MariaDB", "mysql"),
                _ => ("Postgres", "postgres"),
            };
            return Err(at_value(
                &u.referenced,
                format!(
                    "{name}.replica_urls: entry {} is not a {kind} URL (expected {scheme}://…, as database_url)",
                    i + 1
                ),
            ));
        }
        urls.push(url);
    }
    let range = match dialect {
        Dialect::Mysql => WHOLE_SECONDS_LAG_RANGE,
        _ => LAG_RANGE,
    };
    let max =
        duration("max_replica_lag", &e.max_replica_lag, range)?.unwrap_or(Duration::from_secs(10));
    Ok(Ok(Some(ReplicaLag { max, urls })))
}

/// `pause_for_vacuum` (Postgres only; false when not set).
pub(super) fn pause_for_vacuum(
    e: &RawEnvironment,
    name: &str,
    dialect: Dialect,
    at_value: &dyn Fn(&Location, String) -> ConfigError,
) -> Result<bool, ConfigError> {
    match &e.pause_for_vacuum {
        Some(p) if p.value && dialect != Dialect::Postgres => Err(at_value(
            &p.referenced,
            format!(
                "{name}.pause_for_vacuum: only Postgres reports the VACUUMs running on a table (pg_stat_progress_vacuum); remove it for this database"
            ),
        )),
        Some(p) => Ok(p.value),
        None => Ok(false),
    }
}

/// `backfill_batch_size` or `backfill_batch_time` (not both; a size of at
/// least 1; by default timed batches of [`BatchSizing::DEFAULT_TIME`]).
pub(super) fn batch_sizing(
    e: &RawEnvironment,
    name: &str,
    at_value: &dyn Fn(&Location, String) -> ConfigError,
    duration: &DurationField<'_>,
) -> Result<BatchSizing, ConfigError> {
    match (&e.backfill_batch_size, &e.backfill_batch_time) {
        (Some(_), Some(t)) => Err(at_value(
            &t.referenced,
            format!(
                "{name}: set backfill_batch_size (a fixed number of rows per batch) or backfill_batch_time (batches sized to take about that long), not both"
            ),
        )),
        (Some(n), None) if n.value == 0 => Err(at_value(
            &n.referenced,
            format!("{name}.backfill_batch_size must be at least 1"),
        )),
        (Some(n), None) => Ok(BatchSizing::Rows(n.value)),
        (None, time) => Ok(BatchSizing::Timed(
            duration("backfill_batch_time", time, BATCH_TIME_RANGE)?
                .unwrap_or(BatchSizing::DEFAULT_TIME),
        )),
    }
}
