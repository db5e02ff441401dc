//! Intents: the changes a plan file declares, exactly as the plan-file
//! contract spells them (see `docs/intents.md`).
//!
//! An intent says *what* should change (`rename users.name → full_name`);
//! the planner ([`crate::plan`]) decides *how*, in which phases.

mod load;
mod schema;
pub mod shorthand;
pub mod yaml;

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::name::{Ident, SqlExpr, SqlType, TableName};

pub use load::{
    Diagnostic, PlanError, PlanFile, PlanNotFound, is_valid_plan_name, load_plan, locate_plan,
    parse_plan, plan_names,
};
pub use schema::plan_schema;

/// One declared change. In YAML, a map with one key, the kind:
/// `- rename_column: { table: users, from: name, to: full_name }`.
#[derive(Debug, Clone, PartialEq)]
pub enum Intent {
    RenameColumn(RenameColumn),
    AddColumn(AddColumn),
    ChangeColumnType(ChangeColumnType),
    DropColumn(DropColumn),
    RenameTable(RenameTable),
    AddIndex(AddIndex),
    AddForeignKey(AddForeignKey),
    SetNotNull(SetNotNull),
    AddCheck(AddCheck),
    DropTable(DropTable),
    Sql(SqlPhases),
}

/// Every intent kind, as written in plan files.
pub const KINDS: &[&str] = &[
    "rename_column",
    "add_column",
    "change_column_type",
    "drop_column",
    "rename_table",
    "add_index",
    "add_foreign_key",
    "set_not_null",
    "add_check",
    "drop_table",
    "sql",
];

/// How a renamed column's old and new copies are kept equal while both exist.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum SyncMode {
    /// A database trigger mirrors every write (3 deploys; old code untouched).
    #[default]
    Trigger,
    /// The application writes both columns (the classic dual-write recipe).
    App,
}

/// Renames a column without breaking the running release: the new column is
/// added and kept equal to the old one until the old name is dropped.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RenameColumn {
    /// The table that holds the column.
    pub table: TableName,
    /// The column's name today.
    pub from: Ident,
    /// The column's new name.
    pub to: Ident,
    /// How the two columns are kept equal while both exist (`strategy: copy`).
    #[serde(default, skip_serializing_if = "is_default")]
    pub sync: SyncMode,
    /// How both names work while two releases run: a second column kept in
    /// step (`copy`, the default), or a view that shows the one column under
    /// both names (`view`, Postgres: nothing is copied).
    #[serde(default, skip_serializing_if = "is_default")]
    pub strategy: RenameStrategy,
}

/// How a rename keeps the old and the new name working while two releases run.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum RenameStrategy {
    /// A new column beside the old one, kept equal (`sync`) and backfilled:
    /// the cost grows with the table (every row is written once more).
    #[default]
    Copy,
    /// Postgres: the table moves aside and an automatically updatable view
    /// under its name shows the column under both names; the contract swaps
    /// the table back with the column renamed. Nothing is copied, whatever the
    /// table's size; see `docs/intents.md` for what does not work through a view.
    View,
}

/// Adds a column; a required one gets its value on existing rows (`default`
/// or a batched `backfill`) before NOT NULL is set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(transform = schema::add_column_rules)]
pub struct AddColumn {
    /// The table to add the column to.
    pub table: TableName,
    /// The new column's name.
    pub column: Ident,
    /// The column's SQL type.
    #[serde(rename = "type")]
    pub ty: SqlType,
    /// Whether the column may hold NULL (default `true`); a required column
    /// needs `default` or `backfill`.
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub nullable: bool,
    /// The column's default, an SQL expression; also the value existing rows get.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<SqlExpr>,
    /// The value existing rows get, an SQL expression over the row, written
    /// in batches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backfill: Option<SqlExpr>,
}

/// Changes a column's type: in place when the database can do so without a
/// rewrite, else through a new column kept in sync and swapped in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangeColumnType {
    /// The table that holds the column.
    pub table: TableName,
    /// The column whose type changes.
    pub column: Ident,
    /// The new SQL type.
    #[serde(rename = "type")]
    pub ty: SqlType,
    /// Old value → new, in terms of the old column's name (`amount::bigint`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub using: Option<SqlExpr>,
    /// New value → old, in terms of the new column's name, for old code's reads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reverse: Option<SqlExpr>,
    /// The column that holds the new type when the change needs one
    /// (default `<column>_new`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_column: Option<Ident>,
}

/// Drops a column once no release reads or writes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DropColumn {
    /// The table that holds the column.
    pub table: TableName,
    /// The column to drop.
    pub column: Ident,
    /// What the column holds, for rows written without it, when the phase
    /// that stopped using it is rolled back (an SQL expression over the row;
    /// pgroll calls it `down`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub down: Option<SqlExpr>,
}

/// Renames a table: a view under the new name first, for the new release,
/// then the table itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RenameTable {
    /// The table's name today (`table` or `schema.table`).
    pub from: TableName,
    /// The table's new name, in the same schema.
    pub to: TableName,
}

/// Builds an index without blocking writes (concurrently where the database can).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AddIndex {
    /// The table to index.
    pub table: TableName,
    /// The indexed columns, in order (at least one).
    #[schemars(length(min = 1))]
    pub columns: Vec<Ident>,
    /// Whether the index is unique (default `false`).
    #[serde(default, skip_serializing_if = "is_false")]
    pub unique: bool,
    /// The index's name (default derived from the table and columns).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<Ident>,
    /// A partial index's predicate, an SQL expression (Postgres, SQLite).
    #[serde(default, rename = "where", skip_serializing_if = "Option::is_none")]
    pub predicate: Option<SqlExpr>,
}

/// The table and columns a foreign key references.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct References {
    /// The referenced table.
    pub table: TableName,
    /// The referenced columns, one per referencing column.
    pub columns: Vec<Ident>,
}

/// What happens to referencing rows when the referenced row is deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnDelete {
    #[serde(alias = "no action")]
    NoAction,
    Restrict,
    Cascade,
    #[serde(alias = "set null")]
    SetNull,
    #[serde(alias = "set default")]
    SetDefault,
}

impl OnDelete {
    pub fn sql(self) -> &'static str {
        match self {
            OnDelete::NoAction => "NO ACTION",
            OnDelete::Restrict => "RESTRICT",
            OnDelete::Cascade => "CASCADE",
            OnDelete::SetNull => "SET NULL",
            OnDelete::SetDefault => "SET DEFAULT",
        }
    }
}

/// Adds a foreign key without a long lock: added unvalidated, then validated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AddForeignKey {
    /// The referencing table.
    pub table: TableName,
    /// The referencing columns (at least one).
    #[schemars(length(min = 1))]
    pub columns: Vec<Ident>,
    /// What the columns reference.
    pub references: References,
    /// What happens to referencing rows when the referenced row is deleted
    /// (default: the database's, NO ACTION).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_delete: Option<OnDelete>,
    /// The constraint's name (default derived from the table and columns).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<Ident>,
}

/// Makes a column NOT NULL, after filling its NULLs with `backfill` if given.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SetNotNull {
    /// The table that holds the column.
    pub table: TableName,
    /// The column that becomes NOT NULL.
    pub column: Ident,
    /// The value for rows where the column is NULL today.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backfill: Option<SqlExpr>,
}

/// Adds a CHECK constraint without a long lock: added unvalidated, then validated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AddCheck {
    /// The table the constraint is on.
    pub table: TableName,
    /// The constraint's name.
    pub name: Ident,
    /// The condition every row must meet, an SQL expression.
    pub check: SqlExpr,
}

/// Drops a table once no release uses it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DropTable {
    /// The table to drop.
    pub table: TableName,
}

/// The escape hatch: hand-written SQL, one deploy per entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SqlPhases {
    /// The deploys, in order (at least one).
    #[schemars(length(min = 1))]
    pub phases: Vec<SqlPhase>,
}

/// One deploy of hand-written SQL.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SqlPhase {
    /// The SQL the deploy runs (not blank).
    #[schemars(regex(pattern = r"\S"))]
    pub up: String,
    /// The SQL that undoes `up`, for rollback.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub down: Option<String>,
    /// Whether `up` runs in a transaction (default `true`; `false` for
    /// `CREATE INDEX CONCURRENTLY` and the like).
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub transactional: bool,
    /// What the application must ship in this deploy, if anything.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app: Option<String>,
}

fn yes() -> bool {
    true
}
fn is_true(b: &bool) -> bool {
    *b
}
fn is_false(b: &bool) -> bool {
    !*b
}
fn is_default<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}

impl<'de> Deserialize<'de> for Intent {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct OneKeyMap;
        impl<'de> serde::de::Visitor<'de> for OneKeyMap {
            type Value = Intent;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(
                    "a change: a map with one key, the intent kind (e.g. `rename_column: {…}`)",
                )
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Intent, A::Error> {
                use serde::de::Error;
                let Some(kind) = map.next_key::<String>()? else {
                    return Err(A::Error::custom(
                        "a change needs an intent kind, e.g. `rename_column: {…}`",
                    ));
                };
                let intent = match kind.as_str() {
                    "rename_column" => Intent::RenameColumn(map.next_value()?),
                    "add_column" => Intent::AddColumn(map.next_value()?),
                    "change_column_type" => Intent::ChangeColumnType(map.next_value()?),
                    "drop_column" => Intent::DropColumn(map.next_value()?),
                    "rename_table" => Intent::RenameTable(map.next_value()?),
                    "add_index" => Intent::AddIndex(map.next_value()?),
                    "add_foreign_key" => Intent::AddForeignKey(map.next_value()?),
                    "set_not_null" => Intent::SetNotNull(map.next_value()?),
                    "add_check" => Intent::AddCheck(map.next_value()?),
                    "drop_table" => Intent::DropTable(map.next_value()?),
                    "sql" => Intent::Sql(map.next_value()?),
                    other => return Err(A::Error::unknown_variant(other, KINDS)),
                };
                if let Some(extra) = map.next_key::<String>()? {
                    return Err(A::Error::custom(format!(
                        "a change has exactly one intent kind, but `{extra}` follows `{kind}`; indent its fields under `{kind}:` or start a new `- ` item"
                    )));
                }
                Ok(intent)
            }
        }
        d.deserialize_map(OneKeyMap)
    }
}

impl Serialize for Intent {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(Some(1))?;
        match self {
            Intent::RenameColumn(i) => map.serialize_entry("rename_column", i)?,
            Intent::AddColumn(i) => map.serialize_entry("add_column", i)?,
            Intent::ChangeColumnType(i) => map.serialize_entry("change_column_type", i)?,
            Intent::DropColumn(i) => map.serialize_entry("drop_column", i)?,
            Intent::RenameTable(i) => map.serialize_entry("rename_table", i)?,
            Intent::AddIndex(i) => map.serialize_entry("add_index", i)?,
            Intent::AddForeignKey(i) => map.serialize_entry("add_foreign_key", i)?,
            Intent::SetNotNull(i) => map.serialize_entry("set_not_null", i)?,
            Intent::AddCheck(i) => map.serialize_entry("add_check", i)?,
            Intent::DropTable(i) => map.serialize_entry("drop_table", i)?,
            Intent::Sql(i) => map.serialize_entry("sql", i)?,
        }
        map.end()
    }
}

impl Intent {
    /// The kind as written in plan files (`rename_column`).
    pub fn kind(&self) -> &'static str {
        match self {
            Intent::RenameColumn(_) => "rename_column",
            Intent::AddColumn(_) => "add_column",
            Intent::ChangeColumnType(_) => "change_column_type",
            Intent::DropColumn(_) => "drop_column",
            Intent::RenameTable(_) => "rename_table",
            Intent::AddIndex(_) => "add_index",
            Intent::AddForeignKey(_) => "add_foreign_key",
            Intent::SetNotNull(_) => "set_not_null",
            Intent::AddCheck(_) => "add_check",
            Intent::DropTable(_) => "drop_table",
            Intent::Sql(_) => "sql",
        }
    }

    /// The table the intent changes (`None` for raw SQL).
    pub fn table(&self) -> Option<&TableName> {
        match self {
            Intent::RenameColumn(i) => Some(&i.table),
            Intent::AddColumn(i) => Some(&i.table),
            Intent::ChangeColumnType(i) => Some(&i.table),
            Intent::DropColumn(i) => Some(&i.table),
            Intent::RenameTable(i) => Some(&i.from),
            Intent::AddIndex(i) => Some(&i.table),
            Intent::AddForeignKey(i) => Some(&i.table),
            Intent::SetNotNull(i) => Some(&i.table),
            Intent::AddCheck(i) => Some(&i.table),
            Intent::DropTable(i) => Some(&i.table),
            Intent::Sql(_) => None,
        }
    }

    /// Checks what the types alone cannot: rules between fields.
    pub fn validate(&self) -> Result<(), String> {
        match self {
            Intent::RenameColumn(i) if i.from == i.to => Err(format!(
                "`from` and `to` are both `{}`: nothing to rename",
                i.from
            )),
            Intent::RenameColumn(i)
                if i.strategy == RenameStrategy::View && i.sync != SyncMode::default() =>
            {
                Err(
                    "`sync` applies to `strategy: copy` only: with `strategy: view` there is one column, shown under both names, and nothing to keep in step; remove `sync` or the strategy"
                        .to_string(),
                )
            }
            Intent::AddColumn(i) if i.ty.is_serial() && i.default.is_some() => Err(format!(
                "`{}` numbers rows from its own sequence, so `default` cannot be set; remove `default` (existing rows are numbered too, or get `backfill` when given)",
                i.ty
            )),
            Intent::AddColumn(i)
                if !i.nullable
                    && i.default.is_none()
                    && i.backfill.is_none()
                    && !i.ty.is_serial() =>
            {
                Err(format!(
                    "required column `{}` needs `default` or `backfill`: existing rows must get a value before NOT NULL can hold",
                    i.column
                ))
            }
            Intent::ChangeColumnType(i) if i.new_column.as_ref() == Some(&i.column) => {
                Err(format!(
                    "`new_column` must differ from `column` (`{}`): the new type lives in a new column while both exist",
                    i.column
                ))
            }
            Intent::RenameTable(i) if i.from.name == i.to.name && i.from.schema == i.to.schema => {
                Err(format!(
                    "`from` and `to` are both `{}`: nothing to rename",
                    i.from
                ))
            }
            Intent::RenameTable(i) if i.to.schema.is_some() && i.to.schema != i.from.schema => {
                Err(format!(
                    "`to` (`{}`) is in another schema than `from` (`{}`): rename_table renames within a schema",
                    i.to, i.from
                ))
            }
            Intent::AddIndex(i) if i.columns.is_empty() => Err("`columns` may not be empty".into()),
            Intent::AddForeignKey(i) if i.columns.is_empty() => {
                Err("`columns` may not be empty".into())
            }
            Intent::AddForeignKey(i) if i.columns.len() != i.references.columns.len() => {
                Err(format!(
                    "`columns` has {} names but `references.columns` has {}: they pair up one to one",
                    i.columns.len(),
                    i.references.columns.len()
                ))
            }
            Intent::Sql(s) if s.phases.is_empty() => Err("`phases` may not be empty".into()),
            Intent::Sql(s) => match s.phases.iter().position(|p| p.up.trim().is_empty()) {
                Some(n) => Err(format!("phases[{n}].up may not be empty")),
                None => Ok(()),
            },
            _ => Ok(()),
        }
    }
}

impl fmt::Display for Intent {
    /// A one-line summary: `rename_column users.name → full_name`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let k = self.kind();
        match self {
            Intent::RenameColumn(i) => write!(f, "{k} {}.{} → {}", i.table, i.from, i.to),
            Intent::AddColumn(i) => {
                // A serial type is NOT NULL whatever `nullable` says.
                let req = if i.nullable && !i.ty.is_serial() {
                    ""
                } else {
                    " NOT NULL"
                };
                write!(f, "{k} {}.{} {}{req}", i.table, i.column, i.ty)
            }
            Intent::ChangeColumnType(i) => write!(f, "{k} {}.{} → {}", i.table, i.column, i.ty),
            Intent::DropColumn(i) => write!(f, "{k} {}.{}", i.table, i.column),
            Intent::RenameTable(i) => write!(f, "{k} {} → {}", i.from, i.to.name),
            Intent::AddIndex(i) => write!(f, "{k} {}({})", i.table, join(&i.columns)),
            Intent::AddForeignKey(i) => write!(
                f,
                "{k} {}({}) → {}({})",
                i.table,
                join(&i.columns),
                i.references.table,
                join(&i.references.columns)
            ),
            Intent::SetNotNull(i) => write!(f, "{k} {}.{}", i.table, i.column),
            Intent::AddCheck(i) => write!(f, "{k} {} {}", i.table, i.name),
            Intent::DropTable(i) => write!(f, "{k} {}", i.table),
            Intent::Sql(s) => write!(f, "{k} ({} phases)", s.phases.len()),
        }
    }
}

fn join(cols: &[Ident]) -> String {
    cols.iter()
        .map(Ident::as_str)
        .collect::<Vec<_>>()
        .join(", ")
}
