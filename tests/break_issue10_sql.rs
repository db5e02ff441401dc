//! Adversarial helper B3, continued from `break_issue10.rs`: transaction
//! control inside a `sql` step's own statements. A passing test = the
//! defence holds; an `#[ignore = "BREAKS: …"]` test = it broke.

mod common;
mod executor_support;

use std::process::Output;

use common::{TestDb, TestResult, fail, with_mysql, with_postgres, with_sqlite};
use executor_support::{ENV, Project};

fn shown(o: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout ---\n{}--- stderr ---\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn cmd(project: &Project, args: &[&str]) -> TestResult<Output> {
    project.run(args)
}

/// `up` = `CREATE TABLE x1; ROLLBACK; CREATE TABLE x2`: the step's own
/// ROLLBACK discards x1. If apply reports the step applied (exit 0), both
/// tables must exist; a step recorded applied with half its change gone is a
/// lie in the log.
async fn rollback_inside_up(db: TestDb) -> TestResult {
    let plan = "changes:\n  - sql:\n      phases:\n        - up: \"CREATE TABLE x1 (id int); ROLLBACK; CREATE TABLE x2 (id int)\"\n          down: \"DROP TABLE x2; DROP TABLE x1\"\n";
    let project = Project::new(&db, &[], "r", plan)?;
    let out = cmd(&project, &["apply", "--env", ENV, "r"])?;
    let (x1, x2) = (db.has_relation("x1").await?, db.has_relation("x2").await?);
    let status = cmd(&project, &["status"])?;
    let applied = out.status.code() == Some(0);
    // Refused at plan time, before anything runs.
    if !shown(&out).contains("ends or opens a transaction by hand") {
        return Err(fail(format!("not refused:\n{}", shown(&out))));
    }
    // Applied: all of it is there. Failed: none of it is, or the failure
    // says what committed.
    let honest = if applied {
        x1 && x2
    } else {
        (!x1 && !x2) || shown(&out).contains("committed")
    };
    if !honest {
        return Err(fail(format!(
            "x1 exists: {x1}, x2 exists: {x2}\napply: {}\nstatus: {}",
            shown(&out),
            shown(&status)
        )));
    }
    Ok(())
}

#[tokio::test]
async fn postgres_a_rollback_inside_a_sql_step_is_not_recorded_as_applied() {
    with_postgres(rollback_inside_up).await;
}

#[tokio::test]
async fn mysql_a_rollback_inside_a_sql_step_is_not_recorded_as_applied() {
    with_mysql(rollback_inside_up).await;
}

#[tokio::test]
async fn sqlite_a_rollback_inside_a_sql_step_is_not_recorded_as_applied() {
    with_sqlite(rollback_inside_up).await;
}

// ---------------------------------------------------------------------------
// A `sql` step holding its own COMMIT: the step is no longer all-or-nothing
// ---------------------------------------------------------------------------

/// `up` commits its first statement by itself, then fails. Either the plan is
/// refused before anything runs, or the failure must say that part of the
/// step committed (as a non-transactional step's failure does), so that the
/// step is not simply "retried".
async fn commit_inside_up(db: TestDb) -> TestResult {
    let plan = "changes:\n  - sql:\n      phases:\n        - up: \"CREATE TABLE x1 (id int); COMMIT; CREATE TABLE x1 (id int)\"\n          down: \"DROP TABLE x1\"\n";
    let project = Project::new(&db, &[], "c", plan)?;
    let out = cmd(&project, &["apply", "--env", ENV, "c"])?;
    let said = shown(&out);
    assert_ne!(out.status.code(), Some(0), "{said}");
    assert!(
        said.contains("ends or opens a transaction by hand"),
        "{said}"
    );
    let created = db.has_relation("x1").await?;
    if created && !said.contains("committed") {
        let gate = cmd(&project, &["gate", "--env", ENV, "c"])?;
        return Err(fail(format!(
            "x1 was created and committed, but apply said:\n{said}\ngate:\n{}",
            shown(&gate)
        )));
    }
    Ok(())
}

#[tokio::test]
async fn postgres_a_commit_inside_a_sql_step_is_not_hidden() {
    with_postgres(commit_inside_up).await;
}

#[tokio::test]
async fn mysql_a_commit_inside_a_sql_step_is_not_hidden() {
    with_mysql(commit_inside_up).await;
}

#[tokio::test]
async fn sqlite_a_commit_inside_a_sql_step_is_not_hidden() {
    with_sqlite(commit_inside_up).await;
}

// ---------------------------------------------------------------------------
// Rollback: the way out after a `down` with a typo
// ---------------------------------------------------------------------------

/// Phase 1 of a two-change `sql` plan applied; the second change's `down`
/// names a table that is not there (a typo), so rollback stops there. The
/// operator fixes the typo, accepts the edit, and rolls back again: both
/// tables are gone and status reads phase 1 pending.
async fn down_typo_fixed(db: TestDb) -> TestResult {
    let plan = |down: &str| {
        format!(
            "changes:\n  - sql:\n      phases:\n        - up: \"CREATE TABLE e1 (id int)\"\n          down: \"DROP TABLE e1\"\n  - sql:\n      phases:\n        - up: \"CREATE TABLE e2 (id int)\"\n          down: \"{down}\"\n"
        )
    };
    let project = Project::new(&db, &[], "t", &plan("DROP TABLE e2_typo"))?;
    let out = cmd(&project, &["apply", "--env", ENV, "t"])?;
    assert_eq!(out.status.code(), Some(0), "{}", shown(&out));
    let back = cmd(&project, &["rollback", "--env", ENV, "t"])?;
    assert_eq!(back.status.code(), Some(2), "{}", shown(&back));
    std::fs::write(
        project.dir.join("plans").join("t.yaml"),
        plan("DROP TABLE e2"),
    )?;
    let accept = cmd(
        &project,
        &[
            "accept-change",
            "--env",
            ENV,
            "t",
            "--reason",
            "fix the down typo",
        ],
    )?;
    let again = cmd(&project, &["rollback", "--env", ENV, "t"])?;
    let status = cmd(&project, &["status"])?;
    let (e1, e2) = (db.has_relation("e1").await?, db.has_relation("e2").await?);
    if again.status.code() != Some(0) || e1 || e2 || !shown(&status).contains("pending") {
        return Err(fail(format!(
            "e1 left: {e1}, e2 left: {e2}\naccept-change: {}\nrollback: {}\nstatus: {}",
            shown(&accept),
            shown(&again),
            shown(&status)
        )));
    }
    Ok(())
}

#[tokio::test]
async fn postgres_a_fixed_down_typo_rolls_back_after_accept_change() {
    with_postgres(down_typo_fixed).await;
}

#[tokio::test]
async fn mysql_a_fixed_down_typo_rolls_back_after_accept_change() {
    with_mysql(down_typo_fixed).await;
}

#[tokio::test]
async fn sqlite_a_fixed_down_typo_rolls_back_after_accept_change() {
    with_sqlite(down_typo_fixed).await;
}
