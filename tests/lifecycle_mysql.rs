//! Every intent kind, planned against a populated MariaDB/MySQL database and
//! rolled out phase by phase (reversible phases up, down, up, with the
//! schema proved unchanged by the rollback), with writes of the old and the
//! new release in between, and the constraint each plan adds proved to
//! refuse bad rows afterwards.
//!
//! Needs a MySQL or MariaDB server: `PHASEGATE_TEST_MYSQL_URL` (default
//! `mysql://root@127.0.0.1:3306/test`). Each test creates and drops its own
//! database. Without a server each test prints one `skipped:` line, unless
//! `PHASEGATE_REQUIRE_DATABASES=1`.
//!
//! MySQL DDL is not transactional: every step is planned non-transactional
//! and the harness runs it outside a transaction.

mod common;
mod scenarios;

use common::{
    TestDb, TestResult, apply_phase, fail, plan_live, plan_offline, rollback_phase, with_mysql,
};
use phasegate::dialect::Dialect;
use phasegate::plan::Plan;
use scenarios::Catalogue::{Live, Offline};
use scenarios::OldColumn::{NotNull, NotNullDefault, Nullable};

const ROWS: i64 = 300;

/// Applies every phase; a reversible phase is applied, rolled back (the
/// schema must be as before) and applied again. `between` runs after each
/// phase with its number (the release that phase ships is running).
async fn roll_out<F>(db: &TestDb, plan: &Plan, mut between: F) -> TestResult
where
    F: AsyncFnMut(usize) -> TestResult,
{
    if plan.steps.iter().any(|s| s.transactional) {
        return Err(fail("a MySQL step is planned as transactional"));
    }
    for phase in &plan.phases {
        let before = db.schema().await?;
        apply_phase(db, plan, phase).await?;
        if phase.reversible {
            rollback_phase(db, plan, phase).await?;
            let after = db.schema().await?;
            if before != after {
                return Err(fail(format!(
                    "phase {} rollback left the schema changed:\nbefore: {before:#?}\nafter: {after:#?}",
                    phase.number
                )));
            }
            apply_phase(db, plan, phase).await?;
        }
        between(phase.number).await?;
    }
    Ok(())
}

async fn populate(db: &TestDb, table: &str, columns: &str, select: &str) -> TestResult {
    db.exec(&format!("CREATE TABLE {table} ({columns})"))
        .await?;
    db.exec(&format!(
        "INSERT INTO {table} WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < {ROWS}) SELECT {select} FROM s"
    ))
    .await?;
    Ok(())
}

fn check(ok: bool, what: impl Into<String>) -> TestResult {
    if ok { Ok(()) } else { Err(fail(what.into())) }
}

#[tokio::test]
async fn rename_column_trigger_awkward_names() {
    with_mysql(|db| async move {
        // A table named `user` and a column with a backtick in its name.
        populate(
            &db,
            "`user`",
            "id bigint PRIMARY KEY, `we``ird` varchar(50) NOT NULL DEFAULT 'it''s', age int",
            "i, CONCAT('n', i), i",
        )
        .await?;
        let plan = plan_live(
            &db,
            "  - rename_column: { table: user, from: \"we`ird\", to: \"full name\" }\n",
            &["user"],
        )
        .await?;
        check(
            plan.phases.len() == 3,
            format!("{} phases", plan.phases.len()),
        )?;
        let db2 = db.clone();
        roll_out(&db, &plan, async move |n| {
            let db = &db2;
            match n {
                1 | 2 => {
                    // The old release writes only the old column, the new one only the new.
                    db.exec(&format!(
                        "INSERT INTO `user` (id, `we``ird`) VALUES ({}, 'old')",
                        1000 + n
                    ))
                    .await?;
                    db.exec(&format!(
                        "INSERT INTO `user` (id, `full name`) VALUES ({}, 'new')",
                        2000 + n
                    ))
                    .await?;
                    db.exec("UPDATE `user` SET `we``ird` = 'changed old' WHERE id = 1")
                        .await?;
                    db.exec("UPDATE `user` SET `full name` = 'changed new' WHERE id = 2")
                        .await?;
                    let differ = db
                        .scalar("SELECT count(*) FROM `user` WHERE NOT (`we``ird` <=> `full name`)")
                        .await?;
                    check(differ == 0, format!("{differ} rows differ after phase {n}"))?;
                    let old = db
                        .text(&format!(
                            "SELECT `we``ird` FROM `user` WHERE id = {}",
                            2000 + n
                        ))
                        .await?;
                    check(old.as_deref() == Some("new"), format!("old column {old:?}"))?;
                }
                _ => {
                    check(
                        !db.has_column("user", "we`ird").await?,
                        "old column still there",
                    )?;
                    check(
                        !db.is_nullable("user", "full name").await?,
                        "full name should be NOT NULL",
                    )?;
                    db.exec("INSERT INTO `user` (id) VALUES (9999)").await?;
                    let v = db
                        .text("SELECT `full name` FROM `user` WHERE id = 9999")
                        .await?;
                    check(
                        v.as_deref() == Some("it's"),
                        format!("default moved: {v:?}"),
                    )?;
                    db.fails("INSERT INTO `user` (id, `full name`) VALUES (9998, NULL)")
                        .await?;
                }
            }
            Ok(())
        })
        .await?;
        let n = db
            .scalar("SELECT count(*) FROM `user` WHERE `full name` = CONCAT('n', id)")
            .await?;
        check(n == ROWS - 2, format!("{n} rows kept their value"))
    })
    .await
}

#[tokio::test]
async fn rename_column_dual_write_relaxes_not_null() {
    with_mysql(|db| async move {
        populate(
            &db,
            "people",
            "id bigint PRIMARY KEY, name varchar(40) NOT NULL",
            "i, CONCAT('p', i)",
        )
        .await?;
        let plan = plan_live(
            &db,
            "  - rename_column: { table: people, from: name, to: full_name, sync: app }\n",
            &["people"],
        )
        .await?;
        let db2 = db.clone();
        roll_out(&db, &plan, async move |n| {
            let db = &db2;
            if n == 1 {
                // The release of phase 1 writes both.
                db.exec("INSERT INTO people (id, name, full_name) VALUES (5001, 'a', 'a')")
                    .await?;
            }
            if db.has_column("people", "name").await? && db.is_nullable("people", "name").await? {
                // Code that writes only the new column.
                db.exec(&format!(
                    "INSERT INTO people (id, full_name) VALUES ({}, 'b')",
                    6000 + n
                ))
                .await?;
            }
            Ok(())
        })
        .await?;
        check(
            !db.has_column("people", "name").await?,
            "old column dropped",
        )?;
        let n = db
            .scalar("SELECT count(*) FROM people WHERE full_name = CONCAT('p', id)")
            .await?;
        check(n == ROWS, format!("{n} rows copied"))
    })
    .await
}

#[tokio::test]
async fn add_column_required_constant_default_is_one_instant_phase() {
    with_mysql(|db| async move {
        populate(&db, "orders", "id bigint PRIMARY KEY, amount int", "i, i").await?;
        let plan = plan_live(&db, "  - add_column: { table: orders, column: currency, type: varchar(3), nullable: false, default: \"'EUR'\" }\n", &["orders"]).await?;
        check(plan.phases.len() == 1, "one phase")?;
        roll_out(&db, &plan, async |_| Ok(())).await?;
        let n = db.scalar("SELECT count(*) FROM orders WHERE currency = 'EUR'").await?;
        check(n == ROWS, format!("{n} rows read the default"))?;
        db.fails("INSERT INTO orders (id, currency) VALUES (7000, NULL)").await.map(|_| ())
    })
    .await
}

#[tokio::test]
async fn add_column_required_with_backfill_then_null_fails() {
    with_mysql(|db| async move {
        populate(&db, "orders", "id bigint PRIMARY KEY, amount int", "i, i").await?;
        let plan = plan_offline(Dialect::Mysql, "  - add_column: { table: orders, column: region, type: varchar(20), nullable: false, backfill: \"'unknown'\" }\n")?;
        let db2 = db.clone();
        roll_out(&db, &plan, async move |n| {
            if n == 1 {
                // The release that writes the value.
                db2.exec("INSERT INTO orders (id, amount, region) VALUES (8001, 1, 'eu')").await?;
            }
            Ok(())
        })
        .await?;
        check(!db.is_nullable("orders", "region").await?, "region NOT NULL")?;
        let n = db.scalar("SELECT count(*) FROM orders WHERE region = 'unknown'").await?;
        check(n == ROWS, format!("{n} rows backfilled"))?;
        db.fails("INSERT INTO orders (id, amount, region) VALUES (8002, 1, NULL)").await.map(|_| ())
    })
    .await
}

#[tokio::test]
async fn change_column_type_widening_in_place_and_int_to_bigint_copy() {
    with_mysql(|db| async move {
        populate(
            &db,
            "items",
            "id bigint PRIMARY KEY, code varchar(20) NOT NULL, qty int",
            "i, CONCAT('c', i), i",
        )
        .await?;
        let plan = plan_live(
            &db,
            "  - change_column_type: { table: items, column: code, type: varchar(60) }\n",
            &["items"],
        )
        .await?;
        check(
            plan.phases.len() == 1 && plan.steps.len() == 1,
            "widening within 255 bytes is one step",
        )?;
        roll_out(&db, &plan, async |_| Ok(())).await?;
        check(
            !db.is_nullable("items", "code").await?,
            "code still NOT NULL",
        )?;
        let plan = plan_live(
            &db,
            "  - change_column_type: { table: items, column: qty, type: bigint }\n",
            &["items"],
        )
        .await?;
        check(plan.phases.len() == 3, "int -> bigint is the copy path")?;
        let db2 = db.clone();
        roll_out(&db, &plan, async move |n| {
            if n < 3 {
                db2.exec(&format!(
                    "INSERT INTO items (id, code, qty) VALUES ({}, 'x', 5000000)",
                    9000 + n
                ))
                .await?;
                // The new release writes only the new column (within int's
                // range while the trigger still mirrors it to the old one).
                db2.exec(&format!(
                    "INSERT INTO items (id, code, qty_new) VALUES ({}, 'y', 40000)",
                    9100 + n
                ))
                .await?;
            }
            Ok(())
        })
        .await?;
        let n = db
            .scalar("SELECT count(*) FROM items WHERE qty_new = id")
            .await?;
        check(n == ROWS, format!("{n} rows copied"))
    })
    .await
}

#[tokio::test]
async fn drop_column_relaxes_not_null_first() {
    with_mysql(|db| async move {
        populate(
            &db,
            "profiles",
            "id bigint PRIMARY KEY, legacy varchar(10) NOT NULL, keep int",
            "i, 'x', i",
        )
        .await?;
        let plan = plan_live(
            &db,
            "  - drop_column: { table: profiles, column: legacy }\n",
            &["profiles"],
        )
        .await?;
        let db2 = db.clone();
        roll_out(&db, &plan, async move |n| {
            if n == 1 {
                db2.exec("INSERT INTO profiles (id, keep) VALUES (5000, 1)")
                    .await?;
            }
            Ok(())
        })
        .await?;
        check(!db.has_column("profiles", "legacy").await?, "dropped")
    })
    .await
}

#[tokio::test]
async fn rename_table_through_an_updatable_view() {
    with_mysql(|db| async move {
        populate(
            &db,
            "`user`",
            "id bigint PRIMARY KEY, name varchar(20) DEFAULT 'd'",
            "i, CONCAT('u', i)",
        )
        .await?;
        let plan = plan_offline(
            Dialect::Mysql,
            "  - rename_table: { from: user, to: members }\n",
        )?;
        let db2 = db.clone();
        roll_out(&db, &plan, async move |n| {
            let db = &db2;
            if n == 1 {
                db.exec("INSERT INTO members (id) VALUES (5001)").await?;
                db.exec("UPDATE members SET name = 'via view' WHERE id = 1")
                    .await?;
                db.exec("DELETE FROM members WHERE id = 2").await?;
                db.exec("INSERT INTO `user` (id, name) VALUES (5002, 'old')")
                    .await?;
                let v = db.text("SELECT name FROM `user` WHERE id = 5001").await?;
                check(
                    v.as_deref() == Some("d"),
                    format!("default through the view: {v:?}"),
                )?;
            } else {
                check(
                    db.relation_kind("members").await?.as_deref() == Some("table"),
                    "members is the table",
                )?;
                check(!db.has_relation("user").await?, "user is gone")?;
            }
            Ok(())
        })
        .await?;
        let n = db.scalar("SELECT count(*) FROM members").await?;
        check(n == ROWS + 1, format!("{n} rows"))
    })
    .await
}

#[tokio::test]
async fn unique_index_then_duplicates_fail() {
    with_mysql(|db| async move {
        populate(
            &db,
            "accounts",
            "id bigint PRIMARY KEY, email varchar(100)",
            "i, CONCAT('e', i, '@x')",
        )
        .await?;
        let plan = plan_offline(
            Dialect::Mysql,
            "  - add_index: { table: accounts, columns: [email], unique: true }\n",
        )?;
        roll_out(&db, &plan, async |_| Ok(())).await?;
        let e = db
            .fails("INSERT INTO accounts (id, email) VALUES (9000, 'e1@x')")
            .await?;
        check(e.contains("Duplicate"), e)
    })
    .await
}

#[tokio::test]
async fn foreign_key_then_orphans_fail() {
    with_mysql(|db| async move {
        populate(&db, "`user`", "id bigint PRIMARY KEY", "i").await?;
        populate(&db, "orders", "id bigint PRIMARY KEY, user_id bigint", "i, IF(i % 10 = 0, NULL, i)").await?;
        let plan = plan_offline(Dialect::Mysql, "  - add_foreign_key: { table: orders, columns: [user_id], references: { table: user, columns: [id] }, on_delete: cascade }\n")?;
        roll_out(&db, &plan, async |_| Ok(())).await?;
        let e = db.fails("INSERT INTO orders (id, user_id) VALUES (9000, 123456)").await?;
        check(e.contains("foreign key"), e.clone())?;
        db.exec("DELETE FROM `user` WHERE id = 1").await?;
        let n = db.scalar("SELECT count(*) FROM orders WHERE user_id = 1").await?;
        check(n == 0, "cascade")
    })
    .await
}

#[tokio::test]
async fn set_not_null_then_null_fails() {
    with_mysql(|db| async move {
        populate(
            &db,
            "tasks",
            "id bigint PRIMARY KEY, owner varchar(20) DEFAULT 'me'",
            "i, IF(i % 3 = 0, NULL, 'x')",
        )
        .await?;
        let plan = plan_live(
            &db,
            "  - set_not_null: { table: tasks, column: owner, backfill: \"'nobody'\" }\n",
            &["tasks"],
        )
        .await?;
        roll_out(&db, &plan, async |_| Ok(())).await?;
        check(!db.is_nullable("tasks", "owner").await?, "NOT NULL")?;
        db.exec("INSERT INTO tasks (id) VALUES (9000)").await?;
        let v = db.text("SELECT owner FROM tasks WHERE id = 9000").await?;
        check(v.as_deref() == Some("me"), format!("default kept: {v:?}"))?;
        db.fails("INSERT INTO tasks (id, owner) VALUES (9001, NULL)")
            .await
            .map(|_| ())
    })
    .await
}

#[tokio::test]
async fn set_not_null_offline_is_refused() {
    with_mysql(|_db| async move {
        match plan_offline(
            Dialect::Mysql,
            "  - set_not_null: { table: tasks, column: owner }\n",
        ) {
            Ok(_) => Err(fail("planned offline")),
            Err(e) => check(
                e.to_string().contains("plan against the database"),
                e.to_string(),
            ),
        }
    })
    .await
}

#[tokio::test]
async fn add_check_then_violations_fail() {
    with_mysql(|db| async move {
        populate(&db, "payments", "id bigint PRIMARY KEY, amount int", "i, i").await?;
        let plan = plan_offline(
            Dialect::Mysql,
            "  - add_check: { table: payments, name: amount_positive, check: \"amount > 0\" }\n",
        )?;
        roll_out(&db, &plan, async |_| Ok(())).await?;
        let e = db
            .fails("INSERT INTO payments (id, amount) VALUES (9000, -1)")
            .await?;
        check(e.contains("amount_positive"), e)
    })
    .await
}

#[tokio::test]
async fn drop_table_after_the_app_stops() {
    with_mysql(|db| async move {
        populate(&db, "audit_log", "id bigint PRIMARY KEY", "i").await?;
        let plan = plan_offline(Dialect::Mysql, "  - drop_table: { table: audit_log }\n")?;
        roll_out(&db, &plan, async |_| Ok(())).await?;
        check(!db.has_relation("audit_log").await?, "dropped")
    })
    .await
}

#[tokio::test]
async fn the_catalog_reads_columns_indexes_and_constraints() {
    with_mysql(|db| async move {
        db.exec("CREATE TABLE parent (id bigint PRIMARY KEY)").await?;
        db.exec("CREATE TABLE child (id bigint PRIMARY KEY, p bigint, name varchar(30) CHARACTER SET latin1 NOT NULL DEFAULT 'it''s', n int DEFAULT 3, UNIQUE KEY child_name_key (name), KEY child_p (p), CONSTRAINT child_n_pos CHECK (n > 0), CONSTRAINT child_p_fk FOREIGN KEY (p) REFERENCES parent (id) ON DELETE SET NULL)").await?;
        let c = db.catalog(&["child", "parent", "ghost"]).await?;
        let v = c.server().ok_or_else(|| fail("no version"))?;
        check(v.dialect == Dialect::Mysql, format!("{v}"))?;
        let child = c.table(&phasegate::name::TableName::parse("child").map_err(|e| fail(e.to_string()))?).ok_or_else(|| fail("child"))?;
        let name = child.columns.iter().find(|x| x.name.as_str() == "name").ok_or_else(|| fail("name"))?;
        check(!name.nullable && name.charset.as_deref() == Some("latin1"), format!("{name:?}"))?;
        check(name.default.as_deref() == Some("'it''s'"), format!("{name:?}"))?;
        let n = child.columns.iter().find(|x| x.name.as_str() == "n").ok_or_else(|| fail("n"))?;
        check(n.default.as_deref() == Some("3"), format!("{n:?}"))?;
        check(child.primary_key.iter().map(|k| k.as_str()).collect::<Vec<_>>() == ["id"], "pk")?;
        check(child.uniques.iter().any(|u| u.name.as_str() == "child_name_key"), format!("{:?}", child.uniques))?;
        check(child.checks.iter().any(|k| k.name.as_ref().is_some_and(|n| n.as_str() == "child_n_pos")), format!("{:?}", child.checks))?;
        check(child.foreign_keys.len() == 1 && child.foreign_keys[0].on_delete == phasegate::catalog::ReferentialAction::SetNull, format!("{:?}", child.foreign_keys))?;
        let parent = c.table(&phasegate::name::TableName::parse("parent").map_err(|e| fail(e.to_string()))?).ok_or_else(|| fail("parent"))?;
        check(parent.referenced_by.len() == 1, format!("{:?}", parent.referenced_by))?;
        check(matches!(c.lookup(&phasegate::name::TableName::parse("ghost").map_err(|e| fail(e.to_string()))?), phasegate::catalog::Lookup::Missing), "ghost missing")
    })
    .await
}

// ---------------------------------------------------------------------------
// The shared scenarios of tests/scenarios, as lifecycle_postgres and
// lifecycle_sqlite run them. Not run here: `add_index_partial_unique` (MySQL
// has no partial indexes: `where` is refused), `rename_carries_constraints`
// (a rename does not carry indexes and constraints over on MySQL yet), and
// the offline renames (MySQL plans a rename only from the live schema).
// ---------------------------------------------------------------------------

/// Runs `body` with a second database beside the test's own, named
/// `<test database>_<suffix>` and passed to `body`, so a plan can name
/// `schema.table` (on MySQL a schema is a database); drops it afterwards,
/// whether `body` passed or failed.
async fn with_schema<F, Fut>(db: TestDb, suffix: &str, body: F) -> TestResult
where
    F: FnOnce(TestDb, String) -> Fut,
    Fut: Future<Output = TestResult>,
{
    let schema = format!("{}_{suffix}", db.name);
    let quoted = db.ident(&schema);
    db.exec(&format!("CREATE DATABASE {quoted}")).await?;
    let result = body(db.clone(), schema).await;
    let dropped = db.exec(&format!("DROP DATABASE {quoted}")).await;
    result.and(dropped.map(|_| ()))
}

#[tokio::test]
async fn shared_rename_column_live() {
    with_mysql(|db| scenarios::rename_column(db, "users", "name", "full_name", Nullable, Live))
        .await
}

#[tokio::test]
async fn shared_rename_column_not_null_live() {
    with_mysql(|db| scenarios::rename_column(db, "users", "name", "full_name", NotNull, Live)).await
}

#[tokio::test]
async fn shared_rename_column_awkward_names_live_moves_the_default() {
    with_mysql(|db| {
        scenarios::rename_column(
            db,
            "user",
            "we`ird",
            "full name",
            NotNullDefault("it's"),
            Live,
        )
    })
    .await
}

#[tokio::test]
async fn shared_rename_column_schema_qualified() {
    with_mysql(|db| {
        with_schema(db, "billing", |db, billing| async move {
            let table = format!("{billing}.invoices");
            scenarios::rename_column(db, &table, "note", "memo", Nullable, Live).await
        })
    })
    .await
}

#[tokio::test]
async fn shared_rename_column_dual_write_nullable() {
    with_mysql(|db| scenarios::rename_column_dual_write(db, false)).await
}

#[tokio::test]
async fn shared_rename_column_dual_write_relaxes_not_null() {
    with_mysql(|db| scenarios::rename_column_dual_write(db, true)).await
}

#[tokio::test]
async fn shared_add_column_nullable() {
    with_mysql(scenarios::add_column_nullable).await
}

#[tokio::test]
async fn shared_add_column_required_with_default() {
    with_mysql(scenarios::add_column_required_with_default).await
}

#[tokio::test]
async fn shared_add_column_required_backfilled() {
    with_mysql(scenarios::add_column_required_backfilled).await
}

#[tokio::test]
async fn shared_change_column_type_using_and_reverse() {
    with_mysql(scenarios::change_column_type_using).await
}

#[tokio::test]
async fn shared_change_column_type_cast_live() {
    with_mysql(|db| scenarios::change_column_type_cast(db, Live)).await
}

#[tokio::test]
async fn shared_change_column_type_cast_offline() {
    with_mysql(|db| scenarios::change_column_type_cast(db, Offline)).await
}

#[tokio::test]
async fn shared_drop_column_not_null_is_relaxed_first() {
    with_mysql(|db| scenarios::drop_column(db, "text NOT NULL")).await
}

#[tokio::test]
async fn shared_drop_column_nullable() {
    with_mysql(|db| scenarios::drop_column(db, "text")).await
}

#[tokio::test]
async fn shared_drop_column_not_null_with_default() {
    with_mysql(|db| scenarios::drop_column(db, "text NOT NULL DEFAULT 'x'")).await
}

#[tokio::test]
async fn shared_rename_table_user() {
    with_mysql(|db| scenarios::rename_table(db, "user", "members")).await
}

#[tokio::test]
async fn shared_rename_table_reserved_word() {
    with_mysql(|db| scenarios::rename_table(db, "user", "account")).await
}

#[tokio::test]
async fn shared_rename_table_schema_qualified() {
    with_mysql(|db| {
        with_schema(db, "billing", |db, billing| async move {
            scenarios::rename_table(db, &format!("{billing}.invoices"), "bills").await
        })
    })
    .await
}

#[tokio::test]
async fn shared_add_index_online() {
    with_mysql(scenarios::add_index_plain).await
}

#[tokio::test]
async fn shared_add_index_unique_after_cleanup() {
    with_mysql(scenarios::add_index_unique).await
}

#[tokio::test]
async fn shared_add_foreign_key_cascade() {
    with_mysql(|db| scenarios::add_foreign_key(db, "customers", "invoices", Some("cascade"))).await
}

#[tokio::test]
async fn shared_add_foreign_key_schema_qualified_cascade() {
    with_mysql(|db| {
        with_schema(db, "billing", |db, billing| async move {
            let (parent, child) = (
                format!("{billing}.customers"),
                format!("{billing}.invoices"),
            );
            scenarios::add_foreign_key(db, &parent, &child, Some("cascade")).await
        })
    })
    .await
}

#[tokio::test]
async fn shared_add_foreign_key_no_action() {
    with_mysql(|db| scenarios::add_foreign_key(db, "customers", "invoices", None)).await
}

#[tokio::test]
async fn shared_add_foreign_key_set_null() {
    with_mysql(|db| scenarios::add_foreign_key(db, "customers", "invoices", Some("set_null"))).await
}

#[tokio::test]
async fn shared_set_not_null() {
    with_mysql(|db| scenarios::set_not_null(db, "users", "email")).await
}

#[tokio::test]
async fn shared_set_not_null_awkward_names() {
    with_mysql(|db| scenarios::set_not_null(db, "user", "we`ird")).await
}

#[tokio::test]
async fn shared_add_check() {
    with_mysql(scenarios::add_check).await
}

#[tokio::test]
async fn shared_drop_table() {
    with_mysql(scenarios::drop_table).await
}

#[tokio::test]
async fn shared_drop_table_still_referenced_is_refused() {
    with_mysql(scenarios::drop_table_still_referenced).await
}

#[tokio::test]
async fn shared_sql_phases() {
    with_mysql(scenarios::sql_phases).await
}

#[tokio::test]
async fn shared_two_renames_share_three_deploys() {
    with_mysql(scenarios::two_renames).await
}

#[tokio::test]
async fn shared_contradictory_intents_are_refused() {
    with_mysql(scenarios::contradiction).await
}

#[tokio::test]
async fn shared_validation_against_live_schema() {
    with_mysql(scenarios::validation_against_live_schema).await
}

#[tokio::test]
async fn shared_change_column_type_varchar_widened_in_place() {
    with_mysql(scenarios::change_column_type_coercible).await
}

/// A rename carries the old column's indexes (a prefix key and a composite
/// unique one) and its foreign key to the new column, online, before the
/// switch; the contract drops the old ones by name with the column (MariaDB
/// refuses to drop a column of a composite index; MySQL would shrink it).
#[tokio::test]
async fn rename_column_carries_indexes_and_foreign_keys() {
    with_mysql(|db| async move {
        populate(&db, "customers", "id bigint PRIMARY KEY", "i").await?;
        populate(
            &db,
            "orders",
            "id bigint PRIMARY KEY, cust bigint NOT NULL, ref varchar(50) NOT NULL, \
             KEY cust_ref_idx (cust, ref(10)), UNIQUE KEY orders_cust_uq (cust, ref), \
             CONSTRAINT orders_cust_fk FOREIGN KEY (cust) REFERENCES customers (id) ON DELETE CASCADE",
            "i, i, CONCAT('r', i)",
        )
        .await?;
        let plan = plan_live(
            &db,
            "  - rename_column: { table: orders, from: cust, to: customer_id }\n",
            &["orders", "customers"],
        )
        .await?;
        let sql: String = plan
            .steps
            .iter()
            .filter_map(|s| s.sql.clone())
            .collect::<Vec<_>>()
            .join("\n");
        for needle in [
            "ADD INDEX /*M! IF NOT EXISTS */ `customer_id_ref_idx` (`customer_id`, `ref`(10)), ALGORITHM=INPLACE, LOCK=NONE",
            "ADD UNIQUE INDEX /*M! IF NOT EXISTS */ `orders_customer_id_uq` (`customer_id`, `ref`), ALGORITHM=INPLACE, LOCK=NONE",
            "FOREIGN KEY /*M! IF NOT EXISTS */ (`customer_id`)",
            "DROP FOREIGN KEY /*M! IF EXISTS */ `orders_cust_fk`",
            "DROP INDEX /*M! IF EXISTS */ `cust_ref_idx`",
        ] {
            check(sql.contains(needle), format!("the plan has no `{needle}`:\n{sql}"))?;
        }
        let db2 = db.clone();
        roll_out(&db, &plan, async move |n| {
            if n == 1 {
                // The old release still writes cust; the trigger fills customer_id.
                db2.exec("INSERT INTO orders (id, cust, ref) VALUES (9001, 7, 'new')")
                    .await?;
                db2.assert_fails(
                    "INSERT INTO orders (id, cust, ref) VALUES (9002, 7, 'new')",
                    "Duplicate entry",
                )
                .await?;
            }
            Ok(())
        })
        .await?;
        check(!db.has_column("orders", "cust").await?, "cust is dropped")?;
        // The copies enforce what the originals did.
        db.assert_fails(
            "INSERT INTO orders (id, customer_id, ref) VALUES (9003, 7, 'new')",
            "Duplicate entry",
        )
        .await?;
        db.assert_fails(
            "INSERT INTO orders (id, customer_id, ref) VALUES (9004, 123456, 'x')",
            "foreign key constraint fails",
        )
        .await?;
        db.exec("DELETE FROM customers WHERE id = 7").await?;
        check(
            db.scalar("SELECT count(*) FROM orders WHERE customer_id = 7").await? == 0,
            "ON DELETE CASCADE was carried",
        )?;
        let mut indexes = db
            .texts("SELECT DISTINCT CAST(index_name AS CHAR) FROM information_schema.statistics WHERE table_schema = DATABASE() AND table_name = 'orders'")
            .await?;
        indexes.sort();
        check(
            indexes == ["PRIMARY", "customer_id_ref_idx", "orders_customer_id_uq"],
            format!("indexes after the contract: {indexes:?}"),
        )
    })
    .await
}

/// Dropping a column drops its indexes and foreign key by name, and says
/// so for a composite index, rather than letting MySQL shrink the index.
#[tokio::test]
async fn drop_column_drops_its_composite_index_and_foreign_key() {
    with_mysql(|db| async move {
        populate(&db, "teams", "id bigint PRIMARY KEY", "i").await?;
        populate(
            &db,
            "members",
            "id bigint PRIMARY KEY, team bigint NULL, email varchar(100) NOT NULL, \
             UNIQUE KEY members_team_email (team, email), \
             CONSTRAINT members_team_fk FOREIGN KEY (team) REFERENCES teams (id)",
            "i, i, CONCAT('m', i, '@x')",
        )
        .await?;
        let plan = plan_live(
            &db,
            "  - drop_column: { table: members, column: team }\n",
            &["members", "teams"],
        )
        .await?;
        check(
            plan.notes.iter().any(|n| {
                n.text.contains("members_team_email") && n.text.contains("dropped with it")
            }),
            format!("no note about the composite index: {:?}", plan.notes),
        )?;
        roll_out(&db, &plan, async |_| Ok(())).await?;
        check(!db.has_column("members", "team").await?, "team is dropped")?;
        // Not shrunk to UNIQUE (email): two members may share an email now.
        db.exec("INSERT INTO members (id, email) VALUES (9001, 'm1@x')")
            .await?;
        Ok(())
    })
    .await
}

#[tokio::test]
async fn add_serial_column_numbers_every_row() {
    with_mysql(scenarios::add_serial_column).await
}

#[tokio::test]
async fn drop_column_rollback_fills_rows_from_down() {
    with_mysql(scenarios::drop_column_rollback_down).await
}
