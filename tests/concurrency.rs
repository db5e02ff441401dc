//! Several `phasegate apply` processes at once on a database phasegate has
//! never used: creating the log's tables and taking the environment lock
//! must be safe under concurrency on every dialect. Exactly one run applies;
//! the others either wait and find the phase already migrated (exit 3,
//! waiting for its app deploy) or are refused because another run holds the
//! environment (exit 2, saying so). None fails with an internal error, and
//! the schema and the log agree at the end.

mod common;
mod executor_support;

use std::process::Output;
use std::time::Duration;

use common::{TestDb, TestResult, fail, with_mysql, with_postgres, with_sqlite};
use executor_support::{ENV, Project, events};

const ROUNDS: usize = 10;
const RUNS: usize = 5;

/// One phase with an app stage (so the runs that come second find it
/// migrated, waiting for its deploy), a table created and a column added:
/// a second run that checked the live schema before the lock would fail
/// with "already has a column".
fn plan(db: &TestDb) -> String {
    let ty = db.pick3("text", "text", "varchar(255)");
    format!(
        "name: race
changes:
  - sql:
      phases:
        - up: |
            CREATE TABLE runs (n INTEGER);
            INSERT INTO runs (n) VALUES (1);
          down: DROP TABLE runs
          app: Ship the code that reads runs
  - add_column: {{ table: users, column: nickname, type: {ty} }}
"
    )
}

async fn seed(db: &TestDb) -> TestResult {
    db.create_table("users", "id INTEGER PRIMARY KEY, name TEXT")
        .await?;
    db.exec("INSERT INTO users (id, name) VALUES (1, 'ada'), (2, 'grace'), (3, NULL)")
        .await?;
    Ok(())
}

fn text(o: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout ---\n{}--- stderr ---\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// One round: `RUNS` applies of one plan at once on a fresh database.
async fn round(db: TestDb) -> TestResult {
    seed(&db).await?;
    let project = Project::new(&db, &["lock_wait: 60s"], "race", &plan(&db))?;
    let runs = (0..RUNS).map(|_| {
        let mut c = tokio::process::Command::new(env!("CARGO_BIN_EXE_phasegate"));
        c.arg("--config")
            .arg(project.config_path())
            .args(["apply", "--env", ENV, "race"])
            .current_dir(&project.dir)
            .env("USER", "ci-runner")
            .kill_on_drop(true);
        async move { c.output().await }
    });
    let outs = tokio::time::timeout(Duration::from_secs(180), futures::future::join_all(runs))
        .await
        .map_err(|_| {
            fail(format!(
                "{RUNS} concurrent applies did not finish within 180s"
            ))
        })?;
    let outs: Vec<Output> = outs.into_iter().collect::<Result<_, _>>()?;
    let all = || outs.iter().map(text).collect::<Vec<_>>().join("\n=====\n");
    let applied: Vec<&Output> = outs.iter().filter(|o| o.status.code() == Some(0)).collect();
    assert_eq!(applied.len(), 1, "exactly one run applies:\n{}", all());
    assert!(
        String::from_utf8_lossy(&applied[0].stdout).contains("phase 1 of 1 applied in test"),
        "{}",
        all()
    );
    for o in outs.iter().filter(|o| o.status.code() != Some(0)) {
        let err = String::from_utf8_lossy(&o.stderr);
        let waited_and_found_it_done = o.status.code() == Some(3)
            && err.contains("phase 1 is migrated")
            && err.contains("phasegate mark");
        let refused_busy = o.status.code() == Some(2)
            && err.contains("another phasegate run holds this environment");
        assert!(
            waited_and_found_it_done || refused_busy,
            "a run that did not apply either waited and found phase 1 migrated, or was refused as busy:\n{}",
            all()
        );
    }
    // The schema and the log agree: the column exists, phase 1 recorded once.
    assert!(db.has_column("users", "nickname").await?, "{}", all());
    assert_eq!(db.scalar("SELECT count(*) FROM runs").await?, 1);
    let log = events(&db).await;
    let count = |kind: &str| log.iter().filter(|e| e.1 == kind).count();
    assert_eq!(count("plan_started"), 1, "{log:#?}");
    assert_eq!(count("phase_migrated"), 1, "{log:#?}");
    assert_eq!(count("step_failed"), 0, "{log:#?}");
    let mut steps: Vec<&str> = log
        .iter()
        .filter(|e| e.1 == "step_applied")
        .filter_map(|e| e.2.as_deref())
        .collect();
    let n = steps.len();
    steps.dedup();
    assert_eq!(steps.len(), n, "each step applied once: {log:#?}");
    // The log reads back intact (its chain verified) through the binary.
    let status = tokio::process::Command::new(env!("CARGO_BIN_EXE_phasegate"))
        .arg("--config")
        .arg(project.config_path())
        .args(["status", "--env", ENV])
        .current_dir(&project.dir)
        .kill_on_drop(true)
        .output()
        .await?;
    assert_eq!(status.status.code(), Some(0), "{}", text(&status));
    assert!(
        String::from_utf8_lossy(&status.stdout).contains("phase 1 of 1: migrated"),
        "{}",
        text(&status)
    );
    Ok(())
}

#[tokio::test]
async fn five_concurrent_applies_on_a_fresh_database_on_mysql() {
    for _ in 0..ROUNDS {
        with_mysql(round).await;
    }
}

#[tokio::test]
async fn five_concurrent_applies_on_a_fresh_database_on_postgres() {
    for _ in 0..ROUNDS {
        with_postgres(round).await;
    }
}

#[tokio::test]
async fn five_concurrent_applies_on_a_fresh_database_on_sqlite() {
    for _ in 0..ROUNDS {
        with_sqlite(round).await;
    }
}

const RENAME: &str = "name: rename-users-name
changes:
  - rename_column: { table: users, from: name, to: full_name }
";

/// Two applies of a rename at once: its phase 1 has no app stage, so the
/// run that waits for the lock goes on to phase 2. It must plan after the
/// lock, from what the first run recorded, never fail with "users already
/// has a column full_name" from a live-schema check made before the lock.
async fn two_applies(db: TestDb) -> TestResult {
    seed(&db).await?;
    let project = Project::new(&db, &["lock_wait: 60s"], "rename-users-name", RENAME)?;
    let runs = (0..2).map(|_| {
        let mut c = tokio::process::Command::new(env!("CARGO_BIN_EXE_phasegate"));
        c.arg("--config")
            .arg(project.config_path())
            .args(["apply", "--env", ENV, "rename-users-name"])
            .current_dir(&project.dir)
            .kill_on_drop(true);
        async move { c.output().await }
    });
    let outs = tokio::time::timeout(Duration::from_secs(180), futures::future::join_all(runs))
        .await
        .map_err(|_| fail("two concurrent applies did not finish within 180s"))?;
    let outs: Vec<Output> = outs.into_iter().collect::<Result<_, _>>()?;
    let all = || outs.iter().map(text).collect::<Vec<_>>().join("\n=====\n");
    assert!(
        outs.iter().all(|o| o.status.code() == Some(0)),
        "both apply, one phase each:\n{}",
        all()
    );
    let said: String = outs
        .iter()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .collect();
    assert!(
        said.contains("phase 1 of 3 applied in test")
            && said.contains("phase 2 of 3 applied in test"),
        "{}",
        all()
    );
    assert!(!all().contains("already has a column"), "{}", all());
    assert!(db.has_column("users", "full_name").await?);
    let log = events(&db).await;
    assert_eq!(
        log.iter().filter(|e| e.1 == "phase_migrated").count(),
        2,
        "{log:#?}"
    );
    Ok(())
}

#[tokio::test]
async fn two_applies_at_once_plan_after_the_lock_on_mysql() {
    for _ in 0..3 {
        with_mysql(two_applies).await;
    }
}

#[tokio::test]
async fn two_applies_at_once_plan_after_the_lock_on_postgres() {
    for _ in 0..3 {
        with_postgres(two_applies).await;
    }
}

#[tokio::test]
async fn two_applies_at_once_plan_after_the_lock_on_sqlite() {
    for _ in 0..3 {
        with_sqlite(two_applies).await;
    }
}
