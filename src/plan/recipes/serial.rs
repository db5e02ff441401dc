//! `add_column` of a serial type (`serial`, `bigserial`, `smallserial`,
//! `serial2/4/8`): an integer column numbered from a sequence, NOT NULL.
//!
//! Postgres: `ADD COLUMN … bigserial` fills every existing row from the
//! sequence (a volatile default), so it rewrites the table under ACCESS
//! EXCLUSIVE. The column is planned as what it is instead, the lock-safe way
//! `add_column` plans any volatile default: the sequence is created, the
//! column added without a default (catalog only), the default
//! `nextval(sequence)` set for new rows (the sequence owned by the column),
//! existing rows numbered in batches, and NOT NULL enforced through a
//! validated check — one deploy, old code's inserts keep working throughout.
//!
//! MySQL/MariaDB: AUTO_INCREMENT (what `SERIAL` is: `BIGINT UNSIGNED NOT
//! NULL AUTO_INCREMENT UNIQUE`) cannot be added in place; the table is copied
//! while writes wait, and the plan says so. SQLite has no sequences: refused.

use minijinja::context;

use super::{add_column, table_value};
use crate::dialect::Dialect;
use crate::intent::AddColumn;
use crate::name::{Ident, SqlExpr, SqlType, TableName};
use crate::plan::{Blocks, LockDuration, PlanningError, Recipe, derived_name};

/// The integer type a serial type stands for in `dialect`.
fn integer_type(dialect: Dialect, serial: &str) -> &'static str {
    match (dialect, serial) {
        (_, "smallserial" | "serial2") => "smallint",
        (Dialect::Mysql, "serial") => "bigint unsigned",
        (_, "serial" | "serial4") => "integer",
        _ => "bigint",
    }
}

/// The `add_column` template's context for the serial blocks (the other
/// blocks render too, with nothing to add).
fn context(t: &TableName, c: &Ident, int: &str, sequence: Option<&TableName>) -> minijinja::Value {
    context! {
        table => table_value(t), column => c, type => int,
        sequence => sequence.map(table_value),
        fill => None::<&str>, default => None::<&str>, later_default => None::<&str>,
        not_null => true, instant_ddl => false,
    }
}

pub(super) fn expand(r: &mut Recipe<'_>, i: &AddColumn) -> Result<(), PlanningError> {
    let (t, c) = (&i.table, &i.column);
    let int = integer_type(r.dialect, &i.ty.base);
    let ty = SqlType::parse(int).map_err(|e| r.unsupported(e.to_string()))?;
    if i.nullable {
        r.note(format!(
            "{} is NOT NULL whatever `nullable` says: every row of {t} gets a number",
            i.ty
        ));
    }
    match r.dialect {
        Dialect::Sqlite => Err(r.unsupported(format!(
            "SQLite has no sequences to number {t}.{c} from: a column numbers itself only as the INTEGER PRIMARY KEY, which ALTER TABLE cannot add. Add `type: integer` with `backfill: rowid` for existing rows and have the application number new rows, or rebuild the table with a `sql` change"
        ))),
        Dialect::Mysql => {
            if let Some(b) = &i.backfill {
                return Err(r.unsupported(format!(
                    "MySQL numbers existing rows itself when it adds an AUTO_INCREMENT column, so `backfill` ({b}) cannot be applied; remove it"
                )));
            }
            let sql = r.render(
                "add_column",
                &context(t, c, int, None),
                &["add_serial", "drop_column"],
            )?;
            let lock = r.lock(
                "table copy (ALGORITHM=COPY, LOCK=SHARED): reads go on, writes wait",
                &[t],
                Blocks::Writes,
                LockDuration::Scan,
            );
            let add = r.migration(
                "add_column",
                format!(
                    "Add column {c} {int} NOT NULL AUTO_INCREMENT UNIQUE to {t}: AUTO_INCREMENT cannot be added in place, so the whole table is copied (existing rows numbered) while writes wait"
                ),
                sql.get("add_serial"),
                Some(sql.get("drop_column")),
                lock,
            );
            r.step(add).table = Some(t.clone());
            r.effects.creates.push((t.clone(), c.clone(), add));
            // The census reads AUTO_INCREMENT as identity (catalog/census.rs).
            let existing = r.catalog.table(t).and_then(|f| {
                f.census
                    .columns
                    .iter()
                    .find(|col| col.identity.is_some())
                    .map(|col| col.name.clone())
            });
            match (existing, r.catalog.table(t).is_some()) {
                (Some(other), _) => {
                    return Err(r.unsupported(format!(
                        "{t}.{other} is already AUTO_INCREMENT, and MySQL allows one AUTO_INCREMENT column per table: adding {c} would fail after the table copy began. Way forward: add {c} as a plain integer column with `backfill` (e.g. `backfill: {other}`) and have the application number new rows"
                    )));
                }
                (None, true) => {}
                (None, false) => r.note(format!(
                    "MySQL allows one AUTO_INCREMENT column per table, and it must be a key: adding {c} fails if {t} already has one (usually its primary key); plan against the database to have that checked now"
                )),
            }
            r.app("app_use", format!("New code may read {t}.{c}"));
            Ok(())
        }
        Dialect::Postgres => {
            r.require(10, 0, "CREATE SEQUENCE … AS (a sequence of the column's integer type)")?;
            let table_name = t.name.as_str();
            let sequence = t.sibling(derived_name(&[table_name, c.as_str(), "seq"]));
            let sql = r.render(
                "add_column",
                &context(t, c, int, Some(&sequence)),
                &["create_sequence", "drop_sequence"],
            )?;
            let lock = r.lock(
                "none on the table (a new sequence)",
                &[],
                Blocks::Nothing,
                LockDuration::Brief,
            );
            r.migration(
                "create_sequence",
                format!("Create sequence {sequence} ({int}) to number {t}.{c}"),
                sql.get("create_sequence"),
                Some(sql.get("drop_sequence")),
                lock,
            );
            // nextval takes the sequence's name as text: the quoted name, quoted as a literal.
            let d = r.dialect;
            let next = SqlExpr::new(format!(
                "nextval({})",
                d.quote_literal(&d.quote_table(&sequence))
            ))
            .map_err(|e| r.unsupported(e.to_string()))?;
            r.note(format!(
                "{} is {int} NOT NULL DEFAULT nextval('{sequence}'). In one ADD COLUMN, Postgres would number every existing row under ACCESS EXCLUSIVE, rewriting {t}; instead the column is added without a default, the default is set for new rows, existing rows are numbered in batches{}, and NOT NULL is enforced through a validated check",
                i.ty,
                if i.backfill.is_some() {
                    " (from `backfill`; the sequence still starts at 1, so new rows' numbers may repeat backfilled ones unless a `sql` change moves it with setval)"
                } else {
                    ""
                }
            ));
            let column = AddColumn {
                table: t.clone(),
                column: c.clone(),
                ty,
                nullable: false,
                default: Some(next),
                backfill: i.backfill.clone(),
            };
            add_column::plan(r, &column, Some(&sequence))
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::catalog::{Catalog, ServerVersion};
    use crate::dialect::Dialect;
    use crate::plan::recipes::testing::{plan, plan_with, reversible, shape, sql_of};
    use crate::plan::{Blocks, LockDuration};

    const BIGSERIAL: &str = "  - add_column: { table: items, column: seq_no, type: bigserial }\n";

    #[test]
    fn postgres_numbers_existing_rows_without_a_rewrite() {
        let p = plan(Dialect::Postgres, BIGSERIAL);
        // The sequence first, then exactly the path of a volatile default.
        let volatile = plan(
            Dialect::Postgres,
            "  - add_column: { table: items, column: seq_no, type: bigint, nullable: false, default: random() }\n",
        );
        let (shape, volatile) = (shape(&p), shape(&volatile));
        assert_eq!(shape.len(), 1);
        assert_eq!(shape[0][0], "migration:create_sequence");
        assert_eq!(shape[0][1..], volatile[0][..]);
        assert!(shape[0].contains(&"migration:set_not_null".to_string()));
        assert_eq!(reversible(&p), vec![true]);
        assert_eq!(
            sql_of(&p, "create_sequence"),
            "CREATE SEQUENCE \"items_seq_no_seq\" AS bigint;"
        );
        assert_eq!(
            sql_of(&p, "add_column"),
            "ALTER TABLE \"items\" ADD COLUMN \"seq_no\" bigint;"
        );
        let set = sql_of(&p, "set_default");
        assert!(
            set.contains("ALTER SEQUENCE \"items_seq_no_seq\" OWNED BY \"items\".\"seq_no\";"),
            "{set}"
        );
        assert!(
            set.contains("SET DEFAULT nextval('\"items_seq_no_seq\"');"),
            "{set}"
        );
        assert!(sql_of(&p, "backfill").contains("\"seq_no\" = nextval('\"items_seq_no_seq\"')"));
        // Every step holds its lock briefly or not at all: no rewrite.
        for s in &p.steps {
            if let Some(l) = &s.lock {
                assert!(
                    l.duration != LockDuration::Scan || l.blocks == Blocks::Nothing,
                    "{}: {l:?}",
                    s.id
                );
            }
        }
        let add = p.steps.iter().find(|s| s.id == "1.add_column");
        assert!(add.is_some_and(|s| s.description.contains("no rewrite")));
        assert!(p.notes.iter().any(|n| n.text.contains("NOT NULL whatever")));
    }

    #[test]
    fn every_serial_alias_maps_to_its_integer_type() {
        for (ty, int) in [
            ("serial", "integer"),
            ("serial4", "integer"),
            ("smallserial", "smallint"),
            ("serial2", "smallint"),
            ("bigserial", "bigint"),
            ("SERIAL8", "bigint"),
        ] {
            let p = plan(
                Dialect::Postgres,
                &format!(
                    "  - add_column: {{ table: s.items, column: n, type: {ty}, nullable: false }}\n"
                ),
            );
            assert_eq!(
                sql_of(&p, "create_sequence"),
                format!("CREATE SEQUENCE \"s\".\"items_n_seq\" AS {int};")
            );
        }
    }

    #[test]
    fn a_serial_with_a_default_is_refused() {
        let text = "name: t\nchanges:\n  - add_column: { table: t, column: n, type: serial, default: '1' }\n";
        let e = crate::intent::parse_plan(text, "f", "t").map(|_| ());
        assert!(
            e.as_ref()
                .is_err_and(|e| e.to_string().contains("numbers rows from its own sequence")),
            "{e:?}"
        );
    }

    #[test]
    fn postgres_9_cannot_type_the_sequence() {
        let old = Catalog::offline().with_server(ServerVersion::postgres(90_600));
        let e = plan_with(Dialect::Postgres, &old, BIGSERIAL);
        assert!(e.is_err_and(|e| e.to_string().contains("from 10.0 on")));
    }

    #[test]
    fn mysql_copies_the_table_and_says_so() {
        let p = plan(
            Dialect::Mysql,
            "  - add_column: { table: items, column: seq_no, type: serial }\n",
        );
        assert_eq!(shape(&p), vec![vec!["migration:add_column", "app:app_use"]]);
        assert_eq!(
            sql_of(&p, "add_column"),
            "ALTER TABLE `items` ADD COLUMN /*M! IF NOT EXISTS */ `seq_no` bigint unsigned NOT NULL AUTO_INCREMENT UNIQUE, ALGORITHM=COPY, LOCK=SHARED;"
        );
        let lock = p.steps[0].lock.as_ref();
        assert_eq!(lock.map(|l| l.blocks), Some(Blocks::Writes));
        assert_eq!(lock.map(|l| l.duration), Some(LockDuration::Scan));
        assert!(p.steps[0].description.contains("whole table is copied"));
        assert!(
            p.notes
                .iter()
                .any(|n| n.text.contains("one AUTO_INCREMENT column"))
        );
        let p = plan(
            Dialect::Mysql,
            "  - add_column: { table: items, column: n, type: bigserial }\n",
        );
        assert!(sql_of(&p, "add_column").contains("`n` bigint NOT NULL AUTO_INCREMENT"));
    }

    #[test]
    fn sqlite_refuses_with_the_way_forward() {
        let e = plan_with(Dialect::Sqlite, &Catalog::offline(), BIGSERIAL);
        assert!(e.is_err_and(|e| {
            let m = e.to_string();
            m.contains("SQLite has no sequences") && m.contains("backfill: rowid")
        }));
    }
}
