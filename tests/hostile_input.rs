//! Hostile plan and config files: SQL injection through plan expressions,
//! dollar-quote tags closed by a name, unbounded or zero durations, alias
//! bombs and deep nesting. Each is refused with file:line:column and a
//! non-zero exit, or (a name holding `$phasegate$`) simply works; nothing is
//! half-applied and nothing panics.

mod common;
mod executor_support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::{TestDb, TestResult, fail, with_mysql, with_postgres, with_sqlite};
use executor_support::{ENV, Project};
use phasegate::dialect::Dialect;
use phasegate::dialect::expression::check_expression;
use phasegate::name::SqlExpr;

// ---------------------------------------------------------------------------
// Injection attempts, table-driven
// ---------------------------------------------------------------------------

/// Expressions that would end the statement phasegate builds (or its quote,
/// or its parentheses) and run something of their own, by the dialect they
/// aim at. Each must be refused by that dialect's reading and by
/// `SqlExpr::new` (which reads it in every dialect).
const ATTEMPTS: &[(Dialect, &str)] = &[
    // Postgres: E'' strings, dollar quotes, U& strings, nested comments.
    (
        Dialect::Postgres,
        r"E'\'' ; CREATE TABLE pwned(); SELECT E'\''",
    ),
    (Dialect::Postgres, r"E'\\' ; CREATE TABLE pwned(); SELECT '"),
    (
        Dialect::Postgres,
        "$$ x $$; CREATE TABLE pwned(); SELECT $$ y $$",
    ),
    (
        Dialect::Postgres,
        "$t$ a $t$ ; CREATE TABLE pwned(); SELECT 1",
    ),
    (Dialect::Postgres, "$t$ a $$ b $t$; CREATE TABLE pwned()"),
    (Dialect::Postgres, r"U&'\0027' ; CREATE TABLE pwned()"),
    (Dialect::Postgres, "'a' ; CREATE TABLE pwned()"),
    (Dialect::Postgres, "'it''s'; DROP TABLE users"),
    (Dialect::Postgres, "\"we;ird\" ; DROP TABLE users"),
    (Dialect::Postgres, "1; DROP TABLE users"),
    (Dialect::Postgres, "1\n;\nDROP TABLE users"),
    (Dialect::Postgres, "1 -- the rest of the line is gone"),
    (Dialect::Postgres, "1 /* c */"),
    (Dialect::Postgres, "1 /* /* */ ; DROP TABLE users */"),
    (
        Dialect::Postgres,
        "0) ; CREATE TABLE pwned(x int); SELECT (0",
    ),
    (
        Dialect::Postgres,
        "1) NOT VALID, ADD CONSTRAINT x CHECK (true",
    ),
    (Dialect::Postgres, "(1"),
    (Dialect::Postgres, r"\! touch /tmp/pwned"),
    (Dialect::Postgres, "'unterminated"),
    (Dialect::Postgres, "$$unterminated"),
    // MySQL / MariaDB: backslash escapes, `#` and `/*! */`, backquotes.
    (
        Dialect::Mysql,
        r"'\'' ; CREATE TABLE pwned(x int); SELECT '\''",
    ),
    (
        Dialect::Mysql,
        r#""\"" ; CREATE TABLE pwned(x int); SELECT "\"""#,
    ),
    (Dialect::Mysql, r"'a\\'; DROP TABLE users; SELECT '"),
    (Dialect::Mysql, "1 # ; the rest is a comment"),
    (Dialect::Mysql, "1 -- c"),
    (Dialect::Mysql, "1 /*! ; CREATE TABLE pwned(x int) */"),
    (Dialect::Mysql, "`a` ; DROP TABLE users"),
    (Dialect::Mysql, "`a;b` + 1 ; DROP TABLE users"),
    (Dialect::Mysql, "$$ ; CREATE TABLE pwned(x int); $$"),
    (
        Dialect::Mysql,
        "$phasegate$ ; CREATE TABLE pwned(x int); $phasegate$",
    ),
    (Dialect::Mysql, "0) ; DROP TABLE users; SELECT (0"),
    (Dialect::Mysql, "'x' ; DROP TABLE users"),
    (Dialect::Mysql, "'unterminated"),
    (Dialect::Mysql, "1) , ADD COLUMN y int DEFAULT (1"),
    // SQLite: bracketed names, backquotes, blob literals.
    (Dialect::Sqlite, "'a' ; DROP TABLE users"),
    (Dialect::Sqlite, "[a;b] ; DROP TABLE users"),
    (Dialect::Sqlite, "`x` ; DROP TABLE users"),
    (Dialect::Sqlite, "\"x\" ; DROP TABLE users"),
    (Dialect::Sqlite, "X'00' ; DROP TABLE users"),
    (Dialect::Sqlite, "1 -- c"),
    (Dialect::Sqlite, "1 /* c */"),
    (Dialect::Sqlite, "$$ ; DROP TABLE users; $$"),
    (Dialect::Sqlite, "0); DROP TABLE users; SELECT (0"),
    (Dialect::Sqlite, r"E'\'' ; DROP TABLE users; SELECT E'\''"),
    (Dialect::Sqlite, "'unterminated"),
];

/// Expressions a plan legitimately holds: each must pass.
const LEGITIMATE: &[&str] = &[
    "now()",
    "0",
    "-1.5",
    "TRUE",
    "NULL",
    "CURRENT_TIMESTAMP",
    "'a;b'",
    "'it''s'",
    r"E'\n'",
    "'#hash'",
    "'-- not a comment'",
    "'/* not a comment */'",
    "'$$'",
    "CASE WHEN x > 0 THEN 'pos' ELSE 'neg' END",
    "'pending'::text",
    "amount::bigint",
    "CAST(x AS text)",
    "lower(email)",
    "coalesce(a, 'b; c')",
    "(a + b) * 2",
    "length(name) > 0",
    "'{}'::jsonb",
    "ARRAY[1, 2]",
    "x IN (1, 2, 3)",
    "\"weird;name\" IS NOT NULL",
    "price >= 0 AND price < 1000000",
];

#[test]
fn injection_attempts_are_refused_in_every_dialect() {
    let mut refused = 0;
    let mut accepted = Vec::new();
    for (dialect, attempt) in ATTEMPTS {
        let by_dialect = check_expression(*dialect, attempt);
        let by_plan = SqlExpr::new(*attempt);
        if by_dialect.is_err() && by_plan.is_err() {
            refused += 1;
        } else {
            accepted.push(format!("{dialect}: {attempt:?}"));
        }
    }
    println!(
        "injection attempts refused: {refused} / {} tried",
        ATTEMPTS.len()
    );
    for d in Dialect::ALL {
        let n = ATTEMPTS.iter().filter(|(x, _)| *x == d).count();
        println!("  {d}: {n}");
    }
    assert!(accepted.is_empty(), "accepted: {accepted:#?}");
}

#[test]
fn legitimate_expressions_still_pass() {
    let refused: Vec<String> = LEGITIMATE
        .iter()
        .filter_map(|e| SqlExpr::new(*e).err().map(|err| err.to_string()))
        .collect();
    assert!(SqlExpr::new(format!("'{}'", "x".repeat(70 * 1024))).is_err());
    println!(
        "legitimate expressions accepted: {} / {}",
        LEGITIMATE.len() - refused.len(),
        LEGITIMATE.len()
    );
    assert!(refused.is_empty(), "refused: {refused:#?}");
}

// ---------------------------------------------------------------------------
// Through the binary
// ---------------------------------------------------------------------------

fn run(dir: &Path, args: &[&str]) -> TestResult<Output> {
    Ok(Command::new(env!("CARGO_BIN_EXE_phasegate"))
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()?)
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// `out` exited 2 (a refused input, not a panic's 101 or an abort's 134)
/// and said each of `needles`.
fn refused(out: &Output, needles: &[&str]) -> TestResult<String> {
    let shown = text(out);
    if out.status.code() != Some(2) {
        return Err(fail(format!("exited {:?}:\n{shown}", out.status.code())));
    }
    for n in needles {
        if !shown.contains(n) {
            return Err(fail(format!("expected {n:?} in:\n{shown}")));
        }
    }
    Ok(shown)
}

/// A plan adding column `c` to `items` with `default` written as a YAML
/// double-quoted string (so `\\` is one backslash); the default is on line 7,
/// its value at column 16.
fn hostile_plan(default_yaml: &str) -> String {
    format!(
        "name: hostile\nchanges:\n  - add_column:\n      table: items\n      column: c\n      type: text\n      default: \"{default_yaml}\"\n"
    )
}

/// Hostile defaults as written in YAML, and what each aims at.
fn hostile_defaults(db: &TestDb) -> Vec<String> {
    let create = match db.dialect {
        Dialect::Postgres => "CREATE TABLE pwned()",
        _ => "CREATE TABLE pwned(x int)",
    };
    vec![
        format!(r"E'\\'' ; {create}; SELECT E'\\''"),
        format!("$$ ; {create}; $$"),
        format!("$$ x $$; {create}; SELECT $$ y $$"),
        format!(r"'\\'' ; {create}; SELECT '\\''"),
        format!("1 # ; {create}"),
        format!("0) ; {create}; SELECT (0"),
    ]
}

/// Every hostile default is refused by `plan` and by `apply` with the
/// plan's file:line:column, exit status 2, and no table `pwned` and no
/// column `c` afterwards.
async fn hostile_defaults_are_refused(db: TestDb) -> TestResult {
    db.create_table("items", "id integer PRIMARY KEY, a integer")
        .await?;
    for default in hostile_defaults(&db) {
        let project = Project::new(&db, &[], "hostile", &hostile_plan(&default))?;
        let config = project.config_path();
        let config = config.to_string_lossy();
        let plan = run(&project.dir, &["plan", "plans/hostile.yaml"])?;
        refused(
            &plan,
            &["plans/hostile.yaml:7:16", "not a single SQL expression"],
        )?;
        let apply = run(
            &project.dir,
            &["--config", &config, "apply", "--env", ENV, "hostile"],
        )?;
        refused(
            &apply,
            &["hostile.yaml:7:16", "not a single SQL expression"],
        )?;
        if db.has_relation("pwned").await? {
            return Err(fail(format!("{default}: table pwned was created")));
        }
        if db.has_column("items", "c").await? {
            return Err(fail(format!("{default}: column c was added")));
        }
    }
    Ok(())
}

#[tokio::test]
async fn postgres_hostile_defaults_are_refused_and_nothing_runs() {
    with_postgres(hostile_defaults_are_refused).await;
}

#[tokio::test]
async fn mysql_hostile_defaults_are_refused_and_nothing_runs() {
    with_mysql(hostile_defaults_are_refused).await;
}

#[tokio::test]
async fn sqlite_hostile_defaults_are_refused_and_nothing_runs() {
    with_sqlite(hostile_defaults_are_refused).await;
}

/// A column renamed to a name holding `$phasegate$` (and `$phasegate_1$`):
/// the sync trigger's function body and the DO block that copies the type
/// are dollar-quoted with a tag the names do not hold, so phase 1 applies and
/// the trigger keeps both columns equal.
#[tokio::test]
async fn postgres_a_name_holding_the_dollar_quote_tag_applies() {
    with_postgres(|db| async move {
        db.create_table("items", "id integer PRIMARY KEY, a text")
            .await?;
        db.exec("INSERT INTO items VALUES (1, 'one')").await?;
        let plan = "changes:\n  - rename_column: { table: items, from: a, to: \"b$phasegate$ $phasegate_1$\" }\n";
        let project = Project::new(&db, &[], "dollar", plan)?;
        let config = project.config_path();
        let config = config.to_string_lossy();
        let out = run(
            &project.dir,
            &["--config", &config, "apply", "--env", ENV, "dollar"],
        )?;
        if out.status.code() != Some(0) {
            return Err(fail(format!("apply failed:\n{}", text(&out))));
        }
        db.exec("INSERT INTO items (id, a) VALUES (2, 'two')").await?;
        let copied = db
            .scalar(
                "SELECT count(*) FROM items WHERE \"b$phasegate$ $phasegate_1$\" IS NOT DISTINCT FROM a",
            )
            .await?;
        if copied != 2 {
            return Err(fail(format!("{copied} of 2 rows copied")));
        }
        Ok(())
    })
    .await;
}

// ---------------------------------------------------------------------------
// Config files
// ---------------------------------------------------------------------------

/// A scratch folder, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> TestResult<Scratch> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let dir = std::env::temp_dir().join(format!(
            "phasegate-hostile-{tag}-{}-{nanos}",
            std::process::id()
        ));
        std::fs::create_dir_all(dir.join("plans"))?;
        Ok(Scratch(dir))
    }

    fn write(&self, name: &str, text: &str) -> TestResult {
        Ok(std::fs::write(self.0.join(name), text)?)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A config whose second environment (`prod`, a Postgres URL holding a `2`)
/// has `setting` on line 6, whose value starts at `column`.
fn config_with(setting: &str) -> String {
    format!(
        "environments:\n  - name: dev\n    database_url: sqlite://dev.db\n  - name: prod\n    database_url: postgres://u@127.0.0.1:1/app?connect_timeout=2\n    {setting}\n"
    )
}

#[test]
fn bad_durations_are_refused_where_they_stand() -> TestResult {
    for (setting, column, says) in [
        ("lock_timeout: 2", 19, "is not a duration"),
        ("lock_timeout: 0s", 19, "out of range"),
        ("lock_timeout: 0ms", 19, "out of range"),
        ("lock_timeout: 999us", 19, "out of range"),
        ("statement_timeout: 0s", 24, "out of range"),
        ("lock_wait: 0s", 16, "out of range"),
        ("connect_timeout: 300000000000y", 22, "out of range"),
        (
            "connect_timeout: 99999999999999999999999y",
            22,
            "not a duration",
        ),
        ("lock_timeout: 25h", 19, "out of range"),
        ("soak: 10000d", 11, "out of range"),
        ("backfill_pause: 2h", 21, "out of range"),
    ] {
        let s = Scratch::new("duration")?;
        s.write("phasegate.yaml", &config_with(setting))?;
        let out = run(&s.0, &["status", "--env", "prod"])?;
        let at = format!("phasegate.yaml:6:{column}:");
        refused(&out, &[&at, says]).map_err(|e| fail(format!("{setting}: {e}")))?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Plan files that try to exhaust memory or the stack
// ---------------------------------------------------------------------------

/// Runs `phasegate plan FILE` under a 2 GB address-space limit.
fn plan_limited(dir: &Path, file: &str) -> TestResult<Output> {
    Ok(Command::new("sh")
        .arg("-c")
        .arg("ulimit -v 2097152 && exec \"$0\" plan \"$1\"")
        .arg(env!("CARGO_BIN_EXE_phasegate"))
        .arg(file)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()?)
}

#[test]
fn a_one_megabyte_string_aliased_a_thousand_times_is_refused() -> TestResult {
    let s = Scratch::new("alias")?;
    let mut plan = format!(
        "description: &big \"{}\"\nchanges:\n",
        "x".repeat(1_000_000)
    );
    plan.push_str("  - sql:\n      phases:\n");
    for _ in 0..1000 {
        plan.push_str("        - up: *big\n");
    }
    assert!(plan.len() < 1024 * 1024, "{}", plan.len());
    s.write("plans/bomb.yaml", &plan)?;
    let out = plan_limited(&s.0, "plans/bomb.yaml")?;
    refused(
        &out,
        &["plans/bomb.yaml:8:15", "once its aliases are expanded"],
    )?;
    Ok(())
}

#[test]
fn a_billion_laughs_is_refused() -> TestResult {
    let s = Scratch::new("laughs")?;
    let mut plan = String::from(
        "a0: &a0 [\"lol\", \"lol\", \"lol\", \"lol\", \"lol\", \"lol\", \"lol\", \"lol\", \"lol\"]\n",
    );
    for i in 1..10 {
        let p = i - 1;
        plan.push_str(&format!(
            "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
        ));
    }
    plan.push_str("changes:\n  - drop_table: { table: t }\n");
    s.write("plans/laughs.yaml", &plan)?;
    let out = plan_limited(&s.0, "plans/laughs.yaml")?;
    refused(&out, &["plans/laughs.yaml:"])?;
    Ok(())
}

#[test]
fn a_file_over_the_size_limit_is_refused_before_it_is_parsed() -> TestResult {
    let s = Scratch::new("size")?;
    let plan = format!(
        "description: \"{}\"\nchanges:\n  - drop_table: {{ table: t }}\n",
        "x".repeat(2 * 1024 * 1024)
    );
    s.write("plans/big.yaml", &plan)?;
    let out = plan_limited(&s.0, "plans/big.yaml")?;
    refused(&out, &["plans/big.yaml", "at most 1048576 bytes"])?;
    Ok(())
}

#[test]
fn deep_nesting_is_refused_without_overflowing_the_stack() -> TestResult {
    let s = Scratch::new("deep")?;
    for (name, plan) in [
        (
            "flow",
            format!("changes: {}{}\n", "[".repeat(100_000), "]".repeat(100_000)),
        ),
        (
            "block",
            (0..2000)
                .map(|i| format!("{}- \n", "  ".repeat(i)))
                .collect::<String>(),
        ),
        (
            "maps",
            format!("changes:\n  - sql: {}\n", "{a: ".repeat(50_000)),
        ),
    ] {
        let file = format!("plans/{name}.yaml");
        s.write(&file, &plan)?;
        let out = plan_limited(&s.0, &file)?;
        refused(&out, &[&file]).map_err(|e| fail(format!("{name}: {e}")))?;
    }
    Ok(())
}
