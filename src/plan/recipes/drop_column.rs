//! `drop_column`: the application stops using the column (after NOT NULL is
//! relaxed so its inserts succeed), and only in a later deploy, after the
//! soak, is the column dropped. Never in the release that stops using it.

use minijinja::context;

use super::partitioned::{self, ColumnChange};
use super::{carry, column_census, mysql_definition, table_value};
use crate::dialect::Dialect;
use crate::intent::DropColumn;
use crate::plan::{Blocks, LockDuration, PlanningError, Recipe};

pub(super) fn expand(r: &mut Recipe<'_>, i: &DropColumn) -> Result<(), PlanningError> {
    let (t, c) = (&i.table, &i.column);
    partitioned::check_column_change(r, t, c, ColumnChange::Drop)?;
    if r.dialect == Dialect::Sqlite {
        r.require(3, 35, "ALTER TABLE … DROP COLUMN")?;
    }
    let live = r.catalog.column(t, c);
    // Triggers, views, generated columns, policies … that use the column:
    // refused before anything runs, or noted (carry/review.rs).
    for note in carry::review_drop(r, t, c)? {
        r.note(note);
    }
    let census = column_census(r, t, c);
    let definition = live.map(|col| {
        mysql_definition(
            &col.type_sql,
            Some(col),
            col.default.as_deref(),
            census.as_ref(),
        )
    });
    // MySQL: the column's indexes, foreign keys and checks are dropped with
    // it, by name. Left to the server, a composite index would shrink to
    // its other columns (`UNIQUE (c, b)` becoming `UNIQUE (b)`, a different
    // constraint) on MySQL, and MariaDB refuses the DROP COLUMN.
    let (mut drop_indexes, mut drop_foreign_keys, mut drop_checks) = (vec![], vec![], vec![]);
    if let (Dialect::Mysql, Some(facts)) = (r.dialect, r.catalog.table(t)) {
        if facts.primary_key.contains(c) {
            return Err(r.unsupported(format!(
                "{t}.{c} is part of the primary key: dropping it would change the key of every row; do it with a `sql` change"
            )));
        }
        for index in facts.indexes.iter().filter(|ix| ix.uses(c)) {
            drop_indexes.push(index.name.as_str().to_string());
            if index.keys.len() > 1 {
                r.note(format!(
                    "index {} on {t} ({}) uses {c} and is dropped with it; if the other columns still need an index, add one with add_index before the drop",
                    index.name,
                    index
                        .keys
                        .iter()
                        .filter_map(|k| k.column.as_ref().map(|n| n.as_str().to_string()))
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
        }
        for fk in facts.foreign_keys.iter().filter(|f| f.columns.contains(c)) {
            if let Some(name) = &fk.name {
                drop_foreign_keys.push(name.as_str().to_string());
            }
        }
        for check in facts.checks.iter().filter(|k| k.columns.contains(c)) {
            if let Some(name) = &check.name {
                drop_checks.push(name.as_str().to_string());
            }
        }
        for fk in facts
            .referenced_by
            .iter()
            .filter(|f| f.referenced_columns.contains(c))
        {
            r.note(format!(
                "a foreign key of {} ({}) references {t}.{c}: the drop fails while it exists; drop that foreign key first",
                fk.table,
                super::cols_text(&fk.columns)
            ));
        }
    }
    let ctx = context! {
        table => table_value(t), column => c, definition,
        drop_indexes, drop_foreign_keys, drop_checks,
    };
    let sql = r.render(
        "drop_column",
        &ctx,
        &["relax_not_null", "restore_not_null", "drop_column"],
    )?;
    // Offline, relaxing is harmless when the column is nullable already.
    let required = live.is_none_or(|col| !col.nullable && col.default.is_none());
    if required {
        match r.dialect {
            Dialect::Postgres => {
                let lock = r.lock("ACCESS EXCLUSIVE", &[t], Blocks::ReadsAndWrites, LockDuration::Brief);
                // Known NOT NULL: rolling back restores it. Offline it may
                // have been nullable, so nothing is restored.
                let restore = live.is_some().then(|| sql.get("restore_not_null"));
                let i = r.migration(
                    "relax_not_null",
                    format!("Let {c} accept NULL, so inserts from code that no longer writes it succeed"),
                    sql.get("relax_not_null"),
                    restore,
                    lock,
                );
                r.step(i).table = Some(t.clone());
                if live.is_none() {
                    r.note(format!("{c} is made nullable in case it is NOT NULL; this fails if it is part of the primary key"));
                }
            }
            Dialect::Mysql if live.is_some() => {
                let lock = r.lock(
                    "online rebuild (ALGORITHM=INPLACE, LOCK=NONE); brief metadata locks",
                    &[t],
                    Blocks::Nothing,
                    LockDuration::Scan,
                );
                let i = r.migration(
                    "relax_not_null",
                    format!("MODIFY {c} NULL online, so inserts from code that no longer writes it succeed"),
                    sql.get("relax_not_null"),
                    Some(sql.get("restore_not_null")),
                    lock,
                );
                r.step(i).table = Some(t.clone());
            }
            Dialect::Mysql => r.note(format!(
                "planned offline: if {c} is NOT NULL without a default, code must keep writing it until it is dropped (plan against the database to have it made nullable first; MySQL's MODIFY needs its full definition)"
            )),
            Dialect::Sqlite => r.note(format!(
                "SQLite cannot drop NOT NULL in place: if {c} is NOT NULL without a default, code must keep writing it until it is dropped"
            )),
        }
    }
    r.app(
        "app_stop_using",
        format!(
            "Stop reading and writing {t}.{c} (remove it from every query, model and SELECT *)"
        ),
    );
    let lock = if r.dialect == Dialect::Mysql {
        r.lock(
            "INSTANT on MySQL 8.0.29+ / MariaDB 10.4+ (brief metadata lock), otherwise an online rebuild",
            &[t],
            Blocks::Nothing,
            LockDuration::Brief,
        )
    } else {
        r.lock(
            "ACCESS EXCLUSIVE",
            &[t],
            Blocks::ReadsAndWrites,
            LockDuration::Brief,
        )
    };
    let drop = r.migration(
        "drop_column",
        format!("Drop column {c} of {t}"),
        sql.get("drop_column"),
        None,
        lock,
    );
    let s = r.step(drop);
    s.reversible = false;
    s.table = Some(t.clone());
    r.effects.removes.push((t.clone(), c.clone(), drop));
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::dialect::Dialect;
    use crate::plan::recipes::testing::{plan, reversible, shape};

    #[test]
    fn drop_comes_a_deploy_after_the_code_stops_using_it() {
        let p = plan(
            Dialect::Postgres,
            "  - drop_column: { table: users, column: legacy }\n",
        );
        assert_eq!(
            shape(&p),
            vec![
                vec!["migration:relax_not_null", "app:app_stop_using"],
                vec!["migration:drop_column"]
            ]
        );
        assert_eq!(reversible(&p), vec![true, false]);
    }
}
