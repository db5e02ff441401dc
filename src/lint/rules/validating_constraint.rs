//! `validating-constraint`: a constraint checked against every row while
//! a strong lock is held.
//!
//! Postgres: `ADD FOREIGN KEY` without `NOT VALID` takes SHARE ROW
//! EXCLUSIVE on both tables (13.3.1) and scans the table; `ADD CHECK`
//! without `NOT VALID` and `ALTER COLUMN … SET NOT NULL` take ACCESS
//! EXCLUSIVE and scan it (ALTER TABLE, "Notes": "scanning the table to
//! verify that existing rows meet the constraint"). `VALIDATE CONSTRAINT`
//! afterwards takes only SHARE UPDATE EXCLUSIVE. MySQL: adding a foreign
//! key with `foreign_key_checks` on, or a CHECK constraint, copies the
//! table (17.12.1, "Foreign key operations": ALGORITHM=COPY, concurrent
//! DML not permitted). SQLite cannot add a constraint to a table.

use sqlparser::ast::{AlterColumnOperation, AlterTableOperation, Statement, TableConstraint};

use super::{Cx, Hit, Rule, shown};
use crate::dialect::Dialect;

pub const RULE: Rule = Rule {
    id: "validating-constraint",
    summary: "a FOREIGN KEY or CHECK added without NOT VALID, or SET NOT NULL: every row checked under a strong lock",
    once_per_file: false,
    check,
};

fn check(cx: &Cx) -> Vec<Hit> {
    let Statement::AlterTable(a) = cx.statement else {
        return Vec::new();
    };
    let table = shown(&a.name);
    let mut hits = Vec::new();
    for op in &a.operations {
        match (op, cx.dialect) {
            (
                AlterTableOperation::AddConstraint {
                    constraint: c @ (TableConstraint::ForeignKey(_) | TableConstraint::Check(_)),
                    not_valid: false,
                },
                Dialect::Postgres,
            ) => {
                let fk = matches!(c, TableConstraint::ForeignKey(_));
                hits.push(Hit {
                    message: format!(
                        "adds a {} to {table} without NOT VALID",
                        if fk { "FOREIGN KEY" } else { "CHECK constraint" }
                    ),
                    lock: if fk {
                        "SHARE ROW EXCLUSIVE on the table and the referenced table while every row is checked: writes to both wait".to_string()
                    } else {
                        "ACCESS EXCLUSIVE on the table while every row is checked: reads and writes wait".to_string()
                    },
                    why: "the check reads the whole table while the lock is held, so the wait lasts as long as the scan".to_string(),
                    instead: format!(
                        "the `{}` intent: `ADD … NOT VALID` (brief), then `VALIDATE CONSTRAINT` in its own step (SHARE UPDATE EXCLUSIVE: reads and writes go on)",
                        if fk { "add_foreign_key" } else { "add_check" }
                    ),
                });
            }
            (
                AlterTableOperation::AddConstraint {
                    constraint: c @ (TableConstraint::ForeignKey(_) | TableConstraint::Check(_)),
                    ..
                },
                Dialect::Mysql,
            ) => hits.push(Hit {
                message: format!(
                    "adds a {} to {table}",
                    if matches!(c, TableConstraint::ForeignKey(_)) { "FOREIGN KEY" } else { "CHECK constraint" }
                ),
                lock: "ALGORITHM=COPY (with foreign_key_checks on): the table is copied and concurrent DML is not permitted".to_string(),
                why: "writes to the table wait for the whole copy".to_string(),
                instead: "the `add_foreign_key` / `add_check` intents, which phasegate runs in the form the server does in place where it has one".to_string(),
            }),
            (
                AlterTableOperation::AlterColumn {
                    column_name,
                    op: AlterColumnOperation::SetNotNull,
                },
                Dialect::Postgres,
            ) => hits.push(Hit {
                message: format!("sets {table}.{column_name} NOT NULL"),
                lock: "ACCESS EXCLUSIVE on the table while every row is checked (unless a valid CHECK (… IS NOT NULL) proves it, Postgres 12+)".to_string(),
                why: "reads and writes wait for the whole scan; and the release that is running may still write NULLs".to_string(),
                instead: "the `set_not_null` intent (`phasegate plan set-not-null TABLE.COL`): a NOT VALID check, VALIDATE, then SET NOT NULL without a scan".to_string(),
            }),
            _ => {}
        }
    }
    hits
}

#[cfg(test)]
mod tests {
    use super::super::testing::at;
    use crate::dialect::Dialect;

    const RULE: &str = "validating-constraint";

    #[test]
    fn not_valid_then_validate_is_the_safe_pattern() {
        let sql = "ALTER TABLE o ADD CONSTRAINT fk FOREIGN KEY (u) REFERENCES users (id) NOT VALID;\nALTER TABLE o VALIDATE CONSTRAINT fk;\nALTER TABLE o ADD CONSTRAINT c CHECK (n > 0);\nALTER TABLE o ALTER COLUMN n SET NOT NULL;\nALTER TABLE o ADD CONSTRAINT fk2 FOREIGN KEY (v) REFERENCES users (id);";
        assert_eq!(
            at(Dialect::Postgres, RULE, sql),
            vec![(3, 1), (4, 1), (5, 1)]
        );
    }

    #[test]
    fn mysql_copies_for_a_foreign_key() {
        let sql = "ALTER TABLE o ADD CONSTRAINT fk FOREIGN KEY (u) REFERENCES users (id);";
        assert_eq!(at(Dialect::Mysql, RULE, sql), vec![(1, 1)]);
    }
}
