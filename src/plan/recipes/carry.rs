//! Carrying a column's indexes and constraints over to the column that
//! replaces it (a rename, or a type change through a new column), when the
//! live schema is known.
//!
//! Postgres, after the backfill is verified: each plain index that uses the
//! old column is rebuilt for the new one `CONCURRENTLY` (a unique constraint
//! is then attached to its copy with `ADD CONSTRAINT … UNIQUE USING INDEX`;
//! the primary key's copy becomes the primary key at the contract, once the
//! old column is gone); NOT NULL is enforced by the lock-safe check recipe;
//! checks and foreign keys are recreated `NOT VALID` and validated. What
//! phasegate does not rewrite (expression and partial indexes, exclusion
//! constraints, foreign keys of other tables that reference the old column)
//! is named in a note with what to do. The old column's own objects go with
//! it at the contract.
//!
//! MySQL/MariaDB, after the backfill is verified: each plain index (and
//! unique index) that uses the old column is built for the new one online
//! (`ALGORITHM=INPLACE, LOCK=NONE`); each foreign key is added for the new
//! column with `foreign_key_checks` off, which InnoDB does in place without
//! scanning — the verified copy holds exactly the old column's values, which
//! the old key already checks. At the contract the old column's foreign keys
//! and checks are dropped in the same ALTER that drops it (MySQL refuses to
//! drop a column a foreign key needs). A CHECK is not recreated (adding one
//! copies the table); a note says so, as for expression indexes and foreign
//! keys of other tables. A primary-key column is refused.
//!
//! SQLite: plain indexes are rebuilt and the old ones dropped just before the
//! contract (SQLite cannot drop an indexed column); a foreign key declared
//! with the old column is declared on the new one when it is added. SQLite
//! cannot add NOT NULL or a CHECK to an existing column, so those are only
//! noted; and the plan is refused when the contract could not drop the old
//! column at all (a UNIQUE or PRIMARY KEY column, a table CHECK or FOREIGN
//! KEY that names it, a foreign key of another table that references it).

use minijinja::Value;
use serde::Serialize;

use super::copy_column::Copy;
use super::set_not_null;
use crate::catalog::{Flavor, ForeignKeyFacts, IndexFacts, IndexKey, TableFacts, rewrite_column};
use crate::dialect::Dialect;
use crate::name::{Ident, TableName};
use crate::plan::{Blocks, LockDuration, PlanningError, Recipe, derived_name};

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

fn describe(index: &IndexFacts) -> String {
    index
        .definition
        .clone()
        .unwrap_or_else(|| index.name.to_string())
}

/// Decides what to carry from `c.old` to `c.new`; `Ok(None)` when the live
/// schema does not know the table (offline: nothing is carried).
pub(super) fn plan(r: &Recipe<'_>, c: &Copy<'_>) -> Result<Option<Carry>, PlanningError> {
    let (t, old, new) = (c.table, c.old, c.new);
    let Some(facts) = r.catalog.table(t) else {
        return Ok(None);
    };
    let Some(column) = facts.column(old) else {
        return Ok(None);
    };
    match r.dialect {
        Dialect::Postgres => Ok(Some(postgres(t, old, new, c, facts, column.nullable))),
        Dialect::Sqlite => sqlite(
            r,
            t,
            old,
            new,
            facts,
            column.nullable,
            column.default.is_some(),
        )
        .map(Some),
        Dialect::Mysql => mysql(r, t, old, new, c, facts).map(Some),
    }
}

fn postgres(
    t: &TableName,
    old: &Ident,
    new: &Ident,
    c: &Copy<'_>,
    facts: &TableFacts,
    nullable: bool,
) -> Carry {
    let mut carry = Carry::default();
    let mut taken = taken_names(facts, new);
    let retyped = c.cast;
    for index in facts.indexes.iter().filter(|i| i.uses(old)) {
        let name = &index.name;
        if index.exclusion {
            carry.notes.push(format!(
                "exclusion constraint {} on {t} uses {old}: it is not rebuilt for {new} and goes with {old} at the contract; recreate it for {new} with a `sql` change before then",
                index.constraint.as_ref().unwrap_or(name)
            ));
            continue;
        }
        if !index.valid {
            carry.notes.push(format!(
                "index {name} on {t} is INVALID (a failed or unfinished concurrent build) and is not rebuilt for {new}"
            ));
            continue;
        }
        if index.has_expression || index.predicate.is_some() {
            carry.notes.push(format!(
                "index {name} uses {old} in {} ({}): phasegate does not rewrite it for {new}, and it is dropped with {old} at the contract; before the contract, create the same index on {new} with a `sql` change (CREATE INDEX CONCURRENTLY, transactional: false)",
                if index.has_expression { "an expression" } else { "its WHERE clause" },
                describe(index)
            ));
            continue;
        }
        if !index.options.is_empty() {
            carry.notes.push(format!(
                "the copy of index {name} is built without its storage parameters ({})",
                index.options.join(", ")
            ));
        }
        let keys = index
            .keys
            .iter()
            .filter_map(|k| key_ctx(k, old, new, retyped, name, &mut carry.notes))
            .collect::<Vec<_>>();
        let new_name = carried_name(name.as_str(), old, new, &mut taken);
        let unique = facts.uniques.iter().find(|u| &u.index == name).map(|u| {
            let constraint = if u.name == *name {
                new_name.clone()
            } else {
                carried_name(u.name.as_str(), old, new, &mut taken)
            };
            UniqueCtx {
                constraint: constraint.as_str().to_string(),
                index: new_name.as_str().to_string(),
                deferrable: u.deferrable,
                deferred: u.initially_deferred,
            }
        });
        if index.primary {
            carry.primary_key = Some(PrimaryKeyCtx {
                constraint: index
                    .constraint
                    .as_ref()
                    .unwrap_or(name)
                    .as_str()
                    .to_string(),
                index: new_name.as_str().to_string(),
            });
        }
        let columns = keys
            .iter()
            .map(|k| k.column.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        carry.indexes.push(CarriedIndex {
            old: name.clone(),
            ctx: IndexCtx {
                name: new_name.as_str().to_string(),
                qualified: parts(&t.sibling(new_name.clone())),
                unique: index.unique,
                method: index.method.clone().filter(|m| m != "btree"),
                keys,
                include: strings(&swap(&index.include, old, new)),
                nulls_not_distinct: index.nulls_not_distinct,
            },
            unique,
            columns,
        });
    }
    carry.not_null = !nullable;
    let quoted_new = Dialect::Postgres.quote_ident(new.as_str());
    for check in facts.checks.iter().filter(|k| k.columns.contains(old)) {
        let Some(name) = &check.name else { continue };
        match rewrite_column(&check.expression, old.as_str(), &quoted_new, Flavor::Postgres) {
            Some(expression) => {
                if !check.validated {
                    carry.notes.push(format!(
                        "check {name} was never validated (NOT VALID) on {old}; its copy on {new} is left NOT VALID too"
                    ));
                }
                carry.checks.push(CarriedCheck {
                    old: name.clone(),
                    ctx: CheckCtx {
                        constraint: carried_name(name.as_str(), old, new, &mut taken)
                            .as_str()
                            .to_string(),
                        expression,
                    },
                    validate: check.validated,
                });
            }
            None => carry.notes.push(format!(
                "check {name} ({}) involves {old}, but phasegate could not rewrite it for {new}; it goes with {old} at the contract: add it for {new} with an add_check change",
                check.expression
            )),
        }
    }
    if retyped && !carry.checks.is_empty() {
        carry.notes.push(format!(
            "checks are recreated for {new} as written for {old}; one that does not fit the new type fails its step in phase 1, which can be rolled back"
        ));
    }
    for fk in facts
        .foreign_keys
        .iter()
        .filter(|f| f.columns.contains(old))
    {
        let Some(name) = &fk.name else { continue };
        carry
            .foreign_keys
            .push(fk_copy(fk, name, old, new, &mut taken));
    }
    carry.notes.extend(referencing_notes(
        t,
        facts,
        old,
        new,
        &format!("add a foreign key to {new} NOT VALID, VALIDATE it, drop the old one, with a `sql` change; {new} has the same unique index by then"),
    ));
    carry
}

/// A key of the copy of an index: the old column swapped for the new one.
fn key_ctx(
    k: &IndexKey,
    old: &Ident,
    new: &Ident,
    retyped: bool,
    index: &Ident,
    notes: &mut Vec<String>,
) -> Option<KeyCtx> {
    let column = k.column.as_ref()?;
    let is_old = column == old;
    let (mut opclass, mut collation) = (
        k.opclass.as_ref().map(parts),
        k.collation.as_ref().map(parts),
    );
    if is_old && retyped && (opclass.is_some() || collation.is_some()) {
        notes.push(format!(
            "index {index} uses an operator class or collation chosen for {old}'s type; its copy on {new} uses the new type's defaults"
        ));
        (opclass, collation) = (None, None);
    }
    Some(KeyCtx {
        column: if is_old { new } else { column }.as_str().to_string(),
        prefix: k.prefix,
        descending: k.descending,
        nulls_first: k.nulls_first,
        opclass,
        collation,
    })
}

/// A copy of `index` for `new`: its keys with `old` swapped, under a free
/// name; no access method, INCLUDE or Postgres-only options (SQLite, MySQL).
fn plain_copy(
    t: &TableName,
    index: &IndexFacts,
    old: &Ident,
    new: &Ident,
    retyped: bool,
    taken: &mut Vec<String>,
    notes: &mut Vec<String>,
) -> CarriedIndex {
    let keys: Vec<KeyCtx> = index
        .keys
        .iter()
        .filter_map(|k| key_ctx(k, old, new, retyped, &index.name, notes))
        .collect();
    let new_name = carried_name(index.name.as_str(), old, new, taken);
    let columns = keys
        .iter()
        .map(|k| k.column.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    CarriedIndex {
        old: index.name.clone(),
        ctx: IndexCtx {
            name: new_name.as_str().to_string(),
            qualified: parts(&t.sibling(new_name.clone())),
            unique: index.unique,
            method: None,
            keys,
            include: Vec::new(),
            nulls_not_distinct: false,
        },
        unique: None,
        columns,
    }
}

/// A copy of the old column's foreign key `fk` (named `name`) for `new`.
fn fk_copy(
    fk: &ForeignKeyFacts,
    name: &Ident,
    old: &Ident,
    new: &Ident,
    taken: &mut Vec<String>,
) -> CarriedForeignKey {
    CarriedForeignKey {
        old: name.clone(),
        ctx: ForeignKeyCtx {
            constraint: carried_name(name.as_str(), old, new, taken)
                .as_str()
                .to_string(),
            columns: strings(&swap(&fk.columns, old, new)),
            parent: parts(&fk.references),
            parent_columns: strings(&fk.referenced_columns),
            match_full: fk.match_full,
            on_delete: fk.on_delete.sql(),
            on_update: fk.on_update.sql(),
            deferrable: fk.deferrable,
            deferred: fk.initially_deferred,
        },
        parent: fk.references.clone(),
        validate: fk.validated,
    }
}

/// Notes for other tables' foreign keys that reference the old column:
/// they are not moved, and the contract fails while they exist; `how` says
/// how to point them at `new` on this database.
fn referencing_notes(
    t: &TableName,
    facts: &TableFacts,
    old: &Ident,
    new: &Ident,
    how: &str,
) -> Vec<String> {
    facts
        .referenced_by
        .iter()
        .filter(|f| f.referenced_columns.contains(old))
        .map(|fk| {
            let name = fk
                .name
                .as_ref()
                .map_or_else(String::new, |n| format!(" {n}"));
            format!(
                "foreign key{name} of {} ({}) references {t}.{old} and is not moved: the contract's DROP COLUMN fails while it exists. Before the contract, point it at {new}: {how}",
                fk.table,
                super::cols_text(&fk.columns)
            )
        })
        .collect()
}

fn mysql(
    r: &Recipe<'_>,
    t: &TableName,
    old: &Ident,
    new: &Ident,
    c: &Copy<'_>,
    facts: &TableFacts,
) -> Result<Carry, PlanningError> {
    if facts.primary_key.contains(old) {
        return Err(r.unsupported(format!(
            "{t}.{old} is part of the primary key, which MySQL cannot move to another column without rebuilding the table with writes blocked; do it in a maintenance window with a `sql` change"
        )));
    }
    let mut carry = Carry::default();
    let mut taken = taken_names(facts, new);
    for index in facts.indexes.iter().filter(|i| i.uses(old)) {
        let name = &index.name;
        carry.drop_indexes.push(name.as_str().to_string());
        let special = index
            .method
            .as_deref()
            .filter(|m| matches!(*m, "fulltext" | "spatial"));
        if index.has_expression || special.is_some() {
            carry.notes.push(format!(
                "index {name} is {} ({}): phasegate does not rebuild it for {new}, and it goes with {old} at the contract; before then, create the same index on {new} with a `sql` change",
                special.map_or("on an expression".to_string(), |m| format!("a {} index", m.to_ascii_uppercase())),
                describe(index)
            ));
            continue;
        }
        let copy = plain_copy(t, index, old, new, c.cast, &mut taken, &mut carry.notes);
        carry.indexes.push(copy);
    }
    for fk in facts
        .foreign_keys
        .iter()
        .filter(|f| f.columns.contains(old))
    {
        let Some(name) = &fk.name else { continue };
        carry.drop_foreign_keys.push(name.as_str().to_string());
        let mut copy = fk_copy(fk, name, old, new, &mut taken);
        // The copy equals the old column, which the old key checks.
        copy.validate = false;
        carry.foreign_keys.push(copy);
    }
    for check in facts.checks.iter().filter(|k| k.columns.contains(old)) {
        let Some(name) = &check.name else { continue };
        carry.drop_checks.push(name.as_str().to_string());
        carry.notes.push(format!(
            "check {name} ({}) involves {old} and is not recreated for {new} (adding a CHECK on MySQL copies the table while writes wait); it is dropped with {old} at the contract: add it for {new} with an add_check change if you need it",
            check.expression
        ));
    }
    carry.notes.extend(referencing_notes(
        t,
        facts,
        old,
        new,
        &format!("{new} has the same unique index by then: add the new key with an add_foreign_key change, drop the old one with a `sql` change"),
    ));
    Ok(carry)
}

fn sqlite(
    r: &Recipe<'_>,
    t: &TableName,
    old: &Ident,
    new: &Ident,
    facts: &TableFacts,
    nullable: bool,
    has_default: bool,
) -> Result<Carry, PlanningError> {
    let refuse = |why: String| {
        r.unsupported(format!(
            "{why}, and SQLite cannot drop such a column, so the contract could not drop {old}; rebuild the table with a `sql` change instead"
        ))
    };
    if facts.primary_key.contains(old) {
        return Err(refuse(format!("{t}.{old} is part of the primary key")));
    }
    if let Some(u) = facts.uniques.iter().find(|u| u.columns.contains(old)) {
        return Err(refuse(format!(
            "{t}.{old} has a UNIQUE constraint ({})",
            super::cols_text(&u.columns)
        )));
    }
    for check in facts.checks.iter().filter(|k| k.columns.contains(old)) {
        if check.column.as_ref() != Some(old) {
            return Err(refuse(format!(
                "CHECK ({}) of {t} {} names {old}",
                check.expression,
                match &check.column {
                    Some(other) => format!("(declared with column {other})"),
                    None => "(a table constraint)".to_string(),
                }
            )));
        }
    }
    for fk in facts
        .foreign_keys
        .iter()
        .filter(|f| f.columns.contains(old))
    {
        if !fk.declared_inline {
            return Err(refuse(format!(
                "the table-level FOREIGN KEY ({}) of {t} names {old}",
                super::cols_text(&fk.columns)
            )));
        }
    }
    if let Some(fk) = facts
        .referenced_by
        .iter()
        .find(|f| f.referenced_columns.contains(old))
    {
        return Err(r.unsupported(format!(
            "{} ({}) references {t}.{old}: SQLite's DROP COLUMN at the contract would leave that foreign key pointing at a column that no longer exists; rebuild both tables with a `sql` change instead",
            fk.table,
            super::cols_text(&fk.columns)
        )));
    }

    let mut carry = Carry::default();
    let mut taken = taken_names(facts, new);
    for index in facts.indexes.iter().filter(|i| i.uses(old)) {
        let name = &index.name;
        carry
            .drop_before_contract
            .push(parts(&t.sibling(name.clone())));
        if index.has_expression || index.predicate.is_some() {
            carry.notes.push(format!(
                "index {name} uses {old} in {} ({}): phasegate does not rewrite it for {new}; it is dropped just before {old} at the contract (SQLite cannot drop an indexed column); create the same index on {new} with a `sql` change before then",
                if index.has_expression { "an expression" } else { "its WHERE clause" },
                describe(index)
            ));
            continue;
        }
        let copy = plain_copy(t, index, old, new, false, &mut taken, &mut carry.notes);
        carry.indexes.push(copy);
    }
    if let Some(fk) = facts
        .foreign_keys
        .iter()
        .find(|f| f.declared_inline && f.columns == [old.clone()])
    {
        carry.inline_reference = Some(ReferenceCtx {
            parent: fk.references.name.as_str().to_string(),
            parent_columns: strings(&fk.referenced_columns),
            on_delete: fk.on_delete.sql(),
            on_update: fk.on_update.sql(),
        });
    }
    if let Some(check) = facts.checks.iter().find(|k| k.column.as_ref() == Some(old)) {
        carry.notes.push(format!(
            "SQLite cannot add a CHECK to an existing column: {new} does not get {old}'s CHECK ({}), which goes with {old} at the contract; the application must keep to it",
            check.expression
        ));
    }
    if !nullable && has_default {
        carry.notes.push(format!(
            "SQLite cannot add NOT NULL to an existing column: {new} accepts NULL, where {old} did not"
        ));
    }
    Ok(carry)
}

/// The step that validates the carried constraint `constraint` (step `id`).
fn validate_copy(r: &mut Recipe<'_>, t: &TableName, id: &str, constraint: &str, sql: String) {
    let step = r.validate(
        &format!("{id}_validate"),
        format!("Validate {constraint}: scans {t} without blocking reads or writes"),
        sql,
        t,
    );
    r.step(step).table = Some(t.clone());
}

/// The template context the carry adds to the copy's. The `carried_*`
/// values are set one at a time, for the item being rendered, and are none
/// otherwise.
pub(super) fn context(carry: Option<&Carry>) -> Value {
    minijinja::context! {
        carried_index => (),
        carried_unique => (),
        carried_check => (),
        carried_foreign_key => (),
        carried_constraint => (),
        primary_key => carry.and_then(|c| c.primary_key.as_ref()).map(val),
        drop_before_contract => carry.map(|c| c.drop_before_contract.clone()).unwrap_or_default(),
        inline_reference => carry.and_then(|c| c.inline_reference.as_ref()).map(val),
        drop_indexes => carry.map(|c| c.drop_indexes.clone()).unwrap_or_default(),
        drop_foreign_keys => carry.map(|c| c.drop_foreign_keys.clone()).unwrap_or_default(),
        drop_checks => carry.map(|c| c.drop_checks.clone()).unwrap_or_default(),
    }
}

/// Adds the steps that carry the old column's objects to the new one (after
/// the backfill is verified), and the notes about what is not carried.
pub(super) fn emit(
    r: &mut Recipe<'_>,
    c: &Copy<'_>,
    carry: Carry,
    base: &Value,
) -> Result<(), PlanningError> {
    let (t, old, new) = (c.table, c.old, c.new);
    let kind = c.kind;
    let render = |r: &Recipe<'_>, item: Value, blocks: &[&'static str]| {
        r.render(
            kind,
            &minijinja::context! { ..item, ..base.clone() },
            blocks,
        )
    };
    let constraint_blocks = &["drop_carried_constraint", "validate_carried"];
    for (k, index) in carry.indexes.iter().enumerate() {
        let n = k + 1;
        let sql = render(
            r,
            minijinja::context! { carried_index => val(&index.ctx) },
            &["carry_index", "drop_carried_index"],
        )?;
        let lock = match r.dialect {
            Dialect::Postgres => r.lock(
                "SHARE UPDATE EXCLUSIVE",
                &[t],
                Blocks::Nothing,
                LockDuration::Scan,
            ),
            Dialect::Sqlite => r.lock("", &[t], Blocks::Writes, LockDuration::Scan),
            Dialect::Mysql => r.lock(
                "online build (ALGORITHM=INPLACE, LOCK=NONE)",
                &[t],
                Blocks::Nothing,
                LockDuration::Scan,
            ),
        };
        let unique = if index.ctx.unique { "unique " } else { "" };
        let step = r.migration(
            &format!("index_{n}"),
            format!(
                "Build {unique}index {} on {t} ({}){}, a copy of {} for {new}",
                index.ctx.name,
                index.columns,
                match r.dialect {
                    Dialect::Postgres => " concurrently",
                    Dialect::Mysql => " online",
                    Dialect::Sqlite => "",
                },
                index.old
            ),
            sql.get("carry_index"),
            Some(sql.get("drop_carried_index")),
            lock,
        );
        let transactional = r.dialect == Dialect::Sqlite;
        let s = r.step(step);
        s.table = Some(t.clone());
        s.transactional = transactional;
        if let Some(u) = &index.unique {
            let sql = render(
                r,
                minijinja::context! {
                    carried_unique => val(u),
                    carried_constraint => u.constraint.as_str(),
                },
                &["carry_unique", "drop_carried_constraint"],
            )?;
            let lock = r.lock(
                "ACCESS EXCLUSIVE",
                &[t],
                Blocks::ReadsAndWrites,
                LockDuration::Brief,
            );
            let step = r.migration(
                &format!("unique_{n}"),
                format!(
                    "Attach unique constraint {} to {t} using index {} (no scan)",
                    u.constraint, u.index
                ),
                sql.get("carry_unique"),
                Some(sql.get("drop_carried_constraint")),
                lock,
            );
            r.step(step).table = Some(t.clone());
        }
    }
    if carry.not_null && r.dialect == Dialect::Postgres {
        set_not_null::enforce(r, t, new, None, None)?;
    }
    for (k, check) in carry.checks.iter().enumerate() {
        let n = k + 1;
        let sql = render(
            r,
            minijinja::context! {
                carried_check => val(&check.ctx),
                carried_constraint => check.ctx.constraint.as_str(),
            },
            &["carry_check", constraint_blocks[0], constraint_blocks[1]],
        )?;
        let lock = r.lock(
            "ACCESS EXCLUSIVE",
            &[t],
            Blocks::ReadsAndWrites,
            LockDuration::Brief,
        );
        let step = r.migration(
            &format!("check_{n}"),
            format!(
                "Add CHECK {} ({}) NOT VALID, a copy of {} for {new}: enforced for new writes, no scan",
                check.ctx.constraint, check.ctx.expression, check.old
            ),
            sql.get("carry_check"),
            Some(sql.get("drop_carried_constraint")),
            lock,
        );
        r.step(step).table = Some(t.clone());
        if check.validate {
            validate_copy(
                r,
                t,
                &format!("check_{n}"),
                &check.ctx.constraint,
                sql.get("validate_carried"),
            );
        }
    }
    for (k, fk) in carry.foreign_keys.iter().enumerate() {
        let n = k + 1;
        let sql = render(
            r,
            minijinja::context! {
                carried_foreign_key => val(&fk.ctx),
                carried_constraint => fk.ctx.constraint.as_str(),
            },
            &[
                "carry_foreign_key",
                constraint_blocks[0],
                constraint_blocks[1],
            ],
        )?;
        let (lock, how) = match r.dialect {
            Dialect::Mysql => (
                r.lock(
                    "online (ALGORITHM=INPLACE, LOCK=NONE; foreign_key_checks off: no scan)",
                    &[t, &fk.parent],
                    Blocks::Nothing,
                    LockDuration::Brief,
                ),
                "added in place without a scan (the verified copy holds the old column's checked values)",
            ),
            _ => (
                r.lock(
                    "SHARE ROW EXCLUSIVE",
                    &[t, &fk.parent],
                    Blocks::Writes,
                    LockDuration::Brief,
                ),
                "NOT VALID: checked for new writes, no scan",
            ),
        };
        let step = r.migration(
            &format!("foreign_key_{n}"),
            format!(
                "Add foreign key {} ({}) → {}, a copy of {} for {new}: {how}",
                fk.ctx.constraint,
                fk.ctx.columns.join(", "),
                fk.parent,
                fk.old
            ),
            sql.get("carry_foreign_key"),
            Some(sql.get("drop_carried_constraint")),
            lock,
        );
        r.step(step).table = Some(t.clone());
        if fk.validate {
            validate_copy(
                r,
                t,
                &format!("foreign_key_{n}"),
                &fk.ctx.constraint,
                sql.get("validate_carried"),
            );
        }
    }
    if let Some(pk) = &carry.primary_key {
        r.note(format!(
            "the primary key {} moves to {new} at the contract (ADD CONSTRAINT … PRIMARY KEY USING INDEX {}, once {old} is dropped)",
            pk.constraint, pk.index
        ));
    }
    for note in carry.notes {
        r.note(note);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{
        Catalog, CheckFacts, ColumnFacts, ForeignKeyFacts, ReferentialAction, TableFacts,
        UniqueFacts,
    };
    use crate::plan::recipes::testing::{plan_with, shape, sql_of};

    fn id(s: &str) -> Ident {
        Ident::new(s).unwrap_or_else(|e| panic!("{e}"))
    }

    fn ids(s: &[&str]) -> Vec<Ident> {
        s.iter().map(|c| id(c)).collect()
    }

    fn t(s: &str) -> TableName {
        TableName::parse(s).unwrap_or_else(|e| panic!("{e}"))
    }

    fn col(name: &str, ty: &str, nullable: bool) -> ColumnFacts {
        ColumnFacts {
            name: id(name),
            type_sql: ty.into(),
            ty: crate::name::SqlType::parse(ty).ok(),
            nullable,
            default: None,
            charset: None,
            collation: None,
        }
    }

    fn key(c: &str) -> IndexKey {
        IndexKey {
            column: Some(id(c)),
            ..IndexKey::default()
        }
    }

    fn index(name: &str, keys: Vec<IndexKey>, used: &[&str]) -> IndexFacts {
        IndexFacts {
            name: id(name),
            unique: false,
            primary: false,
            keys,
            include: Vec::new(),
            has_expression: false,
            predicate: None,
            columns_used: ids(used),
            method: Some("btree".into()),
            valid: true,
            constraint: None,
            exclusion: false,
            nulls_not_distinct: false,
            options: Vec::new(),
            definition: Some(format!("CREATE INDEX {name} …")),
        }
    }

    fn fk(
        name: Option<&str>,
        table: &str,
        cols: &[&str],
        parent: &str,
        pcols: &[&str],
    ) -> ForeignKeyFacts {
        ForeignKeyFacts {
            name: name.map(id),
            table: t(table),
            columns: ids(cols),
            references: t(parent),
            referenced_columns: ids(pcols),
            on_delete: ReferentialAction::Cascade,
            on_update: ReferentialAction::NoAction,
            match_full: false,
            deferrable: false,
            initially_deferred: false,
            validated: true,
            declared_inline: false,
        }
    }

    /// Postgres `users`: a primary key on id; email NOT NULL with a
    /// deferrable unique constraint, a multi-column index, an expression
    /// index, a partial index, an exclusion constraint, a check, a foreign
    /// key, and a foreign key of `orders` that references it.
    fn pg_users() -> Catalog {
        let mut pkey = index("users_pkey", vec![key("id")], &["id"]);
        (pkey.unique, pkey.primary, pkey.constraint) = (true, true, Some(id("users_pkey")));
        let mut email_key = index("users_email_key", vec![key("email")], &["email"]);
        (email_key.unique, email_key.constraint) = (true, Some(id("users_email_key")));
        let mut multi = index(
            "users_name_email_idx",
            vec![
                key("name"),
                IndexKey {
                    descending: true,
                    nulls_first: true,
                    opclass: Some(t("pg_catalog.text_pattern_ops")),
                    ..key("email")
                },
            ],
            &["name", "email", "code"],
        );
        multi.include = ids(&["code"]);
        let mut lower = index("users_lower_email", vec![IndexKey::default()], &["email"]);
        lower.has_expression = true;
        let mut partial = index("users_active", vec![key("id")], &["id", "email"]);
        partial.predicate = Some("(email IS NOT NULL)".into());
        let mut excl = index("users_email_excl", vec![key("email")], &["email"]);
        (excl.exclusion, excl.constraint) = (true, Some(id("users_email_excl")));
        let facts = TableFacts {
            columns: vec![
                col("id", "bigint", false),
                col("email", "text", false),
                col("name", "text", true),
                col("code", "text", true),
            ],
            primary_key: ids(&["id"]),
            indexes: vec![email_key, excl, lower, partial, multi, pkey],
            uniques: vec![UniqueFacts {
                name: id("users_email_key"),
                index: id("users_email_key"),
                columns: ids(&["email"]),
                deferrable: true,
                initially_deferred: false,
            }],
            checks: vec![CheckFacts {
                name: Some(id("users_email_check")),
                expression: "(email <> ''::text)".into(),
                columns: ids(&["email"]),
                column: None,
                validated: true,
            }],
            foreign_keys: vec![fk(
                Some("users_email_fkey"),
                "public.users",
                &["email"],
                "public.mailboxes",
                &["address"],
            )],
            referenced_by: vec![fk(
                Some("orders_user_email_fkey"),
                "public.orders",
                &["user_email"],
                "public.users",
                &["email"],
            )],
            ..TableFacts::default()
        };
        let mut c = Catalog::offline();
        c.insert(t("users"), facts);
        c
    }

    fn plan_ok(d: Dialect, c: &Catalog, changes: &str) -> crate::plan::Plan {
        plan_with(d, c, changes).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn postgres_carries_indexes_constraints_and_not_null() {
        let p = plan_ok(
            Dialect::Postgres,
            &pg_users(),
            "  - rename_column: { table: users, from: email, to: mail }\n",
        );
        assert_eq!(
            shape(&p)[0],
            vec![
                "migration:add_column",
                "migration:sync_trigger",
                "backfill:backfill",
                "verify:verify",
                "migration:index_1",
                "migration:unique_1",
                "migration:index_2",
                "verify:verify_no_nulls",
                "migration:check_not_valid",
                "migration:validate_check",
                "migration:set_not_null",
                "migration:check_1",
                "migration:check_1_validate",
                "migration:foreign_key_1",
                "migration:foreign_key_1_validate",
            ]
        );
        assert_eq!(
            sql_of(&p, "index_1"),
            "CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS \"users_mail_key\"\n  ON \"users\" (\"mail\");"
        );
        let index_1 = p.steps.iter().find(|s| s.id == "1.index_1");
        assert!(index_1.is_some_and(|s| !s.transactional));
        assert!(
            sql_of(&p, "unique_1").contains(
                "ADD CONSTRAINT \"users_mail_key\" UNIQUE USING INDEX \"users_mail_key\" DEFERRABLE;"
            ),
            "{}",
            sql_of(&p, "unique_1")
        );
        assert_eq!(
            sql_of(&p, "index_2"),
            "CREATE INDEX CONCURRENTLY IF NOT EXISTS \"users_name_mail_idx\"\n  ON \"users\" (\"name\", \"mail\" \"pg_catalog\".\"text_pattern_ops\" DESC) INCLUDE (\"code\");"
        );
        assert!(sql_of(&p, "check_1").contains("CHECK ((\"mail\" <> ''::text)) NOT VALID"));
        assert!(sql_of(&p, "foreign_key_1").contains(
            "FOREIGN KEY (\"mail\")\n  REFERENCES \"public\".\"mailboxes\" (\"address\") ON DELETE CASCADE ON UPDATE NO ACTION NOT VALID"
        ));
        let notes: Vec<&str> = p.notes.iter().map(|n| n.text.as_str()).collect();
        for name in [
            "users_lower_email",
            "users_active",
            "users_email_excl",
            "orders_user_email_fkey",
        ] {
            assert!(
                notes.iter().any(|n| n.contains(name)),
                "{name} should be in a note: {notes:#?}"
            );
        }
        // The contract needs nothing more: the old column's objects go with it.
        assert!(!sql_of(&p, "contract").contains("PRIMARY KEY"));
    }

    #[test]
    fn planned_again_after_the_first_phase_the_copies_keep_their_names() {
        let before = plan_ok(Dialect::Postgres, &pg_users(), RENAME);
        // Phase 1 ran: mail exists, with the copies.
        let mut after = pg_users();
        let mut facts = after.table(&t("users")).cloned().unwrap_or_default();
        facts.columns.push(col("mail", "text", false));
        let mut copy = index("users_mail_key", vec![key("mail")], &["mail"]);
        (copy.unique, copy.constraint) = (true, Some(id("users_mail_key")));
        facts.indexes.push(copy);
        facts.indexes.push(index(
            "users_name_mail_idx",
            vec![key("name"), key("mail")],
            &["name", "mail", "code"],
        ));
        facts.uniques.push(UniqueFacts {
            name: id("users_mail_key"),
            index: id("users_mail_key"),
            columns: ids(&["mail"]),
            deferrable: true,
            initially_deferred: false,
        });
        facts.checks.push(CheckFacts {
            name: Some(id("users_mail_check")),
            expression: "(mail <> ''::text)".into(),
            columns: ids(&["mail"]),
            column: None,
            validated: true,
        });
        after.insert(t("users"), facts);
        let again = plan_ok(Dialect::Postgres, &after, RENAME);
        let sql = |p: &crate::plan::Plan| -> Vec<Option<String>> {
            p.steps.iter().map(|s| s.sql.clone()).collect()
        };
        assert_eq!(sql(&before), sql(&again));
    }

    #[test]
    fn the_primary_key_moves_at_the_contract() {
        let p = plan_ok(
            Dialect::Postgres,
            &pg_users(),
            "  - change_column_type: { table: users, column: id, type: numeric(20) }\n",
        );
        assert!(
            sql_of(&p, "index_1")
                .contains("CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS \"users_pkey_id_new\"")
        );
        assert!(
            sql_of(&p, "contract").ends_with(
                "ALTER TABLE \"users\" DROP COLUMN \"id\";\n-- The copy of the primary key's index becomes the primary key.\nALTER TABLE \"users\"\n  ADD CONSTRAINT \"users_pkey\" PRIMARY KEY USING INDEX \"users_pkey_id_new\";"
            ),
            "{}",
            sql_of(&p, "contract")
        );
        // The partial index uses id too: noted.
        assert!(p.notes.iter().any(|n| n.text.contains("users_active")));
    }

    #[test]
    fn a_new_type_gets_its_own_operator_classes() {
        let p = plan_ok(
            Dialect::Postgres,
            &pg_users(),
            "  - change_column_type: { table: users, column: email, type: varchar(200) }\n",
        );
        assert!(!sql_of(&p, "index_2").contains("text_pattern_ops"));
        assert!(p.notes.iter().any(|n| n.text.contains("operator class")));
    }

    #[test]
    fn mysql_builds_copies_online_and_drops_the_originals_with_the_column() {
        let p = plan_ok(
            Dialect::Mysql,
            &pg_users(),
            "  - rename_column: { table: users, from: email, to: mail }\n",
        );
        let sql: String = p
            .steps
            .iter()
            .filter_map(|s| s.sql.as_deref())
            .collect::<Vec<_>>()
            .join("\n");
        for needle in [
            "ADD UNIQUE INDEX `users_mail_key` (`mail`), ALGORITHM=INPLACE, LOCK=NONE",
            "ADD INDEX `users_name_mail_idx` (`name`, `mail` DESC), ALGORITHM=INPLACE, LOCK=NONE",
            "SET SESSION foreign_key_checks = 0;\nALTER TABLE `users`\n  ADD CONSTRAINT `users_mail_fkey` FOREIGN KEY (`mail`)",
            "DROP FOREIGN KEY `users_email_fkey`,",
            "DROP INDEX `users_email_key`,",
            "DROP INDEX `users_lower_email`,",
            "DROP CONSTRAINT `users_email_check`, DROP COLUMN `email`",
        ] {
            assert!(sql.contains(needle), "no `{needle}` in:\n{sql}");
        }
        let notes: Vec<&str> = p.notes.iter().map(|n| n.text.as_str()).collect();
        for needle in [
            "users_lower_email",
            "users_email_check",
            "orders_user_email_fkey",
        ] {
            assert!(notes.iter().any(|n| n.contains(needle)), "{notes:#?}");
        }
        // Indexes and the foreign key are built outside a transaction.
        assert!(p.steps.iter().all(|s| !s.transactional));
    }

    #[test]
    fn mysql_refuses_to_move_a_primary_key() {
        let err = plan_with(
            Dialect::Mysql,
            &pg_users(),
            "  - rename_column: { table: users, from: id, to: user_id }\n",
        );
        assert!(
            err.as_ref()
                .is_err_and(|e| e.to_string().contains("part of the primary key")),
            "{err:?}"
        );
    }

    #[test]
    fn offline_nothing_is_carried() {
        let p = plan_ok(
            Dialect::Postgres,
            &Catalog::offline(),
            "  - rename_column: { table: users, from: email, to: mail }\n",
        );
        assert_eq!(shape(&p)[0].len(), 4);
    }

    fn sqlite_users(edit: impl FnOnce(&mut TableFacts)) -> Catalog {
        let mut unique = index("users_email_uq", vec![key("email")], &["email"]);
        unique.unique = true;
        let mut lower = index("users_lower_email", vec![IndexKey::default()], &["email"]);
        lower.has_expression = true;
        let mut inline = fk(None, "users", &["email"], "mailboxes", &["address"]);
        inline.declared_inline = true;
        let mut facts = TableFacts {
            columns: vec![col("id", "INTEGER", true), col("email", "TEXT", true)],
            primary_key: ids(&["id"]),
            indexes: vec![unique, lower],
            checks: vec![CheckFacts {
                name: None,
                expression: "email LIKE '%@%'".into(),
                columns: ids(&["email"]),
                column: Some(id("email")),
                validated: true,
            }],
            foreign_keys: vec![inline],
            ..TableFacts::default()
        };
        edit(&mut facts);
        let mut c = Catalog::offline();
        c.insert(t("users"), facts);
        c
    }

    const RENAME: &str = "  - rename_column: { table: users, from: email, to: mail }\n";

    #[test]
    fn sqlite_rebuilds_indexes_and_declares_the_foreign_key() {
        let p = plan_ok(Dialect::Sqlite, &sqlite_users(|_| {}), RENAME);
        assert_eq!(
            shape(&p)[0],
            vec![
                "migration:add_column",
                "migration:sync_trigger",
                "backfill:backfill",
                "verify:verify",
                "migration:index_1"
            ]
        );
        assert_eq!(
            sql_of(&p, "add_column"),
            "ALTER TABLE `users` ADD COLUMN `mail` TEXT REFERENCES `mailboxes` (`address`) ON DELETE CASCADE ON UPDATE NO ACTION;"
        );
        assert_eq!(
            sql_of(&p, "index_1"),
            "CREATE UNIQUE INDEX IF NOT EXISTS `users_mail_uq`\n  ON `users` (`mail`);"
        );
        let contract = sql_of(&p, "contract");
        assert!(
            contract.contains("DROP INDEX IF EXISTS `users_email_uq`;\nDROP INDEX IF EXISTS `users_lower_email`;\nALTER TABLE `users` DROP COLUMN `email`;"),
            "{contract}"
        );
        assert!(
            p.notes
                .iter()
                .any(|n| n.text.contains("cannot add a CHECK"))
        );
        assert!(p.notes.iter().any(|n| n.text.contains("users_lower_email")));
    }

    #[test]
    fn sqlite_refuses_what_drop_column_cannot_drop() {
        type Edit = Box<dyn FnOnce(&mut TableFacts)>;
        let cases: Vec<(&str, Edit)> = vec![
            (
                "UNIQUE constraint",
                Box::new(|f| {
                    f.uniques.push(UniqueFacts {
                        name: id("sqlite_autoindex_users_1"),
                        index: id("sqlite_autoindex_users_1"),
                        columns: ids(&["email"]),
                        deferrable: false,
                        initially_deferred: false,
                    })
                }),
            ),
            ("primary key", Box::new(|f| f.primary_key = ids(&["email"]))),
            (
                "(a table constraint)",
                Box::new(|f| f.checks[0].column = None),
            ),
            (
                "table-level FOREIGN KEY",
                Box::new(|f| f.foreign_keys[0].declared_inline = false),
            ),
            (
                "orders (user_email) references users.email",
                Box::new(|f| {
                    f.referenced_by
                        .push(fk(None, "orders", &["user_email"], "users", &["email"]))
                }),
            ),
        ];
        for (needle, edit) in cases {
            match plan_with(Dialect::Sqlite, &sqlite_users(edit), RENAME) {
                Err(e) => assert!(e.to_string().contains(needle), "{e}"),
                Ok(_) => panic!("{needle}: should be refused"),
            }
        }
    }

    #[test]
    fn carried_names_swap_the_column() {
        let mut taken = vec!["users_mail_key".to_string()];
        let (old, new) = (id("email"), id("mail"));
        assert_eq!(
            carried_name("users_email_idx", &old, &new, &mut taken).as_str(),
            "users_mail_idx"
        );
        assert_eq!(
            carried_name("users_email_key", &old, &new, &mut taken).as_str(),
            "users_mail_key_2"
        );
        assert_eq!(
            carried_name("by_mailbox", &old, &new, &mut taken).as_str(),
            "by_mailbox_mail"
        );
        let (old, new) = (id("first_name"), id("given"));
        assert_eq!(
            carried_name("p_first_name_idx", &old, &new, &mut taken).as_str(),
            "p_given_idx"
        );
    }
}
