//! A Postgres replica's lag, read on the replica itself.
//!
//! 0 when it has replayed all the WAL it received, else the time since the
//! last transaction it replayed committed on the primary
//! (`pg_last_xact_replay_timestamp()`, Postgres docs, "Recovery Information
//! Functions"). The primary's `pg_stat_replication.replay_lag` is not used:
//! it is measured when the replica reports progress, so a replica whose
//! replay stopped keeps showing the last small value.

use std::time::Duration;

use sqlx::PgConnection;

use super::Read;
use crate::execute::progress::LagReading;

/// Seconds the replica is behind; -1 on a server that is not a replica.
const LAG_SQL: &str = "SELECT CASE \
       WHEN NOT pg_is_in_recovery() THEN -1 \
       WHEN pg_last_wal_receive_lsn() IS NOT DISTINCT FROM pg_last_wal_replay_lsn() THEN 0 \
       ELSE COALESCE(EXTRACT(epoch FROM now() - pg_last_xact_replay_timestamp()), 0) END::float8";

/// How far behind the replica on `conn` is.
pub(super) async fn lag(conn: &mut PgConnection) -> Result<Read, sqlx::Error> {
    let s = sqlx::query_scalar::<_, f64>(LAG_SQL)
        .fetch_one(conn)
        .await?;
    Ok(if s < 0.0 {
        Read::NotAReplica("pg_is_in_recovery() is false there".into())
    } else {
        Read::Lag(LagReading::Behind(Duration::from_secs_f64(s.min(1e9))))
    })
}
