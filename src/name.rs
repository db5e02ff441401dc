//! SQL names as they appear in plan files: column and table identifiers,
//! optionally schema-qualified tables, and SQL type names.
//!
//! Values are validated when a plan file is deserialised, so a bad name is
//! reported with the file, line and column it came from. Nothing here quotes:
//! quoting belongs to [`crate::dialect`], which is the one path by which a name
//! reaches SQL.

use std::fmt;

use serde::{Deserialize, Serialize};

mod schema;

/// The longest identifier phasegate accepts. Postgres silently truncates
/// names longer than 63 bytes, which would make two different names in a plan
/// collide in the database; refusing them is the only safe answer.
pub const MAX_IDENT_BYTES: usize = 63;

/// A single SQL identifier (a column, table, index or constraint name),
/// stored exactly as written: `Users` and `users` are different names.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Ident(String);

/// What is wrong with a name or type written in a plan.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("an identifier may not be empty")]
    Empty,
    #[error("identifier `{0}` is longer than {MAX_IDENT_BYTES} bytes (Postgres would truncate it)")]
    TooLong(String),
    #[error("identifier `{0}` contains a NUL or control character")]
    Control(String),
    #[error("expected `table` or `schema.table`, got `{0}`")]
    BadQualified(String),
    /// A column named on the command line without its table, or with an
    /// empty or malformed part.
    #[error("expected `table.column` (or `schema.table.column`), got `{0}`")]
    BadColumnRef(String),
    #[error(
        "`{0}` is not an SQL type: expected a type name such as `text`, `varchar(255)`, `numeric(12,2)` or `integer[]`"
    )]
    BadType(String),
}

impl Ident {
    /// Validates `s` as an identifier.
    pub fn new(s: impl Into<String>) -> Result<Self, NameError> {
        let s = s.into();
        if s.is_empty() {
            return Err(NameError::Empty);
        }
        if s.len() > MAX_IDENT_BYTES {
            return Err(NameError::TooLong(s));
        }
        if s.chars().any(char::is_control) {
            return Err(NameError::Control(s));
        }
        Ok(Ident(s))
    }

    /// For names phasegate builds from identifiers it already validated.
    pub(crate) fn trusted(s: String) -> Self {
        debug_assert!(
            Ident::new(s.clone()).is_ok(),
            "derived name {s:?} is not a valid identifier"
        );
        Ident(s)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Ident {
    type Error = NameError;
    fn try_from(s: String) -> Result<Self, NameError> {
        Ident::new(s)
    }
}

impl From<Ident> for String {
    fn from(i: Ident) -> String {
        i.0
    }
}

impl fmt::Display for Ident {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A table name, optionally qualified by its schema (`billing.invoices`).
///
/// A name is split at its single dot; a table whose own name contains a dot
/// cannot be written in a plan file.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(try_from = "String")]
pub struct TableName {
    pub schema: Option<Ident>,
    pub name: Ident,
}

impl TableName {
    pub fn parse(s: &str) -> Result<Self, NameError> {
        let mut parts = s.split('.');
        let (first, second, rest) = (parts.next(), parts.next(), parts.next());
        match (first, second, rest) {
            (Some(name), None, None) => Ok(TableName {
                schema: None,
                name: Ident::new(name).map_err(|_| NameError::BadQualified(s.to_string()))?,
            }),
            (Some(schema), Some(name), None) => Ok(TableName {
                schema: Some(
                    Ident::new(schema).map_err(|_| NameError::BadQualified(s.to_string()))?,
                ),
                name: Ident::new(name).map_err(|_| NameError::BadQualified(s.to_string()))?,
            }),
            _ => Err(NameError::BadQualified(s.to_string())),
        }
    }

    /// The same schema with another table name (a view or renamed table lives
    /// beside the table it stands for).
    pub fn sibling(&self, name: Ident) -> TableName {
        TableName {
            schema: self.schema.clone(),
            name,
        }
    }

    /// The parts to quote, in order: `[schema, name]` or `[name]`.
    pub fn parts(&self) -> Vec<&str> {
        match &self.schema {
            Some(s) => vec![s.as_str(), self.name.as_str()],
            None => vec![self.name.as_str()],
        }
    }
}

impl TryFrom<String> for TableName {
    type Error = NameError;
    fn try_from(s: String) -> Result<Self, NameError> {
        TableName::parse(&s)
    }
}

impl fmt::Display for TableName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.schema {
            Some(s) => write!(f, "{s}.{}", self.name),
            None => write!(f, "{}", self.name),
        }
    }
}

impl Serialize for TableName {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// An SQL type as written in a plan (`varchar(255)`, `numeric(12, 2)`,
/// `timestamp with time zone`, `bigint[]`).
///
/// Types are SQL, not names, so they are not quoted; instead they must match a
/// strict grammar (words, at most two integer modifiers, array brackets), so
/// nothing but a type can be smuggled into a statement through this field.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize)]
#[serde(try_from = "String")]
pub struct SqlType {
    /// The type name, lower-cased, single-spaced, with common aliases folded
    /// (`character varying` → `varchar`, `int4` → `integer`).
    pub base: String,
    /// Type modifiers, e.g. `[255]` for `varchar(255)`, `[12, 2]` for `numeric(12,2)`.
    pub modifiers: Vec<u32>,
    /// Array dimensions (`integer[]` has one).
    pub array_dims: u8,
    /// The text as the author wrote it, which is what reaches SQL.
    pub written: String,
}

impl SqlType {
    pub fn parse(s: &str) -> Result<Self, NameError> {
        let bad = || NameError::BadType(s.to_string());
        let written = s.trim().to_string();
        let mut rest = written.as_str();
        let mut array_dims = 0u8;
        while let Some(r) = rest.strip_suffix("[]") {
            rest = r.trim_end();
            array_dims = array_dims.saturating_add(1);
        }
        let (head, mods, tail) = match rest.find('(') {
            Some(open) => {
                let close = rest[open..].find(')').ok_or_else(bad)? + open;
                (
                    &rest[..open],
                    &rest[open + 1..close],
                    rest[close + 1..].trim(),
                )
            }
            None => (rest, "", ""),
        };
        // `timestamp(3) with time zone` keeps words after the modifiers.
        let words: Vec<&str> = head
            .split_whitespace()
            .chain(tail.split_whitespace())
            .collect();
        if words.is_empty()
            || !words.iter().all(|w| {
                w.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                    && w.chars()
                        .next()
                        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            })
        {
            return Err(bad());
        }
        let modifiers = if mods.trim().is_empty() {
            if rest.contains('(') {
                return Err(bad());
            }
            Vec::new()
        } else {
            mods.split(',')
                .map(|m| m.trim().parse::<u32>().map_err(|_| bad()))
                .collect::<Result<Vec<_>, _>>()?
        };
        if modifiers.len() > 2 {
            return Err(bad());
        }
        let base = fold_type_alias(&words.join(" ").to_ascii_lowercase());
        Ok(SqlType {
            base,
            modifiers,
            array_dims,
            written,
        })
    }

    /// Whether this is one of Postgres's serial pseudo-types (`serial`,
    /// `bigserial`, `smallserial`, `serial2/4/8`; MySQL's `SERIAL`): an
    /// integer column numbered from a sequence, NOT NULL.
    pub fn is_serial(&self) -> bool {
        self.array_dims == 0
            && self.modifiers.is_empty()
            && matches!(
                self.base.as_str(),
                "serial" | "serial4" | "bigserial" | "serial8" | "smallserial" | "serial2"
            )
    }
}

fn fold_type_alias(base: &str) -> String {
    match base {
        "character varying" | "varchar" => "varchar",
        "character" | "char" | "bpchar" => "char",
        "int" | "int4" | "integer" => "integer",
        "int8" | "bigint" => "bigint",
        "int2" | "smallint" => "smallint",
        "decimal" | "numeric" => "numeric",
        "float8" | "double precision" => "double precision",
        "float4" | "real" => "real",
        "bool" | "boolean" => "boolean",
        "timestamp without time zone" | "timestamp" => "timestamp",
        "timestamp with time zone" | "timestamptz" => "timestamptz",
        "time without time zone" | "time" => "time",
        "time with time zone" | "timetz" => "timetz",
        "varbinary" => "varbinary",
        other => other,
    }
    .to_string()
}

impl TryFrom<String> for SqlType {
    type Error = NameError;
    fn try_from(s: String) -> Result<Self, NameError> {
        SqlType::parse(&s)
    }
}

impl fmt::Display for SqlType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.written)
    }
}

impl Serialize for SqlType {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.written)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_keep_case_and_reject_bad_input() {
        assert_eq!(
            Ident::new("Users").map(|i| i.to_string()),
            Ok("Users".into())
        );
        assert_eq!(Ident::new(""), Err(NameError::Empty));
        assert!(matches!(
            Ident::new("a".repeat(64)),
            Err(NameError::TooLong(_))
        ));
        assert!(matches!(Ident::new("a\nb"), Err(NameError::Control(_))));
        // Quotes are legal in a name; quoting is the dialect's job.
        assert!(Ident::new("we\"ird").is_ok());
    }

    #[test]
    fn table_names_split_at_one_dot() {
        let t = TableName::parse("billing.invoices").map_err(|e| e.to_string());
        assert_eq!(
            t.map(|t| t.parts().join("|")),
            Ok("billing|invoices".into())
        );
        assert!(TableName::parse("a.b.c").is_err());
        assert!(TableName::parse("a.").is_err());
    }

    #[test]
    fn a_column_without_its_table_says_what_was_expected() {
        for bad in ["name", "users.", ".name", "a.b.c.d", ""] {
            let e = ColumnRef::parse(bad).map(|c| c.to_string());
            assert_eq!(
                e.map_err(|e| e.to_string()),
                Err(format!(
                    "expected `table.column` (or `schema.table.column`), got `{bad}`"
                ))
            );
        }
        let c = ColumnRef::parse("billing.users.name").map(|c| c.to_string());
        assert_eq!(c, Ok("billing.users.name".to_string()));
    }

    #[test]
    fn types_are_parsed_and_folded() {
        let t = SqlType::parse("character varying(20)").map_err(|e| e.to_string());
        assert_eq!(
            t.map(|t| (t.base, t.modifiers)),
            Ok(("varchar".into(), vec![20]))
        );
        let t = SqlType::parse("timestamp(3) with time zone").map_err(|e| e.to_string());
        assert_eq!(
            t.map(|t| (t.base, t.modifiers)),
            Ok(("timestamptz".into(), vec![3]))
        );
        let t = SqlType::parse("int[]").map_err(|e| e.to_string());
        assert_eq!(t.map(|t| (t.base, t.array_dims)), Ok(("integer".into(), 1)));
        for bad in [
            "text; drop table users",
            "varchar(x)",
            "",
            "numeric(1,2,3)",
            "text)",
            "1abc",
        ] {
            assert!(SqlType::parse(bad).is_err(), "{bad} should be rejected");
        }
    }
}

/// `table.column` or `schema.table.column`, as written on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnRef {
    pub table: TableName,
    pub column: Ident,
}

impl ColumnRef {
    pub fn parse(s: &str) -> Result<Self, NameError> {
        let bad = || NameError::BadColumnRef(s.to_string());
        let (table, column) = s.rsplit_once('.').ok_or_else(bad)?;
        Ok(ColumnRef {
            table: TableName::parse(table).map_err(|_| bad())?,
            column: Ident::new(column).map_err(|_| bad())?,
        })
    }
}

impl fmt::Display for ColumnRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.table, self.column)
    }
}

/// An SQL expression the plan's author wrote (a default, a backfill value, a
/// check, an index predicate). It is SQL on purpose, so it is not quoted, but
/// it must be one expression as Postgres, MySQL and SQLite each read it
/// (sqlparser's tokenizer per dialect): a `;` or a comment outside quotes,
/// unbalanced parentheses, unreadable quoting, a dollar quote outside
/// Postgres or a control character is refused, with what was found
/// (see [`crate::dialect::expression`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct SqlExpr(String);

/// The longest SQL expression a plan may hold, in bytes: far above any
/// default, check or backfill, and a bound on the work of checking one.
pub const MAX_EXPR_BYTES: usize = 64 * 1024;

/// What is wrong with an SQL expression in a plan.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExprError {
    #[error("an SQL expression may not be empty")]
    Empty,
    /// Longer than [`MAX_EXPR_BYTES`]; the length in bytes.
    #[error(
        "an SQL expression of {0} bytes is longer than the {MAX_EXPR_BYTES} bytes phasegate takes"
    )]
    TooLong(usize),
    /// `text` is not exactly one expression; `reason` says what was found
    /// and by which dialect's reading.
    #[error("`{text}` is not a single SQL expression: {reason}")]
    NotOne { text: String, reason: String },
}

impl SqlExpr {
    pub fn new(s: impl Into<String>) -> Result<Self, ExprError> {
        let s = s.into();
        let trimmed = s.trim();
        if trimmed.is_empty() {
            return Err(ExprError::Empty);
        }
        if trimmed.len() > MAX_EXPR_BYTES {
            return Err(ExprError::TooLong(trimmed.len()));
        }
        if let Err(reason) = crate::dialect::expression::check_expression_everywhere(trimmed) {
            return Err(ExprError::NotOne { text: s, reason });
        }
        Ok(SqlExpr(trimmed.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for SqlExpr {
    type Error = ExprError;
    fn try_from(s: String) -> Result<Self, ExprError> {
        SqlExpr::new(s)
    }
}

impl From<SqlExpr> for String {
    fn from(e: SqlExpr) -> String {
        e.0
    }
}

impl fmt::Display for SqlExpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
