//! Adversarial attempts on the tracker's defences: new instances of the
//! kinds of input the issue listed (first use of a fresh database under
//! concurrency, the environment lock, the log defending itself, one
//! environment per database, the recorded promotion order, status honest
//! about unreadable environments, read-only commands creating nothing).
//!
//! A test that passes is a defence that held. A test marked
//! `#[ignore = "BREAKS: …"]` is an input that broke a promise; it asserts
//! what should happen, so it passes once the defence is fixed.

mod common;
mod executor_support;

use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::{TestDb, TestResult, fail, with_mysql, with_postgres, with_sqlite};
use executor_support::{ENV, Project, events};
use phasegate::dialect::Dialect;
use sha2::{Digest, Sha256};
use sqlx::Connection;

const PLAN: &str = "rename-users-name";
const RENAME: &str = "name: rename-users-name
changes:
  - rename_column: { table: users, from: name, to: full_name }
";

// ---------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------

async fn seed(db: &TestDb) -> TestResult {
    db.create_table("users", "id INTEGER PRIMARY KEY, name TEXT")
        .await?;
    db.exec("INSERT INTO users (id, name) VALUES (1, 'ada'), (2, 'grace'), (3, NULL)")
        .await?;
    Ok(())
}

/// A scratch folder with `plans/` and any number of config files, removed
/// (with the lock files named in `extra`) when dropped.
struct Dir {
    path: PathBuf,
    extra: Vec<PathBuf>,
}

impl Dir {
    fn new() -> TestResult<Dir> {
        static N: AtomicUsize = AtomicUsize::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let path = std::env::temp_dir().join(format!(
            "phasegate-break-{}-{}-{nanos}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::create_dir_all(path.join("plans"))?;
        std::fs::write(path.join("plans").join(format!("{PLAN}.yaml")), RENAME)?;
        Ok(Dir {
            path,
            extra: Vec::new(),
        })
    }

    /// Writes `name.yaml` with these environments, in order: (name, url).
    fn config(&self, name: &str, envs: &[(&str, &str)]) -> TestResult<PathBuf> {
        let mut s = String::from("environments:\n");
        for (env, url) in envs {
            s.push_str(&format!(
                "  - name: {env}\n    database_url: '{}'\n    lock_wait: 60s\n",
                url.replace('\'', "''")
            ));
        }
        let path = self.path.join(format!("{name}.yaml"));
        std::fs::write(&path, s)?;
        Ok(path)
    }

    async fn run(&self, config: &Path, args: &[&str]) -> TestResult<Output> {
        run_in(&self.path, config, args, &[]).await
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
        for p in &self.extra {
            let _ = std::fs::remove_file(p);
        }
    }
}

async fn run_in(
    dir: &Path,
    config: &Path,
    args: &[&str],
    env: &[(&str, &str)],
) -> TestResult<Output> {
    let mut c = tokio::process::Command::new(env!("CARGO_BIN_EXE_phasegate"));
    c.arg("--config")
        .arg(config)
        .args(args)
        .current_dir(dir)
        .env("USER", "ci-runner")
        .kill_on_drop(true);
    for (k, v) in env {
        c.env(k, v);
    }
    tokio::time::timeout(Duration::from_secs(150), c.output())
        .await
        .map_err(|_| fail(format!("phasegate {args:?} did not finish within 150s")))?
        .map_err(Into::into)
}

async fn run(project: &Project, args: &[&str]) -> TestResult<Output> {
    run_in(&project.dir, &project.config_path(), args, &[]).await
}

fn shown(o: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout ---\n{}--- stderr ---\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn said(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A project on `db` with phase 1 of the rename applied (and deployed: it
/// has no app stage).
async fn applied(db: &TestDb) -> TestResult<Project> {
    seed(db).await?;
    let project = Project::new(db, &[], PLAN, RENAME)?;
    let out = run(&project, &["apply", "--env", ENV, PLAN]).await?;
    assert_eq!(out.status.code(), Some(0), "{}", shown(&out));
    Ok(project)
}

/// `status` (text and JSON), `gate` and `apply` all refuse a tampered log
/// with exit 2 and say so; `apply` records and changes nothing.
async fn assert_tampered(db: &TestDb, project: &Project) -> TestResult {
    let before = events(db).await.len();
    let schema = db.schema().await?;
    let status = run(project, &["status"]).await?;
    assert_eq!(status.status.code(), Some(2), "status: {}", shown(&status));
    assert!(
        said(&status).contains("tampered"),
        "status names the tampering:\n{}",
        shown(&status)
    );
    assert!(!said(&status).contains("next: apply"), "{}", shown(&status));
    let json = run(project, &["status", "--format", "json"]).await?;
    assert_eq!(json.status.code(), Some(2), "{}", shown(&json));
    for args in [["gate", "--env", ENV, PLAN], ["apply", "--env", ENV, PLAN]] {
        let out = run(project, &args).await?;
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", shown(&out));
        assert!(said(&out).contains("tampered"), "{args:?}: {}", shown(&out));
    }
    assert_eq!(events(db).await.len(), before, "apply recorded nothing");
    assert_eq!(db.schema().await?, schema, "apply changed nothing");
    Ok(())
}

/// `status` and `apply` fail (non-zero, no panic, no "pending"), and
/// `apply` changes nothing: for a log broken in a way that may not read as
/// tampering but must never be read as a fresh or healthy one.
async fn assert_refused(db: &TestDb, project: &Project) -> TestResult {
    let schema = db.schema().await?;
    let status = run(project, &["status"]).await?;
    assert_ne!(status.status.code(), Some(0), "status: {}", shown(&status));
    assert!(!said(&status).contains("panicked"), "{}", shown(&status));
    assert!(!said(&status).contains("next: apply"), "{}", shown(&status));
    let gate = run(project, &["gate", "--env", ENV, PLAN]).await?;
    assert_eq!(gate.status.code(), Some(2), "gate: {}", shown(&gate));
    let apply = run(project, &["apply", "--env", ENV, PLAN]).await?;
    assert_ne!(apply.status.code(), Some(0), "apply: {}", shown(&apply));
    assert!(!said(&apply).contains("panicked"), "{}", shown(&apply));
    assert_eq!(db.schema().await?, schema, "apply changed nothing");
    Ok(())
}

/// The hash phasegate gives an event (see src/tracker/chain.rs): hex
/// SHA-256 of a JSON array of the previous hash and the event's fields.
#[allow(clippy::too_many_arguments)]
fn forge_hash(
    prev: &str,
    at_ms: i64,
    plan: Option<&str>,
    kind: &str,
    phase: Option<i64>,
    step: Option<&str>,
    detail: &str,
    actor: &str,
) -> String {
    let input =
        serde_json::json!([prev, at_ms, plan, kind, phase, step, detail, actor]).to_string();
    Sha256::digest(input.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The definition (`CREATE TRIGGER …`) of trigger `name`, as the database
/// reports it: to put it back after tampering, as someone covering their
/// tracks would.
async fn definition(db: &TestDb, name: &str) -> TestResult<String> {
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
    db.text(&sql)
        .await?
        .ok_or_else(|| fail(format!("no trigger {name}")))
}

/// Runs `sql` with the guard trigger `name` (on `table`) dropped, then puts
/// the guard back exactly as it was.
async fn behind_guard(db: &TestDb, name: &str, table: &str, sql: &[&str]) -> TestResult {
    let def = definition(db, name).await?;
    let on = if db.dialect == Dialect::Postgres {
        format!(" ON {table}")
    } else {
        String::new()
    };
    db.exec(&format!("DROP TRIGGER {name}{on}")).await?;
    for s in sql {
        db.exec(s).await?;
    }
    db.exec(&def).await?;
    Ok(())
}

/// The guard of `phasegate_meta` against `UPDATE` (Postgres: and `DELETE`).
fn meta_update_guard(db: &TestDb) -> &'static str {
    db.pick3(
        "phasegate_meta_kept",
        "phasegate_meta_no_update",
        "phasegate_meta_no_update",
    )
}

/// The guard of `phasegate_meta` against `DELETE`.
fn meta_delete_guard(db: &TestDb) -> &'static str {
    db.pick3(
        "phasegate_meta_kept",
        "phasegate_meta_no_delete",
        "phasegate_meta_no_delete",
    )
}

// ---------------------------------------------------------------------------
// The log defends itself: new instances
// ---------------------------------------------------------------------------

/// MariaDB fires no trigger on TRUNCATE: the head reset to look like a
/// fresh log's is refused by the head's guard, and the truncated log is
/// noticed.
#[tokio::test]
async fn truncate_and_a_reset_head_on_mysql_is_noticed() {
    with_mysql(|db| async move {
        let project = applied(&db).await?;
        db.exec("TRUNCATE phasegate_events").await?;
        db.assert_fails(
            "UPDATE phasegate_head SET last_id = 0, last_hash = '', events = 0",
            "only moves forward",
        )
        .await?;
        assert_tampered(&db, &project).await
    })
    .await;
}

/// The head never goes backwards (nor sideways): every update but the one
/// the insert trigger makes, one event forward, is refused.
async fn head_kept_forward(db: TestDb) -> TestResult {
    let project = applied(&db).await?;
    for edit in [
        "UPDATE phasegate_head SET last_id = 0, last_hash = '', events = 0",
        "UPDATE phasegate_head SET events = events - 1",
        "UPDATE phasegate_head SET last_hash = 'x'",
        "UPDATE phasegate_head SET events = events + 1",
        "UPDATE phasegate_head SET last_id = last_id - 1, events = events + 1",
    ] {
        db.assert_fails(edit, "only moves forward").await?;
    }
    let status = run(&project, &["status"]).await?;
    assert_eq!(status.status.code(), Some(0), "{}", shown(&status));
    Ok(())
}

#[tokio::test]
async fn the_head_never_goes_back_on_postgres() {
    with_postgres(head_kept_forward).await;
}

#[tokio::test]
async fn the_head_never_goes_back_on_mysql() {
    with_mysql(head_kept_forward).await;
}

#[tokio::test]
async fn the_head_never_goes_back_on_sqlite() {
    with_sqlite(head_kept_forward).await;
}

/// The head edited by hand: an edit its guard lets through (one event
/// forward, no event written) is noticed; so are edits made with the guard
/// dropped and put back.
async fn head_edited(db: TestDb) -> TestResult {
    let project = applied(&db).await?;
    db.exec("UPDATE phasegate_head SET events = events + 1, last_id = last_id + 1")
        .await?;
    assert_tampered(&db, &project).await?;
    behind_guard(
        &db,
        "phasegate_head_forward",
        "phasegate_head",
        &["UPDATE phasegate_head SET events = events - 1, last_id = last_id - 1, last_hash = 'x'"],
    )
    .await?;
    assert_tampered(&db, &project).await
}

#[tokio::test]
async fn an_edited_head_is_noticed_on_postgres() {
    with_postgres(head_edited).await;
}

#[tokio::test]
async fn an_edited_head_is_noticed_on_mysql() {
    with_mysql(head_edited).await;
}

#[tokio::test]
async fn an_edited_head_is_noticed_on_sqlite() {
    with_sqlite(head_edited).await;
}

/// An event inserted by hand, guards intact, that follows the head's hash
/// (so the chain trigger accepts it) but carries a made-up hash.
async fn forged_bad_hash(db: TestDb) -> TestResult {
    let project = applied(&db).await?;
    let last = db
        .text("SELECT last_hash FROM phasegate_head WHERE id = 1")
        .await?
        .unwrap_or_default();
    db.exec(&format!(
        "INSERT INTO phasegate_events (at_ms, plan, kind, phase, detail, actor, prev_hash, hash) \
         VALUES (0, 'rename-users-name', 'phase_migrated', 2, '', 'mallory', '{last}', 'forged')"
    ))
    .await?;
    assert_tampered(&db, &project).await
}

#[tokio::test]
async fn a_forged_event_with_a_made_up_hash_is_noticed_on_postgres() {
    with_postgres(forged_bad_hash).await;
}

#[tokio::test]
async fn a_forged_event_with_a_made_up_hash_is_noticed_on_mysql() {
    with_mysql(forged_bad_hash).await;
}

#[tokio::test]
async fn a_forged_event_with_a_made_up_hash_is_noticed_on_sqlite() {
    with_sqlite(forged_bad_hash).await;
}

/// An event inserted by hand, guards intact, hashed as phasegate hashes
/// (the hash has no secret): "phase 2 migrated" although nothing ran.
async fn forged_good_hash(db: TestDb) -> TestResult {
    let project = applied(&db).await?;
    let last = db
        .text("SELECT last_hash FROM phasegate_head WHERE id = 1")
        .await?
        .unwrap_or_default();
    let at = db.scalar("SELECT max(at_ms) FROM phasegate_events").await? + 1;
    let hash = forge_hash(
        &last,
        at,
        Some(PLAN),
        "phase_migrated",
        Some(2),
        None,
        "",
        "ci-runner",
    );
    db.exec(&format!(
        "INSERT INTO phasegate_events (at_ms, plan, kind, phase, detail, actor, prev_hash, hash) \
         VALUES ({at}, '{PLAN}', 'phase_migrated', 2, '', 'ci-runner', '{last}', '{hash}')"
    ))
    .await?;
    assert_tampered(&db, &project).await
}

#[tokio::test]
#[ignore = "BREAKS (documented limit, src/tracker/chain.rs and docs/workflow.md): the hash has no secret, so an INSERT with a correctly computed hash that follows the head is accepted; status reports phase 2 migrated though it never ran, exit 0. Needs a keyed chain (not built)"]
async fn a_forged_event_with_a_computed_hash_is_noticed_on_postgres() {
    with_postgres(forged_good_hash).await;
}

#[tokio::test]
#[ignore = "BREAKS (documented limit, src/tracker/chain.rs and docs/workflow.md): the hash has no secret, so an INSERT with a correctly computed hash that follows the head is accepted; status reports phase 2 migrated though it never ran, exit 0. Needs a keyed chain (not built)"]
async fn a_forged_event_with_a_computed_hash_is_noticed_on_sqlite() {
    with_sqlite(forged_good_hash).await;
}

/// `DROP TABLE phasegate_events`, `phasegate_meta` and `phasegate_head`
/// left: never read as a log phasegate has not started, never recreated.
async fn events_dropped(db: TestDb) -> TestResult {
    let project = applied(&db).await?;
    db.exec("DROP TABLE phasegate_events").await?;
    assert_refused(&db, &project).await?;
    assert!(
        !db.has_relation("phasegate_events").await?,
        "a command recreated the dropped log"
    );
    Ok(())
}

#[tokio::test]
async fn a_dropped_events_table_is_noticed_on_postgres() {
    with_postgres(events_dropped).await;
}

#[tokio::test]
async fn a_dropped_events_table_is_noticed_on_mysql() {
    with_mysql(events_dropped).await;
}

#[tokio::test]
async fn a_dropped_events_table_is_noticed_on_sqlite() {
    with_sqlite(events_dropped).await;
}

/// `ALTER TABLE` on the log: a column renamed. A clear error, exit
/// non-zero, nothing applied.
async fn column_renamed(db: TestDb) -> TestResult {
    let project = applied(&db).await?;
    db.exec("ALTER TABLE phasegate_events RENAME COLUMN actor TO who")
        .await?;
    assert_refused(&db, &project).await
}

#[tokio::test]
async fn a_renamed_log_column_is_refused_on_postgres() {
    with_postgres(column_renamed).await;
}

#[tokio::test]
async fn a_renamed_log_column_is_refused_on_mysql() {
    with_mysql(column_renamed).await;
}

#[tokio::test]
async fn a_renamed_log_column_is_refused_on_sqlite() {
    with_sqlite(column_renamed).await;
}

/// Postgres: the guards disabled with `ALTER TABLE … DISABLE TRIGGER`
/// (not dropped), the last event deleted, the guards enabled again.
#[tokio::test]
async fn disabled_guards_and_a_deleted_last_event_are_noticed_on_postgres() {
    with_postgres(|db| async move {
        let project = applied(&db).await?;
        db.exec(
            "ALTER TABLE phasegate_events DISABLE TRIGGER USER; \
             DELETE FROM phasegate_events WHERE id = (SELECT max(id) FROM phasegate_events); \
             ALTER TABLE phasegate_events ENABLE TRIGGER USER",
        )
        .await?;
        assert_tampered(&db, &project).await
    })
    .await;
}

/// The guard triggers dropped, nothing else touched: the log itself is
/// intact, but may have been changed while it was unguarded (and a forged
/// event with a computed hash would not show in the chain), so every
/// command refuses it as tampered with, naming the missing trigger, and
/// records nothing.
async fn guards_dropped(db: TestDb) -> TestResult {
    let project = applied(&db).await?;
    let drops: &[&str] = match db.dialect {
        Dialect::Postgres => &[
            "DROP TRIGGER phasegate_events_append_only ON phasegate_events",
            "DROP TRIGGER phasegate_events_no_truncate ON phasegate_events",
        ],
        Dialect::Mysql | Dialect::Sqlite => &[
            "DROP TRIGGER phasegate_events_no_update",
            "DROP TRIGGER phasegate_events_no_delete",
        ],
    };
    for d in drops {
        db.exec(d).await?;
    }
    assert_tampered(&db, &project).await?;
    let out = run(&project, &["apply", "--env", ENV, PLAN]).await?;
    let first = db.pick3(
        "phasegate_events_append_only",
        "phasegate_events_no_update",
        "phasegate_events_no_update",
    );
    assert!(
        said(&out).contains(&format!("the trigger {first} on phasegate_events")),
        "{}",
        shown(&out)
    );
    Ok(())
}

#[tokio::test]
async fn dropped_guards_are_refused_as_tampering_on_sqlite() {
    with_sqlite(guards_dropped).await;
}

#[tokio::test]
async fn dropped_guards_are_refused_as_tampering_on_postgres() {
    with_postgres(guards_dropped).await;
}

#[tokio::test]
async fn dropped_guards_are_refused_as_tampering_on_mysql() {
    with_mysql(guards_dropped).await;
}

/// MariaDB shows a table's triggers only to a user with the TRIGGER
/// privilege: a read-only account (SELECT only) running `status` and
/// `gate` on an intact log is not told the log was tampered with.
#[tokio::test]
async fn a_read_only_account_without_trigger_privilege_reads_an_intact_log_on_mysql() {
    with_mysql(|db| async move {
        let _project = applied(&db).await?;
        let user = format!("pg_ro_{}", std::process::id());
        db.exec(&format!("DROP USER IF EXISTS '{user}'@'%'"))
            .await?;
        db.exec(&format!("CREATE USER '{user}'@'%' IDENTIFIED BY 'ro'"))
            .await?;
        let granted = db
            .exec(&format!("GRANT SELECT ON `{}`.* TO '{user}'@'%'", db.name))
            .await;
        let result = async {
            granted?;
            let (_, rest) = db
                .url
                .split_once('@')
                .ok_or_else(|| fail(format!("no host in {}", db.url)))?;
            let url = format!("mysql://{user}:ro@{rest}");
            let dir = Dir::new()?;
            let config = dir.config("ro", &[(ENV, &url)])?;
            for args in [&["status"][..], &["gate", "--env", ENV, PLAN][..]] {
                let out = dir.run(&config, args).await?;
                assert!(
                    !said(&out).contains("tampered"),
                    "{args:?}: {}",
                    shown(&out)
                );
                assert_eq!(out.status.code(), Some(0), "{args:?}: {}", shown(&out));
            }
            TestResult::Ok(())
        }
        .await;
        db.exec(&format!("DROP USER IF EXISTS '{user}'@'%'"))
            .await?;
        result
    })
    .await;
}

/// Postgres: a guard of phasegate_meta disabled (not dropped) is refused
/// like a missing one.
#[tokio::test]
async fn a_disabled_meta_guard_is_refused_as_tampering_on_postgres() {
    with_postgres(|db| async move {
        let project = applied(&db).await?;
        db.exec("ALTER TABLE phasegate_meta DISABLE TRIGGER phasegate_meta_kept")
            .await?;
        assert_tampered(&db, &project).await?;
        let out = run(&project, &["status"]).await?;
        assert!(
            said(&out).contains("phasegate_meta_kept on phasegate_meta"),
            "{}",
            shown(&out)
        );
        Ok(())
    })
    .await;
}

// ---------------------------------------------------------------------------
// One environment per database: new instances
// ---------------------------------------------------------------------------

/// The environment marker deleted: refused by phasegate_meta's guard; and
/// deleted with the guard dropped and put back, another environment
/// (staging) is refused, records nothing and claims nothing.
async fn marker_deleted(db: TestDb) -> TestResult {
    let project = applied(&db).await?;
    let key = db.pick3("key", "key", "`key`");
    let delete = format!("DELETE FROM phasegate_meta WHERE {key} = 'environment'");
    db.assert_fails(&delete, "cannot be changed or deleted")
        .await?;
    behind_guard(&db, meta_delete_guard(&db), "phasegate_meta", &[&delete]).await?;
    let dir = Dir::new()?;
    let other = dir.config("staging", &[("staging", &db.url)])?;
    let before = events(&db).await.len();
    let apply = dir
        .run(&other, &["apply", "--env", "staging", PLAN])
        .await?;
    assert_eq!(apply.status.code(), Some(2), "{}", shown(&apply));
    assert!(
        said(&apply).contains("environment marker") && said(&apply).contains("was deleted"),
        "{}",
        shown(&apply)
    );
    assert_eq!(events(&db).await.len(), before, "staging recorded nothing");
    let owner = format!("SELECT count(*) FROM phasegate_meta WHERE {key} = 'environment'");
    assert_eq!(db.scalar(&owner).await?, 0, "staging claimed nothing");
    drop(project);
    Ok(())
}

#[tokio::test]
async fn a_deleted_environment_marker_lets_no_other_environment_in_on_sqlite() {
    with_sqlite(marker_deleted).await;
}

#[tokio::test]
async fn a_deleted_environment_marker_lets_no_other_environment_in_on_postgres() {
    with_postgres(marker_deleted).await;
}

#[tokio::test]
async fn a_deleted_environment_marker_lets_no_other_environment_in_on_mysql() {
    with_mysql(marker_deleted).await;
}

/// The marker rewritten to another environment's name (its guard dropped
/// and put back): that environment finds a log whose chain starts from
/// another environment's genesis, and is refused without writing.
async fn marker_rewritten(db: TestDb) -> TestResult {
    let project = applied(&db).await?;
    let key = db.pick3("key", "key", "`key`");
    let update = format!("UPDATE phasegate_meta SET value = 'staging' WHERE {key} = 'environment'");
    behind_guard(&db, meta_update_guard(&db), "phasegate_meta", &[&update]).await?;
    let dir = Dir::new()?;
    let other = dir.config("staging", &[("staging", &db.url)])?;
    let before = events(&db).await.len();
    for args in [
        &["status"][..],
        &["gate", "--env", "staging", PLAN][..],
        &["apply", "--env", "staging", PLAN][..],
    ] {
        let out = dir.run(&other, args).await?;
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", shown(&out));
        assert!(
            said(&out).contains("tampered")
                && said(&out).contains("does not start the log of environment `staging`"),
            "{args:?}: {}",
            shown(&out)
        );
    }
    assert_eq!(events(&db).await.len(), before, "staging recorded nothing");
    drop(project);
    Ok(())
}

#[tokio::test]
async fn a_rewritten_environment_marker_lets_no_other_environment_in_on_sqlite() {
    with_sqlite(marker_rewritten).await;
}

#[tokio::test]
async fn a_rewritten_environment_marker_lets_no_other_environment_in_on_postgres() {
    with_postgres(marker_rewritten).await;
}

#[tokio::test]
async fn a_rewritten_environment_marker_lets_no_other_environment_in_on_mysql() {
    with_mysql(marker_rewritten).await;
}

/// Postgres: a second environment pointed at the same database with its
/// `search_path` set to another schema would get its own log there, never
/// reading the marker in the first: a `search_path` in the URL's options is
/// refused at config load (see `config::identity::refused_url`).
#[tokio::test]
async fn a_second_schema_on_the_search_path_is_the_same_database_on_postgres() {
    with_postgres(|db| async move {
        let _project = applied(&db).await?;
        db.exec("CREATE SCHEMA staging_s").await?;
        let sep = if db.url.contains('?') { '&' } else { '?' };
        let url = format!("{}{sep}options=-c%20search_path%3Dstaging_s,public", db.url);
        let dir = Dir::new()?;
        let staging = dir.config("staging", &[("staging", &url)])?;
        let status = dir.run(&staging, &["status"]).await?;
        let apply = dir.run(&staging, &["apply", "--env", "staging", PLAN]).await?;
        let made = db
            .scalar(
                "SELECT count(*) FROM pg_catalog.pg_tables WHERE schemaname = 'staging_s' AND tablename LIKE 'phasegate%'",
            )
            .await?;
        assert_eq!(status.status.code(), Some(2), "{}", shown(&status));
        assert!(
            said(&status).contains("sets search_path in its options"),
            "{}",
            shown(&status)
        );
        assert_ne!(apply.status.code(), Some(0), "{}", shown(&apply));
        assert_eq!(made, 0, "a second log was created in staging_s");
        Ok(())
    })
    .await;
}

/// Spellings of one Postgres database that the config check must see as
/// one (it holds for localhost/127.0.0.1, default port, postgresql://,
/// user in the query, options in the query).
#[tokio::test]
async fn postgres_url_spellings_that_the_config_check_catches() -> TestResult {
    let dir = Dir::new()?;
    let base = "postgres://postgres@127.0.0.1:5432/app";
    let mut missed = Vec::new();
    for other in [
        "postgres://postgres@localhost/app",
        "postgresql://postgres@127.0.0.1/app",
        "postgres://127.0.0.1:5432/app?user=postgres",
        "postgres://postgres@LOCALHOST:5432/app",
        "postgres://postgres:@127.0.0.1:5432/app",
        "postgres://postgres@127.0.0.1:5432/app?sslmode=disable",
        "postgres://postgres@127.0.0.1:05432/app",
    ] {
        let config = dir.config("spell", &[("dev", base), ("staging", other)])?;
        let out = dir.run(&config, &["status"]).await?;
        if out.status.code() != Some(2) || !said(&out).contains("point at the same database") {
            missed.push(format!("{other}: {}", shown(&out)));
        }
    }
    assert!(missed.is_empty(), "not refused:\n{}", missed.join("\n"));
    Ok(())
}

#[tokio::test]
async fn postgres_url_spellings_that_the_config_check_misses() -> TestResult {
    let dir = Dir::new()?;
    let base = "postgres://postgres@127.0.0.1:5432/app";
    let mut missed = Vec::new();
    for other in [
        "postgres://postgres@127.0.0.1:5432/%61pp",
        "postgres://postgres@127.0.0.1:5432/postgres?dbname=app",
    ] {
        let config = dir.config("spell", &[("dev", base), ("staging", other)])?;
        let out = dir.run(&config, &["status"]).await?;
        if out.status.code() != Some(2) || !said(&out).contains("point at the same database") {
            missed.push(format!("{other}: {}", shown(&out)));
        }
    }
    assert!(missed.is_empty(), "not refused:\n{}", missed.join("\n"));
    Ok(())
}

/// More spellings the driver honours: a host, port or user in the query,
/// a database named only by the user, and on MySQL a percent-encoded name.
#[tokio::test]
async fn url_spellings_the_driver_honours_are_refused_at_load() -> TestResult {
    let dir = Dir::new()?;
    let mut missed = Vec::new();
    for (base, other) in [
        (
            "postgres://postgres@127.0.0.1:5432/app",
            "postgres://postgres@db.invalid:6000/app?host=127.0.0.1&port=5432",
        ),
        (
            "postgres://postgres@127.0.0.1:5432/app",
            "postgres:///app?host=localhost&user=postgres",
        ),
        (
            "postgres://app@127.0.0.1:5432/app",
            "postgres://127.0.0.1:5432?user=app",
        ),
        (
            "postgres://postgres@127.0.0.1:5432/app",
            "postgres://postgres@[::1]:5432/%61%70%70",
        ),
        (
            "mysql://root@127.0.0.1:3306/app",
            "mariadb://root@localhost/%61pp",
        ),
    ] {
        let config = dir.config("spell", &[("dev", base), ("staging", other)])?;
        let out = dir.run(&config, &["status"]).await?;
        if out.status.code() != Some(2) || !said(&out).contains("point at the same database") {
            missed.push(format!("{base} vs {other}: {}", shown(&out)));
        }
    }
    assert!(missed.is_empty(), "not refused:\n{}", missed.join("\n"));
    Ok(())
}

/// Different databases stay different: `dbname` naming another database
/// than the path's, and MySQL ignoring a `dbname` it does not honour.
#[tokio::test]
async fn different_databases_are_not_taken_for_one() -> TestResult {
    let dir = Dir::new()?;
    for (base, other) in [
        (
            "postgres://postgres@127.0.0.1:5432/app",
            "postgres://postgres@127.0.0.1:5432/app?dbname=app_staging",
        ),
        (
            "postgres://postgres@127.0.0.1:5432/app",
            "postgres://postgres@127.0.0.1:5432/app?port=5433",
        ),
        (
            "mysql://root@127.0.0.1:3306/app",
            "mysql://root@127.0.0.1:3306/app_staging?dbname=app",
        ),
    ] {
        let config = dir.config("spell", &[("dev", base), ("staging", other)])?;
        let out = dir.run(&config, &["status"]).await?;
        assert!(
            !said(&out).contains("point at the same database"),
            "{base} vs {other}: {}",
            shown(&out)
        );
    }
    Ok(())
}

/// `search_path` in a Postgres URL's options, in each spelling the driver
/// takes, is refused at load naming the environment, before any connection.
#[tokio::test]
async fn a_search_path_in_the_url_options_is_refused_at_load() -> TestResult {
    let dir = Dir::new()?;
    for url in [
        "postgres://postgres@127.0.0.1:5432/app?options=-c%20search_path%3Dother",
        "postgres://postgres@127.0.0.1:5432/app?options=--search-path%3Dother",
        "postgres://postgres@127.0.0.1:5432/app?options[search_path]=other",
        "postgres://postgres@127.0.0.1:5432/app?options=-c%20SEARCH_PATH%3Dother",
    ] {
        let config = dir.config("sp", &[("dev", url)])?;
        let out = dir.run(&config, &["status"]).await?;
        assert_eq!(out.status.code(), Some(2), "{url}: {}", shown(&out));
        assert!(
            said(&out).contains("dev.database_url sets search_path"),
            "{url}: {}",
            shown(&out)
        );
    }
    Ok(())
}

/// SQLite spellings through `${VAR}` and symlinks, at config load.
#[tokio::test]
async fn sqlite_spellings_through_vars_and_symlinks_are_refused_at_load() -> TestResult {
    let dir = Dir::new()?;
    std::fs::write(dir.path.join("app.db"), b"")?;
    std::fs::create_dir_all(dir.path.join("sub"))?;
    #[cfg(unix)]
    std::os::unix::fs::symlink(dir.path.join("app.db"), dir.path.join("link.db"))?;
    let abs = format!("sqlite://{}", dir.path.join("app.db").display());
    for other in [
        "sqlite://${DB_FILE}",
        "sqlite://./sub/../app.db",
        "sqlite://link.db",
        abs.as_str(),
    ] {
        let config = dir.config("spell", &[("dev", "sqlite://app.db"), ("staging", other)])?;
        let out = run_in(&dir.path, &config, &["status"], &[("DB_FILE", "app.db")]).await?;
        assert_eq!(out.status.code(), Some(2), "{other}: {}", shown(&out));
        assert!(
            said(&out).contains("point at the same database"),
            "{other}: {}",
            shown(&out)
        );
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// The environment lock: new instances
// ---------------------------------------------------------------------------

/// One SQLite database, one environment, reached through a symlink in one
/// config and directly in another (a deploy folder linked as `current`):
/// the lock follows the file, not the path, so the two runs exclude each
/// other (one applies phase 1, the other phase 2) and create no side-car.
async fn symlinked_lock(db: TestDb) -> TestResult {
    let dir = Dir::new()?;
    let link = dir.path.join("link.db");
    #[cfg(unix)]
    std::os::unix::fs::symlink(&db.name, &link)?;
    one_file_two_paths(db, dir, &link).await
}

/// The same, with the file spelt through `..` (`<dir>/../<file>`).
async fn dotted_lock(db: TestDb) -> TestResult {
    let dir = Dir::new()?;
    let file = Path::new(&db.name).file_name().map(PathBuf::from);
    let dotted = dir.path.join("..").join(file.unwrap_or_default());
    one_file_two_paths(db, dir, &dotted).await
}

/// Two applies at once of one environment, one config naming the database
/// by its path, the other by `other`: one applies phase 1, the other phase
/// 2, and no side-car lock file appears.
async fn one_file_two_paths(db: TestDb, dir: Dir, other: &Path) -> TestResult {
    seed(&db).await?;
    let link = other;
    let direct = dir.config("direct", &[(ENV, &db.url)])?;
    let linked = dir.config("linked", &[(ENV, &format!("sqlite://{}", link.display()))])?;
    let (a, b) = tokio::join!(
        dir.run(&direct, &["apply", "--env", ENV, PLAN]),
        dir.run(&linked, &["apply", "--env", ENV, PLAN])
    );
    let (a, b) = (a?, b?);
    let all = format!("{}\n=====\n{}", shown(&a), shown(&b));
    let side_car = PathBuf::from(format!("{}.phasegate-lock", db.name));
    assert!(
        !side_car.exists(),
        "a side-car lock file was created: {all}"
    );
    assert!(
        a.status.code() == Some(0) && b.status.code() == Some(0),
        "both apply, one phase each:\n{all}"
    );
    let out = format!("{}{}", said(&a), said(&b));
    assert!(
        out.contains("phase 1 of 3 applied") && out.contains("phase 2 of 3 applied"),
        "{all}"
    );
    let log = events(&db).await;
    assert_eq!(
        log.iter().filter(|e| e.1 == "phase_migrated").count(),
        2,
        "{log:#?}"
    );
    Ok(())
}

#[tokio::test]
async fn a_symlinked_sqlite_path_takes_the_same_environment_lock() {
    for _ in 0..3 {
        with_sqlite(symlinked_lock).await;
    }
}

#[tokio::test]
async fn a_dotted_sqlite_path_takes_the_same_environment_lock() {
    for _ in 0..3 {
        with_sqlite(dotted_lock).await;
    }
}

// ---------------------------------------------------------------------------
// First use of a fresh database under concurrency: other commands
// ---------------------------------------------------------------------------

/// Four `backup` and two `status` at once on a fresh database: the backups
/// all record, the statuses never fail on half-made tables.
async fn fresh_backups(db: TestDb) -> TestResult {
    seed(&db).await?;
    let project = Project::new(&db, &["lock_wait: 60s"], PLAN, RENAME)?;
    let mut runs = Vec::new();
    for i in 0..6 {
        let args: &[&str] = if i % 3 == 2 {
            &["status"]
        } else {
            &["backup", "--env", ENV, "--location", "s3://backups/b2"]
        };
        runs.push(run(&project, args));
    }
    let outs = futures::future::join_all(runs).await;
    let outs: Vec<Output> = outs.into_iter().collect::<Result<_, _>>()?;
    let all = outs.iter().map(shown).collect::<Vec<_>>().join("\n=====\n");
    assert!(
        outs.iter().all(|o| o.status.code() == Some(0)),
        "all succeed:\n{all}"
    );
    let log = events(&db).await;
    assert_eq!(
        log.iter().filter(|e| e.1.contains("backup")).count(),
        4,
        "{log:#?}\n{all}"
    );
    Ok(())
}

#[tokio::test]
async fn backups_and_statuses_at_once_on_a_fresh_database_on_mysql() {
    for _ in 0..2 {
        with_mysql(fresh_backups).await;
    }
}

#[tokio::test]
async fn backups_and_statuses_at_once_on_a_fresh_database_on_postgres() {
    for _ in 0..2 {
        with_postgres(fresh_backups).await;
    }
}

#[tokio::test]
async fn backups_and_statuses_at_once_on_a_fresh_database_on_sqlite() {
    for _ in 0..2 {
        with_sqlite(fresh_backups).await;
    }
}

// ---------------------------------------------------------------------------
// The recorded promotion order: new instances
// ---------------------------------------------------------------------------

/// SQLite databases `<env>.db` in `dir`, each with the users table.
async fn sqlite_envs(dir: &Dir, envs: &[&str]) -> TestResult {
    for e in envs {
        let url = format!(
            "sqlite://{}?mode=rwc",
            dir.path.join(format!("{e}.db")).display()
        );
        let mut c = sqlx::SqliteConnection::connect(&url).await?;
        sqlx::raw_sql(
            "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT); INSERT INTO users VALUES (1, 'ada')",
        )
        .execute(&mut c)
        .await?;
        c.close().await?;
    }
    Ok(())
}

fn envs_config(dir: &Dir, envs: &[&str]) -> TestResult<PathBuf> {
    let list: Vec<(String, String)> = envs
        .iter()
        .map(|e| (e.to_string(), format!("sqlite://{e}.db")))
        .collect();
    let refs: Vec<(&str, &str)> = list.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    dir.config("phasegate", &refs)
}

/// Reordered after the plan started: prod moved before staging.
#[tokio::test]
async fn a_reordered_promotion_order_keeps_prod_behind_staging() -> TestResult {
    let dir = Dir::new()?;
    sqlite_envs(&dir, &["dev", "staging", "prod"]).await?;
    let config = envs_config(&dir, &["dev", "staging", "prod"])?;
    let out = dir.run(&config, &["apply", "--env", "dev", PLAN]).await?;
    assert_eq!(out.status.code(), Some(0), "{}", shown(&out));
    let config = envs_config(&dir, &["dev", "prod", "staging"])?;
    let gate = dir.run(&config, &["gate", "--env", "prod", PLAN]).await?;
    assert_eq!(gate.status.code(), Some(1), "{}", shown(&gate));
    assert!(said(&gate).contains("staging"), "{}", shown(&gate));
    Ok(())
}

/// Renamed after the plan started: staging replaced by `qa` (its own new
/// database), which then runs phase 1 and records the new order in its own
/// log. The order the plan started under (dev → staging → prod) is read
/// where the plan started first (dev), so prod's gate still asks for
/// staging, and names `accept-change --env dev` as the deliberate way on.
#[tokio::test]
async fn a_renamed_environment_does_not_stand_in_for_the_recorded_one() -> TestResult {
    let dir = Dir::new()?;
    sqlite_envs(&dir, &["dev", "staging", "qa", "prod"]).await?;
    let config = envs_config(&dir, &["dev", "staging", "prod"])?;
    let out = dir.run(&config, &["apply", "--env", "dev", PLAN]).await?;
    assert_eq!(out.status.code(), Some(0), "{}", shown(&out));
    let config = envs_config(&dir, &["dev", "qa", "prod"])?;
    let out = dir.run(&config, &["apply", "--env", "qa", PLAN]).await?;
    assert_eq!(out.status.code(), Some(0), "{}", shown(&out));
    let gate = dir.run(&config, &["gate", "--env", "prod", PLAN]).await?;
    assert_eq!(gate.status.code(), Some(1), "{}", shown(&gate));
    assert!(said(&gate).contains("staging"), "{}", shown(&gate));
    assert!(
        said(&gate).contains("accept-change --env dev"),
        "{}",
        shown(&gate)
    );
    Ok(())
}

/// The rename again: `status` (which reads every environment at once)
/// holds prod for the same reason as `gate`, and `apply` in prod runs
/// nothing; `accept-change --env dev` records the new order where the plan
/// started first, after which prod may follow qa.
#[tokio::test]
async fn a_renamed_environment_holds_status_and_apply_until_the_change_is_accepted() -> TestResult {
    let dir = Dir::new()?;
    sqlite_envs(&dir, &["dev", "staging", "qa", "prod"]).await?;
    let config = envs_config(&dir, &["dev", "staging", "prod"])?;
    let out = dir.run(&config, &["apply", "--env", "dev", PLAN]).await?;
    assert_eq!(out.status.code(), Some(0), "{}", shown(&out));
    let config = envs_config(&dir, &["dev", "qa", "prod"])?;
    let out = dir.run(&config, &["apply", "--env", "qa", PLAN]).await?;
    assert_eq!(out.status.code(), Some(0), "{}", shown(&out));
    let status = dir.run(&config, &["status", "--env", "prod"]).await?;
    assert!(
        said(&status).contains("staging was before prod"),
        "{}",
        shown(&status)
    );
    let apply = dir.run(&config, &["apply", "--env", "prod", PLAN]).await?;
    assert_eq!(apply.status.code(), Some(1), "{}", shown(&apply));
    assert!(!prod_has_log(&dir).await?, "phase 1 ran in prod");
    let accept = dir
        .run(
            &config,
            &[
                "accept-change",
                "--env",
                "dev",
                PLAN,
                "--reason",
                "staging renamed qa",
            ],
        )
        .await?;
    assert_eq!(accept.status.code(), Some(0), "{}", shown(&accept));
    let gate = dir.run(&config, &["gate", "--env", "prod", PLAN]).await?;
    assert_eq!(gate.status.code(), Some(0), "{}", shown(&gate));
    assert!(!said(&gate).contains("staging"), "{}", shown(&gate));
    assert!(
        said(&gate).contains("qa completed phase 1"),
        "{}",
        shown(&gate)
    );
    Ok(())
}

/// An environment that joined after the plan started (canary, in place of
/// staging) records its own order when it runs phase 1; prod is still held
/// to dev's (dev → staging → prod). With staging back before canary, the
/// added environment only makes the order longer, and is not a reason.
#[tokio::test]
async fn an_added_environment_does_not_replace_where_the_plan_started() -> TestResult {
    let dir = Dir::new()?;
    sqlite_envs(&dir, &["dev", "staging", "canary", "prod"]).await?;
    let config = envs_config(&dir, &["dev", "staging", "prod"])?;
    let out = dir.run(&config, &["apply", "--env", "dev", PLAN]).await?;
    assert_eq!(out.status.code(), Some(0), "{}", shown(&out));
    let config = envs_config(&dir, &["dev", "canary", "prod"])?;
    let out = dir
        .run(&config, &["apply", "--env", "canary", PLAN])
        .await?;
    assert_eq!(out.status.code(), Some(0), "{}", shown(&out));
    let gate = dir.run(&config, &["gate", "--env", "prod", PLAN]).await?;
    assert_eq!(gate.status.code(), Some(1), "{}", shown(&gate));
    assert!(
        said(&gate).contains("staging was before prod"),
        "{}",
        shown(&gate)
    );
    let config = envs_config(&dir, &["dev", "staging", "canary", "prod"])?;
    let gate = dir.run(&config, &["gate", "--env", "prod", PLAN]).await?;
    assert!(!said(&gate).contains("was before prod"), "{}", shown(&gate));
    Ok(())
}

// ---------------------------------------------------------------------------
// Status and gate when an environment cannot be read: new instances
// ---------------------------------------------------------------------------

/// An environment whose database file is not a database at all.
#[tokio::test]
async fn status_and_gate_exit_2_on_a_file_that_is_not_a_database() -> TestResult {
    let dir = Dir::new()?;
    std::fs::write(
        dir.path.join("junk.db"),
        b"this is not a SQLite database, just text\n",
    )?;
    let config = dir.config("junk", &[("dev", "sqlite://junk.db")])?;
    let status = dir.run(&config, &["status"]).await?;
    assert_eq!(status.status.code(), Some(2), "{}", shown(&status));
    let json = dir.run(&config, &["status", "--format", "json"]).await?;
    assert_eq!(json.status.code(), Some(2), "{}", shown(&json));
    let gate = dir.run(&config, &["gate", "--env", "dev", PLAN]).await?;
    assert_eq!(gate.status.code(), Some(2), "{}", shown(&gate));
    assert_eq!(
        std::fs::read(dir.path.join("junk.db"))?,
        b"this is not a SQLite database, just text\n",
        "the file is left as it was"
    );
    Ok(())
}

/// A server that accepts the connection but is not the database the URL
/// names (wrong password / user): status and gate exit 2 with JSON too.
#[tokio::test]
async fn status_and_gate_exit_2_on_a_refused_login() -> TestResult {
    let dir = Dir::new()?;
    let config = dir.config(
        "login",
        &[
            ("dev", "postgres://no_such_user_b2@127.0.0.1:5432/postgres"),
            ("staging", "mysql://no_such_user_b2@127.0.0.1:3306/test"),
        ],
    )?;
    let status = dir.run(&config, &["status"]).await?;
    assert_eq!(status.status.code(), Some(2), "{}", shown(&status));
    let json = dir.run(&config, &["status", "--format", "json"]).await?;
    assert_eq!(json.status.code(), Some(2), "{}", shown(&json));
    serde_json::from_slice::<serde_json::Value>(&json.stdout)
        .map_err(|e| fail(format!("status --format json: {e}\n{}", shown(&json))))?;
    let gate = dir
        .run(&config, &["gate", "--env", "staging", PLAN])
        .await?;
    assert_eq!(gate.status.code(), Some(2), "{}", shown(&gate));
    Ok(())
}

// ---------------------------------------------------------------------------
// Read-only commands create nothing: new instances
// ---------------------------------------------------------------------------

/// The library's read-only start-up check on a misspelt SQLite path.
#[tokio::test]
async fn phase_reached_does_not_create_a_misspelt_sqlite_file() -> TestResult {
    let dir = Dir::new()?;
    let missing = dir.path.join("mispelt.db");
    let url = format!("sqlite://{}", missing.display());
    let _ = phasegate::tracker::phase_reached(&url, PLAN, 1).await;
    assert!(
        !missing.exists(),
        "phase_reached created {}",
        missing.display()
    );
    let lock = dir.path.join("mispelt.db.phasegate-lock");
    assert!(!lock.exists(), "phase_reached created {}", lock.display());
    Ok(())
}

/// Read-only commands on a MySQL URL whose database does not exist, and on
/// a SQLite path in a folder that does not exist: nothing created.
#[tokio::test]
async fn read_only_commands_create_no_database_or_folder() -> TestResult {
    let dir = Dir::new()?;
    let name = format!("phasegate_b2_missing_{}", std::process::id());
    let config = dir.config(
        "ro",
        &[
            ("dev", "sqlite://nested/deeper/dev.db"),
            ("staging", &format!("mysql://root@127.0.0.1:3306/{name}")),
        ],
    )?;
    for args in [
        vec!["status"],
        vec!["history", "--env", "dev"],
        vec!["history", "--env", "staging"],
        vec!["gate", "--env", "dev", PLAN],
        vec!["gate", "--env", "staging", PLAN],
        vec!["verify", "--env", "staging", PLAN],
        vec!["plan", "--env", "staging", PLAN],
    ] {
        let out = dir.run(&config, &args).await?;
        assert_ne!(out.status.code(), Some(0), "{args:?}: {}", shown(&out));
        assert!(
            !said(&out).contains("panicked"),
            "{args:?}: {}",
            shown(&out)
        );
    }
    assert!(!dir.path.join("nested").exists(), "a folder was created");
    let server =
        std::env::var(common::MYSQL_URL_ENV).unwrap_or_else(|_| common::DEFAULT_MYSQL_URL.into());
    if let Ok(mut c) = sqlx::MySqlConnection::connect(&server).await {
        let n: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?",
        )
        .bind(&name)
        .fetch_one(&mut c)
        .await?;
        assert_eq!(n, 0, "a database was created");
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// More: the lock around hand-recorded events, newer or garbled logs
// ---------------------------------------------------------------------------

/// Three `mark` of one phase at once (three CI jobs racing): one records
/// the deploy, the others are refused; never three deploy events.
async fn marks_at_once(db: TestDb) -> TestResult {
    let project = applied(&db).await?;
    let out = run(&project, &["apply", "--env", ENV, PLAN]).await?;
    assert_eq!(out.status.code(), Some(0), "{}", shown(&out));
    let runs = (1..=3).map(|i| {
        let v = format!("v{i}");
        let project = &project;
        async move {
            run(
                project,
                &[
                    "mark",
                    "--env",
                    ENV,
                    PLAN,
                    "--phase",
                    "2",
                    "--app-version",
                    &v,
                ],
            )
            .await
        }
    });
    let outs: Vec<Output> = futures::future::join_all(runs)
        .await
        .into_iter()
        .collect::<Result<_, _>>()?;
    let all = outs.iter().map(shown).collect::<Vec<_>>().join("\n=====\n");
    assert_eq!(
        outs.iter().filter(|o| o.status.code() == Some(0)).count(),
        1,
        "{all}"
    );
    assert!(
        outs.iter().all(|o| matches!(o.status.code(), Some(0 | 1))),
        "{all}"
    );
    let deployed = events(&db)
        .await
        .iter()
        .filter(|e| e.1 == "phase_deployed")
        .count();
    assert_eq!(deployed, 2, "phase 1 and phase 2 once each\n{all}");
    Ok(())
}

#[tokio::test]
async fn three_marks_at_once_record_one_deploy_on_postgres() {
    with_postgres(marks_at_once).await;
}

#[tokio::test]
async fn three_marks_at_once_record_one_deploy_on_mysql() {
    with_mysql(marks_at_once).await;
}

#[tokio::test]
async fn three_marks_at_once_record_one_deploy_on_sqlite() {
    with_sqlite(marks_at_once).await;
}

/// Applies, rollbacks and gates at once on a fresh database: each either
/// works or is refused (exit 0 or 1), never a database error from tables
/// half made (exit 2).
async fn fresh_mixed(db: TestDb) -> TestResult {
    seed(&db).await?;
    let project = Project::new(&db, &["lock_wait: 60s"], PLAN, RENAME)?;
    let runs = (0..6).map(|i| {
        let args: &[&str] = match i % 3 {
            0 => &["apply", "--env", ENV, PLAN],
            1 => &["rollback", "--env", ENV, PLAN],
            _ => &["gate", "--env", ENV, PLAN],
        };
        run(&project, args)
    });
    let outs: Vec<Output> = futures::future::join_all(runs)
        .await
        .into_iter()
        .collect::<Result<_, _>>()?;
    let names = ["apply", "rollback", "gate"];
    let all = outs
        .iter()
        .enumerate()
        .map(|(i, o)| format!("[{}] {}", names[i % 3], shown(o)))
        .collect::<Vec<_>>()
        .join("\n=====\n");
    assert!(
        outs.iter().all(|o| matches!(o.status.code(), Some(0 | 1))),
        "{all}"
    );
    let status = run(&project, &["status"]).await?;
    assert_eq!(status.status.code(), Some(0), "{}\n{all}", shown(&status));
    Ok(())
}

#[tokio::test]
async fn applies_rollbacks_and_gates_at_once_on_a_fresh_database_on_mysql() {
    for _ in 0..2 {
        with_mysql(fresh_mixed).await;
    }
}

#[tokio::test]
async fn applies_rollbacks_and_gates_at_once_on_a_fresh_database_on_postgres() {
    for _ in 0..2 {
        with_postgres(fresh_mixed).await;
    }
}

#[tokio::test]
async fn applies_rollbacks_and_gates_at_once_on_a_fresh_database_on_sqlite() {
    for _ in 0..2 {
        with_sqlite(fresh_mixed).await;
    }
}

/// The log's schema version edited: a newer one (a later phasegate wrote
/// it), and one that is not a number. Refused clearly, nothing applied.
async fn version_edited(db: TestDb) -> TestResult {
    let project = applied(&db).await?;
    let key = db.pick3("key", "key", "`key`");
    let set =
        |v: &str| format!("UPDATE phasegate_meta SET value = '{v}' WHERE {key} = 'schema_version'");
    // The guard refuses lowering the version or making it unreadable.
    db.assert_fails(&set("1"), "cannot be changed or deleted")
        .await?;
    db.assert_fails(&set("two"), "cannot be changed or deleted")
        .await?;
    // Raising it (what a later phasegate does) passes the guard.
    db.exec(&set("99")).await?;
    assert_refused(&db, &project).await?;
    // And with the guard dropped and put back: not a number.
    behind_guard(
        &db,
        meta_update_guard(&db),
        "phasegate_meta",
        &[&set("two")],
    )
    .await?;
    assert_refused(&db, &project).await
}

#[tokio::test]
async fn an_edited_schema_version_is_refused_on_postgres() {
    with_postgres(version_edited).await;
}

#[tokio::test]
async fn an_edited_schema_version_is_refused_on_mysql() {
    with_mysql(version_edited).await;
}

#[tokio::test]
async fn an_edited_schema_version_is_refused_on_sqlite() {
    with_sqlite(version_edited).await;
}

/// The environment marker changed to another environment's name (refused
/// by its guard; done with the guard dropped and put back): the
/// environment that wrote the log is refused, never re-claims it quietly.
async fn marker_changed(db: TestDb) -> TestResult {
    let project = applied(&db).await?;
    let key = db.pick3("key", "key", "`key`");
    let update = format!("UPDATE phasegate_meta SET value = 'prod' WHERE {key} = 'environment'");
    db.assert_fails(&update, "cannot be changed or deleted")
        .await?;
    behind_guard(&db, meta_update_guard(&db), "phasegate_meta", &[&update]).await?;
    assert_refused(&db, &project).await
}

#[tokio::test]
async fn a_changed_environment_marker_is_refused_on_sqlite() {
    with_sqlite(marker_changed).await;
}

#[tokio::test]
async fn a_changed_environment_marker_is_refused_on_mysql() {
    with_mysql(marker_changed).await;
}

#[tokio::test]
async fn a_changed_environment_marker_is_refused_on_postgres() {
    with_postgres(marker_changed).await;
}

/// `status` (which takes no lock) read again and again while `backup`s
/// append to the log: it must never read a torn log (the events before an
/// append, the head after it) as a tampered one.
async fn status_while_writing(db: TestDb) -> TestResult {
    let project = applied(&db).await?;
    let writer = async {
        for _ in 0..8 {
            let out = run(
                &project,
                &["backup", "--env", ENV, "--location", "s3://backups/b2"],
            )
            .await?;
            assert_eq!(out.status.code(), Some(0), "{}", shown(&out));
        }
        TestResult::Ok(())
    };
    let reader = async {
        let mut torn = Vec::new();
        for _ in 0..8 {
            let out = run(&project, &["status"]).await?;
            if out.status.code() != Some(0) {
                torn.push(shown(&out));
            }
        }
        TestResult::Ok(torn)
    };
    let (w, r) = tokio::join!(writer, reader);
    w?;
    let torn = r?;
    assert!(torn.is_empty(), "{}", torn.join("\n=====\n"));
    Ok(())
}

#[tokio::test]
async fn status_while_backups_append_never_says_tampered_on_postgres() {
    with_postgres(status_while_writing).await;
}

#[tokio::test]
async fn status_while_backups_append_never_says_tampered_on_mysql() {
    with_mysql(status_while_writing).await;
}

#[tokio::test]
async fn status_while_backups_append_never_says_tampered_on_sqlite() {
    with_sqlite(status_while_writing).await;
}

/// The environment promoted from cannot be read (its database file gone):
/// prod's gate cannot judge promotion and must say so, never "may proceed"
/// on a guess; apply runs nothing in prod.
#[tokio::test]
async fn prod_gate_holds_nothing_when_staging_cannot_be_read() -> TestResult {
    let dir = Dir::new()?;
    sqlite_envs(&dir, &["dev", "staging", "prod"]).await?;
    let config = envs_config(&dir, &["dev", "staging", "prod"])?;
    for env in ["dev", "staging"] {
        let out = dir.run(&config, &["apply", "--env", env, PLAN]).await?;
        assert_eq!(out.status.code(), Some(0), "{}", shown(&out));
    }
    std::fs::rename(
        dir.path.join("staging.db"),
        dir.path.join("staging.db.moved"),
    )?;
    // It says so as a blocked gate (exit 1, "cannot read staging"), not
    // as an error (exit 2): non-zero either way.
    let gate = dir.run(&config, &["gate", "--env", "prod", PLAN]).await?;
    assert!(
        matches!(gate.status.code(), Some(1 | 2)),
        "{}",
        shown(&gate)
    );
    assert!(
        said(&gate).contains("cannot read staging"),
        "{}",
        shown(&gate)
    );
    let apply = dir.run(&config, &["apply", "--env", "prod", PLAN]).await?;
    assert!(
        matches!(apply.status.code(), Some(1 | 2)),
        "{}",
        shown(&apply)
    );
    assert!(!prod_has_log(&dir).await?, "prod ran nothing");
    Ok(())
}

/// Two environments whose URLs differ only in which variable names the
/// database, both variables set to the same name: refused at load.
#[tokio::test]
async fn two_variables_naming_one_database_are_refused_at_load() -> TestResult {
    let dir = Dir::new()?;
    let config = dir.config(
        "vars",
        &[
            ("dev", "postgres://postgres@127.0.0.1:5432/${DEV_DB}"),
            ("staging", "postgres://postgres@localhost/${STAGING_DB}"),
        ],
    )?;
    let out = run_in(
        &dir.path,
        &config,
        &["status"],
        &[("DEV_DB", "app_b2"), ("STAGING_DB", "app_b2")],
    )
    .await?;
    assert_eq!(out.status.code(), Some(2), "{}", shown(&out));
    assert!(
        said(&out).contains("point at the same database"),
        "{}",
        shown(&out)
    );
    Ok(())
}

/// One SQLite file reached through a hard link by a second config of the
/// same environment: the lock follows the file's identity, so two applies
/// at once exclude each other.
async fn hardlinked_lock(db: TestDb) -> TestResult {
    seed(&db).await?;
    let dir = Dir::new()?;
    let link = dir.path.join("hard.db");
    std::fs::hard_link(&db.name, &link)?;
    let direct = dir.config("direct", &[(ENV, &db.url)])?;
    let linked = dir.config("linked", &[(ENV, &format!("sqlite://{}", link.display()))])?;
    let (a, b) = tokio::join!(
        dir.run(&direct, &["apply", "--env", ENV, PLAN]),
        dir.run(&linked, &["apply", "--env", ENV, PLAN])
    );
    let (a, b) = (a?, b?);
    let all = format!("{}\n=====\n{}", shown(&a), shown(&b));
    let side_car = PathBuf::from(format!("{}.phasegate-lock", db.name));
    assert!(
        !side_car.exists(),
        "a side-car lock file was created: {all}"
    );
    let out = format!("{}{}", said(&a), said(&b));
    assert!(
        a.status.code() == Some(0)
            && b.status.code() == Some(0)
            && out.contains("phase 1 of 3 applied")
            && out.contains("phase 2 of 3 applied"),
        "{all}"
    );
    Ok(())
}

#[tokio::test]
async fn a_hard_linked_sqlite_path_takes_the_same_environment_lock() {
    for _ in 0..3 {
        with_sqlite(hardlinked_lock).await;
    }
}

/// Whether prod.db has a column `full_name` (phase 1 ran there).
async fn prod_has_log(dir: &Dir) -> TestResult<bool> {
    let url = format!("sqlite://{}", dir.path.join("prod.db").display());
    let mut c = sqlx::SqliteConnection::connect(&url).await?;
    let n: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pragma_table_info('users') WHERE name = 'full_name'",
    )
    .fetch_one(&mut c)
    .await?;
    c.close().await?;
    Ok(n > 0)
}

/// A log made to look older than the chain (schema version 1: no chain
/// columns, no head, no marker) after events were deleted from it: the
/// deletion should not become trusted history; read-only commands read
/// such a log as it is, and the first write migrates (chains) it.
async fn fake_v1(db: TestDb) -> TestResult {
    let project = applied(&db).await?;
    let sql: &[&str] = match db.dialect {
        Dialect::Postgres => &[
            "DROP TRIGGER phasegate_events_chain ON phasegate_events",
            "DROP TRIGGER phasegate_events_no_truncate ON phasegate_events",
            "DROP TRIGGER phasegate_events_append_only ON phasegate_events",
            "DROP TRIGGER phasegate_meta_kept ON phasegate_meta",
            "DROP TRIGGER phasegate_meta_no_truncate ON phasegate_meta",
            "DROP TABLE phasegate_head",
            "ALTER TABLE phasegate_events DROP COLUMN prev_hash, DROP COLUMN hash",
        ],
        Dialect::Mysql => &[
            "DROP TRIGGER phasegate_events_chain_check",
            "DROP TRIGGER phasegate_events_chain",
            "DROP TRIGGER phasegate_events_no_delete",
            "DROP TRIGGER phasegate_meta_no_update",
            "DROP TRIGGER phasegate_meta_no_delete",
            "DROP TABLE phasegate_head",
            "ALTER TABLE phasegate_events DROP COLUMN prev_hash, DROP COLUMN hash",
        ],
        Dialect::Sqlite => &[
            "DROP TRIGGER phasegate_events_chain_check",
            "DROP TRIGGER phasegate_events_chain",
            "DROP TRIGGER phasegate_events_no_delete",
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
    db.exec("DELETE FROM phasegate_events WHERE kind IN ('phase_migrated', 'phase_deployed')")
        .await?;
    let status = run(&project, &["status"]).await?;
    assert_ne!(status.status.code(), Some(0), "{}", shown(&status));
    Ok(())
}

#[tokio::test]
#[ignore = "BREAKS (documented limit, src/tracker/chain.rs and docs/workflow.md): with DDL rights, a v2 log disguised as schema version 1 (chain columns, head, v2 guards and marker dropped) with events deleted is read as a genuine old log: status 'phase 1 of 3: migrating; next: apply phase 1', exit 0"]
async fn a_log_disguised_as_an_older_version_is_noticed_on_sqlite() {
    with_sqlite(fake_v1).await;
}

#[tokio::test]
#[ignore = "BREAKS (documented limit, src/tracker/chain.rs and docs/workflow.md): with DDL rights, a v2 log disguised as schema version 1 (chain columns, head, v2 guards and marker dropped) with events deleted is read as a genuine old log: status 'phase 1 of 3: migrating; next: apply phase 1', exit 0"]
async fn a_log_disguised_as_an_older_version_is_noticed_on_mysql() {
    with_mysql(fake_v1).await;
}

#[tokio::test]
#[ignore = "BREAKS (documented limit, src/tracker/chain.rs and docs/workflow.md): the hash has no secret, so an INSERT with a correctly computed hash that follows the head is accepted; status reports phase 2 migrated though it never ran, exit 0. Needs a keyed chain (not built)"]
async fn a_forged_event_with_a_computed_hash_is_noticed_on_mysql() {
    with_mysql(forged_good_hash).await;
}
