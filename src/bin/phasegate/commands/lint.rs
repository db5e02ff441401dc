//! `phasegate lint`: the findings of `phasegate::lint` rendered as text,
//! JSON, gcc-style lines or GitHub workflow commands (docs/lint.md), and
//! the exit status for CI (0 none, 1 findings, 2 a file could not be read).

use std::path::Path;

use phasegate::lint::{self, Finding, LintReport};

use super::envelope::Rendered;
use crate::cli::{LintArgs, LintFormat};
use crate::plan::Project;

pub fn run(args: LintArgs, config: Option<&Path>) -> Rendered {
    let dialect = match args.dialect {
        Some(d) => d,
        None => Project::find(config).dialect_for("read as"),
    };
    let report = lint::lint_paths(&args.paths, dialect);
    let stdout = match args.format {
        LintFormat::Text => text(&report),
        LintFormat::Json => json(&report, dialect),
        LintFormat::Gcc => report.open().map(gcc).collect(),
        LintFormat::Github => report.open().map(github).collect(),
    };
    let stderr = if args.format == LintFormat::Json {
        String::new()
    } else {
        report
            .errors
            .iter()
            .map(|e| format!("error: {e}\n"))
            .collect()
    };
    Rendered {
        stdout,
        stderr,
        code: report.exit_code(),
    }
}

fn severity(f: &Finding) -> &'static str {
    if f.rule == lint::PARSE_ERROR {
        "error"
    } else {
        "warning"
    }
}

fn text(report: &LintReport) -> String {
    let mut out = String::new();
    for f in report.open() {
        out.push_str(&format!(
            "{}:{}:{}: {}: {}\n",
            f.file, f.line, f.column, f.rule, f.message
        ));
        if !f.statement.is_empty() {
            out.push_str(&format!("  statement: {}\n", f.statement));
        }
        out.push_str(&format!("  lock:      {}\n", f.lock));
        out.push_str(&format!("  why:       {}\n", f.why));
        out.push_str(&format!("  instead:   {}\n\n", f.instead));
    }
    let open = report.open().count();
    let accepted = report.findings.len() - open;
    let files = report.files.len();
    let plural = |n: usize, one: &str, many: &str| {
        if n == 1 {
            format!("1 {one}")
        } else {
            format!("{n} {many}")
        }
    };
    out.push_str(&format!(
        "{} in {}",
        plural(open, "finding", "findings"),
        plural(files, "file", "files")
    ));
    if accepted > 0 {
        out.push_str(&format!(" ({accepted} accepted)"));
    }
    out.push_str(".\n");
    out
}

fn json(report: &LintReport, dialect: phasegate::dialect::Dialect) -> String {
    let doc = serde_json::json!({
        "command": "lint",
        "dialect": dialect,
        "exit_code": report.exit_code(),
        "files": report.files,
        "findings": report.findings,
        "errors": report.errors.iter().map(ToString::to_string).collect::<Vec<_>>(),
    });
    let mut s = serde_json::to_string_pretty(&doc).unwrap_or_else(|e| {
        format!("{{\"command\":\"lint\",\"exit_code\":2,\"errors\":[\"cannot render JSON: {e}\"]}}")
    });
    s.push('\n');
    s
}

/// `file:line:col: warning: rule: message (lock: …)`, the format compilers
/// print and editors jump to.
fn gcc(f: &Finding) -> String {
    let one_line = |s: &str| s.replace(['\n', '\r'], " ");
    format!(
        "{}:{}:{}: {}: {}: {} (lock: {}; instead: {})\n",
        f.file,
        f.line,
        f.column,
        severity(f),
        f.rule,
        one_line(&f.message),
        one_line(&f.lock),
        one_line(&f.instead)
    )
}

/// A GitHub Actions workflow command: `::warning file=…,line=…,col=…,title=…::message`.
/// The message escapes `%`, CR and LF; property values escape `:` and `,` too
/// (GitHub's "Workflow commands for GitHub Actions", and the runner's
/// `escapeData` / `escapeProperty`).
fn github(f: &Finding) -> String {
    let message = format!(
        "{}\nlock: {}\nwhy: {}\ninstead: {}",
        f.message, f.lock, f.why, f.instead
    );
    format!(
        "::{} file={},line={},col={},title={}::{}\n",
        severity(f),
        escape_property(&f.file),
        f.line,
        f.column,
        escape_property(&format!("phasegate {}", f.rule)),
        escape_data(&message)
    )
}

fn escape_data(s: &str) -> String {
    s.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

fn escape_property(s: &str) -> String {
    escape_data(s).replace(':', "%3A").replace(',', "%2C")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn github_escapes_data_and_properties() {
        assert_eq!(escape_data("50% a\r\nb:c,d"), "50%25 a%0D%0Ab:c,d");
        assert_eq!(escape_property("a:b,c%\n"), "a%3Ab%2Cc%25%0A");
    }
}
