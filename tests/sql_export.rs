//! The SQL phasegate prints runs as printed: `phasegate plan P --format sql`
//! of every shipped plan under plans/ is piped, deploy by deploy, into
//! `psql -v ON_ERROR_STOP=1`, `sqlite3 -bail` and `mariadb` against a
//! database holding the tables the plan expects (with rows), and the result
//! is checked: the columns, indexes and constraints the plan promises, and
//! the rows carried over. The output of `apply --dry-run` runs the same way
//! (one plan per dialect).
//!
//! Plans a dialect refuses at plan time are checked to be refused (SQLite
//! cannot rename a table behind a view; MySQL has no partial index). A plan
//! whose own SQL is another dialect's does not run there (`not_here`:
//! retire-audit-log's `jsonb` and `gin`, index-and-constrain-orders'
//! `now()` on SQLite), nor does one whose table lives in another MySQL
//! database.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

use common::{TestDb, TestResult, fail, with_mysql, with_postgres, with_sqlite};
use phasegate::dialect::Dialect;

/// Every plan under plans/, by name.
const PLANS: [&str; 8] = [
    "add-users-email-verified",
    "drop-users-legacy-flag",
    "index-and-constrain-orders",
    "rename-invoices-to-bills",
    "rename-orders-ref-dual-write",
    "rename-users-name",
    "retire-audit-log",
    "widen-order-amounts",
];

/// A scratch project folder: plans/ with the shipped plans, and a
/// phasegate.yaml naming the test database as environment `test`.
struct Project(PathBuf);

impl Project {
    fn new(db: &TestDb) -> TestResult<Project> {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "phasegate-sql-export-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let plans = dir.join("plans");
        std::fs::create_dir_all(&plans)?;
        let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("plans");
        for entry in std::fs::read_dir(shipped)? {
            let path = entry?.path();
            if let Some(name) = path.file_name() {
                std::fs::copy(&path, plans.join(name))?;
            }
        }
        std::fs::write(
            dir.join("phasegate.yaml"),
            format!(
                "environments:\n  - name: test\n    database_url: '{}'\n    lock_timeout: 3s\n    statement_timeout: 30s\n",
                db.url
            ),
        )?;
        Ok(Project(dir))
    }

    fn run(&self, args: &[&str]) -> TestResult<Output> {
        Ok(Command::new(env!("CARGO_BIN_EXE_phasegate"))
            .args(args)
            .current_dir(&self.0)
            .output()?)
    }
}

impl Drop for Project {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `phasegate plan P --format sql` in `db`'s dialect: offline, or on MySQL
/// against the database (`--env test`: MySQL needs a renamed column's full
/// definition from the live schema). `Err` with phasegate's message when it
/// refuses the plan.
fn plan_sql(p: &Project, db: &TestDb, plan: &str) -> TestResult<Result<String, String>> {
    let dialect = db.dialect.name();
    let mut args = vec!["plan", plan, "--format", "sql"];
    if db.dialect == Dialect::Mysql {
        args.extend(["--env", "test"]);
    } else {
        args.extend(["--dialect", dialect]);
    }
    let o = p.run(&args)?;
    match o.status.code() {
        Some(0) => Ok(Ok(text(&o.stdout))),
        Some(2) => Ok(Err(text(&o.stderr))),
        other => Err(fail(format!(
            "plan {plan} ({dialect}) exited {other:?}: {}",
            text(&o.stderr)
        ))),
    }
}

/// The script cut before each `-- ==== Deploy` line; the header goes with
/// the first deploy.
fn deploys(script: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut current = String::new();
    for line in script.lines() {
        if line.starts_with("-- ==== Deploy ") && current.contains("-- ==== Deploy ") {
            out.push(std::mem::take(&mut current));
        }
        current.push_str(line);
        current.push('\n');
    }
    out.push(current);
    out
}

/// Pipes `script` into the dialect's own client, which stops at the first
/// error (`psql -v ON_ERROR_STOP=1`, `sqlite3 -bail`, `mariadb` in batch mode).
fn pipe(db: &TestDb, script: &str, what: &str) -> TestResult {
    let mut cmd = match db.dialect {
        Dialect::Postgres => {
            let mut c = Command::new("psql");
            c.args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", &db.url]);
            c
        }
        Dialect::Sqlite => {
            let mut c = Command::new("sqlite3");
            c.args(["-bail", &db.name]);
            c
        }
        Dialect::Mysql => {
            let mut c = Command::new("mariadb");
            c.args(mysql_args(&db.url)?);
            c
        }
    };
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    child
        .stdin
        .take()
        .ok_or_else(|| fail("no stdin"))?
        .write_all(script.as_bytes())?;
    let o = child.wait_with_output()?;
    if !o.status.success() {
        return Err(fail(format!(
            "{what} ({}) did not run as printed: {}\n--- script ---\n{script}",
            db.dialect,
            text(&o.stderr)
        )));
    }
    Ok(())
}

/// `mysql://user[:password]@host[:port]/database` as the client's arguments.
fn mysql_args(url: &str) -> TestResult<Vec<String>> {
    let rest = url
        .strip_prefix("mysql://")
        .ok_or_else(|| fail(format!("not a mysql URL: {url}")))?;
    let rest = rest.split('?').next().unwrap_or_default();
    let (auth, rest) = rest.rsplit_once('@').unwrap_or(("root", rest));
    let (host, database) = rest.split_once('/').unwrap_or((rest, ""));
    let (user, password) = auth.split_once(':').unwrap_or((auth, ""));
    let (host, port) = host.split_once(':').unwrap_or((host, "3306"));
    let mut args = vec![
        "--batch".to_string(),
        format!("--host={host}"),
        format!("--port={port}"),
        format!("--user={user}"),
    ];
    if !password.is_empty() {
        args.push(format!("--password={password}"));
    }
    args.push(database.to_string());
    Ok(args)
}

/// The tables `plan` expects, with rows.
fn fixture(db: &TestDb, plan: &str) -> Vec<String> {
    let (int, txt, ts) = match db.dialect {
        Dialect::Postgres => ("int", "text", "timestamptz"),
        Dialect::Sqlite => ("integer", "text", "timestamp"),
        Dialect::Mysql => ("int", "varchar(100)", "datetime"),
    };
    let users = format!("CREATE TABLE users (id {int} PRIMARY KEY, name {txt})");
    let names =
        "INSERT INTO users (id, name) VALUES (1, 'ann'), (2, 'bob'), (3, NULL), (4, 'it''s')";
    match plan {
        "add-users-email-verified" => vec![users, names.into()],
        "drop-users-legacy-flag" => vec![
            format!(
                "CREATE TABLE users (id {int} PRIMARY KEY, name {txt}, legacy_flag boolean NOT NULL DEFAULT true)"
            ),
            names.into(),
        ],
        "index-and-constrain-orders" => vec![
            users,
            names.into(),
            format!(
                "CREATE TABLE orders (id {int} PRIMARY KEY, user_id {int}, external_ref {txt}, amount {int}, created_at {ts})"
            ),
            "INSERT INTO orders (id, user_id, external_ref, amount, created_at) VALUES \
             (1, 1, 'A-1', 10, NULL), (2, 1, NULL, 20, NULL), (3, 2, 'A-3', 30, CURRENT_TIMESTAMP), (4, NULL, NULL, 5, NULL)"
                .into(),
        ],
        "rename-invoices-to-bills" => vec![
            "CREATE SCHEMA billing".into(),
            format!("CREATE TABLE billing.invoices (id {int} PRIMARY KEY, total {int})"),
            "INSERT INTO billing.invoices (id, total) VALUES (1, 100), (2, 250)".into(),
        ],
        "rename-orders-ref-dual-write" => vec![
            format!("CREATE TABLE orders (id {int} PRIMARY KEY, ref {txt} NOT NULL)"),
            "INSERT INTO orders (id, ref) VALUES (1, 'R-1'), (2, 'R-2'), (3, 'it''s')".into(),
        ],
        "rename-users-name" => vec![users, names.into()],
        "retire-audit-log" => vec![
            format!("CREATE TABLE audit_log (id {int} PRIMARY KEY, line {txt})"),
            "INSERT INTO audit_log (id, line) VALUES (1, 'x')".into(),
        ],
        "widen-order-amounts" => vec![
            format!("CREATE TABLE orders (id {int} PRIMARY KEY, amount {int})"),
            "INSERT INTO orders (id, amount) VALUES (1, 10), (2, 2147483647), (3, NULL), (4, -7)"
                .into(),
        ],
        _ => Vec::new(),
    }
}

fn expect(ok: bool, what: impl Into<String>) -> TestResult {
    if ok { Ok(()) } else { Err(fail(what.into())) }
}

/// What `plan` promises, checked after its last deploy ran.
async fn check(db: &TestDb, plan: &str) -> TestResult {
    let names: common::Rows = [
        (1, Some("ann")),
        (2, Some("bob")),
        (3, None),
        (4, Some("it's")),
    ]
    .into_iter()
    .map(|(k, v)| (k, v.map(str::to_string)))
    .collect();
    let pg = db.dialect == Dialect::Postgres;
    match plan {
        "add-users-email-verified" => {
            for c in ["email_verified", "signup_source", "nickname"] {
                expect(
                    db.has_column("users", c).await?,
                    format!("users.{c} missing"),
                )?;
            }
            let filled = db
                .scalar("SELECT count(*) FROM users WHERE signup_source = 'unknown' AND NOT email_verified")
                .await?;
            expect(filled == 4, format!("{filled} of 4 users filled"))?;
            db.fails("INSERT INTO users (id, name, signup_source) VALUES (9, 'x', NULL)")
                .await
                .map(|_| ())
        }
        "drop-users-legacy-flag" => {
            expect(
                !db.has_column("users", "legacy_flag").await?,
                "legacy_flag still there",
            )?;
            db.assert_rows("users", "name", &names, "after the drop")
                .await
        }
        "index-and-constrain-orders" => {
            for ix in ["orders_user_id_idx", "orders_external_ref_key"] {
                expect(
                    db.index_state(ix).await? == Some(true),
                    format!("{ix} missing or invalid"),
                )?;
            }
            let nulls = db
                .scalar("SELECT count(*) FROM orders WHERE created_at IS NULL")
                .await?;
            expect(nulls == 0, format!("{nulls} orders without created_at"))?;
            if pg {
                let valid = db
                    .scalar("SELECT count(*) FROM pg_constraint WHERE conname IN ('orders_user_id_fkey', 'orders_amount_positive') AND convalidated")
                    .await?;
                expect(valid == 2, format!("{valid} of 2 constraints validated"))?;
                expect(
                    !db.is_nullable("orders", "created_at").await?,
                    "created_at is nullable",
                )?;
            }
            db.fails("INSERT INTO orders (id, user_id, amount) VALUES (9, 1, -1)")
                .await?;
            db.fails("INSERT INTO orders (id, user_id, amount, created_at) VALUES (10, 99, 1, CURRENT_TIMESTAMP)")
                .await
                .map(|_| ())
        }
        "rename-invoices-to-bills" => {
            expect(
                db.relation_kind("billing.bills").await?.as_deref() == Some("table"),
                "billing.bills is not a table",
            )?;
            expect(
                !db.has_relation("billing.invoices").await?,
                "billing.invoices still there",
            )?;
            let total = db.scalar("SELECT sum(total) FROM billing.bills").await?;
            expect(total == 350, format!("bills total {total}"))
        }
        "rename-orders-ref-dual-write" => {
            expect(!db.has_column("orders", "ref").await?, "ref still there")?;
            let refs: common::Rows = [(1, "R-1"), (2, "R-2"), (3, "it's")]
                .into_iter()
                .map(|(k, v)| (k, Some(v.to_string())))
                .collect();
            db.assert_rows("orders", "external_ref", &refs, "after the rename")
                .await
        }
        "rename-users-name" => {
            expect(!db.has_column("users", "name").await?, "name still there")?;
            db.assert_rows("users", "full_name", &names, "after the rename")
                .await
        }
        "retire-audit-log" => {
            expect(
                !db.has_relation("audit_log").await?,
                "audit_log still there",
            )?;
            expect(
                db.has_relation("audit_events").await?,
                "audit_events missing",
            )?;
            expect(
                db.index_state("audit_events_payload_idx").await? == Some(true),
                "audit_events_payload_idx missing or invalid",
            )
        }
        "widen-order-amounts" => {
            expect(
                !db.has_column("orders", "amount").await?,
                "amount still there",
            )?;
            let amounts: common::Rows = [
                (1, Some("10")),
                (2, Some("2147483647")),
                (3, None),
                (4, Some("-7")),
            ]
            .into_iter()
            .map(|(k, v)| (k, v.map(str::to_string)))
            .collect();
            db.assert_rows("orders", "amount_cents", &amounts, "after the type change")
                .await
        }
        other => Err(fail(format!("no check for {other}"))),
    }
}

/// Why a dialect cannot run a plan's script, when it cannot.
fn not_here(dialect: Dialect, plan: &str) -> Option<&'static str> {
    match (dialect, plan) {
        (Dialect::Postgres, _) => None,
        (_, "retire-audit-log") => Some("its hand-written SQL is Postgres's (jsonb, gin)"),
        (Dialect::Sqlite, "index-and-constrain-orders") => {
            Some("its backfill, now(), is not a function SQLite has")
        }
        // A MySQL schema is a database of the server: `billing` would be
        // shared with every other test.
        (Dialect::Mysql, "rename-invoices-to-bills") => {
            Some("billing.invoices lives in another database of the server")
        }
        _ => None,
    }
}

/// Creates the plan's tables in a fresh database, pipes its script deploy
/// by deploy, checks the result. Plans the dialect refuses must be refused
/// with a reason.
async fn export_runs(db: TestDb, plan: &'static str) -> TestResult {
    if not_here(db.dialect, plan).is_some() {
        return Ok(());
    }
    for sql in fixture(&db, plan) {
        // SQLite has no schemas (and refuses the plan before it reads any).
        if db.dialect == Dialect::Sqlite && sql.contains("billing") {
            continue;
        }
        db.exec(&sql).await?;
    }
    let p = Project::new(&db)?;
    let script = match plan_sql(&p, &db, plan)? {
        Ok(s) => s,
        Err(refused) => {
            let expected = match (db.dialect, plan) {
                (Dialect::Sqlite, "rename-invoices-to-bills") => "SQLite cannot rename table",
                (Dialect::Mysql, "index-and-constrain-orders") => "no partial indexes",
                _ => return Err(fail(format!("{plan} ({}) refused: {refused}", db.dialect))),
            };
            return expect(refused.contains(expected), refused);
        }
    };
    let parts = deploys(&script);
    expect(parts.len() >= 2, format!("{plan}: one deploy?\n{script}"))?;
    for (i, part) in parts.iter().enumerate() {
        pipe(&db, part, &format!("{plan}, deploy {}", i + 1))?;
    }
    check(&db, plan).await.map_err(|e| {
        fail(format!(
            "{plan} ({}): {e}\n--- script ---\n{script}",
            db.dialect
        ))
    })
}

#[tokio::test]
async fn every_shipped_plan_exports_sql_that_runs_on_postgres() {
    for plan in PLANS {
        with_postgres(|db| export_runs(db, plan)).await;
    }
}

#[tokio::test]
async fn every_shipped_plan_exports_sql_that_runs_on_sqlite() {
    for plan in PLANS {
        with_sqlite(|db| export_runs(db, plan)).await;
    }
}

#[tokio::test]
async fn every_shipped_plan_exports_sql_that_runs_on_mariadb() {
    for plan in PLANS {
        with_mysql(|db| export_runs(db, plan)).await;
    }
}

#[test]
fn the_shipped_plans_are_the_ones_tested() -> TestResult {
    let mut found: Vec<String> =
        std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("plans"))?
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                e.path()
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
            })
            .collect();
    found.sort();
    expect(found == PLANS, format!("plans/ holds {found:?}"))
}

/// `apply --dry-run` of a plan's first deploy, piped into the client, does
/// what apply would: the environment's bounds are set, and the result is
/// the one apply gives.
async fn dry_run_runs(db: TestDb, plan: &str) -> TestResult {
    for sql in fixture(&db, plan) {
        db.exec(&sql).await?;
    }
    let p = Project::new(&db)?;
    let o = p.run(&["apply", "--env", "test", plan, "--dry-run"])?;
    expect(
        o.status.success(),
        format!("dry run failed: {}", text(&o.stderr)),
    )?;
    let script = text(&o.stdout);
    let bound = match db.dialect {
        Dialect::Postgres => "lock_timeout = '3000ms'",
        Dialect::Sqlite => "PRAGMA busy_timeout = 3000;",
        Dialect::Mysql => "SET SESSION lock_wait_timeout = 3",
    };
    expect(script.contains(bound), format!("no {bound:?} in\n{script}"))?;
    pipe(&db, &script, &format!("apply --dry-run of {plan}"))?;
    let (table, from, to) = match plan {
        "widen-order-amounts" => ("orders", "amount", "amount_cents"),
        _ => ("users", "name", "full_name"),
    };
    let before = db.rows(table, "id", from).await?;
    let after = db.rows(table, "id", to).await?;
    expect(
        before == after && !after.is_empty(),
        format!("{to} is {after:?}, {from} is {before:?}\n--- script ---\n{script}"),
    )
}

#[tokio::test]
async fn apply_dry_run_runs_as_printed_on_postgres() {
    with_postgres(|db| dry_run_runs(db, "rename-users-name")).await;
}

#[tokio::test]
async fn apply_dry_run_runs_as_printed_on_sqlite() {
    with_sqlite(|db| dry_run_runs(db, "rename-users-name")).await;
}

#[tokio::test]
async fn apply_dry_run_runs_as_printed_on_mariadb() {
    with_mysql(|db| dry_run_runs(db, "widen-order-amounts")).await;
}

/// Optional: squawk (`npm install squawk-cli@2.66.0`; set `PHASEGATE_SQUAWK`
/// to its binary) parses every shipped plan's Postgres script and finds a
/// `lock_timeout` before each statement that takes a lock. The rules it
/// still reports, and why, are listed in docs/workflow.md ("Exported SQL").
#[test]
fn squawk_parses_every_script_and_finds_the_lock_timeouts() -> TestResult {
    let Ok(squawk) = std::env::var("PHASEGATE_SQUAWK") else {
        common::loud(format_args!(
            "skipped: squawk_parses_every_script_and_finds_the_lock_timeouts: set PHASEGATE_SQUAWK to a squawk binary to run this check"
        ));
        return Ok(());
    };
    let dir = std::env::temp_dir().join(format!("phasegate-squawk-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let plans = Path::new(env!("CARGO_MANIFEST_DIR")).join("plans");
    let mut problems = Vec::new();
    for plan in PLANS {
        let o = Command::new(env!("CARGO_BIN_EXE_phasegate"))
            .args(["plan", &format!("{plan}.yaml"), "--format", "sql"])
            .current_dir(&plans)
            .output()?;
        expect(o.status.success(), text(&o.stderr))?;
        let file = dir.join(format!("{plan}.sql"));
        std::fs::write(&file, &o.stdout)?;
        let report = Command::new(&squawk)
            .args(["--reporter", "gcc"])
            .arg(&file)
            .output()?;
        let report = text(&report.stdout) + &text(&report.stderr);
        for line in report.lines() {
            if line.contains("syntax-error") || line.contains("require-lock-timeout") {
                problems.push(format!("{plan}: {line}"));
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    expect(problems.is_empty(), problems.join("\n"))
}
