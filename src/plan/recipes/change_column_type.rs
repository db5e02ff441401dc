//! `change_column_type`: one catalog-only ALTER where the change is binary
//! coercible; otherwise a new column with casts both ways, like a rename.

use minijinja::context;

use super::copy_column::{self, Copy};
use super::partitioned::{self, ColumnChange};
use super::{column_census, mysql_bytes_per_char, mysql_definition, table_value};
use crate::dialect::Dialect;
use crate::intent::{ChangeColumnType, SyncMode};
use crate::name::Ident;
use crate::plan::{Blocks, LockDuration, PlanningError, Recipe};

pub(super) fn expand(r: &mut Recipe<'_>, i: &ChangeColumnType) -> Result<(), PlanningError> {
    // `using` and `reverse` are evaluated by the copy's steps until its contract.
    for e in [&i.using, &i.reverse].into_iter().flatten() {
        r.effects
            .exprs
            .push((i.table.clone(), e.as_str().to_string(), false));
    }
    let live = r.catalog.column(&i.table, &i.column).cloned();
    let coercible = live
        .as_ref()
        .and_then(|c| c.ty.as_ref())
        .is_some_and(|from| match r.dialect {
            Dialect::Mysql => Dialect::mysql_varchar_widening_in_place(
                from,
                &i.ty,
                mysql_bytes_per_char(live.as_ref().and_then(|c| c.charset.as_deref())),
            ),
            _ => r.dialect.is_binary_coercible(from, &i.ty),
        });
    let census = column_census(r, &i.table, &i.column);
    if coercible && i.using.is_none() {
        let from = live
            .as_ref()
            .map(|c| c.type_sql.clone())
            .unwrap_or_default();
        let ctx = context! {
            table => table_value(&i.table),
            column => &i.column,
            new_type => i.ty.written.as_str(),
            old_type => from.as_str(),
            new_definition => live.as_ref().map(|c| mysql_definition(i.ty.written.as_str(), Some(c), c.default.as_deref(), census.as_ref())),
            old_definition => live.as_ref().map(|c| mysql_definition(&c.type_sql, Some(c), c.default.as_deref(), census.as_ref())),
            not_null => live.as_ref().is_some_and(|c| !c.nullable),
        };
        let sql = r.render(
            "change_column_type",
            &ctx,
            &["alter_type", "alter_type_back"],
        )?;
        let lock = r.lock(
            if r.dialect == Dialect::Mysql {
                "exclusive metadata lock (ALGORITHM=INPLACE, LOCK=NONE; brief)"
            } else {
                "ACCESS EXCLUSIVE"
            },
            &[&i.table],
            if r.dialect == Dialect::Mysql {
                Blocks::Nothing
            } else {
                Blocks::ReadsAndWrites
            },
            LockDuration::Brief,
        );
        let how = if r.dialect == Dialect::Mysql {
            "a VARCHAR widened within the same length prefix: in place, no table copy"
        } else {
            "binary coercible: catalog only, no rewrite"
        };
        let step = r.migration(
            "alter_type",
            format!(
                "Change {}.{} from {from} to {} ({how})",
                i.table, i.column, i.ty
            ),
            sql.get("alter_type"),
            Some(sql.get("alter_type_back")),
            lock,
        );
        r.step(step).table = Some(i.table.clone());
        r.effects.uses.push((i.table.clone(), i.column.clone()));
        let cost = if r.dialect == Dialect::Mysql {
            "copies the table (writes wait)"
        } else {
            "scans the table"
        };
        r.note(format!(
            "rolling back narrows {} to {from} again, which {cost} and fails if longer values were written since",
            i.column
        ));
        return Ok(());
    }
    if live.is_none() {
        r.note(format!(
            "planned without the live schema: the type change takes the multi-phase path; plan against the database to use a one-step ALTER when {} → {} is binary coercible",
            i.column, i.ty
        ));
    }
    let default_new = Ident::new(format!("{}_new", i.column))
        .map_err(|e| r.unsupported(format!("cannot name the new column: {e}; set `new_column`")))?;
    let new = i.new_column.clone().unwrap_or(default_new);
    r.note(format!(
        "the new type lives in column {new}, which keeps that name after the contract; rename it with a later plan if you want the old name back"
    ));
    if let Some(d) = live
        .as_ref()
        .and_then(|c| c.default.as_deref())
        .filter(|d| {
            super::carry::default::for_new_type(r.dialect, d, i.ty.written.as_str()).is_none()
        })
    {
        r.note(format!(
            "the default of {} ({d}) is written for its old type and is not given to {new} ({}): give {new} a default with a `sql` change after the contract if inserts rely on it",
            i.column, i.ty
        ));
    }
    partitioned::check_column_change(r, &i.table, &i.column, ColumnChange::Copy { trigger: true })?;
    copy_column::expand(
        r,
        Copy {
            kind: "change_column_type",
            table: &i.table,
            old: &i.column,
            new: &new,
            new_type: Some(i.ty.written.clone()),
            cast: true,
            forward: i.using.as_ref().map(|e| e.as_str().to_string()),
            reverse: i.reverse.as_ref().map(|e| e.as_str().to_string()),
            // The default moves with the values (a serial key's `nextval`
            // above all): see carry/default.rs.
            old_default: live
                .as_ref()
                .and_then(|c| c.default.as_deref())
                .and_then(|d| {
                    super::carry::default::for_new_type(r.dialect, d, i.ty.written.as_str())
                }),
            move_default: live.is_none() && r.dialect == Dialect::Postgres,
            old_required: live.as_ref().map(|c| !c.nullable && c.default.is_none()),
            sync: SyncMode::Trigger,
        },
    )
}

#[cfg(test)]
mod tests {
    use crate::dialect::Dialect;
    use crate::plan::recipes::testing::{plan, shape, sql_of};

    #[test]
    fn offline_type_change_copies_with_casts() {
        let p = plan(
            Dialect::Postgres,
            "  - change_column_type: { table: orders, column: amount, type: bigint }\n",
        );
        assert_eq!(shape(&p).len(), 3);
        assert!(sql_of(&p, "backfill").contains(r#"CAST("amount" AS bigint)"#));
        assert!(sql_of(&p, "add_column").contains(r#"ADD COLUMN "amount_new" bigint"#));
    }

    #[test]
    fn using_expression_drives_the_copy() {
        let p = plan(
            Dialect::Sqlite,
            "  - change_column_type: { table: t, column: c, type: integer, using: \"c * 100\", reverse: \"c_cents / 100.0\", new_column: c_cents }\n",
        );
        assert!(sql_of(&p, "backfill").contains("c * 100"));
        assert!(sql_of(&p, "sync_trigger").contains("c_cents / 100.0"));
    }
}
