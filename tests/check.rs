//! `phasegate check` and the `phasegate_status` view, through the built
//! binary on real Postgres, MariaDB and SQLite databases.
//!
//! - Through a whole plan (apply, rollback, mark, a failed step, `resolve`,
//!   `accept-change`, a failed undo) the view's row, `status --format json`
//!   and `check` (every phase, with and without `--deployed`, text and JSON)
//!   agree at every point, and so does the library's `phase_reached`.
//! - A step that started and never finished (the binary killed mid-DDL on
//!   MariaDB) shows in the view, `status` and `check` alike, and goes once
//!   settled.
//! - A role that may only SELECT the view reads it (Postgres, MariaDB), and
//!   cannot read the log itself.
//! - A database from schema version 2 gets the view on the next command
//!   that writes.
//! - `check` on a fresh database exits 1 and creates nothing.
//! - Bad input exits 2 with a clear error, and one JSON document with
//!   `--format json`.
//! - The view is not mistaken for a dependent of an application table
//!   whose name its text contains (`plan`).

mod common;
mod executor_support;
#[allow(dead_code)]
#[path = "executor_support/kill.rs"]
mod kill;
mod rollback_support;

use std::process::Output;

use common::{TestDb, TestResult, fail, with_mysql, with_postgres, with_sqlite};
use executor_support::{ENV, Project};
use rollback_support::{run, text};
use serde_json::Value;

const REN: &str = "ren";
const REN_PLAN: &str = "changes:\n  - rename_column: { table: users, from: name, to: full_name }\n";

/// Two hand-written changes in one phase; the second fails until the plan
/// is edited.
const BREAKS: &str = "breaks";
const BREAKS_PLAN: &str = "changes:
  - sql:
      phases:
        - up: CREATE TABLE gadgets (id INTEGER PRIMARY KEY)
          down: DROP TABLE gadgets
  - sql:
      phases:
        - up: INSERT INTO no_such_table (id) VALUES (1)
          down: DELETE FROM no_such_table
";
const BREAKS_FIXED: &str = "changes:
  - sql:
      phases:
        - up: CREATE TABLE gadgets (id INTEGER PRIMARY KEY)
          down: DROP TABLE gadgets
  - sql:
      phases:
        - up: CREATE TABLE widgets (id INTEGER PRIMARY KEY)
          down: DROP TABLE widgets
";

/// phasegate's own relations: none may exist before a command that writes.
const OWN: [&str; 4] = [
    "phasegate_meta",
    "phasegate_events",
    "phasegate_head",
    "phasegate_status",
];

/// The plan's row of the view, as text per column (`None` for NULL).
#[derive(Debug, Clone, PartialEq)]
struct ViewRow {
    phases: Option<String>,
    phase: Option<String>,
    state: Option<String>,
    next_action: Option<String>,
    phase_applied: i64,
    phase_deployed: i64,
    failed_steps: i64,
    unfinished_steps: i64,
    updated_at: Option<String>,
}

/// Reads `plan`'s row of `phasegate_status` (`None`: no view, or no row).
async fn view_row(db: &TestDb, plan: &str) -> TestResult<Option<ViewRow>> {
    if !db.has_relation("phasegate_status").await? {
        return Ok(None);
    }
    let lit = db.dialect.quote_literal(plan);
    let rows = db
        .scalar(&format!(
            "SELECT COUNT(*) FROM phasegate_status WHERE plan = {lit}"
        ))
        .await?;
    if rows == 0 {
        return Ok(None);
    }
    if rows != 1 {
        return Err(fail(format!("{rows} rows for {plan} in phasegate_status")));
    }
    let cast = |c: &str| {
        let ty = db.pick3("TEXT", "TEXT", "CHAR");
        format!("SELECT CAST({c} AS {ty}) FROM phasegate_status WHERE plan = {lit}")
    };
    let int = |c: &str| format!("SELECT {c} FROM phasegate_status WHERE plan = {lit}");
    Ok(Some(ViewRow {
        phases: db.text(&cast("phases")).await?,
        phase: db.text(&cast("phase")).await?,
        state: db.text(&cast("state")).await?,
        next_action: db.text(&cast("next_action")).await?,
        phase_applied: db.scalar(&int("phase_applied")).await?,
        phase_deployed: db.scalar(&int("phase_deployed")).await?,
        failed_steps: db.scalar(&int("failed_steps")).await?,
        unfinished_steps: db.scalar(&int("unfinished_steps")).await?,
        updated_at: db.text(&cast("updated_at")).await?,
    }))
}

/// The one JSON document a command printed on stdout.
fn document(out: &Output, what: &str) -> TestResult<Value> {
    serde_json::from_slice(&out.stdout).map_err(|e| {
        fail(format!(
            "{what}: stdout is not one JSON document ({e}):\n{}",
            text(out)
        ))
    })
}

/// `status --format json`'s entry for `plan`.
fn status_of(project: &Project, plan: &str) -> TestResult<Value> {
    let out = run(project, &["status", "--env", ENV, "--format", "json"])?;
    let doc = document(&out, "status")?;
    doc[0]["plans"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["plan"] == plan))
        .cloned()
        .ok_or_else(|| fail(format!("status lists no {plan}:\n{doc}")))
}

/// Runs `check`, as JSON and as text, and checks the two agree and the
/// exit code matches the document. Returns the document.
fn check(project: &Project, plan: &str, phase: usize, deployed: bool) -> TestResult<Value> {
    let n = phase.to_string();
    let mut args = vec!["check", "--env", ENV, plan, "--phase", &n];
    if deployed {
        args.push("--deployed");
    }
    let plain = run(project, &args)?;
    args.extend(["--format", "json"]);
    let out = run(project, &args)?;
    let doc = document(&out, &args.join(" "))?;
    let code = out.status.code();
    if code != doc["exit_code"].as_i64().map(|c| c as i32) || code != plain.status.code() {
        return Err(fail(format!(
            "`{}`: exit {code:?}, text exit {:?}, document {doc}",
            args.join(" "),
            plain.status.code()
        )));
    }
    let expected = match code {
        Some(0) => ("done", true),
        Some(1) => ("blocked", false),
        _ => return Err(fail(format!("`{}`: {}", args.join(" "), text(&out)))),
    };
    if (doc["outcome"].as_str(), doc["reached"].as_bool()) != (Some(expected.0), Some(expected.1))
        || doc["schema_version"] != 1
        || doc["command"] != "check"
    {
        return Err(fail(format!("`{}`: {doc}", args.join(" "))));
    }
    let said = text(&plain);
    let word = if expected.1 { "reached" } else { "not reached" };
    if !said.contains(&format!("phase {phase} of ")) || !said.contains(word) {
        return Err(fail(format!("`{}` says:\n{said}", args.join(" "))));
    }
    Ok(doc)
}

/// The view, `status`, `check` (every phase, both requirements) and
/// `phase_reached` agree about `plan`. Returns the view's row.
async fn agree(db: &TestDb, project: &Project, plan: &str, when: &str) -> TestResult<ViewRow> {
    let ctx = |e: Box<dyn std::error::Error>| fail(format!("{when}: {plan}: {e}"));
    let status = status_of(project, plan).map_err(ctx)?;
    let phases = status["phases"].as_u64().unwrap_or(0) as usize;
    let row = view_row(db, plan).await.map_err(ctx)?;
    let row = match row {
        Some(r) => r,
        None => {
            // No row: the plan has not started here.
            let c = check(project, plan, 1, false).map_err(ctx)?;
            if c["started"] != false || status["state"] != "pending" || status["phase"] != 1 {
                return Err(fail(format!(
                    "{when}: no view row for {plan}, but status {status} / check {c}"
                )));
            }
            return Ok(ViewRow {
                phases: None,
                phase: None,
                state: None,
                next_action: None,
                phase_applied: 0,
                phase_deployed: 0,
                failed_steps: 0,
                unfinished_steps: 0,
                updated_at: None,
            });
        }
    };
    let text_of = |v: &Value| match v {
        Value::String(s) => Some(s.clone()),
        Value::Null => None,
        other => Some(other.to_string()),
    };
    let from_status = (
        Some(phases.to_string()),
        text_of(&status["phase"]),
        text_of(&status["state"]),
        text_of(&status["next"]["action"]),
        status["deployed"].as_i64(),
    );
    let from_view = (
        row.phases.clone(),
        row.phase.clone(),
        row.state.clone(),
        row.next_action.clone(),
        Some(row.phase_deployed),
    );
    if from_status != from_view {
        return Err(fail(format!(
            "{when}: {plan}: status (phases, phase, state, next, deployed) {from_status:?}, view {from_view:?}\nstatus: {status}\nview: {row:?}"
        )));
    }
    if row.updated_at.is_none() {
        return Err(fail(format!("{when}: {plan}: no updated_at: {row:?}")));
    }
    for n in 1..=phases {
        let applied = check(project, plan, n, false).map_err(ctx)?;
        let deployed = check(project, plan, n, true).map_err(ctx)?;
        let want = (
            row.phase_applied >= n as i64,
            row.phase_deployed >= n as i64,
        );
        let got = (
            applied["reached"].as_bool() == Some(true),
            deployed["reached"].as_bool() == Some(true),
        );
        let outstanding = applied["outstanding"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let failed = outstanding.iter().filter(|o| !o["error"].is_null()).count();
        let check_says = (
            got,
            applied["phase_applied"].as_i64(),
            applied["phase_deployed"].as_i64(),
            failed as i64,
            (outstanding.len() - failed) as i64,
        );
        let view_says = (
            want,
            Some(row.phase_applied),
            Some(row.phase_deployed),
            row.failed_steps,
            row.unfinished_steps,
        );
        if check_says != view_says {
            return Err(fail(format!(
                "{when}: {plan} phase {n}: check (reached, reached deployed, applied, deployed, failed, unfinished) {check_says:?}, view {view_says:?}\n{applied}"
            )));
        }
        let lib = phasegate::tracker::phase_reached(&db.url, plan, n)
            .await
            .map_err(|e| fail(format!("{when}: phase_reached: {e}")))?;
        if lib != got.0 {
            return Err(fail(format!(
                "{when}: {plan} phase {n}: phase_reached {lib}, check {}",
                got.0
            )));
        }
    }
    Ok(row)
}

/// Runs a command; fails unless it exits with `code`.
fn expect(project: &Project, args: &[&str], code: i32) -> TestResult<String> {
    rollback_support::expect(project, args, code)
}

/// The step of the last event of `kind` in the log.
async fn step_of_last(db: &TestDb, kind: &str) -> TestResult<String> {
    db.text(&format!(
        "SELECT step FROM phasegate_events WHERE kind = '{kind}' ORDER BY id DESC LIMIT 1"
    ))
    .await?
    .ok_or_else(|| fail(format!("no {kind} event with a step")))
}

fn expect_row(row: &ViewRow, state: &str, applied: i64, failed: i64, when: &str) -> TestResult {
    if row.state.as_deref() != Some(state)
        || row.phase_applied != applied
        || row.failed_steps != failed
    {
        return Err(fail(format!(
            "{when}: expected state {state}, phase_applied {applied}, failed_steps {failed}: {row:?}"
        )));
    }
    Ok(())
}

async fn whole_plan_agrees(db: TestDb) -> TestResult {
    let db = &db;
    db.create_table("users", "id integer PRIMARY KEY, name text")
        .await?;
    db.exec("INSERT INTO users (id, name) VALUES (1, 'Ada')")
        .await?;
    let project = Project::new(db, &[], REN, REN_PLAN)?;
    let breaks_file = project.dir.join("plans").join(format!("{BREAKS}.yaml"));
    std::fs::write(&breaks_file, BREAKS_PLAN)?;
    let p = &project;

    // Fresh: not reached, nothing created.
    let out = expect(p, &["check", "--env", ENV, REN, "--phase", "1"], 1)?;
    if !out.contains("has not started") || !out.contains("phasegate apply --env test ren") {
        return Err(fail(format!("check on a fresh database:\n{out}")));
    }
    agree(db, p, REN, "fresh").await?;
    for own in OWN {
        if db.has_relation(own).await? {
            return Err(fail(format!("check created {own}")));
        }
    }

    // The rename, with a rollback on the way.
    expect(p, &["apply", "--env", ENV, REN], 0)?;
    let r = agree(db, p, REN, "phase 1 applied").await?;
    expect_row(&r, "pending", 1, 0, "phase 1 applied (no app stage)")?;
    expect(p, &["rollback", "--env", ENV, REN], 0)?;
    let r = agree(db, p, REN, "phase 1 rolled back").await?;
    expect_row(&r, "pending", 0, 0, "phase 1 rolled back")?;
    expect(p, &["apply", "--env", ENV, REN], 0)?;
    agree(db, p, REN, "phase 1 applied again").await?;
    expect(p, &["apply", "--env", ENV, REN], 0)?;
    let r = agree(db, p, REN, "phase 2 applied").await?;
    expect_row(&r, "migrated", 2, 0, "phase 2 applied")?;
    let out = expect(
        p,
        &["check", "--env", ENV, REN, "--phase", "2", "--deployed"],
        1,
    )?;
    if !out.contains("phasegate mark --env test ren --phase 2") {
        return Err(fail(format!("check --deployed before mark:\n{out}")));
    }
    expect(
        p,
        &[
            "mark",
            "--env",
            ENV,
            REN,
            "--phase",
            "2",
            "--app-version",
            "v2",
        ],
        0,
    )?;
    agree(db, p, REN, "phase 2 marked").await?;
    expect(p, &["apply", "--env", ENV, REN], 0)?;
    let r = agree(db, p, REN, "complete").await?;
    if r.next_action.as_deref() != Some("complete") || r.phase_deployed != 3 {
        return Err(fail(format!("complete: {r:?}")));
    }

    // A failed step, settled by hand, the plan edited and accepted.
    expect(p, &["apply", "--env", ENV, BREAKS], 2)?;
    let r = agree(db, p, BREAKS, "a step failed").await?;
    expect_row(&r, "migrating", 0, 1, "a step failed")?;
    let failed = step_of_last(db, "step_failed").await?;
    expect(
        p,
        &[
            "resolve",
            "--env",
            ENV,
            BREAKS,
            "--step",
            &failed,
            "--as",
            "not-applied",
        ],
        0,
    )?;
    let r = agree(db, p, BREAKS, "the failed step resolved").await?;
    expect_row(&r, "migrating", 0, 0, "the failed step resolved")?;
    std::fs::write(&breaks_file, BREAKS_FIXED)?;
    expect(
        p,
        &[
            "accept-change",
            "--env",
            ENV,
            BREAKS,
            "--reason",
            "the table is made here",
        ],
        0,
    )?;
    agree(db, p, BREAKS, "the edit accepted").await?;
    expect(p, &["apply", "--env", ENV, BREAKS], 0)?;
    let r = agree(db, p, BREAKS, "the fixed plan applied").await?;
    expect_row(&r, "deployed", 1, 0, "the fixed plan applied")?;

    // An undo that fails (its table dropped by hand), settled, finished.
    db.exec("DROP TABLE gadgets").await?;
    expect(p, &["rollback", "--env", ENV, BREAKS], 2)?;
    let r = agree(db, p, BREAKS, "an undo failed").await?;
    expect_row(&r, "rolling_back", 0, 1, "an undo failed")?;
    let undo = step_of_last(db, "step_rollback_failed").await?;
    expect(
        p,
        &[
            "resolve",
            "--env",
            ENV,
            BREAKS,
            "--step",
            &undo,
            "--as",
            "rolled-back",
        ],
        0,
    )?;
    let r = agree(db, p, BREAKS, "the undo resolved").await?;
    expect_row(&r, "rolling_back", 0, 0, "the undo resolved")?;
    expect(p, &["rollback", "--env", ENV, BREAKS], 0)?;
    let r = agree(db, p, BREAKS, "rolled back").await?;
    expect_row(&r, "pending", 0, 0, "rolled back")?;

    // One row per plan; the rename is untouched by the other plan.
    let rows = db.scalar("SELECT COUNT(*) FROM phasegate_status").await?;
    if rows != 2 {
        return Err(fail(format!("{rows} rows in phasegate_status, expected 2")));
    }
    agree(db, p, REN, "after the other plan").await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn view_check_and_status_agree_through_a_whole_plan_on_postgres() {
    with_postgres(whole_plan_agrees).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn view_check_and_status_agree_through_a_whole_plan_on_mysql() {
    with_mysql(whole_plan_agrees).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn view_check_and_status_agree_through_a_whole_plan_on_sqlite() {
    with_sqlite(whole_plan_agrees).await
}

/// A project whose rename has run phase 1.
async fn started(db: &TestDb) -> TestResult<Project> {
    db.create_table("users", "id integer PRIMARY KEY, name text")
        .await?;
    let project = Project::new(db, &[], REN, REN_PLAN)?;
    expect(&project, &["apply", "--env", ENV, REN], 0)?;
    Ok(project)
}

/// A unique name for a role or user the test creates on the server.
fn reader_name() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("status_reader_{}_{nanos}", std::process::id())
}

/// Connects as `url`'s user and reads the view; the log itself is refused.
async fn reads_only_the_view(url: &str) -> TestResult {
    use sqlx::Connection;
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(url).await?;
    let (plan, applied): (String, i64) =
        sqlx::query_as("SELECT plan, phase_applied FROM phasegate_status")
            .fetch_one(&mut conn)
            .await?;
    let log = sqlx::query_as::<_, (i64,)>("SELECT COUNT(*) FROM phasegate_events")
        .fetch_one(&mut conn)
        .await;
    conn.close().await?;
    if (plan.as_str(), applied) != (REN, 1) {
        return Err(fail(format!("the reader sees {plan} at {applied}")));
    }
    if log.is_ok() {
        return Err(fail("a reader granted only the view read phasegate_events"));
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_select_only_role_reads_the_view_on_postgres() {
    with_postgres(|db| async move {
        started(&db).await?;
        let role = reader_name();
        let r = db.dialect.quote_ident(&role);
        let database = db.dialect.quote_ident(&db.name);
        // As docs/check.md says.
        db.exec(&format!(
            "CREATE ROLE {r} LOGIN; GRANT CONNECT ON DATABASE {database} TO {r}; \
             GRANT USAGE ON SCHEMA public TO {r}; GRANT SELECT ON phasegate_status TO {r}"
        ))
        .await?;
        let (_, rest) = db
            .url
            .split_once('@')
            .ok_or_else(|| fail(format!("no host in {}", db.url)))?;
        let url = format!("postgres://{role}@{rest}");
        let result = reads_only_the_view(&url).await;
        db.exec(&format!(
            "REVOKE ALL ON phasegate_status FROM {r}; REVOKE ALL ON SCHEMA public FROM {r}; \
             REVOKE ALL ON DATABASE {database} FROM {r}; DROP ROLE {r}"
        ))
        .await?;
        result
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_select_only_user_reads_the_view_on_mysql() {
    with_mysql(|db| async move {
        started(&db).await?;
        let user = reader_name();
        db.exec(&format!("CREATE USER '{user}'@'%' IDENTIFIED BY 'ro'"))
            .await?;
        // As docs/check.md says.
        let granted = db
            .exec(&format!(
                "GRANT SELECT ON `{}`.`phasegate_status` TO '{user}'@'%'",
                db.name
            ))
            .await;
        let result = async {
            granted?;
            let (_, rest) = db
                .url
                .split_once('@')
                .ok_or_else(|| fail(format!("no host in {}", db.url)))?;
            reads_only_the_view(&format!("mysql://{user}:ro@{rest}")).await
        }
        .await;
        db.exec(&format!("DROP USER IF EXISTS '{user}'@'%'"))
            .await?;
        result
    })
    .await
}

/// A log from schema version 2 (no view): read-only commands leave it be,
/// the next command that writes adds the view and moves to version 3.
async fn upgraded(db: TestDb) -> TestResult {
    let project = started(&db).await?;
    let key = db.pick3("key", "key", "`key`");
    let guard = db.pick3(
        "DROP TRIGGER phasegate_meta_kept ON phasegate_meta",
        "DROP TRIGGER phasegate_meta_no_update",
        "DROP TRIGGER phasegate_meta_no_update",
    );
    db.exec("DROP VIEW phasegate_status").await?;
    db.exec(guard).await?;
    db.exec(&format!(
        "UPDATE phasegate_meta SET value = '2' WHERE {key} = 'schema_version'"
    ))
    .await?;
    expect(&project, &["apply", "--env", ENV, REN], 0)?;
    let version = db
        .text(&format!(
            "SELECT value FROM phasegate_meta WHERE {key} = 'schema_version'"
        ))
        .await?;
    if version.as_deref() != Some("3") {
        return Err(fail(format!("schema version {version:?} after apply")));
    }
    let r = agree(&db, &project, REN, "upgraded").await?;
    // Started before the upgrade, by this phasegate: the phase count is known.
    expect_row(&r, "migrated", 2, 0, "upgraded")?;
    // The guard is back.
    db.assert_fails(
        &format!("UPDATE phasegate_meta SET value = '1' WHERE {key} = 'schema_version'"),
        "cannot be changed",
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_2_log_gets_the_view_on_the_next_write_on_postgres() {
    with_postgres(upgraded).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_2_log_gets_the_view_on_the_next_write_on_mysql() {
    with_mysql(upgraded).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_2_log_gets_the_view_on_the_next_write_on_sqlite() {
    with_sqlite(upgraded).await
}

/// `check` on a database phasegate never wrote to: exit 1, one JSON
/// document saying so, nothing created.
async fn fresh(db: TestDb) -> TestResult {
    db.create_table("users", "id integer PRIMARY KEY, name text")
        .await?;
    let before = db.schema().await?;
    let project = Project::new(&db, &[], REN, REN_PLAN)?;
    for phase in ["1", "3"] {
        let out = run(
            &project,
            &[
                "check", "--env", ENV, REN, "--phase", phase, "--format", "json",
            ],
        )?;
        let doc = document(&out, "check on a fresh database")?;
        if out.status.code() != Some(1)
            || doc["outcome"] != "blocked"
            || doc["started"] != false
            || doc["phases"] != 3
            || doc["run"] != "`phasegate apply --env test ren` (phase 1)"
        {
            return Err(fail(format!("check --phase {phase}: {}", text(&out))));
        }
    }
    expect(
        &project,
        &["check", "--env", ENV, REN, "--phase", "1", "--deployed"],
        1,
    )?;
    if db.schema().await? != before {
        return Err(fail("check changed the database's schema"));
    }
    for own in OWN {
        if db.has_relation(own).await? {
            return Err(fail(format!("check created {own}")));
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_on_a_fresh_database_exits_1_and_creates_nothing_on_postgres() {
    with_postgres(fresh).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_on_a_fresh_database_exits_1_and_creates_nothing_on_mysql() {
    with_mysql(fresh).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_on_a_fresh_database_exits_1_and_creates_nothing_on_sqlite() {
    with_sqlite(fresh).await
}

/// Exit 2, the error on stderr naming what is wrong, and with `--format
/// json` one document on stdout whose error has `kind`.
fn refused(project: &Project, args: &[&str], kind: &str, says: &[&str]) -> TestResult {
    let out = run(project, args)?;
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    if out.status.code() != Some(2) || says.iter().any(|s| !stderr.contains(s)) {
        return Err(fail(format!(
            "`{}`: exit {:?}, expected 2 saying {says:?}:\n{}",
            args.join(" "),
            out.status.code(),
            text(&out)
        )));
    }
    let mut json = args.to_vec();
    json.extend(["--format", "json"]);
    let out = run(project, &json)?;
    let doc = document(&out, &json.join(" "))?;
    if out.status.code() != Some(2)
        || doc["outcome"] != "error"
        || doc["exit_code"] != 2
        || doc["error"]["kind"] != kind
        || doc["error"]["message"].as_str().is_none_or(str::is_empty)
    {
        return Err(fail(format!("`{}`: {}", json.join(" "), text(&out))));
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_exits_2_with_a_clear_error() {
    with_sqlite(|db| async move {
        let project = started(&db).await?;
        let p = &project;
        refused(
            p,
            &["check", "--env", "tset", REN, "--phase", "1"],
            "unknown_environment",
            &["unknown environment `tset`", "test"],
        )?;
        refused(
            p,
            &["check", "--env", ENV, "rne", "--phase", "1"],
            "unknown_plan",
            &["no plan file `rne`", "ren"],
        )?;
        for phase in ["0", "4"] {
            refused(
                p,
                &["check", "--env", ENV, REN, "--phase", phase],
                "phase_out_of_range",
                &["has phases 1 to 3", &format!("there is no phase {phase}")],
            )?;
        }
        // A plan file that does not parse: located.
        let broken = p.dir.join("plans").join("broken.yaml");
        std::fs::write(&broken, "changes:\n  - rename_column: { table: users, from: }\n")?;
        refused(
            p,
            &["check", "--env", ENV, "broken", "--phase", "1"],
            "invalid_plan",
            &["broken.yaml:2:"],
        )?;
        // Arguments clap refuses.
        for args in [
            &["check", "--env", ENV, REN][..],
            &["check", "--env", ENV, REN, "--phase", "two"][..],
        ] {
            let out = run(p, args)?;
            if out.status.code() != Some(2) {
                return Err(fail(format!("`{}`: {}", args.join(" "), text(&out))));
            }
        }
        // Databases that are not there: a SQLite file, a server that refuses.
        let missing = p.dir.join("nowhere.db");
        for (url, kind, says) in [
            (
                format!("sqlite://{}", missing.display()),
                "database_unreachable",
                "no SQLite database at",
            ),
            (
                "postgres://postgres@127.0.0.1:1/nowhere".to_string(),
                "database_unreachable",
                "cannot connect",
            ),
        ] {
            std::fs::write(
                p.config_path(),
                format!(
                    "environments:\n  - name: {ENV}\n    database_url: '{url}'\n    connect_timeout: 5s\n"
                ),
            )?;
            let start = std::time::Instant::now();
            refused(p, &["check", "--env", ENV, REN, "--phase", "1"], kind, &[says])?;
            if start.elapsed() > std::time::Duration::from_secs(30) {
                return Err(fail(format!("check against {url} took {:?}", start.elapsed())));
            }
            if missing.exists() {
                return Err(fail("check created the SQLite file"));
            }
        }
        Ok(())
    })
    .await
}

/// A database another environment owns: an error, not an answer about it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_of_another_environment_is_an_error() {
    with_sqlite(|db| async move {
        let project = started(&db).await?;
        let url = db.url.replace('\'', "''");
        std::fs::write(
            project.config_path(),
            format!("environments:\n  - name: other\n    database_url: '{url}'\n"),
        )?;
        refused(
            &project,
            &["check", "--env", "other", REN, "--phase", "1"],
            "other_environment",
            &["belongs to environment `test`"],
        )
    })
    .await
}

/// The view's text names `plan`, `phase` and `state`, and MySQL and SQLite
/// read a view's dependencies from its text: phasegate's own view must not
/// be taken for one that reads an application table called `plan`.
async fn not_a_dependent(db: TestDb) -> TestResult {
    db.create_table("plan", "id integer PRIMARY KEY, phase text, state text")
        .await?;
    let plan = "changes:\n  - rename_column: { table: plan, from: state, to: status }\n";
    let project = Project::new(&db, &[], "st", plan)?;
    // The first command that writes creates the view, then plans live.
    let out = expect(&project, &["apply", "--env", ENV, "st"], 0)?;
    let planned = expect(&project, &["plan", "--env", ENV, "st"], 0)?;
    if !db.has_relation("phasegate_status").await? || planned.contains("phasegate_status") {
        return Err(fail(format!("{out}\n{planned}")));
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_view_is_not_a_dependent_of_an_application_table_on_postgres() {
    with_postgres(not_a_dependent).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_view_is_not_a_dependent_of_an_application_table_on_mysql() {
    with_mysql(not_a_dependent).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_view_is_not_a_dependent_of_an_application_table_on_sqlite() {
    with_sqlite(not_a_dependent).await
}

/// A step that started and never finished (the run killed while its DDL
/// waited for a lock): unfinished in the view as in `check`, and the state
/// `status` shows; settled through `resolve`, gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unfinished_step_shows_alike_on_mysql() {
    with_mysql(|db| async move {
        db.create_table("users", "id integer PRIMARY KEY, name text")
            .await?;
        let project = Project::new(
            &db,
            &["lock_timeout: 60s", "lock_retries: 0"],
            REN,
            REN_PLAN,
        )?;
        kill::create_log(&db, ENV).await?;
        kill::install_stall(&db).await?;
        let killed = kill::kill_at(
            &db,
            &project,
            &["apply", "--env", ENV, REN],
            kill::Point::Statement("ADD COLUMN /*M! IF NOT EXISTS */ `full_name`"),
        )
        .await?;
        killed.release(&db).await?;
        let r = agree(&db, &project, REN, "killed mid-step").await?;
        if r.unfinished_steps != 1 || r.phase_applied != 0 {
            return Err(fail(format!("killed mid-step: {r:?}")));
        }
        let transcript = kill::finish(&project, REN, "apply")?;
        let r = agree(&db, &project, REN, "settled").await?;
        if r.unfinished_steps != 0 || r.phase_applied != 1 {
            return Err(fail(format!("settled: {r:?}\n{transcript}")));
        }
        Ok(())
    })
    .await
}
