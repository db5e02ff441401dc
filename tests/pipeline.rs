//! `ci/phasegate-deploy.sh` run as the example pipeline runs it
//! (.github/workflows/deploy-example.yml): on every push, one job per
//! environment in promotion order (dev, then staging when dev passed), each
//! `phasegate-deploy.sh ENV PLAN -- DEPLOY_COMMAND` with a deploy command
//! that records its call. The plan is pushed through to its end and past
//! it, with `phasegate status` checked after every push.

mod common;

use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

use common::{TestDb, TestResult, fail, with_postgres};

const PLAN: &str = "rename-users-name";
/// Three phases: expand (no app change), the app switches to full_name, contract.
const PLAN_FILE: &str = "description: create users, then rename users.name to full_name
changes:
  - sql:
      phases:
        - up: CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)
          down: DROP TABLE users
  - rename_column: { table: users, from: name, to: full_name }
";
/// The deploy command: records `ENV PHASE VERSION`; fails while `fail-deploy` exists.
const DEPLOY: &str = r#"echo "$PHASEGATE_ENV $PHASEGATE_PHASE $PHASEGATE_APP_VERSION" >> deploys.log; test ! -e fail-deploy"#;

/// A scratch project: phasegate.yaml, plans/, the SQLite dev database.
struct Project(PathBuf);

impl Project {
    /// dev is a SQLite file; staging is `staging_url` (with `staging_extra`
    /// config lines, e.g. a soak time).
    fn new(staging_url: &str, staging_extra: &str) -> TestResult<Project> {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "phasegate-pipeline-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("plans"))?;
        std::fs::create_dir_all(dir.join(".phasegate"))?;
        // The pipeline's databases exist before it runs (an empty file is an
        // empty SQLite database).
        std::fs::write(dir.join(".phasegate/dev.db"), "")?;
        std::fs::write(
            dir.join("phasegate.yaml"),
            format!(
                "environments:
  - name: dev
    database_url: sqlite://.phasegate/dev.db
  - name: staging
    database_url: {staging_url}
{staging_extra}"
            ),
        )?;
        std::fs::write(dir.join(format!("plans/{PLAN}.yaml")), PLAN_FILE)?;
        Ok(Project(dir))
    }

    /// One pipeline job: the deploy script for `env`, as the workflow runs it.
    fn job(&self, env: &str, version: &str, extra: &[&str]) -> Output {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/ci/phasegate-deploy.sh");
        let mut args = vec![script, "--app-version", version];
        args.extend_from_slice(extra);
        args.extend_from_slice(&[env, PLAN, "--", "sh", "-c", DEPLOY]);
        Command::new("bash")
            .args(&args)
            .current_dir(&self.0)
            .env("PHASEGATE", env!("CARGO_BIN_EXE_phasegate"))
            .env_remove("GITHUB_OUTPUT")
            .env_remove("GITHUB_SHA")
            .output()
            .expect("run bash ci/phasegate-deploy.sh")
    }

    /// One push: dev's job, then staging's when dev's passed (`needs: dev`).
    fn push(&self, n: usize) -> (Output, Option<Output>) {
        let version = format!("v{n}");
        let dev = self.job("dev", &version, &[]);
        if !dev.status.success() {
            return (dev, None);
        }
        let staging = self.job("staging", &version, &[]);
        (dev, Some(staging))
    }

    /// The deploy command's calls so far, one `ENV PHASE VERSION` each.
    fn deploys(&self) -> Vec<String> {
        std::fs::read_to_string(self.0.join("deploys.log"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// `phasegate status --format json`: (deployed phases, state) of the plan per environment.
    fn status(&self) -> TestResult<Vec<(String, u64, String)>> {
        let out = Command::new(env!("CARGO_BIN_EXE_phasegate"))
            .args(["status", "--format", "json"])
            .current_dir(&self.0)
            .output()?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let v: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| fail(format!("status --format json is not JSON ({e}):\n{text}")))?;
        // The environments: the document itself, or (the CLI contract's
        // envelope) the array of objects with an "env" field inside it.
        let envs = match &v {
            serde_json::Value::Array(a) => a.clone(),
            serde_json::Value::Object(o) => o
                .values()
                .filter_map(|x| x.as_array())
                .find(|a| a.iter().any(|e| e.get("env").is_some()))
                .cloned()
                .unwrap_or_default(),
            _ => Vec::new(),
        };
        let mut rows = Vec::new();
        for e in &envs {
            let name = e["env"].as_str().unwrap_or("?").to_string();
            let plan = e["plans"]
                .as_array()
                .and_then(|ps| ps.iter().find(|p| p["plan"] == PLAN));
            let (deployed, state) = match plan {
                Some(p) => (
                    p["deployed"].as_u64().unwrap_or(0),
                    p["state"].as_str().unwrap_or("?").to_string(),
                ),
                None => (0, "not started".to_string()),
            };
            rows.push((name, deployed, state));
        }
        if rows.len() != 2 {
            return Err(fail(format!(
                "status shows {} environments:\n{text}",
                rows.len()
            )));
        }
        Ok(rows)
    }

    fn expect_deployed(&self, push: usize, dev: u64, staging: u64) -> TestResult {
        let rows = self.status()?;
        let got: Vec<(String, u64)> = rows.iter().map(|(e, d, _)| (e.clone(), *d)).collect();
        let want = vec![("dev".to_string(), dev), ("staging".to_string(), staging)];
        if got != want {
            return Err(fail(format!(
                "after push {push}: status shows deployed phases {rows:?}, expected {want:?}"
            )));
        }
        Ok(())
    }
}

impl Drop for Project {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn log(o: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}--- stderr\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn expect_exit(o: &Output, code: i32, what: &str) -> TestResult {
    if o.status.code() == Some(code) {
        Ok(())
    } else {
        Err(fail(format!(
            "{what}: expected exit {code}, got:\n{}",
            log(o)
        )))
    }
}

fn expect_in(o: &Output, needle: &str, what: &str) -> TestResult {
    if log(o).contains(needle) {
        Ok(())
    } else {
        Err(fail(format!("{what}: no `{needle}` in:\n{}", log(o))))
    }
}

/// Both jobs of a push passed.
fn expect_push_ok(n: usize, push: &(Output, Option<Output>)) -> TestResult {
    expect_exit(&push.0, 0, &format!("push {n}, dev"))?;
    match &push.1 {
        Some(staging) => expect_exit(staging, 0, &format!("push {n}, staging")),
        None => Err(fail(format!("push {n}: staging did not run"))),
    }
}

/// Whether staging's users table has `column` (the plan's effect on Postgres).
async fn has_column(db: &TestDb, column: &str) -> TestResult<bool> {
    let n = db
        .scalar(&format!(
            "SELECT count(*) FROM information_schema.columns \
             WHERE table_name = 'users' AND column_name = '{column}'"
        ))
        .await?;
    Ok(n == 1)
}

#[tokio::test]
async fn every_push_moves_the_plan_one_phase_and_pushes_after_the_end_do_nothing() {
    with_postgres(|db| async move {
        let p = Project::new(&db.url, "")?;
        p.expect_deployed(0, 0, 0)?;

        // Push 1: the expand phase, no app code: nothing deployed.
        let push = p.push(1);
        expect_push_ok(1, &push)?;
        expect_in(&push.0, "has no app code to ship", "push 1, dev")?;
        p.expect_deployed(1, 1, 1)?;
        assert!(p.deploys().is_empty(), "push 1 deployed: {:?}", p.deploys());
        assert!(has_column(&db, "full_name").await? && has_column(&db, "name").await?);

        // Push 2: the app switches to full_name: deployed and marked in each.
        let push = p.push(2);
        expect_push_ok(2, &push)?;
        p.expect_deployed(2, 2, 2)?;
        assert_eq!(p.deploys(), ["dev 2 v2", "staging 2 v2"]);

        // Push 3: the contract: no app code.
        let push = p.push(3);
        expect_push_ok(3, &push)?;
        p.expect_deployed(3, 3, 3)?;
        assert_eq!(p.deploys(), ["dev 2 v2", "staging 2 v2"]);
        assert!(has_column(&db, "full_name").await? && !has_column(&db, "name").await?);

        // Pushes after the end: success, nothing runs, nothing changes.
        for n in 4..=5 {
            let push = p.push(n);
            expect_push_ok(n, &push)?;
            expect_in(
                &push.0,
                "is complete in dev: nothing to do",
                "after the end, dev",
            )?;
            if let Some(staging) = &push.1 {
                expect_in(
                    staging,
                    "is complete in staging: nothing to do",
                    "after the end",
                )?;
            }
            p.expect_deployed(n, 3, 3)?;
            assert_eq!(p.deploys(), ["dev 2 v2", "staging 2 v2"]);
        }
        Ok(())
    })
    .await;
}

#[test]
fn a_blocking_gate_fails_the_job_with_its_reason_unless_blocked_ok() -> TestResult {
    // staging soaks an hour before the irreversible phase 3.
    let p = Project::new("sqlite://.phasegate/staging.db", "    soak: 1h\n")?;
    std::fs::write(p.0.join(".phasegate/staging.db"), "")?;
    for n in 1..=2 {
        expect_push_ok(n, &p.push(n))?;
    }
    let (dev, staging) = p.push(3);
    expect_exit(&dev, 0, "push 3, dev")?;
    let staging = staging.ok_or_else(|| fail("push 3: staging did not run"))?;
    expect_exit(&staging, 1, "push 3, staging: soak blocks")?;
    expect_in(&staging, "soak", "push 3, staging")?;
    expect_in(&staging, "is blocked in staging", "push 3, staging")?;
    p.expect_deployed(3, 3, 2)?;

    let ok = p.job(
        "staging",
        "v3",
        &["--blocked-ok", "--config", "phasegate.yaml"],
    );
    expect_exit(&ok, 0, "--blocked-ok")?;
    expect_in(&ok, "soak", "--blocked-ok still says why")?;
    p.expect_deployed(3, 3, 2)?;
    assert_eq!(p.deploys(), ["dev 2 v2", "staging 2 v2"]);
    Ok(())
}

/// `--backup` (the action's `backup: "true"`): no backup while no gate needs
/// one (so an environment without `backup_command` runs its reversible
/// phases); when the backup gate alone blocks, a backup is taken and the
/// phase runs, or, without `backup_command`, the job fails with an error
/// that names it.
#[test]
fn backup_is_taken_only_when_the_backup_gate_needs_one() -> TestResult {
    let p = Project::new("sqlite://.phasegate/staging.db", "    require_backup: 1h\n")?;
    std::fs::write(p.0.join(".phasegate/staging.db"), "")?;
    for n in 1..=2 {
        let version = format!("v{n}");
        expect_exit(&p.job("dev", &version, &[]), 0, "dev")?;
        let staging = p.job("staging", &version, &["--backup"]);
        expect_exit(&staging, 0, &format!("push {n}, staging --backup"))?;
        if log(&staging).contains("taking one") {
            return Err(fail(format!(
                "push {n}: a backup no gate needs:\n{}",
                log(&staging)
            )));
        }
    }
    expect_exit(&p.job("dev", "v3", &[]), 0, "push 3, dev")?;
    let staging = p.job("staging", "v3", &["--backup"]);
    expect_exit(&staging, 2, "push 3: no backup_command")?;
    expect_in(&staging, "backup_command for staging", "push 3")?;
    p.expect_deployed(3, 3, 2)?;

    let config = std::fs::read_to_string(p.0.join("phasegate.yaml"))?;
    std::fs::write(
        p.0.join("phasegate.yaml"),
        format!("{config}    backup_command: echo backups/staging-1\n"),
    )?;
    let staging = p.job("staging", "v3", &["--backup"]);
    expect_exit(&staging, 0, "push 3 again, with backup_command")?;
    expect_in(&staging, "taking one", "push 3 again")?;
    p.expect_deployed(3, 3, 3)?;
    Ok(())
}

#[test]
fn an_error_fails_the_job_and_deploys_nothing() -> TestResult {
    let p = Project::new("sqlite://.phasegate/staging.db", "")?;
    let o = p.job("stagin", "v1", &[]);
    expect_exit(&o, 2, "unknown environment")?;
    expect_in(&o, "staging", "the error suggests the known environment")?;
    let usage = Command::new("bash")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/ci/phasegate-deploy.sh"
        ))
        .args(["dev", PLAN])
        .output()?;
    expect_exit(&usage, 2, "no deploy command")?;
    expect_in(&usage, "usage:", "no deploy command")?;
    assert!(p.deploys().is_empty(), "{:?}", p.deploys());
    Ok(())
}

/// The deploy fails after apply: phase 2 stays migrated, and the next push
/// (phasegate exits 3: waiting for the deploy) deploys and marks it.
#[tokio::test]
async fn a_failed_deploy_is_deployed_and_marked_by_the_next_push() {
    with_postgres(|db| async move {
        let p = Project::new(&db.url, "")?;
        expect_push_ok(1, &p.push(1))?;
        std::fs::write(p.0.join("fail-deploy"), "")?;
        let (dev, staging) = p.push(2);
        expect_exit(&dev, 2, "push 2, dev: the deploy fails")?;
        expect_in(&dev, "the deploy command failed", "push 2, dev")?;
        assert!(staging.is_none(), "staging ran after dev failed");
        p.expect_deployed(2, 1, 1)?;

        std::fs::remove_file(p.0.join("fail-deploy"))?;
        let push = p.push(3);
        expect_push_ok(3, &push)?;
        expect_in(&push.0, "waits for its app deploy", "push 3, dev")?;
        // dev: the waiting phase 2 deployed and marked; staging: phase 2 ran.
        p.expect_deployed(3, 2, 2)?;
        assert_eq!(p.deploys(), ["dev 2 v2", "dev 2 v3", "staging 2 v3"]);

        for n in 4..=5 {
            expect_push_ok(n, &p.push(n))?;
        }
        p.expect_deployed(5, 3, 3)?;
        Ok(())
    })
    .await;
}
