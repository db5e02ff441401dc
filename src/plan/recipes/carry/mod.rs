//! What happens to everything that hangs on a column when a change replaces
//! it (a rename, or a type change through a new column) or drops it: one
//! file per kind of object, each saying per dialect how it is read, carried
//! or refused, with its tests beside it.
//!
//! | kind | file | rename / type change | drop_column |
//! |---|---|---|---|
//! | index (plain, unique, composite, prefix) | [`index`] | rebuilt online for the new column; a unique one on an expression or with WHERE: refused | dropped with it (MySQL: by name) |
//! | unique constraint | [`unique`] | attached to the index copy (Postgres); SQLite: refused | dropped with it |
//! | primary key | [`primary_key`] | moved at the contract (Postgres); MySQL, SQLite: refused | refused (MySQL) |
//! | NOT NULL | [`not_null`] | enforced lock-safely (Postgres), moved by MODIFY (MySQL), noted (SQLite) | relaxed first |
//! | check | [`check`] | recreated NOT VALID + validated (Postgres); noted (MySQL, SQLite column check); refused (SQLite table check) | dropped with it |
//! | foreign key, both ways | [`foreign_key`] | the column's own: recreated; one that references the column: refused | one that references it: refused |
//! | default (MySQL: and ON UPDATE, INVISIBLE) | [`default`] | moved at the contract (a type change: only when it fits the new type) | — |
//! | sequence, identity | [`sequence`] | ownership / identity moved at the contract | noted |
//! | comment | [`comment`] | carried | — |
//! | column privileges | [`grant`] | granted on the new column in deploy 1 | — |
//! | trigger | [`trigger`] | refused when it names the column, else noted for UPDATE triggers | refused when it names the column |
//! | view, materialized view | [`view`] | refused | refused |
//! | rule | [`rule`] | refused | refused |
//! | generated column | [`generated`] | refused | refused |
//! | row-level security policy | [`policy`] | refused | refused |
//! | publication column list | [`publication`] | refused | refused |
//! | extended statistics | [`statistics`] | noted (dropped with the old column) | noted |
//! | anything else in `pg_depend` | [`other`] | refused, named | refused, named |
//! | replica identity index (Postgres) | [`replica_identity`] | refused | refused |
//! | system-versioned table (MariaDB) | [`system_versioning`] | refused | refused |
//! | type without `=` (json, xml, point) | [`equality`] | compared as text | — |
//!
//! The census these decisions read is [`crate::catalog::Census`].
//!
//! [`plan`] and [`review_drop`] here make the decisions; `emit.rs` renders
//! them into steps and template context; `tests.rs` holds the tests across
//! kinds, with their shared fixtures.

mod check;
mod comment;
pub(crate) mod default;
mod dropped_constraints;
mod emit;
pub(super) mod equality;
mod foreign_key;
mod generated;
mod grant;
mod index;
mod not_null;
mod other;
mod policy;
mod primary_key;
mod publication;
mod replica_identity;
mod review;
mod rule;
mod sequence;
mod statistics;
mod system_versioning;
mod trigger;
mod unique;
mod view;

use minijinja::Value;
use serde::Serialize;

use super::copy_column::Copy;
use crate::catalog::{ColumnCensus, ColumnFacts, TableFacts};
use crate::dialect::Dialect;
use crate::name::{Ident, TableName};
use crate::plan::{PlanningError, Recipe, derived_name};
use review::{Fate, Subject};

pub(super) use emit::{context, emit};

/// What is carried over, decided before any SQL is rendered.
#[derive(Debug, Default)]
pub(super) struct Carry {
    indexes: Vec<CarriedIndex>,
    not_null: bool,
    checks: Vec<CarriedCheck>,
    foreign_keys: Vec<CarriedForeignKey>,
    /// Postgres: the primary key, moved to the new column at the contract.
    pub primary_key: Option<PrimaryKeyCtx>,
    /// SQLite: indexes on the old column, dropped just before it.
    pub drop_before_contract: Vec<Vec<String>>,
    /// SQLite: the old column's own foreign key, declared with the new column.
    pub inline_reference: Option<ReferenceCtx>,
    /// MySQL: the old column's indexes, foreign keys and checks, dropped
    /// with it (MySQL would otherwise shrink a composite index to the
    /// columns left, turning `UNIQUE (old, b)` into `UNIQUE (b)`; MariaDB
    /// refuses the DROP COLUMN).
    pub drop_indexes: Vec<String>,
    pub drop_foreign_keys: Vec<String>,
    pub drop_checks: Vec<String>,
    /// Postgres: a serial column's sequence, handed to the new column.
    owned_sequence: Option<sequence::OwnedSequenceCtx>,
    /// Postgres: an identity column's, recreated on the new column.
    identity: Option<sequence::IdentityCtx>,
    /// The old column's comment.
    comment: Option<String>,
    /// Privileges on the old column, granted on the new one.
    grants: Vec<grant::GrantCtx>,
    notes: Vec<String>,
}

#[derive(Debug, Serialize)]
struct KeyCtx {
    column: String,
    /// MySQL: a key on the leading characters only.
    prefix: Option<u32>,
    descending: bool,
    nulls_first: bool,
    opclass: Option<Vec<String>>,
    collation: Option<Vec<String>>,
}

#[derive(Debug, Serialize)]
struct IndexCtx {
    name: String,
    qualified: Vec<String>,
    unique: bool,
    /// The access method, when not the default (btree).
    method: Option<String>,
    keys: Vec<KeyCtx>,
    include: Vec<String>,
    nulls_not_distinct: bool,
}

#[derive(Debug, Serialize)]
struct UniqueCtx {
    constraint: String,
    index: String,
    deferrable: bool,
    deferred: bool,
}

#[derive(Debug, Serialize)]
pub(super) struct PrimaryKeyCtx {
    constraint: String,
    index: String,
}

#[derive(Debug, Serialize)]
struct CheckCtx {
    constraint: String,
    expression: String,
}

#[derive(Debug, Serialize)]
struct ForeignKeyCtx {
    constraint: String,
    columns: Vec<String>,
    parent: Vec<String>,
    parent_columns: Vec<String>,
    match_full: bool,
    on_delete: &'static str,
    on_update: &'static str,
    deferrable: bool,
    deferred: bool,
}

#[derive(Debug, Serialize)]
pub(super) struct ReferenceCtx {
    parent: String,
    parent_columns: Vec<String>,
    on_delete: &'static str,
    on_update: &'static str,
}

#[derive(Debug)]
struct CarriedIndex {
    old: Ident,
    ctx: IndexCtx,
    unique: Option<UniqueCtx>,
    columns: String,
}

#[derive(Debug)]
struct CarriedCheck {
    old: Ident,
    ctx: CheckCtx,
    validate: bool,
}

#[derive(Debug)]
struct CarriedForeignKey {
    old: Ident,
    ctx: ForeignKeyCtx,
    parent: TableName,
    validate: bool,
}

/// A template value from a serializable context struct.
fn val<T: Serialize>(x: &T) -> Value {
    Value::from(minijinja::value::Serde(x))
}

fn parts(t: &TableName) -> Vec<String> {
    t.parts().into_iter().map(str::to_string).collect()
}

fn strings(idents: &[Ident]) -> Vec<String> {
    idents.iter().map(|i| i.as_str().to_string()).collect()
}

/// `list` with `old` replaced by `new`.
fn swap(list: &[Ident], old: &Ident, new: &Ident) -> Vec<Ident> {
    list.iter()
        .map(|c| if c == old { new.clone() } else { c.clone() })
        .collect()
}

/// A name for the copy of `object` (an index or constraint named after the
/// old column): the old column's name swapped for the new one where it
/// appears as a `_`-separated part (`users_email_key` → `users_mail_key`),
/// else the new column's name appended; numbered if already taken.
fn carried_name(object: &str, old: &Ident, new: &Ident, taken: &mut Vec<String>) -> Ident {
    let words: Vec<&str> = object.split('_').collect();
    let col: Vec<&str> = old.as_str().split('_').collect();
    let at = (0..words.len())
        .find(|&i| words[i..].starts_with(&col))
        .filter(|_| !col.is_empty());
    let base = match at {
        Some(i) => [
            words[..i].join("_"),
            new.as_str().to_string(),
            words[i + col.len()..].join("_"),
        ]
        .into_iter()
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join("_"),
        None => format!("{object}_{new}"),
    };
    let mut name = derived_name(&[&base]);
    let mut n = 2;
    while taken.iter().any(|t| t == name.as_str()) {
        name = derived_name(&[&base, &n.to_string()]);
        n += 1;
    }
    taken.push(name.as_str().to_string());
    name
}

/// The names of the table's indexes and constraints, which copies must not
/// take. Objects on the new column are left out: they are the copies
/// themselves when the plan is made again after its first phase ran, and
/// must get the same names as the first time.
fn taken_names(facts: &TableFacts, new: &Ident) -> Vec<String> {
    let mut taken: Vec<String> = facts
        .indexes
        .iter()
        .filter(|i| !i.uses(new))
        .map(|i| i.name.as_str().to_string())
        .collect();
    let facts = TableFacts {
        uniques: facts
            .uniques
            .iter()
            .filter(|u| !u.columns.contains(new))
            .cloned()
            .collect(),
        checks: facts
            .checks
            .iter()
            .filter(|c| !c.columns.contains(new))
            .cloned()
            .collect(),
        foreign_keys: facts
            .foreign_keys
            .iter()
            .filter(|f| !f.columns.contains(new))
            .cloned()
            .collect(),
        ..TableFacts::default()
    };
    taken.extend(facts.uniques.iter().map(|u| u.name.as_str().to_string()));
    taken.extend(
        facts
            .checks
            .iter()
            .filter_map(|c| c.name.as_ref())
            .map(|n| n.as_str().to_string()),
    );
    taken.extend(
        facts
            .foreign_keys
            .iter()
            .filter_map(|f| f.name.as_ref())
            .map(|n| n.as_str().to_string()),
    );
    taken
}

/// What every kind's decision sees: the copy, the table's facts, the old
/// column's facts and census.
pub(super) struct Cx<'a> {
    pub r: &'a Recipe<'a>,
    pub c: &'a Copy<'a>,
    pub t: &'a TableName,
    pub old: &'a Ident,
    pub new: &'a Ident,
    pub facts: &'a TableFacts,
    pub column: &'a ColumnFacts,
    pub census: ColumnCensus,
}

/// Decides what to carry from `c.old` to `c.new`; `Ok(None)` when the live
/// schema does not know the table (offline: nothing is carried). Refuses,
/// before anything runs, what can be neither carried nor left behind.
pub(super) fn plan<'a>(r: &'a Recipe<'a>, c: &'a Copy<'a>) -> Result<Option<Carry>, PlanningError> {
    let (t, old, new) = (c.table, c.old, c.new);
    let Some(facts) = r.catalog.table(t) else {
        return Ok(None);
    };
    let subject = Subject {
        table: t,
        column: old,
        facts,
        fate: Fate::Replaced { by: new },
        dialect: r.dialect,
    };
    // First: a refusal must come before anything else is decided (and a
    // generated column is not among SQLite's plain columns at all).
    let reviewed = review::review(r, &subject)?;
    let Some(column) = facts.column(old) else {
        return Ok(None);
    };
    let cx = Cx {
        r,
        c,
        t,
        old,
        new,
        facts,
        column,
        census: facts.census.column(old),
    };
    let mut carry = Carry::default();
    let mut taken = taken_names(facts, new);
    match r.dialect {
        Dialect::Postgres => {
            index::postgres(&cx, &mut carry, &mut taken)?;
            not_null::postgres(&cx, &mut carry);
            check::postgres(&cx, &mut carry, &mut taken);
            foreign_key::carry(&cx, &mut carry, &mut taken);
            sequence::postgres(&cx, &mut carry)?;
            grant::carry(&cx, &mut carry);
        }
        Dialect::Mysql => {
            primary_key::mysql(&cx)?;
            sequence::mysql(&cx)?;
            index::mysql(&cx, &mut carry, &mut taken)?;
            foreign_key::carry(&cx, &mut carry, &mut taken);
            check::mysql(&cx, &mut carry);
            grant::carry(&cx, &mut carry);
        }
        Dialect::Sqlite => {
            primary_key::sqlite(&cx)?;
            unique::sqlite(&cx)?;
            check::sqlite_refusals(&cx)?;
            foreign_key::sqlite_refusals(&cx)?;
            index::sqlite(&cx, &mut carry, &mut taken)?;
            foreign_key::sqlite(&cx, &mut carry);
            check::sqlite(&cx, &mut carry);
            not_null::sqlite(&cx, &mut carry);
        }
    }
    comment::carry(&cx, &mut carry);
    carry.notes.extend(reviewed);
    Ok(Some(carry))
}

/// The same review for a column that is dropped (`drop_column`): notes, or
/// the refusal. Nothing to do offline.
pub(super) fn review_drop(
    r: &Recipe<'_>,
    table: &TableName,
    column: &Ident,
) -> Result<Vec<String>, PlanningError> {
    let Some(facts) = r.catalog.table(table) else {
        return Ok(Vec::new());
    };
    review::review(
        r,
        &Subject {
            table,
            column,
            facts,
            fate: Fate::Dropped,
            dialect: r.dialect,
        },
    )
}

/// SQLite's refusal for what its DROP COLUMN cannot drop.
fn sqlite_refusal(cx: &Cx<'_>, why: String) -> PlanningError {
    cx.r.unsupported(format!(
        "{why}, and SQLite cannot drop such a column, so the contract could not drop {}; rebuild the table with a `sql` change instead",
        cx.old
    ))
}

#[cfg(test)]
mod tests;
