//! The one place the Flyway, Liquibase and Rails writers turn free text
//! (plan names, summaries, app changes, unit comments) and SQL into comment
//! lines, file-name slugs, Ruby constants, Ruby string literals and Ruby
//! heredocs. Every such piece of their output goes through a function here,
//! so hostile text (quotes, backslashes, `#{`, newlines, control and
//! non-ASCII characters) cannot end a comment, a string or a heredoc early.

/// `text` as the bodies of line comments (`-- …` in SQL, `# …` in Ruby):
/// one entry per line of `text`, split at `\n`, `\r\n` and a lone `\r`
/// (PostgreSQL ends a `--` comment at either), with other control
/// characters written as `\u{…}` so none reaches the file raw. Always at
/// least one entry.
pub(super) fn comment_lines(text: &str) -> Vec<String> {
    text.replace("\r\n", "\n")
        .split(['\n', '\r'])
        .map(visible)
        .collect()
}

/// One line: control characters other than tab written as `\u{…}`.
fn visible(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    for c in line.chars() {
        if c.is_control() && c != '\t' {
            out.push_str(&format!("\\u{{{:x}}}", c as u32));
        } else {
            out.push(c);
        }
    }
    out
}

/// `text` on one line (for a single-line field such as Liquibase's
/// `--comment:`): line breaks become spaces, control characters `\u{…}`.
pub(super) fn one_line(text: &str) -> String {
    comment_lines(text).join(" ")
}

/// A file-name and identifier slug: ASCII letters and digits lowercased,
/// every other run of characters one `_`, no `_` at either end; `fallback`
/// when nothing is left (a name of only non-ASCII letters).
pub(super) fn slug(text: &str, fallback: &str) -> String {
    let mut out = String::new();
    for c in text.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.is_empty() && !out.ends_with('_') {
            out.push('_');
        }
    }
    while out.ends_with('_') {
        out.pop();
    }
    if out.is_empty() {
        fallback.to_string()
    } else {
        out
    }
}

/// The Ruby constant ActiveSupport's `camelize` makes of a slug
/// (`rename_users_name_p1_02_add_column` → `RenameUsersNameP102AddColumn`),
/// which Rails requires a migration file's class to be named. The slug must
/// start with a letter (a constant cannot start with a digit): callers build
/// it from a letter-led prefix.
pub(super) fn camel(slug: &str) -> String {
    slug.split('_')
        .map(|part| {
            let mut cs = part.chars();
            match cs.next() {
                Some(first) => first.to_ascii_uppercase().to_string() + cs.as_str(),
                None => String::new(),
            }
        })
        .collect()
}

/// A Ruby single-quoted string literal: only `\` and `'` are special inside
/// one, so they are escaped and everything else (`#{`, newlines, non-ASCII)
/// is literal.
pub(super) fn ruby_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('\'');
    for c in text.chars() {
        if c == '\\' || c == '\'' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('\'');
    out
}

/// A Ruby heredoc whose value is exactly `body`, opened on the current line
/// (the returned text starts with `<<~'TERM'` or `<<-'TERM'`) and closed on
/// a line of its own indented two spaces less (the code's own indentation
/// when `indent` is one level deeper than the line that opens it).
///
/// The terminator is quoted, so the body is literal (no `#{}`
/// interpolation, no backslash escapes), and it is `SQL`, or `SQL_1`,
/// `SQL_2`, … if the body contains that word anywhere (a body line equal
/// to it would end the heredoc early). The squiggly form `<<~`, whose body
/// is indented with the code, is used when stripping the indentation gives
/// back `body` exactly: some non-blank line starts at column 0 and no line
/// starts with a tab or is only spaces. Otherwise the body goes unindented
/// into a `<<-` heredoc, which keeps it as written.
pub(super) fn ruby_heredoc(body: &str, indent: usize) -> String {
    let mut term = "SQL".to_string();
    let mut n = 0;
    while body.contains(&term) {
        n += 1;
        term = format!("SQL_{n}");
    }
    let body = body.strip_suffix('\n').unwrap_or(body);
    let lines: Vec<&str> = body.split('\n').collect();
    let squiggly = lines
        .iter()
        .any(|l| !l.is_empty() && !l.starts_with([' ', '\t']))
        && lines.iter().all(|l| {
            !l.starts_with('\t') && !l.starts_with(" \t") && (l.is_empty() || !l.trim().is_empty())
        })
        && !body.contains('\r');
    let pad = " ".repeat(indent);
    let mut out = String::new();
    if squiggly {
        out.push_str(&format!("<<~'{term}'\n"));
        for l in &lines {
            if !l.is_empty() {
                out.push_str(&pad);
                out.push_str(l);
            }
            out.push('\n');
        }
    } else {
        out.push_str(&format!("<<-'{term}'\n"));
        for l in &lines {
            out.push_str(l);
            out.push('\n');
        }
    }
    out.push_str(&" ".repeat(indent.saturating_sub(2)));
    out.push_str(&term);
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    const HOSTILE: &str =
        "it's a \"test\" \\ with #{system('x')} and\nnew line\r\n-- and ünïcödé ✓\u{0}end";

    #[test]
    fn comment_lines_cannot_end_a_comment_early() {
        let lines = comment_lines(HOSTILE);
        assert_eq!(lines.len(), 3, "{lines:?}");
        for l in &lines {
            assert!(!l.contains(['\n', '\r', '\0']), "{l:?}");
        }
        assert!(lines[2].contains("ünïcödé ✓\\u{0}end"), "{lines:?}");
        assert_eq!(one_line("a\nb\rc"), "a b c");
    }

    #[test]
    fn slugs_and_constants_are_plain_ascii() {
        assert_eq!(
            slug("Rename users.name → full_name!", "plan"),
            "rename_users_name_full_name"
        );
        assert_eq!(slug("üé ✓", "plan"), "plan");
        assert_eq!(
            camel("rename_users_name_p1_02_add_column"),
            "RenameUsersNameP102AddColumn"
        );
    }

    #[test]
    fn a_ruby_string_escapes_only_what_single_quotes_need() {
        assert_eq!(ruby_string(r"it's \ #{x}"), r"'it\'s \\ #{x}'");
    }

    #[test]
    fn a_heredoc_terminator_never_appears_in_its_body() {
        let h = ruby_heredoc("SELECT 'SQL';\nSELECT 'SQL_1';", 4);
        assert!(h.starts_with("<<~'SQL_2'\n"), "{h}");
        assert!(h.ends_with("\n  SQL_2"), "{h}");
        let plain = ruby_heredoc("CREATE TABLE t (\n  a int\n);\n", 4);
        assert_eq!(
            plain,
            "<<~'SQL'\n    CREATE TABLE t (\n      a int\n    );\n  SQL"
        );
        let indented = ruby_heredoc("  SELECT 1;", 4);
        assert_eq!(indented, "<<-'SQL'\n  SELECT 1;\n  SQL");
    }

    /// Ruby itself reads each heredoc and string literal back to exactly
    /// the text it was made from (run where `ruby` is installed).
    #[test]
    fn ruby_reads_hostile_literals_back_exactly() {
        let Some(ruby) = ruby() else {
            eprintln!("SKIPPED: ruby_reads_hostile_literals_back_exactly: no ruby on PATH");
            return;
        };
        let bodies = [
            HOSTILE.replace(['\0', '\r'], ""),
            "SQL\n  SQL\nDO $$ BEGIN RAISE NOTICE '#{x}'; END $$;".to_string(),
            "\tSELECT 1;\n   \nSELECT '\\n';".to_string(),
            "  indented\n    more".to_string(),
        ];
        let mut script = String::from("out = []\n");
        for b in &bodies {
            script.push_str(&format!("out << ({}\n)\n", ruby_heredoc(b, 4)));
            script.push_str(&format!("out << {}\n", ruby_string(b)));
        }
        script.push_str("out.each { |s| STDOUT.write(s.unpack1('H*') + \"\\n\") }\n");
        let output = std::process::Command::new(&ruby)
            .arg("-e")
            .arg(&script)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}\n{script}",
            String::from_utf8_lossy(&output.stderr)
        );
        let got: Vec<String> = String::from_utf8(output.stdout)
            .unwrap()
            .lines()
            .map(|h| String::from_utf8(hex_decode(h)).unwrap())
            .collect();
        for (i, b) in bodies.iter().enumerate() {
            let want = b.strip_suffix('\n').unwrap_or(b);
            assert_eq!(
                got[2 * i].strip_suffix('\n').unwrap_or(&got[2 * i]),
                want,
                "heredoc {i}"
            );
            assert_eq!(got[2 * i + 1], *b, "string {i}");
        }
    }

    fn hex_decode(h: &str) -> Vec<u8> {
        (0..h.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&h[i..i + 2], 16).unwrap())
            .collect()
    }

    /// The ruby `.ci/run` installs (`PHASEGATE_RAILS_RUBY`), else `ruby` on
    /// PATH, if it runs; with `PHASEGATE_REQUIRE_DATABASES=1` (CI) a missing
    /// one fails the test instead of skipping it.
    pub(crate) fn ruby() -> Option<String> {
        let ruby = std::env::var("PHASEGATE_RAILS_RUBY").unwrap_or_else(|_| "ruby".into());
        let runs = std::process::Command::new(&ruby)
            .arg("-v")
            .output()
            .is_ok_and(|o| o.status.success());
        if !runs && std::env::var("PHASEGATE_REQUIRE_DATABASES").as_deref() == Ok("1") {
            panic!("no ruby ({ruby}): .ci/run installs it (PHASEGATE_RAILS_RUBY)");
        }
        runs.then_some(ruby)
    }
}
