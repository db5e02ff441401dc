//! `phasegate schema plan`: the JSON Schema of plan files, generated from
//! the loader's types (`phasegate::intent::plan_schema`) and checked in as
//! docs/schema/plan.json.
//!
//! `cargo test --bin phasegate plan_schema` fails when the checked-in file
//! is not what the code generates now; regenerate it with
//! `cargo test --bin phasegate write_plan_schema -- --ignored`.

use crate::cli::SchemaDocument;

/// The schema `document` names, as pretty-printed JSON with a final newline.
pub fn schema_text(document: SchemaDocument) -> String {
    let schema = match document {
        SchemaDocument::Plan => phasegate::intent::plan_schema(),
    };
    // A `serde_json::Value` always serializes.
    serde_json::to_string_pretty(&schema).unwrap_or_default() + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn path() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs/schema/plan.json")
    }

    #[test]
    fn the_checked_in_plan_schema_is_current() {
        let on_disk = std::fs::read_to_string(path()).unwrap_or_default();
        assert!(
            on_disk == schema_text(SchemaDocument::Plan),
            "docs/schema/plan.json is not what the code generates: run `cargo test --bin phasegate write_plan_schema -- --ignored`"
        );
    }

    /// Writes docs/schema/plan.json from the code.
    #[test]
    #[ignore = "writes docs/schema/plan.json: run it after changing a plan-file type"]
    fn write_plan_schema() {
        std::fs::write(path(), schema_text(SchemaDocument::Plan)).expect("write");
    }
}
