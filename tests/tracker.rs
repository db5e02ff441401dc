//! The tracker, the gates and the environments workflow, on real databases:
//! every test makes its own three databases (dev → staging → prod) on SQLite,
//! on Postgres and on MySQL/MariaDB, and a scratch project folder with
//! `plans/`, and removes them afterwards.
//!
//! The library ([`Workspace`]) is driven with a [`ManualClock`], so soak
//! periods and backup windows are tested by moving the clock, never by
//! sleeping. The built binary is run where the contract is the process:
//! concurrent runs, the environment lock, exit codes, `status --format json`,
//! `init`.

mod common;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use chrono::Utc;
use common::{Rows, TestDb, TestResult, fail, with_mysql, with_postgres, with_sqlite};
use phasegate::config::Config;
use phasegate::dialect::Dialect;
use phasegate::execute::{PlanStatus, RunError, Workspace};
use phasegate::tracker::gates::Verdict;
use phasegate::tracker::{
    Clock, Event, EventKind, ManualClock, NewEvent, Next, PhaseStatus, Store, phase_reached,
};

const ENVS: [&str; 3] = ["dev", "staging", "prod"];

/// The product's own example: staging soaks for an hour, prod for three
/// days, and prod needs a backup and an approval before an irreversible phase.
const DEFAULT_SETTINGS: [&str; 3] = [
    "",
    "soak: 1h",
    "soak: 72h\nrequire_approval: true\nrequire_backup: 24h",
];
const NO_SETTINGS: [&str; 3] = ["", "", ""];

const PLAN: &str = "rename-users-name";
const RENAME: &str = "# Rename users.name the safe way.
name: rename-users-name
description: Users get a single full_name field
changes:
  - rename_column: { table: users, from: name, to: full_name }
";

// ---------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------

/// Runs `body` with three fresh databases of `dialect` (dev, staging, prod),
/// all removed afterwards whatever happens. Postgres and MySQL tests skip
/// (one line) when no server answers, unless PHASEGATE_REQUIRE_DATABASES=1.
async fn with_envs<F, Fut>(dialect: Dialect, body: F)
where
    F: FnOnce([TestDb; 3]) -> Fut,
    Fut: Future<Output = TestResult>,
{
    match dialect {
        Dialect::Mysql => {
            with_mysql(|a| async move {
                with_mysql(|b| async move {
                    with_mysql(|c| async move { body([a, b, c]).await }).await;
                    Ok(())
                })
                .await;
                Ok(())
            })
            .await
        }
        Dialect::Sqlite => {
            with_sqlite(|a| async move {
                with_sqlite(|b| async move {
                    with_sqlite(|c| async move {
                        let _lock_files = LockFiles([&a, &b, &c].map(|db| db.name.clone()));
                        body([a, b, c]).await
                    })
                    .await;
                    Ok(())
                })
                .await;
                Ok(())
            })
            .await
        }
        Dialect::Postgres => {
            with_postgres(|a| async move {
                with_postgres(|b| async move {
                    with_postgres(|c| async move { body([a, b, c]).await }).await;
                    Ok(())
                })
                .await;
                Ok(())
            })
            .await
        }
    }
}

/// Removes the side-car lock files phasegate keeps beside SQLite databases
/// (`<db>.phasegate-lock`), which the harness does not know about.
struct LockFiles([String; 3]);

impl Drop for LockFiles {
    fn drop(&mut self) {
        for db in &self.0 {
            for suffix in ["", "-journal", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{db}.phasegate-lock{suffix}"));
            }
        }
    }
}

/// A scratch project folder with `plans/`, removed when dropped.
struct Project {
    dir: PathBuf,
}

impl Project {
    fn new(tag: &str) -> TestResult<Project> {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "phasegate-{tag}-{}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst),
            Utc::now().timestamp_nanos_opt().unwrap_or(0)
        ));
        std::fs::create_dir_all(dir.join("plans"))?;
        Ok(Project { dir })
    }

    fn write(&self, path: &str, text: &str) -> TestResult {
        let p = self.dir.join(path);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&p, text).map_err(|e| fail(format!("writing {}: {e}", p.display())))
    }

    fn config_path(&self) -> PathBuf {
        self.dir.join("phasegate.yaml")
    }

    /// Writes `phasegate.yaml` (for the binary) and parses it (for the library).
    fn configure(&self, text: &str) -> TestResult<Config> {
        self.write("phasegate.yaml", text)?;
        Ok(Config::parse(
            text,
            &self.config_path(),
            &self.dir,
            &|_| None,
        )?)
    }

    /// Runs the built binary in the project with `--config`.
    async fn run(&self, args: &[&str]) -> TestResult<Output> {
        run_binary(&self.dir, Some(&self.config_path()), args).await
    }
}

impl Drop for Project {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The binary, bounded in time so a hang fails the test instead of stalling it.
fn command(dir: &Path, config: Option<&Path>, args: &[&str]) -> tokio::process::Command {
    let mut c = tokio::process::Command::new(env!("CARGO_BIN_EXE_phasegate"));
    if let Some(config) = config {
        c.arg("--config").arg(config);
    }
    c.args(args)
        .current_dir(dir)
        .env("USER", "ci-runner")
        .kill_on_drop(true);
    c
}

async fn run_binary(dir: &Path, config: Option<&Path>, args: &[&str]) -> TestResult<Output> {
    let out = tokio::time::timeout(
        Duration::from_secs(120),
        command(dir, config, args).output(),
    )
    .await
    .map_err(|_| fail(format!("phasegate {args:?} did not finish within 120s")))??;
    Ok(out)
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

/// Asserts the exit code, showing both streams when it is not.
fn assert_exit(o: &Output, expected: i32, what: &str) {
    assert_eq!(
        code(o),
        expected,
        "{what}: exit code\n--- stdout ---\n{}\n--- stderr ---\n{}",
        stdout(o),
        stderr(o)
    );
}

fn config_text(envs: &[(&str, &str, &str)]) -> String {
    let mut s = String::from("environments:\n");
    for (name, url, settings) in envs {
        s.push_str(&format!(
            "  - name: {name}\n    database_url: '{}'\n",
            url.replace('\'', "''")
        ));
        for line in settings.lines().filter(|l| !l.trim().is_empty()) {
            s.push_str(&format!("    {}\n", line.trim()));
        }
    }
    s
}

/// Three environments on three databases, a project folder, a manual clock.
struct Fixture {
    project: Project,
    dbs: [TestDb; 3],
    urls: [String; 3],
    config: Config,
    clock: ManualClock,
}

impl Fixture {
    fn new(dbs: [TestDb; 3], settings: [&str; 3]) -> TestResult<Fixture> {
        let project = Project::new("tracker")?;
        let urls = [dbs[0].url.clone(), dbs[1].url.clone(), dbs[2].url.clone()];
        let config = project.configure(&config_text(&[
            ("dev", &urls[0], settings[0]),
            ("staging", &urls[1], settings[1]),
            ("prod", &urls[2], settings[2]),
        ]))?;
        Ok(Fixture {
            project,
            dbs,
            urls,
            config,
            clock: ManualClock::new(Utc::now()),
        })
    }

    /// Rewrites the config with other settings.
    fn reconfigure(&mut self, settings: [&str; 3]) -> TestResult {
        self.config = self.project.configure(&config_text(&[
            ("dev", &self.urls[0], settings[0]),
            ("staging", &self.urls[1], settings[1]),
            ("prod", &self.urls[2], settings[2]),
        ]))?;
        Ok(())
    }

    fn ws(&self) -> Workspace<'_> {
        Workspace::new(&self.config, &self.clock, "tester")
    }

    fn plan(&self, name: &str, text: &str) -> TestResult {
        self.project.write(&format!("plans/{name}.yaml"), text)
    }

    fn index(env: &str) -> usize {
        ENVS.iter()
            .position(|e| *e == env)
            .unwrap_or_else(|| panic!("no environment {env}"))
    }

    fn db(&self, env: &str) -> &TestDb {
        &self.dbs[Self::index(env)]
    }

    async fn store(&self, env: &str) -> TestResult<Store> {
        let e = self.config.environment(env)?;
        Ok(Store::open(env, &e.database_url, e.dialect, Duration::from_secs(10)).await?)
    }

    /// The event log of `env` (one plan's and the environment-wide events, or all).
    async fn events(&self, env: &str, plan: Option<&str>) -> TestResult<Vec<Event>> {
        let mut store = self.store(env).await?;
        let events = store.events(plan).await;
        store.close().await;
        Ok(events?)
    }

    async fn status(&self, env: &str, plan: &str) -> TestResult<PlanStatus> {
        let envs = self.ws().status(Some(env)).await?;
        let e = envs
            .iter()
            .find(|e| e.env == env)
            .ok_or_else(|| fail(format!("status has no {env}: {envs:?}")))?;
        if let Some(why) = &e.unreachable {
            return Err(fail(format!("{env} is unreachable: {why}")));
        }
        e.plans
            .iter()
            .find(|p| p.plan == plan)
            .cloned()
            .ok_or_else(|| fail(format!("status of {env} has no plan {plan}: {e:?}")))
    }
}

/// A `users` table of `n` rows, every seventh name NULL; returns its names.
async fn seed_users(db: &TestDb, n: u32) -> TestResult<Rows> {
    db.create_table("users", "id INTEGER PRIMARY KEY, name TEXT")
        .await?;
    // `||` is OR on MySQL.
    let label = db.pick3("'user ' || i", "'user ' || i", "CONCAT('user ', i)");
    db.exec(&format!(
        "INSERT INTO users (id, name) SELECT i, CASE WHEN i % 7 = 0 THEN NULL ELSE {label} END FROM {}",
        db.series(n)
    ))
    .await?;
    let rows = db.rows("users", "id", "name").await?;
    assert_eq!(rows.len(), n as usize);
    assert_eq!(
        rows.values().filter(|v| v.is_none()).count(),
        (n / 7) as usize
    );
    Ok(rows)
}

// ---------------------------------------------------------------------------
// Assertions
// ---------------------------------------------------------------------------

fn blocked<T: std::fmt::Debug>(r: Result<T, RunError>, what: &str) -> Verdict {
    match r {
        Err(RunError::Blocked(v)) => *v,
        other => panic!("{what}: expected a gate to block, got {other:?}"),
    }
}

fn refused<T: std::fmt::Debug>(r: Result<T, RunError>, what: &str) -> String {
    match r {
        Err(RunError::Refused(m)) => m,
        other => panic!("{what}: expected a refusal, got {other:?}"),
    }
}

fn waiting<T: std::fmt::Debug>(r: Result<T, RunError>, what: &str) -> phasegate::execute::Waiting {
    match r {
        Err(RunError::Waiting(w)) => *w,
        other => panic!("{what}: expected to wait for an app deploy, got {other:?}"),
    }
}

fn invalid<T: std::fmt::Debug>(r: Result<T, RunError>, what: &str) -> String {
    match r {
        Err(RunError::Invalid(m)) => m,
        other => panic!("{what}: expected an invalid request, got {other:?}"),
    }
}

fn blocked_names(v: &Verdict) -> Vec<&str> {
    v.blocked().map(|g| g.name).collect()
}

/// Exactly these gates block (and every gate of the contract was evaluated).
fn assert_blocked(v: &Verdict, names: &[&str]) {
    assert_eq!(blocked_names(v), names, "blocked gates of {v:#?}");
    let all: Vec<&str> = v.gates.iter().map(|g| g.name).collect();
    assert_eq!(
        all,
        [
            "order",
            "promotion",
            "verify",
            "soak",
            "backup",
            "approval",
            "drift",
            "clean"
        ],
        "gates shown for {v:#?}"
    );
}

fn reason<'v>(v: &'v Verdict, gate: &str) -> &'v str {
    v.gates
        .iter()
        .find(|g| g.name == gate)
        .map(|g| g.reason.as_str())
        .unwrap_or_else(|| panic!("no gate {gate} in {v:#?}"))
}

fn assert_reason(v: &Verdict, gate: &str, needle: &str) {
    let r = reason(v, gate);
    assert!(
        r.contains(needle),
        "{gate} reason should mention {needle:?}; it is: {r}"
    );
}

fn assert_held(v: &Verdict, gate: &str, needle: &str) {
    let g = v
        .gates
        .iter()
        .find(|g| g.name == gate)
        .unwrap_or_else(|| panic!("no gate {gate} in {v:#?}"));
    assert!(g.held, "{gate} should hold: {v:#?}");
    assert!(
        g.reason.contains(needle),
        "{gate} reason should mention {needle:?}; it is: {}",
        g.reason
    );
}

fn count(events: &[Event], kind: EventKind) -> usize {
    events.iter().filter(|e| e.kind == kind).count()
}

/// A database URL of `dialect`'s server kind at `addr` (SQLite has no
/// server: a Postgres URL stands in), for environments that do not answer.
fn server_url(dialect: Dialect, addr: &str) -> String {
    match dialect {
        Dialect::Mysql => format!("mysql://root@{addr}/x"),
        Dialect::Postgres | Dialect::Sqlite => format!("postgres://postgres@{addr}/x"),
    }
}

/// apply, apply, mark: the rename at its irreversible phase in `env`.
async fn to_phase_3(ws: &Workspace<'_>, env: &str) -> TestResult {
    let a = ws.apply(env, PLAN, false).await?;
    assert_eq!((a.phase, a.deployed), (1, true), "{a:?}");
    let a = ws.apply(env, PLAN, false).await?;
    assert_eq!((a.phase, a.deployed), (2, false), "{a:?}");
    ws.mark(env, PLAN, 2, "app-2").await?;
    Ok(())
}

// ---------------------------------------------------------------------------
// 1. A whole rename, dev → staging → prod
// ---------------------------------------------------------------------------

async fn full_rename(dbs: [TestDb; 3]) -> TestResult {
    let fx = Fixture::new(dbs, DEFAULT_SETTINGS)?;
    fx.plan(PLAN, RENAME)?;
    let mut names = Vec::new();
    for db in &fx.dbs {
        names.push(seed_users(db, 300).await?);
    }
    let ws = fx.ws();

    // Staging before dev: promotion blocks, and nothing runs or is recorded.
    let v = blocked(
        ws.apply("staging", PLAN, false).await,
        "phase 1 in staging before dev",
    );
    assert_blocked(&v, &["promotion"]);
    assert_reason(
        &v,
        "promotion",
        "dev has not completed phase 1 (it is pending there); promote in order",
    );
    assert!(!fx.dbs[1].has_column("users", "full_name").await?);
    assert!(fx.events("staging", None).await?.is_empty());

    for (i, env) in ENVS.into_iter().enumerate() {
        let db = &fx.dbs[i];

        // Phase 1: expand; no app stage, so it is deployed at once.
        let a = ws.apply(env, PLAN, false).await?;
        assert_eq!((a.phase, a.phases, a.deployed), (1, 3, true), "{a:?}");
        assert_eq!(
            a.ran,
            ["1.add_column", "1.sync_trigger", "1.backfill", "1.verify"]
        );
        assert!(db.has_column("users", "full_name").await?);
        assert_eq!(
            db.rows("users", "id", "full_name").await?,
            names[i],
            "{env}: the backfill copies every name, NULLs included"
        );

        // Phase 2: app only. apply records it migrated and asks for the deploy.
        let a = ws.apply(env, PLAN, false).await?;
        assert_eq!((a.phase, a.deployed), (2, false), "{a:?}");
        assert!(a.ran.is_empty(), "{a:?}");
        assert!(a.app.iter().any(|s| s.contains("full_name only")), "{a:?}");
        assert!(
            a.gates
                .iter()
                .any(|g| g.name == "verify" && g.held && g.reason.contains("pass now")),
            "phase 1's verification ran before phase 2: {:?}",
            a.gates
        );
        let s = fx.status(env, PLAN).await?;
        assert_eq!(
            (s.phase, s.state, s.next),
            (2, PhaseStatus::Migrated, Next::Deploy(2)),
            "{s:?}"
        );
        let w = waiting(ws.apply(env, PLAN, false).await, "a second apply");
        assert_eq!((w.phase, w.app.len()), (2, 1), "{w:?}");
        let v = w.verdict;
        // Phase 3 is judged: its soak cannot start before phase 2 is deployed.
        let expected: &[&str] = match env {
            "dev" => &["order"],
            "staging" => &["order", "soak"],
            _ => &["order", "soak", "backup", "approval"],
        };
        assert_blocked(&v, expected);
        if env != "dev" {
            assert_reason(&v, "soak", "phase 2 is not deployed here yet");
        }
        assert_reason(&v, "order", "phase 2 is migrated");
        assert_reason(
            &v,
            "order",
            &format!("phasegate mark --env {env} {PLAN} --phase 2"),
        );
        let marked = ws.mark(env, PLAN, 2, &format!("app-2.0-{env}")).await?;
        assert!(marked.may_proceed(), "{marked:#?}");

        // Phase 3: the irreversible contract, behind the environment's gates.
        match env {
            "dev" => {}
            "staging" => {
                let v = blocked(ws.apply(env, PLAN, false).await, "staging before its soak");
                assert_blocked(&v, &["soak"]);
                assert_reason(
                    &v,
                    "soak",
                    "1h left (phase 2 deployed 0s ago; staging requires 1h)",
                );
                fx.clock.advance(chrono::Duration::minutes(61));
            }
            _ => {
                let v = blocked(ws.apply(env, PLAN, false).await, "prod's contract");
                assert_blocked(&v, &["soak", "backup", "approval"]);
                assert_reason(&v, "soak", "3d left");
                assert_reason(
                    &v,
                    "backup",
                    "no backup recorded; prod requires one within 24h: `phasegate backup --env prod --location WHERE`",
                );
                assert_reason(
                    &v,
                    "approval",
                    "phasegate approve --env prod rename-users-name --phase 3",
                );

                fx.clock.advance(chrono::Duration::hours(60));
                let v = ws.gate(env, PLAN).await?;
                assert_blocked(&v, &["soak", "backup", "approval"]);
                assert_reason(&v, "soak", "12h left");

                fx.clock.advance(chrono::Duration::hours(13));
                let v = ws.gate(env, PLAN).await?;
                assert_blocked(&v, &["backup", "approval"]);
                assert_held(&v, "soak", "phase 2 has run for 3d 1h");

                let at = ws
                    .backup(env, Some("s3://backups/prod-before-contract.dump"))
                    .await?;
                assert_eq!(at, "s3://backups/prod-before-contract.dump");
                let v = ws.gate(env, PLAN).await?;
                assert_blocked(&v, &["approval"]);
                assert_held(&v, "backup", "s3://backups/prod-before-contract.dump");
                assert!(db.has_column("users", "name").await?);

                ws.approve(env, PLAN, 3, "alice").await?;
                let v = ws.gate(env, PLAN).await?;
                assert!(v.may_proceed(), "{v:#?}");
                assert_held(&v, "approval", "approved by alice");
            }
        }
        let a = ws.apply(env, PLAN, false).await?;
        assert_eq!((a.phase, a.deployed), (3, true), "{a:?}");
        assert_eq!(a.ran, ["1.contract"]);
        assert!(
            !db.has_column("users", "name").await?,
            "{env}: name is gone"
        );
        assert_eq!(db.rows("users", "id", "full_name").await?, names[i]);

        let s = fx.status(env, PLAN).await?;
        assert_eq!(
            (s.next, s.deployed, s.phase, s.state),
            (Next::Complete, 3, 3, PhaseStatus::Deployed),
            "{s:?}"
        );
        assert!(s.blocked.is_empty(), "{s:?}");
        let done = match ws.apply(env, PLAN, false).await {
            Err(RunError::NothingToDo(m)) => m,
            other => panic!("apply when complete: expected nothing to do, got {other:?}"),
        };
        assert!(done.contains("complete in"), "{done}");
    }

    // The log tells the story, once each, in order.
    let prod = fx.events("prod", Some(PLAN)).await?;
    assert!(
        prod.iter()
            .any(|e| e.kind == EventKind::BackfillProgress
                && e.step.as_deref() == Some("1.backfill")),
        "the backfill records its checkpoints: {prod:#?}"
    );
    let story: Vec<(&str, Option<&str>)> = prod
        .iter()
        .filter(|e| e.kind != EventKind::BackfillProgress)
        .map(|e| (e.kind.name(), e.step.as_deref()))
        .collect();
    // MySQL commits each DDL statement: a DDL step is recorded as started
    // before it runs and as applied after. Elsewhere it is applied in the
    // transaction that records it.
    let mysql = fx.dbs[0].dialect == Dialect::Mysql;
    let ddl = |step: &'static str| {
        let applied = ("step_applied", Some(step));
        if mysql {
            vec![("step_started", Some(step)), applied]
        } else {
            vec![applied]
        }
    };
    let mut expected = vec![("plan_started", None)];
    expected.extend(ddl("1.add_column"));
    expected.extend(ddl("1.sync_trigger"));
    expected.extend([
        ("step_applied", Some("1.backfill")),
        ("step_applied", Some("1.verify")),
        ("phase_migrated", None),
        ("phase_deployed", None),
        ("phase_migrated", None),
        ("phase_deployed", None),
        ("backup", None),
        ("approved", None),
    ]);
    expected.extend(ddl("1.contract"));
    expected.extend([("phase_migrated", None), ("phase_deployed", None)]);
    assert_eq!(story, expected, "{prod:#?}");
    let deployed2 = prod
        .iter()
        .find(|e| e.kind == EventKind::PhaseDeployed && e.phase == Some(2))
        .ok_or_else(|| fail("no phase_deployed for phase 2"))?;
    assert_eq!(deployed2.detail, "app-2.0-prod");
    let approved = prod
        .iter()
        .find(|e| e.kind == EventKind::Approved)
        .ok_or_else(|| fail("no approval"))?;
    assert_eq!(
        (approved.actor.as_str(), approved.phase),
        ("alice", Some(3))
    );
    assert!(
        prod.windows(2)
            .all(|w| w[0].at <= w[1].at && w[0].id < w[1].id),
        "events are in time order"
    );
    // The status of every environment says complete.
    for e in ws.status(None).await? {
        assert!(e.unreachable.is_none(), "{e:?}");
        assert_eq!(e.plans.len(), 1, "{e:?}");
        assert_eq!(e.plans[0].next, Next::Complete, "{e:?}");
    }
    if mysql {
        // phasegate's sessions use the server's sql_mode, not the driver's
        // (which adds PIPES_AS_CONCAT): its triggers keep the mode they
        // were created under, and must read SQL as the application does.
        let modes = fx.dbs[2]
            .texts("SELECT CAST(sql_mode AS CHAR) FROM information_schema.triggers WHERE trigger_schema = DATABASE() AND event_object_table = 'phasegate_events'")
            .await?;
        assert_eq!(
            modes.len(),
            4,
            "the append-only guards and the chain triggers: {modes:?}"
        );
        assert!(
            modes.iter().all(|m| !m.contains("PIPES_AS_CONCAT")),
            "{modes:?}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn a_rename_goes_through_dev_staging_prod_on_sqlite() {
    with_envs(Dialect::Sqlite, full_rename).await;
}

#[tokio::test]
async fn a_rename_goes_through_dev_staging_prod_on_postgres() {
    with_envs(Dialect::Postgres, full_rename).await;
}

#[tokio::test]
async fn a_rename_goes_through_dev_staging_prod_on_mysql() {
    with_envs(Dialect::Mysql, full_rename).await;
}

// ---------------------------------------------------------------------------
// 2. Each gate: blocking with its reason, then holding
// ---------------------------------------------------------------------------

async fn order_and_promotion(dbs: [TestDb; 3]) -> TestResult {
    let fx = Fixture::new(dbs, NO_SETTINGS)?;
    fx.plan(PLAN, RENAME)?;
    for db in &fx.dbs {
        seed_users(db, 20).await?;
    }
    let ws = fx.ws();

    let v = ws.gate("dev", PLAN).await?;
    assert!(v.may_proceed(), "{v:#?}");
    assert_held(&v, "order", "phase 1 needs no earlier phase");
    assert_held(&v, "promotion", "dev is the first environment");
    let v = ws.gate("staging", PLAN).await?;
    assert_blocked(&v, &["promotion"]);
    assert_reason(&v, "promotion", "dev has not completed phase 1");

    ws.apply("dev", PLAN, false).await?;
    let v = ws.gate("staging", PLAN).await?;
    assert!(v.may_proceed(), "{v:#?}");
    assert_held(&v, "promotion", "dev completed phase 1");
    ws.apply("staging", PLAN, false).await?;

    // dev: phase 2 migrated, its app not marked: order blocks phase 3.
    ws.apply("dev", PLAN, false).await?;
    let v = ws.gate("dev", PLAN).await?;
    assert_eq!((v.next, v.phase), (Next::Deploy(2), Some(3)));
    assert_blocked(&v, &["order"]);
    assert_reason(
        &v,
        "order",
        "phase 2 is migrated but its app code is not marked deployed",
    );
    // staging: dev has not completed phase 2 (migrated is not complete).
    let v = ws.gate("staging", PLAN).await?;
    assert_blocked(&v, &["promotion"]);
    assert_reason(
        &v,
        "promotion",
        "dev has not completed phase 2 (it is migrated there)",
    );
    // Marking out of order is refused.
    let m = refused(ws.mark("staging", PLAN, 3, "v3").await, "mark phase 3");
    assert!(
        m.contains("phase 3 is pending in staging; the phase to deploy and mark next is 2"),
        "{m}"
    );
    let m = invalid(ws.mark("dev", PLAN, 7, "v7").await, "mark phase 7");
    assert!(m.contains("has 3 phases; there is no phase 7"), "{m}");

    ws.mark("dev", PLAN, 2, "v2.1").await?;
    let v = ws.gate("dev", PLAN).await?;
    assert!(v.may_proceed(), "{v:#?}");
    assert_held(&v, "order", "phase 2 is deployed here (0s ago), app v2.1");
    let v = ws.gate("staging", PLAN).await?;
    assert!(v.may_proceed(), "{v:#?}");
    assert_held(&v, "promotion", "dev completed phase 2");
    Ok(())
}

#[tokio::test]
async fn order_and_promotion_gates_on_sqlite() {
    with_envs(Dialect::Sqlite, order_and_promotion).await;
}

#[tokio::test]
async fn order_and_promotion_gates_on_postgres() {
    with_envs(Dialect::Postgres, order_and_promotion).await;
}

#[tokio::test]
async fn order_and_promotion_gates_on_mysql() {
    with_envs(Dialect::Mysql, order_and_promotion).await;
}

/// The promotion order a plan started under is recorded with it: removing
/// staging from phasegate.yaml mid-plan does not let prod skip it, until the
/// new order is accepted on purpose.
async fn recorded_promotion_order(dbs: [TestDb; 3]) -> TestResult {
    let mut fx = Fixture::new(dbs, NO_SETTINGS)?;
    fx.plan(PLAN, RENAME)?;
    for env in ENVS {
        seed_users(fx.db(env), 10).await?;
    }
    fx.ws().apply("dev", PLAN, false).await?;
    let started = fx
        .events("dev", Some(PLAN))
        .await?
        .into_iter()
        .find(|e| e.kind == EventKind::PlanStarted)
        .ok_or_else(|| fail("no plan_started in dev"))?;
    let detail: serde_json::Value = serde_json::from_str(&started.detail)?;
    assert_eq!(
        detail["environments"],
        serde_json::json!(["dev", "staging", "prod"])
    );

    // staging removed from the config: prod's predecessor is now dev.
    let urls = fx.urls.clone();
    fx.config = fx.project.configure(&config_text(&[
        ("dev", &urls[0], ""),
        ("prod", &urls[2], ""),
    ]))?;
    let v = fx.ws().gate("prod", PLAN).await?;
    assert_blocked(&v, &["promotion"]);
    assert_reason(
        &v,
        "promotion",
        "staging was before prod in the promotion order when rename-users-name started (dev → staging → prod)",
    );
    assert_reason(
        &v,
        "promotion",
        "phasegate accept-change --env dev rename-users-name",
    );
    blocked(
        fx.ws().apply("prod", PLAN, false).await,
        "apply in prod without staging",
    );
    assert!(!fx.db("prod").has_column("users", "full_name").await?);
    // The same through the binary: exit 1, the reason printed.
    let out = fx.project.run(&["apply", "--env", "prod", PLAN]).await?;
    assert_exit(&out, 1, "apply in prod without staging");
    assert!(
        stderr(&out).contains("staging was before prod"),
        "{}",
        stderr(&out)
    );
    // status says so too.
    let s = fx.status("prod", PLAN).await?;
    assert!(
        s.blocked
            .iter()
            .any(|g| g.name == "promotion" && g.reason.contains("staging was before prod")),
        "{s:?}"
    );

    // Deliberate: the new order recorded where the old one was read.
    fx.ws()
        .accept_change("dev", PLAN, "staging retired")
        .await?;
    let v = fx.ws().gate("prod", PLAN).await?;
    assert!(v.may_proceed(), "{v:#?}");
    assert_held(&v, "promotion", "dev completed phase 1");
    fx.ws().apply("prod", PLAN, false).await?;
    assert!(fx.db("prod").has_column("users", "full_name").await?);
    Ok(())
}

#[tokio::test]
async fn the_promotion_order_a_plan_started_under_holds_on_sqlite() {
    with_envs(Dialect::Sqlite, recorded_promotion_order).await;
}

#[tokio::test]
async fn the_promotion_order_a_plan_started_under_holds_on_postgres() {
    with_envs(Dialect::Postgres, recorded_promotion_order).await;
}

#[tokio::test]
async fn the_promotion_order_a_plan_started_under_holds_on_mysql() {
    with_envs(Dialect::Mysql, recorded_promotion_order).await;
}

async fn verify_gate(dbs: [TestDb; 3]) -> TestResult {
    let fx = Fixture::new(dbs, NO_SETTINGS)?;
    fx.plan(PLAN, RENAME)?;
    let db = fx.db("dev");
    seed_users(db, 50).await?;
    let ws = fx.ws();
    ws.apply("dev", PLAN, false).await?;
    let v = ws.gate("dev", PLAN).await?;
    assert_held(&v, "verify", "phase 1's 1 verification queries pass now");

    // Someone drops the sync trigger, then an old release writes `name`.
    db.exec(db.pick3(
        "DROP TRIGGER users_name_full_name_sync ON users",
        "DROP TRIGGER users_name_full_name_sync_ins; DROP TRIGGER users_name_full_name_sync_upd",
        "DROP TRIGGER users_name_full_name_sync_ins; DROP TRIGGER users_name_full_name_sync_upd",
    ))
    .await?;
    db.exec("UPDATE users SET name = 'renamed by old code' WHERE id = 3")
        .await?;
    let v = ws.gate("dev", PLAN).await?;
    assert_blocked(&v, &["verify"]);
    assert_reason(&v, "verify", "1.verify returned 1, expected 0");
    let v = blocked(ws.apply("dev", PLAN, false).await, "phase 2 on bad data");
    assert_blocked(&v, &["verify"]);
    let (n, outcomes) = ws.verify("dev", PLAN, None).await?;
    assert_eq!(n, 1);
    assert_eq!(outcomes.len(), 1, "{outcomes:?}");
    assert_eq!(outcomes[0].got, Ok(1), "{outcomes:?}");
    assert!(!outcomes[0].passed());

    // A query that cannot run blocks too, with the database's error.
    db.exec("ALTER TABLE users RENAME TO people").await?;
    let v = ws.gate("dev", PLAN).await?;
    assert_blocked(&v, &["verify"]);
    assert_reason(&v, "verify", "1.verify could not run");
    assert_reason(&v, "verify", "users");
    db.exec("ALTER TABLE people RENAME TO users").await?;

    // Repaired: the gate holds and phase 2 goes ahead.
    db.exec("UPDATE users SET full_name = name WHERE id = 3")
        .await?;
    let v = ws.gate("dev", PLAN).await?;
    assert!(v.may_proceed(), "{v:#?}");
    assert_held(&v, "verify", "pass now");
    let a = ws.apply("dev", PLAN, false).await?;
    assert_eq!(a.phase, 2);
    Ok(())
}

#[tokio::test]
async fn verify_gate_on_sqlite() {
    with_envs(Dialect::Sqlite, verify_gate).await;
}

#[tokio::test]
async fn verify_gate_on_postgres() {
    with_envs(Dialect::Postgres, verify_gate).await;
}

#[tokio::test]
async fn verify_gate_on_mysql() {
    with_envs(Dialect::Mysql, verify_gate).await;
}

async fn soak_gate(dbs: [TestDb; 3]) -> TestResult {
    let fx = Fixture::new(dbs, ["soak: 2h", "", ""])?;
    fx.plan(PLAN, RENAME)?;
    seed_users(fx.db("dev"), 10).await?;
    let ws = fx.ws();
    ws.apply("dev", PLAN, false).await?;
    // Phase 2 is reversible: no soak needed.
    let v = ws.gate("dev", PLAN).await?;
    assert_held(&v, "soak", "not needed: phase 2 is reversible");
    ws.apply("dev", PLAN, false).await?;
    fx.clock.advance(chrono::Duration::hours(5));
    // The soak counts from the deploy (mark), not the migration.
    ws.mark("dev", PLAN, 2, "v2").await?;

    let v = ws.gate("dev", PLAN).await?;
    assert_blocked(&v, &["soak"]);
    assert_reason(
        &v,
        "soak",
        "2h left (phase 2 deployed 0s ago; dev requires 2h)",
    );
    fx.clock.advance(chrono::Duration::minutes(119));
    let v = blocked(ws.apply("dev", PLAN, false).await, "a minute early");
    assert_blocked(&v, &["soak"]);
    assert_reason(&v, "soak", "1m left");
    assert!(fx.db("dev").has_column("users", "name").await?);

    fx.clock.advance(chrono::Duration::minutes(1));
    let v = ws.gate("dev", PLAN).await?;
    assert!(v.may_proceed(), "{v:#?}");
    assert_held(&v, "soak", "phase 2 has run for 2h (≥ 2h)");
    let a = ws.apply("dev", PLAN, false).await?;
    assert_eq!(a.phase, 3);
    Ok(())
}

#[tokio::test]
async fn soak_gate_on_sqlite() {
    with_envs(Dialect::Sqlite, soak_gate).await;
}

#[tokio::test]
async fn soak_gate_on_postgres() {
    with_envs(Dialect::Postgres, soak_gate).await;
}

#[tokio::test]
async fn soak_gate_on_mysql() {
    with_envs(Dialect::Mysql, soak_gate).await;
}

async fn backup_gate(dbs: [TestDb; 3]) -> TestResult {
    let mut fx = Fixture::new(dbs, ["require_backup: 24h", "", ""])?;
    fx.plan(PLAN, RENAME)?;
    seed_users(fx.db("dev"), 10).await?;
    {
        let ws = fx.ws();
        to_phase_3(&ws, "dev").await?;
        let v = ws.gate("dev", PLAN).await?;
        assert_blocked(&v, &["backup"]);
        assert_reason(
            &v,
            "backup",
            "no backup recorded; dev requires one within 24h: `phasegate backup --env dev --location WHERE`",
        );
        // No command and no location: a request that can never succeed.
        match ws.backup("dev", None).await {
            Err(RunError::Invalid(m)) => assert!(m.contains("dev has no backup_command"), "{m}"),
            other => panic!("backup without a command: expected invalid, got {other:?}"),
        }

        ws.backup("dev", Some("/backups/dev-1.dump")).await?;
        let v = ws.gate("dev", PLAN).await?;
        assert!(v.may_proceed(), "{v:#?}");
        assert_held(&v, "backup", "backup taken 0s ago (/backups/dev-1.dump)");

        // Too old: blocks again.
        fx.clock.advance(chrono::Duration::hours(25));
        let v = ws.gate("dev", PLAN).await?;
        assert_blocked(&v, &["backup"]);
        assert_reason(
            &v,
            "backup",
            "the last backup is 25h old; dev requires one within 24h",
        );
        // A backup in another environment does not count here.
        ws.backup("staging", Some("/backups/staging.dump")).await?;
        assert_blocked(&ws.gate("dev", PLAN).await?, &["backup"]);
    }

    // With a backup_command: it runs (with the environment's name and URL)
    // and its last line of output is where the backup went.
    fx.reconfigure([
        "require_backup: 24h\nbackup_command: echo dumping; echo \"$PHASEGATE_ENV backup of $PHASEGATE_DATABASE_URL\"",
        "",
        "",
    ])?;
    let ws = fx.ws();
    let at = ws.backup("dev", None).await?;
    let url = &fx.config.environments[0].database_url;
    assert_eq!(at, format!("dev backup of {url}"));
    let v = ws.gate("dev", PLAN).await?;
    assert!(v.may_proceed(), "{v:#?}");
    assert_held(&v, "backup", "dev backup of");
    drop(ws);

    fx.reconfigure([
        "require_backup: 24h\nbackup_command: echo disk full >&2; exit 3",
        "",
        "",
    ])?;
    let ws = fx.ws();
    match ws.backup("dev", None).await {
        Err(RunError::Backup(m)) => assert!(m.contains("disk full"), "{m}"),
        other => panic!("a failing backup_command must fail: {other:?}"),
    }
    let backups = count(&fx.events("dev", None).await?, EventKind::Backup);
    assert_eq!(backups, 2, "a failed backup is not recorded");
    ws.apply("dev", PLAN, false).await?;
    assert!(!fx.db("dev").has_column("users", "name").await?);
    Ok(())
}

#[tokio::test]
async fn backup_gate_on_sqlite() {
    with_envs(Dialect::Sqlite, backup_gate).await;
}

#[tokio::test]
async fn backup_gate_on_postgres() {
    with_envs(Dialect::Postgres, backup_gate).await;
}

#[tokio::test]
async fn backup_gate_on_mysql() {
    with_envs(Dialect::Mysql, backup_gate).await;
}

async fn approval_gate(dbs: [TestDb; 3]) -> TestResult {
    let fx = Fixture::new(dbs, ["require_approval: true", "", ""])?;
    fx.plan(PLAN, RENAME)?;
    seed_users(fx.db("dev"), 10).await?;
    let ws = fx.ws();
    // Reversible phases need no approval.
    let v = ws.gate("dev", PLAN).await?;
    assert_held(&v, "approval", "not needed: phase 1 is reversible");
    to_phase_3(&ws, "dev").await?;

    let v = ws.gate("dev", PLAN).await?;
    assert_blocked(&v, &["approval"]);
    assert_reason(
        &v,
        "approval",
        "phase 3 is irreversible and dev requires approval: `phasegate approve --env dev rename-users-name --phase 3`",
    );
    // A reversible phase needs no approval: approving it is refused, and
    // this one stays unapproved.
    let m = invalid(ws.approve("dev", PLAN, 2, "bob").await, "phase 2");
    assert!(
        m.contains("phase 2 of rename-users-name is reversible"),
        "{m}"
    );
    let v = blocked(ws.apply("dev", PLAN, false).await, "phase 2 approved only");
    assert_blocked(&v, &["approval"]);
    let m = invalid(ws.approve("dev", PLAN, 4, "bob").await, "no phase 4");
    assert!(m.contains("has 3 phases; there is no phase 4"), "{m}");

    ws.approve("dev", PLAN, 3, "carol").await?;
    // Approving it again records nothing and says who approved it.
    match ws.approve("dev", PLAN, 3, "dave").await {
        Err(RunError::NothingToDo(m)) => {
            assert!(m.contains("already approved in dev by carol at "), "{m}")
        }
        other => panic!("approving twice: expected nothing to do, got {other:?}"),
    }
    let v = ws.gate("dev", PLAN).await?;
    assert!(v.may_proceed(), "{v:#?}");
    assert_held(&v, "approval", "approved by carol");
    ws.apply("dev", PLAN, false).await?;
    assert!(!fx.db("dev").has_column("users", "name").await?);
    Ok(())
}

#[tokio::test]
async fn approval_gate_on_sqlite() {
    with_envs(Dialect::Sqlite, approval_gate).await;
}

#[tokio::test]
async fn approval_gate_on_postgres() {
    with_envs(Dialect::Postgres, approval_gate).await;
}

#[tokio::test]
async fn approval_gate_on_mysql() {
    with_envs(Dialect::Mysql, approval_gate).await;
}

async fn drift_gate(dbs: [TestDb; 3]) -> TestResult {
    let fx = Fixture::new(dbs, NO_SETTINGS)?;
    fx.plan(PLAN, RENAME)?;
    for db in &fx.dbs {
        seed_users(db, 10).await?;
    }
    let ws = fx.ws();
    let v = ws.gate("dev", PLAN).await?;
    assert_held(&v, "drift", "the plan starts here");
    ws.apply("dev", PLAN, false).await?;
    let v = ws.gate("dev", PLAN).await?;
    assert_held(&v, "drift", "unchanged since it started here");

    // The plan file is edited after it started in dev.
    fx.plan(
        PLAN,
        &RENAME.replace(
            "description: Users get a single full_name field",
            "description: Users get one full_name field",
        ),
    )?;
    let v = ws.gate("dev", PLAN).await?;
    assert_blocked(&v, &["drift"]);
    assert_reason(
        &v,
        "drift",
        "rename-users-name changed since it started in dev",
    );
    assert_reason(
        &v,
        "drift",
        "- description: Users get a single full_name field",
    );
    assert_reason(&v, "drift", "+ description: Users get one full_name field");
    assert_reason(
        &v,
        "drift",
        "phasegate accept-change --env dev rename-users-name",
    );
    assert!(
        !reason(&v, "drift").contains("rename_column"),
        "only changed lines are shown: {}",
        reason(&v, "drift")
    );
    let v = blocked(ws.apply("dev", PLAN, false).await, "apply after an edit");
    assert_blocked(&v, &["drift"]);
    // Where the plan has not started, the edited file is simply the plan.
    let v = ws.gate("staging", PLAN).await?;
    assert!(v.may_proceed(), "{v:#?}");
    let m = refused(
        ws.accept_change("staging", PLAN, "n/a").await,
        "accept where not started",
    );
    assert!(m.contains("has not started in staging"), "{m}");

    ws.accept_change("dev", PLAN, "wording only").await?;
    let v = ws.gate("dev", PLAN).await?;
    assert!(v.may_proceed(), "{v:#?}");
    assert_held(&v, "drift", "unchanged since it started here");
    // Accepting again (a retried job) is nothing to do; nothing is recorded.
    match ws.accept_change("dev", PLAN, "again").await {
        Err(RunError::NothingToDo(m)) => assert!(m.contains("already in force in dev"), "{m}"),
        other => panic!("accept twice: expected nothing to do, got {other:?}"),
    }
    let accepted: Vec<Event> = fx
        .events("dev", Some(PLAN))
        .await?
        .into_iter()
        .filter(|e| e.kind == EventKind::ChangeAccepted)
        .collect();
    assert_eq!(accepted.len(), 1);
    assert!(accepted[0].detail.contains("wording only"));
    ws.apply("dev", PLAN, false).await?;
    Ok(())
}

#[tokio::test]
async fn drift_gate_on_sqlite() {
    with_envs(Dialect::Sqlite, drift_gate).await;
}

#[tokio::test]
async fn drift_gate_on_postgres() {
    with_envs(Dialect::Postgres, drift_gate).await;
}

#[tokio::test]
async fn drift_gate_on_mysql() {
    with_envs(Dialect::Mysql, drift_gate).await;
}

/// Three hand-written phases: a table, a step that needs a table nobody
/// created, and a non-transactional index build (concurrent on Postgres;
/// MySQL has no CONCURRENTLY, and its DROP INDEX names the table).
fn gadgets_plan(dialect: Dialect) -> String {
    let (concurrently, on_table) = match dialect {
        Dialect::Mysql => ("", " ON widgets"),
        Dialect::Postgres => ("CONCURRENTLY ", ""),
        Dialect::Sqlite => ("", ""),
    };
    format!(
        "name: gadgets
changes:
  - sql:
      phases:
        - up: CREATE TABLE widgets (id INTEGER PRIMARY KEY)
          down: DROP TABLE widgets
        - up: INSERT INTO gadgets (id) VALUES (1)
          down: DELETE FROM gadgets
        - up: CREATE INDEX {concurrently}widgets_id_idx ON widgets (id)
          down: DROP INDEX widgets_id_idx{on_table}
          transactional: false
"
    )
}

async fn has_index(db: &TestDb, name: &str) -> TestResult<bool> {
    Ok(db.index_state(name).await?.is_some())
}

async fn clean_gate(dbs: [TestDb; 3]) -> TestResult {
    let fx = Fixture::new(dbs, NO_SETTINGS)?;
    let dialect = fx.dbs[0].dialect;
    fx.plan("gadgets", &gadgets_plan(dialect))?;
    let ws = fx.ws();
    let dev = fx.db("dev");

    ws.apply("dev", "gadgets", false).await?;
    // Phase 2's step fails: the error names the step, and the failure is recorded.
    let err = match ws.apply("dev", "gadgets", false).await {
        Err(RunError::Step(e)) => e,
        other => panic!("phase 2 must fail: {other:?}"),
    };
    assert_eq!((err.step.as_str(), err.phase), ("1.sql_2", 2), "{err:?}");
    assert!(err.reason().contains("gadgets"), "{err:?}");
    let shown = RunError::Step(err.clone());
    assert!(
        shown.to_string().contains("phase 2, step 1.sql_2 failed"),
        "{shown}"
    );
    assert_eq!(shown.exit_code(), 2);
    let events = fx.events("dev", Some("gadgets")).await?;
    let failed: Vec<&Event> = events
        .iter()
        .filter(|e| e.kind == EventKind::StepFailed)
        .collect();
    assert_eq!(failed.len(), 1, "{events:#?}");
    assert_eq!(failed[0].step.as_deref(), Some("1.sql_2"));
    assert_eq!(failed[0].phase, Some(2));
    assert!(failed[0].detail.contains("gadgets"), "{:?}", failed[0]);
    assert_eq!(
        count(&events, EventKind::PhaseMigrated),
        1,
        "phase 2 is not migrated: {events:#?}"
    );
    let s = fx.status("dev", "gadgets").await?;
    assert_eq!((s.phase, s.state), (2, PhaseStatus::Pending), "{s:?}");
    // The failed phase may be retried; the gate says so.
    let v = ws.gate("dev", "gadgets").await?;
    assert!(v.may_proceed(), "{v:#?}");
    assert_held(&v, "clean", "1.sql_2 failed last time and will be retried");

    // Fixed (the missing table now exists): the retry succeeds.
    dev.exec("CREATE TABLE gadgets (id INTEGER)").await?;
    let a = ws.apply("dev", "gadgets", false).await?;
    assert_eq!((a.phase, a.ran.clone()), (2, vec!["1.sql_2".to_string()]));
    assert_eq!(dev.scalar("SELECT count(*) FROM gadgets").await?, 1);
    let v = ws.gate("dev", "gadgets").await?;
    assert_held(&v, "clean", "no failed or interrupted step");

    // A run killed in the middle of a non-transactional step: it was
    // recorded as started, never as finished.
    let mut store = fx.store("dev").await?;
    store
        .append(
            &NewEvent::plan("gadgets", EventKind::StepStarted)
                .phase(3)
                .step("1.sql_3"),
            fx.clock.now(),
            "killed-run",
        )
        .await?;
    store.close().await;
    fx.clock.advance(chrono::Duration::minutes(10));
    let v = ws.gate("dev", "gadgets").await?;
    assert_blocked(&v, &["clean"]);
    assert_reason(
        &v,
        "clean",
        "step 1.sql_3 started 10m ago and never finished",
    );
    assert_reason(
        &v,
        "clean",
        "phasegate resolve --env dev gadgets --step 1.sql_3 --as applied",
    );
    let v = blocked(
        ws.apply("dev", "gadgets", false).await,
        "apply after a kill",
    );
    assert_blocked(&v, &["clean"]);
    assert!(!has_index(dev, "widgets_id_idx").await?);
    let m = refused(
        ws.resolve("dev", "gadgets", "1.sql_1", false).await,
        "resolve a step that is fine",
    );
    assert!(m.contains("outstanding: 1.sql_3"), "{m}");

    // Checked by hand: the index is not there. Settled as not applied, the step runs.
    ws.resolve("dev", "gadgets", "1.sql_3", false).await?;
    let v = ws.gate("dev", "gadgets").await?;
    assert!(v.may_proceed(), "{v:#?}");
    let a = ws.apply("dev", "gadgets", false).await?;
    assert_eq!(a.ran, ["1.sql_3"]);
    assert!(a.skipped.is_empty());
    assert!(has_index(dev, "widgets_id_idx").await?);

    // In staging the killed step did finish: settled as applied, it is skipped.
    let staging = fx.db("staging");
    staging.exec("CREATE TABLE gadgets (id INTEGER)").await?;
    ws.apply("staging", "gadgets", false).await?;
    ws.apply("staging", "gadgets", false).await?;
    let mut store = fx.store("staging").await?;
    store
        .append(
            &NewEvent::plan("gadgets", EventKind::StepStarted)
                .phase(3)
                .step("1.sql_3"),
            fx.clock.now(),
            "killed-run",
        )
        .await?;
    store.close().await;
    staging
        .exec("CREATE INDEX widgets_id_idx ON widgets (id)")
        .await?;
    assert_blocked(&ws.gate("staging", "gadgets").await?, &["clean"]);
    ws.resolve("staging", "gadgets", "1.sql_3", true).await?;
    let a = ws.apply("staging", "gadgets", false).await?;
    assert_eq!((a.phase, a.deployed), (3, true));
    assert!(a.ran.is_empty(), "{a:?}");
    assert_eq!(a.skipped, ["1.sql_3"]);
    let s = fx.status("staging", "gadgets").await?;
    assert_eq!(s.next, Next::Complete, "{s:?}");
    Ok(())
}

#[tokio::test]
async fn clean_gate_failed_and_interrupted_steps_on_sqlite() {
    with_envs(Dialect::Sqlite, clean_gate).await;
}

#[tokio::test]
async fn clean_gate_failed_and_interrupted_steps_on_postgres() {
    with_envs(Dialect::Postgres, clean_gate).await;
}

#[tokio::test]
async fn clean_gate_failed_and_interrupted_steps_on_mysql() {
    with_envs(Dialect::Mysql, clean_gate).await;
}

// ---------------------------------------------------------------------------
// 3. Rollback
// ---------------------------------------------------------------------------

async fn rollback(dbs: [TestDb; 3]) -> TestResult {
    let fx = Fixture::new(dbs, NO_SETTINGS)?;
    fx.plan(PLAN, RENAME)?;
    let dev = fx.db("dev");
    let names = seed_users(dev, 100).await?;
    let ws = fx.ws();
    let m = refused(ws.rollback("dev", PLAN, false).await, "nothing ran");
    assert!(m.contains("nothing to roll back"), "{m}");
    let schema = dev.schema().await?;

    // A reversible phase: schema and state go back; it applies again.
    ws.apply("dev", PLAN, false).await?;
    assert_ne!(dev.schema().await?, schema);
    assert_eq!(ws.rollback("dev", PLAN, false).await?, 1);
    assert_eq!(
        dev.schema().await?,
        schema,
        "the schema is as before phase 1"
    );
    assert!(!dev.has_column("users", "full_name").await?);
    let s = fx.status("dev", PLAN).await?;
    assert_eq!(
        (s.phase, s.state, s.next, s.deployed),
        (1, PhaseStatus::Pending, Next::Apply(1), 0),
        "{s:?}"
    );
    let events = fx.events("dev", Some(PLAN)).await?;
    assert_eq!(
        events.last().map(|e| (e.kind, e.phase)),
        Some((EventKind::PhaseRolledBack, Some(1)))
    );
    let a = ws.apply("dev", PLAN, false).await?;
    assert_eq!(a.ran.len(), 4, "every step runs again: {a:?}");
    assert_eq!(dev.rows("users", "id", "full_name").await?, names);

    // A phase with an app stage, migrated but not deployed: rolls back.
    ws.apply("dev", PLAN, false).await?;
    assert_eq!(ws.rollback("dev", PLAN, false).await?, 2);
    assert_eq!(fx.status("dev", PLAN).await?.next, Next::Apply(2));
    // Deployed: refused until the app is reverted.
    ws.apply("dev", PLAN, false).await?;
    ws.mark("dev", PLAN, 2, "v2").await?;
    let m = refused(ws.rollback("dev", PLAN, false).await, "deployed app");
    assert!(
        m.contains("phase 2's app code is deployed in dev") && m.contains("--app-reverted"),
        "{m}"
    );
    assert_eq!(fx.status("dev", PLAN).await?.deployed, 2);
    assert_eq!(ws.rollback("dev", PLAN, true).await?, 2);
    assert_eq!(fx.status("dev", PLAN).await?.next, Next::Apply(2));
    ws.apply("dev", PLAN, false).await?;
    ws.mark("dev", PLAN, 2, "v2").await?;

    // Irreversible: refused, saying why and what to restore.
    ws.apply("dev", PLAN, false).await?;
    let m = refused(ws.rollback("dev", PLAN, false).await, "irreversible");
    assert!(
        m.contains("phase 3 of rename-users-name cannot be rolled back"),
        "{m}"
    );
    assert!(
        m.contains("Drop the sync trigger and column name of users"),
        "{m}"
    );
    assert!(
        m.contains("none was recorded with `phasegate backup --env dev`"),
        "{m}"
    );
    ws.backup("dev", Some("/backups/dev-before-contract.dump"))
        .await?;
    fx.clock.advance(chrono::Duration::hours(3));
    let m = refused(ws.rollback("dev", PLAN, true).await, "irreversible");
    assert!(
        m.contains("restore the backup taken 3h ago (/backups/dev-before-contract.dump)"),
        "{m}"
    );
    let s = fx.status("dev", PLAN).await?;
    assert_eq!(s.next, Next::Complete, "nothing changed: {s:?}");
    assert!(!dev.has_column("users", "name").await?);
    assert_eq!(
        count(
            &fx.events("dev", Some(PLAN)).await?,
            EventKind::PhaseRolledBack
        ),
        3
    );
    Ok(())
}

#[tokio::test]
async fn rollback_on_sqlite() {
    with_envs(Dialect::Sqlite, rollback).await;
}

#[tokio::test]
async fn rollback_on_postgres() {
    with_envs(Dialect::Postgres, rollback).await;
}

#[tokio::test]
async fn rollback_on_mysql() {
    with_envs(Dialect::Mysql, rollback).await;
}

// ---------------------------------------------------------------------------
// 4. Concurrent runs and the environment lock
// ---------------------------------------------------------------------------

/// A phase that takes a moment (so two runs overlap), records how often it
/// ran, and has an app stage; two intents more, so it has several steps.
/// MySQL cannot index a `text` column without a prefix length: the indexed
/// column is a varchar there.
fn race_plan(dialect: Dialect) -> String {
    let nickname = match dialect {
        Dialect::Mysql => "varchar(255)",
        Dialect::Postgres | Dialect::Sqlite => "text",
    };
    let slow = match dialect {
        Dialect::Mysql => "DO SLEEP(1.5);",
        Dialect::Postgres => "SELECT pg_sleep(1.5);",
        Dialect::Sqlite => {
            "CREATE TABLE burn AS WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 2000000) SELECT count(*) AS n FROM c;"
        }
    };
    format!(
        "name: race
changes:
  - sql:
      phases:
        - up: |
            CREATE TABLE runs (n INTEGER);
            INSERT INTO runs (n) VALUES (1);
            {slow}
          down: DROP TABLE runs
          app: Ship the code that reads runs
  - add_column: {{ table: users, column: nickname, type: {nickname} }}
  - add_index: {{ table: users, columns: [nickname] }}
"
    )
}

async fn concurrent_applies(dbs: [TestDb; 3]) -> TestResult {
    let fx = Fixture::new(dbs, NO_SETTINGS)?;
    let dialect = fx.dbs[0].dialect;
    fx.plan("race", &race_plan(dialect))?;
    let dev = fx.db("dev");
    seed_users(dev, 30).await?;

    // The event log exists already, so both runs read the state at once.
    fx.store("dev").await?.close().await;
    let args = ["apply", "--env", "dev", "race"];
    let config = fx.project.config_path();
    let started = Instant::now();
    let first = command(&fx.project.dir, Some(&config), &args).output();
    let second = command(&fx.project.dir, Some(&config), &args).output();
    let (first, second) = tokio::time::timeout(Duration::from_secs(120), async {
        tokio::join!(first, second)
    })
    .await
    .map_err(|_| fail("two concurrent applies did not finish within 120s"))?;
    let (first, second) = (first?, second?);
    let outs = [&first, &second];
    let mut codes: Vec<i32> = outs.iter().map(|o| code(o)).collect();
    codes.sort();
    let shown = || {
        outs.iter()
            .map(|o| format!("exit {}\n{}{}", code(o), stdout(o), stderr(o)))
            .collect::<Vec<_>>()
            .join("\n---\n")
    };
    assert_eq!(
        codes,
        [0, 3],
        "one applies, the other waits for the app deploy:\n{}",
        shown()
    );
    let winner = outs.iter().find(|o| code(o) == 0).map(|o| stdout(o));
    assert!(
        winner
            .as_deref()
            .is_some_and(|s| s.contains("phase 1 of 1 applied in dev")),
        "{}",
        shown()
    );
    let loser = outs.iter().find(|o| code(o) == 3).map(|o| stderr(o));
    assert!(
        loser.as_deref().is_some_and(
            |s| s.contains("waiting for its app deploy") && s.contains("phasegate mark")
        ),
        "the second run sees phase 1 migrated:\n{}",
        shown()
    );
    assert!(started.elapsed() < Duration::from_secs(90));

    // Everything recorded once; nothing lost.
    let events = fx.events("dev", Some("race")).await?;
    let applied: Vec<&str> = events
        .iter()
        .filter(|e| e.kind == EventKind::StepApplied)
        .filter_map(|e| e.step.as_deref())
        .collect();
    let mut sorted = applied.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        ["1.sql_1", "2.add_column", "3.create_index"],
        "each step applied exactly once: {events:#?}"
    );
    // Steps run outside a transaction are recorded as started, by the run
    // that ran them only: every DDL step on MySQL, the concurrent index
    // build on Postgres, none on SQLite.
    let mut started: Vec<&str> = events
        .iter()
        .filter(|e| e.kind == EventKind::StepStarted)
        .filter_map(|e| e.step.as_deref())
        .collect();
    started.sort();
    let expected: &[&str] = match dialect {
        Dialect::Mysql => &["1.sql_1", "2.add_column", "3.create_index"],
        Dialect::Postgres => &["3.create_index"],
        Dialect::Sqlite => &[],
    };
    assert_eq!(started, expected, "each step started once: {events:#?}");
    assert_eq!(count(&events, EventKind::PlanStarted), 1, "{events:#?}");
    assert_eq!(count(&events, EventKind::PhaseMigrated), 1, "{events:#?}");
    assert_eq!(count(&events, EventKind::StepFailed), 0, "{events:#?}");
    assert_eq!(dev.scalar("SELECT count(*) FROM runs").await?, 1);
    assert!(dev.has_column("users", "nickname").await?);
    let s = fx.status("dev", "race").await?;
    assert_eq!((s.state, s.next), (PhaseStatus::Migrated, Next::Deploy(1)));
    Ok(())
}

#[tokio::test]
async fn two_concurrent_applies_record_everything_once_on_sqlite() {
    with_envs(Dialect::Sqlite, concurrent_applies).await;
}

#[tokio::test]
async fn two_concurrent_applies_record_everything_once_on_postgres() {
    with_envs(Dialect::Postgres, concurrent_applies).await;
}

#[tokio::test]
async fn two_concurrent_applies_record_everything_once_on_mysql() {
    with_envs(Dialect::Mysql, concurrent_applies).await;
}

/// A run that finds the environment locked waits `lock_wait`, then says so.
async fn assert_lock_refused(fx: &Fixture) -> TestResult {
    let started = Instant::now();
    let out = fx.project.run(&["apply", "--env", "dev", PLAN]).await?;
    let took = started.elapsed();
    assert_exit(&out, 2, "apply while the environment is locked");
    let err = stderr(&out);
    assert!(
        err.contains("dev: another phasegate run holds this environment"),
        "{err}"
    );
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(15),
        "waited {took:?} for a 1s lock_wait"
    );
    assert!(!fx.db("dev").has_column("users", "full_name").await?);
    assert_eq!(
        count(&fx.events("dev", Some(PLAN)).await?, EventKind::StepApplied),
        0
    );
    Ok(())
}

async fn lock_wait(dbs: [TestDb; 3]) -> TestResult {
    let fx = Fixture::new(dbs, ["lock_wait: 1s", "", ""])?;
    fx.plan(PLAN, RENAME)?;
    let dev = fx.db("dev");
    seed_users(dev, 10).await?;
    // The environment's lock, held by another run (Postgres: an advisory
    // lock; MySQL: a named lock, GET_LOCK; SQLite: the side-car lock file
    // beside the database).
    let mut holder = fx.store("dev").await?;
    holder.lock(Duration::from_secs(5)).await?;
    let refused = assert_lock_refused(&fx).await;
    holder.unlock().await;
    holder.close().await;
    refused?;
    let out = fx.project.run(&["apply", "--env", "dev", PLAN]).await?;
    assert_exit(&out, 0, "apply once the lock is released");
    assert!(stdout(&out).contains("phase 1 of 3 applied in dev"));
    assert!(dev.has_column("users", "full_name").await?);
    Ok(())
}

/// Holds the SQLite database's write lock the way an application's long
/// write transaction does, while `during` runs.
async fn with_app_write_lock<T>(db: &TestDb, during: impl Future<Output = T>) -> TestResult<T> {
    let common::Pool::Sqlite(pool) = &db.pool else {
        return Err(fail("a SQLite test database without a SQLite pool"));
    };
    let mut app = pool.acquire().await?;
    sqlx::raw_sql("BEGIN IMMEDIATE").execute(&mut *app).await?;
    let out = during.await;
    sqlx::raw_sql("ROLLBACK").execute(&mut *app).await?;
    Ok(out)
}

/// SQLite: the application holds the database's write lock (a long write
/// transaction). phasegate's own lock is free, so apply starts, and gives
/// way after `lock_timeout` × (1 + `lock_retries`) with a message that says
/// so, instead of queueing or failing with a bare "database is locked".
#[tokio::test]
async fn apply_gives_way_to_an_application_holding_the_sqlite_write_lock() {
    with_envs(Dialect::Sqlite, async |dbs| {
        let fx = Fixture::new(dbs, ["lock_timeout: 200ms\nlock_retries: 1", "", ""])?;
        fx.plan(PLAN, RENAME)?;
        fx.plan("gadgets", &gadgets_plan(Dialect::Sqlite))?;
        let dev = fx.db("dev");
        seed_users(dev, 10).await?;
        let ws = fx.ws();
        fx.store("dev").await?.close().await; // the event log exists

        // A plan's first apply: nothing runs, nothing is recorded.
        let started = Instant::now();
        let result = with_app_write_lock(dev, ws.apply("dev", PLAN, false)).await?;
        let took = started.elapsed();
        let err = match result {
            Err(e) => e.to_string(),
            Ok(a) => return Err(fail(format!("apply ran under the app's write lock: {a:?}"))),
        };
        assert!(took < Duration::from_secs(10), "took {took:?}: {err}");
        assert!(
            err.contains("dev: another connection holds the database's write lock")
                && err.contains("gave way after 2 tries of 200ms and ran nothing"),
            "{err}"
        );
        assert!(!dev.has_column("users", "full_name").await?);
        assert!(fx.events("dev", Some(PLAN)).await?.is_empty());
        let a = ws.apply("dev", PLAN, false).await?;
        assert_eq!(a.phase, 1, "released, the same apply goes through");

        // A step of a plan under way: the step gives way and says which it is.
        ws.apply("dev", "gadgets", false).await?;
        dev.exec("CREATE TABLE gadgets (id INTEGER)").await?;
        let started = Instant::now();
        let result = with_app_write_lock(dev, ws.apply("dev", "gadgets", false)).await?;
        let took = started.elapsed();
        let e = match result {
            Err(RunError::Step(e)) => e,
            other => return Err(fail(format!("expected the step to give way: {other:?}"))),
        };
        assert!(took < Duration::from_secs(10), "took {took:?}: {e:?}");
        assert_eq!(e.step, "1.sql_2");
        assert!(
            e.message
                .contains("could not take its lock within 200ms, 2 times"),
            "{e:?}"
        );
        // The log could not take the failure either (the app still held the
        // lock); the step's own error is what is reported.
        assert!(
            e.message.contains("recording this failure failed too"),
            "{e:?}"
        );
        assert_eq!(dev.scalar("SELECT count(*) FROM gadgets").await?, 0);
        let a = ws.apply("dev", "gadgets", false).await?;
        assert_eq!((a.phase, a.ran.clone()), (2, vec!["1.sql_2".to_string()]));
        assert_eq!(dev.scalar("SELECT count(*) FROM gadgets").await?, 1);
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn a_held_lock_makes_apply_wait_then_fail_clearly_on_sqlite() {
    with_envs(Dialect::Sqlite, lock_wait).await;
}

#[tokio::test]
async fn a_held_lock_makes_apply_wait_then_fail_clearly_on_postgres() {
    with_envs(Dialect::Postgres, lock_wait).await;
}

#[tokio::test]
async fn a_held_lock_makes_apply_wait_then_fail_clearly_on_mysql() {
    with_envs(Dialect::Mysql, lock_wait).await;
}

// ---------------------------------------------------------------------------
// 5. status with an environment that does not answer
// ---------------------------------------------------------------------------

async fn status_unreachable(dbs: [TestDb; 3]) -> TestResult {
    let project = Project::new("status")?;
    project.write("plans/rename-users-name.yaml", RENAME)?;
    let urls = [dbs[0].url.clone(), dbs[1].url.clone(), dbs[2].url.clone()];
    for db in &dbs {
        seed_users(db, 10).await?;
    }
    // A server that accepts connections and never answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0")?;
    let silent_url = server_url(dbs[0].dialect, &silent.local_addr()?.to_string());
    // A port nothing listens on.
    let nowhere = server_url(dbs[0].dialect, "127.0.0.1:1");
    let clock = ManualClock::new(Utc::now());

    for (prod_url, why) in [
        (nowhere.as_str(), "cannot connect"),
        (silent_url.as_str(), "no answer within 1s"),
    ] {
        let config = project.configure(&config_text(&[
            ("dev", &urls[0], ""),
            ("staging", &urls[1], ""),
            ("prod", prod_url, "connect_timeout: 1s"),
        ]))?;
        let ws = Workspace::new(&config, &clock, "tester");
        if why == "cannot connect" {
            ws.apply("dev", PLAN, false).await?;
        }
        let started = Instant::now();
        let envs = ws.status(None).await?;
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "status took {:?}",
            started.elapsed()
        );
        let names: Vec<&str> = envs.iter().map(|e| e.env.as_str()).collect();
        assert_eq!(names, ENVS);
        let prod = &envs[2];
        assert!(
            prod.unreachable.as_deref().is_some_and(|u| u.contains(why)),
            "{prod:?}"
        );
        assert!(prod.plans.is_empty());
        assert!(envs[0].unreachable.is_none() && envs[1].unreachable.is_none());
        let dev = &envs[0].plans;
        assert_eq!(dev.len(), 1, "{dev:?}");
        assert_eq!(
            (dev[0].plan.as_str(), dev[0].deployed, dev[0].next),
            (PLAN, 1, Next::Apply(2))
        );
        let staging = &envs[1].plans;
        assert_eq!((staging[0].deployed, staging[0].next), (0, Next::Apply(1)));
        assert!(staging[0].blocked.is_empty(), "{staging:?}");

        // The same through the binary, as JSON.
        let started = Instant::now();
        let out = project.run(&["status", "--format", "json"]).await?;
        // The report is printed, and the exit code says it is incomplete.
        assert_exit(&out, 2, "status with prod unreachable");
        assert!(
            stderr(&out).contains("1 of 3 environments could not be read: prod"),
            "{}",
            stderr(&out)
        );
        assert!(started.elapsed() < Duration::from_secs(20));
        let v: serde_json::Value = serde_json::from_str(&stdout(&out))
            .map_err(|e| fail(format!("status --format json: {e}\n{}", stdout(&out))))?;
        assert_eq!(v["outcome"], "error", "{v}");
        let envs = v["environments"]
            .as_array()
            .ok_or_else(|| fail(format!("no list of environments: {v}")))?;
        assert_eq!(envs.len(), 3, "{v}");
        assert_eq!(envs[0]["env"], "dev");
        assert!(envs[0]["unreachable"].is_null(), "{v}");
        assert_eq!(envs[0]["plans"][0]["plan"], PLAN);
        assert_eq!(envs[0]["plans"][0]["deployed"], 1);
        assert_eq!(envs[0]["plans"][0]["phase"], 2);
        assert_eq!(envs[0]["plans"][0]["state"], "pending");
        assert_eq!(envs[0]["plans"][0]["next"]["action"], "apply");
        assert_eq!(envs[2]["env"], "prod");
        assert!(
            envs[2]["unreachable"]
                .as_str()
                .is_some_and(|u| u.contains(why)),
            "{v}"
        );
        let text = project.run(&["status"]).await?;
        assert_exit(&text, 2, "status as text");
        assert!(
            stdout(&text).contains("prod\n  unreachable: "),
            "{}",
            stdout(&text)
        );
        assert!(stdout(&text).contains(PLAN), "{}", stdout(&text));
    }

    // The environment before prod unreachable: promotion cannot be judged.
    let config = project.configure(&config_text(&[
        ("dev", &urls[0], ""),
        ("staging", &nowhere, "connect_timeout: 1s"),
        ("prod", &urls[2], ""),
    ]))?;
    let ws = Workspace::new(&config, &clock, "tester");
    let v = ws.gate("prod", PLAN).await?;
    assert_blocked(&v, &["promotion"]);
    assert_reason(&v, "promotion", "cannot read staging");
    drop(silent);
    Ok(())
}

#[tokio::test]
async fn status_shows_an_unreachable_environment_beside_the_others_on_sqlite() {
    with_envs(Dialect::Sqlite, status_unreachable).await;
}

#[tokio::test]
async fn status_shows_an_unreachable_environment_beside_the_others_on_postgres() {
    with_envs(Dialect::Postgres, status_unreachable).await;
}

#[tokio::test]
async fn status_shows_an_unreachable_environment_beside_the_others_on_mysql() {
    with_envs(Dialect::Mysql, status_unreachable).await;
}

// ---------------------------------------------------------------------------
// 6. The command line: exit codes
// ---------------------------------------------------------------------------

async fn cli_exit_codes(dbs: [TestDb; 3]) -> TestResult {
    let fx = Fixture::new(dbs, NO_SETTINGS)?;
    fx.plan(PLAN, RENAME)?;
    for db in &fx.dbs {
        seed_users(db, 10).await?;
    }
    let p = &fx.project;

    let out = p.run(&["gate", "--env", "dev", PLAN]).await?;
    assert_exit(&out, 0, "gate that may proceed");
    assert!(stdout(&out).contains("may proceed"), "{}", stdout(&out));
    let out = p
        .run(&["gate", "--env", "dev", PLAN, "--format", "json"])
        .await?;
    assert_exit(&out, 0, "gate --format json");
    let v: serde_json::Value = serde_json::from_str(&stdout(&out))?;
    assert_eq!(v["gates"].as_array().map(Vec::len), Some(8), "{v}");

    let out = p.run(&["gate", "--env", "staging", PLAN]).await?;
    assert_exit(&out, 1, "gate that blocks");
    let err = stderr(&out);
    assert!(
        err.contains("BLOCKED promotion") && err.contains("dev has not completed phase 1"),
        "{err}"
    );
    assert!(err.contains("1 gate blocked"), "{err}");

    let out = p.run(&["gate", "--env", "stagin", PLAN]).await?;
    assert_exit(&out, 2, "gate with an unknown environment");
    let err = stderr(&out);
    assert!(
        err.contains("unknown environment `stagin`") && err.contains("did you mean `staging`?"),
        "{err}"
    );
    let out = p.run(&["gate", "--env", "dev", "no-such-plan"]).await?;
    assert_exit(&out, 2, "gate with an unknown plan");

    // The workflow, with its exit codes: 0 done or nothing to do, 1 blocked
    // or refused, 3 waiting for an app deploy.
    assert_exit(
        &p.run(&["apply", "--env", "dev", PLAN]).await?,
        0,
        "phase 1",
    );
    let out = p.run(&["apply", "--env", "dev", PLAN]).await?;
    assert_exit(&out, 0, "phase 2");
    assert!(
        stdout(&out).contains("then: phasegate mark --env dev rename-users-name --phase 2"),
        "{}",
        stdout(&out)
    );
    let out = p.run(&["apply", "--env", "dev", PLAN]).await?;
    assert_exit(&out, 3, "apply while phase 2 waits for its deploy");
    assert!(
        stderr(&out).contains("then: phasegate mark --env dev rename-users-name --phase 2"),
        "{}",
        stderr(&out)
    );
    let out = p.run(&["gate", "--env", "dev", PLAN]).await?;
    assert_exit(&out, 3, "gate while phase 2 waits for its deploy");
    assert!(stderr(&out).contains("BLOCKED order"), "{}", stderr(&out));
    assert_exit(
        &p.run(&[
            "mark",
            "--env",
            "dev",
            PLAN,
            "--phase",
            "2",
            "--app-version",
            "v2",
        ])
        .await?,
        0,
        "mark",
    );
    let out = p.run(&["rollback", "--env", "dev", PLAN]).await?;
    assert_exit(&out, 1, "rollback of a deployed app");
    assert!(stderr(&out).contains("--app-reverted"), "{}", stderr(&out));
    assert_exit(
        &p.run(&["apply", "--env", "dev", PLAN]).await?,
        0,
        "phase 3",
    );
    let out = p.run(&["rollback", "--env", "dev", PLAN]).await?;
    assert_exit(&out, 1, "rollback of an irreversible phase");
    assert!(
        stderr(&out).contains("cannot be rolled back"),
        "{}",
        stderr(&out)
    );
    let out = p.run(&["apply", "--env", "dev", PLAN]).await?;
    assert_exit(&out, 0, "apply when complete");
    assert!(
        stdout(&out).contains("is complete in dev: every phase is deployed; nothing to do"),
        "{}",
        stdout(&out)
    );
    let out = p.run(&["gate", "--env", "dev", PLAN]).await?;
    assert_exit(&out, 0, "gate when complete");
    assert!(
        stdout(&out).contains("is complete in dev"),
        "{}",
        stdout(&out)
    );

    let out = p
        .run(&["history", "--env", "dev", PLAN, "--format", "json"])
        .await?;
    assert_exit(&out, 0, "history");
    let h: serde_json::Value = serde_json::from_str(&stdout(&out))?;
    let events = h["events"]
        .as_array()
        .ok_or_else(|| fail("history has no list of events"))?;
    assert_eq!(
        events.first().map(|e| &e["kind"]),
        Some(&"plan_started".into())
    );
    assert!(events.iter().all(|e| e["actor"] == "ci-runner"), "{h}");
    Ok(())
}

#[tokio::test]
async fn cli_exit_codes_on_sqlite() {
    with_envs(Dialect::Sqlite, cli_exit_codes).await;
}

#[tokio::test]
async fn cli_exit_codes_on_postgres() {
    with_envs(Dialect::Postgres, cli_exit_codes).await;
}

#[tokio::test]
async fn cli_exit_codes_on_mysql() {
    with_envs(Dialect::Mysql, cli_exit_codes).await;
}

#[tokio::test]
async fn an_unset_variable_in_the_config_is_exit_2_naming_it() -> TestResult {
    let p = Project::new("unset")?;
    p.write(
        "phasegate.yaml",
        "environments:\n  - name: dev\n    database_url: sqlite://dev.db\n  - name: prod\n    database_url: ${PHASEGATE_TEST_SURELY_UNSET_URL}\n",
    )?;
    p.write("plans/rename-users-name.yaml", RENAME)?;
    for args in [
        &["status"][..],
        // A command on prod needs prod's variable (one on dev does not:
        // tests/env_vars.rs).
        &["gate", "--env", "prod", PLAN][..],
        &["apply", "--env", "prod", PLAN][..],
    ] {
        let mut c = command(&p.dir, Some(&p.config_path()), args);
        c.env_remove("PHASEGATE_TEST_SURELY_UNSET_URL");
        let out = c.output().await?;
        assert_exit(&out, 2, &format!("{args:?} with an unset variable"));
        // status reports prod as an entry with its error, on stdout, and
        // names it in its one-line summary on stderr.
        let err = if args[0] == "status" {
            assert!(
                stderr(&out).contains("could not be read: dev, prod"),
                "{}",
                stderr(&out)
            );
            stdout(&out)
        } else {
            stderr(&out)
        };
        assert!(
            err.contains("`PHASEGATE_TEST_SURELY_UNSET_URL`") && err.contains("not set"),
            "{err}"
        );
        assert!(err.contains(":5:"), "the line is shown: {err}");
    }
    assert!(!p.dir.join("dev.db").exists(), "nothing ran");
    // Set, it works (against a dev database that has the table the plan renames).
    let dev =
        sqlx::SqlitePool::connect(&format!("sqlite://{}/dev.db?mode=rwc", p.dir.display())).await?;
    sqlx::raw_sql("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)")
        .execute(&dev)
        .await?;
    dev.close().await;
    let mut c = command(
        &p.dir,
        Some(&p.config_path()),
        &["gate", "--env", "dev", PLAN],
    );
    c.env(
        "PHASEGATE_TEST_SURELY_UNSET_URL",
        format!("sqlite://{}/prod.db", p.dir.display()),
    );
    let out = c.output().await?;
    assert_exit(&out, 0, "gate with the variable set");
    Ok(())
}

#[tokio::test]
async fn init_then_apply_works_with_no_database_server() -> TestResult {
    let p = Project::new("init")?;
    std::fs::remove_dir_all(p.dir.join("plans"))?;
    let out = run_binary(&p.dir, None, &["init"]).await?;
    assert_exit(&out, 0, "init");
    assert!(p.dir.join("phasegate.yaml").is_file());
    assert!(p.dir.join("plans/example-rename.yaml").is_file());
    let out = run_binary(&p.dir, None, &["apply", "--env", "dev", "example-rename"]).await?;
    assert_exit(&out, 0, "apply after init");
    assert!(
        stdout(&out).contains("example-rename: phase 1 of 3 applied in dev"),
        "{}",
        stdout(&out)
    );
    assert!(p.dir.join(".phasegate/dev.db").is_file());
    let out = run_binary(&p.dir, None, &["status"]).await?;
    assert_exit(&out, 0, "status after init");
    assert!(stdout(&out).contains("example-rename"), "{}", stdout(&out));
    let out = run_binary(
        &p.dir,
        None,
        &["gate", "--env", "staging", "example-rename"],
    )
    .await?;
    assert_exit(&out, 0, "staging may follow dev");
    let out = run_binary(&p.dir, None, &["apply", "--env", "prod", "example-rename"]).await?;
    assert_exit(&out, 1, "prod may not skip staging");
    // A second init keeps what is there.
    let out = run_binary(&p.dir, None, &["init"]).await?;
    assert_exit(&out, 0, "init again");
    assert!(stdout(&out).contains("kept"), "{}", stdout(&out));
    Ok(())
}

// ---------------------------------------------------------------------------
// 7. phase_reached, for services
// ---------------------------------------------------------------------------

async fn reached(dbs: [TestDb; 3]) -> TestResult {
    let fx = Fixture::new(dbs, NO_SETTINGS)?;
    fx.plan(PLAN, RENAME)?;
    seed_users(fx.db("dev"), 10).await?;
    let url = &fx.urls[0];
    let ws = fx.ws();
    assert!(
        !phase_reached(url, PLAN, 1).await?,
        "no event log yet: not reached"
    );
    ws.gate("dev", PLAN).await?; // creates the (empty) log
    assert!(!phase_reached(url, PLAN, 1).await?);

    ws.apply("dev", PLAN, false).await?;
    assert!(phase_reached(url, PLAN, 1).await?);
    assert!(!phase_reached(url, PLAN, 2).await?);
    assert!(!phase_reached(url, "another-plan", 1).await?);
    assert!(!phase_reached(&fx.urls[1], PLAN, 1).await?, "only in dev");

    ws.apply("dev", PLAN, false).await?; // phase 2 migrated, not yet deployed
    assert!(phase_reached(url, PLAN, 2).await?);
    assert!(!phase_reached(url, PLAN, 3).await?);
    ws.rollback("dev", PLAN, false).await?;
    assert!(!phase_reached(url, PLAN, 2).await?, "rolled back");
    assert!(phase_reached(url, PLAN, 1).await?);

    assert!(
        phase_reached(&server_url(fx.dbs[0].dialect, "127.0.0.1:1"), PLAN, 1)
            .await
            .is_err(),
        "an unreachable database is an error, not `false`"
    );
    Ok(())
}

#[tokio::test]
async fn phase_reached_on_sqlite() {
    with_envs(Dialect::Sqlite, reached).await;
}

#[tokio::test]
async fn phase_reached_on_postgres() {
    with_envs(Dialect::Postgres, reached).await;
}

#[tokio::test]
async fn phase_reached_on_mysql() {
    with_envs(Dialect::Mysql, reached).await;
}
