//! `phasegate rollback` of a drop_column's first phase after the new release
//! wrote rows without the column, through the real executor: without `down`
//! it stops and names the field (changing nothing); with `down` added to the
//! plan file it fills those rows in batches and restores NOT NULL.

mod common;
mod executor_support;
mod scenarios;

use common::{TestDb, TestResult, fail, with_mysql, with_postgres};
use executor_support::{ENV, Project};
use phasegate::dialect::Dialect;
use phasegate::execute::{RunError, Workspace};
use phasegate::tracker::SystemClock;

const PLAN: &str = "drop-legacy";

async fn rollback_fills_from_down(db: TestDb) -> TestResult {
    let db = &db;
    scenarios::people_with_legacy(db, "text NOT NULL").await?;
    let concat = |a: &str, b: &str| match db.dialect {
        Dialect::Mysql => format!("CONCAT({a}, {b})"),
        _ => format!("{a} || {b}"),
    };
    let bare =
        format!("name: {PLAN}\nchanges:\n  - drop_column: {{ table: people, column: legacy }}\n");
    // Batches of 40 over 130 rows written without the column: several batches.
    let project = Project::new(db, &["backfill_batch_size: 40"], PLAN, &bare)?;
    let clock = SystemClock;
    let ws = Workspace::new(&project.config, &clock, "rollback-down");
    ws.apply(ENV, PLAN, false).await?;
    if !db.is_nullable("people", "legacy").await? {
        return Err(fail("phase 1 did not relax NOT NULL"));
    }
    // The new release: rows without legacy.
    db.exec(&format!(
        "INSERT INTO people (id, name) SELECT 1000 + i, {} FROM {}",
        concat("'new'", "i"),
        db.series(130)
    ))
    .await?;
    match ws.rollback(ENV, PLAN, true).await {
        Err(RunError::Refused(m))
            if m.contains("130 row(s)")
                && m.contains("add `down:")
                && m.contains("accept-change") =>
        {
            println!("refused as expected: {m}");
        }
        other => {
            return Err(fail(format!(
                "rollback without `down` should be refused naming the field, got {other:?}"
            )));
        }
    }
    if !db.is_nullable("people", "legacy").await? {
        return Err(fail("the refused rollback changed the schema"));
    }
    // The way forward: say what those rows hold, and roll back again.
    let down = concat("'was '", "name");
    let with = format!(
        "name: {PLAN}\nchanges:\n  - drop_column: {{ table: people, column: legacy, down: \"{down}\" }}\n"
    );
    std::fs::write(project.dir.join("plans").join(format!("{PLAN}.yaml")), with)?;
    ws.accept_change(ENV, PLAN, "say what rows written without legacy hold")
        .await?;
    assert_eq!(ws.rollback(ENV, PLAN, true).await?, 1);
    if db.is_nullable("people", "legacy").await? {
        return Err(fail("rollback did not restore NOT NULL"));
    }
    let filled = db
        .scalar(&format!(
            "SELECT count(*) FROM people WHERE id > 1000 AND legacy = {}",
            concat("'was '", "name")
        ))
        .await?;
    let kept = db
        .scalar(&format!(
            "SELECT count(*) FROM people WHERE id <= 300 AND legacy = {}",
            concat("'legacy '", "(id % 3)")
        ))
        .await?;
    if (filled, kept) != (130, 300) {
        return Err(fail(format!(
            "{filled} of 130 new rows filled from `down`, {kept} of 300 old rows kept"
        )));
    }
    // The old release writes legacy again; the plan then goes forward to the end.
    db.exec("INSERT INTO people (id, name, legacy) VALUES (5000, 'old', 'old release')")
        .await?;
    ws.apply(ENV, PLAN, false).await?;
    ws.mark(ENV, PLAN, 1, "v2").await?;
    ws.apply(ENV, PLAN, false).await?;
    if db.has_column("people", "legacy").await? {
        return Err(fail("the column was not dropped"));
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_rollback_fills_rows_from_down() {
    with_postgres(rollback_fills_from_down).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_rollback_fills_rows_from_down() {
    with_mysql(rollback_fills_from_down).await
}
