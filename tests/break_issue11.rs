//! Adversarial tests of issue 11's work (the CLI/CI contract), through the
//! built binary against real databases: new instances of each kind of
//! failure the issue lists. A test that fails now is `#[ignore = "BREAKS: …"]`
//! with one line saying what breaks; the ones that pass (the fix holds) run.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

use common::{TestDb, TestResult, fail, with_postgres, with_sqlite};

/// A scratch project: a folder with `plans/` and whatever config a test writes.
struct Project(PathBuf);

impl Project {
    fn new() -> TestResult<Project> {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "phasegate-break11-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("plans"))?;
        Ok(Project(dir))
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.0.join(rel)
    }

    fn write(&self, rel: &str, text: &str) -> TestResult {
        let path = self.0.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(path, text)?;
        Ok(())
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_phasegate"))
            .args(args)
            .current_dir(&self.0)
            .env_remove("NOPE_URL")
            .env_remove("GITHUB_OUTPUT")
            .env_remove("GITHUB_SHA")
            .output()
            .expect("run phasegate")
    }

    /// Runs `args` and returns (exit code, stdout, stderr).
    fn go(&self, args: &[&str]) -> (i32, String, String) {
        let o = self.run(args);
        (
            o.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    }
}

impl Drop for Project {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn check(cond: bool, what: impl Into<String>) -> TestResult {
    if cond { Ok(()) } else { Err(fail(what)) }
}

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

// ---------------------------------------------------------------------------
// The runbook follows the config
// ---------------------------------------------------------------------------

/// One environment, a one-deploy plan whose deploy ships app code.
const ONE_ENV: &str = "environments:
  - name: live
    database_url: ${NOPE_URL}
    soak: 2h
    require_backup: 30m
";

/// Issue: the runbook "says promoted dev → staging → prod whatever the config
/// says" and "names a previous environment for the first one". New instance:
/// a single environment and a single deploy: the runbook must not talk of a
/// deploy 2 or of "the next" environment that do not exist.
#[test]
fn runbook_of_one_deploy_in_one_environment_names_nothing_that_does_not_exist() -> TestResult {
    let p = Project::new()?;
    p.write("conf/one.yaml", ONE_ENV)?;
    p.write(
        "conf/plans/one.yaml",
        "changes:\n  - add_column: { table: t, column: y, type: int }\n",
    )?;
    let (code, md, err) = p.go(&[
        "--config",
        "conf/one.yaml",
        "plan",
        "one",
        "--format",
        "markdown",
    ]);
    check(code == 0, format!("runbook failed ({code}): {err}"))?;
    check(
        md.contains("mark --env live one --phase 1"),
        format!("no mark command:\n{md}"),
    )?;
    check(
        !md.contains("deploy 2"),
        format!("a 1-deploy runbook mentions deploy 2:\n{md}"),
    )?;
    check(
        !md.contains("in the next one"),
        format!("a 1-environment runbook mentions the next environment:\n{md}"),
    )?;
    Ok(())
}

// ---------------------------------------------------------------------------
// The shipped pipeline (action + script) as the example workflow runs it
// ---------------------------------------------------------------------------

/// staging and prod, SQLite files; prod without a `backup_command` (as
/// `init` writes it: the line is commented out).
const STAGING_PROD_SQLITE: &str = "environments:
  - name: staging
    database_url: sqlite://staging.db
  - name: prod
    database_url: sqlite://prod.db
";

/// One reversible phase with no app stage, then one with an app stage.
const TWO_PHASES: &str = "changes:
  - sql:
      phases:
        - up: CREATE TABLE t1 (id INTEGER PRIMARY KEY, v TEXT)
          down: DROP TABLE t1
        - up: CREATE TABLE t2 (id INTEGER PRIMARY KEY)
          down: DROP TABLE t2
          app: Write t2
";

/// One job of .github/workflows/deploy-example.yml, as GitHub runs it: only
/// the secrets named in the job's `env:` are set (from `secrets`); then the
/// script as the action runs it (`--backup` when the job says `backup:
/// "true"`; the Install step is the built binary on PATH).
fn workflow_job(
    p: &Project,
    job: &str,
    plan: &str,
    version: &str,
    secrets: &[(&str, &str)],
) -> TestResult<Output> {
    let workflow = std::fs::read_to_string(root().join(".github/workflows/deploy-example.yml"))?;
    let start = workflow
        .find(&format!("\n  {job}:\n"))
        .ok_or_else(|| fail(format!("the example workflow has no job {job}")))?;
    let body: Vec<&str> = workflow[start + 1..]
        .lines()
        .skip(1)
        .take_while(|l| l.is_empty() || l.starts_with("   "))
        .collect();
    let mut cmd = Command::new("bash");
    for line in &body {
        if let Some((name, value)) = line.trim().split_once(": ${{ secrets.") {
            let secret = value.trim_end_matches(" }}");
            if let Some((_, v)) = secrets.iter().find(|(k, _)| *k == secret) {
                cmd.env(name, v);
            }
        }
    }
    let backup = body
        .iter()
        .any(|l| l.trim().starts_with("backup: \"true\""));
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_phasegate"));
    let dir = bin.parent().ok_or_else(|| fail("binary has no folder"))?;
    let path = format!(
        "{}:{}",
        dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let script = root().join("ci/phasegate-deploy.sh");
    // As the action runs the script: `backup: "true"` is its `--backup`.
    let mut shell = String::from("set -e\n");
    shell.push_str(&format!(
        "bash {} --config \"$CONFIG\" --app-version {version}{} {job} {plan} -- true",
        script.display(),
        if backup { " --backup" } else { "" }
    ));
    for (name, _) in secrets {
        cmd.env_remove(name);
    }
    // Secrets the job names are set again after the removal above.
    for line in &body {
        if let Some((name, value)) = line.trim().split_once(": ${{ secrets.") {
            let secret = value.trim_end_matches(" }}");
            if let Some((_, v)) = secrets.iter().find(|(k, _)| *k == secret) {
                cmd.env(name, v);
            }
        }
    }
    Ok(cmd
        .args(["-c", &shell])
        .current_dir(&p.0)
        .env("PATH", path)
        .env("PHASEGATE_ENVIRONMENT", job)
        .env("CONFIG", "phasegate.yaml")
        .env_remove("GITHUB_OUTPUT")
        .env_remove("GITHUB_SHA")
        .output()?)
}

fn show(o: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// docs/workflow.md: "once the plan is complete everywhere, runs pass and do
/// nothing"; the example's prod job sets `backup: "true"`. With a prod that
/// has no `backup_command` (the config `init` writes), the action's Backup
/// step refuses on every push, so the prod job never gets to the script:
/// not even a reversible phase 1, and not once the plan is complete.
#[test]
fn example_prod_job_with_backup_true_runs_without_a_backup_command() -> TestResult {
    let p = Project::new()?;
    p.write("phasegate.yaml", STAGING_PROD_SQLITE)?;
    p.write("plans/plan2.yaml", TWO_PHASES)?;
    // prod's database exists (as a real prod's does): `gate`, the script's
    // first command, reads it and does not create a SQLite file.
    std::fs::write(p.path("prod.db"), "")?;
    for n in 1..=4 {
        let _ = p.go(&["apply", "--env", "staging", "plan2"]);
        let mark = [
            "mark",
            "--env",
            "staging",
            "plan2",
            "--phase",
            "2",
            "--app-version",
            "v",
        ];
        let _ = p.go(&mark);
        let o = workflow_job(&p, "prod", "plan2", &format!("v{n}"), &[])?;
        check(
            o.status.success(),
            format!("push {n}: the prod job failed: {}", show(&o)),
        )?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Skipped tests are loud
// ---------------------------------------------------------------------------

/// Issue: "skipped tests pass silently under `cargo test` (their line is
/// captured)". The harness now writes its `skipped:` line to the raw stderr
/// handle (`common::loud`); a test that skips with `println!`/`eprintln!`
/// instead is silent again under plain `cargo test` (libtest captures both).
/// tests/sql_export.rs's squawk check does, when PHASEGATE_SQUAWK is unset.
#[test]
fn no_test_skips_with_a_captured_line() -> TestResult {
    let mut silent = Vec::new();
    for entry in std::fs::read_dir(root().join("tests"))? {
        let path = entry?.path();
        if path.extension().is_none_or(|e| e != "rs") || path.ends_with("break_issue11.rs") {
            continue;
        }
        let text = std::fs::read_to_string(&path)?;
        for (n, line) in text.lines().enumerate() {
            let l = line.trim();
            if (l.starts_with("println!(\"skipped") || l.starts_with("eprintln!(\"skipped"))
                && !l.starts_with("//")
            {
                silent.push(format!("{}:{}: {l}", path.display(), n + 1));
            }
        }
    }
    check(
        silent.is_empty(),
        format!(
            "skips printed where libtest captures them:\n{}",
            silent.join("\n")
        ),
    )
}

/// The example workflow gives each job its own database secret only
/// (`STAGING_DATABASE_URL` in staging's, `PROD_DATABASE_URL` in prod's), and
/// the README says `database_url: ${PROD_DATABASE_URL}` is how to point an
/// environment at a real database. With both URLs read from variables, every
/// command fails on the variable of the job it does not run in ("environment
/// variable `PROD_DATABASE_URL` (in prod's database_url) is not set"), so
/// neither job of the documented pipeline ever runs a phase.
#[tokio::test]
async fn example_workflow_jobs_run_with_only_their_own_secret() {
    with_postgres(|db| async move {
        let p = Project::new()?;
        p.write(
            "phasegate.yaml",
            "environments:
  - name: staging
    database_url: ${STAGING_DATABASE_URL}
  - name: prod
    database_url: ${PROD_DATABASE_URL}
    backup_command: echo backups/prod-1
",
        )?;
        p.write("plans/plan2.yaml", TWO_PHASES)?;
        let staging = format!("sqlite://{}", p.path("staging.db").display());
        std::fs::write(p.path("staging.db"), "")?;
        let secrets = [
            ("STAGING_DATABASE_URL", staging.as_str()),
            ("PROD_DATABASE_URL", db.url.as_str()),
        ];
        for (n, job) in ["staging", "prod", "staging", "prod"].iter().enumerate() {
            let o = workflow_job(&p, job, "plan2", &format!("v{n}"), &secrets)?;
            check(
                o.status.success(),
                format!("push {}, job {job}: {}", n / 2 + 1, show(&o)),
            )?;
        }
        let t2: TestDb = db.clone();
        check(
            t2.has_relation("t2").await?,
            "prod never got phase 2 (table t2)",
        )?;
        Ok(())
    })
    .await;
}

// ---------------------------------------------------------------------------
// `check`, the phasegate_status view and `status` in odd states
// ---------------------------------------------------------------------------

/// `status --format json`'s (phase, state, next action) of `plan` in `env`,
/// whatever the envelope around the per-environment reports.
fn status_of(p: &Project, env: &str, plan: &str) -> TestResult<(i64, String, String)> {
    let (_, out, err) = p.go(&["status", "--format", "json"]);
    let v: serde_json::Value = serde_json::from_str(&out)
        .map_err(|e| fail(format!("status --format json: {e}:\n{out}\n{err}")))?;
    fn find<'a>(v: &'a serde_json::Value, env: &str) -> Option<&'a serde_json::Value> {
        match v {
            serde_json::Value::Object(o) => {
                if o.get("env").and_then(|e| e.as_str()) == Some(env) && o.contains_key("plans") {
                    return Some(v);
                }
                o.values().find_map(|x| find(x, env))
            }
            serde_json::Value::Array(a) => a.iter().find_map(|x| find(x, env)),
            _ => None,
        }
    }
    let e = find(&v, env).ok_or_else(|| fail(format!("no environment {env} in:\n{out}")))?;
    let row = e["plans"]
        .as_array()
        .and_then(|ps| ps.iter().find(|r| r["plan"] == plan))
        .ok_or_else(|| fail(format!("no plan {plan} in {env}:\n{out}")))?;
    Ok((
        row["phase"].as_i64().unwrap_or(-1),
        row["state"].as_str().unwrap_or("?").to_string(),
        row["next"]["action"].as_str().unwrap_or("?").to_string(),
    ))
}

/// The view's (phase, state, next_action) of `plan`.
async fn view_of(db: &TestDb, plan: &str) -> TestResult<(i64, String, String)> {
    let phase = db
        .scalar(&format!(
            "SELECT phase FROM phasegate_status WHERE plan = '{plan}'"
        ))
        .await?;
    let state = db
        .text(&format!(
            "SELECT state FROM phasegate_status WHERE plan = '{plan}'"
        ))
        .await?
        .unwrap_or_default();
    let next = db
        .text(&format!(
            "SELECT next_action FROM phasegate_status WHERE plan = '{plan}'"
        ))
        .await?
        .unwrap_or_default();
    Ok((phase, state, next))
}

const ONE_TABLE: &str = "changes:
  - sql:
      phases:
        - up: CREATE TABLE d1 (id INTEGER PRIMARY KEY)
          down: DROP TABLE d1
";
const SECOND_TABLE: &str = "        - up: CREATE TABLE d2 (id INTEGER PRIMARY KEY)
          down: DROP TABLE d2
";

fn single_env(db: &TestDb) -> String {
    format!(
        "environments:\n  - name: dev\n    database_url: {}\n",
        db.url
    )
}

/// docs/check.md: the view's `phase`, `state` and `next_action` "are what
/// `phasegate status --format json` reports … in every state". A plan
/// complete in dev whose file then gains a phase (not yet accepted: the
/// drift gate blocks it): status says phase 2 of 2, pending, next apply; the
/// view still says phase 1, deployed, complete.
#[tokio::test]
async fn view_agrees_with_status_on_a_plan_edited_after_it_completed() {
    with_sqlite(|db| async move {
        let p = Project::new()?;
        p.write("phasegate.yaml", &single_env(&db))?;
        p.write("plans/d1.yaml", ONE_TABLE)?;
        let (code, _, err) = p.go(&["apply", "--env", "dev", "d1"]);
        check(code == 0, format!("apply: {err}"))?;
        check(
            status_of(&p, "dev", "d1")? == view_of(&db, "d1").await?,
            "status and view disagree on a complete plan",
        )?;
        p.write("plans/d1.yaml", &format!("{ONE_TABLE}{SECOND_TABLE}"))?;
        let status = status_of(&p, "dev", "d1")?;
        let view = view_of(&db, "d1").await?;
        check(
            status == view,
            format!("drifted plan: status says {status:?}, the view says {view:?}"),
        )
    })
    .await;
}

/// `check`'s "next" must be a command that moves the plan on. On a plan
/// whose file gained a phase (drift), `check --phase 2` says
/// "next: `phasegate apply --env dev d1`", and that apply is refused by the
/// drift gate; `gate` names `accept-change` instead.
#[tokio::test]
async fn check_suggests_a_command_that_runs_on_a_drifted_plan() {
    with_sqlite(|db| async move {
        let p = Project::new()?;
        p.write("phasegate.yaml", &single_env(&db))?;
        p.write("plans/d1.yaml", ONE_TABLE)?;
        let (code, _, err) = p.go(&["apply", "--env", "dev", "d1"]);
        check(code == 0, format!("apply: {err}"))?;
        p.write("plans/d1.yaml", &format!("{ONE_TABLE}{SECOND_TABLE}"))?;
        let (code, out, err) = p.go(&["check", "--env", "dev", "d1", "--phase", "2"]);
        check(code == 1, format!("check: exit {code}: {out}{err}"))?;
        let said = format!("{out}{err}");
        let suggested_apply = said.contains("`phasegate apply --env dev d1`");
        let (apply_code, _, _) = p.go(&["apply", "--env", "dev", "d1"]);
        check(
            !(suggested_apply && apply_code != 0),
            format!("check suggested apply, which exits {apply_code}:\n{said}"),
        )?;
        check(
            said.contains("accept-change") || said.contains("drift"),
            format!("check does not name the drift that holds phase 2:\n{said}"),
        )
    })
    .await;
}

/// Two tables, one phase each.
fn two_tables(prefix: &str) -> String {
    format!(
        "changes:
  - sql:
      phases:
        - up: CREATE TABLE {prefix}1 (id INTEGER PRIMARY KEY)
          down: DROP TABLE {prefix}1
        - up: CREATE TABLE {prefix}2 (id INTEGER PRIMARY KEY)
          down: DROP TABLE {prefix}2
"
    )
}

/// The view is what a service in any language asks at start-up ("has `Mk`
/// reached phase 2 here?"). Plans are names of files, so `Mk` and `mk` are
/// two plans, and `status` and `check` keep them apart. On MySQL/MariaDB
/// the view groups and compares plan names under the database's
/// case-insensitive collation: with `mk` complete and `Mk` at phase 1, the
/// row for `Mk` says phase_applied 2, complete: the service starts against
/// a schema its release needs and does not have.
#[tokio::test]
async fn view_keeps_plans_whose_names_differ_in_case_apart_on_mariadb() {
    common::with_mysql(|db| async move {
        let p = Project::new()?;
        p.write("phasegate.yaml", &single_env(&db))?;
        p.write("plans/Mk.yaml", &two_tables("a"))?;
        p.write("plans/mk.yaml", &two_tables("b"))?;
        for plan in ["Mk", "mk", "mk"] {
            let (code, _, err) = p.go(&["apply", "--env", "dev", plan]);
            check(code == 0, format!("apply {plan}: {err}"))?;
        }
        let (code, out, err) = p.go(&["check", "--env", "dev", "Mk", "--phase", "2"]);
        check(code == 1, format!("check Mk --phase 2: exit {code}: {out}{err}"))?;
        let rows = db
            .scalar("SELECT count(*) FROM phasegate_status WHERE plan = 'Mk'")
            .await?;
        let applied = db
            .scalar("SELECT max(phase_applied) FROM phasegate_status WHERE plan = 'Mk'")
            .await?;
        check(
            rows == 1 && applied == 1,
            format!("the view's rows for plan Mk: {rows}, phase_applied {applied} (check: not reached, phase 1)"),
        )?;
        let total = db.scalar("SELECT count(*) FROM phasegate_status").await?;
        check(total == 2, format!("the view has {total} rows for two plans"))
    })
    .await;
}

/// docs/check.md's entrypoint: `phasegate check --env "$APP_ENV" PLAN --phase
/// 2 || exit 1`. A dev (or staging) service has its own database URL, not
/// prod's secret; with prod's `database_url: ${PROD_DATABASE_URL}` unset,
/// `check --env dev` exits 2 on prod's variable, and the service refuses to
/// start though dev has reached the phase.
#[tokio::test]
async fn check_in_one_environment_needs_no_other_environments_secret() {
    with_sqlite(|db| async move {
        let p = Project::new()?;
        p.write("plans/d1.yaml", ONE_TABLE)?;
        p.write("phasegate.yaml", &single_env(&db))?;
        let (code, _, err) = p.go(&["apply", "--env", "dev", "d1"]);
        check(code == 0, format!("apply: {err}"))?;
        p.write(
            "phasegate.yaml",
            &format!(
                "{}  - name: prod\n    database_url: ${{NOPE_URL}}\n",
                single_env(&db)
            ),
        )?;
        let (code, out, err) = p.go(&["check", "--env", "dev", "d1", "--phase", "1"]);
        check(
            code == 0,
            format!("check --env dev with prod's variable unset: exit {code}: {out}{err}"),
        )
    })
    .await;
}

// ---------------------------------------------------------------------------
// Progress and Ctrl-C
// ---------------------------------------------------------------------------

/// Polls `count_sql` (a `SELECT count(*)`) every 100 ms until it is positive,
/// for at most 60 s.
async fn wait_for(db: &TestDb, count_sql: &str) -> TestResult {
    for _ in 0..600 {
        if db.scalar(count_sql).await? > 0 {
            return Ok(());
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    Err(fail(format!("not seen within 60 s: {count_sql}")))
}

/// `phasegate ARGS` under a pseudo-terminal, sent Ctrl-C when the test says
/// so (`send_ctrl_c`) rather than after a fixed delay.
struct PtyRun {
    child: std::process::Child,
    go: std::path::PathBuf,
}

fn pty_with_ctrl_c_on_signal(p: &Project, args: &[&str]) -> TestResult<PtyRun> {
    let command = format!("{} {}", env!("CARGO_BIN_EXE_phasegate"), args.join(" "));
    let go = p.0.join(".ctrl-c");
    // Bounded: without a signal the Ctrl-C is sent after 90 s anyway.
    let shell = format!(
        "(for i in $(seq 900); do [ -e .ctrl-c ] && break; sleep 0.1; done; \
         printf '\\003'; sleep 5) | script -qfec '{command}' /dev/null"
    );
    let child = Command::new("bash")
        .args(["-c", &shell])
        .current_dir(&p.0)
        .stdout(std::process::Stdio::piped())
        .spawn()?;
    Ok(PtyRun { child, go })
}

impl PtyRun {
    fn send_ctrl_c(&self) -> TestResult {
        std::fs::write(&self.go, "")?;
        Ok(())
    }

    fn finish(self) -> TestResult<(i32, String)> {
        let o = self.child.wait_with_output()?;
        Ok((
            o.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&o.stdout).into_owned(),
        ))
    }
}

/// A backfill of `rows` rows that takes a while: batches of 1000 with a
/// pause between them.
async fn slow_backfill_project(db: &TestDb, rows: u32) -> TestResult<Project> {
    db.exec("CREATE TABLE big (id INTEGER PRIMARY KEY, v INTEGER)")
        .await?;
    db.exec(&format!(
        "INSERT INTO big SELECT g, g FROM generate_series(1, {rows}) AS g"
    ))
    .await?;
    let p = Project::new()?;
    p.write(
        "phasegate.yaml",
        &format!(
            "environments:
  - name: dev
    database_url: {}
    backfill_batch_size: 1000
    backfill_pause: 100ms
",
            db.url
        ),
    )?;
    p.write(
        "plans/bf.yaml",
        "changes:\n  - rename_column: { table: big, from: v, to: w }\n",
    )?;
    Ok(p)
}

/// Issue: "Ctrl-C exits 130 without 'run apply again to resume'". Under a
/// terminal, Ctrl-C mid-backfill: exit 130, the resume command printed, and
/// that command, run as printed, finishes the phase with every row copied.
#[tokio::test]
async fn ctrl_c_mid_backfill_prints_a_resume_command_that_finishes_it() {
    with_postgres(|db| async move {
        let p = slow_backfill_project(&db, 100_000).await?;
        let apply = pty_with_ctrl_c_on_signal(&p, &["apply", "--env", "dev", "bf"])?;
        // Ctrl-C once the backfill is seen copying, not after a fixed delay.
        let copying = wait_for(
            &db,
            "SELECT count(*) FROM information_schema.columns \
             WHERE table_name = 'big' AND column_name = 'w'",
        )
        .await;
        let copying = match copying {
            Ok(()) => wait_for(&db, "SELECT count(*) FROM big WHERE w IS NOT NULL").await,
            Err(e) => Err(e),
        };
        apply.send_ctrl_c()?;
        let (code, shown) = apply.finish()?;
        copying?;
        check(code == 130, format!("Ctrl-C: exit {code}:\n{shown}"))?;
        let resume = "phasegate apply --env dev bf";
        check(
            shown.contains(resume),
            format!("no `{resume}` after Ctrl-C:\n{shown}"),
        )?;
        let left = db
            .scalar("SELECT count(*) FROM big WHERE w IS DISTINCT FROM v")
            .await?;
        check(
            left > 0,
            "the backfill finished before Ctrl-C: nothing tested",
        )?;
        let (code, out, err) = p.go(&["apply", "--env", "dev", "bf"]);
        check(
            code == 0,
            format!("the resume command: exit {code}: {out}{err}"),
        )?;
        let left = db
            .scalar("SELECT count(*) FROM big WHERE w IS DISTINCT FROM v")
            .await?;
        check(
            left == 0,
            format!("{left} rows not copied after the resume"),
        )
    })
    .await;
}

// ---------------------------------------------------------------------------
// Suggested commands run as printed
// ---------------------------------------------------------------------------

/// Every `phasegate …` command in backticks in `text`.
fn suggested(text: &str) -> Vec<String> {
    text.split('`')
        .skip(1)
        .step_by(2)
        .filter(|c| c.starts_with("phasegate "))
        .map(str::to_string)
        .collect()
}

/// Runs a suggested command as a person pasting it into a shell would.
fn run_suggested(p: &Project, command: &str) -> TestResult<Output> {
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_phasegate"));
    let dir = bin.parent().ok_or_else(|| fail("binary has no folder"))?;
    let path = format!(
        "{}:{}",
        dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    Ok(Command::new("bash")
        .args(["-c", command])
        .current_dir(&p.0)
        .env("PATH", path)
        .output()?)
}

/// dev, then a prod that requires a backup and an approval and has no
/// `backup_command` (as `init` writes prod); a reversible phase 1 and an
/// irreversible phase 2.
const BACKUP_NO_COMMAND: &str = "environments:
  - name: dev
    database_url: sqlite://dev.db
  - name: prod
    database_url: sqlite://prod.db
    require_backup: 1h
    require_approval: true
";
const IRREVERSIBLE_2: &str = "changes:
  - sql:
      phases:
        - up: CREATE TABLE t1 (id INTEGER PRIMARY KEY)
          down: DROP TABLE t1
        - up: CREATE TABLE t2 (id INTEGER PRIMARY KEY)
";

/// Issue: "the drift gate suggests `accept-change` without the `--reason` it
/// requires". New instance: the backup gate suggests `phasegate backup --env
/// prod`; for a prod without `backup_command` that command is refused
/// ("take the backup yourself and record it with --location").
#[test]
fn every_command_the_blocked_gates_suggest_runs_as_printed() -> TestResult {
    let p = Project::new()?;
    p.write("phasegate.yaml", BACKUP_NO_COMMAND)?;
    p.write("plans/ir.yaml", IRREVERSIBLE_2)?;
    for env in ["dev", "dev", "prod"] {
        let (code, _, err) = p.go(&["apply", "--env", env, "ir"]);
        check(code == 0, format!("apply {env}: {err}"))?;
    }
    let (code, out, err) = p.go(&["gate", "--env", "prod", "ir"]);
    check(code == 1, format!("gate: exit {code}: {out}{err}"))?;
    let commands = suggested(&format!("{out}{err}"));
    check(
        commands.len() >= 2,
        format!("the blocked gates suggest {commands:?}:\n{out}{err}"),
    )?;
    for c in &commands {
        let o = run_suggested(&p, c)?;
        check(
            o.status.success(),
            format!("`{c}` as printed: {}", show(&o)),
        )?;
    }
    let (code, out, err) = p.go(&["apply", "--env", "prod", "ir"]);
    check(
        code == 0,
        format!("apply after doing what the gates said: exit {code}: {out}{err}"),
    )
}

/// `apply` of a phase with an app stage ends with "then: phasegate mark …
/// --app-version <VERSION>": pasted into a shell, `<VERSION>` is a
/// redirection from a file named VERSION ("No such file or directory"), so
/// the command does not even start. (The order gate's own suggestion uses
/// `--app-version V`, which runs.)
#[test]
fn applys_then_mark_line_runs_as_printed() -> TestResult {
    let p = Project::new()?;
    p.write("phasegate.yaml", DEV_ONLY_SQLITE)?;
    p.write("plans/plan2.yaml", TWO_PHASES)?;
    let (code, _, err) = p.go(&["apply", "--env", "dev", "plan2"]);
    check(code == 0, format!("apply phase 1: {err}"))?;
    let (code, out, err) = p.go(&["apply", "--env", "dev", "plan2"]);
    check(code == 0, format!("apply phase 2: {err}"))?;
    let all = format!("{out}{err}");
    let line = all
        .lines()
        .find_map(|l| l.trim().strip_prefix("then: "))
        .ok_or_else(|| fail(format!("no `then:` line:\n{all}")))?
        .trim_matches('`')
        .to_string();
    let o = run_suggested(&p, &line)?;
    check(
        o.status.success(),
        format!("`{line}` as printed: {}", show(&o)),
    )
}

const DEV_ONLY_SQLITE: &str = "environments:
  - name: dev
    database_url: sqlite://dev.db
";

// ---------------------------------------------------------------------------
// `--format json`: one document on stdout, the contract's fields, the schema
// ---------------------------------------------------------------------------

/// What is wrong with `stdout` as the `--format json` output of `command`
/// that exited `code` (empty: nothing): exactly one JSON document and nothing
/// else, `schema_version` 1, `command`, an `outcome`, `exit_code` equal to
/// the real one, an `error` with `kind` and `message` on errors, and valid
/// against docs/schema/COMMAND.json (checked with python3's jsonschema).
fn json_problems(command: &str, code: i32, stdout: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let mut docs = serde_json::Deserializer::from_str(stdout).into_iter::<serde_json::Value>();
    let doc = match docs.next() {
        Some(Ok(v)) => v,
        Some(Err(e)) => return vec![format!("stdout is not JSON ({e})")],
        None => return vec!["stdout is empty: no JSON document".into()],
    };
    match docs.next() {
        None => {}
        Some(Ok(_)) => problems.push("more than one JSON document on stdout".into()),
        Some(Err(e)) => problems.push(format!("something after the JSON document ({e})")),
    }
    if doc["schema_version"] != 1 {
        problems.push(format!("schema_version is {}", doc["schema_version"]));
    }
    if doc["command"] != command {
        problems.push(format!("command is {}", doc["command"]));
    }
    let outcomes = [
        "done",
        "nothing_to_do",
        "blocked",
        "waiting_for_deploy",
        "error",
        "interrupted",
    ];
    if !doc["outcome"]
        .as_str()
        .is_some_and(|o| outcomes.contains(&o))
    {
        problems.push(format!("outcome is {}", doc["outcome"]));
    }
    if doc["exit_code"] != code {
        problems.push(format!(
            "exit_code is {}, the process exited {code}",
            doc["exit_code"]
        ));
    }
    if doc["outcome"] == "error"
        && !(doc["error"]["kind"].is_string() && doc["error"]["message"].is_string())
    {
        problems.push(format!(
            "an error without kind and message: {}",
            doc["error"]
        ));
    }
    let schema = root().join("docs/schema").join(format!("{command}.json"));
    if !schema.exists() {
        problems.push(format!("no published schema {}", schema.display()));
        return problems;
    }
    let validate = Command::new("python3")
        .args([
            "-c",
            "import json,sys,jsonschema\n\
             jsonschema.validate(json.loads(sys.stdin.read()), json.load(open(sys.argv[1])))",
        ])
        .arg(&schema)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            if let Some(mut stdin) = child.stdin.take() {
                stdin.write_all(doc.to_string().as_bytes())?;
            }
            child.wait_with_output()
        });
    match validate {
        Ok(o) if o.status.success() => {}
        Ok(o) => {
            let err = String::from_utf8_lossy(&o.stderr);
            let last = err
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("");
            problems.push(format!(
                "does not validate against {}: {last}",
                schema.display()
            ));
        }
        Err(e) => problems.push(format!("cannot run python3 jsonschema: {e}")),
    }
    problems
}

/// Runs each `args` (with `--format json` added) and collects every
/// contract problem, with the exit code each case must have.
fn json_cases(p: &Project, cases: &[(&[&str], i32)]) -> Vec<String> {
    let mut all = Vec::new();
    for (args, want) in cases {
        let mut full: Vec<&str> = args.to_vec();
        full.extend(["--format", "json"]);
        let (code, out, err) = p.go(&full);
        let command = args
            .iter()
            .position(|a| *a == "--config")
            .map_or(args[0], |i| args[i + 2]);
        let mut problems = json_problems(command, code, &out);
        if code != *want {
            problems.push(format!("exit {code}, the contract says {want}"));
        }
        if !problems.is_empty() {
            all.push(format!(
                "`phasegate {}`: {}\n    stdout: {}\n    stderr: {}",
                full.join(" "),
                problems.join("; "),
                out.trim(),
                err.trim()
            ));
        }
    }
    all
}

/// Three phases: no app stage, an app stage, irreversible.
const THREE_PHASES: &str = "changes:
  - sql:
      phases:
        - up: CREATE TABLE t1 (id INTEGER PRIMARY KEY)
          down: DROP TABLE t1
        - up: CREATE TABLE t2 (id INTEGER PRIMARY KEY)
          down: DROP TABLE t2
          app: write t2
        - up: CREATE TABLE t3 (id INTEGER PRIMARY KEY)
";
const FAILS: &str = "changes:
  - sql:
      phases:
        - up: SELECT * FROM no_such_table
          down: SELECT 1
";

/// dev (SQLite), staging (Postgres), prod (SQLite, backup and approval
/// required, no backup_command), down (nothing listens).
fn four_envs(staging_url: &str) -> String {
    format!(
        "environments:
  - name: dev
    database_url: sqlite://dev.db
  - name: staging
    database_url: {staging_url}
  - name: prod
    database_url: sqlite://prod.db
    require_backup: 1h
    require_approval: true
  - name: down
    database_url: postgres://postgres@127.0.0.1:1/x
    connect_timeout: 1s
"
    )
}

/// The contract holds (one document, its fields, the schema, the exit code)
/// for every command through a plan's life on SQLite and Postgres, in every
/// outcome: done, nothing to do, waiting, blocked, each kind of error.
#[tokio::test]
async fn json_contract_holds_through_a_plan_on_sqlite_and_postgres() {
    with_postgres(|db| async move {
        let p = Project::new()?;
        p.write("phasegate.yaml", &four_envs(&db.url))?;
        p.write("plans/p.yaml", THREE_PHASES)?;
        p.write("plans/fail.yaml", FAILS)?;
        std::fs::write(p.path("dev.db"), "")?;
        std::fs::write(p.path("prod.db"), "")?;
        let cases: &[(&[&str], i32)] = &[
            (&["gate", "--env", "dev", "p"], 0),
            (&["check", "--env", "dev", "p", "--phase", "1"], 1),
            (&["apply", "--env", "dev", "p"], 0),
            (&["check", "--env", "dev", "p", "--phase", "1"], 0),
            (&["apply", "--env", "dev", "p"], 0),
            (&["gate", "--env", "dev", "p"], 3),
            (&["apply", "--env", "dev", "p"], 3),
            (
                &[
                    "mark",
                    "--env",
                    "dev",
                    "p",
                    "--phase",
                    "2",
                    "--app-version",
                    "v2",
                ],
                0,
            ),
            (
                &[
                    "mark",
                    "--env",
                    "dev",
                    "p",
                    "--phase",
                    "2",
                    "--app-version",
                    "v2",
                ],
                0,
            ),
            (&["apply", "--env", "dev", "p"], 0),
            (&["apply", "--env", "dev", "p"], 0),
            (&["gate", "--env", "dev", "p"], 0),
            (&["status"], 2),
            (&["status", "--env", "dev"], 0),
            (&["apply", "--env", "staging", "p"], 0),
            (&["rollback", "--env", "staging", "p"], 0),
            (&["apply", "--env", "staging", "p"], 0),
            (&["apply", "--env", "staging", "p"], 0),
            (
                &[
                    "mark",
                    "--env",
                    "staging",
                    "p",
                    "--phase",
                    "2",
                    "--app-version",
                    "v2",
                ],
                0,
            ),
            (&["apply", "--env", "staging", "p"], 0),
            (&["apply", "--env", "prod", "p"], 0),
            (&["apply", "--env", "prod", "p"], 0),
            (
                &[
                    "mark",
                    "--env",
                    "prod",
                    "p",
                    "--phase",
                    "2",
                    "--app-version",
                    "v2",
                ],
                0,
            ),
            (&["gate", "--env", "prod", "p"], 1),
            (&["apply", "--env", "prod", "p"], 1),
            (
                &["approve", "--env", "prod", "p", "--phase", "3", "--by", "a"],
                0,
            ),
            (
                &["approve", "--env", "prod", "p", "--phase", "3", "--by", "a"],
                0,
            ),
            (
                &["approve", "--env", "prod", "p", "--phase", "2", "--by", "a"],
                2,
            ),
            (
                &["approve", "--env", "prod", "p", "--phase", "9", "--by", "a"],
                2,
            ),
            (&["backup", "--env", "prod", "--location", "/x"], 0),
            (&["apply", "--env", "prod", "p"], 0),
            (&["history", "--env", "dev", "p"], 0),
            (&["history", "--env", "staging"], 0),
            (&["verify", "--env", "dev", "p", "--phase", "9"], 2),
            (&["apply", "--env", "dev", "fail"], 2),
            (&["apply", "--env", "dev", "fail"], 2),
            (&["apply", "--env", "dev", "p.yaml.missing"], 2),
            (&["gate", "--env", "down", "p"], 2),
            (&["apply", "--env", "down", "p"], 2),
            (&["check", "--env", "down", "p", "--phase", "1"], 2),
            (&["gate", "--env", "nope", "p"], 2),
            (&["apply", "--env", "dev", "nope"], 2),
            (&["mark", "--env", "dev", "p"], 2),
            (&["check", "--env", "dev", "p"], 2),
            (
                &["--config", "missing.yaml", "gate", "--env", "dev", "p"],
                2,
            ),
        ];
        let problems = json_cases(&p, cases);
        check(problems.is_empty(), problems.join("\n"))
    })
    .await;
}

// ---------------------------------------------------------------------------
// Re-runs and refusals: the exit code a pipeline acts on
// ---------------------------------------------------------------------------

/// A project with dev (SQLite) and the two-phase plan `two` (no app stages).
fn two_phase_dev() -> TestResult<Project> {
    let p = Project::new()?;
    p.write("phasegate.yaml", DEV_ONLY_SQLITE)?;
    p.write(
        "plans/two.yaml",
        "changes:
  - sql:
      phases:
        - up: CREATE TABLE u1 (id INTEGER PRIMARY KEY)
          down: DROP TABLE u1
        - up: CREATE TABLE u2 (id INTEGER PRIMARY KEY)
          down: DROP TABLE u2
",
    )?;
    Ok(p)
}

/// contract.md: 2 is "bad input … unknown env/plan/phase"; 1 is "blocked by
/// a gate: try again later". `resolve --step 1.nope` names a step the plan
/// does not have: it exits 1 with "step 1.nope has nothing outstanding",
/// as if it were a real step with nothing to settle, and names no step of
/// the plan.
#[test]
fn resolve_of_a_step_the_plan_does_not_have_is_an_error() -> TestResult {
    let p = two_phase_dev()?;
    let (code, _, err) = p.go(&["apply", "--env", "dev", "two"]);
    check(code == 0, format!("apply: {err}"))?;
    let (code, out, err) = p.go(&[
        "resolve", "--env", "dev", "two", "--step", "1.sql_9", "--as", "applied",
    ]);
    check(code == 2, format!("exit {code}: {out}{err}"))?;
    check(
        err.contains("1.sql_1") || err.contains("1.sql_2"),
        format!("the error names none of the plan's steps: {err}"),
    )
}

/// A pipeline job that resolved a step and is re-run (a retry) resolves it
/// again with the same answer: that is "nothing to do", like `mark` and
/// `approve` again (exit 0, "already …"), not "blocked, try again later".
#[tokio::test]
async fn the_same_resolve_twice_is_an_idempotent_success() {
    with_postgres(|db| async move {
        db.exec("CREATE TABLE big (id INTEGER PRIMARY KEY, v INTEGER)")
            .await?;
        let p = Project::new()?;
        p.write("phasegate.yaml", &single_env(&db))?;
        p.write(
            "plans/ix.yaml",
            "changes:\n  - add_index: { table: big, columns: [v] }\n",
        )?;
        // A concurrent index build killed mid-run: recorded as started.
        // A transaction with an xid that outlives the build: CREATE INDEX
        // CONCURRENTLY waits for it, so the build is still running when the
        // Ctrl-C arrives. Both moments are observed, not guessed: the holder
        // is seen holding its xid before `apply` starts, and the build is seen
        // waiting before the Ctrl-C is sent (a fixed delay raced under load).
        let mut holder = Command::new("psql")
            .args([
                db.url.as_str(),
                "-X",
                "-q",
                "-c",
                "BEGIN; SELECT txid_current(); SELECT pg_sleep(120) /* holder */; COMMIT;",
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()?;
        let holding = "SELECT count(*) FROM pg_stat_activity \
             WHERE query LIKE '%/* holder */%' AND backend_xid IS NOT NULL \
             AND pid <> pg_backend_pid()";
        let held = wait_for(&db, holding).await;
        let apply = match held {
            Ok(()) => pty_with_ctrl_c_on_signal(&p, &["apply", "--env", "dev", "ix"]),
            Err(e) => Err(e),
        };
        let outcome = match apply {
            Ok(apply) => {
                let building = "SELECT count(*) FROM pg_stat_activity \
                     WHERE query ILIKE 'CREATE INDEX CONCURRENTLY%' \
                     AND pid <> pg_backend_pid()";
                let seen = wait_for(&db, building).await;
                apply.send_ctrl_c()?;
                seen.and_then(|()| apply.finish())
            }
            Err(e) => Err(e),
        };
        db.exec(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE query LIKE '%/* holder */%' AND pid <> pg_backend_pid()",
        )
        .await?;
        holder.wait()?;
        let (code, shown) = outcome?;
        check(code == 130, format!("Ctrl-C: exit {code}:\n{shown}"))?;
        let commands: Vec<String> = shown
            .lines()
            .map(|l| l.trim().trim_end_matches('\r'))
            .filter(|l| l.starts_with("phasegate "))
            .map(str::to_string)
            .collect();
        check(
            !commands.is_empty(),
            format!("no command to resume:\n{shown}"),
        )?;
        for c in &commands {
            let o = run_suggested(&p, c)?;
            check(
                o.status.success(),
                format!(
                    "`{c}`, printed after Ctrl-C: {}\n(after Ctrl-C it said:\n{shown})",
                    show(&o)
                ),
            )?;
        }
        check(
            db.index_state("big_v_idx").await? == Some(true),
            "the index is not built after the printed commands",
        )
    })
    .await;
}

/// Config typos get a "did you mean" (issue 11). `--env stagign` and `--env
/// prdo` do; `--env dve` for `dev` (the first environment of every `init`
/// project, and a one-transposition typo) does not.
#[test]
fn a_transposed_environment_name_gets_a_suggestion() -> TestResult {
    let p = Project::new()?;
    p.write("phasegate.yaml", DEV_PROD_LIKE)?;
    p.write("plans/two.yaml", IRREVERSIBLE_2)?;
    for (typo, meant) in [("stagign", "staging"), ("prdo", "prod"), ("dve", "dev")] {
        let (code, out, err) = p.go(&["gate", "--env", typo, "two"]);
        check(code == 2, format!("--env {typo}: exit {code}: {out}{err}"))?;
        check(
            err.contains(&format!("did you mean `{meant}`")),
            format!("--env {typo}: no suggestion of {meant}: {err}"),
        )?;
    }
    Ok(())
}

const DEV_PROD_LIKE: &str = "environments:
  - name: dev
    database_url: sqlite://dev.db
  - name: staging
    database_url: sqlite://staging.db
  - name: prod
    database_url: sqlite://prod.db
";

/// What the log keeps as the record of a person's act must not be empty:
/// `mark --app-version ""` (a pipeline's `"$GIT_SHA"` when the variable is
/// unset) records phase 2 "deployed (app )", read back later as "no app
/// stage"; `approve --by ""` records an approval by nobody; `accept-change
/// --reason ""` accepts with no reason. Each is bad input: exit 2, nothing
/// recorded.
#[test]
fn empty_app_version_approver_and_reason_are_refused() -> TestResult {
    let p = Project::new()?;
    p.write("phasegate.yaml", BACKUP_NO_COMMAND)?;
    p.write("plans/p.yaml", THREE_PHASES)?;
    std::fs::write(p.path("dev.db"), "")?;
    for _ in 0..2 {
        let (code, _, err) = p.go(&["apply", "--env", "dev", "p"]);
        check(code == 0, format!("apply: {err}"))?;
    }
    let mut problems = Vec::new();
    let mark = [
        "mark",
        "--env",
        "dev",
        "p",
        "--phase",
        "2",
        "--app-version",
        "",
    ];
    let (code, out, err) = p.go(&mark);
    if code != 2 {
        problems.push(format!("mark --app-version \"\": exit {code}: {out}{err}"));
    }
    let approve = ["approve", "--env", "prod", "p", "--phase", "3", "--by", ""];
    let (code, out, err) = p.go(&approve);
    if code != 2 {
        problems.push(format!("approve --by \"\": exit {code}: {out}{err}"));
    }
    // The environments' order changed (prod removed): there is a change to accept.
    p.write("phasegate.yaml", DEV_ONLY_SQLITE)?;
    let accept = ["accept-change", "--env", "dev", "p", "--reason", ""];
    let (code, out, err) = p.go(&accept);
    if code != 2 {
        problems.push(format!(
            "accept-change --reason \"\": exit {code}: {out}{err}"
        ));
    }
    check(problems.is_empty(), problems.join("\n"))
}

/// `apply --dry-run --format json` runs nothing, yet its document says
/// `"ran": ["1.sql_1"]` and `"deployed": true` (outcome done): a pipeline
/// that reads it (as ci/phasegate-deploy.sh reads apply's) takes the phase
/// as applied and deployed. The document must say nothing ran.
#[test]
fn dry_run_json_does_not_say_the_steps_ran() -> TestResult {
    let p = two_phase_dev()?;
    std::fs::write(p.path("dev.db"), "")?;
    let (code, out, err) = p.go(&[
        "apply",
        "--env",
        "dev",
        "two",
        "--dry-run",
        "--format",
        "json",
    ]);
    let problems = json_problems("apply", code, &out);
    check(
        problems.is_empty(),
        format!("{}: {out}{err}", problems.join("; ")),
    )?;
    let doc: serde_json::Value = serde_json::from_str(&out)?;
    let ran = doc["ran"].as_array().map_or(0, Vec::len);
    check(
        ran == 0 && doc["deployed"] != true,
        format!(
            "a dry run reports ran {} and deployed {}:\n{out}",
            doc["ran"], doc["deployed"]
        ),
    )?;
    let (code, out, err) = p.go(&["check", "--env", "dev", "two", "--phase", "1"]);
    check(
        code == 1,
        format!("the dry run applied phase 1? check: exit {code}: {out}{err}"),
    )
}

/// The runbook's rollback of a deploy that ships app code. Deploy 2 of a
/// rename (app only) says "Nothing to undo in the database; redeploy the
/// previous release." and names no phasegate command: followed, the log
/// still says phase 2 is deployed, and the gates let deploy 3 (dropping the
/// old column the redeployed release reads) run. And deploy 1 of a nullable
/// add_column (which ships app code) says "`phasegate rollback --env ENV
/// one` runs, after the previous release is redeployed", a command rollback
/// refuses there without `--app-reverted`. Each deploy with an app stage
/// must name `phasegate rollback --env … --app-reverted`.
#[test]
fn runbook_rollback_of_a_deploy_with_app_code_names_the_command_that_records_it() -> TestResult {
    let p = Project::new()?;
    p.write("phasegate.yaml", DEV_ONLY_SQLITE)?;
    p.write(
        "plans/rr.yaml",
        "changes:\n  - rename_column: { table: users, from: name, to: full_name }\n",
    )?;
    p.write(
        "plans/one.yaml",
        "changes:\n  - add_column: { table: t, column: y, type: int }\n",
    )?;
    let mut problems = Vec::new();
    for (plan, deploy) in [("rr", 2), ("one", 1)] {
        let (code, md, err) = p.go(&["plan", plan, "--format", "markdown"]);
        check(code == 0, format!("runbook {plan}: {err}"))?;
        let start = md
            .find(&format!("## Deploy {deploy} of"))
            .ok_or_else(|| fail(format!("no deploy {deploy} in:\n{md}")))?;
        let section = &md[start..];
        let section = &section[..section[3..].find("\n## ").map_or(section.len(), |e| e + 3)];
        let rollback = section
            .split("**Rollback:**")
            .nth(1)
            .ok_or_else(|| fail(format!("no rollback in deploy {deploy} of {plan}")))?;
        if !rollback.contains("--app-reverted") {
            problems.push(format!("{plan}, deploy {deploy}'s rollback:{rollback}"));
        }
    }
    check(problems.is_empty(), problems.join("\n"))
}

/// docs/check.md offers three ways to ask "has PLAN reached phase N here?",
/// "all reading the same event log". A plan complete in dev whose file is
/// then removed (archived after the rollout, or not shipped in the
/// service's image): the view says two, phase_applied 2, complete; `check
/// --phase 2` exits 2 ("no plan file `two`"), so the entrypoint refuses to
/// start; and `status` no longer lists the plan at all.
#[tokio::test]
async fn check_and_status_answer_from_the_log_when_the_plan_file_is_gone() {
    with_sqlite(|db| async move {
        let p = two_phase_dev()?;
        p.write("phasegate.yaml", &single_env(&db))?;
        for _ in 0..2 {
            let (code, _, err) = p.go(&["apply", "--env", "dev", "two"]);
            check(code == 0, format!("apply: {err}"))?;
        }
        std::fs::remove_file(p.path("plans/two.yaml"))?;
        let applied = db
            .scalar("SELECT phase_applied FROM phasegate_status WHERE plan = 'two'")
            .await?;
        check(applied == 2, format!("the view: phase_applied {applied}"))?;
        let mut problems = Vec::new();
        let (code, out, err) = p.go(&["check", "--env", "dev", "two", "--phase", "2"]);
        if code != 0 {
            problems.push(format!("check --phase 2: exit {code}: {out}{err}"));
        }
        let (_, out, err) = p.go(&["status", "--env", "dev"]);
        if !out.contains("two") {
            problems.push(format!("status does not list plan two:\n{out}{err}"));
        }
        check(problems.is_empty(), problems.join("\n"))
    })
    .await;
}
