//! The sync trigger mirrors a write that changes a value only as the
//! column's collation or type does not see: letter case and trailing spaces
//! under MySQL/MariaDB's default case-insensitive, PAD SPACE collations
//! (`utf8mb4_general_ci`), SQLite's `NOCASE` and `RTRIM`, Postgres `citext`.
//! Compared with `=`, such a write looked like no write: the new release's
//! `'bob'` → `'Bob'` was reverted by the trigger and never reached the old
//! column, and the verification passed over it.
//!
//! For each dialect: a rename of such a column, phase 1 applied (add,
//! trigger, backfill, verify); then the old release writes the old column
//! and the new release the new one, changing only case (and, where the
//! collation ignores them, trailing spaces); both columns must hold every
//! write exactly, and the verification must see a row made unequal by hand.

mod common;
mod executor_support;

use common::{TestDb, TestResult, fail, with_mysql, with_postgres, with_sqlite};
use executor_support::{ENV, Project};
use phasegate::dialect::Dialect;
use phasegate::execute::Workspace;
use phasegate::tracker::SystemClock;

const PLAN: &str = "rename";

/// `(name, full_name)` of row `id`, exactly as stored.
async fn both(db: &TestDb, id: i64) -> TestResult<(String, String)> {
    let cast = db.pick3("text", "BLOB", "BINARY");
    let hex = |c: &str| match db.dialect {
        Dialect::Postgres => format!("encode(convert_to({c}::text, 'UTF8'), 'hex')"),
        _ => format!("hex(CAST({c} AS {cast}))"),
    };
    let name = db
        .text(&format!(
            "SELECT {} FROM users WHERE id = {id}",
            hex("name")
        ))
        .await?
        .unwrap_or_default();
    let full = db
        .text(&format!(
            "SELECT {} FROM users WHERE id = {id}",
            hex("full_name")
        ))
        .await?
        .unwrap_or_default();
    let decode = |h: &str| -> String {
        let bytes: Vec<u8> = (0..h.len() / 2)
            .filter_map(|i| u8::from_str_radix(&h[2 * i..2 * i + 2], 16).ok())
            .collect();
        String::from_utf8_lossy(&bytes).into_owned()
    };
    Ok((decode(&name), decode(&full)))
}

async fn case_and_spaces_are_writes(db: TestDb, column: &str, spaces: bool) -> TestResult {
    db.exec(&format!(
        "CREATE TABLE users (id bigint PRIMARY KEY, name {column})"
    ))
    .await?;
    db.exec("INSERT INTO users (id, name) VALUES (1, 'bob'), (2, 'ann'), (3, 'eve'), (4, 'joe')")
        .await?;
    let plan = format!(
        "name: {PLAN}\nchanges:\n  - rename_column: {{ table: users, from: name, to: full_name }}\n"
    );
    let project = Project::new(&db, &[], PLAN, &plan)?;
    let clock = SystemClock;
    let ws = Workspace::new(&project.config, &clock, "exact");
    ws.apply(ENV, PLAN, false).await?;

    // The new release writes full_name, the old one name: case only.
    db.exec("UPDATE users SET full_name = 'Bob' WHERE id = 1")
        .await?;
    db.exec("UPDATE users SET name = 'Ann' WHERE id = 2")
        .await?;
    let mut want = vec![(1, "Bob"), (2, "Ann")];
    if spaces {
        db.exec("UPDATE users SET full_name = 'eve ' WHERE id = 3")
            .await?;
        db.exec("UPDATE users SET name = 'joe  ' WHERE id = 4")
            .await?;
        want.extend([(3, "eve "), (4, "joe  ")]);
    }
    for (id, value) in want {
        let (name, full) = both(&db, id).await?;
        if name != value || full != value {
            return Err(fail(format!(
                "{}: row {id} should hold {value:?} in both columns after a write of one, holds name {name:?}, full_name {full:?}",
                db.dialect.name()
            )));
        }
    }
    // The verification tells a row whose columns differ only in case.
    let (_, outcomes) = ws.verify(ENV, PLAN, Some(1)).await?;
    if outcomes.iter().any(|o| !o.passed()) {
        return Err(fail(format!(
            "verification fails on synced rows: {outcomes:?}"
        )));
    }
    // Without the trigger, a row made unequal by hand in case only.
    db.exec(match db.dialect {
        Dialect::Postgres => "DROP TRIGGER users_name_full_name_sync ON users",
        _ => "DROP TRIGGER users_name_full_name_sync_upd",
    })
    .await?;
    db.exec("UPDATE users SET full_name = 'BOB' WHERE id = 1")
        .await?;
    let (_, outcomes) = ws.verify(ENV, PLAN, Some(1)).await?;
    if outcomes.iter().all(|o| o.passed()) {
        return Err(fail(format!(
            "{}: the verification passed with name 'Bob' and full_name 'BOB'",
            db.dialect.name()
        )));
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_default_collation_case_and_trailing_spaces_are_writes() {
    with_mysql(|db| async move {
        case_and_spaces_are_writes(
            db,
            "varchar(50) CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci",
            true,
        )
        .await
    })
    .await;
}

/// SQLite: the new column keeps the old one's `COLLATE` (so the
/// application's `WHERE full_name = 'BOB'` finds what `name` did), and its
/// comparisons are `COLLATE BINARY`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_nocase_and_rtrim_are_writes_and_are_kept() {
    for (collation, spaces) in [("NOCASE", false), ("RTRIM", true)] {
        with_sqlite(|db| async move {
            let column = format!("TEXT COLLATE {collation}");
            case_and_spaces_are_writes(db.clone(), &column, spaces).await?;
            let create = db
                .text("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'users'")
                .await?
                .unwrap_or_default();
            if !create.contains(&format!("`full_name` TEXT COLLATE `{collation}`")) {
                return Err(fail(format!("full_name lost its collation: {create}")));
            }
            Ok(())
        })
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_citext_case_is_a_write() {
    with_postgres(|db| async move {
        db.exec("CREATE EXTENSION IF NOT EXISTS citext").await?;
        case_and_spaces_are_writes(db, "citext", false).await
    })
    .await;
}

/// A case-insensitive (nondeterministic) ICU collation: writes that change
/// only case are mirrored, and the new column keeps the collation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_nondeterministic_collation_case_is_a_write_and_is_kept() {
    with_postgres(|db| async move {
        db.exec("CREATE COLLATION ci (provider = icu, locale = 'und-u-ks-level2', deterministic = false)")
            .await?;
        case_and_spaces_are_writes(db.clone(), "text COLLATE ci", false).await?;
        let collation = db
            .text(
                "SELECT co.collname::text FROM pg_attribute a JOIN pg_collation co ON co.oid = a.attcollation \
                  WHERE a.attrelid = 'users'::regclass AND a.attname = 'full_name'",
            )
            .await?;
        if collation.as_deref() != Some("ci") {
            return Err(fail(format!("full_name has collation {collation:?}, not ci")));
        }
        Ok(())
    })
    .await;
}
