//! How many rows a backfill's table holds, for its progress bar and ETA.
//!
//! Statistics cannot be trusted for this: Postgres' `reltuples` is -1 (or
//! 0) until the table is first analyzed, MySQL's `TABLE_ROWS` can be 0 or
//! stale, SQLite keeps none. So the table is counted exactly, up to
//! [`EXACT_COUNT_LIMIT`] rows (a bounded count: `SELECT count(*) FROM
//! (SELECT 1 FROM t LIMIT n)`, about 0.1 s per million rows on Postgres and
//! 0.3 s on MariaDB, measured); a table with more rows gets the database's
//! estimate (the Postgres planner's, which scales the statistics to the
//! table's current size and works before any ANALYZE; MySQL's
//! `TABLE_ROWS`), never below that limit. SQLite counts every row
//! (`count(*)` walks the table's b-tree pages: 17 ms for 2 million rows).
//!
//! The count waits for the table's lock at most `lock_timeout` and runs at
//! most [`COUNT_BOUND`]; when it fails the estimate is used, and when that
//! fails too the size is unknown (`None`): a backfill never fails for it.

use std::time::Duration;

use sqlx::AssertSqlSafe;

use super::super::progress::{EXACT_COUNT_LIMIT, RowCount};
use crate::config::Environment;
use crate::dialect::Dialect;
use crate::name::TableName;
use crate::tracker::Store;

/// How long the exact count may run before the estimate is used instead.
const COUNT_BOUND: Duration = Duration::from_secs(10);

/// The rows of `table`: counted up to [`EXACT_COUNT_LIMIT`], else estimated
/// (see the module's documentation). `None` when neither worked.
pub(super) async fn table_rows(
    store: &mut Store,
    env: &Environment,
    table: &TableName,
) -> Option<RowCount> {
    let dialect = env.dialect;
    let t = dialect.quote_table(table);
    match dialect {
        Dialect::Sqlite => {
            let n: i64 = sqlx::query_scalar(AssertSqlSafe(format!("SELECT count(*) FROM {t}")))
                .fetch_one(store.conn())
                .await
                .ok()?;
            Some(RowCount {
                rows: u64::try_from(n).ok()?,
                exact: true,
            })
        }
        Dialect::Postgres => postgres(store, env, table, &t).await,
        Dialect::Mysql => mysql(store, env, table, &t).await,
    }
}

/// `SELECT count(*) FROM (SELECT 1 FROM t LIMIT limit + 1)`.
fn bounded_count(t: &str) -> String {
    format!(
        "SELECT count(*) FROM (SELECT 1 FROM {t} LIMIT {}) AS phasegate_count",
        EXACT_COUNT_LIMIT + 1
    )
}

/// A count: exact when it stayed within the limit, else the estimate
/// (at least the limit + 1).
fn counted(n: u64, estimate: Option<u64>) -> RowCount {
    if n <= EXACT_COUNT_LIMIT {
        return RowCount {
            rows: n,
            exact: true,
        };
    }
    RowCount {
        rows: estimate.unwrap_or(0).max(EXACT_COUNT_LIMIT + 1),
        exact: false,
    }
}

/// An estimate alone (the count failed): `None` when it says nothing.
fn estimated(estimate: Option<u64>) -> Option<RowCount> {
    estimate
        .filter(|n| *n > 0)
        .map(|rows| RowCount { rows, exact: false })
}

fn millis(d: Duration) -> u128 {
    d.as_millis().max(1)
}

async fn postgres(
    store: &mut Store,
    env: &Environment,
    table: &TableName,
    t: &str,
) -> Option<RowCount> {
    let bound = env
        .statement_timeout
        .map_or(COUNT_BOUND, |s| s.min(COUNT_BOUND));
    let begin = format!(
        "BEGIN; SET LOCAL lock_timeout = '{}ms'; SET LOCAL statement_timeout = '{}ms';",
        millis(env.lock_timeout),
        millis(bound)
    );
    let counted_now = async {
        sqlx::raw_sql(AssertSqlSafe(begin.clone()))
            .execute(store.conn())
            .await?;
        let n: i64 = sqlx::query_scalar(AssertSqlSafe(bounded_count(t)))
            .fetch_one(store.conn())
            .await?;
        let estimate = if n.unsigned_abs() > EXACT_COUNT_LIMIT {
            postgres_plan_rows(store, t).await.ok().flatten()
        } else {
            None
        };
        sqlx::raw_sql("COMMIT").execute(store.conn()).await?;
        Ok::<_, sqlx::Error>(counted(n.unsigned_abs(), estimate))
    }
    .await;
    match counted_now {
        Ok(c) => Some(c),
        Err(e) => {
            store.rollback().await;
            // Locked out: the planner would wait for the same lock, the
            // catalog's statistics do not.
            if super::super::send::is_lock_timeout(&e) {
                return estimated(postgres_reltuples(store, env, table).await);
            }
            let planned = async {
                sqlx::raw_sql(AssertSqlSafe(begin.clone()))
                    .execute(store.conn())
                    .await?;
                let rows = postgres_plan_rows(store, t).await?;
                sqlx::raw_sql("COMMIT").execute(store.conn()).await?;
                Ok::<_, sqlx::Error>(rows)
            }
            .await;
            match planned {
                Ok(rows) => estimated(rows),
                Err(_) => {
                    store.rollback().await;
                    estimated(postgres_reltuples(store, env, table).await)
                }
            }
        }
    }
}

/// The planner's estimate of the table's rows (`EXPLAIN SELECT 1 FROM t`,
/// the first `rows=` of the plan): the statistics scaled to the table's
/// current size in pages, or, before any ANALYZE, the pages times the
/// rows that fit in one.
async fn postgres_plan_rows(store: &mut Store, t: &str) -> Result<Option<u64>, sqlx::Error> {
    let lines: Vec<String> =
        sqlx::query_scalar(AssertSqlSafe(format!("EXPLAIN SELECT 1 FROM {t}")))
            .fetch_all(store.conn())
            .await?;
    Ok(lines.iter().find_map(|l| plan_rows(l)))
}

/// `rows=N` in a line of a text `EXPLAIN`.
fn plan_rows(line: &str) -> Option<u64> {
    let at = line.find(" rows=")? + " rows=".len();
    let digits: String = line[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

/// `pg_class.reltuples` (no lock needed): -1 or 0 before the first ANALYZE.
async fn postgres_reltuples(
    store: &mut Store,
    env: &Environment,
    table: &TableName,
) -> Option<u64> {
    let d = env.dialect;
    let sql = format!(
        "SELECT GREATEST(reltuples, 0)::bigint FROM pg_class WHERE oid = to_regclass({})",
        d.quote_literal(&d.quote_table(table))
    );
    let n: i64 = sqlx::query_scalar(AssertSqlSafe(sql))
        .fetch_one(store.conn())
        .await
        .ok()?;
    u64::try_from(n).ok()
}

async fn mysql(
    store: &mut Store,
    env: &Environment,
    table: &TableName,
    t: &str,
) -> Option<RowCount> {
    let bound = env
        .statement_timeout
        .map_or(COUNT_BOUND, |s| s.min(COUNT_BOUND));
    // MariaDB bounds the statement with `SET STATEMENT … FOR` (the `/*M!`
    // comment runs there only), MySQL with the optimizer hint; the
    // session's `lock_wait_timeout` (the environment's `lock_timeout`)
    // bounds the wait for the table's metadata lock.
    let sql = format!(
        "/*M! SET STATEMENT max_statement_time = {} FOR */ {}",
        bound.as_secs_f64(),
        bounded_count(t).replacen(
            "SELECT count(*)",
            &format!(
                "SELECT /*+ MAX_EXECUTION_TIME({}) */ count(*)",
                millis(bound)
            ),
            1
        )
    );
    let n = sqlx::query_scalar::<_, i64>(AssertSqlSafe(sql))
        .fetch_one(store.conn())
        .await
        .ok()
        .map(i64::unsigned_abs);
    match n {
        Some(n) if n <= EXACT_COUNT_LIMIT => Some(counted(n, None)),
        Some(n) => Some(counted(n, mysql_table_rows(store, env, table).await)),
        None => estimated(mysql_table_rows(store, env, table).await),
    }
}

/// `information_schema.TABLES.TABLE_ROWS`: InnoDB's estimate (0 or stale
/// on a table just filled).
async fn mysql_table_rows(store: &mut Store, env: &Environment, table: &TableName) -> Option<u64> {
    let d = env.dialect;
    let schema = table
        .schema
        .as_ref()
        .map_or("DATABASE()".to_string(), |s| d.quote_literal(s.as_str()));
    let sql = format!(
        "SELECT CAST(table_rows AS SIGNED) FROM information_schema.tables WHERE table_schema = {schema} AND table_name = {}",
        d.quote_literal(table.name.as_str())
    );
    let n: Option<i64> = sqlx::query_scalar(AssertSqlSafe(sql))
        .fetch_one(store.conn())
        .await
        .ok()?;
    u64::try_from(n?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_rows_of_a_plan_line() {
        assert_eq!(
            plan_rows("Seq Scan on t  (cost=0.00..27134.07 rows=1439507 width=4)"),
            Some(1_439_507)
        );
        assert_eq!(plan_rows("  ->  Seq Scan on t_1"), None);
    }

    #[test]
    fn a_count_past_the_limit_is_an_estimate_never_below_it() {
        assert_eq!(
            counted(12, Some(0)),
            RowCount {
                rows: 12,
                exact: true
            }
        );
        let big = counted(EXACT_COUNT_LIMIT + 1, Some(10));
        assert_eq!(big.rows, EXACT_COUNT_LIMIT + 1);
        assert!(!big.exact);
        assert_eq!(
            counted(EXACT_COUNT_LIMIT + 1, Some(5_000_000)).rows,
            5_000_000
        );
        assert_eq!(estimated(Some(0)), None);
    }
}
