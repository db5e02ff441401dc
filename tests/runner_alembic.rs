//! The Alembic export run by the real Alembic (`.ci/run` installs it at a
//! pinned version; `PHASEGATE_PYTHON` names the interpreter) against real
//! Postgres, MariaDB and SQLite: a minimal Alembic environment is written in
//! a temp folder, with one revision of the team's own, then the exported
//! revisions; `alembic upgrade head`, `alembic downgrade`, and the
//! irreversible deploy's refusal to downgrade.

mod common;
mod python_runner;

use std::path::Path;

use common::{TestDb, TestResult, fail, with_mysql, with_postgres, with_sqlite};
use phasegate::export::runners::write;
use phasegate::export::{Options, Runner};
use python_runner::alembic::{ENV_PY, INI};
use python_runner::{AWKWARD, TempDir, python, run, run_ok, sqlalchemy_url};

/// The team's own first revision, creating the tables the deploys change.
fn team_revision(db: &TestDb) -> String {
    let mut body = String::new();
    for s in python_runner::baseline(db.dialect) {
        body.push_str(&format!("    op.execute({s:?})\n"));
    }
    format!(
        "from alembic import op\n\nrevision = \"team0001\"\ndown_revision = None\nbranch_labels = None\ndepends_on = None\n\n\ndef upgrade():\n{body}\n\ndef downgrade():\n    op.execute(\"DROP TABLE things\")\n    op.execute(\"DROP TABLE journal\")\n"
    )
}

fn alembic(py: &str, dir: &Path, url: &str, args: &[&str]) -> TestResult<std::process::Output> {
    let mut all = vec!["-m", "alembic", "-c", "alembic.ini"];
    all.extend_from_slice(args);
    run_ok(py, dir, url, &all)
}

async fn hand_made(db: TestDb) -> TestResult {
    let Some(py) = python() else { return Ok(()) };
    let tmp = TempDir::new("alembic");
    let dir = &tmp.0;
    let url = sqlalchemy_url(&db);
    python_runner::write(dir, "alembic.ini", INI)?;
    python_runner::write(dir, "alembic/env.py", ENV_PY)?;
    python_runner::write(
        dir,
        "alembic/versions/team0001_tables.py",
        &team_revision(&db),
    )?;
    alembic(&py, dir, &url, &["upgrade", "head"])?;
    let before = db.schema().await?;

    // Deploy 1 (reversible), exported after the team's revision.
    let deploys = python_runner::deploys(db.dialect);
    let options = Options {
        version: "20260301120000".into(),
        after: Some("team0001".into()),
        ..Options::default()
    };
    let expand = write(Runner::Alembic, &deploys[..1], &options)?;
    python_runner::write_files(&dir.join("alembic/versions"), &expand)?;
    alembic(&py, dir, &url, &["upgrade", "head"])?;
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

    // Down to the team's revision: the holder's downgrade undoes it all.
    alembic(&py, dir, &url, &["downgrade", "team0001"])?;
    assert_eq!(db.schema().await?, before);
    // And up again.
    alembic(&py, dir, &url, &["upgrade", "head"])?;
    assert_eq!(db.schema().await?, expanded);
    assert_eq!(python_runner::labels(&db).await?, want);

    // Deploy 2 (irreversible), exported on its own after deploy 1's last revision.
    let last = expand
        .last()
        .and_then(|f| f.path.to_str())
        .and_then(|p| p.get(..17))
        .ok_or_else(|| fail("no revision"))?
        .to_string();
    let contract = write(
        Runner::Alembic,
        &deploys[1..],
        &Options {
            version: "20260302120000".into(),
            after: Some(last.clone()),
            ..Options::default()
        },
    )?;
    python_runner::write_files(&dir.join("alembic/versions"), &contract)?;
    alembic(&py, dir, &url, &["upgrade", "head"])?;
    let contracted = db.schema().await?;
    assert!(
        !contracted
            .iter()
            .any(|l| l.contains("things") && l.contains("old")),
        "{contracted:#?}"
    );
    let refused = run(
        &py,
        dir,
        &url,
        &["-m", "alembic", "-c", "alembic.ini", "downgrade", &last],
    )?;
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success() && stderr.contains("irreversible"),
        "{stderr}"
    );
    assert_eq!(db.schema().await?, contracted);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hand_made_deploys_run_up_down_up_on_postgres() {
    with_postgres(hand_made).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hand_made_deploys_run_up_down_up_on_mariadb() {
    with_mysql(hand_made).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hand_made_deploys_run_up_down_up_on_sqlite() {
    with_sqlite(hand_made).await;
}

/// The plans of `plans/` through the real Alembic, deploy by deploy
/// (tests/python_runner/plans.rs), on each database with a twin.
macro_rules! plan_tests {
    ($($name:ident: $with:ident, $case:expr;)*) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            $with(|db| async move {
                $with(|twin| python_runner::plans::roll_out(python_runner::plans::Kind::Alembic, &$case, db, twin)).await;
                Ok(())
            })
            .await;
        }
    )*};
}

plan_tests! {
    rename_through_alembic_on_postgres: with_postgres, python_runner::plans::RENAME;
    rename_through_alembic_on_mariadb: with_mysql, python_runner::plans::RENAME;
    rename_through_alembic_on_sqlite: with_sqlite, python_runner::plans::RENAME;
    required_column_through_alembic_on_postgres: with_postgres, python_runner::plans::EMAIL_VERIFIED;
    required_column_through_alembic_on_mariadb: with_mysql, python_runner::plans::EMAIL_VERIFIED;
    required_column_through_alembic_on_sqlite: with_sqlite, python_runner::plans::EMAIL_VERIFIED;
}

/// Deploy 1 of the rename through the real Alembic, then Alembic's own way back.
macro_rules! rollback_tests {
    ($($name:ident: $with:ident;)*) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            $with(|db| python_runner::plans::roll_back(python_runner::plans::Kind::Alembic, &python_runner::plans::RENAME, db)).await;
        }
    )*};
}

rollback_tests! {
    rename_rolled_back_through_alembic_on_postgres: with_postgres;
    rename_rolled_back_through_alembic_on_mariadb: with_mysql;
}
