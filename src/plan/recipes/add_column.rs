//! `add_column`. Nullable: one phase. Required: one phase when the default is
//! stored in the catalog (non-volatile on Postgres 11+, constant on SQLite);
//! otherwise add it nullable, have new rows filled (by a default, or by the
//! application), backfill, and enforce NOT NULL the lock-safe way.
//! Serial types are planned in [`super::serial`], through this same path.

use minijinja::context;

use super::{mysql_at_least, serial, set_not_null, table_value};
use crate::dialect::Dialect;
use crate::intent::AddColumn;
use crate::name::TableName;
use crate::plan::{Blocks, LockDuration, PlanningError, Recipe};

pub(super) fn expand(r: &mut Recipe<'_>, i: &AddColumn) -> Result<(), PlanningError> {
    if i.ty.is_serial() {
        return serial::expand(r, i);
    }
    plan(r, i, None)
}

/// Plans `i`; `sequence` is the sequence a serial column's default draws
/// from (Postgres), made owned by the column when the default is set.
pub(super) fn plan(
    r: &mut Recipe<'_>,
    i: &AddColumn,
    sequence: Option<&TableName>,
) -> Result<(), PlanningError> {
    let (t, c) = (&i.table, &i.column);
    let default = i.default.as_ref().map(|d| d.as_str());
    // Before Postgres 11 every ADD COLUMN … DEFAULT rewrites the table.
    let rewrites = r
        .server_below(11, 0)
        .filter(|_| r.dialect == Dialect::Postgres)
        .cloned();
    // MySQL adds a column INSTANT from 8.0.12, MariaDB from 10.3.2; before
    // that, ADD COLUMN rebuilds the table (in place, writes go on).
    let instant_ddl = r.dialect == Dialect::Mysql && mysql_at_least(r, (8, 0, 12), (10, 3, 2));
    let instant = default
        .filter(|d| r.dialect.add_column_with_default_is_instant(d))
        .filter(|_| rewrites.is_none())
        .filter(|_| r.dialect != Dialect::Mysql || instant_ddl);
    if let (Some(v), Some(d)) = (&rewrites, default) {
        r.note(format!(
            "{v} rewrites the whole table for ADD COLUMN … DEFAULT (a catalog-only default needs Postgres 11): {c} is added without a default, DEFAULT {d} is set for new rows, and existing rows are filled in batches"
        ));
    }
    if let (Dialect::Sqlite, Some(d), Some(b)) = (r.dialect, instant, i.backfill.as_ref()) {
        return Err(r.unsupported(format!(
            "SQLite cannot give existing rows `{b}` while new rows get the default `{d}`: ADD COLUMN … DEFAULT fills existing rows with the default, and SQLite cannot set a default afterwards; drop one of the two"
        )));
    }
    // With a backfill, existing rows get the backfill value: the default is
    // set after the column exists (catalog only), so it applies to new rows only.
    let instant = instant.filter(|_| i.backfill.is_none());
    if let (Dialect::Sqlite, Some(d), None) = (
        r.dialect,
        default,
        default.filter(|d| r.dialect.add_column_with_default_is_instant(d)),
    ) {
        return Err(r.unsupported(format!(
            "SQLite cannot add a column whose default is not a constant (`{d}`); use a constant default, or none with `backfill`"
        )));
    }
    let one_phase_required = !i.nullable && instant.is_some() && i.backfill.is_none();
    // Existing rows get the backfill value, or a volatile default evaluated per row.
    let fill = i
        .backfill
        .as_ref()
        .map(|b| b.as_str())
        .or(default.filter(|_| instant.is_none()));
    let ctx = context! {
        fill,
        table => table_value(t),
        column => c,
        type => i.ty.written.as_str(),
        default => instant,
        later_default => default.filter(|_| instant.is_none()),
        not_null => one_phase_required,
        instant_ddl,
        sequence => sequence.map(table_value),
    };
    let sql = r.render(
        "add_column",
        &ctx,
        &[
            "add_column",
            "drop_column",
            "set_default",
            "drop_default",
            "backfill_set",
            "backfill_pending",
        ],
    )?;

    let lock = match r.dialect {
        Dialect::Mysql if !instant_ddl => r.lock(
            "online rebuild (ALGORITHM=INPLACE, LOCK=NONE); brief metadata locks",
            &[t],
            Blocks::Nothing,
            LockDuration::Scan,
        ),
        Dialect::Mysql => r.lock(
            "exclusive metadata lock (ALGORITHM=INSTANT, brief)",
            &[t],
            Blocks::ReadsAndWrites,
            LockDuration::Brief,
        ),
        _ => r.lock(
            "ACCESS EXCLUSIVE",
            &[t],
            Blocks::ReadsAndWrites,
            LockDuration::Brief,
        ),
    };
    let what = if sequence.is_some() {
        format!(
            "Add column {c} {} to {t} without a default: catalog only, no rewrite (nullable until NOT NULL is enforced below)",
            i.ty
        )
    } else if one_phase_required {
        format!(
            "Add column {c} {} NOT NULL DEFAULT {} (catalog only: existing rows read the default)",
            i.ty,
            instant.unwrap_or_default()
        )
    } else {
        format!(
            "Add column {c} {} to {t}, nullable{}",
            i.ty,
            instant
                .map(|d| format!(", DEFAULT {d}"))
                .unwrap_or_default()
        )
    };
    // SQLite before 3.35 has no DROP COLUMN to undo the step with.
    let no_drop = r
        .server_below(3, 35)
        .filter(|_| r.dialect == Dialect::Sqlite)
        .cloned();
    let add = r.migration(
        "add_column",
        what,
        sql.get("add_column"),
        no_drop.is_none().then(|| sql.get("drop_column")),
        lock,
    );
    r.step(add).table = Some(t.clone());
    if let Some(v) = no_drop {
        r.step(add).reversible = false;
        r.note(format!(
            "{v} has no DROP COLUMN (it came in SQLite 3.35): adding {c} cannot be rolled back"
        ));
    }
    r.effects.creates.push((t.clone(), c.clone(), add));
    if let Some(b) = &i.backfill {
        r.effects
            .exprs
            .push((t.clone(), b.as_str().to_string(), false));
    }

    if let (Some(d), None) = (default, instant) {
        // A volatile default in ADD COLUMN would rewrite the table, and any
        // default there would fill existing rows that a backfill should fill;
        // SET DEFAULT afterwards applies it to new rows only.
        let lock = r.lock(
            "ACCESS EXCLUSIVE",
            &[t],
            Blocks::ReadsAndWrites,
            LockDuration::Brief,
        );
        let owned = sequence
            .map(|s| format!(", and make sequence {s} owned by {c}"))
            .unwrap_or_default();
        r.migration(
            "set_default",
            format!(
                "Set DEFAULT {d} for new rows (existing rows are filled by the backfill){owned}"
            ),
            sql.get("set_default"),
            Some(sql.get("drop_default")),
            lock,
        );
    }
    if i.nullable || one_phase_required {
        if fill.is_some() {
            r.backfill(
                "backfill",
                format!("Fill {c} of existing rows, in batches"),
                t,
                sql.get("backfill_set"),
                sql.get("backfill_pending"),
            );
        }
        r.app("app_use", format!("New code may read and write {t}.{c}"));
        return Ok(());
    }
    if default.is_none() {
        r.app(
            "app_write_value",
            format!("Write {c} on every insert and update of {t} (rows written by the previous release hold NULL until the backfill)"),
        );
    }
    set_not_null::enforce(r, t, c, fill, Some((i.ty.written.as_str(), default)))?;
    if default.is_some() {
        r.app("app_use", format!("New code may read and write {t}.{c}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::dialect::Dialect;
    use crate::plan::recipes::testing::{plan, shape, sql_of};

    #[test]
    fn required_with_constant_default_is_one_phase() {
        for d in Dialect::ALL {
            let p = plan(
                d,
                "  - add_column: { table: users, column: active, type: boolean, nullable: false, default: 'true' }\n",
            );
            assert_eq!(
                shape(&p),
                vec![vec!["migration:add_column", "app:app_use"]],
                "{d}"
            );
            assert!(sql_of(&p, "add_column").contains("NOT NULL DEFAULT true"));
        }
    }

    #[test]
    fn required_without_default_needs_the_app_first() {
        let p = plan(
            Dialect::Postgres,
            "  - add_column: { table: users, column: email, type: text, nullable: false, backfill: \"'unknown'\" }\n",
        );
        assert_eq!(
            shape(&p)[0],
            vec!["migration:add_column", "app:app_write_value"]
        );
        assert_eq!(shape(&p)[1][0], "backfill:backfill");
        assert_eq!(shape(&p).len(), 2);
    }

    #[test]
    fn volatile_default_is_set_after_the_column_and_backfilled() {
        let p = plan(
            Dialect::Postgres,
            "  - add_column: { table: t, column: token, type: uuid, nullable: false, default: gen_random_uuid() }\n",
        );
        assert_eq!(shape(&p).len(), 1);
        assert!(!sql_of(&p, "add_column").contains("DEFAULT"));
        assert!(sql_of(&p, "set_default").contains("SET DEFAULT gen_random_uuid()"));
        assert!(sql_of(&p, "backfill").contains("\"token\" = gen_random_uuid()"));
    }

    #[test]
    fn a_backfill_fills_existing_rows_and_the_default_new_ones() {
        let p = plan(
            Dialect::Postgres,
            "  - add_column: { table: t, column: n, type: int, default: '0', backfill: '1' }\n",
        );
        assert!(
            !sql_of(&p, "add_column").contains("DEFAULT"),
            "{}",
            sql_of(&p, "add_column")
        );
        assert!(sql_of(&p, "set_default").contains("SET DEFAULT 0"));
        assert!(sql_of(&p, "backfill").contains("\"n\" = 1"));
    }

    #[test]
    fn sqlite_refuses_a_non_constant_default() {
        let text = "name: t\nchanges:\n  - add_column: { table: t, column: at, type: text, default: CURRENT_TIMESTAMP }\n";
        let file = crate::intent::parse_plan(text, "f", "t").map_err(|e| e.to_string());
        let templates = crate::dialect::templates::Templates::builtin(Dialect::Sqlite);
        let catalog = crate::catalog::Catalog::offline();
        let err = file.map(|f| {
            crate::plan::Planner::new(&templates, &catalog)
                .plan(&f)
                .map(|_| ())
                .map_err(|e| e.to_string())
        });
        assert!(
            matches!(err, Ok(Err(ref m)) if m.contains("not a constant")),
            "{err:?}"
        );
    }
}
