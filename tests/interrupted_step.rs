//! A `phasegate apply` killed in the middle of a MySQL step.
//!
//! MySQL commits DDL as it runs, so a step cannot share a transaction with
//! the event that records it: phasegate records `step_started` before the
//! step and `step_applied` after. Here the built binary is `kill -9`ed while
//! its first DDL waits for a metadata lock that an application transaction
//! holds; the server-side statement is then killed too, or finished by hand,
//! as an operator would. The environment must be blocked with a message that
//! names the step and the resolving command, for this plan and for any
//! other plan in the environment; `phasegate resolve` must say what it
//! recorded and what the next apply does; and that apply must finish the
//! phase with every row intact. A `phasegate rollback` killed the same way
//! while an undo waits (`step_rollback_started`, never finished) holds
//! rollback, gate and apply until `resolve --as rolled-back|not-rolled-back`,
//! after which rollback finishes the phase.

mod common;
mod executor_support;

use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{TestDb, TestResult, fail, with_mysql};
use executor_support::{ENV, Project};
use sqlx::mysql::MySqlConnection;
use sqlx::{Connection, Executor};

const PLAN: &str = "rename-users-name";
const RENAME: &str = "name: rename-users-name
description: Users get a single full_name field
changes:
  - rename_column: { table: users, from: name, to: full_name }
";
/// A second plan in the same environment, on another table.
const OTHER: &str = "name: index-orders
changes:
  - add_index: { table: orders, columns: [placed_at] }
";
const ROWS: i64 = 2000;

fn phasegate(project: &Project, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_phasegate"));
    c.arg("--config")
        .arg(project.config_path())
        .args(args)
        .current_dir(&project.dir)
        .stdin(Stdio::null());
    c
}

fn run(project: &Project, args: &[&str]) -> TestResult<Output> {
    Ok(phasegate(project, args).output()?)
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn expect_exit(o: &Output, code: i32, what: &str) -> TestResult {
    if o.status.code() != Some(code) {
        return Err(fail(format!(
            "{what}: exit {:?}, expected {code}:\n{}",
            o.status.code(),
            text(o)
        )));
    }
    Ok(())
}

fn expect_text(o: &Output, needle: &str, what: &str) -> TestResult {
    if !text(o).contains(needle) {
        return Err(fail(format!(
            "{what}: the output does not say {needle:?}:\n{}",
            text(o)
        )));
    }
    Ok(())
}

/// The ids of server threads on this test's database running a statement
/// that starts with `prefix` (the process list is server-wide).
async fn threads_running(db: &TestDb, prefix: &str) -> TestResult<Vec<i64>> {
    let ids = db
        .texts(&format!(
            "SELECT CAST(id AS CHAR) FROM information_schema.processlist WHERE info LIKE '{prefix}%' AND db = DATABASE() AND id <> CONNECTION_ID()"
        ))
        .await?;
    Ok(ids.iter().filter_map(|s| s.parse().ok()).collect())
}

/// Starts `phasegate apply` while an application transaction holds a
/// metadata lock on `users`, waits until the first DDL is recorded as
/// started and is waiting for that lock, then kills the process and the
/// server-side statement. Returns with the application's transaction ended.
async fn kill_during_first_ddl(db: &TestDb, project: &Project) -> TestResult {
    let mut app = MySqlConnection::connect(&db.url).await?;
    // An application transaction that read the table holds a shared
    // metadata lock until it ends: the ALTER must wait for it.
    app.execute("START TRANSACTION").await?;
    app.execute("SELECT count(*) FROM users").await?;

    let mut child: Child = phasegate(project, &["apply", "--env", ENV, PLAN])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let deadline = Instant::now() + Duration::from_secs(20);
    let waiting = loop {
        let started = db
            .scalar("SELECT count(*) FROM phasegate_events WHERE kind = 'step_started' AND step = '1.add_column'")
            .await
            .unwrap_or(0);
        let alters = threads_running(db, "ALTER TABLE `users`").await?;
        if started == 1 && !alters.is_empty() {
            break alters;
        }
        if let Some(status) = child.try_wait()? {
            return Err(fail(format!(
                "apply ended ({status}) before its first DDL was seen waiting"
            )));
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            return Err(fail("the first DDL never reached its lock wait"));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    child.kill()?;
    child.wait()?;
    // The server does not notice a dead client while the statement waits:
    // end it as an operator would (KILL), so it cannot run later.
    for id in waiting {
        let _ = db.exec(&format!("KILL {id}")).await;
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while !threads_running(db, "ALTER TABLE `users`").await?.is_empty() {
        if Instant::now() > deadline {
            return Err(fail("the killed ALTER is still running"));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    app.execute("COMMIT").await?;
    app.close().await?;
    Ok(())
}

async fn setup(db: &TestDb) -> TestResult<Project> {
    db.exec("CREATE TABLE users (id bigint PRIMARY KEY, name varchar(100) NOT NULL)")
        .await?;
    db.exec(&format!(
        "INSERT INTO users (id, name) SELECT seq, CONCAT('user ', seq) FROM seq_1_to_{ROWS}"
    ))
    .await?;
    db.exec("CREATE TABLE orders (id bigint PRIMARY KEY, placed_at datetime NULL)")
        .await?;
    // A long lock wait, so the step is still waiting when it is killed;
    // no retries, so a give-way could not end it early either.
    let project = Project::new(db, &["lock_timeout: 30s", "lock_retries: 0"], PLAN, RENAME)?;
    std::fs::write(project.dir.join("plans").join("index-orders.yaml"), OTHER)?;
    Ok(project)
}

/// After the kill: apply, gate, status and another plan's apply all refuse,
/// each naming the step and the resolving command.
fn assert_blocked(project: &Project) -> TestResult {
    let resolve = format!("phasegate resolve --env {ENV} {PLAN} --step 1.add_column --as applied");
    let apply = run(project, &["apply", "--env", ENV, PLAN])?;
    expect_exit(&apply, 1, "apply after the kill")?;
    expect_text(&apply, "step 1.add_column started", "apply")?;
    expect_text(&apply, "never finished", "apply")?;
    expect_text(&apply, "part of it may have run", "apply")?;
    expect_text(&apply, &resolve, "apply")?;
    expect_text(&apply, "--as not-applied`", "apply")?;
    let gate = run(project, &["gate", "--env", ENV, PLAN])?;
    expect_exit(&gate, 1, "gate after the kill")?;
    expect_text(&gate, &resolve, "gate")?;
    // The half-done step may have left `users` half-changed: every plan in
    // the environment waits for it, not only its own.
    let other = run(project, &["apply", "--env", ENV, "index-orders"])?;
    expect_exit(&other, 1, "another plan's apply after the kill")?;
    expect_text(
        &other,
        "step 1.add_column of rename-users-name started",
        "another plan's apply",
    )?;
    expect_text(&other, &resolve, "another plan's apply")?;
    let status = run(project, &["status"])?;
    expect_text(&status, "1.add_column", "status")?;
    // Explained once, under its own plan; the other plan points at it.
    let said = text(&status);
    if said.matches(&resolve).count() != 1 {
        return Err(fail(format!(
            "status explains the interrupted step {} times, not once:\n{said}",
            said.matches(&resolve).count()
        )));
    }
    expect_text(
        &status,
        &format!("step 1.add_column of {PLAN} never finished here; resolve it first (see {PLAN})"),
        "status, under the other plan",
    )?;
    Ok(())
}

async fn assert_users_intact(db: &TestDb) -> TestResult {
    let copied = db
        .scalar("SELECT count(*) FROM users WHERE full_name = name AND name = CONCAT('user ', id)")
        .await?;
    if copied != ROWS {
        return Err(fail(format!(
            "{copied} of {ROWS} rows have full_name = name after the phase"
        )));
    }
    Ok(())
}

#[tokio::test]
async fn a_mysql_step_killed_midway_blocks_until_resolved_as_not_applied() {
    with_mysql(|db| async move {
        let project = setup(&db).await?;
        kill_during_first_ddl(&db, &project).await?;
        if db.has_column("users", "full_name").await? {
            return Err(fail("the killed ALTER added its column after all"));
        }
        assert_blocked(&project)?;

        // Resolving a step that is not outstanding is refused, naming the one that is.
        let wrong = run(&project, &["resolve", "--env", ENV, PLAN, "--step", "1.backfill", "--as", "applied"])?;
        expect_exit(&wrong, 1, "resolving a step that is not outstanding")?;
        expect_text(&wrong, "outstanding: 1.add_column", "resolve of the wrong step")?;

        let resolve = run(&project, &["resolve", "--env", ENV, PLAN, "--step", "1.add_column", "--as", "not-applied"])?;
        expect_exit(&resolve, 0, "resolve --as not-applied")?;
        expect_text(&resolve, "step 1.add_column (phase 1), which started and never finished, is recorded as not applied in test", "resolve")?;
        expect_text(&resolve, "runs it again from its start", "resolve")?;

        let apply = run(&project, &["apply", "--env", ENV, PLAN])?;
        expect_exit(&apply, 0, "apply after resolving")?;
        expect_text(&apply, "ran 1.add_column", "apply after resolving")?;
        assert_users_intact(&db).await?;
        // The other plan is free again too.
        let other = run(&project, &["apply", "--env", ENV, "index-orders"])?;
        expect_exit(&other, 0, "the other plan's apply after resolving")?;
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn a_mysql_step_finished_by_hand_is_resolved_as_applied_and_not_run_again() {
    with_mysql(|db| async move {
        let project = setup(&db).await?;
        kill_during_first_ddl(&db, &project).await?;
        assert_blocked(&project)?;
        // The operator finishes the step by hand (what `plan --format sql` shows for it).
        db.exec("ALTER TABLE `users` ADD COLUMN `full_name` varchar(100) NULL").await?;

        let resolve = run(&project, &["resolve", "--env", ENV, PLAN, "--step", "1.add_column", "--as", "applied"])?;
        expect_exit(&resolve, 0, "resolve --as applied")?;
        expect_text(&resolve, "is recorded as applied in test", "resolve")?;
        expect_text(&resolve, "phasegate will not run it again", "resolve")?;

        // Running the ADD COLUMN again would fail (duplicate column): apply
        // must go on after it.
        let apply = run(&project, &["apply", "--env", ENV, PLAN])?;
        expect_exit(&apply, 0, "apply after resolving")?;
        expect_text(&apply, "skipped 1.add_column", "apply after resolving")?;
        expect_text(&apply, "ran 1.sync_trigger", "apply after resolving")?;
        assert_users_intact(&db).await?;
        let events = db
            .scalar("SELECT count(*) FROM phasegate_events WHERE kind = 'step_resolved' AND step = '1.add_column' AND detail = 'applied'")
            .await?;
        if events != 1 {
            return Err(fail(format!("{events} step_resolved events for 1.add_column, expected 1")));
        }
        Ok(())
    })
    .await;
}

/// The step whose undo `rollback` recorded as started and never finished.
async fn undo_started(db: &TestDb) -> TestResult<Option<String>> {
    let started = db
        .texts("SELECT step FROM phasegate_events WHERE kind = 'step_rollback_started' ORDER BY id")
        .await?;
    let ended = db
        .texts("SELECT step FROM phasegate_events WHERE kind IN ('step_rolled_back', 'step_rollback_failed') ORDER BY id")
        .await?;
    Ok(started.into_iter().rev().find(|s| !ended.contains(s)))
}

/// Starts `phasegate rollback` while an application transaction holds a
/// metadata lock on `users`, waits until an undo is recorded as started and
/// its DDL waits for that lock, then kills the process and the server-side
/// statement. Returns the step whose undo was interrupted.
async fn kill_during_an_undo(db: &TestDb, project: &Project) -> TestResult<String> {
    let mut app = MySqlConnection::connect(&db.url).await?;
    app.execute("START TRANSACTION").await?;
    app.execute("SELECT count(*) FROM users").await?;
    let mut child: Child = phasegate(project, &["rollback", "--env", ENV, PLAN])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let deadline = Instant::now() + Duration::from_secs(20);
    let (step, waiting) = loop {
        let mut ddl = threads_running(db, "DROP TRIGGER").await?;
        ddl.extend(threads_running(db, "ALTER TABLE `users`").await?);
        if let (Some(step), false) = (undo_started(db).await?, ddl.is_empty()) {
            break (step, ddl);
        }
        if let Some(status) = child.try_wait()? {
            return Err(fail(format!(
                "rollback ended ({status}) before an undo was seen waiting"
            )));
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            return Err(fail("no undo reached its lock wait"));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    child.kill()?;
    child.wait()?;
    for id in waiting {
        let _ = db.exec(&format!("KILL {id}")).await;
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut ddl = threads_running(db, "DROP TRIGGER").await?;
        ddl.extend(threads_running(db, "ALTER TABLE `users`").await?);
        if ddl.is_empty() {
            break;
        }
        if Instant::now() > deadline {
            return Err(fail("the killed undo is still running"));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    app.execute("COMMIT").await?;
    app.close().await?;
    Ok(step)
}

#[tokio::test]
async fn a_mysql_undo_killed_midway_blocks_until_resolved_then_rollback_finishes() {
    with_mysql(|db| async move {
        let project = setup(&db).await?;
        let apply = run(&project, &["apply", "--env", ENV, PLAN])?;
        expect_exit(&apply, 0, "apply")?;
        let step = kill_during_an_undo(&db, &project).await?;
        let resolve =
            format!("phasegate resolve --env {ENV} {PLAN} --step {step} --as rolled-back");

        // Rollback, gate and apply are held, naming the step and resolve.
        for args in [
            &["rollback", "--env", ENV, PLAN][..],
            &["gate", "--env", ENV, PLAN],
            &["apply", "--env", ENV, PLAN],
        ] {
            let o = run(&project, args)?;
            expect_exit(&o, 1, args[0])?;
            expect_text(
                &o,
                &format!("rolling back step {step} of phase 1 started and never finished"),
                args[0],
            )?;
            expect_text(&o, &resolve, args[0])?;
            expect_text(&o, "--step 1.sync_trigger --as not-rolled-back`", args[0])?;
        }
        let status = run(&project, &["status"])?;
        expect_text(&status, "partly rolled back", "status")?;

        // The statement was killed before it ran: the change is still there.
        let o = run(
            &project,
            &[
                "resolve",
                "--env",
                ENV,
                PLAN,
                "--step",
                &step,
                "--as",
                "not-rolled-back",
            ],
        )?;
        expect_exit(&o, 0, "resolve --as not-rolled-back")?;
        expect_text(
            &o,
            "whose rollback started and never finished, is recorded as not rolled back",
            "resolve",
        )?;

        let o = run(&project, &["rollback", "--env", ENV, PLAN])?;
        expect_exit(&o, 0, "rollback after resolving")?;
        if db.has_column("users", "full_name").await? {
            return Err(fail("full_name is still there after the rollback"));
        }
        // No sync trigger is left behind: a write through name alone works.
        db.exec("INSERT INTO users (id, name) VALUES (900000, 'after')")
            .await?;
        let rolled = db
            .scalar("SELECT count(*) FROM phasegate_events WHERE kind = 'phase_rolled_back'")
            .await?;
        if rolled != 1 {
            return Err(fail(format!(
                "{rolled} phase_rolled_back events, expected 1"
            )));
        }
        // And the plan goes forward again.
        let o = run(&project, &["apply", "--env", ENV, PLAN])?;
        expect_exit(&o, 0, "apply after the rollback")?;
        let copied = db
            .scalar("SELECT count(*) FROM users WHERE full_name = name")
            .await?;
        if copied != ROWS + 1 {
            return Err(fail(format!(
                "{copied} of {} rows copied after applying again",
                ROWS + 1
            )));
        }
        Ok(())
    })
    .await;
}
