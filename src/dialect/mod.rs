//! SQL dialects: how each database quotes names and literals, which changes it
//! can make in one step, and the templates that hold its SQL.
//!
//! [`Dialect::quote_ident`] and [`Dialect::quote_literal`] are the only places
//! where a name or a literal becomes SQL text. Templates reach them through
//! the `ident` and `literal` filters (see [`templates`]), and the template
//! engine refuses to print any plain string that did not pass through one of
//! them.

pub mod expression;
pub mod statements;
pub mod templates;

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::Serialize;

use crate::name::{SqlType, TableName};

/// A database family phasegate generates SQL for.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize, PartialOrd, Ord,
)]
#[serde(rename_all = "lowercase")]
pub enum Dialect {
    Postgres,
    Sqlite,
    /// MySQL 8 and MariaDB 10.5+.
    Mysql,
}

/// MySQL/MariaDB: the session variable a backfill sets while it writes the
/// new column, which phasegate's sync trigger reads to leave the old column
/// alone (`templates/mysql/rename_column.sql` names it too).
pub const MYSQL_BACKFILL_MARK: &str = "@phasegate_backfill";

/// Postgres: the setting each backfill batch sets for its own transaction
/// (`SET LOCAL phasegate.backfill = 'on'`, a custom option any role may
/// set: Postgres docs, "Customized Options"), for which phasegate's sync
/// trigger does not run (`WHEN` in `templates/postgres/rename_column.sql`):
/// the batch computes the new column itself. Postgres still locks each row
/// a BEFORE UPDATE row trigger exists for, so the row-lock WAL record stays.
pub const POSTGRES_BACKFILL_MARK: &str = "phasegate.backfill";

impl Dialect {
    pub const ALL: [Dialect; 3] = [Dialect::Postgres, Dialect::Sqlite, Dialect::Mysql];

    pub fn name(self) -> &'static str {
        match self {
            Dialect::Postgres => "postgres",
            Dialect::Sqlite => "sqlite",
            Dialect::Mysql => "mysql",
        }
    }

    /// Quotes one identifier: `users` → `"users"`, `we"ird` → `"we""ird"`.
    ///
    /// SQLite gets backticks (`` `users` ``): a double-quoted name that
    /// matches no column is silently read by SQLite as a string literal, so a
    /// misspelt name in a verification query would compare strings and pass.
    /// A backticked name is always an identifier.
    ///
    /// MySQL quotes names with backticks too (double quotes are strings
    /// unless `ANSI_QUOTES` is set).
    pub fn quote_ident(self, ident: &str) -> String {
        let q = match self {
            Dialect::Postgres => '"',
            Dialect::Sqlite | Dialect::Mysql => '`',
        };
        let mut out = String::with_capacity(ident.len() + 2);
        out.push(q);
        for c in ident.chars() {
            if c == q {
                out.push(q);
            }
            out.push(c);
        }
        out.push(q);
        out
    }

    /// Quotes a table name, schema-qualified or not.
    pub fn quote_table(self, table: &TableName) -> String {
        let parts: Vec<String> = table
            .parts()
            .into_iter()
            .map(|p| self.quote_ident(p))
            .collect();
        parts.join(".")
    }

    /// The statement that runs a whole backfill at once:
    /// `UPDATE <table> SET <set> WHERE <pending>;`. The executor runs the same
    /// parts in keyset batches.
    ///
    /// MySQL/MariaDB: the update runs with the session variable
    /// `@phasegate_backfill` set, which tells phasegate's sync trigger that
    /// this write of the new column is the backfill's and must not be
    /// mirrored back over the old column (see `templates/mysql/rename_column.sql`).
    pub fn backfill_sql(self, table: &TableName, set: &str, pending: &str) -> String {
        let update = format!(
            "UPDATE {} SET {set} WHERE {pending};",
            self.quote_table(table)
        );
        match self {
            Dialect::Mysql => {
                format!("SET @phasegate_backfill = 1;\n{update}\nSET @phasegate_backfill = NULL;")
            }
            _ => update,
        }
    }

    /// A literal for a value the database reported as (storage class, text):
    /// numbers as numbers, text quoted, anything else as its text quoted. Used
    /// to carry a key value from one query to the next in its own type.
    pub fn typed_literal(self, kind: &str, text: Option<&str>) -> String {
        match (kind, text) {
            (_, None) | ("null", _) => "NULL".to_string(),
            ("integer", Some(t)) if t.parse::<i64>().is_ok() => t.to_string(),
            ("real", Some(t)) if t.parse::<f64>().is_ok_and(f64::is_finite) => t.to_string(),
            (_, Some(t)) => self.quote_literal(t),
        }
    }

    /// Quotes a string literal: `it's` → `'it''s'`. Postgres runs with
    /// `standard_conforming_strings` on (the default since 9.1), so a
    /// backslash is an ordinary character in both dialects.
    ///
    /// MySQL treats a backslash in a string as an escape (unless the session
    /// sets `NO_BACKSLASH_ESCAPES`), so there both `'` and `\` are doubled
    /// (`a\b` → `'a\\b'`). A session with `NO_BACKSLASH_ESCAPES` would read
    /// the doubled backslash as two: phasegate's SQL assumes the server
    /// default (backslash escapes on).
    pub fn quote_literal(self, value: &str) -> String {
        match self {
            Dialect::Mysql => {
                let mut out = String::with_capacity(value.len() + 2);
                out.push('\'');
                for c in value.chars() {
                    match c {
                        '\'' => out.push_str("''"),
                        '\\' => out.push_str("\\\\"),
                        _ => out.push(c),
                    }
                }
                out.push('\'');
                out
            }
            Dialect::Postgres | Dialect::Sqlite => {
                let mut out = String::with_capacity(value.len() + 2);
                out.push('\'');
                for c in value.chars() {
                    if c == '\'' {
                        out.push('\'');
                    }
                    out.push(c);
                }
                out.push('\'');
                out
            }
        }
    }

    /// Whether `ALTER COLUMN … TYPE` from `from` to `to` only changes the
    /// catalog (no table rewrite, no index rebuild), so it can run in one phase.
    ///
    /// Only Postgres has such changes: SQLite cannot alter a column's type at all.
    pub fn is_binary_coercible(self, from: &SqlType, to: &SqlType) -> bool {
        // Arrays of a widened type are rewritten all the same.
        if self != Dialect::Postgres || from.array_dims > 0 || to.array_dims > 0 {
            return false;
        }
        let (f, t) = (from.base.as_str(), to.base.as_str());
        let widened = |fm: &[u32], tm: &[u32]| match (fm.first(), tm.first()) {
            (_, None) => true,
            (Some(a), Some(b)) => b >= a,
            (None, Some(_)) => false,
        };
        match (f, t) {
            ("varchar", "varchar") => widened(&from.modifiers, &to.modifiers),
            ("varchar", "text") | ("char", "text") => f == "varchar",
            ("text", "varchar") => to.modifiers.is_empty(),
            ("numeric", "numeric") => match (from.modifiers.as_slice(), to.modifiers.as_slice()) {
                (_, []) => true,
                ([p1, s1], [p2, s2]) => s1 == s2 && p2 >= p1,
                ([p1], [p2]) => p2 >= p1,
                ([p1], [p2, 0]) => p2 >= p1,
                _ => false,
            },
            ("timestamp", "timestamp") | ("timestamptz", "timestamptz") => {
                widened(&from.modifiers, &to.modifiers)
            }
            ("varbit" | "bit varying", "varbit" | "bit varying") => {
                widened(&from.modifiers, &to.modifiers)
            }
            _ => false,
        }
    }

    /// MySQL/MariaDB: whether `MODIFY` from `from` to `to` is done in place
    /// (`ALGORITHM=INPLACE, LOCK=NONE`, no table copy). Only a VARCHAR
    /// widened while its length prefix keeps the same size qualifies: a
    /// column of up to 255 bytes has a 1-byte prefix, a longer one 2 bytes,
    /// so widening across 255 bytes copies the table. `bytes_per_char` is
    /// the column's character set's maximum (utf8mb4: 4, latin1: 1).
    pub fn mysql_varchar_widening_in_place(
        from: &SqlType,
        to: &SqlType,
        bytes_per_char: u32,
    ) -> bool {
        if from.array_dims > 0 || to.array_dims > 0 {
            return false;
        }
        let varchar = |b: &str| matches!(b, "varchar" | "character varying");
        if !varchar(&from.base) || !varchar(&to.base) {
            return false;
        }
        match (from.modifiers.as_slice(), to.modifiers.as_slice()) {
            ([a], [b]) if b >= a => {
                let bytes = |n: u32| n.saturating_mul(bytes_per_char.max(1));
                (bytes(*a) <= 255) == (bytes(*b) <= 255)
            }
            _ => false,
        }
    }

    /// Whether `ADD COLUMN … NOT NULL DEFAULT expr` is a catalog-only change
    /// here, so a required column with this default can be added in one phase.
    ///
    /// Postgres 11+ stores a non-volatile default in the catalog; a volatile
    /// one (`clock_timestamp()`, `gen_random_uuid()`, …) rewrites the table.
    /// SQLite accepts only a constant default for a NOT NULL column it adds.
    pub fn add_column_with_default_is_instant(self, default: &str) -> bool {
        match self {
            Dialect::Postgres => !expression_is_volatile(default),
            Dialect::Sqlite => is_sqlite_constant(default),
            // INSTANT ADD COLUMN (MySQL 8.0.12+, MariaDB 10.3.2+) takes a
            // constant default; an expression default (MySQL 8.0.13+) is
            // evaluated per row and copies the table.
            Dialect::Mysql => is_sqlite_constant(default),
        }
    }
}

/// A database URL's scheme, lower-cased (`postgres` of `postgres://…`,
/// `sqlite` of `sqlite:app.db`).
pub fn url_scheme(url: &str) -> String {
    url.split(':')
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase()
}

impl Dialect {
    /// The dialect a database URL names by its scheme: `postgres:` or
    /// `postgresql:`, `mysql:` or `mariadb:`, `sqlite:`; `None` for any
    /// other (the caller says what it expected).
    pub fn of_url(url: &str) -> Option<Dialect> {
        match url_scheme(url).as_str() {
            "postgres" | "postgresql" => Some(Dialect::Postgres),
            "mysql" | "mariadb" => Some(Dialect::Mysql),
            "sqlite" => Some(Dialect::Sqlite),
            _ => None,
        }
    }
}

/// The URL as the driver takes it: `mariadb://…` is spelt `mysql://…`
/// (one wire protocol); any other URL as it is.
pub fn driver_url(url: &str) -> String {
    match url.get(..8) {
        Some(scheme) if scheme.eq_ignore_ascii_case("mariadb:") => format!("mysql:{}", &url[8..]),
        _ => url.to_string(),
    }
}

impl fmt::Display for Dialect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An unknown dialect name, with the nearest known one.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}", crate::suggest::unknown("dialect", .given, &["postgres", "sqlite", "mysql"]))]
pub struct UnknownDialect {
    pub given: String,
}

impl FromStr for Dialect {
    type Err = UnknownDialect;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "postgres" | "postgresql" | "pg" => Ok(Dialect::Postgres),
            "sqlite" | "sqlite3" => Ok(Dialect::Sqlite),
            "mysql" | "mariadb" => Ok(Dialect::Mysql),
            _ => Err(UnknownDialect {
                given: s.to_string(),
            }),
        }
    }
}

/// Functions known not to be volatile: a default built only from these (and
/// literals, casts and operators) is evaluated once, so Postgres can store it
/// in the catalog instead of rewriting the table.
const NON_VOLATILE_FUNCTIONS: &[&str] = &[
    "now",
    "current_date",
    "current_timestamp",
    "localtimestamp",
    "transaction_timestamp",
    "statement_timestamp",
    "lower",
    "upper",
    "coalesce",
    "nullif",
    "length",
    "abs",
    "round",
    "concat",
    "to_timestamp",
    "to_date",
    "make_date",
    "make_interval",
    "jsonb_build_object",
    "json_build_object",
    "jsonb_build_array",
    "array",
    "interval",
    "timestamp",
    "timestamptz",
    "date",
    "numeric",
    "varchar",
    "char",
    "decimal",
];

/// Whether an SQL expression may be volatile. Conservative: any function call
/// phasegate does not know to be stable or immutable counts as volatile, so an
/// unknown default gets the multi-phase recipe, never a surprise rewrite.
pub fn expression_is_volatile(expr: &str) -> bool {
    function_calls(expr).any(|f| !NON_VOLATILE_FUNCTIONS.contains(&f.as_str()))
}

/// Lower-cased names of the functions an expression calls (outside quotes).
fn function_calls(expr: &str) -> impl Iterator<Item = String> + '_ {
    let code = strip_quoted(expr);
    let bytes: Vec<char> = code.chars().collect();
    let mut calls = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i].is_ascii_alphabetic() || bytes[i] == '_' {
            let start = i;
            while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == '_') {
                i += 1;
            }
            let word: String = bytes[start..i].iter().collect();
            let mut j = i;
            while j < bytes.len() && bytes[j].is_whitespace() {
                j += 1;
            }
            let after_cast = start >= 2 && bytes[start - 1] == ':' && bytes[start - 2] == ':';
            if j < bytes.len() && bytes[j] == '(' && !after_cast {
                calls.push(word.to_ascii_lowercase());
            }
        } else {
            i += 1;
        }
    }
    calls.into_iter()
}

/// The expression with the contents of '…' and "…" blanked out.
fn strip_quoted(expr: &str) -> String {
    let mut out = String::with_capacity(expr.len());
    let mut quote: Option<char> = None;
    for c in expr.chars() {
        match quote {
            Some(q) if c == q => {
                quote = None;
                out.push(c);
            }
            Some(_) => out.push(' '),
            None => {
                if c == '\'' || c == '"' {
                    quote = Some(c);
                }
                out.push(c);
            }
        }
    }
    out
}

/// SQLite adds a NOT NULL column only with a constant, non-NULL default: a
/// number, a string, TRUE or FALSE (no parenthesised expression, no
/// CURRENT_TIMESTAMP).
fn is_sqlite_constant(expr: &str) -> bool {
    let e = expr.trim();
    let lower = e.to_ascii_lowercase();
    if lower == "true" || lower == "false" {
        return true;
    }
    if e.len() >= 2 && e.starts_with('\'') && e.ends_with('\'') {
        return !e[1..e.len() - 1].replace("''", "").contains('\'');
    }
    let digits = e.strip_prefix(['-', '+']).unwrap_or(e);
    !digits.is_empty() && digits.parse::<f64>().is_ok()
}

/// The statement that bounds a MySQL session's lock waits: the metadata
/// lock DDL waits for and the row locks a backfill's UPDATE waits for. MySQL
/// counts both in whole seconds, at least one, so `wait` is rounded up.
pub fn mysql_lock_wait(wait: Duration) -> String {
    let secs = wait.as_millis().div_ceil(1000).max(1);
    format!("SET SESSION lock_wait_timeout = {secs}, SESSION innodb_lock_wait_timeout = {secs}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ty(s: &str) -> SqlType {
        match SqlType::parse(s) {
            Ok(t) => t,
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn quoting_doubles_the_quote_character() {
        let pg = Dialect::Postgres;
        assert_eq!(pg.quote_ident("user"), "\"user\"");
        assert_eq!(pg.quote_ident("we\"ird"), "\"we\"\"ird\"");
        assert_eq!(pg.quote_literal("it's"), "'it''s'");
        assert_eq!(Dialect::Sqlite.quote_ident("we`ird"), "`we``ird`");
        assert_eq!(Dialect::Sqlite.quote_literal("a\\b"), "'a\\b'");
        let my = Dialect::Mysql;
        assert_eq!(my.quote_ident("user"), "`user`");
        assert_eq!(my.quote_ident("we`ird"), "`we``ird`");
        assert_eq!(my.quote_literal("it's a\\b"), "'it''s a\\\\b'");
        assert_eq!("mariadb".parse::<Dialect>().ok(), Some(Dialect::Mysql));
        assert_eq!("MySQL".parse::<Dialect>().ok(), Some(Dialect::Mysql));
    }

    #[test]
    fn mysql_varchar_widening_keeps_its_length_prefix() {
        let w = Dialect::mysql_varchar_widening_in_place;
        assert!(w(&ty("varchar(20)"), &ty("varchar(60)"), 4));
        assert!(!w(&ty("varchar(60)"), &ty("varchar(64)"), 4));
        assert!(w(&ty("varchar(60)"), &ty("varchar(64)"), 1));
        assert!(w(&ty("varchar(100)"), &ty("varchar(300)"), 4));
        assert!(!w(&ty("varchar(100)"), &ty("varchar(50)"), 4));
        assert!(!w(&ty("int"), &ty("bigint"), 4));
        assert!(!w(&ty("varchar(10)"), &ty("text"), 4));
    }

    #[test]
    fn typed_literals_keep_numbers_numeric() {
        let s = Dialect::Sqlite;
        assert_eq!(s.typed_literal("integer", Some("42")), "42");
        assert_eq!(s.typed_literal("text", Some("4'2")), "'4''2'");
        assert_eq!(s.typed_literal("integer", Some("1; drop")), "'1; drop'");
        assert_eq!(s.typed_literal("null", None), "NULL");
    }

    #[test]
    fn binary_coercible_changes_are_recognised() {
        let pg = Dialect::Postgres;
        assert!(pg.is_binary_coercible(&ty("varchar(50)"), &ty("varchar(100)")));
        assert!(pg.is_binary_coercible(&ty("varchar(50)"), &ty("text")));
        assert!(pg.is_binary_coercible(&ty("varchar(50)"), &ty("character varying")));
        assert!(pg.is_binary_coercible(&ty("numeric(10,2)"), &ty("numeric(12,2)")));
        assert!(pg.is_binary_coercible(&ty("timestamp(3)"), &ty("timestamp(6)")));
        assert!(!pg.is_binary_coercible(&ty("varchar(100)"), &ty("varchar(50)")));
        assert!(!pg.is_binary_coercible(&ty("numeric(10,2)"), &ty("numeric(12,3)")));
        assert!(!pg.is_binary_coercible(&ty("integer"), &ty("bigint")));
        assert!(!pg.is_binary_coercible(&ty("text"), &ty("varchar(10)")));
        assert!(!Dialect::Sqlite.is_binary_coercible(&ty("varchar(5)"), &ty("text")));
        assert!(!pg.is_binary_coercible(&ty("varchar(5)[]"), &ty("varchar(10)[]")));
    }

    #[test]
    fn volatility_is_judged_conservatively() {
        assert!(!expression_is_volatile("0"));
        assert!(!expression_is_volatile("now()"));
        assert!(!expression_is_volatile("'pending'::text"));
        assert!(!expression_is_volatile("'clock_timestamp()'"));
        assert!(expression_is_volatile("clock_timestamp()"));
        assert!(expression_is_volatile("gen_random_uuid()"));
        assert!(expression_is_volatile("my_function(1)"));
    }

    #[test]
    fn sqlite_constants() {
        let s = Dialect::Sqlite;
        assert!(s.add_column_with_default_is_instant("0"));
        assert!(s.add_column_with_default_is_instant("'it''s'"));
        assert!(s.add_column_with_default_is_instant("-1.5"));
        assert!(!s.add_column_with_default_is_instant("CURRENT_TIMESTAMP"));
        assert!(!s.add_column_with_default_is_instant("(1 + 1)"));
    }
}
