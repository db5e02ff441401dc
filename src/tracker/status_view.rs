//! `phasegate_status`: a read-only view over the event log, one row per plan,
//! for applications in any language to read at start-up (see docs/check.md).
//!
//! The view derives each phase's state from the log exactly as
//! [`super::derive`] does, in SQL:
//!
//! - The last *anchor* event of a phase (`phase_migrated`,
//!   `phase_deployed`, `phase_rolled_back`) sets it to migrated, deployed or
//!   pending.
//! - After the anchor, a step applied (`step_applied`) moves a pending or
//!   partly rolled back phase to migrating, and an undo (`step_rolled_back`,
//!   `step_rollback_started`, `step_rollback_failed`, `step_resolved` as
//!   `rolled_back`) moves a phase that is not pending to partly rolled back.
//!   So: after a migrated or deployed anchor, the phase stays so until an
//!   undo; then the later of the last undo and the last step applied decides.
//!   After a pending anchor (or none), it stays pending until a step is
//!   applied; then the later of the two decides.
//! - A step is outstanding (failed, or started and never finished) when its
//!   last event among the ones that settle a step is a start or a failure,
//!   and its phase was not rolled back after it.
//!
//! The number of phases comes from the plan's latest `plan_started` or
//! `change_accepted` event (`phases` in its detail, recorded since schema
//! version 3); `NULL` for a plan started by an older phasegate.
//!
//! The view only reads; it does not check the log's hash chain. phasegate
//! itself never reads it: its decisions come from the verified log.

use crate::dialect::Dialect;

/// The view's name.
pub const STATUS_VIEW: &str = "phasegate_status";

/// The view's columns, in order, as the view names them.
pub const STATUS_COLUMNS: [&str; 11] = [
    "plan",
    "phases",
    "phase",
    "state",
    "next_action",
    "phase_applied",
    "phase_deployed",
    "failed_steps",
    "unfinished_steps",
    "updated_at",
    "updated_at_ms",
];

/// Event kinds that set a phase's state outright.
const ANCHORS: [&str; 3] = ["phase_migrated", "phase_deployed", "phase_rolled_back"];
/// Event kinds that undo a step (with `step_resolved` as `rolled_back`).
const UNDOS: [&str; 3] = [
    "step_rolled_back",
    "step_rollback_started",
    "step_rollback_failed",
];
/// Event kinds that settle a step's outstanding state (the last one decides).
const SETTLES: [&str; 7] = [
    "step_started",
    "step_failed",
    "step_rollback_started",
    "step_rollback_failed",
    "step_rolled_back",
    "step_applied",
    "step_resolved",
];
/// Outstanding: a failure.
const FAILED: [&str; 2] = ["step_failed", "step_rollback_failed"];
/// Outstanding: started and never finished.
const UNFINISHED: [&str; 2] = ["step_started", "step_rollback_started"];

/// The statements that create (or replace) the view, each safe to repeat.
/// Postgres and MySQL replace it in place, which keeps the grants on it;
/// SQLite has no `OR REPLACE` (and no grants): it is dropped and created.
pub(crate) fn view_sql(dialect: Dialect) -> Vec<String> {
    let name = dialect.quote_ident(STATUS_VIEW);
    let body = select(dialect);
    match dialect {
        Dialect::Postgres | Dialect::Mysql => {
            vec![format!("CREATE OR REPLACE VIEW {name} AS\n{body}")]
        }
        Dialect::Sqlite => vec![
            format!("DROP VIEW IF EXISTS {name}"),
            format!("CREATE VIEW {name} AS\n{body}"),
        ],
    }
}

/// `IN (…)` list of literals.
fn list(dialect: Dialect, items: &[&str]) -> String {
    let quoted: Vec<String> = items.iter().map(|i| dialect.quote_literal(i)).collect();
    format!("({})", quoted.join(", "))
}

/// The number of phases recorded in a `plan_started`/`change_accepted`
/// detail (`alias.detail`), `NULL` when absent or unreadable. Guarded so
/// that a detail that is not JSON never makes the view fail.
fn phases_of(dialect: Dialect, alias: &str) -> String {
    let key = dialect.quote_literal("phases");
    match dialect {
        Dialect::Postgres => format!(
            "CASE WHEN {alias}.detail LIKE '{{%}}' AND ({alias}.detail::jsonb ->> {key}) ~ '^[0-9]{{1,9}}$' \
             THEN ({alias}.detail::jsonb ->> {key})::bigint END"
        ),
        Dialect::Mysql => format!(
            "CASE WHEN JSON_VALID({alias}.detail) \
             THEN CAST(JSON_EXTRACT({alias}.detail, '$.phases') AS SIGNED) END"
        ),
        Dialect::Sqlite => format!(
            "CASE WHEN json_valid({alias}.detail) \
             THEN CAST(json_extract({alias}.detail, '$.phases') AS INTEGER) END"
        ),
    }
}

/// Milliseconds since the epoch as the dialect's UTC time: Postgres
/// `timestamptz`, MySQL a `DATETIME` in UTC (whatever the session's time
/// zone), SQLite ISO-8601 text ending in `Z`.
fn time_of(dialect: Dialect, ms: &str) -> String {
    match dialect {
        Dialect::Postgres => format!("to_timestamp({ms} / 1000.0)"),
        Dialect::Mysql => {
            format!("TIMESTAMPADD(MICROSECOND, {ms} * 1000, TIMESTAMP('1970-01-01 00:00:00'))")
        }
        Dialect::Sqlite => {
            format!("strftime('%Y-%m-%dT%H:%M:%fZ', {ms} / 1000.0, 'unixepoch')")
        }
    }
}

/// `expr` (a plan or step name) as compared and grouped: byte for byte.
/// MySQL/MariaDB compare text under the column's collation, which ignores
/// case by default, and would merge plans `Mk` and `mk`; the log's columns
/// are `utf8mb4` (tracker/schema.rs), so its binary collation keeps them
/// apart. The view's `plan` column has that collation too, so that a
/// service's `WHERE plan = 'Mk'` matches `Mk` only. Postgres and SQLite
/// compare bytes already.
fn key(dialect: Dialect, expr: &str) -> String {
    match dialect {
        Dialect::Mysql => format!("({expr} COLLATE utf8mb4_bin)"),
        Dialect::Postgres | Dialect::Sqlite => expr.to_string(),
    }
}

/// The view's query.
fn select(d: Dialect) -> String {
    let k = |s: &str| key(d, s);
    let l = |s: &str| d.quote_literal(s);
    let q = |s: &str| d.quote_ident(s);
    let anchors = list(d, &ANCHORS);
    let undos = list(d, &UNDOS);
    let settles = list(d, &SETTLES);
    let failed = list(d, &FAILED);
    let unfinished = list(d, &UNFINISHED);
    let open = list(d, &[&FAILED[..], &UNFINISHED[..]].concat());
    let started = list(d, &["plan_started", "change_accepted"]);
    let phases = phases_of(d, "s");
    let updated = time_of(d, "c.last_ms");
    let (migrated, deployed, rolled_back) = (
        l("phase_migrated"),
        l("phase_deployed"),
        l("phase_rolled_back"),
    );
    let [
        plan,
        n_phases,
        phase,
        state,
        next,
        applied,
        deployed_col,
        failed_col,
        unfinished_col,
        at,
        at_ms,
    ] = STATUS_COLUMNS.map(q);
    format!(
        "WITH
starts AS (
  SELECT MIN(plan) AS plan, MAX(id) AS id FROM phasegate_events
   WHERE plan IS NOT NULL AND kind IN {started}
   GROUP BY {k_plan}
),
last_at AS (
  SELECT MIN(e.plan) AS plan, MAX(e.at_ms) AS last_ms
    FROM phasegate_events e
   WHERE e.plan IS NOT NULL
   GROUP BY {k_e_plan}
),
plans AS (
  SELECT b.plan AS plan, b.last_ms AS last_ms,
         (SELECT {phases} FROM starts t JOIN phasegate_events s ON s.id = t.id WHERE {k_t_plan} = {k_b_plan}) AS total
    FROM last_at b
),
moves AS (
  SELECT e.plan AS plan, e.phase AS phase, e.id AS id,
         CASE
           WHEN e.kind IN {anchors} THEN {anchor}
           WHEN e.step IS NULL THEN NULL
           WHEN e.kind = {step_applied} THEN {up}
           WHEN e.kind IN {undos} THEN {down}
           WHEN e.kind = {step_resolved} AND e.detail = {resolved_rolled_back} THEN {down}
         END AS move
    FROM phasegate_events e JOIN plans p ON {k_p_plan} = {k_e_plan}
   WHERE e.phase >= 1 AND (p.total IS NULL OR e.phase <= p.total)
),
anchors AS (
  SELECT MIN(m.plan) AS plan, m.phase AS phase, MAX(m.id) AS id
    FROM moves m WHERE m.move = {anchor}
   GROUP BY {k_m_plan}, m.phase
),
marks AS (
  SELECT MIN(m.plan) AS plan, m.phase AS phase, a.kind AS anchor,
         MAX(CASE WHEN m.move = {up} AND m.id > COALESCE(an.id, 0) THEN m.id END) AS last_up,
         MAX(CASE WHEN m.move = {down} AND m.id > COALESCE(an.id, 0) THEN m.id END) AS last_down
    FROM moves m
    LEFT JOIN anchors an ON {k_an_plan} = {k_m_plan} AND an.phase = m.phase
    LEFT JOIN phasegate_events a ON a.id = an.id
   WHERE m.move IS NOT NULL
   GROUP BY {k_m_plan}, m.phase, a.kind
),
states AS (
  SELECT plan, phase,
         CASE
           WHEN anchor IN ({migrated}, {deployed}) AND last_down IS NULL
             THEN CASE WHEN anchor = {migrated} THEN {s_migrated} ELSE {s_deployed} END
           WHEN anchor IN ({migrated}, {deployed})
             THEN CASE WHEN last_up > last_down THEN {s_migrating} ELSE {s_rolling_back} END
           WHEN last_up IS NULL THEN {s_pending}
           WHEN last_down > last_up THEN {s_rolling_back}
           ELSE {s_migrating}
         END AS state
    FROM marks
),
settled AS (
  SELECT MAX(id) AS id FROM phasegate_events
   WHERE plan IS NOT NULL AND step IS NOT NULL AND kind IN {settles}
   GROUP BY {k_plan}, {k_step}
),
open_steps AS (
  SELECT e.plan AS plan, e.kind AS kind
    FROM settled s
    JOIN phasegate_events e ON e.id = s.id
    JOIN plans p ON {k_p_plan} = {k_e_plan}
   WHERE e.kind IN {open}
     AND e.phase >= 1 AND (p.total IS NULL OR e.phase <= p.total)
     AND NOT EXISTS (SELECT 1 FROM phasegate_events r
                      WHERE {k_r_plan} = {k_e_plan} AND r.phase = e.phase
                        AND r.kind = {rolled_back} AND r.id > e.id)
),
heads AS (
  SELECT p.plan AS plan, p.total AS total, p.last_ms AS last_ms,
         CASE
           WHEN NOT EXISTS (SELECT 1 FROM states d
                             WHERE {k_d_plan} = {k_p_plan} AND d.phase = 1 AND d.state = {s_deployed})
             THEN 0
           ELSE (SELECT MIN(d.phase) FROM states d
                  WHERE {k_d_plan} = {k_p_plan} AND d.state = {s_deployed}
                    AND NOT EXISTS (SELECT 1 FROM states n
                                     WHERE {k_n_plan} = {k_d_plan} AND n.phase = d.phase + 1
                                       AND n.state = {s_deployed}))
         END AS done
    FROM plans p
),
cur AS (
  SELECT h.plan AS plan, h.total AS total, h.last_ms AS last_ms, h.done AS done,
         CASE WHEN h.total IS NOT NULL AND h.done >= h.total THEN 1 ELSE 0 END AS complete,
         (SELECT s.state FROM states s WHERE {k_s_plan} = {k_h_plan} AND s.phase = h.done + 1) AS next_state
    FROM heads h
)
SELECT {k_c_plan} AS {plan},
       c.total AS {n_phases},
       CASE WHEN c.complete = 1 THEN c.total ELSE c.done + 1 END AS {phase},
       CASE WHEN c.complete = 1 THEN {s_deployed} ELSE COALESCE(c.next_state, {s_pending}) END AS {state},
       CASE
         WHEN c.complete = 1 THEN {a_complete}
         WHEN c.next_state = {s_migrated} THEN {a_deploy}
         WHEN c.next_state IS NULL AND c.total IS NULL AND c.done > 0 THEN NULL
         ELSE {a_apply}
       END AS {next},
       COALESCE((SELECT MAX(s.phase) FROM states s
                  WHERE {k_s_plan} = {k_c_plan} AND s.state IN ({s_migrated}, {s_deployed})), 0) AS {applied},
       COALESCE((SELECT MAX(s.phase) FROM states s
                  WHERE {k_s_plan} = {k_c_plan} AND s.state = {s_deployed}), 0) AS {deployed_col},
       (SELECT COUNT(*) FROM open_steps o WHERE {k_o_plan} = {k_c_plan} AND o.kind IN {failed}) AS {failed_col},
       (SELECT COUNT(*) FROM open_steps o WHERE {k_o_plan} = {k_c_plan} AND o.kind IN {unfinished}) AS {unfinished_col},
       {updated} AS {at},
       c.last_ms AS {at_ms}
  FROM cur c",
        k_plan = k("plan"),
        k_step = k("step"),
        k_e_plan = k("e.plan"),
        k_t_plan = k("t.plan"),
        k_b_plan = k("b.plan"),
        k_p_plan = k("p.plan"),
        k_m_plan = k("m.plan"),
        k_an_plan = k("an.plan"),
        k_r_plan = k("r.plan"),
        k_d_plan = k("d.plan"),
        k_n_plan = k("n.plan"),
        k_s_plan = k("s.plan"),
        k_h_plan = k("h.plan"),
        k_c_plan = k("c.plan"),
        k_o_plan = k("o.plan"),
        anchor = l("anchor"),
        up = l("up"),
        down = l("down"),
        step_applied = l("step_applied"),
        step_resolved = l("step_resolved"),
        resolved_rolled_back = l(super::ROLLED_BACK),
        s_pending = l("pending"),
        s_migrating = l("migrating"),
        s_rolling_back = l("rolling_back"),
        s_migrated = l("migrated"),
        s_deployed = l("deployed"),
        a_apply = l("apply"),
        a_deploy = l("deploy"),
        a_complete = l("complete"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tracker::{EventKind, PhaseStatus};

    /// The kinds the view names are phasegate's own, spelt as the log spells them.
    #[test]
    fn every_kind_named_is_an_event_kind() {
        for k in ANCHORS.iter().chain(&UNDOS).chain(&SETTLES) {
            assert!(EventKind::parse(k).is_some(), "{k}");
        }
    }

    /// The states the view reports are `phasegate status --format json`'s.
    #[test]
    fn states_are_spelt_as_status_spells_them() {
        let sql = select(Dialect::Postgres);
        for s in [
            PhaseStatus::Pending,
            PhaseStatus::Migrating,
            PhaseStatus::RollingBack,
            PhaseStatus::Migrated,
            PhaseStatus::Deployed,
        ] {
            let json = serde_json::to_value(s).unwrap_or_default();
            let name = json.as_str().unwrap_or_default();
            assert!(sql.contains(&format!("'{name}'")), "{name}");
        }
    }

    #[test]
    fn sqlite_drops_then_creates_and_the_others_replace() {
        assert_eq!(view_sql(Dialect::Sqlite).len(), 2);
        assert!(
            view_sql(Dialect::Postgres)[0]
                .starts_with("CREATE OR REPLACE VIEW \"phasegate_status\"")
        );
        assert!(
            view_sql(Dialect::Mysql)[0].starts_with("CREATE OR REPLACE VIEW `phasegate_status`")
        );
    }
}
