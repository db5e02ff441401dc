//! Rendering what [`super::plan`] decided: the steps that carry the old
//! column's objects to the new one, the template context they add to the
//! copy's, and the notes about what is not carried.

use minijinja::Value;

use crate::dialect::Dialect;
use crate::name::TableName;
use crate::plan::recipes::copy_column::Copy;
use crate::plan::recipes::set_not_null;
use crate::plan::{Blocks, LockDuration, PlanningError, Recipe};

use super::{Carry, grant, val};

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
pub(in crate::plan::recipes) fn context(carry: Option<&Carry>) -> Value {
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
        owned_sequence => carry.and_then(|c| c.owned_sequence.as_ref()).map(val),
        identity => carry.and_then(|c| c.identity.as_ref()).map(val),
        comment => carry.and_then(|c| c.comment.clone()),
        grants => carry.map(|c| c.grants.iter().map(val).collect::<Vec<_>>()).unwrap_or_default(),
    }
}

/// Adds the steps that carry the old column's objects to the new one (after
/// the backfill is verified), and the notes about what is not carried.
pub(in crate::plan::recipes) fn emit(
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
    if !carry.grants.is_empty() {
        let sql = render(
            r,
            minijinja::context! {},
            &["carry_grants", "revoke_carried_grants"],
        )?;
        let lock = r.lock("", &[t], Blocks::Nothing, LockDuration::Brief);
        let step = r.migration(
            "grants",
            format!(
                "Grant on {new} the privileges granted on {old} ({}), before the application switches to it",
                carry
                    .grants
                    .iter()
                    .map(grant::GrantCtx::describe)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            sql.get("carry_grants"),
            Some(sql.get("revoke_carried_grants")),
            lock,
        );
        r.step(step).table = Some(t.clone());
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
