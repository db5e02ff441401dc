//! Steps: the nodes of a plan's dependency graph.

use serde::Serialize;

use crate::name::{Ident, TableName};

/// What a step is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StepKind {
    /// DDL (or DML) that changes the schema.
    Migration,
    /// A data copy, run in batches so no transaction holds many rows.
    Backfill,
    /// A query that must return the expected answer before the plan moves on.
    Verify,
    /// What the application code shipped in this deploy must do.
    App,
}

impl StepKind {
    pub fn name(self) -> &'static str {
        match self {
            StepKind::Migration => "migration",
            StepKind::Backfill => "backfill",
            StepKind::Verify => "verify",
            StepKind::App => "app",
        }
    }
}

/// How a step blocks other sessions while it runs, in the words an operator
/// needs ("ACCESS EXCLUSIVE on users, brief").
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LockNote {
    /// The lock mode (`ACCESS EXCLUSIVE`, `SHARE UPDATE EXCLUSIVE`, `database write lock`, …).
    pub mode: String,
    /// The tables it is taken on.
    pub tables: Vec<String>,
    /// Whether it blocks the application's reads, writes, or neither.
    pub blocks: Blocks,
    /// Whether it is held only for a catalog update (`brief`) or for a scan or rewrite.
    pub duration: LockDuration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Blocks {
    ReadsAndWrites,
    Writes,
    Nothing,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LockDuration {
    /// A catalog change: milliseconds once the lock is granted.
    Brief,
    /// Proportional to the table's size (a scan or a build).
    Scan,
    /// One short transaction per batch.
    PerBatch,
}

/// A batched data copy, kept in parts so the executor can run it in keyset
/// batches: `UPDATE table SET <set> WHERE <pending> AND <key range>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Backfill {
    pub table: TableName,
    /// The `SET` list, e.g. `"full_name" = "name"`.
    pub set: String,
    /// Rows that still need the copy, e.g. `"full_name" IS DISTINCT FROM "name"`.
    pub pending: String,
    /// The key the batches walk, chosen at plan time from the live schema
    /// (the primary key; on MySQL else a NOT NULL unique key; on SQLite else
    /// the rowid). `None` when the plan was made without the table's schema:
    /// the executor then reads the primary key when the backfill runs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<Vec<Ident>>,
    /// A sync trigger created before this step keeps every row written
    /// while it runs in step (rename_column, change_column_type with
    /// `sync: trigger`, on Postgres and MySQL, whose BEFORE UPDATE trigger
    /// runs for every update, on every dialect): the walk over the key
    /// covers every other row, so no final sweep for rows written behind it
    /// is needed. `false` when the application writes both columns (a row
    /// the old release wrote behind the walk is caught by the sweep), when
    /// nothing writes the column, and on SQLite when the walk follows the
    /// rowid (a `VACUUM` may renumber it between two runs of the walk).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub synced: bool,
    /// SQLite: phasegate's sync triggers on the table (their names, in the
    /// table's schema) that the backfill's own updates would fire for
    /// nothing: a batch computes the new column itself. SQLite has no
    /// session setting a trigger could test (Postgres' and MySQL's sync
    /// triggers skip a batch's rows by phasegate's backfill mark), so each
    /// batch drops them and re-creates them from their stored definition
    /// inside its own `BEGIN IMMEDIATE` transaction. That transaction holds
    /// the database's one write lock, so no other write runs while they are
    /// gone, and a batch that fails takes the drop back with the rest.
    /// Empty on Postgres and MySQL.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub sync_triggers: Vec<Ident>,
}

/// Rows a rollback must give a value before the step's `rollback_sql` can
/// run: rows written while the step was applied that would break what the
/// rollback restores (NULLs in a column it makes NOT NULL again).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RollbackFill {
    /// Counts those rows (`SELECT count(*) … WHERE <pending>`).
    pub count: String,
    /// Fills them in batches; `None` when the plan does not say what they hold.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backfill: Option<Backfill>,
    /// Without `backfill`: why the rollback stops, and the field to add.
    pub missing: String,
}

/// One node of the plan's graph.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    /// Stable id: `<change number>.<slug>`, e.g. `1.add_column`.
    pub id: String,
    pub kind: StepKind,
    pub description: String,
    /// The SQL the step runs (`None` for app steps).
    pub sql: Option<String>,
    /// The SQL that undoes it, where it can be undone.
    pub rollback_sql: Option<String>,
    /// Whether it may run inside a transaction (CREATE INDEX CONCURRENTLY may not).
    pub transactional: bool,
    /// False for a step whose effect cannot be undone (dropping a column or table).
    pub reversible: bool,
    /// The 0-based index of the change (intent) in the plan that produced it.
    pub change: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub table: Option<TableName>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lock: Option<LockNote>,
    /// For verify steps: the single value the query must return.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expect: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backfill: Option<Backfill>,
    /// Rows the rollback fills (or refuses over) before `rollback_sql`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rollback_fill: Option<RollbackFill>,
}
