//! SQLite: a batch's own updates without phasegate's sync triggers
//! ([`Backfill::sync_triggers`]).
//!
//! A batch sets the new column itself, so the sync trigger's work on its
//! rows is wasted (its `WHEN` alone, run for every row, doubled the time of
//! a 1,000,000-row `UPDATE`: 0.55 s → 1.0 s with the `sqlite3` shell).
//! SQLite has no session setting a trigger could test, so the batch drops
//! the trigger after its `BEGIN IMMEDIATE` and re-creates it from the text
//! SQLite stored for it (`sqlite_schema.sql`, "The Schema Table" in the
//! SQLite docs) before its `COMMIT`. The transaction holds the database's
//! one write lock throughout, so no other connection writes while the
//! trigger is gone, and readers see the schema as committed; a batch that
//! fails rolls back the drop with the rest. Other connections re-prepare
//! their statements once per batch (the schema changed), as SQLite does by
//! itself (`sqlite3_prepare_v2`).

use sqlx::AssertSqlSafe;

use crate::dialect::Dialect;
use crate::plan::Backfill;
use crate::tracker::Store;

/// The triggers a batch dropped: their stored `CREATE TRIGGER` text.
#[must_use = "the triggers must be restored before the batch commits"]
pub(super) struct Suspended(Vec<String>);

/// Drops the backfill's sync triggers that exist, keeping their definition.
/// Must run inside the batch's transaction. A trigger that is not there
/// (dropped by hand) is left alone and not made again. A table of an
/// attached database keeps its triggers (they fire, for nothing): its
/// stored text names neither trigger nor table with their schema, so
/// re-running it could put the trigger elsewhere.
pub(super) async fn suspend(store: &mut Store, b: &Backfill) -> Result<Suspended, sqlx::Error> {
    let d = Dialect::Sqlite;
    if b.table
        .schema
        .as_ref()
        .is_some_and(|s| s.as_str() != "main")
    {
        return Ok(Suspended(Vec::new()));
    }
    let mut kept = Vec::with_capacity(b.sync_triggers.len());
    for name in &b.sync_triggers {
        let read = format!(
            "SELECT sql FROM main.sqlite_master WHERE type = 'trigger' AND name = {} AND tbl_name = {}",
            d.quote_literal(name.as_str()),
            d.quote_literal(b.table.name.as_str()),
        );
        let stored: Option<Option<String>> = sqlx::query_scalar(AssertSqlSafe(read))
            .fetch_optional(store.conn())
            .await?;
        let Some(Some(definition)) = stored else {
            continue;
        };
        let drop = format!("DROP TRIGGER main.{}", d.quote_ident(name.as_str()));
        sqlx::raw_sql(AssertSqlSafe(drop))
            .execute(store.conn())
            .await?;
        kept.push(definition);
    }
    Ok(Suspended(kept))
}

/// Re-creates the triggers [`suspend`] dropped, as they were.
pub(super) async fn restore(store: &mut Store, s: Suspended) -> Result<(), sqlx::Error> {
    for definition in s.0 {
        sqlx::raw_sql(AssertSqlSafe(definition))
            .execute(store.conn())
            .await?;
    }
    Ok(())
}
