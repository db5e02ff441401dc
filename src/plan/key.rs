//! Which key a batched backfill walks, decided at plan time from the live
//! schema, so a table without a usable key is refused before any DDL runs
//! rather than when the backfill starts, after the steps before it.
//!
//! | dialect | the batches walk |
//! |---|---|
//! | Postgres | the primary key; nothing else (`ctid` moves when a row is updated, and the backfill updates every row) |
//! | MySQL/MariaDB | the primary key, else the first unique key whose columns are all NOT NULL (the key InnoDB clusters the table by), with no prefix or expression part |
//! | SQLite | the primary key, else the table's `rowid` (every table without a primary key is a rowid table), under whichever of `rowid`, `_rowid_`, `oid` no column hides |

use crate::catalog::{Catalog, Lookup, TableFacts};
use crate::dialect::Dialect;
use crate::name::{Ident, TableName};

/// What the plan knows about the key a backfill of a table walks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum WalkKey {
    /// These columns (or SQLite's rowid under one of its names).
    Known(Vec<Ident>),
    /// The table was not read (an offline plan): the executor reads the
    /// primary key when the backfill runs.
    Unknown,
    /// The table has no usable key: why, and the way forward.
    Missing(String),
}

/// The key the batches of a backfill of `table` walk.
pub(crate) fn walk_key(dialect: Dialect, catalog: &Catalog, table: &TableName) -> WalkKey {
    match catalog.lookup(table) {
        Lookup::Found(facts) => from_facts(dialect, table, facts),
        Lookup::Missing | Lookup::NotRead => WalkKey::Unknown,
    }
}

fn from_facts(dialect: Dialect, table: &TableName, facts: &TableFacts) -> WalkKey {
    if !facts.primary_key.is_empty() {
        return WalkKey::Known(facts.primary_key.clone());
    }
    match dialect {
        Dialect::Postgres => WalkKey::Missing(format!(
            "table {table} has no primary key, and the batched backfill walks one (Postgres has no stable row id: ctid moves when a row is updated); add a primary key to {table} in an earlier plan, or copy the data yourself in a `sql` change"
        )),
        Dialect::Mysql => match mysql_not_null_unique(facts) {
            Some(cols) => WalkKey::Known(cols),
            None => WalkKey::Missing(format!(
                "table {table} has no primary key and no unique key whose columns are all NOT NULL, and the batched backfill walks one; add a primary key (or a NOT NULL unique key) to {table} in an earlier plan, or copy the data yourself in a `sql` change"
            )),
        },
        Dialect::Sqlite => {
            let hidden = |alias: &str| {
                facts
                    .columns
                    .iter()
                    .any(|c| c.name.as_str().eq_ignore_ascii_case(alias))
            };
            match ["rowid", "_rowid_", "oid"]
                .into_iter()
                .find(|alias| !hidden(alias))
            {
                Some(alias) => WalkKey::Known(vec![Ident::trusted(alias.to_string())]),
                None => WalkKey::Missing(format!(
                    "table {table} has no primary key, and its columns named rowid, _rowid_ and oid hide the rowid the batched backfill would walk instead; rebuild {table} with a primary key in an earlier plan, or copy the data yourself in a `sql` change"
                )),
            }
        }
    }
}

/// MySQL: the first unique index whose keys are whole, NOT NULL columns.
fn mysql_not_null_unique(facts: &TableFacts) -> Option<Vec<Ident>> {
    facts
        .indexes
        .iter()
        .filter(|i| i.unique && i.predicate.is_none() && !i.has_expression)
        .find_map(|i| {
            i.keys
                .iter()
                .map(|k| match (&k.column, k.prefix) {
                    (Some(c), None) if facts.column(c).is_some_and(|c| !c.nullable) => {
                        Some(c.clone())
                    }
                    _ => None,
                })
                .collect::<Option<Vec<Ident>>>()
                .filter(|cols| !cols.is_empty())
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{ColumnFacts, IndexFacts, IndexKey};

    fn id(s: &str) -> Ident {
        Ident::new(s).unwrap_or_else(|e| panic!("{e}"))
    }

    fn col(name: &str, nullable: bool) -> ColumnFacts {
        ColumnFacts {
            name: id(name),
            type_sql: "int".into(),
            ty: None,
            nullable,
            default: None,
            charset: None,
            collation: None,
        }
    }

    fn unique(name: &str, cols: &[&str], prefix: Option<u32>) -> IndexFacts {
        IndexFacts {
            name: id(name),
            unique: true,
            primary: false,
            keys: cols
                .iter()
                .map(|c| IndexKey {
                    column: Some(id(c)),
                    prefix,
                    ..IndexKey::default()
                })
                .collect(),
            include: Vec::new(),
            has_expression: false,
            predicate: None,
            columns_used: cols.iter().map(|c| id(c)).collect(),
            method: None,
            valid: true,
            constraint: None,
            exclusion: false,
            nulls_not_distinct: false,
            options: Vec::new(),
            definition: None,
        }
    }

    fn catalog(facts: TableFacts) -> (Catalog, TableName) {
        let t = TableName::parse("ledger").unwrap_or_else(|e| panic!("{e}"));
        let mut c = Catalog::offline();
        c.insert(t.clone(), facts);
        (c, t)
    }

    fn keyless(columns: &[(&str, bool)], indexes: Vec<IndexFacts>) -> TableFacts {
        TableFacts {
            columns: columns.iter().map(|(n, null)| col(n, *null)).collect(),
            indexes,
            ..TableFacts::default()
        }
    }

    #[test]
    fn the_primary_key_comes_first_in_every_dialect() {
        let mut facts = keyless(&[("a", false), ("b", false)], Vec::new());
        facts.primary_key = vec![id("b"), id("a")];
        let (c, t) = catalog(facts);
        for d in [Dialect::Postgres, Dialect::Mysql, Dialect::Sqlite] {
            assert_eq!(walk_key(d, &c, &t), WalkKey::Known(vec![id("b"), id("a")]));
        }
    }

    #[test]
    fn postgres_refuses_a_table_without_a_primary_key() {
        let (c, t) = catalog(keyless(
            &[("a", false)],
            vec![unique("ledger_a_key", &["a"], None)],
        ));
        match walk_key(Dialect::Postgres, &c, &t) {
            WalkKey::Missing(why) => {
                assert!(why.contains("table ledger has no primary key"), "{why}");
                assert!(why.contains("add a primary key to ledger"), "{why}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn mysql_walks_the_first_whole_not_null_unique_key() {
        let (c, t) = catalog(keyless(
            &[("a", true), ("b", false), ("c", false)],
            vec![
                unique("on_nullable", &["a"], None),
                unique("on_prefix", &["b"], Some(10)),
                unique("on_both", &["c", "b"], None),
            ],
        ));
        assert_eq!(
            walk_key(Dialect::Mysql, &c, &t),
            WalkKey::Known(vec![id("c"), id("b")])
        );
        let (c, t) = catalog(keyless(
            &[("a", true)],
            vec![unique("on_nullable", &["a"], None)],
        ));
        match walk_key(Dialect::Mysql, &c, &t) {
            WalkKey::Missing(why) => assert!(why.contains("NOT NULL unique key"), "{why}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn sqlite_walks_the_rowid_under_a_name_no_column_hides() {
        let (c, t) = catalog(keyless(&[("a", true)], Vec::new()));
        assert_eq!(
            walk_key(Dialect::Sqlite, &c, &t),
            WalkKey::Known(vec![id("rowid")])
        );
        let (c, t) = catalog(keyless(&[("ROWID", true), ("_rowid_", true)], Vec::new()));
        assert_eq!(
            walk_key(Dialect::Sqlite, &c, &t),
            WalkKey::Known(vec![id("oid")])
        );
        let (c, t) = catalog(keyless(
            &[("rowid", true), ("_rowid_", true), ("Oid", true)],
            Vec::new(),
        ));
        assert!(
            matches!(walk_key(Dialect::Sqlite, &c, &t), WalkKey::Missing(why) if why.contains("hide the rowid"))
        );
    }

    #[test]
    fn an_unread_table_is_unknown() {
        let t = TableName::parse("ledger").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            walk_key(Dialect::Postgres, &Catalog::offline(), &t),
            WalkKey::Unknown
        );
    }
}
