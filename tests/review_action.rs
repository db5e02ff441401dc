//! The pull-request review (ci/phasegate-review.sh, the script of
//! .github/actions/phasegate-review), run offline against a fixture git
//! repository: a `main` branch and a pull-request branch that adds a plan
//! and a migration, changes one and deletes another. Table sizes come from
//! real Postgres; the GitHub REST API is a small local HTTP server
//! (python3's http.server, below) that records each call.
//!
//! - The comment (PHASEGATE_REVIEW_OUTPUT) holds the marker, each changed
//!   plan's gates per environment, its tables' sizes and backfill estimate,
//!   its runbook, and the lint section; unchanged and deleted files are not
//!   in it.
//! - Without `phasegate lint` the comment says so; with one (a shim of the
//!   documented `--format github` contract, until `lint` is merged), its
//!   annotations are in the comment.
//! - Against the fake API, the first run creates the comment, the second
//!   updates the same one; the other comments on the pull request are left
//!   alone.
//!
//! Needs git, jq, curl and python3 (on CI's machine): with
//! PHASEGATE_REQUIRE_DATABASES=1 a missing one fails the test, else it is
//! skipped loudly.

mod common;
mod review_support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::{REQUIRE_ENV, TestDb, TestResult, fail, loud, with_postgres};
use review_support::FakeApi;

const BIN: &str = env!("CARGO_BIN_EXE_phasegate");

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("ci/phasegate-review.sh")
}

/// Whether the tools the script needs are here; `false` (after a loud
/// skip line) when one is missing locally, a panic under CI.
fn tools_present() -> bool {
    let missing: Vec<&str> = ["git", "jq", "curl", "python3", "bash"]
        .into_iter()
        .filter(|t| {
            Command::new(t)
                .arg("--version")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .map_or(true, |s| !s.success())
        })
        .collect();
    if missing.is_empty() {
        return true;
    }
    if std::env::var(REQUIRE_ENV).is_ok_and(|v| v == "1") {
        panic!("the review script needs {missing:?}, missing here, and {REQUIRE_ENV}=1");
    }
    loud(format_args!(
        "SKIPPED: review_action: {missing:?} not installed ({REQUIRE_ENV}=1 makes this a failure)"
    ));
    false
}

/// A fresh folder under the system's temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let p = std::env::temp_dir().join(format!(
            "phasegate-review-{tag}-{}-{nanos}",
            std::process::id()
        ));
        std::fs::create_dir_all(&p).expect("temp dir");
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn git(repo: &Path, args: &[&str]) {
    let out = Command::new("git")
        .args(["-c", "user.name=Test", "-c", "user.email=test@example.com"])
        .args(args)
        .current_dir(repo)
        .output()
        .expect("git runs");
    assert!(out.status.success(), "git {args:?}: {out:?}");
}

fn write(repo: &Path, path: &str, text: &str) {
    let p = repo.join(path);
    std::fs::create_dir_all(p.parent().expect("a parent")).expect("mkdir");
    std::fs::write(p, text).expect("write");
}

const CONFIG: &str = "environments:
  - name: staging
    database_url: sqlite://.phasegate/staging.db
  - name: prod
    database_url: sqlite://.phasegate/prod.db
    soak: 1h
    require_approval: true
";

const RENAME: &str = "name: rename-users-name
description: Users get a single full_name field
changes:
  - rename_column: { table: users, from: name, to: full_name }
";

/// `main`: a config, two plans, two migrations. `pr` (checked out): adds a
/// plan and a migration, edits a plan, deletes a migration.
fn fixture(repo: &Path) {
    git(repo, &["init", "-q", "-b", "main"]);
    write(repo, "phasegate.yaml", CONFIG);
    write(
        repo,
        "plans/untouched.yaml",
        "changes:\n  - drop_table: { table: audit_log }\n",
    );
    write(
        repo,
        "plans/index-orders.yaml",
        "changes:\n  - add_index: { table: orders, columns: [customer_id] }\n",
    );
    write(
        repo,
        "db/migrations/001_users.sql",
        "CREATE TABLE users (id bigint PRIMARY KEY, name text);\n",
    );
    write(
        repo,
        "db/migrations/002_old.sql",
        "CREATE TABLE old (id int);\n",
    );
    git(repo, &["add", "-A"]);
    git(repo, &["commit", "-qm", "main"]);
    git(repo, &["checkout", "-qb", "pr"]);
    write(repo, "plans/rename-users-name.yaml", RENAME);
    write(
        repo,
        "plans/index-orders.yaml",
        "changes:\n  - add_index: { table: orders, columns: [customer_id], unique: true }\n",
    );
    write(
        repo,
        "plans/broken.yaml",
        "changes:\n  - rename_colum: { table: users, from: a, to: b }\n",
    );
    write(
        repo,
        "db/migrations/003_rename.sql",
        "ALTER TABLE users RENAME COLUMN name TO full_name;\n",
    );
    std::fs::remove_file(repo.join("db/migrations/002_old.sql")).expect("rm");
    git(repo, &["add", "-A"]);
    git(repo, &["commit", "-qm", "pr"]);
}

/// Runs the script in `repo` with `env` and `args` after the common ones.
fn review(repo: &Path, phasegate: &Path, env: &[(&str, &str)], args: &[&str]) -> Output {
    let mut cmd = Command::new("bash");
    cmd.arg(script())
        .args(["--base", "main", "--migrations", "db/migrations/*.sql"])
        .args(args)
        .current_dir(repo)
        .env("PHASEGATE", phasegate)
        .env_remove("PHASEGATE_REVIEW_OUTPUT")
        .env_remove("PHASEGATE_REVIEW_DATABASE_URL")
        .env_remove("GITHUB_BASE_REF")
        .env_remove("GITHUB_EVENT_PATH");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("bash runs")
}

/// 20,000 users, analyzed, so the catalog's estimate is exact enough.
async fn users_table(db: &TestDb) -> TestResult {
    db.exec("CREATE TABLE users (id bigint PRIMARY KEY, name text)")
        .await?;
    db.exec("INSERT INTO users SELECT g, 'user ' || g FROM generate_series(1, 20000) g")
        .await?;
    db.exec("ANALYZE users").await?;
    Ok(())
}

/// The comment the script writes for `repo`, through PHASEGATE_REVIEW_OUTPUT.
fn comment(repo: &Path, phasegate: &Path, db: &TestDb) -> TestResult<String> {
    let out_file = repo.join("../comment.md");
    let out = review(
        repo,
        phasegate,
        &[("PHASEGATE_REVIEW_OUTPUT", out_file.to_str().ok_or("path")?)],
        &["--database-url", &db.url, "--rows-per-second", "1000"],
    );
    if !out.status.success() {
        return Err(fail(format!("the script failed: {out:?}")));
    }
    Ok(std::fs::read_to_string(&out_file)?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_comment_has_the_runbook_gates_sizes_estimate_and_lint() {
    if !tools_present() {
        return;
    }
    with_postgres(|db| async move {
        users_table(&db).await?;
        let dir = TempDir::new("body");
        let repo = dir.0.join("repo");
        std::fs::create_dir_all(&repo)?;
        fixture(&repo);
        let body = comment(&repo, Path::new(BIN), &db)?;

        assert!(body.starts_with("<!-- phasegate-review -->\n"), "{body}");
        assert!(body.contains("3 plan file(s), 1 SQL migration(s)"), "{body}");
        // A plan phasegate refuses: the error, where it is.
        assert!(body.contains("### Plan `plans/broken.yaml`\n\n**phasegate cannot plan it:**"), "{body}");
        assert!(
            body.contains("unknown intent kind `rename_colum`, did you mean `rename_column`?")
                && body.contains("--> plans/broken.yaml:2:5"),
            "{body}"
        );
        // Changed plans only; the deleted migration and the untouched plan are not in it.
        assert!(body.contains("### Plan `plans/rename-users-name.yaml`"), "{body}");
        assert!(body.contains("### Plan `plans/index-orders.yaml`"), "{body}");
        assert!(!body.contains("untouched"), "{body}");
        assert!(!body.contains("002_old.sql"), "{body}");
        // The gates each environment checks, from phasegate.yaml.
        assert!(body.contains("#### Gates each environment checks"), "{body}");
        assert!(body.contains("| `prod` | `staging` | 1h |"), "{body}");
        assert!(
            body.contains("- **prod**: promotion: `staging` has completed deploy 3; soak: deploy 2 has run here for 1h"),
            "{body}"
        );
        assert!(
            body.contains("approval: `phasegate approve --env prod rename-users-name --phase 3`"),
            "{body}"
        );
        // Sizes from Postgres' catalog, and the backfill at 1,000 rows/s.
        assert!(body.contains("| `users` | ~20,000 |"), "{body}");
        assert!(body.contains(" MiB |"), "{body}");
        assert!(
            body.contains("| 1 | `1.backfill` | `users` | 20,000 | 20s |"),
            "{body}"
        );
        assert!(body.contains("| `orders` | not found | — |"), "{body}");
        // The runbook, folded.
        assert!(body.contains("<details><summary>Runbook"), "{body}");
        assert!(body.contains("# Runbook: rename-users-name"), "{body}");
        assert!(body.contains("## Deploy 3 of 3"), "{body}");
        // This phasegate's own `lint` ran on the changed migration.
        assert!(body.contains("### Migrations: `phasegate lint`"), "{body}");
        assert!(
            body.contains("1 finding(s) (exit 1) in `db/migrations/003_rename.sql`")
                && body.contains("`db/migrations/003_rename.sql:1:1` phasegate rename-column"),
            "{body}"
        );

        // Without a database URL: no sizes, said so.
        let out = review(&repo, Path::new(BIN), &[], &["--dry-run"]);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{out:?}");
        assert!(text.contains("No database URL given"), "{text}");
        assert!(!text.contains("| `users` |"), "{text}");
        Ok(())
    })
    .await;
}

/// A comment GitHub would refuse for its length leaves the runbooks out.
#[test]
fn a_comment_too_long_for_github_leaves_the_runbooks_out() {
    if !tools_present() {
        return;
    }
    let dir = TempDir::new("long");
    let repo = dir.0.join("repo");
    std::fs::create_dir_all(&repo).expect("mkdir");
    git(&repo, &["init", "-q", "-b", "main"]);
    write(&repo, "README", "x\n");
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "-qm", "main"]);
    git(&repo, &["checkout", "-qb", "pr"]);
    let changes: String = (0..150)
        .map(|i| format!("  - add_index: {{ table: t{i}, columns: [c] }}\n"))
        .collect();
    write(&repo, "plans/many.yaml", &format!("changes:\n{changes}"));
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "-qm", "many"]);
    let runbook = Command::new(BIN)
        .args(["plan", "--format", "markdown", "plans/many.yaml"])
        .current_dir(&repo)
        .output()
        .expect("phasegate runs");
    assert!(
        runbook.stdout.len() > 65_536,
        "the runbook is short: {}",
        runbook.stdout.len()
    );
    let out = review(&repo, Path::new(BIN), &[], &["--dry-run"]);
    assert!(out.status.success(), "{out:?}");
    let body = String::from_utf8_lossy(&out.stdout);
    assert!(body.len() <= 65_000, "{}", body.len());
    assert!(body.contains("The runbook is left out"), "{body}");
    assert!(
        body.contains("#### Gates each environment checks"),
        "{body}"
    );
    assert!(!body.contains("<details>"), "{body}");
}

/// A `phasegate` whose `lint` answers as `phasegate lint --format github`
/// is specified to (issue 12), every other command the real binary's.
fn lint_shim(dir: &Path) -> PathBuf {
    let shim = dir.join("phasegate");
    std::fs::write(
        &shim,
        format!(
            "#!/usr/bin/env bash\n\
             if [ \"$1\" = lint ]; then\n\
               [ \"$2\" = --help ] && exit 0\n\
               [ \"$2 $3\" = '--format github' ] || exit 2\n\
               shift 3\n\
               for f in \"$@\"; do echo \"::error file=$f,line=1,col=1,title=rename_column::renaming a column breaks the running release, 100%25 (col 2)\"; done\n\
               exit 1\n\
             fi\n\
             exec '{BIN}' \"$@\"\n"
        ),
    )
    .expect("write shim");
    let _ = Command::new("chmod").arg("+x").arg(&shim).status();
    shim
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lint_findings_are_in_the_comment_and_the_log() {
    if !tools_present() {
        return;
    }
    with_postgres(|db| async move {
        users_table(&db).await?;
        let dir = TempDir::new("lint");
        let repo = dir.0.join("repo");
        std::fs::create_dir_all(&repo)?;
        fixture(&repo);
        let shim = lint_shim(&dir.0);
        let body = comment(&repo, &shim, &db)?;
        assert!(
            body.contains("1 finding(s) (exit 1) in `db/migrations/003_rename.sql`"),
            "{body}"
        );
        assert!(
            body.contains("::error file=db/migrations/003_rename.sql,line=1,col=1,title=rename_column::renaming a column breaks the running release, 100%25 (col 2)"),
            "{body}"
        );
        assert!(
            body.contains("- **error** `db/migrations/003_rename.sql:1:1` rename_column: renaming a column breaks the running release, 100% (col 2)\n"),
            "{body}"
        );
        // The annotations go to the job's log too, where GitHub picks them up.
        let out = review(&repo, &shim, &[], &["--dry-run"]);
        let log = String::from_utf8_lossy(&out.stdout);
        assert!(log.lines().any(|l| l.starts_with("::error file=db/migrations/003_rename.sql")), "{log}");
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_run_creates_the_comment_and_the_next_updates_it() {
    if !tools_present() {
        return;
    }
    with_postgres(|db| async move {
        users_table(&db).await?;
        let dir = TempDir::new("api");
        let repo = dir.0.join("repo");
        std::fs::create_dir_all(&repo)?;
        fixture(&repo);
        let api = FakeApi::start(&dir.0);
        let env = [
            ("GITHUB_API_URL", api.url.as_str()),
            ("GITHUB_TOKEN", "test-token"),
            ("GITHUB_REPOSITORY", "o/r"),
        ];
        let args = ["--pr", "7", "--database-url", db.url.as_str()];

        let first = review(&repo, Path::new(BIN), &env, &args);
        assert!(first.status.success(), "{first:?}");
        assert!(
            String::from_utf8_lossy(&first.stdout).contains("created comment 100 on #7"),
            "{first:?}"
        );
        // The pull request moves on; the review runs again.
        write(
            &repo,
            "plans/rename-users-name.yaml",
            &RENAME.replace("full_name", "display_name"),
        );
        git(&repo, &["commit", "-qam", "rename to display_name"]);
        let second = review(&repo, Path::new(BIN), &env, &args);
        assert!(second.status.success(), "{second:?}");
        assert!(
            String::from_utf8_lossy(&second.stdout).contains("updated comment 100 on #7"),
            "{second:?}"
        );

        let requests = api.requests();
        let calls: Vec<(String, String)> = requests
            .iter()
            .map(|r| {
                (
                    r["method"].as_str().unwrap_or("").to_string(),
                    r["path"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect();
        assert_eq!(
            calls,
            [
                ("GET", "/repos/o/r/issues/7/comments?per_page=100&page=1"),
                ("POST", "/repos/o/r/issues/7/comments"),
                ("GET", "/repos/o/r/issues/7/comments?per_page=100&page=1"),
                ("PATCH", "/repos/o/r/issues/comments/100"),
            ]
            .map(|(m, p)| (m.to_string(), p.to_string()))
        );
        assert!(
            requests.iter().all(|r| r["auth"] == "Bearer test-token"),
            "{requests:?}"
        );
        let created = requests[1]["body"].as_str().unwrap_or("");
        let updated = requests[3]["body"].as_str().unwrap_or("");
        assert!(
            created.starts_with("<!-- phasegate-review -->"),
            "{created}"
        );
        assert!(created.contains("full_name") && !created.contains("display_name"));
        assert!(updated.contains("display_name"), "{updated}");
        assert!(updated.contains("| `users` | ~20,000 |"), "{updated}");

        // A failing API fails the run, with the status said.
        let bad = review(
            &repo,
            Path::new(BIN),
            &[
                ("GITHUB_API_URL", api.url.as_str()),
                ("GITHUB_TOKEN", "test-token"),
                ("GITHUB_REPOSITORY", "o/missing"),
            ],
            &args,
        );
        assert_eq!(bad.status.code(), Some(2), "{bad:?}");
        assert!(
            String::from_utf8_lossy(&bad.stderr).contains("HTTP 404"),
            "{bad:?}"
        );
        Ok(())
    })
    .await;
}

/// docs/review.md shows the example workflow exactly as the repository ships it.
#[test]
fn the_review_docs_show_the_shipped_example_workflow() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let workflow = std::fs::read_to_string(root.join(".github/workflows/review-example.yml"))
        .expect("read the example workflow");
    let docs = std::fs::read_to_string(root.join("docs/review.md")).expect("read review.md");
    let shown = docs
        .split("```yaml\n")
        .skip(1)
        .filter_map(|rest| rest.split("```").next())
        .any(|block| block == workflow);
    assert!(
        shown,
        "docs/review.md has no ```yaml block equal to .github/workflows/review-example.yml"
    );
    // The action the workflow names exists, with the inputs it passes.
    let action = std::fs::read_to_string(root.join(".github/actions/phasegate-review/action.yml"))
        .expect("read the action");
    for input in [
        "database-url:",
        "migrations:",
        "rows-per-second:",
        "github-token:",
    ] {
        assert!(
            action.contains(&format!("  {input}")),
            "action.yml has no input {input}"
        );
    }
}
