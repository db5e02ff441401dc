//! `phasegate rollback` through the built binary: all-or-nothing per step and
//! recorded per step, on Postgres, MariaDB and SQLite.
//!
//! - `init`'s example plan (a `sql` change whose `down` has no trailing `;`,
//!   another whose SQL ends in a `-- comment` with no newline) rolls back
//!   whole: every step's undo is recorded (`step_rolled_back`, in the reverse
//!   of the order the steps ran), then `phase_rolled_back`, and the plan
//!   applies again.
//! - A rollback whose `sql` step's `down` fails after the rename's steps were
//!   undone: the log says exactly what was undone, `status` shows the phase
//!   partly rolled back, `gate` and `apply` are held naming the step and
//!   `resolve`, another rollback retries only that step, `resolve --as
//!   rolled-back` settles it, the next rollback finishes the phase, and the
//!   plan applies again with schema and log agreeing.

mod common;
mod executor_support;
mod rollback_support;

use common::{TestDb, TestResult, fail, with_mysql, with_postgres, with_sqlite};
use executor_support::{ENV, Project};
use phasegate::dialect::Dialect;
use rollback_support::{count, expect, log, run, says, steps_of, text};

/// `phasegate init`'s example plan, with a second `sql` change whose SQL
/// ends in a comment without a newline.
const EXAMPLE: &str = "description: Create a users table, then rename users.name to full_name
changes:
  - sql:
      phases:
        - up: CREATE TABLE IF NOT EXISTS users (id INTEGER PRIMARY KEY, name TEXT)
          down: DROP TABLE users
  - sql:
      phases:
        - up: \"CREATE TABLE notes (id INTEGER PRIMARY KEY) -- made\"
          down: \"DROP TABLE notes -- done\"
  - rename_column: { table: users, from: name, to: full_name }
";

async fn example_rolls_back_whole(db: TestDb) -> TestResult {
    let db = &db;
    let plan = "example-rename";
    if db.dialect == Dialect::Mysql {
        // MySQL plans a rename from the column's full definition, read from
        // the live schema: the table must be there when the plan starts
        // (the example's CREATE TABLE IF NOT EXISTS then leaves it be).
        db.exec("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)")
            .await?;
    }
    let project = Project::new(db, &[], plan, EXAMPLE)?;
    expect(&project, &["apply", "--env", ENV, plan], 0)?;
    db.exec("INSERT INTO users (id, name) VALUES (1, 'Ada')")
        .await?;
    let out = expect(&project, &["rollback", "--env", ENV, plan], 0)?;
    says(&out, &["phase 1 rolled back"], "rollback")?;

    // Schema: everything phase 1 made is gone.
    for table in ["users", "notes"] {
        if db.has_relation(table).await? {
            return Err(fail(format!("{table} is still there after the rollback")));
        }
    }
    // Log: each step undone, in reverse, then the phase.
    let mut applied = steps_of(db, "step_applied").await;
    applied.reverse();
    let undone = steps_of(db, "step_rolled_back").await;
    if undone != applied {
        return Err(fail(format!(
            "step_rolled_back events {undone:?}, expected the applied steps in reverse {applied:?}"
        )));
    }
    let events = log(db).await;
    if events.last().map(|(k, _)| k.as_str()) != Some("phase_rolled_back")
        || count(db, "phase_rolled_back").await != 1
    {
        return Err(fail(format!(
            "the log does not end with one phase_rolled_back: {events:?}"
        )));
    }
    let status = text(&run(&project, &["status"])?);
    says(
        &status,
        &["pending", "next: apply phase 1"],
        "status after the rollback",
    )?;

    // The plan goes on through the documented commands.
    expect(&project, &["apply", "--env", ENV, plan], 0)?;
    if !db.has_column("users", "full_name").await? || !db.has_relation("notes").await? {
        return Err(fail("phase 1 did not apply again after the rollback"));
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_init_example_rolls_back_whole_and_recorded() {
    with_postgres(example_rolls_back_whole).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_init_example_rolls_back_whole_and_recorded() {
    with_mysql(example_rolls_back_whole).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_init_example_rolls_back_whole_and_recorded() {
    with_sqlite(example_rolls_back_whole).await
}

const PARTIAL: &str = "gadgets-and-rename";
const PARTIAL_PLAN: &str = "name: gadgets-and-rename
changes:
  - sql:
      phases:
        - up: CREATE TABLE gadgets (id INTEGER PRIMARY KEY)
          down: DROP TABLE gadgets
  - rename_column: { table: users, from: name, to: full_name }
";

async fn setup_partial(db: &TestDb) -> TestResult<Project> {
    let text_type = if db.dialect == Dialect::Mysql {
        "varchar(100)"
    } else {
        "text"
    };
    db.exec(&format!(
        "CREATE TABLE users (id integer PRIMARY KEY, name {text_type} NULL)"
    ))
    .await?;
    db.exec("INSERT INTO users (id, name) VALUES (1, 'Ada'), (2, 'Grace'), (3, NULL)")
        .await?;
    let project = Project::new(db, &[], PARTIAL, PARTIAL_PLAN)?;
    expect(&project, &["apply", "--env", ENV, PARTIAL], 0)?;
    // Someone drops the table by hand: the sql step's `down` will fail.
    db.exec("DROP TABLE gadgets").await?;
    Ok(project)
}

/// The rename's steps, undone before the sql step's `down` failed.
const RENAME_UNDONE: [&str; 4] = ["2.verify", "2.backfill", "2.sync_trigger", "2.add_column"];

async fn a_failed_undo_is_recorded_and_settled(db: TestDb) -> TestResult {
    let db = &db;
    let project = setup_partial(db).await?;
    let resolve =
        format!("phasegate resolve --env {ENV} {PARTIAL} --step 1.sql_1 --as rolled-back");
    let rollback = format!("phasegate rollback --env {ENV} {PARTIAL}");

    let out = expect(&project, &["rollback", "--env", ENV, PARTIAL], 2)?;
    says(
        &out,
        &["1.sql_1", &resolve, &rollback],
        "the failed rollback",
    )?;
    // The log says exactly what was undone.
    let undone = steps_of(db, "step_rolled_back").await;
    if undone != RENAME_UNDONE {
        return Err(fail(format!(
            "step_rolled_back events {undone:?}, expected {RENAME_UNDONE:?}"
        )));
    }
    if steps_of(db, "step_rollback_failed").await != ["1.sql_1"]
        || count(db, "phase_rolled_back").await != 0
    {
        return Err(fail(format!(
            "the log after the failed rollback: {:?}",
            log(db).await
        )));
    }
    // And the schema agrees: the rename is undone, its trigger gone.
    if db.has_column("users", "full_name").await? {
        return Err(fail(
            "full_name is still there, though its undo is recorded",
        ));
    }
    db.exec("INSERT INTO users (id, name) VALUES (10, 'Edsger')")
        .await?;

    let status = text(&run(&project, &["status"])?);
    says(&status, &["partly rolled back"], "status")?;
    let gate = expect(&project, &["gate", "--env", ENV, PARTIAL], 1)?;
    says(
        &gate,
        &[
            "rolling back step 1.sql_1",
            &resolve,
            "--as not-rolled-back",
        ],
        "gate",
    )?;
    let apply = expect(&project, &["apply", "--env", ENV, PARTIAL], 1)?;
    says(&apply, &["rolling back step 1.sql_1", &resolve], "apply")?;

    // Rolling back again retries the failed step only.
    expect(&project, &["rollback", "--env", ENV, PARTIAL], 2)?;
    if steps_of(db, "step_rolled_back").await.len() != RENAME_UNDONE.len()
        || count(db, "step_rollback_failed").await != 2
    {
        return Err(fail(format!("the second rollback: {:?}", log(db).await)));
    }

    // The table is gone already: settle the step as rolled back.
    let out = expect(
        &project,
        &[
            "resolve",
            "--env",
            ENV,
            PARTIAL,
            "--step",
            "1.sql_1",
            "--as",
            "rolled-back",
        ],
        0,
    )?;
    says(&out, &["is recorded as rolled back", &rollback], "resolve")?;
    let out = expect(&project, &["rollback", "--env", ENV, PARTIAL], 0)?;
    says(&out, &["phase 1 rolled back"], "the rollback after resolve")?;
    if count(db, "phase_rolled_back").await != 1 {
        return Err(fail(format!("no phase_rolled_back: {:?}", log(db).await)));
    }
    let status = text(&run(&project, &["status"])?);
    says(
        &status,
        &["pending", "next: apply phase 1"],
        "status after the rollback",
    )?;

    // The plan goes forward again, schema and log agreeing.
    expect(&project, &["apply", "--env", ENV, PARTIAL], 0)?;
    if !db.has_relation("gadgets").await? || !db.has_column("users", "full_name").await? {
        return Err(fail("phase 1 did not apply again"));
    }
    let copied = db
        .scalar("SELECT count(*) FROM users WHERE full_name = name")
        .await?;
    if copied != 3 {
        return Err(fail(format!(
            "{copied} of 3 named users copied to full_name"
        )));
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_failed_undo_is_recorded_and_settled() {
    with_postgres(a_failed_undo_is_recorded_and_settled).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_a_failed_undo_is_recorded_and_settled() {
    with_mysql(a_failed_undo_is_recorded_and_settled).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_a_failed_undo_is_recorded_and_settled() {
    with_sqlite(a_failed_undo_is_recorded_and_settled).await
}

/// `--as not-rolled-back`: the step's change is still there (the operator
/// recreated the table), so the next rollback undoes it again.
async fn not_rolled_back_is_undone_again(db: TestDb) -> TestResult {
    let db = &db;
    let project = setup_partial(db).await?;
    expect(&project, &["rollback", "--env", ENV, PARTIAL], 2)?;
    db.exec("CREATE TABLE gadgets (id integer PRIMARY KEY)")
        .await?;
    let out = expect(
        &project,
        &[
            "resolve",
            "--env",
            ENV,
            PARTIAL,
            "--step",
            "1.sql_1",
            "--as",
            "not-rolled-back",
        ],
        0,
    )?;
    says(
        &out,
        &["is recorded as not rolled back", "undoes it again"],
        "resolve",
    )?;
    expect(&project, &["rollback", "--env", ENV, PARTIAL], 0)?;
    if db.has_relation("gadgets").await? {
        return Err(fail("the rollback after --as not-rolled-back left gadgets"));
    }
    if steps_of(db, "step_rolled_back")
        .await
        .last()
        .map(String::as_str)
        != Some("1.sql_1")
        || count(db, "phase_rolled_back").await != 1
    {
        return Err(fail(format!("the log: {:?}", log(db).await)));
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_not_rolled_back_is_undone_again() {
    with_postgres(not_rolled_back_is_undone_again).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_not_rolled_back_is_undone_again() {
    with_mysql(not_rolled_back_is_undone_again).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_not_rolled_back_is_undone_again() {
    with_sqlite(not_rolled_back_is_undone_again).await
}
