//! How the sync trigger, the backfill's "still to do" test and the
//! verification tell two values of the new column apart. They compare with
//! `IS DISTINCT FROM` (Postgres) and `<=>` (MySQL), which use the type's
//! `=` and the column's collation; two kinds of column need an exact
//! comparison instead:
//!
//! - Postgres types without an equality operator (`json`, `xml`, `point`
//!   and the other geometric types, arrays of them), and `citext`, whose
//!   `=` ignores case (a write of `'Bob'` over `'bob'` would look like no
//!   write, and the trigger would put `'bob'` back): both sides are compared
//!   as text; a copy is exact, so equal values print equally.
//! - MySQL/MariaDB text columns (`char`, `varchar`, `text`, `enum`, `set`):
//!   their collation is case- and accent-insensitive and ignores trailing
//!   spaces by default (`utf8mb4_general_ci`, `utf8mb4_0900_ai_ci`): both
//!   sides are compared as their bytes in `utf8mb4`.
//!
//! Decided from the catalog for the live column (a rename), and from the
//! type's name for a type change's new type.

use super::super::copy_column::Copy;
use crate::dialect::Dialect;
use crate::plan::Recipe;

/// Postgres types with no default btree or hash operator class.
const WITHOUT_EQUALITY: &[&str] = &[
    "json", "xml", "point", "line", "lseg", "box", "path", "polygon", "circle",
];

/// Whether values of the new column are compared exactly: as text on
/// Postgres, as `utf8mb4` bytes on MySQL (see the module doc).
pub(in crate::plan::recipes) fn compare_as_text(r: &Recipe<'_>, c: &Copy<'_>) -> bool {
    let live = r.catalog.column(c.table, c.old);
    match r.dialect {
        Dialect::Postgres if c.cast => c
            .new_type
            .as_deref()
            .is_some_and(|t| named_without_equality(t) || base(t) == "citext"),
        Dialect::Postgres => {
            let lacks = r
                .catalog
                .table(c.table)
                .is_some_and(|f| f.census.column(c.old).lacks_equality);
            lacks || live.is_some_and(|col| base(&col.type_sql) == "citext")
        }
        Dialect::Mysql if c.cast => c.new_type.as_deref().is_some_and(mysql_text),
        // A text column has a collation; JSON's is dropped when read.
        Dialect::Mysql => live.is_some_and(|col| col.collation.is_some()),
        Dialect::Sqlite => false,
    }
}

/// A type's name without its schema and array brackets, lower case.
fn base(ty: &str) -> String {
    let base = ty.trim().trim_end_matches("[]").trim().to_ascii_lowercase();
    base.rsplit('.').next().unwrap_or(&base).to_string()
}

fn named_without_equality(ty: &str) -> bool {
    WITHOUT_EQUALITY.contains(&base(ty).as_str())
}

/// A MySQL type whose values have a collation: `char`, `varchar`, the
/// `text`s, `enum`, `set` (not `binary`, `varbinary`, the `blob`s).
fn mysql_text(ty: &str) -> bool {
    let t = ty.trim().to_ascii_lowercase();
    let word: String = t.chars().take_while(|c| c.is_ascii_alphabetic()).collect();
    matches!(
        word.as_str(),
        "char"
            | "varchar"
            | "nchar"
            | "nvarchar"
            | "national"
            | "tinytext"
            | "text"
            | "mediumtext"
            | "longtext"
            | "enum"
            | "set"
            | "character"
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn known_types_without_equality() {
        for t in ["json", "JSON", "xml", "point", "json[]", "pg_catalog.json"] {
            assert!(super::named_without_equality(t), "{t}");
        }
        for t in ["jsonb", "text", "bigint", "jsonb[]"] {
            assert!(!super::named_without_equality(t), "{t}");
        }
        assert_eq!(super::base("public.CITEXT[]"), "citext");
    }

    #[test]
    fn mysql_text_types_have_a_collation() {
        for t in [
            "varchar(50)",
            "TEXT",
            "char(3) CHARACTER SET latin1",
            "enum('a','b')",
            "longtext",
        ] {
            assert!(super::mysql_text(t), "{t}");
        }
        for t in [
            "varbinary(50)",
            "blob",
            "int",
            "json",
            "datetime(3)",
            "binary(16)",
        ] {
            assert!(!super::mysql_text(t), "{t}");
        }
    }
}
