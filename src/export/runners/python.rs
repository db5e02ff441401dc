//! What the two runners whose migrations are Python files (Alembic, Django)
//! share: writing any text as a Python string literal or comment, cutting a
//! deploy's units into migrations (one per unit), the header every file
//! carries, and names for files.
//!
//! Python's rules are those of the language reference, "Lexical analysis":
//! a source file is UTF-8, `\r`, `\n` and `\r\n` all end a line (so a raw
//! carriage return inside a literal would be read back as `\n`), and in a
//! non-raw literal `\\`, `\"`, `\n`, `\r`, `\t`, `\xhh`, `\uxxxx` and
//! `\Uxxxxxxxx` are escapes.

use std::fmt::Write as _;

use crate::export::{Deploy, Unit};

/// Whether `c` is written as an escape rather than as itself: control
/// characters (Python would read a raw `\r` or form feed as a line end),
/// whitespace other than the space, and the invisible format characters
/// (zero-width, bidirectional controls, BOM, soft hyphen) a reader of the
/// file could not see.
fn escaped(c: char) -> bool {
    c.is_control()
        || (c.is_whitespace() && c != ' ')
        || matches!(c,
            '\u{ad}' | '\u{200b}'..='\u{200f}' | '\u{2028}'..='\u{202e}'
            | '\u{2060}'..='\u{206f}' | '\u{feff}' | '\u{fff9}'..='\u{fffb}')
}

/// `c` as a Python escape (`\t`, `\xhh`, `\uxxxx`, `\Uxxxxxxxx`).
fn escape(out: &mut String, c: char) {
    let _ = match c {
        '\t' => write!(out, "\\t"),
        '\r' => write!(out, "\\r"),
        '\n' => write!(out, "\\n"),
        c if (c as u32) < 0x100 => write!(out, "\\x{:02x}", c as u32),
        c if (c as u32) < 0x1_0000 => write!(out, "\\u{:04x}", c as u32),
        c => write!(out, "\\U{:08x}", c as u32),
    };
}

/// `text` as a Python string literal that evaluates to exactly `text`.
///
/// One line: a double-quoted literal. Several lines: a triple-quoted one
/// whose lines are the text's lines, so a multi-line statement (a `DO`
/// block) reads as written. Backslashes and double quotes are escaped
/// everywhere (so no `"""` can end the literal early), and so is every
/// character [`escaped`] names; other non-ASCII characters stay as they are
/// (the file is UTF-8, Python's default source encoding).
pub(super) fn string(text: &str) -> String {
    let multi_line = text.contains('\n');
    let mut out = String::with_capacity(text.len() + 8);
    out.push_str(if multi_line { "\"\"\"" } else { "\"" });
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' if multi_line => out.push('\n'),
            c if escaped(c) => escape(&mut out, c),
            c => out.push(c),
        }
    }
    out.push_str(if multi_line { "\"\"\"" } else { "\"" });
    out
}

/// `text` as `#` comment lines, each starting with `indent`: one per line of
/// the text, with every character [`escaped`] names written as its escape so
/// no comment can end early (a raw `\r` would start a line of code).
pub(super) fn comment(out: &mut String, indent: &str, text: &str) {
    for line in text.split('\n') {
        out.push_str(indent);
        out.push('#');
        if !line.is_empty() {
            out.push(' ');
        }
        for c in line.chars() {
            if escaped(c) {
                escape(out, c);
            } else {
                out.push(c);
            }
        }
        out.push('\n');
    }
}

/// The migrations a run of units is cut into: one per unit. A unit is what
/// `build` made one transaction (or one statement outside any): a guard, a
/// run of transactional steps with their recording, a step that cannot run
/// in a transaction, a record, a verification, a hand-off to phasegate. A
/// runner migration holding two of them would roll back the first when the
/// second refuses (a hand-off refuses until phasegate has run the backfill,
/// and must not undo the steps before it), so each is a migration of its
/// own: the runner's own bookkeeping then says how far a deploy got.
pub(super) fn migrations(units: &[Unit]) -> Vec<&[Unit]> {
    (0..units.len()).map(|i| &units[i..=i]).collect()
}

/// `text` in lower case with each run of characters other than `a-z0-9`
/// turned into one `_`, trimmed of `_`, at most `max` bytes (`x` if nothing
/// is left): a piece of a file name or Python module name.
pub(super) fn slug(text: &str, max: usize) -> String {
    let mut out = String::new();
    for c in text.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            out.push(c);
        } else if !out.ends_with('_') {
            out.push('_');
        }
    }
    let mut out = out.trim_matches('_').to_string();
    out.truncate(max);
    let out = out.trim_end_matches('_').to_string();
    if out.is_empty() { "x".into() } else { out }
}

/// The name a migration of units is known by: its first unit that is not
/// the guard or a record (what the migration is for), else its first unit.
pub(super) fn migration_name(units: &[Unit]) -> &str {
    units
        .iter()
        .find(|u| u.name != "guard" && u.name != "record")
        .or(units.first())
        .map_or("empty", |u| u.name.as_str())
}

/// The name of a migration holding (part of) a rollback: its unit's name,
/// prefixed `undo_` unless it says so already (`undo_…`, `rollback_…`,
/// `…_down`).
pub(super) fn undo_name(units: &[Unit]) -> String {
    let name = migration_name(units);
    if name.starts_with("undo") || name.starts_with("rollback") || name.ends_with("_down") {
        name.to_string()
    } else {
        format!("undo_{name}")
    }
}

/// The header every exported file of `deploy` starts with (as text; the
/// runner writes it as a docstring or comments): the plan, which deploy and
/// which part of it, the summary, the app change that ships with it and how
/// to record that app deploy, and what undoes it.
pub(super) fn header(deploy: &Deploy, part: usize, parts: usize, undo: &str) -> String {
    let mut h = format!(
        "phasegate export: plan {}, deploy {} of {} (migration {part} of {parts} of this deploy)\n{}\n",
        deploy.plan, deploy.phase, deploy.of, deploy.summary
    );
    if deploy.app.is_empty() {
        h.push_str("No application change ships with this deploy.\n");
    } else {
        h.push_str("Ships with the application change:\n");
        for a in &deploy.app {
            h.push_str("  - ");
            h.push_str(a);
            h.push('\n');
        }
    }
    let _ = write!(
        h,
        "When the application code of deploy {} is live, record it:\n  phasegate mark --env <ENV> <PLAN FILE> --phase {} --app-version <VERSION>\n",
        deploy.phase, deploy.phase
    );
    h.push_str(undo);
    h.push_str(
        "\nWritten by `phasegate export`; do not edit: each migration checks and records\nits progress in the environment's phasegate log.",
    );
    h
}

/// What a unit is, for the comment above its statements: its name, whether
/// it runs in the transaction, the plan steps it runs, then its comments.
pub(super) fn unit_comment(unit: &Unit) -> String {
    let mut c = format!(
        "{} ({})",
        unit.name,
        if unit.transactional {
            "in the migration's transaction"
        } else {
            "outside any transaction, alone"
        }
    );
    if !unit.steps.is_empty() {
        let _ = write!(c, "; steps: {}", unit.steps.join(", "));
    }
    for line in &unit.comments {
        c.push('\n');
        c.push_str(line);
    }
    c
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use std::process::Command;

    use crate::dialect::Dialect;
    use crate::export::ExportFile;

    /// The Python interpreter `.ci/run` installs the runners into
    /// (`PHASEGATE_PYTHON`); `None` (after saying so) when it is not set
    /// and CI does not require it.
    pub(crate) fn python() -> Option<String> {
        match std::env::var("PHASEGATE_PYTHON") {
            Ok(p) if !p.is_empty() => Some(p),
            _ => {
                assert!(
                    std::env::var("PHASEGATE_REQUIRE_DATABASES").as_deref() != Ok("1"),
                    "PHASEGATE_PYTHON is not set (.ci/run sets it to the venv it installs Alembic and Django into)"
                );
                eprintln!(
                    "SKIPPED: PHASEGATE_PYTHON is not set; the Python side of this test did not run"
                );
                None
            }
        }
    }

    pub(crate) use crate::export::runners::golden_files::check as golden;

    /// Python compiles every file (a syntax error in a generated file fails).
    pub(crate) fn compiles(files: &[ExportFile]) {
        let Some(py) = python() else { return };
        for f in files {
            let out = Command::new(&py)
                .args(["-c", "import sys; compile(sys.stdin.read(), 'f', 'exec')"])
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .and_then(|mut child| {
                    use std::io::Write;
                    child
                        .stdin
                        .take()
                        .unwrap()
                        .write_all(f.contents.as_bytes())?;
                    child.wait_with_output()
                })
                .unwrap();
            assert!(
                out.status.success(),
                "{}: {}",
                f.path.display(),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }

    const HARD: &[&str] = &[
        "",
        "plain",
        "it's \"quoted\" ''' \"\"\" \"",
        "ends with a quote\"",
        "\"",
        "back\\slash \\n not a newline \\",
        "trailing backslash\\",
        "line one\nline two\n",
        "\n",
        "\"\"\"\n\"\"\"",
        "cr\rlf\r\n and tab\t and nul \0 and bell \x07 and del \x7f",
        "non-ASCII: café, naïve, Ωμέγα, 日本語, emoji 🦀",
        "invisible: \u{200b}zero width, \u{202e}bidi override, \u{feff}bom, \u{2028}ls",
        "SQL: SELECT ':name', '%s', 100% FROM t WHERE a::text = $1 AND b = 'x\\'y';",
        "DO $$ BEGIN\n  RAISE EXCEPTION 'nope: %', 1;\nEND $$;",
        "{braces} and f-string {x!r}",
        "\u{10ffff}\u{e000}",
    ];

    #[test]
    fn slugs_and_migration_cuts() {
        assert_eq!(
            slug("Rename users.name → full_name!", 40),
            "rename_users_name_full_name"
        );
        assert_eq!(slug("---", 10), "x");
        assert_eq!(slug("abcdef_ghij", 7), "abcdef");
        let deploys = crate::export::fixture::deploys(Dialect::Postgres);
        let cut = migrations(&deploys[0].units);
        let names: Vec<Vec<&str>> = cut
            .iter()
            .map(|m| m.iter().map(|u| u.name.as_str()).collect())
            .collect();
        assert_eq!(
            names,
            vec![
                vec!["guard"],
                vec!["add_column"],
                vec!["create_index"],
                vec!["record"],
                vec!["backfill_handoff"]
            ]
        );
        assert_eq!(migration_name(cut[0]), "guard");
        assert_eq!(migration_name(cut[4]), "backfill_handoff");
        assert_eq!(undo_name(cut[0]), "undo_guard");
        let mut down = cut[0][0].clone();
        down.name = "guard_down".into();
        assert_eq!(undo_name(&[down]), "guard_down");
    }

    #[test]
    fn string_literals_are_one_physical_token_and_escape_what_python_would_misread() {
        for s in HARD {
            let lit = string(s);
            assert!(!lit.contains('\r') && !lit.contains('\0'), "{lit:?}");
            assert!(!lit.contains('\u{202e}'), "{lit:?}");
            if !s.contains('\n') {
                assert!(!lit.contains('\n'), "{lit:?}");
            }
        }
        assert_eq!(string("a\"b\\c"), r#""a\"b\\c""#);
        assert_eq!(string("x\ny"), "\"\"\"x\ny\"\"\"");
        assert_eq!(string("é\u{200b}"), "\"é\\u200b\"");
    }

    #[test]
    fn python_reads_every_literal_back_as_the_text_it_was_made_from() {
        let Some(py) = python() else { return };
        // Each literal on a line of a program that prints the values as
        // JSON (ASCII-escaped), compared here with Rust's own reading.
        let mut program = String::from("import json\nvalues = [\n");
        for s in HARD {
            program.push_str(&string(s));
            program.push_str(",\n");
        }
        program.push_str("]\nprint(json.dumps(values))\n");
        let mut comments = String::new();
        for s in HARD {
            comment(&mut comments, "    ", s);
        }
        // Comments must stay comments: inside an indented block after a
        // statement, any line that escaped its `#` is a syntax error.
        program.push_str("if True:\n    pass\n");
        program.push_str(&comments);
        program.push_str("    pass\n");
        let out = Command::new(&py).args(["-c", &program]).output().unwrap();
        assert!(
            out.status.success(),
            "{}\n{program}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8(out.stdout).unwrap();
        let back: Vec<String> = serde_json::from_str(stdout.trim()).unwrap();
        let want: Vec<String> = HARD.iter().map(|s| s.to_string()).collect();
        assert_eq!(back, want);
    }
}
