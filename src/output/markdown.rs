//! `--format markdown`: a runbook to paste into a pull request. The
//! environments it is promoted through (from `phasegate.yaml`, when there is
//! one), and per deploy: the gates each environment checks, the SQL (as
//! [`super::script`] prints it), the app change and when to record it with
//! `phasegate mark`, the verification, the rollback.

use std::fmt::Write;

use super::{Context, describe_lock, script};
use crate::config::Environment;
use crate::plan::{Phase, Plan, StepKind};
use crate::tracker::gates::human;

/// The runbook of `plan`; `cx.environments` are the configured environments.
pub fn markdown(plan: &Plan, cx: &Context<'_>) -> String {
    let mut out = String::new();
    let n = plan.phases.len();
    let _ = writeln!(out, "# Runbook: {}\n", plan.name);
    if let Some(d) = &plan.description {
        let _ = writeln!(out, "{d}\n");
    }
    // "3 deploys, each … before the next starts"; "1 deploy, …".
    let (deploys, each, before_next) = if n == 1 {
        ("1 deploy".to_string(), "", "")
    } else {
        (format!("{n} deploys"), "each ", " before the next starts")
    };
    match cx.environments {
        Some(envs) => {
            let order: Vec<String> = envs.iter().map(|e| format!("`{}`", e.name)).collect();
            let _ = writeln!(
                out,
                "Dialect: `{}`. {deploys}, {each}promoted {} (the environments of phasegate.yaml, in order){before_next}.\n",
                plan.dialect,
                order.join(" → ")
            );
            environments_table(&mut out, envs);
        }
        None => {
            let _ = writeln!(
                out,
                "Dialect: `{}`. {deploys}, {each}run in every environment, in promotion order{before_next}.\n\n\
                 No phasegate.yaml was read (none here, and no `--config`): the gates below are the ones every environment checks; the soak, backup and approval an environment requires come from its config.\n",
                plan.dialect
            );
        }
    }
    for (i, change) in plan.changes.iter().enumerate() {
        let _ = writeln!(out, "{}. `{change}`", i + 1);
    }
    for phase in &plan.phases {
        deploy(&mut out, plan, phase, cx);
    }
    if !plan.notes.is_empty() {
        let _ = writeln!(out, "\n## Notes\n");
        for note in &plan.notes {
            let _ = writeln!(out, "- Change {}: {}", note.change + 1, note.text);
        }
    }
    out
}

/// The configured environments and what each requires.
fn environments_table(out: &mut String, envs: &[Environment]) {
    let _ = writeln!(
        out,
        "| environment | promoted from | soak before an irreversible deploy | backup before an irreversible deploy | approval of an irreversible deploy | lock_timeout | statement_timeout |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|");
    for (i, e) in envs.iter().enumerate() {
        let from = match i.checked_sub(1) {
            Some(p) => format!("`{}`", envs[p].name),
            None => "— (first)".to_string(),
        };
        let _ = writeln!(
            out,
            "| `{}` | {from} | {} | {} | {} | {} | {} |",
            e.name,
            e.soak.map_or("none".to_string(), human),
            e.require_backup
                .map_or("none".to_string(), |w| format!("within {}", human(w))),
            if e.require_approval {
                "required"
            } else {
                "none"
            },
            human_ms(e.lock_timeout),
            e.statement_timeout.map_or("server's".to_string(), human_ms),
        );
    }
    let _ = writeln!(out);
}

fn human_ms(d: std::time::Duration) -> String {
    if d.subsec_millis() == 0 {
        human(d)
    } else {
        format!("{}ms", d.as_millis())
    }
}

fn deploy(out: &mut String, plan: &Plan, phase: &Phase, cx: &Context<'_>) {
    let n = plan.phases.len();
    let number = phase.number;
    let label = &plan.name;
    let flag = if phase.reversible {
        ""
    } else {
        " — ⚠ irreversible"
    };
    let _ = writeln!(out, "\n## Deploy {number} of {n}{flag}\n");
    let _ = writeln!(
        out,
        "**Gates** (checked by `phasegate gate --env ENV {label}`, and again by `apply`):\n"
    );
    for g in gates(plan, phase, cx) {
        let _ = writeln!(out, "- [ ] {g}");
    }
    let steps: Vec<_> = plan.phase_steps(phase).collect();
    let db: Vec<_> = steps.iter().filter(|s| s.kind != StepKind::App).collect();
    if !db.is_empty() {
        let _ = writeln!(
            out,
            "\n**Before the deploy** (`phasegate apply --env ENV {label}`; the SQL is what it runs, with {}):\n",
            bounds_words(cx)
        );
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
            let sql = script::statements(s, plan.dialect, cx.bounds, None);
            if !sql.is_empty() {
                let _ = writeln!(out, "```sql\n{}\n```\n", sql.join("\n"));
            }
            if let Some(expect) = s.expect {
                let _ = writeln!(out, "Must return `{expect}`.\n");
            }
        }
    }
    let _ = writeln!(out, "\n**App change in this deploy:**\n");
    let app: Vec<_> = steps.iter().filter(|s| s.kind == StepKind::App).collect();
    if app.is_empty() {
        let _ = writeln!(
            out,
            "- None: the running release keeps working. `apply` records this deploy as complete; there is nothing to `mark`."
        );
    } else {
        for s in &app {
            let _ = writeln!(out, "- [ ] {}", s.description);
        }
        // What waits for the mark: the next deploy here, this deploy in the
        // next environment; only those that exist.
        let mut waits = Vec::new();
        if number < plan.phases.len() {
            waits.push(format!(
                "nothing of deploy {} may start in that environment",
                number + 1
            ));
        }
        if cx.environments.is_none_or(|envs| envs.len() > 1) {
            waits.push("this deploy may not start in the next environment".to_string());
        }
        let until = if waits.is_empty() {
            String::new()
        } else {
            format!(" ({} until you do)", waits.join(", nor "))
        };
        let _ = writeln!(
            out,
            "\nOnce that release runs on every instance of an environment, record it there{until}:\n"
        );
        match cx.environments {
            Some(envs) => {
                for e in envs {
                    let _ = writeln!(
                        out,
                        "- [ ] `phasegate mark --env {} {label} --phase {number} --app-version VERSION`",
                        e.name
                    );
                }
            }
            None => {
                let _ = writeln!(
                    out,
                    "- [ ] `phasegate mark --env ENV {label} --phase {number} --app-version VERSION`"
                );
            }
        }
    }
    rollback(out, plan, phase, &db, !app.is_empty(), label, cx);
}

/// The gates of deploy `phase`: those every environment checks, then what
/// each configured environment adds.
fn gates(plan: &Plan, phase: &Phase, cx: &Context<'_>) -> Vec<String> {
    let number = phase.number;
    let label = &plan.name;
    let mut gates = Vec::new();
    if number > 1 {
        let prev = number - 1;
        let app = plan.phases[prev - 1]
            .steps
            .iter()
            .any(|&s| plan.steps[s].kind == StepKind::App);
        gates.push(if app {
            format!(
                "deploy {prev} is complete in this environment: its app code runs on every instance and is recorded (`phasegate mark … --phase {prev}`)"
            )
        } else {
            format!("deploy {prev} is complete in this environment")
        });
        if plan.phases[prev - 1]
            .steps
            .iter()
            .any(|&s| plan.steps[s].kind == StepKind::Verify)
        {
            gates.push(format!("deploy {prev}'s verification queries still pass"));
        }
    }
    let irreversible = !phase.reversible;
    let Some(envs) = cx.environments else {
        gates.push(
            "promotion: the environment before this one in your promotion order has completed this deploy (none for the first)".into(),
        );
        if irreversible {
            gates.push(
                "irreversible: the soak, the recent backup and the approval your environment requires".into(),
            );
        }
        return gates;
    };
    for (i, e) in envs.iter().enumerate() {
        let mut checks = vec![match i.checked_sub(1) {
            Some(p) => format!(
                "promotion: `{}` has completed deploy {number}",
                envs[p].name
            ),
            None => "first environment: no promotion gate".to_string(),
        }];
        if irreversible {
            match (e.soak, number > 1) {
                (Some(soak), true) => checks.push(format!(
                    "soak: deploy {} has run here for {}",
                    number - 1,
                    human(soak)
                )),
                (Some(_), false) => {}
                (None, _) => checks.push("no soak".to_string()),
            }
            checks.push(match e.require_backup {
                Some(w) => format!(
                    "backup: one recorded within {} (`phasegate backup --env {}`)",
                    human(w),
                    e.name
                ),
                None => "no backup required".to_string(),
            });
            checks.push(if e.require_approval {
                format!(
                    "approval: `phasegate approve --env {} {label} --phase {number}`",
                    e.name
                )
            } else {
                "no approval required".to_string()
            });
        }
        gates.push(format!("**{}**: {}", e.name, checks.join("; ")));
    }
    gates
}

/// "lock_timeout 2s (phasegate's defaults …)".
fn bounds_words(cx: &Context<'_>) -> String {
    let statement = cx.bounds.statement_timeout.map_or_else(
        || "no statement_timeout".to_string(),
        |t| format!("statement_timeout {}", human_ms(t)),
    );
    format!(
        "lock_timeout {}, {statement}: {}",
        human_ms(cx.bounds.lock_timeout),
        cx.bounds_source()
    )
}

/// The rollback of a reversible deploy. A deploy that ships app code is
/// rolled back with `--app-reverted` once the previous release runs again:
/// without it `rollback` refuses, and the log would go on saying the deploy
/// is complete (so the next deploy's gates would hold).
fn rollback(
    out: &mut String,
    plan: &Plan,
    phase: &Phase,
    db: &[&&crate::plan::Step],
    has_app: bool,
    label: &str,
    cx: &Context<'_>,
) {
    let _ = writeln!(out, "\n**Rollback:**\n");
    if !phase.reversible {
        let _ = writeln!(
            out,
            "None: this deploy cannot be undone. Take and record a backup first; to go back, restore it."
        );
        return;
    }
    let undo: Vec<String> = db
        .iter()
        .rev()
        .filter_map(|s| {
            let sql = script::rollback(s, plan.dialect, cx.bounds).join("\n");
            if sql.is_empty() {
                return None;
            }
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
                None => sql,
            })
        })
        .collect();
    let command = if has_app {
        format!("`phasegate rollback --env ENV {label} --app-reverted`")
    } else {
        format!("`phasegate rollback --env ENV {label}`")
    };
    match (undo.is_empty(), has_app) {
        (true, true) => {
            let _ = writeln!(
                out,
                "Nothing to undo in the database. Redeploy the previous release, then record it: {command} (the log then shows this deploy rolled back, and the next deploy's gates hold it back)."
            );
        }
        (true, false) => {
            let _ = writeln!(
                out,
                "Nothing to undo in the database; {command} records the deploy rolled back."
            );
        }
        (false, true) => {
            let _ = writeln!(
                out,
                "Redeploy the previous release first; then {command} runs:\n\n```sql\n{}\n```",
                undo.join("\n")
            );
        }
        (false, false) => {
            let _ = writeln!(out, "{command} runs:\n\n```sql\n{}\n```", undo.join("\n"));
        }
    }
}
