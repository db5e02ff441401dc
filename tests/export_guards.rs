//! The refusals and the down of exported SQL (`export::build`), run unit by
//! unit without a runner (`export::direct`) on real databases:
//!
//! - a database without phasegate's log: the guard refuses, naming the
//!   environment to export from (Postgres, MariaDB);
//! - drift: a deploy exported from an edited plan file is refused where the
//!   plan started from the original text (Postgres, MariaDB);
//! - a down: deploy 1 of the required-column plan, run and then undone by
//!   its down units, leaves the schema as before, the log saying the phase
//!   rolled back (status, history: the chain verifies), and the deploy runs
//!   again (Postgres, MariaDB);
//! - a verification over bad data refuses, and a concurrent index build
//!   that left an INVALID index is never recorded applied (Postgres);
//! - SQLite: the exported unit refuses, saying to run `phasegate apply`.

mod common;
mod executor_support;
mod rollback_support;

use common::{TestDb, TestResult, fail, with_mysql, with_postgres, with_sqlite};
use executor_support::{ENV, Project};
use phasegate::execute::Workspace;
use phasegate::export::{self, Runner, direct};
use phasegate::tracker::SystemClock;
use rollback_support::{expect, run, text};

const REQUIRED: &str = include_str!("../plans/add-users-email-verified.yaml");
const PLAN: &str = "add-users-email-verified";

async fn users(db: &TestDb) -> TestResult {
    db.create_table("users", "id integer PRIMARY KEY, name varchar(100)")
        .await?;
    db.exec("INSERT INTO users (id, name) VALUES (1, 'Ada'), (2, NULL)")
        .await?;
    Ok(())
}

async fn deploy_units(
    project: &Project,
    plan: &str,
    phase: usize,
) -> TestResult<phasegate::export::Deploy> {
    let clock = SystemClock;
    let ws = Workspace::new(&project.config, &clock, "test");
    let built = export::build(&ws, None, plan, Runner::Dbmate, Some(phase)).await?;
    built
        .deploys
        .into_iter()
        .next()
        .ok_or_else(|| fail("no deploy built"))
}

fn says(e: &direct::DirectError, needles: &[&str]) -> TestResult {
    let text = e.to_string();
    for n in needles {
        if !text.contains(n) {
            return Err(fail(format!("the refusal does not say {n:?}: {text}")));
        }
    }
    Ok(())
}

/// Deploy 1 made for `db`, run on `bare` (no phasegate log).
async fn no_log(db: TestDb, bare: TestDb) -> TestResult {
    users(&db).await?;
    users(&bare).await?;
    let project = Project::new(&db, &[], PLAN, REQUIRED)?;
    let deploy = deploy_units(&project, PLAN, 1).await?;
    let before = bare.schema().await?;
    let mut conn = direct::connect(&bare.url, bare.dialect).await?;
    let e = direct::run_units(&mut conn, bare.dialect, &deploy.units)
        .await
        .err()
        .ok_or_else(|| fail("a deploy ran in a database without phasegate's log"))?;
    says(&e, &["has no phasegate log", "phasegate export --env test"])?;
    if bare.schema().await? != before {
        return Err(fail("the refused deploy changed the schema"));
    }
    Ok(())
}

/// Deploy 1 from the plan as written runs in `db`; deploy 2 exported from an
/// edited copy (against `twin`, where the plan has not started) is refused
/// in `db` as drift.
async fn drift(db: TestDb, twin: TestDb) -> TestResult {
    users(&db).await?;
    users(&twin).await?;
    let project = Project::new(&db, &[], PLAN, REQUIRED)?;
    let edited = format!("{REQUIRED}# edited after it started\n");
    let other = Project::new(&twin, &[], PLAN, &edited)?;
    let first = deploy_units(&project, PLAN, 1).await?;
    let mut conn = direct::connect(&db.url, db.dialect).await?;
    direct::run_units(&mut conn, db.dialect, &first.units).await?;
    expect(
        &project,
        &[
            "mark",
            "--env",
            ENV,
            PLAN,
            "--phase",
            "1",
            "--app-version",
            "v1",
        ],
        0,
    )?;
    let second = deploy_units(&other, PLAN, 2).await?;
    let e = direct::run_units(&mut conn, db.dialect, &second.units)
        .await
        .err()
        .ok_or_else(|| fail("a deploy of an edited plan ran"))?;
    says(&e, &["another text of the plan file (drift)"])?;
    // The deploy of the plan as it started runs (its backfill hands off).
    let second = deploy_units(&project, PLAN, 2).await?;
    match direct::run_units(&mut conn, db.dialect, &second.units).await {
        Err(direct::DirectError::Unit { unit, .. }) if unit == "backfill_handoff" => Ok(()),
        other => Err(fail(format!(
            "deploy 2 of the started plan: expected its hand-off, got {other:?}"
        ))),
    }
}

/// Deploy 1 up, down, up again.
async fn down(db: TestDb) -> TestResult {
    users(&db).await?;
    let project = Project::new(&db, &[], PLAN, REQUIRED)?;
    let deploy = deploy_units(&project, PLAN, 1).await?;
    let down = deploy
        .down
        .clone()
        .ok_or_else(|| fail("deploy 1 is reversible but has no down"))?;
    let before = db.schema().await?;
    let mut conn = direct::connect(&db.url, db.dialect).await?;
    // A down before its deploy ran is refused.
    let e = direct::run_units(&mut conn, db.dialect, &down)
        .await
        .err()
        .ok_or_else(|| fail("a down ran before its deploy"))?;
    says(&e, &["the down of deploy 1"])?;
    direct::run_units(&mut conn, db.dialect, &deploy.units).await?;
    if !db.has_column("users", "signup_source").await? {
        return Err(fail("deploy 1 did not add signup_source"));
    }
    direct::run_units(&mut conn, db.dialect, &down).await?;
    if db.schema().await? != before {
        return Err(fail("the down did not restore the schema"));
    }
    let out = run(&project, &["status", "--env", ENV, "--format", "json"])?;
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout)
        .map_err(|e| fail(format!("status JSON: {e}\n{}", text(&out))))?;
    let row = &doc["environments"][0]["plans"][0];
    if row["state"] != "pending" || row["phase"] != 1 {
        return Err(fail(format!("after the down, status shows {row}")));
    }
    let history = expect(&project, &["history", "--env", ENV, PLAN], 0)?;
    if !history.contains("phase_rolled_back") && !history.contains("rolled back") {
        return Err(fail(format!(
            "history does not show the rollback:\n{history}"
        )));
    }
    // And up again.
    direct::run_units(&mut conn, db.dialect, &deploy.units).await?;
    if !db.has_column("users", "signup_source").await? {
        return Err(fail("deploy 1 did not run again after its down"));
    }
    expect(&project, &["status", "--env", ENV], 0)?;
    Ok(())
}

#[tokio::test]
async fn no_log_is_refused_on_postgres() {
    with_postgres(|db| async move {
        with_postgres(|bare| async move { no_log(db, bare).await }).await;
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn no_log_is_refused_on_mariadb() {
    with_mysql(|db| async move {
        with_mysql(|bare| async move { no_log(db, bare).await }).await;
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn drift_is_refused_on_postgres() {
    with_postgres(|db| async move {
        with_postgres(|twin| async move { drift(db, twin).await }).await;
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn drift_is_refused_on_mariadb() {
    with_mysql(|db| async move {
        with_mysql(|twin| async move { drift(db, twin).await }).await;
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn a_deploy_goes_down_and_up_again_on_postgres() {
    with_postgres(down).await;
}

#[tokio::test]
async fn a_deploy_goes_down_and_up_again_on_mariadb() {
    with_mysql(down).await;
}

#[tokio::test]
async fn a_failed_verification_and_an_invalid_concurrent_index_are_refused_on_postgres() {
    with_postgres(|db| async move {
        db.create_table("orders", "id integer PRIMARY KEY, ref text")
            .await?;
        db.exec("INSERT INTO orders (id, ref) VALUES (1, 'a'), (2, 'a')")
            .await?;
        let plan = "changes:\n  - add_index: { table: orders, columns: [ref], unique: true, name: orders_ref_key }\n";
        let project = Project::new(&db, &[], "uniq", plan)?;
        let mut conn = direct::connect(&db.url, db.dialect).await?;
        let first = deploy_units(&project, "uniq", 1).await?;
        direct::run_units(&mut conn, db.dialect, &first.units).await?;
        expect(
            &project,
            &["mark", "--env", ENV, "uniq", "--phase", "1", "--app-version", "v1"],
            0,
        )?;
        let deploy = deploy_units(&project, "uniq", 2).await?;
        // Duplicates: the verification refuses.
        let e = direct::run_units(&mut conn, db.dialect, &deploy.units)
            .await
            .err()
            .ok_or_else(|| fail("the verification passed over duplicates"))?;
        says(&e, &["verification 1.verify_unique", "does not return 0"])?;
        // A unique build over the duplicates failed and left the index
        // INVALID; then the duplicate went.
        let _ = db
            .exec("CREATE UNIQUE INDEX CONCURRENTLY orders_ref_key ON orders (ref)")
            .await;
        db.exec("DELETE FROM orders WHERE id = 2").await?;
        if db.index_state("orders_ref_key").await? != Some(false) {
            return Err(fail("the test's index is not INVALID"));
        }
        let e = direct::run_units(&mut conn, db.dialect, &deploy.units)
            .await
            .err()
            .ok_or_else(|| fail("an INVALID index was recorded applied"))?;
        says(&e, &["missing or INVALID", "DROP INDEX CONCURRENTLY IF EXISTS"])?;
        let applied: i64 = db
            .scalar("SELECT count(*) FROM phasegate_events WHERE step = '1.create_index' AND kind = 'step_applied'")
            .await?;
        if applied != 0 {
            return Err(fail("the build was recorded applied"));
        }
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn sqlite_units_refuse_and_say_to_run_apply() {
    with_sqlite(|db| async move {
        users(&db).await?;
        let project = Project::new(&db, &[], PLAN, REQUIRED)?;
        let deploy = deploy_units(&project, PLAN, 1).await?;
        let before = db.schema().await?;
        let mut conn = direct::connect(&db.url, db.dialect).await?;
        let e = direct::run_units(&mut conn, db.dialect, &deploy.units)
            .await
            .err()
            .ok_or_else(|| fail("an exported SQLite unit ran"))?;
        says(
            &e,
            &[
                "CHECK constraint failed",
                "SQLite has no SHA-256",
                "phasegate apply --env test add-users-email-verified",
            ],
        )?;
        if db.schema().await? != before {
            return Err(fail("the refused unit changed the schema"));
        }
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn a_failed_verification_is_refused_then_passes_on_mariadb() {
    with_mysql(|db| async move {
        db.create_table("orders", "id integer PRIMARY KEY, ref varchar(20)")
            .await?;
        db.exec("INSERT INTO orders (id, ref) VALUES (1, 'a'), (2, 'a')")
            .await?;
        let plan = "changes:\n  - add_index: { table: orders, columns: [ref], unique: true, name: orders_ref_key }\n";
        let project = Project::new(&db, &[], "uniq", plan)?;
        let mut conn = direct::connect(&db.url, db.dialect).await?;
        let first = deploy_units(&project, "uniq", 1).await?;
        direct::run_units(&mut conn, db.dialect, &first.units).await?;
        expect(
            &project,
            &["mark", "--env", ENV, "uniq", "--phase", "1", "--app-version", "v1"],
            0,
        )?;
        let deploy = deploy_units(&project, "uniq", 2).await?;
        let e = direct::run_units(&mut conn, db.dialect, &deploy.units)
            .await
            .err()
            .ok_or_else(|| fail("the verification passed over duplicates"))?;
        says(&e, &["verification 1.verify_unique", "does not return 0"])?;
        db.exec("DELETE FROM orders WHERE id = 2").await?;
        direct::run_units(&mut conn, db.dialect, &deploy.units).await?;
        let out = expect(&project, &["status", "--env", ENV, "--format", "json"], 0)?;
        if !out.contains("\"deployed\": 2") {
            return Err(fail(format!("status after deploy 2:\n{out}")));
        }
        Ok(())
    })
    .await;
}

/// A step that runs outside a transaction records, in its `step_started`,
/// the server session that runs it — the runner's — as `apply` does, so
/// phasegate can tell later whether it still runs; the event verifies.
async fn session_recorded(db: TestDb) -> TestResult {
    db.create_table("orders", "id integer PRIMARY KEY, ref varchar(20)")
        .await?;
    let plan = "changes:\n  - add_index: { table: orders, columns: [ref] }\n";
    let project = Project::new(&db, &[], "ix", plan)?;
    let deploy = deploy_units(&project, "ix", 1).await?;
    let mut conn = direct::connect(&db.url, db.dialect).await?;
    direct::run_units(&mut conn, db.dialect, &deploy.units).await?;
    let sql = match db.dialect {
        phasegate::dialect::Dialect::Postgres => {
            "SELECT CAST(pid AS bigint), CAST(backend_start AS text) FROM pg_stat_activity WHERE pid = pg_backend_pid()"
        }
        _ => "SELECT CAST(CONNECTION_ID() AS SIGNED), CAST(NULL AS CHAR)",
    };
    let (id, start): (i64, Option<String>) = sqlx::query_as(sql).fetch_one(&mut conn).await?;
    let detail = db
        .text("SELECT detail FROM phasegate_events WHERE kind = 'step_started'")
        .await?
        .ok_or_else(|| fail("no step_started recorded"))?;
    let v: serde_json::Value = serde_json::from_str(&detail)?;
    if v["connection"] != id || v["backend_start"].as_str() != start.as_deref() {
        return Err(fail(format!(
            "step_started records {detail}, the session is {id} {start:?}"
        )));
    }
    expect(&project, &["history", "--env", ENV, "ix"], 0)?;
    Ok(())
}

#[tokio::test]
async fn a_step_outside_a_transaction_records_its_session_on_postgres() {
    with_postgres(session_recorded).await;
}

#[tokio::test]
async fn a_step_outside_a_transaction_records_its_session_on_mariadb() {
    with_mysql(session_recorded).await;
}

/// While a phasegate run holds the environment's lock, the guard refuses.
async fn waits_for_phasegate(db: TestDb) -> TestResult {
    users(&db).await?;
    let project = Project::new(&db, &[], PLAN, REQUIRED)?;
    let deploy = deploy_units(&project, PLAN, 1).await?;
    // phasegate's environment lock ("phasegat" in ASCII), as `Store::lock` takes it.
    let key: i64 = 0x7068_6173_6567_6174;
    let take = match db.dialect {
        phasegate::dialect::Dialect::Postgres => format!("SELECT pg_advisory_lock({key})"),
        _ => format!("SELECT GET_LOCK(CONCAT('phasegate:{key:x}:', SHA1(DATABASE())), 0)"),
    };
    let mut holder = direct::connect(&db.url, db.dialect).await?;
    sqlx::raw_sql(sqlx::AssertSqlSafe(take))
        .execute(&mut holder)
        .await?;
    let mut conn = direct::connect(&db.url, db.dialect).await?;
    let e = direct::run_units(&mut conn, db.dialect, &deploy.units)
        .await
        .err()
        .ok_or_else(|| fail("a deploy ran while phasegate held the environment"))?;
    says(&e, &["holds this database now"])?;
    drop(holder);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    direct::run_units(&mut conn, db.dialect, &deploy.units).await?;
    Ok(())
}

#[tokio::test]
async fn the_guard_waits_for_a_phasegate_run_on_postgres() {
    with_postgres(waits_for_phasegate).await;
}

#[tokio::test]
async fn the_guard_waits_for_a_phasegate_run_on_mariadb() {
    with_mysql(waits_for_phasegate).await;
}
