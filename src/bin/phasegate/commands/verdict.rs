//! A gate verdict as text: what `gate` prints and what a blocked command says.

use std::fmt::Write;

use phasegate::tracker::Next;
use phasegate::tracker::gates::Verdict;

/// The gates, one per line, held or blocked, with the reason.
pub fn verdict_text(v: &Verdict) -> String {
    let mut out = String::new();
    match (v.next, v.phase) {
        (Next::Complete, _) => {
            let _ = writeln!(
                out,
                "{} is complete in {}: every phase is deployed; nothing to do",
                v.plan, v.env
            );
            return out;
        }
        (_, Some(p)) => {
            let _ = writeln!(
                out,
                "{}: gates for phase {p} of {} in {}",
                v.plan, v.phases, v.env
            );
        }
        _ => {}
    }
    for g in &v.gates {
        let mark = if g.held { "held   " } else { "BLOCKED" };
        // A reason of several lines (a database error's DETAIL and HINT)
        // stays in the reason's column.
        let reason = g.reason.replace('\n', &format!("\n{:21}", ""));
        let _ = writeln!(out, "  {mark} {:<10} {reason}", g.name);
    }
    let blocked = v.blocked().count();
    if blocked == 0 {
        let _ = writeln!(out, "may proceed");
    } else {
        let _ = writeln!(
            out,
            "{blocked} gate{} blocked",
            if blocked == 1 { "" } else { "s" }
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use phasegate::tracker::gates::Gate;

    #[test]
    fn a_reason_of_several_lines_stays_in_its_column() {
        let v = Verdict {
            plan: "p".into(),
            env: "prod".into(),
            next: Next::Apply(2),
            phase: Some(2),
            phases: 2,
            gates: vec![Gate {
                name: "clean",
                held: false,
                reason: "step 1.sql_1 of phase 1 failed: cannot drop column b (SQLSTATE 2BP01)\n  DETAIL: view v depends on column b".into(),
            }],
        };
        let text = verdict_text(&v);
        assert!(
            text.contains("  BLOCKED clean      step 1.sql_1 of phase 1 failed: cannot drop column b (SQLSTATE 2BP01)\n                       DETAIL: view v depends on column b\n"),
            "{text}"
        );
    }
}
