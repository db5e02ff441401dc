//! `phasegate export` through the built binary, on Postgres: what it
//! refuses (an unknown runner with the nearest name, a deploy the plan does
//! not have, an unknown environment: exit 2, one JSON document with
//! `--format json`), that it creates phasegate's log in the environment
//! (the guard needs it), and — once the runner's writer exists — that it
//! writes the files, keeps unchanged ones, and never overwrites one whose
//! content differs.

mod common;
mod executor_support;
mod rollback_support;

use common::{TestResult, fail, with_postgres};
use executor_support::{ENV, Project};
use rollback_support::{expect, run, text};

const RENAME: &str = include_str!("../plans/rename-users-name.yaml");
const PLAN: &str = "rename-users-name";

fn json(o: &std::process::Output) -> TestResult<serde_json::Value> {
    serde_json::from_slice(&o.stdout)
        .map_err(|e| fail(format!("not one JSON document ({e}):\n{}", text(o))))
}

#[tokio::test]
async fn export_refuses_bad_input_and_writes_files_once() {
    with_postgres(|db| async move {
        db.create_table("users", "id integer PRIMARY KEY, name text")
            .await?;
        let project = Project::new(&db, &[], PLAN, RENAME)?;

        let out = expect(&project, &["export", "--to", "flywya", PLAN], 2)?;
        if !out.contains("flyway") {
            return Err(fail(format!("no suggestion for `flywya`:\n{out}")));
        }
        let o = run(
            &project,
            &[
                "export", "--to", "dbmate", "--phase", "7", PLAN, "--format", "json",
            ],
        )?;
        let doc = json(&o)?;
        if o.status.code() != Some(2)
            || doc["command"] != "export"
            || doc["error"]["kind"] != "invalid_request"
            || !doc["error"]["message"]
                .as_str()
                .unwrap_or("")
                .contains("no deploy 7")
        {
            return Err(fail(format!("--phase 7 of 3: {doc:#}")));
        }
        let o = run(
            &project,
            &[
                "export", "--to", "dbmate", "--env", "prod", PLAN, "--format", "json",
            ],
        )?;
        if o.status.code() != Some(2) || json(&o)?["error"]["kind"] != "unknown_environment" {
            return Err(fail(format!("--env prod: {}", text(&o))));
        }

        // The export readies the environment's log (read by `status`).
        let dir = project.dir.join("out");
        let dir_arg = dir.display().to_string();
        let args = [
            "export",
            "--to",
            "dbmate",
            "--dir",
            &dir_arg,
            "--version",
            "20260101000000",
            PLAN,
            "--format",
            "json",
        ];
        let o = run(&project, &args)?;
        let has_log: i64 = db
            .scalar("SELECT count(*) FROM pg_tables WHERE tablename = 'phasegate_events'")
            .await?;
        if has_log != 1 {
            return Err(fail("export did not create phasegate's log"));
        }
        let doc = json(&o)?;
        if o.status.code() != Some(0) {
            return Err(fail(format!("export: {doc:#}")));
        }
        // Deploys 1 and 2 are reversible; 3 (the contract) is withheld.
        if doc["withheld"] != 3 || doc["deploys"].as_array().map(Vec::len) != Some(2) {
            return Err(fail(format!("export without --phase: {doc:#}")));
        }
        let files = doc["files"].as_array().cloned().unwrap_or_default();
        if files.is_empty() || files.iter().any(|f| f["status"] != "written") {
            return Err(fail(format!("files: {doc:#}")));
        }
        let again = json(&run(&project, &args)?)?;
        let unchanged = again["files"]
            .as_array()
            .is_some_and(|fs| fs.iter().all(|f| f["status"] == "unchanged"));
        if !unchanged {
            return Err(fail(format!("a second export: {again:#}")));
        }
        let first = files[0]["path"].as_str().unwrap_or("").to_string();
        std::fs::write(&first, "-- changed by hand\n")?;
        let o = run(&project, &args)?;
        if o.status.code() != Some(2) || !text(&o).contains("not overwriting") {
            return Err(fail(format!(
                "a changed file was not protected: {}",
                text(&o)
            )));
        }
        if std::fs::read_to_string(&first)? != "-- changed by hand\n" {
            return Err(fail("the changed file was overwritten"));
        }
        expect(&project, &["status", "--env", ENV], 0)?;
        Ok(())
    })
    .await;
}

/// Two exports moments apart without `--version`, into one folder, for a
/// runner named by timestamps (dbmate) and one that prefixes them (Flyway):
/// the first numbers its files into the coming seconds, and the second's
/// must all sort after them, never take a version a runner reads as applied.
#[tokio::test]
async fn a_second_export_moments_later_numbers_its_files_after_the_first() {
    with_postgres(|db| async move {
        db.create_table("users", "id integer PRIMARY KEY, name text")
            .await?;
        let project = Project::new(&db, &[], PLAN, RENAME)?;
        for (runner, dir) in [("dbmate", "db1"), ("flyway", "fw")] {
            let versions = |d: &std::path::Path| -> TestResult<Vec<String>> {
                let mut v = Vec::new();
                for e in std::fs::read_dir(d)? {
                    let name = e?.file_name().to_string_lossy().into_owned();
                    let stamp: String = name
                        .trim_start_matches(['V', 'U'])
                        .chars()
                        .take(14)
                        .collect();
                    if !name.ends_with(".conf") {
                        v.push(stamp);
                    }
                }
                v.sort();
                v.dedup();
                Ok(v)
            };
            expect(
                &project,
                &["export", "--to", runner, "--dir", dir, "--phase", "1", PLAN],
                0,
            )?;
            let first = versions(&project.dir.join(dir))?;
            let o = run(
                &project,
                &[
                    "export", "--to", runner, "--dir", dir, "--phase", "2", PLAN, "--format",
                    "json",
                ],
            )?;
            let doc = json(&o)?;
            let second: Vec<String> = doc["files"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|f| f["path"].as_str())
                .filter(|p| !p.ends_with(".conf"))
                .filter_map(|p| std::path::Path::new(p).file_name())
                .map(|n| {
                    n.to_string_lossy()
                        .trim_start_matches(['V', 'U'])
                        .chars()
                        .take(14)
                        .collect()
                })
                .collect();
            let latest_first = first.iter().max();
            if o.status.code() != Some(0)
                || second.is_empty()
                || second.iter().any(|v| Some(v) <= latest_first)
            {
                return Err(fail(format!(
                    "{runner}: the second export's versions {second:?} do not all follow the first's {first:?}: {doc:#}"
                )));
            }
        }
        Ok(())
    })
    .await;
}
