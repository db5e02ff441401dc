//! The refusals of exported SQL: the guard that opens every deploy, a
//! backfill's hand-off to phasegate, and what SQLite's files do instead.
//!
//! The guard reads the `phasegate_status` view (`tracker::status_view`),
//! which derives each plan's phases from the log as phasegate does, and the
//! log itself for the plan's checksum. In order, it refuses when:
//! phasegate's log is not in this database; a phasegate run holds the
//! environment's lock; the plan started here from
//! another text (drift); a step of the plan failed or never finished here;
//! this deploy is migrated already; it is partly applied; the deploy before
//! is not marked deployed (`phasegate mark`).

use crate::dialect::Dialect;
use crate::execute::LoadedPlan;
use crate::plan::Step;
use crate::tracker::checksum;

use super::Unit;
use super::build::Cx;
use super::refuse::{Check, refuse_if};

/// `<column> = <plan>` (MySQL: compared byte for byte, the plan's name a
/// utf8mb4 hex literal, so the comparison holds on a connection of any
/// character set — a `'…' COLLATE utf8mb4_bin` literal fails on utf8mb3,
/// the mysql client's and MariaDB's default).
pub(super) fn same_plan(cx: &Cx<'_>, column: &str) -> String {
    match cx.dialect {
        Dialect::Mysql => format!(
            "{column} = {} COLLATE utf8mb4_bin",
            crate::tracker::record_sql::mysql_text(cx.plan)
        ),
        _ => format!("{column} = {}", cx.dialect.quote_literal(cx.plan)),
    }
}

/// A column of the plan's row in `phasegate_status`, 0 without a row.
fn status(cx: &Cx<'_>, expr: &str) -> String {
    format!(
        "COALESCE((SELECT {expr} FROM phasegate_status WHERE {}), 0)",
        same_plan(cx, "plan")
    )
}

/// The checks that open a deploy (see the module doc).
pub(super) fn checks(cx: &Cx<'_>, loaded: &LoadedPlan) -> Vec<Check> {
    let (env, label, n) = (&cx.env.name, cx.label, cx.phase);
    let d = cx.dialect;
    let no_log = no_log_sql(d);
    let needle = format!(
        "\"checksum\":{}",
        serde_json::Value::String(checksum(&loaded.text))
    );
    let starts = format!(
        "SELECT detail FROM phasegate_events WHERE {} AND kind IN ('plan_started', 'change_accepted') ORDER BY id DESC LIMIT 1",
        same_plan(cx, "plan")
    );
    let drift = match d {
        Dialect::Postgres => format!(
            "strpos(COALESCE(({starts}), {}), {}) = 0",
            d.quote_literal(&needle),
            d.quote_literal(&needle)
        ),
        _ => format!(
            "LOCATE({}, COALESCE(({starts}), {})) = 0",
            d.quote_literal(&needle),
            d.quote_literal(&needle)
        ),
    };
    let mut checks = vec![
        no_log_check(cx, no_log),
        Check {
            refused: crate::tracker::record_sql::environment_locked_sql(d)
                .unwrap_or_else(|| "1 = 0".into()),
            message: format!(
                "phasegate: a phasegate run (apply; rollback; mark) holds this database now; deploy {n} of {} waits for it",
                cx.plan
            ),
            hint: "run this migration again when it ends".into(),
        },
        Check {
            refused: drift,
            message: format!(
                "phasegate: {} started in this database from another text of the plan file (drift)",
                cx.plan
            ),
            hint: format!(
                "see the change with `phasegate status --env {env} {label}`; restore the plan file or accept the edit (`phasegate accept-change`) and export again"
            ),
        },
        Check {
            refused: format!("{} > 0", status(cx, "failed_steps + unfinished_steps")),
            message: format!(
                "phasegate: a step of {} failed or never finished in this database",
                cx.plan
            ),
            hint: format!(
                "see which with `phasegate status --env {env} {label}` and settle it (`phasegate resolve`) before running deploy {n}"
            ),
        },
        migrated_already(cx),
        Check {
            refused: format!(
                "EXISTS (SELECT 1 FROM phasegate_status WHERE {} AND phase = {n} AND state IN ('migrating', 'rolling_back'))",
                same_plan(cx, "plan")
            ),
            message: format!(
                "phasegate: deploy {n} of {} is partly applied in this database",
                cx.plan
            ),
            hint: format!(
                "finish it with `phasegate apply --env {env} {label}` (or undo it with `phasegate rollback`)"
            ),
        },
    ];
    checks.extend(previous_not_marked(cx));
    checks
}

/// SQL true when this database has no `phasegate_status` view (no log).
fn no_log_sql(d: Dialect) -> String {
    match d {
        Dialect::Postgres => "to_regclass('phasegate_status') IS NULL".to_string(),
        _ => "(SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = DATABASE() AND table_name = 'phasegate_status') = 0".to_string(),
    }
}

/// Refuses in a database without phasegate's log.
fn no_log_check(cx: &Cx<'_>, refused: String) -> Check {
    let env = &cx.env.name;
    Check {
        refused,
        message: format!(
            "phasegate: this database has no phasegate log; deploy {} of {} records its progress there",
            cx.phase, cx.plan
        ),
        hint: format!(
            "point the runner at the database of environment {env} (`phasegate export --env {env}` creates the log there) or export for this database's environment"
        ),
    }
}

/// Refuses when this deploy is migrated already here.
fn migrated_already(cx: &Cx<'_>) -> Check {
    let (env, label, n) = (&cx.env.name, cx.label, cx.phase);
    Check {
        refused: format!("{} >= {n}", status(cx, "phase_applied")),
        message: format!(
            "phasegate: deploy {n} of {} is migrated already in this database",
            cx.plan
        ),
        hint: format!("nothing to run: see `phasegate status --env {env} {label}`"),
    }
}

/// Refuses when the deploy before this one is not marked deployed here
/// (none for deploy 1).
fn previous_not_marked(cx: &Cx<'_>) -> Option<Check> {
    let (env, label, n) = (&cx.env.name, cx.label, cx.phase);
    let before = n.checked_sub(1).filter(|b| *b > 0)?;
    Some(Check {
        refused: format!("{} < {before}", status(cx, "phase_deployed")),
        message: format!(
            "phasegate: deploy {n} of {} needs deploy {before} marked deployed here",
            cx.plan
        ),
        hint: format!(
            "ship its app then run `phasegate mark --env {env} {label} --phase {before} --app-version <V>`"
        ),
    })
}

/// The checks of every transactional unit after the guard (run alone, out
/// of order, a unit must refuse as the guard does): no log; the deploy
/// before not marked deployed; this deploy migrated already. A partly
/// applied deploy of this phase passes: the unit continues it.
pub(super) fn continuation_checks(cx: &Cx<'_>) -> Vec<Check> {
    let mut checks = vec![no_log_check(cx, no_log_sql(cx.dialect))];
    checks.extend(previous_not_marked(cx));
    checks.push(migrated_already(cx));
    checks
}

/// The deploy's first unit: its checks, in a transaction.
pub(super) fn guard_unit(cx: &Cx<'_>, loaded: &LoadedPlan) -> Unit {
    Unit {
        name: "guard".into(),
        transactional: true,
        comments: vec![format!(
            "phasegate guard: deploy {} of {} runs only in order, once, from the plan that started here",
            cx.phase, cx.plan
        )],
        statements: refuse_if(cx.dialect, &checks(cx, loaded)),
        steps: Vec::new(),
    }
}

/// A backfill handed to phasegate: refuses until phasegate has recorded
/// this deploy migrated (`phasegate apply` runs the backfill in batches,
/// resumably, and the steps after it), then passes.
pub(super) fn handoff(cx: &Cx<'_>, step: &Step, rest: Vec<String>) -> Unit {
    let (env, label, n) = (&cx.env.name, cx.label, cx.phase);
    let check = Check {
        refused: format!("{} < {n}", status(cx, "phase_applied")),
        message: format!(
            "phasegate: deploy {n} of {} continues with a backfill ({}) that phasegate runs in batches",
            cx.plan, step.id
        ),
        hint: format!(
            "run `phasegate apply --env {env} {label}` (it runs the backfill and the rest of deploy {n}) then run this migration again"
        ),
    };
    Unit {
        name: "backfill_handoff".into(),
        transactional: true,
        comments: vec![
            format!(
                "{}: {} — run by phasegate, not by this runner: `phasegate apply --env {env} {label}`",
                step.id, step.description
            ),
            format!("this migration passes once phasegate has recorded deploy {n} migrated"),
        ],
        // No check of the deploy before: this refuses until phasegate has
        // recorded deploy n migrated, which `apply` does only once deploy
        // n-1 is marked (its order gate).
        statements: refuse_if(
            cx.dialect,
            &[no_log_check(cx, no_log_sql(cx.dialect)), check],
        ),
        steps: rest,
    }
}

/// SQLite: no SHA-256 in its SQL, so no file can record itself in the log;
/// the one unit refuses, saying to run the deploy with phasegate.
pub(super) fn sqlite_refusal(cx: &Cx<'_>) -> Unit {
    let (env, label, n) = (&cx.env.name, cx.label, cx.phase);
    let check = Check {
        refused: "1 = 1".into(),
        message: format!(
            "phasegate: deploy {n} of {} cannot run from a runner on SQLite: SQLite has no SHA-256 in SQL to record it in phasegate's log",
            cx.plan
        ),
        hint: format!("run it with `phasegate apply --env {env} {label}`"),
    };
    Unit {
        name: "guard".into(),
        transactional: true,
        comments: vec![format!(
            "SQLite: run deploy {n} of {} with `phasegate apply --env {env} {label}` (docs/export.md)",
            cx.plan
        )],
        statements: refuse_if(cx.dialect, &[check]),
        steps: Vec::new(),
    }
}
