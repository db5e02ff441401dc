//! `--format mermaid` and `--format dot`: the step graph, grouped by deploy.

use std::fmt::Write;

use petgraph::dot::{Config, Dot};
use petgraph::visit::EdgeRef;

use crate::plan::{Edge, Plan, StepKind};

/// A Mermaid flowchart with one subgraph per deploy.
pub fn mermaid(plan: &Plan) -> String {
    let mut out = String::from("flowchart TD\n");
    for phase in &plan.phases {
        let flag = if phase.reversible {
            ""
        } else {
            " (irreversible)"
        };
        let _ = writeln!(
            out,
            "  subgraph deploy{}[\"Deploy {}{flag}\"]",
            phase.number, phase.number
        );
        for &i in &phase.steps {
            let s = &plan.steps[i];
            let label = escape_mermaid(&format!("{}: {}", s.id, s.description));
            let (open, close) = match s.kind {
                StepKind::App => ("([", "])"),
                StepKind::Verify => ("{{", "}}"),
                StepKind::Backfill => ("[/", "/]"),
                StepKind::Migration => ("[", "]"),
            };
            let _ = writeln!(out, "    s{i}{open}\"{label}\"{close}");
        }
        let _ = writeln!(out, "  end");
    }
    for e in plan.graph.edge_references() {
        let arrow = if *e.weight() == Edge::NextDeploy {
            "-.->"
        } else {
            "-->"
        };
        let _ = writeln!(
            out,
            "  s{} {arrow} s{}",
            e.source().index(),
            e.target().index()
        );
    }
    out
}

fn escape_mermaid(s: &str) -> String {
    s.replace('"', "#quot;")
        .replace('<', "#lt;")
        .replace('>', "#gt;")
}

/// Graphviz DOT, through petgraph's writer.
pub fn dot(plan: &Plan) -> String {
    let node = |_, (_, &i): (petgraph::graph::NodeIndex, &usize)| {
        let s = &plan.steps[i];
        let shape = match s.kind {
            StepKind::App => "ellipse",
            StepKind::Verify => "diamond",
            StepKind::Backfill => "parallelogram",
            StepKind::Migration => "box",
        };
        let label = format!("deploy {}\\n{}\\n{}", plan.phase_of(i), s.id, s.description);
        format!(
            "label=\"{}\" shape={shape}{}",
            escape_dot(&label),
            if s.reversible { "" } else { " color=red" }
        )
    };
    let edge = |_, e: petgraph::graph::EdgeReference<'_, Edge>| {
        if *e.weight() == Edge::NextDeploy {
            "style=dashed".to_string()
        } else {
            String::new()
        }
    };
    format!(
        "{:?}",
        Dot::with_attr_getters(
            &plan.graph,
            &[Config::NodeNoLabel, Config::EdgeNoLabel],
            &edge,
            &node
        )
    )
}

/// Escapes quotes for a DOT string, keeping the `\n` line breaks added above.
fn escape_dot(s: &str) -> String {
    s.replace('"', "\\\"")
}
