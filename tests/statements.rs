//! Steps sent statement by statement, and the database's errors as the user
//! sees them.
//!
//! Postgres runs a text of several statements as one implicit transaction,
//! where `CREATE INDEX CONCURRENTLY` refuses to run: a `sql` change with
//! `transactional: false` (its up, and its down run by rollback) is sent one
//! statement at a time, with the lock_timeout and retries of every step, and
//! a failure says which statements ran. A database error keeps Postgres'
//! DETAIL, HINT, object and SQLSTATE (MySQL's number), and never the line of
//! the server's C source that sqlx appends.

mod common;
mod executor_support;

use std::process::Output;

use common::{TestDb, TestResult, fail, with_mysql, with_postgres, with_sqlite};
use executor_support::{ENV, Project};
use phasegate::execute::{RunError, Workspace};
use phasegate::tracker::SystemClock;

const PLAN: &str = "statements";
const ROWS: u32 = 5000;

fn phasegate(project: &Project, args: &[&str]) -> TestResult<Output> {
    project.run(args)
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Runs `phasegate apply` on `plan`, which must fail with exit status 2,
/// and returns what it printed.
fn apply_fails(project: &Project, plan: &str) -> TestResult<String> {
    let out = phasegate(project, &["apply", "--env", ENV, plan])?;
    let shown = text(&out);
    println!("{shown}");
    if out.status.code() != Some(2) {
        return Err(fail(format!(
            "apply exited {:?}:\n{shown}",
            out.status.code()
        )));
    }
    Ok(shown)
}

/// `shown` says every one of `needles`, and not the server's source line.
fn says_all(shown: &str, needles: &[&str]) -> TestResult {
    for needle in needles {
        if !shown.contains(needle) {
            return Err(fail(format!("the error does not say {needle:?}:\n{shown}")));
        }
    }
    if shown.contains(" at line ") {
        return Err(fail(format!(
            "the error shows the server's source line:\n{shown}"
        )));
    }
    Ok(())
}

/// A plan of one `sql` change: `up`, `down` and `transactional` as given,
/// each SQL text a YAML block scalar.
fn sql_plan(up: &str, down: Option<&str>, transactional: bool) -> String {
    let block = |s: &str| {
        s.lines()
            .map(|l| format!("            {l}"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let mut plan = format!(
        "name: {PLAN}\nchanges:\n  - sql:\n      phases:\n        - transactional: {transactional}\n          up: |\n{}\n",
        block(up)
    );
    if let Some(down) = down {
        plan.push_str(&format!("          down: |\n{}\n", block(down)));
    }
    plan
}

/// A table of [`ROWS`] rows with two indexable columns.
async fn items(db: &TestDb) -> TestResult {
    db.exec("CREATE TABLE items (id bigint PRIMARY KEY, a int NOT NULL, b text NOT NULL)")
        .await?;
    let label = db.pick3("'item ' || i", "'item ' || i", "CONCAT('item ', i)");
    db.exec(&format!(
        "INSERT INTO items (id, a, b) SELECT i, i % 97, {label} FROM {}",
        executor_support::series(db, ROWS)
    ))
    .await?;
    Ok(())
}

const TWO_INDEXES_UP: &str = "-- both indexes; built without blocking writes
CREATE INDEX CONCURRENTLY items_a_idx ON items (a);
/* the second; /* a nested; comment */ still the comment */
CREATE INDEX CONCURRENTLY items_b_idx ON items (b);
CREATE FUNCTION items_label(i items) RETURNS text LANGUAGE plpgsql AS $body$
BEGIN
  RETURN i.b || '; ' || E'it\\'s;' || $$;$$; -- a comment; inside the body
END
$body$;";

const TWO_INDEXES_DOWN: &str = "DROP FUNCTION items_label(items);
DROP INDEX CONCURRENTLY items_b_idx;
DROP INDEX CONCURRENTLY items_a_idx;";

#[tokio::test]
async fn postgres_concurrent_indexes_apply_and_roll_back_statement_by_statement() {
    with_postgres(|db| async move {
        items(&db).await?;
        let plan = sql_plan(TWO_INDEXES_UP, Some(TWO_INDEXES_DOWN), false);
        let project = Project::new(&db, &["lock_timeout: 2s"], PLAN, &plan)?;
        let clock = SystemClock;
        let ws = Workspace::new(&project.config, &clock, "statements");

        // --dry-run shows each statement sent alone with its lock_timeout, and runs nothing.
        let dry = ws.apply(ENV, PLAN, true).await?.dry_run.unwrap_or_default();
        let sets = dry
            .iter()
            .filter(|l| l.as_str() == "SET lock_timeout = '2000ms';")
            .count();
        let first = dry
            .iter()
            .position(|l| l == "CREATE INDEX CONCURRENTLY items_a_idx ON items (a);");
        let second = dry
            .iter()
            .position(|l| l == "CREATE INDEX CONCURRENTLY items_b_idx ON items (b);");
        if sets != 3 || first.is_none() || second.is_none() || first > second {
            return Err(fail(format!("dry run: {dry:#?}")));
        }
        if db.index_state("items_a_idx").await?.is_some() {
            return Err(fail("the dry run built an index"));
        }

        let applied = ws.apply(ENV, PLAN, false).await?;
        if applied.ran != ["1.sql_1"] {
            return Err(fail(format!("apply ran {:?}", applied.ran)));
        }
        for ix in ["items_a_idx", "items_b_idx"] {
            if db.index_state(ix).await? != Some(true) {
                return Err(fail(format!("{ix} is not a valid index after apply")));
            }
        }
        // The dollar-quoted body kept its semicolons and its comment.
        let label = db
            .text("SELECT items_label(items) FROM items WHERE id = 7")
            .await?;
        if label.as_deref() != Some("item 7; it's;;") {
            return Err(fail(format!("items_label returned {label:?}")));
        }
        // The indexes serve queries over every row.
        if db.scalar("SELECT count(*) FROM items WHERE a = 7").await? != i64::from(ROWS / 97 + 1) {
            return Err(fail("the rows with a = 7 are not all there"));
        }

        // The down runs statement by statement too (DROP INDEX CONCURRENTLY
        // cannot run in a transaction block either).
        assert_eq!(ws.rollback(ENV, PLAN, false).await?, 1);
        for ix in ["items_a_idx", "items_b_idx"] {
            if db.index_state(ix).await?.is_some() {
                return Err(fail(format!("{ix} is still there after rollback")));
            }
        }
        if db
            .scalar("SELECT count(*) FROM pg_proc WHERE proname = 'items_label'")
            .await?
            != 0
        {
            return Err(fail("items_label is still there after rollback"));
        }
        if db.scalar("SELECT count(*) FROM items").await? != i64::from(ROWS) {
            return Err(fail("rows were lost"));
        }
        // Applied again after the rollback, it builds both again.
        ws.apply(ENV, PLAN, false).await?;
        if db.index_state("items_b_idx").await? != Some(true) {
            return Err(fail("items_b_idx was not built again"));
        }
        Ok(())
    })
    .await;
}

/// `up` of three statements whose second fails: the step stops there, the
/// error says the first ran and committed and which one failed, with the
/// database's own words, and the first's effect is there.
async fn second_of_three_fails(
    db: TestDb,
    up: &str,
    first: &str,
    third: &str,
    error: &str,
) -> TestResult {
    items(&db).await?;
    let project = Project::new(&db, &[], PLAN, &sql_plan(up, None, false))?;
    let shown = apply_fails(&project, PLAN)?;
    says_all(
        &shown,
        &[
            "phase 1, step 1.sql_1 failed",
            "statement 1 of 3 ran and committed",
            "statement 2 of 3 failed",
            error,
        ],
    )?;
    if db.index_state(first).await? != Some(true) {
        return Err(fail(format!(
            "{first}, from statement 1, is not there:\n{shown}"
        )));
    }
    if db.index_state(third).await?.is_some() {
        return Err(fail(format!(
            "{third}, after the failing statement, was built:\n{shown}"
        )));
    }
    // The event log holds the same account.
    let detail = db
        .text("SELECT detail FROM phasegate_events WHERE kind = 'step_failed'")
        .await?
        .unwrap_or_default();
    if !detail.contains("statement 2 of 3 failed") || !detail.contains(error) {
        return Err(fail(format!("the step_failed event says {detail:?}")));
    }
    Ok(())
}

#[tokio::test]
async fn postgres_a_step_failing_part_way_says_which_statements_ran() {
    with_postgres(|db| async move {
        second_of_three_fails(
            db,
            "CREATE INDEX CONCURRENTLY items_a_idx ON items (a);\n\
             CREATE INDEX CONCURRENTLY items_c_idx ON items (c);\n\
             CREATE INDEX CONCURRENTLY items_b_idx ON items (b);",
            "items_a_idx",
            "items_b_idx",
            "column \"c\" does not exist (SQLSTATE 42703)",
        )
        .await
    })
    .await;
}

#[tokio::test]
async fn mysql_a_step_failing_part_way_says_which_statements_ran_with_its_error_number() {
    with_mysql(|db| async move {
        second_of_three_fails(
            db,
            "CREATE INDEX items_a_idx ON items (a);\n\
             CREATE INDEX items_c_idx ON items (c);\n\
             CREATE INDEX items_b_idx ON items (b(20));",
            "items_a_idx",
            "items_b_idx",
            "(MySQL error 1072, SQLSTATE 42000)",
        )
        .await
    })
    .await;
}

#[tokio::test]
async fn postgres_a_view_dependency_shows_detail_hint_object_and_sqlstate() {
    with_postgres(|db| async move {
        items(&db).await?;
        db.exec("CREATE VIEW item_labels AS SELECT id, b FROM items").await?;
        let plan = sql_plan("ALTER TABLE items DROP COLUMN b;", None, true);
        let project = Project::new(&db, &[], PLAN, &plan)?;
        let shown = apply_fails(&project, PLAN)?;
        says_all(&shown, &[
            "phase 1, step 1.sql_1 failed: cannot drop column b of table items because other objects depend on it (SQLSTATE 2BP01)",
            "\n  DETAIL: view item_labels depends on column b of table items",
            "\n  HINT: Use DROP ... CASCADE to drop the dependent objects too.",
        ])?;
        // The transactional step rolled back whole: the column and its rows are there.
        if db.scalar("SELECT count(*) FROM items WHERE b LIKE 'item %'").await? != i64::from(ROWS) {
            return Err(fail("the column's rows are not all there"));
        }
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn postgres_an_error_names_its_object() {
    with_postgres(|db| async move {
        items(&db).await?;
        let plan = sql_plan(
            "ALTER TABLE items ADD CONSTRAINT items_a_positive CHECK (a > 0);",
            None,
            true,
        );
        let project = Project::new(&db, &[], PLAN, &plan)?;
        let shown = apply_fails(&project, PLAN)?;
        says_all(&shown, &[
            "check constraint \"items_a_positive\" of relation \"items\" is violated by some row (SQLSTATE 23514)",
            "OBJECT: schema \"public\", table \"items\", constraint \"items_a_positive\"",
        ])?;
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn postgres_a_failing_rollback_says_which_statements_it_undid() {
    with_postgres(|db| async move {
        items(&db).await?;
        let plan = sql_plan(
            "CREATE INDEX CONCURRENTLY items_a_idx ON items (a);\nCREATE INDEX CONCURRENTLY items_b_idx ON items (b);",
            Some("DROP INDEX CONCURRENTLY items_b_idx;\nDROP INDEX CONCURRENTLY items_missing_idx;"),
            false,
        );
        let project = Project::new(&db, &[], PLAN, &plan)?;
        let clock = SystemClock;
        let ws = Workspace::new(&project.config, &clock, "statements");
        ws.apply(ENV, PLAN, false).await?;
        let e = match ws.rollback(ENV, PLAN, false).await {
            Err(RunError::Step(e)) => e,
            other => return Err(fail(format!("the rollback must fail: {other:?}"))),
        };
        let shown = e.to_string();
        println!("{shown}");
        says_all(&shown, &[
            "step 1.sql_1 failed: rolling it back failed, and phase 1 is partly undone",
            "statement 1 of 2 ran and committed",
            "statement 2 of 2 failed",
            "index \"items_missing_idx\" does not exist (SQLSTATE 42704)",
        ])?;
        if db.index_state("items_b_idx").await?.is_some() || db.index_state("items_a_idx").await? != Some(true) {
            return Err(fail("the rollback's first statement did not run alone"));
        }
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn sqlite_errors_keep_their_code_and_no_source_line() {
    with_sqlite(|db| async move {
        db.exec("CREATE TABLE items (id integer PRIMARY KEY, a int NOT NULL, b text NOT NULL)")
            .await?;
        let plan = sql_plan(
            "INSERT INTO items (id, a, b) VALUES (1, NULL, 'x');",
            None,
            true,
        );
        let project = Project::new(&db, &[], PLAN, &plan)?;
        let shown = apply_fails(&project, PLAN)?;
        says_all(
            &shown,
            &["NOT NULL constraint failed: items.a (SQLite code 1299)"],
        )
    })
    .await;
}

#[tokio::test]
async fn sqlite_a_non_transactional_step_runs_outside_a_transaction_statement_by_statement() {
    with_sqlite(|db| async move {
        db.exec("CREATE TABLE items (id integer PRIMARY KEY, a int NOT NULL, b text NOT NULL)")
            .await?;
        db.exec(&format!(
            "INSERT INTO items (id, a, b) SELECT i, i % 97, 'item ' || i FROM {}",
            db.series(ROWS)
        ))
        .await?;
        // VACUUM cannot run inside a transaction; the trigger's body holds `;`s.
        let up = "CREATE INDEX items_a_idx ON items (a);\n\
                  CREATE TRIGGER items_b_kept BEFORE UPDATE OF b ON items BEGIN\n\
                    SELECT RAISE(ABORT, 'b is kept; always'); SELECT 1;\n\
                  END;\n\
                  VACUUM;";
        let down =
            "DROP TRIGGER items_b_kept;\nDROP INDEX items_missing_idx;\nDROP INDEX items_a_idx;";
        let project = Project::new(&db, &[], PLAN, &sql_plan(up, Some(down), false))?;
        let clock = SystemClock;
        let ws = Workspace::new(&project.config, &clock, "statements");
        ws.apply(ENV, PLAN, false).await?;
        if db.index_state("items_a_idx").await? != Some(true) {
            return Err(fail("items_a_idx was not built"));
        }
        db.assert_fails("UPDATE items SET b = 'x' WHERE id = 1", "b is kept; always")
            .await?;
        if db.scalar("SELECT count(*) FROM items").await? != i64::from(ROWS) {
            return Err(fail("rows were lost"));
        }
        // The down's second statement fails: the first ran, the third did not.
        let e = match ws.rollback(ENV, PLAN, false).await {
            Err(RunError::Step(e)) => e,
            other => return Err(fail(format!("the rollback must fail: {other:?}"))),
        };
        let shown = e.to_string();
        println!("{shown}");
        says_all(
            &shown,
            &[
                "statement 1 of 3 ran and committed",
                "statement 2 of 3 failed: no such index: items_missing_idx",
            ],
        )?;
        if db.index_state("items_a_idx").await? != Some(true) {
            return Err(fail("the statement after the failing one ran"));
        }
        db.exec("UPDATE items SET b = 'x' WHERE id = 1").await?;
        Ok(())
    })
    .await;
}
