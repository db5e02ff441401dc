//! Rendering a plan for people and machines. Every renderer returns a
//! `String`; the binary decides where it goes.

mod graph;
mod json;
mod markdown;
pub mod script;
mod sql;
mod text;

use std::fmt;
use std::str::FromStr;

use crate::config::Environment;
use crate::plan::{LockDuration, LockNote, Plan};
use crate::session_bounds::StepBounds;

pub use graph::{dot, mermaid};
pub use json::json;
pub use markdown::markdown;
pub use sql::sql;
pub use text::text;

/// The formats `phasegate plan --format` offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
    Markdown,
    Mermaid,
    Dot,
    Sql,
}

impl Format {
    pub const NAMES: &'static [&'static str] =
        &["text", "json", "markdown", "mermaid", "dot", "sql"];
}

/// An unknown format name, with the nearest known one.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}", crate::suggest::unknown("format", .given, Format::NAMES))]
pub struct UnknownFormat {
    pub given: String,
}

impl FromStr for Format {
    type Err = UnknownFormat;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "text" => Format::Text,
            "json" => Format::Json,
            "markdown" | "md" => Format::Markdown,
            "mermaid" => Format::Mermaid,
            "dot" => Format::Dot,
            "sql" => Format::Sql,
            _ => {
                return Err(UnknownFormat {
                    given: s.to_string(),
                });
            }
        })
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Format::Text => "text",
            Format::Json => "json",
            Format::Markdown => "markdown",
            Format::Mermaid => "mermaid",
            Format::Dot => "dot",
            Format::Sql => "sql",
        })
    }
}

/// What the SQL script and the runbook need beyond the plan.
#[derive(Debug, Clone, Copy, Default)]
pub struct Context<'a> {
    /// The bounds each step's SQL runs under.
    pub bounds: StepBounds,
    /// The environment `bounds` are from (`plan --env`); `None`: phasegate's defaults.
    pub env: Option<&'a str>,
    /// The environments of `phasegate.yaml`, in promotion order; `None`
    /// when there is no config.
    pub environments: Option<&'a [Environment]>,
}

impl Context<'_> {
    /// Whose bounds the SQL uses, in words.
    pub(crate) fn bounds_source(&self) -> String {
        match self.env {
            Some(env) => format!("environment {env}'s"),
            None => "phasegate's defaults; `plan --env ENV` uses that environment's".to_string(),
        }
    }
}

/// Renders `plan` in `format`, planned without a config (phasegate's
/// default bounds, no environments).
pub fn render(plan: &Plan, format: Format) -> String {
    render_with(plan, format, &Context::default())
}

/// Renders `plan` in `format`; the SQL and the runbook use `cx`.
pub fn render_with(plan: &Plan, format: Format, cx: &Context<'_>) -> String {
    match format {
        Format::Text => text(plan),
        Format::Json => json(plan),
        Format::Markdown => markdown(plan, cx),
        Format::Mermaid => mermaid(plan),
        Format::Dot => dot(plan),
        Format::Sql => sql(plan, cx),
    }
}

/// "ACCESS EXCLUSIVE on users, brief (blocks reads and writes)".
pub(crate) fn describe_lock(lock: &LockNote) -> String {
    use crate::plan::Blocks;
    let on = if lock.tables.is_empty() {
        String::new()
    } else {
        format!(" on {}", lock.tables.join(", "))
    };
    let how_long = match lock.duration {
        LockDuration::Brief => "brief",
        LockDuration::Scan => "for a scan of the table",
        LockDuration::PerBatch => "per batch",
    };
    let blocks = match lock.blocks {
        Blocks::ReadsAndWrites => "blocks reads and writes",
        Blocks::Writes => "blocks writes",
        Blocks::Nothing => "blocks neither reads nor writes",
    };
    format!("{}{on}, {how_long} ({blocks})", lock.mode)
}

/// What must be true before a phase may start, in words.
pub(crate) fn gates_for(plan: &Plan, number: usize) -> Vec<String> {
    let mut gates = Vec::new();
    if number > 1 {
        gates.push(format!(
            "deploy {} is complete in this environment (its code runs on every instance)",
            number - 1
        ));
        if plan.phases[number - 2]
            .steps
            .iter()
            .any(|&s| plan.steps[s].kind == crate::plan::StepKind::Verify)
        {
            gates.push(format!(
                "deploy {}'s verification queries still pass",
                number - 1
            ));
        }
    }
    gates.push("the previous environment has completed this deploy".into());
    if !plan.phases[number - 1].reversible {
        gates.push("irreversible: the previous deploy has soaked, a fresh backup is recorded, and the step is approved".into());
    }
    gates
}
