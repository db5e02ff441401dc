//! `--format markdown`: a runbook to paste into a pull request. Per deploy:
//! the gates, the SQL, the app change, the verification, the rollback.

use std::fmt::Write;

use super::{describe_lock, gates_for};
use crate::plan::{Plan, StepKind};

pub fn markdown(plan: &Plan) -> String {
    let mut out = String::new();
    let n = plan.phases.len();
    let _ = writeln!(out, "# Runbook: {}\n", plan.name);
    if let Some(d) = &plan.description {
        let _ = writeln!(out, "{d}\n");
    }
    let _ = writeln!(
        out,
        "Dialect: `{}`. {n} deploy{}, each promoted dev → staging → prod before the next starts.\n",
        plan.dialect,
        if n == 1 { "" } else { "s" }
    );
    for (i, change) in plan.changes.iter().enumerate() {
        let _ = writeln!(out, "{}. `{change}`", i + 1);
    }
    for phase in &plan.phases {
        let flag = if phase.reversible {
            ""
        } else {
            " — ⚠ irreversible"
        };
        let _ = writeln!(out, "\n## Deploy {} of {n}{flag}\n", phase.number);
        let _ = writeln!(out, "**Gates** (checked by `phasegate gate`):\n");
        for g in gates_for(plan, phase.number) {
            let _ = writeln!(out, "- [ ] {g}");
        }
        let steps: Vec<_> = plan.phase_steps(phase).collect();
        let db: Vec<_> = steps.iter().filter(|s| s.kind != StepKind::App).collect();
        if !db.is_empty() {
            let _ = writeln!(out, "\n**Before the deploy** (`phasegate apply`):\n");
            for s in &db {
                let kind = match s.kind {
                    StepKind::Backfill => " (batched backfill)",
                    StepKind::Verify => " (verification)",
                    _ if !s.transactional => " (outside a transaction)",
                    _ => "",
                };
                let _ = writeln!(out, "### `{}`{kind}\n\n{}\n", s.id, s.description);
                if let Some(lock) = &s.lock {
                    let _ = writeln!(out, "Lock: {}\n", describe_lock(lock));
                }
                if let Some(sql) = &s.sql {
                    let _ = writeln!(out, "```sql\n{sql}\n```\n");
                }
                if let Some(expect) = s.expect {
                    let _ = writeln!(out, "Must return `{expect}`.\n");
                }
            }
        }
        let _ = writeln!(out, "\n**App change in this deploy:**\n");
        let app: Vec<_> = steps.iter().filter(|s| s.kind == StepKind::App).collect();
        if app.is_empty() {
            let _ = writeln!(out, "- None: the running release keeps working.");
        }
        for s in app {
            let _ = writeln!(out, "- [ ] {}", s.description);
        }
        let _ = writeln!(out, "\n**Rollback:**\n");
        if phase.reversible {
            let undo: Vec<String> = db
                .iter()
                .rev()
                .filter_map(|s| {
                    let sql = s.rollback_sql.as_deref()?;
                    Some(match &s.rollback_fill {
                        Some(f) => match &f.backfill {
                            Some(b) => format!(
                                "-- first, in batches, the rows written without the column:\n{}\n{sql}",
                                plan.dialect.backfill_sql(&b.table, &b.set, &b.pending)
                            ),
                            None => format!(
                                "-- stops if `{}` finds rows: {}\n{sql}",
                                f.count.trim(),
                                f.missing
                            ),
                        },
                        None => sql.to_string(),
                    })
                })
                .collect();
            if undo.is_empty() {
                let _ = writeln!(
                    out,
                    "Nothing to undo in the database; redeploy the previous release."
                );
            } else {
                let _ = writeln!(
                    out,
                    "`phasegate rollback` runs, after the previous release is redeployed:\n\n```sql\n{}\n```",
                    undo.join("\n")
                );
            }
        } else {
            let _ = writeln!(
                out,
                "None: this deploy cannot be undone. Take and record a backup first; to go back, restore it."
            );
        }
    }
    if !plan.notes.is_empty() {
        let _ = writeln!(out, "\n## Notes\n");
        for note in &plan.notes {
            let _ = writeln!(out, "- Change {}: {}", note.change + 1, note.text);
        }
    }
    out
}
