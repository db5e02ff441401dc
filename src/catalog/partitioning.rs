//! Partitioning and inheritance of a Postgres table: whether it is
//! partitioned (and by what key), its partitions down through any
//! sub-partitions, the table it is a partition of, and the tables it
//! inherits from or passes its columns on to (`pg_partitioned_table`,
//! `pg_inherits`).
//!
//! The planner needs these facts because several statements behave
//! differently there: `CREATE INDEX CONCURRENTLY` is refused on a partitioned
//! table, a unique index must include the partition key, a foreign key
//! cannot be added NOT VALID to a partitioned table (before Postgres 18),
//! indexes and foreign keys are not inherited by inheritance children, and a
//! partition's columns belong to its parent.

use std::collections::BTreeMap;

use sqlx::{AssertSqlSafe, PgPool, Row};

use super::{ServerVersion, ident};
use crate::name::{Ident, TableName};

/// How a table takes part in partitioning and inheritance. The default
/// (nothing) is a plain table, and what SQLite and MySQL tables get.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct Partitioning {
    /// The partition key, when the table is partitioned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<PartitionKey>,
    /// Its partitions (each with its own, when sub-partitioned).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub partitions: Vec<Partition>,
    /// The partitioned table it is a partition of (schema-qualified).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition_of: Option<TableName>,
    /// The tables it inherits from, by plain inheritance (`INHERITS`), schema-qualified.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inherits: Vec<TableName>,
    /// The tables that inherit from it by plain inheritance, schema-qualified.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inherited_by: Vec<TableName>,
    /// Its columns that come from a parent (all of a partition's do).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inherited_columns: Vec<Ident>,
}

/// A partition key: `PARTITION BY RANGE (created_on)`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PartitionKey {
    /// `range`, `list` or `hash`.
    pub strategy: String,
    /// The key's columns, in order (expressions left out).
    pub columns: Vec<Ident>,
    /// Whether part of the key is an expression.
    pub has_expression: bool,
    /// The key as Postgres prints it (`RANGE (created_on)`).
    pub definition: String,
}

/// One partition of a partitioned table.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Partition {
    /// The partition (schema-qualified).
    pub table: TableName,
    /// Its bound as Postgres prints it (`FOR VALUES FROM ('2024-01-01') TO ('2025-01-01')`, `DEFAULT`).
    pub bound: Option<String>,
    /// A foreign table: Postgres cannot index it.
    #[serde(default)]
    pub foreign: bool,
    /// Its own key, when it is partitioned in turn.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<PartitionKey>,
    /// Its own partitions, when it is partitioned in turn.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub partitions: Vec<Partition>,
}

impl Partitioning {
    /// Whether the table is partitioned (`PARTITION BY`).
    pub fn is_partitioned(&self) -> bool {
        self.key.is_some()
    }

    /// Whether the table is a partition of another.
    pub fn is_partition(&self) -> bool {
        self.partition_of.is_some()
    }

    /// Whether the table inherits from, or is inherited by, another table
    /// (plain inheritance, not partitioning).
    pub fn has_inheritance(&self) -> bool {
        !self.inherits.is_empty() || !self.inherited_by.is_empty()
    }

    /// Neither partitioned, a partition, nor part of an inheritance tree.
    pub fn is_plain(&self) -> bool {
        !self.is_partitioned() && !self.is_partition() && !self.has_inheritance()
    }

    /// Every partition at every level, parents before their partitions.
    pub fn all_partitions(&self) -> Vec<&Partition> {
        fn walk<'a>(parts: &'a [Partition], out: &mut Vec<&'a Partition>) {
            for p in parts {
                out.push(p);
                walk(&p.partitions, out);
            }
        }
        let mut out = Vec::new();
        walk(&self.partitions, &mut out);
        out
    }

    /// The first partition key, of the table (`None` for `table` itself) or
    /// of a sub-partitioned partition, that `columns` do not cover: a
    /// unique index on the table must hold every column of every key below
    /// it. Returns the partitioned table, its key and the missing columns.
    pub fn uncovered_key<'a>(
        &'a self,
        columns: &[Ident],
    ) -> Option<(Option<&'a TableName>, &'a PartitionKey, Vec<&'a Ident>)> {
        let missing = |key: &'a PartitionKey| -> Option<Vec<&'a Ident>> {
            let gone: Vec<&Ident> = key
                .columns
                .iter()
                .filter(|c| !columns.contains(c))
                .collect();
            (!gone.is_empty() || key.has_expression).then_some(gone)
        };
        if let Some(key) = &self.key
            && let Some(gone) = missing(key)
        {
            return Some((None, key, gone));
        }
        self.all_partitions().into_iter().find_map(|p| {
            let key = p.key.as_ref()?;
            missing(key).map(|gone| (Some(&p.table), key, gone))
        })
    }
}

/// A partition's direct partitions with their bounds and keys, as rows of
/// the tree below a table: (oid, parent oid, schema, name, relkind, bound,
/// strategy, key definition, key columns, whether the key has expressions).
const TREE: &str = "WITH RECURSIVE tree(oid, parent, depth) AS ( \
        SELECT to_regclass($1)::oid, NULL::oid, 0 \
        UNION ALL \
        SELECT i.inhrelid, i.inhparent, t.depth + 1 \
          FROM tree t JOIN pg_class pc ON pc.oid = t.oid AND pc.relkind = 'p' \
          JOIN pg_inherits i ON i.inhparent = t.oid \
         WHERE t.depth < 32 \
    ) \
    SELECT t.oid::int8 AS oid, t.parent::int8 AS parent, n.nspname::text AS schema, \
           c.relname::text AS name, c.relkind::text AS kind, \
           pg_get_expr(c.relpartbound, c.oid) AS bound, \
           pt.partstrat::text AS strategy, \
           CASE WHEN pt.partrelid IS NOT NULL THEN pg_get_partkeydef(c.oid) END AS key_definition, \
           ARRAY(SELECT a.attname::text FROM unnest(pt.partattrs::int2[]) WITH ORDINALITY AS k(n, o) \
                   JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.n ORDER BY k.o) AS key_columns, \
           coalesce(pt.partexprs IS NOT NULL, false) AS key_has_expression \
      FROM tree t JOIN pg_class c ON c.oid = t.oid JOIN pg_namespace n ON n.oid = c.relnamespace \
      LEFT JOIN pg_partitioned_table pt ON pt.partrelid = c.oid \
     ORDER BY t.depth, n.nspname, c.relname";

/// Reads the partitioning and inheritance of the table `quoted` (a quoted,
/// possibly qualified name that exists).
pub(super) async fn read_postgres(
    pool: &PgPool,
    quoted: &str,
    version: &ServerVersion,
) -> Result<Partitioning, sqlx::Error> {
    // Declarative partitioning came with Postgres 10; before, only inheritance.
    let declarative = version.at_least(10, 0);
    let is_partition = if declarative {
        "c.relispartition"
    } else {
        "false"
    };
    let mut facts = Partitioning::default();
    // Parents: the partitioned table of a partition, or inherited tables.
    let parents = sqlx::query(AssertSqlSafe(format!(
        "SELECT n.nspname::text AS schema, p.relname::text AS name, {is_partition} AS partition \
           FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid \
           JOIN pg_class p ON p.oid = i.inhparent JOIN pg_namespace n ON n.oid = p.relnamespace \
          WHERE i.inhrelid = to_regclass($1) ORDER BY i.inhseqno"
    )))
    .bind(quoted)
    .fetch_all(pool)
    .await?;
    for r in &parents {
        let Some(table) = qualified(r.try_get("schema").ok(), r.try_get("name").ok()) else {
            continue;
        };
        if r.try_get::<bool, _>("partition").unwrap_or(false) {
            facts.partition_of = Some(table);
        } else {
            facts.inherits.push(table);
        }
    }
    // Inheritance children (a partitioned table's children are partitions, read below).
    let children = sqlx::query(AssertSqlSafe(format!(
        "SELECT n.nspname::text AS schema, c.relname::text AS name \
           FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid \
           JOIN pg_namespace n ON n.oid = c.relnamespace \
          WHERE i.inhparent = to_regclass($1) AND NOT {is_partition} \
          ORDER BY n.nspname, c.relname"
    )))
    .bind(quoted)
    .fetch_all(pool)
    .await?;
    facts.inherited_by = children
        .iter()
        .filter_map(|r| qualified(r.try_get("schema").ok(), r.try_get("name").ok()))
        .collect();
    let inherited: Vec<String> = sqlx::query_scalar(
        "SELECT attname::text FROM pg_attribute \
          WHERE attrelid = to_regclass($1) AND attnum > 0 AND NOT attisdropped AND attinhcount > 0 \
          ORDER BY attnum",
    )
    .bind(quoted)
    .fetch_all(pool)
    .await?;
    facts.inherited_columns = inherited.into_iter().filter_map(ident).collect();
    if declarative {
        let rows = sqlx::query(TREE).bind(quoted).fetch_all(pool).await?;
        let (key, partitions) = tree(&rows);
        facts.key = key;
        facts.partitions = partitions;
    }
    Ok(facts)
}

fn qualified(schema: Option<String>, name: Option<String>) -> Option<TableName> {
    Some(TableName {
        schema: Some(ident(schema?)?),
        name: ident(name?)?,
    })
}

/// The table's key and its partition tree, from the rows of [`TREE`]
/// (the table itself first, parents before children).
fn tree(rows: &[sqlx::postgres::PgRow]) -> (Option<PartitionKey>, Vec<Partition>) {
    struct Node {
        parent: Option<i64>,
        partition: Partition,
    }
    let key_of = |r: &sqlx::postgres::PgRow| -> Option<PartitionKey> {
        let strategy = match r.try_get::<Option<String>, _>("strategy").ok()??.as_str() {
            "r" => "range",
            "l" => "list",
            "h" => "hash",
            _ => "unknown",
        };
        Some(PartitionKey {
            strategy: strategy.to_string(),
            columns: r
                .try_get::<Vec<String>, _>("key_columns")
                .unwrap_or_default()
                .into_iter()
                .filter_map(ident)
                .collect(),
            has_expression: r.try_get("key_has_expression").unwrap_or(false),
            definition: r
                .try_get::<Option<String>, _>("key_definition")
                .ok()
                .flatten()
                .unwrap_or_default(),
        })
    };
    let Some(root) = rows.first() else {
        return (None, Vec::new());
    };
    let root_oid: i64 = root.try_get("oid").unwrap_or_default();
    let mut nodes: BTreeMap<i64, Node> = BTreeMap::new();
    let mut order = Vec::new();
    for r in &rows[1..] {
        let (Ok(oid), Some(table)) = (
            r.try_get::<i64, _>("oid"),
            qualified(r.try_get("schema").ok(), r.try_get("name").ok()),
        ) else {
            continue;
        };
        order.push(oid);
        nodes.insert(
            oid,
            Node {
                parent: r.try_get::<Option<i64>, _>("parent").ok().flatten(),
                partition: Partition {
                    table,
                    bound: r.try_get::<Option<String>, _>("bound").ok().flatten(),
                    foreign: r.try_get::<String, _>("kind").is_ok_and(|k| k == "f"),
                    key: key_of(r),
                    partitions: Vec::new(),
                },
            },
        );
    }
    // Children are listed after their parents: attach them deepest first.
    let mut top = Vec::new();
    for oid in order.iter().rev() {
        let Some(node) = nodes.remove(oid) else {
            continue;
        };
        match node.parent.and_then(|p| nodes.get_mut(&p)) {
            Some(parent) => parent.partition.partitions.insert(0, node.partition),
            None if node.parent == Some(root_oid) => top.insert(0, node.partition),
            None => {}
        }
    }
    (key_of(root), top)
}

/// Partitioning facts for tests, here and in the planner's.
#[cfg(test)]
pub(crate) mod testing {
    use super::{Partition, PartitionKey};
    use crate::name::{Ident, TableName};

    pub fn id(s: &str) -> Ident {
        Ident::new(s).unwrap_or_else(|e| panic!("{e}"))
    }

    /// `RANGE (cols)`.
    pub fn key(cols: &[&str]) -> PartitionKey {
        PartitionKey {
            strategy: "range".into(),
            columns: cols.iter().map(|c| id(c)).collect(),
            has_expression: false,
            definition: format!("RANGE ({})", cols.join(", ")),
        }
    }

    /// `public.name`, partitioned by `key_cols` into `partitions` when given.
    pub fn part(name: &str, key_cols: Option<&[&str]>, partitions: Vec<Partition>) -> Partition {
        Partition {
            table: TableName {
                schema: Some(id("public")),
                name: id(name),
            },
            bound: None,
            foreign: false,
            key: key_cols.map(key),
            partitions,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testing::{id, key, part};
    use super::*;

    #[test]
    fn a_unique_index_must_cover_every_key_below_the_table() {
        let facts = Partitioning {
            key: Some(key(&["at"])),
            partitions: vec![
                part("ev_2024", None, vec![]),
                part(
                    "ev_2025",
                    Some(&["region"]),
                    vec![part("ev_2025_eu", None, vec![])],
                ),
            ],
            ..Partitioning::default()
        };
        assert!(facts.is_partitioned() && !facts.is_plain());
        assert_eq!(facts.all_partitions().len(), 3);
        let (table, _, gone) = facts
            .uncovered_key(&[id("email")])
            .unwrap_or_else(|| panic!());
        assert_eq!((table, gone), (None, vec![&id("at")]));
        let (table, _, gone) = facts
            .uncovered_key(&[id("email"), id("at")])
            .unwrap_or_else(|| panic!());
        assert_eq!(
            (table.map(|t| t.name.as_str()), gone),
            (Some("ev_2025"), vec![&id("region")])
        );
        assert!(
            facts
                .uncovered_key(&[id("region"), id("at"), id("email")])
                .is_none()
        );
        assert!(Partitioning::default().is_plain());
    }
}
