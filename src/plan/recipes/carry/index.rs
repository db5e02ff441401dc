//! Indexes on the old column (plain, unique, composite, prefix, DESC, with
//! operator classes and collations), rebuilt for the new column:
//!
//! | dialect | plain / unique / composite | expression, partial | other |
//! |---|---|---|---|
//! | Postgres | `CREATE INDEX CONCURRENTLY` copy after the backfill | noted: recreate with a `sql` change | exclusion: noted; INVALID: noted, not copied; storage parameters: noted |
//! | MySQL/MariaDB | `ALGORITHM=INPLACE, LOCK=NONE` copy; the original dropped by name with the old column | noted | FULLTEXT/SPATIAL: noted |
//! | SQLite | copied; the original dropped just before the contract (SQLite cannot drop an indexed column) | noted | — |
//!
//! A unique constraint that owns its index (Postgres) is handled in
//! [`super::unique`], the primary key in [`super::primary_key`].

use super::{CarriedIndex, Carry, Cx, IndexCtx, KeyCtx, parts, strings, swap};
use crate::catalog::{IndexFacts, IndexKey};
use crate::name::{Ident, TableName};
use crate::plan::PlanningError;

/// A unique index phasegate cannot rewrite for the new column (on an
/// expression, or partial): refused, since a uniqueness guarantee lost at the
/// contract is not something to accept with a note.
fn unique_not_rewritten(cx: &Cx<'_>, index: &IndexFacts) -> PlanningError {
    cx.r.unsupported(format!(
        "unique index {} on {} uses {} in {} ({}): phasegate does not rewrite it for {}, so the contract would drop a uniqueness guarantee. Way forward: create the same unique index on {} with a `sql` change (CREATE UNIQUE INDEX CONCURRENTLY, transactional: false) after this plan's first deploy and before its contract, or rename without phasegate",
        index.name,
        cx.t,
        cx.old,
        if index.has_expression { "an expression" } else { "its WHERE clause" },
        describe(index),
        cx.new,
        cx.new
    ))
}

/// The index's definition for a message, or its name.
pub(super) fn describe(index: &IndexFacts) -> String {
    index
        .definition
        .clone()
        .unwrap_or_else(|| index.name.to_string())
}

pub(super) fn postgres(
    cx: &Cx<'_>,
    carry: &mut Carry,
    taken: &mut Vec<String>,
) -> Result<(), PlanningError> {
    let (t, old, new, facts) = (cx.t, cx.old, cx.new, cx.facts);
    for index in facts.indexes.iter().filter(|i| i.uses(old)) {
        let name = &index.name;
        if index.exclusion {
            // Like a unique index phasegate cannot rewrite: the guarantee
            // would be gone after the contract.
            return Err(cx.r.unsupported(format!(
                "exclusion constraint {} on {t} uses {old}: phasegate does not rebuild it for {new}, so the contract would drop the guarantee it gives ({}). Way forward: add the same constraint over {new} with a `sql` change after this plan's first deploy and before its contract, or change the column without phasegate",
                index.constraint.as_ref().unwrap_or(name),
                describe(index)
            )));
        }
        if !index.valid {
            carry.notes.push(format!(
                "index {name} on {t} is INVALID (a failed or unfinished concurrent build) and is not rebuilt for {new}"
            ));
            continue;
        }
        if index.unique && (index.has_expression || index.predicate.is_some()) {
            return Err(unique_not_rewritten(cx, index));
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
            .filter_map(|k| key_ctx(k, old, new, cx.c.cast, name, &mut carry.notes))
            .collect::<Vec<_>>();
        let new_name = super::carried_name(name.as_str(), old, new, taken);
        let unique = super::unique::postgres(cx, index, &new_name, taken);
        if index.primary {
            carry.primary_key = Some(super::primary_key::postgres(index, &new_name));
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
    Ok(())
}

pub(super) fn mysql(
    cx: &Cx<'_>,
    carry: &mut Carry,
    taken: &mut Vec<String>,
) -> Result<(), PlanningError> {
    let (t, old, new, facts) = (cx.t, cx.old, cx.new, cx.facts);
    for index in facts.indexes.iter().filter(|i| i.uses(old)) {
        let name = &index.name;
        carry.drop_indexes.push(name.as_str().to_string());
        let special = index
            .method
            .as_deref()
            .filter(|m| matches!(*m, "fulltext" | "spatial"));
        if index.unique && index.has_expression {
            return Err(unique_not_rewritten(cx, index));
        }
        if let Some(m) = special {
            return Err(cx.r.unsupported(format!(
                "{} index {name} on {t} uses {old}: phasegate does not rebuild it for {new} (it cannot be built in place beside the copy), and queries that need it (MATCH … AGAINST, spatial predicates) would fail after the contract. Way forward: rename {old} in a maintenance window with a `sql` change",
                m.to_ascii_uppercase()
            )));
        }
        if index.has_expression || special.is_some() {
            carry.notes.push(format!(
                "index {name} is {} ({}): phasegate does not rebuild it for {new}, and it goes with {old} at the contract; before then, create the same index on {new} with a `sql` change",
                special.map_or("on an expression".to_string(), |m| format!("a {} index", m.to_ascii_uppercase())),
                describe(index)
            ));
            continue;
        }
        let copy = plain_copy(t, index, old, new, cx.c.cast, taken, &mut carry.notes);
        carry.indexes.push(copy);
    }
    Ok(())
}

pub(super) fn sqlite(
    cx: &Cx<'_>,
    carry: &mut Carry,
    taken: &mut Vec<String>,
) -> Result<(), PlanningError> {
    let (t, old, new, facts) = (cx.t, cx.old, cx.new, cx.facts);
    for index in facts.indexes.iter().filter(|i| i.uses(old)) {
        let name = &index.name;
        carry
            .drop_before_contract
            .push(parts(&t.sibling(name.clone())));
        if index.unique && (index.has_expression || index.predicate.is_some()) {
            return Err(unique_not_rewritten(cx, index));
        }
        if index.has_expression || index.predicate.is_some() {
            carry.notes.push(format!(
                "index {name} uses {old} in {} ({}): phasegate does not rewrite it for {new}; it is dropped just before {old} at the contract (SQLite cannot drop an indexed column); create the same index on {new} with a `sql` change before then",
                if index.has_expression { "an expression" } else { "its WHERE clause" },
                describe(index)
            ));
            continue;
        }
        let copy = plain_copy(t, index, old, new, false, taken, &mut carry.notes);
        carry.indexes.push(copy);
    }
    Ok(())
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
    let new_name = super::carried_name(index.name.as_str(), old, new, taken);
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
