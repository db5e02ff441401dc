//! `${VAR}` in `database_url` is resolved per environment: a command needs
//! the variables of the environments it uses (its own, and the previous one
//! for the promotion gate), no others. Through the built binary, on SQLite.

mod common;

use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

use common::{TestResult, fail};

const PLAN: &str = "changes:
  - sql:
      phases:
        - up: CREATE TABLE t1 (id INTEGER PRIMARY KEY)
          down: DROP TABLE t1
";

/// dev is a SQLite file; staging and prod read their URLs from variables.
const CONFIG: &str = "environments:
  - name: dev
    database_url: sqlite://dev.db
  - name: staging
    database_url: ${PHASEGATE_ENVVARS_STAGING}
  - name: prod
    database_url: ${PHASEGATE_ENVVARS_PROD}
";

struct Project(PathBuf);

impl Project {
    fn new() -> TestResult<Project> {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "phasegate-envvars-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("plans"))?;
        std::fs::write(dir.join("phasegate.yaml"), CONFIG)?;
        std::fs::write(dir.join("plans/p.yaml"), PLAN)?;
        for db in ["dev.db", "staging.db", "prod.db"] {
            std::fs::write(dir.join(db), "")?;
        }
        Ok(Project(dir))
    }

    /// Runs phasegate with `vars` set (the other two variables unset).
    fn run(&self, vars: &[(&str, &str)], args: &[&str]) -> Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_phasegate"));
        cmd.args(args)
            .current_dir(&self.0)
            .env_remove("PHASEGATE_ENVVARS_STAGING")
            .env_remove("PHASEGATE_ENVVARS_PROD");
        for (k, v) in vars {
            cmd.env(k, v);
        }
        cmd.output().expect("run phasegate")
    }

    fn url(&self, db: &str) -> String {
        format!("sqlite://{}", self.0.join(db).display())
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

fn expect(o: &Output, code: i32, needles: &[&str], what: &str) -> TestResult {
    let text = log(o);
    if o.status.code() != Some(code) {
        return Err(fail(format!("{what}: expected exit {code}:\n{text}")));
    }
    match needles.iter().find(|n| !text.contains(*n)) {
        Some(n) => Err(fail(format!("{what}: no `{n}` in:\n{text}"))),
        None => Ok(()),
    }
}

#[test]
fn commands_on_an_environment_need_only_its_variables() -> TestResult {
    let p = Project::new()?;
    // dev: no variable at all.
    for args in [
        &["gate", "--env", "dev", "p"][..],
        &["apply", "--env", "dev", "p"],
        &["check", "--env", "dev", "p", "--phase", "1"],
        &["history", "--env", "dev"],
        &["backup", "--env", "dev", "--location", "somewhere"],
    ] {
        expect(&p.run(&[], args), 0, &[], &args.join(" "))?;
    }
    // staging with its own variable only: prod's is not needed.
    let staging = p.url("staging.db");
    let vars = [("PHASEGATE_ENVVARS_STAGING", staging.as_str())];
    expect(
        &p.run(&vars, &["apply", "--env", "staging", "p"]),
        0,
        &[],
        "apply --env staging",
    )?;
    expect(
        &p.run(&vars, &["check", "--env", "staging", "p", "--phase", "1"]),
        0,
        &[],
        "check --env staging",
    )?;
    Ok(())
}

#[test]
fn an_unset_variable_the_command_needs_is_an_error_that_names_it() -> TestResult {
    let p = Project::new()?;
    // The environment's own variable.
    for args in [
        &["apply", "--env", "staging", "p"][..],
        &["gate", "--env", "staging", "p"],
        &["check", "--env", "staging", "p", "--phase", "1"],
    ] {
        expect(
            &p.run(&[], args),
            2,
            &[
                "PHASEGATE_ENVVARS_STAGING",
                "staging's database_url",
                "is not set",
            ],
            &args.join(" "),
        )?;
    }
    let o = p.run(&[], &["apply", "--env", "staging", "p", "--format", "json"]);
    expect(
        &o,
        2,
        &["\"outcome\": \"error\"", "\"kind\": \"config\""],
        "apply --format json",
    )?;
    // The previous environment's, read by the promotion gate.
    let prod = p.url("prod.db");
    let vars = [("PHASEGATE_ENVVARS_PROD", prod.as_str())];
    for args in [
        &["apply", "--env", "prod", "p"][..],
        &["gate", "--env", "prod", "p"],
    ] {
        expect(
            &p.run(&vars, args),
            2,
            &[
                "PHASEGATE_ENVVARS_STAGING",
                "promotion gate of prod reads staging",
            ],
            &args.join(" "),
        )?;
    }
    // Nothing ran in prod.
    expect(
        &p.run(&vars, &["check", "--env", "prod", "p", "--phase", "1"]),
        1,
        &[],
        "check --env prod",
    )?;
    // An unknown name still suggests the unresolved environments' names.
    expect(
        &p.run(&[], &["gate", "--env", "stagin", "p"]),
        2,
        &["did you mean `staging`"],
        "gate --env stagin",
    )
}
