//! Every command the docs show runs as written. The commands are read from
//! README.md and docs/*.md: each line of a ```sh/```bash/```console block
//! (lines ending in `\` joined), and each `$ phasegate …` line of a ```text
//! block. Each block runs, command by command, with bash, in its own project
//! made by `phasegate init` (plus the fixtures its commands assume, below),
//! with the built `phasegate` first on PATH and HOME inside the project.
//!
//! A command must exit 0, or 2 in a ```text example whose output starts
//! with `error:`. A command that cannot run here is in [`ALLOWED`] with the
//! reason; an entry that matches no documented command fails the test, so
//! the list stays honest. A failure names the file, line and command.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Documented commands that are not run here, by the start of their text, and why.
const ALLOWED: &[(&str, &str)] = &[
    (
        "cargo install",
        "a release build of minutes; `cargo publish --dry-run` builds the same package",
    ),
    (
        "docker ",
        "needs a Docker daemon and a release build; the Dockerfile is checked by hand",
    ),
    (
        "cargo test",
        "the test suite itself, which this test is part of",
    ),
    (
        ".ci/test",
        "the test suite itself (the tools it installs, then cargo test), which this test is part of",
    ),
    (
        "phasegate resolve --env prod rename-users-name --step 1.add_column",
        "needs a step killed mid-run in prod; tests/interrupted_step.rs drives resolve both ways",
    ),
    (
        "phasegate check --env \"$APP_ENV\"",
        "a service's entrypoint: $APP_ENV is the service's environment; the check itself runs above in docs/check.md",
    ),
    (
        "exec ./server",
        "the service the entrypoint in docs/check.md starts; there is none here",
    ),
    (
        "phasegate resolve --env E PLAN",
        "E and PLAN are placeholders; tests/rollback_recorded.rs settles rollbacks both ways",
    ),
];

/// `cargo run --release -- ARGS` is `phasegate ARGS` built in release mode:
/// run as the built binary (building a release here would take minutes).
const CARGO_RUN: &str = "cargo run --release --";

/// The plan `docs/workflow.md` drives through environments: it creates its
/// table, then renames a column (3 phases, the app switches in phase 2).
const RENAME_USERS_NAME: &str = "description: create users, then rename users.name to full_name
changes:
  - sql:
      phases:
        - up: CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)
          down: DROP TABLE users
  - rename_column: { table: users, from: name, to: full_name }
";

/// docs/intents.md's misspelt plan (its line 3 is the one the error shows).
const E1: &str = "description: a misspelt kind
changes:
  - rename_colum: { table: users, from: a, to: b }
";

/// docs/intents.md's two renames on different tables.
const TWO: &str = "description: two renames on different tables
changes:
  - rename_column: { table: users, from: name, to: full_name }
  - rename_column: { table: orders, from: ref, to: external_ref }
";

/// One command as the docs show it.
#[derive(Debug, Clone)]
struct DocCommand {
    file: String,
    line: usize,
    text: String,
    expect: i32,
}

/// The commands of one fenced block, run in order in one project.
#[derive(Debug)]
struct Block {
    commands: Vec<DocCommand>,
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// README.md and every docs/*.md, relative to the repository root, sorted.
fn doc_files() -> Vec<String> {
    let mut files = vec!["README.md".to_string()];
    let mut docs: Vec<String> = std::fs::read_dir(root().join("docs"))
        .expect("read docs/")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".md"))
        .map(|n| format!("docs/{n}"))
        .collect();
    docs.sort();
    files.extend(docs);
    files
}

/// The blocks of `file` with commands in them.
fn blocks(file: &str) -> Vec<Block> {
    let text = std::fs::read_to_string(root().join(file)).expect("read a doc file");
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    let mut lang: Option<String> = None;
    let mut current: Vec<DocCommand> = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let trimmed = lines[i].trim();
        if let Some(info) = trimmed.strip_prefix("```") {
            if lang.is_none() {
                lang = Some(info.trim().to_string());
            } else {
                lang = None;
                if !current.is_empty() {
                    out.push(Block {
                        commands: std::mem::take(&mut current),
                    });
                }
            }
            i += 1;
            continue;
        }
        let at = i + 1;
        match lang.as_deref() {
            Some("sh" | "bash" | "shell" | "console") => {
                let mut command = trimmed.strip_prefix("$ ").unwrap_or(trimmed).to_string();
                while command.ends_with('\\') && i + 1 < lines.len() {
                    command.pop();
                    i += 1;
                    command.push(' ');
                    command.push_str(lines[i].trim());
                }
                if !command.is_empty() && !command.starts_with('#') {
                    current.push(DocCommand {
                        file: file.to_string(),
                        line: at,
                        text: command,
                        expect: 0,
                    });
                }
            }
            Some("text" | "") => {
                if let Some(command) = trimmed.strip_prefix("$ phasegate") {
                    let shows_error = lines
                        .get(i + 1)
                        .is_some_and(|next| next.trim().starts_with("error:"));
                    current.push(DocCommand {
                        file: file.to_string(),
                        line: at,
                        text: format!("phasegate{command}"),
                        expect: shown_status(&lines[i + 1..]).unwrap_or(if shows_error {
                            2
                        } else {
                            0
                        }),
                    });
                }
            }
            _ => {}
        }
        i += 1;
    }
    out
}

/// The exit status a text block shows for the command before `rest`: the
/// number printed by a `$ echo $?` that follows its output (before the next
/// command or the end of the block).
fn shown_status(rest: &[&str]) -> Option<i32> {
    let mut lines = rest.iter().map(|l| l.trim());
    while let Some(line) = lines.next() {
        if line.starts_with("```") {
            return None;
        }
        if line == "$ echo $?" {
            return lines.next().and_then(|n| n.parse().ok());
        }
        if line.starts_with("$ ") {
            return None;
        }
    }
    None
}

fn allowed(command: &str) -> Option<&'static str> {
    ALLOWED
        .iter()
        .find(|(prefix, _)| command.starts_with(prefix))
        .map(|(_, why)| *why)
}

/// A scratch project made by `phasegate init`, removed when dropped.
struct Project(PathBuf);

impl Project {
    fn new() -> Project {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "phasegate-docs-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("home")).expect("create the project");
        let p = Project(dir);
        p.phasegate(&["init"]);
        p
    }

    /// Runs phasegate for a fixture; it must succeed.
    fn phasegate(&self, args: &[&str]) {
        let out = Command::new(env!("CARGO_BIN_EXE_phasegate"))
            .args(args)
            .current_dir(&self.0)
            .output()
            .expect("run phasegate");
        assert!(
            out.status.success(),
            "fixture `phasegate {}` failed:\n{}",
            args.join(" "),
            shown(&out)
        );
    }

    fn write(&self, path: &str, text: &str) {
        std::fs::write(self.0.join(path), text).expect("write a fixture");
    }

    /// The fixtures the block's commands assume.
    fn prepare(&self, block: &Block) {
        let mentions = |s: &str| block.commands.iter().any(|c| c.text.contains(s));
        if mentions("plans/e1.yaml") {
            self.write("plans/e1.yaml", E1);
        }
        if mentions("phasegate plan two") {
            self.write("plans/two.yaml", TWO);
        }
        if mentions("db/migrations/") {
            // docs/lint.md lints and converts the corpus's Flyway files.
            let to = self.0.join("db/migrations");
            std::fs::create_dir_all(&to).expect("create db/migrations");
            let from = root().join("tests/lint_corpus/postgres/flyway");
            for e in std::fs::read_dir(from).expect("read the corpus") {
                let e = e.expect("a corpus file");
                std::fs::copy(e.path(), to.join(e.file_name())).expect("copy a corpus file");
            }
        }
        if mentions("rename-users-name") {
            // The per-deploy loop's moment: dev has deployed phase 2,
            // staging phase 1, so staging's next step is phase 2.
            self.write("plans/rename-users-name.yaml", RENAME_USERS_NAME);
            let plan = "rename-users-name";
            self.phasegate(&["apply", "--env", "dev", plan]);
            self.phasegate(&["apply", "--env", "dev", plan]);
            self.phasegate(&[
                "mark",
                "--env",
                "dev",
                plan,
                "--phase",
                "2",
                "--app-version",
                "a1",
            ]);
            self.phasegate(&["apply", "--env", "staging", plan]);
        }
    }

    fn run(&self, command: &str) -> Output {
        let bin_dir = Path::new(env!("CARGO_BIN_EXE_phasegate"))
            .parent()
            .expect("the binary's folder");
        let path = format!(
            "{}:{}",
            bin_dir.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        Command::new("bash")
            .args(["-c", command])
            .current_dir(&self.0)
            .env("PATH", path)
            .env("HOME", self.0.join("home"))
            .env("GIT_SHA", "0123abc")
            .env("MANPAGER", "cat")
            .env("PAGER", "cat")
            .output()
            .expect("run bash")
    }
}

impl Drop for Project {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A line on the raw stderr handle, which libtest does not capture: the
/// commands not run show under plain `cargo test`.
fn loud(line: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}

fn shown(o: &Output) -> String {
    format!(
        "--- stdout\n{}--- stderr\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn every_documented_command_runs_as_written() {
    let mut failures = Vec::new();
    let mut ran = 0;
    let mut used = vec![false; ALLOWED.len()];
    for file in doc_files() {
        for block in blocks(&file) {
            let runnable: Vec<DocCommand> = block
                .commands
                .iter()
                .filter(|c| match allowed(&c.text) {
                    Some(why) => {
                        if let Some(k) = ALLOWED.iter().position(|(p, _)| c.text.starts_with(p)) {
                            used[k] = true;
                        }
                        loud(format_args!(
                            "not run: {}:{}: `{}`: {why}",
                            c.file, c.line, c.text
                        ));
                        false
                    }
                    None => true,
                })
                .cloned()
                .collect();
            if runnable.is_empty() {
                continue;
            }
            let project = Project::new();
            project.prepare(&block);
            for c in runnable {
                let command = match c.text.strip_prefix(CARGO_RUN) {
                    Some(args) => format!("phasegate{args}"),
                    None => c.text.clone(),
                };
                let out = project.run(&command);
                ran += 1;
                if out.status.code() != Some(c.expect) {
                    failures.push(format!(
                        "{}:{}: `{}` exited {:?}, expected {} (fix the doc, or add a fixture or \
                         an ALLOWED entry with the reason in tests/docs_commands.rs)\n{}",
                        c.file,
                        c.line,
                        c.text,
                        out.status.code(),
                        c.expect,
                        shown(&out)
                    ));
                    // The rest of the block builds on this command.
                    break;
                }
            }
        }
    }
    for (k, (prefix, _)) in ALLOWED.iter().enumerate() {
        if !used[k] {
            failures.push(format!(
                "ALLOWED entry `{prefix}` matches no documented command: remove it from \
                 tests/docs_commands.rs"
            ));
        }
    }
    assert!(
        ran >= 20,
        "only {ran} documented commands found: is the parser broken?"
    );
    assert!(
        failures.is_empty(),
        "{} of the documented commands failed:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

/// docs/workflow.md shows the example workflow exactly as the repository ships it.
#[test]
fn the_workflow_docs_show_the_shipped_example_workflow() {
    let workflow = std::fs::read_to_string(root().join(".github/workflows/deploy-example.yml"))
        .expect("read the example workflow");
    let docs = std::fs::read_to_string(root().join("docs/workflow.md")).expect("read workflow.md");
    let shown = docs
        .split("```yaml\n")
        .skip(1)
        .filter_map(|rest| rest.split("```").next())
        .any(|block| block == workflow);
    assert!(
        shown,
        "docs/workflow.md has no ```yaml block equal to .github/workflows/deploy-example.yml: \
         paste the file into the \"In a CD pipeline\" section"
    );
}
