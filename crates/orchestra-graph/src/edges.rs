//! Resolving the `graph:` list into [`Topology`] edges: node names, joins, conditions and loop
//! bounds, with "did you mean" for every name that is not an agent, `START` or `END`.

use std::collections::HashMap;

use orchestra_spec::{Diagnostic, END, EdgeSpec, PipelineSpec, START, SourceFile, Spanned};

use crate::conditions::{ConditionResolver, ExprScope, ResolvedCondition};
use crate::topology::{Edge, Node, Topology};

/// Builds the topology; problems go to `diags`. Every `graph:` entry gives one edge (names that
/// did not resolve are left out), so `edges[i]` is always `spec.graph[i]`.
pub(crate) fn build(
    spec: &PipelineSpec,
    src: &SourceFile,
    agents: &HashMap<&str, usize>,
    resolver: &mut ConditionResolver<'_>,
    scope: ExprScope<'_>,
    diags: &mut Vec<Diagnostic>,
) -> (Topology, Vec<ResolvedCondition>) {
    let names: Vec<&str> = spec.agents.keys().collect();
    let mut conditions: Vec<ResolvedCondition> = Vec::new();
    let mut edges = Vec::with_capacity(spec.graph.len());
    for e in &spec.graph {
        let sources = sources(e, src, agents, &names, diags);
        let targets = targets(e, src, agents, &names, diags);
        if let Some(j) = &e.join
            && e.from.len() == 1
        {
            diags.push(
                Diagnostic::warning("`join` has no effect on an edge with one source")
                    .at(src, j.span)
                    .with_label("only a fan-in (several `from`) waits for its sources"),
            );
        }
        let on_max_loops = e.on_max_loops.as_ref().and_then(|o| {
            if e.max_loops.is_none() {
                diags.push(
                    Diagnostic::error("`on_max_loops` without `max_loops`")
                        .at(src, o.span)
                        .with_label("there is no bound for it to act on")
                        .with_help("add `max_loops: N` to this edge"),
                );
            }
            target_node(o, src, agents, &names, "`on_max_loops`", diags)
        });
        if let Some(c) = &e.condition
            && let Some(rc) = resolver.resolve(c, src, scope, diags)
        {
            resolver.check_targets(&c.value, &e.to, src, e.from.span.line, diags);
            if !conditions.iter().any(|x| x.name == rc.name) {
                conditions.push(rc);
            }
        }
        edges.push(Edge {
            sources,
            targets,
            join: e.join.as_ref().map(|j| j.value).unwrap_or_default(),
            condition: e.condition.as_ref().map(|c| c.value.clone()),
            max_loops: e.max_loops.as_ref().map(|m| m.value),
            on_max_loops,
            loop_targets: Vec::new(),
        });
    }
    let topology = Topology::new(names.iter().map(|n| (*n).to_owned()).collect(), edges);
    (topology, conditions)
}

fn sources(
    e: &EdgeSpec,
    src: &SourceFile,
    agents: &HashMap<&str, usize>,
    names: &[&str],
    diags: &mut Vec<Diagnostic>,
) -> Vec<Node> {
    if e.from.is_empty() {
        diags.push(
            Diagnostic::error("an edge needs at least one source")
                .at(src, e.from.span)
                .with_label("empty `from`"),
        );
    }
    let mut out = Vec::new();
    for (i, n) in e.from.items.iter().enumerate() {
        if e.from.items[..i].iter().any(|p| p.value == n.value) {
            diags.push(
                Diagnostic::warning(format!("`{}` is listed twice", n.value))
                    .at(src, n.span)
                    .with_label("already a source of this edge"),
            );
            continue;
        }
        let node = match n.value.as_str() {
            START if e.from.len() > 1 => {
                diags.push(
                    Diagnostic::error("`START` cannot be part of a fan-in")
                        .at(src, n.span)
                        .with_label("START fires once, before every agent")
                        .with_help("give START its own edge: `- { from: START, to: ... }`"),
                );
                continue;
            }
            START => Node::Start,
            END => {
                diags.push(
                    Diagnostic::error("`END` cannot be a source")
                        .at(src, n.span)
                        .with_label("nothing runs after END")
                        .with_help("END is only a target: `- { from: agent, to: END }`"),
                );
                continue;
            }
            name => match agents.get(name) {
                Some(&i) => Node::Agent(i),
                None => {
                    diags.push(unknown_node(n, src, names, START, "as a source"));
                    continue;
                }
            },
        };
        out.push(node);
    }
    out
}

fn targets(
    e: &EdgeSpec,
    src: &SourceFile,
    agents: &HashMap<&str, usize>,
    names: &[&str],
    diags: &mut Vec<Diagnostic>,
) -> Vec<Node> {
    if e.to.is_empty() {
        diags.push(
            Diagnostic::error("an edge needs at least one target")
                .at(src, e.to.span)
                .with_label("empty `to`"),
        );
    }
    let mut out = Vec::new();
    for (i, n) in e.to.items.iter().enumerate() {
        if e.to.items[..i].iter().any(|p| p.value == n.value) {
            diags.push(
                Diagnostic::warning(format!("`{}` is listed twice", n.value))
                    .at(src, n.span)
                    .with_label("already a target of this edge"),
            );
            continue;
        }
        if let Some(node) = target_node(n, src, agents, names, "a target", diags) {
            out.push(node);
        }
    }
    out
}

fn target_node(
    n: &Spanned<String>,
    src: &SourceFile,
    agents: &HashMap<&str, usize>,
    names: &[&str],
    what: &str,
    diags: &mut Vec<Diagnostic>,
) -> Option<Node> {
    match n.value.as_str() {
        END => Some(Node::End),
        START => {
            diags.push(
                Diagnostic::error(format!("`START` cannot be {what}"))
                    .at(src, n.span)
                    .with_label("START is the entry point; no edge leads into it"),
            );
            None
        }
        name => match agents.get(name) {
            Some(&i) => Some(Node::Agent(i)),
            None => {
                diags.push(unknown_node(n, src, names, END, &format!("as {what}")));
                None
            }
        },
    }
}

fn unknown_node(
    n: &Spanned<String>,
    src: &SourceFile,
    names: &[&str],
    reserved: &str,
    role: &str,
) -> Diagnostic {
    let mut cands: Vec<&str> = names.to_vec();
    cands.push(reserved);
    let mut d = Diagnostic::error(format!("unknown agent `{}`", n.value))
        .at(src, n.span)
        .with_label(format!("not an agent of this pipeline (used {role})"))
        .with_suggestions(&n.value, cands.iter().copied());
    if names.len() <= 12 {
        d = d.with_help(format!("agents: {}", names.join(", ")));
    }
    d
}
