//! The census read from Postgres: `pg_depend` for every object that depends
//! on one of the table's columns (classified by the catalog it lives in, so
//! an object of a kind phasegate has never heard of is still found and named
//! with `pg_describe_object`), `pg_attribute` (identity, generated,
//! privileges), `pg_description`, `pg_trigger` with its function's source,
//! and the default btree/hash operator classes for whether a column's type
//! has an equality operator (PostgreSQL docs, "Interfacing Extensions to
//! Indexes": `IS DISTINCT FROM` needs `=`, which `json`, `xml` and the
//! geometric types lack).

use crate::name::{Ident, TableName};

use super::{
    Census, ColumnCensus, ColumnGrant, Dependent, DependentKind, Identity, PHASEGATE_TRIGGER_MARK,
    SequenceFacts, TriggerFacts, mentioned, mentioned_in_code, words,
};

/// Postgres: the census of the table `quoted` (a quoted, possibly
/// schema-qualified name, resolved with `to_regclass`).
pub(in crate::catalog) async fn read_postgres(
    pool: &sqlx::PgPool,
    quoted: &str,
    version: &crate::catalog::ServerVersion,
) -> Result<Census, sqlx::Error> {
    use sqlx::{AssertSqlSafe, Row};
    let mut census = Census::default();
    // Identity came in Postgres 10, generated columns in 12.
    let identity = if version.at_least(10, 0) {
        "a.attidentity::text"
    } else {
        "''"
    };
    let generated = if version.at_least(12, 0) {
        "a.attgenerated::text"
    } else {
        "''"
    };
    // A nondeterministic collation (Postgres 12 on) makes `=` inexact too:
    // `'Bob' = 'bob'` under a case-insensitive ICU collation.
    let inexact = if version.at_least(12, 0) {
        "(a.attcollation <> 0 AND co.collisdeterministic IS FALSE)"
    } else {
        "false"
    };
    let seq_type = if version.at_least(10, 0) {
        "(SELECT format_type(sq.seqtypid, NULL) FROM pg_sequence sq WHERE sq.seqrelid = s.oid)"
    } else {
        "NULL::text"
    };
    let columns = format!(
        "SELECT a.attname::text AS name, {identity} AS identity, {generated} AS generated, \
                CASE WHEN {generated} <> '' THEN pg_get_expr(d.adbin, d.adrelid) END AS expression, \
                col_description(a.attrelid, a.attnum) AS comment, \
                s.schema_name, s.sequence_name, s.sequence_type, s.used_by, \
                CASE WHEN a.attcollation <> t.typcollation AND a.attcollation <> 0 THEN cn.nspname::text END AS collation_schema, \
                CASE WHEN a.attcollation <> t.typcollation AND a.attcollation <> 0 THEN co.collname::text END AS collation_name, \
                ARRAY(SELECT coalesce(pg_get_userbyid(NULLIF(x.grantee, 0))::text, '') FROM aclexplode(a.attacl) x ORDER BY x.grantee, x.privilege_type) AS grantees, \
                ARRAY(SELECT x.privilege_type::text FROM aclexplode(a.attacl) x ORDER BY x.grantee, x.privilege_type) AS privileges, \
                ARRAY(SELECT x.is_grantable FROM aclexplode(a.attacl) x ORDER BY x.grantee, x.privilege_type) AS grantable, \
                NOT EXISTS ( \
                  SELECT 1 FROM pg_opclass oc JOIN pg_am am ON am.oid = oc.opcmethod \
                   WHERE am.amname IN ('btree', 'hash') AND oc.opcdefault AND ( \
                         oc.opcintype = ck.t \
                      OR oc.opcintype IN (SELECT c.casttarget FROM pg_cast c WHERE c.castsource = ck.t AND c.castmethod = 'b' AND c.castcontext = 'i') \
                      OR (ckt.typtype = 'e' AND oc.opcintype = 'anyenum'::regtype) \
                      OR (ckt.typtype = 'r' AND oc.opcintype = 'anyrange'::regtype) \
                      OR (ckt.typtype = 'm' AND oc.opcintype::regtype::text = 'anymultirange') \
                      OR (ckt.typtype = 'c' AND oc.opcintype = 'record'::regtype))) OR {inexact} AS lacks_equality \
           FROM pg_attribute a \
           JOIN pg_type t ON t.oid = a.atttypid \
           CROSS JOIN LATERAL (SELECT CASE WHEN t.typcategory = 'A' AND t.typelem <> 0 THEN t.typelem ELSE t.oid END AS e) el \
           JOIN pg_type et ON et.oid = el.e \
           CROSS JOIN LATERAL (SELECT CASE WHEN et.typtype = 'd' THEN et.typbasetype ELSE et.oid END AS t) ck \
           JOIN pg_type ckt ON ckt.oid = ck.t \
           LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum \
           LEFT JOIN pg_collation co ON co.oid = a.attcollation \
           LEFT JOIN pg_namespace cn ON cn.oid = co.collnamespace \
           LEFT JOIN LATERAL ( \
             SELECT n.nspname::text AS schema_name, s.relname::text AS sequence_name, {seq_type} AS sequence_type, \
                    ARRAY(SELECT ad.adrelid::regclass::text || '.' || att.attname::text \
                            FROM pg_depend d2 JOIN pg_attrdef ad ON ad.oid = d2.objid \
                            JOIN pg_attribute att ON att.attrelid = ad.adrelid AND att.attnum = ad.adnum \
                           WHERE d2.classid = 'pg_attrdef'::regclass AND d2.refclassid = 'pg_class'::regclass \
                             AND d2.refobjid = s.oid \
                             AND NOT (ad.adrelid = a.attrelid AND ad.adnum = a.attnum)) AS used_by \
               FROM pg_depend dep JOIN pg_class s ON s.oid = dep.objid JOIN pg_namespace n ON n.oid = s.relnamespace \
              WHERE dep.classid = 'pg_class'::regclass AND dep.refclassid = 'pg_class'::regclass \
                AND dep.refobjid = a.attrelid AND dep.refobjsubid = a.attnum \
                AND dep.deptype IN ('a', 'i') AND s.relkind = 'S' \
              LIMIT 1) s ON true \
          WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped \
          ORDER BY a.attnum"
    );
    let rows = sqlx::query(AssertSqlSafe(columns))
        .bind(quoted)
        .fetch_all(pool)
        .await?;
    let mut names = Vec::new();
    for r in &rows {
        let Some(name) = r
            .try_get::<String, _>("name")
            .ok()
            .and_then(crate::catalog::ident)
        else {
            continue;
        };
        names.push(name.clone());
        let mut c = ColumnCensus::new(name);
        c.identity = match r.try_get::<String, _>("identity")?.as_str() {
            "a" => Some(Identity::Always),
            "d" => Some(Identity::ByDefault),
            _ => None,
        };
        if !r.try_get::<String, _>("generated")?.is_empty() {
            c.generated = r.try_get("expression")?;
        }
        c.comment = r.try_get("comment")?;
        let collation: Option<String> = r.try_get("collation_name")?;
        if let Some(collation) = collation.and_then(crate::catalog::ident) {
            let schema: Option<String> = r.try_get("collation_schema")?;
            c.collation = Some(TableName {
                schema: schema.and_then(|s| Ident::new(s).ok()),
                name: collation,
            });
        }
        let seq_name: Option<String> = r.try_get("sequence_name")?;
        if let Some(seq_name) = seq_name.and_then(crate::catalog::ident) {
            let schema: Option<String> = r.try_get("schema_name")?;
            c.sequence = Some(SequenceFacts {
                name: TableName {
                    schema: schema.and_then(|s| Ident::new(s).ok()),
                    name: seq_name,
                },
                data_type: r.try_get("sequence_type")?,
                used_by: r
                    .try_get::<Option<Vec<String>>, _>("used_by")?
                    .unwrap_or_default(),
            });
        }
        let grantees: Vec<String> = r.try_get("grantees")?;
        let privileges: Vec<String> = r.try_get("privileges")?;
        let grantable: Vec<bool> = r.try_get("grantable")?;
        c.grants = grantees
            .into_iter()
            .zip(privileges)
            .zip(grantable)
            .map(|((g, privilege), grantable)| ColumnGrant {
                grantee: (!g.is_empty()).then_some(g),
                privilege,
                grantable,
            })
            .collect();
        c.lacks_equality = r.try_get("lacks_equality")?;
        if c != ColumnCensus::new(c.name.clone()) {
            census.columns.push(c);
        }
    }

    let triggers = sqlx::query(
        "SELECT t.tgname::text AS name, pg_get_triggerdef(t.oid) AS definition, \
                t.tgfoid::regproc::text AS function, coalesce(p.prosrc, '') AS body, \
                t.tgenabled <> 'D' AS enabled, \
                ARRAY(SELECT a.attname::text FROM unnest(t.tgattr::int2[]) k(n) \
                        JOIN pg_attribute a ON a.attrelid = t.tgrelid AND a.attnum = k.n) AS update_of \
           FROM pg_trigger t LEFT JOIN pg_proc p ON p.oid = t.tgfoid \
          WHERE t.tgrelid = to_regclass($1) AND NOT t.tgisinternal \
          ORDER BY t.tgname",
    )
    .bind(quoted)
    .fetch_all(pool)
    .await?;
    for r in &triggers {
        let Some(name) = r
            .try_get::<String, _>("name")
            .ok()
            .and_then(crate::catalog::ident)
        else {
            continue;
        };
        let definition: String = r.try_get("definition")?;
        let body: String = r.try_get("body")?;
        let update_of: Vec<String> = r.try_get("update_of")?;
        // The definition reads `CREATE TRIGGER name BEFORE INSERT OR UPDATE
        // OF c ON table FOR EACH ROW [WHEN (…)] EXECUTE FUNCTION f()`.
        let when = definition
            .split_once(&format!(" {} ", name.as_str()))
            .or_else(|| definition.split_once(" TRIGGER "))
            .map(|(_, rest)| rest.split(" ON ").next().unwrap_or_default().to_string())
            .unwrap_or_default();
        // Functions the trigger's function calls (one level down: a
        // `NEW := normalize(NEW)` helper) are read too.
        let called: Vec<String> = words(&body);
        let helpers: Vec<String> = sqlx::query_scalar(
            "SELECT p.prosrc FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace \
              WHERE p.proname::text = ANY($1) AND p.oid <> $2::regproc::oid \
                AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
                AND p.prolang IN (SELECT oid FROM pg_language WHERE lanname IN ('plpgsql', 'sql')) \
              LIMIT 100",
        )
        .bind(&called)
        .bind(r.try_get::<String, _>("function")?)
        .fetch_all(pool)
        .await?;
        let code = format!("{definition}\n{body}\n{}", helpers.join("\n"));
        let mut mentions = mentioned_in_code(&code, &names, false);
        for col in update_of.into_iter().filter_map(crate::catalog::ident) {
            if !mentions.contains(&col) {
                mentions.push(col);
            }
        }
        census.triggers.push(TriggerFacts {
            phasegate: body.contains(PHASEGATE_TRIGGER_MARK),
            name,
            when,
            function: r.try_get("function")?,
            mentions,
            enabled: r.try_get("enabled")?,
            on: None,
        });
    }

    // Other tables' triggers whose function's code names this table: they
    // may write or read its columns (an AFTER INSERT that updates a balance).
    let bare = sqlx::query_scalar::<_, String>(
        "SELECT c.relname::text FROM pg_class c WHERE c.oid = to_regclass($1)",
    )
    .bind(quoted)
    .fetch_optional(pool)
    .await?;
    if let Some(bare) = bare {
        let others = sqlx::query(
            "SELECT t.tgname::text AS name, t.tgrelid::regclass::text AS on_table, \
                    pg_get_triggerdef(t.oid) AS definition, t.tgfoid::regproc::text AS function, \
                    coalesce(p.prosrc, '') AS body, t.tgenabled <> 'D' AS enabled \
               FROM pg_trigger t JOIN pg_proc p ON p.oid = t.tgfoid \
              WHERE NOT t.tgisinternal AND t.tgrelid <> to_regclass($1) \
                AND strpos(lower(p.prosrc), lower($2)) > 0 \
              ORDER BY 2, 1 LIMIT 1000",
        )
        .bind(quoted)
        .bind(&bare)
        .fetch_all(pool)
        .await?;
        for r in &others {
            let body: String = r.try_get("body")?;
            if !words(&body).iter().any(|w| w == &bare) {
                continue;
            }
            let Some(name) = r
                .try_get::<String, _>("name")
                .ok()
                .and_then(crate::catalog::ident)
            else {
                continue;
            };
            let mentions = mentioned(&body, &names, false);
            if mentions.is_empty() || body.contains(PHASEGATE_TRIGGER_MARK) {
                continue;
            }
            census.triggers.push(TriggerFacts {
                phasegate: false,
                name,
                when: String::new(),
                function: r.try_get("function")?,
                mentions,
                enabled: r.try_get("enabled")?,
                on: Some(r.try_get("on_table")?),
            });
        }
    }

    census.replica_identity = sqlx::query_scalar::<_, String>(
        "SELECT c.relname::text FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid \
          WHERE i.indrelid = to_regclass($1) AND i.indisreplident",
    )
    .bind(quoted)
    .fetch_optional(pool)
    .await?
    .and_then(crate::catalog::ident);

    // Every object pg_depend records as depending on a column of the table,
    // but for what the planner reads on its own: the table's indexes and
    // constraints, its columns' own defaults and sequences, its triggers.
    let dependents = sqlx::query(
        "SELECT d.classid::regclass::text AS catalog, \
                pg_describe_object(d.classid, d.objid, d.objsubid) AS described, \
                a.attname::text AS column_name, \
                CASE WHEN d.classid = 'pg_rewrite'::regclass THEN \
                       (SELECT CASE WHEN rw.rulename = '_RETURN' THEN c.relkind::text ELSE 'rule' END \
                          FROM pg_rewrite rw JOIN pg_class c ON c.oid = rw.ev_class WHERE rw.oid = d.objid) \
                     WHEN d.classid = 'pg_attrdef'::regclass THEN \
                       (SELECT CASE WHEN ad.adnum <> d.refobjsubid THEN 'generated' ELSE 'own' END \
                          FROM pg_attrdef ad WHERE ad.oid = d.objid) \
                     WHEN d.classid = 'pg_class'::regclass THEN \
                       (SELECT CASE WHEN c.relkind IN ('i', 'I', 'S') THEN 'own' \
                                    WHEN c.oid = d.refobjid THEN 'generated' ELSE c.relkind::text END \
                          FROM pg_class c WHERE c.oid = d.objid) \
                     ELSE '' END AS kind, \
                CASE WHEN d.classid = 'pg_rewrite'::regclass THEN \
                       (SELECT CASE WHEN rw.rulename = '_RETURN' THEN c.oid::regclass::text \
                                    ELSE rw.rulename || ' on ' || c.oid::regclass::text END \
                          FROM pg_rewrite rw JOIN pg_class c ON c.oid = rw.ev_class WHERE rw.oid = d.objid) \
                     WHEN d.classid = 'pg_attrdef'::regclass THEN \
                       (SELECT ga.attname::text FROM pg_attrdef ad \
                          JOIN pg_attribute ga ON ga.attrelid = ad.adrelid AND ga.attnum = ad.adnum WHERE ad.oid = d.objid) \
                     WHEN d.classid = 'pg_class'::regclass AND d.objid = d.refobjid THEN \
                       (SELECT ga.attname::text FROM pg_attribute ga WHERE ga.attrelid = d.objid AND ga.attnum = d.objsubid) \
                     WHEN d.classid = 'pg_policy'::regclass THEN \
                       (SELECT pol.polname || ' on ' || pol.polrelid::regclass::text FROM pg_policy pol WHERE pol.oid = d.objid) \
                     WHEN d.classid = 'pg_statistic_ext'::regclass THEN \
                       (SELECT stn.nspname || '.' || st.stxname FROM pg_statistic_ext st JOIN pg_namespace stn ON stn.oid = st.stxnamespace WHERE st.oid = d.objid) \
                     WHEN d.classid = 'pg_publication_rel'::regclass THEN \
                       (SELECT pub.pubname::text FROM pg_publication_rel pr JOIN pg_publication pub ON pub.oid = pr.prpubid WHERE pr.oid = d.objid) \
                END AS object_name \
           FROM pg_depend d \
           JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid \
          WHERE d.refclassid = 'pg_class'::regclass AND d.refobjid = to_regclass($1) \
            AND d.refobjsubid > 0 AND d.deptype IN ('n', 'a') \
            AND d.classid NOT IN ('pg_constraint'::regclass, 'pg_trigger'::regclass) \
          ORDER BY 2, 3",
    )
    .bind(quoted)
    .fetch_all(pool)
    .await?;
    for r in &dependents {
        let catalog: String = r.try_get("catalog")?;
        let kind: Option<String> = r.try_get("kind")?;
        let described: Option<String> = r.try_get("described")?;
        let object_name: Option<String> = r.try_get("object_name")?;
        let Some(column) = r
            .try_get::<String, _>("column_name")
            .ok()
            .and_then(crate::catalog::ident)
        else {
            continue;
        };
        let kind = match (catalog.as_str(), kind.as_deref().unwrap_or_default()) {
            (_, "own") => continue,
            ("pg_rewrite", "v") => DependentKind::View,
            ("pg_rewrite", "m") => DependentKind::MaterializedView,
            ("pg_rewrite", _) => DependentKind::Rule,
            ("pg_attrdef" | "pg_class", "generated") => DependentKind::GeneratedColumn,
            ("pg_policy", _) => DependentKind::Policy,
            ("pg_statistic_ext", _) => DependentKind::Statistics,
            ("pg_publication_rel", _) => DependentKind::Publication,
            _ => DependentKind::Other,
        };
        let name = match kind {
            DependentKind::Other => described,
            _ => object_name.or(described),
        }
        .unwrap_or_else(|| format!("an object in {catalog}"));
        match census
            .dependents
            .iter_mut()
            .find(|d| d.kind == kind && d.name == name)
        {
            Some(d) if !d.columns.contains(&column) => d.columns.push(column),
            Some(_) => {}
            None => census.dependents.push(Dependent {
                kind,
                name,
                columns: vec![column],
            }),
        }
    }
    Ok(census)
}
