//! What the rollback and pinned-plan suites (`rollback_recorded.rs`,
//! `pinned_plan.rs`) share: running the built binary in a [`Project`] and
//! reading what it printed and recorded.

#![allow(dead_code)]

use std::process::Output;

use crate::common::{TestDb, TestResult, fail};
use crate::executor_support::{self, Project};

/// Runs `phasegate ARGS` in the project's folder with its config.
pub fn run(project: &Project, args: &[&str]) -> TestResult<Output> {
    project.run(args)
}

/// stdout and stderr together.
pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Runs `phasegate ARGS` and checks its exit status; returns what it printed.
pub fn expect(project: &Project, args: &[&str], code: i32) -> TestResult<String> {
    let o = run(project, args)?;
    if o.status.code() != Some(code) {
        return Err(fail(format!(
            "`phasegate {}`: exit {:?}, expected {code}:\n{}",
            args.join(" "),
            o.status.code(),
            text(&o)
        )));
    }
    Ok(text(&o))
}

/// Fails unless `out` contains every one of `needles`.
pub fn says(out: &str, needles: &[&str], what: &str) -> TestResult {
    for n in needles {
        if !out.contains(n) {
            return Err(fail(format!(
                "{what}: the output does not say {n:?}:\n{out}"
            )));
        }
    }
    Ok(())
}

/// `(kind, step)` of every event in the log, in order.
pub async fn log(db: &TestDb) -> Vec<(String, Option<String>)> {
    executor_support::events(db)
        .await
        .into_iter()
        .map(|(_, kind, step, _)| (kind, step))
        .collect()
}

/// The steps of the events of `kind`, in log order.
pub async fn steps_of(db: &TestDb, kind: &str) -> Vec<String> {
    log(db)
        .await
        .into_iter()
        .filter(|(k, _)| k == kind)
        .filter_map(|(_, s)| s)
        .collect()
}

/// How many events of `kind` the log holds.
pub async fn count(db: &TestDb, kind: &str) -> usize {
    log(db).await.iter().filter(|(k, _)| k == kind).count()
}
