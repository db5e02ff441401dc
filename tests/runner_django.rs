//! The Django export run by the real Django (`.ci/run` installs it at a
//! pinned version; `PHASEGATE_PYTHON` names the interpreter) against real
//! Postgres, MariaDB (through PyMySQL's `install_as_MySQLdb`) and SQLite: a
//! minimal project with one app (`shop`) and one migration of the team's
//! own is written in a temp folder, then the exported migrations;
//! `manage.py migrate`, migrating back, and the irreversible deploy's
//! refusal to be unapplied.

mod common;
mod python_runner;

use std::path::Path;

use common::{TestDb, TestResult, with_mysql, with_postgres, with_sqlite};
use phasegate::export::runners::write;
use phasegate::export::{Options, Runner};
use python_runner::django::{MANAGE_PY, SETTINGS_PY};
use python_runner::{AWKWARD, TempDir, python, run, run_ok, sqlalchemy_url};

/// The team's own first migration, creating the tables the deploys change.
fn team_migration(db: &TestDb) -> String {
    let mut sql = String::new();
    for s in python_runner::baseline(db.dialect) {
        sql.push_str(&format!("                {s:?},\n"));
    }
    format!(
        "from django.db import migrations\n\n\nclass Migration(migrations.Migration):\n    initial = True\n    dependencies = []\n    operations = [\n        migrations.RunSQL(\n            sql=[\n{sql}            ],\n            reverse_sql=[\"DROP TABLE things\", \"DROP TABLE journal\"],\n        ),\n    ]\n"
    )
}

fn manage(py: &str, dir: &Path, url: &str, args: &[&str]) -> TestResult<std::process::Output> {
    let mut all = vec!["manage.py"];
    all.extend_from_slice(args);
    run_ok(py, dir, url, &all)
}

async fn hand_made(db: TestDb) -> TestResult {
    let Some(py) = python() else { return Ok(()) };
    let tmp = TempDir::new("django");
    let dir = &tmp.0;
    let url = sqlalchemy_url(&db);
    python_runner::write(dir, "manage.py", MANAGE_PY)?;
    python_runner::write(dir, "settings.py", SETTINGS_PY)?;
    python_runner::write(dir, "shop/__init__.py", "")?;
    python_runner::write(dir, "shop/migrations/__init__.py", "")?;
    python_runner::write(dir, "shop/migrations/0001_initial.py", &team_migration(&db))?;
    manage(&py, dir, &url, &["migrate", "shop"])?;
    let before = db.schema().await?;

    // Deploy 1 (reversible), exported after the team's migration.
    let deploys = python_runner::deploys(db.dialect);
    let options = Options {
        after: Some("shop.0001_initial".into()),
        app: "shop".into(),
        ..Options::default()
    };
    let expand = write(Runner::Django, &deploys[..1], &options)?;
    python_runner::write_files(dir, &expand)?;
    manage(&py, dir, &url, &["migrate", "shop"])?;
    let want = vec![(1, None), (2, Some(AWKWARD.to_string()))];
    assert_eq!(python_runner::labels(&db).await?, want);
    assert_eq!(
        db.texts("SELECT what FROM journal").await?,
        ["indexed: 100% :done"]
    );
    let expanded = db.schema().await?;
    assert!(
        expanded.iter().any(|l| l.contains("things_label_idx")),
        "{expanded:#?}"
    );

    // Back to the team's migration: the rollback migrations undo it all.
    manage(&py, dir, &url, &["migrate", "shop", "0001_initial"])?;
    assert_eq!(db.schema().await?, before);
    // And forward again.
    manage(&py, dir, &url, &["migrate", "shop"])?;
    assert_eq!(db.schema().await?, expanded);
    assert_eq!(python_runner::labels(&db).await?, want);

    // Deploy 2 (irreversible), exported on its own after deploy 1's last migration.
    let last = expand
        .last()
        .and_then(|f| f.path.file_stem())
        .and_then(|s| s.to_str())
        .unwrap_or_default()
        .to_string();
    let contract = write(
        Runner::Django,
        &deploys[1..],
        &Options {
            after: Some(format!("shop.{last}")),
            app: "shop".into(),
            ..Options::default()
        },
    )?;
    python_runner::write_files(dir, &contract)?;
    manage(&py, dir, &url, &["migrate", "shop"])?;
    let contracted = db.schema().await?;
    assert!(
        !contracted
            .iter()
            .any(|l| l.contains("things") && l.contains("old")),
        "{contracted:#?}"
    );
    let refused = run(&py, dir, &url, &["manage.py", "migrate", "shop", &last])?;
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success() && stderr.contains("IrreversibleError"),
        "{stderr}"
    );
    assert_eq!(db.schema().await?, contracted);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hand_made_deploys_migrate_forward_back_forward_on_postgres() {
    with_postgres(hand_made).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hand_made_deploys_migrate_forward_back_forward_on_mariadb() {
    with_mysql(hand_made).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hand_made_deploys_migrate_forward_back_forward_on_sqlite() {
    with_sqlite(hand_made).await;
}
/// The plans of `plans/` through the real Django, deploy by deploy
/// (tests/python_runner/plans.rs), on each database with a twin.
macro_rules! plan_tests {
    ($($name:ident: $with:ident, $case:expr;)*) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            $with(|db| async move {
                $with(|twin| python_runner::plans::roll_out(python_runner::plans::Kind::Django, &$case, db, twin)).await;
                Ok(())
            })
            .await;
        }
    )*};
}

plan_tests! {
    rename_through_django_on_postgres: with_postgres, python_runner::plans::RENAME;
    rename_through_django_on_mariadb: with_mysql, python_runner::plans::RENAME;
    rename_through_django_on_sqlite: with_sqlite, python_runner::plans::RENAME;
    required_column_through_django_on_postgres: with_postgres, python_runner::plans::EMAIL_VERIFIED;
    required_column_through_django_on_mariadb: with_mysql, python_runner::plans::EMAIL_VERIFIED;
    required_column_through_django_on_sqlite: with_sqlite, python_runner::plans::EMAIL_VERIFIED;
}

/// Deploy 1 of the rename through the real Django, then Django's own way back.
macro_rules! rollback_tests {
    ($($name:ident: $with:ident;)*) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            $with(|db| python_runner::plans::roll_back(python_runner::plans::Kind::Django, &python_runner::plans::RENAME, db)).await;
        }
    )*};
}

rollback_tests! {
    rename_rolled_back_through_django_on_postgres: with_postgres;
    rename_rolled_back_through_django_on_mariadb: with_mysql;
}
