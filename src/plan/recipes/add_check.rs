//! `add_check`: the application writes only rows that pass the check; then
//! existing rows are verified, and the check is added NOT VALID and validated
//! in its own transaction. SQLite enforces it with triggers.
//!
//! MySQL/MariaDB have no NOT VALID: adding a CHECK (enforced from MySQL
//! 8.0.16; MariaDB 10.2+) validates every existing row, and is a table copy
//! (`ALGORITHM=COPY`) during which writes wait. So existing rows are verified
//! first, and the note says what the ALTER costs.

use minijinja::context;

use super::{beside, table_value};
use crate::dialect::Dialect;
use crate::intent::AddCheck;
use crate::plan::{Blocks, LockDuration, PlanningError, Recipe, derived_name};

pub(super) fn expand(r: &mut Recipe<'_>, i: &AddCheck) -> Result<(), PlanningError> {
    let t = &i.table;
    let ctx = context! {
        table => table_value(t),
        table_name => t.name.as_str(),
        constraint => &i.name,
        check => i.check.as_str(),
        trigger_insert => beside(t, &derived_name(&[i.name.as_str(), "ins"])),
        trigger_update => beside(t, &derived_name(&[i.name.as_str(), "upd"])),
        message => format!("{t}: check {} failed", i.name),
    };
    let sql = r.render(
        "add_check",
        &ctx,
        &["verify", "add_not_valid", "drop_constraint", "validate"],
    )?;
    r.effects
        .exprs
        .push((t.clone(), i.check.as_str().to_string(), true));
    r.app(
        "app_satisfy_check",
        format!(
            "Write only rows of {t} that satisfy CHECK ({}); fix existing rows that do not",
            i.check
        ),
    );
    r.verify(
        "verify_check",
        format!("No row of {t} fails CHECK ({})", i.check),
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
                "add_not_valid",
                format!(
                    "Add check {} NOT VALID: enforced for new writes, no scan",
                    i.name
                ),
                sql.get("add_not_valid"),
                Some(sql.get("drop_constraint")),
                lock,
            );
            r.validate(
                "validate",
                format!(
                    "Validate check {}: scans {t} without blocking reads or writes",
                    i.name
                ),
                sql.get("validate"),
                t,
            );
        }
        Dialect::Mysql => {
            r.require(8, 0, "CHECK constraints that are enforced (MySQL 8.0.16+)")?;
            let lock = r.lock(
                "table copy (ALGORITHM=COPY, LOCK=SHARED) under a metadata lock",
                &[t],
                Blocks::Writes,
                LockDuration::Scan,
            );
            r.note(format!(
                "MySQL/MariaDB have no NOT VALID: adding check {} copies {t} and checks every row, and writes to {t} wait for the whole copy (reads continue); run it at a quiet time",
                i.name
            ));
            r.migration(
                "add_check",
                format!(
                    "Add check {}: validates existing rows in a table copy (writes wait)",
                    i.name
                ),
                sql.get("add_not_valid"),
                Some(sql.get("drop_constraint")),
                lock,
            );
        }
        Dialect::Sqlite => {
            let lock = r.lock("", &[t], Blocks::ReadsAndWrites, LockDuration::Brief);
            r.migration(
                "enforce_check",
                format!("Triggers that refuse rows failing check {} (SQLite cannot add a constraint in place)", i.name),
                sql.get("add_not_valid"),
                Some(sql.get("drop_constraint")),
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
    fn app_first_then_not_valid_and_validate() {
        let p = plan(
            Dialect::Postgres,
            "  - add_check: { table: orders, name: amount_positive, check: amount > 0 }\n",
        );
        assert_eq!(
            shape(&p),
            vec![
                vec!["app:app_satisfy_check"],
                vec![
                    "verify:verify_check",
                    "migration:add_not_valid",
                    "migration:validate"
                ]
            ]
        );
    }
}
