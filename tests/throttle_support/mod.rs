//! What the backfill throttle tests share: running a server's programs (as
//! its own user when the tests run as root), free ports, a scratch folder,
//! and a [`Progress`] that records the waits a backfill reports.

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Command;
use std::sync::Mutex;

use phasegate::execute::{Progress, ReplicaWait, VacuumWait};
use phasegate::plan::Step;
use std::time::Duration;

use phasegate::config::Config;
use phasegate::execute::Workspace;
use phasegate::tracker::SystemClock;

use crate::common::{TestDb, TestResult, fail};
use crate::executor_support;

/// Whether the tests run as root (`initdb` and `mariadb-install-db` want a
/// server's own user then).
pub fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// Runs `program` (as `user` through `runuser` when given); its output on
/// failure.
pub fn run(user: Option<&str>, program: &str, args: &[&str]) -> TestResult {
    let out = match user {
        Some(u) => Command::new("runuser")
            .args(["-u", u, "--", program])
            .args(args)
            .output()?,
        None => Command::new(program).args(args).output()?,
    };
    if !out.status.success() {
        return Err(fail(format!(
            "{program} {}: {}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    Ok(())
}

/// Whether `program` can be started (`--version`).
pub fn have(program: &str) -> bool {
    Command::new(program).arg("--version").output().is_ok()
}

pub fn free_port() -> TestResult<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// A new folder under the system's temporary one, `phasegate-<what>-…`,
/// owned by `owner` when given (the caller removes it).
pub fn scratch(what: &str, owner: Option<&str>) -> TestResult<PathBuf> {
    let dir = std::env::temp_dir().join(format!(
        "phasegate-{what}-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos())
    ));
    std::fs::create_dir_all(&dir)?;
    if let Some(o) = owner {
        run(None, "chown", &[o, &dir.to_string_lossy()])?;
    }
    Ok(dir)
}

/// Whether every one of `programs` can be started. When one cannot, the
/// test says it is skipped (`SKIPPED: …` on the raw stderr, which plain
/// `cargo test` shows, naming `what` it needs them for), or fails under
/// `PHASEGATE_REQUIRE_DATABASES=1`.
pub fn have_all(programs: &[&str], what: &str) -> bool {
    if programs.iter().all(|p| have(p)) {
        return true;
    }
    let names = programs.join(" and ");
    if std::env::var(crate::common::REQUIRE_ENV).as_deref() == Ok("1") {
        panic!("{names} are needed to start {what}");
    }
    crate::common::loud(format_args!("SKIPPED: {names} not found: no {what}"));
    false
}

/// Fails the test with `e` and the last lines of each of `logs` (files in
/// `dir`: the servers' logs).
pub fn fail_with_logs(e: Box<dyn std::error::Error>, dir: &std::path::Path, logs: &[&str]) -> ! {
    let tails: String = logs.iter().map(|l| tail(&dir.join(l), 15)).collect();
    panic!("{e}\n{tails}");
}

/// The last `n` lines of the file at `path` (empty when unreadable), under
/// a heading, for a failing test's message.
fn tail(path: &std::path::Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().rev().take(n).collect();
    format!(
        "--- {} (last lines) ---\n{}\n",
        path.display(),
        lines.into_iter().rev().collect::<Vec<_>>().join("\n")
    )
}

/// Records the replica and vacuum waits a backfill reports.
#[derive(Default)]
pub struct Waits {
    pub replica: Mutex<Vec<ReplicaWait>>,
    pub vacuum: Mutex<Vec<VacuumWait>>,
}

impl Progress for Waits {
    fn replica_wait(&self, _step: &Step, wait: &ReplicaWait) {
        if let Ok(mut w) = self.replica.lock() {
            w.push(wait.clone());
        }
    }

    fn vacuum_wait(&self, _step: &Step, wait: &VacuumWait) {
        if let Ok(mut w) = self.vacuum.lock() {
            w.push(wait.clone());
        }
    }
}

impl Waits {
    pub fn replica_waits(&self) -> Vec<ReplicaWait> {
        self.replica.lock().map(|w| w.clone()).unwrap_or_default()
    }

    pub fn vacuum_waits(&self) -> Vec<VacuumWait> {
        self.vacuum.lock().map(|w| w.clone()).unwrap_or_default()
    }
}

/// Polls `check` every 100 ms until it returns `Some`, for at most `within`
/// seconds; `what` names the awaited state in the error.
pub async fn eventually<T, F, Fut>(what: &str, within: u64, mut check: F) -> TestResult<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = TestResult<Option<T>>>,
{
    let end = std::time::Instant::now() + std::time::Duration::from_secs(within);
    loop {
        if let Some(t) = check().await? {
            return Ok(t);
        }
        if std::time::Instant::now() > end {
            return Err(fail(format!("{what}: not within {within} s")));
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// Applies phase 1 of a rename of a 5,000-row table on `db` with
/// `max_replica_lag: 1s` and `replica_urls` set to `replica`, which cannot
/// be used; the error `apply` stops with (within 60 s).
pub async fn apply_with_replica(db: &TestDb, replica: &str) -> TestResult<String> {
    db.exec(&format!(
        "CREATE TABLE big (id bigint PRIMARY KEY, amount integer);
         INSERT INTO big SELECT i, i FROM {}",
        executor_support::series(db, 5_000)
    ))
    .await?;
    let project = executor_support::Project::new(
        db,
        &[
            "max_replica_lag: 1s",
            &format!("replica_urls: [ '{replica}' ]"),
        ],
        "rename",
        "changes:\n  - rename_column: { table: big, from: amount, to: total }\n",
    )?;
    let clock = SystemClock;
    let ws = Workspace::new(&project.config, &clock, "throttle");
    match tokio::time::timeout(
        Duration::from_secs(60),
        ws.apply(executor_support::ENV, "rename", false),
    )
    .await
    {
        Ok(Ok(_)) => Err(fail("apply finished, but its replica cannot be used")),
        Ok(Err(e)) => Ok(e.to_string()),
        Err(_) => Err(fail("apply waited for a replica it cannot use")),
    }
}

/// A project in `dir/project` whose environment `prod` is `primary`, with
/// batches of `batch` rows, `max_replica_lag: 1s` and `replica` in
/// `replica_urls`, and the plan `plan`: a rename of `table`'s `amount` to
/// `total`.
pub fn rename_project(
    dir: &std::path::Path,
    plan: &str,
    table: &str,
    primary: &str,
    replica: &str,
    batch: i64,
) -> TestResult<Config> {
    let dir = dir.join("project");
    std::fs::create_dir_all(dir.join("plans"))?;
    std::fs::write(
        dir.join(format!("plans/{plan}.yaml")),
        format!("changes:\n  - rename_column: {{ table: {table}, from: amount, to: total }}\n"),
    )?;
    let text = format!(
        "environments:\n  - name: prod\n    database_url: {primary}\n    backfill_batch_size: {batch}\n    max_replica_lag: 1s\n    replica_urls: [ '{replica}' ]\n"
    );
    Ok(Config::parse(
        &text,
        &dir.join("phasegate.yaml"),
        &dir,
        &|_| None,
    )?)
}
