//! The JSON Schema of each environment command's document (docs/json.md),
//! generated from the types that serialize it and checked in under
//! docs/schema/<command>.json.
//!
//! `cargo test --bin phasegate schema` fails when a checked-in file is not
//! what the code generates now; regenerate them with
//! `cargo test --bin phasegate write_schemas -- --ignored`.

use std::path::PathBuf;

use schemars::JsonSchema;
use serde_json::{Value, json};

use super::accept_change::AcceptPayload;
use super::apply::ApplyPayload;
use super::approve::ApprovePayload;
use super::backup::BackupPayload;
use super::check::CheckPayload;
use super::envelope::{Envelope, Outcome, SCHEMA_VERSION};
use super::export::ExportPayload;
use super::history::HistoryPayload;
use super::mark::MarkPayload;
use super::rollback::RollbackPayload;
use super::status_report::StatusPayload;
use super::verify::VerifyPayload;
use phasegate::execute::Resolution;
use phasegate::tracker::gates::Verdict;

/// The schema of `command`'s document with payload `P`: the envelope's
/// `command` and `schema_version` pinned to their values.
fn schema_of<P: JsonSchema>(command: &str) -> Value {
    let mut s = serde_json::to_value(schemars::schema_for!(Envelope<P>)).expect("a schema");
    s["title"] = json!(format!("phasegate {command} --format json"));
    s["description"] = json!(format!(
        "The one JSON document `phasegate {command} --format json` prints on stdout, whatever the outcome (docs/json.md)."
    ));
    s["properties"]["command"] = json!({ "const": command });
    s["properties"]["schema_version"] = json!({ "const": SCHEMA_VERSION });
    s["properties"]["exit_code"] = json!({ "enum": [0, 1, 2, 3, 130] });
    // The payload's own required fields, required when the command ran.
    let payload = serde_json::to_value(schemars::schema_for!(P)).expect("a schema");
    let required = payload.get("required").cloned().unwrap_or(json!([]));
    let mut rules = vec![
        json!({ "if": { "properties": { "outcome": { "const": "done" } } }, "then": { "required": required } }),
        json!({ "if": { "properties": { "outcome": { "const": "error" } } }, "then": { "required": ["error"] } }),
    ];
    // Each outcome has one exit code.
    for o in [
        Outcome::Done,
        Outcome::NothingToDo,
        Outcome::Blocked,
        Outcome::Error,
        Outcome::WaitingForDeploy,
        Outcome::Interrupted,
    ] {
        rules.push(json!({
            "if": { "properties": { "outcome": { "const": o } } },
            "then": { "properties": { "exit_code": { "const": o.exit_code() } } },
        }));
    }
    s["allOf"] = Value::Array(rules);
    s
}

/// Every environment command's schema, by command.
pub fn schemas() -> Vec<(&'static str, Value)> {
    vec![
        ("status", schema_of::<StatusPayload>("status")),
        ("gate", schema_of::<Verdict>("gate")),
        ("apply", schema_of::<ApplyPayload>("apply")),
        ("mark", schema_of::<MarkPayload>("mark")),
        ("rollback", schema_of::<RollbackPayload>("rollback")),
        ("approve", schema_of::<ApprovePayload>("approve")),
        ("backup", schema_of::<BackupPayload>("backup")),
        ("verify", schema_of::<VerifyPayload>("verify")),
        ("history", schema_of::<HistoryPayload>("history")),
        ("accept-change", schema_of::<AcceptPayload>("accept-change")),
        ("resolve", schema_of::<Resolution>("resolve")),
        ("check", schema_of::<CheckPayload>("check")),
        ("export", schema_of::<ExportPayload>("export")),
    ]
}

fn path(command: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("docs/schema/{command}.json"))
}

fn text(schema: &Value) -> String {
    serde_json::to_string_pretty(schema).expect("JSON") + "\n"
}

#[test]
fn the_checked_in_schemas_are_current() {
    let mut stale = Vec::new();
    for (command, schema) in schemas() {
        let on_disk = std::fs::read_to_string(path(command)).unwrap_or_default();
        if on_disk != text(&schema) {
            stale.push(command);
        }
    }
    assert!(
        stale.is_empty(),
        "docs/schema/ is not what the code generates for {stale:?}: run `cargo test --bin phasegate write_schemas -- --ignored`"
    );
}

#[test]
fn every_environment_command_has_a_schema() {
    let names: Vec<&str> = schemas().into_iter().map(|(c, _)| c).collect();
    assert_eq!(names, super::ENV_COMMANDS);
}

#[test]
fn a_schema_rejects_what_breaks_the_contract() {
    let schemas = schemas();
    let (_, apply) = schemas.iter().find(|(c, _)| *c == "apply").expect("apply");
    let v = jsonschema::validator_for(apply).expect("a valid schema");
    let ok = json!({"schema_version": 1, "command": "apply", "outcome": "nothing_to_do", "exit_code": 0, "message": "complete"});
    assert!(v.is_valid(&ok), "{ok}");
    for bad in [
        json!({"schema_version": 2, "command": "apply", "outcome": "done", "exit_code": 0}),
        json!({"schema_version": 1, "command": "gate", "outcome": "done", "exit_code": 0}),
        json!({"schema_version": 1, "command": "apply", "outcome": "fine", "exit_code": 0}),
        json!({"schema_version": 1, "command": "apply", "outcome": "done"}),
        json!({"schema_version": 1, "command": "apply", "outcome": "error", "exit_code": 2, "error": {"kind": "config"}}),
        json!({"schema_version": 1, "command": "apply", "outcome": "error", "exit_code": 2}),
        json!({"schema_version": 1, "command": "apply", "outcome": "blocked", "exit_code": 0}),
        json!({"schema_version": 1, "command": "apply", "outcome": "done", "exit_code": 0}),
    ] {
        assert!(!v.is_valid(&bad), "{bad}");
    }
}

/// Writes docs/schema/ from the code.
#[test]
#[ignore = "writes docs/schema/: run it after changing a JSON payload"]
fn write_schemas() {
    for (command, schema) in schemas() {
        std::fs::create_dir_all(path(command).parent().expect("docs/schema")).expect("mkdir");
        std::fs::write(path(command), text(&schema)).expect("write");
    }
}
