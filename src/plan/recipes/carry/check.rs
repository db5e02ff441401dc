//! Check constraints that involve the old column.
//!
//! Postgres: recreated for the new column (the expression rewritten by the
//! catalog's SQL lexer) `NOT VALID`, then validated under a weak lock; one
//! that cannot be rewritten is noted. MySQL/MariaDB: dropped with the old
//! column by name and noted (adding a CHECK copies the table). SQLite: a
//! column's own CHECK is noted (SQLite cannot add one to an existing
//! column); a table CHECK naming the column is refused, since DROP COLUMN
//! could not drop the column.

use super::{CarriedCheck, Carry, CheckCtx, Cx};
use crate::catalog::{Flavor, rewrite_column};
use crate::dialect::Dialect;
use crate::plan::PlanningError;

pub(super) fn postgres(cx: &Cx<'_>, carry: &mut Carry, taken: &mut Vec<String>) {
    let (old, new) = (cx.old, cx.new);
    let quoted_new = Dialect::Postgres.quote_ident(new.as_str());
    for check in cx.facts.checks.iter().filter(|k| k.columns.contains(old)) {
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
                        constraint: super::carried_name(name.as_str(), old, new, taken)
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
    if cx.c.cast && !carry.checks.is_empty() {
        carry.notes.push(format!(
            "checks are recreated for {new} as written for {old}; one that does not fit the new type fails its step in phase 1, which can be rolled back"
        ));
    }
}

pub(super) fn mysql(cx: &Cx<'_>, carry: &mut Carry) {
    let (old, new) = (cx.old, cx.new);
    for check in cx.facts.checks.iter().filter(|k| k.columns.contains(old)) {
        let Some(name) = &check.name else { continue };
        if check.column.as_ref() == Some(old) {
            // MariaDB: the column's own CHECK goes with it (DROP CONSTRAINT
            // would fail on it).
            carry.notes.push(format!(
                "{old}'s own CHECK ({}) goes with it at the contract and is not recreated for {new} (adding a CHECK on MariaDB copies the table while writes wait): add it for {new} with an add_check change if you need it",
                check.expression
            ));
            continue;
        }
        carry.drop_checks.push(name.as_str().to_string());
        carry.notes.push(format!(
            "check {name} ({}) involves {old} and is not recreated for {new} (adding a CHECK on MySQL copies the table while writes wait); it is dropped with {old} at the contract: add it for {new} with an add_check change if you need it",
            check.expression
        ));
    }
}

/// Refuses a table CHECK that names the column (DROP COLUMN would fail).
pub(super) fn sqlite_refusals(cx: &Cx<'_>) -> Result<(), PlanningError> {
    let (t, old) = (cx.t, cx.old);
    for check in cx.facts.checks.iter().filter(|k| k.columns.contains(old)) {
        if check.column.as_ref() != Some(old) {
            return Err(super::sqlite_refusal(
                cx,
                format!(
                    "CHECK ({}) of {t} {} names {old}",
                    check.expression,
                    match &check.column {
                        Some(other) => format!("(declared with column {other})"),
                        None => "(a table constraint)".to_string(),
                    }
                ),
            ));
        }
    }
    Ok(())
}

pub(super) fn sqlite(cx: &Cx<'_>, carry: &mut Carry) {
    if let Some(check) = cx
        .facts
        .checks
        .iter()
        .find(|k| k.column.as_ref() == Some(cx.old))
    {
        carry.notes.push(format!(
            "SQLite cannot add a CHECK to an existing column: {} does not get {}'s CHECK ({}), which goes with {} at the contract; the application must keep to it",
            cx.new, cx.old, check.expression, cx.old
        ));
    }
}
