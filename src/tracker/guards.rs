//! The database's own defences of phasegate's tables: the triggers that
//! refuse changing or deleting the log, its head and its meta rows (and, on
//! Postgres, truncating them), the chain triggers that make each insert
//! follow the head and move it one event forward, and the check, run by
//! every command that opens the log, that all of them are still there.

use sqlx::{AnyConnection, Row};

use crate::dialect::Dialect;

const APPEND_ONLY: &str = "phasegate_events is append-only: its rows are the record of what ran";
const HEAD_KEPT: &str =
    "phasegate_head records the last event of the event log: it cannot be deleted";
const OUT_OF_CHAIN: &str =
    "phasegate_events: an event must follow the last one recorded in phasegate_head";
const HEAD_FORWARD: &str =
    "phasegate_head only moves forward, one event at a time, as phasegate_events is written";
/// (The messages are SQL literals as they stand: no quotes in them.)
const META_KEPT: &str = "phasegate_meta records the schema version of the event log and the environment that owns it: it cannot be changed or deleted";

/// Every trigger phasegate's guards and chain need, as (trigger, table):
/// a log opened without one of them is treated as tampered with (see
/// [`missing_trigger`]).
pub(crate) fn required_triggers(dialect: Dialect) -> &'static [(&'static str, &'static str)] {
    match dialect {
        Dialect::Postgres => &[
            ("phasegate_events_append_only", "phasegate_events"),
            ("phasegate_events_no_truncate", "phasegate_events"),
            ("phasegate_events_chain", "phasegate_events"),
            ("phasegate_head_kept", "phasegate_head"),
            ("phasegate_head_no_truncate", "phasegate_head"),
            ("phasegate_head_forward", "phasegate_head"),
            ("phasegate_meta_kept", "phasegate_meta"),
            ("phasegate_meta_no_truncate", "phasegate_meta"),
        ],
        Dialect::Mysql | Dialect::Sqlite => &[
            ("phasegate_events_no_update", "phasegate_events"),
            ("phasegate_events_no_delete", "phasegate_events"),
            ("phasegate_events_chain_check", "phasegate_events"),
            ("phasegate_events_chain", "phasegate_events"),
            ("phasegate_head_no_delete", "phasegate_head"),
            ("phasegate_head_forward", "phasegate_head"),
            ("phasegate_meta_no_update", "phasegate_meta"),
            ("phasegate_meta_no_delete", "phasegate_meta"),
        ],
    }
}

/// The first of [`required_triggers`] that is missing from its table (on
/// Postgres also: disabled), as (trigger, table); `None` when all are there.
/// Read from `pg_trigger`, `information_schema.TRIGGERS` or `sqlite_master`.
pub(crate) async fn missing_trigger(
    conn: &mut AnyConnection,
    dialect: Dialect,
) -> Result<Option<(&'static str, &'static str)>, sqlx::Error> {
    let sql = match dialect {
        Dialect::Postgres => {
            "SELECT t.tgname::text AS name, c.relname::text AS tbl FROM pg_catalog.pg_trigger t
               JOIN pg_catalog.pg_class c ON c.oid = t.tgrelid
               JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname = current_schema() AND NOT t.tgisinternal AND t.tgenabled <> 'D'
               AND c.relname IN ('phasegate_events', 'phasegate_head', 'phasegate_meta')"
        }
        Dialect::Mysql => {
            "SELECT CONVERT(TRIGGER_NAME USING utf8mb4) AS name, CONVERT(EVENT_OBJECT_TABLE USING utf8mb4) AS tbl
             FROM information_schema.TRIGGERS
             WHERE TRIGGER_SCHEMA = DATABASE()
               AND EVENT_OBJECT_TABLE IN ('phasegate_events', 'phasegate_head', 'phasegate_meta')"
        }
        Dialect::Sqlite => {
            "SELECT name, tbl_name AS tbl FROM sqlite_master WHERE type = 'trigger'
               AND tbl_name IN ('phasegate_events', 'phasegate_head', 'phasegate_meta')"
        }
    };
    let rows = sqlx::query(sql).fetch_all(&mut *conn).await?;
    let mut found = Vec::with_capacity(rows.len());
    for r in &rows {
        let name: String = r.try_get("name")?;
        let table: String = r.try_get("tbl")?;
        found.push((name, table));
    }
    let missing = required_triggers(dialect)
        .iter()
        .find(|(name, table)| !found.iter().any(|(n, t)| n == name && t == table))
        .copied();
    if missing.is_some() && dialect == Dialect::Mysql && !mysql_sees_triggers(conn).await? {
        // MySQL/MariaDB show a table's triggers only to a user with the
        // TRIGGER privilege on it (a read-only account used for `status`):
        // such a user cannot tell, and the chain check still runs.
        return Ok(None);
    }
    Ok(missing)
}

/// Whether this MySQL/MariaDB session has the TRIGGER privilege on
/// `phasegate_events` (globally, on the database or on the table), without
/// which `information_schema.TRIGGERS` shows none of its triggers.
async fn mysql_sees_triggers(conn: &mut AnyConnection) -> Result<bool, sqlx::Error> {
    let n: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM (
           SELECT PRIVILEGE_TYPE FROM information_schema.USER_PRIVILEGES
             WHERE PRIVILEGE_TYPE = 'TRIGGER'
           UNION ALL
           SELECT PRIVILEGE_TYPE FROM information_schema.SCHEMA_PRIVILEGES
             WHERE PRIVILEGE_TYPE = 'TRIGGER' AND DATABASE() LIKE TABLE_SCHEMA
           UNION ALL
           SELECT PRIVILEGE_TYPE FROM information_schema.TABLE_PRIVILEGES
             WHERE PRIVILEGE_TYPE = 'TRIGGER' AND TABLE_SCHEMA = DATABASE()
               AND TABLE_NAME = 'phasegate_events'
         ) AS p",
    )
    .fetch_one(&mut *conn)
    .await?;
    Ok(n > 0)
}

/// The guards (updates, deletes and, where the database has the trigger,
/// truncation refused) and the chain triggers (each insert must follow the
/// head, and moves it), each statement on its own and safe to repeat.
pub(crate) fn guards_sql(dialect: Dialect) -> Vec<String> {
    match dialect {
        Dialect::Postgres => vec![format!(
            "CREATE OR REPLACE FUNCTION phasegate_events_append_only() RETURNS trigger
               LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION '{APPEND_ONLY}'; END $$;
             CREATE OR REPLACE FUNCTION phasegate_head_kept() RETURNS trigger
               LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION '{HEAD_KEPT}'; END $$;
             CREATE OR REPLACE FUNCTION phasegate_head_forward() RETURNS trigger
               LANGUAGE plpgsql AS $$ BEGIN
                 IF NEW.id = OLD.id AND NEW.events = OLD.events + 1 AND NEW.last_id > OLD.last_id THEN
                   RETURN NEW;
                 END IF;
                 RAISE EXCEPTION '{HEAD_FORWARD}';
               END $$;
             CREATE OR REPLACE FUNCTION phasegate_meta_kept() RETURNS trigger
               LANGUAGE plpgsql AS $$ BEGIN
                 IF TG_OP = 'UPDATE' THEN
                   IF OLD.key = 'schema_version' AND NEW.key = OLD.key
                      AND NEW.value ~ '^[0-9]+$' AND length(NEW.value) < 19
                      AND OLD.value ~ '^[0-9]+$' AND length(OLD.value) < 19 THEN
                     IF NEW.value::bigint > OLD.value::bigint THEN
                       RETURN NEW;
                     END IF;
                   END IF;
                 END IF;
                 RAISE EXCEPTION '{META_KEPT}';
               END $$;
             CREATE OR REPLACE FUNCTION phasegate_events_chain() RETURNS trigger
               LANGUAGE plpgsql AS $$
               DECLARE last text;
               BEGIN
                 SELECT last_hash INTO last FROM phasegate_head WHERE id = 1 FOR UPDATE;
                 IF last IS NULL OR NEW.prev_hash IS DISTINCT FROM last THEN
                   RAISE EXCEPTION '{OUT_OF_CHAIN}';
                 END IF;
                 UPDATE phasegate_head SET last_id = NEW.id, last_hash = NEW.hash, events = events + 1 WHERE id = 1;
                 RETURN NEW;
               END $$;
             DROP TRIGGER IF EXISTS phasegate_events_append_only ON phasegate_events;
             CREATE TRIGGER phasegate_events_append_only BEFORE UPDATE OR DELETE ON phasegate_events
               FOR EACH ROW EXECUTE FUNCTION phasegate_events_append_only();
             DROP TRIGGER IF EXISTS phasegate_events_no_truncate ON phasegate_events;
             CREATE TRIGGER phasegate_events_no_truncate BEFORE TRUNCATE ON phasegate_events
               FOR EACH STATEMENT EXECUTE FUNCTION phasegate_events_append_only();
             DROP TRIGGER IF EXISTS phasegate_events_chain ON phasegate_events;
             CREATE TRIGGER phasegate_events_chain BEFORE INSERT ON phasegate_events
               FOR EACH ROW EXECUTE FUNCTION phasegate_events_chain();
             DROP TRIGGER IF EXISTS phasegate_head_kept ON phasegate_head;
             CREATE TRIGGER phasegate_head_kept BEFORE DELETE ON phasegate_head
               FOR EACH ROW EXECUTE FUNCTION phasegate_head_kept();
             DROP TRIGGER IF EXISTS phasegate_head_no_truncate ON phasegate_head;
             CREATE TRIGGER phasegate_head_no_truncate BEFORE TRUNCATE ON phasegate_head
               FOR EACH STATEMENT EXECUTE FUNCTION phasegate_head_kept();
             DROP TRIGGER IF EXISTS phasegate_head_forward ON phasegate_head;
             CREATE TRIGGER phasegate_head_forward BEFORE UPDATE ON phasegate_head
               FOR EACH ROW EXECUTE FUNCTION phasegate_head_forward();
             DROP TRIGGER IF EXISTS phasegate_meta_kept ON phasegate_meta;
             CREATE TRIGGER phasegate_meta_kept BEFORE UPDATE OR DELETE ON phasegate_meta
               FOR EACH ROW EXECUTE FUNCTION phasegate_meta_kept();
             DROP TRIGGER IF EXISTS phasegate_meta_no_truncate ON phasegate_meta;
             CREATE TRIGGER phasegate_meta_no_truncate BEFORE TRUNCATE ON phasegate_meta
               FOR EACH STATEMENT EXECUTE FUNCTION phasegate_meta_kept();"
        )],
        // MySQL/MariaDB: TRUNCATE fires no trigger; the chain catches it.
        Dialect::Mysql => vec![
            "DROP TRIGGER IF EXISTS phasegate_events_no_update".into(),
            format!(
                "CREATE TRIGGER phasegate_events_no_update BEFORE UPDATE ON phasegate_events FOR EACH ROW
                   SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = '{APPEND_ONLY}'"
            ),
            "DROP TRIGGER IF EXISTS phasegate_events_no_delete".into(),
            format!(
                "CREATE TRIGGER phasegate_events_no_delete BEFORE DELETE ON phasegate_events FOR EACH ROW
                   SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = '{APPEND_ONLY}'"
            ),
            "DROP TRIGGER IF EXISTS phasegate_head_no_delete".into(),
            format!(
                "CREATE TRIGGER phasegate_head_no_delete BEFORE DELETE ON phasegate_head FOR EACH ROW
                   SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = '{HEAD_KEPT}'"
            ),
            "DROP TRIGGER IF EXISTS phasegate_head_forward".into(),
            format!(
                "CREATE TRIGGER phasegate_head_forward BEFORE UPDATE ON phasegate_head FOR EACH ROW
                   BEGIN
                     IF NOT (NEW.id = OLD.id AND NEW.events = OLD.events + 1 AND NEW.last_id > OLD.last_id) THEN
                       SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = '{HEAD_FORWARD}';
                     END IF;
                   END"
            ),
            "DROP TRIGGER IF EXISTS phasegate_meta_no_update".into(),
            format!(
                "CREATE TRIGGER phasegate_meta_no_update BEFORE UPDATE ON phasegate_meta FOR EACH ROW
                   BEGIN
                     IF NOT (OLD.`key` = 'schema_version' AND NEW.`key` = OLD.`key`
                             AND NEW.value REGEXP '^[0-9]+$' AND LENGTH(NEW.value) < 19
                             AND OLD.value REGEXP '^[0-9]+$' AND LENGTH(OLD.value) < 19
                             AND CAST(NEW.value AS SIGNED) > CAST(OLD.value AS SIGNED)) THEN
                       SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = '{META_KEPT}';
                     END IF;
                   END"
            ),
            "DROP TRIGGER IF EXISTS phasegate_meta_no_delete".into(),
            format!(
                "CREATE TRIGGER phasegate_meta_no_delete BEFORE DELETE ON phasegate_meta FOR EACH ROW
                   SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = '{META_KEPT}'"
            ),
            "DROP TRIGGER IF EXISTS phasegate_events_chain_check".into(),
            format!(
                "CREATE TRIGGER phasegate_events_chain_check BEFORE INSERT ON phasegate_events FOR EACH ROW
                   BEGIN
                     IF NOT (NEW.prev_hash <=> (SELECT last_hash FROM phasegate_head WHERE id = 1 FOR UPDATE)) THEN
                       SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = '{OUT_OF_CHAIN}';
                     END IF;
                   END"
            ),
            "DROP TRIGGER IF EXISTS phasegate_events_chain".into(),
            "CREATE TRIGGER phasegate_events_chain AFTER INSERT ON phasegate_events FOR EACH ROW
               UPDATE phasegate_head SET last_id = NEW.id, last_hash = NEW.hash, events = events + 1 WHERE id = 1"
                .into(),
        ],
        Dialect::Sqlite => vec![format!(
            "CREATE TRIGGER IF NOT EXISTS phasegate_events_no_update BEFORE UPDATE ON phasegate_events
               BEGIN SELECT RAISE(ABORT, '{APPEND_ONLY}'); END;
             CREATE TRIGGER IF NOT EXISTS phasegate_events_no_delete BEFORE DELETE ON phasegate_events
               BEGIN SELECT RAISE(ABORT, '{APPEND_ONLY}'); END;
             CREATE TRIGGER IF NOT EXISTS phasegate_head_no_delete BEFORE DELETE ON phasegate_head
               BEGIN SELECT RAISE(ABORT, '{HEAD_KEPT}'); END;
             CREATE TRIGGER IF NOT EXISTS phasegate_events_chain_check BEFORE INSERT ON phasegate_events
               WHEN NEW.prev_hash IS NOT (SELECT last_hash FROM phasegate_head WHERE id = 1)
               BEGIN SELECT RAISE(ABORT, '{OUT_OF_CHAIN}'); END;
             CREATE TRIGGER IF NOT EXISTS phasegate_events_chain AFTER INSERT ON phasegate_events
               BEGIN UPDATE phasegate_head SET last_id = NEW.id, last_hash = NEW.hash, events = events + 1 WHERE id = 1; END;
             CREATE TRIGGER IF NOT EXISTS phasegate_head_forward BEFORE UPDATE ON phasegate_head
               WHEN NOT (NEW.id = OLD.id AND NEW.events = OLD.events + 1 AND NEW.last_id > OLD.last_id)
               BEGIN SELECT RAISE(ABORT, '{HEAD_FORWARD}'); END;
             CREATE TRIGGER IF NOT EXISTS phasegate_meta_no_update BEFORE UPDATE ON phasegate_meta
               WHEN NOT (OLD.key = 'schema_version' AND NEW.key = OLD.key
                         AND NEW.value NOT GLOB '*[^0-9]*' AND length(NEW.value) BETWEEN 1 AND 18
                         AND OLD.value NOT GLOB '*[^0-9]*' AND length(OLD.value) BETWEEN 1 AND 18
                         AND CAST(NEW.value AS INTEGER) > CAST(OLD.value AS INTEGER))
               BEGIN SELECT RAISE(ABORT, '{META_KEPT}'); END;
             CREATE TRIGGER IF NOT EXISTS phasegate_meta_no_delete BEFORE DELETE ON phasegate_meta
               BEGIN SELECT RAISE(ABORT, '{META_KEPT}'); END;"
        )],
    }
}
