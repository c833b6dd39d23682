//! A compile-time warning for a condition that can choose only some of the sources of a
//! `join: all` barrier: the others may not run, and the barrier would wait for them forever
//! (at run time: "the join ... can never fire").

use std::collections::BTreeSet;

use indexmap::IndexMap;
use orchestra_spec::{Diagnostic, Join, PipelineSpec, SourceFile};
use petgraph::Direction;

use crate::analysis::{build_graph, ix, reach};
use crate::conditions::{ConditionSource, ResolvedCondition};
use crate::topology::{Node, Topology};

/// Warns, for every conditional edge and `join: all` edge, when one choice the condition can
/// make leads to some but not all of the barrier's sources it can lead to. Rule conditions
/// are known choice by choice; other conditions may choose any single target.
pub(crate) fn condition_subsets(
    spec: &PipelineSpec,
    src: &SourceFile,
    topo: &Topology,
    conditions: &IndexMap<String, ResolvedCondition>,
    diags: &mut Vec<Diagnostic>,
) {
    let n = topo.agents.len();
    let g = build_graph(topo);
    let all = |_: usize| true;
    for (ji, join) in topo.edges.iter().enumerate() {
        if join.join != Join::All || join.sources.len() < 2 {
            continue;
        }
        let sources: BTreeSet<Node> = join.sources.iter().copied().collect();
        // Reaching a source through the barrier's own target is the next round, not this one.
        let avoid = join.targets.first().map(|&t| ix(t, n));
        for (ci, cond_edge) in topo.edges.iter().enumerate() {
            let (Some(name), Some(written)) = (&cond_edge.condition, &spec.graph[ci].condition)
            else {
                continue;
            };
            if ci == ji {
                continue;
            }
            // The barrier's sources each target leads to.
            let fed = |t: Node| -> BTreeSet<Node> {
                if sources.contains(&t) {
                    return BTreeSet::from([t]);
                }
                let r = reach(&g, ix(t, n), Direction::Outgoing, avoid, &all);
                sources
                    .iter()
                    .copied()
                    .filter(|s| r[ix(*s, n).index()])
                    .collect()
            };
            let by_target: Vec<(Node, BTreeSet<Node>)> =
                cond_edge.targets.iter().map(|&t| (t, fed(t))).collect();
            let fed_all: BTreeSet<Node> = by_target.iter().flat_map(|(_, f)| f.clone()).collect();
            if fed_all.len() < 2 {
                continue;
            }
            for choice in choices(conditions.get(name), &cond_edge.targets, topo) {
                let covered: BTreeSet<Node> = by_target
                    .iter()
                    .filter(|(t, _)| choice.contains(t))
                    .flat_map(|(_, f)| f.clone())
                    .collect();
                if covered.is_empty() || covered == fed_all {
                    continue;
                }
                let names = |set: &mut dyn Iterator<Item = Node>| {
                    set.map(|s| format!("`{}`", topo.name(s)))
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                let chosen = names(&mut choice.iter().copied());
                let missing = names(&mut fed_all.difference(&covered).copied());
                let into = names(&mut join.targets.iter().copied());
                diags.push(
                    Diagnostic::warning(format!(
                        "condition `{name}` can choose only some of the sources of the `join: all` into {into}"
                    ))
                    .at(src, written.span)
                    .with_label(format!(
                        "when it chooses {chosen}, {missing} may not run, and {into} waits for it"
                    ))
                    .with_help("use `join: any` or `join: N` on the barrier, or let the condition choose all of them together"),
                );
                break;
            }
        }
    }
}

/// The target sets a condition can choose: each rule's and the default for a rule file, any
/// single target otherwise.
fn choices(cond: Option<&ResolvedCondition>, targets: &[Node], topo: &Topology) -> Vec<Vec<Node>> {
    match cond.map(|c| &c.source) {
        Some(ConditionSource::Rules(rules)) => rules
            .rules
            .iter()
            .map(|r| &r.to)
            .chain(std::iter::once(&rules.default))
            .map(|names| names.iter().filter_map(|n| topo.node(n)).collect())
            .collect(),
        _ => targets.iter().map(|&t| vec![t]).collect(),
    }
}
