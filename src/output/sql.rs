//! `--format sql`: every statement, deploy by deploy, as a script that runs
//! as printed (see [`super::script`]): piped into `psql -v ON_ERROR_STOP=1`,
//! `sqlite3 -bail` or `mariadb`, one deploy at a time, with each deploy's
//! app change shipped in between.

use std::fmt::Write;

use super::{Context, script};
use crate::plan::{Plan, StepKind};

/// The plan as one SQL script, with `cx`'s bounds.
pub fn sql(plan: &Plan, cx: &Context<'_>) -> String {
    let mut out = String::new();
    let n = plan.phases.len();
    let _ = writeln!(
        out,
        "-- phasegate plan {} ({}): {n} deploy(s)",
        plan.name, plan.dialect
    );
    for line in script::header(plan.dialect, cx.bounds, &cx.bounds_source()) {
        let _ = writeln!(out, "{line}");
    }
    for phase in &plan.phases {
        let flag = if phase.reversible {
            ""
        } else {
            " (irreversible)"
        };
        let _ = writeln!(out, "\n-- ==== Deploy {} of {n}{flag} ====", phase.number);
        let mut app = Vec::new();
        for s in plan.phase_steps(phase) {
            if s.kind == StepKind::App {
                app.push(s);
                continue;
            }
            let _ = writeln!(out);
            for line in script::step(s, plan.dialect, cx.bounds, None) {
                let _ = writeln!(out, "{line}");
            }
        }
        if !app.is_empty() {
            let _ = writeln!(
                out,
                "\n-- Then ship deploy {}'s app change, before anything below runs:",
                phase.number
            );
            for s in app {
                let _ = writeln!(out, "-- {} [app]: {}", s.id, s.description);
            }
        }
    }
    out
}
