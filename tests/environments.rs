//! One environment per database, and `status` honest about what it could
//! not read: two environments configured on one database are refused when
//! the config loads, and at run time by the environment marker phasegate
//! records in a database on first use; an environment that cannot be read
//! makes `status` exit 2 (its report, text or JSON, still printed); and
//! read-only commands never create anything — no SQLite file for a misspelt
//! path, no phasegate tables on a server database.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::{TestDb, TestResult, fail, with_mysql, with_postgres, with_sqlite};
use phasegate::dialect::Dialect;

const PLAN: &str = "rename-users-name";
const RENAME: &str = "name: rename-users-name
changes:
  - rename_column: { table: users, from: name, to: full_name }
";

/// A scratch project folder with `plans/`, removed (with any SQLite lock
/// files beside its databases) when dropped.
struct Dir {
    path: PathBuf,
    sqlite: Vec<String>,
}

impl Dir {
    fn new() -> TestResult<Dir> {
        static N: AtomicUsize = AtomicUsize::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let path = std::env::temp_dir().join(format!(
            "phasegate-envs-{}-{}-{nanos}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::create_dir_all(path.join("plans"))?;
        std::fs::write(path.join("plans").join(format!("{PLAN}.yaml")), RENAME)?;
        Ok(Dir {
            path,
            sqlite: Vec::new(),
        })
    }

    /// Writes `name.yaml` with these environments: (name, url, extra setting lines).
    fn config(&self, name: &str, envs: &[(&str, &str, &str)]) -> TestResult<PathBuf> {
        let mut s = String::from("environments:\n");
        for (env, url, extra) in envs {
            s.push_str(&format!(
                "  - name: {env}\n    database_url: '{}'\n",
                url.replace('\'', "''")
            ));
            for line in extra.lines().filter(|l| !l.trim().is_empty()) {
                s.push_str(&format!("    {}\n", line.trim()));
            }
        }
        let path = self.path.join(format!("{name}.yaml"));
        std::fs::write(&path, s)?;
        Ok(path)
    }

    async fn run(&self, config: &Path, args: &[&str]) -> TestResult<Output> {
        let mut c = tokio::process::Command::new(env!("CARGO_BIN_EXE_phasegate"));
        c.arg("--config")
            .arg(config)
            .args(args)
            .current_dir(&self.path)
            .env("USER", "ci-runner")
            .kill_on_drop(true);
        tokio::time::timeout(Duration::from_secs(120), c.output())
            .await
            .map_err(|_| fail(format!("phasegate {args:?} did not finish within 120s")))?
            .map_err(Into::into)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
        for db in &self.sqlite {
            for suffix in ["", "-journal", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{db}.phasegate-lock{suffix}"));
            }
        }
    }
}

fn shown(o: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout ---\n{}--- stderr ---\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn out(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

async fn seed(db: &TestDb) -> TestResult {
    db.create_table("users", "id INTEGER PRIMARY KEY, name TEXT")
        .await?;
    db.exec("INSERT INTO users (id, name) VALUES (1, 'ada'), (2, NULL)")
        .await
        .map(|_| ())
}

// ---------------------------------------------------------------------------
// Two environments, one database
// ---------------------------------------------------------------------------

#[tokio::test]
async fn two_environments_with_one_database_url_are_refused_when_the_config_loads() -> TestResult {
    let dir = Dir::new()?;
    let db = dir.path.join("app.db");
    let config = dir.config(
        "phasegate",
        &[
            ("dev", "sqlite://app.db", ""),
            ("staging", &format!("sqlite://{}", db.display()), ""),
        ],
    )?;
    for args in [&["status"][..], &["apply", "--env", "staging", PLAN][..]] {
        let o = dir.run(&config, args).await?;
        assert_eq!(o.status.code(), Some(2), "{}", shown(&o));
        assert!(
            out(&o).contains("environments `dev` and `staging` point at the same database"),
            "{}",
            shown(&o)
        );
        assert!(
            out(&o).contains("phasegate.yaml:5:"),
            "names the line: {}",
            shown(&o)
        );
    }
    assert!(!db.exists(), "nothing was created");
    Ok(())
}

/// Two configs name one database differently (as two projects, or a
/// config edited to point staging at dev's database): the database knows
/// which environment it belongs to.
async fn marker(db: TestDb) -> TestResult {
    seed(&db).await?;
    let mut dir = Dir::new()?;
    if db.dialect == Dialect::Sqlite {
        dir.sqlite.push(db.name.clone());
    }
    let dev = dir.config("dev", &[("dev", &db.url, "")])?;
    let staging = dir.config("staging", &[("staging", &db.url, "")])?;
    let o = dir.run(&dev, &["apply", "--env", "dev", PLAN]).await?;
    assert_eq!(o.status.code(), Some(0), "{}", shown(&o));
    let schema = db.schema().await?;
    for args in [
        &["apply", "--env", "staging", PLAN][..],
        &["gate", "--env", "staging", PLAN][..],
        &["history", "--env", "staging"][..],
        &["status"][..],
    ] {
        let o = dir.run(&staging, args).await?;
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", shown(&o));
        assert!(
            out(&o).contains("staging: this database belongs to environment `dev`"),
            "{args:?}: {}",
            shown(&o)
        );
        assert!(
            !out(&o).contains("deployed here"),
            "{args:?}: {}",
            shown(&o)
        );
    }
    assert_eq!(db.schema().await?, schema, "staging changed nothing");
    // dev goes on as before.
    let o = dir.run(&dev, &["status"]).await?;
    assert_eq!(o.status.code(), Some(0), "{}", shown(&o));
    Ok(())
}

#[tokio::test]
async fn a_database_another_environment_owns_is_refused_on_postgres() {
    with_postgres(marker).await;
}

#[tokio::test]
async fn a_database_another_environment_owns_is_refused_on_mysql() {
    with_mysql(marker).await;
}

#[tokio::test]
async fn a_database_another_environment_owns_is_refused_on_sqlite() {
    with_sqlite(marker).await;
}

// ---------------------------------------------------------------------------
// status: exit codes
// ---------------------------------------------------------------------------

#[tokio::test]
async fn status_exits_2_when_no_environment_can_be_read() -> TestResult {
    let dir = Dir::new()?;
    let config = dir.config(
        "phasegate",
        &[
            (
                "dev",
                "postgres://postgres@127.0.0.1:1/app",
                "connect_timeout: 2s",
            ),
            (
                "prod",
                "mysql://root@127.0.0.1:1/app",
                "connect_timeout: 2s",
            ),
        ],
    )?;
    let text = dir.run(&config, &["status"]).await?;
    assert_eq!(text.status.code(), Some(2), "{}", shown(&text));
    let stdout = String::from_utf8_lossy(&text.stdout);
    assert!(
        stdout.contains("dev\n  unreachable: ") && stdout.contains("prod\n  unreachable: "),
        "{}",
        shown(&text)
    );
    assert!(
        String::from_utf8_lossy(&text.stderr)
            .contains("2 of 2 environments could not be read: dev, prod"),
        "{}",
        shown(&text)
    );
    let json = dir.run(&config, &["status", "--format", "json"]).await?;
    assert_eq!(json.status.code(), Some(2), "{}", shown(&json));
    let v: serde_json::Value = serde_json::from_slice(&json.stdout)
        .map_err(|e| fail(format!("status --format json: {e}\n{}", shown(&json))))?;
    assert_eq!(v["outcome"], "error", "{v}");
    let envs = v["environments"]
        .as_array()
        .ok_or_else(|| fail(format!("no list of environments: {v}")))?;
    assert_eq!(envs.len(), 2, "{v}");
    for e in envs {
        assert!(
            e["unreachable"]
                .as_str()
                .is_some_and(|u| u.contains("cannot connect")),
            "{v}"
        );
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Read-only commands create nothing
// ---------------------------------------------------------------------------

#[tokio::test]
async fn read_only_commands_never_create_a_misspelt_sqlite_database() -> TestResult {
    let dir = Dir::new()?;
    let config = dir.config("phasegate", &[("dev", "sqlite://.phasegate/dvv.db", "")])?;
    let path = dir.path.join(".phasegate").join("dvv.db");
    let plan_file = format!("plans/{PLAN}.yaml");
    for args in [
        &["status"][..],
        &["status", "--format", "json"][..],
        &["history", "--env", "dev"][..],
        &["gate", "--env", "dev", PLAN][..],
        &["verify", "--env", "dev", PLAN][..],
        &["plan", "--env", "dev", &plan_file][..],
    ] {
        let o = dir.run(&config, args).await?;
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", shown(&o));
        assert!(
            out(&o).contains(&format!("dev: no SQLite database at {}", path.display())),
            "{args:?} names the path: {}",
            shown(&o)
        );
        assert!(!path.exists(), "{args:?} created {}", path.display());
        assert!(
            !dir.path
                .join(".phasegate")
                .join("dvv.db.phasegate-lock")
                .exists(),
            "{args:?} created the lock file"
        );
    }
    Ok(())
}

/// The tables phasegate creates, as found on the server.
async fn phasegate_tables(db: &TestDb) -> TestResult<Vec<String>> {
    let sql = match db.dialect {
        Dialect::Postgres => {
            "SELECT tablename::text FROM pg_catalog.pg_tables WHERE tablename LIKE 'phasegate%' AND schemaname = current_schema()"
        }
        Dialect::Mysql => {
            "SELECT CAST(table_name AS CHAR) FROM information_schema.tables WHERE table_name LIKE 'phasegate%' AND table_schema = DATABASE()"
        }
        Dialect::Sqlite => "SELECT name FROM sqlite_master WHERE name LIKE 'phasegate%'",
    };
    db.texts(sql).await
}

async fn reads_create_nothing(db: TestDb) -> TestResult {
    seed(&db).await?;
    let mut dir = Dir::new()?;
    if db.dialect == Dialect::Sqlite {
        dir.sqlite.push(db.name.clone());
    }
    let config = dir.config("phasegate", &[("dev", &db.url, "")])?;
    let plan_file = format!("plans/{PLAN}.yaml");
    for args in [
        &["status"][..],
        &["history", "--env", "dev"][..],
        &["gate", "--env", "dev", PLAN][..],
        &["plan", "--env", "dev", &plan_file][..],
    ] {
        let o = dir.run(&config, args).await?;
        assert_eq!(o.status.code(), Some(0), "{args:?}: {}", shown(&o));
        assert_eq!(
            phasegate_tables(&db).await?,
            Vec::<String>::new(),
            "{args:?}"
        );
    }
    // "Nothing has run": the plan is pending, its next step is apply.
    let o = dir.run(&config, &["status"]).await?;
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("phase 1 of 3: pending; next: apply phase 1"),
        "{}",
        shown(&o)
    );
    Ok(())
}

#[tokio::test]
async fn read_only_commands_create_no_tables_on_postgres() {
    with_postgres(reads_create_nothing).await;
}

#[tokio::test]
async fn read_only_commands_create_no_tables_on_mysql() {
    with_mysql(reads_create_nothing).await;
}

#[tokio::test]
async fn read_only_commands_create_no_tables_on_sqlite() {
    with_sqlite(reads_create_nothing).await;
}
