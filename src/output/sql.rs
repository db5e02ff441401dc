//! `--format sql`: every statement, deploy by deploy, ready for review or
//! for a psql session; transactional steps are wrapped in BEGIN/COMMIT.

use std::fmt::Write;

use crate::plan::{Plan, StepKind};

pub fn sql(plan: &Plan) -> String {
    let mut out = String::new();
    let n = plan.phases.len();
    let _ = writeln!(
        out,
        "-- phasegate plan {} ({}): {n} deploy(s)",
        plan.name, plan.dialect
    );
    for phase in &plan.phases {
        let flag = if phase.reversible {
            ""
        } else {
            " (irreversible)"
        };
        let _ = writeln!(out, "\n-- ==== Deploy {} of {n}{flag} ====", phase.number);
        for s in plan.phase_steps(phase) {
            let _ = writeln!(out, "\n-- {} [{}]: {}", s.id, s.kind.name(), s.description);
            let Some(sql) = &s.sql else { continue };
            match s.kind {
                StepKind::Verify => {
                    let _ = writeln!(out, "-- must return {}", s.expect.unwrap_or(0));
                    let _ = writeln!(out, "{sql};");
                }
                StepKind::Backfill => {
                    let _ = writeln!(
                        out,
                        "-- phasegate apply runs this in keyset batches of short transactions"
                    );
                    let _ = writeln!(out, "{sql}");
                }
                _ if s.transactional => {
                    let _ = writeln!(out, "BEGIN;\n{sql}\nCOMMIT;");
                }
                _ => {
                    let _ = writeln!(out, "-- not in a transaction block\n{sql}");
                }
            }
        }
    }
    out
}
