//! Adversarial helper B3: new instances of the kinds issue 10 listed,
//! tried against the real binary on every dialect they cover. A passing
//! test = the defence holds; an `#[ignore = "BREAKS: …"]` test = it broke.

mod common;
mod executor_support;

use std::path::Path;
use std::process::{Command, Output, Stdio};

use common::{TestDb, TestResult, fail, with_mysql, with_postgres, with_sqlite};
use executor_support::{ENV, Project};
use phasegate::dialect::Dialect;
use phasegate::dialect::expression::check_expression;
use phasegate::name::SqlExpr;

fn run(dir: &Path, args: &[&str]) -> TestResult<Output> {
    Ok(Command::new(env!("CARGO_BIN_EXE_phasegate"))
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()?)
}

fn shown(o: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout ---\n{}--- stderr ---\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn cmd(project: &Project, args: &[&str]) -> TestResult<Output> {
    let config = project.config_path();
    let config = config.to_string_lossy().to_string();
    let mut all = vec!["--config", config.as_str()];
    all.extend_from_slice(args);
    run(&project.dir, &all)
}

// ---------------------------------------------------------------------------
// Expressions: new smuggling attempts
// ---------------------------------------------------------------------------

/// New attempts, each aimed at the dialect given; each must be refused by
/// that dialect's reading and by `SqlExpr::new`.
const ATTEMPTS: &[(Dialect, &str)] = &[
    // Postgres: `$` inside identifiers (a$$ is a name, not a dollar quote).
    (Dialect::Postgres, "a$$ ; CREATE TABLE pwned(); SELECT $$"),
    (Dialect::Postgres, "a$b$ ; CREATE TABLE pwned(); SELECT $b$"),
    // A dollar tag with a non-ASCII letter, and one that starts with a digit.
    (Dialect::Postgres, "$é$ x $é$ ; CREATE TABLE pwned()"),
    // U& identifiers and strings with UESCAPE.
    (
        Dialect::Postgres,
        "U&\"a\" UESCAPE '!' ; CREATE TABLE pwned()",
    ),
    (
        Dialect::Postgres,
        "U&'!0027' UESCAPE '!' ; CREATE TABLE pwned()",
    ),
    // standard_conforming_strings off: a plain string read with backslashes.
    (
        Dialect::Postgres,
        r"'\'' ; CREATE TABLE pwned(); SELECT '\''",
    ),
    // B'' / X'' / N'' strings.
    (Dialect::Postgres, "B'1' ; CREATE TABLE pwned()"),
    (Dialect::Postgres, "N'x' ; CREATE TABLE pwned()"),
    // Nested comments, more deeply.
    (Dialect::Postgres, "1 /* /* /* */ */ ; DROP TABLE users */"),
    (Dialect::Postgres, "1 /**/; DROP TABLE users"),
    // NUL, and a vertical tab / form feed around the semicolon.
    (Dialect::Postgres, "1\0; DROP TABLE users"),
    (Dialect::Postgres, "1\u{b};\u{c}DROP TABLE users"),
    // psql-ish meta and a trailing semicolon alone.
    (Dialect::Postgres, "1;"),
    (Dialect::Postgres, "1 ;  "),
    // MySQL: charset introducers and N'' with backslash escapes.
    (
        Dialect::Mysql,
        r"_utf8mb4'\'' ; CREATE TABLE pwned(x int); SELECT '\''",
    ),
    (
        Dialect::Mysql,
        r"N'\'' ; CREATE TABLE pwned(x int); SELECT '\''",
    ),
    (Dialect::Mysql, r"X'00' ; DROP TABLE users"),
    // `--` followed by a tab or newline is a comment on MySQL too.
    (Dialect::Mysql, "1 --\t; DROP TABLE users"),
    (Dialect::Mysql, "1 --\n; DROP TABLE users"),
    (Dialect::Mysql, "1 #\n; DROP TABLE users"),
    (Dialect::Mysql, "1 /*!50000 ; DROP TABLE users */"),
    (Dialect::Mysql, "1 /*M! ; DROP TABLE users */"),
    // A backslash inside backquotes does not escape.
    (Dialect::Mysql, r"`a\` ; DROP TABLE users; SELECT `"),
    (Dialect::Mysql, "1\0; DROP TABLE users"),
    (Dialect::Mysql, "1;"),
    // SQLite: brackets holding a quote, backslash in strings (none).
    (Dialect::Sqlite, "[a'] ; DROP TABLE users; SELECT [']"),
    (Dialect::Sqlite, r"'\' ; DROP TABLE users; SELECT '\'"),
    (Dialect::Sqlite, "1\0; DROP TABLE users"),
    (Dialect::Sqlite, "1;"),
    (Dialect::Sqlite, "1 /* unterminated ; DROP TABLE users"),
];

#[test]
fn new_injection_attempts_are_refused() {
    let mut accepted = Vec::new();
    for (dialect, attempt) in ATTEMPTS {
        if check_expression(*dialect, attempt).is_ok() || SqlExpr::new(*attempt).is_ok() {
            accepted.push(format!("{dialect}: {attempt:?}"));
        }
    }
    println!(
        "new injection attempts refused: {} / {}",
        ATTEMPTS.len() - accepted.len(),
        ATTEMPTS.len()
    );
    assert!(accepted.is_empty(), "accepted: {accepted:#?}");
}

/// `$1$` is not a dollar quote to Postgres (a tag cannot start with a digit;
/// `$1` is a parameter), yet Postgres's own reading in `check_expression`
/// takes it for one. Not exploitable there (the whole query then fails to
/// parse before anything runs) and `SqlExpr::new` refuses it through the
/// SQLite reading; this pins that the plan path refuses it.
#[test]
fn a_digit_dollar_tag_is_refused_by_the_plan_path() {
    let attempt = "$1$ ; CREATE TABLE pwned(); $1$";
    println!(
        "postgres reading accepts it: {}",
        check_expression(Dialect::Postgres, attempt).is_ok()
    );
    assert!(SqlExpr::new(attempt).is_err());
}

// ---------------------------------------------------------------------------
// The log: every phasegate table dropped (not yet tried: only the events
// table alone was)
// ---------------------------------------------------------------------------

const RENAME: &str = "changes:\n  - rename_column: { table: items, from: a, to: b }\n";

/// Phase 1 of a rename applied, then all of phasegate's tables dropped (a
/// fresh-looking database whose live schema holds phase 1's column). `status`
/// must not report the plan as pending with exit 0; `gate` and `apply` must
/// not go ahead.
async fn whole_log_dropped(db: TestDb) -> TestResult {
    db.create_table("items", "id integer PRIMARY KEY, a text")
        .await?;
    db.exec("INSERT INTO items VALUES (1, 'one')").await?;
    let project = Project::new(&db, &[], "ren", RENAME)?;
    let out = cmd(&project, &["apply", "--env", ENV, "ren"])?;
    assert_eq!(out.status.code(), Some(0), "{}", shown(&out));
    let drop = match db.dialect {
        Dialect::Postgres => {
            vec!["DROP TABLE phasegate_events, phasegate_head, phasegate_meta CASCADE"]
        }
        _ => vec![
            "DROP TABLE phasegate_events",
            "DROP TABLE phasegate_head",
            "DROP TABLE phasegate_meta",
        ],
    };
    for sql in drop {
        db.exec(sql).await?;
    }
    let gate = cmd(&project, &["gate", "--env", ENV, "ren"])?;
    if gate.status.code() == Some(0) {
        return Err(fail(format!(
            "gate let phase 1 run again:\n{}",
            shown(&gate)
        )));
    }
    let status = cmd(&project, &["status"])?;
    let said = shown(&status);
    if status.status.code() == Some(0) || said.contains("pending; next: apply phase 1") {
        return Err(fail(format!(
            "status reads a dropped log over a schema at phase 1 as a fresh plan:\n{said}"
        )));
    }
    Ok(())
}

#[tokio::test]
#[ignore = "BREAKS (a documented limit, workflow.md): all phasegate tables dropped after phase 1: status says pending, next apply phase 1, exit 0, though gate sees the live schema at phase 1"]
async fn postgres_a_dropped_log_is_not_read_as_fresh() {
    with_postgres(whole_log_dropped).await;
}

#[tokio::test]
#[ignore = "BREAKS (a documented limit, workflow.md): all phasegate tables dropped after phase 1: status says pending, next apply phase 1, exit 0, though gate sees the live schema at phase 1"]
async fn mysql_a_dropped_log_is_not_read_as_fresh() {
    with_mysql(whole_log_dropped).await;
}

#[tokio::test]
#[ignore = "BREAKS (a documented limit, workflow.md): all phasegate tables dropped after phase 1: status says pending, next apply phase 1, exit 0, though gate sees the live schema at phase 1"]
async fn sqlite_a_dropped_log_is_not_read_as_fresh() {
    with_sqlite(whole_log_dropped).await;
}

// ---------------------------------------------------------------------------
// A hurried operator: the output pipe closes (`| head`, a CI log tailer that
// stops reading, a dropped ssh session)
// ---------------------------------------------------------------------------

/// Runs phasegate with stdout and stderr as pipes whose reading ends are
/// closed, as `phasegate … 2>&1 | head -n1` leaves them: stdout at once,
/// stderr once its first line was read (when `first_line`) or at once.
fn run_with_closed_output(
    project: &Project,
    args: &[&str],
    first_line: bool,
) -> TestResult<Output> {
    let config = project.config_path();
    let mut child = Command::new(env!("CARGO_BIN_EXE_phasegate"))
        .arg("--config")
        .arg(&config)
        .args(args)
        .current_dir(&project.dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    drop(child.stdout.take());
    if let Some(err) = child.stderr.take()
        && first_line
    {
        {
            let mut line = String::new();
            std::io::BufRead::read_line(&mut std::io::BufReader::new(err), &mut line)?;
            println!("read before closing: {line}");
        }
    }
    Ok(child.wait_with_output()?)
}

/// `apply` of a rename's phase 1 (four steps, each announced on stderr)
/// with its output closed: it must not panic (exit 101) between steps.
async fn apply_into_closed_pipe(db: TestDb) -> TestResult {
    db.create_table("items", "id integer PRIMARY KEY, a text")
        .await?;
    db.exec("INSERT INTO items VALUES (1, 'one')").await?;
    let project = Project::new(&db, &[], "ren", RENAME)?;
    let out = run_with_closed_output(&project, &["apply", "--env", ENV, "ren"], true)?;
    let status = cmd(&project, &["status"])?;
    if out.status.code() == Some(101) {
        return Err(fail(format!(
            "apply panicked (exit 101) when its output closed; status afterwards:\n{}",
            shown(&status)
        )));
    }
    Ok(())
}

#[tokio::test]
async fn postgres_apply_survives_a_closed_output_pipe() {
    with_postgres(apply_into_closed_pipe).await;
}

#[tokio::test]
async fn mysql_apply_survives_a_closed_output_pipe() {
    with_mysql(apply_into_closed_pipe).await;
}

#[tokio::test]
async fn sqlite_apply_survives_a_closed_output_pipe() {
    with_sqlite(apply_into_closed_pipe).await;
}

/// Read-only `plan` and `status` with their output closed: a clean exit, not
/// a panic.
#[tokio::test]
async fn read_only_commands_survive_a_closed_output_pipe() {
    with_sqlite(|db| async move {
        db.create_table("items", "id integer PRIMARY KEY, a text")
            .await?;
        let project = Project::new(&db, &[], "ren", RENAME)?;
        let mut panicked = Vec::new();
        for args in [&["plan", "plans/ren.yaml"][..], &["status"][..]] {
            let out = run_with_closed_output(&project, args, false)?;
            if out.status.code() == Some(101) {
                panicked.push(format!("{args:?}"));
            }
        }
        if !panicked.is_empty() {
            return Err(fail(format!("panicked (exit 101): {panicked:?}")));
        }
        Ok(())
    })
    .await;
}

// ---------------------------------------------------------------------------
// Rollback: a failing `down` of the plan's last phase
// ---------------------------------------------------------------------------

/// A one-phase `sql` plan whose `down` fails when run (the table it names is
/// not there). The rollback fails (exit 2) and is recorded
/// `step_rollback_failed`; then `status` must not call the plan complete and
/// `gate` must not answer 0 "every phase is deployed".
async fn last_phase_down_fails(db: TestDb) -> TestResult {
    let plan = "changes:\n  - sql:\n      phases:\n        - up: \"CREATE TABLE extra (id int)\"\n          down: \"DROP TABLE nonexistent\"\n";
    let project = Project::new(&db, &[], "s", plan)?;
    let out = cmd(&project, &["apply", "--env", ENV, "s"])?;
    assert_eq!(out.status.code(), Some(0), "{}", shown(&out));
    let back = cmd(&project, &["rollback", "--env", ENV, "s"])?;
    assert_eq!(back.status.code(), Some(2), "{}", shown(&back));
    let status = cmd(&project, &["status"])?;
    let gate = cmd(&project, &["gate", "--env", ENV, "s"])?;
    let said = shown(&status);
    if said.contains("complete") || gate.status.code() == Some(0) {
        return Err(fail(format!(
            "after a failed rollback of the last phase:\nstatus: {said}\ngate: {}",
            shown(&gate)
        )));
    }
    Ok(())
}

#[tokio::test]
async fn postgres_a_failed_rollback_of_the_last_phase_is_not_complete() {
    with_postgres(last_phase_down_fails).await;
}

#[tokio::test]
async fn mysql_a_failed_rollback_of_the_last_phase_is_not_complete() {
    with_mysql(last_phase_down_fails).await;
}

#[tokio::test]
async fn sqlite_a_failed_rollback_of_the_last_phase_is_not_complete() {
    with_sqlite(last_phase_down_fails).await;
}

// ---------------------------------------------------------------------------
// Rollback after edits: drift must refuse
// ---------------------------------------------------------------------------

fn dialect_dir(db: &TestDb) -> &'static str {
    match db.dialect {
        Dialect::Postgres => "postgres",
        Dialect::Mysql => "mysql",
        Dialect::Sqlite => "sqlite",
    }
}

/// Phase 1 of `rename items.a → b` applied; then `edit` changes the
/// project; `rollback` must be refused and leave both columns in place.
async fn rollback_after(db: &TestDb, edit: &dyn Fn(&Project) -> TestResult) -> TestResult {
    db.create_table("items", "id integer PRIMARY KEY, a text")
        .await?;
    db.exec("INSERT INTO items VALUES (1, 'one')").await?;
    let project = Project::new(db, &[], "ren", RENAME)?;
    let out = cmd(&project, &["apply", "--env", ENV, "ren"])?;
    assert_eq!(out.status.code(), Some(0), "{}", shown(&out));
    edit(&project)?;
    let back = cmd(&project, &["rollback", "--env", ENV, "ren"])?;
    let (a, b) = (
        db.has_column("items", "a").await?,
        db.has_column("items", "b").await?,
    );
    println!("{}", shown(&back));
    if back.status.code() == Some(0) || !a || !b {
        return Err(fail(format!(
            "rollback after an edit: a kept {a}, b kept {b}\n{}",
            shown(&back)
        )));
    }
    Ok(())
}

/// A project template override whose `drop_new_column` drops the *old*
/// column, added after phase 1 ran.
async fn template_override_then_rollback(db: TestDb) -> TestResult {
    let dir = dialect_dir(&db);
    rollback_after(&db, &|project| {
        let src = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("templates")
            .join(dir)
            .join("rename_column.sql");
        let text = std::fs::read_to_string(src)?;
        let start = text
            .find("{% block drop_new_column %}")
            .ok_or_else(|| fail("no drop_new_column block"))?;
        let end = start
            + text[start..]
                .find("{% endblock %}")
                .ok_or_else(|| fail("no endblock"))?;
        let block = text[start..end].replace("{{ new|ident }}", "{{ old|ident }}");
        let edited = format!("{}{}{}", &text[..start], block, &text[end..]);
        let to = project.dir.join("templates").join(dir);
        std::fs::create_dir_all(&to)?;
        std::fs::write(to.join("rename_column.sql"), edited)?;
        Ok(())
    })
    .await
}

#[tokio::test]
async fn postgres_a_template_override_after_phase_1_blocks_rollback() {
    with_postgres(template_override_then_rollback).await;
}

#[tokio::test]
async fn mysql_a_template_override_after_phase_1_blocks_rollback() {
    with_mysql(template_override_then_rollback).await;
}

#[tokio::test]
async fn sqlite_a_template_override_after_phase_1_blocks_rollback() {
    with_sqlite(template_override_then_rollback).await;
}

/// The plan file rewritten after phase 1 into a different change kind
/// (`drop_column items.a`).
async fn plan_rewritten_then_rollback(db: TestDb) -> TestResult {
    rollback_after(&db, &|project| {
        std::fs::write(
            project.dir.join("plans").join("ren.yaml"),
            "changes:\n  - drop_column: { table: items, column: a }\n",
        )?;
        Ok(())
    })
    .await
}

#[tokio::test]
async fn postgres_a_rewritten_plan_blocks_rollback() {
    with_postgres(plan_rewritten_then_rollback).await;
}

#[tokio::test]
async fn mysql_a_rewritten_plan_blocks_rollback() {
    with_mysql(plan_rewritten_then_rollback).await;
}

#[tokio::test]
async fn sqlite_a_rewritten_plan_blocks_rollback() {
    with_sqlite(plan_rewritten_then_rollback).await;
}

// ---------------------------------------------------------------------------
// Config values: durations and numbers not yet tried
// ---------------------------------------------------------------------------

#[test]
fn new_bad_durations_are_refused_where_they_stand() -> TestResult {
    let dir = std::env::temp_dir().join(format!("phasegate-b3-dur-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("plans"))?;
    let mut wrong = Vec::new();
    let cases = [
        ("lock_timeout: 0.5ms", 19),
        ("lock_timeout: 1e9s", 19),
        ("lock_timeout: -1s", 19),
        ("lock_timeout: 9999999999999d", 19),
        ("lock_timeout: 0.0001s", 19),
        ("lock_timeout: 5S", 19),
        ("lock_timeout: 18446744073709551616ms", 19),
        ("lock_timeout: NaNs", 19),
        ("lock_timeout: infs", 19),
        ("lock_timeout: [5s]", 19),
        ("lock_timeout: 1_000ms", 19),
        ("lock_timeout: \u{ff15}s", 19),
        ("statement_timeout: 0.9ms", 24),
        ("connect_timeout: 1ns", 22),
        ("backfill_batch_size: 0", 26),
        ("backfill_batch_size: -1", 26),
        ("backfill_batch_size: 99999999999999999999", 26),
        ("backfill_batch_size: 1e3", 26),
    ];
    for (setting, column) in cases {
        std::fs::write(
            dir.join("phasegate.yaml"),
            format!(
                "environments:\n  - name: dev\n    database_url: sqlite://dev.db\n  - name: prod\n    database_url: postgres://u@127.0.0.1:1/app?connect_timeout=2\n    {setting}\n"
            ),
        )?;
        let out = run(&dir, &["status", "--env", "prod"])?;
        let said = shown(&out);
        if out.status.code() != Some(2) || !said.contains(&format!("phasegate.yaml:6:{column}:")) {
            wrong.push(format!("{setting}: {said}"));
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    println!(
        "bad values refused at their line:col: {} / {}",
        cases.len() - wrong.len(),
        cases.len()
    );
    assert!(wrong.is_empty(), "{wrong:#?}");
    Ok(())
}

// ---------------------------------------------------------------------------
// Names that could break generated SQL
// ---------------------------------------------------------------------------

/// Column names holding every dialect's quote characters, a dollar tag, and
/// 63 characters (the longest Postgres keeps): phase 1 of a rename to each applies, the
/// trigger copies a new row, and rollback removes the new column.
async fn hostile_names(db: TestDb) -> TestResult {
    let long = "n".repeat(63);
    let names = [
        "we\"ird",
        "b`q",
        "x]y",
        "it's",
        "back\\slash",
        "$phasegate_2$",
        "semi;colon -- c",
        long.as_str(),
    ];
    let mut broken = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let table = format!("t{i}");
        db.create_table(&table, "id integer PRIMARY KEY, a text")
            .await?;
        db.exec(&format!("INSERT INTO {table} VALUES (1, 'one')"))
            .await?;
        let yaml_name = name.replace('\\', "\\\\").replace('"', "\\\"");
        let plan = format!(
            "changes:\n  - rename_column: {{ table: {table}, from: a, to: \"{yaml_name}\" }}\n"
        );
        let pname = format!("n{i}");
        let project = Project::new(&db, &[], &pname, &plan)?;
        let out = cmd(&project, &["apply", "--env", ENV, &pname])?;
        if out.status.code() != Some(0) {
            broken.push(format!("{name:?}: apply {}", shown(&out)));
            continue;
        }
        db.exec(&format!("INSERT INTO {table} (id, a) VALUES (2, 'two')"))
            .await?;
        let copied = db
            .scalar(&format!(
                "SELECT count(*) FROM {table} WHERE {} = a",
                db.ident(name)
            ))
            .await?;
        if copied != 2 {
            broken.push(format!("{name:?}: {copied} of 2 rows copied"));
        }
        let back = cmd(&project, &["rollback", "--env", ENV, &pname])?;
        if back.status.code() != Some(0) || db.has_column(&table, name).await? {
            broken.push(format!("{name:?}: rollback {}", shown(&back)));
        }
    }
    println!(
        "names: {} / {} held",
        names.len() - broken.len(),
        names.len()
    );
    assert!(broken.is_empty(), "{broken:#?}");
    Ok(())
}

#[tokio::test]
async fn postgres_hostile_names_apply_and_roll_back() {
    with_postgres(hostile_names).await;
}

#[tokio::test]
async fn mysql_hostile_names_apply_and_roll_back() {
    with_mysql(hostile_names).await;
}

#[tokio::test]
async fn sqlite_hostile_names_apply_and_roll_back() {
    with_sqlite(hostile_names).await;
}

// ---------------------------------------------------------------------------
// Plan files: YAML spellings that hide what runs
// ---------------------------------------------------------------------------

/// A `!!binary` default decodes to SQL the reviewer of the YAML cannot read;
/// the one-expression check must still see the decoded text. Duplicate keys
/// and a second YAML document are refused where they stand.
#[test]
fn yaml_spellings_that_hide_sql_are_checked() -> TestResult {
    let dir = std::env::temp_dir().join(format!("phasegate-b3-yaml-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("plans"))?;
    // base64 of `1; DROP TABLE items`.
    let cases = [
        (
            "binary",
            "changes:\n  - add_column: { table: items, column: c, type: int, default: !!binary \"MTsgRFJPUCBUQUJMRSBpdGVtcw==\" }\n",
            "plans/binary.yaml:2:73",
        ),
        (
            "dup",
            "changes:\n  - add_column:\n      table: items\n      column: c\n      type: int\n      default: \"0\"\n      default: \"1\"\n",
            "plans/dup.yaml:7:7",
        ),
        (
            "docs",
            "changes:\n  - add_column: { table: items, column: c, type: int }\n---\nchanges:\n  - drop_table: { table: items }\n",
            "plans/docs.yaml:3:1",
        ),
        (
            "folded",
            "changes:\n  - add_column:\n      table: items\n      column: c\n      type: int\n      default: >-\n        1 +\n        2; DROP TABLE items\n",
            "plans/folded.yaml:7:9",
        ),
    ];
    let mut wrong = Vec::new();
    for (name, text, at) in cases {
        let file = format!("plans/{name}.yaml");
        std::fs::write(dir.join(&file), text)?;
        let out = run(&dir, &["plan", &file])?;
        let said = shown(&out);
        if out.status.code() != Some(2) || !said.contains(at) {
            wrong.push(format!("{name}: {said}"));
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    assert!(wrong.is_empty(), "{wrong:#?}");
    Ok(())
}

// ---------------------------------------------------------------------------
// status / gate exit codes with a missing database among reachable ones
// ---------------------------------------------------------------------------

#[tokio::test]
async fn a_missing_database_among_reachable_ones_is_never_exit_0() {
    with_sqlite(|db| async move {
        db.create_table("items", "id integer PRIMARY KEY, a text")
            .await?;
        let project = Project::new(&db, &[], "ren", RENAME)?;
        let text = std::fs::read_to_string(project.config_path())?;
        std::fs::write(
            project.config_path(),
            format!(
                "{text}  - name: staging\n    database_url: postgres://postgres@127.0.0.1:5432/phasegate_b3_no_such_db\n  - name: prod\n    database_url: mysql://root@127.0.0.1:3306/phasegate_b3_no_such_db\n"
            ),
        )?;
        let mut zero = Vec::new();
        for args in [
            &["status"][..],
            &["status", "--format", "json"],
            &["status", "--env", "staging"],
            &["gate", "--env", "staging", "ren"],
            &["gate", "--env", "prod", "ren"],
            &["history", "--env", "prod"],
            &["verify", "--env", "staging", "ren"],
        ] {
            let out = cmd(&project, args)?;
            if out.status.code() == Some(0) || out.status.code() == Some(101) {
                zero.push(format!("{args:?}: {}", shown(&out)));
            }
        }
        if !zero.is_empty() {
            return Err(fail(format!("{zero:#?}")));
        }
        Ok(())
    })
    .await;
}

// ---------------------------------------------------------------------------
// A server that accepts the connection and never answers
// ---------------------------------------------------------------------------

/// A listener that accepts every connection and never writes a byte (a
/// half-open path at connect time). status, gate, apply and history against
/// it, with and without `connect_timeout`, must each end with exit 2; a run
/// still going after 120 s is killed and reported as a hang.
#[test]
fn a_server_that_never_answers_is_refused_not_waited_on() -> TestResult {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in listener.incoming() {
            held.push(conn);
        }
    });
    let dir = std::env::temp_dir().join(format!("phasegate-b3-silent-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("plans"))?;
    std::fs::write(
        dir.join("plans/p.yaml"),
        "changes:\n  - add_column: { table: items, column: z, type: int }\n",
    )?;
    let mut wrong = Vec::new();
    for scheme in ["postgres://postgres", "mysql://root"] {
        for setting in ["", "    connect_timeout: 2s\n"] {
            std::fs::write(
                dir.join("phasegate.yaml"),
                format!(
                    "environments:\n  - name: dev\n    database_url: {scheme}@127.0.0.1:{port}/x\n{setting}"
                ),
            )?;
            for args in [
                &["status"][..],
                &["gate", "--env", "dev", "p"],
                &["apply", "--env", "dev", "p"],
                &["history", "--env", "dev"],
            ] {
                let mut child = Command::new(env!("CARGO_BIN_EXE_phasegate"))
                    .args(args)
                    .current_dir(&dir)
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()?;
                let mut code = None;
                for _ in 0..1200 {
                    if let Some(s) = child.try_wait()? {
                        code = Some(s.code());
                        break;
                    }
                    std::thread::sleep(std::time::Duration::from_millis(100));
                }
                match code {
                    Some(Some(2)) => {}
                    Some(c) => wrong.push(format!("{scheme} {setting:?} {args:?}: exit {c:?}")),
                    None => {
                        let _ = child.kill();
                        let _ = child.wait();
                        wrong.push(format!(
                            "{scheme} {setting:?} {args:?}: still waiting after 120s"
                        ));
                    }
                }
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    assert!(wrong.is_empty(), "{wrong:#?}");
    Ok(())
}
