//! The `phasegate_status` view's own properties, on real Postgres, MariaDB
//! and SQLite databases:
//!
//! - A role that may only SELECT the view reads it (Postgres, MariaDB), and
//!   cannot read the log itself.
//! - A database from schema version 2 gets the view on the next command
//!   that writes.
//! - The view is not mistaken for a dependent of an application table
//!   whose name its text contains (`plan`).

mod check_support;
mod common;
mod executor_support;
mod rollback_support;

use check_support::{REN, agree, expect, expect_row, started};
use common::{TestDb, TestResult, fail, with_mysql, with_postgres, with_sqlite};
use executor_support::{ENV, Project};

/// A unique name for a role or user the test creates on the server.
fn reader_name() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("status_reader_{}_{nanos}", std::process::id())
}

/// Connects as `url`'s user and reads the view; the log itself is refused.
async fn reads_only_the_view(url: &str) -> TestResult {
    use sqlx::Connection;
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(url).await?;
    let (plan, applied): (String, i64) =
        sqlx::query_as("SELECT plan, phase_applied FROM phasegate_status")
            .fetch_one(&mut conn)
            .await?;
    let log = sqlx::query_as::<_, (i64,)>("SELECT COUNT(*) FROM phasegate_events")
        .fetch_one(&mut conn)
        .await;
    conn.close().await?;
    if (plan.as_str(), applied) != (REN, 1) {
        return Err(fail(format!("the reader sees {plan} at {applied}")));
    }
    if log.is_ok() {
        return Err(fail("a reader granted only the view read phasegate_events"));
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_select_only_role_reads_the_view_on_postgres() {
    with_postgres(|db| async move {
        started(&db).await?;
        let role = reader_name();
        let r = db.dialect.quote_ident(&role);
        let database = db.dialect.quote_ident(&db.name);
        // As docs/check.md says.
        db.exec(&format!(
            "CREATE ROLE {r} LOGIN; GRANT CONNECT ON DATABASE {database} TO {r}; \
             GRANT USAGE ON SCHEMA public TO {r}; GRANT SELECT ON phasegate_status TO {r}"
        ))
        .await?;
        let (_, rest) = db
            .url
            .split_once('@')
            .ok_or_else(|| fail(format!("no host in {}", db.url)))?;
        let url = format!("postgres://{role}@{rest}");
        let result = reads_only_the_view(&url).await;
        db.exec(&format!(
            "REVOKE ALL ON phasegate_status FROM {r}; REVOKE ALL ON SCHEMA public FROM {r}; \
             REVOKE ALL ON DATABASE {database} FROM {r}; DROP ROLE {r}"
        ))
        .await?;
        result
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_select_only_user_reads_the_view_on_mysql() {
    with_mysql(|db| async move {
        started(&db).await?;
        let user = reader_name();
        db.exec(&format!("CREATE USER '{user}'@'%' IDENTIFIED BY 'ro'"))
            .await?;
        // As docs/check.md says.
        let granted = db
            .exec(&format!(
                "GRANT SELECT ON `{}`.`phasegate_status` TO '{user}'@'%'",
                db.name
            ))
            .await;
        let result = async {
            granted?;
            let (_, rest) = db
                .url
                .split_once('@')
                .ok_or_else(|| fail(format!("no host in {}", db.url)))?;
            reads_only_the_view(&format!("mysql://{user}:ro@{rest}")).await
        }
        .await;
        db.exec(&format!("DROP USER IF EXISTS '{user}'@'%'"))
            .await?;
        result
    })
    .await
}

/// A log from schema version 2 (no view): read-only commands leave it be,
/// the next command that writes adds the view and moves to version 3.
async fn upgraded(db: TestDb) -> TestResult {
    let project = started(&db).await?;
    let key = db.pick3("key", "key", "`key`");
    let guard = db.pick3(
        "DROP TRIGGER phasegate_meta_kept ON phasegate_meta",
        "DROP TRIGGER phasegate_meta_no_update",
        "DROP TRIGGER phasegate_meta_no_update",
    );
    db.exec("DROP VIEW phasegate_status").await?;
    db.exec(guard).await?;
    db.exec(&format!(
        "UPDATE phasegate_meta SET value = '2' WHERE {key} = 'schema_version'"
    ))
    .await?;
    expect(&project, &["apply", "--env", ENV, REN], 0)?;
    let version = db
        .text(&format!(
            "SELECT value FROM phasegate_meta WHERE {key} = 'schema_version'"
        ))
        .await?;
    if version.as_deref() != Some("3") {
        return Err(fail(format!("schema version {version:?} after apply")));
    }
    let r = agree(&db, &project, REN, "upgraded").await?;
    // Started before the upgrade, by this phasegate: the phase count is known.
    expect_row(&r, "migrated", 2, 0, "upgraded")?;
    // The guard is back.
    db.assert_fails(
        &format!("UPDATE phasegate_meta SET value = '1' WHERE {key} = 'schema_version'"),
        "cannot be changed",
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_2_log_gets_the_view_on_the_next_write_on_postgres() {
    with_postgres(upgraded).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_2_log_gets_the_view_on_the_next_write_on_mysql() {
    with_mysql(upgraded).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_2_log_gets_the_view_on_the_next_write_on_sqlite() {
    with_sqlite(upgraded).await
}

/// The view's text names `plan`, `phase` and `state`, and MySQL and SQLite
/// read a view's dependencies from its text: phasegate's own view must not
/// be taken for one that reads an application table called `plan`.
async fn not_a_dependent(db: TestDb) -> TestResult {
    db.create_table("plan", "id integer PRIMARY KEY, phase text, state text")
        .await?;
    let plan = "changes:\n  - rename_column: { table: plan, from: state, to: status }\n";
    let project = Project::new(&db, &[], "st", plan)?;
    // The first command that writes creates the view, then plans live.
    let out = expect(&project, &["apply", "--env", ENV, "st"], 0)?;
    let planned = expect(&project, &["plan", "--env", ENV, "st"], 0)?;
    if !db.has_relation("phasegate_status").await? || planned.contains("phasegate_status") {
        return Err(fail(format!("{out}\n{planned}")));
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_view_is_not_a_dependent_of_an_application_table_on_postgres() {
    with_postgres(not_a_dependent).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_view_is_not_a_dependent_of_an_application_table_on_mysql() {
    with_mysql(not_a_dependent).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_view_is_not_a_dependent_of_an_application_table_on_sqlite() {
    with_sqlite(not_a_dependent).await
}
