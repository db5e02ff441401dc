//! `pause_for_vacuum` (Postgres): whether a VACUUM runs on the backfilled
//! table.
//!
//! Read on the primary, on the backfill's own connection, from
//! `pg_stat_progress_vacuum` (one row per backend running VACUUM,
//! autovacuum workers included; Postgres docs, "VACUUM Progress
//! Reporting") joined to `pg_stat_activity` for who runs it
//! (`backend_type` `autovacuum worker`, and an autovacuum's `query`
//! ending in `(to prevent wraparound)`). The table counts with its
//! partitions and inheritance children (an UPDATE of the parent writes
//! theirs) and their TOAST tables (autovacuum vacuums those on their own).
//!
//! A batch does not conflict with a VACUUM's lock (ROW EXCLUSIVE and SHARE
//! UPDATE EXCLUSIVE go together); the wait is for the I/O and the dead rows:
//! each batch leaves a dead row version per row it updates, which the
//! running VACUUM cannot remove and the next one must. `VACUUM FULL` is not
//! listed there (it reports as CLUSTER) and takes ACCESS EXCLUSIVE, which a
//! batch waits for at its `lock_timeout` anyway.
//!
//! Another role's backends (autovacuum's among them) show `relid` NULL
//! unless the role has the privileges of `pg_read_all_stats` (or is a
//! superuser), so the setting would silently see nothing: [`visible`] checks
//! that first, and the step stops naming the grant when it is missing.

use sqlx::{AnyConnection, AssertSqlSafe, Row};

use crate::execute::progress::VacuumKind;

/// Whether the session's role sees every backend's progress, and its name.
pub(super) async fn visible(conn: &mut AnyConnection) -> Result<(bool, String), sqlx::Error> {
    let row = sqlx::query(AssertSqlSafe(
        "SELECT pg_has_role(current_user, 'pg_read_all_stats', 'USAGE'), current_user::text",
    ))
    .fetch_one(conn)
    .await?;
    Ok((row.try_get(0)?, row.try_get(1)?))
}

/// A VACUUM running on the table.
#[derive(Debug)]
pub(super) struct Running {
    /// The relation it vacuums (`relid::regclass`).
    pub relation: String,
    pub kind: VacuumKind,
    pub pid: i32,
    pub phase: String,
}

/// The relations a VACUUM of which holds the backfill of `$1` (the table,
/// quoted as the dialect quotes it): the table, its partitions and
/// inheritance children at every level, and their TOAST tables.
const RUNNING_SQL: &str = "WITH RECURSIVE tree(oid) AS ( \
        SELECT $1::regclass::oid \
      UNION \
        SELECT i.inhrelid FROM pg_inherits i JOIN tree t ON i.inhparent = t.oid \
    ), rels(oid) AS ( \
        SELECT oid FROM tree \
      UNION \
        SELECT c.reltoastrelid FROM pg_class c JOIN tree t ON c.oid = t.oid WHERE c.reltoastrelid <> 0 \
    ) \
    SELECT p.pid, p.relid::regclass::text, p.phase, COALESCE(a.backend_type, ''), COALESCE(a.query, '') \
    FROM pg_stat_progress_vacuum p LEFT JOIN pg_stat_activity a ON a.pid = p.pid \
    WHERE p.datid = (SELECT oid FROM pg_database WHERE datname = current_database()) \
      AND p.relid IN (SELECT oid FROM rels) \
    ORDER BY p.pid LIMIT 1";

/// The VACUUM running on `table` (quoted), if any.
pub(super) async fn running(
    conn: &mut AnyConnection,
    table: &str,
) -> Result<Option<Running>, sqlx::Error> {
    let Some(row) = sqlx::query(AssertSqlSafe(RUNNING_SQL))
        .bind(table.to_string())
        .fetch_optional(conn)
        .await?
    else {
        return Ok(None);
    };
    let backend: String = row.try_get(3)?;
    let query: String = row.try_get(4)?;
    Ok(Some(Running {
        pid: row.try_get(0)?,
        relation: row.try_get(1)?,
        phase: row.try_get(2)?,
        kind: kind(&backend, &query),
    }))
}

/// Who runs a VACUUM, from `pg_stat_activity.backend_type` and `query`.
fn kind(backend_type: &str, query: &str) -> VacuumKind {
    if backend_type != "autovacuum worker" {
        VacuumKind::Manual
    } else if query.contains("(to prevent wraparound)") {
        VacuumKind::AutovacuumWraparound
    } else {
        VacuumKind::Autovacuum
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn who_runs_a_vacuum_comes_from_the_backend_type_and_query() {
        assert_eq!(
            kind("autovacuum worker", "autovacuum: VACUUM public.big"),
            VacuumKind::Autovacuum
        );
        assert_eq!(
            kind(
                "autovacuum worker",
                "autovacuum: VACUUM ANALYZE public.big (to prevent wraparound)"
            ),
            VacuumKind::AutovacuumWraparound
        );
        assert_eq!(kind("client backend", "VACUUM big"), VacuumKind::Manual);
    }
}
