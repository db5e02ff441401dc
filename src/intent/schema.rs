//! The JSON Schema of plan files (docs/schema/plan.json), generated from the
//! types the loader reads them into, for editors to complete and check plans
//! (docs/intents.md, "Editor support").
//!
//! The schema holds what JSON Schema can say of the loader's rules: the
//! kinds, each kind's fields, which are required, the enums, name and type
//! patterns, non-empty lists. What it cannot say is listed in
//! docs/intents.md; the loader remains the judge.

use std::borrow::Cow;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde_json::{Map, Value};

use super::load::RawPlanFile;
use super::{
    AddCheck, AddColumn, AddForeignKey, AddIndex, ChangeColumnType, DropColumn, DropTable, Intent,
    OnDelete, PlanFile, RenameColumn, RenameTable, SetNotNull, SqlPhases,
};

/// The plan-file schema as a JSON document, with no `$id`: the project has
/// no public home to name, so editors point at the file
/// (docs/schema/plan.json, or `phasegate schema plan`'s output).
///
/// Draft 7, the draft every editor's validator reads (yaml-language-server
/// before 1.11 and VS Code's JSON service know no later one), where the
/// command documents' schemas (docs/schema/<command>.json) are 2020-12.
pub fn plan_schema() -> Value {
    schemars::generate::SchemaSettings::draft07()
        .into_generator()
        .into_root_schema_for::<PlanFile>()
        .to_value()
}

impl JsonSchema for PlanFile {
    fn schema_name() -> Cow<'static, str> {
        "PlanFile".into()
    }

    /// The file as written: [`PlanFile`]'s `name` may be left out there
    /// (the file name is used), and `path` and `source` are not in it.
    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        RawPlanFile::json_schema(generator)
    }
}

/// `text` matched case-insensitively, as a JSON Schema pattern (which has
/// no flags): `[sS][eE]…`.
fn any_case(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii_alphabetic() {
                format!("[{}{}]", c.to_ascii_lowercase(), c.to_ascii_uppercase())
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// The types [`crate::name::SqlType::is_serial`] says are serial: one of
/// Postgres's serial pseudo-types, any case, no modifiers, no array.
fn serial_pattern() -> String {
    let names = [
        "serial",
        "serial4",
        "bigserial",
        "serial8",
        "smallserial",
        "serial2",
    ];
    let alternatives: Vec<String> = names.iter().map(|n| any_case(n)).collect();
    format!(r"^\s*({})\s*$", alternatives.join("|"))
}

/// The rules between `add_column`'s fields that [`Intent::validate`]
/// checks and JSON Schema can say: a required column (`nullable: false`)
/// needs `default` or `backfill` unless its type is serial, and a serial
/// column takes no `default`.
pub(super) fn add_column_rules(schema: &mut Schema) {
    let serial = serial_pattern();
    let rules = serde_json::json!([
        {
            "if": { "properties": { "nullable": { "const": false } }, "required": ["nullable"] },
            "then": { "anyOf": [
                { "properties": { "default": { "type": "string" } }, "required": ["default"] },
                { "properties": { "backfill": { "type": "string" } }, "required": ["backfill"] },
                { "properties": { "type": { "pattern": serial } } },
            ] },
        },
        {
            "if": { "properties": { "type": { "pattern": serial } }, "required": ["type"] },
            "then": { "properties": { "default": { "type": "null" } } },
        },
    ]);
    schema.insert("allOf".into(), rules);
}

/// One entry of [`Intent`]: `{ kind: fields }`, exactly one key.
fn one_kind<T: JsonSchema>(generator: &mut SchemaGenerator, kind: &str) -> Value {
    let fields = generator.subschema_for::<T>().to_value();
    let mut properties = Map::new();
    properties.insert(kind.to_string(), fields);
    serde_json::json!({
        "type": "object",
        "title": kind,
        "properties": properties,
        "required": [kind],
        "additionalProperties": false,
    })
}

impl JsonSchema for Intent {
    fn schema_name() -> Cow<'static, str> {
        "Change".into()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let kinds = vec![
            one_kind::<RenameColumn>(generator, "rename_column"),
            one_kind::<AddColumn>(generator, "add_column"),
            one_kind::<ChangeColumnType>(generator, "change_column_type"),
            one_kind::<DropColumn>(generator, "drop_column"),
            one_kind::<RenameTable>(generator, "rename_table"),
            one_kind::<AddIndex>(generator, "add_index"),
            one_kind::<AddForeignKey>(generator, "add_foreign_key"),
            one_kind::<SetNotNull>(generator, "set_not_null"),
            one_kind::<AddCheck>(generator, "add_check"),
            one_kind::<DropTable>(generator, "drop_table"),
            one_kind::<SqlPhases>(generator, "sql"),
        ];
        json_schema!({
            "description": "One change: a map with one key, its kind (`rename_column: { table: users, from: name, to: full_name }`).",
            "type": "object",
            "minProperties": 1,
            "maxProperties": 1,
            "propertyNames": { "enum": super::KINDS },
            "oneOf": kinds,
        })
    }
}

impl JsonSchema for OnDelete {
    fn schema_name() -> Cow<'static, str> {
        "OnDelete".into()
    }

    /// By hand: the loader also takes the SQL spellings with a space
    /// (`set null`), serde aliases the derive does not see.
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "What happens to referencing rows when the referenced row is deleted.",
            "type": "string",
            "enum": ["no_action", "restrict", "cascade", "set_null", "set_default", "no action", "set null", "set default"],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_one_branch() {
        let s = plan_schema();
        let change = &s["definitions"]["Change"];
        let titles: Vec<&str> = change["oneOf"]
            .as_array()
            .map(|a| a.iter().filter_map(|b| b["title"].as_str()).collect())
            .unwrap_or_default();
        assert_eq!(titles, super::super::KINDS);
    }
}
