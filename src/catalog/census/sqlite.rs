//! The census read from SQLite: `sqlite_master` (triggers and views, with
//! their SQL; the table's own `CREATE TABLE` for each column's `COLLATE`)
//! and `pragma_table_xinfo` (generated columns).

use crate::name::Ident;

use super::{
    Census, Dependent, DependentKind, PHASEGATE_STATUS_VIEW, PHASEGATE_TRIGGER_MARK, TriggerFacts,
    mentioned, names_table,
};

/// SQLite: the census of `schema.name`; `columns` are the table's columns.
pub(in crate::catalog) async fn read_sqlite(
    pool: &sqlx::SqlitePool,
    schema: &str,
    name: &str,
    columns: &[Ident],
) -> Result<Census, sqlx::Error> {
    use sqlx::{AssertSqlSafe, Row};
    let mut census = Census::default();
    // pragma_table_xinfo's `hidden`: 2 and 3 mark generated columns (3.31+).
    let rows = sqlx::query("SELECT name, hidden FROM pragma_table_xinfo(?1, ?2)")
        .bind(name)
        .bind(schema)
        .fetch_all(pool)
        .await?;
    let generated: Vec<Ident> = rows
        .iter()
        .filter(|r| matches!(r.try_get::<i64, _>("hidden"), Ok(2 | 3)))
        .filter_map(|r| r.try_get::<String, _>("name").ok())
        .filter_map(crate::catalog::ident)
        .collect();
    let master = format!(
        "{}.sqlite_master",
        crate::dialect::Dialect::Sqlite.quote_ident(schema)
    );
    let create: Option<String> = sqlx::query_scalar(AssertSqlSafe(format!(
        "SELECT sql FROM {master} WHERE type = 'table' AND name = ?1 COLLATE NOCASE"
    )))
    .bind(name)
    .fetch_optional(pool)
    .await?
    .flatten();
    // A column's own collation (`TEXT COLLATE NOCASE`): no pragma tells it.
    for (column, collation) in create.as_deref().map(sqlite_collations).unwrap_or_default() {
        let found = columns
            .iter()
            .find(|c| c.as_str().eq_ignore_ascii_case(&column));
        if let (Some(c), Ok(coll)) = (found, Ident::new(collation)) {
            census.column_mut(c).collation = Some(crate::name::TableName {
                schema: None,
                name: coll,
            });
        }
    }
    if let Some(create) = create.filter(|_| !generated.is_empty()) {
        for g in &generated {
            if let Some(expression) = sqlite_generated_expression(&create, g) {
                let sources: Vec<Ident> = mentioned(&expression, columns, true)
                    .into_iter()
                    .filter(|c| c != g)
                    .collect();
                census.column_mut(g).generated = Some(expression);
                census.dependents.push(Dependent {
                    kind: DependentKind::GeneratedColumn,
                    name: g.as_str().to_string(),
                    columns: sources,
                });
            }
        }
    }
    let objects = sqlx::query(AssertSqlSafe(format!(
        "SELECT type, name, tbl_name, sql FROM {master} \
          WHERE type IN ('trigger', 'view') AND sql IS NOT NULL ORDER BY type, name"
    )))
    .fetch_all(pool)
    .await?;
    for r in &objects {
        let (kind, object, on, sql): (String, String, String, String) = (
            r.try_get("type")?,
            r.try_get("name")?,
            r.try_get("tbl_name")?,
            r.try_get("sql")?,
        );
        if kind == "trigger" {
            let other = !on.eq_ignore_ascii_case(name);
            if other && !names_table(&sql, name) {
                continue;
            }
            let Ok(trigger) = Ident::new(object) else {
                continue;
            };
            let head = sql.to_ascii_uppercase();
            let when = ["BEFORE", "AFTER", "INSTEAD OF"]
                .into_iter()
                .find(|w| head.contains(&format!(" {w} ")))
                .unwrap_or("AFTER");
            census.triggers.push(TriggerFacts {
                phasegate: sql.contains(PHASEGATE_TRIGGER_MARK),
                name: trigger,
                when: when.to_string(),
                function: None,
                mentions: mentioned(&sql, columns, true),
                enabled: true,
                on: other.then(|| on.clone()),
            });
        } else {
            if object == PHASEGATE_STATUS_VIEW || !names_table(&sql, name) {
                continue;
            }
            let used = mentioned(&sql, columns, true);
            if !used.is_empty() {
                census.dependents.push(Dependent {
                    kind: DependentKind::View,
                    name: object,
                    columns: used,
                });
            }
        }
    }
    Ok(census)
}

/// Each column's `COLLATE` in an SQLite `CREATE TABLE` text, as `(column,
/// collation)`, read with sqlparser's SQLite dialect; none when it cannot
/// read the text.
fn sqlite_collations(create: &str) -> Vec<(String, String)> {
    use sqlparser::ast::{ColumnOption, Statement};
    use sqlparser::dialect::SQLiteDialect;
    use sqlparser::parser::Parser;
    let Ok(statements) = Parser::parse_sql(&SQLiteDialect {}, create) else {
        return Vec::new();
    };
    let Some(Statement::CreateTable(table)) = statements.into_iter().next() else {
        return Vec::new();
    };
    table
        .columns
        .iter()
        .filter_map(|c| {
            c.options.iter().find_map(|o| match &o.option {
                ColumnOption::Collation(name) => name
                    .0
                    .last()
                    .and_then(|p| p.as_ident())
                    .map(|i| (c.name.value.clone(), i.value.clone())),
                _ => None,
            })
        })
        .collect()
}

/// The expression of generated column `column` in an SQLite `CREATE TABLE`
/// text: what stands in the parentheses after `AS` in its definition.
fn sqlite_generated_expression(create: &str, column: &Ident) -> Option<String> {
    let lower = create.to_lowercase();
    let col = column.as_str().to_lowercase();
    let mut from = 0;
    while let Some(at) = lower[from..].find(&col) {
        let start = from + at + col.len();
        let rest = &lower[start..];
        if let Some(as_at) = rest.find(" as (").or_else(|| rest.find(" as(")) {
            let comma = rest.find(',').unwrap_or(rest.len());
            if as_at < comma || rest[..as_at].contains("generated always") {
                let open = start + as_at + rest[as_at..].find('(')?;
                let mut depth = 0;
                for (i, ch) in create[open..].char_indices() {
                    match ch {
                        '(' => depth += 1,
                        ')' => {
                            depth -= 1;
                            if depth == 0 {
                                return Some(create[open + 1..open + i].trim().to_string());
                            }
                        }
                        _ => {}
                    }
                }
                return None;
            }
        }
        from = start;
    }
    None
}

#[cfg(test)]
mod tests {
    #[test]
    fn column_collations_are_read_from_the_create_table_text() {
        let got = super::sqlite_collations(
            "CREATE TABLE \"u s\" (id INTEGER PRIMARY KEY, name TEXT COLLATE NOCASE NOT NULL, code text collate \"rtrim\", plain TEXT)",
        );
        assert_eq!(
            got,
            [
                ("name".to_string(), "NOCASE".to_string()),
                ("code".to_string(), "rtrim".to_string())
            ]
        );
        assert!(super::sqlite_collations("not sql").is_empty());
    }
}
