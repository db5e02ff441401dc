//! What people and pipelines read: `init`, `status`, error messages and the
//! commands phasegate suggests, through the built binary.
//!
//! Every project here is SQLite (the one `init` writes), so these tests need
//! no database server.

use std::error::Error;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

type TestResult<T = ()> = Result<T, Box<dyn Error>>;

fn fail(message: impl Into<String>) -> Box<dyn Error> {
    message.into().into()
}

/// A scratch folder, removed when dropped.
struct Project(PathBuf);

impl Project {
    fn new() -> TestResult<Project> {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "phasegate-ux-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        Ok(Project(dir))
    }

    /// A project as `phasegate init` writes it.
    fn init() -> TestResult<Project> {
        let p = Project::new()?;
        let o = p.run(&["init"]);
        expect_exit(&o, 0, "init")?;
        Ok(p)
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.0.join(rel)
    }

    fn write(&self, rel: &str, text: &str) -> TestResult {
        let p = self.path(rel);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent)?;
        }
        Ok(std::fs::write(p, text)?)
    }

    fn read(&self, rel: &str) -> TestResult<String> {
        Ok(std::fs::read_to_string(self.path(rel))?)
    }

    fn run(&self, args: &[&str]) -> Output {
        run_in(&self.0, args)
    }
}

impl Drop for Project {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn run_in(dir: &Path, args: &[&str]) -> Output {
    match Command::new(env!("CARGO_BIN_EXE_phasegate"))
        .args(args)
        .current_dir(dir)
        .env_remove("PROD_DATABASE_URL")
        .output()
    {
        Ok(o) => o,
        Err(e) => panic!("cannot run phasegate: {e}"),
    }
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn shown(o: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout ---\n{}--- stderr ---\n{}",
        o.status.code(),
        stdout(o),
        stderr(o)
    )
}

fn expect_exit(o: &Output, code: i32, what: &str) -> TestResult {
    if o.status.code() == Some(code) {
        return Ok(());
    }
    Err(fail(format!("{what}: expected exit {code}\n{}", shown(o))))
}

fn expect_text(o: &Output, needle: &str, what: &str) -> TestResult {
    let all = format!("{}{}", stdout(o), stderr(o));
    if all.contains(needle) {
        return Ok(());
    }
    Err(fail(format!("{what}: expected `{needle}`\n{}", shown(o))))
}

// ---------------------------------------------------------------------------
// The commands phasegate suggests
// ---------------------------------------------------------------------------

/// Every command an output suggests: `phasegate …` between backticks, and
/// lines that are a command (`then: phasegate mark …`, init's "Next:").
fn suggestions(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (i, part) in text.split('`').enumerate() {
        if i % 2 == 1 && part.starts_with("phasegate ") {
            out.push(part.to_string());
        }
    }
    for line in text.lines() {
        let line = line.trim();
        let line = line.strip_prefix("then: ").unwrap_or(line);
        if line.starts_with("phasegate ") && !line.contains('`') {
            out.push(line.to_string());
        }
    }
    out
}

/// A suggested command's words, as a POSIX shell splits them (double and
/// single quotes; no expansions appear in phasegate's suggestions), with
/// the placeholders phasegate cannot know filled in.
fn words(command: &str) -> TestResult<Vec<String>> {
    let mut out = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    for c in command.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => word.push(c),
            (None, '"' | '\'') => {
                quote = Some(c);
                in_word = true;
            }
            (None, c) if c.is_whitespace() => {
                if in_word {
                    out.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            (None, '<' | '>' | '|' | ';' | '&' | '$') => {
                return Err(fail(format!(
                    "`{command}`: a shell would not pass `{c}` on as it is"
                )));
            }
            (None, c) => {
                word.push(c);
                in_word = true;
            }
        }
    }
    if quote.is_some() {
        return Err(fail(format!("`{command}`: an unclosed quote")));
    }
    if in_word {
        out.push(word);
    }
    Ok(out
        .into_iter()
        .map(|w| match w.as_str() {
            "VERSION" => "v1".to_string(),
            "WHERE" => "backups/taken-by-hand.db".to_string(),
            "…" => "reviewed in the test".to_string(),
            _ => w,
        })
        .collect())
}

/// Runs a suggested command as printed (placeholders filled in) in `dir`,
/// and fails if the command line itself is wrong (clap's usage error).
fn run_suggestion(dir: &Path, command: &str) -> TestResult<Output> {
    let words = words(command)?;
    let args: Vec<&str> = words.iter().skip(1).map(String::as_str).collect();
    let o = run_in(dir, &args);
    if stderr(&o).contains("Usage: phasegate") || stderr(&o).contains("try '--help'") {
        return Err(fail(format!(
            "`{command}` does not parse as printed\n{}",
            shown(&o)
        )));
    }
    Ok(o)
}

/// Copies a project folder, to try a command without changing the original.
fn copy_dir(from: &Path, to: &Path) -> TestResult {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}

/// Runs every suggestion in `o`, each in its own copy of the project, and
/// returns them: each must parse, and none may be refused for its
/// arguments (exit 2 with a usage or argument error).
fn try_each(p: &Project, o: &Output, seen: &mut Vec<String>) -> TestResult<Vec<String>> {
    let text = format!("{}{}", stdout(o), stderr(o));
    let found = suggestions(&text);
    for (i, s) in found.iter().enumerate() {
        if seen.contains(s) {
            continue;
        }
        seen.push(s.clone());
        let scratch = Project(p.0.with_extension(format!("try{}", seen.len() + i)));
        let _ = std::fs::remove_dir_all(&scratch.0);
        copy_dir(&p.0, &scratch.0)?;
        let r = run_suggestion(&scratch.0, s)?;
        let said = format!("{}{}", stdout(&r), stderr(&r));
        for wrong in ["unknown environment", "no plan file", "unexpected argument"] {
            if said.contains(wrong) {
                return Err(fail(format!(
                    "`{s}` (suggested by:\n{text}) is refused: {}",
                    shown(&r)
                )));
            }
        }
    }
    Ok(found)
}

/// The tour of the README, following what phasegate says at each step:
/// in every environment, gate; apply when it may proceed; run the `mark`
/// apply prints after an app stage; run the backup and approval the gates
/// suggest; wait out a soak. Ends when the plan is complete everywhere.
/// Returns every suggestion seen (each also tried in a scratch copy).
fn tour(p: &Project, plan: &str, config: &[&str]) -> TestResult<Vec<String>> {
    let mut seen = Vec::new();
    let with = |args: &[&str]| -> Vec<String> {
        config
            .iter()
            .chain(args.iter())
            .map(|s| s.to_string())
            .collect()
    };
    let run = |args: Vec<String>| {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        p.run(&args)
    };
    for env in ["dev", "staging", "prod"] {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if Instant::now() > deadline {
                return Err(fail(format!("{plan} did not complete in {env} within 60s")));
            }
            let gate = run(with(&["gate", "--env", env, plan]));
            let text = stdout(&gate) + &stderr(&gate);
            try_each(p, &gate, &mut seen)?;
            if text.contains(&format!("{plan} is complete in {env}")) {
                break;
            }
            if text.contains("may proceed") {
                let apply = run(with(&["apply", "--env", env, plan]));
                expect_exit(&apply, 0, &format!("apply in {env}"))?;
                try_each(p, &apply, &mut seen)?;
                for s in suggestions(&stdout(&apply)) {
                    // `then: phasegate mark …`, run for real.
                    let o = run_suggestion(&p.0, &s)?;
                    expect_exit(&o, 0, &s)?;
                }
                continue;
            }
            let blocked: Vec<&str> = text
                .lines()
                .filter_map(|l| l.trim().strip_prefix("BLOCKED"))
                .map(str::trim)
                .collect();
            let mut acted = false;
            for b in &blocked {
                if b.starts_with("soak") {
                    std::thread::sleep(Duration::from_millis(500));
                    acted = true;
                } else if b.starts_with("backup") || b.starts_with("approval") {
                    for s in suggestions(b) {
                        let o = run_suggestion(&p.0, &s)?;
                        expect_exit(&o, 0, &s)?;
                        acted = true;
                    }
                }
            }
            if !acted {
                return Err(fail(format!(
                    "{plan} in {env}: blocked with no way on\n{}",
                    shown(&gate)
                )));
            }
        }
    }
    Ok(seen)
}

#[test]
fn the_readme_tour_runs_from_init_to_complete_in_every_environment() -> TestResult {
    let p = Project::init()?;
    let started = Instant::now();
    let seen = tour(&p, "example-rename", &[])?;
    for kind in ["phasegate mark", "phasegate backup", "phasegate approve"] {
        if !seen.iter().any(|s| s.starts_with(kind)) {
            return Err(fail(format!("the tour never suggested {kind}: {seen:?}")));
        }
    }
    let status = p.run(&["status"]);
    expect_exit(&status, 0, "status after the tour")?;
    for env in ["dev", "staging", "prod"] {
        expect_text(
            &status,
            &format!("{env}\n  example-rename                   complete (3 of 3 phases)"),
            "status after the tour",
        )?;
    }
    // The soaks init writes are short enough to finish the tour today.
    if started.elapsed() > Duration::from_secs(50) {
        return Err(fail(format!("the tour took {:?}", started.elapsed())));
    }
    Ok(())
}

#[test]
fn suggested_commands_run_as_printed_after_drift_a_failed_step_and_every_block() -> TestResult {
    let p = Project::init()?;
    let mut seen = Vec::new();
    // A step that fails, in a second plan.
    p.write(
        "plans/fails.yaml",
        "changes:\n  - sql:\n      phases:\n        - up: UPDATE nowhere SET a = 1\n          down: SELECT 1\n",
    )?;
    let o = p.run(&["apply", "--env", "dev", "fails"]);
    expect_exit(&o, 2, "a failing step")?;
    try_each(&p, &o, &mut seen)?;
    std::fs::remove_file(p.path("plans/fails.yaml"))?;
    // Phase 1 in dev, then drift: the plan file edited after it started.
    let o = p.run(&["apply", "--env", "dev", "example-rename"]);
    expect_exit(&o, 0, "apply in dev")?;
    let plan = p.read("plans/example-rename.yaml")?;
    p.write(
        "plans/example-rename.yaml",
        &format!("{plan}# edited after it started\n"),
    )?;
    let mut accept = Vec::new();
    for args in [
        &["gate", "--env", "dev", "example-rename"][..],
        &["apply", "--env", "dev", "example-rename"],
        &["status"],
        &["status", "--format", "json"],
    ] {
        let o = p.run(args);
        accept.extend(
            try_each(&p, &o, &mut seen)?
                .into_iter()
                .filter(|s| s.starts_with("phasegate accept-change")),
        );
    }
    let Some(accept) = accept.first() else {
        return Err(fail("drift suggested no accept-change"));
    };
    let o = run_suggestion(&p.0, accept)?;
    expect_exit(&o, 0, accept)?;
    // Through staging and prod to the blocks of an irreversible phase.
    let seen_tour = tour(&p, "example-rename", &[])?;
    seen.extend(seen_tour);
    for kind in [
        "phasegate accept-change --env dev example-rename --reason",
        "phasegate mark --env",
        "phasegate backup --env prod --location",
        "phasegate approve --env prod example-rename --phase 3",
    ] {
        if !seen.iter().any(|s| s.starts_with(kind)) {
            return Err(fail(format!("never suggested `{kind}…`: {seen:#?}")));
        }
    }
    Ok(())
}

#[test]
fn suggestion_splitting_refuses_what_a_shell_would_change() {
    assert!(words("phasegate mark --env dev p --phase 1 --app-version <VERSION>").is_err());
    assert!(
        words("phasegate accept-change --env dev p --reason \"…\"").is_ok_and(|w| w
            == [
                "phasegate",
                "accept-change",
                "--env",
                "dev",
                "p",
                "--reason",
                "reviewed in the test"
            ])
    );
    assert_eq!(
        suggestions(
            "x `phasegate backup --env prod` y\nthen: phasegate mark --env a p --phase 2 --app-version VERSION\n`--as x`"
        ),
        [
            "phasegate backup --env prod",
            "phasegate mark --env a p --phase 2 --app-version VERSION"
        ]
    );
}

// ---------------------------------------------------------------------------
// Messages
// ---------------------------------------------------------------------------

/// The example an error shows (`  e.g. phasegate plan …`), run as printed.
fn example_runs(p: &Project, o: &Output) -> TestResult {
    let err = stderr(o);
    let Some(example) = err.lines().find_map(|l| l.trim().strip_prefix("e.g. ")) else {
        return Err(fail(format!("no example shown\n{}", shown(o))));
    };
    let r = run_suggestion(&p.0, example)?;
    expect_exit(&r, 0, example)
}

#[test]
fn every_shorthand_argument_error_says_what_was_expected_and_shows_an_example() -> TestResult {
    let p = Project::new()?;
    for (args, said) in [
        (
            &["plan", "rename", "name", "full_name"][..],
            "error: COLUMN: expected `table.column` (or `schema.table.column`), got `name`\n  e.g. phasegate plan rename users.name full_name",
        ),
        (
            &["plan", "rename", "users.name", ""],
            "error: NEW_NAME: an identifier may not be empty",
        ),
        (
            &["plan", "add-column", "users", "text"],
            "error: COLUMN: expected `table.column` (or `schema.table.column`), got `users`",
        ),
        (
            &[
                "plan",
                "add-column",
                "users.email",
                "text; drop table users",
            ],
            "error: TYPE: `text; drop table users` is not an SQL type",
        ),
        (
            &[
                "plan",
                "add-column",
                "users.email",
                "text",
                "--default",
                "1; drop table users",
            ],
            "error: --default: `1; drop table users` is not a single SQL expression",
        ),
        (
            &["plan", "change-type", "amount", "bigint"],
            "error: COLUMN: expected `table.column` (or `schema.table.column`), got `amount`",
        ),
        (
            &["plan", "drop-column", "users.", "--down", "0"],
            "error: COLUMN: expected `table.column` (or `schema.table.column`), got `users.`",
        ),
        (
            &["plan", "rename-table", "a.b.c", "bills"],
            "error: TABLE: expected `table` or `schema.table`, got `a.b.c`",
        ),
        (
            &["plan", "add-index", "users", "email,,name"],
            "error: COLUMNS: an identifier may not be empty",
        ),
        (
            &["plan", "add-foreign-key", "orders.user_id", "users"],
            "error: REFERENCES: expected `table.column` (or `schema.table.column`), got `users`",
        ),
        (
            &["plan", "set-not-null", "email"],
            "error: COLUMN: expected `table.column` (or `schema.table.column`), got `email`",
        ),
        (
            &[
                "plan",
                "add-check",
                "orders",
                "positive",
                "amount > 0; drop table x",
            ],
            "error: CHECK: `amount > 0; drop table x` is not a single SQL expression",
        ),
        (
            &["plan", "drop-table", "a..b"],
            "error: TABLE: expected `table` or `schema.table`, got `a..b`",
        ),
        (
            &["plan", "add-column", "users.email", "text", "--not-null"],
            "error: add_column: required column `email` needs `default` or `backfill`",
        ),
    ] {
        let o = p.run(args);
        expect_exit(&o, 2, &format!("{args:?}"))?;
        expect_text(&o, said, &format!("{args:?}"))?;
        if stderr(&o).contains("``") || stderr(&o).matches('`').count() % 2 == 1 {
            return Err(fail(format!("{args:?}: garbled quoting\n{}", shown(&o))));
        }
        example_runs(&p, &o)?;
    }
    Ok(())
}

#[test]
fn fields_beside_their_kind_are_said_to_belong_under_it() -> TestResult {
    let p = Project::new()?;
    p.write(
        "plans/slip.yaml",
        "changes:\n  - rename_column:\n    table: users\n    from: name\n    to: full_name\n",
    )?;
    let o = p.run(&["plan", "slip"]);
    expect_exit(&o, 2, "an indentation slip")?;
    expect_text(
        &o,
        "error: changes[0]: the fields of `rename_column` must be indented under it: `table:` is not right of `rename_column:`",
        "an indentation slip",
    )?;
    expect_text(&o, "--> plans/slip.yaml:3:5", "an indentation slip")?;
    Ok(())
}

#[test]
fn config_typos_get_the_nearest_valid_name() -> TestResult {
    let p = Project::init()?;
    let good = p.read("phasegate.yaml")?;
    for (from, to, said) in [
        (
            "    database_url: sqlite://.phasegate/staging.db",
            "    databse_url: sqlite://.phasegate/staging.db",
            "unknown environment key `databse_url`, did you mean `database_url`?",
        ),
        (
            "environments:",
            "enviroments:",
            "unknown top-level key `enviroments`, did you mean `environments`?",
        ),
        (
            "    require_approval: true",
            "    require_aproval: true",
            "did you mean `require_approval`?",
        ),
        (
            "    require_backup: 24h",
            "    require_backup: 24hs",
            "did you mean `24h`?",
        ),
    ] {
        p.write("phasegate.yaml", &good.replace(from, to))?;
        let o = p.run(&["status"]);
        expect_exit(&o, 2, to)?;
        expect_text(&o, said, to)?;
        expect_text(&o, "phasegate.yaml:", to)?;
    }
    p.write("phasegate.yaml", &good)?;
    let o = p.run(&["gate", "--env", "stagin", "example-rename"]);
    expect_exit(&o, 2, "--env stagin")?;
    expect_text(
        &o,
        "unknown environment `stagin`; did you mean `staging`?",
        "--env stagin",
    )?;
    let o = p.run(&["status", "--env", "prd"]);
    expect_exit(&o, 2, "status --env prd")?;
    expect_text(&o, "did you mean `prod`?", "status --env prd")?;
    Ok(())
}

// ---------------------------------------------------------------------------
// init
// ---------------------------------------------------------------------------

#[test]
fn init_writes_the_config_where_config_says_and_every_later_command_finds_it() -> TestResult {
    let p = Project::new()?;
    let o = p.run(&["--config", "conf/pg.yaml", "init"]);
    expect_exit(&o, 0, "init --config conf/pg.yaml")?;
    for file in [
        "conf/pg.yaml",
        "conf/plans/example-rename.yaml",
        "conf/.phasegate/dev.db",
        "conf/.gitignore",
    ] {
        if !p.path(file).is_file() {
            return Err(fail(format!("init did not write {file}\n{}", shown(&o))));
        }
    }
    if p.path("phasegate.yaml").exists() || p.path("plans").exists() {
        return Err(fail(
            "init wrote beside the current folder, not beside --config",
        ));
    }
    // Its "Next:" commands carry --config and run as printed.
    let next = suggestions(&stdout(&o));
    if next.len() != 3
        || !next
            .iter()
            .all(|s| s.starts_with("phasegate --config conf/pg.yaml "))
    {
        return Err(fail(format!("Next: {next:?}\n{}", shown(&o))));
    }
    for s in &next {
        let r = run_suggestion(&p.0, s)?;
        expect_exit(&r, 0, s)?;
    }
    let o = p.run(&["--config", "conf/pg.yaml", "plan", "example-rename"]);
    expect_text(&o, "Plan example-rename (sqlite)", "plan with --config")?;
    // A shorthand saved with --write goes beside the config, and the
    // command that says so runs as printed.
    let o = p.run(&[
        "--config",
        "conf/pg.yaml",
        "plan",
        "add-column",
        "users.email",
        "text",
        "--write",
    ]);
    expect_exit(&o, 0, "plan --write with --config")?;
    if !p.path("conf/plans/add-users-email.yaml").is_file() {
        let saved = suggestions(&stdout(&o));
        return Err(fail(format!(
            "not saved under conf/plans: {saved:?}\n{}",
            shown(&o)
        )));
    }
    let saved = suggestions(&stdout(&o));
    if saved.len() != 1 {
        return Err(fail(format!("--write suggests {saved:?}\n{}", shown(&o))));
    }
    expect_exit(&run_suggestion(&p.0, &saved[0])?, 0, &saved[0])?;
    std::fs::remove_file(p.path("conf/plans/add-users-email.yaml"))?;
    // The whole tour, with --config: every command it suggests carries it.
    let seen = tour(&p, "example-rename", &["--config", "conf/pg.yaml"])?;
    if seen.is_empty()
        || !seen
            .iter()
            .all(|s| s.starts_with("phasegate --config conf/pg.yaml "))
    {
        return Err(fail(format!("suggestions without --config: {seen:#?}")));
    }
    Ok(())
}

#[test]
fn init_git_ignores_its_databases_once() -> TestResult {
    let p = Project::new()?;
    p.write(".gitignore", "target")?;
    expect_exit(&p.run(&["init"]), 0, "init")?;
    let ignore = p.read(".gitignore")?;
    if ignore != "target\n.phasegate/\n" {
        return Err(fail(format!(".gitignore after init: {ignore:?}")));
    }
    let o = p.run(&["init"]);
    expect_exit(&o, 0, "init again")?;
    expect_text(
        &o,
        "kept     .gitignore (ignores .phasegate/ already)",
        "init again",
    )?;
    if p.read(".gitignore")? != ignore {
        return Err(fail("a second init changed .gitignore"));
    }
    let q = Project::new()?;
    expect_exit(&q.run(&["init"]), 0, "init without .gitignore")?;
    if q.read(".gitignore")? != ".phasegate/\n" {
        return Err(fail(format!(".gitignore: {:?}", q.read(".gitignore"))));
    }
    Ok(())
}

#[test]
fn plan_without_dialect_uses_the_configs() -> TestResult {
    let p = Project::init()?;
    let o = p.run(&["plan", "example-rename"]);
    expect_exit(&o, 0, "plan in an all-SQLite project")?;
    expect_text(&o, "Plan example-rename (sqlite)", "plan")?;
    if !stderr(&o).is_empty() {
        return Err(fail(format!(
            "a note when every environment agrees\n{}",
            shown(&o)
        )));
    }
    let o = p.run(&["plan", "rename", "users.a", "b", "--dialect", "postgres"]);
    expect_text(&o, "(postgres)", "--dialect wins")?;
    let o = p.run(&["plan", "rename", "users.a", "b", "--format", "json"]);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o))?;
    if v["dialect"] != "sqlite" {
        return Err(fail(format!("json dialect: {}", v["dialect"])));
    }
    p.write(
        "phasegate.yaml",
        "environments:\n  - name: dev\n    database_url: sqlite://.phasegate/dev.db\n  - name: prod\n    database_url: postgres://db.example/app\n",
    )?;
    let o = p.run(&["plan", "example-rename"]);
    expect_exit(&o, 0, "plan with mixed dialects")?;
    expect_text(&o, "Plan example-rename (sqlite)", "mixed dialects")?;
    expect_text(
        &o,
        "note: planned for sqlite, the dialect of dev, the first environment (prod is postgres)",
        "mixed dialects",
    )?;
    // Without a config, postgres, as before.
    let q = Project::new()?;
    expect_text(
        &q.run(&["plan", "rename", "users.a", "b"]),
        "(postgres)",
        "no config",
    )?;
    Ok(())
}

// ---------------------------------------------------------------------------
// status
// ---------------------------------------------------------------------------

#[test]
fn status_reports_everything_else_when_a_plan_or_an_environment_is_bad() -> TestResult {
    let p = Project::init()?;
    expect_exit(
        &p.run(&["apply", "--env", "dev", "example-rename"]),
        0,
        "apply",
    )?;
    p.write(
        "plans/broken.yaml",
        "changes:\n  - rename_column:\n    table: users\n",
    )?;
    let config = p.read("phasegate.yaml")?;
    p.write(
        "phasegate.yaml",
        &config.replace("sqlite://.phasegate/prod.db", "${PHASEGATE_UX_UNSET}"),
    )?;
    let o = p.run(&["status"]);
    expect_exit(&o, 2, "status with a bad plan and an unset variable")?;
    let out = stdout(&o);
    for said in [
        "dev\n  example-rename                   phase 2 of 3: pending; next: apply phase 2: `phasegate apply --env dev example-rename`\n  broken                           cannot be read (below)\n",
        "staging\n  example-rename                   phase 1 of 3: pending; next: apply phase 1",
        "prod\n  unreachable: ",
        "environment variable `PHASEGATE_UX_UNSET` (in prod's database_url) is not set",
        "plans that cannot be read:\n  broken:\n    ",
        "plans/broken.yaml:3:5: changes[0]: the fields of `rename_column` must be indented under it",
    ] {
        if !out.contains(said) {
            return Err(fail(format!("status lacks {said:?}\n{}", shown(&o))));
        }
    }
    if out.matches("must be indented under it").count() != 1 {
        return Err(fail(format!(
            "the plan's error is not said once\n{}",
            shown(&o)
        )));
    }
    let err = stderr(&o);
    if err.lines().count() != 1
        || !err.contains("1 of 3 environments could not be read: prod; 1 plan could not be read or planned: broken")
    {
        return Err(fail(format!("the summary is not one line\n{}", shown(&o))));
    }
    // JSON: one document, each entry's error where it stands.
    let o = p.run(&["status", "--format", "json"]);
    expect_exit(&o, 2, "status --format json")?;
    let v: serde_json::Value = serde_json::from_str(&stdout(&o))?;
    let text = v.to_string();
    for said in [
        "PHASEGATE_UX_UNSET",
        "\"plan_errors\"",
        "\"plan\":\"broken\"",
    ] {
        if !text.contains(said) {
            return Err(fail(format!("status JSON lacks {said}: {v:#}")));
        }
    }
    if !text.contains("\"plan\":\"example-rename\"") {
        return Err(fail(format!("the good plan is missing: {v:#}")));
    }
    // A command on prod refuses its unset variable; one on dev needs none.
    let o = p.run(&["gate", "--env", "prod", "example-rename"]);
    expect_exit(&o, 2, "gate in prod with its variable unset")?;
    expect_text(&o, "PHASEGATE_UX_UNSET", "gate")?;
    let o = p.run(&["gate", "--env", "dev", "example-rename"]);
    expect_exit(&o, 0, "gate in dev with prod's variable unset")?;
    Ok(())
}

#[test]
fn status_shows_a_reason_of_several_lines_in_full() -> TestResult {
    let p = Project::init()?;
    expect_exit(
        &p.run(&["apply", "--env", "dev", "example-rename"]),
        0,
        "apply",
    )?;
    let plan = p.read("plans/example-rename.yaml")?;
    p.write("plans/example-rename.yaml", &format!("{plan}# edited\n"))?;
    let o = p.run(&["status", "--env", "dev"]);
    expect_exit(&o, 0, "status")?;
    expect_text(
        &o,
        "  example-rename                   phase 2 of 3: pending; phase 2 blocked by:\n    drift      example-rename changed since it started in dev:\n                   + # edited\n                 review the change; if it is intended, accept it",
        "status",
    )?;
    expect_text(
        &o,
        "`phasegate accept-change --env dev example-rename --reason \"…\"`",
        "status",
    )?;
    Ok(())
}
