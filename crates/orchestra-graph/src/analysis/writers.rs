//! Agents that can change the same repository in the same super-step (a warning: each gets
//! a worktree and their work is merged at the join). Two writers share a step only if some
//! step number is open to both: a node runs at step k only when a predecessor ran at step
//! k - 1 (edges fire at the end of a step), so the steps open to a node are among the lengths
//! of the walks from `START` to it. Writers that only follow each other (in a chain or around
//! a loop) are never warned about.

use std::collections::HashSet;

use orchestra_spec::{Diagnostic, PipelineSpec, SourceFile};
use petgraph::Direction;
use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::visit::EdgeRef;

use super::{ix, reach};
use crate::compiled::ResolvedAgent;
use crate::topology::{Node, Topology};

/// Most steps followed before falling back to the forward graph's order.
const MAX_STEPS_FOLLOWED: usize = 10_000;

/// For `nodes`, whether each pair can run in the same super-step (`[i][j]`, symmetric), by
/// following the set of nodes at walk length k from `START` (k = 0, 1, ...) until it is empty
/// or repeats (from there on the sets cycle, so every step has been seen). `None` when that
/// takes more than [`MAX_STEPS_FOLLOWED`] steps.
fn shared_steps(g: &DiGraph<Node, usize>, nodes: &[NodeIndex]) -> Option<Vec<Vec<bool>>> {
    let words = g.node_count().div_ceil(64);
    let mut shared = vec![vec![false; nodes.len()]; nodes.len()];
    let mut frontier = vec![0u64; words];
    frontier[0] |= 1; // START is node 0
    let mut seen: HashSet<Vec<u64>> = HashSet::new();
    for _ in 0..MAX_STEPS_FOLLOWED {
        if frontier.iter().all(|&w| w == 0) || seen.contains(&frontier) {
            return Some(shared);
        }
        let has = |v: NodeIndex| frontier[v.index() / 64] & (1 << (v.index() % 64)) != 0;
        let present: Vec<usize> = (0..nodes.len()).filter(|&i| has(nodes[i])).collect();
        for (k, &i) in present.iter().enumerate() {
            for &j in &present[..k] {
                shared[i][j] = true;
                shared[j][i] = true;
            }
        }
        let mut next = vec![0u64; words];
        for (w, &bits) in frontier.iter().enumerate() {
            let mut bits = bits;
            while bits != 0 {
                let v = NodeIndex::new(w * 64 + bits.trailing_zeros() as usize);
                bits &= bits - 1;
                for e in g.edges_directed(v, Direction::Outgoing) {
                    let t = e.target().index();
                    next[t / 64] |= 1 << (t % 64);
                }
            }
        }
        seen.insert(std::mem::replace(&mut frontier, next));
    }
    None
}

/// Warns about agents that can change the same repository in the same super-step.
pub(super) fn parallel_writers(
    topo: &Topology,
    agents: &[ResolvedAgent],
    g: &DiGraph<Node, usize>,
    fwd: &[bool],
    diags: &mut Vec<Diagnostic>,
    src: &SourceFile,
    spec: &PipelineSpec,
) {
    let n = topo.agents.len();
    // Forward edges only: drop the edges that route back into a loop.
    let forward = |k: usize, t: NodeIndex| {
        topo.edges
            .get(k)
            .is_none_or(|e| !e.loop_targets.iter().any(|&l| ix(l, n) == t))
    };
    let mut dag: DiGraph<Node, usize> = DiGraph::with_capacity(g.node_count(), g.edge_count());
    for v in g.node_indices() {
        dag.add_node(g[v]);
    }
    for e in g.edge_references() {
        if forward(*e.weight(), e.target()) {
            dag.add_edge(e.source(), e.target(), *e.weight());
        }
    }
    let mut repos: Vec<&str> = Vec::new();
    for a in agents {
        for r in &a.write_repos {
            if !repos.contains(&r.as_str()) {
                repos.push(r);
            }
        }
    }
    for repo in repos {
        let writers: Vec<&ResolvedAgent> = agents
            .iter()
            .filter(|a| a.write_repos.iter().any(|r| r == repo))
            .filter(|a| fwd[ix(Node::Agent(a.index), n).index()])
            .collect();
        if writers.len() < 2 {
            continue;
        }
        let nodes: Vec<NodeIndex> = writers
            .iter()
            .map(|a| ix(Node::Agent(a.index), n))
            .collect();
        let shared = shared_steps(g, &nodes);
        let reach_of: Vec<Vec<bool>> = if shared.is_some() {
            Vec::new()
        } else {
            nodes
                .iter()
                .map(|&v| reach(&dag, v, Direction::Outgoing, None, &|_| true))
                .collect()
        };
        for (j, b) in writers.iter().enumerate() {
            for (i, a) in writers[..j].iter().enumerate() {
                let apart = match &shared {
                    Some(shared) => !shared[i][j],
                    // Too many steps to follow: ordered in the forward graph is apart.
                    None => reach_of[i][nodes[j].index()] || reach_of[j][nodes[i].index()],
                };
                if apart {
                    continue;
                }
                let on_conflict =
                    spec.workspace
                        .repos
                        .get(repo)
                        .map_or("pause", |r| match r.on_conflict {
                            orchestra_spec::OnConflict::Agent => "agent",
                            orchestra_spec::OnConflict::Pause => "pause",
                            orchestra_spec::OnConflict::Fail => "fail",
                        });
                diags.push(
                    Diagnostic::warning(format!(
                        "agents `{}` and `{}` can change repository `{repo}` in the same step",
                        a.name, b.name
                    ))
                    .at(src, spec.agents.key_span(&b.name).unwrap_or_default())
                    .with_label(format!("may run in parallel with `{}`", a.name))
                    .with_help(format!(
                        "each gets its own worktree and their changes are merged when the branches join; conflicts follow `on_conflict: {on_conflict}` of `{repo}`"
                    )),
                );
            }
        }
    }
}
