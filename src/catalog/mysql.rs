//! Reading a MySQL or MariaDB schema from `information_schema`, and the
//! server's version and flavour from `SELECT VERSION()`.
//!
//! A plan's `schema.table` is a database and a table; an unqualified table
//! is in the connection's database (`DATABASE()`). Every text column is
//! read through `CAST(… AS CHAR)`: MySQL 8 reports some of
//! `information_schema` as binary strings.

use std::collections::BTreeMap;

use sqlx::{AssertSqlSafe, MySqlPool, Row};

use super::{
    Catalog, CatalogError, CheckFacts, ColumnFacts, ForeignKeyFacts, IndexFacts, IndexKey,
    ReferentialAction, RelationKind, ServerVersion, TableFacts, UniqueFacts, ident,
    plan_table_names,
};
use crate::dialect::Dialect;
use crate::name::{Ident, SqlType, TableName};

const COLUMNS: &str = "SELECT CAST(COLUMN_NAME AS CHAR) AS name, CAST(COLUMN_TYPE AS CHAR) AS ty, \
        CAST(IS_NULLABLE AS CHAR) AS nullable, CAST(COLUMN_DEFAULT AS CHAR) AS dflt, \
        CAST(CHARACTER_SET_NAME AS CHAR) AS cs, CAST(COLLATION_NAME AS CHAR) AS coll, \
        CAST(EXTRA AS CHAR) AS extra, CAST(DATA_TYPE AS CHAR) AS data_type \
   FROM information_schema.COLUMNS \
  WHERE TABLE_SCHEMA = COALESCE(?, DATABASE()) AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION";

const INDEXES: &str = "SELECT CAST(INDEX_NAME AS CHAR) AS name, NON_UNIQUE + 0 AS non_unique, \
        CAST(COLUMN_NAME AS CHAR) AS col, CAST(COLLATION AS CHAR) AS coll, \
        CAST(INDEX_TYPE AS CHAR) AS method, SUB_PART + 0 AS sub_part \
   FROM information_schema.STATISTICS \
  WHERE TABLE_SCHEMA = COALESCE(?, DATABASE()) AND TABLE_NAME = ? \
  ORDER BY INDEX_NAME, SEQ_IN_INDEX";

const CONSTRAINTS: &str = "SELECT CAST(CONSTRAINT_NAME AS CHAR) AS name, CAST(CONSTRAINT_TYPE AS CHAR) AS kind \
   FROM information_schema.TABLE_CONSTRAINTS \
  WHERE TABLE_SCHEMA = COALESCE(?, DATABASE()) AND TABLE_NAME = ?";

/// The table's CHECK constraints with their level: MariaDB declares a
/// column's own CHECK (and the `json_valid` one behind its JSON type) at
/// `Column` level, named after the column, and it goes with the column;
/// MySQL 8 has no `LEVEL` (every check is a table constraint there).
fn checks_sql(mariadb: bool) -> String {
    let level = if mariadb {
        "CAST(cc.LEVEL AS CHAR)"
    } else {
        "'Table'"
    };
    format!(
        "SELECT DISTINCT CAST(tc.CONSTRAINT_NAME AS CHAR) AS name, CAST(cc.CHECK_CLAUSE AS CHAR) AS expression, {level} AS level \
   FROM information_schema.TABLE_CONSTRAINTS tc \
   JOIN information_schema.CHECK_CONSTRAINTS cc \
     ON cc.CONSTRAINT_SCHEMA = tc.CONSTRAINT_SCHEMA AND cc.CONSTRAINT_NAME = tc.CONSTRAINT_NAME \
  WHERE tc.TABLE_SCHEMA = COALESCE(?, DATABASE()) AND tc.TABLE_NAME = ? AND tc.CONSTRAINT_TYPE = 'CHECK' \
  ORDER BY 1"
    )
}

/// Foreign keys from (`k.TABLE_NAME = ?`) or to (`k.REFERENCED_TABLE_NAME = ?`) a table.
fn foreign_keys(to: bool) -> String {
    let (schema_col, table_col) = if to {
        ("k.REFERENCED_TABLE_SCHEMA", "k.REFERENCED_TABLE_NAME")
    } else {
        ("k.TABLE_SCHEMA", "k.TABLE_NAME")
    };
    format!(
        "SELECT CAST(k.CONSTRAINT_NAME AS CHAR) AS name, CAST(k.TABLE_SCHEMA AS CHAR) AS tschema, \
                CAST(k.TABLE_NAME AS CHAR) AS tname, CAST(k.COLUMN_NAME AS CHAR) AS col, \
                CAST(k.REFERENCED_TABLE_SCHEMA AS CHAR) AS rschema, CAST(k.REFERENCED_TABLE_NAME AS CHAR) AS rname, \
                CAST(k.REFERENCED_COLUMN_NAME AS CHAR) AS rcol, \
                CAST(r.DELETE_RULE AS CHAR) AS on_delete, CAST(r.UPDATE_RULE AS CHAR) AS on_update \
           FROM information_schema.KEY_COLUMN_USAGE k \
           JOIN information_schema.REFERENTIAL_CONSTRAINTS r \
             ON r.CONSTRAINT_SCHEMA = k.CONSTRAINT_SCHEMA AND r.CONSTRAINT_NAME = k.CONSTRAINT_NAME \
            AND r.TABLE_NAME = k.TABLE_NAME \
          WHERE {schema_col} = COALESCE(?, DATABASE()) AND {table_col} = ? \
            AND k.REFERENCED_TABLE_NAME IS NOT NULL \
          ORDER BY k.TABLE_SCHEMA, k.TABLE_NAME, k.CONSTRAINT_NAME, k.ORDINAL_POSITION"
    )
}

/// Which default `information_schema` reports, as an SQL expression.
///
/// MariaDB (10.2.7+) reports an SQL expression already (`'abc'`, `NULL`
/// for none). MySQL reports a literal's bare text (`abc`) and an expression
/// default's text with `DEFAULT_GENERATED` in `EXTRA`.
pub(super) fn default_sql(
    mariadb: bool,
    raw: Option<&str>,
    data_type: &str,
    extra: &str,
) -> Option<String> {
    let raw = raw?;
    if mariadb {
        return (!raw.eq_ignore_ascii_case("NULL")).then(|| raw.to_string());
    }
    let numeric = matches!(
        data_type.to_ascii_lowercase().as_str(),
        "tinyint"
            | "smallint"
            | "mediumint"
            | "int"
            | "integer"
            | "bigint"
            | "decimal"
            | "numeric"
            | "float"
            | "double"
            | "real"
            | "bit"
            | "year"
    );
    let lower = raw.to_ascii_lowercase();
    if extra.to_ascii_uppercase().contains("DEFAULT_GENERATED") {
        if lower.starts_with("current_timestamp") || lower.starts_with("now(") {
            return Some(raw.to_string());
        }
        return Some(format!("({raw})"));
    }
    if numeric && raw.parse::<f64>().is_ok() {
        return Some(raw.to_string());
    }
    Some(Dialect::Mysql.quote_literal(raw))
}

fn action(words: Option<String>) -> ReferentialAction {
    ReferentialAction::from_words(words.as_deref().unwrap_or_default())
}

pub(super) async fn read(pool: &MySqlPool, tables: &[TableName]) -> Result<Catalog, CatalogError> {
    let text: String = sqlx::query_scalar("SELECT CAST(VERSION() AS CHAR)")
        .fetch_one(pool)
        .await
        .map_err(CatalogError::Version)?;
    let version = ServerVersion::mysql(&text).unwrap_or(ServerVersion {
        dialect: Dialect::Mysql,
        major: 0,
        minor: 0,
        patch: 0,
        mariadb: text.to_ascii_lowercase().contains("mariadb"),
    });
    let mariadb = version.mariadb;
    let mut catalog = Catalog::offline().with_server(version);
    let err = |table: &TableName| {
        let table = table.to_string();
        move |source| CatalogError::Query {
            table: table.clone(),
            source,
        }
    };

    // The environment's own database, and any other the plan names: a
    // server holds other applications' databases, which are none of the
    // plan's business (and would leak into the log and the hints).
    let named: Vec<String> = tables
        .iter()
        .filter_map(|t| t.schema.as_ref())
        .map(|s| Dialect::Mysql.quote_literal(s.as_str()))
        .collect();
    let also = if named.is_empty() {
        String::new()
    } else {
        format!(" OR TABLE_SCHEMA IN ({})", named.join(", "))
    };
    let names: Vec<(String, String, i64)> = sqlx::query_as(AssertSqlSafe(format!(
        "SELECT CAST(TABLE_SCHEMA AS CHAR), CAST(TABLE_NAME AS CHAR), \
                (TABLE_SCHEMA = DATABASE()) + 0 \
           FROM information_schema.TABLES \
          WHERE TABLE_SCHEMA = DATABASE(){also} \
          ORDER BY 1, 2 LIMIT 10000"
    )))
    .fetch_all(pool)
    .await
    .map_err(|source| CatalogError::Query {
        table: "(the list of tables)".into(),
        source,
    })?;
    catalog.set_table_names(plan_table_names(
        names
            .into_iter()
            .map(|(schema, name, current)| (schema, name, current != 0))
            .collect(),
    ));

    for table in tables {
        let err = err(table);
        let schema = table.schema.as_ref().map(|s| s.as_str().to_string());
        let name = table.name.as_str().to_string();
        let kind: Option<String> = sqlx::query_scalar(
            "SELECT CAST(TABLE_TYPE AS CHAR) FROM information_schema.TABLES \
              WHERE TABLE_SCHEMA = COALESCE(?, DATABASE()) AND TABLE_NAME = ?",
        )
        .bind(&schema)
        .bind(&name)
        .fetch_optional(pool)
        .await
        .map_err(&err)?;
        let Some(kind) = kind else {
            catalog.insert_missing(table.clone());
            continue;
        };
        let system_versioned = kind == "SYSTEM VERSIONED";
        let kind = match kind.as_str() {
            "BASE TABLE" | "SYSTEM VERSIONED" => RelationKind::Table,
            "VIEW" => RelationKind::View,
            _ => RelationKind::Other,
        };

        let rows = sqlx::query(COLUMNS)
            .bind(&schema)
            .bind(&name)
            .fetch_all(pool)
            .await
            .map_err(&err)?;
        let mut columns: Vec<ColumnFacts> = rows
            .iter()
            .filter_map(|r| {
                let name: String = r.try_get("name").ok()?;
                let type_sql: String = r.try_get("ty").ok()?;
                let nullable: String = r.try_get("nullable").ok()?;
                let raw: Option<String> = r.try_get("dflt").ok()?;
                let extra: Option<String> = r.try_get("extra").ok()?;
                let data_type: Option<String> = r.try_get("data_type").ok()?;
                Some(ColumnFacts {
                    name: Ident::new(name).ok()?,
                    ty: SqlType::parse(&type_sql).ok(),
                    default: default_sql(
                        mariadb,
                        raw.as_deref(),
                        data_type.as_deref().unwrap_or_default(),
                        extra.as_deref().unwrap_or_default(),
                    ),
                    type_sql,
                    nullable: nullable.eq_ignore_ascii_case("YES"),
                    charset: r.try_get("cs").ok()?,
                    collation: r.try_get("coll").ok()?,
                })
            })
            .collect();

        // Indexes, keyed by name in key order.
        let rows = sqlx::query(INDEXES)
            .bind(&schema)
            .bind(&name)
            .fetch_all(pool)
            .await
            .map_err(&err)?;
        let mut by_name: BTreeMap<String, IndexFacts> = BTreeMap::new();
        for r in &rows {
            let (Ok(iname), Ok(non_unique)) = (
                r.try_get::<String, _>("name"),
                r.try_get::<i64, _>("non_unique"),
            ) else {
                continue;
            };
            let Some(index_ident) = ident(iname.clone()) else {
                continue;
            };
            let col: Option<String> = r.try_get("col").unwrap_or_default();
            let coll: Option<String> = r.try_get("coll").unwrap_or_default();
            let method: Option<String> = r.try_get("method").unwrap_or_default();
            let entry = by_name.entry(iname.clone()).or_insert_with(|| IndexFacts {
                name: index_ident,
                unique: non_unique == 0,
                primary: iname == "PRIMARY",
                keys: Vec::new(),
                include: Vec::new(),
                has_expression: false,
                predicate: None,
                columns_used: Vec::new(),
                method: method.map(|m| m.to_ascii_lowercase()),
                valid: true,
                constraint: None,
                exclusion: false,
                nulls_not_distinct: false,
                options: Vec::new(),
                definition: None,
            });
            let column = col.and_then(ident);
            if column.is_none() {
                entry.has_expression = true;
            }
            if let Some(c) = &column {
                entry.columns_used.push(c.clone());
            }
            let prefix: Option<i64> = r.try_get("sub_part").unwrap_or_default();
            entry.keys.push(IndexKey {
                column,
                descending: coll.as_deref() == Some("D"),
                prefix: prefix.and_then(|n| u32::try_from(n).ok()),
                ..IndexKey::default()
            });
        }
        let constraints: Vec<(String, String)> = sqlx::query_as(CONSTRAINTS)
            .bind(&schema)
            .bind(&name)
            .fetch_all(pool)
            .await
            .map_err(&err)?;
        let mut uniques = Vec::new();
        for (cname, ckind) in &constraints {
            if ckind == "UNIQUE"
                && let Some(index) = by_name.get_mut(cname)
            {
                index.constraint = Some(index.name.clone());
                uniques.push(UniqueFacts {
                    name: index.name.clone(),
                    index: index.name.clone(),
                    columns: index.keys.iter().filter_map(|k| k.column.clone()).collect(),
                    deferrable: false,
                    initially_deferred: false,
                });
            }
        }
        if let Some(pk) = by_name.get_mut("PRIMARY") {
            pk.constraint = Some(pk.name.clone());
        }
        let primary_key: Vec<Ident> = by_name
            .get("PRIMARY")
            .map(|i| i.keys.iter().filter_map(|k| k.column.clone()).collect())
            .unwrap_or_default();
        let indexes: Vec<IndexFacts> = by_name.into_values().collect();

        let rows: Vec<(String, String, String)> =
            sqlx::query_as(AssertSqlSafe(checks_sql(mariadb)))
                .bind(&schema)
                .bind(&name)
                .fetch_all(pool)
                .await
                .map_err(&err)?;
        let mut checks = Vec::new();
        for (cname, expression, level) in rows {
            let own = (level == "Column")
                .then(|| columns.iter().find(|c| c.name.as_str() == cname))
                .flatten()
                .map(|c| c.name.clone());
            // MariaDB's JSON type is LONGTEXT with this column CHECK: the
            // column is JSON, which a copy of it must be too.
            if let Some(col) = &own
                && expression.eq_ignore_ascii_case(&format!("json_valid(`{col}`)"))
                && let Some(c) = columns.iter_mut().find(|c| &c.name == col)
            {
                c.type_sql = "json".to_string();
                c.ty = SqlType::parse("json").ok();
                // JSON takes no character set or collation clause.
                (c.charset, c.collation) = (None, None);
                continue;
            }
            let used = columns
                .iter()
                .filter(|c| mentions(&expression, c.name.as_str()))
                .map(|c| c.name.clone())
                .collect();
            checks.push(CheckFacts {
                name: ident(cname),
                expression,
                columns: used,
                column: own,
                validated: true,
            });
        }

        let mut fks = Vec::new();
        for to in [false, true] {
            let rows = sqlx::query(sqlx::AssertSqlSafe(foreign_keys(to)))
                .bind(&schema)
                .bind(&name)
                .fetch_all(pool)
                .await
                .map_err(&err)?;
            fks.push(group_foreign_keys(&rows, table));
        }
        let referenced_by = fks.pop().unwrap_or_default();
        let foreign_keys = fks.pop().unwrap_or_default();
        let names: Vec<Ident> = columns
            .iter()
            .map(|c: &ColumnFacts| c.name.clone())
            .collect();
        let mut census = super::census::read_mysql(pool, schema.as_deref(), &name, &names)
            .await
            .map_err(&err)?;
        census.system_versioned = system_versioned;

        catalog.insert(
            table.clone(),
            TableFacts {
                kind,
                columns,
                primary_key,
                indexes,
                uniques,
                checks,
                foreign_keys,
                referenced_by,
                census,
                ..TableFacts::default()
            },
        );
    }
    Ok(catalog)
}

/// Whether an expression mentions a column (as a word, or backticked).
fn mentions(expression: &str, column: &str) -> bool {
    let quoted = format!("`{}`", column.replace('`', "``"));
    if expression.contains(&quoted) {
        return true;
    }
    expression
        .split(|c: char| !(c.is_alphanumeric() || c == '_' || c == '$'))
        .any(|w| w.eq_ignore_ascii_case(column))
}

/// Rows of [`foreign_keys`] (one per column) grouped into keys. A table in
/// the connection's database (or the plan's own schema) is named unqualified.
fn group_foreign_keys(rows: &[sqlx::mysql::MySqlRow], table: &TableName) -> Vec<ForeignKeyFacts> {
    let mut out: Vec<ForeignKeyFacts> = Vec::new();
    let mut last: Option<(String, String, String)> = None;
    let name_of = |schema: Option<String>, name: Option<String>| -> Option<TableName> {
        let name = ident(name?)?;
        let schema = match (&table.schema, schema) {
            (Some(s), Some(given)) if s.as_str() != given => ident(given),
            (Some(s), _) => Some(s.clone()),
            (None, _) => None,
        };
        Some(TableName { schema, name })
    };
    for r in rows {
        let get = |c: &str| r.try_get::<Option<String>, _>(c).ok().flatten();
        let key = (
            get("name").unwrap_or_default(),
            get("tschema").unwrap_or_default(),
            get("tname").unwrap_or_default(),
        );
        let (Some(col), Some(rcol)) = (get("col").and_then(ident), get("rcol").and_then(ident))
        else {
            continue;
        };
        if last.as_ref() != Some(&key) {
            let (Some(from), Some(to)) = (
                name_of(get("tschema"), get("tname")),
                name_of(get("rschema"), get("rname")),
            ) else {
                continue;
            };
            out.push(ForeignKeyFacts {
                name: ident(key.0.clone()),
                table: from,
                columns: Vec::new(),
                references: to,
                referenced_columns: Vec::new(),
                on_delete: action(get("on_delete")),
                on_update: action(get("on_update")),
                match_full: false,
                deferrable: false,
                initially_deferred: false,
                validated: true,
                declared_inline: false,
            });
            last = Some(key);
        }
        if let Some(fk) = out.last_mut() {
            fk.columns.push(col);
            fk.referenced_columns.push(rcol);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::default_sql;

    #[test]
    fn defaults_become_sql_expressions() {
        assert_eq!(
            default_sql(true, Some("'it''s'"), "varchar", ""),
            Some("'it''s'".into())
        );
        assert_eq!(default_sql(true, Some("NULL"), "int", ""), None);
        assert_eq!(
            default_sql(false, Some("it's"), "varchar", ""),
            Some("'it''s'".into())
        );
        assert_eq!(default_sql(false, Some("0"), "int", ""), Some("0".into()));
        assert_eq!(default_sql(false, None, "int", ""), None);
        assert_eq!(
            default_sql(
                false,
                Some("CURRENT_TIMESTAMP"),
                "datetime",
                "DEFAULT_GENERATED"
            ),
            Some("CURRENT_TIMESTAMP".into())
        );
        assert_eq!(
            default_sql(false, Some("rand()"), "double", "DEFAULT_GENERATED"),
            Some("(rand())".into())
        );
    }
}
