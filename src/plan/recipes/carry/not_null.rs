//! NOT NULL on the old column.
//!
//! Postgres: enforced on the new column after the backfill by the lock-safe
//! check recipe (CHECK NOT VALID, VALIDATE, SET NOT NULL, drop the check).
//! MySQL/MariaDB: moved by the contract's MODIFY (the template). SQLite:
//! cannot be added to an existing column, so it is noted; a required column
//! without a default is refused by the copy itself.

use super::{Carry, Cx};

pub(super) fn postgres(cx: &Cx<'_>, carry: &mut Carry) {
    carry.not_null = !cx.column.nullable;
}

pub(super) fn sqlite(cx: &Cx<'_>, carry: &mut Carry) {
    if !cx.column.nullable && cx.column.default.is_some() {
        carry.notes.push(format!(
            "SQLite cannot add NOT NULL to an existing column: {} accepts NULL, where {} did not",
            cx.new, cx.old
        ));
    }
}
