//! Reading plan files, with errors that point at the file, line and column.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{Intent, KINDS};
use crate::suggest;

/// A plan file: a name and the intents it declares.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlanFile {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub changes: Vec<Intent>,
    /// Where the plan was read from (`None` for a command-line shorthand).
    #[serde(skip)]
    pub path: Option<PathBuf>,
    /// The file's text as read, which the drift gate checksums.
    #[serde(skip)]
    pub source: Option<String>,
}

/// A phasegate plan file: the schema changes to roll out in expand–contract
/// phases (docs/intents.md).
#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "phasegate plan file")]
pub(super) struct RawPlanFile {
    /// The plan's name, which keys it in every environment's log (default:
    /// the file name without `.yaml`). A letter or digit, then letters,
    /// digits, `-`, `_`, `.`; at most 200 characters.
    #[serde(default)]
    #[schemars(regex(pattern = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"), length(max = 200))]
    name: Option<String>,
    /// What the plan is for, shown in the runbook.
    #[serde(default)]
    description: Option<String>,
    /// The changes, in order; each a map with one key, its kind (at least one).
    #[schemars(length(min = 1))]
    changes: Vec<Intent>,
}

/// A plan file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("cannot read plan {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Invalid(Diagnostic),
}

/// Where a plan file is wrong, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub file: String,
    /// 1-based line and column, when known.
    pub line: Option<usize>,
    pub column: Option<usize>,
    pub message: String,
    /// The text of the offending line, for showing it under the message.
    pub source_line: Option<String>,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.line, self.column) {
            (Some(l), Some(c)) => write!(f, "{}:{l}:{c}: {}", self.file, self.message),
            (Some(l), None) => write!(f, "{}:{l}: {}", self.file, self.message),
            _ => write!(f, "{}: {}", self.file, self.message),
        }
    }
}

/// Reads and validates the plan file at `path`. Its name defaults to the file stem.
pub fn load_plan(path: &Path) -> Result<PlanFile, PlanError> {
    let text = super::yaml::read_bounded(path).map_err(|source| PlanError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "plan".to_string());
    let mut plan = parse_plan(&text, &path.display().to_string(), &stem)?;
    plan.path = Some(path.to_path_buf());
    plan.source = Some(text);
    Ok(plan)
}

/// No plan file at a path, and no plan by that name.
#[derive(Debug, Clone, thiserror::Error)]
#[error("no plan file `{target}` and no plan named `{target}` under {}/{}\n  {}", dir.display(), crate::suggest::did_you_mean(.target, &.known.iter().map(String::as_str).collect::<Vec<_>>()), if known.is_empty() { format!("there are no plans under {}/", dir.display()) } else { format!("plans under {}/: {}", dir.display(), known.join(", ")) })]
pub struct PlanNotFound {
    pub target: String,
    pub dir: PathBuf,
    pub known: Vec<String>,
}

/// Finds a plan by path, or by name under `plans_dir` (`NAME.yaml` or `NAME.yml`).
pub fn locate_plan(plans_dir: &Path, target: &str) -> Result<PathBuf, PlanNotFound> {
    let candidates = [
        PathBuf::from(target),
        plans_dir.join(format!("{target}.yaml")),
        plans_dir.join(format!("{target}.yml")),
    ];
    candidates
        .into_iter()
        .find(|p| p.is_file())
        .ok_or_else(|| PlanNotFound {
            target: target.to_string(),
            dir: plans_dir.to_path_buf(),
            known: plan_names(plans_dir),
        })
}

/// The names of the plans under `plans_dir`, sorted.
pub fn plan_names(plans_dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(plans_dir)
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .filter_map(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .collect();
    names.sort();
    names
}

/// Parses plan text; `file` names it in errors, `default_name` is used when
/// the plan has no `name:`.
pub fn parse_plan(text: &str, file: &str, default_name: &str) -> Result<PlanFile, PlanError> {
    let diag = |line: Option<usize>, column, message| {
        PlanError::Invalid(Diagnostic {
            file: file.to_string(),
            line,
            column,
            message,
            source_line: line
                .and_then(|l| text.lines().nth(l.saturating_sub(1)))
                .map(str::to_string),
        })
    };
    let raw: RawPlanFile = super::yaml::from_str(text).map_err(|e| {
        if let Some(slip) = indentation_slip(text) {
            let change = change_at_line(text, slip.line)
                .map(|i| format!("changes[{i}]: "))
                .unwrap_or_default();
            return diag(
                Some(slip.line),
                Some(slip.column),
                format!("{change}{}", slip.message),
            );
        }
        let message = explain_yaml_error(&e);
        let message = match e.line.and_then(|l| change_at_line(text, l)) {
            Some(i) => format!("changes[{i}]: {message}"),
            None => message,
        };
        diag(e.line, e.column, message)
    })?;
    let name = raw.name.unwrap_or_else(|| default_name.to_string());
    if !is_valid_plan_name(&name) {
        let (line, column) = locate_key(text, "name").unzip();
        return Err(diag(
            line,
            column,
            format!(
                "plan name `{name}` must start with a letter or digit and hold only letters, digits, `-`, `_` and `.`"
            ),
        ));
    }
    if raw.changes.is_empty() {
        let (line, column) = locate_key(text, "changes").unzip();
        return Err(diag(
            line,
            column,
            "`changes` is empty: a plan declares at least one change".into(),
        ));
    }
    for (i, change) in raw.changes.iter().enumerate() {
        if let Err(message) = change.validate() {
            let (line, column) = locate_change(text, i).unzip();
            return Err(diag(
                line,
                column,
                format!("changes[{i}] ({}): {message}", change.kind()),
            ));
        }
    }
    Ok(PlanFile {
        name,
        description: raw.description,
        changes: raw.changes,
        path: None,
        source: None,
    })
}

/// Plan names become file names and keys in every environment's log.
pub fn is_valid_plan_name(name: &str) -> bool {
    name.chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && name.len() <= 200
}

/// The YAML reader's message, and for an unknown kind or field, with the
/// nearest valid name.
fn explain_yaml_error(e: &super::yaml::YamlError) -> String {
    let Some((given, expected)) = &e.unknown else {
        return e.message.clone();
    };
    let what = if e.message.starts_with("unknown variant") {
        "intent kind"
    } else {
        "field"
    };
    let mut candidates: Vec<&str> = expected.iter().map(String::as_str).collect();
    if what == "intent kind" && candidates.is_empty() {
        candidates = KINDS.to_vec();
    }
    suggest::unknown(what, given, &candidates)
}

/// A change kind whose fields stand beside it instead of under it.
struct Slip {
    /// 1-based line and column of the first field.
    line: usize,
    column: usize,
    message: String,
}

/// The indentation slip of a hand-written plan: `- rename_column:` followed
/// by `table: users` at the column of `rename_column`, which YAML reads as
/// one map of four keys (a kind with no fields, and three strays) instead of
/// a kind with its fields.
fn indentation_slip(text: &str) -> Option<Slip> {
    let lines: Vec<&str> = text.lines().collect();
    for (n, l) in lines.iter().enumerate() {
        let trimmed = l.trim_start();
        let Some(item) = trimmed.strip_prefix("- ") else {
            continue;
        };
        let dash_column = l.len() - trimmed.len();
        let key_column = l.len() - item.trim_start().len();
        let item = item.trim_start();
        let Some((key, rest)) = item.split_once(':') else {
            continue;
        };
        let rest = rest.trim();
        if !KINDS.contains(&key) || !(rest.is_empty() || rest.starts_with('#')) {
            continue;
        }
        // The item's lines: a field right of the kind is one of its fields;
        // one at the kind's column, or between the dash and it, is the
        // kind's sibling (YAML reads `- rename_column:` then `table: users`
        // below it as one map of both).
        for (offset, field) in lines[n + 1..].iter().enumerate() {
            let text = field.trim_start();
            if text.is_empty() || text.starts_with('#') {
                continue;
            }
            let indent = field.len() - text.len();
            if indent < dash_column || (indent == dash_column && text.starts_with('-')) {
                break;
            }
            if indent > key_column {
                continue;
            }
            let field_key = text.split(':').next().unwrap_or("").trim();
            return Some(Slip {
                line: n + offset + 2,
                column: indent + 1,
                message: format!(
                    "the fields of `{key}` must be indented under it: `{field_key}:` is not right of `{key}:`, so YAML reads it as a sibling of the kind, not one of its fields; indent `{key}`'s fields two more spaces than `{key}` (or write `- {key}: {{ {field_key}: …, … }}`)"
                ),
            });
        }
    }
    None
}

/// Line and column of a top-level `key:`.
fn locate_key(text: &str, key: &str) -> Option<(usize, usize)> {
    text.lines()
        .position(|l| l.starts_with(key) && l[key.len()..].trim_start().starts_with(':'))
        .map(|i| (i + 1, 1))
}

/// Which item under `changes:` (block style) holds `line` (1-based): one
/// pass over the lines, like [`locate_change`].
fn change_at_line(text: &str, line: usize) -> Option<usize> {
    let start = locate_key(text, "changes")?.0;
    let mut current = None;
    let mut indent = None;
    for l in text.lines().skip(start).take(line.saturating_sub(start)) {
        let trimmed = l.trim_start();
        let here = l.len() - trimmed.len();
        if trimmed.starts_with("---")
            || (!trimmed.is_empty()
                && here == 0
                && !trimmed.starts_with('-')
                && !trimmed.starts_with('#'))
        {
            return None; // past the block: the next top-level key or document
        }
        if (trimmed.starts_with("- ") || trimmed == "-") && *indent.get_or_insert(here) == here {
            current = Some(current.map_or(0, |c: usize| c + 1));
        }
    }
    current
}

/// Line and column of the `index`-th item under `changes:` in block style.
fn locate_change(text: &str, index: usize) -> Option<(usize, usize)> {
    let start = locate_key(text, "changes")?.0;
    let mut seen = 0;
    let mut indent = None;
    for (n, line) in text.lines().enumerate().skip(start) {
        let trimmed = line.trim_start();
        let here = line.len() - trimmed.len();
        if !trimmed.is_empty()
            && here == 0
            && !trimmed.starts_with('-')
            && !trimmed.starts_with('#')
        {
            break; // the next top-level key
        }
        if trimmed.starts_with("- ") || trimmed == "-" {
            if *indent.get_or_insert(here) != here {
                continue;
            }
            if seen == index {
                return Some((n + 1, here + 1));
            }
            seen += 1;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> Diagnostic {
        match parse_plan(text, "plans/p.yaml", "p") {
            Err(PlanError::Invalid(d)) => d,
            other => panic!("expected a diagnostic, got {other:?}"),
        }
    }

    #[test]
    fn a_valid_plan_parses_with_its_defaults() {
        let text = "changes:\n  - rename_column: { table: users, from: name, to: full_name }\n";
        let plan = parse_plan(text, "f", "rename-users").map_err(|e| e.to_string());
        let plan = plan.as_ref().map(|p| (p.name.as_str(), p.changes.len()));
        assert_eq!(plan, Ok(("rename-users", 1)));
    }

    #[test]
    fn misspelt_kind_gets_location_and_suggestion() {
        let d = err("name: x\nchanges:\n  - rename_colum: { table: users, from: a, to: b }\n");
        assert_eq!((d.line, d.column), (Some(3), Some(5)));
        assert!(
            d.message
                .starts_with("changes[0]: unknown intent kind `rename_colum`"),
            "{}",
            d.message
        );
        assert!(
            d.message.contains("did you mean `rename_column`?"),
            "{}",
            d.message
        );
    }

    #[test]
    fn misspelt_field_gets_suggestion() {
        let d = err(
            "changes:\n  - add_column:\n      tabel: users\n      column: c\n      type: text\n",
        );
        assert_eq!(d.line, Some(3));
        assert!(
            d.message
                .contains("unknown field `tabel`, did you mean `table`?"),
            "{}",
            d.message
        );
    }

    #[test]
    fn misspelt_down_gets_suggestion() {
        let d = err("changes:\n  - drop_column: { table: users, column: c, donw: \"0\" }\n");
        assert!(
            d.message
                .contains("unknown field `donw`, did you mean `down`?"),
            "{}",
            d.message
        );
        // `down` is an SQL expression, checked like every other.
        let d = err(
            "changes:\n  - drop_column: { table: users, column: c, down: \"0; drop table x\" }\n",
        );
        assert!(
            d.message.contains("not a single SQL expression"),
            "{}",
            d.message
        );
    }

    #[test]
    fn fields_beside_their_kind_are_said_to_belong_under_it() {
        let d = err(
            "changes:\n  - drop_table: { table: a }\n  - rename_column:\n    table: users\n    from: name\n    to: full_name\n",
        );
        assert_eq!((d.line, d.column), (Some(4), Some(5)), "{d}");
        assert!(
            d.message.starts_with(
                "changes[1]: the fields of `rename_column` must be indented under it: `table:` is not right of `rename_column:`"
            ),
            "{}",
            d.message
        );
        // One field under the kind and one beside it: the reader says only
        // "missing field"; the slip is named at the stray field.
        let d = err("changes:\n  - rename_column:\n      from: name\n    table: users\n");
        assert_eq!((d.line, d.column), (Some(4), Some(5)), "{d}");
        assert!(
            d.message.contains("`table:` is not right of"),
            "{}",
            d.message
        );
        // Indented under the kind, the same plan parses.
        let ok = parse_plan(
            "changes:\n  - rename_column:\n      table: users\n      from: name\n      to: full_name\n",
            "f",
            "p",
        );
        assert!(ok.is_ok(), "{ok:?}");
    }

    #[test]
    fn missing_field_is_named() {
        let d = err("changes:\n  - drop_column: { table: users }\n");
        assert!(
            d.message.contains("missing field `column`"),
            "{}",
            d.message
        );
        assert_eq!(d.line, Some(2));
    }

    #[test]
    fn yaml_syntax_error_has_location() {
        let d = err("changes:\n  - drop_column: { table: users, column: [\n");
        assert!(d.line.is_some() && d.column.is_some(), "{d}");
    }

    #[test]
    fn bad_type_is_reported_where_it_stands() {
        let d = err(
            "changes:\n  - add_column:\n      table: users\n      column: c\n      type: \"text; drop table users\"\n",
        );
        assert_eq!(d.line, Some(5));
        assert!(d.message.contains("is not an SQL type"), "{}", d.message);
    }

    #[test]
    fn rule_between_fields_points_at_the_change() {
        let d = err(
            "changes:\n  - drop_table: { table: a }\n  - add_column: { table: users, column: c, type: text, nullable: false }\n",
        );
        assert_eq!(d.line, Some(3));
        assert!(
            d.message
                .starts_with("changes[1] (add_column): required column `c` needs"),
            "{}",
            d.message
        );
    }

    #[test]
    fn empty_changes_and_bad_names_are_refused() {
        assert!(err("changes: []\n").message.contains("is empty"));
        assert!(
            err("name: ../x\nchanges:\n  - drop_table: { table: a }\n")
                .message
                .contains("plan name")
        );
    }
}
