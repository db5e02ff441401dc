//! Reading a Postgres schema from `pg_catalog`.

use std::collections::BTreeMap;

use sqlx::postgres::PgRow;
use sqlx::{AssertSqlSafe, PgPool, Row};

use super::{
    Catalog, CatalogError, CheckFacts, ColumnFacts, ForeignKeyFacts, IndexFacts, IndexKey,
    ReferentialAction, RelationKind, ServerVersion, TableFacts, UniqueFacts, ident,
    plan_table_names,
};
use crate::dialect::Dialect;
use crate::name::{Ident, SqlType, TableName};

/// The column names of `conkey`-style attnum arrays, in order (`$arr` is
/// the array, `$rel` the relation's oid).
macro_rules! attnames {
    ($arr:literal, $rel:literal) => {
        concat!(
            "ARRAY(SELECT a.attname::text FROM unnest(",
            $arr,
            ") WITH ORDINALITY AS k(n, o) JOIN pg_attribute a ON a.attrelid = ",
            $rel,
            " AND a.attnum = k.n ORDER BY k.o)"
        )
    };
}

const COLUMNS: &str = "SELECT a.attname::text AS name, format_type(a.atttypid, a.atttypmod) AS ty, \
        NOT a.attnotnull AS nullable, pg_get_expr(d.adbin, d.adrelid) AS dflt \
   FROM pg_attribute a \
   LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum \
  WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped \
  ORDER BY a.attnum";

const PRIMARY_KEY: &str = "SELECT a.attname::text FROM pg_index i \
   JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord) ON true \
   JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum \
  WHERE i.indrelid = to_regclass($1) AND i.indisprimary ORDER BY k.ord";

const UNIQUES: &str = concat!(
    "SELECT con.conname::text AS name, ic.relname::text AS index_name, \
            con.condeferrable AS deferrable, con.condeferred AS deferred, ",
    attnames!("con.conkey", "con.conrelid"),
    " AS columns \
       FROM pg_constraint con JOIN pg_class ic ON ic.oid = con.conindid \
      WHERE con.conrelid = to_regclass($1) AND con.contype = 'u' ORDER BY con.conname"
);

const CHECKS: &str = concat!(
    "SELECT con.conname::text AS name, pg_get_expr(con.conbin, con.conrelid) AS expression, \
            con.convalidated AS validated, ",
    attnames!("con.conkey", "con.conrelid"),
    " AS columns \
       FROM pg_constraint con \
      WHERE con.conrelid = to_regclass($1) AND con.contype = 'c' ORDER BY con.conname"
);

pub(super) async fn read(pool: &PgPool, tables: &[TableName]) -> Result<Catalog, CatalogError> {
    let num: i32 = sqlx::query_scalar("SELECT current_setting('server_version_num')::int4")
        .fetch_one(pool)
        .await
        .map_err(CatalogError::Version)?;
    let version = ServerVersion::postgres(u32::try_from(num).unwrap_or(0));
    let mut catalog = Catalog::offline().with_server(version.clone());
    let err = |table: &TableName| {
        let table = table.to_string();
        move |source| CatalogError::Query {
            table: table.clone(),
            source,
        }
    };

    let names: Vec<(String, String, bool)> = sqlx::query_as(
        "SELECT n.nspname::text, c.relname::text, pg_table_is_visible(c.oid) \
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
          WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f') \
            AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
            AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%' \
          ORDER BY 1, 2 LIMIT 10000",
    )
    .fetch_all(pool)
    .await
    .map_err(|source| CatalogError::Query {
        table: "(the list of tables)".into(),
        source,
    })?;
    catalog.set_table_names(plan_table_names(names));

    for table in tables {
        let quoted = Dialect::Postgres.quote_table(table);
        let err = err(table);
        let kind: Option<String> =
            sqlx::query_scalar("SELECT relkind::text FROM pg_class WHERE oid = to_regclass($1)")
                .bind(&quoted)
                .fetch_optional(pool)
                .await
                .map_err(&err)?;
        let Some(kind) = kind else {
            catalog.insert_missing(table.clone());
            continue;
        };
        let kind = match kind.as_str() {
            "r" | "p" => RelationKind::Table,
            "v" | "m" => RelationKind::View,
            _ => RelationKind::Other,
        };
        let rows = sqlx::query(COLUMNS)
            .bind(&quoted)
            .fetch_all(pool)
            .await
            .map_err(&err)?;
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
                    charset: None,
                    collation: None,
                })
            })
            .collect();
        let pk: Vec<String> = sqlx::query_scalar(PRIMARY_KEY)
            .bind(&quoted)
            .fetch_all(pool)
            .await
            .map_err(&err)?;
        let indexes = indexes(pool, &quoted, &version).await.map_err(&err)?;
        let uniques = sqlx::query(UNIQUES)
            .bind(&quoted)
            .fetch_all(pool)
            .await
            .map_err(&err)?
            .iter()
            .filter_map(|r| {
                Some(UniqueFacts {
                    name: ident(r.try_get::<String, _>("name").ok()?)?,
                    index: ident(r.try_get::<String, _>("index_name").ok()?)?,
                    columns: idents(r.try_get("columns").ok()?),
                    deferrable: r.try_get("deferrable").ok()?,
                    initially_deferred: r.try_get("deferred").ok()?,
                })
            })
            .collect();
        let checks = sqlx::query(CHECKS)
            .bind(&quoted)
            .fetch_all(pool)
            .await
            .map_err(&err)?
            .iter()
            .filter_map(|r| {
                Some(CheckFacts {
                    name: Some(ident(r.try_get::<String, _>("name").ok()?)?),
                    expression: r.try_get("expression").ok()?,
                    columns: idents(r.try_get("columns").ok()?),
                    column: None,
                    validated: r.try_get("validated").ok()?,
                })
            })
            .collect();
        let (foreign_keys, referenced_by) =
            foreign_keys(pool, &quoted, &version).await.map_err(&err)?;
        let census = super::census::read_postgres(pool, &quoted, &version)
            .await
            .map_err(&err)?;
        let partitioning = super::partitioning::read_postgres(pool, &quoted, &version)
            .await
            .map_err(&err)?;
        catalog.insert(
            table.clone(),
            TableFacts {
                kind,
                columns,
                primary_key: idents(pk),
                indexes,
                uniques,
                checks,
                foreign_keys,
                referenced_by,
                census,
                partitioning,
            },
        );
    }
    Ok(catalog)
}

fn idents(names: Vec<String>) -> Vec<Ident> {
    names.into_iter().filter_map(ident).collect()
}

async fn indexes(
    pool: &PgPool,
    quoted: &str,
    version: &ServerVersion,
) -> Result<Vec<IndexFacts>, sqlx::Error> {
    // INCLUDE columns exist from Postgres 11, NULLS NOT DISTINCT from 15.
    let nkey = if version.at_least(11, 0) {
        "i.indnkeyatts"
    } else {
        "i.indnatts"
    };
    let nulls_not_distinct = if version.at_least(15, 0) {
        "i.indnullsnotdistinct"
    } else {
        "false"
    };
    let sql = format!(
        "SELECT c.relname::text AS name, i.indisunique AS is_unique, i.indisprimary AS is_primary, \
                i.indisvalid AS valid, am.amname::text AS method, \
                pg_get_expr(i.indpred, i.indrelid) AS predicate, \
                pg_get_indexdef(i.indexrelid) AS definition, \
                i.indexprs IS NOT NULL AS has_expression, \
                con.conname::text AS constraint_name, coalesce(con.contype = 'x', false) AS exclusion, \
                {nulls_not_distinct} AS nulls_not_distinct, \
                coalesce(c.reloptions, '{{}}')::text[] AS options, \
                ARRAY(SELECT a.attname::text FROM pg_attribute a \
                       WHERE a.attrelid = i.indrelid AND a.attnum > 0 \
                         AND (a.attnum = ANY (i.indkey::int2[]) \
                              OR a.attnum IN (SELECT d.refobjsubid FROM pg_depend d \
                                               WHERE d.classid = 'pg_class'::regclass AND d.objid = i.indexrelid \
                                                 AND d.refclassid = 'pg_class'::regclass AND d.refobjid = i.indrelid)) \
                       ORDER BY a.attnum) AS columns_used \
           FROM pg_index i \
           JOIN pg_class c ON c.oid = i.indexrelid \
           JOIN pg_am am ON am.oid = c.relam \
           LEFT JOIN pg_constraint con ON con.conindid = i.indexrelid AND con.conrelid = i.indrelid \
                                      AND con.contype IN ('p', 'u', 'x') \
          WHERE i.indrelid = to_regclass($1) \
          ORDER BY c.relname"
    );
    let rows = sqlx::query(AssertSqlSafe(sql))
        .bind(quoted)
        .fetch_all(pool)
        .await?;
    let keys_sql = format!(
        "SELECT c.relname::text AS index_name, a.attname::text AS column_name, \
                coalesce((i.indoption[(k.ord - 1)::int] & 1) <> 0, false) AS descending, \
                coalesce((i.indoption[(k.ord - 1)::int] & 2) <> 0, false) AS nulls_first, \
                CASE WHEN opc.opcdefault THEN NULL ELSE opcns.nspname::text END AS opclass_schema, \
                CASE WHEN opc.opcdefault THEN NULL ELSE opc.opcname::text END AS opclass_name, \
                CASE WHEN coll.oid <> a.attcollation THEN collns.nspname::text END AS collation_schema, \
                CASE WHEN coll.oid <> a.attcollation THEN coll.collname::text END AS collation_name, \
                k.ord > {nkey} AS included \
           FROM pg_index i \
           JOIN pg_class c ON c.oid = i.indexrelid \
           CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord) \
           LEFT JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum AND k.attnum > 0 \
           LEFT JOIN pg_opclass opc ON opc.oid = i.indclass[(k.ord - 1)::int] \
           LEFT JOIN pg_namespace opcns ON opcns.oid = opc.opcnamespace \
           LEFT JOIN pg_collation coll ON coll.oid = i.indcollation[(k.ord - 1)::int] \
           LEFT JOIN pg_namespace collns ON collns.oid = coll.collnamespace \
          WHERE i.indrelid = to_regclass($1) \
          ORDER BY c.relname, k.ord"
    );
    let key_rows = sqlx::query(AssertSqlSafe(keys_sql))
        .bind(quoted)
        .fetch_all(pool)
        .await?;
    let mut keys: BTreeMap<String, (Vec<IndexKey>, Vec<Ident>)> = BTreeMap::new();
    for r in &key_rows {
        let Ok(index) = r.try_get::<String, _>("index_name") else {
            continue;
        };
        let column = r
            .try_get::<Option<String>, _>("column_name")
            .ok()
            .flatten()
            .and_then(ident);
        let entry = keys.entry(index).or_default();
        if r.try_get::<bool, _>("included").unwrap_or(false) {
            entry.1.extend(column);
            continue;
        }
        entry.0.push(IndexKey {
            column,
            descending: r.try_get("descending").unwrap_or(false),
            nulls_first: r.try_get("nulls_first").unwrap_or(false),
            opclass: qualified(r, "opclass_schema", "opclass_name"),
            collation: qualified(r, "collation_schema", "collation_name"),
            prefix: None,
        });
    }
    Ok(rows
        .iter()
        .filter_map(|r| {
            let name: String = r.try_get("name").ok()?;
            let (keys, include) = keys.remove(&name).unwrap_or_default();
            Some(IndexFacts {
                name: ident(name)?,
                unique: r.try_get("is_unique").ok()?,
                primary: r.try_get("is_primary").ok()?,
                keys,
                include,
                has_expression: r.try_get("has_expression").ok()?,
                predicate: r.try_get("predicate").ok()?,
                columns_used: idents(r.try_get("columns_used").ok()?),
                method: r.try_get("method").ok()?,
                valid: r.try_get("valid").ok()?,
                constraint: r
                    .try_get::<Option<String>, _>("constraint_name")
                    .ok()?
                    .and_then(ident),
                exclusion: r.try_get("exclusion").ok()?,
                nulls_not_distinct: r.try_get("nulls_not_distinct").ok()?,
                options: r.try_get("options").ok()?,
                definition: r.try_get("definition").ok()?,
            })
        })
        .collect())
}

fn qualified(r: &PgRow, schema: &str, name: &str) -> Option<TableName> {
    let name = r.try_get::<Option<String>, _>(name).ok()??;
    let schema = r.try_get::<Option<String>, _>(schema).ok()?;
    Some(TableName {
        schema: schema.and_then(ident),
        name: ident(name)?,
    })
}

/// The foreign keys of a table, and those that reference it.
async fn foreign_keys(
    pool: &PgPool,
    quoted: &str,
    version: &ServerVersion,
) -> Result<(Vec<ForeignKeyFacts>, Vec<ForeignKeyFacts>), sqlx::Error> {
    // A partition's copies of its parent's foreign keys are not separate keys.
    let own = if version.at_least(11, 0) {
        "AND con.conparentid = 0"
    } else {
        ""
    };
    let sql = format!(
        "SELECT con.conname::text AS name, \
                cn.nspname::text AS child_schema, cc.relname::text AS child_name, \
                pn.nspname::text AS parent_schema, pc.relname::text AS parent_name, \
                {} AS columns, {} AS referenced_columns, \
                con.confdeltype::text AS on_delete, con.confupdtype::text AS on_update, \
                con.confmatchtype::text AS match_type, con.condeferrable AS deferrable, \
                con.condeferred AS deferred, con.convalidated AS validated, \
                con.conrelid = to_regclass($1) AS outgoing, con.confrelid = to_regclass($1) AS incoming \
           FROM pg_constraint con \
           JOIN pg_class cc ON cc.oid = con.conrelid JOIN pg_namespace cn ON cn.oid = cc.relnamespace \
           JOIN pg_class pc ON pc.oid = con.confrelid JOIN pg_namespace pn ON pn.oid = pc.relnamespace \
          WHERE con.contype = 'f' {own} \
            AND (con.conrelid = to_regclass($1) OR con.confrelid = to_regclass($1)) \
          ORDER BY con.conname",
        attnames!("con.conkey", "con.conrelid"),
        attnames!("con.confkey", "con.confrelid"),
    );
    let rows = sqlx::query(AssertSqlSafe(sql))
        .bind(quoted)
        .fetch_all(pool)
        .await?;
    let (mut outgoing, mut incoming) = (Vec::new(), Vec::new());
    for r in &rows {
        let fk = (|| {
            let table_of = |schema: &str, name: &str| -> Option<TableName> {
                Some(TableName {
                    schema: Some(ident(r.try_get::<String, _>(schema).ok()?)?),
                    name: ident(r.try_get::<String, _>(name).ok()?)?,
                })
            };
            Some(ForeignKeyFacts {
                name: Some(ident(r.try_get::<String, _>("name").ok()?)?),
                table: table_of("child_schema", "child_name")?,
                columns: idents(r.try_get("columns").ok()?),
                references: table_of("parent_schema", "parent_name")?,
                referenced_columns: idents(r.try_get("referenced_columns").ok()?),
                on_delete: ReferentialAction::from_pg(&r.try_get::<String, _>("on_delete").ok()?),
                on_update: ReferentialAction::from_pg(&r.try_get::<String, _>("on_update").ok()?),
                match_full: r.try_get::<String, _>("match_type").ok()? == "f",
                deferrable: r.try_get("deferrable").ok()?,
                initially_deferred: r.try_get("deferred").ok()?,
                validated: r.try_get("validated").ok()?,
                declared_inline: false,
            })
        })();
        let Some(fk) = fk else { continue };
        if r.try_get::<bool, _>("incoming").unwrap_or(false) {
            incoming.push(fk.clone());
        }
        if r.try_get::<bool, _>("outgoing").unwrap_or(false) {
            outgoing.push(fk);
        }
    }
    Ok((outgoing, incoming))
}
