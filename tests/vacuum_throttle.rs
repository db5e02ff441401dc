//! `pause_for_vacuum`: a backfill waits while a VACUUM runs on its table,
//! and finishes once it ends (Postgres).
//!
//! Phase 1 of a rename is applied with `pause_for_vacuum: true` and a pause
//! between batches; after its first batch another session starts a slow
//! manual `VACUUM` of the table (`vacuum_cost_limit = 1`,
//! `vacuum_cost_delay = 100`: about ten pages a second, so it runs for
//! seconds). The backfill must report waiting for it (a manual VACUUM, its
//! pid, the table) and write no batch for two seconds while it still runs,
//! though an UPDATE of the table from a third session goes through at once
//! (VACUUM's SHARE UPDATE EXCLUSIVE lock does not conflict with ROW
//! EXCLUSIVE); after `pg_cancel_backend` ends it, the backfill finishes
//! with every row copied. A role that cannot see other roles' VACUUMs stops
//! the backfill naming the grant it needs.

mod common;
mod executor_support;
mod throttle_support;

use std::time::{Duration, Instant};

use common::{TestDb, TestResult, fail};
use phasegate::config::Config;
use phasegate::execute::{VacuumKind, Workspace};
use phasegate::tracker::SystemClock;
use sqlx::{Connection, PgConnection};
use throttle_support::{Waits, eventually};

const ROWS: i64 = 20_000;
const BATCH: i64 = 1_000;

const CHECKPOINTS: &str = "SELECT count(*) FROM phasegate_events WHERE kind = 'backfill_progress'";

const PLAN: &str = "changes:\n  - rename_column: { table: big, from: amount, to: total }\n";

async fn fill(db: &TestDb) -> TestResult {
    db.exec(&format!(
        "CREATE TABLE big (id bigint PRIMARY KEY, amount integer) WITH (autovacuum_enabled = false);
         INSERT INTO big SELECT i, i % 1000 FROM generate_series(1, {ROWS}) AS i;"
    ))
    .await?;
    Ok(())
}

async fn held_by_a_manual_vacuum(db: TestDb) -> TestResult {
    fill(&db).await?;
    let project = executor_support::Project::new(
        &db,
        &[
            "pause_for_vacuum: true",
            &format!("backfill_batch_size: {BATCH}"),
            "backfill_pause: 200ms",
        ],
        "rename",
        PLAN,
    )?;
    let waits = Waits::default();
    let clock = SystemClock;
    let ws = Workspace::new(&project.config, &clock, "throttle").with_progress(&waits);

    let mut vacuum = PgConnection::connect(&db.url).await?;
    let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut vacuum)
        .await?;
    sqlx::raw_sql("SET vacuum_cost_delay = 100; SET vacuum_cost_limit = 1")
        .execute(&mut vacuum)
        .await?;
    let watch = async {
        let d = &db;
        eventually("the backfill's first batch", 60, move || async move {
            Ok((d.scalar(CHECKPOINTS).await.unwrap_or(0) >= 1).then_some(()))
        })
        .await?;
        let vacuuming = tokio::spawn(async move {
            let done = sqlx::raw_sql("VACUUM big").execute(&mut vacuum).await;
            done.map(|_| ()).map_err(|e| e.to_string())
        });
        let w = &waits;
        eventually(
            "the backfill reporting the VACUUM",
            30,
            move || async move { Ok((!w.vacuum_waits().is_empty()).then_some(())) },
        )
        .await?;
        let held = db.scalar(CHECKPOINTS).await?;
        // An application write is not blocked by the VACUUM.
        let started = Instant::now();
        db.exec("SET lock_timeout = '1s'; UPDATE big SET amount = amount WHERE id = 1")
            .await?;
        let update = started.elapsed();
        tokio::time::sleep(Duration::from_secs(2)).await;
        let still = db.scalar(CHECKPOINTS).await?;
        let running = db
            .scalar(&format!(
                "SELECT count(*) FROM pg_stat_progress_vacuum WHERE pid = {pid}"
            ))
            .await?;
        db.scalar(&format!("SELECT pg_cancel_backend({pid})::int::int8"))
            .await?;
        let ended = tokio::time::timeout(Duration::from_secs(30), vacuuming)
            .await
            .map_err(|_| fail("the VACUUM did not end within 30 s of its cancel"))??;
        if running != 1 {
            return Err(fail(
                "the VACUUM had ended before the backfill's hold was checked: make it slower",
            ));
        }
        if still != held {
            return Err(fail(format!(
                "batches ran while the VACUUM ran: {held} then {still} checkpoint(s)"
            )));
        }
        if update > Duration::from_millis(900) {
            return Err(fail(format!(
                "an UPDATE waited {update:?} beside the VACUUM"
            )));
        }
        match ended {
            Err(e) if e.contains("canceling statement due to user request") => Ok(()),
            other => Err(fail(format!(
                "the VACUUM should have been cancelled: {other:?}"
            ))),
        }
    };
    let apply = async {
        tokio::time::timeout(
            Duration::from_secs(120),
            ws.apply(executor_support::ENV, "rename", false),
        )
        .await
        .map_err(|_| fail("apply did not finish within 120 s"))
    };
    let (watched, applied) = tokio::join!(watch, apply);
    watched?;
    applied??;
    let seen = waits.vacuum_waits();
    let ours = seen
        .iter()
        .filter(|w| w.pid == pid && w.kind == VacuumKind::Manual && w.table == "big")
        .count();
    if ours < 2 || ours != seen.len() {
        return Err(fail(format!(
            "expected waits for the manual VACUUM (pid {pid}) of big only: {seen:?}"
        )));
    }
    let copied = db
        .scalar("SELECT count(*) FROM big WHERE total IS NOT DISTINCT FROM amount")
        .await?;
    if copied != ROWS {
        return Err(fail(format!("{copied} of {ROWS} rows copied")));
    }
    let batches = db.scalar(CHECKPOINTS).await?;
    if batches != ROWS / BATCH {
        return Err(fail(format!(
            "{batches} checkpoints, expected one per {BATCH} rows"
        )));
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backfill_waits_while_a_vacuum_runs_on_its_table() {
    common::with_postgres(held_by_a_manual_vacuum).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_role_that_cannot_see_autovacuum_stops_the_backfill_naming_the_grant() {
    common::with_postgres(|db| async move {
        fill(&db).await?;
        let role = format!("{}_novac", db.name);
        let quoted = format!("\"{role}\"");
        db.exec(&format!(
            "CREATE ROLE {quoted} LOGIN; GRANT CREATE ON SCHEMA public TO {quoted}; ALTER TABLE big OWNER TO {quoted}"
        ))
        .await?;
        let outcome = async {
            let dir = throttle_support::scratch("vacuum-role", None)?;
            std::fs::create_dir_all(dir.join("plans"))?;
            std::fs::write(dir.join("plans/rename.yaml"), PLAN)?;
            let text = format!(
                "environments:\n  - name: prod\n    database_url: '{}'\n    pause_for_vacuum: true\n",
                db.url.replacen("postgres@", &format!("{role}@"), 1)
            );
            let config = Config::parse(&text, &dir.join("phasegate.yaml"), &dir, &|_| None)?;
            let clock = SystemClock;
            let ws = Workspace::new(&config, &clock, "throttle");
            let got = tokio::time::timeout(Duration::from_secs(60), ws.apply("prod", "rename", false)).await;
            let _ = std::fs::remove_dir_all(&dir);
            match got {
                Ok(Ok(_)) => Err(fail("apply finished, though it cannot see autovacuum")),
                Ok(Err(e)) if e.to_string().contains(&format!("GRANT pg_read_all_stats TO {role}")) => Ok(()),
                Ok(Err(e)) => Err(fail(format!("unexpected error: {e}"))),
                Err(_) => Err(fail("apply did not stop within 60 s")),
            }
        }
        .await;
        let copied = db.scalar("SELECT count(*) FROM big WHERE total IS NOT NULL").await;
        db.exec(&format!(
            "REASSIGN OWNED BY {quoted} TO CURRENT_USER; DROP OWNED BY {quoted}; DROP ROLE {quoted}"
        ))
        .await?;
        outcome?;
        if copied? != 0 {
            return Err(fail("a batch ran before the role's view was checked"));
        }
        Ok(())
    })
    .await;
}
