//! What runs is what was reviewed, through the built binary, on Postgres,
//! MariaDB and SQLite: the SQL of every step is pinned when a plan starts
//! in an environment, and every later command compares.
//!
//! - phase 1 of a rename applied, then the plan file edited (direction
//!   swapped): `rollback`, `resolve`, `apply`, `mark` and `gate` all refuse
//!   it as drift, the schema untouched (the sync trigger still mirrors
//!   writes); with the file restored, rollback undoes the phase as pinned.
//! - a template override added after phase 1 of `drop_column legacy`:
//!   the plan file is unchanged, but the irreversible phase's SQL differs
//!   from the pinned SQL: `gate` and `apply` refuse it naming the step and
//!   both SQLs; `accept-change` after review re-pins, and the phase then
//!   runs what was accepted.

mod common;
mod executor_support;
mod rollback_support;

use common::{TestDb, TestResult, fail, with_mysql, with_postgres, with_sqlite};
use executor_support::{ENV, Project};
use phasegate::dialect::Dialect;
use rollback_support::{count, expect, says};

const RENAME: &str = "rename-users-name";
const RENAME_PLAN: &str = "name: rename-users-name
changes:
  - rename_column: { table: users, from: name, to: full_name }
";

fn text_type(db: &TestDb) -> &'static str {
    if db.dialect == Dialect::Mysql {
        "varchar(100)"
    } else {
        "text"
    }
}

/// Inserts a row through the old name and checks the trigger mirrored it.
async fn old_release_writes(db: &TestDb, id: i64) -> TestResult {
    db.exec(&format!(
        "INSERT INTO users (id, name) VALUES ({id}, 'writer {id}')"
    ))
    .await?;
    let mirrored = db
        .scalar(&format!(
            "SELECT count(*) FROM users WHERE id = {id} AND full_name = name"
        ))
        .await?;
    if mirrored != 1 {
        return Err(fail(format!(
            "row {id} written through name is not mirrored to full_name"
        )));
    }
    Ok(())
}

async fn an_edited_rename_is_not_rolled_back(db: TestDb) -> TestResult {
    let db = &db;
    db.exec(&format!(
        "CREATE TABLE users (id integer PRIMARY KEY, name {} NULL)",
        text_type(db)
    ))
    .await?;
    db.exec("INSERT INTO users (id, name) VALUES (1, 'Ada'), (2, 'Grace')")
        .await?;
    let project = Project::new(db, &[], RENAME, RENAME_PLAN)?;
    expect(&project, &["apply", "--env", ENV, RENAME], 0)?;
    old_release_writes(db, 10).await?;

    // The plan file is edited: the direction swapped.
    let file = project.dir.join("plans").join(format!("{RENAME}.yaml"));
    std::fs::write(
        &file,
        RENAME_PLAN.replace("from: name, to: full_name", "from: full_name, to: name"),
    )?;
    let drift = [
        "drift",
        "rename-users-name changed since it started in test",
        "from: full_name, to: name",
    ];
    let out = expect(&project, &["rollback", "--env", ENV, RENAME], 1)?;
    says(&out, &drift, "rollback of the edited plan")?;
    for args in [
        &["gate", "--env", ENV, RENAME][..],
        &["apply", "--env", ENV, RENAME],
        &[
            "mark",
            "--env",
            ENV,
            RENAME,
            "--phase",
            "1",
            "--app-version",
            "v2",
        ],
        &[
            "resolve",
            "--env",
            ENV,
            RENAME,
            "--step",
            "1.add_column",
            "--as",
            "applied",
        ],
    ] {
        let out = expect(&project, args, 1)?;
        says(
            &out,
            &["drift", "changed since it started in test"],
            args[0],
        )?;
    }
    // Nothing changed: both columns, the trigger still mirroring.
    if !db.has_column("users", "name").await? || !db.has_column("users", "full_name").await? {
        return Err(fail("the refused commands changed the columns"));
    }
    old_release_writes(db, 11).await?;
    if count(db, "step_rolled_back").await + count(db, "phase_rolled_back").await != 0 {
        return Err(fail("a refused rollback recorded an undo"));
    }

    // Restored, the plan rolls back as it was pinned.
    std::fs::write(&file, RENAME_PLAN)?;
    expect(&project, &["rollback", "--env", ENV, RENAME], 0)?;
    if db.has_column("users", "full_name").await? || !db.has_column("users", "name").await? {
        return Err(fail("the rollback did not undo the rename's first phase"));
    }
    db.exec("INSERT INTO users (id, name) VALUES (12, 'after')")
        .await?;
    let names = db
        .scalar("SELECT count(*) FROM users WHERE name IS NOT NULL")
        .await?;
    if names != 5 || count(db, "phase_rolled_back").await != 1 {
        return Err(fail(format!(
            "{names} of 5 rows keep their name after the rollback"
        )));
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_an_edited_rename_is_refused_as_drift_by_rollback() {
    with_postgres(an_edited_rename_is_not_rolled_back).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_an_edited_rename_is_refused_as_drift_by_rollback() {
    with_mysql(an_edited_rename_is_not_rolled_back).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_an_edited_rename_is_refused_as_drift_by_rollback() {
    with_sqlite(an_edited_rename_is_not_rolled_back).await
}

const DROP: &str = "drop-legacy";
const DROP_PLAN: &str = "name: drop-legacy
changes:
  - drop_column: { table: people, column: legacy }
";

/// The dialect's shipped drop_column template with its drop_column block
/// dropping `column` instead of the plan's column.
fn override_dropping(dialect: Dialect, column: &str) -> TestResult<String> {
    let (shipped, quoted) = match dialect {
        Dialect::Postgres => (
            include_str!("../templates/postgres/drop_column.sql"),
            format!("\"{column}\""),
        ),
        Dialect::Mysql => (
            include_str!("../templates/mysql/drop_column.sql"),
            format!("`{column}`"),
        ),
        Dialect::Sqlite => (
            include_str!("../templates/sqlite/drop_column.sql"),
            format!("`{column}`"),
        ),
    };
    let at = shipped
        .find("{% block drop_column %}")
        .ok_or_else(|| fail("the shipped template has no drop_column block"))?;
    let (head, block) = shipped.split_at(at);
    // MariaDB's templates say `DROP COLUMN /*M! IF EXISTS */ …`.
    let needle = [
        "DROP COLUMN {{ column|ident }};",
        "DROP COLUMN /*M! IF EXISTS */ {{ column|ident }};",
    ]
    .into_iter()
    .find(|n| block.contains(n));
    let Some(needle) = needle else {
        return Err(fail(
            "the drop_column block does not drop {{ column|ident }}",
        ));
    };
    Ok(format!(
        "{head}{}",
        block.replacen(needle, &format!("DROP COLUMN {quoted};"), 1)
    ))
}

async fn an_override_added_mid_plan_is_drift(db: TestDb) -> TestResult {
    let db = &db;
    let t = text_type(db);
    db.exec(&format!(
        "CREATE TABLE people (id integer PRIMARY KEY, name {t} NULL, legacy {t} NULL, other {t} NULL)"
    ))
    .await?;
    db.exec("INSERT INTO people (id, name, legacy, other) VALUES (1, 'Ada', 'l', 'o')")
        .await?;
    let project = Project::new(db, &[], DROP, DROP_PLAN)?;
    expect(&project, &["apply", "--env", ENV, DROP], 0)?;
    expect(
        &project,
        &[
            "mark",
            "--env",
            ENV,
            DROP,
            "--phase",
            "1",
            "--app-version",
            "v2",
        ],
        0,
    )?;

    // A template override appears after phase 1: it drops another column.
    let dir = project.dir.join("templates").join(db.dialect.name());
    std::fs::create_dir_all(&dir)?;
    std::fs::write(
        dir.join("drop_column.sql"),
        override_dropping(db.dialect, "other")?,
    )?;
    let named = [
        "drift",
        "1.drop_column: its SQL changed",
        "DROP COLUMN",
        "legacy",
        "other",
        "phasegate accept-change --env test drop-legacy",
    ];
    let gate = expect(&project, &["gate", "--env", ENV, DROP], 1)?;
    says(&gate, &named, "gate after the override")?;
    let apply = expect(&project, &["apply", "--env", ENV, DROP], 1)?;
    says(&apply, &named, "apply after the override")?;
    if !db.has_column("people", "legacy").await? || !db.has_column("people", "other").await? {
        return Err(fail("the refused apply dropped a column"));
    }

    // Reviewed and accepted on purpose: re-pinned, the phase runs it.
    let out = expect(
        &project,
        &[
            "accept-change",
            "--env",
            ENV,
            DROP,
            "--reason",
            "reviewed: drop other instead",
        ],
        0,
    )?;
    says(&out, &["now the one in force"], "accept-change")?;
    expect(&project, &["gate", "--env", ENV, DROP], 0)?;
    expect(&project, &["apply", "--env", ENV, DROP], 0)?;
    if !db.has_column("people", "legacy").await? || db.has_column("people", "other").await? {
        return Err(fail("the accepted override did not run as accepted"));
    }
    // Accepting again with nothing changed (a retried job) is nothing to
    // do: exit 0, nothing recorded (contract.md: re-runs are idempotent).
    let out = expect(
        &project,
        &["accept-change", "--env", ENV, DROP, "--reason", "again"],
        0,
    )?;
    says(&out, &["already in force"], "accept-change again")?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_an_override_added_mid_plan_is_drift() {
    with_postgres(an_override_added_mid_plan_is_drift).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_an_override_added_mid_plan_is_drift() {
    with_mysql(an_override_added_mid_plan_is_drift).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_an_override_added_mid_plan_is_drift() {
    with_sqlite(an_override_added_mid_plan_is_drift).await
}

/// A log written before steps were pinned (`plan_started` without `steps`):
/// the drift gate compares the file only and says so, `accept-change` pins
/// the steps (accepted although the file is unchanged), and the plan runs
/// and rolls back as before.
async fn a_log_from_before_pinning_keeps_working(db: TestDb) -> TestResult {
    let db = &db;
    db.exec(&format!(
        "CREATE TABLE users (id integer PRIMARY KEY, name {} NULL)",
        text_type(db)
    ))
    .await?;
    let project = Project::new(db, &[], RENAME, RENAME_PLAN)?;
    // What an older phasegate recorded when the plan started.
    let catalog = serde_json::to_value(db.catalog(&["users"]).await?)?;
    let detail = serde_json::json!({
        "checksum": phasegate::tracker::checksum(RENAME_PLAN),
        "text": RENAME_PLAN,
        "catalog": catalog,
    });
    let mut store = phasegate::tracker::Store::open(
        ENV,
        &db.url,
        db.dialect,
        std::time::Duration::from_secs(10),
    )
    .await?;
    store
        .append(
            &phasegate::tracker::NewEvent::plan(RENAME, phasegate::tracker::EventKind::PlanStarted)
                .detail(detail.to_string()),
            chrono::Utc::now(),
            "older-phasegate",
        )
        .await?;
    store.close().await;

    let gate = expect(&project, &["gate", "--env", ENV, RENAME], 0)?;
    says(
        &gate,
        &[
            "not pinned",
            "phasegate accept-change --env test rename-users-name",
        ],
        "gate of a legacy log",
    )?;
    expect(&project, &["apply", "--env", ENV, RENAME], 0)?;
    let out = expect(
        &project,
        &[
            "accept-change",
            "--env",
            ENV,
            RENAME,
            "--reason",
            "pin the steps",
        ],
        0,
    )?;
    says(
        &out,
        &["now the one in force"],
        "accept-change of a legacy log",
    )?;
    let gate = text_of_gate(&project)?;
    says(
        &gate,
        &["its steps' SQL are unchanged"],
        "gate after pinning",
    )?;
    expect(&project, &["rollback", "--env", ENV, RENAME], 0)?;
    if db.has_column("users", "full_name").await? {
        return Err(fail("the rollback after pinning did not undo the phase"));
    }
    Ok(())
}

fn text_of_gate(project: &Project) -> TestResult<String> {
    Ok(rollback_support::text(&rollback_support::run(
        project,
        &["gate", "--env", ENV, RENAME],
    )?))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_log_from_before_pinning_keeps_working() {
    with_postgres(a_log_from_before_pinning_keeps_working).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_a_log_from_before_pinning_keeps_working() {
    with_sqlite(a_log_from_before_pinning_keeps_working).await
}
