//! `status` as text.

use std::fmt::Write;

use phasegate::tracker::Next;
use phasegate::tracker::gates::human;

use super::first_line;

/// `status` as text: each environment, then each plan's phase and next step.
pub fn status_text(envs: &[phasegate::execute::EnvStatus]) -> String {
    let mut out = String::new();
    let now = chrono::Utc::now();
    for e in envs {
        let _ = writeln!(out, "{}", e.env);
        if let Some(why) = &e.unreachable {
            let _ = writeln!(out, "  unreachable: {why}");
            continue;
        }
        if e.plans.is_empty() {
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
                Next::Complete => String::new(),
                Next::Deploy(n) => {
                    format!("; next: deploy phase {n}'s app code, then mark it")
                }
                Next::Apply(n) if p.blocked.is_empty() => {
                    format!("; next: apply phase {n}")
                }
                Next::Apply(n) => format!(
                    "; phase {n} blocked by {}",
                    p.blocked
                        .iter()
                        .map(|g| format!("{}: {}", g.name, first_line(&g.reason)))
                        .collect::<Vec<_>>()
                        .join("; ")
                ),
            };
            let _ = writeln!(out, "  {:<32} {where_}{next}", p.plan);
        }
    }
    out
}
