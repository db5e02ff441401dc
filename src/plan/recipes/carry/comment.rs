//! The column's comment: carried to the new column at the contract
//! (Postgres `COMMENT ON COLUMN`; MySQL/MariaDB restate it in the contract's
//! `MODIFY`, and in every other `MODIFY` of the column, which would
//! otherwise clear it). SQLite has no comments.

use super::{Carry, Cx};

pub(super) fn carry(cx: &Cx<'_>, carry: &mut Carry) {
    carry.comment = cx.census.comment.clone();
}
