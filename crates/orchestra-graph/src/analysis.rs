//! Whole-graph checks on the petgraph graph: reachability from `START` and to `END`, loops
//! without a bound, joins that can never fire, parallel writers; and each edge's loop targets.
//! Every check is linear in the graph's size, or linear per join / per writing agent.

use std::collections::VecDeque;

use orchestra_spec::{Diagnostic, Join, PipelineSpec, SourceFile, Span};
use petgraph::Direction;
use petgraph::algo::tarjan_scc;
use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::visit::EdgeRef;

use crate::compiled::ResolvedAgent;
use crate::topology::{Node, Topology};

mod writers;
use writers::parallel_writers;

/// The petgraph index of a node: `START` is 0, agent `i` is `i + 1`, `END` is `n + 1`, `FAIL`
/// is `n + 2`.
pub(crate) fn ix(node: Node, agents: usize) -> NodeIndex {
    NodeIndex::new(match node {
        Node::Start => 0,
        Node::Agent(i) => i + 1,
        Node::End => agents + 1,
        Node::Fail => agents + 2,
    })
}

/// The weight of an `on_error` route in the graph (it comes from no `graph:` entry).
pub(crate) const ON_ERROR: usize = usize::MAX;

/// Builds the graph of a topology (see [`crate::Compiled::graph`]).
pub(crate) fn build_graph(topo: &Topology) -> DiGraph<Node, usize> {
    let n = topo.agents.len();
    let mut g = DiGraph::with_capacity(n + 3, topo.edges.len() * 2);
    g.add_node(Node::Start);
    for i in 0..n {
        g.add_node(Node::Agent(i));
    }
    g.add_node(Node::End);
    g.add_node(Node::Fail);
    for (a, t) in topo.on_error.iter().enumerate() {
        if let Some(t) = t {
            g.add_edge(ix(Node::Agent(a), n), ix(*t, n), ON_ERROR);
        }
    }
    for (k, e) in topo.edges.iter().enumerate() {
        for &s in &e.sources {
            for &t in e.targets.iter().chain(e.on_max_loops.iter()) {
                g.add_edge(ix(s, n), ix(t, n), k);
            }
        }
    }
    g
}

/// Nodes reachable from `from` following edges in `dir` that `keep` accepts, never entering
/// `avoid`.
pub(crate) fn reach(
    g: &DiGraph<Node, usize>,
    from: NodeIndex,
    dir: Direction,
    avoid: Option<NodeIndex>,
    keep: &dyn Fn(usize) -> bool,
) -> Vec<bool> {
    let mut seen = vec![false; g.node_count()];
    let mut queue = VecDeque::from([from]);
    seen[from.index()] = true;
    while let Some(v) = queue.pop_front() {
        for e in g.edges_directed(v, dir) {
            let next = if dir == Direction::Outgoing {
                e.target()
            } else {
                e.source()
            };
            if seen[next.index()] || Some(next) == avoid || !keep(*e.weight()) {
                continue;
            }
            seen[next.index()] = true;
            queue.push_back(next);
        }
    }
    seen
}

/// The span of the top-level key `key` (e.g. `graph`) in `src`.
fn top_key_span(src: &SourceFile, key: &str) -> Span {
    let mut offset = 0;
    for (i, line) in src.text.split_inclusive('\n').enumerate() {
        if line.starts_with(key) && line[key.len()..].trim_start().starts_with(':') {
            return Span {
                line: u32::try_from(i + 1).unwrap_or(0),
                col: 1,
                offset,
                len: key.len(),
            };
        }
        offset += line.len();
    }
    Span::default()
}

/// Runs the whole-graph checks and fills `loop_targets`.
pub(crate) fn analyze(
    spec: &PipelineSpec,
    src: &SourceFile,
    topo: &mut Topology,
    agents: &[ResolvedAgent],
    diags: &mut Vec<Diagnostic>,
) {
    let n = topo.agents.len();
    let g = build_graph(topo);
    // Loop targets: a target in the same strongly connected component as a source.
    let mut comp = vec![0usize; g.node_count()];
    for (c, scc) in tarjan_scc(&g).iter().enumerate() {
        for v in scc {
            comp[v.index()] = c;
        }
    }
    for e in &mut topo.edges {
        let srcs: Vec<usize> = e.sources.iter().map(|&s| comp[ix(s, n).index()]).collect();
        e.loop_targets = e
            .targets
            .iter()
            .copied()
            .filter(|&t| srcs.contains(&comp[ix(t, n).index()]))
            .collect();
    }

    let all = |_: usize| true;
    // An `on_error` route is bounded by the circuit breaker (`limits.max_failures`).
    let bounded = |k: usize| topo.edges.get(k).is_none_or(|e| e.max_loops.is_some());
    let unbounded = |k: usize| !bounded(k);
    let start = ix(Node::Start, n);
    let end = ix(Node::End, n);
    let fail = ix(Node::Fail, n);
    let name = |i: NodeIndex| topo.name(g[i]).to_owned();
    let agent_span = |a: usize| {
        topo.agents
            .get(a)
            .and_then(|nm| spec.agents.key_span(nm))
            .unwrap_or_default()
    };

    // Reachability from START and to END.
    let fwd = reach(&g, start, Direction::Outgoing, None, &all);
    // Agents must lead to an exit: `END`, or `FAIL`.
    let mut bwd = reach(&g, end, Direction::Incoming, None, &all);
    for (b, f) in bwd
        .iter_mut()
        .zip(reach(&g, fail, Direction::Incoming, None, &all))
    {
        *b |= f;
    }
    let graph_span = top_key_span(src, "graph");
    if g.edges_directed(start, Direction::Outgoing)
        .next()
        .is_none()
    {
        diags.push(
            Diagnostic::error("no edge leaves START")
                .at(src, graph_span)
                .with_label("the graph has no entry")
                .with_help("add an edge `- { from: START, to: FIRST_AGENT }`"),
        );
        return;
    }
    let end_reached = g.edges_directed(end, Direction::Incoming).next().is_some();
    if !end_reached {
        diags.push(
            Diagnostic::error("no edge leads to END")
                .at(src, graph_span)
                .with_label("the graph has no exit")
                .with_help("add an edge `- { from: LAST_AGENT, to: END }`"),
        );
    }
    for a in 0..n {
        let v = ix(Node::Agent(a), n);
        let reserved = matches!(
            topo.agents[a].as_str(),
            orchestra_spec::START | orchestra_spec::END
        );
        if reserved {
            continue;
        }
        if !fwd[v.index()] {
            let d = if g.edges_directed(v, Direction::Incoming).next().is_none() {
                Diagnostic::error(format!("agent `{}` is never run", topo.agents[a]))
                    .with_label("no edge leads to it")
                    .with_help(format!(
                        "add an edge to it, e.g. `- {{ from: START, to: {} }}`, or remove it",
                        topo.agents[a]
                    ))
            } else {
                Diagnostic::error(format!("agent `{}` is never run", topo.agents[a]))
                    .with_label("it is unreachable from START")
                    .with_help("every edge into it comes from agents that never run")
            };
            diags.push(d.at(src, agent_span(a)));
        } else if end_reached && !bwd[v.index()] {
            let d = if g.edges_directed(v, Direction::Outgoing).next().is_none() {
                Diagnostic::error(format!("agent `{}` has no outgoing edge", topo.agents[a]))
                    .with_label("the session would stop here without reaching END")
                    .with_help(format!(
                        "add an edge from it, e.g. `- {{ from: {}, to: END }}`",
                        topo.agents[a]
                    ))
            } else {
                Diagnostic::error(format!("no path from agent `{}` to END", topo.agents[a]))
                    .with_label("every path from it loops back or dead-ends")
                    .with_help("add an edge that leaves the loop, e.g. a condition target or `on_max_loops: END`")
            };
            diags.push(d.at(src, agent_span(a)));
        }
    }

    // Loops without a bound: cycles left once bounded edges are removed.
    let mut ug: DiGraph<Node, usize> = DiGraph::with_capacity(g.node_count(), g.edge_count());
    for v in g.node_indices() {
        ug.add_node(g[v]);
    }
    for e in g.edge_references() {
        if unbounded(*e.weight()) {
            ug.add_edge(e.source(), e.target(), *e.weight());
        }
    }
    let mut sccs = tarjan_scc(&ug);
    sccs.iter_mut().for_each(|s| s.sort());
    sccs.sort();
    for scc in sccs {
        let first = scc[0];
        let self_loop = ug.edges_connecting(first, first).next();
        if scc.len() == 1 && self_loop.is_none() {
            continue;
        }
        let (cycle, edge_idx) = find_cycle(&ug, &scc);
        let names: Vec<String> = cycle.iter().map(|&v| format!("`{}`", name(v))).collect();
        let e = &spec.graph[edge_idx];
        // Point at the source of that edge which is on the cycle.
        let span = e
            .from
            .items
            .iter()
            .find(|i| cycle.iter().any(|&v| name(v) == i.value))
            .map_or(e.from.span, |i| i.span);
        diags.push(
            Diagnostic::error(format!("loop without a bound: {}", names.join(" -> ")))
                .at(src, span)
                .with_label("this edge is part of the loop")
                .with_help("add `max_loops: N` to an edge of the loop (and `on_max_loops: AGENT|END` to say where to go once it is used up)"),
        );
    }

    for (k, e) in topo.edges.iter().enumerate() {
        let es = &spec.graph[k];
        // max_loops that can never count.
        if let Some(m) = &es.max_loops
            && e.loop_targets.is_empty()
        {
            diags.push(
                Diagnostic::warning("`max_loops` has no effect")
                    .at(src, m.span)
                    .with_label("no target of this edge leads back to its source"),
            );
        }
        // on_max_loops must leave the loop.
        if let (Some(Node::Agent(o)), Some(os)) = (e.on_max_loops, &es.on_max_loops) {
            let from_o = reach(&ug, ix(Node::Agent(o), n), Direction::Outgoing, None, &all);
            if let Some(&back) = e.sources.iter().find(|&&s| from_o[ix(s, n).index()]) {
                diags.push(
                    Diagnostic::error(format!(
                        "`on_max_loops: {}` does not end the loop",
                        os.value
                    ))
                    .at(src, os.span)
                    .with_label(format!(
                        "`{}` leads back to `{}` without a bound",
                        os.value,
                        topo.name(back)
                    ))
                    .with_help("route it out of the loop: to an agent after the loop, or to `END`"),
                );
            }
        }
        // Joins that can never fire.
        if e.sources.len() < 2 || e.join != Join::All {
            continue;
        }
        let into: Vec<&str> = e.targets.iter().map(|&t| topo.name(t)).collect();
        let without: Vec<(Node, Vec<bool>)> = e
            .targets
            .iter()
            .map(|&t| {
                (
                    t,
                    reach(&g, start, Direction::Outgoing, Some(ix(t, n)), &all),
                )
            })
            .collect();
        for &s in &e.sources {
            let Some(sname) = es.from.items.iter().find(|i| i.value == topo.name(s)) else {
                continue;
            };
            let sv = ix(s, n).index();
            let why = if fwd[sv] {
                without.iter().find(|(_, r)| !r[sv]).map(|(t, _)| {
                    format!(
                        "`{}` only runs after `{}`, which waits for it",
                        sname.value,
                        topo.name(*t)
                    )
                })
            } else {
                Some(format!("`{}` never runs", sname.value))
            };
            if let Some(why) = why {
                diags.push(
                    Diagnostic::error(format!(
                        "the join into `{}` can never fire",
                        into.join("`, `")
                    ))
                    .at(src, sname.span)
                    .with_label(why)
                    .with_help(
                        "`join: all` waits for every source; use `join: any`, or remove this source",
                    ),
                );
            }
        }
    }

    parallel_writers(topo, agents, &g, &fwd, diags, src, spec);
}

/// A cycle through `scc[0]` inside `scc`, and the `graph:` index of its last-written edge (the
/// one that usually closes the loop, where a bound belongs).
fn find_cycle(g: &DiGraph<Node, usize>, scc: &[NodeIndex]) -> (Vec<NodeIndex>, usize) {
    let first = scc[0];
    let inside = |v: NodeIndex| scc.binary_search(&v).is_ok();
    let mut prev: Vec<Option<(NodeIndex, usize)>> = vec![None; g.node_count()];
    let mut queue = VecDeque::from([first]);
    let mut closing: Option<(NodeIndex, usize)> = None;
    'bfs: while let Some(v) = queue.pop_front() {
        let mut out: Vec<_> = g.edges_directed(v, Direction::Outgoing).collect();
        out.sort_by_key(|e| (e.target(), *e.weight()));
        for e in out {
            let t = e.target();
            if t == first {
                closing = Some((v, *e.weight()));
                break 'bfs;
            }
            if inside(t) && prev[t.index()].is_none() {
                prev[t.index()] = Some((v, *e.weight()));
                queue.push_back(t);
            }
        }
    }
    let Some((last, last_edge)) = closing else {
        return (vec![first, first], 0);
    };
    let mut path = vec![last];
    let mut edges = vec![last_edge];
    let mut cur = last;
    while cur != first {
        let Some((p, w)) = prev[cur.index()] else {
            break;
        };
        path.push(p);
        edges.push(w);
        cur = p;
    }
    path.reverse();
    path.push(first);
    (path, edges.into_iter().max().unwrap_or(0))
}
