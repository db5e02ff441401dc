//! Recording events in SQL: the statements that append an event to an
//! environment's hash-chained log (see [`super::chain`]) when the SQL is
//! run by someone else — a migration runner running the files `phasegate
//! export` wrote — instead of by phasegate's [`super::Store::append`].
//!
//! An event's hash is SHA-256 of the JSON array `[prev, at_ms, plan, kind,
//! phase, step, detail, actor]` as serde_json writes it. Only `prev` (the
//! head's `last_hash`, read under a row lock) and `at_ms` (the server's
//! clock) are unknown when the SQL is written, and the actor's database
//! user; everything else is known. So the array's text is three parts: a
//! prefix built in SQL from `prev` and `at_ms`, the event's fields written
//! here by serde_json (`mid`, exactly what [`super::chain::event_hash`]
//! writes for them), and the actor built in SQL from characters that need
//! no JSON escaping. The insert triggers ([`super::guards`]) check that the
//! row continues the chain and move the head, as for any append.
//!
//! - Postgres: one `INSERT … SELECT` reading `phasegate_head` `FOR UPDATE`,
//!   hashing with `encode(sha256(convert_to(…, 'UTF8')), 'hex')`
//!   (Postgres 11+, "Binary String Functions").
//! - MySQL/MariaDB: a trigger may not update a table its statement reads
//!   (the chain trigger updates the head), so the head is read into user
//!   variables first (`SELECT … INTO @… FOR UPDATE`) and the insert hashes
//!   with `SHA2(…, 256)`. Every text is sent as a hex literal converted
//!   `USING utf8mb4`, so the client's character set cannot change a byte
//!   of what is stored or hashed.
//! - SQLite has no SHA-256 in SQL: nothing here writes for it (see
//!   docs/export.md for what `export` does instead).

use crate::dialect::Dialect;

use super::NewEvent;

/// When an appended event is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Only {
    /// Always.
    Always,
    /// Only when the log has no `plan_started` for the event's plan (the
    /// plan has not started in this database).
    PlanNotStarted,
}

/// The fields of `event` before its detail, as they sit in the hashed JSON
/// array after `at_ms,`: `"plan","kind",phase,"step",`.
fn head(event: &NewEvent) -> String {
    let fields = serde_json::json!([
        event.plan,
        event.kind.name(),
        event.phase.map(|p| p as i64),
        event.step,
    ])
    .to_string();
    // `[a,b,c]` → `a,b,c,`
    let inner = fields
        .strip_prefix('[')
        .and_then(|s| s.strip_suffix(']'))
        .unwrap_or(&fields);
    format!("{inner},")
}

/// The fields of `event` as the middle of the hashed JSON array, after
/// `at_ms,` and before the actor: `"plan","kind",phase,"step","detail",`.
fn mid(event: &NewEvent) -> String {
    format!(
        "{}{},",
        head(event),
        serde_json::Value::String(event.detail.clone())
    )
}

/// Where an event's detail comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Detail {
    /// The event's own `detail`, written here.
    Text,
    /// The server session running the SQL, as `apply` records it in a
    /// `step_started` (`{"connection":…,"backend_start":"…"}`, see
    /// `execute::session`), read in SQL: Postgres' backend pid and start
    /// time as text in UTC (as phasegate's own sessions print it), MySQL's
    /// connection id. Its text holds no character JSON escapes but `"`.
    Session,
}

/// The SQL expression of the session detail (see [`Detail::Session`]).
fn session_sql(dialect: Dialect) -> String {
    match dialect {
        Dialect::Postgres => "'{\"connection\":' || pg_backend_pid() || COALESCE(',\"backend_start\":\"' || \
             (SELECT regexp_replace(to_char(a.backend_start AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US'), '\\.?0+$', '') || '+00' \
              FROM pg_stat_activity a WHERE a.pid = pg_backend_pid()) || '\"', '') || '}'"
            .to_string(),
        _ => "CONCAT('{\"connection\":', CONNECTION_ID(), '}')".to_string(),
    }
}

/// The actor recorded, as an SQL expression: `runner:<label>`, then ` as
/// <database user>` when the user's name holds only characters that need
/// no escaping in JSON (letters, digits, `_ . @ % -`), so the hash's text
/// is the actor's text between quotes. `label` must hold only such
/// characters too (it is checked: others are dropped).
pub fn actor_sql(dialect: Dialect, label: &str) -> String {
    let label: String = label.chars().filter(|c| plain(*c)).collect();
    let fixed = dialect.quote_literal(&format!("runner:{label}"));
    match dialect {
        Dialect::Postgres => format!(
            "{fixed} || CASE WHEN current_user ~ '^[A-Za-z0-9_.@%-]{{1,64}}$' THEN ' as ' || current_user ELSE '' END"
        ),
        Dialect::Mysql => format!(
            "CONCAT({fixed}, IF(CURRENT_USER() REGEXP '^[A-Za-z0-9_.@%-]{{1,64}}$', CONCAT(' as ', CURRENT_USER()), ''))"
        ),
        Dialect::Sqlite => fixed,
    }
}

/// A character that JSON writes as itself and SQL regular expressions above accept.
fn plain(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '@' | '%' | '-' | ':' | ' ')
}

/// An SQL boolean: true while another session holds the environment lock
/// phasegate's runs take (`Store::lock`). On Postgres it takes the same
/// advisory lock for the caller's transaction when it is free, so no
/// phasegate run starts before that transaction ends; on MySQL it only
/// looks (`IS_USED_LOCK`: a named lock belongs to a session, not a
/// transaction). `None` for SQLite.
pub fn environment_locked_sql(dialect: Dialect) -> Option<String> {
    let key = super::store::LOCK_KEY;
    match dialect {
        Dialect::Postgres => Some(format!("NOT pg_try_advisory_xact_lock({key})")),
        Dialect::Mysql => Some(format!(
            "IS_USED_LOCK({}) IS NOT NULL",
            super::schema::mysql_lock_name(key)
        )),
        Dialect::Sqlite => None,
    }
}

/// MySQL: a text as a hex literal read as utf8mb4, whatever the
/// connection's character set (utf8mb3 included): byte for byte.
pub(crate) fn mysql_text(s: &str) -> String {
    let hex: String = s.bytes().map(|b| format!("{b:02X}")).collect();
    if hex.is_empty() {
        return "CONVERT('' USING utf8mb4)".into();
    }
    format!("CONVERT(X'{hex}' USING utf8mb4)")
}

/// The statements (each terminated by `;`) that append `event` to the log
/// of the database they run in, recorded by `actor_label` (see
/// [`actor_sql`]), when `only` holds. They run in the caller's transaction
/// (the runner's); the row lock on the head is held to its end. `None`
/// for SQLite, which cannot compute the hash in SQL.
pub fn append_sql(
    dialect: Dialect,
    event: &NewEvent,
    actor_label: &str,
    only: Only,
) -> Option<Vec<String>> {
    append(dialect, event, actor_label, only, Detail::Text)
}

/// [`append_sql`] for a `step_started` (or `step_rollback_started`) whose
/// detail is the server session the SQL runs on, as `apply` records it, so
/// that a statement the server still runs after the runner died is found
/// before anything re-runs or resolves the step. `event.detail` is not used.
pub fn append_started_sql(
    dialect: Dialect,
    event: &NewEvent,
    actor_label: &str,
) -> Option<Vec<String>> {
    append(dialect, event, actor_label, Only::Always, Detail::Session)
}

fn append(
    dialect: Dialect,
    event: &NewEvent,
    actor_label: &str,
    only: Only,
    detail: Detail,
) -> Option<Vec<String>> {
    let phase = event
        .phase
        .map_or_else(|| "NULL".to_string(), |p| p.to_string());
    let escaped = dialect.quote_literal("\\\"");
    match dialect {
        Dialect::Sqlite => None,
        Dialect::Postgres => {
            let q = |s: &str| dialect.quote_literal(s);
            let opt = |s: &Option<String>| s.as_deref().map_or_else(|| "NULL".into(), q);
            let when = match (only, &event.plan) {
                (Only::PlanNotStarted, Some(plan)) => format!(
                    "\nWHERE NOT EXISTS (SELECT 1 FROM phasegate_events e WHERE e.plan = {} AND e.kind = 'plan_started')",
                    q(plan)
                ),
                _ => String::new(),
            };
            let (detail_value, detail_json) = match detail {
                Detail::Text => (q(&event.detail), q(&mid(event))),
                Detail::Session => (
                    "r.detail".to_string(),
                    format!(
                        "{} || '\"' || replace(r.detail, '\"', {escaped}) || '\",'",
                        q(&head(event))
                    ),
                ),
            };
            let detail_col = match detail {
                Detail::Text => String::new(),
                Detail::Session => format!(", {} AS detail", session_sql(dialect)),
            };
            Some(vec![format!(
                "INSERT INTO phasegate_events (at_ms, plan, kind, phase, step, detail, actor, prev_hash, hash)\n\
                 SELECT r.at_ms, {plan}, {kind}, {phase}, {step}, {detail_value}, r.actor, r.prev,\n  \
                 encode(sha256(convert_to('[\"' || r.prev || '\",' || r.at_ms::text || ',' || {detail_json} || '\"' || r.actor || '\"]', 'UTF8')), 'hex')\n\
                 FROM (SELECT h.last_hash AS prev, floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint AS at_ms, {actor} AS actor{detail_col}\n      \
                 FROM phasegate_head h WHERE h.id = 1 FOR UPDATE) r{when};",
                plan = opt(&event.plan),
                kind = q(event.kind.name()),
                step = opt(&event.step),
                actor = actor_sql(dialect, actor_label),
            )])
        }
        Dialect::Mysql => {
            let opt = |s: &Option<String>| s.as_deref().map_or_else(|| "NULL".into(), mysql_text);
            let when = match (only, &event.plan) {
                (Only::PlanNotStarted, Some(plan)) => format!(
                    " WHERE NOT EXISTS (SELECT 1 FROM phasegate_events e WHERE e.plan = {} AND e.kind = 'plan_started')",
                    mysql_text(plan)
                ),
                _ => String::new(),
            };
            let (detail_select, detail_value, detail_json) = match detail {
                Detail::Text => (
                    String::new(),
                    mysql_text(&event.detail),
                    mysql_text(&mid(event)),
                ),
                Detail::Session => (
                    format!(", {}", session_sql(dialect)),
                    "@phasegate_detail".to_string(),
                    format!(
                        "{}, '\"', REPLACE(@phasegate_detail, '\"', {escaped}), '\",'",
                        mysql_text(&head(event))
                    ),
                ),
            };
            let detail_var = if detail == Detail::Session {
                ", @phasegate_detail"
            } else {
                ""
            };
            Some(vec![
                format!(
                    "SELECT last_hash, CAST(FLOOR(UNIX_TIMESTAMP(NOW(3)) * 1000) AS SIGNED), {actor}{detail_select} \
                     INTO @phasegate_prev, @phasegate_at_ms, @phasegate_actor{detail_var} \
                     FROM phasegate_head WHERE id = 1 FOR UPDATE;",
                    actor = actor_sql(dialect, actor_label),
                ),
                format!(
                    "INSERT INTO phasegate_events (at_ms, plan, kind, phase, step, detail, actor, prev_hash, hash)\n\
                     SELECT @phasegate_at_ms, {plan}, {kind}, {phase}, {step}, {detail_value}, @phasegate_actor, @phasegate_prev,\n  \
                     SHA2(CONVERT(CONCAT('[\"', @phasegate_prev, '\",', CAST(@phasegate_at_ms AS CHAR), ',', {detail_json}, '\"', @phasegate_actor, '\"]') USING utf8mb4), 256)\n\
                     FROM DUAL{when};",
                    plan = opt(&event.plan),
                    kind = mysql_text(event.kind.name()),
                    step = opt(&event.step),
                ),
            ])
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tracker::EventKind;

    #[test]
    fn the_middle_is_what_the_chain_hashes_between_at_ms_and_the_actor() {
        let e = NewEvent::plan("p", EventKind::StepApplied)
            .phase(2)
            .step("1.x")
            .detail("a \"quoted\" ü\n");
        let whole = serde_json::json!([
            "h",
            5,
            e.plan,
            "step_applied",
            2,
            e.step,
            e.detail,
            "runner:x"
        ])
        .to_string();
        let rebuilt = format!("[\"h\",5,{}\"runner:x\"]", mid(&e));
        assert_eq!(whole, rebuilt);
    }

    #[test]
    fn mysql_texts_are_hex_so_no_character_set_changes_them() {
        let e = NewEvent::plan("p'; DROP", EventKind::PlanStarted).detail("x'y");
        let sql = append_sql(Dialect::Mysql, &e, "flyway", Only::PlanNotStarted)
            .unwrap()
            .join("\n");
        assert!(!sql.contains("DROP"), "{sql}");
        assert!(!sql.contains("x'y"), "{sql}");
        assert!(append_sql(Dialect::Sqlite, &e, "flyway", Only::Always).is_none());
    }

    #[test]
    fn an_actor_label_keeps_only_characters_json_writes_as_themselves() {
        let a = actor_sql(Dialect::Postgres, "fly\"way\\");
        assert!(a.starts_with("'runner:flyway'"), "{a}");
    }
}
