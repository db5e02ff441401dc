//! JSON Schema of the names a plan file holds (docs/schema/plan.json), by
//! hand: each type validates in its `TryFrom<String>`, so the derive cannot
//! see its rules. Each schema states what JSON Schema can express of the
//! rule; what it cannot (a length in bytes, one SQL expression in every
//! dialect) is said in its description and in docs/intents.md.

use std::borrow::Cow;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};

use super::{Ident, MAX_EXPR_BYTES, MAX_IDENT_BYTES, SqlExpr, SqlType, TableName};

/// No control character (Unicode category Cc, what `char::is_control` tests).
const NAME_CHAR: &str = r"[^\x00-\x1F\x7F-\x9F]";

/// One name part of a table: no control character, and no dot.
const PART_CHAR: &str = r"[^.\x00-\x1F\x7F-\x9F]";

/// A word of a type: a letter or `_`, then letters, digits, `_`.
const TYPE_WORD: &str = r"[A-Za-z_][A-Za-z0-9_]*";

/// The grammar of [`SqlType::parse`]: words, at most two integer
/// modifiers in parentheses, more words (`timestamp(3) with time zone`),
/// array brackets.
pub(crate) fn type_pattern() -> String {
    let words = format!(r"{TYPE_WORD}(\s+{TYPE_WORD})*");
    let modifier = r"\+?[0-9]+";
    format!(r"^\s*{words}(\s*\(\s*{modifier}\s*(,\s*{modifier}\s*)?\)(\s*{words})?)?(\s*\[\])*\s*$")
}

impl JsonSchema for Ident {
    fn schema_name() -> Cow<'static, str> {
        "Identifier".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "description": format!(
                "An SQL identifier (column, table, index or constraint name), kept exactly as written: `Users` and `users` differ. 1 to {MAX_IDENT_BYTES} bytes (Postgres truncates longer names; the schema can only count characters, the loader counts UTF-8 bytes), no control characters."
            ),
            "minLength": 1,
            "maxLength": MAX_IDENT_BYTES,
            "pattern": format!("^{NAME_CHAR}+$"),
        })
    }
}

impl JsonSchema for TableName {
    fn schema_name() -> Cow<'static, str> {
        "TableName".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "description": format!(
                "A table, `table` or `schema.table`, split at its one dot; each part an identifier of 1 to {MAX_IDENT_BYTES} bytes without control characters."
            ),
            "minLength": 1,
            "maxLength": 2 * MAX_IDENT_BYTES + 1,
            "pattern": format!("^{PART_CHAR}{{1,{MAX_IDENT_BYTES}}}([.]{PART_CHAR}{{1,{MAX_IDENT_BYTES}}})?$"),
            "examples": ["users", "billing.invoices"],
        })
    }
}

impl JsonSchema for SqlType {
    fn schema_name() -> Cow<'static, str> {
        "SqlType".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "description": "An SQL type as written: words, at most two integer modifiers, array brackets (`text`, `varchar(255)`, `numeric(12, 2)`, `timestamp(3) with time zone`, `bigint[]`). Not quoted, so nothing but a type passes.",
            "pattern": type_pattern(),
            "examples": ["text", "varchar(255)", "numeric(12, 2)", "timestamptz", "bigint[]"],
        })
    }
}

impl JsonSchema for SqlExpr {
    fn schema_name() -> Cow<'static, str> {
        "SqlExpression".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "description": format!(
                "One SQL expression, as Postgres, MySQL and SQLite each read it: no `;` or comment outside quotes, balanced parentheses, no control characters; at most {MAX_EXPR_BYTES} bytes. The schema checks only that it is not blank; the loader checks the rest."
            ),
            "pattern": r"\S",
            "maxLength": MAX_EXPR_BYTES,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The schema's pattern agrees with the parser on the parser's own cases.
    #[test]
    fn the_type_pattern_agrees_with_the_parser() {
        let re = matcher(&type_pattern());
        for t in [
            "text",
            "varchar(255)",
            "numeric(12, 2)",
            "timestamp(3) with time zone",
            "int[]",
            "bigint [] []",
            "character varying(20)",
            " double precision ",
        ] {
            assert!(SqlType::parse(t).is_ok(), "{t}");
            assert!(re(t), "the pattern refuses {t:?}, the parser takes it");
        }
        for t in [
            "text; drop table users",
            "varchar(x)",
            "",
            "numeric(1,2,3)",
            "text)",
            "1abc",
            "varchar()",
            "int[ ]",
        ] {
            assert!(SqlType::parse(t).is_err(), "{t}");
            assert!(!re(t), "the pattern takes {t:?}, the parser refuses it");
        }
    }

    /// A matcher for `pattern` through the schema validator the tests use.
    fn matcher(pattern: &str) -> impl Fn(&str) -> bool + use<> {
        let v =
            jsonschema::validator_for(&serde_json::json!({ "type": "string", "pattern": pattern }))
                .expect("a valid pattern");
        move |s| v.is_valid(&serde_json::json!(s))
    }
}
