//! dbmate end to end: a rename and a required column exported with
//! `phasegate export --to dbmate`, deploy by deploy, run by the dbmate
//! binary (2.36.0 from npm; `.ci/run` installs it into `.ci/tools/` and sets
//! `PHASEGATE_DBMATE`) on Postgres, MariaDB and SQLite while the
//! application's releases query the table, each app deploy marked in
//! between; `status` shows each deploy, and the schema equals `phasegate
//! apply`'s on a twin database (see tests/runner_support).
//!
//! Without `PHASEGATE_DBMATE` each test prints `SKIPPED: …` and passes,
//! unless `PHASEGATE_REQUIRE_DATABASES=1` (CI), which makes it a failure.

mod common;
mod executor_support;
mod rollback_support;
mod runner_support;

use std::path::{Path, PathBuf};

use common::{TestDb, loud, with_mysql, with_postgres, with_sqlite};
use executor_support::Project;
use phasegate::dialect::Dialect;
use runner_support::{RENAME, REQUIRED_COLUMN, RealRunner, Scenario, roll_out};

struct Dbmate(PathBuf);

/// The dbmate binary `.ci/run` installed, or `None` after saying why the
/// test is skipped (a failure with `PHASEGATE_REQUIRE_DATABASES=1`).
fn dbmate() -> Option<Dbmate> {
    match std::env::var("PHASEGATE_DBMATE") {
        Ok(p) if Path::new(&p).is_file() => Some(Dbmate(PathBuf::from(p))),
        other => {
            let why = format!(
                "PHASEGATE_DBMATE ({other:?}) does not name the dbmate binary; .ci/run installs it"
            );
            assert!(
                std::env::var("PHASEGATE_REQUIRE_DATABASES").as_deref() != Ok("1"),
                "{why}, and PHASEGATE_REQUIRE_DATABASES=1"
            );
            loud(format_args!("SKIPPED: dbmate: {why}"));
            None
        }
    }
}

/// dbmate's spelling of the test database's URL.
fn url(db: &TestDb) -> String {
    match db.dialect {
        Dialect::Postgres => {
            let sep = if db.url.contains('?') { '&' } else { '?' };
            format!("{}{sep}sslmode=disable", db.url)
        }
        Dialect::Mysql => db.url.clone(),
        Dialect::Sqlite => format!("sqlite:{}", db.url.trim_start_matches("sqlite://")),
    }
}

impl RealRunner for Dbmate {
    fn name(&self) -> &'static str {
        "dbmate"
    }

    fn dir(&self, project: &Project) -> PathBuf {
        project.dir.join("db/migrations")
    }

    async fn up(&self, db: &TestDb, dir: &Path) -> Result<(), String> {
        let out = tokio::process::Command::new(&self.0)
            .args(["--no-dump-schema", "--migrations-dir"])
            .arg(dir)
            .args(["--url", &url(db), "up"])
            .output()
            .await
            .map_err(|e| format!("running {}: {e}", self.0.display()))?;
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        if out.status.success() {
            Ok(())
        } else {
            Err(said)
        }
    }
}

async fn on_postgres(scn: &'static Scenario) {
    let Some(d) = dbmate() else { return };
    with_postgres(|db| async move {
        let mut out = Ok(());
        with_postgres(|twin| async {
            out = roll_out(&d, scn, db, twin).await.map_err(|e| e.to_string());
            Ok(())
        })
        .await;
        out.map_err(Into::into)
    })
    .await
}

async fn on_mysql(scn: &'static Scenario) {
    let Some(d) = dbmate() else { return };
    with_mysql(|db| async move {
        let mut out = Ok(());
        with_mysql(|twin| async {
            out = roll_out(&d, scn, db, twin).await.map_err(|e| e.to_string());
            Ok(())
        })
        .await;
        out.map_err(Into::into)
    })
    .await
}

async fn on_sqlite(scn: &'static Scenario) {
    let Some(d) = dbmate() else { return };
    with_sqlite(|db| async move {
        let mut out = Ok(());
        with_sqlite(|twin| async {
            out = roll_out(&d, scn, db, twin).await.map_err(|e| e.to_string());
            Ok(())
        })
        .await;
        out.map_err(Into::into)
    })
    .await
}

#[tokio::test]
async fn a_rename_through_dbmate_on_postgres() {
    on_postgres(&RENAME).await
}

#[tokio::test]
async fn a_required_column_through_dbmate_on_postgres() {
    on_postgres(&REQUIRED_COLUMN).await
}

#[tokio::test]
async fn a_rename_through_dbmate_on_mariadb() {
    on_mysql(&RENAME).await
}

#[tokio::test]
async fn a_required_column_through_dbmate_on_mariadb() {
    on_mysql(&REQUIRED_COLUMN).await
}

#[tokio::test]
async fn a_rename_through_dbmate_on_sqlite() {
    on_sqlite(&RENAME).await
}

#[tokio::test]
async fn a_required_column_through_dbmate_on_sqlite() {
    on_sqlite(&REQUIRED_COLUMN).await
}
