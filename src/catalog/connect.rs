//! Reading a catalog over a connection of its own: the URL's dialect, a
//! bounded connect, the server-side bounds of the session (how long a
//! catalog query waits for a lock) and a client-side bound on the whole
//! read, and the URL with its password hidden for messages.

use std::str::FromStr;
use std::time::Duration;

use super::{Catalog, CatalogError, mysql, postgres, sqlite};
use crate::dialect::Dialect;
use crate::name::TableName;

/// How long [`Catalog::read`] waits for a connection.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long each catalog query waits for a lock on the server before it
/// gives up (Postgres `lock_timeout`, MySQL/MariaDB `lock_wait_timeout`): a
/// table held `ACCESS EXCLUSIVE` by a long transaction makes
/// `pg_get_indexdef` and friends wait for it.
pub const LOCK_WAIT: Duration = Duration::from_secs(10);

/// How long a whole catalog read may take, connection excluded, before it
/// is abandoned with [`CatalogError::Slow`] (a client-side bound on top of
/// the server-side [`LOCK_WAIT`]).
pub const READ_WAIT: Duration = Duration::from_secs(60);

/// The statements that bound a catalog session's waits on the server
/// (sent once, right after connecting). SQLite's wait is sqlx's busy
/// timeout (5 s).
fn read_bounds(dialect: Dialect) -> Vec<String> {
    let secs = LOCK_WAIT.as_secs();
    match dialect {
        Dialect::Postgres => vec![
            format!("SET lock_timeout = '{secs}s'"),
            format!("SET statement_timeout = '{}s'", READ_WAIT.as_secs()),
        ],
        Dialect::Mysql => vec![format!("SET SESSION lock_wait_timeout = {secs}")],
        Dialect::Sqlite => Vec::new(),
    }
}

impl Catalog {
    /// Connects to `url` (`postgres://…`, `postgresql://…`, `mysql://…`,
    /// `mariadb://…` or `sqlite:…`)
    /// and reads the server's version and `tables`. Waits at most
    /// [`DEFAULT_CONNECT_TIMEOUT`] for the connection. The connection only
    /// reads, and is closed before this returns.
    pub async fn read(url: &str, tables: &[TableName]) -> Result<Catalog, CatalogError> {
        Catalog::read_with_timeout(url, tables, DEFAULT_CONNECT_TIMEOUT).await
    }

    /// [`Catalog::read`], waiting at most `timeout` for the connection.
    pub async fn read_with_timeout(
        url: &str,
        tables: &[TableName],
        timeout: Duration,
    ) -> Result<Catalog, CatalogError> {
        let shown = redact(url);
        let scheme = crate::dialect::url_scheme(url);
        let connect_err = |source| CatalogError::Connect {
            url: shown.clone(),
            source,
        };
        match scheme.as_str() {
            "postgres" | "postgresql" => {
                let opts = sqlx::postgres::PgConnectOptions::from_str(url).map_err(connect_err)?;
                let pool = one_connection(opts, timeout, &shown).await?;
                let catalog = bounded(&shown, async {
                    // Best effort: a proxy that refuses a SET still serves
                    // the read, bounded by READ_WAIT alone.
                    for s in read_bounds(Dialect::Postgres) {
                        let _ = sqlx::query(sqlx::AssertSqlSafe(s)).execute(&pool).await;
                    }
                    Catalog::read_postgres(&pool, tables).await
                })
                .await;
                close_pool(pool).await;
                catalog
            }
            "mysql" | "mariadb" => {
                let url = crate::dialect::driver_url(url);
                let opts = sqlx::mysql::MySqlConnectOptions::from_str(&url).map_err(connect_err)?;
                let pool = one_connection(opts, timeout, &shown).await?;
                let catalog = bounded(&shown, async {
                    // Best effort: a proxy that refuses a SET still serves
                    // the read, bounded by READ_WAIT alone.
                    for s in read_bounds(Dialect::Mysql) {
                        let _ = sqlx::query(sqlx::AssertSqlSafe(s)).execute(&pool).await;
                    }
                    Catalog::read_mysql(&pool, tables).await
                })
                .await;
                close_pool(pool).await;
                catalog
            }
            "sqlite" => {
                let opts =
                    sqlx::sqlite::SqliteConnectOptions::from_str(url).map_err(connect_err)?;
                let pool = one_connection(opts, timeout, &shown).await?;
                let catalog = bounded(&shown, Catalog::read_sqlite(&pool, tables)).await;
                close_pool(pool).await;
                catalog
            }
            _ => Err(CatalogError::Url { url: shown }),
        }
    }

    /// Reads the server's version and `tables` from a Postgres database. A
    /// table that does not exist is recorded as missing.
    pub async fn read_postgres(
        pool: &sqlx::PgPool,
        tables: &[TableName],
    ) -> Result<Catalog, CatalogError> {
        postgres::read(pool, tables).await
    }

    /// Reads the library's version and `tables` from an SQLite database. A
    /// table that does not exist is recorded as missing.
    pub async fn read_mysql(
        pool: &sqlx::MySqlPool,
        tables: &[TableName],
    ) -> Result<Catalog, CatalogError> {
        mysql::read(pool, tables).await
    }

    pub async fn read_sqlite(
        pool: &sqlx::SqlitePool,
        tables: &[TableName],
    ) -> Result<Catalog, CatalogError> {
        sqlite::read(pool, tables).await
    }
}

/// The URL without its password, for messages.
pub(crate) fn redact(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_string();
    };
    let rest = &url[scheme_end + 3..];
    let Some(at) = rest.find('@') else {
        return url.to_string();
    };
    match rest[..at].find(':') {
        Some(colon) => format!(
            "{}{}:***{}",
            &url[..scheme_end + 3],
            &rest[..colon],
            &rest[at..]
        ),
        None => url.to_string(),
    }
}

/// `read` within [`READ_WAIT`], or [`CatalogError::Slow`].
async fn bounded(
    shown: &str,
    read: impl std::future::Future<Output = Result<Catalog, CatalogError>>,
) -> Result<Catalog, CatalogError> {
    tokio::time::timeout(READ_WAIT, read)
        .await
        .unwrap_or_else(|_| {
            Err(CatalogError::Slow {
                url: shown.to_string(),
                waited: READ_WAIT,
            })
        })
}

/// How long closing a catalog read's pool may take.
const CLOSE_WAIT: Duration = Duration::from_secs(5);

/// Closes `pool` within [`CLOSE_WAIT`]: sqlx's `Pool::close` waits, without
/// bound, for every connection to come back (a connection whose query was
/// abandoned by a timeout may never), and the read is done already.
pub(super) async fn close_pool<DB: sqlx::Database>(pool: sqlx::Pool<DB>) {
    let _ = tokio::time::timeout(CLOSE_WAIT, pool.close()).await;
}

pub(super) async fn one_connection<DB: sqlx::Database>(
    opts: <DB::Connection as sqlx::Connection>::Options,
    timeout: Duration,
    shown: &str,
) -> Result<sqlx::Pool<DB>, CatalogError> {
    let connect = sqlx::pool::PoolOptions::<DB>::new()
        .max_connections(1)
        .acquire_timeout(timeout)
        .connect_with(opts);
    tokio::time::timeout(timeout, connect)
        .await
        .map_err(|_| CatalogError::Timeout {
            url: shown.to_string(),
            timeout,
        })?
        .map_err(|source| CatalogError::Connect {
            url: shown.to_string(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_lose_their_password_in_messages() {
        assert_eq!(redact("postgres://u:secret@h/db"), "postgres://u:***@h/db");
        assert_eq!(redact("sqlite://a.db"), "sqlite://a.db");
    }

    #[tokio::test]
    async fn an_unknown_url_is_refused() {
        let err = Catalog::read("oracle://h/db", &[]).await.map(|_| ());
        assert!(matches!(err, Err(CatalogError::Url { .. })), "{err:?}");
    }

    /// A connection that never comes back (here: still held) does not hold
    /// the close: sqlx's own `Pool::close` would wait for it forever.
    #[tokio::test]
    async fn closing_a_pool_does_not_wait_for_a_connection_that_never_returns() {
        let opts =
            sqlx::sqlite::SqliteConnectOptions::from_str("sqlite::memory:").expect("a literal URL");
        let pool = one_connection::<sqlx::Sqlite>(opts, DEFAULT_CONNECT_TIMEOUT, "memory")
            .await
            .expect("an in-memory database opens");
        let held = pool.acquire().await.expect("the pool's one connection");
        let closed = tokio::time::timeout(CLOSE_WAIT * 4, close_pool(pool.clone())).await;
        assert!(
            closed.is_ok(),
            "close_pool waited past {:?}",
            CLOSE_WAIT * 4
        );
        assert!(pool.is_closed());
        drop(held);
    }
}
