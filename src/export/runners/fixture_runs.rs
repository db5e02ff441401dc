//! (tests) The files sqlx, dbmate and Supabase get, run by the real runner:
//! sqlx's own `Migrator` (what `sqlx migrate run` runs), the dbmate binary
//! (`PHASEGATE_DBMATE`) and the Supabase CLI (`PHASEGATE_SUPABASE`; both
//! installed and set by `.ci/run`), on Postgres, MariaDB and SQLite
//! (Supabase: Postgres, and no undo), with the fixture's deploys over stand-in phasegate tables: deploy
//! 1 up, its undo, up again, then the contract. This proves the layout
//! (no-transaction markers, the Postgres split, down files in the order the
//! runner reverts them); tests/runner_sqlx.rs and tests/runner_dbmate.rs run
//! real plans through `build`.
//!
//! Databases: `PHASEGATE_TEST_POSTGRES_URL`, `PHASEGATE_TEST_MYSQL_URL` (as
//! tests/common); nothing answering is a loud skip, or a failure with
//! `PHASEGATE_REQUIRE_DATABASES=1`. A missing runner binary is the same.

use std::panic::{AssertUnwindSafe, resume_unwind};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures::FutureExt;
use sqlx::migrate::Migrator;
use sqlx::{AssertSqlSafe, Connection};

use crate::dialect::Dialect;
use crate::export::{Deploy, Options, Runner, fixture, runners};

fn required() -> bool {
    std::env::var("PHASEGATE_REQUIRE_DATABASES").as_deref() == Ok("1")
}

fn skip(what: &str) {
    use std::io::Write;
    assert!(!required(), "{what} and PHASEGATE_REQUIRE_DATABASES=1");
    let _ = writeln!(std::io::stderr().lock(), "SKIPPED: {what}");
}

fn unique(prefix: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    format!(
        "{prefix}_{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A scratch database: its URL, and how to remove it.
struct Scratch {
    dialect: Dialect,
    url: String,
    /// Server admin URL and database name (Postgres, MySQL); file (SQLite).
    admin: Option<(String, String)>,
    file: Option<PathBuf>,
}

fn with_db(base: &str, db: &str) -> String {
    let after = base.find("://").map_or(0, |i| i + 3);
    let (head, query) = base.split_once('?').unwrap_or((base, ""));
    let root = match head[after..].find('/') {
        Some(i) => &head[..after + i],
        None => head,
    };
    if query.is_empty() {
        format!("{root}/{db}")
    } else {
        format!("{root}/{db}?{query}")
    }
}

async fn scratch(dialect: Dialect) -> Option<Scratch> {
    let name = unique("phasegate_sqlrun");
    let (env, default) = match dialect {
        Dialect::Sqlite => {
            let file = std::env::temp_dir().join(format!("{name}.db"));
            return Some(Scratch {
                dialect,
                url: format!("sqlite:{}?mode=rwc", file.display()),
                admin: None,
                file: Some(file),
            });
        }
        Dialect::Postgres => (
            "PHASEGATE_TEST_POSTGRES_URL",
            "postgres://postgres@127.0.0.1:5432/postgres",
        ),
        Dialect::Mysql => (
            "PHASEGATE_TEST_MYSQL_URL",
            "mysql://root@127.0.0.1:3306/test",
        ),
    };
    let admin = std::env::var(env).unwrap_or_else(|_| default.into());
    sqlx::any::install_default_drivers();
    let connect = sqlx::AnyConnection::connect(&admin);
    let mut conn = match tokio::time::timeout(Duration::from_secs(5), connect).await {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => {
            skip(&format!("no {dialect} at {env} ({e})"));
            return None;
        }
        Err(_) => {
            skip(&format!("no {dialect} at {env} (timed out)"));
            return None;
        }
    };
    let create = format!("CREATE DATABASE {}", dialect.quote_ident(&name));
    sqlx::raw_sql(AssertSqlSafe(create))
        .execute(&mut conn)
        .await
        .unwrap();
    Some(Scratch {
        dialect,
        url: with_db(&admin, &name),
        admin: Some((admin, name)),
        file: None,
    })
}

impl Scratch {
    async fn remove(self) {
        if let Some(file) = &self.file {
            let _ = std::fs::remove_file(file);
        }
        if let Some((admin, name)) = &self.admin
            && let Ok(mut conn) = sqlx::AnyConnection::connect(admin).await
        {
            let force = if self.dialect == Dialect::Postgres {
                " WITH (FORCE)"
            } else {
                ""
            };
            let drop = format!("DROP DATABASE {}{force}", self.dialect.quote_ident(name));
            let _ = sqlx::raw_sql(AssertSqlSafe(drop)).execute(&mut conn).await;
        }
    }

    async fn conn(&self) -> sqlx::AnyConnection {
        sqlx::AnyConnection::connect(&self.url).await.unwrap()
    }

    async fn count(&self, sql: &str) -> i64 {
        let mut c = self.conn().await;
        sqlx::query_scalar::<_, i64>(AssertSqlSafe(sql.to_string()))
            .fetch_one(&mut c)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    async fn has_column(&self, column: &str) -> bool {
        let sql = match self.dialect {
            Dialect::Sqlite => {
                format!("SELECT COUNT(*) FROM pragma_table_info('users') WHERE name = '{column}'")
            }
            Dialect::Postgres => format!(
                "SELECT COUNT(*) FROM information_schema.columns WHERE table_schema = current_schema() \
                 AND table_name = 'users' AND column_name = '{column}'"
            ),
            Dialect::Mysql => format!(
                "SELECT COUNT(*) FROM information_schema.columns WHERE table_schema = DATABASE() \
                 AND table_name = 'users' AND column_name = '{column}'"
            ),
        };
        self.count(&sql).await == 1
    }

    async fn has_valid_index(&self) -> bool {
        let sql = match self.dialect {
            Dialect::Sqlite => {
                "SELECT COUNT(*) FROM sqlite_master WHERE type = 'index' AND name = 'users_full_name_idx'"
            }
            Dialect::Postgres => {
                "SELECT COUNT(*) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid \
                 WHERE c.relname = 'users_full_name_idx' AND i.indisvalid"
            }
            Dialect::Mysql => {
                "SELECT COUNT(DISTINCT index_name) FROM information_schema.statistics \
                 WHERE table_schema = DATABASE() AND index_name = 'users_full_name_idx'"
            }
        };
        self.count(sql).await == 1
    }
}

/// The fixture, made to run: a column type MySQL can index (it refuses a
/// key on a bare `text`), MariaDB's `ALGORITHM=INPLACE LOCK=NONE` (no comma),
/// `SET LOCAL` in Postgres transactions (as `session_bounds::step_prelude`
/// writes them), and SQLite's undo dropping the index before the column.
fn deploys(dialect: Dialect) -> Vec<Deploy> {
    let mut d = fixture::deploys(dialect);
    for deploy in &mut d {
        let mut units: Vec<&mut crate::export::Unit> = deploy.units.iter_mut().collect();
        units.extend(deploy.down.iter_mut().flatten());
        for unit in units {
            let transactional = unit.transactional;
            for s in unit.statements.iter_mut() {
                *s = s
                    .replace("full_name text", "full_name varchar(100)")
                    .replace(", LOCK=NONE", " LOCK=NONE");
                if dialect == Dialect::Postgres && transactional {
                    *s = s.replace("SET lock_timeout", "SET LOCAL lock_timeout");
                }
            }
            if dialect == Dialect::Sqlite && unit.name == "undo_add_column" {
                unit.statements
                    .insert(0, "DROP INDEX users_full_name_idx;".into());
            }
        }
    }
    d
}

const SETUP: &[&str] = &[
    "CREATE TABLE users (id integer PRIMARY KEY, name varchar(100));",
    "INSERT INTO users (id, name) VALUES (1, 'Ada');",
    "CREATE TABLE phasegate_head (id integer);",
    "INSERT INTO phasegate_head (id) VALUES (1);",
    "CREATE TABLE phasegate_events (plan varchar(100));",
];

fn export(runner: Runner, deploys: &[Deploy], dir: &Path) -> usize {
    let files = runners::write(runner, deploys, &Options::default()).unwrap();
    let _ = std::fs::remove_dir_all(dir);
    for f in &files {
        let path = dir.join(&f.path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, &f.contents).unwrap();
    }
    files.len()
}

/// One runner's `up` and "undo the newest deploy" (`ups`: how many up
/// migrations that deploy has).
trait Drive {
    async fn up(&self, db: &Scratch, dir: &Path);
    /// `None`: the runner has no down migrations (Supabase).
    async fn undo(&self, db: &Scratch, dir: &Path, ups: usize) -> Option<()>;
    /// Where the export goes under the runner's working folder `dir`.
    fn files(&self, dir: &Path) -> PathBuf {
        dir.to_path_buf()
    }
}

struct Sqlx;

impl Drive for Sqlx {
    async fn up(&self, db: &Scratch, dir: &Path) {
        let migrator = Migrator::new(dir).await.unwrap();
        match db.dialect {
            Dialect::Postgres => {
                let mut c = sqlx::PgConnection::connect(&db.url).await.unwrap();
                migrator.run(&mut c).await.unwrap();
                // The split unit's reset: the session is back to its own timeout.
                let lt: String = sqlx::query_scalar("SHOW lock_timeout")
                    .fetch_one(&mut c)
                    .await
                    .unwrap();
                assert_eq!(lt, "0", "phasegate's lock_timeout outlived its migration");
            }
            Dialect::Mysql => {
                let mut c = sqlx::MySqlConnection::connect(&db.url).await.unwrap();
                migrator.run(&mut c).await.unwrap();
            }
            Dialect::Sqlite => {
                let mut c = sqlx::SqliteConnection::connect(&db.url).await.unwrap();
                migrator.run(&mut c).await.unwrap();
            }
        }
    }

    async fn undo(&self, db: &Scratch, dir: &Path, _ups: usize) -> Option<()> {
        // Deploy 1 starts at --version (20260101000000): revert to before it.
        let migrator = Migrator::new(dir).await.unwrap();
        let target = 20260101000000 - 1;
        match db.dialect {
            Dialect::Postgres => {
                let mut c = sqlx::PgConnection::connect(&db.url).await.unwrap();
                migrator.undo(&mut c, target).await.unwrap();
            }
            Dialect::Mysql => {
                let mut c = sqlx::MySqlConnection::connect(&db.url).await.unwrap();
                migrator.undo(&mut c, target).await.unwrap();
            }
            Dialect::Sqlite => {
                let mut c = sqlx::SqliteConnection::connect(&db.url).await.unwrap();
                migrator.undo(&mut c, target).await.unwrap();
            }
        }
        Some(())
    }
}

struct Dbmate(PathBuf);

impl Dbmate {
    fn find() -> Option<Dbmate> {
        match std::env::var("PHASEGATE_DBMATE") {
            Ok(p) if Path::new(&p).is_file() => Some(Dbmate(PathBuf::from(p))),
            _ => {
                skip(
                    "dbmate: PHASEGATE_DBMATE does not name the dbmate binary (.ci/run installs it)",
                );
                None
            }
        }
    }

    fn url(db: &Scratch) -> String {
        match db.dialect {
            Dialect::Postgres => {
                let sep = if db.url.contains('?') { '&' } else { '?' };
                format!("{}{sep}sslmode=disable", db.url)
            }
            Dialect::Mysql => db.url.clone(),
            Dialect::Sqlite => db.url.trim_end_matches("?mode=rwc").to_string(),
        }
    }

    fn run(&self, db: &Scratch, dir: &Path, command: &str) {
        let out = std::process::Command::new(&self.0)
            .args(["--no-dump-schema", "--migrations-dir"])
            .arg(dir)
            .args(["--url", &Self::url(db), command])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "dbmate {command}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drive for Dbmate {
    async fn up(&self, db: &Scratch, dir: &Path) {
        self.run(db, dir, "up");
    }

    async fn undo(&self, db: &Scratch, dir: &Path, ups: usize) -> Option<()> {
        for _ in 0..ups {
            self.run(db, dir, "rollback");
        }
        Some(())
    }
}

/// The Supabase CLI (from `PHASEGATE_SUPABASE`): `supabase migration up
/// --remote=URL` applies `<workdir>/supabase/migrations`.
struct Supabase(PathBuf);

impl Supabase {
    fn find() -> Option<Supabase> {
        match std::env::var("PHASEGATE_SUPABASE") {
            Ok(p) if Path::new(&p).is_file() => Some(Supabase(PathBuf::from(p))),
            _ => {
                skip(
                    "supabase: PHASEGATE_SUPABASE does not name the Supabase CLI (.ci/run installs it)",
                );
                None
            }
        }
    }
}

impl Drive for Supabase {
    async fn up(&self, db: &Scratch, dir: &Path) {
        let sep = if db.url.contains('?') { '&' } else { '?' };
        let out = std::process::Command::new(&self.0)
            .args(["migration", "up", "--yes", "--workdir"])
            .arg(dir)
            .arg(format!("--remote={}{sep}sslmode=disable", db.url))
            .env("SUPABASE_TELEMETRY_DISABLED", "1")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "supabase migration up: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    async fn undo(&self, _db: &Scratch, _dir: &Path, _ups: usize) -> Option<()> {
        None
    }

    fn files(&self, dir: &Path) -> PathBuf {
        dir.join("supabase/migrations")
    }
}

async fn expand_undo_contract(runner: Runner, drive: impl Drive, dialect: Dialect) {
    let Some(db) = scratch(dialect).await else {
        return;
    };
    let dir = std::env::temp_dir().join(unique("phasegate_sqlrun_files"));
    let outcome = AssertUnwindSafe(steps(runner, &drive, &db, &dir))
        .catch_unwind()
        .await;
    let _ = std::fs::remove_dir_all(&dir);
    db.remove().await;
    if let Err(panic) = outcome {
        resume_unwind(panic);
    }
}

async fn steps(runner: Runner, drive: &impl Drive, db: &Scratch, dir: &Path) {
    let mut c = db.conn().await;
    for s in SETUP {
        sqlx::raw_sql(AssertSqlSafe(*s))
            .execute(&mut c)
            .await
            .unwrap();
    }
    drop(c);
    let dialect = db.dialect;
    let all = deploys(dialect);
    let files = drive.files(dir);
    let ups = export(runner, &all[..1], &files);
    let ups = if runner == Runner::Sqlx { ups / 2 } else { ups };

    drive.up(db, dir).await;
    assert!(
        db.has_column("full_name").await,
        "{runner}/{dialect}: deploy 1 ran"
    );
    assert!(
        db.has_valid_index().await,
        "{runner}/{dialect}: the index is built and valid"
    );

    if drive.undo(db, dir, ups).await.is_some() {
        assert!(
            !db.has_column("full_name").await,
            "{runner}/{dialect}: deploy 1 undone"
        );
        drive.up(db, dir).await;
        assert!(db.has_column("full_name").await);
    }
    export(runner, &all, &files);
    drive.up(db, dir).await;
    assert!(
        !db.has_column("name").await,
        "{runner}/{dialect}: the contract ran"
    );
    assert!(db.has_column("full_name").await);
}

#[tokio::test]
async fn sqlx_runs_the_files_on_postgres() {
    expand_undo_contract(Runner::Sqlx, Sqlx, Dialect::Postgres).await;
}

#[tokio::test]
async fn sqlx_runs_the_files_on_mariadb() {
    expand_undo_contract(Runner::Sqlx, Sqlx, Dialect::Mysql).await;
}

#[tokio::test]
async fn sqlx_runs_the_files_on_sqlite() {
    expand_undo_contract(Runner::Sqlx, Sqlx, Dialect::Sqlite).await;
}

#[tokio::test]
async fn dbmate_runs_the_files_on_postgres() {
    if let Some(d) = Dbmate::find() {
        expand_undo_contract(Runner::Dbmate, d, Dialect::Postgres).await;
    }
}

#[tokio::test]
async fn dbmate_runs_the_files_on_mariadb() {
    if let Some(d) = Dbmate::find() {
        expand_undo_contract(Runner::Dbmate, d, Dialect::Mysql).await;
    }
}

#[tokio::test]
async fn dbmate_runs_the_files_on_sqlite() {
    if let Some(d) = Dbmate::find() {
        expand_undo_contract(Runner::Dbmate, d, Dialect::Sqlite).await;
    }
}

#[tokio::test]
async fn supabase_runs_the_files_on_postgres() {
    if let Some(s) = Supabase::find() {
        expand_undo_contract(Runner::Supabase, s, Dialect::Postgres).await;
    }
}

#[test]
fn scratch_urls_keep_the_query() {
    assert_eq!(
        with_db("postgres://u@h:5432/postgres?sslmode=disable", "x"),
        "postgres://u@h:5432/x?sslmode=disable"
    );
}
