//! The dependency graph of a plan and the phases (deploys) derived from it.
//!
//! Edges mean "must be done before". An `app` step is a deploy boundary:
//! anything that depends on it runs in a later deploy. A [`Edge::NextDeploy`]
//! edge forces the same without an app step in between (a migration that must
//! be verified in one deploy before the code relying on it ships in the next).
//! Phases are then the longest paths counted in boundaries, which packs every
//! step into the earliest deploy its edges allow: the fewest deploys possible.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use petgraph::Direction;
use petgraph::graph::{DiGraph, NodeIndex};

use super::step::{Step, StepKind};

/// How two steps are ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Edge {
    /// Before, possibly in the same deploy.
    Then,
    /// Before, and in an earlier deploy.
    NextDeploy,
}

/// One deploy: the steps that run before its code ships, then its app stage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Phase {
    /// 1-based.
    pub number: usize,
    /// Indices into the plan's steps, in execution order; app steps last.
    pub steps: Vec<usize>,
    /// False when any step in it cannot be undone.
    pub reversible: bool,
}

/// A cycle among steps: the plan's intents depend on each other.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cycle {
    pub step: usize,
}

/// Builds the graph (node weights are step indices).
pub fn build(steps: &[Step], edges: &[(usize, usize, Edge)]) -> DiGraph<usize, Edge> {
    let mut g = DiGraph::with_capacity(steps.len(), edges.len());
    for i in 0..steps.len() {
        g.add_node(i);
    }
    for &(from, to, kind) in edges {
        g.update_edge(NodeIndex::new(from), NodeIndex::new(to), kind);
    }
    g
}

/// Orders the steps and groups them into phases.
///
/// Execution order is topological, ties broken by step index (plan order), so
/// output is stable and reads in the order the plan was written.
pub fn phases(steps: &[Step], g: &DiGraph<usize, Edge>) -> Result<Vec<Phase>, Cycle> {
    let order = stable_toposort(g)?;
    let mut phase_of = vec![1usize; steps.len()];
    for &n in &order {
        let mut p = 1;
        for e in g.edges_directed(NodeIndex::new(n), Direction::Incoming) {
            use petgraph::visit::EdgeRef;
            let pred = e.source().index();
            let boundary = steps[pred].kind == StepKind::App || *e.weight() == Edge::NextDeploy;
            p = p.max(phase_of[pred] + usize::from(boundary));
        }
        phase_of[n] = p;
    }
    let count = phase_of.iter().copied().max().unwrap_or(0);
    let mut out: Vec<Phase> = (1..=count)
        .map(|number| Phase {
            number,
            steps: Vec::new(),
            reversible: true,
        })
        .collect();
    for &n in &order {
        let phase = &mut out[phase_of[n] - 1];
        phase.steps.push(n);
        phase.reversible &= steps[n].reversible;
    }
    for phase in &mut out {
        // App steps are the deploy itself: after every migration of the phase.
        phase.steps.sort_by_key(|&s| steps[s].kind == StepKind::App);
    }
    Ok(out)
}

/// Kahn's algorithm with a min-heap: among ready steps, the lowest index first.
fn stable_toposort(g: &DiGraph<usize, Edge>) -> Result<Vec<usize>, Cycle> {
    let mut indegree: Vec<usize> = g
        .node_indices()
        .map(|n| g.neighbors_directed(n, Direction::Incoming).count())
        .collect();
    let mut ready: BinaryHeap<Reverse<usize>> = indegree
        .iter()
        .enumerate()
        .filter(|(_, d)| **d == 0)
        .map(|(i, _)| Reverse(i))
        .collect();
    let mut order = Vec::with_capacity(indegree.len());
    while let Some(Reverse(n)) = ready.pop() {
        order.push(n);
        for m in g.neighbors_directed(NodeIndex::new(n), Direction::Outgoing) {
            let d = &mut indegree[m.index()];
            *d -= 1;
            if *d == 0 {
                ready.push(Reverse(m.index()));
            }
        }
    }
    if order.len() == indegree.len() {
        Ok(order)
    } else {
        let step = indegree.iter().position(|d| *d > 0).unwrap_or(0);
        Err(Cycle { step })
    }
}
