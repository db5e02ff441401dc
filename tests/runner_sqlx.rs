//! sqlx end to end: a rename and a required column exported with `phasegate
//! export --to sqlx`, deploy by deploy, run by sqlx's own `Migrator` (what
//! `sqlx migrate run` runs) on Postgres, MariaDB and SQLite while the
//! application's releases query the table, each app deploy marked in
//! between; `status` shows each deploy, and the schema equals `phasegate
//! apply`'s on a twin database (see tests/runner_support).

mod common;
mod executor_support;
mod rollback_support;
mod runner_support;

use std::path::Path;

use common::{TestDb, with_mysql, with_postgres, with_sqlite};
use phasegate::dialect::Dialect;
use runner_support::{RENAME, REQUIRED_COLUMN, RealRunner, Scenario, roll_out};
use sqlx::Connection;
use sqlx::migrate::Migrator;

struct Sqlx;

async fn migrate(db: &TestDb, dir: &Path) -> Result<(), sqlx::migrate::MigrateError> {
    let migrator = Migrator::new(dir).await?;
    match db.dialect {
        Dialect::Postgres => {
            let mut c = sqlx::PgConnection::connect(&db.url).await?;
            migrator.run(&mut c).await
        }
        Dialect::Mysql => {
            let mut c = sqlx::MySqlConnection::connect(&db.url).await?;
            migrator.run(&mut c).await
        }
        Dialect::Sqlite => {
            let mut c = sqlx::SqliteConnection::connect(&db.url).await?;
            migrator.run(&mut c).await
        }
    }
}

impl RealRunner for Sqlx {
    fn name(&self) -> &'static str {
        "sqlx"
    }

    async fn up(&self, db: &TestDb, dir: &Path) -> Result<(), String> {
        migrate(db, dir).await.map_err(|e| {
            // A guard's refusal: Postgres carries what to run in the hint.
            let hint = match &e {
                sqlx::migrate::MigrateError::ExecuteMigration(sqlx::Error::Database(d), _) => d
                    .try_downcast_ref::<sqlx::postgres::PgDatabaseError>()
                    .and_then(|p| p.hint())
                    .map(|h| format!(" (hint: {h})"))
                    .unwrap_or_default(),
                _ => String::new(),
            };
            format!("{e}{hint}")
        })
    }
}

async fn on_postgres(scn: &'static Scenario) {
    with_postgres(|db| async move {
        let mut out = Ok(());
        with_postgres(|twin| async {
            out = roll_out(&Sqlx, scn, db, twin)
                .await
                .map_err(|e| e.to_string());
            Ok(())
        })
        .await;
        out.map_err(Into::into)
    })
    .await
}

async fn on_mysql(scn: &'static Scenario) {
    with_mysql(|db| async move {
        let mut out = Ok(());
        with_mysql(|twin| async {
            out = roll_out(&Sqlx, scn, db, twin)
                .await
                .map_err(|e| e.to_string());
            Ok(())
        })
        .await;
        out.map_err(Into::into)
    })
    .await
}

async fn on_sqlite(scn: &'static Scenario) {
    with_sqlite(|db| async move {
        let mut out = Ok(());
        with_sqlite(|twin| async {
            out = roll_out(&Sqlx, scn, db, twin)
                .await
                .map_err(|e| e.to_string());
            Ok(())
        })
        .await;
        out.map_err(Into::into)
    })
    .await
}

#[tokio::test]
async fn a_rename_through_sqlx_on_postgres() {
    on_postgres(&RENAME).await
}

#[tokio::test]
async fn a_required_column_through_sqlx_on_postgres() {
    on_postgres(&REQUIRED_COLUMN).await
}

#[tokio::test]
async fn a_rename_through_sqlx_on_mariadb() {
    on_mysql(&RENAME).await
}

#[tokio::test]
async fn a_required_column_through_sqlx_on_mariadb() {
    on_mysql(&REQUIRED_COLUMN).await
}

#[tokio::test]
async fn a_rename_through_sqlx_on_sqlite() {
    on_sqlite(&RENAME).await
}

#[tokio::test]
async fn a_required_column_through_sqlx_on_sqlite() {
    on_sqlite(&REQUIRED_COLUMN).await
}
