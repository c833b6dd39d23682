//! The graph of a report: the stored pipeline's nodes and drawn edges, each with how many times
//! it ran or fired (from the node runs and the routing decisions), and the Mermaid flowchart
//! with the path taken. The web UI draws the same counts.

use orchestra_graph::{Compiled, PathTaken};
use orchestra_store::{CheckpointInfo, NodeRunRecord, RouteRecord, SessionStatus};

use super::model::{Graph, GraphEdge, GraphNode};

/// The graph of `compiled` with the path of a session (its `status`, checkpoints, node runs
/// and routing decisions) through it. Its edges are those of [`Compiled::drawn_edges`], in
/// that order.
pub fn graph_of(
    compiled: &Compiled,
    status: SessionStatus,
    cps: &[CheckpointInfo],
    runs: &[NodeRunRecord],
    routes: &[RouteRecord],
) -> Graph {
    let mut path = PathTaken::default();
    for r in runs {
        *path.runs.entry(r.node.clone()).or_default() += 1;
    }
    for r in routes {
        // A route with a bound but no round is the `on_max_loops` one.
        let reached = r.loop_round.is_none() && r.loop_max.is_some();
        let counts = if reached {
            &mut path.max_loops_reached
        } else {
            &mut path.edges
        };
        for t in &r.targets {
            *counts.entry((r.from.clone(), t.clone())).or_default() += 1;
        }
    }
    // The edges from START fire once, into the first step's nodes.
    if let Some(first) = cps.iter().find(|c| c.step > 0) {
        for n in &first.nodes {
            path.edges.insert(("START".to_owned(), n.clone()), 1);
        }
    }
    let mut nodes = vec![GraphNode {
        name: "START".to_owned(),
        runs: 1,
    }];
    nodes.extend(compiled.topology.agents.iter().map(|a| GraphNode {
        name: a.clone(),
        runs: path.runs.get(a).copied().unwrap_or(0),
    }));
    let ended = u64::from(status == SessionStatus::Completed);
    nodes.push(GraphNode {
        name: "END".to_owned(),
        runs: ended,
    });
    let drawn = compiled.drawn_edges();
    if drawn.iter().any(|e| e.to == "FAIL") {
        let failed = path
            .edges
            .iter()
            .filter(|((_, to), _)| to == "FAIL")
            .map(|(_, n)| n)
            .sum();
        nodes.push(GraphNode {
            name: "FAIL".to_owned(),
            runs: failed,
        });
    }
    // A fan-in fires once, recorded from one of its sources: each of its arrows counts it.
    let fired = |e: &orchestra_graph::DrawnEdge| -> u64 {
        let counts = if e.on_max_loops {
            &path.max_loops_reached
        } else {
            &path.edges
        };
        drawn
            .iter()
            .filter(|x| x.edge == e.edge && x.to == e.to && x.on_max_loops == e.on_max_loops)
            .filter_map(|x| counts.get(&(x.from.clone(), x.to.clone())))
            .sum()
    };
    let edges = drawn
        .iter()
        .map(|e| GraphEdge {
            taken: fired(e),
            from: e.from.clone(),
            to: e.to.clone(),
            label: e.label.clone(),
            conditional: e.conditional,
        })
        .collect();
    Graph {
        nodes,
        edges,
        mermaid: compiled.to_mermaid_path(&path),
    }
}
