//! A batched backfill needs a key to walk, and the plan decides which at
//! plan time from the live schema: a table without a usable key is refused
//! by `phasegate plan --env` and `phasegate apply` (exit 2, naming the table)
//! before any of the plan's DDL runs, on every dialect and for every recipe
//! that backfills; where the database has a safe fallback (SQLite's rowid,
//! MySQL's NOT NULL unique key) the backfill walks it and copies every row.

mod common;
mod executor_support;

use std::process::Output;

use common::{TestDb, TestResult, fail, with_mysql, with_postgres, with_sqlite};
use executor_support::{ENV, Project};
use phasegate::dialect::Dialect;

const PLAN: &str = "ledger-change";
const ROWS: u32 = 250;

/// Every recipe kind that plans a batched backfill, on table `ledger`
/// (columns `a`, `b` nullable integers).
const BACKFILLING: &[&str] = &[
    "  - rename_column: { table: ledger, from: a, to: amount }\n",
    "  - change_column_type: { table: ledger, column: a, type: bigint, new_column: a_wide }\n",
    "  - add_column: { table: ledger, column: c, type: integer, nullable: false, backfill: \"0\" }\n",
    "  - set_not_null: { table: ledger, column: b, backfill: \"0\" }\n",
];

fn phasegate(project: &Project, args: &[&str]) -> TestResult<Output> {
    project.run(args)
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The schema without phasegate's own tracker tables.
async fn user_schema(db: &TestDb) -> TestResult<Vec<String>> {
    Ok(db
        .schema()
        .await?
        .into_iter()
        .filter(|l| !l.contains("phasegate_"))
        .collect())
}

/// `ledger` with `columns` and `ROWS` rows (`a` = i, `b` NULL every third row).
async fn ledger(db: &TestDb, columns: &str, insert_columns: &str, values: &str) -> TestResult {
    db.create_table("ledger", columns).await?;
    db.exec(&format!(
        "INSERT INTO ledger ({insert_columns}) SELECT {values} FROM {}",
        executor_support::series(db, ROWS)
    ))
    .await?;
    Ok(())
}

/// Each backfilling change is refused by `plan --env` and `apply` with exit
/// 2 and `needle`, and the schema and rows are as they were.
async fn refused_before_any_ddl(db: &TestDb, needle: &str) -> TestResult {
    let before = user_schema(db).await?;
    let rows_before = db.scalar("SELECT count(*) FROM ledger").await?;
    for change in BACKFILLING {
        let plan = format!("name: {PLAN}\nchanges:\n{change}");
        let project = Project::new(db, &[], PLAN, &plan)?;
        for command in ["plan", "apply"] {
            let o = phasegate(&project, &[command, "--env", ENV, PLAN])?;
            if o.status.code() != Some(2) || !text(&o).contains(needle) {
                return Err(fail(format!(
                    "{command} of {change}: exit {:?}, expected 2 saying {needle:?}:\n{}",
                    o.status.code(),
                    text(&o)
                )));
            }
        }
        let after = user_schema(db).await?;
        if after != before {
            return Err(fail(format!(
                "{change} changed the schema before refusing:\nbefore {before:#?}\nafter {after:#?}"
            )));
        }
    }
    let rows_after = db.scalar("SELECT count(*) FROM ledger").await?;
    if rows_after != rows_before {
        return Err(fail(format!("{rows_before} rows became {rows_after}")));
    }
    Ok(())
}

/// The keys of the backfill steps of `plan --env --format json`.
fn backfill_keys(project: &Project, name: &str) -> TestResult<Vec<serde_json::Value>> {
    let o = phasegate(project, &["plan", "--env", ENV, name, "--format", "json"])?;
    if !o.status.success() {
        return Err(fail(format!("plan --env of {name}: {}", text(&o))));
    }
    let v: serde_json::Value = serde_json::from_slice(&o.stdout)?;
    Ok(v["phases"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|p| p["steps"].as_array().into_iter().flatten())
        .filter(|s| s["kind"] == "backfill")
        .map(|s| s["backfill_key"].clone())
        .collect())
}

/// `apply` of the first phase of `change` walks `key`, the key the plan
/// chose, and leaves no row behind (`copied` counts the rows done).
async fn backfills_every_row(
    db: &TestDb,
    change: &str,
    copied: &str,
    key: serde_json::Value,
) -> TestResult {
    let plan = format!("name: {PLAN}\nchanges:\n{change}");
    let project = Project::new(db, &["backfill_batch_size: 40"], PLAN, &plan)?;
    let keys = backfill_keys(&project, PLAN)?;
    if keys != [key.clone()] {
        return Err(fail(format!(
            "the backfill of {change} should walk {key}, not {keys:?}"
        )));
    }
    let o = phasegate(&project, &["apply", "--env", ENV, PLAN])?;
    if !o.status.success() {
        return Err(fail(format!("apply of {change}: {}", text(&o))));
    }
    let done = db.scalar(copied).await?;
    if done != i64::from(ROWS) {
        return Err(fail(format!("{change}: {done} of {ROWS} rows backfilled")));
    }
    Ok(())
}

const RENAMED: &str = "SELECT count(*) FROM ledger WHERE amount = a";
const RETYPED: &str = "SELECT count(*) FROM ledger WHERE a_wide = a";

#[tokio::test]
async fn postgres_refuses_a_table_without_a_primary_key() {
    with_postgres(|db| async move {
        // A unique key does not stand in for the primary key on Postgres.
        ledger(
            &db,
            "a integer UNIQUE, b integer",
            "a, b",
            "i, CASE WHEN i % 3 = 0 THEN NULL ELSE i END",
        )
        .await?;
        refused_before_any_ddl(&db, "table ledger has no primary key").await
    })
    .await
}

#[tokio::test]
async fn mysql_refuses_a_table_without_a_primary_or_not_null_unique_key() {
    with_mysql(|db| async move {
        ledger(
            &db,
            "a int UNIQUE, b int",
            "a, b",
            "i, CASE WHEN i % 3 = 0 THEN NULL ELSE i END",
        )
        .await?;
        refused_before_any_ddl(
            &db,
            "table ledger has no primary key and no unique key whose columns are all NOT NULL",
        )
        .await
    })
    .await
}

const MYSQL_UNIQUE: &str = "code int NOT NULL, a int, b int, UNIQUE KEY ledger_code (code)";

#[tokio::test]
async fn mysql_rename_walks_a_not_null_unique_key() {
    with_mysql(|db| async move {
        ledger(&db, MYSQL_UNIQUE, "code, a, b", "1000 - i, i, i").await?;
        backfills_every_row(&db, BACKFILLING[0], RENAMED, serde_json::json!(["code"])).await
    })
    .await
}

#[tokio::test]
async fn mysql_type_change_walks_a_not_null_unique_key() {
    with_mysql(|db| async move {
        ledger(&db, MYSQL_UNIQUE, "code, a, b", "1000 - i, i, i").await?;
        backfills_every_row(&db, BACKFILLING[1], RETYPED, serde_json::json!(["code"])).await
    })
    .await
}

#[tokio::test]
async fn sqlite_rename_walks_the_rowid_of_a_table_without_a_primary_key() {
    with_sqlite(|db| async move {
        ledger(&db, "a integer, b integer", "a, b", "i, i").await?;
        backfills_every_row(&db, BACKFILLING[0], RENAMED, serde_json::json!(["rowid"])).await
    })
    .await
}

#[tokio::test]
async fn sqlite_type_change_walks_the_rowid_of_a_table_without_a_primary_key() {
    with_sqlite(|db| async move {
        ledger(&db, "a integer, b integer", "a, b", "i, i").await?;
        backfills_every_row(&db, BACKFILLING[1], RETYPED, serde_json::json!(["rowid"])).await
    })
    .await
}

#[tokio::test]
async fn sqlite_refuses_a_table_whose_columns_hide_its_rowid() {
    with_sqlite(|db| async move {
        ledger(
            &db,
            "rowid text, _rowid_ text, oid text, a integer, b integer",
            "rowid, _rowid_, oid, a, b",
            "'r' || i, 'x', 'y', i, CASE WHEN i % 3 = 0 THEN NULL ELSE i END",
        )
        .await?;
        refused_before_any_ddl(&db, "table ledger has no primary key, and its columns named rowid, _rowid_ and oid hide the rowid").await
    })
    .await
}

#[tokio::test]
async fn an_offline_plan_notes_that_the_table_needs_a_key() -> TestResult {
    for dialect in [Dialect::Postgres, Dialect::Mysql, Dialect::Sqlite] {
        for change in BACKFILLING {
            if dialect == Dialect::Mysql && !change.contains("add_column") {
                continue; // MySQL plans these only against the live schema.
            }
            let plan = common::plan_offline(dialect, change)?;
            if !plan.notes.iter().any(|n| {
                n.text
                    .contains("the backfill of ledger walks its primary key")
                    && n.text.contains("plan against the database")
            }) {
                return Err(fail(format!(
                    "{dialect} {change}: no key note in {:?}",
                    plan.notes
                )));
            }
        }
    }
    Ok(())
}
