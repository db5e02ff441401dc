//! The census read from MySQL and MariaDB: `information_schema.COLUMNS`
//! (`EXTRA` holds `on update …` and generated columns,
//! `GENERATION_EXPRESSION`, `COLUMN_COMMENT`), `TRIGGERS`, `VIEWS`,
//! `COLUMN_PRIVILEGES`.

use crate::name::Ident;

use super::{
    Census, ColumnCensus, ColumnGrant, Dependent, DependentKind, Identity, PHASEGATE_STATUS_VIEW,
    TriggerFacts, mentioned, names_table,
};

/// MySQL/MariaDB: the census of `schema.name` (`schema` `None`: the
/// connection's database). `columns` are the table's columns.
pub(in crate::catalog) async fn read_mysql(
    pool: &sqlx::MySqlPool,
    schema: Option<&str>,
    name: &str,
    columns: &[Ident],
) -> Result<Census, sqlx::Error> {
    use sqlx::Row;
    let mut census = Census::default();
    let rows = sqlx::query(
        "SELECT CAST(COLUMN_NAME AS CHAR) AS name, CAST(EXTRA AS CHAR) AS extra, \
                CAST(COALESCE(GENERATION_EXPRESSION, '') AS CHAR) AS generated, \
                CAST(COLUMN_COMMENT AS CHAR) AS comment \
           FROM information_schema.COLUMNS \
          WHERE TABLE_SCHEMA = COALESCE(?, DATABASE()) AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION",
    )
    .bind(schema)
    .bind(name)
    .fetch_all(pool)
    .await?;
    let mut generated_from: Vec<(Ident, Vec<Ident>)> = Vec::new();
    for r in &rows {
        let Some(column) = r
            .try_get::<String, _>("name")
            .ok()
            .and_then(crate::catalog::ident)
        else {
            continue;
        };
        let extra: String = r.try_get("extra")?;
        let generated: String = r.try_get("generated")?;
        let comment: String = r.try_get("comment")?;
        let lower = extra.to_ascii_lowercase();
        let mut c = ColumnCensus::new(column.clone());
        // `on update current_timestamp(6)`, possibly after `DEFAULT_GENERATED`.
        if let Some(at) = lower.find("on update ") {
            c.on_update = Some(extra[at + "on update ".len()..].trim().to_string());
        }
        if lower.contains("invisible") {
            c.invisible = true;
        }
        if lower.contains("auto_increment") {
            // One counter per table, on a key column: the census calls it identity.
            c.identity = Some(Identity::ByDefault);
        }
        if !generated.is_empty()
            && lower.contains("generated")
            && !lower.contains("default_generated")
        {
            generated_from.push((column.clone(), mentioned(&generated, columns, true)));
            c.generated = Some(generated);
        }
        c.comment = (!comment.is_empty()).then_some(comment);
        if c != ColumnCensus::new(column) {
            census.columns.push(c);
        }
    }
    for (generated, sources) in generated_from {
        census.dependents.push(Dependent {
            kind: DependentKind::GeneratedColumn,
            name: generated.as_str().to_string(),
            columns: sources,
        });
    }

    let grants = sqlx::query(
        "SELECT CAST(COLUMN_NAME AS CHAR) AS name, CAST(GRANTEE AS CHAR) AS grantee, \
                CAST(PRIVILEGE_TYPE AS CHAR) AS privilege, CAST(IS_GRANTABLE AS CHAR) AS grantable \
           FROM information_schema.COLUMN_PRIVILEGES \
          WHERE TABLE_SCHEMA = COALESCE(?, DATABASE()) AND TABLE_NAME = ? ORDER BY 1, 2, 3",
    )
    .bind(schema)
    .bind(name)
    .fetch_all(pool)
    .await?;
    for r in &grants {
        let Some(column) = r
            .try_get::<String, _>("name")
            .ok()
            .and_then(crate::catalog::ident)
        else {
            continue;
        };
        let grant = ColumnGrant {
            grantee: r.try_get("grantee")?,
            privilege: r.try_get("privilege")?,
            grantable: r.try_get::<String, _>("grantable")? == "YES",
        };
        census.column_mut(&column).grants.push(grant);
    }

    let triggers = sqlx::query(
        "SELECT CAST(TRIGGER_NAME AS CHAR) AS name, CAST(ACTION_TIMING AS CHAR) AS timing, \
                CAST(EVENT_MANIPULATION AS CHAR) AS event, CAST(ACTION_STATEMENT AS CHAR) AS body \
           FROM information_schema.TRIGGERS \
          WHERE EVENT_OBJECT_SCHEMA = COALESCE(?, DATABASE()) AND EVENT_OBJECT_TABLE = ? \
          ORDER BY ACTION_ORDER",
    )
    .bind(schema)
    .bind(name)
    .fetch_all(pool)
    .await?;
    for r in &triggers {
        let Some(trigger) = r
            .try_get::<String, _>("name")
            .ok()
            .and_then(crate::catalog::ident)
        else {
            continue;
        };
        let body: String = r.try_get("body")?;
        let timing: String = r.try_get("timing")?;
        let event: String = r.try_get("event")?;
        census.triggers.push(TriggerFacts {
            // phasegate names its MySQL sync triggers `…_sync_ins` and `…_sync_upd`.
            phasegate: trigger.as_str().ends_with("_sync_ins")
                || trigger.as_str().ends_with("_sync_upd"),
            name: trigger,
            when: format!("{timing} {event}"),
            function: None,
            mentions: mentioned(&body, columns, true),
            enabled: true,
            on: None,
        });
    }

    // Other tables' triggers whose code names this table.
    let others = sqlx::query(
        "SELECT CAST(TRIGGER_NAME AS CHAR) AS name, CAST(EVENT_OBJECT_TABLE AS CHAR) AS on_table, \
                CAST(ACTION_STATEMENT AS CHAR) AS body \
           FROM information_schema.TRIGGERS \
          WHERE EVENT_OBJECT_SCHEMA = COALESCE(?, DATABASE()) AND EVENT_OBJECT_TABLE <> ? \
            AND LOCATE(LOWER(?), LOWER(ACTION_STATEMENT)) > 0 \
          ORDER BY 2, 1 LIMIT 1000",
    )
    .bind(schema)
    .bind(name)
    .bind(name)
    .fetch_all(pool)
    .await?;
    for r in &others {
        let body: String = r.try_get("body")?;
        if !names_table(&body, name) {
            continue;
        }
        let Some(trigger) = r
            .try_get::<String, _>("name")
            .ok()
            .and_then(crate::catalog::ident)
        else {
            continue;
        };
        let mentions = mentioned(&body, columns, true);
        if mentions.is_empty() {
            continue;
        }
        census.triggers.push(TriggerFacts {
            phasegate: false,
            name: trigger,
            when: String::new(),
            function: None,
            mentions,
            enabled: true,
            on: Some(r.try_get("on_table")?),
        });
    }

    // Views name their base tables and columns only in their text: a view
    // whose definition names the table is taken to use the columns it names.
    let views = sqlx::query(
        "SELECT CAST(TABLE_SCHEMA AS CHAR) AS s, CAST(TABLE_NAME AS CHAR) AS v, \
                CAST(VIEW_DEFINITION AS CHAR) AS definition \
           FROM information_schema.VIEWS \
          WHERE TABLE_SCHEMA = COALESCE(?, DATABASE()) OR TABLE_SCHEMA = DATABASE() ORDER BY 1, 2",
    )
    .bind(schema)
    .fetch_all(pool)
    .await?;
    for r in &views {
        let definition: String = r.try_get("definition")?;
        let view: String = r.try_get("v")?;
        if view == PHASEGATE_STATUS_VIEW || !names_table(&definition, name) {
            continue;
        }
        let used = mentioned(&definition, columns, true);
        if used.is_empty() {
            continue;
        }
        let (s, v): (String, String) = (r.try_get("s")?, r.try_get("v")?);
        census.dependents.push(Dependent {
            kind: DependentKind::View,
            name: format!("{s}.{v}"),
            columns: used,
        });
    }
    Ok(census)
}
