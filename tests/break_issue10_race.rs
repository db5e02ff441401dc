//! Adversarial helper B3, continued from `break_issue10.rs`: commands of
//! different kinds at once, after phase 1 and on a fresh database. A passing
//! test = the defence holds.

mod common;
mod executor_support;

use std::process::{Command, Output, Stdio};

use common::{TestDb, TestResult, fail, with_mysql, with_postgres, with_sqlite};
use executor_support::{ENV, Project};

const RENAME: &str = "changes:\n  - rename_column: { table: items, from: a, to: b }\n";

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

// ---------------------------------------------------------------------------
// Concurrent commands of different kinds
// ---------------------------------------------------------------------------

/// Phase 1 of the rename applied, then three `rollback`s, an `apply` and a
/// `resolve` started at once. None may panic; the log afterwards must read
/// (status exit 0), and the schema must match what status says: either
/// phase 1 undone (no `b`) and pending, or phase 1 kept (with `b`).
async fn mixed_at_once(db: TestDb) -> TestResult {
    db.create_table("items", "id integer PRIMARY KEY, a text")
        .await?;
    db.exec("INSERT INTO items VALUES (1, 'one')").await?;
    let project = Project::new(&db, &[], "ren", RENAME)?;
    let out = cmd(&project, &["apply", "--env", ENV, "ren"])?;
    assert_eq!(out.status.code(), Some(0), "{}", shown(&out));
    let config = project.config_path();
    let runs: Vec<Vec<&str>> = vec![
        vec!["rollback", "--env", ENV, "ren"],
        vec!["rollback", "--env", ENV, "ren"],
        vec!["apply", "--env", ENV, "ren"],
        vec!["rollback", "--env", ENV, "ren"],
        vec![
            "resolve",
            "--env",
            ENV,
            "ren",
            "--step",
            "1.backfill",
            "--as",
            "applied",
        ],
    ];
    let children = runs
        .iter()
        .map(|args| {
            Command::new(env!("CARGO_BIN_EXE_phasegate"))
                .arg("--config")
                .arg(&config)
                .args(args)
                .current_dir(&project.dir)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut outcomes = Vec::new();
    for (child, args) in children.into_iter().zip(&runs) {
        let out = child.wait_with_output()?;
        if out.status.code() == Some(101) || out.status.code().is_none() {
            return Err(fail(format!("{args:?} crashed:\n{}", shown(&out))));
        }
        outcomes.push(format!("{args:?} → {:?}", out.status.code()));
    }
    println!("{outcomes:#?}");
    let status = cmd(&project, &["status"])?;
    let said = shown(&status);
    if status.status.code() != Some(0) {
        return Err(fail(format!("status after the race:\n{said}")));
    }
    let has_b = db.has_column("items", "b").await?;
    let pending = said.contains("phase 1 of 3: pending");
    if has_b == pending {
        return Err(fail(format!(
            "column b present: {has_b}, but status says:\n{said}\n{outcomes:#?}"
        )));
    }
    Ok(())
}

#[tokio::test]
async fn postgres_rollbacks_apply_and_resolve_at_once_stay_consistent() {
    with_postgres(mixed_at_once).await;
}

#[tokio::test]
async fn mysql_rollbacks_apply_and_resolve_at_once_stay_consistent() {
    with_mysql(mixed_at_once).await;
}

#[tokio::test]
async fn sqlite_rollbacks_apply_and_resolve_at_once_stay_consistent() {
    with_sqlite(mixed_at_once).await;
}

/// On a fresh database (no phasegate tables yet): accept-change, mark,
/// approve, backup, resolve, history, status and apply at once. Refusals are
/// fine (exit 1 or 2 with a reason); a crash, or a database error from the
/// log's own creation ("no rows returned", "already exists", deadlock), is
/// not. The log must read afterwards.
async fn fresh_other_kinds(db: TestDb) -> TestResult {
    db.create_table("items", "id integer PRIMARY KEY, a text")
        .await?;
    let project = Project::new(&db, &["lock_wait: 60s"], "ren", RENAME)?;
    let config = project.config_path();
    let runs: Vec<Vec<&str>> = vec![
        vec!["accept-change", "--env", ENV, "ren", "--reason", "r"],
        vec!["mark", "--env", ENV, "ren", "1", "v1"],
        vec!["approve", "--env", ENV, "ren", "3"],
        vec!["backup", "--env", ENV],
        vec![
            "resolve",
            "--env",
            ENV,
            "ren",
            "--step",
            "1.backfill",
            "--as",
            "applied",
        ],
        vec!["history", "--env", ENV],
        vec!["status"],
        vec!["apply", "--env", ENV, "ren"],
    ];
    let children = runs
        .iter()
        .map(|args| {
            Command::new(env!("CARGO_BIN_EXE_phasegate"))
                .arg("--config")
                .arg(&config)
                .args(args)
                .current_dir(&project.dir)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut bad = Vec::new();
    for (child, args) in children.into_iter().zip(&runs) {
        let out = child.wait_with_output()?;
        let said = shown(&out).to_lowercase();
        if out.status.code().is_none_or(|c| c > 2)
            || said.contains("no rows returned")
            || said.contains("already exists")
            || said.contains("deadlock")
            || said.contains("tampered")
        {
            bad.push(format!("{args:?}: {}", shown(&out)));
        }
    }
    let status = cmd(&project, &["status"])?;
    if status.status.code() != Some(0) {
        bad.push(format!("status afterwards: {}", shown(&status)));
    }
    if !bad.is_empty() {
        return Err(fail(format!("{bad:#?}")));
    }
    Ok(())
}

#[tokio::test]
async fn postgres_other_kinds_at_once_on_a_fresh_database() {
    with_postgres(fresh_other_kinds).await;
}

#[tokio::test]
async fn mysql_other_kinds_at_once_on_a_fresh_database() {
    with_mysql(fresh_other_kinds).await;
}

#[tokio::test]
async fn sqlite_other_kinds_at_once_on_a_fresh_database() {
    with_sqlite(fresh_other_kinds).await;
}
