//! How big the tables a plan touches are, from the catalog's statistics:
//! what a reviewer weighs a backfill or a lock by (the pull-request review,
//! docs/review.md).
//!
//! - Postgres: `pg_class.reltuples` (the planner's row estimate, kept by
//!   VACUUM, ANALYZE and CREATE INDEX; -1 until the table is first analyzed,
//!   Postgres docs §53.11 "pg_class") and `pg_total_relation_size` (heap,
//!   indexes and TOAST, §9.28.7 "Database Object Management Functions").
//!   A table never analyzed is counted instead, up to [`COUNT_LIMIT`] rows.
//! - MySQL/MariaDB: `information_schema.TABLES`: `TABLE_ROWS` (InnoDB's
//!   estimate, off by up to 40–50 % per the MySQL manual) and
//!   `DATA_LENGTH + INDEX_LENGTH`.
//! - SQLite: `count(*)` (SQLite keeps no row statistics) and the pages of
//!   the table and its indexes from the `dbstat` virtual table when the
//!   library has it, else no size.

use std::str::FromStr;

use sqlx::{AssertSqlSafe, Row};

use super::CatalogError;
use super::connect::{DEFAULT_CONNECT_TIMEOUT, close_pool, one_connection, redact};
use crate::dialect::Dialect;
use crate::name::TableName;

/// How far a table without statistics is counted: beyond it the rows are
/// reported as "more than" this.
pub const COUNT_LIMIT: u64 = 1_000_000;

/// The size of one table.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TableSize {
    /// The table, as the plan names it.
    pub table: TableName,
    /// Whether the table exists; when not, `rows` and `bytes` are `None`.
    pub exists: bool,
    /// Rows, as the catalog estimates them or as counted (see `exact`).
    pub rows: Option<u64>,
    /// Whether `rows` was counted rather than estimated. A count that
    /// reached [`COUNT_LIMIT`] is not exact: the table has more rows.
    pub exact: bool,
    /// Bytes on disk, indexes included; `None` where the database does not
    /// say (SQLite without `dbstat`).
    pub bytes: Option<u64>,
}

/// The sizes of `tables` in the database at `url` (`postgres://…`,
/// `mysql://…`, `mariadb://…`, `sqlite:…`), in the order given. Reads only.
///
/// Errors: the URL is not one of those, the connection fails or does not
/// answer within [`DEFAULT_CONNECT_TIMEOUT`], or a catalog query fails.
pub async fn table_sizes(url: &str, tables: &[TableName]) -> Result<Vec<TableSize>, CatalogError> {
    let shown = redact(url);
    let scheme = crate::dialect::url_scheme(url);
    let connect_err = |source| CatalogError::Connect {
        url: shown.clone(),
        source,
    };
    let mut out = Vec::with_capacity(tables.len());
    match scheme.as_str() {
        "postgres" | "postgresql" => {
            let opts = sqlx::postgres::PgConnectOptions::from_str(url).map_err(connect_err)?;
            let pool = one_connection(opts, DEFAULT_CONNECT_TIMEOUT, &shown).await?;
            for t in tables {
                out.push(postgres(&pool, t).await.map_err(query_err(t))?);
            }
            close_pool(pool).await;
        }
        "mysql" | "mariadb" => {
            let url = crate::dialect::driver_url(url);
            let opts = sqlx::mysql::MySqlConnectOptions::from_str(&url).map_err(connect_err)?;
            let pool = one_connection(opts, DEFAULT_CONNECT_TIMEOUT, &shown).await?;
            for t in tables {
                out.push(mysql(&pool, t).await.map_err(query_err(t))?);
            }
            close_pool(pool).await;
        }
        "sqlite" => {
            let opts = sqlx::sqlite::SqliteConnectOptions::from_str(url).map_err(connect_err)?;
            let pool = one_connection(opts, DEFAULT_CONNECT_TIMEOUT, &shown).await?;
            for t in tables {
                out.push(sqlite(&pool, t).await.map_err(query_err(t))?);
            }
            close_pool(pool).await;
        }
        _ => return Err(CatalogError::Url { url: shown }),
    }
    Ok(out)
}

fn query_err(t: &TableName) -> impl Fn(sqlx::Error) -> CatalogError + '_ {
    move |source| CatalogError::Query {
        table: t.to_string(),
        source,
    }
}

fn missing(table: &TableName) -> TableSize {
    TableSize {
        table: table.clone(),
        exists: false,
        rows: None,
        exact: false,
        bytes: None,
    }
}

/// `count(*)` of at most [`COUNT_LIMIT`] rows: (rows, exact).
fn bounded_count(quoted: &str) -> String {
    format!("SELECT count(*) FROM (SELECT 1 FROM {quoted} LIMIT {COUNT_LIMIT}) AS phasegate_count")
}

fn counted(n: i64) -> (Option<u64>, bool) {
    let n = u64::try_from(n).unwrap_or(0);
    (Some(n), n < COUNT_LIMIT)
}

async fn postgres(pool: &sqlx::PgPool, table: &TableName) -> Result<TableSize, sqlx::Error> {
    let quoted = Dialect::Postgres.quote_table(table);
    let row = sqlx::query(
        "SELECT c.reltuples::float8 AS reltuples, pg_total_relation_size(c.oid)::bigint AS bytes \
         FROM pg_class c WHERE c.oid = to_regclass($1)",
    )
    .bind(&quoted)
    .fetch_optional(pool)
    .await?;
    let Some(row) = row else {
        return Ok(missing(table));
    };
    let reltuples: f64 = row.try_get("reltuples")?;
    let bytes: i64 = row.try_get("bytes")?;
    let (rows, exact) = if reltuples >= 0.0 {
        // A float estimate of a count: rounded, never negative.
        (Some(reltuples.round() as u64), false)
    } else {
        let n: i64 = sqlx::query_scalar(AssertSqlSafe(bounded_count(&quoted)))
            .fetch_one(pool)
            .await?;
        counted(n)
    };
    Ok(TableSize {
        table: table.clone(),
        exists: true,
        rows,
        exact,
        bytes: u64::try_from(bytes).ok(),
    })
}

async fn mysql(pool: &sqlx::MySqlPool, table: &TableName) -> Result<TableSize, sqlx::Error> {
    let row = sqlx::query(
        "SELECT CAST(TABLE_ROWS AS SIGNED) AS table_rows, \
         CAST(COALESCE(DATA_LENGTH, 0) + COALESCE(INDEX_LENGTH, 0) AS SIGNED) AS bytes \
         FROM information_schema.TABLES \
         WHERE TABLE_SCHEMA = COALESCE(?, DATABASE()) AND TABLE_NAME = ?",
    )
    .bind(table.schema.as_ref().map(|s| s.as_str()))
    .bind(table.name.as_str())
    .fetch_optional(pool)
    .await?;
    let Some(row) = row else {
        return Ok(missing(table));
    };
    let rows: Option<i64> = row.try_get("table_rows")?;
    let bytes: Option<i64> = row.try_get("bytes")?;
    Ok(TableSize {
        table: table.clone(),
        exists: true,
        rows: rows.and_then(|r| u64::try_from(r).ok()),
        exact: false,
        bytes: bytes.and_then(|b| u64::try_from(b).ok()),
    })
}

async fn sqlite(pool: &sqlx::SqlitePool, table: &TableName) -> Result<TableSize, sqlx::Error> {
    let exists: Option<i64> =
        sqlx::query_scalar("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?")
            .bind(table.name.as_str())
            .fetch_optional(pool)
            .await?;
    if exists.is_none() {
        return Ok(missing(table));
    }
    let quoted = Dialect::Sqlite.quote_table(table);
    let n: i64 = sqlx::query_scalar(AssertSqlSafe(bounded_count(&quoted)))
        .fetch_one(pool)
        .await?;
    let (rows, exact) = counted(n);
    // `dbstat` is a compile-time option of the library: without it, no size.
    let bytes: Option<i64> = sqlx::query_scalar(
        "SELECT sum(pgsize) FROM dbstat WHERE name = ?1 \
         OR name IN (SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = ?1)",
    )
    .bind(table.name.as_str())
    .fetch_one(pool)
    .await
    .ok()
    .flatten();
    Ok(TableSize {
        table: table.clone(),
        exists: true,
        rows,
        exact,
        bytes: bytes.and_then(|b| u64::try_from(b).ok()),
    })
}
