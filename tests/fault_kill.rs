//! Fault injection: the real `phasegate` binary `kill -9`ed at step
//! boundaries and mid-statement, during `apply` and `rollback`, on Postgres
//! and MariaDB (how: `executor_support/kill.rs`).
//!
//! The plan renames `users.name` to `full_name` (column, sync trigger(s),
//! batched backfill, verification; on Postgres also NOT NULL through a
//! check), builds an index on `email` and adds a column `note`: deploy 1
//! holds every kind of step. After each kill:
//!
//! - while the killed run's statement still waits on the server, and the
//!   log recorded the step as started on that session, `apply` and
//!   `resolve` refuse, naming the connection, and `status` shows it
//!   (detected, not guessed); the
//!   points marked `running` must have that record (steps outside a
//!   transaction, killed after their `step_started`);
//! - once it ends, `status` names every step that started and never
//!   finished;
//! - the documented commands finish the job: `apply` (or `rollback`) again,
//!   with `resolve --as applied` where the catalog shows the step's change
//!   (refused otherwise, naming what is missing) and `--as not-applied`
//!   where it does not, after which the step runs again from its start;
//! - the schema and the log agree: after `apply`, phase 1 is migrated and
//!   every object of it is there (both MySQL triggers, and they mirror
//!   writes); after `rollback`, it is rolled back and none is, and `apply`
//!   then runs it again to the end.
//!
//! Kill points (one test each), the server session left to carry on or
//! (`abort`) ended too: MariaDB 25 in `kill_tests!` (apply: 11 events and
//! 4 statements, and 4 of them again aborted; rollback: 4 statements and 1
//! event, and 1 statement aborted) plus 2 below (the refused `resolve --as
//! applied`; a `sql` step of plain ALTERs) = 27; Postgres 22 (apply: 10
//! events and 4 statements, and 3 of them aborted; rollback: 3 statements
//! and 1 event, and 1 aborted) plus 1 below = 23.

mod common;
mod executor_support;
#[path = "executor_support/kill.rs"]
mod kill;

use common::{TestDb, TestResult, fail, with_mysql, with_postgres};
use executor_support::{ENV, Project, events, series};
use kill::{Point, create_log, finish, install_stall, kill_at, never_finished, run, text};
use phasegate::dialect::Dialect;

const PLAN: &str = "kill";
const PLAN_TEXT: &str = "name: kill
changes:
  - rename_column: { table: users, from: name, to: full_name }
  - add_index: { table: users, columns: [email] }
  - add_column: { table: users, column: note, type: text }
";
const ROWS: u32 = 300;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Run {
    Apply,
    Rollback,
}

async fn setup(db: &TestDb) -> TestResult<Project> {
    let (id, text_ty) = match db.dialect {
        Dialect::Postgres => ("bigint", "varchar(100)"),
        _ => ("bigint", "varchar(100)"),
    };
    db.exec(&format!(
        "CREATE TABLE users (id {id} PRIMARY KEY, name {text_ty} NOT NULL, email {text_ty} NULL)"
    ))
    .await?;
    let name = match db.dialect {
        Dialect::Postgres => "'user ' || i",
        _ => "CONCAT('user ', i)",
    };
    db.exec(&format!(
        "INSERT INTO users (id, name) SELECT i, {name} FROM {}",
        series(db, ROWS)
    ))
    .await?;
    // Small backfill batches, so that a backfill has several; long lock
    // waits and no retries, so a waiting statement is still waiting when killed.
    let project = Project::new(
        db,
        &[
            "lock_timeout: 60s",
            "lock_retries: 0",
            // Longer than any refusal may take: a leftover is refused at
            // once, not after waiting out the lock it holds.
            "lock_wait: 120s",
            "backfill_batch_size: 100",
        ],
        PLAN,
        PLAN_TEXT,
    )?;
    // The log's tables, then the stall trigger on them.
    create_log(db, ENV).await?;
    install_stall(db).await?;
    Ok(project)
}

fn session_of(detail: &str) -> Option<i64> {
    serde_json::from_str::<serde_json::Value>(detail)
        .ok()?
        .get("connection")?
        .as_i64()
}

/// Steps that started and have not been settled since, per the log.
async fn unsettled(db: &TestDb) -> Vec<(String, Option<i64>)> {
    let mut open: Vec<(String, Option<i64>)> = Vec::new();
    for (_, kind, step, detail) in events(db).await {
        let Some(step) = step else { continue };
        match kind.as_str() {
            "step_started" => {
                open.retain(|(s, _)| *s != step);
                open.push((step, session_of(&detail)));
            }
            "step_applied" | "step_failed" | "step_resolved" => open.retain(|(s, _)| *s != step),
            _ => {}
        }
    }
    open
}

async fn count(db: &TestDb, sql: &str) -> TestResult<i64> {
    db.scalar(sql).await
}

/// The objects of phase 1, as (what, count) pairs.
async fn phase1_objects(db: &TestDb) -> TestResult<Vec<(&'static str, i64)>> {
    let (triggers, index) = match db.dialect {
        Dialect::Postgres => (
            "SELECT count(*) FROM pg_trigger WHERE tgrelid = 'users'::regclass AND NOT tgisinternal",
            "SELECT count(*) FROM pg_index WHERE indexrelid = to_regclass('users_email_idx') AND indisvalid",
        ),
        _ => (
            "SELECT count(*) FROM information_schema.TRIGGERS WHERE EVENT_OBJECT_SCHEMA = DATABASE() AND EVENT_OBJECT_TABLE = 'users'",
            "SELECT count(DISTINCT INDEX_NAME) FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'users' AND INDEX_NAME = 'users_email_idx'",
        ),
    };
    Ok(vec![
        (
            "column full_name",
            i64::from(db.has_column("users", "full_name").await?),
        ),
        (
            "column note",
            i64::from(db.has_column("users", "note").await?),
        ),
        ("sync triggers", count(db, triggers).await?),
        ("index users_email_idx", count(db, index).await?),
    ])
}

/// After `apply`: phase 1 migrated in the log, every object there, the
/// rows copied and writes mirrored both ways.
async fn assert_applied(db: &TestDb, transcript: &str) -> TestResult {
    let triggers = if db.dialect == Dialect::Postgres {
        1
    } else {
        2
    };
    let want = [
        ("column full_name", 1),
        ("column note", 1),
        ("sync triggers", triggers),
        ("index users_email_idx", 1),
    ];
    let got = phase1_objects(db).await?;
    if got != want {
        return Err(fail(format!(
            "after apply the schema has {got:?}, expected {want:?}\n{transcript}"
        )));
    }
    let log = events(db).await;
    let last_migrated = log.iter().rposition(|e| e.1 == "phase_migrated");
    let last_rolled = log.iter().rposition(|e| e.1 == "phase_rolled_back");
    if last_migrated.is_none() || last_rolled > last_migrated {
        return Err(fail(format!(
            "the log does not end phase 1 migrated: {log:?}\n{transcript}"
        )));
    }
    let differ = count(
        db,
        "SELECT count(*) FROM users WHERE full_name IS NULL OR full_name <> name",
    )
    .await?;
    if differ != 0 {
        return Err(fail(format!(
            "{differ} rows where full_name differs from name\n{transcript}"
        )));
    }
    // The symptom: updates of the old column not mirrored.
    db.exec("UPDATE users SET name = 'renamed' WHERE id = 1")
        .await?;
    db.exec("INSERT INTO users (id, name) VALUES (1000001, 'inserted')")
        .await?;
    let mirrored = count(db, "SELECT count(*) FROM users WHERE (id = 1 AND full_name = 'renamed') OR (id = 1000001 AND full_name = 'inserted')").await?;
    if mirrored != 2 {
        return Err(fail(format!(
            "writes to name are not mirrored to full_name ({mirrored} of 2)\n{transcript}"
        )));
    }
    db.exec("DELETE FROM users WHERE id = 1000001").await?;
    Ok(())
}

async fn assert_rolled_back(db: &TestDb, transcript: &str) -> TestResult {
    let want = [
        ("column full_name", 0),
        ("column note", 0),
        ("sync triggers", 0),
        ("index users_email_idx", 0),
    ];
    let got = phase1_objects(db).await?;
    if got != want {
        return Err(fail(format!(
            "after rollback the schema has {got:?}, expected none\n{transcript}"
        )));
    }
    let log = events(db).await;
    if log.last().map(|e| e.1.as_str()) != Some("phase_rolled_back") {
        return Err(fail(format!(
            "the log does not end with the rollback: {log:?}\n{transcript}"
        )));
    }
    Ok(())
}

/// One kill point: run `what` until `point`, kill it, check the refusals
/// while its statement still waits, let it go, check `status`, finish
/// with the documented commands and compare schema and log.
async fn kill_case(db: TestDb, what: Run, point: Point, flags: &[&str]) -> TestResult {
    let running = flags.contains(&"running");
    let project = setup(&db).await?;
    if what == Run::Rollback {
        let out = run(&project, &["apply", "--env", ENV, PLAN])?;
        if !out.status.success() {
            return Err(fail(format!("the first apply failed:\n{}", text(&out))));
        }
    }
    let command = match what {
        Run::Apply => "apply",
        Run::Rollback => "rollback",
    };
    let killed = kill_at(&db, &project, &[command, "--env", ENV, PLAN], point).await?;
    let session = killed.session;

    // Detected, not guessed: the step recorded as started on the session
    // that still runs is named with that session.
    let recorded = unsettled(&db)
        .await
        .into_iter()
        .find(|(_, s)| *s == Some(session));
    if running && recorded.is_none() {
        return Err(fail(format!(
            "the log records no step started on session {session}, which was running `{}`: {:?}",
            killed.statement,
            events(&db).await
        )));
    }
    if let Some((step, _)) = recorded {
        let needle = format!("still running on the server as connection {session}");
        for args in [
            vec!["apply", "--env", ENV, PLAN],
            vec![
                "resolve",
                "--env",
                ENV,
                PLAN,
                "--step",
                step.as_str(),
                "--as",
                "not-applied",
            ],
        ] {
            let began = std::time::Instant::now();
            let out = run(&project, &args)?;
            if began.elapsed() >= std::time::Duration::from_secs(60) {
                return Err(fail(format!(
                    "`{}` while {step} still runs as {session} took {:?}: it waited for the lock the leftover holds instead of refusing at once:\n{}",
                    args.join(" "),
                    began.elapsed(),
                    text(&out)
                )));
            }
            if out.status.code() != Some(1) || !text(&out).contains(&needle) {
                return Err(fail(format!(
                    "`{}` while {step} still runs as {session} ({}): exit {:?}, expected 1 naming it:\n{}",
                    args.join(" "),
                    killed.statement,
                    out.status.code(),
                    text(&out)
                )));
            }
        }
        // status says so too (and exits 0: it only reads).
        let status = run(&project, &["status"])?;
        if !status.status.success() || !text(&status).contains(&needle) {
            return Err(fail(format!(
                "status while {step} still runs as {session} does not say so:\n{}",
                text(&status)
            )));
        }
    }
    if flags.contains(&"abort") {
        killed.abort(&db).await?;
    } else {
        killed.release(&db).await?;
    }

    // status names every step that started and never finished.
    let status = run(&project, &["status"])?;
    for (step, _) in unsettled(&db).await {
        if !never_finished(&text(&status)).contains(&step) {
            return Err(fail(format!(
                "status does not say {step} never finished:\n{}",
                text(&status)
            )));
        }
    }

    let transcript = finish(&project, PLAN, command)?;
    match what {
        Run::Apply => assert_applied(&db, &transcript).await,
        Run::Rollback => {
            assert_rolled_back(&db, &transcript).await?;
            let again = finish(&project, PLAN, "apply")?;
            assert_applied(&db, &again).await
        }
    }
}

macro_rules! kill_tests {
    ($with:ident: $($(#[$attr:meta])* $name:ident: $what:ident at $point:expr $(, $flag:ident)*;)*) => {$(
        #[tokio::test]
        $(#[$attr])*
        async fn $name() {
            let flags: &[&str] = &[$(stringify!($flag)),*];
            $with(|db| async move { kill_case(db, Run::$what, $point, flags).await }).await;
        }
    )*};
}

use Point::{Event, Statement};

// MariaDB: 25 kill points.
kill_tests! { with_mysql:
    mysql_apply_before_add_column_started: Apply at Event("step_started", Some("1.add_column"));
    mysql_apply_mid_add_column: Apply at Statement("ADD COLUMN /*M! IF NOT EXISTS */ `full_name`"), running;
    mysql_apply_before_add_column_recorded: Apply at Event("step_applied", Some("1.add_column")), running;
    mysql_apply_before_sync_trigger_started: Apply at Event("step_started", Some("1.sync_trigger"));
    mysql_apply_between_the_two_create_triggers: Apply at Statement("CREATE TRIGGER `users_name_full_name_sync_upd`"), running;
    mysql_apply_before_sync_trigger_recorded: Apply at Event("step_applied", Some("1.sync_trigger")), running;
    mysql_apply_mid_backfill_batch: Apply at Event("backfill_progress", Some("1.backfill"));
    mysql_apply_before_backfill_recorded: Apply at Event("step_applied", Some("1.backfill"));
    mysql_apply_before_verify_recorded: Apply at Event("step_applied", Some("1.verify"));
    mysql_apply_before_create_index_started: Apply at Event("step_started", Some("2.create_index"));
    mysql_apply_mid_create_index: Apply at Statement("ADD INDEX /*M! IF NOT EXISTS */ `users_email_idx`"), running;
    mysql_apply_before_create_index_recorded: Apply at Event("step_applied", Some("2.create_index")), running;
    mysql_apply_mid_second_add_column: Apply at Statement("ADD COLUMN /*M! IF NOT EXISTS */ `note`"), running;
    mysql_apply_before_second_add_column_started: Apply at Event("step_started", Some("3.add_column"));
    mysql_apply_before_phase_recorded: Apply at Event("phase_migrated", None);
    mysql_rollback_mid_drop_note: Rollback at Statement("DROP COLUMN /*M! IF EXISTS */ `note`");
    mysql_rollback_mid_drop_index: Rollback at Statement("DROP INDEX /*M! IF EXISTS */ `users_email_idx`");
    mysql_rollback_between_the_two_drop_triggers: Rollback at Statement("DROP TRIGGER IF EXISTS `users_name_full_name_sync_upd`");
    mysql_rollback_mid_drop_full_name: Rollback at Statement("DROP COLUMN /*M! IF EXISTS */ `full_name`");
    mysql_rollback_before_phase_recorded: Rollback at Event("phase_rolled_back", None);
    // The same points with the server session ended too (a lost
    // connection, or an operator's KILL): the statement never runs.
    // The case: the update trigger is never created.
    mysql_apply_between_the_two_create_triggers_aborted: Apply at Statement("CREATE TRIGGER `users_name_full_name_sync_upd`"), running, abort;
    mysql_apply_mid_add_column_aborted: Apply at Statement("ADD COLUMN /*M! IF NOT EXISTS */ `full_name`"), running, abort;
    mysql_apply_mid_create_index_aborted: Apply at Statement("ADD INDEX /*M! IF NOT EXISTS */ `users_email_idx`"), running, abort;
    mysql_apply_before_sync_trigger_recorded_aborted: Apply at Event("step_applied", Some("1.sync_trigger")), running, abort;
    mysql_rollback_between_the_two_drop_triggers_aborted: Rollback at Statement("DROP TRIGGER IF EXISTS `users_name_full_name_sync_upd`"), abort;
}

// Postgres: 22 kill points (one ignored until per-step rollback).
kill_tests! { with_postgres:
    pg_apply_mid_add_column: Apply at Statement("ADD COLUMN \"full_name\"");
    pg_apply_before_add_column_recorded: Apply at Event("step_applied", Some("1.add_column"));
    pg_apply_before_sync_trigger_recorded: Apply at Event("step_applied", Some("1.sync_trigger"));
    pg_apply_mid_backfill_batch: Apply at Event("backfill_progress", Some("1.backfill"));
    pg_apply_before_verify_recorded: Apply at Event("step_applied", Some("1.verify_no_nulls"));
    pg_apply_mid_add_check: Apply at Statement("ADD CONSTRAINT \"users_full_name_not_null\"");
    pg_apply_before_validate_recorded: Apply at Event("step_applied", Some("1.validate_check"));
    pg_apply_before_set_not_null_recorded: Apply at Event("step_applied", Some("1.set_not_null"));
    pg_apply_before_create_index_started: Apply at Event("step_started", Some("2.create_index"));
    pg_apply_mid_create_index_concurrently: Apply at Statement("CREATE INDEX CONCURRENTLY"), running;
    pg_apply_before_create_index_recorded: Apply at Event("step_applied", Some("2.create_index")), running;
    pg_apply_mid_second_add_column: Apply at Statement("ADD COLUMN \"note\"");
    pg_apply_before_second_add_column_recorded: Apply at Event("step_applied", Some("3.add_column"));
    pg_apply_before_phase_recorded: Apply at Event("phase_migrated", None);
    pg_rollback_mid_drop_note: Rollback at Statement("DROP COLUMN IF EXISTS \"note\"");
    pg_rollback_mid_drop_index: Rollback at Statement("DROP INDEX CONCURRENTLY IF EXISTS \"users_email_idx\"");
    // The killed run's DROP COLUMN commits on the server: the next rollback
    // goes on from the step after it (rollback is recorded per step).
    pg_rollback_mid_drop_full_name: Rollback at Statement("DROP COLUMN IF EXISTS \"full_name\"");
    pg_rollback_before_phase_recorded: Rollback at Event("phase_rolled_back", None);
    // With the server session ended too: an INVALID index left behind.
    pg_apply_mid_create_index_concurrently_aborted: Apply at Statement("CREATE INDEX CONCURRENTLY"), running, abort;
    pg_apply_mid_add_column_aborted: Apply at Statement("ADD COLUMN \"full_name\""), abort;
    pg_apply_before_create_index_recorded_aborted: Apply at Event("step_applied", Some("2.create_index")), running, abort;
    pg_rollback_mid_drop_index_aborted: Rollback at Statement("DROP INDEX CONCURRENTLY IF EXISTS \"users_email_idx\""), abort;
}

/// `resolve --as applied` of a step whose objects are not all there is
/// refused, naming what is missing, and records nothing; `--as
/// not-applied` then lets `apply` run the step again from its start.
async fn applied_refused_then_rerun(
    db: TestDb,
    point: Point,
    step: &str,
    missing: &str,
) -> TestResult {
    let project = setup(&db).await?;
    let killed = kill_at(&db, &project, &["apply", "--env", ENV, PLAN], point).await?;
    killed.abort(&db).await?;
    let before = events(&db).await.len();
    let out = run(
        &project,
        &[
            "resolve", "--env", ENV, PLAN, "--step", step, "--as", "applied",
        ],
    )?;
    let said = text(&out);
    if out.status.code() != Some(1)
        || !said.contains(&format!(
            "step {step} cannot be recorded as applied in {ENV}"
        ))
        || !said.contains(missing)
        || !said.contains("--as not-applied")
    {
        return Err(fail(format!(
            "resolve --as applied of {step}: exit {:?}, expected 1 naming {missing:?}:\n{said}",
            out.status.code()
        )));
    }
    if events(&db).await.len() != before {
        return Err(fail("the refused resolve recorded an event"));
    }
    let out = run(
        &project,
        &[
            "resolve",
            "--env",
            ENV,
            PLAN,
            "--step",
            step,
            "--as",
            "not-applied",
        ],
    )?;
    if !out.status.success() {
        return Err(fail(format!("resolve --as not-applied:\n{}", text(&out))));
    }
    let out = run(&project, &["apply", "--env", ENV, PLAN])?;
    if !out.status.success() {
        return Err(fail(format!("apply after resolving:\n{}", text(&out))));
    }
    assert_applied(&db, &text(&out)).await
}

#[tokio::test]
async fn mysql_resolve_as_applied_is_refused_while_the_update_trigger_is_missing() {
    with_mysql(|db| async move {
        let point = Statement("CREATE TRIGGER `users_name_full_name_sync_upd`");
        applied_refused_then_rerun(
            db,
            point,
            "1.sync_trigger",
            "trigger users_name_full_name_sync_upd is missing",
        )
        .await
    })
    .await;
}

#[tokio::test]
async fn pg_resolve_as_applied_is_refused_while_the_index_is_invalid() {
    with_postgres(|db| async move {
        let point = Statement("CREATE INDEX CONCURRENTLY");
        applied_refused_then_rerun(
            db,
            point,
            "2.create_index",
            "index users_email_idx on users is missing",
        )
        .await
    })
    .await;
}

/// A step whose statements have no `IF NOT EXISTS` (as on MySQL 8, or in a
/// `sql` change), killed between two of them: re-run after `--as
/// not-applied`, the statement whose change the catalog shows is skipped
/// (the ALTER committed whole), the rest runs.
#[tokio::test]
async fn mysql_a_step_without_if_not_exists_reruns_after_a_kill_between_its_statements() {
    with_mysql(|db| async move {
        db.exec("CREATE TABLE users (id bigint PRIMARY KEY, name varchar(100) NOT NULL)").await?;
        db.exec("INSERT INTO users (id, name) VALUES (1, 'one')").await?;
        let plan = "name: kill
changes:
  - sql:
      phases:
        - up: \"ALTER TABLE users ADD COLUMN a int NULL; ALTER TABLE users ADD COLUMN b int NULL; CREATE INDEX users_a_b ON users (a, b)\"
          down: \"ALTER TABLE users DROP COLUMN a, DROP COLUMN b\"
          transactional: false
";
        let project = Project::new(&db, &["lock_timeout: 60s", "lock_retries: 0"], PLAN, plan)?;
        create_log(&db, ENV).await?;
        install_stall(&db).await?;
        let killed = kill_at(&db, &project, &["apply", "--env", ENV, PLAN], Statement("ADD COLUMN b")).await?;
        killed.abort(&db).await?;
        if !db.has_column("users", "a").await? || db.has_column("users", "b").await? {
            return Err(fail("the kill did not land between the two ALTERs"));
        }
        let transcript = finish(&project, PLAN, "apply")?;
        if !transcript.contains("column b on users is missing") {
            return Err(fail(format!("resolve --as applied was not refused naming b:\n{transcript}")));
        }
        let index = db
            .scalar("SELECT count(DISTINCT INDEX_NAME) FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'users' AND INDEX_NAME = 'users_a_b'")
            .await?;
        if !db.has_column("users", "b").await? || index != 1 {
            return Err(fail(format!("the re-run did not finish the step:\n{transcript}")));
        }
        Ok(())
    })
    .await;
}
