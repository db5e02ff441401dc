//! What the Alembic and Django runner tests share: the Python interpreter
//! `.ci/run` installs them into (`PHASEGATE_PYTHON`), a throwaway project
//! folder, running the real runner, and deploys made by hand whose SQL is
//! hard to carry through a Python file and a driver (quotes, backslashes,
//! `:name`, `%`, `?`, newlines, non-ASCII, a multi-line `DO` block) with a
//! statement that fails inside a transaction (Postgres `CREATE INDEX
//! CONCURRENTLY`).

#![allow(dead_code)]

pub mod plans;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

use phasegate::dialect::Dialect;
use phasegate::export::{Deploy, ExportFile, Unit};

use crate::common::{REQUIRE_ENV, TestDb, TestResult, fail, loud};

/// The interpreter with the runners installed, from `PHASEGATE_PYTHON`.
/// Unset: a failure under `PHASEGATE_REQUIRE_DATABASES=1` (CI), else one
/// loud `SKIPPED:` line and `None`.
pub fn python() -> Option<String> {
    match std::env::var("PHASEGATE_PYTHON") {
        Ok(p) if !p.is_empty() => Some(p),
        _ => {
            assert!(
                std::env::var(REQUIRE_ENV).as_deref() != Ok("1"),
                "PHASEGATE_PYTHON is not set: run .ci/run, which installs Alembic and Django into .ci/tools/venv and sets it"
            );
            loud(format_args!(
                "SKIPPED: {}: PHASEGATE_PYTHON is not set (.ci/run sets it)",
                std::thread::current().name().unwrap_or("test")
            ));
            None
        }
    }
}

/// A fresh folder under the system temp folder, removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(what: &str) -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "phasegate-{what}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Writes `files` under `dir`, creating folders.
pub fn write_files(dir: &Path, files: &[ExportFile]) -> TestResult {
    for f in files {
        let path = dir.join(&f.path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&path, &f.contents)?;
    }
    Ok(())
}

/// Writes one file under `dir`.
pub fn write(dir: &Path, path: &str, contents: &str) -> TestResult {
    let path = dir.join(path);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(path, contents)?;
    Ok(())
}

/// The database as a URL Python parses (SQLAlchemy's spelling: driver
/// named, SQLite as `sqlite:////absolute/path`).
pub fn sqlalchemy_url(db: &TestDb) -> String {
    match db.dialect {
        Dialect::Postgres => db.url.replacen("postgres://", "postgresql+psycopg2://", 1),
        Dialect::Mysql => db.url.replacen("mysql://", "mysql+pymysql://", 1),
        Dialect::Sqlite => format!("sqlite:///{}", db.name),
    }
}

/// Runs `python args…` in `dir` with `PHASEGATE_TEST_DATABASE_URL` set.
pub fn run(python: &str, dir: &Path, url: &str, args: &[&str]) -> TestResult<Output> {
    Command::new(python)
        .args(args)
        .current_dir(dir)
        .env("PHASEGATE_TEST_DATABASE_URL", url)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
        .map_err(|e| fail(format!("running {python} {args:?}: {e}")))
}

/// Like [`run`], failing with the runner's output unless it succeeds.
pub fn run_ok(python: &str, dir: &Path, url: &str, args: &[&str]) -> TestResult<Output> {
    let out = run(python, dir, url, args)?;
    if !out.status.success() {
        return Err(fail(format!(
            "{args:?} failed ({}):\n{}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    Ok(out)
}

/// The value the hand-made deploy inserts: everything a Python literal, a
/// bind-parameter parser or a `%`-formatting driver could mangle.
pub const AWKWARD: &str =
    "it's \"q\" :name :1 ?? %s 100% %% \\n \\ ::text $1\nline two café 日本 🦀";

fn unit(name: &str, transactional: bool, statements: Vec<String>) -> Unit {
    Unit {
        name: name.into(),
        transactional,
        comments: vec![format!("{name}: hand-made for the runner test")],
        statements,
        steps: vec![format!("1.{name}")],
    }
}

/// The team's own tables the deploys change: `things (id, old)` and
/// `journal (what)`, as one SQL text per statement.
pub fn baseline(dialect: Dialect) -> Vec<String> {
    let text = if dialect == Dialect::Mysql {
        "varchar(200)"
    } else {
        "text"
    };
    vec![
        format!("CREATE TABLE things (id integer PRIMARY KEY, old {text})"),
        format!("CREATE TABLE journal (what {text})"),
        "INSERT INTO things (id, old) VALUES (1, 'one')".into(),
    ]
}

/// Two hand-made deploys on `dialect`: a reversible expand (a column, a row
/// with [`AWKWARD`], on Postgres a `DO` block, an index built outside a
/// transaction where the dialect has one, and a journal entry after it),
/// and an irreversible contract (drops `things.old`).
pub fn deploys(dialect: Dialect) -> Vec<Deploy> {
    let q = |s: &str| dialect.quote_literal(s);
    let text = if dialect == Dialect::Mysql {
        "varchar(200)"
    } else {
        "text"
    };
    let mut add = vec![
        format!("ALTER TABLE things ADD COLUMN label {text};"),
        format!(
            "INSERT INTO things (id, old, label) VALUES (2, 'two', {});",
            q(AWKWARD)
        ),
    ];
    if dialect == Dialect::Postgres {
        add.insert(0, "SET lock_timeout = '2s';".into());
        add.push(
            "DO $$\nDECLARE n integer;\nBEGIN\n  n := (SELECT count(*) FROM things WHERE label LIKE '%:name%');\n  IF n <> 1 THEN\n    RAISE EXCEPTION 'expected one row, found %', n;\n  END IF;\nEND\n$$;"
                .into(),
        );
    }
    let (index, drop_index, index_transactional) = match dialect {
        Dialect::Postgres => (
            "CREATE INDEX CONCURRENTLY things_label_idx ON things (label);",
            "DROP INDEX CONCURRENTLY things_label_idx;",
            false,
        ),
        Dialect::Mysql => (
            "CREATE INDEX things_label_idx ON things (label) ALGORITHM=INPLACE LOCK=NONE;",
            "DROP INDEX things_label_idx ON things;",
            false,
        ),
        Dialect::Sqlite => (
            "CREATE INDEX things_label_idx ON things (label);",
            "DROP INDEX things_label_idx;",
            true,
        ),
    };
    let expand = vec![
        unit("guard", true, vec!["SELECT 1;".into()]),
        unit("add_label", true, add),
        unit("create_index", index_transactional, vec![index.into()]),
        unit(
            "record",
            true,
            vec![format!(
                "INSERT INTO journal (what) VALUES ({});",
                q("indexed: 100% :done")
            )],
        ),
    ];
    let down = vec![
        unit(
            "undo_create_index",
            index_transactional,
            vec![drop_index.into()],
        ),
        unit(
            "undo_add_label",
            true,
            vec![
                "DELETE FROM things WHERE id = 2;".into(),
                "ALTER TABLE things DROP COLUMN label;".into(),
                "DELETE FROM journal;".into(),
            ],
        ),
    ];
    let contract = vec![unit(
        "drop_old",
        true,
        vec!["ALTER TABLE things DROP COLUMN old;".into()],
    )];
    let deploy = |phase, summary: &str, units, down| Deploy {
        plan: "runner-test".into(),
        phase,
        of: 2,
        dialect,
        summary: summary.into(),
        reversible: phase == 1,
        app: vec![format!("app step of deploy {phase}")],
        units,
        down,
    };
    vec![
        deploy(1, "expand: add things.label", expand, Some(down)),
        deploy(2, "contract: drop things.old", contract, None),
    ]
}

/// `things` as (id, label) after the expand.
pub async fn labels(db: &TestDb) -> TestResult<Vec<(i64, Option<String>)>> {
    Ok(db
        .rows("things", "id", "label")
        .await?
        .into_iter()
        .collect())
}

/// The Alembic environment the tests write.
pub mod alembic {
    /// env.py: the database from `PHASEGATE_TEST_DATABASE_URL`, one transaction
    /// per revision (as Alembic recommends with autocommit blocks), and on
    /// SQLite SQLAlchemy's recipe for transactional DDL with pysqlite.
    pub const ENV_PY: &str = r#"import os

from alembic import context
from sqlalchemy import create_engine, event

url = os.environ["PHASEGATE_TEST_DATABASE_URL"]
engine = create_engine(url)
if url.startswith("sqlite"):
    @event.listens_for(engine, "connect")
    def _no_pysqlite_transactions(dbapi_connection, connection_record):
        dbapi_connection.isolation_level = None

    @event.listens_for(engine, "begin")
    def _begin(conn):
        conn.exec_driver_sql("BEGIN")

with engine.connect() as connection:
    context.configure(connection=connection, transaction_per_migration=True)
    with context.begin_transaction():
        context.run_migrations()
"#;

    pub const INI: &str = "[alembic]\nscript_location = %(here)s/alembic\n";
}

/// The Django project the tests write.
pub mod django {
    pub const MANAGE_PY: &str = r#"import os
import sys

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "settings")
from django.core.management import execute_from_command_line

execute_from_command_line(sys.argv)
"#;

    /// settings.py: the database from `PHASEGATE_TEST_DATABASE_URL`.
    pub const SETTINGS_PY: &str = r#"import os
from urllib.parse import unquote, urlsplit

u = urlsplit(os.environ["PHASEGATE_TEST_DATABASE_URL"])
if u.scheme == "sqlite":
    DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": u.path[1:]}}
else:
    if u.scheme.startswith("mysql"):
        import pymysql

        pymysql.install_as_MySQLdb()
        engine = "django.db.backends.mysql"
    else:
        engine = "django.db.backends.postgresql"
    DATABASES = {
        "default": {
            "ENGINE": engine,
            "NAME": u.path.lstrip("/"),
            "USER": unquote(u.username or ""),
            "PASSWORD": unquote(u.password or ""),
            "HOST": u.hostname,
            "PORT": str(u.port or ""),
        }
    }
INSTALLED_APPS = ["shop"]
SECRET_KEY = "phasegate-runner-test"
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
"#;
}
