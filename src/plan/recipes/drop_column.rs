//! `drop_column`: the application stops using the column (after NOT NULL is
//! relaxed so its inserts succeed), and only in a later deploy, after the
//! soak, is the column dropped. Never in the release that stops using it.
//!
//! Rolling back the relaxation restores NOT NULL, which rows written by the
//! new code (without the column) would break: `down` says what they hold,
//! and the rollback fills them in batches first; without it, the rollback
//! stops and names the field.

use minijinja::context;

use super::partitioned::{self, ColumnChange};
use super::{carry, column_census, mysql_definition, table_value};
use crate::dialect::Dialect;
use crate::intent::DropColumn;
use crate::plan::{Backfill, Blocks, LockDuration, PlanningError, Recipe, RollbackFill};

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
        // A MariaDB column's own CHECK goes with it; DROP CONSTRAINT would fail.
        for check in facts
            .checks
            .iter()
            .filter(|k| k.columns.contains(c) && k.column.as_ref() != Some(c))
        {
            if let Some(name) = &check.name {
                drop_checks.push(name.as_str().to_string());
            }
        }
    }
    let down = i.down.as_ref().map(|d| d.as_str());
    if let Some(d) = down {
        r.effects.exprs.push((t.clone(), d.to_string(), false));
    }
    let ctx = context! {
        table => table_value(t), column => c, definition,
        drop_indexes, drop_foreign_keys, drop_checks, down,
    };
    let sql = r.render(
        "drop_column",
        &ctx,
        &[
            "relax_not_null",
            "restore_not_null",
            "drop_column",
            "count_pending",
            "fill_set",
            "fill_pending",
        ],
    )?;
    // Rolling back a relaxation that restores NOT NULL: rows written
    // without the column are filled from `down` first, or the rollback stops.
    let fill = RollbackFill {
        count: sql.get("count_pending"),
        backfill: down.map(|_| Backfill {
            table: t.clone(),
            set: sql.get("fill_set"),
            pending: sql.get("fill_pending"),
            // The batches walk the key the backfills of this table walk.
            key: match crate::plan::key::walk_key(r.dialect, r.catalog, t) {
                crate::plan::key::WalkKey::Known(cols) => Some(cols),
                _ => None,
            },
            synced: false,
            sync_triggers: Vec::new(),
        }),
        missing: format!(
            "they hold NULL in {c}, written by code that no longer writes it, and NOT NULL cannot be restored over them; add `down: <SQL expression over the row>` to the drop_column change of {t}.{c} to say what they hold, accept that edit (`phasegate accept-change --env ENV PLAN --reason \"…\"`), then run rollback again"
        ),
    };
    let mut restores = false;
    let on_rollback = match down {
        Some(d) => format!(
            "; rolling back fills rows written without it from `down` ({d}), in batches, then restores NOT NULL"
        ),
        None => "; rolling back restores NOT NULL, and stops if rows were written without it (`down` says what they hold)".to_string(),
    };
    // Offline, relaxing is harmless when the column is nullable already.
    let required = live.is_none_or(|col| !col.nullable && col.default.is_none());
    if required {
        match r.dialect {
            Dialect::Postgres => {
                let lock = r.lock("ACCESS EXCLUSIVE", &[t], Blocks::ReadsAndWrites, LockDuration::Brief);
                // Known NOT NULL: rolling back restores it. Offline it may
                // have been nullable, so nothing is restored.
                let restore = live.is_some().then(|| sql.get("restore_not_null"));
                restores = restore.is_some();
                let i = r.migration(
                    "relax_not_null",
                    format!(
                        "Let {c} accept NULL, so inserts from code that no longer writes it succeed{}",
                        if restore.is_some() { on_rollback.as_str() } else { "" }
                    ),
                    sql.get("relax_not_null"),
                    restore,
                    lock,
                );
                r.step(i).table = Some(t.clone());
                if restores {
                    r.step(i).rollback_fill = Some(fill.clone());
                }
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
                    format!("MODIFY {c} NULL online, so inserts from code that no longer writes it succeed{on_rollback}"),
                    sql.get("relax_not_null"),
                    Some(sql.get("restore_not_null")),
                    lock,
                );
                restores = true;
                let s = r.step(i);
                s.table = Some(t.clone());
                s.rollback_fill = Some(fill.clone());
            }
            Dialect::Mysql => r.note(format!(
                "planned offline: if {c} is NOT NULL without a default, code must keep writing it until it is dropped (plan against the database to have it made nullable first; MySQL's MODIFY needs its full definition)"
            )),
            Dialect::Sqlite if live.is_some() => {
                return Err(r.unsupported(format!(
                    "{t}.{c} is NOT NULL without a default, and SQLite cannot relax that in place: once the application stops writing {c}, every insert fails until the drop. Way forward: rebuild {t} without {c} (or without its NOT NULL) with a `sql` change"
                )));
            }
            Dialect::Sqlite => r.note(format!(
                "SQLite cannot drop NOT NULL in place: if {c} is NOT NULL without a default, code must keep writing it until it is dropped"
            )),
        }
    }
    if let (Some(d), false) = (down, restores) {
        r.note(match r.dialect {
            Dialect::Sqlite => format!(
                "SQLite keeps {c} as it is until the drop (it cannot relax NOT NULL in place), so rolling back restores nothing and `down` ({d}) is not used"
            ),
            _ if live.is_some() => format!(
                "{c} is nullable or has a default, so nothing is relaxed: rolling back restores nothing, and `down` ({d}) is not used"
            ),
            _ => format!(
                "planned offline: whether {c} is NOT NULL is unknown, so this plan's rollback restores nothing and `down` ({d}) is not used; planned against the database (as the environment commands do), rolling back fills rows written without {c} from it before restoring NOT NULL"
            ),
        });
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
    use crate::catalog::{Catalog, ColumnFacts, TableFacts};
    use crate::dialect::Dialect;
    use crate::name::{Ident, SqlType, TableName};
    use crate::output::{Format, render};
    use crate::plan::recipes::testing::{plan, plan_with, reversible, shape};

    /// `users.legacy text NOT NULL`, as the live schema says.
    fn live() -> Catalog {
        let mut c = Catalog::offline();
        let col = |name: &str, nullable: bool| ColumnFacts {
            name: Ident::new(name).unwrap_or_else(|e| panic!("{e}")),
            type_sql: "text".into(),
            ty: SqlType::parse("text").ok(),
            nullable,
            default: None,
            charset: None,
            collation: None,
        };
        let facts = TableFacts {
            columns: vec![col("name", true), col("legacy", false)],
            ..TableFacts::default()
        };
        c.insert(
            TableName::parse("users").unwrap_or_else(|e| panic!("{e}")),
            facts,
        );
        c
    }

    #[test]
    fn rolling_back_the_relaxation_fills_rows_from_down() {
        let with = "  - drop_column: { table: users, column: legacy, down: \"'was ' || name\" }\n";
        let without = "  - drop_column: { table: users, column: legacy }\n";
        for d in [Dialect::Postgres, Dialect::Mysql] {
            let p = plan_with(d, &live(), with).unwrap_or_else(|e| panic!("{e}"));
            let relax = &p.steps[0];
            assert_eq!(relax.id, "1.relax_not_null");
            let fill = relax
                .rollback_fill
                .as_ref()
                .unwrap_or_else(|| panic!("{d}"));
            let b = fill.backfill.as_ref().unwrap_or_else(|| panic!("{d}"));
            let q = |s: &str| d.quote_ident(s);
            assert_eq!(b.set, format!("{} = 'was ' || name", q("legacy")), "{d}");
            assert_eq!(b.pending, format!("{} IS NULL", q("legacy")), "{d}");
            assert!(fill.count.contains("count(*)"), "{d}");
            assert!(
                relax
                    .description
                    .contains("fills rows written without it from `down`")
            );
            let p = plan_with(d, &live(), without).unwrap_or_else(|e| panic!("{e}"));
            let fill = p.steps[0]
                .rollback_fill
                .as_ref()
                .unwrap_or_else(|| panic!("{d}"));
            assert!(fill.backfill.is_none());
            assert!(fill.missing.contains("add `down:"), "{}", fill.missing);
        }
        // The JSON and the Markdown runbook say what the rollback does.
        let p = plan_with(Dialect::Postgres, &live(), with).unwrap_or_else(|e| panic!("{e}"));
        let json = render(&p, Format::Json);
        assert!(json.contains("\"rollback_fill\""), "{json}");
        let md = render(&p, Format::Markdown);
        assert!(
            md.contains("UPDATE \"users\" SET \"legacy\" = 'was ' || name WHERE \"legacy\" IS NULL;\nBEGIN;\nSET LOCAL lock_timeout = '2000ms';\nALTER TABLE \"users\" ALTER COLUMN \"legacy\" SET NOT NULL;"),
            "{md}"
        );
        let p = plan_with(Dialect::Postgres, &live(), without).unwrap_or_else(|e| panic!("{e}"));
        assert!(render(&p, Format::Markdown).contains("-- stops if `SELECT count(*)"));
        // Offline, and on SQLite, nothing is restored: `down` is unused, and a note says so.
        for d in [Dialect::Postgres, Dialect::Sqlite] {
            let p = plan(d, with);
            assert!(p.steps.iter().all(|s| s.rollback_fill.is_none()), "{d}");
            assert!(p.notes.iter().any(|n| n.text.contains("`down`")), "{d}");
        }
    }

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
