//! What `check.rs` and `check_view.rs` share: reading the
//! `phasegate_status` view, running `check` and `status`, and the check
//! that they, and `phase_reached`, agree.

#![allow(dead_code)]

use std::process::Output;

use serde_json::Value;

use crate::common::{TestDb, TestResult, fail};
use crate::executor_support::{ENV, Project};
use crate::rollback_support::{run, text};

pub const REN: &str = "ren";
pub const REN_PLAN: &str =
    "changes:\n  - rename_column: { table: users, from: name, to: full_name }\n";

/// phasegate's own relations: none may exist before a command that writes.
pub const OWN: [&str; 4] = [
    "phasegate_meta",
    "phasegate_events",
    "phasegate_head",
    "phasegate_status",
];

/// The plan's row of the view, as text per column (`None` for NULL).
#[derive(Debug, Clone, PartialEq)]
pub struct ViewRow {
    pub phases: Option<String>,
    pub phase: Option<String>,
    pub state: Option<String>,
    pub next_action: Option<String>,
    pub phase_applied: i64,
    pub phase_deployed: i64,
    pub failed_steps: i64,
    pub unfinished_steps: i64,
    pub updated_at: Option<String>,
}

/// Reads `plan`'s row of `phasegate_status` (`None`: no view, or no row).
pub async fn view_row(db: &TestDb, plan: &str) -> TestResult<Option<ViewRow>> {
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
pub fn document(out: &Output, what: &str) -> TestResult<Value> {
    serde_json::from_slice(&out.stdout).map_err(|e| {
        fail(format!(
            "{what}: stdout is not one JSON document ({e}):\n{}",
            text(out)
        ))
    })
}

/// `status --format json`'s entry for `plan`.
pub fn status_of(project: &Project, plan: &str) -> TestResult<Value> {
    let out = run(project, &["status", "--env", ENV, "--format", "json"])?;
    let doc = document(&out, "status")?;
    doc["environments"][0]["plans"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["plan"] == plan))
        .cloned()
        .ok_or_else(|| fail(format!("status lists no {plan}:\n{doc}")))
}

/// Runs `check`, as JSON and as text, and checks the two agree and the
/// exit code matches the document. Returns the document.
pub fn check(project: &Project, plan: &str, phase: usize, deployed: bool) -> TestResult<Value> {
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
pub async fn agree(db: &TestDb, project: &Project, plan: &str, when: &str) -> TestResult<ViewRow> {
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
pub fn expect(project: &Project, args: &[&str], code: i32) -> TestResult<String> {
    crate::rollback_support::expect(project, args, code)
}

/// The step of the last event of `kind` in the log.
pub async fn step_of_last(db: &TestDb, kind: &str) -> TestResult<String> {
    db.text(&format!(
        "SELECT step FROM phasegate_events WHERE kind = '{kind}' ORDER BY id DESC LIMIT 1"
    ))
    .await?
    .ok_or_else(|| fail(format!("no {kind} event with a step")))
}

pub fn expect_row(row: &ViewRow, state: &str, applied: i64, failed: i64, when: &str) -> TestResult {
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

/// A project whose rename has run phase 1.
pub async fn started(db: &TestDb) -> TestResult<Project> {
    db.create_table("users", "id integer PRIMARY KEY, name text")
        .await?;
    let project = Project::new(db, &[], REN, REN_PLAN)?;
    expect(&project, &["apply", "--env", ENV, REN], 0)?;
    Ok(project)
}

/// Exit 2, the error on stderr naming what is wrong, and with `--format
/// json` one document on stdout whose error has `kind`.
pub fn refused(project: &Project, args: &[&str], kind: &str, says: &[&str]) -> TestResult {
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
