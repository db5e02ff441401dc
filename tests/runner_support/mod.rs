//! What the runner end-to-end tests (`runner_sqlx.rs`, `runner_dbmate.rs`)
//! share: a plan exported with `phasegate export --to <runner>`, deploy by
//! deploy, run by the REAL runner against a real database while the
//! application's releases keep querying it, each app deploy marked with
//! `phasegate mark` in between, `phasegate status --format json` read after
//! each deploy, and the final schema compared with what `phasegate apply`
//! gives on a twin database.
//!
//! The releases: release 0 is the application before the plan; release N
//! ships with deploy N. While deploy N's files run, the release live before
//! it (N − 1) runs queries in a loop on its own connections: every query
//! must succeed and the loop must overlap the run. After the files ran,
//! each release the scenario says is supported must work, and the one the
//! plan retires must fail (the negative control).

#![allow(dead_code)]

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use serde_json::Value;

use phasegate::dialect::Dialect;

use crate::common::{TestDb, TestResult, fail};
use crate::executor_support::{ENV, Project};
use crate::rollback_support::{expect, run, text};

/// One release's queries: `{id}` is replaced by a fresh id; a `SELECT`
/// must return 1.
#[derive(Clone, Copy)]
pub struct Release {
    pub name: &'static str,
    pub statements: &'static [&'static str],
}

/// A plan, its table, its releases, and which release works after each
/// deploy's migrations (`works[n - 1]`: releases that must work after
/// deploy n, `broken[n - 1]`: releases that must fail).
pub struct Scenario {
    pub plan: &'static str,
    pub plan_text: &'static str,
    pub setup: &'static str,
    pub releases: &'static [Release],
    pub works: &'static [&'static [usize]],
    pub broken: &'static [&'static [usize]],
    /// The first irreversible deploy: written only with `--phase`.
    pub irreversible: Option<usize>,
}

pub const RENAME: Scenario = Scenario {
    plan: "rename-users-name",
    plan_text: include_str!("../../plans/rename-users-name.yaml"),
    setup: "CREATE TABLE users (id integer PRIMARY KEY, name varchar(100));
            INSERT INTO users (id, name) VALUES (1, 'Ada'), (2, 'Grace'), (3, NULL);",
    releases: &[
        Release {
            name: "release 0 (name)",
            statements: &[
                "INSERT INTO users (id, name) VALUES ({id}, 'n{id}')",
                "UPDATE users SET name = 'u{id}' WHERE id = {id}",
                "SELECT COUNT(*) FROM users WHERE name = 'u{id}'",
            ],
        },
        // Deploy 1 ships no app change: the same queries.
        Release {
            name: "release 1 (name)",
            statements: &[
                "INSERT INTO users (id, name) VALUES ({id}, 'n{id}')",
                "SELECT COUNT(*) FROM users WHERE name = 'n{id}'",
            ],
        },
        Release {
            name: "release 2 (full_name)",
            statements: &[
                "INSERT INTO users (id, full_name) VALUES ({id}, 'f{id}')",
                "UPDATE users SET full_name = 'g{id}' WHERE id = {id}",
                "SELECT COUNT(*) FROM users WHERE full_name = 'g{id}'",
            ],
        },
        Release {
            name: "release 3 (full_name)",
            statements: &[
                "INSERT INTO users (id, full_name) VALUES ({id}, 'f{id}')",
                "SELECT COUNT(*) FROM users WHERE full_name = 'f{id}'",
            ],
        },
    ],
    works: &[&[0, 1, 2], &[1, 2], &[2, 3]],
    broken: &[&[], &[], &[0, 1]],
    irreversible: Some(3),
};

pub const REQUIRED_COLUMN: Scenario = Scenario {
    plan: "add-users-email-verified",
    plan_text: include_str!("../../plans/add-users-email-verified.yaml"),
    setup: "CREATE TABLE users (id integer PRIMARY KEY, name varchar(100));
            INSERT INTO users (id, name) VALUES (1, 'Ada'), (2, 'Grace');",
    releases: &[
        Release {
            name: "release 0 (no signup_source)",
            statements: &[
                "INSERT INTO users (id, name) VALUES ({id}, 'n{id}')",
                "SELECT COUNT(*) FROM users WHERE id = {id}",
            ],
        },
        Release {
            name: "release 1 (writes signup_source)",
            statements: &[
                "INSERT INTO users (id, name, signup_source, email_verified, nickname) \
                 VALUES ({id}, 'n{id}', 'web', true, 'k{id}')",
                "UPDATE users SET signup_source = 'app' WHERE id = {id}",
                "SELECT COUNT(*) FROM users WHERE id = {id} AND signup_source = 'app'",
            ],
        },
        Release {
            name: "release 2 (writes signup_source)",
            statements: &[
                "INSERT INTO users (id, name, signup_source) VALUES ({id}, 'n{id}', 'web')",
                "SELECT COUNT(*) FROM users WHERE id = {id} AND email_verified = false",
            ],
        },
    ],
    works: &[&[0, 1], &[1, 2]],
    broken: &[&[], &[0]],
    irreversible: None,
};

/// A real migration runner: runs every pending file of `dir` against `db`;
/// `Err` carries the runner's message (a guard's or a hand-off's refusal).
pub trait RealRunner: Sync {
    /// The `--to` name.
    fn name(&self) -> &'static str;
    /// Where the files go under the project (`--dir`).
    fn dir(&self, project: &Project) -> PathBuf {
        project.dir.join("migrations")
    }
    fn up(&self, db: &TestDb, dir: &Path) -> impl Future<Output = Result<(), String>>;
}

fn fresh_id() -> i64 {
    static NEXT: AtomicU64 = AtomicU64::new(1_000);
    NEXT.fetch_add(1, Ordering::Relaxed) as i64
}

/// One pass of `release`'s queries with a fresh id.
async fn exercise(db: &TestDb, release: &Release) -> TestResult {
    let id = fresh_id().to_string();
    for s in release.statements {
        let sql = s.replace("{id}", &id);
        if sql.starts_with("SELECT") {
            let n = db.scalar(&sql).await?;
            if n != 1 {
                return Err(fail(format!("{}: {sql} returned {n}, not 1", release.name)));
            }
        } else {
            db.exec(&sql).await?;
        }
    }
    Ok(())
}

/// Runs `work` while `release` queries `db` in a loop; fails if a query
/// fails or none ran while `work` ran.
async fn while_running<T>(
    db: &TestDb,
    release: Release,
    work: impl Future<Output = T>,
) -> TestResult<T> {
    let stop = Arc::new(AtomicBool::new(false));
    let ops = Arc::new(AtomicU64::new(0));
    let task = {
        let (db, stop, ops) = (db.clone(), stop.clone(), ops.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                if let Err(e) = exercise(&db, &release).await {
                    return Err(e.to_string());
                }
                ops.fetch_add(1, Ordering::Relaxed);
                tokio::task::yield_now().await;
            }
            Ok(())
        })
    };
    let out = work.await;
    stop.store(true, Ordering::Relaxed);
    task.await.map_err(|e| fail(e.to_string()))?.map_err(fail)?;
    if ops.load(Ordering::Relaxed) == 0 {
        return Err(fail(format!(
            "{} ran no query while the runner ran",
            release.name
        )));
    }
    Ok(out)
}

fn status(project: &Project, plan: &str) -> TestResult<Value> {
    let out = run(project, &["status", "--env", ENV, "--format", "json"])?;
    let doc: Value = serde_json::from_slice(&out.stdout)
        .map_err(|e| fail(format!("status: not JSON ({e}): {}", text(&out))))?;
    doc["environments"][0]["plans"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["plan"] == plan))
        .cloned()
        .ok_or_else(|| fail(format!("status lists no {plan}:\n{doc}")))
}

/// SQLite has no SHA-256 in SQL, so the exported files cannot record a
/// deploy in phasegate's log: each deploy's files refuse (docs/export.md),
/// naming `phasegate apply`, and change nothing; `apply` then runs it.
async fn sqlite_refuses(runner: &impl RealRunner, scn: &Scenario, db: TestDb) -> TestResult {
    let project = Project::new(&db, &[], scn.plan, scn.plan_text)?;
    let dir = runner.dir(&project);
    let dir_arg = dir.to_string_lossy().to_string();
    expect(
        &project,
        &[
            "export",
            "--to",
            runner.name(),
            "--env",
            ENV,
            "--dir",
            &dir_arg,
            "--phase",
            "1",
            scn.plan,
        ],
        0,
    )?;
    let before = app_schema(&db).await?;
    let live = scn.releases[0];
    match while_running(&db, live, runner.up(&db, &dir)).await? {
        Ok(()) => return Err(fail(format!("{} ran deploy 1 on SQLite", runner.name()))),
        Err(e)
            if e.contains("cannot run from a runner on SQLite")
                && e.contains("phasegate apply") => {}
        Err(e) => return Err(fail(format!("{}: unexpected failure: {e}", runner.name()))),
    }
    let after = app_schema(&db).await?;
    if after != before {
        return Err(fail(format!(
            "the refused deploy changed the schema:\n{before:#?}\n--- after ---\n{after:#?}"
        )));
    }
    let s = status(&project, scn.plan)?;
    if s["deployed"] != 0 || s["state"] != "pending" {
        return Err(fail(format!("after the refusal: status {s}")));
    }
    expect(&project, &["apply", "--env", ENV, scn.plan], 0)?;
    for &r in scn.works[0] {
        exercise(&db, &scn.releases[r]).await?;
    }
    Ok(())
}

/// Every file's path under `dir`, as text.
fn files_under(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p.to_string_lossy().to_string());
            }
        }
    }
    out
}

/// The schema without the runners' own bookkeeping tables.
async fn app_schema(db: &TestDb) -> TestResult<Vec<String>> {
    Ok(db
        .schema()
        .await?
        .into_iter()
        .filter(|l| !l.contains("_sqlx_migrations") && !l.contains("schema_migrations"))
        .collect())
}

/// Every deploy of `scn` through `runner` on `db`; the same through
/// `phasegate apply` on `twin`; the schemas must match.
pub async fn roll_out(
    runner: &impl RealRunner,
    scn: &Scenario,
    db: TestDb,
    twin: TestDb,
) -> TestResult {
    for d in [&db, &twin] {
        d.exec(scn.setup).await?;
    }
    if db.dialect == Dialect::Sqlite {
        return sqlite_refuses(runner, scn, db).await;
    }
    let project = Project::new(&db, &[], scn.plan, scn.plan_text)?;
    let twin_project = Project::new(&twin, &[], scn.plan, scn.plan_text)?;
    let deploys = scn.works.len();
    let dir = runner.dir(&project);
    let dir_arg = dir.to_string_lossy().to_string();

    // Without --phase: only the deploys before the first irreversible one.
    expect(
        &project,
        &[
            "export",
            "--to",
            runner.name(),
            "--env",
            ENV,
            "--dir",
            &dir_arg,
            "--version",
            "20260101000000",
            scn.plan,
        ],
        0,
    )?;
    let written = files_under(&dir);
    if !written.iter().any(|f| f.contains("_deploy1_")) {
        return Err(fail(format!(
            "export without --phase wrote no deploy 1: {written:?}"
        )));
    }
    if let Some(k) = scn.irreversible {
        let early: Vec<_> = written
            .iter()
            .filter(|f| (k..=deploys).any(|d| f.contains(&format!("_deploy{d}_"))))
            .collect();
        if !early.is_empty() {
            return Err(fail(format!(
                "irreversible deploy {k} written without --phase: {early:?}"
            )));
        }
    }
    let _ = std::fs::remove_dir_all(&dir);

    for n in 1..=deploys {
        let phase = n.to_string();
        // Each deploy numbered after the last, whichever deploy it is.
        let version = format!("202601{:02}000000", n + 1);
        expect(
            &project,
            &[
                "export",
                "--to",
                runner.name(),
                "--env",
                ENV,
                "--dir",
                &dir_arg,
                "--phase",
                &phase,
                "--version",
                &version,
                scn.plan,
            ],
            0,
        )?;
        let live = scn.releases[n - 1];
        let mut ran = while_running(&db, live, runner.up(&db, &dir)).await?;
        if let Err(refusal) = &ran {
            // A hand-off: phasegate runs the backfill, then the runner goes on.
            // The hand-off's message (its hint, `phasegate apply …`, is not
            // in every runner's output).
            if !refusal.contains("phasegate apply") && !refusal.contains("that phasegate runs") {
                return Err(fail(format!(
                    "{}: deploy {n} failed: {refusal}",
                    runner.name()
                )));
            }
            expect(&project, &["apply", "--env", ENV, scn.plan], 0)?;
            ran = while_running(&db, live, runner.up(&db, &dir)).await?;
        }
        ran.map_err(|e| fail(format!("{}: deploy {n}: {e}", runner.name())))?;

        for &r in scn.works[n - 1] {
            exercise(&db, &scn.releases[r]).await?;
        }
        for &r in scn.broken[n - 1] {
            if exercise(&db, &scn.releases[r]).await.is_ok() {
                return Err(fail(format!(
                    "{} still works after deploy {n}: the check proves nothing",
                    scn.releases[r].name
                )));
            }
        }
        // Recorded by the runner's files: deploy n migrated (waiting for
        // its app code), or deployed already when it ships none.
        let s = status(&project, scn.plan)?;
        let deployed = s["deployed"].as_u64().unwrap_or(0) as usize;
        let migrated = s["phase"] == n && s["state"] == "migrated";
        if !(migrated || deployed >= n) || s["phases"] != deploys {
            return Err(fail(format!(
                "after deploy {n} through {}: status {s}",
                runner.name()
            )));
        }
        let app = format!("v{n}");
        expect(
            &project,
            &[
                "mark",
                "--env",
                ENV,
                scn.plan,
                "--phase",
                &phase,
                "--app-version",
                &app,
            ],
            0,
        )?;
        let s = status(&project, scn.plan)?;
        if s["deployed"].as_u64().unwrap_or(0) < n as u64 {
            return Err(fail(format!("after marking deploy {n}: status {s}")));
        }

        expect(&twin_project, &["apply", "--env", ENV, scn.plan], 0)?;
        expect(
            &twin_project,
            &[
                "mark",
                "--env",
                ENV,
                scn.plan,
                "--phase",
                &phase,
                "--app-version",
                &app,
            ],
            0,
        )?;
    }
    let s = status(&project, scn.plan)?;
    if s["deployed"] != deploys {
        return Err(fail(format!("at the end: status {s}")));
    }
    let (ours, theirs) = (app_schema(&db).await?, app_schema(&twin).await?);
    if ours != theirs {
        return Err(fail(format!(
            "{}'s schema differs from phasegate apply's:\n{ours:#?}\n--- apply ---\n{theirs:#?}",
            runner.name()
        )));
    }
    Ok(())
}
