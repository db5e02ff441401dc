//! Reading YAML (plan files and `phasegate.yaml`) within fixed budgets, with
//! serde-saphyr.
//!
//! A plan or config file is small and hand-written, so the limits below are
//! far above any real one and far below what would hurt the machine:
//!
//! | limit | value |
//! |---|---|
//! | file size (checked before parsing) | [`MAX_FILE_BYTES`] (1 MiB) |
//! | aliases (`*name`) in a file | [`MAX_ALIASES`] (64) |
//! | events replayed from aliases | 10,000 |
//! | nesting depth (maps and sequences) | [`MAX_DEPTH`] (32) |
//! | nodes | 100,000 |
//! | text (all scalars, aliases expanded) | [`MAX_SCALAR_BYTES`] (4 MiB) |
//! | documents | 1 |
//!
//! With a 1 MiB file, 64 aliases can expand to at most 64 MiB of text: an
//! alias bomb is refused with the line and column of the alias that crossed
//! the limit, not followed until memory runs out.

use std::path::Path;

use serde::de::DeserializeOwned;
use serde_saphyr::{Budget, DefaultMessageFormatter, MessageFormatter, Options};

/// The largest plan or config file phasegate reads, in bytes.
pub const MAX_FILE_BYTES: u64 = 1024 * 1024;
/// The most aliases a file may use.
pub const MAX_ALIASES: usize = 64;
/// The most text (all scalars, aliases expanded) a file may hold, in bytes.
pub const MAX_SCALAR_BYTES: usize = 4 * 1024 * 1024;
/// The deepest nesting of maps and sequences a file may have.
pub const MAX_DEPTH: usize = 32;

/// Why YAML text could not be read: the message and, when known, the 1-based
/// line and column it points at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct YamlError {
    pub message: String,
    pub line: Option<usize>,
    pub column: Option<usize>,
    /// The structured form of an unknown field or variant (`given`, valid
    /// names), for "did you mean".
    pub unknown: Option<(String, Vec<String>)>,
}

/// The options every plan and config file is read with.
fn options() -> Options {
    let mut budget = Budget::default();
    budget.max_aliases = MAX_ALIASES;
    budget.max_anchors = 1_000;
    budget.max_depth = MAX_DEPTH;
    budget.flow_nesting_limit = MAX_DEPTH;
    budget.max_nodes = 100_000;
    budget.max_events = 400_000;
    budget.max_documents = 1;
    budget.max_total_scalar_bytes = MAX_SCALAR_BYTES;
    budget.max_reader_input_bytes = Some(MAX_FILE_BYTES as usize);
    let mut options = Options::default();
    options.budget = Some(budget);
    options.alias_limits.max_total_replayed_events = 10_000;
    options.alias_limits.max_replay_stack_depth = 16;
    options.alias_limits.max_alias_expansions_per_anchor = MAX_ALIASES;
    options
}

/// Reads a file of at most [`MAX_FILE_BYTES`]; the size is checked before
/// the file is read.
pub fn read_bounded(path: &Path) -> std::io::Result<String> {
    let len = std::fs::metadata(path)?.len();
    if len > MAX_FILE_BYTES {
        return Err(std::io::Error::new(
            std::io::ErrorKind::FileTooLarge,
            too_large(len as usize),
        ));
    }
    std::fs::read_to_string(path)
}

fn too_large(len: usize) -> String {
    format!(
        "the file is {len} bytes; phasegate reads plan and config files of at most {MAX_FILE_BYTES} bytes"
    )
}

/// Deserialises `text` within the budgets above.
pub fn from_str<T: DeserializeOwned>(text: &str) -> Result<T, YamlError> {
    if text.len() as u64 > MAX_FILE_BYTES {
        return Err(YamlError {
            message: too_large(text.len()),
            line: None,
            column: None,
            unknown: None,
        });
    }
    serde_saphyr::from_str_with_options(text, options()).map_err(|e| explain(&e))
}

fn explain(e: &serde_saphyr::Error) -> YamlError {
    let location = e.location();
    let line = location.map(|l| l.line() as usize).filter(|l| *l > 0);
    let column = location.map(|l| l.column() as usize).filter(|c| *c > 0);
    let inner = innermost(e);
    let unknown = match inner {
        serde_saphyr::Error::SerdeUnknownField {
            field, expected, ..
        } => Some((
            field.to_string(),
            expected.iter().map(|s| s.to_string()).collect(),
        )),
        serde_saphyr::Error::SerdeUnknownVariant {
            variant, expected, ..
        } => Some((
            variant.to_string(),
            expected.iter().map(|s| s.to_string()).collect(),
        )),
        _ => None,
    };
    let message = match inner {
        serde_saphyr::Error::Budget { breach, .. } => over_budget(breach),
        serde_saphyr::Error::AliasReplayLimitExceeded { .. }
        | serde_saphyr::Error::AliasReplayStackDepthExceeded { .. }
        | serde_saphyr::Error::AliasReplayCounterOverflow { .. } => {
            format!("its aliases expand to too much: {}", LIMITS)
        }
        serde_saphyr::Error::DuplicateMappingKey { key: Some(k), .. } => {
            format!("duplicate key `{k}`: each key appears once in a map")
        }
        serde_saphyr::Error::DuplicateMappingKey { key: None, .. } => {
            "duplicate key: each key appears once in a map".to_string()
        }
        other => DefaultMessageFormatter
            .format_standalone_message(other)
            .into_owned(),
    };
    YamlError {
        message,
        line,
        column,
        unknown,
    }
}

/// The limits, as the user reads them in an error.
const LIMITS: &str = "a plan or config file is one YAML document of at most 1 MiB, with at most 64 aliases, 4 MiB of text once its aliases are expanded, 100,000 nodes, and nesting at most 32 deep";

/// What a budget breach means, in words.
fn over_budget(breach: &serde_saphyr::budget::BudgetBreach) -> String {
    use serde_saphyr::budget::BudgetBreach as B;
    let what = match breach {
        B::Aliases { .. } => format!("more than {MAX_ALIASES} aliases"),
        B::Depth { .. } => format!("nesting deeper than {MAX_DEPTH}"),
        B::ScalarBytes { .. } | B::RecordedAnchorBytes { .. } => {
            format!("more than {MAX_SCALAR_BYTES} bytes of text once its aliases are expanded")
        }
        B::Documents { .. } => "more than one YAML document".to_string(),
        B::Nodes { .. } | B::Events { .. } | B::RecordedAnchorEvents { .. } => {
            "too many nodes".to_string()
        }
        B::InputBytes { .. } => format!("more than {MAX_FILE_BYTES} bytes"),
        other => format!("{other:?}"),
    };
    format!("the file holds {what}: {LIMITS}")
}

/// The error under snippet and alias wrappers.
fn innermost(e: &serde_saphyr::Error) -> &serde_saphyr::Error {
    match e {
        serde_saphyr::Error::WithSnippet { error, .. } => innermost(error),
        serde_saphyr::Error::AliasError { error, .. } => innermost(error),
        other => other,
    }
}
