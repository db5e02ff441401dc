//! What phasegate knows about a database's live schema: the columns of the
//! tables a plan touches, their types, nullability and defaults, and primary
//! keys.
//!
//! The planner works from a [`Catalog`]. An empty one plans offline: recipes
//! then emit SQL that reads what it needs from the database at apply time
//! where the dialect allows it, and take the safe multi-phase path wherever a
//! one-phase path would depend on facts they do not have.

use std::collections::HashMap;

use sqlx::{Row, SqlitePool};

use crate::name::{Ident, SqlType, TableName};

/// A column as the database describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnFacts {
    pub name: Ident,
    /// The type as the database prints it (`character varying(50)`).
    pub type_sql: String,
    /// The same, parsed, when phasegate's type grammar covers it.
    pub ty: Option<SqlType>,
    pub nullable: bool,
    /// The default expression as the database prints it.
    pub default: Option<String>,
}

/// A table as the database describes it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TableFacts {
    /// In table order.
    pub columns: Vec<ColumnFacts>,
    pub primary_key: Vec<Ident>,
}

impl TableFacts {
    pub fn column(&self, name: &Ident) -> Option<&ColumnFacts> {
        self.columns.iter().find(|c| &c.name == name)
    }
}

/// Known tables, keyed by the name the plan uses for them.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    tables: HashMap<TableName, TableFacts>,
}

/// The live schema could not be read.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("reading the schema of {table}: {source}")]
    Query { table: String, source: sqlx::Error },
}

impl Catalog {
    /// Knows nothing: plan offline.
    pub fn offline() -> Catalog {
        Catalog::default()
    }

    pub fn insert(&mut self, table: TableName, facts: TableFacts) {
        self.tables.insert(table, facts);
    }

    pub fn table(&self, table: &TableName) -> Option<&TableFacts> {
        self.tables.get(table)
    }

    pub fn column(&self, table: &TableName, column: &Ident) -> Option<&ColumnFacts> {
        self.table(table).and_then(|t| t.column(column))
    }

    pub fn is_empty(&self) -> bool {
        self.tables.is_empty()
    }

    /// Reads `tables` from a Postgres database. A table that does not exist is
    /// left out (the planner then plans it offline).
    pub async fn read_postgres(
        pool: &sqlx::PgPool,
        tables: &[TableName],
    ) -> Result<Catalog, CatalogError> {
        let mut catalog = Catalog::offline();
        for table in tables {
            let quoted = crate::dialect::Dialect::Postgres.quote_table(table);
            let err = |source| CatalogError::Query {
                table: table.to_string(),
                source,
            };
            let rows = sqlx::query(
                "SELECT a.attname::text AS name, format_type(a.atttypid, a.atttypmod) AS ty, \
                        NOT a.attnotnull AS nullable, pg_get_expr(d.adbin, d.adrelid) AS dflt \
                   FROM pg_attribute a \
                   LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum \
                  WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped \
                  ORDER BY a.attnum",
            )
            .bind(&quoted)
            .fetch_all(pool)
            .await
            .map_err(err)?;
            if rows.is_empty() {
                continue;
            }
            let pk: Vec<String> = sqlx::query_scalar(
                "SELECT a.attname::text FROM pg_index i \
                   JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord) ON true \
                   JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum \
                  WHERE i.indrelid = to_regclass($1) AND i.indisprimary ORDER BY k.ord",
            )
            .bind(&quoted)
            .fetch_all(pool)
            .await
            .map_err(err)?;
            let columns = rows
                .iter()
                .filter_map(|r| {
                    let name: String = r.try_get("name").ok()?;
                    let type_sql: String = r.try_get("ty").ok()?;
                    Some(ColumnFacts {
                        name: Ident::new(name).ok()?,
                        ty: SqlType::parse(&type_sql).ok(),
                        type_sql,
                        nullable: r.try_get("nullable").ok()?,
                        default: r.try_get("dflt").ok()?,
                    })
                })
                .collect();
            let primary_key = pk.into_iter().filter_map(|c| Ident::new(c).ok()).collect();
            catalog.insert(
                table.clone(),
                TableFacts {
                    columns,
                    primary_key,
                },
            );
        }
        Ok(catalog)
    }

    /// Reads `tables` from an SQLite database.
    pub async fn read_sqlite(
        pool: &SqlitePool,
        tables: &[TableName],
    ) -> Result<Catalog, CatalogError> {
        let mut catalog = Catalog::offline();
        for table in tables {
            let schema = table.schema.as_ref().map_or("main", Ident::as_str);
            let rows = sqlx::query("SELECT name, type, \"notnull\", dflt_value, pk FROM pragma_table_info(?1, ?2) ORDER BY cid")
                .bind(table.name.as_str())
                .bind(schema)
                .fetch_all(pool)
                .await
                .map_err(|source| CatalogError::Query {
                    table: table.to_string(),
                    source,
                })?;
            if rows.is_empty() {
                continue;
            }
            let mut pk: Vec<(i64, Ident)> = Vec::new();
            let mut columns = Vec::new();
            for r in &rows {
                let (Ok(name), Ok(type_sql), Ok(notnull), Ok(default), Ok(pk_pos)) = (
                    r.try_get::<String, _>("name"),
                    r.try_get::<String, _>("type"),
                    r.try_get::<i64, _>("notnull"),
                    r.try_get::<Option<String>, _>("dflt_value"),
                    r.try_get::<i64, _>("pk"),
                ) else {
                    continue;
                };
                let Ok(name) = Ident::new(name) else { continue };
                if pk_pos > 0 {
                    pk.push((pk_pos, name.clone()));
                }
                columns.push(ColumnFacts {
                    name,
                    ty: SqlType::parse(&type_sql).ok(),
                    type_sql,
                    nullable: notnull == 0,
                    default,
                });
            }
            pk.sort();
            catalog.insert(
                table.clone(),
                TableFacts {
                    columns,
                    primary_key: pk.into_iter().map(|(_, n)| n).collect(),
                },
            );
        }
        Ok(catalog)
    }
}
