//! `phasegate check` and the `phasegate_status` view, through the built
//! binary on real Postgres, MariaDB and SQLite databases (the view's own
//! properties are in `check_view.rs`).
//!
//! - Through a whole plan (apply, rollback, mark, a failed step, `resolve`,
//!   `accept-change`, a failed undo) the view's row, `status --format json`
//!   and `check` (every phase, with and without `--deployed`, text and JSON)
//!   agree at every point, and so does the library's `phase_reached`.
//! - A step that started and never finished (the binary killed mid-DDL on
//!   MariaDB) shows in the view, `status` and `check` alike, and goes once
//!   settled.
//! - `check` on a fresh database exits 1 and creates nothing.
//! - Bad input exits 2 with a clear error, and one JSON document with
//!   `--format json`.

mod check_support;
mod common;
mod executor_support;
#[allow(dead_code)]
#[path = "executor_support/kill.rs"]
mod kill;
mod rollback_support;

use check_support::{
    OWN, REN, REN_PLAN, agree, document, expect, expect_row, refused, started, step_of_last,
};
use common::{TestDb, TestResult, fail, with_mysql, with_postgres, with_sqlite};
use executor_support::{ENV, Project};
use rollback_support::{run, text};

/// Two hand-written changes in one phase; the second fails until the plan
/// is edited.
const BREAKS: &str = "breaks";
const BREAKS_PLAN: &str = "changes:
  - sql:
      phases:
        - up: CREATE TABLE gadgets (id INTEGER PRIMARY KEY)
          down: DROP TABLE gadgets
  - sql:
      phases:
        - up: INSERT INTO no_such_table (id) VALUES (1)
          down: DELETE FROM no_such_table
";
const BREAKS_FIXED: &str = "changes:
  - sql:
      phases:
        - up: CREATE TABLE gadgets (id INTEGER PRIMARY KEY)
          down: DROP TABLE gadgets
  - sql:
      phases:
        - up: CREATE TABLE widgets (id INTEGER PRIMARY KEY)
          down: DROP TABLE widgets
";

async fn whole_plan_agrees(db: TestDb) -> TestResult {
    let db = &db;
    db.create_table("users", "id integer PRIMARY KEY, name text")
        .await?;
    db.exec("INSERT INTO users (id, name) VALUES (1, 'Ada')")
        .await?;
    let project = Project::new(db, &[], REN, REN_PLAN)?;
    let breaks_file = project.dir.join("plans").join(format!("{BREAKS}.yaml"));
    std::fs::write(&breaks_file, BREAKS_PLAN)?;
    let p = &project;

    // Fresh: not reached, nothing created.
    let out = expect(p, &["check", "--env", ENV, REN, "--phase", "1"], 1)?;
    if !out.contains("has not started") || !out.contains("phasegate apply --env test ren") {
        return Err(fail(format!("check on a fresh database:\n{out}")));
    }
    agree(db, p, REN, "fresh").await?;
    for own in OWN {
        if db.has_relation(own).await? {
            return Err(fail(format!("check created {own}")));
        }
    }

    // The rename, with a rollback on the way.
    expect(p, &["apply", "--env", ENV, REN], 0)?;
    let r = agree(db, p, REN, "phase 1 applied").await?;
    expect_row(&r, "pending", 1, 0, "phase 1 applied (no app stage)")?;
    expect(p, &["rollback", "--env", ENV, REN], 0)?;
    let r = agree(db, p, REN, "phase 1 rolled back").await?;
    expect_row(&r, "pending", 0, 0, "phase 1 rolled back")?;
    expect(p, &["apply", "--env", ENV, REN], 0)?;
    agree(db, p, REN, "phase 1 applied again").await?;
    expect(p, &["apply", "--env", ENV, REN], 0)?;
    let r = agree(db, p, REN, "phase 2 applied").await?;
    expect_row(&r, "migrated", 2, 0, "phase 2 applied")?;
    let out = expect(
        p,
        &["check", "--env", ENV, REN, "--phase", "2", "--deployed"],
        1,
    )?;
    if !out.contains("phasegate mark --env test ren --phase 2") {
        return Err(fail(format!("check --deployed before mark:\n{out}")));
    }
    expect(
        p,
        &[
            "mark",
            "--env",
            ENV,
            REN,
            "--phase",
            "2",
            "--app-version",
            "v2",
        ],
        0,
    )?;
    agree(db, p, REN, "phase 2 marked").await?;
    expect(p, &["apply", "--env", ENV, REN], 0)?;
    let r = agree(db, p, REN, "complete").await?;
    if r.next_action.as_deref() != Some("complete") || r.phase_deployed != 3 {
        return Err(fail(format!("complete: {r:?}")));
    }

    // A failed step, settled by hand, the plan edited and accepted.
    expect(p, &["apply", "--env", ENV, BREAKS], 2)?;
    let r = agree(db, p, BREAKS, "a step failed").await?;
    expect_row(&r, "migrating", 0, 1, "a step failed")?;
    let failed = step_of_last(db, "step_failed").await?;
    expect(
        p,
        &[
            "resolve",
            "--env",
            ENV,
            BREAKS,
            "--step",
            &failed,
            "--as",
            "not-applied",
        ],
        0,
    )?;
    let r = agree(db, p, BREAKS, "the failed step resolved").await?;
    expect_row(&r, "migrating", 0, 0, "the failed step resolved")?;
    std::fs::write(&breaks_file, BREAKS_FIXED)?;
    expect(
        p,
        &[
            "accept-change",
            "--env",
            ENV,
            BREAKS,
            "--reason",
            "the table is made here",
        ],
        0,
    )?;
    agree(db, p, BREAKS, "the edit accepted").await?;
    expect(p, &["apply", "--env", ENV, BREAKS], 0)?;
    let r = agree(db, p, BREAKS, "the fixed plan applied").await?;
    expect_row(&r, "deployed", 1, 0, "the fixed plan applied")?;

    // An undo that fails (its table dropped by hand), settled, finished.
    db.exec("DROP TABLE gadgets").await?;
    expect(p, &["rollback", "--env", ENV, BREAKS], 2)?;
    let r = agree(db, p, BREAKS, "an undo failed").await?;
    expect_row(&r, "rolling_back", 0, 1, "an undo failed")?;
    let undo = step_of_last(db, "step_rollback_failed").await?;
    expect(
        p,
        &[
            "resolve",
            "--env",
            ENV,
            BREAKS,
            "--step",
            &undo,
            "--as",
            "rolled-back",
        ],
        0,
    )?;
    let r = agree(db, p, BREAKS, "the undo resolved").await?;
    expect_row(&r, "rolling_back", 0, 0, "the undo resolved")?;
    expect(p, &["rollback", "--env", ENV, BREAKS], 0)?;
    let r = agree(db, p, BREAKS, "rolled back").await?;
    expect_row(&r, "pending", 0, 0, "rolled back")?;

    // One row per plan; the rename is untouched by the other plan.
    let rows = db.scalar("SELECT COUNT(*) FROM phasegate_status").await?;
    if rows != 2 {
        return Err(fail(format!("{rows} rows in phasegate_status, expected 2")));
    }
    agree(db, p, REN, "after the other plan").await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn view_check_and_status_agree_through_a_whole_plan_on_postgres() {
    with_postgres(whole_plan_agrees).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn view_check_and_status_agree_through_a_whole_plan_on_mysql() {
    with_mysql(whole_plan_agrees).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn view_check_and_status_agree_through_a_whole_plan_on_sqlite() {
    with_sqlite(whole_plan_agrees).await
}

/// A step that started and never finished (the run killed while its DDL
/// waited for a lock): unfinished in the view as in `check`, and the state
/// `status` shows; settled through `resolve`, gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unfinished_step_shows_alike_on_mysql() {
    with_mysql(|db| async move {
        db.create_table("users", "id integer PRIMARY KEY, name text")
            .await?;
        let project = Project::new(
            &db,
            &["lock_timeout: 60s", "lock_retries: 0"],
            REN,
            REN_PLAN,
        )?;
        kill::create_log(&db, ENV).await?;
        kill::install_stall(&db).await?;
        let killed = kill::kill_at(
            &db,
            &project,
            &["apply", "--env", ENV, REN],
            kill::Point::Statement("ADD COLUMN /*M! IF NOT EXISTS */ `full_name`"),
        )
        .await?;
        killed.release(&db).await?;
        let r = agree(&db, &project, REN, "killed mid-step").await?;
        if r.unfinished_steps != 1 || r.phase_applied != 0 {
            return Err(fail(format!("killed mid-step: {r:?}")));
        }
        let transcript = kill::finish(&project, REN, "apply")?;
        let r = agree(&db, &project, REN, "settled").await?;
        if r.unfinished_steps != 0 || r.phase_applied != 1 {
            return Err(fail(format!("settled: {r:?}\n{transcript}")));
        }
        Ok(())
    })
    .await
}

/// `check` on a database phasegate never wrote to: exit 1, one JSON
/// document saying so, nothing created.
async fn fresh(db: TestDb) -> TestResult {
    db.create_table("users", "id integer PRIMARY KEY, name text")
        .await?;
    let before = db.schema().await?;
    let project = Project::new(&db, &[], REN, REN_PLAN)?;
    for phase in ["1", "3"] {
        let out = run(
            &project,
            &[
                "check", "--env", ENV, REN, "--phase", phase, "--format", "json",
            ],
        )?;
        let doc = document(&out, "check on a fresh database")?;
        if out.status.code() != Some(1)
            || doc["outcome"] != "blocked"
            || doc["started"] != false
            || doc["phases"] != 3
            || doc["run"] != "`phasegate apply --env test ren` (phase 1)"
        {
            return Err(fail(format!("check --phase {phase}: {}", text(&out))));
        }
    }
    expect(
        &project,
        &["check", "--env", ENV, REN, "--phase", "1", "--deployed"],
        1,
    )?;
    if db.schema().await? != before {
        return Err(fail("check changed the database's schema"));
    }
    for own in OWN {
        if db.has_relation(own).await? {
            return Err(fail(format!("check created {own}")));
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_on_a_fresh_database_exits_1_and_creates_nothing_on_postgres() {
    with_postgres(fresh).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_on_a_fresh_database_exits_1_and_creates_nothing_on_mysql() {
    with_mysql(fresh).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_on_a_fresh_database_exits_1_and_creates_nothing_on_sqlite() {
    with_sqlite(fresh).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_exits_2_with_a_clear_error() {
    with_sqlite(|db| async move {
        let project = started(&db).await?;
        let p = &project;
        refused(
            p,
            &["check", "--env", "tset", REN, "--phase", "1"],
            "unknown_environment",
            &["unknown environment `tset`", "test"],
        )?;
        refused(
            p,
            &["check", "--env", ENV, "rne", "--phase", "1"],
            "plan_not_found",
            &["no plan file `rne`", "ren"],
        )?;
        for phase in ["0", "4"] {
            refused(
                p,
                &["check", "--env", ENV, REN, "--phase", phase],
                "invalid_request",
                &["phases are 1 to 3", &format!("there is no phase {phase}")],
            )?;
        }
        // A plan file that does not parse: located.
        let broken = p.dir.join("plans").join("broken.yaml");
        std::fs::write(&broken, "changes:\n  - rename_column: { table: users, from: }\n")?;
        refused(
            p,
            &["check", "--env", ENV, "broken", "--phase", "1"],
            "plan_invalid",
            &["broken.yaml:2:"],
        )?;
        // Arguments clap refuses.
        for args in [
            &["check", "--env", ENV, REN][..],
            &["check", "--env", ENV, REN, "--phase", "two"][..],
        ] {
            let out = run(p, args)?;
            if out.status.code() != Some(2) {
                return Err(fail(format!("`{}`: {}", args.join(" "), text(&out))));
            }
        }
        // Databases that are not there: a SQLite file, a server that refuses.
        let missing = p.dir.join("nowhere.db");
        for (url, kind, says) in [
            (
                format!("sqlite://{}", missing.display()),
                "unreachable",
                "no SQLite database at",
            ),
            (
                "postgres://postgres@127.0.0.1:1/nowhere".to_string(),
                "unreachable",
                "cannot connect",
            ),
        ] {
            std::fs::write(
                p.config_path(),
                format!(
                    "environments:\n  - name: {ENV}\n    database_url: '{url}'\n    connect_timeout: 5s\n"
                ),
            )?;
            let start = std::time::Instant::now();
            refused(p, &["check", "--env", ENV, REN, "--phase", "1"], kind, &[says])?;
            if start.elapsed() > std::time::Duration::from_secs(30) {
                return Err(fail(format!("check against {url} took {:?}", start.elapsed())));
            }
            if missing.exists() {
                return Err(fail("check created the SQLite file"));
            }
        }
        Ok(())
    })
    .await
}

/// A database another environment owns: an error, not an answer about it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_of_another_environment_is_an_error() {
    with_sqlite(|db| async move {
        let project = started(&db).await?;
        let url = db.url.replace('\'', "''");
        std::fs::write(
            project.config_path(),
            format!("environments:\n  - name: other\n    database_url: '{url}'\n"),
        )?;
        refused(
            &project,
            &["check", "--env", "other", REN, "--phase", "1"],
            "other_environment",
            &["belongs to environment `test`"],
        )
    })
    .await
}
