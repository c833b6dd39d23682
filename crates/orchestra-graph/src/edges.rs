//! Resolving the `graph:` list into [`Topology`] edges: node names, joins, conditions, loop
//! bounds and `FAIL` reasons, with "did you mean" for every name that is not an agent, `START`,
//! `END` or `FAIL`; and the agents' `on_error` routes.

use std::collections::HashMap;

use orchestra_spec::{
    Diagnostic, END, EdgeSpec, FAIL, Join, PipelineSpec, START, SourceFile, Spanned,
};

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
        } else if let Some(j) = &e.join
            && let Join::Count(n) = j.value
            && (n == 0 || n as usize > e.from.len())
        {
            diags.push(
                Diagnostic::error(format!(
                    "`join: {n}` is out of range for an edge with {} sources",
                    e.from.len()
                ))
                .at(src, j.span)
                .with_label(format!("must be between 1 and {}", e.from.len()))
                .with_help("`join: N` runs the target once N of its sources have finished; `join: all` waits for every one"),
            );
        }
        let reason = check_reason(e, &targets, src, scope, diags);
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
            reason,
            for_each: e.for_each.as_ref().map(|f| f.value.clone()),
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
            END | FAIL => {
                diags.push(
                    Diagnostic::error(format!("`{}` cannot be a source", n.value))
                        .at(src, n.span)
                        .with_label(format!("nothing runs after {}", n.value))
                        .with_help(format!(
                            "{} is only a target: `- {{ from: agent, to: {} }}`",
                            n.value, n.value
                        )),
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
        FAIL => Some(Node::Fail),
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

/// The `reason:` of an edge: only meaningful on an edge that can lead to `FAIL`, and a valid
/// template over `state` and `inputs`.
fn check_reason(
    e: &EdgeSpec,
    targets: &[Node],
    src: &SourceFile,
    scope: ExprScope<'_>,
    diags: &mut Vec<Diagnostic>,
) -> Option<String> {
    let r = e.reason.as_ref()?;
    if !targets.contains(&Node::Fail) {
        diags.push(
            Diagnostic::warning("`reason` has no effect on an edge that does not lead to `FAIL`")
                .at(src, r.span)
                .with_label("only a session ended by `FAIL` shows a reason"),
        );
    }
    diags.extend(orchestra_prompts::check_inline(
        &r.value,
        src,
        r.span,
        &orchestra_prompts::TemplateScope {
            state: scope.state,
            inputs: scope.inputs,
            item: false,
        },
        "`reason`",
    ));
    Some(r.value.clone())
}

/// The agents' `on_error` routes, by agent (empty when no agent has one). The target must be
/// another agent: failing is what happens without `on_error`.
pub(crate) fn on_error(
    spec: &PipelineSpec,
    src: &SourceFile,
    agents: &HashMap<&str, usize>,
    diags: &mut Vec<Diagnostic>,
) -> Vec<Option<Node>> {
    if spec.agents.values().all(|a| a.on_error.is_none()) {
        return Vec::new();
    }
    let names: Vec<&str> = spec.agents.keys().collect();
    spec.agents
        .iter()
        .map(|(name, _, a)| {
            let o = a.on_error.as_ref()?;
            match o.value.as_str() {
                START | END | FAIL => {
                    diags.push(
                        Diagnostic::error(format!(
                            "`on_error` must name an agent, not `{}`",
                            o.value
                        ))
                        .at(src, o.span)
                        .with_label("the session goes on at this agent when the agent fails")
                        .with_help(if o.value == FAIL {
                            "without `on_error` a failed agent fails the session; leave it out"
                        } else {
                            "name the agent that handles the failure (it sees `state.errors`)"
                        }),
                    );
                    None
                }
                t if t == name => {
                    diags.push(
                        Diagnostic::error(format!("`on_error` of `{name}` leads back to itself"))
                            .at(src, o.span)
                            .with_label("a failing agent would run again and again")
                            .with_help("route to an agent that handles the failure"),
                    );
                    None
                }
                t => match agents.get(t) {
                    Some(&i) => Some(Node::Agent(i)),
                    None => {
                        diags.push(unknown_node(o, src, &names, END, "as `on_error`"));
                        None
                    }
                },
            }
        })
        .collect()
}
