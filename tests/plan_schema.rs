//! docs/schema/plan.json against the loader: every plan the repository
//! holds (plans/, the tests' plan fixtures) validates; plans the loader
//! refuses for a reason the schema can express are refused by the schema
//! too; and the loader rules the schema cannot express (docs/intents.md,
//! "Editor support") are pinned here, so a schema that learns one fails
//! this test until the docs say so.

use std::path::{Path, PathBuf};

use phasegate::intent::{parse_plan, plan_schema};
use serde_json::Value;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The checked-in schema, not the generated one: that is what editors read
/// (the bin's unit test keeps the two equal).
fn validator() -> jsonschema::Validator {
    let text = std::fs::read_to_string(root().join("docs/schema/plan.json")).expect("plan.json");
    let schema: Value = serde_json::from_str(&text).expect("JSON");
    assert_eq!(schema, plan_schema(), "docs/schema/plan.json is stale");
    jsonschema::validator_for(&schema).expect("a valid JSON Schema")
}

/// A plan's YAML as the JSON value an editor validates: read as YAML 1.2
/// reads it (yaml-language-server), where `n` and `no` are strings.
fn as_json(text: &str) -> Value {
    let mut options = serde_saphyr::Options::default();
    options.strict_booleans = true;
    serde_saphyr::from_str_with_options::<Value>(text, options).expect("YAML")
}

fn errors(v: &jsonschema::Validator, doc: &Value) -> Vec<String> {
    v.iter_errors(doc)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect()
}

fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("a folder of plans")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .collect();
    files.sort();
    files
}

#[test]
fn every_plan_in_the_repository_validates() {
    let v = validator();
    let mut files = yaml_files(&root().join("plans"));
    files.extend(yaml_files(&root().join("tests/fuzz_corpus/plans")));
    assert!(files.len() >= 15, "fewer plans than expected: {files:?}");
    for file in files {
        let text = std::fs::read_to_string(&file).expect("read");
        let loaded = parse_plan(&text, &file.display().to_string(), "plan");
        let errs = errors(&v, &as_json(&text));
        match loaded {
            Ok(_) => assert!(
                errs.is_empty(),
                "{}: the loader takes it, the schema refuses: {errs:?}",
                file.display()
            ),
            // A fixture the loader refuses only for a rule the schema
            // cannot express (the hostile default is not one expression).
            Err(e) => {
                assert!(
                    file.ends_with("hostile-default.yaml"),
                    "{}: {e}",
                    file.display()
                );
                assert!(errs.is_empty(), "{errs:?}");
            }
        }
    }
}

/// Plans the loader refuses, each for a rule the schema expresses.
const REFUSED_BY_BOTH: &[(&str, &str)] = &[
    (
        "unknown kind",
        "changes:\n  - rename_colum: { table: users, from: a, to: b }\n",
    ),
    (
        "two kinds in one change",
        "changes:\n  - drop_table: { table: a }\n    drop_column: { table: a, column: b }\n",
    ),
    ("a change that is not a map", "changes:\n  - drop_table\n"),
    (
        "missing required field",
        "changes:\n  - rename_column: { table: users, from: a }\n",
    ),
    (
        "missing `type`",
        "changes:\n  - add_column: { table: users, column: c }\n",
    ),
    (
        "unknown field",
        "changes:\n  - drop_table: { table: a, cascade: true }\n",
    ),
    (
        "unknown top-level key",
        "name: x\nchange: []\nchanges:\n  - drop_table: { table: a }\n",
    ),
    ("no `changes`", "name: x\n"),
    ("empty `changes`", "changes: []\n"),
    (
        "bad sync enum",
        "changes:\n  - rename_column: { table: users, from: a, to: b, sync: trigers }\n",
    ),
    (
        "bad on_delete enum",
        "changes:\n  - add_foreign_key: { table: a, columns: [b], references: { table: c, columns: [d] }, on_delete: nullify }\n",
    ),
    (
        "nullable not a boolean",
        "changes:\n  - add_column: { table: a, column: b, type: text, nullable: [] }\n",
    ),
    (
        "identifier over 63 characters",
        "changes:\n  - drop_table: { table: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa }\n",
    ),
    (
        "three-part table name",
        "changes:\n  - drop_table: { table: a.b.c }\n",
    ),
    (
        "empty table part",
        "changes:\n  - drop_table: { table: a. }\n",
    ),
    (
        "control character in a name",
        "changes:\n  - drop_table: { table: \"a\\tb\" }\n",
    ),
    (
        "not a type",
        "changes:\n  - add_column: { table: a, column: b, type: \"text; drop table a\" }\n",
    ),
    (
        "three type modifiers",
        "changes:\n  - add_column: { table: a, column: b, type: \"numeric(1,2,3)\" }\n",
    ),
    (
        "blank expression",
        "changes:\n  - add_check: { table: a, name: n, check: \"  \" }\n",
    ),
    (
        "empty index columns",
        "changes:\n  - add_index: { table: a, columns: [] }\n",
    ),
    ("empty sql phases", "changes:\n  - sql: { phases: [] }\n"),
    (
        "blank sql up",
        "changes:\n  - sql: { phases: [ { up: \" \" } ] }\n",
    ),
    (
        "required column without default or backfill",
        "changes:\n  - add_column: { table: a, column: b, type: text, nullable: false }\n",
    ),
    (
        "serial column with a default",
        "changes:\n  - add_column: { table: a, column: b, type: serial, default: \"1\" }\n",
    ),
    (
        "bad plan name",
        "name: -x\nchanges:\n  - drop_table: { table: a }\n",
    ),
];

/// Plans near those refused, which both take.
const TAKEN_BY_BOTH: &[&str] = &[
    "changes:\n  - add_column: { table: a, column: b, type: text, nullable: false, backfill: \"'x'\" }\n",
    "changes:\n  - add_column: { table: a, column: b, type: text, nullable: false, default: \"''\" }\n",
    "changes:\n  - add_column: { table: a, column: b, type: BigSerial, nullable: false }\n",
    "changes:\n  - add_column: { table: a, column: b, type: serial, backfill: \"1\" }\n",
    "changes:\n  - add_column: { table: a, column: b, type: serial4x, default: \"1\" }\n",
    "changes:\n  - add_column: { table: a, column: b, type: text, default: \"'x'\" }\n",
];

#[test]
fn what_the_loader_refuses_the_schema_refuses_where_it_can_say_so() {
    let v = validator();
    for text in TAKEN_BY_BOTH {
        assert!(
            parse_plan(text, "t.yaml", "t").is_ok(),
            "the loader refuses {text}"
        );
        let errs = errors(&v, &as_json(text));
        assert!(errs.is_empty(), "the schema refuses {text}: {errs:?}");
    }
    for (why, text) in REFUSED_BY_BOTH {
        assert!(
            parse_plan(text, "t.yaml", "t").is_err(),
            "{why}: the loader takes it"
        );
        assert!(
            !v.is_valid(&as_json(text)),
            "{why}: the schema takes what the loader refuses"
        );
    }
}

/// The loader's rules the schema does not express (listed in
/// docs/intents.md, "Editor support"): the loader refuses each, the schema
/// takes it.
const BEYOND_THE_SCHEMA: &[(&str, &str)] = &[
    (
        "rename to the same name",
        "changes:\n  - rename_column: { table: a, from: b, to: b }\n",
    ),
    (
        "rename_table to the same name",
        "changes:\n  - rename_table: { from: a, to: a }\n",
    ),
    (
        "rename_table into another schema",
        "changes:\n  - rename_table: { from: s.a, to: t.b }\n",
    ),
    (
        "new_column equal to column",
        "changes:\n  - change_column_type: { table: a, column: b, type: bigint, new_column: b }\n",
    ),
    (
        "foreign key column counts differ",
        "changes:\n  - add_foreign_key: { table: a, columns: [b, c], references: { table: d, columns: [e] } }\n",
    ),
    (
        "not one SQL expression",
        "changes:\n  - add_check: { table: a, name: n, check: \"1; drop table a\" }\n",
    ),
    (
        "identifier over 63 bytes, under 63 characters",
        "changes:\n  - drop_table: { table: ééééééééééééééééééééééééééééééééé }\n",
    ),
];

#[test]
fn the_rules_beyond_the_schema_are_the_documented_ones() {
    let v = validator();
    let docs = std::fs::read_to_string(root().join("docs/intents.md")).expect("intents.md");
    for (why, text) in BEYOND_THE_SCHEMA {
        assert!(
            parse_plan(text, "t.yaml", "t").is_err(),
            "{why}: the loader takes it"
        );
        assert!(
            v.is_valid(&as_json(text)),
            "{why}: the schema now refuses it; move it to REFUSED_BY_BOTH and out of docs/intents.md's list"
        );
        assert!(
            docs.contains(why),
            "docs/intents.md (Editor support) does not list `{why}`"
        );
    }
}

#[test]
fn the_command_prints_the_checked_in_schema() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_phasegate"))
        .args(["schema", "plan"])
        .output()
        .expect("run phasegate");
    assert!(out.status.success(), "{out:?}");
    let on_disk = std::fs::read(root().join("docs/schema/plan.json")).expect("plan.json");
    assert_eq!(out.stdout, on_disk);
}
