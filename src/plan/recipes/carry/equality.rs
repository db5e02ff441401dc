//! Types without an equality operator (Postgres `json`, `xml`, `point` and
//! the other geometric types, arrays of them): the sync trigger, the
//! backfill's "still to do" test and the verification compare with `IS
//! DISTINCT FROM`, which needs `=`. For such a type both sides are compared
//! as text: a copy is exact, so equal values print equally. Decided from
//! the catalog ([`crate::catalog::ColumnCensus::lacks_equality`]) for the
//! live column, and from the type's name for a type change's new type.

use super::super::copy_column::Copy;
use crate::dialect::Dialect;
use crate::plan::Recipe;

/// Postgres types with no default btree or hash operator class.
const WITHOUT_EQUALITY: &[&str] = &[
    "json", "xml", "point", "line", "lseg", "box", "path", "polygon", "circle",
];

/// Whether values of the new column are compared as text.
pub(in crate::plan::recipes) fn compare_as_text(r: &Recipe<'_>, c: &Copy<'_>) -> bool {
    if r.dialect != Dialect::Postgres {
        return false;
    }
    let live = r
        .catalog
        .table(c.table)
        .is_some_and(|f| f.census.column(c.old).lacks_equality);
    if !c.cast {
        return live;
    }
    c.new_type.as_deref().is_some_and(named_without_equality)
}

fn named_without_equality(ty: &str) -> bool {
    let base = ty.trim().trim_end_matches("[]").trim().to_ascii_lowercase();
    let base = base.rsplit('.').next().unwrap_or(&base);
    WITHOUT_EQUALITY.contains(&base)
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
    }
}
