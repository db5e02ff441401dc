//! The dependency census: everything beyond columns, keys, indexes and
//! constraints that hangs on a table's columns — owned sequences and
//! identity, generated columns, comments, column privileges, `ON UPDATE`
//! clauses, triggers, and the objects the database records as depending on
//! a column (views, materialized views, rules, row-level security policies,
//! extended statistics, publication column lists, anything else).
//!
//! Read per dialect:
//! - Postgres: `pg_depend` for every object that depends on one of the
//!   table's columns (classified by the catalog it lives in, so an object of
//!   a kind phasegate has never heard of is still found and named with
//!   `pg_describe_object`), `pg_attribute` (identity, generated, privileges),
//!   `pg_description`, `pg_trigger` with its function's source, and the
//!   default btree/hash operator classes for whether a column's type has an
//!   equality operator (PostgreSQL docs, "Interfacing Extensions to
//!   Indexes": `IS DISTINCT FROM` needs `=`, which `json`, `xml` and the
//!   geometric types lack).
//! - MySQL/MariaDB: `information_schema.COLUMNS` (`EXTRA` holds `on update
//!   …` and generated columns, `GENERATION_EXPRESSION`, `COLUMN_COMMENT`),
//!   `TRIGGERS`, `VIEWS`, `COLUMN_PRIVILEGES`.
//! - SQLite: `sqlite_master` (triggers and views, with their SQL) and
//!   `pragma_table_xinfo` (generated columns).
//!
//! What the planner does with each object is decided in
//! `plan/recipes/carry/`, one file per kind of object.

use serde::{Deserialize, Serialize};

use crate::name::{Ident, TableName};

/// What the census found for one table.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Census {
    /// Facts of the table's columns beyond type, nullability and default;
    /// only columns with something to say are listed.
    pub columns: Vec<ColumnCensus>,
    /// The table's own triggers, phasegate's sync triggers included (see
    /// [`TriggerFacts::phasegate`]); internal triggers (foreign keys) are not.
    pub triggers: Vec<TriggerFacts>,
    /// Objects elsewhere that depend on columns of the table.
    pub dependents: Vec<Dependent>,
}

impl Census {
    /// The census of `column`, or an empty one.
    pub fn column(&self, column: &Ident) -> ColumnCensus {
        self.columns
            .iter()
            .find(|c| &c.name == column)
            .cloned()
            .unwrap_or_else(|| ColumnCensus::new(column.clone()))
    }

    /// The entry of `column`, created if missing (for the readers).
    pub(crate) fn column_mut(&mut self, column: &Ident) -> &mut ColumnCensus {
        if let Some(i) = self.columns.iter().position(|c| &c.name == column) {
            return &mut self.columns[i];
        }
        self.columns.push(ColumnCensus::new(column.clone()));
        let last = self.columns.len() - 1;
        &mut self.columns[last]
    }

    /// The dependents that use `column`.
    pub fn dependents_of<'a>(&'a self, column: &'a Ident) -> impl Iterator<Item = &'a Dependent> {
        self.dependents
            .iter()
            .filter(move |d| d.columns.contains(column))
    }
}

/// What one column carries beyond its type, nullability and default.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ColumnCensus {
    pub name: Ident,
    /// The sequence the column owns: a `serial` column's (`OWNED BY`) or an
    /// identity column's (Postgres).
    pub sequence: Option<SequenceFacts>,
    /// `GENERATED … AS IDENTITY` (Postgres 10+); MySQL/MariaDB
    /// `AUTO_INCREMENT` is read as [`Identity::ByDefault`].
    pub identity: Option<Identity>,
    /// A generated column's expression (Postgres 12+ `GENERATED ALWAYS AS
    /// (…) STORED`, MySQL/MariaDB `AS (…) STORED|VIRTUAL`, SQLite 3.31+).
    pub generated: Option<String>,
    /// The column's comment.
    pub comment: Option<String>,
    /// Privileges granted on the column itself (not on the whole table).
    pub grants: Vec<ColumnGrant>,
    /// MySQL/MariaDB `ON UPDATE CURRENT_TIMESTAMP[(n)]`, as the server
    /// prints it in `EXTRA` (`current_timestamp(6)`).
    pub on_update: Option<String>,
    /// The column's type has no equality operator (Postgres `json`, `xml`,
    /// `point`, …), so values are compared as text.
    pub lacks_equality: bool,
}

impl ColumnCensus {
    pub fn new(name: Ident) -> ColumnCensus {
        ColumnCensus {
            name,
            sequence: None,
            identity: None,
            generated: None,
            comment: None,
            grants: Vec::new(),
            on_update: None,
            lacks_equality: false,
        }
    }
}

/// A sequence owned by a column.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SequenceFacts {
    /// Schema-qualified.
    pub name: TableName,
    /// The sequence's own type (`integer` for `serial`; Postgres 10+
    /// `pg_sequence.seqtypid`), which bounds the values it hands out.
    pub data_type: Option<String>,
}

/// How an identity column takes its values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Identity {
    /// `GENERATED ALWAYS AS IDENTITY`: an insert may not supply a value.
    Always,
    /// `GENERATED BY DEFAULT AS IDENTITY`.
    ByDefault,
}

impl Identity {
    /// The SQL words (`ALWAYS`, `BY DEFAULT`).
    pub fn sql(self) -> &'static str {
        match self {
            Identity::Always => "ALWAYS",
            Identity::ByDefault => "BY DEFAULT",
        }
    }
}

/// One privilege granted on a column.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ColumnGrant {
    /// The role (Postgres; `None` for PUBLIC), or `'user'@'host'` as MySQL
    /// prints it.
    pub grantee: Option<String>,
    /// `SELECT`, `INSERT`, `UPDATE` or `REFERENCES`.
    pub privilege: String,
    pub grantable: bool,
}

/// A trigger of the table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TriggerFacts {
    pub name: Ident,
    /// `BEFORE`, `AFTER` or `INSTEAD OF`, with the events, as one phrase
    /// (`BEFORE INSERT OR UPDATE`).
    pub when: String,
    /// The function it executes (Postgres), schema-qualified text.
    pub function: Option<String>,
    /// Columns of the table its definition or body names (an `UPDATE OF`
    /// list, its `WHEN`, its function's source); found by words, so a
    /// variable that happens to share a column's name counts too.
    pub mentions: Vec<Ident>,
    /// One of phasegate's own sync triggers (from an earlier phase of a plan).
    pub phasegate: bool,
    /// Disabled triggers still count: enabling them is one statement away.
    pub enabled: bool,
}

/// What kind of object depends on a column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DependentKind {
    View,
    MaterializedView,
    /// A rule other than a view's (`CREATE RULE`, Postgres).
    Rule,
    /// A row-level security policy (Postgres).
    Policy,
    /// Extended statistics (`CREATE STATISTICS`, Postgres).
    Statistics,
    /// A publication's column list (Postgres 15+).
    Publication,
    /// Another column of the table generated from this one.
    GeneratedColumn,
    /// Anything else the database records as depending on the column.
    Other,
}

impl DependentKind {
    /// How the kind is called in messages.
    pub fn noun(self) -> &'static str {
        match self {
            DependentKind::View => "view",
            DependentKind::MaterializedView => "materialized view",
            DependentKind::Rule => "rule",
            DependentKind::Policy => "row-level security policy",
            DependentKind::Statistics => "extended statistics object",
            DependentKind::Publication => "publication",
            DependentKind::GeneratedColumn => "generated column",
            DependentKind::Other => "object",
        }
    }
}

/// An object that depends on columns of the table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dependent {
    pub kind: DependentKind,
    /// Its name, qualified where it lives in a schema (Postgres describes
    /// objects of unknown kinds in words: `operator class … for access method …`).
    pub name: String,
    /// The columns of the table it uses.
    pub columns: Vec<Ident>,
}

/// The identifiers an SQL text names, for telling which columns a trigger
/// body or view definition mentions: unquoted words folded to lower case
/// (`fold`: Postgres folds unquoted names; MySQL and SQLite compare column
/// names case-insensitively, so they fold too), quoted ones as written.
/// String literals and comments are skipped.
pub(crate) fn words(sql: &str) -> Vec<String> {
    let mut out = Vec::new();
    let chars: Vec<char> = sql.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '-' && chars.get(i + 1) == Some(&'-') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && chars.get(i + 1) == Some(&'*') {
            i += 2;
            while i < chars.len() && !(chars[i] == '*' && chars.get(i + 1) == Some(&'/')) {
                i += 1;
            }
            i += 2;
        } else if c == '\'' {
            i += 1;
            while i < chars.len() {
                if chars[i] == '\\' {
                    i += 1;
                } else if chars[i] == '\'' {
                    if chars.get(i + 1) == Some(&'\'') {
                        i += 1;
                    } else {
                        break;
                    }
                }
                i += 1;
            }
            i += 1;
        } else if c == '"' || c == '`' || c == '[' {
            let close = if c == '[' { ']' } else { c };
            let mut word = String::new();
            i += 1;
            while i < chars.len() {
                if chars[i] == close {
                    if chars.get(i + 1) == Some(&close) && close != ']' {
                        word.push(close);
                        i += 2;
                        continue;
                    }
                    break;
                }
                word.push(chars[i]);
                i += 1;
            }
            i += 1;
            out.push(word);
        } else if c.is_alphabetic() || c == '_' {
            let mut word = String::new();
            while i < chars.len()
                && (chars[i].is_alphanumeric() || chars[i] == '_' || chars[i] == '$')
            {
                word.push(chars[i]);
                i += 1;
            }
            out.push(word.to_lowercase());
        } else {
            i += 1;
        }
    }
    out
}

/// The columns of `columns` that `sql` names (see [`words`]); `exact`
/// compares quoted-style (Postgres: an unquoted mention of `Name` is `name`).
pub(crate) fn mentioned<'a>(
    sql: &str,
    columns: impl IntoIterator<Item = &'a Ident>,
    case_insensitive: bool,
) -> Vec<Ident> {
    let found = words(sql);
    columns
        .into_iter()
        .filter(|c| {
            found.iter().any(|w| {
                if case_insensitive {
                    w.eq_ignore_ascii_case(c.as_str())
                } else {
                    w == c.as_str()
                }
            })
        })
        .cloned()
        .collect()
}

/// Postgres: the census of the table `quoted` (a quoted, possibly
/// schema-qualified name, resolved with `to_regclass`).
pub(super) async fn read_postgres(
    pool: &sqlx::PgPool,
    quoted: &str,
    version: &super::ServerVersion,
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
    let seq_type = if version.at_least(10, 0) {
        "(SELECT format_type(sq.seqtypid, NULL) FROM pg_sequence sq WHERE sq.seqrelid = s.oid)"
    } else {
        "NULL::text"
    };
    let columns = format!(
        "SELECT a.attname::text AS name, {identity} AS identity, {generated} AS generated, \
                CASE WHEN {generated} <> '' THEN pg_get_expr(d.adbin, d.adrelid) END AS expression, \
                col_description(a.attrelid, a.attnum) AS comment, \
                s.schema_name, s.sequence_name, s.sequence_type, \
                ARRAY(SELECT coalesce(pg_get_userbyid(NULLIF(x.grantee, 0))::text, '') FROM aclexplode(a.attacl) x ORDER BY x.grantee, x.privilege_type) AS grantees, \
                ARRAY(SELECT x.privilege_type::text FROM aclexplode(a.attacl) x ORDER BY x.grantee, x.privilege_type) AS privileges, \
                ARRAY(SELECT x.is_grantable FROM aclexplode(a.attacl) x ORDER BY x.grantee, x.privilege_type) AS grantable, \
                NOT EXISTS ( \
                  SELECT 1 FROM pg_opclass oc JOIN pg_am am ON am.oid = oc.opcmethod \
                   WHERE am.amname IN ('btree', 'hash') AND oc.opcdefault AND ( \
                         oc.opcintype = ck.t \
                      OR oc.opcintype IN (SELECT c.casttarget FROM pg_cast c WHERE c.castsource = ck.t AND c.castmethod = 'b') \
                      OR (ckt.typtype = 'e' AND oc.opcintype = 'anyenum'::regtype) \
                      OR (ckt.typtype = 'r' AND oc.opcintype = 'anyrange'::regtype) \
                      OR (ckt.typtype = 'm' AND oc.opcintype::regtype::text = 'anymultirange') \
                      OR (ckt.typtype = 'c' AND oc.opcintype = 'record'::regtype))) AS lacks_equality \
           FROM pg_attribute a \
           JOIN pg_type t ON t.oid = a.atttypid \
           CROSS JOIN LATERAL (SELECT CASE WHEN t.typcategory = 'A' AND t.typelem <> 0 THEN t.typelem ELSE t.oid END AS e) el \
           JOIN pg_type et ON et.oid = el.e \
           CROSS JOIN LATERAL (SELECT CASE WHEN et.typtype = 'd' THEN et.typbasetype ELSE et.oid END AS t) ck \
           JOIN pg_type ckt ON ckt.oid = ck.t \
           LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum \
           LEFT JOIN LATERAL ( \
             SELECT n.nspname::text AS schema_name, s.relname::text AS sequence_name, {seq_type} AS sequence_type \
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
            .and_then(|n| Ident::new(n).ok())
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
        let seq_name: Option<String> = r.try_get("sequence_name")?;
        if let Some(seq_name) = seq_name.and_then(|n| Ident::new(n).ok()) {
            let schema: Option<String> = r.try_get("schema_name")?;
            c.sequence = Some(SequenceFacts {
                name: TableName {
                    schema: schema.and_then(|s| Ident::new(s).ok()),
                    name: seq_name,
                },
                data_type: r.try_get("sequence_type")?,
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
            .and_then(|n| Ident::new(n).ok())
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
        let mut mentions = mentioned(&format!("{definition}\n{body}"), &names, false);
        for col in update_of.into_iter().filter_map(|n| Ident::new(n).ok()) {
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
        });
    }

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
                       (SELECT pol.polname::text FROM pg_policy pol WHERE pol.oid = d.objid) \
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
            .and_then(|n| Ident::new(n).ok())
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

/// MySQL/MariaDB: the census of `schema.name` (`schema` `None`: the
/// connection's database). `columns` are the table's columns.
pub(super) async fn read_mysql(
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
            .and_then(|n| Ident::new(n).ok())
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
            .and_then(|n| Ident::new(n).ok())
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
            .and_then(|n| Ident::new(n).ok())
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
        let table_word = name.to_lowercase();
        if !words(&definition)
            .iter()
            .any(|w| w.to_lowercase() == table_word)
        {
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

/// SQLite: the census of `schema.name`; `columns` are the table's columns.
pub(super) async fn read_sqlite(
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
        .filter_map(|n| Ident::new(n).ok())
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
            if !on.eq_ignore_ascii_case(name) {
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
            });
        } else {
            let table_word = name.to_lowercase();
            if !words(&sql).iter().any(|w| w.to_lowercase() == table_word) {
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

/// Written into the body of every sync trigger function phasegate creates,
/// so a later read of the catalog tells them from the application's own.
pub const PHASEGATE_TRIGGER_MARK: &str = "phasegate sync trigger";

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> Ident {
        Ident::new(s).unwrap()
    }

    #[test]
    fn words_skip_strings_and_comments_and_keep_quoted_names() {
        let w = words(
            "BEGIN NEW.Handle := lower(NEW.handle); -- login here\n /* login */ x := 'login'; y := \"Login\"; z := `a``b`; END",
        );
        assert!(w.contains(&"handle".to_string()));
        assert!(!w.contains(&"login".to_string()));
        assert!(w.contains(&"Login".to_string()));
        assert!(w.contains(&"a`b".to_string()));
    }

    #[test]
    fn mentioned_finds_columns_by_word() {
        let cols = [id("handle"), id("hand"), id("email")];
        let m = mentioned("NEW.handle := lower(NEW.handle)", &cols, false);
        assert_eq!(m, vec![id("handle")]);
        let m = mentioned("SET NEW.EMAIL = LOWER(NEW.Email)", &cols, true);
        assert_eq!(m, vec![id("email")]);
    }
}
