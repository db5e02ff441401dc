//! Fleets on real databases: an environment of several SQLite files (a
//! glob) and of several Postgres databases (a list) applying a phase in
//! waves through the binary. A database that conflicts with the plan (its
//! table has the column already) fails: running databases of its wave
//! finish, no later wave runs, the report names it, exit 2; once fixed, the
//! next `apply` skips the databases at the phase and runs the rest.
//! `status` and `gate` say "N of M databases at phase k", the promotion
//! gate of the next environment holds while one database lags, and
//! `waves.pause` stops after each wave.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::{TestDb, TestResult, fail, with_postgres};
use serde_json::Value;

const PLAN: &str = "add-note";
const ADD_NOTE: &str = "name: add-note
changes:
  - add_column: { table: accounts, column: note, type: text }
";

/// A scratch project folder with `plans/`, removed when dropped.
struct Dir {
    path: PathBuf,
}

impl Dir {
    fn new() -> TestResult<Dir> {
        static N: AtomicUsize = AtomicUsize::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let path = std::env::temp_dir().join(format!(
            "phasegate-fleets-{}-{}-{nanos}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::create_dir_all(path.join("plans"))?;
        std::fs::create_dir_all(path.join("tenants"))?;
        std::fs::write(path.join("plans").join(format!("{PLAN}.yaml")), ADD_NOTE)?;
        Ok(Dir { path })
    }

    fn config(&self, text: &str) -> TestResult<PathBuf> {
        let path = self.path.join("phasegate.yaml");
        std::fs::write(&path, text)?;
        Ok(path)
    }

    async fn run(&self, args: &[&str]) -> TestResult<Output> {
        let mut c = tokio::process::Command::new(env!("CARGO_BIN_EXE_phasegate"));
        c.arg("--config")
            .arg(self.path.join("phasegate.yaml"))
            .args(args)
            .current_dir(&self.path)
            .env("USER", "ci-runner")
            .kill_on_drop(true);
        tokio::time::timeout(Duration::from_secs(120), c.output())
            .await
            .map_err(|_| fail(format!("phasegate {args:?} did not finish within 120s")))?
            .map_err(Into::into)
    }

    /// Runs with `--format json` and parses the one document.
    async fn json(&self, args: &[&str]) -> TestResult<(Option<i32>, Value)> {
        let mut all = args.to_vec();
        all.extend(["--format", "json"]);
        let o = self.run(&all).await?;
        let doc: Value =
            serde_json::from_slice(&o.stdout).map_err(|e| fail(format!("{e}: {}", shown(&o))))?;
        Ok((o.status.code(), doc))
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
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

/// Each database's outcome in an `apply` or `rollback` document, in fleet order.
fn outcomes(doc: &Value) -> Vec<String> {
    doc["fleet"]["results"]
        .as_array()
        .map(|r| {
            r.iter()
                .map(|t| t["outcome"].as_str().unwrap_or("?").to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// Whether the SQLite file at `path` has `accounts.note`.
async fn sqlite_has_note(path: &Path) -> TestResult<bool> {
    use sqlx::Connection;
    let mut c = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display())).await?;
    let n: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pragma_table_info('accounts') WHERE name = 'note'",
    )
    .fetch_one(&mut c)
    .await?;
    c.close().await?;
    Ok(n == 1)
}

async fn sqlite_exec(path: &Path, sql: &str) -> TestResult {
    use sqlx::Connection;
    let mut c =
        sqlx::SqliteConnection::connect(&format!("sqlite://{}?mode=rwc", path.display())).await?;
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_string()))
        .execute(&mut c)
        .await?;
    c.close().await?;
    Ok(())
}

#[tokio::test]
async fn a_sqlite_fleet_rolls_out_in_waves_and_stops_at_the_database_that_fails() -> TestResult {
    let dir = Dir::new()?;
    let tenants: Vec<PathBuf> = (1..=5)
        .map(|i| dir.path.join("tenants").join(format!("t{i}.db")))
        .collect();
    for t in &tenants {
        sqlite_exec(
            t,
            "CREATE TABLE accounts (id INTEGER PRIMARY KEY, name TEXT); INSERT INTO accounts (name) VALUES ('a'), ('b');",
        )
        .await?;
    }
    // Tenant 3 (wave 2 of canary 1, growth 2) already has the column.
    sqlite_exec(&tenants[2], "ALTER TABLE accounts ADD COLUMN note TEXT").await?;
    let prod = dir.path.join("prod.db");
    sqlite_exec(
        &prod,
        "CREATE TABLE accounts (id INTEGER PRIMARY KEY, name TEXT)",
    )
    .await?;
    dir.config(
        "environments:\n  - name: tenants\n    database_urls_from: { glob: \"tenants/t*.db\" }\n    waves: { canary: 1, growth: 2, parallelism: 2 }\n  - name: prod\n    database_url: sqlite://prod.db\n",
    )?;

    let (code, doc) = dir.json(&["apply", "--env", "tenants", PLAN]).await?;
    assert_eq!(code, Some(2), "{doc:#}");
    assert_eq!(
        outcomes(&doc),
        ["applied", "applied", "failed", "not_started", "not_started"],
        "{doc:#}"
    );
    let stop = &doc["fleet"]["stopped"];
    assert_eq!(stop["reason"], "failed", "{doc:#}");
    assert_eq!(stop["index"], 3, "{doc:#}");
    assert!(
        stop["database"]
            .as_str()
            .is_some_and(|d| d.ends_with("t3.db?mode=rwc")),
        "{doc:#}"
    );
    assert!(
        stop["error"].as_str().is_some_and(|e| e.contains("note")),
        "{doc:#}"
    );
    assert_eq!(doc["fleet"]["at_phase"], 2, "{doc:#}");
    assert_eq!(doc["fleet"]["last_wave"], 2, "{doc:#}");
    assert_eq!(doc["error"]["kind"], "step_failed", "{doc:#}");
    for (i, want) in [true, true, true, false, false].iter().enumerate() {
        assert_eq!(
            sqlite_has_note(&tenants[i]).await?,
            *want,
            "tenant {}",
            i + 1
        );
    }

    // The text names the database and says what was not started.
    let o = dir.run(&["apply", "--env", "tenants", PLAN]).await?;
    let text = String::from_utf8_lossy(&o.stderr).to_string();
    assert_eq!(o.status.code(), Some(2), "{}", shown(&o));
    assert!(
        text.contains("FAILED") && text.contains("t3.db"),
        "{}",
        shown(&o)
    );
    assert!(text.contains("not started: 2 database(s)"), "{}", shown(&o));
    assert!(
        text.contains("2 database(s) were at phase 1 already"),
        "{}",
        shown(&o)
    );

    // The app deploy cannot be marked while databases lag.
    let o = dir
        .run(&[
            "mark",
            "--env",
            "tenants",
            PLAN,
            "--phase",
            "1",
            "--app-version",
            "v1",
        ])
        .await?;
    assert_eq!(o.status.code(), Some(1), "{}", shown(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr)
            .contains("3 of 5 databases of tenants have not applied phase 1"),
        "{}",
        shown(&o)
    );

    // status: 2 of 5 at phase 1; the row is the database furthest behind.
    let (code, doc) = dir.json(&["status", "--env", "tenants"]).await?;
    assert_eq!(code, Some(0), "{doc:#}");
    let row = &doc["environments"][0]["plans"][0];
    assert_eq!(row["fleet"]["at_phase"], 2, "{doc:#}");
    assert_eq!(row["fleet"]["targets"], 5, "{doc:#}");
    assert_eq!(row["state"], "pending", "{doc:#}");
    let o = dir.run(&["status"]).await?;
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("2 of 5 databases at phase 1"),
        "{}",
        shown(&o)
    );

    // The promotion gate of prod holds while a tenant lags, naming it.
    let (code, doc) = dir.json(&["gate", "--env", "prod", PLAN]).await?;
    assert_eq!(code, Some(1), "{doc:#}");
    let promotion = doc["gates"]
        .as_array()
        .and_then(|g| g.iter().find(|g| g["name"] == "promotion"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(promotion["held"], false, "{doc:#}");
    assert!(
        promotion["reason"].as_str().is_some_and(
            |r| r.contains("tenants (database") && r.contains("furthest behind of its 5")
        ),
        "{doc:#}"
    );
    let o = dir.run(&["apply", "--env", "prod", PLAN]).await?;
    assert_eq!(o.status.code(), Some(1), "{}", shown(&o));
    assert!(!sqlite_has_note(&prod).await?);

    // The fleet's gate is judged on the database furthest behind: its
    // conflict is the error, naming it.
    let o = dir.run(&["gate", "--env", "tenants", PLAN]).await?;
    assert_eq!(o.status.code(), Some(2), "{}", shown(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("in database sqlite://") && err.contains("t3.db"),
        "{}",
        shown(&o)
    );

    // Fixed, the next apply skips the two at the phase and runs the rest.
    sqlite_exec(&tenants[2], "ALTER TABLE accounts DROP COLUMN note").await?;

    // The fleet's gate is its furthest-behind database's, with the count.
    let (code, doc) = dir.json(&["gate", "--env", "tenants", PLAN]).await?;
    assert_eq!(code, Some(0), "{doc:#}");
    assert!(
        doc["gates"]
            .as_array()
            .is_some_and(|g| g.iter().any(|g| g["name"] == "fleet"
                && g["reason"]
                    .as_str()
                    .is_some_and(|r| r.starts_with("2 of 5 databases at phase 1")))),
        "{doc:#}"
    );

    let (code, doc) = dir.json(&["apply", "--env", "tenants", PLAN]).await?;
    assert_eq!(code, Some(0), "{doc:#}");
    assert_eq!(
        outcomes(&doc),
        ["at_phase", "at_phase", "applied", "applied", "applied"],
        "{doc:#}"
    );
    assert_eq!(doc["fleet"]["at_phase"], 5, "{doc:#}");
    // The phase has an app stage: deploy it, then mark it in every database.
    assert_eq!(doc["next"]["action"], "deploy", "{doc:#}");
    for t in &tenants {
        assert!(sqlite_has_note(t).await?, "{}", t.display());
    }
    let (code, doc) = dir.json(&["apply", "--env", "tenants", PLAN]).await?;
    assert_eq!(code, Some(3), "{doc:#}");
    assert_eq!(doc["outcome"], "waiting_for_deploy", "{doc:#}");
    let (code, doc) = dir
        .json(&[
            "mark",
            "--env",
            "tenants",
            PLAN,
            "--phase",
            "1",
            "--app-version",
            "v1",
        ])
        .await?;
    assert_eq!(code, Some(0), "{doc:#}");
    let recorded = doc["databases"]
        .as_array()
        .map_or(0, |d| d.iter().filter(|d| d["recorded"] == true).count());
    assert_eq!(recorded, 5, "{doc:#}");
    let o = dir.run(&["apply", "--env", "tenants", PLAN]).await?;
    assert_eq!(o.status.code(), Some(0), "{}", shown(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("complete in every database"),
        "{}",
        shown(&o)
    );

    // Every tenant done: prod may go.
    let o = dir.run(&["apply", "--env", "prod", PLAN]).await?;
    assert_eq!(o.status.code(), Some(0), "{}", shown(&o));
    assert!(sqlite_has_note(&prod).await?);

    // A command that does not run across a fleet refuses, naming it.
    let o = dir.run(&["history", "--env", "tenants"]).await?;
    assert_eq!(o.status.code(), Some(2), "{}", shown(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("tenants is a fleet of 5 databases"),
        "{}",
        shown(&o)
    );
    Ok(())
}

#[tokio::test]
async fn a_fleet_whose_command_fails_is_an_error_for_the_commands_that_use_it() -> TestResult {
    let dir = Dir::new()?;
    sqlite_exec(
        &dir.path.join("dev.db"),
        "CREATE TABLE accounts (id INTEGER PRIMARY KEY)",
    )
    .await?;
    dir.config(
        "environments:\n  - name: dev\n    database_url: sqlite://dev.db\n  - name: tenants\n    database_urls_from: { command: \"echo tenant registry unreachable >&2; exit 3\" }\n",
    )?;
    let o = dir.run(&["apply", "--env", "tenants", PLAN]).await?;
    assert_eq!(o.status.code(), Some(2), "{}", shown(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("phasegate.yaml:5")
            && err.contains("exited with 3")
            && err.contains("tenant registry unreachable"),
        "{}",
        shown(&o)
    );
    // dev does not need it.
    let o = dir.run(&["apply", "--env", "dev", PLAN]).await?;
    assert_eq!(o.status.code(), Some(0), "{}", shown(&o));
    Ok(())
}

/// Three Postgres databases, each with `accounts` holding rows.
async fn with_three_postgres<F, Fut>(body: F)
where
    F: FnOnce(TestDb, TestDb, TestDb) -> Fut,
    Fut: std::future::Future<Output = TestResult>,
{
    with_postgres(|a| async move {
        with_postgres(|b| async move {
            with_postgres(|c| async move {
                for db in [&a, &b, &c] {
                    db.exec("CREATE TABLE accounts (id bigint PRIMARY KEY, name text)")
                        .await?;
                    db.exec(
                        "INSERT INTO accounts SELECT g, 'n' || g FROM generate_series(1, 100) g",
                    )
                    .await?;
                }
                body(a, b, c).await
            })
            .await;
            Ok(())
        })
        .await;
        Ok(())
    })
    .await;
}

fn list_config(urls: &[&str], waves: &str) -> String {
    let list = urls
        .iter()
        .map(|u| format!("\"{u}\""))
        .collect::<Vec<_>>()
        .join(", ");
    format!("environments:\n  - name: shards\n    database_urls: [ {list} ]\n    waves: {waves}\n")
}

#[tokio::test]
async fn a_postgres_fleet_stops_its_rollout_at_the_failing_shard_and_resumes_once_fixed() {
    with_three_postgres(|a, b, c| async move {
        let dir = Dir::new()?;
        b.exec("ALTER TABLE accounts ADD COLUMN note text").await?;
        dir.config(&list_config(
            &[&a.url, &b.url, &c.url],
            "{ canary: 1, growth: 1, parallelism: 1 }",
        ))?;
        let (code, doc) = dir.json(&["apply", "--env", "shards", PLAN]).await?;
        assert_eq!(code, Some(2), "{doc:#}");
        assert_eq!(
            outcomes(&doc),
            ["applied", "failed", "not_started"],
            "{doc:#}"
        );
        assert_eq!(doc["fleet"]["stopped"]["index"], 2, "{doc:#}");
        assert_eq!(doc["fleet"]["waves"], 3, "{doc:#}");
        assert!(a.has_column("accounts", "note").await?);
        assert!(!c.has_column("accounts", "note").await?);
        // Each shard keeps its own log: the first has the plan, the third none.
        assert!(a.scalar("SELECT count(*) FROM phasegate_events").await? > 0);
        assert!(!c.has_relation("phasegate_events").await?);

        b.exec("ALTER TABLE accounts DROP COLUMN note").await?;
        let (code, doc) = dir.json(&["apply", "--env", "shards", PLAN]).await?;
        assert_eq!(code, Some(0), "{doc:#}");
        assert_eq!(
            outcomes(&doc),
            ["at_phase", "applied", "applied"],
            "{doc:#}"
        );
        assert!(c.has_column("accounts", "note").await?);
        let o = dir.run(&["status"]).await?;
        assert!(
            String::from_utf8_lossy(&o.stdout).contains("3 of 3 databases at phase 1"),
            "{}",
            shown(&o)
        );
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn a_paused_fleet_runs_one_wave_per_apply() {
    with_three_postgres(|a, b, c| async move {
        let dir = Dir::new()?;
        dir.config(&list_config(
            &[&a.url, &b.url, &c.url],
            "{ canary: 1, growth: 2, parallelism: 2, pause: true }",
        ))?;
        let (code, doc) = dir.json(&["apply", "--env", "shards", PLAN]).await?;
        assert_eq!(code, Some(0), "{doc:#}");
        assert_eq!(
            outcomes(&doc),
            ["applied", "not_started", "not_started"],
            "{doc:#}"
        );
        assert_eq!(doc["fleet"]["stopped"]["reason"], "paused", "{doc:#}");
        assert!(
            doc["message"]
                .as_str()
                .is_some_and(|m| m.contains("paused after wave 1 of 2")),
            "{doc:#}"
        );
        let (code, doc) = dir.json(&["apply", "--env", "shards", PLAN]).await?;
        assert_eq!(code, Some(0), "{doc:#}");
        assert_eq!(
            outcomes(&doc),
            ["at_phase", "applied", "applied"],
            "{doc:#}"
        );
        assert!(doc["fleet"]["stopped"].is_null(), "{doc:#}");
        for db in [&a, &b, &c] {
            assert!(db.has_column("accounts", "note").await?, "{}", db.name);
        }
        Ok(())
    })
    .await;
}

/// `rollback` on a fleet undoes the phase in every database that has it in
/// place (the last first), skips the others, and stops at one that fails,
/// naming it; `--database` picks one database for any command, by its name,
/// and is refused, with the nearest name, where it picks none.
#[tokio::test]
async fn a_fleet_rolls_back_where_the_phase_is_in_place_and_database_picks_one() -> TestResult {
    let dir = Dir::new()?;
    let tenants: Vec<PathBuf> = (1..=4)
        .map(|i| dir.path.join("tenants").join(format!("t{i}.db")))
        .collect();
    for t in &tenants {
        sqlite_exec(
            t,
            "CREATE TABLE accounts (id INTEGER PRIMARY KEY, name TEXT); INSERT INTO accounts (name) VALUES ('a');",
        )
        .await?;
    }
    // Tenant 3 has the column already: the rollout stops there.
    sqlite_exec(&tenants[2], "ALTER TABLE accounts ADD COLUMN note TEXT").await?;
    sqlite_exec(
        &dir.path.join("prod.db"),
        "CREATE TABLE accounts (id INTEGER PRIMARY KEY)",
    )
    .await?;
    dir.config(
        "environments:\n  - name: tenants\n    database_urls_from: { glob: \"tenants/t*.db\" }\n    waves: { canary: 1, growth: 2, parallelism: 1 }\n  - name: prod\n    database_url: sqlite://prod.db\n",
    )?;
    let (code, doc) = dir.json(&["apply", "--env", "tenants", PLAN]).await?;
    assert_eq!(code, Some(2), "{doc:#}");
    assert_eq!(
        outcomes(&doc),
        ["applied", "applied", "failed", "not_started"],
        "{doc:#}"
    );

    // One database, by its file name: its own log.
    let (code, doc) = dir
        .json(&["history", "--env", "tenants", "--database", "t2", PLAN])
        .await?;
    assert_eq!(code, Some(0), "{doc:#}");
    assert!(
        doc["events"].as_array().is_some_and(|e| e
            .iter()
            .any(|e| e["kind"] == "phase_completed" || e["kind"] == "phase_migrated")),
        "{doc:#}"
    );
    let (code, doc) = dir
        .json(&["history", "--env", "tenants", "--database", "t4.db", PLAN])
        .await?;
    assert_eq!(code, Some(0), "{doc:#}");
    assert_eq!(doc["events"].as_array().map(Vec::len), Some(0), "{doc:#}");
    // Names that pick none are refused, naming the nearest.
    let o = dir
        .run(&["history", "--env", "tenants", "--database", "t9"])
        .await?;
    assert_eq!(o.status.code(), Some(2), "{}", shown(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("no database of tenants is `t9`") && err.contains("did you mean"),
        "{}",
        shown(&o)
    );
    let o = dir
        .run(&["history", "--env", "prod", "--database", "t1"])
        .await?;
    assert_eq!(o.status.code(), Some(2), "{}", shown(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("prod is one database, not a fleet"),
        "{}",
        shown(&o)
    );
    let o = dir.run(&["plan", PLAN, "--database", "t1"]).await?;
    assert_eq!(o.status.code(), Some(2), "{}", shown(&o));
    let o = dir.run(&["status", "--database", "t1"]).await?;
    assert_eq!(o.status.code(), Some(2), "{}", shown(&o));

    // Rolled back where it is in place (t1, t2); t3's own column stays.
    let (code, doc) = dir.json(&["rollback", "--env", "tenants", PLAN]).await?;
    assert_eq!(code, Some(0), "{doc:#}");
    assert_eq!(doc["phase"], 1, "{doc:#}");
    assert_eq!(
        outcomes(&doc),
        ["rolled_back", "rolled_back", "not_in_place", "not_in_place"],
        "{doc:#}"
    );
    for (i, want) in [false, false, true, false].iter().enumerate() {
        assert_eq!(
            sqlite_has_note(&tenants[i]).await?,
            *want,
            "tenant {}",
            i + 1
        );
    }
    let (code, doc) = dir.json(&["rollback", "--env", "tenants", PLAN]).await?;
    assert_eq!(code, Some(0), "{doc:#}");
    assert_eq!(doc["outcome"], "nothing_to_do", "{doc:#}");

    // Every tenant at phase 1; then t2 cannot drop the column (a view uses
    // it): the rollback runs t4, t3, fails at t2, and leaves t1.
    sqlite_exec(&tenants[2], "ALTER TABLE accounts DROP COLUMN note").await?;
    let (code, doc) = dir.json(&["apply", "--env", "tenants", PLAN]).await?;
    assert_eq!(code, Some(0), "{doc:#}");
    sqlite_exec(
        &tenants[1],
        "CREATE VIEW notes AS SELECT note FROM accounts",
    )
    .await?;
    let (code, doc) = dir.json(&["rollback", "--env", "tenants", PLAN]).await?;
    assert_eq!(code, Some(2), "{doc:#}");
    assert_eq!(
        outcomes(&doc),
        ["not_started", "failed", "rolled_back", "rolled_back"],
        "{doc:#}"
    );
    assert_eq!(doc["fleet"]["failed"]["index"], 2, "{doc:#}");
    assert!(
        doc["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("database 2 of 4") && m.contains("t2.db")),
        "{doc:#}"
    );
    for (i, want) in [true, true, false, false].iter().enumerate() {
        assert_eq!(
            sqlite_has_note(&tenants[i]).await?,
            *want,
            "tenant {}",
            i + 1
        );
    }
    // Fixed, it finishes the rest: only t1 and t2 still had the phase.
    sqlite_exec(&tenants[1], "DROP VIEW notes").await?;
    let o = dir.run(&["rollback", "--env", "tenants", PLAN]).await?;
    assert_eq!(o.status.code(), Some(0), "{}", shown(&o));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains("phase 1 rolled back in 4 of 4 databases of tenants")
            && text.contains("2 database(s) did not have phase 1 in place: skipped"),
        "{}",
        shown(&o)
    );
    for t in &tenants {
        assert!(!sqlite_has_note(t).await?, "{}", t.display());
    }
    Ok(())
}

/// Whether the SQLite file at `path` has table `name`.
async fn sqlite_has_table(path: &Path, name: &str) -> TestResult<bool> {
    use sqlx::Connection;
    let mut c = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display())).await?;
    let n: i64 =
        sqlx::query_scalar("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?1")
            .bind(name)
            .fetch_one(&mut c)
            .await?;
    c.close().await?;
    Ok(n == 1)
}

/// `rollback --phase N` on a fleet where one database has a later phase in
/// place is refused before any database is touched (exit 1, naming it);
/// without `--phase` the latest phase goes first, where it is in place.
#[tokio::test]
async fn a_fleet_rollback_of_an_earlier_phase_waits_for_the_later_one_everywhere() -> TestResult {
    let dir = Dir::new()?;
    std::fs::write(
        dir.path.join("plans").join("two.yaml"),
        "changes:\n  - sql:\n      phases:\n        - { up: CREATE TABLE p1 (id INTEGER PRIMARY KEY), down: DROP TABLE p1 }\n        - { up: CREATE TABLE p2 (id INTEGER PRIMARY KEY), down: DROP TABLE p2 }\n",
    )?;
    let tenants: Vec<PathBuf> = ["a", "b"]
        .iter()
        .map(|t| dir.path.join("tenants").join(format!("{t}.db")))
        .collect();
    for t in &tenants {
        sqlite_exec(t, "CREATE TABLE accounts (id INTEGER PRIMARY KEY)").await?;
    }
    dir.config(
        "environments:\n  - name: tenants\n    database_urls_from: { glob: \"tenants/*.db\" }\n",
    )?;
    let (code, doc) = dir.json(&["apply", "--env", "tenants", "two"]).await?;
    assert_eq!(code, Some(0), "{doc:#}");
    // Phase 2 in tenant a alone, picked by its path as the glob gave it.
    let (code, doc) = dir
        .json(&[
            "apply",
            "--env",
            "tenants",
            "--database",
            "tenants/a.db",
            "two",
        ])
        .await?;
    assert_eq!(code, Some(0), "{doc:#}");
    assert!(
        sqlite_has_table(&tenants[0], "p2").await? && !sqlite_has_table(&tenants[1], "p2").await?
    );

    let (code, doc) = dir
        .json(&["rollback", "--env", "tenants", "two", "--phase", "1"])
        .await?;
    assert_eq!(code, Some(1), "{doc:#}");
    assert!(
        doc["message"].as_str().is_some_and(|m| m.contains("a.db")
            && m.contains("(phase 2)")
            && m.contains("nothing was rolled back")),
        "{doc:#}"
    );
    for t in &tenants {
        assert!(sqlite_has_table(t, "p1").await?, "{}", t.display());
    }
    let (code, doc) = dir.json(&["rollback", "--env", "tenants", "two"]).await?;
    assert_eq!(code, Some(0), "{doc:#}");
    assert_eq!(doc["phase"], 2, "{doc:#}");
    assert_eq!(outcomes(&doc), ["rolled_back", "not_in_place"], "{doc:#}");
    let (code, doc) = dir
        .json(&["rollback", "--env", "tenants", "two", "--phase", "1"])
        .await?;
    assert_eq!(code, Some(0), "{doc:#}");
    assert_eq!(outcomes(&doc), ["rolled_back", "rolled_back"], "{doc:#}");
    for t in &tenants {
        assert!(!sqlite_has_table(t, "p1").await?, "{}", t.display());
    }
    Ok(())
}
