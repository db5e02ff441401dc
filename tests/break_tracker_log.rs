//! Adversarial attempts on the log's defences (guards, hash chain, head):
//! new instances of the kinds. A passing test is a defence that held;
//! `#[ignore = "BREAKS: …"]` marks a documented limit.

mod break_support;
mod common;
mod executor_support;

use break_support::*;

// ---------------------------------------------------------------------------
// The log defends itself: new instances
// ---------------------------------------------------------------------------

/// MariaDB fires no trigger on TRUNCATE: the head reset to look like a
/// fresh log's is refused by the head's guard, and the truncated log is
/// noticed.
#[tokio::test]
async fn truncate_and_a_reset_head_on_mysql_is_noticed() {
    with_mysql(|db| async move {
        let project = applied(&db).await?;
        db.exec("TRUNCATE phasegate_events").await?;
        db.assert_fails(
            "UPDATE phasegate_head SET last_id = 0, last_hash = '', events = 0",
            "only moves forward",
        )
        .await?;
        assert_tampered(&db, &project).await
    })
    .await;
}

/// The head never goes backwards (nor sideways): every update but the one
/// the insert trigger makes, one event forward, is refused.
async fn head_kept_forward(db: TestDb) -> TestResult {
    let project = applied(&db).await?;
    for edit in [
        "UPDATE phasegate_head SET last_id = 0, last_hash = '', events = 0",
        "UPDATE phasegate_head SET events = events - 1",
        "UPDATE phasegate_head SET last_hash = 'x'",
        "UPDATE phasegate_head SET events = events + 1",
        "UPDATE phasegate_head SET last_id = last_id - 1, events = events + 1",
    ] {
        db.assert_fails(edit, "only moves forward").await?;
    }
    let status = run(&project, &["status"]).await?;
    assert_eq!(status.status.code(), Some(0), "{}", shown(&status));
    Ok(())
}

#[tokio::test]
async fn the_head_never_goes_back_on_postgres() {
    with_postgres(head_kept_forward).await;
}

#[tokio::test]
async fn the_head_never_goes_back_on_mysql() {
    with_mysql(head_kept_forward).await;
}

#[tokio::test]
async fn the_head_never_goes_back_on_sqlite() {
    with_sqlite(head_kept_forward).await;
}

/// The head edited by hand: an edit its guard lets through (one event
/// forward, no event written) is noticed; so are edits made with the guard
/// dropped and put back.
async fn head_edited(db: TestDb) -> TestResult {
    let project = applied(&db).await?;
    db.exec("UPDATE phasegate_head SET events = events + 1, last_id = last_id + 1")
        .await?;
    assert_tampered(&db, &project).await?;
    behind_guard(
        &db,
        "phasegate_head_forward",
        "phasegate_head",
        &["UPDATE phasegate_head SET events = events - 1, last_id = last_id - 1, last_hash = 'x'"],
    )
    .await?;
    assert_tampered(&db, &project).await
}

#[tokio::test]
async fn an_edited_head_is_noticed_on_postgres() {
    with_postgres(head_edited).await;
}

#[tokio::test]
async fn an_edited_head_is_noticed_on_mysql() {
    with_mysql(head_edited).await;
}

#[tokio::test]
async fn an_edited_head_is_noticed_on_sqlite() {
    with_sqlite(head_edited).await;
}

/// An event inserted by hand, guards intact, that follows the head's hash
/// (so the chain trigger accepts it) but carries a made-up hash.
async fn forged_bad_hash(db: TestDb) -> TestResult {
    let project = applied(&db).await?;
    let last = db
        .text("SELECT last_hash FROM phasegate_head WHERE id = 1")
        .await?
        .unwrap_or_default();
    db.exec(&format!(
        "INSERT INTO phasegate_events (at_ms, plan, kind, phase, detail, actor, prev_hash, hash) \
         VALUES (0, 'rename-users-name', 'phase_migrated', 2, '', 'mallory', '{last}', 'forged')"
    ))
    .await?;
    assert_tampered(&db, &project).await
}

#[tokio::test]
async fn a_forged_event_with_a_made_up_hash_is_noticed_on_postgres() {
    with_postgres(forged_bad_hash).await;
}

#[tokio::test]
async fn a_forged_event_with_a_made_up_hash_is_noticed_on_mysql() {
    with_mysql(forged_bad_hash).await;
}

#[tokio::test]
async fn a_forged_event_with_a_made_up_hash_is_noticed_on_sqlite() {
    with_sqlite(forged_bad_hash).await;
}

/// An event inserted by hand, guards intact, hashed as phasegate hashes
/// (the hash has no secret): "phase 2 migrated" although nothing ran.
async fn forged_good_hash(db: TestDb) -> TestResult {
    let project = applied(&db).await?;
    let last = db
        .text("SELECT last_hash FROM phasegate_head WHERE id = 1")
        .await?
        .unwrap_or_default();
    let at = db.scalar("SELECT max(at_ms) FROM phasegate_events").await? + 1;
    let hash = forge_hash(
        &last,
        at,
        Some(PLAN),
        "phase_migrated",
        Some(2),
        None,
        "",
        "ci-runner",
    );
    db.exec(&format!(
        "INSERT INTO phasegate_events (at_ms, plan, kind, phase, detail, actor, prev_hash, hash) \
         VALUES ({at}, '{PLAN}', 'phase_migrated', 2, '', 'ci-runner', '{last}', '{hash}')"
    ))
    .await?;
    assert_tampered(&db, &project).await
}

#[tokio::test]
#[ignore = "BREAKS (documented limit, src/tracker/chain.rs and docs/workflow.md): the hash has no secret, so an INSERT with a correctly computed hash that follows the head is accepted; status reports phase 2 migrated though it never ran, exit 0. Needs a keyed chain (not built)"]
async fn a_forged_event_with_a_computed_hash_is_noticed_on_postgres() {
    with_postgres(forged_good_hash).await;
}

#[tokio::test]
#[ignore = "BREAKS (documented limit, src/tracker/chain.rs and docs/workflow.md): the hash has no secret, so an INSERT with a correctly computed hash that follows the head is accepted; status reports phase 2 migrated though it never ran, exit 0. Needs a keyed chain (not built)"]
async fn a_forged_event_with_a_computed_hash_is_noticed_on_sqlite() {
    with_sqlite(forged_good_hash).await;
}

/// `DROP TABLE phasegate_events` (with the `phasegate_status` view that
/// reads it, which Postgres would not drop the table without),
/// `phasegate_meta` and `phasegate_head` left: never read as a log
/// phasegate has not started, never recreated.
async fn events_dropped(db: TestDb) -> TestResult {
    let project = applied(&db).await?;
    db.exec("DROP VIEW phasegate_status").await?;
    db.exec("DROP TABLE phasegate_events").await?;
    assert_refused(&db, &project).await?;
    assert!(
        !db.has_relation("phasegate_events").await?,
        "a command recreated the dropped log"
    );
    Ok(())
}

#[tokio::test]
async fn a_dropped_events_table_is_noticed_on_postgres() {
    with_postgres(events_dropped).await;
}

#[tokio::test]
async fn a_dropped_events_table_is_noticed_on_mysql() {
    with_mysql(events_dropped).await;
}

#[tokio::test]
async fn a_dropped_events_table_is_noticed_on_sqlite() {
    with_sqlite(events_dropped).await;
}

/// `ALTER TABLE` on the log: a column renamed. A clear error, exit
/// non-zero, nothing applied.
async fn column_renamed(db: TestDb) -> TestResult {
    let project = applied(&db).await?;
    db.exec("ALTER TABLE phasegate_events RENAME COLUMN actor TO who")
        .await?;
    assert_refused(&db, &project).await
}

#[tokio::test]
async fn a_renamed_log_column_is_refused_on_postgres() {
    with_postgres(column_renamed).await;
}

#[tokio::test]
async fn a_renamed_log_column_is_refused_on_mysql() {
    with_mysql(column_renamed).await;
}

#[tokio::test]
async fn a_renamed_log_column_is_refused_on_sqlite() {
    with_sqlite(column_renamed).await;
}

/// Postgres: the guards disabled with `ALTER TABLE … DISABLE TRIGGER`
/// (not dropped), the last event deleted, the guards enabled again.
#[tokio::test]
async fn disabled_guards_and_a_deleted_last_event_are_noticed_on_postgres() {
    with_postgres(|db| async move {
        let project = applied(&db).await?;
        db.exec(
            "ALTER TABLE phasegate_events DISABLE TRIGGER USER; \
             DELETE FROM phasegate_events WHERE id = (SELECT max(id) FROM phasegate_events); \
             ALTER TABLE phasegate_events ENABLE TRIGGER USER",
        )
        .await?;
        assert_tampered(&db, &project).await
    })
    .await;
}

/// The guard triggers dropped, nothing else touched: the log itself is
/// intact, but may have been changed while it was unguarded (and a forged
/// event with a computed hash would not show in the chain), so every
/// command refuses it as tampered with, naming the missing trigger, and
/// records nothing.
async fn guards_dropped(db: TestDb) -> TestResult {
    let project = applied(&db).await?;
    let drops: &[&str] = match db.dialect {
        Dialect::Postgres => &[
            "DROP TRIGGER phasegate_events_append_only ON phasegate_events",
            "DROP TRIGGER phasegate_events_no_truncate ON phasegate_events",
        ],
        Dialect::Mysql | Dialect::Sqlite => &[
            "DROP TRIGGER phasegate_events_no_update",
            "DROP TRIGGER phasegate_events_no_delete",
        ],
    };
    for d in drops {
        db.exec(d).await?;
    }
    assert_tampered(&db, &project).await?;
    let out = run(&project, &["apply", "--env", ENV, PLAN]).await?;
    let first = db.pick3(
        "phasegate_events_append_only",
        "phasegate_events_no_update",
        "phasegate_events_no_update",
    );
    assert!(
        said(&out).contains(&format!("the trigger {first} on phasegate_events")),
        "{}",
        shown(&out)
    );
    Ok(())
}

#[tokio::test]
async fn dropped_guards_are_refused_as_tampering_on_sqlite() {
    with_sqlite(guards_dropped).await;
}

#[tokio::test]
async fn dropped_guards_are_refused_as_tampering_on_postgres() {
    with_postgres(guards_dropped).await;
}

#[tokio::test]
async fn dropped_guards_are_refused_as_tampering_on_mysql() {
    with_mysql(guards_dropped).await;
}

/// MariaDB shows a table's triggers only to a user with the TRIGGER
/// privilege: a read-only account (SELECT only) running `status` and
/// `gate` on an intact log is not told the log was tampered with.
#[tokio::test]
async fn a_read_only_account_without_trigger_privilege_reads_an_intact_log_on_mysql() {
    with_mysql(|db| async move {
        let _project = applied(&db).await?;
        let user = format!("pg_ro_{}", std::process::id());
        db.exec(&format!("DROP USER IF EXISTS '{user}'@'%'"))
            .await?;
        db.exec(&format!("CREATE USER '{user}'@'%' IDENTIFIED BY 'ro'"))
            .await?;
        let granted = db
            .exec(&format!("GRANT SELECT ON `{}`.* TO '{user}'@'%'", db.name))
            .await;
        let result = async {
            granted?;
            let (_, rest) = db
                .url
                .split_once('@')
                .ok_or_else(|| fail(format!("no host in {}", db.url)))?;
            let url = format!("mysql://{user}:ro@{rest}");
            let dir = Dir::new()?;
            let config = dir.config("ro", &[(ENV, &url)])?;
            for args in [&["status"][..], &["gate", "--env", ENV, PLAN][..]] {
                let out = dir.run(&config, args).await?;
                assert!(
                    !said(&out).contains("tampered"),
                    "{args:?}: {}",
                    shown(&out)
                );
                assert_eq!(out.status.code(), Some(0), "{args:?}: {}", shown(&out));
            }
            TestResult::Ok(())
        }
        .await;
        db.exec(&format!("DROP USER IF EXISTS '{user}'@'%'"))
            .await?;
        result
    })
    .await;
}

/// Postgres: a guard of phasegate_meta disabled (not dropped) is refused
/// like a missing one.
#[tokio::test]
async fn a_disabled_meta_guard_is_refused_as_tampering_on_postgres() {
    with_postgres(|db| async move {
        let project = applied(&db).await?;
        db.exec("ALTER TABLE phasegate_meta DISABLE TRIGGER phasegate_meta_kept")
            .await?;
        assert_tampered(&db, &project).await?;
        let out = run(&project, &["status"]).await?;
        assert!(
            said(&out).contains("phasegate_meta_kept on phasegate_meta"),
            "{}",
            shown(&out)
        );
        Ok(())
    })
    .await;
}

#[tokio::test]
#[ignore = "BREAKS (documented limit, src/tracker/chain.rs and docs/workflow.md): the hash has no secret, so an INSERT with a correctly computed hash that follows the head is accepted; status reports phase 2 migrated though it never ran, exit 0. Needs a keyed chain (not built)"]
async fn a_forged_event_with_a_computed_hash_is_noticed_on_mysql() {
    with_mysql(forged_good_hash).await;
}
