//! `phasegate lint`: reading a team's existing SQL migration files and
//! reporting each statement that is unsafe to run while the previous
//! release of the application is still serving (docs/lint.md).
//!
//! A file is read by [`source`] (the runner's markers, psql meta-commands,
//! statements with their positions), each statement parsed with sqlparser
//! in the file's dialect, and checked by every rule in [`rules`]; a few
//! facts carry from statement to statement and from file to file: whether
//! a transaction block is open, whether a lock timeout was set, and the
//! column types created so far ([`schema`]), which tell whether a later type
//! change rewrites the table.
//!
//! A statement is accepted by a comment above it,
//! `-- phasegate: accept <rule> <reason>`; the reason is required.
//!
//! The library returns findings; the binary renders them.

pub mod convert;
pub mod depth;
pub mod rules;
pub mod schema;
pub mod source;
mod split;
#[cfg(test)]
mod tests;
pub mod timeout;
mod walk;

use std::path::PathBuf;

use serde::Serialize;
use sqlparser::ast::Statement;
use sqlparser::parser::Parser;

use crate::dialect::Dialect;
pub use depth::MAX_DEPTH;
pub use source::Pos;

/// The rule id of a statement sqlparser cannot parse.
pub const PARSE_ERROR: &str = "parse-error";
/// The rule id of an accept marker that names no rule or gives no reason.
pub const INVALID_ACCEPT: &str = "invalid-accept";

/// One unsafe statement (or one problem reading a file).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// The file as it was named on the command line (or found under a folder named there).
    pub file: String,
    /// 1-based line and column of the statement's first word (sqlparser's token spans).
    pub line: u64,
    pub column: u64,
    /// The rule's id (`rename-column`, …; `parse-error`, `invalid-accept`).
    pub rule: String,
    /// What the statement does, in a phrase (`renames column users.name to full_name`).
    pub message: String,
    /// The lock it takes and for how long, for this dialect.
    pub lock: String,
    /// Why that is unsafe while the previous release runs.
    pub why: String,
    /// What to do instead: the phasegate intent that does it in phases.
    pub instead: String,
    /// The statement's first line.
    pub statement: String,
    /// The reason given by an accept marker; an accepted finding does not fail the run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accepted: Option<String>,
}

/// What `lint` found in every file it read.
#[derive(Debug, Default, Serialize)]
pub struct LintReport {
    /// The files read, in the order they were linted.
    pub files: Vec<PathBuf>,
    /// Findings, file by file, in statement order; accepted ones included.
    pub findings: Vec<Finding>,
    /// Files or folders that could not be read.
    #[serde(serialize_with = "errors_as_text")]
    pub errors: Vec<LintError>,
}

impl LintReport {
    /// Findings that are not accepted: each fails the run.
    pub fn open(&self) -> impl Iterator<Item = &Finding> {
        self.findings.iter().filter(|f| f.accepted.is_none())
    }

    /// The exit status for CI: 2 when a file could not be read, 1 when a
    /// finding is not accepted (a parse error is a finding), else 0.
    pub fn exit_code(&self) -> u8 {
        if !self.errors.is_empty() {
            2
        } else if self.open().next().is_some() {
            1
        } else {
            0
        }
    }
}

fn errors_as_text<S: serde::Serializer>(e: &[LintError], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(e.iter().map(ToString::to_string))
}

/// A file or folder that could not be linted.
#[derive(Debug, thiserror::Error)]
pub enum LintError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: no .sql files in this folder", path.display())]
    NoSqlFiles { path: PathBuf },
    #[error("{}: not a regular file (a named pipe, socket or device is not read)", path.display())]
    NotAFile { path: PathBuf },
}

/// One statement of a file, parsed, with what was true where it ran.
#[derive(Debug)]
pub struct Parsed {
    pub chunk: source::Chunk,
    /// The statement, or sqlparser's message (with its line and column).
    pub statement: Result<Statement, String>,
    /// A transaction block (`BEGIN` … `COMMIT`, or the runner's) is open.
    pub in_transaction: bool,
    /// A `lock_timeout` (MySQL: `lock_wait_timeout`) was set before it.
    pub lock_timeout_set: bool,
}

/// Parses `text` statement by statement. `Err`: the tokenizer cannot read
/// the file at all (its position and message).
pub fn parse(dialect: Dialect, text: &str) -> Result<Vec<Parsed>, (Pos, String)> {
    let mut out = Vec::new();
    parse_each(dialect, text, |p| out.push(p))?;
    Ok(out)
}

/// Parses `text` one statement at a time, handing each to `f` (so only one
/// statement's tokens and tree are held at once). `Err`: the tokenizer
/// cannot read the rest of the file (its position and message); the
/// statements before it were handed to `f`.
pub fn parse_each(
    dialect: Dialect,
    text: &str,
    mut f: impl FnMut(Parsed),
) -> Result<(), (Pos, String)> {
    let sql_dialect = sql_dialect(dialect);
    let mut in_transaction = false;
    let mut markers = source::Markers::default();
    let mut timeout = timeout::Tracker::default();
    for item in source::Reader::new(sql_dialect.as_ref(), text) {
        let (m, chunk) = item?;
        if m != markers {
            in_transaction = m.runner_transaction;
            markers = m;
        }
        let depth = depth::depth(&chunk.tokens);
        let statement = if dialect == Dialect::Postgres && chunk.first_word == "DO" {
            // A DO block's body is procedural code phasegate does not read.
            Err(String::new())
        } else if depth > MAX_DEPTH {
            Err(format!(
                "the statement nests {depth} operators deep; phasegate reads up to {MAX_DEPTH}"
            ))
        } else {
            let mut tokens = chunk.tokens.clone();
            tokens.push(sqlparser::tokenizer::TokenWithSpan::wrap(
                sqlparser::tokenizer::Token::EOF,
            ));
            Parser::new(sql_dialect.as_ref())
                .with_tokens_with_locations(tokens)
                .parse_statements()
                .map_err(|e| e.to_string())
                .and_then(|mut s| match s.len() {
                    1 => Ok(s.remove(0)),
                    _ => Err("expected one statement".to_string()),
                })
        };
        let ran_in = in_transaction;
        let timeout_before = timeout.in_force();
        if let Ok(s) = &statement {
            match s {
                Statement::StartTransaction { .. } => in_transaction = true,
                Statement::Commit { .. } | Statement::Rollback { .. } => in_transaction = false,
                _ => {}
            }
            timeout.observe(s, dialect, ran_in || in_transaction);
        }
        f(Parsed {
            chunk,
            statement,
            in_transaction: ran_in,
            lock_timeout_set: timeout_before,
        });
    }
    Ok(())
}

/// sqlparser's dialect for ours.
fn sql_dialect(dialect: Dialect) -> Box<dyn sqlparser::dialect::Dialect> {
    use sqlparser::dialect::{MySqlDialect, PostgreSqlDialect, SQLiteDialect};
    match dialect {
        Dialect::Postgres => Box::new(PostgreSqlDialect {}),
        Dialect::Mysql => Box::new(MySqlDialect {}),
        Dialect::Sqlite => Box::new(SQLiteDialect {}),
    }
}

/// Lints one file's text; `schema` carries the columns earlier files created.
pub fn lint_text(
    file: &str,
    text: &str,
    dialect: Dialect,
    schema: &mut schema::Schema,
) -> Vec<Finding> {
    let mut findings = Vec::new();
    let mut once_reported: Vec<&'static str> = Vec::new();
    let mut new_tables: Vec<String> = Vec::new();
    let read = parse_each(dialect, text, |p| {
        let (accepts, mut bad) = accepts(file, &p.chunk);
        findings.append(&mut bad);
        let mut found = Vec::new();
        match &p.statement {
            Err(m) if m.is_empty() => {}
            Err(m) => {
                // An error at the end of the statement has no place of its
                // own in sqlparser's message: it is where the statement ends.
                let at = match p.chunk.tokens.last() {
                    Some(t) if m.contains("found: EOF") => Pos {
                        line: t.span.end.line,
                        column: t.span.end.column,
                    },
                    _ => p.chunk.start,
                };
                found.push(parse_error(file, at, m, p.chunk.summary()))
            }
            Ok(statement) => {
                // Changes to a table this file created are not reported
                // (it is empty, and no release uses it yet), except the
                // locks they take on existing tables.
                let on_new_table =
                    rules::target(statement, dialect).is_some_and(|t| new_tables.contains(&t));
                let cx = rules::Cx {
                    new_tables: &new_tables,
                    statement,
                    dialect,
                    in_transaction: p.in_transaction,
                    lock_timeout_set: p.lock_timeout_set,
                    schema,
                };
                for rule in rules::RULES {
                    if on_new_table && rule.id != rules::MISSING_LOCK_TIMEOUT {
                        continue;
                    }
                    if rule.once_per_file && once_reported.contains(&rule.id) {
                        continue;
                    }
                    for hit in (rule.check)(&cx) {
                        if rule.once_per_file {
                            once_reported.push(rule.id);
                        }
                        found.push(Finding {
                            file: file.to_string(),
                            line: p.chunk.start.line,
                            column: p.chunk.start.column,
                            rule: rule.id.to_string(),
                            message: hit.message,
                            lock: hit.lock,
                            why: hit.why,
                            instead: hit.instead,
                            statement: p.chunk.summary(),
                            accepted: None,
                        });
                    }
                }
                schema.observe(statement, dialect);
                new_tables.extend(rules::created(statement, dialect));
            }
        }
        for f in &mut found {
            f.accepted = accepts
                .iter()
                .find(|(rule, _)| *rule == f.rule)
                .map(|(_, reason)| reason.clone());
        }
        findings.append(&mut found);
    });
    if let Err((pos, message)) = read {
        findings.push(parse_error(file, pos, &message, String::new()));
    }
    findings
}

fn parse_error(file: &str, pos: Pos, message: &str, statement: String) -> Finding {
    // sqlparser ends its messages with " at Line: L, Column: C" (the file's own positions).
    let (message, at) = match message.rsplit_once(" at Line: ") {
        Some((m, rest)) => {
            let mut nums = rest
                .split(|c: char| !c.is_ascii_digit())
                .filter(|s| !s.is_empty())
                .filter_map(|s| s.parse::<u64>().ok());
            match (nums.next(), nums.next()) {
                (Some(line), Some(column)) if line > 0 => (m.to_string(), Pos { line, column }),
                _ => (message.to_string(), pos),
            }
        }
        None => (message.to_string(), pos),
    };
    Finding {
        file: file.to_string(),
        line: at.line,
        column: at.column,
        rule: PARSE_ERROR.to_string(),
        message: format!("cannot parse this statement: {message}"),
        lock: "unknown: the statement was not checked".to_string(),
        why: "phasegate could not read the statement, so none of the rules checked it".to_string(),
        instead: "fix the syntax, or if the database accepts it, review it by hand and accept it with `-- phasegate: accept parse-error <reason>`".to_string(),
        statement,
        accepted: None,
    }
}

/// The accept markers above a statement, as (rule, reason); a marker
/// without a reason or naming no rule is an `invalid-accept` finding.
fn accepts(file: &str, chunk: &source::Chunk) -> (Vec<(String, String)>, Vec<Finding>) {
    let mut ok = Vec::new();
    let mut bad = Vec::new();
    for (pos, text) in &chunk.comments {
        let Some(rest) = text.strip_prefix("phasegate:") else {
            continue;
        };
        let mut words = rest.split_whitespace();
        let (verb, rule) = (words.next(), words.next());
        let reason = words.collect::<Vec<_>>().join(" ");
        let known = rules::ids();
        let problem = match (verb, rule) {
            (Some("accept"), Some(rule)) if known.contains(&rule) => {
                if reason.is_empty() {
                    Some(format!(
                        "`accept {rule}` needs a reason: `-- phasegate: accept {rule} <why it is safe here>`"
                    ))
                } else {
                    ok.push((rule.to_string(), reason));
                    None
                }
            }
            (Some("accept"), Some(rule)) => Some(crate::suggest::unknown("rule", rule, &known)),
            (Some("accept"), None) => Some(
                "`accept` needs a rule and a reason: `-- phasegate: accept <rule> <reason>`"
                    .to_string(),
            ),
            (other, _) => Some(format!(
                "unknown marker `phasegate: {}`; the marker is `-- phasegate: accept <rule> <reason>`",
                other.unwrap_or("")
            )),
        };
        if let Some(message) = problem {
            bad.push(Finding {
                file: file.to_string(),
                line: pos.line,
                column: pos.column,
                rule: INVALID_ACCEPT.to_string(),
                message,
                lock: "none".to_string(),
                why: "a marker that is not understood accepts nothing".to_string(),
                instead:
                    "write `-- phasegate: accept <rule> <reason>` on the line above the statement"
                        .to_string(),
                statement: chunk.summary(),
                accepted: None,
            });
        }
    }
    (ok, bad)
}

/// Lints files and folders (a folder: its `.sql` files, recursively, in
/// name order, which is the order Flyway, dbmate, goose and sqlx apply
/// them). Column types created in one file are known in the next.
///
/// Only regular files are read: a named pipe, socket or device (named on
/// the command line, or found in a folder as `*.sql`) is reported as an
/// error and never opened, since reading one can block forever. Each file
/// is linted once, however many paths reach it (its canonical path decides),
/// and a folder already walked (a symlink back to a parent) is not walked again.
pub fn lint_paths(paths: &[PathBuf], dialect: Dialect) -> LintReport {
    let mut report = LintReport::default();
    let mut walk = walk::Walk::default();
    for path in paths {
        match std::fs::metadata(path) {
            Ok(m) if m.is_dir() => {
                let before = walk.files.len();
                walk.dir(path, &mut report.errors);
                if walk.files.len() == before && !walk.seen_error {
                    report
                        .errors
                        .push(LintError::NoSqlFiles { path: path.clone() });
                }
            }
            Ok(m) => walk.file(path, &m, &mut report.errors),
            Err(source) => report.errors.push(LintError::Read {
                path: path.clone(),
                source,
            }),
        }
    }
    let mut schema = schema::Schema::default();
    for file in walk.files {
        match std::fs::read_to_string(&file) {
            Ok(text) => {
                let name = file.display().to_string();
                report
                    .findings
                    .extend(lint_text(&name, &text, dialect, &mut schema));
                report.files.push(file);
            }
            Err(source) => report.errors.push(LintError::Read { path: file, source }),
        }
    }
    report
}
