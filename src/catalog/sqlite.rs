//! Reading an SQLite schema: `sqlite_master` and the table-valued pragmas
//! (`pragma_table_info`, `pragma_index_list`, `pragma_index_xinfo`,
//! `pragma_foreign_key_list`). SQLite keeps no catalog of CHECK constraints;
//! they are found in the `CREATE TABLE` text it stores.

use std::collections::BTreeMap;

use sqlx::{AssertSqlSafe, Row, SqlitePool};

use super::sql_text::{self, Flavor};
use super::{
    Catalog, CatalogError, CheckFacts, ColumnFacts, ForeignKeyFacts, IndexFacts, IndexKey,
    ReferentialAction, RelationKind, ServerVersion, TableFacts, UniqueFacts, ident,
};
use crate::dialect::Dialect;
use crate::name::{Ident, SqlType, TableName};

pub(super) async fn read(pool: &SqlitePool, tables: &[TableName]) -> Result<Catalog, CatalogError> {
    let text: String = sqlx::query_scalar("SELECT sqlite_version()")
        .fetch_one(pool)
        .await
        .map_err(CatalogError::Version)?;
    let mut catalog = Catalog::offline();
    if let Some(v) = ServerVersion::sqlite(&text) {
        catalog.set_server(v);
    }
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type IN ('table', 'view') \
            AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name",
    )
    .fetch_all(pool)
    .await
    .map_err(|source| CatalogError::Query {
        table: "(the list of tables)".into(),
        source,
    })?;
    catalog.set_table_names(
        names
            .into_iter()
            .filter_map(|n| {
                Some(TableName {
                    schema: None,
                    name: ident(n)?,
                })
            })
            .collect(),
    );
    for table in tables {
        let facts = read_table(pool, table)
            .await
            .map_err(|source| CatalogError::Query {
                table: table.to_string(),
                source,
            })?;
        match facts {
            Some(f) => catalog.insert(table.clone(), f),
            None => catalog.insert_missing(table.clone()),
        }
    }
    Ok(catalog)
}

async fn read_table(
    pool: &SqlitePool,
    table: &TableName,
) -> Result<Option<TableFacts>, sqlx::Error> {
    let schema = table.schema.as_ref().map_or("main", Ident::as_str);
    let master = format!("{}.sqlite_master", Dialect::Sqlite.quote_ident(schema));
    let found: Option<(String, Option<String>)> = sqlx::query_as(AssertSqlSafe(format!(
        "SELECT type, sql FROM {master} WHERE name = ?1 COLLATE NOCASE \
            AND type IN ('table', 'view', 'index') ORDER BY type = 'table' DESC LIMIT 1"
    )))
    .bind(table.name.as_str())
    .fetch_optional(pool)
    .await?;
    let Some((kind, create_sql)) = found else {
        return Ok(None);
    };
    let kind = match kind.as_str() {
        "table" => RelationKind::Table,
        "view" => RelationKind::View,
        _ => RelationKind::Other,
    };
    let rows = sqlx::query(
        "SELECT name, type, \"notnull\", dflt_value, pk FROM pragma_table_info(?1, ?2) ORDER BY cid",
    )
    .bind(table.name.as_str())
    .bind(schema)
    .fetch_all(pool)
    .await?;
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
            charset: None,
            collation: None,
        });
    }
    pk.sort();
    let primary_key: Vec<Ident> = pk.into_iter().map(|(_, n)| n).collect();
    let mentioned = |sql: &str| -> Vec<Ident> {
        columns
            .iter()
            .filter(|c: &&ColumnFacts| sql_text::mentions(sql, c.name.as_str(), Flavor::Sqlite))
            .map(|c| c.name.clone())
            .collect()
    };

    // Indexes.
    let list = sqlx::query(
        "SELECT name, \"unique\", origin, partial FROM pragma_index_list(?1, ?2) ORDER BY name",
    )
    .bind(table.name.as_str())
    .bind(schema)
    .fetch_all(pool)
    .await?;
    let mut indexes = Vec::new();
    let mut uniques = Vec::new();
    for r in &list {
        let (Ok(name), Ok(unique), Ok(origin), Ok(partial)) = (
            r.try_get::<String, _>("name"),
            r.try_get::<i64, _>("unique"),
            r.try_get::<String, _>("origin"),
            r.try_get::<i64, _>("partial"),
        ) else {
            continue;
        };
        let Some(index_name) = ident(name.clone()) else {
            continue;
        };
        let xinfo = sqlx::query(
            "SELECT cid, name, \"desc\", coll, key FROM pragma_index_xinfo(?1, ?2) ORDER BY seqno",
        )
        .bind(&name)
        .bind(schema)
        .fetch_all(pool)
        .await?;
        let mut keys = Vec::new();
        let mut has_expression = false;
        for x in &xinfo {
            if x.try_get::<i64, _>("key").unwrap_or(0) == 0 {
                continue;
            }
            let cid = x.try_get::<i64, _>("cid").unwrap_or(-1);
            has_expression |= cid == -2;
            let coll = x.try_get::<Option<String>, _>("coll").ok().flatten();
            keys.push(IndexKey {
                column: x
                    .try_get::<Option<String>, _>("name")
                    .ok()
                    .flatten()
                    .and_then(ident),
                descending: x.try_get::<i64, _>("desc").unwrap_or(0) != 0,
                nulls_first: false,
                opclass: None,
                prefix: None,
                collation: coll
                    .filter(|c| !c.eq_ignore_ascii_case("binary"))
                    .and_then(|c| {
                        Some(TableName {
                            schema: None,
                            name: ident(c)?,
                        })
                    }),
            });
        }
        let definition: Option<String> = sqlx::query_scalar(AssertSqlSafe(format!(
            "SELECT sql FROM {master} WHERE type = 'index' AND name = ?1"
        )))
        .bind(&name)
        .fetch_optional(pool)
        .await?
        .flatten();
        let predicate = (partial != 0)
            .then(|| {
                definition
                    .as_deref()
                    .and_then(|d| sql_text::index_predicate(d, Flavor::Sqlite))
            })
            .flatten();
        let mut columns_used: Vec<Ident> = keys.iter().filter_map(|k| k.column.clone()).collect();
        if let Some(body) = definition
            .as_deref()
            .filter(|_| has_expression || partial != 0)
            .and_then(sql_text::after_first_paren)
        {
            for c in mentioned(body) {
                if !columns_used.contains(&c) {
                    columns_used.push(c);
                }
            }
        }
        let key_columns: Vec<Ident> = keys.iter().filter_map(|k| k.column.clone()).collect();
        if origin == "u" {
            uniques.push(UniqueFacts {
                name: index_name.clone(),
                index: index_name.clone(),
                columns: key_columns,
                deferrable: false,
                initially_deferred: false,
            });
        }
        indexes.push(IndexFacts {
            name: index_name.clone(),
            unique: unique != 0,
            primary: origin == "pk",
            keys,
            include: Vec::new(),
            has_expression,
            predicate,
            columns_used,
            method: None,
            valid: true,
            constraint: (origin != "c").then(|| index_name.clone()),
            exclusion: false,
            nulls_not_distinct: false,
            options: Vec::new(),
            definition,
        });
    }

    // CHECK constraints, from the CREATE TABLE text.
    let checks = create_sql
        .as_deref()
        .filter(|_| kind == RelationKind::Table)
        .map(sql_text::sqlite_checks)
        .unwrap_or_default()
        .into_iter()
        .map(|c| CheckFacts {
            name: c.name.and_then(ident),
            columns: mentioned(&c.expression),
            column: c.column.and_then(|owner| {
                columns
                    .iter()
                    .find(|col| col.name.as_str().eq_ignore_ascii_case(&owner))
                    .map(|col| col.name.clone())
            }),
            expression: c.expression,
            validated: true,
        })
        .collect();

    // Foreign keys of this table, and those that reference it.
    let fk_rows = sqlx::query(
        "SELECT id, \"table\", \"from\", \"to\", on_update, on_delete, \"match\" \
           FROM pragma_foreign_key_list(?1, ?2) ORDER BY id, seq",
    )
    .bind(table.name.as_str())
    .bind(schema)
    .fetch_all(pool)
    .await?;
    let mut grouped: BTreeMap<i64, ForeignKeyFacts> = BTreeMap::new();
    for r in &fk_rows {
        let (Ok(id), Ok(parent), Ok(from)) = (
            r.try_get::<i64, _>("id"),
            r.try_get::<String, _>("table"),
            r.try_get::<String, _>("from"),
        ) else {
            continue;
        };
        let Some(parent) = ident(parent) else {
            continue;
        };
        let fk = grouped.entry(id).or_insert_with(|| ForeignKeyFacts {
            name: None,
            table: table.clone(),
            columns: Vec::new(),
            references: table.sibling(parent),
            referenced_columns: Vec::new(),
            on_delete: ReferentialAction::from_words(
                &r.try_get::<String, _>("on_delete").unwrap_or_default(),
            ),
            on_update: ReferentialAction::from_words(
                &r.try_get::<String, _>("on_update").unwrap_or_default(),
            ),
            match_full: false,
            deferrable: false,
            initially_deferred: false,
            validated: true,
            declared_inline: false,
        });
        fk.columns.extend(ident(from));
        if let Some(to) = r.try_get::<Option<String>, _>("to").ok().flatten() {
            fk.referenced_columns.extend(ident(to));
        }
    }
    let inline = create_sql
        .as_deref()
        .map(sql_text::sqlite_inline_references)
        .unwrap_or_default();
    let foreign_keys = grouped
        .into_values()
        .map(|mut fk| {
            fk.declared_inline = matches!(fk.columns.as_slice(), [c] if inline.iter().any(|i| i.eq_ignore_ascii_case(c.as_str())));
            fk
        })
        .collect();

    let ref_rows = sqlx::query(AssertSqlSafe(format!(
        "SELECT m.name AS child, f.id, f.\"from\", f.\"to\", f.on_update, f.on_delete \
           FROM {master} AS m JOIN pragma_foreign_key_list(m.name, ?2) AS f \
          WHERE m.type = 'table' AND f.\"table\" = ?1 COLLATE NOCASE \
          ORDER BY m.name, f.id, f.seq"
    )))
    .bind(table.name.as_str())
    .bind(schema)
    .fetch_all(pool)
    .await?;
    let mut grouped: BTreeMap<(String, i64), ForeignKeyFacts> = BTreeMap::new();
    for r in &ref_rows {
        let (Ok(child), Ok(id), Ok(from)) = (
            r.try_get::<String, _>("child"),
            r.try_get::<i64, _>("id"),
            r.try_get::<String, _>("from"),
        ) else {
            continue;
        };
        let Some(child_name) = ident(child.clone()) else {
            continue;
        };
        let fk = grouped
            .entry((child, id))
            .or_insert_with(|| ForeignKeyFacts {
                name: None,
                table: table.sibling(child_name),
                columns: Vec::new(),
                references: table.clone(),
                referenced_columns: Vec::new(),
                on_delete: ReferentialAction::from_words(
                    &r.try_get::<String, _>("on_delete").unwrap_or_default(),
                ),
                on_update: ReferentialAction::from_words(
                    &r.try_get::<String, _>("on_update").unwrap_or_default(),
                ),
                match_full: false,
                deferrable: false,
                initially_deferred: false,
                validated: true,
                declared_inline: false,
            });
        fk.columns.extend(ident(from));
        match r.try_get::<Option<String>, _>("to").ok().flatten() {
            Some(to) => fk.referenced_columns.extend(ident(to)),
            // No column named: the parent's primary key, in order.
            None => {
                let n = fk.columns.len();
                fk.referenced_columns
                    .extend(primary_key.get(n - 1).cloned());
            }
        }
    }
    let referenced_by = grouped.into_values().collect();

    let names: Vec<Ident> = columns
        .iter()
        .map(|c: &ColumnFacts| c.name.clone())
        .collect();
    let census = super::census::read_sqlite(pool, schema, table.name.as_str(), &names).await?;
    Ok(Some(TableFacts {
        census,
        kind,
        columns,
        primary_key,
        indexes,
        uniques,
        checks,
        foreign_keys,
        referenced_by,
        ..TableFacts::default()
    }))
}
