//! `phasegate export`'s core (`export::build`) on real databases, without a
//! runner: the deploys `build` makes for a rename and for required columns
//! are run unit by unit (`export::direct`: transactional units inside
//! `BEGIN`/`COMMIT`, the others alone) on Postgres and MariaDB, through
//! every deploy, with `phasegate mark` between them, as a runner and a CD
//! pipeline would.
//!
//! Checked at every deploy: `phasegate status --format json` shows the
//! phase migrated (or deployed); a deploy run before the one before it is
//! marked is refused by its guard with the reason and the `mark` to run,
//! changing nothing; a deploy run twice is refused; a backfill hands off to
//! `phasegate apply` and the file passes once apply has run it. At the end:
//! the schema equals what `phasegate apply` gives on a twin database, the
//! log's hash chain verifies (`history`, `status`), and every event the SQL
//! appended names the runner.

mod common;
mod executor_support;
mod rollback_support;

use common::{TestDb, TestResult, fail, with_mysql, with_postgres};
use executor_support::{ENV, Project};
use phasegate::execute::Workspace;
use phasegate::export::{self, Runner, direct};
use phasegate::tracker::SystemClock;
use rollback_support::{expect, run, text};

const RENAME: &str = include_str!("../plans/rename-users-name.yaml");
const REQUIRED: &str = include_str!("../plans/add-users-email-verified.yaml");

async fn users(db: &TestDb) -> TestResult {
    db.create_table("users", "id integer PRIMARY KEY, name varchar(100)")
        .await?;
    db.exec("INSERT INTO users (id, name) VALUES (1, 'Ada'), (2, 'Grace'), (3, NULL)")
        .await?;
    Ok(())
}

/// The state `status --format json` gives the plan's phase `phase` … as
/// (phase in progress, its state, phases deployed).
fn status(project: &Project, plan: &str) -> TestResult<(u64, String, u64)> {
    let out = run(project, &["status", "--env", ENV, "--format", "json"])?;
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout)
        .map_err(|e| fail(format!("status JSON: {e}\n{}", text(&out))))?;
    let row = doc["environments"][0]["plans"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["plan"] == plan))
        .ok_or_else(|| fail(format!("status does not list {plan}:\n{doc:#}")))?;
    Ok((
        row["phase"].as_u64().unwrap_or(0),
        row["state"].as_str().unwrap_or("").to_string(),
        row["deployed"].as_u64().unwrap_or(0),
    ))
}

fn mark(project: &Project, plan: &str, phase: usize) -> TestResult {
    let phase = phase.to_string();
    expect(
        project,
        &[
            "mark",
            "--env",
            ENV,
            plan,
            "--phase",
            &phase,
            "--app-version",
            "v1",
        ],
        0,
    )?;
    Ok(())
}

/// Everything but phasegate's own objects.
async fn app_schema(db: &TestDb) -> TestResult<Vec<String>> {
    Ok(db
        .schema()
        .await?
        .into_iter()
        .filter(|l| !l.contains("phasegate"))
        .collect())
}

async fn rolls_out(db: TestDb, twin: TestDb, name: &str, plan_text: &str) -> TestResult {
    users(&db).await?;
    users(&twin).await?;
    let project = Project::new(&db, &[], name, plan_text)?;
    let twin_project = Project::new(&twin, &[], name, plan_text)?;
    let clock = SystemClock;
    let ws = Workspace::new(&project.config, &clock, "test");
    let plan_name = name;

    // Without --phase: the deploys before the first irreversible one.
    let all = export::build(&ws, None, name, Runner::Flyway, None).await?;
    let phases = all.phases;
    // The rename's contract (deploy 3) is irreversible: withheld.
    let withheld_ok = match all.withheld {
        Some(w) => all.deploys.len() == w - 1 && !all.deploys.iter().any(|d| !d.reversible),
        None => all.deploys.len() == phases && all.deploys.iter().all(|d| d.reversible),
    };
    if !withheld_ok {
        return Err(fail(format!(
            "without --phase: {} deploys written, withheld {:?}",
            all.deploys.len(),
            all.withheld
        )));
    }
    let mut conn = direct::connect(&db.url, db.dialect).await?;
    let mut apps = Vec::new();
    let mut refused_out_of_order = false;
    for n in 1..=phases {
        let built = export::build(&ws, None, name, Runner::Flyway, Some(n)).await?;
        let deploy = &built.deploys[0];
        if n > 1 && apps[n - 2] {
            // Out of order: deploy n before deploy n-1's app is marked.
            let before = db.schema().await?;
            let e = direct::run_units(&mut conn, db.dialect, &deploy.units)
                .await
                .err()
                .ok_or_else(|| {
                    fail(format!("deploy {n} ran before deploy {} was marked", n - 1))
                })?;
            let said = e.to_string();
            for needle in [
                format!("deploy {} marked deployed", n - 1),
                format!("phasegate mark --env {ENV} {name} --phase {}", n - 1),
            ] {
                if !said.contains(&needle) {
                    return Err(fail(format!(
                        "the guard's refusal does not say {needle:?}: {said}"
                    )));
                }
            }
            if db.schema().await? != before {
                return Err(fail("the refused deploy changed the schema"));
            }
            refused_out_of_order = true;
            mark(&project, name, n - 1)?;
        }
        let units = &deploy.units;
        match direct::run_units(&mut conn, db.dialect, units).await {
            Ok(()) => {}
            Err(direct::DirectError::Unit { index, unit, .. }) if unit == "backfill_handoff" => {
                // The hand-off refuses until phasegate ran the backfill.
                let e = direct::run_units(&mut conn, db.dialect, &units[index..index + 1])
                    .await
                    .err()
                    .ok_or_else(|| fail("the hand-off passed twice"))?;
                if !e
                    .to_string()
                    .contains(&format!("phasegate apply --env {ENV} {name}"))
                {
                    return Err(fail(format!("the hand-off does not say what to run: {e}")));
                }
                expect(&project, &["apply", "--env", ENV, name], 0)?;
                direct::run_units(&mut conn, db.dialect, &units[index..]).await?;
            }
            Err(e) => return Err(fail(format!("deploy {n}: {e}"))),
        }
        let (phase, state, deployed) = status(&project, plan_name)?;
        let has_app = !deploy.app.is_empty();
        apps.push(has_app);
        let shown = if has_app {
            phase == n as u64 && state == "migrated"
        } else {
            deployed >= n as u64
        };
        if !shown {
            return Err(fail(format!(
                "after deploy {n}: status shows phase {phase} {state} ({deployed} deployed)"
            )));
        }
        // Run again: refused, nothing changes.
        let e = direct::run_units(&mut conn, db.dialect, &units[..1])
            .await
            .err()
            .ok_or_else(|| fail(format!("deploy {n}'s guard passed a second time")))?;
        if !e.to_string().contains("migrated already") {
            return Err(fail(format!("second run of deploy {n}: {e}")));
        }
        if has_app && n == phases {
            mark(&project, name, n)?;
        }
    }
    if !refused_out_of_order {
        return Err(fail(
            "no deploy followed one with an app change: the guard was not tried",
        ));
    }
    let (_, state, deployed) = status(&project, plan_name)?;
    if state != "deployed" || deployed != phases as u64 {
        return Err(fail(format!(
            "at the end: {state}, {deployed} of {phases} deployed"
        )));
    }
    // The twin, by phasegate apply.
    for (i, has_app) in apps.iter().enumerate() {
        expect(&twin_project, &["apply", "--env", ENV, name], 0)?;
        if *has_app {
            mark(&twin_project, name, i + 1)?;
        }
    }
    let (ours, theirs) = (app_schema(&db).await?, app_schema(&twin).await?);
    if ours != theirs {
        return Err(fail(format!(
            "the schema differs from apply's:\nexport: {ours:#?}\napply: {theirs:#?}"
        )));
    }
    // The chain verifies: history and status read the log.
    let history = expect(&project, &["history", "--env", ENV, name], 0)?;
    if !history.contains("runner:flyway") {
        return Err(fail(format!(
            "history does not name the runner:\n{history}"
        )));
    }
    expect(&project, &["status", "--env", ENV], 0)?;
    Ok(())
}

#[tokio::test]
async fn a_rename_rolls_out_through_exported_units_on_postgres() {
    with_postgres(|db| async move {
        with_postgres(|twin| async move { rolls_out(db, twin, "rename-users-name", RENAME).await })
            .await;
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn required_columns_roll_out_through_exported_units_on_postgres() {
    with_postgres(|db| async move {
        with_postgres(|twin| async move {
            rolls_out(db, twin, "add-users-email-verified", REQUIRED).await
        })
        .await;
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn a_rename_rolls_out_through_exported_units_on_mariadb() {
    with_mysql(|db| async move {
        with_mysql(|twin| async move { rolls_out(db, twin, "rename-users-name", RENAME).await })
            .await;
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn required_columns_roll_out_through_exported_units_on_mariadb() {
    with_mysql(|db| async move {
        with_mysql(|twin| async move {
            rolls_out(db, twin, "add-users-email-verified", REQUIRED).await
        })
        .await;
        Ok(())
    })
    .await;
}
