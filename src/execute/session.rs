//! The server session a step runs on, and whether it is still running.
//!
//! A step that cannot run in a transaction records, in its `step_started`
//! event's detail, the server session it runs on: Postgres' backend pid
//! (`pg_backend_pid()`, with the backend's start time, so that a pid the
//! server reused later is not taken for it) or MySQL's connection id
//! (`CONNECTION_ID()`). When the client dies mid-statement (`kill -9`, a
//! lost machine) the server does not notice while the statement waits or
//! works: a `CREATE INDEX CONCURRENTLY` or an `ALTER TABLE` goes on, and
//! finishes or fails later, with no client to record it. Before anything
//! resumes, resolves or re-runs an interrupted step, [`refuse_if_running`]
//! looks the recorded session up (`pg_stat_activity`,
//! `information_schema.PROCESSLIST`) and refuses while it is alive, naming
//! it: what the step did is then known only once it ends.

use serde::{Deserialize, Serialize};
use sqlx::{AssertSqlSafe, Row};

use super::RunError;
use crate::config::Environment;
use crate::dialect::Dialect;
use crate::tracker::{Event, EventKind, Store, interrupted_steps};

/// A server session, as recorded in a `step_started` event's detail (JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    /// Postgres' backend pid; MySQL's connection id.
    pub connection: i64,
    /// Postgres: when the backend started (`pg_stat_activity.backend_start`,
    /// as text), telling a reused pid apart. `None` on MySQL, whose
    /// connection ids are not reused while the server runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend_start: Option<String>,
}

impl Session {
    /// The session `store` talks to; `None` on SQLite (no server) or when
    /// the server will not say (the step then runs unrecorded, as before).
    pub async fn current(store: &mut Store, dialect: Dialect) -> Option<Session> {
        let sql = match dialect {
            Dialect::Postgres => {
                "SELECT CAST(pid AS bigint), CAST(backend_start AS text) FROM pg_stat_activity WHERE pid = pg_backend_pid()"
            }
            Dialect::Mysql => "SELECT CAST(CONNECTION_ID() AS SIGNED), CAST(NULL AS CHAR)",
            Dialect::Sqlite => return None,
        };
        let row = tokio::time::timeout(
            crate::tracker::TRACKER_WAIT,
            sqlx::query(sql).fetch_one(store.conn()),
        )
        .await
        .ok()?
        .ok()?;
        Some(Session {
            connection: row.try_get(0).ok()?,
            backend_start: row.try_get::<Option<String>, _>(1).ok()?,
        })
    }

    /// The `step_started` detail recording this session.
    pub fn detail(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// The session a `step_started` detail records, if it records one
    /// (events written before this was recorded have an empty detail).
    pub fn from_detail(detail: &str) -> Option<Session> {
        serde_json::from_str(detail).ok()
    }
}

/// What the server says a recorded session is doing, when it is still there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alive {
    /// Postgres `state` (`active`, `idle in transaction`, …); MySQL `COMMAND`
    /// and `STATE` (`Query: Waiting for table metadata lock`).
    pub state: String,
    /// When its current statement started (Postgres `query_start`), or
    /// entered its state (MySQL: `NOW()` less `TIME`, to the second).
    pub since: String,
    /// The start of the statement it runs (at most 120 characters).
    pub statement: String,
}

/// Looks `session` up on the server: `Some` while it is connected.
pub async fn lookup(
    store: &mut Store,
    dialect: Dialect,
    session: &Session,
) -> Result<Option<Alive>, RunError> {
    let id = session.connection;
    let sql = match dialect {
        Dialect::Postgres => {
            let start = match &session.backend_start {
                Some(s) => format!(
                    " AND CAST(backend_start AS text) = {}",
                    Dialect::Postgres.quote_literal(s)
                ),
                None => String::new(),
            };
            format!(
                "SELECT COALESCE(state, ''), COALESCE(CAST(query_start AS text), ''), COALESCE(left(query, 120), '') \
                 FROM pg_stat_activity WHERE pid = {id}{start}"
            )
        }
        Dialect::Mysql => format!(
            "SELECT CONCAT(COALESCE(COMMAND, ''), ': ', COALESCE(STATE, '')), CAST(NOW() - INTERVAL TIME SECOND AS CHAR), \
             COALESCE(LEFT(INFO, 120), '') FROM information_schema.PROCESSLIST WHERE ID = {id}"
        ),
        Dialect::Sqlite => return Ok(None),
    };
    let wait = crate::tracker::TRACKER_WAIT;
    let row = match tokio::time::timeout(
        wait,
        sqlx::query(AssertSqlSafe(sql)).fetch_optional(store.conn()),
    )
    .await
    {
        Ok(row) => row.map_err(|e| store.db_error(e))?,
        Err(_) => {
            return Err(crate::tracker::TrackerError::Timeout {
                env: store.env().to_string(),
                timeout: wait,
            }
            .into());
        }
    };
    let Some(row) = row else {
        return Ok(None);
    };
    let text = |i: usize| row.try_get::<String, _>(i).unwrap_or_default();
    Ok(Some(Alive {
        state: text(0),
        since: text(1),
        statement: text(2).split_whitespace().collect::<Vec<_>>().join(" "),
    }))
}

/// An interrupted step (started, never finished, not resolved) of any plan,
/// with the session its `step_started` recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interrupted {
    pub plan: String,
    pub step: String,
    pub session: Session,
}

/// Every interrupted step in `events` (all plans) whose start recorded a session.
pub fn interrupted(events: &[Event]) -> Vec<Interrupted> {
    interrupted_steps(events)
        .into_iter()
        .filter_map(|(plan, o)| {
            // The latest start of the step, applying or undoing it.
            let started = events.iter().rev().find(|e| {
                e.plan.as_deref() == Some(plan.as_str())
                    && matches!(
                        e.kind,
                        EventKind::StepStarted | EventKind::StepRollbackStarted
                    )
                    && e.step.as_deref() == Some(o.step.as_str())
            })?;
            Some(Interrupted {
                session: Session::from_detail(&started.detail)?,
                plan,
                step: o.step,
            })
        })
        .collect()
}

/// Refuses while the server session of an interrupted step (of any plan
/// in `env`) is still connected: "step X is still running on the server as
/// connection N …". Reads the whole log; records nothing.
pub async fn refuse_if_running(store: &mut Store, env: &Environment) -> Result<(), RunError> {
    if env.dialect == Dialect::Sqlite {
        return Ok(());
    }
    let events = store.events(None).await?;
    for i in interrupted(&events) {
        if let Some(alive) = lookup(store, env.dialect, &i.session).await? {
            return Err(RunError::Refused(still_running(env, &i, &alive)));
        }
    }
    Ok(())
}

/// For every interrupted step (of any plan in `events`) whose server
/// session is still connected: its plan and the message of [`still_running`];
/// what cannot be looked up is left out (`status` reads, it does not refuse).
pub async fn running_now(
    store: &mut Store,
    env: &Environment,
    events: &[Event],
) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if env.dialect == Dialect::Sqlite {
        return out;
    }
    for i in interrupted(events) {
        if let Ok(Some(alive)) = lookup(store, env.dialect, &i.session).await {
            out.push((i.plan.clone(), still_running(env, &i, &alive)));
        }
    }
    out
}

/// The refusal's message.
pub fn still_running(env: &Environment, i: &Interrupted, alive: &Alive) -> String {
    let n = i.session.connection;
    let kill = match env.dialect {
        Dialect::Postgres => format!("SELECT pg_terminate_backend({n})"),
        _ => format!("KILL {n}"),
    };
    let statement = if alive.statement.is_empty() {
        String::new()
    } else {
        format!(", running `{}`", alive.statement)
    };
    format!(
        "step {step} of {plan} is still running on the server as connection {n} (started {since}, {state}{statement}): its phasegate run was killed or lost its connection, and the server carries on. Wait for it to finish or end it (`{kill}`), then check the database and run `phasegate resolve --env {env} {plan} --step {step} --as applied` or `phasegate resolve --env {env} {plan} --step {step} --as not-applied`",
        step = i.step,
        plan = i.plan,
        since = alive.since,
        state = alive.state,
        env = env.name,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    fn ev(id: i64, kind: EventKind, step: &str, detail: &str) -> Event {
        Event {
            id,
            at: Utc.timestamp_opt(id, 0).single().unwrap_or_default(),
            plan: Some("p".into()),
            kind,
            phase: Some(1),
            step: Some(step.into()),
            detail: detail.into(),
            actor: "t".into(),
        }
    }

    #[test]
    fn a_session_round_trips_through_the_detail() {
        let s = Session {
            connection: 42,
            backend_start: Some("2026-01-01 00:00:00+00".into()),
        };
        assert_eq!(Session::from_detail(&s.detail()), Some(s));
        let m = Session {
            connection: 7,
            backend_start: None,
        };
        assert_eq!(m.detail(), r#"{"connection":7}"#);
        assert_eq!(Session::from_detail(""), None);
    }

    #[test]
    fn only_unsettled_starts_with_a_session_count() {
        let s = r#"{"connection":9}"#;
        let events = vec![
            ev(1, EventKind::StepStarted, "1.a", s),
            ev(2, EventKind::StepApplied, "1.a", ""),
            ev(3, EventKind::StepStarted, "1.b", ""),
            ev(4, EventKind::StepStarted, "1.c", s),
        ];
        let found = interrupted(&events);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].step, "1.c");
        assert_eq!(found[0].session.connection, 9);
    }
}
