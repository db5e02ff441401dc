//! `status` as text, and the summary of what it could not report.

use std::fmt::Write;

use phasegate::execute::{EnvStatus, FleetRow, PlanProblem};
use phasegate::tracker::Next;
use phasegate::tracker::gates::human;

/// Where a gate's reason starts on its line (`    drift      …`): its
/// continuation lines start there too, as `gate` prints them.
const REASON_COLUMN: usize = 15;

/// `status` as text: each environment, then each plan's phase and next
/// step, with every reason that blocks it in full. A plan file that cannot
/// be read is listed once, after the environments.
pub fn status_text(envs: &[EnvStatus]) -> String {
    let mut out = String::new();
    let now = chrono::Utc::now();
    // Errors every environment shares (a plan file that cannot be read)
    // are said once, at the end; the others under their environment.
    let everywhere: Vec<&PlanProblem> = envs
        .first()
        .map(|first| {
            first
                .plan_errors
                .iter()
                .filter(|p| envs.iter().all(|e| e.plan_errors.contains(p)))
                .collect()
        })
        .unwrap_or_default();
    for e in envs {
        let _ = writeln!(out, "{}", e.env);
        if let Some(why) = &e.unreachable {
            let _ = writeln!(out, "  unreachable: {}", indent(why, 4));
            continue;
        }
        if e.plans.is_empty() && e.plan_errors.is_empty() {
            let _ = writeln!(out, "  no plans under plans/");
        }
        for p in &e.plans {
            let since = p
                .since
                .map(|t| {
                    format!(
                        " for {}",
                        human(now.signed_duration_since(t).to_std().unwrap_or_default())
                    )
                })
                .unwrap_or_default();
            let where_ = match p.next {
                Next::Complete => format!("complete ({} of {} phases)", p.phases, p.phases),
                _ => format!("phase {} of {}: {}{since}", p.phase, p.phases, p.state),
            };
            let next = match p.next {
                _ if !p.plan_file_found => {
                    " (plan file not found: listed from the log; run commands where plans/ has it)"
                        .to_string()
                }
                // Complete or waiting for a deploy as recorded: the drift
                // is what holds it (with `apply` next, it is among the gates).
                Next::Complete | Next::Deploy(_) if p.drift.is_some() => format!(
                    " (as recorded); blocked by:\n    {:<10} {}",
                    "drift",
                    indent(p.drift.as_deref().unwrap_or_default(), REASON_COLUMN)
                ),
                Next::Complete => String::new(),
                Next::Deploy(n) => format!(
                    "; next: deploy phase {n}'s app code, then `phasegate mark --env {} {} --phase {n} --app-version VERSION`",
                    e.env, p.target
                ),
                Next::Apply(n) if p.blocked.is_empty() => format!(
                    "; next: apply phase {n}: `phasegate apply --env {} {}`",
                    e.env, p.target
                ),
                Next::Apply(n) => format!("; phase {n} blocked by:"),
            };
            let _ = writeln!(out, "  {:<32} {where_}{next}", p.plan);
            if let Some(f) = &p.fleet {
                fleet_lines(&mut out, f);
            }
            if matches!(p.next, Next::Apply(_)) {
                for g in &p.blocked {
                    let _ = writeln!(
                        out,
                        "    {:<10} {}",
                        g.name,
                        indent(&g.reason, REASON_COLUMN)
                    );
                }
            }
        }
        for p in e.plan_errors.iter().filter(|p| !everywhere.contains(p)) {
            let _ = writeln!(
                out,
                "  {:<32} cannot be planned here:\n      {}",
                p.plan,
                indent(&p.error, 6)
            );
        }
        for p in e.plan_errors.iter().filter(|p| everywhere.contains(p)) {
            let _ = writeln!(out, "  {:<32} cannot be read (below)", p.plan);
        }
    }
    if !everywhere.is_empty() {
        let _ = writeln!(out, "\nplans that cannot be read:");
        for p in everywhere {
            let _ = writeln!(out, "  {}:\n    {}", p.plan, indent(&p.error, 4));
        }
    }
    out
}

/// Where a plan stands across a fleet: "N of M databases at phase k", then
/// each database (the first 20).
fn fleet_lines(out: &mut String, f: &FleetRow) {
    let _ = writeln!(
        out,
        "    fleet      {} of {} databases at phase {} (the line above is the one furthest behind)",
        f.at_phase, f.targets, f.phase
    );
    for t in f.databases.iter().take(20) {
        let where_ = match t.next {
            Next::Complete => "complete".to_string(),
            _ => format!("phase {}: {}", t.phase, t.state),
        };
        let _ = writeln!(out, "      {:<40} {where_}", t.database);
    }
    if f.databases.len() > 20 {
        let _ = writeln!(out, "      … and {} more", f.databases.len() - 20);
    }
}

/// `text` with its lines after the first indented by `by` spaces.
fn indent(text: &str, by: usize) -> String {
    text.replace('\n', &format!("\n{:by$}", ""))
}

/// The one-line summary of what the report leaves out (environments that
/// could not be read, plans that could not be read or planned), or `None`
/// when it is complete.
pub fn incomplete(envs: &[EnvStatus]) -> Option<String> {
    let unread: Vec<&str> = envs
        .iter()
        .filter(|e| e.unreachable.is_some())
        .map(|e| e.env.as_str())
        .collect();
    let mut plans: Vec<&str> = envs
        .iter()
        .flat_map(|e| e.plan_errors.iter().map(|p| p.plan.as_str()))
        .collect();
    plans.sort_unstable();
    plans.dedup();
    let mut parts = Vec::new();
    if !unread.is_empty() {
        parts.push(format!(
            "{} of {} environments could not be read: {}",
            unread.len(),
            envs.len(),
            unread.join(", ")
        ));
    }
    if !plans.is_empty() {
        parts.push(format!(
            "{} plan{} could not be read or planned: {}",
            plans.len(),
            if plans.len() == 1 { "" } else { "s" },
            plans.join(", ")
        ));
    }
    (!parts.is_empty()).then(|| format!("error: {} (see above)", parts.join("; ")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use phasegate::execute::PlanStatus;
    use phasegate::tracker::PhaseStatus;
    use phasegate::tracker::gates::Gate;

    fn row(next: Next, blocked: Vec<Gate>) -> PlanStatus {
        PlanStatus {
            plan: "rename-users".into(),
            target: "rename-users-name".into(),
            phases: 3,
            deployed: 1,
            phase: 2,
            state: PhaseStatus::Pending,
            since: None,
            next,
            blocked,
            plan_file_found: true,
            drift: None,
            fleet: None,
        }
    }

    #[test]
    fn next_is_a_command_that_parses_and_reasons_keep_their_lines() {
        let envs = [EnvStatus {
            env: "staging".into(),
            unreachable: None,
            plans: vec![
                row(Next::Apply(2), Vec::new()),
                row(Next::Deploy(2), Vec::new()),
                row(
                    Next::Apply(3),
                    vec![Gate {
                        name: "drift",
                        held: false,
                        reason: "changed:\n  + x\nreview it".into(),
                    }],
                ),
            ],
            plan_errors: Vec::new(),
        }];
        let text = status_text(&envs);
        let commands: Vec<&str> = text
            .split('`')
            .skip(1)
            .step_by(2)
            .filter(|c| c.starts_with("phasegate "))
            .collect();
        assert_eq!(commands.len(), 2, "{text}");
        for c in &commands {
            // The file's name under plans/, which commands take.
            assert!(c.contains(" rename-users-name"), "{c}");
            let parsed = crate::cli::Cli::try_parse_from(c.split_whitespace());
            assert!(parsed.is_ok(), "`{c}` does not parse: {:?}", parsed.err());
        }
        assert!(
            text.contains(
                "    drift      changed:\n                 + x\n               review it\n"
            ),
            "{text}"
        );
    }

    /// A plan complete as recorded whose file drifted shows the drift; a
    /// plan whose file is gone says so and suggests nothing to run here.
    #[test]
    fn drift_when_complete_and_a_missing_plan_file_are_said() {
        let drifted = PlanStatus {
            drift: Some("changed:\n  + x".into()),
            ..row(Next::Complete, Vec::new())
        };
        let gone = PlanStatus {
            plan_file_found: false,
            ..row(Next::Complete, Vec::new())
        };
        let envs = [EnvStatus {
            env: "dev".into(),
            unreachable: None,
            plans: vec![drifted, gone],
            plan_errors: Vec::new(),
        }];
        let text = status_text(&envs);
        assert!(
            text.contains("(as recorded); blocked by:\n    drift      changed:\n"),
            "{text}"
        );
        assert!(
            text.contains("(plan file not found: listed from the log"),
            "{text}"
        );
    }
}
