//! Adversarial attempts on the environment lock and first use of a fresh
//! database under concurrency, and on hand-recorded events and garbled logs:
//! new instances of the kinds. A passing test is a defence that held;
//! `#[ignore = "BREAKS: …"]` marks a documented limit.

mod break_support;
mod common;
mod executor_support;

use break_support::*;

// ---------------------------------------------------------------------------
// The environment lock: new instances
// ---------------------------------------------------------------------------

/// One SQLite database, one environment, reached through a symlink in one
/// config and directly in another (a deploy folder linked as `current`):
/// the lock follows the file, not the path, so the two runs exclude each
/// other (one applies phase 1, the other phase 2) and create no side-car.
async fn symlinked_lock(db: TestDb) -> TestResult {
    let dir = Dir::new()?;
    let link = dir.path.join("link.db");
    #[cfg(unix)]
    std::os::unix::fs::symlink(&db.name, &link)?;
    one_file_two_paths(db, dir, &link).await
}

/// The same, with the file spelt through `..` (`<dir>/../<file>`).
async fn dotted_lock(db: TestDb) -> TestResult {
    let dir = Dir::new()?;
    let file = Path::new(&db.name).file_name().map(PathBuf::from);
    let dotted = dir.path.join("..").join(file.unwrap_or_default());
    one_file_two_paths(db, dir, &dotted).await
}

/// Two applies at once of one environment, one config naming the database
/// by its path, the other by `other`: one applies phase 1, the other phase
/// 2, and no side-car lock file appears.
async fn one_file_two_paths(db: TestDb, dir: Dir, other: &Path) -> TestResult {
    seed(&db).await?;
    let link = other;
    let direct = dir.config("direct", &[(ENV, &db.url)])?;
    let linked = dir.config("linked", &[(ENV, &format!("sqlite://{}", link.display()))])?;
    let (a, b) = tokio::join!(
        dir.run(&direct, &["apply", "--env", ENV, PLAN]),
        dir.run(&linked, &["apply", "--env", ENV, PLAN])
    );
    let (a, b) = (a?, b?);
    let all = format!("{}\n=====\n{}", shown(&a), shown(&b));
    let side_car = PathBuf::from(format!("{}.phasegate-lock", db.name));
    assert!(
        !side_car.exists(),
        "a side-car lock file was created: {all}"
    );
    assert!(
        a.status.code() == Some(0) && b.status.code() == Some(0),
        "both apply, one phase each:\n{all}"
    );
    let out = format!("{}{}", said(&a), said(&b));
    assert!(
        out.contains("phase 1 of 3 applied") && out.contains("phase 2 of 3 applied"),
        "{all}"
    );
    let log = events(&db).await;
    assert_eq!(
        log.iter().filter(|e| e.1 == "phase_migrated").count(),
        2,
        "{log:#?}"
    );
    Ok(())
}

#[tokio::test]
async fn a_symlinked_sqlite_path_takes_the_same_environment_lock() {
    for _ in 0..3 {
        with_sqlite(symlinked_lock).await;
    }
}

#[tokio::test]
async fn a_dotted_sqlite_path_takes_the_same_environment_lock() {
    for _ in 0..3 {
        with_sqlite(dotted_lock).await;
    }
}

// ---------------------------------------------------------------------------
// First use of a fresh database under concurrency: other commands
// ---------------------------------------------------------------------------

/// Four `backup` and two `status` at once on a fresh database: the backups
/// all record, the statuses never fail on half-made tables.
async fn fresh_backups(db: TestDb) -> TestResult {
    seed(&db).await?;
    let project = Project::new(&db, &["lock_wait: 60s"], PLAN, RENAME)?;
    let mut runs = Vec::new();
    for i in 0..6 {
        let args: &[&str] = if i % 3 == 2 {
            &["status"]
        } else {
            &["backup", "--env", ENV, "--location", "s3://backups/b2"]
        };
        runs.push(run(&project, args));
    }
    let outs = futures::future::join_all(runs).await;
    let outs: Vec<Output> = outs.into_iter().collect::<Result<_, _>>()?;
    let all = outs.iter().map(shown).collect::<Vec<_>>().join("\n=====\n");
    assert!(
        outs.iter().all(|o| o.status.code() == Some(0)),
        "all succeed:\n{all}"
    );
    let log = events(&db).await;
    assert_eq!(
        log.iter().filter(|e| e.1.contains("backup")).count(),
        4,
        "{log:#?}\n{all}"
    );
    Ok(())
}

#[tokio::test]
async fn backups_and_statuses_at_once_on_a_fresh_database_on_mysql() {
    for _ in 0..2 {
        with_mysql(fresh_backups).await;
    }
}

#[tokio::test]
async fn backups_and_statuses_at_once_on_a_fresh_database_on_postgres() {
    for _ in 0..2 {
        with_postgres(fresh_backups).await;
    }
}

#[tokio::test]
async fn backups_and_statuses_at_once_on_a_fresh_database_on_sqlite() {
    for _ in 0..2 {
        with_sqlite(fresh_backups).await;
    }
}

// ---------------------------------------------------------------------------
// More: the lock around hand-recorded events, newer or garbled logs
// ---------------------------------------------------------------------------

/// Three `mark` of one phase at once (three CI jobs racing): one records
/// the deploy, the others find it marked already (exit 0, nothing
/// recorded); never three deploy events.
async fn marks_at_once(db: TestDb) -> TestResult {
    let project = applied(&db).await?;
    let out = run(&project, &["apply", "--env", ENV, PLAN]).await?;
    assert_eq!(out.status.code(), Some(0), "{}", shown(&out));
    let runs = (1..=3).map(|i| {
        let v = format!("v{i}");
        let project = &project;
        async move {
            run(
                project,
                &[
                    "mark",
                    "--env",
                    ENV,
                    PLAN,
                    "--phase",
                    "2",
                    "--app-version",
                    &v,
                ],
            )
            .await
        }
    });
    let outs: Vec<Output> = futures::future::join_all(runs)
        .await
        .into_iter()
        .collect::<Result<_, _>>()?;
    let all = outs.iter().map(shown).collect::<Vec<_>>().join("\n=====\n");
    // One records the deploy; the others find it marked: nothing to do (exit 0).
    assert!(outs.iter().all(|o| o.status.code() == Some(0)), "{all}");
    let said = |o: &Output, what: &str| String::from_utf8_lossy(&o.stdout).contains(what);
    assert_eq!(
        outs.iter()
            .filter(|o| said(o, "phase 2 deployed in"))
            .count(),
        1,
        "{all}"
    );
    assert_eq!(
        outs.iter()
            .filter(|o| said(o, "phase 2 is already marked deployed in"))
            .count(),
        2,
        "{all}"
    );
    let deployed = events(&db)
        .await
        .iter()
        .filter(|e| e.1 == "phase_deployed")
        .count();
    assert_eq!(deployed, 2, "phase 1 and phase 2 once each\n{all}");
    Ok(())
}

#[tokio::test]
async fn three_marks_at_once_record_one_deploy_on_postgres() {
    with_postgres(marks_at_once).await;
}

#[tokio::test]
async fn three_marks_at_once_record_one_deploy_on_mysql() {
    with_mysql(marks_at_once).await;
}

#[tokio::test]
async fn three_marks_at_once_record_one_deploy_on_sqlite() {
    with_sqlite(marks_at_once).await;
}

/// Applies, rollbacks and gates at once on a fresh database: each either
/// works, is refused (exit 0 or 1) or finds phase 2 waiting for its deploy
/// (exit 3), never a database error from tables half made (exit 2).
async fn fresh_mixed(db: TestDb) -> TestResult {
    seed(&db).await?;
    let project = Project::new(&db, &["lock_wait: 60s"], PLAN, RENAME)?;
    let runs = (0..6).map(|i| {
        let args: &[&str] = match i % 3 {
            0 => &["apply", "--env", ENV, PLAN],
            1 => &["rollback", "--env", ENV, PLAN],
            _ => &["gate", "--env", ENV, PLAN],
        };
        run(&project, args)
    });
    let outs: Vec<Output> = futures::future::join_all(runs)
        .await
        .into_iter()
        .collect::<Result<_, _>>()?;
    let names = ["apply", "rollback", "gate"];
    let all = outs
        .iter()
        .enumerate()
        .map(|(i, o)| format!("[{}] {}", names[i % 3], shown(o)))
        .collect::<Vec<_>>()
        .join("\n=====\n");
    assert!(
        outs.iter()
            .all(|o| matches!(o.status.code(), Some(0 | 1 | 3))),
        "{all}"
    );
    let status = run(&project, &["status"]).await?;
    assert_eq!(status.status.code(), Some(0), "{}\n{all}", shown(&status));
    Ok(())
}

#[tokio::test]
async fn applies_rollbacks_and_gates_at_once_on_a_fresh_database_on_mysql() {
    for _ in 0..2 {
        with_mysql(fresh_mixed).await;
    }
}

#[tokio::test]
async fn applies_rollbacks_and_gates_at_once_on_a_fresh_database_on_postgres() {
    for _ in 0..2 {
        with_postgres(fresh_mixed).await;
    }
}

#[tokio::test]
async fn applies_rollbacks_and_gates_at_once_on_a_fresh_database_on_sqlite() {
    for _ in 0..2 {
        with_sqlite(fresh_mixed).await;
    }
}

/// The log's schema version edited: a newer one (a later phasegate wrote
/// it), and one that is not a number. Refused clearly, nothing applied.
async fn version_edited(db: TestDb) -> TestResult {
    let project = applied(&db).await?;
    let key = db.pick3("key", "key", "`key`");
    let set =
        |v: &str| format!("UPDATE phasegate_meta SET value = '{v}' WHERE {key} = 'schema_version'");
    // The guard refuses lowering the version or making it unreadable.
    db.assert_fails(&set("1"), "cannot be changed or deleted")
        .await?;
    db.assert_fails(&set("two"), "cannot be changed or deleted")
        .await?;
    // Raising it (what a later phasegate does) passes the guard.
    db.exec(&set("99")).await?;
    assert_refused(&db, &project).await?;
    // And with the guard dropped and put back: not a number.
    behind_guard(
        &db,
        meta_update_guard(&db),
        "phasegate_meta",
        &[&set("two")],
    )
    .await?;
    assert_refused(&db, &project).await
}

#[tokio::test]
async fn an_edited_schema_version_is_refused_on_postgres() {
    with_postgres(version_edited).await;
}

#[tokio::test]
async fn an_edited_schema_version_is_refused_on_mysql() {
    with_mysql(version_edited).await;
}

#[tokio::test]
async fn an_edited_schema_version_is_refused_on_sqlite() {
    with_sqlite(version_edited).await;
}

/// The environment marker changed to another environment's name (refused
/// by its guard; done with the guard dropped and put back): the
/// environment that wrote the log is refused, never re-claims it quietly.
async fn marker_changed(db: TestDb) -> TestResult {
    let project = applied(&db).await?;
    let key = db.pick3("key", "key", "`key`");
    let update = format!("UPDATE phasegate_meta SET value = 'prod' WHERE {key} = 'environment'");
    db.assert_fails(&update, "cannot be changed or deleted")
        .await?;
    behind_guard(&db, meta_update_guard(&db), "phasegate_meta", &[&update]).await?;
    assert_refused(&db, &project).await
}

#[tokio::test]
async fn a_changed_environment_marker_is_refused_on_sqlite() {
    with_sqlite(marker_changed).await;
}

#[tokio::test]
async fn a_changed_environment_marker_is_refused_on_mysql() {
    with_mysql(marker_changed).await;
}

#[tokio::test]
async fn a_changed_environment_marker_is_refused_on_postgres() {
    with_postgres(marker_changed).await;
}

/// `status` (which takes no lock) read again and again while `backup`s
/// append to the log: it must never read a torn log (the events before an
/// append, the head after it) as a tampered one.
async fn status_while_writing(db: TestDb) -> TestResult {
    let project = applied(&db).await?;
    let writer = async {
        for _ in 0..8 {
            let out = run(
                &project,
                &["backup", "--env", ENV, "--location", "s3://backups/b2"],
            )
            .await?;
            assert_eq!(out.status.code(), Some(0), "{}", shown(&out));
        }
        TestResult::Ok(())
    };
    let reader = async {
        let mut torn = Vec::new();
        for _ in 0..8 {
            let out = run(&project, &["status"]).await?;
            if out.status.code() != Some(0) {
                torn.push(shown(&out));
            }
        }
        TestResult::Ok(torn)
    };
    let (w, r) = tokio::join!(writer, reader);
    w?;
    let torn = r?;
    assert!(torn.is_empty(), "{}", torn.join("\n=====\n"));
    Ok(())
}

#[tokio::test]
async fn status_while_backups_append_never_says_tampered_on_postgres() {
    with_postgres(status_while_writing).await;
}

#[tokio::test]
async fn status_while_backups_append_never_says_tampered_on_mysql() {
    with_mysql(status_while_writing).await;
}

#[tokio::test]
async fn status_while_backups_append_never_says_tampered_on_sqlite() {
    with_sqlite(status_while_writing).await;
}

/// The environment promoted from cannot be read (its database file gone):
/// prod's gate cannot judge promotion and must say so, never "may proceed"
/// on a guess; apply runs nothing in prod.
#[tokio::test]
async fn prod_gate_holds_nothing_when_staging_cannot_be_read() -> TestResult {
    let dir = Dir::new()?;
    sqlite_envs(&dir, &["dev", "staging", "prod"]).await?;
    let config = envs_config(&dir, &["dev", "staging", "prod"])?;
    for env in ["dev", "staging"] {
        let out = dir.run(&config, &["apply", "--env", env, PLAN]).await?;
        assert_eq!(out.status.code(), Some(0), "{}", shown(&out));
    }
    std::fs::rename(
        dir.path.join("staging.db"),
        dir.path.join("staging.db.moved"),
    )?;
    // It says so as a blocked gate (exit 1, "cannot read staging"), not
    // as an error (exit 2): non-zero either way.
    let gate = dir.run(&config, &["gate", "--env", "prod", PLAN]).await?;
    assert!(
        matches!(gate.status.code(), Some(1 | 2)),
        "{}",
        shown(&gate)
    );
    assert!(
        said(&gate).contains("cannot read staging"),
        "{}",
        shown(&gate)
    );
    let apply = dir.run(&config, &["apply", "--env", "prod", PLAN]).await?;
    assert!(
        matches!(apply.status.code(), Some(1 | 2)),
        "{}",
        shown(&apply)
    );
    assert!(!prod_has_log(&dir).await?, "prod ran nothing");
    Ok(())
}

/// Two environments whose URLs differ only in which variable names the
/// database, both variables set to the same name: refused at load.
#[tokio::test]
async fn two_variables_naming_one_database_are_refused_at_load() -> TestResult {
    let dir = Dir::new()?;
    let config = dir.config(
        "vars",
        &[
            ("dev", "postgres://postgres@127.0.0.1:5432/${DEV_DB}"),
            ("staging", "postgres://postgres@localhost/${STAGING_DB}"),
        ],
    )?;
    let out = run_in(
        &dir.path,
        &config,
        &["status"],
        &[("DEV_DB", "app_b2"), ("STAGING_DB", "app_b2")],
    )
    .await?;
    assert_eq!(out.status.code(), Some(2), "{}", shown(&out));
    assert!(
        said(&out).contains("point at the same database"),
        "{}",
        shown(&out)
    );
    Ok(())
}

/// One SQLite file reached through a hard link by a second config of the
/// same environment: the lock follows the file's identity, so two applies
/// at once exclude each other.
async fn hardlinked_lock(db: TestDb) -> TestResult {
    seed(&db).await?;
    let dir = Dir::new()?;
    let link = dir.path.join("hard.db");
    std::fs::hard_link(&db.name, &link)?;
    let direct = dir.config("direct", &[(ENV, &db.url)])?;
    let linked = dir.config("linked", &[(ENV, &format!("sqlite://{}", link.display()))])?;
    let (a, b) = tokio::join!(
        dir.run(&direct, &["apply", "--env", ENV, PLAN]),
        dir.run(&linked, &["apply", "--env", ENV, PLAN])
    );
    let (a, b) = (a?, b?);
    let all = format!("{}\n=====\n{}", shown(&a), shown(&b));
    let side_car = PathBuf::from(format!("{}.phasegate-lock", db.name));
    assert!(
        !side_car.exists(),
        "a side-car lock file was created: {all}"
    );
    let out = format!("{}{}", said(&a), said(&b));
    assert!(
        a.status.code() == Some(0)
            && b.status.code() == Some(0)
            && out.contains("phase 1 of 3 applied")
            && out.contains("phase 2 of 3 applied"),
        "{all}"
    );
    Ok(())
}

#[tokio::test]
async fn a_hard_linked_sqlite_path_takes_the_same_environment_lock() {
    for _ in 0..3 {
        with_sqlite(hardlinked_lock).await;
    }
}

/// A log made to look older than the chain (schema version 1: no chain
/// columns, no head, no marker) after events were deleted from it: the
/// deletion should not become trusted history; read-only commands read
/// such a log as it is, and the first write migrates (chains) it.
async fn fake_v1(db: TestDb) -> TestResult {
    let project = applied(&db).await?;
    let sql: &[&str] = match db.dialect {
        Dialect::Postgres => &[
            "DROP TRIGGER phasegate_events_chain ON phasegate_events",
            "DROP TRIGGER phasegate_events_no_truncate ON phasegate_events",
            "DROP TRIGGER phasegate_events_append_only ON phasegate_events",
            "DROP TRIGGER phasegate_meta_kept ON phasegate_meta",
            "DROP TRIGGER phasegate_meta_no_truncate ON phasegate_meta",
            "DROP TABLE phasegate_head",
            "ALTER TABLE phasegate_events DROP COLUMN prev_hash, DROP COLUMN hash",
        ],
        Dialect::Mysql => &[
            "DROP TRIGGER phasegate_events_chain_check",
            "DROP TRIGGER phasegate_events_chain",
            "DROP TRIGGER phasegate_events_no_delete",
            "DROP TRIGGER phasegate_meta_no_update",
            "DROP TRIGGER phasegate_meta_no_delete",
            "DROP TABLE phasegate_head",
            "ALTER TABLE phasegate_events DROP COLUMN prev_hash, DROP COLUMN hash",
        ],
        Dialect::Sqlite => &[
            "DROP TRIGGER phasegate_events_chain_check",
            "DROP TRIGGER phasegate_events_chain",
            "DROP TRIGGER phasegate_events_no_delete",
            "DROP TRIGGER phasegate_meta_no_update",
            "DROP TRIGGER phasegate_meta_no_delete",
            "DROP TABLE phasegate_head",
            "ALTER TABLE phasegate_events DROP COLUMN prev_hash",
            "ALTER TABLE phasegate_events DROP COLUMN hash",
        ],
    };
    for s in sql {
        db.exec(s).await?;
    }
    let key = db.pick3("key", "key", "`key`");
    db.exec(&format!(
        "UPDATE phasegate_meta SET value = '1' WHERE {key} = 'schema_version'"
    ))
    .await?;
    db.exec(&format!(
        "DELETE FROM phasegate_meta WHERE {key} = 'environment'"
    ))
    .await?;
    db.exec("DELETE FROM phasegate_events WHERE kind IN ('phase_migrated', 'phase_deployed')")
        .await?;
    let status = run(&project, &["status"]).await?;
    assert_ne!(status.status.code(), Some(0), "{}", shown(&status));
    Ok(())
}

#[tokio::test]
#[ignore = "BREAKS (documented limit, src/tracker/chain.rs and docs/workflow.md): with DDL rights, a v2 log disguised as schema version 1 (chain columns, head, v2 guards and marker dropped) with events deleted is read as a genuine old log: status 'phase 1 of 3: migrating; next: apply phase 1', exit 0"]
async fn a_log_disguised_as_an_older_version_is_noticed_on_sqlite() {
    with_sqlite(fake_v1).await;
}

#[tokio::test]
#[ignore = "BREAKS (documented limit, src/tracker/chain.rs and docs/workflow.md): with DDL rights, a v2 log disguised as schema version 1 (chain columns, head, v2 guards and marker dropped) with events deleted is read as a genuine old log: status 'phase 1 of 3: migrating; next: apply phase 1', exit 0"]
async fn a_log_disguised_as_an_older_version_is_noticed_on_mysql() {
    with_mysql(fake_v1).await;
}
