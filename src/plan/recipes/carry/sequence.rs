//! Sequences the column owns: `serial` columns (a `nextval` default and a
//! sequence `OWNED BY` the column) and identity columns (Postgres).
//!
//! | change | serial | identity |
//! |---|---|---|
//! | rename / type change | the default moves to the new column at the contract ([`super::default`]) and, before the old column is dropped, `ALTER SEQUENCE … OWNED BY` the new one (a type change to `bigint` also widens the sequence: `AS bigint`) | at the contract: the sequence's position is read, the old column dropped, the new one made `GENERATED … AS IDENTITY` and its sequence set to that position |
//! | drop_column | noted: the sequence is dropped with the column | noted |
//!
//! Without this, DROP COLUMN fails on a serial column (the column owns the
//! sequence its replacement's default now uses), or the sequence goes with
//! it and every insert that lets the database pick the key fails.

use serde::Serialize;

use super::review::{Fate, Subject};
use super::{Carry, Cx, parts};
use crate::plan::PlanningError;

/// A serial column's sequence, handed to the new column at the contract.
#[derive(Debug, Serialize)]
pub(super) struct OwnedSequenceCtx {
    name: Vec<String>,
    /// `AS bigint` when the new type is wider than the sequence's.
    widen_to: Option<&'static str>,
}

/// An identity column's, recreated on the new column at the contract.
#[derive(Debug, Serialize)]
pub(super) struct IdentityCtx {
    sequence: Vec<String>,
    generated: &'static str,
}

const INTEGERS: &[(&str, u8)] = &[
    ("smallint", 2),
    ("int2", 2),
    ("integer", 4),
    ("int", 4),
    ("int4", 4),
    ("bigint", 8),
    ("int8", 8),
];

fn width(ty: &str) -> Option<(&'static str, u8)> {
    let ty = ty.trim().to_ascii_lowercase();
    INTEGERS
        .iter()
        .find(|(name, _)| *name == ty)
        .map(|&(name, w)| (name, w))
}

pub(super) fn postgres(cx: &Cx<'_>, carry: &mut Carry) -> Result<(), PlanningError> {
    let census = &cx.census;
    let Some(sequence) = &census.sequence else {
        return Ok(());
    };
    let new_type = cx.c.new_type.as_deref().unwrap_or(&cx.column.type_sql);
    let new_width = width(new_type);
    if cx.c.cast && new_width.is_none() {
        return Err(cx.r.unsupported(format!(
            "{}.{} takes its values from sequence {}, and {new_type} is not an integer type a sequence can feed. Way forward: give {} an explicit default in this plan's later change, or keep an integer type",
            cx.t, cx.old, sequence.name, cx.new
        )));
    }
    match census.identity {
        Some(identity) => {
            carry.identity = Some(IdentityCtx {
                sequence: parts(&sequence.name),
                generated: identity.sql(),
            });
            carry.notes.push(format!(
                "{} is an identity column: at the contract {} becomes GENERATED {} AS IDENTITY and its sequence continues where {}'s left off (its other sequence options take their defaults)",
                cx.old, cx.new, identity.sql(), sequence.name
            ));
        }
        None => {
            let seq_width = sequence.data_type.as_deref().and_then(width);
            let widen_to = match (new_width, seq_width) {
                (Some((name, w)), Some((_, sw))) if w > sw => Some(name_of_width(name)),
                _ => None,
            };
            carry.owned_sequence = Some(OwnedSequenceCtx {
                name: parts(&sequence.name),
                widen_to,
            });
            carry.notes.push(format!(
                "sequence {} (owned by {}) is handed to {} at the contract, with the default that uses it{}",
                sequence.name,
                cx.old,
                cx.new,
                if widen_to.is_some() { ", and widened to the new type" } else { "" }
            ));
        }
    }
    Ok(())
}

fn name_of_width(name: &'static str) -> &'static str {
    match name {
        "int8" => "bigint",
        "int4" | "int" => "integer",
        "int2" => "smallint",
        other => other,
    }
}

/// MySQL/MariaDB: an `AUTO_INCREMENT` column (read as identity by the
/// census) is refused: it must be the first column of a key, and moving the
/// counter to another column rebuilds the table with writes blocked.
pub(super) fn mysql(cx: &Cx<'_>) -> Result<(), PlanningError> {
    if cx.census.identity.is_some() {
        return Err(cx.r.unsupported(format!(
            "{}.{} is AUTO_INCREMENT: MySQL keeps one counter per table on a key column, and moving it to {} rebuilds the table while writes wait. Way forward: do it in a maintenance window with a `sql` change",
            cx.t, cx.old, cx.new
        )));
    }
    Ok(())
}

/// drop_column: the sequence goes with the column, unless another column's
/// default draws from it: then DROP COLUMN would fail (Postgres refuses to
/// drop the sequence under that default), so the plan is refused.
pub(super) fn review_drop(
    r: &crate::plan::Recipe<'_>,
    s: &Subject<'_>,
    notes: &mut Vec<String>,
) -> Result<(), PlanningError> {
    let (Fate::Dropped, Some(seq)) = (s.fate, s.facts.census.column(s.column).sequence) else {
        return Ok(());
    };
    if !seq.used_by.is_empty() {
        return Err(r.unsupported(format!(
            "sequence {} is owned by {}.{} and the default of {} draws from it too, so the DROP COLUMN would fail (dropping the column drops the sequence). Way forward: in an earlier plan, `ALTER SEQUENCE {} OWNED BY NONE` (or OWNED BY the other column) with a `sql` change, then plan this drop again",
            seq.name,
            s.table,
            s.column,
            seq.used_by.join(", "),
            seq.name
        )));
    }
    notes.push(format!(
        "sequence {} is owned by {}.{} and is dropped with it",
        seq.name, s.table, s.column
    ));
    Ok(())
}
