//! What the adversarial tracker suites (`break_tracker_*.rs`) share: a
//! seeded `users` table, scratch projects and config folders, running the
//! binary, and helpers that tamper with the log behind its guards.

#![allow(dead_code)]

pub use std::path::{Path, PathBuf};
pub use std::process::Output;
pub use std::sync::atomic::{AtomicUsize, Ordering};
pub use std::time::Duration;

pub use crate::common::{TestDb, TestResult, fail, with_mysql, with_postgres, with_sqlite};
pub use crate::executor_support::{ENV, Project, events};
pub use phasegate::dialect::Dialect;
pub use sha2::{Digest, Sha256};
use sqlx::Connection as _;

pub const PLAN: &str = "rename-users-name";
pub const RENAME: &str = "name: rename-users-name
changes:
  - rename_column: { table: users, from: name, to: full_name }
";

// ---------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------

pub async fn seed(db: &TestDb) -> TestResult {
    db.create_table("users", "id INTEGER PRIMARY KEY, name TEXT")
        .await?;
    db.exec("INSERT INTO users (id, name) VALUES (1, 'ada'), (2, 'grace'), (3, NULL)")
        .await?;
    Ok(())
}

/// A scratch folder with `plans/` and any number of config files, removed
/// (with the lock files named in `extra`) when dropped.
pub struct Dir {
    pub path: PathBuf,
    pub extra: Vec<PathBuf>,
}

impl Dir {
    pub fn new() -> TestResult<Dir> {
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
    pub fn config(&self, name: &str, envs: &[(&str, &str)]) -> TestResult<PathBuf> {
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

    pub async fn run(&self, config: &Path, args: &[&str]) -> TestResult<Output> {
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

pub async fn run_in(
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

pub async fn run(project: &Project, args: &[&str]) -> TestResult<Output> {
    run_in(&project.dir, &project.config_path(), args, &[]).await
}

pub fn shown(o: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout ---\n{}--- stderr ---\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

pub fn said(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A project on `db` with phase 1 of the rename applied (and deployed: it
/// has no app stage).
pub async fn applied(db: &TestDb) -> TestResult<Project> {
    seed(db).await?;
    let project = Project::new(db, &[], PLAN, RENAME)?;
    let out = run(&project, &["apply", "--env", ENV, PLAN]).await?;
    assert_eq!(out.status.code(), Some(0), "{}", shown(&out));
    Ok(project)
}

/// `status` (text and JSON), `gate` and `apply` all refuse a tampered log
/// with exit 2 and say so; `apply` records and changes nothing.
pub async fn assert_tampered(db: &TestDb, project: &Project) -> TestResult {
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
pub async fn assert_refused(db: &TestDb, project: &Project) -> TestResult {
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
pub fn forge_hash(
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
pub async fn definition(db: &TestDb, name: &str) -> TestResult<String> {
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
pub async fn behind_guard(db: &TestDb, name: &str, table: &str, sql: &[&str]) -> TestResult {
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
pub fn meta_update_guard(db: &TestDb) -> &'static str {
    db.pick3(
        "phasegate_meta_kept",
        "phasegate_meta_no_update",
        "phasegate_meta_no_update",
    )
}

/// The guard of `phasegate_meta` against `DELETE`.
pub fn meta_delete_guard(db: &TestDb) -> &'static str {
    db.pick3(
        "phasegate_meta_kept",
        "phasegate_meta_no_delete",
        "phasegate_meta_no_delete",
    )
}

/// SQLite databases `<env>.db` in `dir`, each with the users table.
pub async fn sqlite_envs(dir: &Dir, envs: &[&str]) -> TestResult {
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

pub fn envs_config(dir: &Dir, envs: &[&str]) -> TestResult<PathBuf> {
    let list: Vec<(String, String)> = envs
        .iter()
        .map(|e| (e.to_string(), format!("sqlite://{e}.db")))
        .collect();
    let refs: Vec<(&str, &str)> = list.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    dir.config("phasegate", &refs)
}

/// Whether prod.db has a column `full_name` (phase 1 ran there).
pub async fn prod_has_log(dir: &Dir) -> TestResult<bool> {
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
