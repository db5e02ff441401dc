//! Adversarial attempts on one environment per database, the recorded
//! promotion order, honest `status` and read-only commands: new instances of
//! the kinds. A passing test is a defence that held.

mod break_support;
mod common;
mod executor_support;

use break_support::*;
use sqlx::Connection as _;

// ---------------------------------------------------------------------------
// One environment per database: new instances
// ---------------------------------------------------------------------------

/// The environment marker deleted: refused by phasegate_meta's guard; and
/// deleted with the guard dropped and put back, another environment
/// (staging) is refused, records nothing and claims nothing.
async fn marker_deleted(db: TestDb) -> TestResult {
    let project = applied(&db).await?;
    let key = db.pick3("key", "key", "`key`");
    let delete = format!("DELETE FROM phasegate_meta WHERE {key} = 'environment'");
    db.assert_fails(&delete, "cannot be changed or deleted")
        .await?;
    behind_guard(&db, meta_delete_guard(&db), "phasegate_meta", &[&delete]).await?;
    let dir = Dir::new()?;
    let other = dir.config("staging", &[("staging", &db.url)])?;
    let before = events(&db).await.len();
    let apply = dir
        .run(&other, &["apply", "--env", "staging", PLAN])
        .await?;
    assert_eq!(apply.status.code(), Some(2), "{}", shown(&apply));
    assert!(
        said(&apply).contains("environment marker") && said(&apply).contains("was deleted"),
        "{}",
        shown(&apply)
    );
    assert_eq!(events(&db).await.len(), before, "staging recorded nothing");
    let owner = format!("SELECT count(*) FROM phasegate_meta WHERE {key} = 'environment'");
    assert_eq!(db.scalar(&owner).await?, 0, "staging claimed nothing");
    drop(project);
    Ok(())
}

#[tokio::test]
async fn a_deleted_environment_marker_lets_no_other_environment_in_on_sqlite() {
    with_sqlite(marker_deleted).await;
}

#[tokio::test]
async fn a_deleted_environment_marker_lets_no_other_environment_in_on_postgres() {
    with_postgres(marker_deleted).await;
}

#[tokio::test]
async fn a_deleted_environment_marker_lets_no_other_environment_in_on_mysql() {
    with_mysql(marker_deleted).await;
}

/// The marker rewritten to another environment's name (its guard dropped
/// and put back): that environment finds a log whose chain starts from
/// another environment's genesis, and is refused without writing.
async fn marker_rewritten(db: TestDb) -> TestResult {
    let project = applied(&db).await?;
    let key = db.pick3("key", "key", "`key`");
    let update = format!("UPDATE phasegate_meta SET value = 'staging' WHERE {key} = 'environment'");
    behind_guard(&db, meta_update_guard(&db), "phasegate_meta", &[&update]).await?;
    let dir = Dir::new()?;
    let other = dir.config("staging", &[("staging", &db.url)])?;
    let before = events(&db).await.len();
    for args in [
        &["status"][..],
        &["gate", "--env", "staging", PLAN][..],
        &["apply", "--env", "staging", PLAN][..],
    ] {
        let out = dir.run(&other, args).await?;
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", shown(&out));
        assert!(
            said(&out).contains("tampered")
                && said(&out).contains("does not start the log of environment `staging`"),
            "{args:?}: {}",
            shown(&out)
        );
    }
    assert_eq!(events(&db).await.len(), before, "staging recorded nothing");
    drop(project);
    Ok(())
}

#[tokio::test]
async fn a_rewritten_environment_marker_lets_no_other_environment_in_on_sqlite() {
    with_sqlite(marker_rewritten).await;
}

#[tokio::test]
async fn a_rewritten_environment_marker_lets_no_other_environment_in_on_postgres() {
    with_postgres(marker_rewritten).await;
}

#[tokio::test]
async fn a_rewritten_environment_marker_lets_no_other_environment_in_on_mysql() {
    with_mysql(marker_rewritten).await;
}

/// Postgres: a second environment pointed at the same database with its
/// `search_path` set to another schema would get its own log there, never
/// reading the marker in the first: a `search_path` in the URL's options is
/// refused at config load (see `config::identity::refused_url`).
#[tokio::test]
async fn a_second_schema_on_the_search_path_is_the_same_database_on_postgres() {
    with_postgres(|db| async move {
        let _project = applied(&db).await?;
        db.exec("CREATE SCHEMA staging_s").await?;
        let sep = if db.url.contains('?') { '&' } else { '?' };
        let url = format!("{}{sep}options=-c%20search_path%3Dstaging_s,public", db.url);
        let dir = Dir::new()?;
        let staging = dir.config("staging", &[("staging", &url)])?;
        let status = dir.run(&staging, &["status"]).await?;
        let apply = dir.run(&staging, &["apply", "--env", "staging", PLAN]).await?;
        let made = db
            .scalar(
                "SELECT count(*) FROM pg_catalog.pg_tables WHERE schemaname = 'staging_s' AND tablename LIKE 'phasegate%'",
            )
            .await?;
        assert_eq!(status.status.code(), Some(2), "{}", shown(&status));
        assert!(
            said(&status).contains("sets search_path in its options"),
            "{}",
            shown(&status)
        );
        assert_ne!(apply.status.code(), Some(0), "{}", shown(&apply));
        assert_eq!(made, 0, "a second log was created in staging_s");
        Ok(())
    })
    .await;
}

/// Spellings of one Postgres database that the config check must see as
/// one (it holds for localhost/127.0.0.1, default port, postgresql://,
/// user in the query, options in the query).
#[tokio::test]
async fn postgres_url_spellings_that_the_config_check_catches() -> TestResult {
    let dir = Dir::new()?;
    let base = "postgres://postgres@127.0.0.1:5432/app";
    let mut missed = Vec::new();
    for other in [
        "postgres://postgres@localhost/app",
        "postgresql://postgres@127.0.0.1/app",
        "postgres://127.0.0.1:5432/app?user=postgres",
        "postgres://postgres@LOCALHOST:5432/app",
        "postgres://postgres:@127.0.0.1:5432/app",
        "postgres://postgres@127.0.0.1:5432/app?sslmode=disable",
        "postgres://postgres@127.0.0.1:05432/app",
    ] {
        let config = dir.config("spell", &[("dev", base), ("staging", other)])?;
        let out = dir.run(&config, &["status"]).await?;
        if out.status.code() != Some(2) || !said(&out).contains("point at the same database") {
            missed.push(format!("{other}: {}", shown(&out)));
        }
    }
    assert!(missed.is_empty(), "not refused:\n{}", missed.join("\n"));
    Ok(())
}

#[tokio::test]
async fn postgres_url_spellings_that_the_config_check_misses() -> TestResult {
    let dir = Dir::new()?;
    let base = "postgres://postgres@127.0.0.1:5432/app";
    let mut missed = Vec::new();
    for other in [
        "postgres://postgres@127.0.0.1:5432/%61pp",
        "postgres://postgres@127.0.0.1:5432/postgres?dbname=app",
    ] {
        let config = dir.config("spell", &[("dev", base), ("staging", other)])?;
        let out = dir.run(&config, &["status"]).await?;
        if out.status.code() != Some(2) || !said(&out).contains("point at the same database") {
            missed.push(format!("{other}: {}", shown(&out)));
        }
    }
    assert!(missed.is_empty(), "not refused:\n{}", missed.join("\n"));
    Ok(())
}

/// More spellings the driver honours: a host, port or user in the query,
/// a database named only by the user, and on MySQL a percent-encoded name.
#[tokio::test]
async fn url_spellings_the_driver_honours_are_refused_at_load() -> TestResult {
    let dir = Dir::new()?;
    let mut missed = Vec::new();
    for (base, other) in [
        (
            "postgres://postgres@127.0.0.1:5432/app",
            "postgres://postgres@db.invalid:6000/app?host=127.0.0.1&port=5432",
        ),
        (
            "postgres://postgres@127.0.0.1:5432/app",
            "postgres:///app?host=localhost&user=postgres",
        ),
        (
            "postgres://app@127.0.0.1:5432/app",
            "postgres://127.0.0.1:5432?user=app",
        ),
        (
            "postgres://postgres@127.0.0.1:5432/app",
            "postgres://postgres@[::1]:5432/%61%70%70",
        ),
        (
            "mysql://root@127.0.0.1:3306/app",
            "mariadb://root@localhost/%61pp",
        ),
    ] {
        let config = dir.config("spell", &[("dev", base), ("staging", other)])?;
        let out = dir.run(&config, &["status"]).await?;
        if out.status.code() != Some(2) || !said(&out).contains("point at the same database") {
            missed.push(format!("{base} vs {other}: {}", shown(&out)));
        }
    }
    assert!(missed.is_empty(), "not refused:\n{}", missed.join("\n"));
    Ok(())
}

/// Different databases stay different: `dbname` naming another database
/// than the path's, and MySQL ignoring a `dbname` it does not honour.
#[tokio::test]
async fn different_databases_are_not_taken_for_one() -> TestResult {
    let dir = Dir::new()?;
    for (base, other) in [
        (
            "postgres://postgres@127.0.0.1:5432/app",
            "postgres://postgres@127.0.0.1:5432/app?dbname=app_staging",
        ),
        (
            "postgres://postgres@127.0.0.1:5432/app",
            "postgres://postgres@127.0.0.1:5432/app?port=5433",
        ),
        (
            "mysql://root@127.0.0.1:3306/app",
            "mysql://root@127.0.0.1:3306/app_staging?dbname=app",
        ),
    ] {
        let config = dir.config("spell", &[("dev", base), ("staging", other)])?;
        let out = dir.run(&config, &["status"]).await?;
        assert!(
            !said(&out).contains("point at the same database"),
            "{base} vs {other}: {}",
            shown(&out)
        );
    }
    Ok(())
}

/// `search_path` in a Postgres URL's options, in each spelling the driver
/// takes, is refused at load naming the environment, before any connection.
#[tokio::test]
async fn a_search_path_in_the_url_options_is_refused_at_load() -> TestResult {
    let dir = Dir::new()?;
    for url in [
        "postgres://postgres@127.0.0.1:5432/app?options=-c%20search_path%3Dother",
        "postgres://postgres@127.0.0.1:5432/app?options=--search-path%3Dother",
        "postgres://postgres@127.0.0.1:5432/app?options[search_path]=other",
        "postgres://postgres@127.0.0.1:5432/app?options=-c%20SEARCH_PATH%3Dother",
    ] {
        let config = dir.config("sp", &[("dev", url)])?;
        let out = dir.run(&config, &["status"]).await?;
        assert_eq!(out.status.code(), Some(2), "{url}: {}", shown(&out));
        assert!(
            said(&out).contains("dev.database_url sets search_path"),
            "{url}: {}",
            shown(&out)
        );
    }
    Ok(())
}

/// SQLite spellings through `${VAR}` and symlinks, at config load.
#[tokio::test]
async fn sqlite_spellings_through_vars_and_symlinks_are_refused_at_load() -> TestResult {
    let dir = Dir::new()?;
    std::fs::write(dir.path.join("app.db"), b"")?;
    std::fs::create_dir_all(dir.path.join("sub"))?;
    #[cfg(unix)]
    std::os::unix::fs::symlink(dir.path.join("app.db"), dir.path.join("link.db"))?;
    let abs = format!("sqlite://{}", dir.path.join("app.db").display());
    for other in [
        "sqlite://${DB_FILE}",
        "sqlite://./sub/../app.db",
        "sqlite://link.db",
        abs.as_str(),
    ] {
        let config = dir.config("spell", &[("dev", "sqlite://app.db"), ("staging", other)])?;
        let out = run_in(&dir.path, &config, &["status"], &[("DB_FILE", "app.db")]).await?;
        assert_eq!(out.status.code(), Some(2), "{other}: {}", shown(&out));
        assert!(
            said(&out).contains("point at the same database"),
            "{other}: {}",
            shown(&out)
        );
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// The recorded promotion order: new instances
// ---------------------------------------------------------------------------

/// Reordered after the plan started: prod moved before staging.
#[tokio::test]
async fn a_reordered_promotion_order_keeps_prod_behind_staging() -> TestResult {
    let dir = Dir::new()?;
    sqlite_envs(&dir, &["dev", "staging", "prod"]).await?;
    let config = envs_config(&dir, &["dev", "staging", "prod"])?;
    let out = dir.run(&config, &["apply", "--env", "dev", PLAN]).await?;
    assert_eq!(out.status.code(), Some(0), "{}", shown(&out));
    let config = envs_config(&dir, &["dev", "prod", "staging"])?;
    let gate = dir.run(&config, &["gate", "--env", "prod", PLAN]).await?;
    assert_eq!(gate.status.code(), Some(1), "{}", shown(&gate));
    assert!(said(&gate).contains("staging"), "{}", shown(&gate));
    Ok(())
}

/// Renamed after the plan started: staging replaced by `qa` (its own new
/// database), which then runs phase 1 and records the new order in its own
/// log. The order the plan started under (dev → staging → prod) is read
/// where the plan started first (dev), so prod's gate still asks for
/// staging, and names `accept-change --env dev` as the deliberate way on.
#[tokio::test]
async fn a_renamed_environment_does_not_stand_in_for_the_recorded_one() -> TestResult {
    let dir = Dir::new()?;
    sqlite_envs(&dir, &["dev", "staging", "qa", "prod"]).await?;
    let config = envs_config(&dir, &["dev", "staging", "prod"])?;
    let out = dir.run(&config, &["apply", "--env", "dev", PLAN]).await?;
    assert_eq!(out.status.code(), Some(0), "{}", shown(&out));
    let config = envs_config(&dir, &["dev", "qa", "prod"])?;
    let out = dir.run(&config, &["apply", "--env", "qa", PLAN]).await?;
    assert_eq!(out.status.code(), Some(0), "{}", shown(&out));
    let gate = dir.run(&config, &["gate", "--env", "prod", PLAN]).await?;
    assert_eq!(gate.status.code(), Some(1), "{}", shown(&gate));
    assert!(said(&gate).contains("staging"), "{}", shown(&gate));
    assert!(
        said(&gate).contains("accept-change --env dev"),
        "{}",
        shown(&gate)
    );
    Ok(())
}

/// The rename again: `status` (which reads every environment at once)
/// holds prod for the same reason as `gate`, and `apply` in prod runs
/// nothing; `accept-change --env dev` records the new order where the plan
/// started first, after which prod may follow qa.
#[tokio::test]
async fn a_renamed_environment_holds_status_and_apply_until_the_change_is_accepted() -> TestResult {
    let dir = Dir::new()?;
    sqlite_envs(&dir, &["dev", "staging", "qa", "prod"]).await?;
    let config = envs_config(&dir, &["dev", "staging", "prod"])?;
    let out = dir.run(&config, &["apply", "--env", "dev", PLAN]).await?;
    assert_eq!(out.status.code(), Some(0), "{}", shown(&out));
    let config = envs_config(&dir, &["dev", "qa", "prod"])?;
    let out = dir.run(&config, &["apply", "--env", "qa", PLAN]).await?;
    assert_eq!(out.status.code(), Some(0), "{}", shown(&out));
    let status = dir.run(&config, &["status", "--env", "prod"]).await?;
    assert!(
        said(&status).contains("staging was before prod"),
        "{}",
        shown(&status)
    );
    let apply = dir.run(&config, &["apply", "--env", "prod", PLAN]).await?;
    assert_eq!(apply.status.code(), Some(1), "{}", shown(&apply));
    assert!(!prod_has_log(&dir).await?, "phase 1 ran in prod");
    let accept = dir
        .run(
            &config,
            &[
                "accept-change",
                "--env",
                "dev",
                PLAN,
                "--reason",
                "staging renamed qa",
            ],
        )
        .await?;
    assert_eq!(accept.status.code(), Some(0), "{}", shown(&accept));
    let gate = dir.run(&config, &["gate", "--env", "prod", PLAN]).await?;
    assert_eq!(gate.status.code(), Some(0), "{}", shown(&gate));
    assert!(!said(&gate).contains("staging"), "{}", shown(&gate));
    assert!(
        said(&gate).contains("qa completed phase 1"),
        "{}",
        shown(&gate)
    );
    Ok(())
}

/// An environment that joined after the plan started (canary, in place of
/// staging) records its own order when it runs phase 1; prod is still held
/// to dev's (dev → staging → prod). With staging back before canary, the
/// added environment only makes the order longer, and is not a reason.
#[tokio::test]
async fn an_added_environment_does_not_replace_where_the_plan_started() -> TestResult {
    let dir = Dir::new()?;
    sqlite_envs(&dir, &["dev", "staging", "canary", "prod"]).await?;
    let config = envs_config(&dir, &["dev", "staging", "prod"])?;
    let out = dir.run(&config, &["apply", "--env", "dev", PLAN]).await?;
    assert_eq!(out.status.code(), Some(0), "{}", shown(&out));
    let config = envs_config(&dir, &["dev", "canary", "prod"])?;
    let out = dir
        .run(&config, &["apply", "--env", "canary", PLAN])
        .await?;
    assert_eq!(out.status.code(), Some(0), "{}", shown(&out));
    let gate = dir.run(&config, &["gate", "--env", "prod", PLAN]).await?;
    assert_eq!(gate.status.code(), Some(1), "{}", shown(&gate));
    assert!(
        said(&gate).contains("staging was before prod"),
        "{}",
        shown(&gate)
    );
    let config = envs_config(&dir, &["dev", "staging", "canary", "prod"])?;
    let gate = dir.run(&config, &["gate", "--env", "prod", PLAN]).await?;
    assert!(!said(&gate).contains("was before prod"), "{}", shown(&gate));
    Ok(())
}

// ---------------------------------------------------------------------------
// Status and gate when an environment cannot be read: new instances
// ---------------------------------------------------------------------------

/// An environment whose database file is not a database at all.
#[tokio::test]
async fn status_and_gate_exit_2_on_a_file_that_is_not_a_database() -> TestResult {
    let dir = Dir::new()?;
    std::fs::write(
        dir.path.join("junk.db"),
        b"this is not a SQLite database, just text\n",
    )?;
    let config = dir.config("junk", &[("dev", "sqlite://junk.db")])?;
    let status = dir.run(&config, &["status"]).await?;
    assert_eq!(status.status.code(), Some(2), "{}", shown(&status));
    let json = dir.run(&config, &["status", "--format", "json"]).await?;
    assert_eq!(json.status.code(), Some(2), "{}", shown(&json));
    let gate = dir.run(&config, &["gate", "--env", "dev", PLAN]).await?;
    assert_eq!(gate.status.code(), Some(2), "{}", shown(&gate));
    assert_eq!(
        std::fs::read(dir.path.join("junk.db"))?,
        b"this is not a SQLite database, just text\n",
        "the file is left as it was"
    );
    Ok(())
}

/// A server that accepts the connection but is not the database the URL
/// names (wrong password / user): status and gate exit 2 with JSON too.
#[tokio::test]
async fn status_and_gate_exit_2_on_a_refused_login() -> TestResult {
    let dir = Dir::new()?;
    let config = dir.config(
        "login",
        &[
            ("dev", "postgres://no_such_user_b2@127.0.0.1:5432/postgres"),
            ("staging", "mysql://no_such_user_b2@127.0.0.1:3306/test"),
        ],
    )?;
    let status = dir.run(&config, &["status"]).await?;
    assert_eq!(status.status.code(), Some(2), "{}", shown(&status));
    let json = dir.run(&config, &["status", "--format", "json"]).await?;
    assert_eq!(json.status.code(), Some(2), "{}", shown(&json));
    serde_json::from_slice::<serde_json::Value>(&json.stdout)
        .map_err(|e| fail(format!("status --format json: {e}\n{}", shown(&json))))?;
    let gate = dir
        .run(&config, &["gate", "--env", "staging", PLAN])
        .await?;
    assert_eq!(gate.status.code(), Some(2), "{}", shown(&gate));
    Ok(())
}

// ---------------------------------------------------------------------------
// Read-only commands create nothing: new instances
// ---------------------------------------------------------------------------

/// The library's read-only start-up check on a misspelt SQLite path.
#[tokio::test]
async fn phase_reached_does_not_create_a_misspelt_sqlite_file() -> TestResult {
    let dir = Dir::new()?;
    let missing = dir.path.join("mispelt.db");
    let url = format!("sqlite://{}", missing.display());
    let _ = phasegate::tracker::phase_reached(&url, PLAN, 1).await;
    assert!(
        !missing.exists(),
        "phase_reached created {}",
        missing.display()
    );
    let lock = dir.path.join("mispelt.db.phasegate-lock");
    assert!(!lock.exists(), "phase_reached created {}", lock.display());
    Ok(())
}

/// Read-only commands on a MySQL URL whose database does not exist, and on
/// a SQLite path in a folder that does not exist: nothing created.
#[tokio::test]
async fn read_only_commands_create_no_database_or_folder() -> TestResult {
    let dir = Dir::new()?;
    let name = format!("phasegate_b2_missing_{}", std::process::id());
    let config = dir.config(
        "ro",
        &[
            ("dev", "sqlite://nested/deeper/dev.db"),
            ("staging", &format!("mysql://root@127.0.0.1:3306/{name}")),
        ],
    )?;
    for args in [
        vec!["status"],
        vec!["history", "--env", "dev"],
        vec!["history", "--env", "staging"],
        vec!["gate", "--env", "dev", PLAN],
        vec!["gate", "--env", "staging", PLAN],
        vec!["verify", "--env", "staging", PLAN],
        vec!["plan", "--env", "staging", PLAN],
    ] {
        let out = dir.run(&config, &args).await?;
        assert_ne!(out.status.code(), Some(0), "{args:?}: {}", shown(&out));
        assert!(
            !said(&out).contains("panicked"),
            "{args:?}: {}",
            shown(&out)
        );
    }
    assert!(!dir.path.join("nested").exists(), "a folder was created");
    let server =
        std::env::var(common::MYSQL_URL_ENV).unwrap_or_else(|_| common::DEFAULT_MYSQL_URL.into());
    if let Ok(mut c) = sqlx::MySqlConnection::connect(&server).await {
        let n: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?",
        )
        .bind(&name)
        .fetch_one(&mut c)
        .await?;
        assert_eq!(n, 0, "a database was created");
    }
    Ok(())
}
