//! `phasegate plan --format markdown`, the runbook, through the binary: it
//! follows phasegate.yaml when there is one (the environments in their
//! promotion order, the gates each one checks per deploy, when to run
//! `phasegate mark` and the exact command), says so in one line when there
//! is none, and its SQL blocks are the script `--format sql` prints.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

/// A scratch project with the shipped plans.
struct Project(PathBuf);

impl Project {
    fn new() -> Project {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "phasegate-runbook-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::create_dir_all(dir.join("plans")).expect("create scratch project");
        let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("plans");
        for entry in std::fs::read_dir(shipped).expect("plans/") {
            let path = entry.expect("entry").path();
            let name = path.file_name().expect("file name");
            std::fs::copy(&path, dir.join("plans").join(name)).expect("copy plan");
        }
        Project(dir)
    }

    fn write(&self, path: &str, text: &str) {
        std::fs::write(self.0.join(path), text).expect("write file");
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_phasegate"))
            .args(args)
            .current_dir(&self.0)
            .env_remove("LIVE_DATABASE_URL")
            .output()
            .expect("run phasegate")
    }

    /// The runbook of `plan`, which must render.
    fn runbook(&self, plan: &str, extra: &[&str]) -> String {
        let mut args = vec!["plan", plan, "--format", "markdown"];
        args.extend(extra);
        let o = self.run(&args);
        assert!(
            o.status.success(),
            "{plan}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }
}

impl Drop for Project {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Two environments, neither named dev, staging or prod; the second's
/// database URL is a variable nobody set.
const CONFIG: &str = "environments:
  - name: qa
    database_url: sqlite://qa.db
  - name: live
    database_url: ${LIVE_DATABASE_URL}
    soak: 72h
    require_backup: 24h
    require_approval: true
    lock_timeout: 5s
";

/// The section of deploy `n` (up to the next one).
fn deploy(md: &str, n: usize) -> &str {
    let start = md
        .find(&format!("## Deploy {n} of"))
        .unwrap_or_else(|| panic!("no deploy {n} in\n{md}"));
    let rest = &md[start..];
    let end = rest[3..].find("\n## ").map_or(rest.len(), |i| i + 3);
    &rest[..end]
}

#[test]
fn without_a_config_the_runbook_says_so_and_names_no_environment() {
    let p = Project::new();
    let md = p.runbook("rename-users-name", &[]);
    let no_config: Vec<_> = md
        .lines()
        .filter(|l| l.contains("No phasegate.yaml was read"))
        .collect();
    assert_eq!(no_config.len(), 1, "{md}");
    for name in ["dev", "staging", "prod", "` → `"] {
        assert!(
            !md.contains(name),
            "{name:?} in a runbook without config:\n{md}"
        );
    }
    // Deploy 2 ships the app switch: mark it, with the exact command; the
    // other deploys have no app stage and nothing to mark.
    assert!(
        deploy(&md, 2).contains(
            "`phasegate mark --env ENV rename-users-name --phase 2 --app-version VERSION`"
        ),
        "{md}"
    );
    for n in [1, 3] {
        assert!(!deploy(&md, n).contains("phasegate mark --env"), "{md}");
        assert!(
            deploy(&md, n).contains("there is nothing to `mark`"),
            "{md}"
        );
    }
    assert!(
        deploy(&md, 1).contains("(none for the first)"),
        "the promotion gate names no previous environment: {md}"
    );
}

#[test]
fn the_runbook_follows_the_configured_environments_in_order() {
    let p = Project::new();
    p.write("phasegate.yaml", CONFIG);
    // LIVE_DATABASE_URL is unset: the runbook needs names and gates, not databases.
    let md = p.runbook("rename-users-name", &[]);
    assert!(md.contains("`qa` → `live`"), "{md}");
    assert!(!md.contains("No phasegate.yaml"), "{md}");
    for name in ["dev", "staging", "prod"] {
        assert!(!md.contains(name), "{name:?} is not configured:\n{md}");
    }
    // The first environment is promoted from nothing; live from qa.
    assert!(md.contains("| `qa` | — (first) |"), "{md}");
    assert!(
        md.contains("| `live` | `qa` | 3d | within 24h | required | 5s |"),
        "{md}"
    );
    let first = deploy(&md, 1);
    assert!(
        first.contains("**qa**: first environment: no promotion gate"),
        "{first}"
    );
    assert!(
        first.contains("**live**: promotion: `qa` has completed deploy 1"),
        "{first}"
    );
    // Reversible deploys are not held by soak, backup or approval.
    assert!(
        !first.contains("soak:") && !first.contains("approve"),
        "{first}"
    );
    // The irreversible contract: each environment's soak, backup window, approval.
    let last = deploy(&md, 3);
    assert!(last.contains("⚠ irreversible"), "{last}");
    assert!(
        last.contains("**qa**: first environment: no promotion gate; no soak; no backup required; no approval required"),
        "{last}"
    );
    for gate in [
        "**live**: promotion: `qa` has completed deploy 3",
        "soak: deploy 2 has run here for 3d",
        "backup: one recorded within 24h (`phasegate backup --env live`)",
        "approval: `phasegate approve --env live rename-users-name --phase 3`",
        "deploy 2 is complete in this environment: its app code runs on every instance and is recorded",
    ] {
        assert!(last.contains(gate), "{gate:?} missing from\n{last}");
    }
    // Mark after deploy 2's app change, in each environment, exactly.
    let second = deploy(&md, 2);
    for env in ["qa", "live"] {
        let mark = format!(
            "`phasegate mark --env {env} rename-users-name --phase 2 --app-version VERSION`"
        );
        assert!(second.contains(&mark), "{mark} missing from\n{second}");
    }
    assert!(!deploy(&md, 1).contains("phasegate mark --env"), "{md}");
}

#[test]
fn a_config_elsewhere_is_read_with_config_and_a_broken_one_is_an_error() {
    let p = Project::new();
    std::fs::create_dir_all(p.0.join("ops/plans")).expect("mkdir");
    p.write("ops/pg.yaml", CONFIG);
    // The config's folder is the project root: its plans are beside it.
    std::fs::copy(
        p.0.join("plans/drop-users-legacy-flag.yaml"),
        p.0.join("ops/plans/drop-users-legacy-flag.yaml"),
    )
    .expect("copy plan");
    let md = p.runbook("drop-users-legacy-flag", &["--config", "ops/pg.yaml"]);
    assert!(md.contains("`qa` → `live`"), "{md}");

    p.write(
        "phasegate.yaml",
        "environments:\n  - name: qa\n    database_url: sqlite://qa.db\n    soak: 3 fortnights\n",
    );
    let o = p.run(&["plan", "drop-users-legacy-flag", "--format", "markdown"]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("phasegate.yaml:4:") && err.contains("qa.soak"),
        "{err}"
    );
    assert!(o.stdout.is_empty());
    // Formats that need no environments do not read it.
    let o = p.run(&["plan", "drop-users-legacy-flag", "--format", "sql"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn the_runbook_sql_is_the_script_that_runs() {
    let p = Project::new();
    let md = p.runbook("retire-audit-log", &[]);
    // The hand-written statement without its `;` is terminated, inside the
    // transaction with apply's lock_timeout; the concurrent index runs
    // outside one, with its own.
    assert!(
        md.contains("BEGIN;\nSET LOCAL lock_timeout = '2000ms';\nCREATE TABLE audit_events (id bigint PRIMARY KEY, payload jsonb NOT NULL);\nCOMMIT;"),
        "{md}"
    );
    assert!(
        md.contains("SET lock_timeout = '2000ms';\nCREATE INDEX CONCURRENTLY IF NOT EXISTS audit_events_payload_idx ON audit_events USING gin (payload);\nRESET lock_timeout;"),
        "{md}"
    );
    // The rollback is terminated too.
    assert!(md.contains("DROP TABLE audit_events;"), "{md}");
}

#[test]
fn plan_env_uses_that_environments_bounds() {
    let p = Project::new();
    p.write(
        "phasegate.yaml",
        "environments:\n  - name: qa\n    database_url: sqlite://qa.db\n    lock_timeout: 5s\n    statement_timeout: 1m\n",
    );
    let made = Command::new("sqlite3")
        .arg(p.0.join("qa.db"))
        .arg("CREATE TABLE users (id integer PRIMARY KEY, name text);")
        .status()
        .expect("run sqlite3");
    assert!(made.success());
    let md = p.runbook("rename-users-name", &["--env", "qa"]);
    assert!(md.contains("PRAGMA busy_timeout = 5000;"), "{md}");
    assert!(md.contains("environment qa's"), "{md}");
    let o = p.run(&[
        "plan",
        "rename-users-name",
        "--env",
        "qa",
        "--format",
        "sql",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let sql = String::from_utf8_lossy(&o.stdout);
    assert!(
        sql.contains("environment qa's): lock_timeout 5000ms, statement_timeout 60000ms."),
        "{sql}"
    );
    // Without --env: phasegate's defaults, and the script says so.
    let o = p.run(&[
        "plan",
        "rename-users-name",
        "--dialect",
        "sqlite",
        "--format",
        "sql",
    ]);
    let sql = String::from_utf8_lossy(&o.stdout);
    assert!(sql.contains("PRAGMA busy_timeout = 2000;"), "{sql}");
    assert!(sql.contains("phasegate's defaults"), "{sql}");
}
