//! The dependency census: everything beyond columns, keys, indexes and
//! constraints that hangs on a table's columns — owned sequences and
//! identity, generated columns, comments, column privileges, `ON UPDATE`
//! clauses, triggers, and the objects the database records as depending on
//! a column (views, materialized views, rules, row-level security policies,
//! extended statistics, publication column lists, anything else).
//!
//! Read per dialect, one file each: `postgres.rs`, `mysql.rs`, `sqlite.rs`.
//!
//! What the planner does with each object is decided in
//! `plan/recipes/carry/`, one file per kind of object.

mod mysql;
mod postgres;
mod sqlite;

use serde::{Deserialize, Serialize};

use crate::name::{Ident, TableName};

pub(super) use mysql::read_mysql;
pub(super) use postgres::read_postgres;
pub(super) use sqlite::read_sqlite;

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
    /// Postgres: the index `REPLICA IDENTITY USING INDEX` names (logical
    /// replication identifies updated and deleted rows by it).
    #[serde(default)]
    pub replica_identity: Option<Ident>,
    /// MariaDB: a table `WITH SYSTEM VERSIONING`, whose columns cannot be
    /// altered unless the session allows it (`system_versioning_alter_history`).
    #[serde(default)]
    pub system_versioned: bool,
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
    /// The column's own collation: Postgres when it is not its type's
    /// default, schema-qualified (`pg_attribute.attcollation`); SQLite its
    /// `COLLATE` clause (`NOCASE`, `RTRIM`, an application's), unqualified.
    #[serde(default)]
    pub collation: Option<TableName>,
    /// MySQL 8.0.23+ / MariaDB 10.3+: an `INVISIBLE` column, which
    /// `SELECT *` and positional inserts leave out.
    #[serde(default)]
    pub invisible: bool,
    /// Privileges granted on the column itself (not on the whole table).
    pub grants: Vec<ColumnGrant>,
    /// MySQL/MariaDB `ON UPDATE CURRENT_TIMESTAMP[(n)]`, as the server
    /// prints it in `EXTRA` (`current_timestamp(6)`).
    pub on_update: Option<String>,
    /// Postgres: the column's `=` cannot tell every two different values
    /// apart — its type has no equality operator (`json`, `xml`, `point`,
    /// …), or its collation is nondeterministic (a case-insensitive ICU
    /// collation: `'Bob' = 'bob'`) — so values are compared as text in the
    /// `C` collation.
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
            collation: None,
            invisible: false,
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
    /// Other columns whose default draws from it (`table.column`).
    #[serde(default)]
    pub used_by: Vec<String>,
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
    /// The table the trigger is on, when it is another table's trigger whose
    /// code names this table (it writes or reads this table's columns).
    #[serde(default)]
    pub on: Option<String>,
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
/// Whether `sql` names the table `name` as a word (MySQL and SQLite compare
/// table names case-insensitively here: a view or trigger of another table
/// that reads this one).
pub(crate) fn names_table(sql: &str, name: &str) -> bool {
    words(sql).iter().any(|w| w.eq_ignore_ascii_case(name))
}

/// The columns of `columns` that trigger or function code names, in its
/// identifiers or inside its string literals (`NEW.handle`, but also
/// `to_jsonb(NEW) ->> 'handle'` and `EXECUTE format('… %I', 'handle')`):
/// code can reach a column by a name it holds as a string.
pub(crate) fn mentioned_in_code(
    code: &str,
    columns: &[Ident],
    case_insensitive: bool,
) -> Vec<Ident> {
    // A string literal's text, read again as code (its quotes turned to spaces).
    let unquoted: String = code
        .chars()
        .map(|c| if c == '\'' { ' ' } else { c })
        .collect();
    let mut found = mentioned(code, columns, case_insensitive);
    for c in mentioned(&unquoted, columns, case_insensitive) {
        if !found.contains(&c) {
            found.push(c);
        }
    }
    found
}

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

/// Written into the body of every sync trigger function phasegate creates,
/// so a later read of the catalog tells them from the application's own.
pub const PHASEGATE_TRIGGER_MARK: &str = "phasegate sync trigger";

/// phasegate's own view over its event log (`tracker::STATUS_VIEW`): it
/// reads only `phasegate_events`, so it is never a dependent of the
/// application's tables, though its text names words such as `plan`,
/// `phase` and `state` that the textual census (MySQL, SQLite) would match.
pub(crate) const PHASEGATE_STATUS_VIEW: &str = "phasegate_status";

#[cfg(test)]
mod tests {
    #[test]
    fn phasegates_own_view_is_the_trackers() {
        assert_eq!(super::PHASEGATE_STATUS_VIEW, crate::tracker::STATUS_VIEW);
    }

    use super::*;

    fn id(s: &str) -> Ident {
        Ident::new(s).unwrap_or_else(|e| panic!("test identifier {s:?}: {e}"))
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
