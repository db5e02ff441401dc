//! `--format text`: the plan for a person at a terminal.

use std::fmt::Write;

use super::{describe_lock, gates_for};
use crate::plan::{Plan, StepKind};

pub fn text(plan: &Plan) -> String {
    let mut out = String::new();
    let n = plan.phases.len();
    let _ = writeln!(
        out,
        "Plan {} ({}): {n} deploy{}",
        plan.name,
        plan.dialect,
        if n == 1 { "" } else { "s" }
    );
    if let Some(d) = &plan.description {
        let _ = writeln!(out, "  {d}");
    }
    for (i, change) in plan.changes.iter().enumerate() {
        let _ = writeln!(out, "  change {}: {change}", i + 1);
    }
    for phase in &plan.phases {
        let _ = writeln!(out);
        let flag = if phase.reversible {
            "reversible"
        } else {
            "IRREVERSIBLE"
        };
        let _ = writeln!(out, "Deploy {} of {n} ({flag})", phase.number);
        let steps: Vec<_> = plan.phase_steps(phase).collect();
        let db: Vec<_> = steps.iter().filter(|s| s.kind != StepKind::App).collect();
        if phase.number > 1 || !phase.reversible {
            let _ = writeln!(out, "  Gates: {}", gates_for(plan, phase.number).join("; "));
        }
        if db.is_empty() {
            let _ = writeln!(out, "  Database: nothing to run.");
        } else {
            let _ = writeln!(out, "  Before the deploy, phasegate runs:");
            for s in db {
                let tx = if s.transactional {
                    ""
                } else {
                    " [outside a transaction]"
                };
                let _ = writeln!(out, "    {:<24} {}{tx}", s.id, s.description);
                if let Some(lock) = &s.lock {
                    let _ = writeln!(out, "    {:<24} lock: {}", "", describe_lock(lock));
                }
                if let Some(expect) = s.expect {
                    let _ = writeln!(out, "    {:<24} must return {expect}", "");
                }
                if !s.reversible {
                    let _ = writeln!(out, "    {:<24} cannot be undone: restore from backup", "");
                }
            }
        }
        let app: Vec<_> = steps.iter().filter(|s| s.kind == StepKind::App).collect();
        if app.is_empty() {
            let _ = writeln!(
                out,
                "  App: no code change; the running release keeps working."
            );
        } else {
            let _ = writeln!(out, "  App code this deploy must ship:");
            for s in app {
                let _ = writeln!(out, "    - {}", s.description);
            }
        }
    }
    if !plan.notes.is_empty() {
        let _ = writeln!(out, "\nNotes:");
        for note in &plan.notes {
            let _ = writeln!(out, "  - change {}: {}", note.change + 1, note.text);
        }
    }
    let _ = writeln!(
        out,
        "\nSee the SQL with --format sql, a runbook with --format markdown."
    );
    out
}
