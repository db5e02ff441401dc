//! The event log defends itself: updates, deletes and (on Postgres)
//! `TRUNCATE` of phasegate's tables are refused by the database, and what
//! the database cannot refuse (MariaDB's `TRUNCATE`, a log changed after its
//! guards were dropped) is noticed by the hash chain and its head: `status`,
//! `gate` and `apply` say the log was tampered with, what is wrong and at
//! which event, and exit 2 instead of reporting "pending". A log written
//! before the chain existed (schema version 1) is read as it is by read-only
//! commands and migrated by the first command that writes.

mod common;
mod executor_support;

use std::process::Output;
use std::time::Duration;

use common::{TestDb, TestResult, fail, with_mysql, with_postgres, with_sqlite};
use executor_support::{ENV, Project, events};
use phasegate::dialect::Dialect;

const PLAN: &str = "rename-users-name";
const RENAME: &str = "name: rename-users-name
changes:
  - rename_column: { table: users, from: name, to: full_name }
";

async fn seed(db: &TestDb) -> TestResult {
    db.create_table("users", "id INTEGER PRIMARY KEY, name TEXT")
        .await?;
    db.exec("INSERT INTO users (id, name) VALUES (1, 'ada'), (2, 'grace'), (3, NULL)")
        .await?;
    Ok(())
}

async fn run(project: &Project, args: &[&str]) -> TestResult<Output> {
    let mut c = tokio::process::Command::new(env!("CARGO_BIN_EXE_phasegate"));
    c.arg("--config")
        .arg(project.config_path())
        .args(args)
        .current_dir(&project.dir)
        .env("USER", "ci-runner")
        .kill_on_drop(true);
    tokio::time::timeout(Duration::from_secs(120), c.output())
        .await
        .map_err(|_| fail(format!("phasegate {args:?} did not finish within 120s")))?
        .map_err(Into::into)
}

fn shown(o: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout ---\n{}--- stderr ---\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A project on `db` with phase 1 of the rename applied (and deployed: it
/// has no app stage), so the log holds several events.
async fn applied(db: &TestDb) -> TestResult<Project> {
    seed(db).await?;
    let project = Project::new(db, &[], PLAN, RENAME)?;
    let out = run(&project, &["apply", "--env", ENV, PLAN]).await?;
    assert_eq!(out.status.code(), Some(0), "{}", shown(&out));
    Ok(project)
}

/// `status` (text and JSON), `gate` and `apply` all refuse a tampered log
/// with exit 2, naming `needle`; `apply` changes nothing.
async fn assert_tampered(db: &TestDb, project: &Project, needle: &str) -> TestResult {
    let before = events(db).await.len();
    let schema = db.schema().await?;
    let status = run(project, &["status"]).await?;
    assert_eq!(status.status.code(), Some(2), "{}", shown(&status));
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(
        text.contains("the event log was tampered with") && text.contains(needle),
        "status names the tampering ({needle}):\n{}",
        shown(&status)
    );
    assert!(!text.contains("next: apply"), "{}", shown(&status));
    let json = run(project, &["status", "--format", "json"]).await?;
    assert_eq!(json.status.code(), Some(2), "{}", shown(&json));
    let v: serde_json::Value = serde_json::from_slice(&json.stdout)
        .map_err(|e| fail(format!("status --format json: {e}\n{}", shown(&json))))?;
    assert!(
        v["environments"][0]["unreachable"]
            .as_str()
            .is_some_and(|u| u.contains("tampered") && u.contains(needle)),
        "{v}"
    );
    for args in [["gate", "--env", ENV, PLAN], ["apply", "--env", ENV, PLAN]] {
        let out = run(project, &args).await?;
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", shown(&out));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("the event log was tampered with") && err.contains(needle),
            "{args:?}: {}",
            shown(&out)
        );
    }
    assert_eq!(events(db).await.len(), before, "apply recorded nothing");
    assert_eq!(db.schema().await?, schema, "apply changed nothing");
    Ok(())
}

// ---------------------------------------------------------------------------
// Guards
// ---------------------------------------------------------------------------

async fn guards(db: TestDb) -> TestResult {
    let project = applied(&db).await?;
    db.assert_fails("DELETE FROM phasegate_events", "append-only")
        .await?;
    db.assert_fails("UPDATE phasegate_events SET detail = 'x'", "append-only")
        .await?;
    db.assert_fails("DELETE FROM phasegate_head", "cannot be deleted")
        .await?;
    if db.dialect == Dialect::Postgres {
        db.assert_fails("TRUNCATE phasegate_events", "append-only")
            .await?;
        db.assert_fails("TRUNCATE phasegate_head", "cannot be deleted")
            .await?;
    }
    // An event inserted by hand, outside the chain, is refused too.
    db.assert_fails(
        "INSERT INTO phasegate_events (at_ms, plan, kind, detail, actor, prev_hash, hash) VALUES (0, 'rename-users-name', 'phase_deployed', '', 'x', 'forged', 'forged')",
        "must follow the last one",
    )
    .await?;
    let status = run(&project, &["status"]).await?;
    assert_eq!(status.status.code(), Some(0), "{}", shown(&status));
    assert!(
        String::from_utf8_lossy(&status.stdout).contains("phase 2 of 3: pending"),
        "{}",
        shown(&status)
    );
    Ok(())
}

#[tokio::test]
async fn the_log_refuses_delete_update_and_truncate_on_postgres() {
    with_postgres(guards).await;
}

#[tokio::test]
async fn the_log_refuses_delete_and_update_on_mysql() {
    with_mysql(guards).await;
}

#[tokio::test]
async fn the_log_refuses_delete_and_update_on_sqlite() {
    with_sqlite(guards).await;
}

// ---------------------------------------------------------------------------
// Detection
// ---------------------------------------------------------------------------

#[tokio::test]
async fn truncate_on_mysql_is_detected_by_status_gate_and_apply() {
    with_mysql(|db| async move {
        let project = applied(&db).await?;
        // MariaDB fires no trigger on TRUNCATE: it succeeds.
        db.exec("TRUNCATE phasegate_events").await?;
        assert_tampered(&db, &project, "the table was truncated").await
    })
    .await;
}

/// The definitions (`CREATE TRIGGER …`) of the triggers `names`, as the
/// database reports them: to put them back after tampering, as someone
/// covering their tracks would.
async fn definitions(db: &TestDb, names: &[&str]) -> TestResult<Vec<String>> {
    let mut defs = Vec::new();
    for name in names {
        let sql = match db.dialect {
            Dialect::Postgres => {
                format!("SELECT pg_get_triggerdef(oid) FROM pg_trigger WHERE tgname = '{name}'")
            }
            Dialect::Sqlite => {
                format!("SELECT sql FROM sqlite_master WHERE type = 'trigger' AND name = '{name}'")
            }
            Dialect::Mysql => format!(
                "SELECT CONCAT('CREATE TRIGGER ', TRIGGER_NAME, ' ', ACTION_TIMING, ' ', EVENT_MANIPULATION, \
                 ' ON ', EVENT_OBJECT_TABLE, ' FOR EACH ROW ', ACTION_STATEMENT) \
                 FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = DATABASE() AND TRIGGER_NAME = '{name}'"
            ),
        };
        defs.push(
            db.text(&sql)
                .await?
                .ok_or_else(|| fail(format!("no trigger {name}")))?,
        );
    }
    Ok(defs)
}

/// The guards of the events table: (trigger, its DROP statement).
fn event_guards(db: &TestDb) -> Vec<(&'static str, String)> {
    let names: &[&'static str] = match db.dialect {
        Dialect::Postgres => &[
            "phasegate_events_append_only",
            "phasegate_events_no_truncate",
        ],
        Dialect::Mysql | Dialect::Sqlite => {
            &["phasegate_events_no_update", "phasegate_events_no_delete"]
        }
    };
    names
        .iter()
        .map(|n| {
            let on = if db.dialect == Dialect::Postgres {
                " ON phasegate_events"
            } else {
                ""
            };
            (*n, format!("DROP TRIGGER {n}{on}"))
        })
        .collect()
}

/// The guards dropped first (what only someone set on it would do), then
/// the log changed by `tamper`: the missing guard is named; and once the
/// guards are put back as they were, the chain names `needle`.
async fn unguarded(db: &TestDb, tamper: &[&str], needle: &str) -> TestResult {
    let project = applied(db).await?;
    unguarded_on(db, &project, tamper, needle).await
}

async fn unguarded_on(db: &TestDb, project: &Project, tamper: &[&str], needle: &str) -> TestResult {
    let guards = event_guards(db);
    let names: Vec<&str> = guards.iter().map(|g| g.0).collect();
    let defs = definitions(db, &names).await?;
    for (_, drop) in &guards {
        db.exec(drop).await?;
    }
    for sql in tamper {
        db.exec(sql).await?;
    }
    assert_tampered(db, project, &format!("the trigger {}", names[0])).await?;
    assert_tampered(db, project, "is missing or disabled").await?;
    for def in &defs {
        db.exec(def).await?;
    }
    assert_tampered(db, project, needle).await
}

/// The ids of the log's events, for the statements that tamper with one.
async fn ids(db: &TestDb) -> Vec<i64> {
    events(db).await.iter().map(|e| e.0).collect()
}

async fn deleted_in_the_middle(db: TestDb) -> TestResult {
    drop(applied(&db).await?);
    let ids = ids(&db).await;
    if ids.len() < 4 {
        return Err(fail(format!("expected several events: {ids:?}")));
    }
    let (gone, next) = (ids[1], ids[2]);
    let tamper = format!("DELETE FROM phasegate_events WHERE id = {gone}");
    unguarded_again(
        &db,
        &[&tamper],
        &format!("event {next} ("),
        &format!("does not follow event {}", ids[0]),
    )
    .await
}

/// Like [`unguarded`] on a log already written.
async fn unguarded_again(db: &TestDb, tamper: &[&str], needle: &str, also: &str) -> TestResult {
    let project = Project::new(db, &[], PLAN, RENAME)?;
    unguarded_on(db, &project, tamper, needle).await?;
    assert_tampered(db, &project, also).await
}

async fn edited(db: TestDb) -> TestResult {
    drop(applied(&db).await?);
    let id = ids(&db).await.first().copied().unwrap_or(0);
    let tamper = format!("UPDATE phasegate_events SET actor = 'someone else' WHERE id = {id}");
    unguarded_again(
        &db,
        &[&tamper],
        &format!("event {id} (plan_started of rename-users-name) was changed"),
        "no longer match its hash",
    )
    .await
}

async fn deleted_at_the_end(db: TestDb) -> TestResult {
    drop(applied(&db).await?);
    let ids = ids(&db).await;
    let last = ids.last().copied().unwrap_or(0);
    let tamper = format!("DELETE FROM phasegate_events WHERE id = {last}");
    unguarded_again(
        &db,
        &[&tamper],
        "events at the end were deleted",
        &format!("the last being event {last}"),
    )
    .await
}

async fn emptied(db: TestDb) -> TestResult {
    unguarded(
        &db,
        &["DELETE FROM phasegate_events"],
        "the table was truncated or its rows deleted",
    )
    .await
}

#[tokio::test]
async fn a_deleted_event_is_named_on_postgres() {
    with_postgres(deleted_in_the_middle).await;
}

#[tokio::test]
async fn a_deleted_event_is_named_on_mysql() {
    with_mysql(deleted_in_the_middle).await;
}

#[tokio::test]
async fn a_deleted_event_is_named_on_sqlite() {
    with_sqlite(deleted_in_the_middle).await;
}

#[tokio::test]
async fn an_edited_event_is_named_on_postgres() {
    with_postgres(edited).await;
}

#[tokio::test]
async fn an_edited_event_is_named_on_mysql() {
    with_mysql(edited).await;
}

#[tokio::test]
async fn an_edited_event_is_named_on_sqlite() {
    with_sqlite(edited).await;
}

#[tokio::test]
async fn events_deleted_at_the_end_are_noticed_on_sqlite() {
    with_sqlite(deleted_at_the_end).await;
}

#[tokio::test]
async fn events_deleted_at_the_end_are_noticed_on_postgres() {
    with_postgres(deleted_at_the_end).await;
}

#[tokio::test]
async fn an_emptied_log_is_noticed_on_sqlite() {
    with_sqlite(emptied).await;
}

#[tokio::test]
async fn an_emptied_log_is_noticed_on_postgres() {
    with_postgres(emptied).await;
}

// ---------------------------------------------------------------------------
// Migration from schema version 1
// ---------------------------------------------------------------------------

/// Turns the log back into what a phasegate before the chain wrote (no
/// chain, head, guards on phasegate_meta or environment marker).
async fn downgrade_to_v1(db: &TestDb) -> TestResult {
    let sql: &[&str] = match db.dialect {
        Dialect::Postgres => &[
            "DROP TRIGGER phasegate_events_chain ON phasegate_events",
            "DROP TRIGGER phasegate_events_no_truncate ON phasegate_events",
            "DROP TRIGGER phasegate_meta_kept ON phasegate_meta",
            "DROP TRIGGER phasegate_meta_no_truncate ON phasegate_meta",
            "DROP TABLE phasegate_head",
            "ALTER TABLE phasegate_events DROP COLUMN prev_hash, DROP COLUMN hash",
        ],
        Dialect::Mysql => &[
            "DROP TRIGGER phasegate_events_chain_check",
            "DROP TRIGGER phasegate_events_chain",
            "DROP TRIGGER phasegate_meta_no_update",
            "DROP TRIGGER phasegate_meta_no_delete",
            "DROP TABLE phasegate_head",
            "ALTER TABLE phasegate_events DROP COLUMN prev_hash, DROP COLUMN hash",
        ],
        Dialect::Sqlite => &[
            "DROP TRIGGER phasegate_events_chain_check",
            "DROP TRIGGER phasegate_events_chain",
            "DROP TRIGGER phasegate_meta_no_update",
            "DROP TRIGGER phasegate_meta_no_delete",
            "DROP TABLE phasegate_head",
            "ALTER TABLE phasegate_events DROP COLUMN prev_hash",
            "ALTER TABLE phasegate_events DROP COLUMN hash",
        ],
    };
    for s in sql {
        db.exec(s).await?;
    }
    let key = db.pick3("key", "key", "`key`");
    db.exec(&format!(
        "UPDATE phasegate_meta SET value = '1' WHERE {key} = 'schema_version'"
    ))
    .await?;
    db.exec(&format!(
        "DELETE FROM phasegate_meta WHERE {key} = 'environment'"
    ))
    .await?;
    Ok(())
}

async fn migrates(db: TestDb) -> TestResult {
    let project = applied(&db).await?;
    downgrade_to_v1(&db).await?;
    let old = events(&db).await;
    let key = db.pick3("key", "key", "`key`");
    let version = format!("SELECT value FROM phasegate_meta WHERE {key} = 'schema_version'");

    // Read-only commands read the old log as it is, and change nothing.
    let status = run(&project, &["status"]).await?;
    assert_eq!(status.status.code(), Some(0), "{}", shown(&status));
    assert!(
        String::from_utf8_lossy(&status.stdout).contains("phase 2 of 3: pending"),
        "{}",
        shown(&status)
    );
    assert_eq!(db.text(&version).await?.as_deref(), Some("1"));

    // The first command that writes migrates it: every old event chained.
    let out = run(&project, &["apply", "--env", ENV, PLAN]).await?;
    assert_eq!(out.status.code(), Some(0), "{}", shown(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("phase 2 of 3 applied in test"),
        "{}",
        shown(&out)
    );
    assert_eq!(db.text(&version).await?.as_deref(), Some("3"));
    let new = events(&db).await;
    assert_eq!(
        &new[..old.len()],
        &old[..],
        "the old events are kept as they were"
    );
    assert!(new.len() > old.len());
    assert_eq!(
        db.scalar("SELECT count(*) FROM phasegate_events WHERE hash IS NULL OR prev_hash IS NULL")
            .await?,
        0
    );
    assert_eq!(
        db.scalar("SELECT events FROM phasegate_head").await?,
        i64::try_from(new.len())?
    );
    let status = run(&project, &["status"]).await?;
    assert_eq!(status.status.code(), Some(0), "{}", shown(&status));
    // And the migrated log is guarded like a new one.
    db.assert_fails("DELETE FROM phasegate_events", "append-only")
        .await?;
    Ok(())
}

#[tokio::test]
async fn a_log_from_before_the_chain_is_migrated_on_postgres() {
    with_postgres(migrates).await;
}

#[tokio::test]
async fn a_log_from_before_the_chain_is_migrated_on_mysql() {
    with_mysql(migrates).await;
}

#[tokio::test]
async fn a_log_from_before_the_chain_is_migrated_on_sqlite() {
    with_sqlite(migrates).await;
}
