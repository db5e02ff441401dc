//! Running units as a migration runner runs them, without one: each
//! transactional unit inside `BEGIN`/`COMMIT` (rolled back whole when a
//! statement fails), each other unit's statements alone, one by one, on
//! one connection. For tests of what [`super::build`] makes, and for
//! anyone who wants to check exported SQL against a scratch database.

use sqlx::{AnyConnection, AssertSqlSafe, Connection};

use crate::db_error::DbError;
use crate::dialect::Dialect;

use super::Unit;

/// A unit that failed: which, the statement, and the database's error.
#[derive(Debug, thiserror::Error)]
pub enum DirectError {
    #[error("cannot connect: {0}")]
    Connect(DbError),
    /// `unit` (its name, and its index from 0) failed at `statement`.
    #[error("unit {index} ({unit}) failed: {error}")]
    Unit {
        unit: String,
        index: usize,
        statement: String,
        error: DbError,
    },
}

impl DirectError {
    /// The database's error, for a failed unit.
    pub fn db(&self) -> &DbError {
        match self {
            DirectError::Connect(e) | DirectError::Unit { error: e, .. } => e,
        }
    }
}

/// A connection as a runner has one: MySQL with the server's own
/// `sql_mode` and time zone (sqlx sets its own at connect).
pub async fn connect(url: &str, dialect: Dialect) -> Result<AnyConnection, DirectError> {
    sqlx::any::install_default_drivers();
    let mut conn = AnyConnection::connect(url)
        .await
        .map_err(|e| DirectError::Connect(DbError::from_sqlx(&e)))?;
    if dialect == Dialect::Mysql {
        sqlx::raw_sql(
            "SET SESSION sql_mode = @@GLOBAL.sql_mode, SESSION time_zone = @@GLOBAL.time_zone",
        )
        .execute(&mut conn)
        .await
        .map_err(|e| DirectError::Connect(DbError::from_sqlx(&e)))?;
    }
    Ok(conn)
}

/// Runs `units` in order on `conn`; stops at the first that fails.
pub async fn run_units(
    conn: &mut AnyConnection,
    dialect: Dialect,
    units: &[Unit],
) -> Result<(), DirectError> {
    for (index, unit) in units.iter().enumerate() {
        let failed = |statement: &str, e: &sqlx::Error| DirectError::Unit {
            unit: unit.name.clone(),
            index,
            statement: statement.to_string(),
            error: DbError::from_sqlx(e),
        };
        if unit.transactional {
            let begin = match dialect {
                Dialect::Postgres => "BEGIN",
                Dialect::Mysql => "START TRANSACTION",
                Dialect::Sqlite => "BEGIN IMMEDIATE",
            };
            sqlx::raw_sql(begin)
                .execute(&mut *conn)
                .await
                .map_err(|e| failed(begin, &e))?;
        }
        for s in &unit.statements {
            if let Err(e) = sqlx::raw_sql(AssertSqlSafe(s.clone()))
                .execute(&mut *conn)
                .await
            {
                if unit.transactional {
                    let _ = sqlx::raw_sql("ROLLBACK").execute(&mut *conn).await;
                }
                return Err(failed(s, &e));
            }
        }
        if unit.transactional {
            sqlx::raw_sql("COMMIT")
                .execute(&mut *conn)
                .await
                .map_err(|e| failed("COMMIT", &e))?;
        }
    }
    Ok(())
}
