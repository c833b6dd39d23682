//! What changed between two compiled pipelines, for people: agents, edges, state fields,
//! inputs, conditions and limits added, removed or changed.

use std::fmt;

use crate::compiled::{Compiled, ResolvedAgent};
use crate::state::{Channel, type_name};
use crate::topology::{Edge, Topology};

/// One difference.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    /// `+` added, `-` removed, `~` changed.
    pub sign: char,
    /// What kind of thing: `agent`, `edge`, `state`, `input`, `condition`, `provider`,
    /// `workspace`, `limits`, `outputs`.
    pub what: &'static str,
    /// Its name (an edge: `a -> b, END`).
    pub name: String,
    /// How it changed (`prompt (task review), model worker -> smart`).
    pub detail: Option<String>,
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {:<9} {}", self.sign, self.what, self.name)?;
        if let Some(d) = &self.detail {
            write!(f, ": {d}")?;
        }
        Ok(())
    }
}

/// What changed from a stored pipeline to an edited one.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PipelineDiff {
    /// The differences, agents first, then edges, state, inputs, conditions, the rest.
    pub changes: Vec<Change>,
}

impl PipelineDiff {
    /// Whether nothing that matters to a run changed.
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }
}

/// The differences from `old` to `new`.
pub fn diff(old: &Compiled, new: &Compiled) -> PipelineDiff {
    let mut changes = Vec::new();
    let mut push = |sign, what, name: &str, detail: Option<String>| {
        changes.push(Change {
            sign,
            what,
            name: name.to_owned(),
            detail,
        });
    };
    for a in &new.agents {
        match old.agent(&a.name) {
            None => push('+', "agent", &a.name, None),
            Some(o) => {
                let d = agent_changes(o, a);
                if !d.is_empty() {
                    push('~', "agent", &a.name, Some(d.join(", ")));
                }
            }
        }
    }
    for a in old.agents.iter().filter(|a| new.agent(&a.name).is_none()) {
        push('-', "agent", &a.name, None);
    }
    let matched = match_edges(&old.topology, &new.topology);
    for (ni, e) in new.topology.edges.iter().enumerate() {
        let name = edge_name(&new.topology, e);
        match matched.iter().position(|m| *m == Some(ni)) {
            None => push('+', "edge", &name, None),
            Some(oi) => {
                let o = &old.topology.edges[oi];
                let d = edge_changes(&old.topology, o, &new.topology, e);
                if !d.is_empty() {
                    push('~', "edge", &name, Some(d.join(", ")));
                }
            }
        }
    }
    for (oi, e) in old.topology.edges.iter().enumerate() {
        if matched[oi].is_none() {
            push('-', "edge", &edge_name(&old.topology, e), None);
        }
    }
    for c in new.channels.iter() {
        match old.channels.get(&c.name) {
            None => push('+', "state", &c.name, Some(channel_kind(c))),
            Some(o) if o.ty != c.ty || o.reducer != c.reducer || o.allowed != c.allowed => push(
                '~',
                "state",
                &c.name,
                Some(format!("{} -> {}", channel_kind(o), channel_kind(c))),
            ),
            Some(_) => {}
        }
    }
    for c in old
        .channels
        .iter()
        .filter(|c| new.channels.get(&c.name).is_none())
    {
        push('-', "state", &c.name, Some("its value is dropped".into()));
    }
    for i in &new.inputs {
        match old.inputs.iter().find(|o| o.name == i.name) {
            None => push('+', "input", &i.name, None),
            Some(o) if o != i => push('~', "input", &i.name, None),
            Some(_) => {}
        }
    }
    for i in old
        .inputs
        .iter()
        .filter(|o| !new.inputs.iter().any(|i| i.name == o.name))
    {
        push('-', "input", &i.name, None);
    }
    for (name, c) in &new.conditions {
        match old.conditions.get(name) {
            None => push('+', "condition", name, None),
            Some(o) if o != c => push('~', "condition", name, None),
            Some(_) => {}
        }
    }
    for name in old
        .conditions
        .keys()
        .filter(|n| !new.conditions.contains_key(*n))
    {
        push('-', "condition", name, None);
    }
    for (name, p) in &new.providers {
        match old.providers.get(name) {
            None => push('+', "provider", name, None),
            Some(o) if json(&o.spec) != json(&p.spec) || o.responses != p.responses => {
                push('~', "provider", name, None);
            }
            Some(_) => {}
        }
    }
    for name in old
        .providers
        .keys()
        .filter(|n| !new.providers.contains_key(*n))
    {
        push('-', "provider", name, None);
    }
    if json(&old.repos) != json(&new.repos) || json(&old.shell_tools) != json(&new.shell_tools) {
        push('~', "workspace", "workspace", None);
    }
    if json(&old.limits) != json(&new.limits) {
        push('~', "limits", "limits", None);
    }
    if json(&old.outputs) != json(&new.outputs) {
        push('~', "outputs", "outputs", None);
    }
    PipelineDiff { changes }
}

/// For each edge of `old` (by index), the edge of `new` that is the same edge: one with the
/// same sources and targets, else the only unmatched one with the same sources when exactly
/// one unmatched old edge has them (its targets, condition or bounds were edited).
pub(super) fn match_edges(old: &Topology, new: &Topology) -> Vec<Option<usize>> {
    let key = |t: &Topology, e: &Edge| (names(t, &e.sources), names(t, &e.targets));
    let mut taken = vec![false; new.edges.len()];
    let mut matched: Vec<Option<usize>> = old
        .edges
        .iter()
        .map(|o| {
            let k = key(old, o);
            let found = new
                .edges
                .iter()
                .enumerate()
                .position(|(ni, n)| !taken[ni] && key(new, n) == k);
            if let Some(ni) = found {
                taken[ni] = true;
            }
            found
        })
        .collect();
    for oi in 0..old.edges.len() {
        if matched[oi].is_some() {
            continue;
        }
        let sources = names(old, &old.edges[oi].sources);
        let same_sources = |t: &Topology, e: &Edge| names(t, &e.sources) == sources;
        let old_like = (0..old.edges.len())
            .filter(|&i| matched[i].is_none() && same_sources(old, &old.edges[i]))
            .count();
        let new_like: Vec<usize> = (0..new.edges.len())
            .filter(|&i| !taken[i] && same_sources(new, &new.edges[i]))
            .collect();
        if old_like == 1 && new_like.len() == 1 {
            taken[new_like[0]] = true;
            matched[oi] = Some(new_like[0]);
        }
    }
    matched
}

fn names(t: &Topology, nodes: &[crate::topology::Node]) -> Vec<String> {
    nodes.iter().map(|&n| t.name(n).to_owned()).collect()
}

/// `a, b -> c, END`.
pub(super) fn edge_name(t: &Topology, e: &Edge) -> String {
    format!(
        "{} -> {}",
        names(t, &e.sources).join(", "),
        names(t, &e.targets).join(", ")
    )
}

fn edge_changes(ot: &Topology, o: &Edge, nt: &Topology, n: &Edge) -> Vec<String> {
    let mut d = Vec::new();
    let (otargets, ntargets) = (names(ot, &o.targets), names(nt, &n.targets));
    if otargets != ntargets {
        d.push(format!(
            "targets {} -> {}",
            otargets.join(", "),
            ntargets.join(", ")
        ));
    }
    if o.condition != n.condition {
        d.push(format!(
            "condition {} -> {}",
            o.condition.as_deref().unwrap_or("none"),
            n.condition.as_deref().unwrap_or("none")
        ));
    }
    if o.join != n.join {
        d.push(format!("join {} -> {}", o.join, n.join));
    }
    if o.max_loops != n.max_loops {
        let show = |m: Option<u32>| m.map_or("none".to_owned(), |m| m.to_string());
        d.push(format!(
            "max_loops {} -> {}",
            show(o.max_loops),
            show(n.max_loops)
        ));
    }
    let on_max = |t: &Topology, e: &Edge| e.on_max_loops.map(|n| t.name(n).to_owned());
    if on_max(ot, o) != on_max(nt, n) {
        d.push("on_max_loops".into());
    }
    if o.reason != n.reason {
        d.push("reason".into());
    }
    d
}

fn agent_changes(o: &ResolvedAgent, n: &ResolvedAgent) -> Vec<String> {
    let mut d = Vec::new();
    let layer_names = |a: &ResolvedAgent| -> Vec<(String, Option<String>, String)> {
        a.layers
            .iter()
            .map(|l| (format!("{:?}", l.kind), l.name.clone(), l.text.clone()))
            .collect()
    };
    let (ol, nl) = (layer_names(o), layer_names(n));
    if ol != nl {
        let mut which: Vec<String> = nl
            .iter()
            .filter(|l| !ol.contains(l))
            .map(|(kind, name, _)| match name {
                Some(name) => format!("{} {name}", kind.to_lowercase()),
                None => format!("inline {}", kind.to_lowercase()),
            })
            .collect();
        if which.is_empty() {
            which.push("a layer removed".into());
        }
        d.push(format!("prompt ({})", which.join(", ")));
    }
    let model = |a: &ResolvedAgent| {
        format!(
            "{}/{}",
            a.model.provider,
            a.model.model.as_deref().unwrap_or("-")
        )
    };
    if model(o) != model(n) {
        d.push(format!("model {} -> {}", model(o), model(n)));
    }
    let tools = |a: &ResolvedAgent| a.tools.iter().map(|t| t.name.clone()).collect::<Vec<_>>();
    if tools(o) != tools(n) {
        d.push(format!(
            "tools [{}] -> [{}]",
            tools(o).join(", "),
            tools(n).join(", ")
        ));
    }
    if o.output_schema != n.output_schema || o.output_max_retries != n.output_max_retries {
        d.push("output".into());
    }
    if o.writes != n.writes {
        d.push("writes".into());
    }
    if o.mode != n.mode {
        d.push("mode".into());
    }
    if (o.max_turns, o.timeout, o.retries) != (n.max_turns, n.timeout, n.retries) {
        d.push("max_turns/timeout/retries".into());
    }
    if json(&o.command) != json(&n.command) {
        d.push("command".into());
    }
    d
}

/// `a list (append)`.
pub(super) fn channel_kind(c: &Channel) -> String {
    let reducer = serde_json::to_value(c.reducer)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    let allowed = if c.allowed.is_some() {
        " with allowed values"
    } else {
        ""
    };
    format!("{} ({reducer}){allowed}", type_name(c.ty))
}

fn json<T: serde::Serialize>(v: &T) -> serde_json::Value {
    serde_json::to_value(v).unwrap_or(serde_json::Value::Null)
}
