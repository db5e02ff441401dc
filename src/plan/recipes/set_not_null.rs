//! `set_not_null`: the application writes a value first; then NULLs are
//! backfilled, verified gone, and the constraint added without a long lock.
//!
//! Postgres: `CHECK (c IS NOT NULL) NOT VALID`, `VALIDATE` (no write lock),
//! then `SET NOT NULL`, which since Postgres 12 trusts the valid check instead
//! of scanning under ACCESS EXCLUSIVE, then the check is dropped.
//! SQLite cannot add NOT NULL to an existing column without rebuilding the
//! table, so BEFORE INSERT/UPDATE triggers enforce it.
//!
//! MySQL/MariaDB: `MODIFY` restating the column's whole definition (type,
//! character set, collation, default) with NOT NULL, `ALGORITHM=INPLACE,
//! LOCK=NONE`: an online rebuild (reads and writes go on; brief metadata
//! locks at start and end) that fails if a NULL is left. The definition
//! comes from the live catalog (or, for a column the plan adds, its intent);
//! offline it is unknown, and the change is refused.

use minijinja::context;

use super::{beside, mysql_definition, table_value};
use crate::dialect::Dialect;
use crate::intent::SetNotNull;
use crate::name::{Ident, TableName};
use crate::plan::{Blocks, LockDuration, PlanningError, Recipe, derived_name};

pub(super) fn expand(r: &mut Recipe<'_>, i: &SetNotNull) -> Result<(), PlanningError> {
    if r.dialect == Dialect::Mysql && r.catalog.column(&i.table, &i.column).is_none() {
        return Err(needs_definition(r, &i.table, &i.column));
    }
    r.effects.uses.push((i.table.clone(), i.column.clone()));
    if let Some(b) = &i.backfill {
        r.effects
            .exprs
            .push((i.table.clone(), b.as_str().to_string(), false));
    }
    r.app(
        "app_write_value",
        format!(
            "Write a non-NULL {} on every insert and update of {}",
            i.column, i.table
        ),
    );
    enforce(
        r,
        &i.table,
        &i.column,
        i.backfill.as_ref().map(|b| b.as_str()),
        None,
    )
}

fn needs_definition(r: &Recipe<'_>, t: &TableName, column: &Ident) -> PlanningError {
    r.unsupported(format!(
        "MySQL adds NOT NULL with MODIFY, which restates {t}.{column}'s whole definition (type, character set, default): plan against the database (`phasegate plan --env ENV PLAN`) so it is read from the live schema"
    ))
}

/// Backfill (when `backfill` is given), verify, and enforce NOT NULL on a
/// column that new writes already fill.
pub(super) fn enforce(
    r: &mut Recipe<'_>,
    t: &TableName,
    column: &Ident,
    backfill: Option<&str>,
    // MySQL: the (type, default) of a column this plan adds, not in the catalog.
    added: Option<(&str, Option<&str>)>,
) -> Result<(), PlanningError> {
    let table_name = t.name.as_str();
    let live = r.catalog.column(t, column);
    let definition = match (live, added) {
        (Some(c), _) => Some(mysql_definition(
            &c.type_sql,
            Some(c),
            c.default.as_deref(),
            super::column_census(r, t, column).as_ref(),
        )),
        (None, Some((ty, default))) => Some(mysql_definition(ty, None, default, None)),
        (None, None) => None,
    };
    if r.dialect == Dialect::Mysql && definition.is_none() {
        return Err(needs_definition(r, t, column));
    }
    let ctx = context! {
        table => table_value(t),
        table_name,
        column,
        backfill,
        constraint => derived_name(&[table_name, column.as_str(), "not_null"]),
        trigger_insert => beside(t, &derived_name(&[table_name, column.as_str(), "not_null_ins"])),
        trigger_update => beside(t, &derived_name(&[table_name, column.as_str(), "not_null_upd"])),
        message => format!("{t}.{column} may not be NULL"),
        definition,
    };
    let sql = r.render(
        "set_not_null",
        &ctx,
        &[
            "backfill_set",
            "backfill_pending",
            "verify",
            "add_check",
            "drop_check",
            "validate_check",
            "set_not_null",
            "drop_not_null",
        ],
    )?;
    if backfill.is_some() {
        r.backfill(
            "backfill",
            format!("Fill NULL {column} of existing rows, in batches"),
            t,
            sql.get("backfill_set"),
            sql.get("backfill_pending"),
        );
    }
    r.verify(
        "verify_no_nulls",
        format!("No row of {t} where {column} is NULL"),
        sql.get("verify"),
        0,
    );
    match r.dialect {
        Dialect::Postgres => {
            let lock = r.lock(
                "ACCESS EXCLUSIVE",
                &[t],
                Blocks::ReadsAndWrites,
                LockDuration::Brief,
            );
            r.migration(
                "check_not_valid",
                format!(
                    "Add CHECK ({column} IS NOT NULL) NOT VALID: enforced for new writes, no scan"
                ),
                sql.get("add_check"),
                Some(sql.get("drop_check")),
                lock,
            );
            r.validate(
                "validate_check",
                "Validate the check: scans the table without blocking reads or writes",
                sql.get("validate_check"),
                t,
            );
            // Postgres 12 is the first to let a valid check spare SET NOT NULL its scan.
            let scans = r.server_below(12, 0).cloned();
            let lock = r.lock(
                "ACCESS EXCLUSIVE",
                &[t],
                Blocks::ReadsAndWrites,
                if scans.is_some() {
                    LockDuration::Scan
                } else {
                    LockDuration::Brief
                },
            );
            let how = match &scans {
                Some(v) => {
                    r.note(format!(
                        "{v} scans the whole of {t} for SET NOT NULL on {column} under ACCESS EXCLUSIVE (from Postgres 12 the valid check spares that scan): reads and writes of {t} wait for it"
                    ));
                    format!("SET NOT NULL on {column} (scans the table on {v}) and drop the check")
                }
                None => format!(
                    "SET NOT NULL on {column} (the valid check spares the scan) and drop the check"
                ),
            };
            r.migration(
                "set_not_null",
                how,
                sql.get("set_not_null"),
                Some(sql.get("drop_not_null")),
                lock,
            );
        }
        Dialect::Mysql => {
            let lock = r.lock(
                "online rebuild (ALGORITHM=INPLACE, LOCK=NONE); brief metadata locks at start and end",
                &[t],
                Blocks::Nothing,
                LockDuration::Scan,
            );
            r.note(format!(
                "MODIFY restates {column}'s type, character set, collation and default; anything else on the column (AUTO_INCREMENT, ON UPDATE, a comment, a generated expression) would be lost, so check the SQL"
            ));
            r.migration(
                "set_not_null",
                format!("MODIFY {column} NOT NULL online: rebuilds {t} in place without blocking reads or writes; fails if a NULL is left"),
                sql.get("set_not_null"),
                Some(sql.get("drop_not_null")),
                lock,
            );
        }
        Dialect::Sqlite => {
            let lock = r.lock("", &[t], Blocks::ReadsAndWrites, LockDuration::Brief);
            r.migration(
                "enforce_not_null",
                format!("Triggers that refuse a NULL {column} on insert and update (SQLite cannot add NOT NULL in place)"),
                sql.get("add_check"),
                Some(sql.get("drop_check")),
                lock,
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::dialect::Dialect;
    use crate::plan::recipes::testing::{plan, shape};

    #[test]
    fn app_first_then_lock_safe_constraint() {
        let p = plan(
            Dialect::Postgres,
            "  - set_not_null: { table: users, column: email, backfill: \"''\" }\n",
        );
        assert_eq!(
            shape(&p),
            vec![
                vec!["app:app_write_value"],
                vec![
                    "backfill:backfill",
                    "verify:verify_no_nulls",
                    "migration:check_not_valid",
                    "migration:validate_check",
                    "migration:set_not_null"
                ],
            ]
        );
    }

    #[test]
    fn sqlite_enforces_with_triggers() {
        let p = plan(
            Dialect::Sqlite,
            "  - set_not_null: { table: users, column: email }\n",
        );
        assert_eq!(
            shape(&p)[1],
            vec!["verify:verify_no_nulls", "migration:enforce_not_null"]
        );
    }
}
