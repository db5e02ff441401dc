//! `sql`: the escape hatch. Each entry is one deploy: its `up` runs before
//! the deploy's code ships (`app`, if given). An entry without `down` is
//! irreversible. phasegate cannot know what hand-written SQL locks; the plan
//! says so.

use crate::dialect::Dialect;
use crate::dialect::statements::mysql_commits_implicitly;
use crate::intent::SqlPhases;
use crate::plan::{Blocks, LockDuration, LockNote, PlanningError, Recipe};

pub(super) fn expand(r: &mut Recipe<'_>, i: &SqlPhases) -> Result<(), PlanningError> {
    for (n, phase) in i.phases.iter().enumerate() {
        if n > 0 {
            r.next_deploy();
        }
        let lock = LockNote {
            mode: "unknown (hand-written SQL)".into(),
            tables: Vec::new(),
            blocks: Blocks::ReadsAndWrites,
            duration: LockDuration::Scan,
        };
        let step = r.migration(
            &format!("sql_{}", n + 1),
            format!("Hand-written SQL, part {}", n + 1),
            phase.up.trim().to_string(),
            phase
                .down
                .as_ref()
                .map(|d| d.trim().to_string())
                .filter(|d| !d.is_empty()),
            lock,
        );
        if phase.transactional && r.dialect != Dialect::Mysql {
            for (what, text) in [("up", Some(&phase.up)), ("down", phase.down.as_ref())] {
                if let Some(statement) = text.and_then(|t| outside_a_transaction(t)) {
                    return Err(r.unsupported(format!(
                        "the `{what}` of part {} runs {statement}, which {} refuses inside a transaction block, and this part is `transactional` (the default): it would fail every time. Way forward: set `transactional: false` on this part (its statements then run one by one)",
                        n + 1,
                        r.dialect
                    )));
                }
            }
        }
        for (what, text) in [("up", Some(&phase.up)), ("down", phase.down.as_ref())] {
            if let Some(statement) = text.and_then(|t| transaction_control(r.dialect, t)) {
                return Err(r.unsupported(format!(
                    "the `{what}` of part {} runs `{statement}`, which ends or opens a transaction by hand: phasegate runs each step all-or-nothing and records it in the same transaction (or around it), so a COMMIT or ROLLBACK inside it would leave the log saying something that did not happen. Way forward: remove it: a part is already all-or-nothing, and with `transactional: false` each of its statements commits on its own",
                    n + 1
                )));
            }
        }
        // MySQL commits DDL by itself: such a step is recorded as started
        // and finished around it instead of sharing a transaction.
        let commits = r.dialect == Dialect::Mysql && mysql_commits_implicitly(&phase.up);
        let s = r.step(step);
        s.transactional = phase.transactional && !commits;
        s.reversible = s.rollback_sql.is_some();
        if let Some(app) = &phase.app {
            r.app(&format!("app_{}", n + 1), app.trim());
        }
    }
    Ok(())
}

/// The first statement of `sql` (as `dialect` splits it) that controls the
/// transaction: `BEGIN`, `START TRANSACTION`, `COMMIT`, `END`, `ROLLBACK`
/// (not `ROLLBACK TO` a savepoint), `ABORT`, `PREPARE TRANSACTION`,
/// `COMMIT`/`ROLLBACK PREPARED`, or MySQL's `SET autocommit` (which commits).
/// Words are read outside strings and comments.
fn transaction_control(dialect: Dialect, sql: &str) -> Option<String> {
    crate::dialect::statements::split(dialect, sql)
        .into_iter()
        .find(|statement| {
            let w = crate::catalog::words(statement);
            let word = |i: usize| w.get(i).map_or("", String::as_str);
            match word(0) {
                // MariaDB's anonymous block, `BEGIN NOT ATOMIC … END`, is no transaction.
                "begin" => dialect != Dialect::Mysql || !(word(1) == "not" && word(2) == "atomic"),
                "commit" | "end" | "abort" => true,
                "rollback" => word(1) != "to" && !(word(1) == "work" && word(2) == "to"),
                "start" | "prepare" => word(1) == "transaction",
                "set" => w.iter().any(|x| x == "autocommit"),
                _ => false,
            }
        })
        .map(|s| s.trim().chars().take(60).collect())
}

/// A statement of `sql` that Postgres or SQLite cannot run inside a
/// transaction block (`CREATE INDEX CONCURRENTLY`, `DROP INDEX
/// CONCURRENTLY`, `REINDEX … CONCURRENTLY`, `VACUUM`, `CREATE DATABASE`,
/// `ALTER SYSTEM`), found by words outside strings and comments.
fn outside_a_transaction(sql: &str) -> Option<&'static str> {
    let words = crate::catalog::words(sql);
    if words.iter().any(|w| w == "concurrently") {
        return Some("a CONCURRENTLY statement");
    }
    if words.first().is_some_and(|w| w == "vacuum") {
        return Some("VACUUM");
    }
    None
}

#[cfg(test)]
mod tests {
    use crate::dialect::Dialect;
    use crate::plan::recipes::testing::{plan, reversible, shape};

    #[test]
    fn transaction_control_is_found_outside_strings_and_comments() {
        use super::transaction_control as tc;
        for (d, sql) in [
            (
                Dialect::Postgres,
                "CREATE TABLE a (x int); COMMIT; SELECT 1",
            ),
            (Dialect::Postgres, "select 1; rollback"),
            (Dialect::Postgres, "END"),
            (Dialect::Mysql, "START TRANSACTION; UPDATE a SET x = 1"),
            (Dialect::Mysql, "SET autocommit = 1"),
            (Dialect::Sqlite, "BEGIN; CREATE TABLE a (x int)"),
        ] {
            assert!(tc(d, sql).is_some(), "{d}: {sql}");
        }
        for (d, sql) in [
            (Dialect::Postgres, "SELECT 'commit; rollback' -- commit"),
            (Dialect::Postgres, "SAVEPOINT s; ROLLBACK TO SAVEPOINT s"),
            (Dialect::Postgres, "DO $$ BEGIN PERFORM 1; END $$"),
            (
                Dialect::Sqlite,
                "CREATE TRIGGER t AFTER INSERT ON a BEGIN SELECT 1; END",
            ),
            (
                Dialect::Mysql,
                "CREATE TRIGGER t BEFORE INSERT ON a FOR EACH ROW BEGIN SET NEW.x = 1; END",
            ),
            (
                Dialect::Mysql,
                "BEGIN NOT ATOMIC DECLARE i int DEFAULT 0; WHILE i < 3 DO SET i = i + 1; END WHILE; END; SELECT 1",
            ),
            (
                Dialect::Mysql,
                "CREATE TABLE e2 (id int, end int); CREATE PROCEDURE p() BEGIN UPDATE e2 SET end = 0 WHERE id = 9; END",
            ),
        ] {
            assert_eq!(tc(d, sql), None, "{d}: {sql}");
        }
    }

    #[test]
    fn one_deploy_per_entry() {
        let p = plan(
            Dialect::Sqlite,
            "  - sql:\n      phases:\n        - { up: 'CREATE TABLE a (x int)', down: 'DROP TABLE a', app: 'use a' }\n        - { up: 'DROP TABLE b' }\n",
        );
        assert_eq!(
            shape(&p),
            vec![
                vec!["migration:sql_1", "app:app_1"],
                vec!["migration:sql_2"]
            ]
        );
        assert_eq!(reversible(&p), vec![true, false]);
    }

    #[test]
    fn a_concurrent_index_in_a_transactional_part_is_refused() {
        let text = "name: t\nchanges:\n  - sql:\n      phases:\n        - { up: 'CREATE INDEX CONCURRENTLY a_x ON a (x)' }\n";
        let e = crate::plan::recipes::testing::plan_with(
            Dialect::Postgres,
            &crate::catalog::Catalog::offline(),
            &text[text.find("  - sql").unwrap_or(0)..],
        );
        assert!(
            e.is_err_and(|e| e.to_string().contains("transactional: false")),
            "a CONCURRENTLY statement in a transactional part must be refused"
        );
        let ok = "  - sql:\n      phases:\n        - { up: \"SELECT 'concurrently'\", transactional: true }\n";
        assert_eq!(shape(&plan(Dialect::Postgres, ok)).len(), 1);
    }
}
