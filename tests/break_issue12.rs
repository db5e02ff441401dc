//! Adversarial tests of issue 12's work (export to a team's runner, lint,
//! convert), through the built binary against real databases, designed from
//! the user docs only (docs/runners/*.md, docs/lint.md, `--help`). A test
//! that fails now is `#[ignore = "BREAKS: …"]` with one line saying what
//! breaks; the ones that pass (the contract holds) run.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::{TestDb, TestResult, fail, with_mysql, with_postgres, with_sqlite};

/// A scratch project: a folder with `plans/` and whatever config a test writes.
struct Project(PathBuf);

impl Project {
    fn new() -> TestResult<Project> {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "phasegate-break12-{}-{}",
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

    /// Runs phasegate with `args` in the project; (exit code, stdout, stderr).
    fn go(&self, args: &[&str]) -> (i32, String, String) {
        let o = Command::new(env!("CARGO_BIN_EXE_phasegate"))
            .args(args)
            .current_dir(&self.0)
            .env_remove("GITHUB_OUTPUT")
            .output()
            .expect("run phasegate");
        (
            o.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    }

    fn env(&self, db: &TestDb) -> TestResult {
        self.write(
            "phasegate.yaml",
            &format!(
                "environments:\n  - name: dev\n    database_url: {}\n",
                db.url
            ),
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

/// The files of `dir` whose name ends with `suffix`, in name order (the
/// order every runner applies them).
fn files(dir: &Path, suffix: &str) -> TestResult<Vec<PathBuf>> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.to_string_lossy().ends_with(suffix))
        .collect();
    out.sort();
    Ok(out)
}

const RENAME: &str = "name: rn
changes:
  - rename_column: { table: users, from: name, to: full_name }
";

// ---------------------------------------------------------------------------
// export
// ---------------------------------------------------------------------------

/// issue 12: "the irreversible deploy's file is written only when asked for
/// by phase, so a runner that applies every pending file cannot run the
/// contract early", and each deploy's files "refuse to run out of order".
/// The contract is exported with --phase 3 while deploy 2 is not marked;
/// its guard refuses, but the contract file itself, run on its own (out of
/// order, as a runner told to skip the failing version or a person with
/// psql would), drops the column and records phase 3 as migrated and
/// deployed. An irreversible file must check its own preconditions.
#[tokio::test]
async fn exported_contract_file_run_alone_refuses_before_the_previous_deploy_is_marked() {
    with_postgres(|db| async move {
        let p = Project::new()?;
        p.env(&db)?;
        p.write("plans/rn.yaml", RENAME)?;
        db.exec("CREATE TABLE users (id int PRIMARY KEY, name text); INSERT INTO users VALUES (1, 'ada')")
            .await?;
        let (code, _, err) = p.go(&["apply", "--env", "dev", "rn"]);
        check(code == 0, format!("apply deploy 1: {err}"))?;
        let (code, _, err) = p.go(&[
            "export", "--to", "sqlx", "--env", "dev", "--phase", "3", "--dir", "c3", "rn",
        ]);
        check(code == 0, format!("export --phase 3: {err}"))?;
        let contract = files(&p.path("c3"), ".sql")?
            .into_iter()
            .find(|f| f.to_string_lossy().contains("contract"))
            .ok_or_else(|| fail("no contract file written"))?;
        let sql = std::fs::read_to_string(&contract)?;
        let ran = db.exec(&sql).await;
        check(
            db.has_column("users", "name").await?,
            format!("the contract file ran ({ran:?}) and dropped users.name before deploy 2 was marked"),
        )?;
        check(ran.is_err(), "the contract file did not refuse")
    })
    .await;
}

/// Hostile table and column names (quotes, backslash, `$$`, `*/`, `#{`, `%`,
/// `:name`, non-ASCII) and a hostile description land in sqlx's files: each
/// up file of deploy 1 runs on Postgres (the hand-off refuses until
/// `phasegate apply` runs the backfill, then passes), the log still
/// verifies (`history`) and `status` shows deploy 1.
#[tokio::test]
async fn export_with_hostile_names_runs_on_postgres_and_the_log_verifies() {
    with_postgres(|db| async move {
        let p = Project::new()?;
        p.env(&db)?;
        let table = "we'ird\"\\$$*/#{%:n é";
        let col = "co'l\"\\$$*/#{%:n é";
        let new = "n'\"\\$$*/#{%:x é";
        db.exec(&format!(
            "CREATE TABLE {} (id int PRIMARY KEY, {} text); INSERT INTO {} VALUES (1, 'v')",
            db.ident(table),
            db.ident(col),
            db.ident(table)
        ))
        .await?;
        let q = |s: &str| format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""));
        p.write(
            "plans/h.yaml",
            &format!(
                "name: h.x_9-Z\ndescription: {}\nchanges:\n  - rename_column: {{ table: {}, from: {}, to: {} }}\n",
                q("d'\"\\$$ */ #{x} %s :name é\nline2 \"\"\" '''"),
                q(table),
                q(col),
                q(new)
            ),
        )?;
        let (code, _, err) = p.go(&[
            "export", "--to", "sqlx", "--env", "dev", "--dir", "out", "--version",
            "20260101000000", "h",
        ]);
        check(code == 0, format!("export: {err}"))?;
        for f in files(&p.path("out"), ".up.sql")? {
            let name = f.to_string_lossy().into_owned();
            if !name.contains("deploy1") {
                continue;
            }
            let sql = std::fs::read_to_string(&f)?;
            let ran = db.exec_in_transaction(&sql).await;
            if name.contains("handoff") {
                check(ran.is_err(), "the hand-off passed before the backfill ran")?;
                let (code, _, err) = p.go(&["apply", "--env", "dev", "h"]);
                check(code == 0, format!("apply (backfill): {err}"))?;
                db.exec_in_transaction(&sql).await?;
            } else {
                ran?;
            }
        }
        check(db.has_column(table, new).await?, "the new column is missing")?;
        let (code, out, err) = p.go(&["history", "--env", "dev"]);
        check(code == 0, format!("history fails after the runner's files: {out}{err}"))?;
        let (code, out, err) = p.go(&["status", "--env", "dev"]);
        check(
            code == 0 && out.contains("phase 2 of 3"),
            format!("status: exit {code}: {out}{err}"),
        )
    })
    .await;
}

/// `--help` lists liquibase, alembic, django and rails as runners; asking
/// for one must either write it or refuse naming *that* runner. Today the
/// refusal says "flyway: not written yet" for every one of them.
#[tokio::test]
async fn export_to_an_unwritten_runner_names_that_runner() {
    with_sqlite(|db| async move {
        let p = Project::new()?;
        p.env(&db)?;
        db.exec("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)")
            .await?;
        p.write("plans/rn.yaml", RENAME)?;
        for runner in ["liquibase", "alembic", "django", "rails"] {
            let (code, out, err) = p.go(&[
                "export", "--to", runner, "--env", "dev", "--dir", runner, "rn",
            ]);
            if code != 0 {
                check(
                    err.contains(runner) && !err.contains("flyway"),
                    format!("--to {runner}: exit {code}, says: {out}{err}"),
                )?;
            }
        }
        Ok(())
    })
    .await;
}

/// A plan whose only deploy is irreversible: without --phase nothing is
/// written (the contract is reachable only by phase), exit 0, and the
/// message names the `--phase 1` command.
#[tokio::test]
async fn export_without_phase_never_writes_a_first_deploy_that_is_irreversible() {
    with_postgres(|db| async move {
        let p = Project::new()?;
        p.env(&db)?;
        db.exec("CREATE TABLE t2 (id int PRIMARY KEY, old text)").await?;
        p.write(
            "plans/dropit.yaml",
            "name: dropit\nchanges:\n  - sql:\n      phases:\n        - up: ALTER TABLE t2 DROP COLUMN old\n",
        )?;
        let (code, out, err) = p.go(&["export", "--to", "dbmate", "--env", "dev", "--dir", "m", "dropit"]);
        check(code == 0, format!("export: {out}{err}"))?;
        let written = files(&p.path("m"), ".sql").unwrap_or_default();
        check(written.is_empty(), format!("written without --phase: {written:?}"))?;
        check(out.contains("--phase 1") || err.contains("--phase 1"), format!("no --phase 1 hint: {out}{err}"))?;
        check(db.has_column("t2", "old").await?, "column dropped")
    })
    .await;
}

/// --dir naming a file, a bad --phase and an unknown runner: exit 2, one
/// JSON document on stdout with --format json, no panic.
#[tokio::test]
async fn export_bad_requests_exit_2_with_one_json_document() {
    with_sqlite(|db| async move {
        let p = Project::new()?;
        p.env(&db)?;
        db.exec("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)")
            .await?;
        p.write("plans/rn.yaml", RENAME)?;
        p.write("afile", "x")?;
        for args in [
            vec!["--dir", "afile"],
            vec!["--phase", "0"],
            vec!["--phase", "99"],
        ] {
            let mut all = vec![
                "export", "--to", "sqlx", "--env", "dev", "--format", "json", "rn",
            ];
            all.extend(args.iter());
            let (code, out, err) = p.go(&all);
            check(code == 2, format!("{args:?}: exit {code}: {err}"))?;
            check(!err.contains("panicked"), format!("{args:?}: panic: {err}"))?;
            let doc: serde_json::Value = serde_json::from_str(&out).map_err(|e| {
                fail(format!(
                    "{args:?}: stdout is not one JSON document ({e}): {out}"
                ))
            })?;
            check(doc["exit_code"] == 2, format!("{args:?}: {doc}"))?;
        }
        check(
            std::fs::read_to_string(p.path("afile"))? == "x",
            "--dir afile changed the file",
        )
    })
    .await;
}

/// MariaDB: the guard of an exported deploy must guard, whatever the
/// client's connection character set. The mysql command-line client (and
/// any driver left at MariaDB's default) talks utf8mb3; the guard's
/// `COLLATE utf8mb4_bin` then fails with "COLLATION 'utf8mb4_bin' is not
/// valid for CHARACTER SET 'utf8mb3'", so deploy 1 can never run and every
/// refusal message is replaced by that error.
#[tokio::test]
async fn mariadb_guard_runs_on_a_utf8mb3_connection() {
    with_mysql(|db| async move {
        let p = Project::new()?;
        p.env(&db)?;
        db.exec("CREATE TABLE users (id int PRIMARY KEY, name text)")
            .await?;
        p.write("plans/rn.yaml", RENAME)?;
        let (code, _, err) = p.go(&["export", "--to", "sqlx", "--env", "dev", "--dir", "m", "rn"]);
        check(code == 0, format!("export: {err}"))?;
        let guard = files(&p.path("m"), ".up.sql")?
            .into_iter()
            .next()
            .ok_or_else(|| fail("no file written"))?;
        let sql = std::fs::read_to_string(&guard)?;
        db.exec(&format!("SET NAMES utf8mb3;\n{sql}"))
            .await
            .map(|_| ())
    })
    .await;
}

// ---------------------------------------------------------------------------
// lint
// ---------------------------------------------------------------------------

fn lint(p: &Project, args: &[&str]) -> (i32, String, String) {
    let mut all = vec!["lint", "--dialect", "postgres", "--format", "gcc"];
    all.extend(args.iter());
    p.go(&all)
}

/// Postgres "Client Connection Defaults": lock_timeout "A value of zero
/// (the default) turns this off". `SET lock_timeout = 0` sets no timeout,
/// so the drop after it waits without limit: missing-lock-timeout.
#[test]
fn lint_lock_timeout_zero_is_no_timeout() -> TestResult {
    let p = Project::new()?;
    p.write(
        "V1.sql",
        "SET lock_timeout = 0;\nALTER TABLE users DROP COLUMN a;\n",
    )?;
    let (code, out, err) = lint(&p, &["V1.sql"]);
    check(
        code == 1 && out.contains("missing-lock-timeout"),
        format!("exit {code}: {out}{err}"),
    )
}

/// `RESET lock_timeout` (and `SET lock_timeout TO DEFAULT`) after setting
/// it puts back the default, no timeout: the ALTER after it must be
/// reported as missing-lock-timeout.
#[test]
fn lint_reset_lock_timeout_before_the_alter_is_reported() -> TestResult {
    let p = Project::new()?;
    p.write(
        "V1.sql",
        "SET lock_timeout = '2s';\nRESET lock_timeout;\nALTER TABLE users DROP COLUMN a;\n",
    )?;
    p.write(
        "V2.sql",
        "SET lock_timeout TO DEFAULT;\nALTER TABLE users ADD COLUMN b int;\n",
    )?;
    for f in ["V1.sql", "V2.sql"] {
        let (code, out, err) = lint(&p, &[f]);
        check(
            code == 1 && out.contains("missing-lock-timeout"),
            format!("{f}: exit {code}: {out}{err}"),
        )?;
    }
    Ok(())
}

/// A folder with a symlink back to its parent: each file is linted once
/// (or the loop is an error), not once per level of the loop.
#[test]
fn lint_a_symlink_loop_lints_each_file_once() -> TestResult {
    let p = Project::new()?;
    p.write("m/V1.sql", "ALTER TABLE users DROP COLUMN a;\n")?;
    std::fs::create_dir_all(p.path("m/loop"))?;
    std::os::unix::fs::symlink("..", p.path("m/loop/up"))?;
    let (code, out, err) = p.go(&["lint", "--dialect", "postgres", "--format", "json", "m"]);
    check(!err.contains("panicked"), format!("panic: {err}"))?;
    let doc: serde_json::Value =
        serde_json::from_str(&out).map_err(|e| fail(format!("not JSON ({e}): {out}")))?;
    let n = doc["findings"].as_array().map_or(0, Vec::len);
    check(
        code == 2 || n == 2,
        format!("exit {code}, {n} findings for one file of two: {err}"),
    )
}

/// Unsafe statements phrased differently are still found: quoted and
/// schema-qualified names, comments inside, lowercase, IF EXISTS ONLY,
/// several operations in one ALTER.
#[test]
fn lint_finds_unsafe_statements_however_they_are_phrased() -> TestResult {
    let p = Project::new()?;
    let cases = [
        (
            "rename-column",
            "ALTER TABLE \"public\".\"users\" RENAME COLUMN \"name\" TO \"full_name\";",
        ),
        (
            "drop-column",
            "ALTER TABLE users ADD COLUMN x int, DROP COLUMN legacy;",
        ),
        (
            "drop-column",
            "ALTER TABLE IF EXISTS ONLY users DROP COLUMN legacy;",
        ),
        (
            "rename-column",
            "alter /* sneaky */ table users -- hi\n  rename column name to full_name;",
        ),
        (
            "validating-constraint",
            "ALTER TABLE users ALTER COLUMN a SET NOT NULL, ALTER COLUMN b TYPE text;",
        ),
        (
            "type-change-rewrite",
            "ALTER TABLE users ALTER COLUMN a SET NOT NULL, ALTER COLUMN b TYPE text;",
        ),
        (
            "blocking-index",
            "ALTER TABLE users ADD CONSTRAINT u UNIQUE (a);",
        ),
        (
            "add-required-column",
            "ALTER TABLE users ADD COLUMN u uuid NOT NULL DEFAULT gen_random_uuid();",
        ),
    ];
    for (i, (rule, stmt)) in cases.iter().enumerate() {
        let f = format!("V{i}.sql");
        p.write(&f, &format!("SET lock_timeout = '2s';\n{stmt}\n"))?;
        let (code, out, err) = lint(&p, &[&f]);
        check(
            code == 1 && out.contains(rule),
            format!("{stmt}: expected {rule}, exit {code}: {out}{err}"),
        )?;
    }
    Ok(())
}

/// Safe statements are not flagged: exit 0.
#[test]
fn lint_leaves_safe_statements_alone() -> TestResult {
    let p = Project::new()?;
    p.write(
        "V1.sql",
        "set SESSION LOCK_TIMEOUT = '1s';\n\
         CREATE INDEX CONCURRENTLY IF NOT EXISTS users_email_idx ON users (email);\n\
         alter table USERS add column A int;\n\
         ALTER TABLE orders ADD CONSTRAINT fk FOREIGN KEY (user_id) REFERENCES users(id) NOT VALID;\n\
         ALTER TABLE users ADD COLUMN c int NOT NULL DEFAULT 0;\n",
    )?;
    let (code, out, err) = lint(&p, &["V1.sql"]);
    check(code == 0, format!("exit {code}: {out}{err}"))
}

/// GitHub annotations: a file name with `,`, `:` and `%` is escaped in the
/// `file=` property; a quoted name holding `%0A::error` cannot start a
/// workflow command of its own (each output line is one command).
#[test]
fn lint_github_annotations_escape_file_names_and_messages() -> TestResult {
    let p = Project::new()?;
    p.write("m/V1__a,b:c%d.sql", "ALTER TABLE users DROP COLUMN a;\n")?;
    p.write(
        "m/V2.sql",
        "ALTER TABLE users RENAME COLUMN \"a%0A\n::error x\" TO b;\n",
    )?;
    let (code, out, err) = p.go(&["lint", "--dialect", "postgres", "--format", "github", "m"]);
    check(code == 1, format!("exit {code}: {err}"))?;
    check(
        out.contains("file=m/V1__a%2Cb%3Ac%25d.sql,"),
        format!("file property not escaped: {out}"),
    )?;
    for line in out.lines() {
        check(
            line.starts_with("::warning ") || line.starts_with("::error "),
            format!("stray line: {line:?}"),
        )?;
    }
    Ok(())
}

/// A binary (not UTF-8) file cannot be linted: exit 2 and a message naming
/// it, not a panic; accept markers without a reason or with a misspelt rule
/// accept nothing.
#[test]
fn lint_binary_files_and_misused_accept_markers() -> TestResult {
    let p = Project::new()?;
    std::fs::write(
        p.path("bin.sql"),
        b"SET lock_timeout = '2s';\n\x00\xff\xfe DROP TABLE x;\n",
    )?;
    let (code, _, err) = lint(&p, &["bin.sql"]);
    check(
        code == 2 && err.contains("bin.sql"),
        format!("binary: exit {code}: {err}"),
    )?;
    p.write(
        "V1.sql",
        "SET lock_timeout = '2s';\n-- phasegate: accept drop-table   \nDROP TABLE t1;\n\
         -- phasegate: accept drop-colum because\nDROP TABLE t2;\n",
    )?;
    let (code, out, err) = lint(&p, &["V1.sql"]);
    check(
        code == 1
            && out.matches("drop-table: drops table").count() == 2
            && out.contains("did you mean `drop-column`"),
        format!("markers: exit {code}: {out}{err}"),
    )
}

// ---------------------------------------------------------------------------
// convert
// ---------------------------------------------------------------------------

/// Hostile quoted names (quotes, `$$`, `*/`, `#{`, `%`, `:`) and a
/// non-ASCII file name convert into a plan that `phasegate plan` loads;
/// `--write` refuses to overwrite it (exit 2).
#[test]
fn convert_hostile_names_round_trip_and_write_refuses_to_overwrite() -> TestResult {
    let p = Project::new()?;
    p.write(
        "V7__Wéird name.sql",
        "SET lock_timeout = '2s';\n\
         ALTER TABLE \"We'ird\"\"$$*/\" RENAME COLUMN \"Co'l#{x}%:n\" TO \"new\"\"col\";\n\
         ALTER TABLE users ADD COLUMN \"a'b\" text NOT NULL DEFAULT 'it''s $$ */';\n\
         CREATE INDEX \"idx'1\" ON users (\"a'b\");\n",
    )?;
    let (code, _, err) = p.go(&[
        "convert",
        "--dialect",
        "postgres",
        "--write",
        "V7__Wéird name.sql",
    ]);
    check(code == 0, format!("convert: {err}"))?;
    let written = files(&p.path("plans"), ".yaml")?;
    let plan = written.first().ok_or_else(|| fail("no plan written"))?;
    let text = std::fs::read_to_string(plan)?;
    let (code, out, err) = p.go(&["plan", &plan.to_string_lossy()]);
    check(
        code == 0,
        format!("plan of the converted file: {out}{err}\n{text}"),
    )?;
    check(
        out.contains("We'ird\"$$*/") && out.contains("new\"col"),
        format!("names changed: {out}"),
    )?;
    let (code, _, err) = p.go(&[
        "convert",
        "--dialect",
        "postgres",
        "--write",
        "V7__Wéird name.sql",
    ]);
    check(code == 2, format!("second --write: exit {code}: {err}"))?;
    check(std::fs::read_to_string(plan)? == text, "plan overwritten")
}

/// issue 12: running exported files must keep "`status` and the gates
/// working". With `soak: 2h` and `require_backup: 30m`, right after deploy
/// 2 is marked, `phasegate apply` refuses the irreversible deploy 3 (soak
/// and backup gates blocked). `export --phase 3` writes it anyway, without
/// a word, and its files, run in order, pass the guard and drop the column:
/// the irreversible gates are bypassed. Either the export refuses or the
/// guard does.
#[tokio::test]
async fn exported_contract_respects_the_soak_and_backup_gates_apply_enforces() {
    with_postgres(|db| async move {
        let p = Project::new()?;
        p.write(
            "phasegate.yaml",
            &format!(
                "environments:\n  - name: dev\n    database_url: {}\n    soak: 2h\n    require_backup: 30m\n",
                db.url
            ),
        )?;
        p.write("plans/rn.yaml", RENAME)?;
        db.exec("CREATE TABLE users (id int PRIMARY KEY, name text); INSERT INTO users VALUES (1, 'ada')")
            .await?;
        let (code, _, err) = p.go(&["apply", "--env", "dev", "rn"]);
        check(code == 0, format!("apply deploy 1: {err}"))?;
        let (code, _, err) = p.go(&["apply", "--env", "dev", "rn"]);
        check(code == 0, format!("apply deploy 2: {err}"))?;
        let (code, _, err) = p.go(&["mark", "--env", "dev", "rn", "--phase", "2", "--app-version", "v2"]);
        check(code == 0, format!("mark 2: {err}"))?;
        let (code, out, err) = p.go(&["apply", "--env", "dev", "rn"]);
        check(
            code != 0 && db.has_column("users", "name").await?,
            format!("precondition: apply should refuse deploy 3 (soak, backup): exit {code}: {out}{err}"),
        )?;
        let (code, _, _) = p.go(&[
            "export", "--to", "sqlx", "--env", "dev", "--phase", "3", "--dir", "c3", "rn",
        ]);
        if code == 0 {
            for f in files(&p.path("c3"), ".sql")? {
                let sql = std::fs::read_to_string(&f)?;
                if db.exec_in_transaction(&sql).await.is_err() {
                    break;
                }
            }
        }
        check(
            db.has_column("users", "name").await?,
            "the exported contract dropped users.name while apply's soak and backup gates blocked it",
        )
    })
    .await;
}

/// The promotion gate: with environments dev → prod, `phasegate apply
/// --env prod` refuses deploy 1 while dev has not completed it ("promote in
/// order"). `export --env prod` writes deploy 1 anyway, and its files, run
/// on prod in order, pass the guard and change prod's schema (and the
/// hand-off then names `phasegate apply --env prod`, which refuses: a dead
/// end). Either the export refuses or the guard does.
#[tokio::test]
async fn exported_deploy_respects_the_promotion_gate() {
    with_postgres(|dev| async move {
        with_postgres(|prod| async move {
            let p = Project::new()?;
            p.write(
                "phasegate.yaml",
                &format!(
                    "environments:\n  - name: dev\n    database_url: {}\n  - name: prod\n    database_url: {}\n",
                    dev.url, prod.url
                ),
            )?;
            p.write("plans/rn.yaml", RENAME)?;
            for db in [&dev, &prod] {
                db.exec("CREATE TABLE users (id int PRIMARY KEY, name text); INSERT INTO users VALUES (1, 'ada')")
                    .await?;
            }
            let (code, out, err) = p.go(&["apply", "--env", "prod", "rn"]);
            check(
                code != 0 && !prod.has_column("users", "full_name").await?,
                format!("precondition: apply --env prod should refuse: exit {code}: {out}{err}"),
            )?;
            let (code, _, _) = p.go(&["export", "--to", "sqlx", "--env", "prod", "--dir", "m", "rn"]);
            if code == 0 {
                for f in files(&p.path("m"), ".up.sql")? {
                    let sql = std::fs::read_to_string(&f)?;
                    if prod.exec_in_transaction(&sql).await.is_err() {
                        break;
                    }
                }
            }
            check(
                !prod.has_column("users", "full_name").await?,
                "the exported deploy 1 ran on prod before dev completed it",
            )
        })
        .await;
        Ok(())
    })
    .await;
}

/// A statement with a long expression (`SELECT 1+1+…+1`, 2,000 terms, 8 KB,
/// as a generated data migration may hold) must be linted, or reported as
/// a parse error; today `lint` and `convert` overflow the stack and abort
/// (exit 134, "fatal runtime error: stack overflow"). Fewer than ~1,000
/// terms are fine; nested parentheses already give a parse-error finding.
#[test]
fn lint_and_convert_survive_a_long_expression() -> TestResult {
    let p = Project::new()?;
    let terms = vec!["1"; 2000].join("+");
    p.write(
        "V1__long.sql",
        &format!("SET lock_timeout = '2s';\nSELECT {terms};\nALTER TABLE users DROP COLUMN a;\n"),
    )?;
    let (code, out, err) = lint(&p, &["V1__long.sql"]);
    check(
        code == 1 && out.contains("drop-column"),
        format!(
            "lint: exit {code}: {out}{}",
            err.lines().take(3).collect::<Vec<_>>().join("\n")
        ),
    )?;
    let (code, _, err) = p.go(&["convert", "--dialect", "postgres", "V1__long.sql"]);
    check(
        code == 0,
        format!(
            "convert: exit {code}: {}",
            err.lines().take(3).collect::<Vec<_>>().join("\n")
        ),
    )
}

/// sqlx numbers migrations with an `i64` (sqlx-core `migrate/source.rs`
/// parses the prefix with `parse::<i64>()`). `--version
/// 9223372036854775806` is accepted and the later files get
/// 9223372036854775808…, which sqlx cannot load. The export must refuse a
/// version whose files would pass i64::MAX, or every file must load.
#[tokio::test]
async fn sqlx_export_never_writes_a_version_sqlx_cannot_parse() {
    with_postgres(|db| async move {
        let p = Project::new()?;
        p.env(&db)?;
        db.exec("CREATE TABLE users (id int PRIMARY KEY, name text)")
            .await?;
        p.write("plans/rn.yaml", RENAME)?;
        let (code, _, err) = p.go(&[
            "export",
            "--to",
            "sqlx",
            "--env",
            "dev",
            "--dir",
            "m",
            "--version",
            "9223372036854775806",
            "rn",
        ]);
        if code != 0 {
            return check(
                code == 2 && err.contains("version"),
                format!("exit {code}: {err}"),
            );
        }
        sqlx::migrate::Migrator::new(p.path("m"))
            .await
            .map(|_| ())
            .map_err(|e| fail(format!("sqlx cannot load the exported folder: {e}")))
    })
    .await;
}

/// docs/lint.md: statements are split with sqlparser's tokenizer, "so a `;`
/// inside a string, a dollar-quoted body, a quoted name or a comment ends
/// nothing"; the runner markers (`-- migrate:down`, `-- +goose Down`) end
/// the up section. A marker *inside* a string literal, a dollar-quoted
/// function body or a block comment is not a marker: the up section goes
/// on, and the `DROP` after it must be reported. Today the file is cut at
/// the marker's line, the statement around it becomes a parse error and
/// the drop is never linted.
#[test]
fn lint_runner_markers_inside_strings_and_comments_do_not_end_the_up_section() -> TestResult {
    let p = Project::new()?;
    p.write(
        "a.sql",
        "SET lock_timeout = '2s';\nCOMMENT ON TABLE users IS '\n-- migrate:down\n';\nDROP TABLE users;\n",
    )?;
    p.write(
        "b.sql",
        "SET lock_timeout = '2s';\nCREATE FUNCTION f() RETURNS int LANGUAGE sql AS $$\n-- +goose Down\nSELECT 1\n$$;\nALTER TABLE users DROP COLUMN a;\n",
    )?;
    p.write(
        "c.sql",
        "SET lock_timeout = '2s';\n/*\n-- migrate:down\n*/\nALTER TABLE users DROP COLUMN a;\n",
    )?;
    for (f, rule) in [
        ("a.sql", "drop-table"),
        ("b.sql", "drop-column"),
        ("c.sql", "drop-column"),
    ] {
        let (code, out, err) = lint(&p, &[f]);
        check(
            code == 1 && out.contains(rule) && !out.contains("parse-error"),
            format!("{f}: expected only {rule}, exit {code}: {out}{err}"),
        )?;
    }
    Ok(())
}

/// Postgres `SET`: "The effects of SET LOCAL last only till the end of the
/// current transaction". A `SET LOCAL lock_timeout` inside `BEGIN … COMMIT`
/// covers nothing after the COMMIT: the ALTER there waits without limit and
/// must be reported as missing-lock-timeout.
#[test]
fn lint_set_local_lock_timeout_ends_with_its_transaction() -> TestResult {
    let p = Project::new()?;
    p.write(
        "V1.sql",
        "BEGIN;\nSET LOCAL lock_timeout = '2s';\nALTER TABLE users ADD COLUMN a int;\nCOMMIT;\nALTER TABLE users ADD COLUMN b int;\n",
    )?;
    let (code, out, err) = lint(&p, &["V1.sql"]);
    check(
        code == 1 && out.contains("V1.sql:5:1: warning: missing-lock-timeout"),
        format!("exit {code}: {out}{err}"),
    )
}

/// A plain SQL file (Flyway style: no BEGIN, no runner transaction) whose
/// `SET LOCAL lock_timeout` runs outside any transaction: Postgres only
/// warns ("SET LOCAL can only be used in transaction blocks") and sets
/// nothing, so the ALTER after it has no lock timeout.
#[test]
fn lint_set_local_outside_a_transaction_sets_no_lock_timeout() -> TestResult {
    let p = Project::new()?;
    p.write(
        "V1.sql",
        "SET LOCAL lock_timeout = '2s';\nALTER TABLE users ADD COLUMN b int;\n",
    )?;
    let (code, out, err) = lint(&p, &["V1.sql"]);
    check(
        code == 1 && out.contains("missing-lock-timeout"),
        format!("exit {code}: {out}{err}"),
    )
}

/// docs/lint.md: "The saved plan loads and plans like any other". A
/// migration that adds a column to a table and then renames the table (an
/// everyday Rails/Django file) converts into `add_column users.x` +
/// `rename_table users → people`, which `phasegate plan` refuses ("contradict
/// each other: … belong in a plan of their own"). convert must write a
/// plan that loads (split it, keep the rest as SQL, or refuse saying why).
#[test]
fn convert_of_a_change_then_a_table_rename_writes_a_plan_that_loads() -> TestResult {
    let p = Project::new()?;
    p.write(
        "V1__pg.sql",
        "ALTER TABLE users ADD COLUMN x int;\nALTER TABLE users RENAME TO people;\n",
    )?;
    let (code, _, err) = p.go(&["convert", "--dialect", "postgres", "--write", "V1__pg.sql"]);
    if code != 0 {
        return check(
            code == 2 && err.contains("rename"),
            format!("convert: exit {code}: {err}"),
        );
    }
    let (code, out, err) = p.go(&["plan", "plans/convert-v1-pg.yaml"]);
    check(
        code == 0,
        format!("the converted plan does not load: exit {code}: {out}{err}"),
    )
}

/// A concurrent unique index build that fails (a duplicate written between
/// the export's verification and the build; a lock timeout while it waits
/// for old transactions does the same) leaves an INVALID index behind, as
/// Postgres documents for CREATE INDEX CONCURRENTLY. The docs' answer to a
/// failed non-transactional file is to fix the cause and rerun. The rerun
/// of `CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS` is then a no-op on
/// the invalid index, the record file passes, and `status` says complete
/// while uniqueness is not enforced. The rerun must rebuild the index (or a
/// file must refuse) so a recorded deploy has a valid index.
#[tokio::test]
async fn rerun_after_a_failed_concurrent_index_build_never_records_an_invalid_index() {
    with_postgres(|db| async move {
        let p = Project::new()?;
        p.env(&db)?;
        db.exec("CREATE TABLE u (id int PRIMARY KEY, email text); INSERT INTO u VALUES (1, 'a'), (2, 'b')")
            .await?;
        p.write(
            "plans/ix.yaml",
            "name: ix\nchanges:\n  - add_index: { table: u, columns: [email], unique: true }\n",
        )?;
        let (code, _, err) = p.go(&[
            "export", "--to", "sqlx", "--env", "dev", "--dir", "m", "--version", "20260101000000", "ix",
        ]);
        check(code == 0, format!("export: {err}"))?;
        let all = files(&p.path("m"), ".up.sql")?;
        let named = |part: &str| -> TestResult<String> {
            let f = all
                .iter()
                .find(|f| f.to_string_lossy().contains(part))
                .ok_or_else(|| fail(format!("no file {part} in {all:?}")))?;
            Ok(std::fs::read_to_string(f)?)
        };
        db.exec_in_transaction(&named("deploy1_guard")?).await?;
        let (code, _, err) = p.go(&["mark", "--env", "dev", "ix", "--phase", "1", "--app-version", "v1"]);
        check(code == 0, format!("mark 1: {err}"))?;
        db.exec_in_transaction(&named("deploy2_guard")?).await?;
        db.exec_in_transaction(&named("verify")?).await?;
        db.exec(&named("create_index_session")?).await?;
        // A writer on the old release inserts a duplicate during the build.
        db.exec("INSERT INTO u VALUES (3, 'a')").await?;
        let index = named("deploy2_create_index.up")?;
        check(db.exec(&index).await.is_err(), "the build did not fail on a duplicate")?;
        // The operator fixes the data and reruns, as the docs say.
        db.exec("DELETE FROM u WHERE id = 3").await?;
        let rerun = db.exec(&index).await;
        let reset = db.exec(&named("create_index_reset")?).await;
        let record = db.exec_in_transaction(&named("deploy2_record")?).await;
        let valid = db
            .scalar("SELECT count(*) FROM pg_index WHERE indexrelid = 'u_email_key'::regclass AND indisvalid")
            .await?;
        check(
            valid == 1 || rerun.is_err() || reset.is_err() || record.is_err(),
            "the deploy was recorded with u_email_key INVALID (uniqueness not enforced)",
        )
    })
    .await;
}

/// A data migration of 3.5 MB (100,000 one-row INSERTs, as a seed file
/// written by a dump tool) takes ~1.26 GB of memory to lint (~360× the
/// file), so a few tens of MB exhaust a CI runner. Under a 512 MiB address
/// space limit the lint must still finish (exit 1, the DROP reported);
/// today it aborts ("memory allocation … failed", exit 134).
#[test]
fn lint_a_large_data_migration_in_bounded_memory() -> TestResult {
    let p = Project::new()?;
    let mut sql = String::from("SET lock_timeout = '2s';\n");
    for i in 0..100_000 {
        sql.push_str(&format!("INSERT INTO t VALUES ({i}, 'x');\n"));
    }
    sql.push_str("ALTER TABLE t DROP COLUMN a;\n");
    p.write("V1__seed.sql", &sql)?;
    let o = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "ulimit -v 524288 && exec '{}' lint --dialect postgres --format gcc V1__seed.sql",
            env!("CARGO_BIN_EXE_phasegate")
        ))
        .current_dir(&p.0)
        .output()?;
    let out = String::from_utf8_lossy(&o.stdout);
    let err = String::from_utf8_lossy(&o.stderr);
    check(
        o.status.code() == Some(1) && out.contains("drop-column"),
        format!(
            "exit {:?}: {}{}",
            o.status.code(),
            out.lines().last().unwrap_or(""),
            err
        ),
    )
}

/// A folder walk meets a named pipe called `.sql` (or a symlink to one):
/// reading it blocks until a writer appears, so `lint DIR` hangs the CI
/// job forever. Lint must skip it or report it (exit 2), not wait.
#[test]
fn lint_a_folder_with_a_named_pipe_does_not_hang() -> TestResult {
    let p = Project::new()?;
    p.write("m/V1.sql", "ALTER TABLE users DROP COLUMN a;\n")?;
    let made = Command::new("mkfifo").arg(p.path("m/V2.sql")).status()?;
    check(made.success(), "mkfifo failed")?;
    let o = Command::new("timeout")
        .args([
            "20",
            env!("CARGO_BIN_EXE_phasegate"),
            "lint",
            "--dialect",
            "postgres",
            "m",
        ])
        .current_dir(&p.0)
        .output()?;
    check(
        o.status.code() != Some(124),
        "lint still waiting on the pipe after 20 s",
    )
}
