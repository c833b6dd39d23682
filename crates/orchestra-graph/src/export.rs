//! Drawing a compiled graph: Mermaid (`flowchart`), Graphviz DOT, and the nodes and edges as
//! data (`Drawing`, which the web UI lays out).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::compiled::Compiled;
use crate::conditions::ConditionSource;
use crate::topology::{Edge, Node};

/// The path a session took through the graph: how many times each node ran and each edge fired
/// (by node names; `START` and `END` included).
#[derive(Clone, Debug, Default)]
pub struct PathTaken {
    /// Runs per agent name.
    pub runs: BTreeMap<String, u64>,
    /// Firings per `(from, to)`.
    pub edges: BTreeMap<(String, String), u64>,
    /// Firings of `on_max_loops` routes per `(from, to)` (not counted in `edges`).
    pub max_loops_reached: BTreeMap<(String, String), u64>,
}

/// One arrow of the drawn graph (the report's SVG, the web UI).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct DrawnEdge {
    /// The source node's name (`START` or an agent).
    pub from: String,
    /// The target node's name (an agent or `END`).
    pub to: String,
    /// The label Mermaid and DOT show (join, condition and its rules, loop bound).
    pub label: String,
    /// Whether a condition chooses it (drawn dashed).
    pub conditional: bool,
    /// The index of the pipeline edge it is drawn for (a fan-in draws one arrow per source);
    /// an agent's `on_error` route is numbered after the edges.
    pub edge: usize,
    /// Whether it is an `on_max_loops` route (taken when a loop's bound is used up).
    pub on_max_loops: bool,
    /// `edge` (plain), `condition` (chosen by a condition), `on_max_loops` or `on_error`.
    pub kind: &'static str,
}

/// A short label for edge `e` into `target`: join, condition (with the rules of a rule file
/// that choose this target: `if critic_routing: revise`), loop bound.
fn edge_label(e: &Edge, c: &Compiled, target: Node) -> String {
    let mut parts = Vec::new();
    if e.sources.len() > 1 {
        parts.push(format!("join: {}", e.join));
    }
    if let Some(cond) = &e.condition {
        let rules = match c.conditions.get(cond).map(|rc| &rc.source) {
            Some(ConditionSource::Rules(rules)) => rules.labels_for(c.topology.name(target)),
            _ => Vec::new(),
        };
        if rules.is_empty() {
            parts.push(format!("if {cond}"));
        } else {
            parts.push(format!("if {cond}: {}", rules.join(" | ")));
        }
    }
    if let Some(m) = e.max_loops {
        parts.push(format!("max_loops: {m}"));
    }
    parts.join(", ")
}

/// A graph's nodes and edges as data, for a program that draws it (the web UI).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Drawing {
    /// `START`, the agents in declaration order, `END`, and `FAIL` when an edge leads there.
    pub nodes: Vec<String>,
    /// One edge per (source, target) pair.
    pub edges: Vec<DrawnEdge>,
}

impl Compiled {
    /// The graph's nodes and edges as data.
    pub fn to_drawing(&self) -> Drawing {
        let t = &self.topology;
        let mut nodes = vec![t.name(Node::Start).to_owned()];
        nodes.extend(t.agents.iter().cloned());
        nodes.push(t.name(Node::End).to_owned());
        if self.leads_to_fail() {
            nodes.push(t.name(Node::Fail).to_owned());
        }
        let edges = self.drawn_edges();
        Drawing { nodes, edges }
    }

    /// The graph as a Mermaid flowchart. Conditional edges are dotted; `on_max_loops` routes
    /// are dotted and labelled.
    pub fn to_mermaid(&self) -> String {
        self.mermaid(None)
    }

    /// The graph as a Mermaid flowchart with the path a session took: nodes that ran are drawn
    /// bold with their run count, and edges that fired carry how many times they did.
    pub fn to_mermaid_path(&self, path: &PathTaken) -> String {
        self.mermaid(Some(path))
    }

    /// Every drawn edge (`on_max_loops` routes included) with its label, for other renderers
    /// (the SVG of `orchestra report`).
    pub fn drawn_edges(&self) -> Vec<DrawnEdge> {
        let mut out = Vec::new();
        for (edge, e) in self.topology.edges.iter().enumerate() {
            for &s in &e.sources {
                for &t in &e.targets {
                    out.push(DrawnEdge {
                        edge,
                        from: self.topology.name(s).to_owned(),
                        to: self.topology.name(t).to_owned(),
                        label: edge_label(e, self, t),
                        conditional: e.condition.is_some(),
                        on_max_loops: false,
                        kind: if e.condition.is_some() {
                            "condition"
                        } else {
                            "edge"
                        },
                    });
                }
                if let Some(o) = e.on_max_loops {
                    out.push(DrawnEdge {
                        edge,
                        from: self.topology.name(s).to_owned(),
                        to: self.topology.name(o).to_owned(),
                        label: "on_max_loops".to_owned(),
                        conditional: true,
                        on_max_loops: true,
                        kind: "on_max_loops",
                    });
                }
            }
        }
        for (a, t) in self.topology.on_error.iter().enumerate() {
            if let Some(t) = t {
                out.push(DrawnEdge {
                    edge: self.topology.edges.len() + a,
                    from: self.topology.name(Node::Agent(a)).to_owned(),
                    to: self.topology.name(*t).to_owned(),
                    label: "on_error".to_owned(),
                    conditional: true,
                    on_max_loops: false,
                    kind: "on_error",
                });
            }
        }
        out
    }

    fn mermaid(&self, path: Option<&PathTaken>) -> String {
        let id = |n: Node| match n {
            Node::Start => "START".to_owned(),
            Node::End => "END".to_owned(),
            Node::Fail => "FAIL".to_owned(),
            Node::Agent(i) => format!("a{i}"),
        };
        let mut out = String::from("flowchart TD\n");
        let _ = writeln!(out, "    START([START])");
        let mut ran = Vec::new();
        for (i, a) in self.topology.agents.iter().enumerate() {
            let runs = path.and_then(|p| p.runs.get(a)).copied().unwrap_or(0);
            let label = match runs {
                0 => a.replace('"', "#quot;"),
                1 => format!("{} ✓", a.replace('"', "#quot;")),
                n => format!("{} ✓ ×{n}", a.replace('"', "#quot;")),
            };
            if runs > 0 {
                ran.push(format!("a{i}"));
            }
            let _ = writeln!(out, "    a{i}[\"{label}\"]");
        }
        let _ = writeln!(out, "    END([END])");
        if self.leads_to_fail() {
            let _ = writeln!(out, "    FAIL([FAIL])");
        }
        for e in &self.topology.edges {
            let from: Vec<String> = e.sources.iter().map(|&s| id(s)).collect();
            let from = from.join(" & ");
            let dotted = e.condition.is_some();
            for &t in &e.targets {
                let mut label = edge_label(e, self, t);
                if let Some(p) = path {
                    let taken: u64 = e
                        .sources
                        .iter()
                        .filter_map(|&s| {
                            p.edges.get(&(
                                self.topology.name(s).to_owned(),
                                self.topology.name(t).to_owned(),
                            ))
                        })
                        .sum();
                    if taken > 0 {
                        if !label.is_empty() {
                            label.push_str(", ");
                        }
                        label.push_str(&format!("taken ×{taken}"));
                    }
                }
                let arrow = match (dotted, label.is_empty()) {
                    (false, true) => "-->".to_owned(),
                    (false, false) => format!("-->|\"{label}\"|"),
                    (true, true) => "-.->".to_owned(),
                    (true, false) => format!("-.->|\"{label}\"|"),
                };
                let _ = writeln!(out, "    {from} {arrow} {}", id(t));
            }
            if let Some(o) = e.on_max_loops {
                let taken: u64 = path.map_or(0, |p| {
                    e.sources
                        .iter()
                        .filter_map(|&s| {
                            p.max_loops_reached.get(&(
                                self.topology.name(s).to_owned(),
                                self.topology.name(o).to_owned(),
                            ))
                        })
                        .sum()
                });
                let count = if taken > 0 {
                    format!(", taken ×{taken}")
                } else {
                    String::new()
                };
                let _ = writeln!(out, "    {from} -.->|\"on_max_loops{count}\"| {}", id(o));
            }
        }
        for (a, t) in self.topology.on_error.iter().enumerate() {
            if let Some(t) = t {
                let _ = writeln!(out, "    a{a} -.->|\"on_error\"| {}", id(*t));
            }
        }
        if !ran.is_empty() {
            out.push_str("    classDef ran stroke-width:3px,font-weight:bold\n");
            let _ = writeln!(out, "    class {} ran", ran.join(","));
        }
        out
    }

    /// Whether an edge leads to `FAIL`.
    fn leads_to_fail(&self) -> bool {
        self.topology
            .edges
            .iter()
            .any(|e| e.targets.contains(&Node::Fail))
    }

    /// The graph in Graphviz DOT. Conditional edges are dashed; `on_max_loops` routes dotted.
    pub fn to_dot(&self) -> String {
        let q = |s: &str| format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""));
        let mut out = format!("digraph {} {{\n", q(&self.name));
        out.push_str("    rankdir=TB;\n    node [shape=box, style=rounded];\n");
        let _ = writeln!(out, "    {} [shape=circle];", q("START"));
        let _ = writeln!(out, "    {} [shape=doublecircle];", q("END"));
        if self.leads_to_fail() {
            let _ = writeln!(out, "    {} [shape=doublecircle];", q("FAIL"));
        }
        for a in &self.topology.agents {
            let _ = writeln!(out, "    {};", q(a));
        }
        for e in &self.topology.edges {
            let attrs = |t: Node| {
                let label = edge_label(e, self, t);
                let mut attrs = Vec::new();
                if !label.is_empty() {
                    attrs.push(format!("label={}", q(&label)));
                }
                if e.condition.is_some() {
                    attrs.push("style=dashed".to_owned());
                }
                if attrs.is_empty() {
                    String::new()
                } else {
                    format!(" [{}]", attrs.join(", "))
                }
            };
            for &s in &e.sources {
                for &t in &e.targets {
                    let attrs = attrs(t);
                    let _ = writeln!(
                        out,
                        "    {} -> {}{attrs};",
                        q(self.topology.name(s)),
                        q(self.topology.name(t))
                    );
                }
                if let Some(o) = e.on_max_loops {
                    let _ = writeln!(
                        out,
                        "    {} -> {} [label=\"on_max_loops\", style=dotted];",
                        q(self.topology.name(s)),
                        q(self.topology.name(o))
                    );
                }
            }
        }
        for (a, t) in self.topology.on_error.iter().enumerate() {
            if let Some(t) = t {
                let _ = writeln!(
                    out,
                    "    {} -> {} [label=\"on_error\", style=dotted];",
                    q(self.topology.name(Node::Agent(a))),
                    q(self.topology.name(*t))
                );
            }
        }
        out.push_str("}\n");
        out
    }
}
