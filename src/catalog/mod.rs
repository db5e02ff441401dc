//! What phasegate knows about a database's live schema: the server's
//! version, and for each table a plan touches its columns (type, nullability,
//! default), primary key, indexes, unique and check constraints, and the
//! foreign keys from it and to it.
//!
//! The planner works from a [`Catalog`]. An empty one plans offline: recipes
//! then emit SQL that reads what it needs from the database at apply time
//! where the dialect allows it, and take the safe multi-phase path wherever a
//! one-phase path would depend on facts they do not have. A catalog read from
//! the database ([`Catalog::read`]) lets them carry a column's indexes and
//! constraints over to its replacement, choose one-phase paths only where the
//! server supports them, and lets [`crate::plan::validate_against`] check a
//! plan against the schema before anything runs.
//!
//! A catalog remembers which tables it looked up: a table it read and did not
//! find is *missing* ([`Lookup::Missing`]), one it was never asked about is
//! *not read* ([`Lookup::NotRead`]) and judged by nobody.

mod census;
mod connect;
mod mysql;
mod partitioning;
mod postgres;
mod size;
mod sql_text;
mod sqlite;

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::time::Duration;

use crate::dialect::Dialect;
use crate::name::{Ident, SqlType, TableName};

pub(crate) use census::words;
pub use census::{
    Census, ColumnCensus, ColumnGrant, Dependent, DependentKind, Identity, PHASEGATE_TRIGGER_MARK,
    SequenceFacts, TriggerFacts,
};
pub(crate) use connect::redact;
pub use connect::{DEFAULT_CONNECT_TIMEOUT, LOCK_WAIT, READ_WAIT};
#[cfg(test)]
pub(crate) use partitioning::testing as partitioning_testing;
pub use partitioning::{Partition, PartitionKey, Partitioning};
pub use size::{COUNT_LIMIT, TableSize, table_sizes};
pub(crate) use sql_text::{Flavor, mentions, rewrite_column};

/// A column as the database describes it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ColumnFacts {
    pub name: Ident,
    /// The type as the database prints it (`character varying(50)`).
    pub type_sql: String,
    /// The same, parsed, when phasegate's type grammar covers it.
    pub ty: Option<SqlType>,
    pub nullable: bool,
    /// The default expression as the database prints it.
    pub default: Option<String>,
    /// The character set of a text column (MySQL/MariaDB: `utf8mb4`).
    #[serde(default)]
    pub charset: Option<String>,
    /// The collation of a text column (MySQL/MariaDB).
    #[serde(default)]
    pub collation: Option<String>,
}

/// What kind of relation a name refers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum RelationKind {
    /// A table (Postgres: also a partitioned table).
    #[default]
    Table,
    /// A view or materialized view.
    View,
    /// Anything else with that name (a sequence, an index, a foreign table).
    Other,
}

/// One key of an index.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct IndexKey {
    /// The column, or `None` for an expression.
    pub column: Option<Ident>,
    pub descending: bool,
    /// NULLS FIRST (Postgres; the default for DESC).
    pub nulls_first: bool,
    /// The operator class when it is not the type's default, schema-qualified (Postgres).
    pub opclass: Option<TableName>,
    /// The collation when it is not the column's own, schema-qualified on Postgres.
    pub collation: Option<TableName>,
    /// MySQL: the key covers only this many leading characters (bytes for binary strings).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<u32>,
}

/// An index of a table.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct IndexFacts {
    pub name: Ident,
    pub unique: bool,
    /// The index of the primary key.
    pub primary: bool,
    /// The key columns in order.
    pub keys: Vec<IndexKey>,
    /// Columns carried in the index but not part of its key (`INCLUDE`, Postgres).
    pub include: Vec<Ident>,
    /// Whether any key is an expression.
    pub has_expression: bool,
    /// The `WHERE` of a partial index, as the database prints it.
    pub predicate: Option<String>,
    /// Every column the index uses: keys, expressions, predicate and `INCLUDE`.
    pub columns_used: Vec<Ident>,
    /// The access method (`btree`, `gin`, …; Postgres).
    pub method: Option<String>,
    /// False for a Postgres index left INVALID by a failed or running
    /// concurrent build.
    pub valid: bool,
    /// The constraint (primary key, unique, exclusion) the index implements.
    pub constraint: Option<Ident>,
    /// An index of an exclusion constraint (Postgres).
    pub exclusion: bool,
    /// `NULLS NOT DISTINCT` (Postgres 15+).
    pub nulls_not_distinct: bool,
    /// Storage parameters (`fillfactor=70`), as the database prints them.
    pub options: Vec<String>,
    /// The whole definition (`pg_get_indexdef`, or the `CREATE INDEX` text SQLite stores).
    pub definition: Option<String>,
}

impl IndexFacts {
    /// Whether the index uses `column` anywhere.
    pub fn uses(&self, column: &Ident) -> bool {
        self.columns_used.contains(column)
    }
}

/// A unique constraint, and the index that implements it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct UniqueFacts {
    pub name: Ident,
    pub index: Ident,
    pub columns: Vec<Ident>,
    pub deferrable: bool,
    pub initially_deferred: bool,
}

/// A check constraint.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CheckFacts {
    /// Postgres names every check; an SQLite check has a name only when declared with one.
    pub name: Option<Ident>,
    /// The expression inside `CHECK (…)`.
    pub expression: String,
    /// The columns it refers to.
    pub columns: Vec<Ident>,
    /// SQLite: the column whose definition declares it (`None` for a table constraint).
    pub column: Option<Ident>,
    /// False for a Postgres check added NOT VALID and never validated.
    pub validated: bool,
}

/// What a foreign key does when the referenced row is deleted or updated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum ReferentialAction {
    #[default]
    NoAction,
    Restrict,
    Cascade,
    SetNull,
    SetDefault,
}

impl ReferentialAction {
    pub fn sql(self) -> &'static str {
        match self {
            ReferentialAction::NoAction => "NO ACTION",
            ReferentialAction::Restrict => "RESTRICT",
            ReferentialAction::Cascade => "CASCADE",
            ReferentialAction::SetNull => "SET NULL",
            ReferentialAction::SetDefault => "SET DEFAULT",
        }
    }

    /// Postgres's one-letter code (`pg_constraint.confdeltype`).
    fn from_pg(code: &str) -> ReferentialAction {
        match code {
            "r" => ReferentialAction::Restrict,
            "c" => ReferentialAction::Cascade,
            "n" => ReferentialAction::SetNull,
            "d" => ReferentialAction::SetDefault,
            _ => ReferentialAction::NoAction,
        }
    }

    /// SQLite's spelling (`pragma_foreign_key_list.on_delete`).
    fn from_words(words: &str) -> ReferentialAction {
        match words.to_ascii_uppercase().as_str() {
            "RESTRICT" => ReferentialAction::Restrict,
            "CASCADE" => ReferentialAction::Cascade,
            "SET NULL" => ReferentialAction::SetNull,
            "SET DEFAULT" => ReferentialAction::SetDefault,
            _ => ReferentialAction::NoAction,
        }
    }
}

/// A foreign key: `table (columns)` references `references (referenced_columns)`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ForeignKeyFacts {
    /// Postgres names every constraint; SQLite does not report names.
    pub name: Option<Ident>,
    /// The referencing table (schema-qualified on Postgres).
    pub table: TableName,
    pub columns: Vec<Ident>,
    /// The referenced table (schema-qualified on Postgres).
    pub references: TableName,
    /// Empty when SQLite's declaration names no columns (the parent's primary key).
    pub referenced_columns: Vec<Ident>,
    pub on_delete: ReferentialAction,
    pub on_update: ReferentialAction,
    /// `MATCH FULL` (Postgres).
    pub match_full: bool,
    pub deferrable: bool,
    pub initially_deferred: bool,
    /// False for a Postgres foreign key added NOT VALID and never validated.
    pub validated: bool,
    /// SQLite: declared in its column's own definition (`c INTEGER
    /// REFERENCES p (id)`), which DROP COLUMN removes with the column; a
    /// table-level `FOREIGN KEY` naming the column makes DROP COLUMN fail.
    pub declared_inline: bool,
}

/// A table as the database describes it.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct TableFacts {
    pub kind: RelationKind,
    /// In table order.
    pub columns: Vec<ColumnFacts>,
    pub primary_key: Vec<Ident>,
    pub indexes: Vec<IndexFacts>,
    pub uniques: Vec<UniqueFacts>,
    pub checks: Vec<CheckFacts>,
    /// Foreign keys of this table.
    pub foreign_keys: Vec<ForeignKeyFacts>,
    /// Foreign keys of other tables (or this one) that reference this table.
    pub referenced_by: Vec<ForeignKeyFacts>,
    /// Everything else that hangs on the table's columns (see [`Census`]).
    #[serde(default)]
    pub census: Census,
    /// Partitioning and inheritance (Postgres; nothing elsewhere).
    #[serde(default)]
    pub partitioning: Partitioning,
}

impl TableFacts {
    pub fn column(&self, name: &Ident) -> Option<&ColumnFacts> {
        self.columns.iter().find(|c| &c.name == name)
    }

    pub fn column_names(&self) -> Vec<&str> {
        self.columns.iter().map(|c| c.name.as_str()).collect()
    }
}

/// A server's version, as far as the planner cares.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ServerVersion {
    pub dialect: Dialect,
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
    /// MariaDB rather than MySQL (dialect `mysql` only).
    #[serde(default)]
    pub mariadb: bool,
}

impl ServerVersion {
    /// From Postgres's `server_version_num` (`150020` → 15.20, `90624` → 9.6.24).
    pub fn postgres(num: u32) -> ServerVersion {
        let (major, minor, patch) = if num >= 100_000 {
            (num / 10_000, num % 10_000, 0)
        } else {
            (num / 10_000, (num / 100) % 100, num % 100)
        };
        ServerVersion {
            dialect: Dialect::Postgres,
            major,
            minor,
            patch,
            mariadb: false,
        }
    }

    /// From SQLite's `sqlite_version()` (`3.51.3`).
    pub fn sqlite(text: &str) -> Option<ServerVersion> {
        let mut parts = text.trim().split('.').map(|p| p.parse::<u32>().ok());
        Some(ServerVersion {
            dialect: Dialect::Sqlite,
            major: parts.next()??,
            minor: parts.next().flatten().unwrap_or(0),
            patch: parts.next().flatten().unwrap_or(0),
            mariadb: false,
        })
    }

    /// From MySQL's or MariaDB's `SELECT VERSION()` (`8.0.36`,
    /// `10.11.6-MariaDB-1:10.11.6+maria~ubu2204`).
    pub fn mysql(text: &str) -> Option<ServerVersion> {
        let t = text.trim();
        let mariadb = t.to_ascii_lowercase().contains("mariadb");
        // MariaDB 10 once reported `5.5.5-10.x…` to old clients.
        let t = t.strip_prefix("5.5.5-").unwrap_or(t);
        let numeric: String = t
            .chars()
            .take_while(|c| c.is_ascii_digit() || *c == '.')
            .collect();
        let mut parts = numeric.split('.').map(|p| p.parse::<u32>().ok());
        Some(ServerVersion {
            dialect: Dialect::Mysql,
            major: parts.next()??,
            minor: parts.next().flatten().unwrap_or(0),
            patch: parts.next().flatten().unwrap_or(0),
            mariadb,
        })
    }

    /// Whether this is at least `major.minor`.
    pub fn at_least(&self, major: u32, minor: u32) -> bool {
        (self.major, self.minor) >= (major, minor)
    }
}

impl fmt::Display for ServerVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.dialect, self.major >= 10) {
            (Dialect::Postgres, true) => write!(f, "Postgres {}.{}", self.major, self.minor),
            (Dialect::Postgres, false) => {
                write!(f, "Postgres {}.{}.{}", self.major, self.minor, self.patch)
            }
            (Dialect::Sqlite, _) => {
                write!(f, "SQLite {}.{}.{}", self.major, self.minor, self.patch)
            }
            (Dialect::Mysql, _) => write!(
                f,
                "{} {}.{}.{}",
                if self.mariadb { "MariaDB" } else { "MySQL" },
                self.major,
                self.minor,
                self.patch
            ),
        }
    }
}

/// What a catalog knows of one table.
#[derive(Debug, Clone, Copy)]
pub enum Lookup<'a> {
    /// Read, and found.
    Found(&'a TableFacts),
    /// Read, and not there.
    Missing,
    /// Never read: nothing is known either way.
    NotRead,
}

/// Known tables, keyed by the name the plan uses for them.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct Catalog {
    tables: HashMap<TableName, TableFacts>,
    /// Tables looked up and not found.
    missing: BTreeSet<TableName>,
    server: Option<ServerVersion>,
    /// The tables and views of the database, as a plan would name them, for
    /// "did you mean" hints.
    names: Vec<TableName>,
}

/// The live schema could not be read.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("reading the schema of {table}: {}", crate::db_error::describe(.source))]
    Query { table: String, source: sqlx::Error },
    #[error("reading the server's version: {}", crate::db_error::describe(.0))]
    Version(sqlx::Error),
    #[error("connecting to {url}: {}", crate::db_error::describe(.source))]
    Connect { url: String, source: sqlx::Error },
    #[error("connecting to {url}: no answer within {}s", .timeout.as_secs())]
    Timeout { url: String, timeout: Duration },
    /// The read did not finish within [`READ_WAIT`] (a lock held on one of
    /// the tables, a server that stopped answering).
    #[error(
        "reading the schema of {url}: no answer within {}s (is a lock held on one of the plan's tables? each catalog query waits at most {}s for a lock)",
        .waited.as_secs(),
        LOCK_WAIT.as_secs()
    )]
    Slow { url: String, waited: Duration },
    #[error(
        "`{url}` is not a database URL phasegate can read a schema from; expected postgres://…, mysql://… or sqlite:…"
    )]
    Url { url: String },
}

impl Catalog {
    /// Knows nothing: plan offline.
    pub fn offline() -> Catalog {
        Catalog::default()
    }

    /// Records what was read of `table`.
    pub fn insert(&mut self, table: TableName, facts: TableFacts) {
        self.missing.remove(&table);
        self.tables.insert(table, facts);
    }

    /// Records that `table` was looked up and does not exist.
    pub fn insert_missing(&mut self, table: TableName) {
        self.tables.remove(&table);
        self.missing.insert(table);
    }

    /// Records the server's version.
    pub fn set_server(&mut self, version: ServerVersion) {
        self.server = Some(version);
    }

    /// The same catalog with the server's version set.
    pub fn with_server(mut self, version: ServerVersion) -> Catalog {
        self.server = Some(version);
        self
    }

    /// The server's version, when read. Unknown (offline), the planner
    /// assumes a server recent enough for every path it knows.
    pub fn server(&self) -> Option<&ServerVersion> {
        self.server.as_ref()
    }

    /// Records the names of the database's tables and views (for hints).
    pub fn set_table_names(&mut self, names: Vec<TableName>) {
        self.names = names;
    }

    /// The database's tables and views as a plan would name them (empty when not read).
    pub fn table_names(&self) -> &[TableName] {
        &self.names
    }

    pub fn table(&self, table: &TableName) -> Option<&TableFacts> {
        self.tables.get(table)
    }

    /// What is known of `table`: found, missing, or never read.
    pub fn lookup(&self, table: &TableName) -> Lookup<'_> {
        match self.tables.get(table) {
            Some(t) => Lookup::Found(t),
            None if self.missing.contains(table) => Lookup::Missing,
            None => Lookup::NotRead,
        }
    }

    /// Whether `table` was looked up (found or not).
    pub fn was_read(&self, table: &TableName) -> bool {
        !matches!(self.lookup(table), Lookup::NotRead)
    }

    pub fn column(&self, table: &TableName, column: &Ident) -> Option<&ColumnFacts> {
        self.table(table).and_then(|t| t.column(column))
    }

    /// Whether the catalog knows nothing at all (the offline catalog).
    pub fn is_empty(&self) -> bool {
        self.tables.is_empty() && self.missing.is_empty() && self.server.is_none()
    }
}

fn ident(s: impl Into<String>) -> Option<Ident> {
    Ident::new(s).ok()
}

/// Table names as a plan would write them, from rows of (schema, name,
/// whether the schema is the connection's default): unqualified in the
/// default schema, qualified elsewhere.
fn plan_table_names(rows: Vec<(String, String, bool)>) -> Vec<TableName> {
    rows.into_iter()
        .filter_map(|(schema, name, default)| {
            Some(TableName {
                schema: if default { None } else { Some(ident(schema)?) },
                name: ident(name)?,
            })
        })
        .collect()
}

/// A pool of one connection to read a schema with, within `timeout`.
#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> TableName {
        match TableName::parse(s) {
            Ok(t) => t,
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn versions_parse_and_compare() {
        let pg = ServerVersion::postgres(150_020);
        assert_eq!((pg.major, pg.minor), (15, 20));
        assert_eq!(pg.to_string(), "Postgres 15.20");
        assert!(pg.at_least(12, 0) && !pg.at_least(16, 0));
        let old = ServerVersion::postgres(90_624);
        assert_eq!((old.major, old.minor, old.patch), (9, 6, 24));
        assert!(!old.at_least(10, 0));
        let lite = ServerVersion::sqlite("3.34.1").map(|v| (v.major, v.minor, v.at_least(3, 35)));
        assert_eq!(lite, Some((3, 34, false)));
        assert_eq!(ServerVersion::sqlite("x"), None);
    }

    #[test]
    fn lookups_tell_missing_from_not_read() {
        let mut c = Catalog::offline();
        assert!(c.is_empty());
        c.insert(t("users"), TableFacts::default());
        c.insert_missing(t("ghosts"));
        assert!(matches!(c.lookup(&t("users")), Lookup::Found(_)));
        assert!(matches!(c.lookup(&t("ghosts")), Lookup::Missing));
        assert!(matches!(c.lookup(&t("orders")), Lookup::NotRead));
        assert!(c.was_read(&t("ghosts")) && !c.was_read(&t("orders")));
        assert!(!c.is_empty());
        let c = Catalog::offline().with_server(ServerVersion::postgres(110_000));
        assert!(!c.is_empty());
    }
}
