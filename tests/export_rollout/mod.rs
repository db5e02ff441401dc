//! What the real-runner export tests (`runner_liquibase.rs`,
//! `runner_rails.rs`) share: a plan exported with `phasegate export`, then
//! applied by the runner one migration at a time, as a CD pipeline would,
//! with the application's releases querying the table between every two
//! migrations, `phasegate mark` when a guard asks for it, `phasegate apply`
//! when a backfill hands off, and the irreversible deploy exported with
//! `--phase` only once the runner has applied everything before it.
//!
//! Checked: every query of a live release succeeds and reads back what it
//! wrote, at every step; `phasegate status --format json` shows each phase
//! as it goes and every phase deployed at the end; the schema equals what
//! `phasegate apply` gives on a twin database; the original release fails
//! at the end (the negative control); and on SQLite, where exported files
//! cannot record themselves, the runner is refused with the reason and
//! the `phasegate apply` to run, changing nothing.

#![allow(dead_code)]

use std::path::Path;
use std::process::Output;

use crate::common::{TestDb, TestResult, fail};
use crate::executor_support::{ENV, Project};
use crate::rollback_support::{expect, run, text};
use phasegate::dialect::Dialect;

pub const RENAME: &str = include_str!("../../plans/rename-users-name.yaml");
pub const REQUIRED: &str = include_str!("../../plans/add-users-email-verified.yaml");

/// What one step of a runner did.
#[derive(Debug)]
pub enum Step {
    /// It applied the next pending migration.
    Applied,
    /// Nothing was pending.
    Done,
    /// A migration failed; the runner's output.
    Failed(String),
}

/// A real migration runner applying `phasegate export`'s files.
pub trait Runner {
    /// `--to`'s name.
    fn name(&self) -> &'static str;
    /// Applies the next pending migration in the project's export folder.
    fn step(&self, project: &Project, db: &TestDb) -> TestResult<Step>;
}

/// The program an env var names (set by `.ci/run`), or `None` after a loud
/// skip; with `PHASEGATE_REQUIRE_DATABASES=1` a missing one is a failure.
pub fn tool(var: &str, test: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(v) if !v.is_empty() && Path::new(&v).exists() => Some(v),
        _ if std::env::var(crate::common::REQUIRE_ENV).as_deref() == Ok("1") => {
            panic!(
                "{var} is not set to an installed program: run .ci/run (it installs the runners)"
            )
        }
        _ => {
            eprintln!("SKIPPED: {test}: {var} is not set (.ci/run sets it)");
            None
        }
    }
}

/// `(user, password, host:port, database)` of a server URL.
pub fn url_parts(url: &str) -> (String, Option<String>, String, String) {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let rest = rest.split('?').next().unwrap_or(rest);
    let (auth, rest) = rest.rsplit_once('@').unwrap_or(("", rest));
    let (user, password) = match auth.split_once(':') {
        Some((u, p)) => (u.to_string(), Some(p.to_string())),
        None => (auth.to_string(), None),
    };
    let (host, db) = rest.split_once('/').unwrap_or((rest, ""));
    (user, password, host.to_string(), db.to_string())
}

/// Runs a command in the project folder; its output.
pub fn command(program: &str, args: &[&str], dir: &Path) -> TestResult<Output> {
    Ok(std::process::Command::new(program)
        .args(args)
        .current_dir(dir)
        .stdin(std::process::Stdio::null())
        .output()?)
}

pub fn out(o: &Output) -> String {
    text(o)
}

// ---------------------------------------------------------------------------
// The application's releases
// ---------------------------------------------------------------------------

/// Release `release` of the app (0: before the plan; n: the code shipped
/// with deploy n) writes row `id` and reads it back: (write, read, what
/// the read must return).
fn release_queries(plan: &str, release: usize, id: i64) -> (String, String, String) {
    match (plan, release) {
        ("rename-users-name", 0) => (
            format!("INSERT INTO users (id, name) VALUES ({id}, 'old-{id}')"),
            format!("SELECT name FROM users WHERE id = {id}"),
            format!("old-{id}"),
        ),
        ("rename-users-name", _) => (
            format!("INSERT INTO users (id, full_name) VALUES ({id}, 'new-{id}')"),
            format!("SELECT full_name FROM users WHERE id = {id}"),
            format!("new-{id}"),
        ),
        (_, 0) => (
            format!("INSERT INTO users (id, name) VALUES ({id}, 'old-{id}')"),
            format!("SELECT name FROM users WHERE id = {id}"),
            format!("old-{id}"),
        ),
        _ => (
            format!(
                "INSERT INTO users (id, name, email_verified, signup_source, nickname) VALUES ({id}, 'new-{id}', true, 'web', 'n{id}')"
            ),
            format!("SELECT signup_source FROM users WHERE id = {id}"),
            "web".to_string(),
        ),
    }
}

async fn release_works(db: &TestDb, plan: &str, release: usize, id: i64, when: &str) -> TestResult {
    let (write, read, want) = release_queries(plan, release, id);
    db.exec(&write)
        .await
        .map_err(|e| fail(format!("{when}: release {release}'s write failed: {e}")))?;
    let got = db
        .text(&read)
        .await
        .map_err(|e| fail(format!("{when}: release {release}'s read failed: {e}")))?;
    if got.as_deref() != Some(want.as_str()) {
        return Err(fail(format!(
            "{when}: release {release} read {got:?} back, wrote {want:?}"
        )));
    }
    Ok(())
}

pub async fn users(db: &TestDb) -> TestResult {
    db.create_table("users", "id integer PRIMARY KEY, name varchar(100)")
        .await?;
    db.exec("INSERT INTO users (id, name) VALUES (1, 'Ada'), (2, 'Grace'), (3, NULL)")
        .await?;
    Ok(())
}

// ---------------------------------------------------------------------------
// phasegate
// ---------------------------------------------------------------------------

/// (phase in progress, its state, phases deployed) from `status --format json`.
fn status(project: &Project, plan: &str) -> TestResult<(usize, String, usize)> {
    let o = run(project, &["status", "--env", ENV, "--format", "json"])?;
    let doc: serde_json::Value = serde_json::from_slice(&o.stdout)
        .map_err(|e| fail(format!("status JSON: {e}\n{}", text(&o))))?;
    let Some(row) = doc["environments"][0]["plans"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["plan"] == plan))
    else {
        return Ok((0, "pending".into(), 0));
    };
    Ok((
        row["phase"].as_u64().unwrap_or(0) as usize,
        row["state"].as_str().unwrap_or("").to_string(),
        row["deployed"].as_u64().unwrap_or(0) as usize,
    ))
}

/// What `export --format json` says: how many deploys the plan has, the
/// deploys written as (phase, has an app change), the withheld one.
type Exported = (usize, Vec<(usize, bool)>, Option<usize>);

/// `phasegate export --format json`.
fn export(
    project: &Project,
    runner: &str,
    plan: &str,
    phase: Option<usize>,
    version: &str,
) -> TestResult<Exported> {
    let phase_text = phase.map(|p| p.to_string());
    let mut args = vec![
        "export",
        "--to",
        runner,
        "--env",
        ENV,
        "--version",
        version,
        "--format",
        "json",
    ];
    if let Some(p) = &phase_text {
        args.extend(["--phase", p.as_str()]);
    }
    args.push(plan);
    let o = run(project, &args)?;
    if !o.status.success() {
        return Err(fail(format!(
            "`phasegate {}`: {}",
            args.join(" "),
            text(&o)
        )));
    }
    let doc: serde_json::Value = serde_json::from_slice(&o.stdout)
        .map_err(|e| fail(format!("export JSON: {e}\n{}", text(&o))))?;
    let payload = if doc.get("deploys").is_some() {
        &doc
    } else {
        &doc["export"]
    };
    let deploys = payload["deploys"]
        .as_array()
        .ok_or_else(|| fail(format!("export JSON has no deploys:\n{doc:#}")))?
        .iter()
        .map(|d| {
            (
                d["phase"].as_u64().unwrap_or(0) as usize,
                d["app"].as_array().is_some_and(|a| !a.is_empty()),
            )
        })
        .collect();
    Ok((
        payload["phases"].as_u64().unwrap_or(0) as usize,
        deploys,
        payload["withheld"].as_u64().map(|w| w as usize),
    ))
}

fn mark(project: &Project, plan: &str, phase: usize) -> TestResult {
    let p = phase.to_string();
    expect(
        project,
        &[
            "mark",
            "--env",
            ENV,
            plan,
            "--phase",
            &p,
            "--app-version",
            &format!("v{p}"),
        ],
        0,
    )?;
    Ok(())
}

/// Everything but phasegate's and the runners' own tables.
async fn app_schema(db: &TestDb) -> TestResult<Vec<String>> {
    Ok(db
        .schema()
        .await?
        .into_iter()
        .filter(|l| {
            let l = l.to_ascii_lowercase();
            ![
                "phasegate",
                "databasechangelog",
                "schema_migrations",
                "ar_internal_metadata",
            ]
            .iter()
            .any(|t| l.contains(t))
        })
        .collect())
}

// ---------------------------------------------------------------------------
// The rollout
// ---------------------------------------------------------------------------

fn has_app(deploys: &[(usize, bool)], n: usize) -> bool {
    deploys.iter().any(|(p, a)| *p == n && *a)
}

/// Rolls `plan` out on `db` through `runner`, and on `twin` with
/// `phasegate apply`, and compares (see the module doc).
pub async fn rolls_out(
    db: TestDb,
    twin: TestDb,
    plan: &str,
    plan_text: &str,
    runner: &dyn Runner,
) -> TestResult {
    users(&db).await?;
    users(&twin).await?;
    let project = Project::new(&db, &[], plan, plan_text)?;
    let twin_project = Project::new(&twin, &[], plan, plan_text)?;

    let (phases, mut deploys, withheld) =
        export(&project, runner.name(), plan, None, "20260101000000")?;
    if phases < 2 {
        return Err(fail(format!(
            "{plan} has {phases} deploys: nothing to roll out"
        )));
    }
    let mut next_export = withheld;
    let mut id = 1000;
    let mut steps = 0;
    let mut attempts = 0;
    loop {
        attempts += 1;
        if attempts > 300 {
            return Err(fail(format!(
                "{} gets nowhere: {attempts} attempts",
                runner.name()
            )));
        }
        // The live releases: the one of the last deploy marked deployed (or
        // the original), and each migrated since whose app may be rolling out.
        let (phase, state, deployed) = status(&project, plan)?;
        let migrated = if state == "migrated" {
            phase.max(deployed)
        } else {
            deployed
        };
        let base = (1..=deployed)
            .rev()
            .find(|n| has_app(&deploys, *n))
            .unwrap_or(0);
        let live: Vec<usize> = std::iter::once(base)
            .chain((deployed + 1..=migrated).filter(|n| has_app(&deploys, *n)))
            .collect();
        let when = format!("after {steps} migrations (phase {phase} {state}, {deployed} deployed)");
        for r in &live {
            id += 1;
            release_works(&db, plan, *r, id, &when).await?;
        }
        match runner.step(&project, &db)? {
            Step::Applied => steps += 1,
            Step::Failed(said) => {
                let mark_next = format!("phasegate mark --env {ENV} {plan} --phase ");
                if let Some(at) = said.find(&mark_next) {
                    let n: usize = said[at + mark_next.len()..]
                        .chars()
                        .take_while(|c| c.is_ascii_digit())
                        .collect::<String>()
                        .parse()
                        .map_err(|_| fail(format!("the guard names no phase to mark: {said}")))?;
                    if n != deployed + 1 || n > migrated {
                        return Err(fail(format!(
                            "{when}: the guard asks to mark deploy {n}:\n{said}"
                        )));
                    }
                    mark(&project, plan, n)?;
                } else if said.contains(&format!("phasegate apply --env {ENV} {plan}")) {
                    expect(&project, &["apply", "--env", ENV, plan], 0)?;
                } else {
                    return Err(fail(format!("{when}: {} failed:\n{said}", runner.name())));
                }
                // The refused migration runs again on the next step.
            }
            Step::Done => {
                let Some(n) = next_export.filter(|n| *n <= phases) else {
                    break;
                };
                let (_, more, _) = export(
                    &project,
                    runner.name(),
                    plan,
                    Some(n),
                    &format!("2026010{n}000000"),
                )?;
                deploys.extend(more);
                next_export = Some(n + 1);
            }
        }
    }
    if has_app(&deploys, phases) {
        mark(&project, plan, phases)?;
    }
    let (_, state, deployed) = status(&project, plan)?;
    if state != "deployed" || deployed != phases {
        return Err(fail(format!(
            "at the end: {state}, {deployed} of {phases} deployed"
        )));
    }
    // Negative control: the original release no longer works.
    let (write, _, _) = release_queries(plan, 0, 99_999);
    if db.exec(&write).await.is_ok() {
        return Err(fail(
            "the original release still writes after the plan: the checks prove nothing",
        ));
    }
    // The twin, by phasegate apply.
    for n in 1..=phases {
        expect(&twin_project, &["apply", "--env", ENV, plan], 0)?;
        if has_app(&deploys, n) {
            mark(&twin_project, plan, n)?;
        }
    }
    let (ours, theirs) = (app_schema(&db).await?, app_schema(&twin).await?);
    if ours != theirs {
        return Err(fail(format!(
            "the schema differs from apply's:\n{}: {ours:#?}\napply: {theirs:#?}",
            runner.name()
        )));
    }
    expect(&project, &["status", "--env", ENV], 0)?;
    Ok(())
}

/// On SQLite the exported files cannot record themselves: the runner's
/// first migration is refused with the reason and the `phasegate apply`
/// to run, and the schema is unchanged.
pub async fn refused_on_sqlite(
    db: TestDb,
    plan: &str,
    plan_text: &str,
    runner: &dyn Runner,
) -> TestResult {
    assert_eq!(db.dialect, Dialect::Sqlite);
    users(&db).await?;
    let project = Project::new(&db, &[], plan, plan_text)?;
    export(&project, runner.name(), plan, None, "20260101000000")?;
    let before = app_schema(&db).await?;
    match runner.step(&project, &db)? {
        Step::Failed(said) => {
            for needle in ["SQLite", &format!("phasegate apply --env {ENV} {plan}")] {
                if !said.contains(needle) {
                    return Err(fail(format!(
                        "the refusal does not say {needle:?}:\n{said}"
                    )));
                }
            }
        }
        other => return Err(fail(format!("the SQLite export ran: {other:?}"))),
    }
    if app_schema(&db).await? != before {
        return Err(fail("the refused SQLite export changed the schema"));
    }
    Ok(())
}
