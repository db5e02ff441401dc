//! The CLI/CI contract (docs/workflow.md "Exit codes", docs/json.md), through
//! the built binary on real SQLite and Postgres environments: with
//! `--format json` every environment command prints exactly one JSON document
//! on stdout in every outcome (done, nothing to do, blocked, waiting for a
//! deploy, error), valid against its checked-in schema under docs/schema/,
//! with the exit code the outcome means; re-runs of a finished step are
//! idempotent successes; out-of-range phases and approvals of reversible
//! phases are errors.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::{TestDb, TestResult, fail, with_postgres, with_sqlite};
use serde_json::Value;

const PLAN: &str = "rename-users-name";
const RENAME: &str = "name: rename-users-name
changes:
  - rename_column: { table: users, from: name, to: full_name }
";
/// A plan whose one step fails in the database.
const BROKEN: &str = "name: broken
changes:
  - sql:
      phases:
        - up: INSERT INTO no_such_table VALUES (1)
          down: DELETE FROM no_such_table
";

/// A scratch project: plans/, a config with one environment `dev`.
struct Project {
    dir: PathBuf,
}

impl Project {
    fn new(url: &str, settings: &str) -> TestResult<Project> {
        static N: AtomicUsize = AtomicUsize::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let dir = std::env::temp_dir().join(format!(
            "phasegate-contract-{}-{}-{nanos}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::create_dir_all(dir.join("plans"))?;
        std::fs::write(dir.join("plans").join(format!("{PLAN}.yaml")), RENAME)?;
        std::fs::write(dir.join("plans/broken.yaml"), BROKEN)?;
        let mut config = format!(
            "environments:\n  - name: dev\n    database_url: '{}'\n",
            url.replace('\'', "''")
        );
        for line in settings.lines().filter(|l| !l.trim().is_empty()) {
            config.push_str(&format!("    {}\n", line.trim()));
        }
        std::fs::write(dir.join("phasegate.yaml"), config)?;
        Ok(Project { dir })
    }

    /// Runs the binary in the project, bounded in time.
    async fn run(&self, args: &[&str]) -> TestResult<Output> {
        let mut c = tokio::process::Command::new(env!("CARGO_BIN_EXE_phasegate"));
        c.args(args)
            .current_dir(&self.dir)
            .env("USER", "ci-runner")
            .kill_on_drop(true);
        tokio::time::timeout(Duration::from_secs(120), c.output())
            .await
            .map_err(|_| fail(format!("phasegate {args:?} did not finish within 120s")))?
            .map_err(Into::into)
    }

    /// Runs `args --format json` and checks the contract: exactly one JSON
    /// document on stdout, valid against the command's schema, whose
    /// `command`, `outcome` and `exit_code` are the expected ones and
    /// agree with the process's exit code. Returns the document.
    async fn json(&self, args: &[&str], outcome: &str, code: i32) -> TestResult<Value> {
        let mut all = args.to_vec();
        all.extend(["--format", "json"]);
        let out = self.run(&all).await?;
        document(&out, args[0], outcome, code)
    }
}

impl Drop for Project {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
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

/// The checked-in schema of each command, compiled.
fn validators() -> &'static BTreeMap<String, jsonschema::Validator> {
    static V: std::sync::OnceLock<BTreeMap<String, jsonschema::Validator>> =
        std::sync::OnceLock::new();
    V.get_or_init(|| {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/schema");
        let mut out = BTreeMap::new();
        for entry in std::fs::read_dir(&dir).expect("docs/schema/") {
            let path = entry.expect("an entry").path();
            let name = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            let text = std::fs::read_to_string(&path).expect("a schema file");
            let schema: Value = serde_json::from_str(&text).expect("a schema is JSON");
            let v = jsonschema::validator_for(&schema).expect("a valid JSON Schema");
            out.insert(name, v);
        }
        out
    })
}

/// See [`Project::json`].
fn document(out: &Output, command: &str, outcome: &str, code: i32) -> TestResult<Value> {
    let text = String::from_utf8_lossy(&out.stdout);
    // from_str refuses anything after the one document.
    let doc: Value = serde_json::from_str(&text).map_err(|e| {
        fail(format!(
            "{command}: stdout is not one JSON document ({e}):\n{}",
            shown(out)
        ))
    })?;
    let v = validators()
        .get(command)
        .ok_or_else(|| fail(format!("no docs/schema/{command}.json")))?;
    let errors: Vec<String> = v.iter_errors(&doc).map(|e| e.to_string()).collect();
    if !errors.is_empty() {
        return Err(fail(format!(
            "{command}: the document breaks its schema: {errors:?}\n{doc:#}"
        )));
    }
    if doc["command"] != command
        || doc["outcome"] != outcome
        || doc["exit_code"] != code
        || out.status.code() != Some(code)
    {
        return Err(fail(format!(
            "{command}: expected outcome {outcome}, exit {code}:\n{}",
            shown(out)
        )));
    }
    Ok(doc)
}

fn has(doc: &Value, field: &str, text: &str) -> TestResult {
    let s = doc.pointer(field).and_then(Value::as_str).unwrap_or("");
    if s.contains(text) {
        Ok(())
    } else {
        Err(fail(format!("{field} lacks {text:?}: {doc:#}")))
    }
}

async fn seed(db: &TestDb) -> TestResult {
    db.create_table("users", "id INTEGER PRIMARY KEY, name TEXT")
        .await?;
    db.exec("INSERT INTO users (id, name) VALUES (1, 'ada'), (2, NULL), (3, 'bo')")
        .await
        .map(|_| ())
}

/// How many events of `kind` (of `phase`, if given) the log of dev holds.
async fn count(p: &Project, kind: &str, phase: Option<u64>) -> TestResult<usize> {
    let h = p
        .json(&["history", "--env", "dev", PLAN], "done", 0)
        .await?;
    Ok(h["events"]
        .as_array()
        .ok_or_else(|| fail("history has no events list"))?
        .iter()
        .filter(|e| e["kind"] == kind && phase.is_none_or(|n| e["phase"] == n))
        .count())
}

/// The whole workflow of a three-phase plan, every outcome of every
/// command along the way, on `db`.
async fn workflow(db: TestDb) -> TestResult {
    seed(&db).await?;
    let p = Project::new(&db.url, "require_approval: true")?;
    let with = |cmd: &'static str, more: &[&'static str]| -> Vec<&'static str> {
        let mut v = vec![cmd, "--env", "dev", PLAN];
        v.extend(more);
        v
    };

    let g = p.json(&with("gate", &[]), "done", 0).await?;
    assert_eq!(g["phase"], 1, "{g}");
    assert!(g["gates"].as_array().is_some_and(|g| !g.is_empty()), "{g}");
    // verify before any phase with queries ran: blocked, nothing to check.
    let v = p.json(&with("verify", &[]), "blocked", 1).await?;
    has(
        &v,
        "/message",
        "no phase of rename-users-name with verification queries has run",
    )?;

    let a = p.json(&with("apply", &[]), "done", 0).await?;
    assert_eq!(
        (a["phase"].as_u64(), a["phases"].as_u64()),
        (Some(1), Some(3)),
        "{a}"
    );
    assert!(
        a["ran"]
            .as_array()
            .is_some_and(|r| r.iter().any(|s| s == "1.backfill")),
        "{a}"
    );
    let a = p.json(&with("apply", &[]), "done", 0).await?;
    assert_eq!(
        (a["phase"].as_u64(), &a["deployed"]),
        (Some(2), &Value::Bool(false)),
        "{a}"
    );
    assert_eq!(a["next"]["action"], "deploy", "{a}");

    // verify picks the latest phase that ran and has queries: phase 1, not 2.
    let v = p.json(&with("verify", &[]), "done", 0).await?;
    assert_eq!(
        (v["phase"].as_u64(), &v["passed"]),
        (Some(1), &Value::Bool(true)),
        "{v}"
    );
    assert_eq!(v["results"][0]["got"], 0, "{v}");
    let v = p
        .json(&with("verify", &["--phase", "3"]), "done", 0)
        .await?;
    assert_eq!(v["results"].as_array().map(Vec::len), Some(0), "{v}");

    // Phase 2 waits for its app deploy: exit 3 from gate and apply.
    let g = p.json(&with("gate", &[]), "waiting_for_deploy", 3).await?;
    has(
        &g,
        "/message",
        "phasegate mark --env dev rename-users-name --phase 2",
    )?;
    let a = p.json(&with("apply", &[]), "waiting_for_deploy", 3).await?;
    assert_eq!(a["phase"], 2, "{a}");
    has(&a, "/app/0", "full_name only")?;
    has(&a, "/message", "--phase 2 --app-version")?;
    let text = p.run(&with("apply", &[])).await?;
    assert_eq!(text.status.code(), Some(3), "{}", shown(&text));
    assert!(
        String::from_utf8_lossy(&text.stderr).contains("waiting for its app deploy"),
        "{}",
        shown(&text)
    );

    // Requests that cannot be right: exit 2, nothing recorded.
    let e = p
        .json(&with("approve", &["--phase", "2"]), "error", 2)
        .await?;
    assert_eq!(e["error"]["kind"], "invalid_request", "{e}");
    has(
        &e,
        "/error/message",
        "phase 2 of rename-users-name is reversible: it needs no approval",
    )?;
    for cmd in [
        with("approve", &["--phase", "9"]),
        with("mark", &["--phase", "9", "--app-version", "v9"]),
        with("verify", &["--phase", "9"]),
    ] {
        let e = p.json(&cmd, "error", 2).await?;
        has(
            &e,
            "/error/message",
            "rename-users-name has 3 phases; there is no phase 9",
        )?;
    }
    assert_eq!(count(&p, "approved", None).await?, 0);

    // mark, then mark again: done, then nothing to do, recorded once.
    let m = p
        .json(
            &with("mark", &["--phase", "2", "--app-version", "v2"]),
            "done",
            0,
        )
        .await?;
    assert_eq!(m["app_version"], "v2", "{m}");
    let m = p
        .json(
            &with("mark", &["--phase", "2", "--app-version", "v2"]),
            "nothing_to_do",
            0,
        )
        .await?;
    has(
        &m,
        "/message",
        "phase 2 is already marked deployed in dev (app v2, ",
    )?;
    let text = p
        .run(&with("mark", &["--phase", "2", "--app-version", "v3"]))
        .await?;
    assert_eq!(text.status.code(), Some(0), "{}", shown(&text));
    assert!(
        String::from_utf8_lossy(&text.stdout).contains("v3 is not recorded"),
        "{}",
        shown(&text)
    );
    assert_eq!(count(&p, "phase_deployed", Some(2)).await?, 1);

    // Phase 3 is irreversible: the approval gate blocks it (exit 1).
    let a = p.json(&with("apply", &[]), "blocked", 1).await?;
    let blocked: Vec<&Value> = a["gates"]
        .as_array()
        .map(|g| {
            g.iter()
                .filter(|g| g["held"] == false)
                .map(|g| &g["name"])
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(blocked, ["approval"], "{a}");
    let g = p.json(&with("gate", &[]), "blocked", 1).await?;
    has(&g, "/message", "approval: phase 3 is irreversible")?;

    // approve, then approve again: done, then nothing to do, recorded once.
    p.json(
        &with("approve", &["--phase", "3", "--by", "alice"]),
        "done",
        0,
    )
    .await?;
    let again = p
        .json(
            &with("approve", &["--phase", "3", "--by", "bob"]),
            "nothing_to_do",
            0,
        )
        .await?;
    has(&again, "/message", "already approved in dev by alice at ")?;
    assert_eq!(count(&p, "approved", None).await?, 1);

    let b = p
        .json(
            &["backup", "--env", "dev", "--location", "s3://b/dev.dump"],
            "done",
            0,
        )
        .await?;
    assert_eq!(b["location"], "s3://b/dev.dump", "{b}");
    let a = p.json(&with("apply", &[]), "done", 0).await?;
    assert_eq!(
        (a["phase"].as_u64(), &a["next"]["action"]),
        (Some(3), &Value::from("complete")),
        "{a}"
    );

    // A finished plan: apply and gate are nothing to do (exit 0), in text too.
    let a = p.json(&with("apply", &[]), "nothing_to_do", 0).await?;
    has(&a, "/message", "rename-users-name is complete in dev")?;
    p.json(&with("gate", &[]), "nothing_to_do", 0).await?;
    let text = p.run(&with("apply", &[])).await?;
    assert_eq!(text.status.code(), Some(0), "{}", shown(&text));
    assert!(
        String::from_utf8_lossy(&text.stdout)
            .contains("complete in dev: every phase is deployed; nothing to do"),
        "{}",
        shown(&text)
    );

    // Refusals: blocked (exit 1), with the reason.
    let r = p.json(&with("rollback", &[]), "blocked", 1).await?;
    has(&r, "/message", "cannot be rolled back")?;
    // accept-change of a plan in force as it is: nothing to do (exit 0).
    let r = p
        .json(
            &with("accept-change", &["--reason", "why"]),
            "nothing_to_do",
            0,
        )
        .await?;
    has(&r, "/message", "is already in force in dev as it is")?;
    let r = p
        .json(
            &with("resolve", &["--step", "1.backfill", "--as", "applied"]),
            "blocked",
            1,
        )
        .await?;
    has(
        &r,
        "/message",
        "step 1.backfill has nothing outstanding in dev",
    )?;

    // history: a detail that is JSON is a JSON value, text stays text.
    let h = p.json(&with("history", &[]), "done", 0).await?;
    let events = h["events"].as_array().ok_or_else(|| fail("no events"))?;
    let started = events
        .iter()
        .find(|e| e["kind"] == "plan_started")
        .ok_or_else(|| fail("no plan_started"))?;
    assert!(started["detail"]["checksum"].is_string(), "{started}");
    let deployed = events
        .iter()
        .find(|e| e["kind"] == "phase_deployed" && e["phase"] == 2)
        .ok_or_else(|| fail("no phase_deployed"))?;
    assert_eq!(deployed["detail"], "v2", "{deployed}");

    let s = p.json(&["status"], "done", 0).await?;
    let mine = s["environments"][0]["plans"]
        .as_array()
        .and_then(|p| p.iter().find(|p| p["plan"] == PLAN))
        .ok_or_else(|| fail(format!("status lacks {PLAN}: {s}")))?;
    assert_eq!(mine["next"]["action"], "complete", "{s}");

    // A step that fails: an error (exit 2) naming the step.
    let e = p
        .json(&["apply", "--env", "dev", "broken"], "error", 2)
        .await?;
    assert_eq!(e["error"]["kind"], "step_failed", "{e}");
    has(&e, "/error/message", "1.sql")?;
    // Settled by hand, the plan fixed and the edit accepted: each done.
    let r = p
        .json(
            &[
                "resolve",
                "--env",
                "dev",
                "broken",
                "--step",
                "1.sql_1",
                "--as",
                "not-applied",
            ],
            "done",
            0,
        )
        .await?;
    assert_eq!(
        (&r["step"], &r["applied"]),
        (&"1.sql_1".into(), &Value::Bool(false)),
        "{r}"
    );
    std::fs::write(
        p.dir.join("plans/broken.yaml"),
        BROKEN
            .replace(
                "INSERT INTO no_such_table VALUES (1)",
                "CREATE TABLE contract_t (id INTEGER)",
            )
            .replace("DELETE FROM no_such_table", "DROP TABLE contract_t"),
    )?;
    let d = p
        .json(&["apply", "--env", "dev", "broken"], "blocked", 1)
        .await?;
    has(&d, "/message", "drift: ")?;
    let a = p
        .json(
            &[
                "accept-change",
                "--env",
                "dev",
                "broken",
                "--reason",
                "fixed the table",
            ],
            "done",
            0,
        )
        .await?;
    assert_eq!(a["reason"], "fixed the table", "{a}");
    let a = p
        .json(&["apply", "--env", "dev", "broken"], "done", 0)
        .await?;
    assert_eq!(a["ran"][0], "1.sql_1", "{a}");
    let r = p
        .json(&["rollback", "--env", "dev", "broken"], "done", 0)
        .await?;
    assert_eq!(r["phase"], 1, "{r}");
    Ok(())
}

#[tokio::test]
async fn the_contract_holds_on_sqlite() {
    with_sqlite(workflow).await;
}

#[tokio::test]
async fn the_contract_holds_on_postgres() {
    with_postgres(workflow).await;
}

/// Errors before any work: one JSON document all the same.
#[tokio::test]
async fn errors_are_one_json_document_too() -> TestResult {
    let p = Project::new("sqlite://dev.db", "")?;
    // Unknown environment, with the nearest name.
    for cmd in [
        "gate",
        "apply",
        "verify",
        "history",
        "rollback",
        "accept-change",
    ] {
        let mut args = vec![cmd, "--env", "deb", PLAN];
        if cmd == "accept-change" {
            args.extend(["--reason", "r"]);
        }
        let e = p.json(&args, "error", 2).await?;
        assert_eq!(e["error"]["kind"], "unknown_environment", "{e}");
        has(&e, "/error/message", "did you mean `dev`?")?;
    }
    let e = p
        .json(&["backup", "--env", "deb", "--location", "x"], "error", 2)
        .await?;
    assert_eq!(e["error"]["kind"], "unknown_environment", "{e}");
    let e = p.json(&["status", "--env", "deb"], "error", 2).await?;
    assert_eq!(e["error"]["kind"], "unknown_environment", "{e}");
    // Unknown plan.
    let e = p
        .json(&["gate", "--env", "dev", "no-such-plan"], "error", 2)
        .await?;
    assert_eq!(e["error"]["kind"], "plan_not_found", "{e}");
    // No config.
    let e = p
        .json(
            &[
                "mark",
                "--env",
                "dev",
                PLAN,
                "--phase",
                "1",
                "--app-version",
                "v",
                "--config",
                "nowhere.yaml",
            ],
            "error",
            2,
        )
        .await?;
    assert_eq!(e["error"]["kind"], "config", "{e}");
    // An argument missing: clap's error, as the document.
    let out = p
        .run(&["apply", "--env", "dev", "--format", "json"])
        .await?;
    let e = document(&out, "apply", "error", 2)?;
    assert_eq!(e["error"]["kind"], "usage", "{e}");
    has(&e, "/error/message", "required")?;
    // A database that does not answer.
    let down = Project::new(
        "postgres://postgres@127.0.0.1:1/none",
        "connect_timeout: 2s",
    )?;
    let e = down
        .json(&["gate", "--env", "dev", PLAN], "error", 2)
        .await?;
    assert_eq!(e["error"]["kind"], "unreachable", "{e}");
    let e = down.json(&["status"], "error", 2).await?;
    assert_eq!(e["error"]["kind"], "unreachable", "{e}");
    assert!(e["environments"][0]["unreachable"].is_string(), "{e}");
    // Read-only commands create nothing: no dev.db appeared.
    assert!(!p.dir.join("dev.db").exists());
    Ok(())
}

/// Without `--format json`, clap's own errors and help are untouched.
#[tokio::test]
async fn text_mode_keeps_clap_errors_and_help() -> TestResult {
    let p = Project::new("sqlite://dev.db", "")?;
    let out = p.run(&["apply", "--env", "dev"]).await?;
    assert_eq!(out.status.code(), Some(2), "{}", shown(&out));
    assert!(out.stdout.is_empty(), "{}", shown(&out));
    let help = p.run(&["--help"]).await?;
    let text = String::from_utf8_lossy(&help.stdout);
    assert!(text.contains("3    waiting for the app deploy"), "{text}");
    Ok(())
}
