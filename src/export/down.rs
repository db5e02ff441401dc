//! A reversible deploy's `down`: its steps' rollback SQL in reverse order,
//! each undo recorded as `rollback` records it (`step_rolled_back`, after
//! `step_rollback_started` for one that cannot run in a transaction), then
//! `phase_rolled_back`; opened by a guard that refuses unless this deploy is
//! the latest one migrated here. A step whose rollback must first fill rows
//! written meanwhile (`rollback_fill`) is handed to `phasegate rollback`,
//! which fills them in batches: the down then only refuses, saying so.

use crate::dialect::statements::split;
use crate::plan::{Step, StepKind};
use crate::tracker::EventKind;
use crate::tracker::record_sql::Only;

use super::Unit;
use super::build::{Cx, slug, terminated as terminate};
use super::refuse::{Check, refuse_if};

fn same_plan(cx: &Cx<'_>) -> String {
    super::guard::same_plan(cx, "plan")
}

fn guard(cx: &Cx<'_>, steps: &[&Step]) -> Unit {
    let (env, label, n) = (&cx.env.name, cx.label, cx.phase);
    let row = |expr: &str| {
        format!(
            "COALESCE((SELECT {expr} FROM phasegate_status WHERE {}), 0)",
            same_plan(cx)
        )
    };
    let mut checks = vec![
        Check {
            refused: format!("{} <> {n}", row("phase_applied")),
            message: format!(
                "phasegate: the down of deploy {n} of {} runs only when deploy {n} is the latest migrated in this database",
                cx.plan
            ),
            hint: format!("see `phasegate status --env {env} {label}`"),
        },
        Check {
            refused: format!("{} > 0", row("failed_steps + unfinished_steps")),
            message: format!(
                "phasegate: a step of {} failed or never finished in this database",
                cx.plan
            ),
            hint: format!("settle it first: `phasegate status --env {env} {label}`"),
        },
    ];
    if let Some(s) = steps.iter().find(|s| s.rollback_fill.is_some()) {
        checks.push(Check {
            refused: "1 = 1".into(),
            message: format!(
                "phasegate: undoing {} first fills rows written since in batches",
                s.id
            ),
            hint: format!("roll deploy {n} back with `phasegate rollback --env {env} {label}`"),
        });
    }
    Unit {
        name: "guard_down".into(),
        transactional: true,
        comments: vec![format!(
            "phasegate guard: the down of deploy {n} of {} runs only while it is the latest deploy migrated",
            cx.plan
        )],
        statements: refuse_if(cx.dialect, &checks),
        steps: Vec::new(),
    }
}

/// The units of deploy `cx.phase`'s down.
pub(super) fn down_units(cx: &Cx<'_>, steps: &[&Step]) -> Vec<Unit> {
    let mut units = vec![guard(cx, steps)];
    let event = |s: &Step, kind| crate::execute::step_event(cx.plan, cx.phase, &s.id, kind);
    let mut alone_last = false;
    let recording = |units: &mut Vec<Unit>, alone_last: &mut bool| -> usize {
        if *alone_last {
            let mut statements = crate::session_bounds::step_postlude(cx.dialect, false);
            statements.retain(|s| !s.trim().eq_ignore_ascii_case("COMMIT;"));
            statements.extend(cx.prelude(true));
            units.push(Unit {
                name: "record".into(),
                transactional: true,
                comments: vec!["records the undo before in phasegate's log".into()],
                statements,
                steps: Vec::new(),
            });
            *alone_last = false;
        }
        units.len() - 1
    };
    for step in steps.iter().rev().filter(|s| s.kind != StepKind::App) {
        let undone = event(step, EventKind::StepRolledBack);
        let Some(sql) = step.rollback_sql.as_deref() else {
            let i = recording(&mut units, &mut alone_last);
            units[i].statements.extend(cx.record(&undone, Only::Always));
            continue;
        };
        let comment = format!("undo {}: {}", step.id, step.description);
        if step.transactional {
            let mut statements = cx.prelude(true);
            statements.extend(split(cx.dialect, sql).iter().map(|s| terminate(s)));
            statements.extend(cx.record(&undone, Only::Always));
            units.push(Unit {
                name: format!("undo_{}", slug(&step.id)),
                transactional: true,
                comments: vec![comment],
                statements,
                steps: vec![step.id.clone()],
            });
            continue;
        }
        let i = recording(&mut units, &mut alone_last);
        units[i]
            .statements
            .extend(cx.record_started(&event(step, EventKind::StepRollbackStarted)));
        for s in split(cx.dialect, sql) {
            let mut statements = cx.prelude(false);
            statements.push(terminate(&s));
            units.push(Unit {
                name: format!("undo_{}", slug(&step.id)),
                transactional: false,
                comments: vec![comment.clone(), "runs outside a transaction, alone".into()],
                statements,
                steps: vec![step.id.clone()],
            });
        }
        alone_last = true;
        let i = recording(&mut units, &mut alone_last);
        units[i].statements.extend(cx.record(&undone, Only::Always));
    }
    let done = crate::tracker::NewEvent::plan(cx.plan, EventKind::PhaseRolledBack).phase(cx.phase);
    let i = recording(&mut units, &mut alone_last);
    units[i].statements.extend(cx.record(&done, Only::Always));
    units
}
