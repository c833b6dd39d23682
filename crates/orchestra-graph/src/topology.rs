//! The shape of a compiled graph as the scheduler sees it: nodes (START, END, FAIL, agents by
//! declaration index), edges with their join, condition and loop bound, and each agent's
//! `on_error` route.

use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

use orchestra_spec::{END, FAIL, Join, START};

/// Index of an agent in declaration order.
pub type AgentIdx = usize;

/// A node of the graph.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Node {
    /// The entry point.
    Start,
    /// An agent, by declaration index.
    Agent(AgentIdx),
    /// The exit.
    End,
    /// The exit that ends the session as failed.
    Fail,
}

/// One edge entry of the pipeline's `graph:` list, resolved.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Edge {
    /// Sources: `START` or agents. More than one makes a fan-in.
    pub sources: Vec<Node>,
    /// Targets: agents or `END`. With a condition, the targets it may choose from.
    pub targets: Vec<Node>,
    /// Barrier kind for several sources.
    pub join: Join,
    /// The condition's name (resolved in `Compiled::conditions`), if any.
    pub condition: Option<String>,
    /// How many loops this edge may take.
    pub max_loops: Option<u32>,
    /// Where a loop goes once `max_loops` is used up (`None`: the session fails).
    pub on_max_loops: Option<Node>,
    /// The targets from which one of `sources` can be reached again: routing to one of them
    /// counts as a loop.
    pub loop_targets: Vec<Node>,
    /// The template of why the session failed, when this edge leads to `FAIL`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// `for_each`: the state list whose items each get a task of the (single) target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub for_each: Option<String>,
}

/// Agents and edges of a compiled pipeline. Build it with [`Topology::new`]; `agents` and
/// `edges` must not change once it is used (an index of the edges is built on first use).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Topology {
    /// Agent names in declaration order.
    pub agents: Vec<String>,
    /// Edges in the order written.
    pub edges: Vec<Edge>,
    /// By agent (declaration order): where the session goes when the agent fails after its
    /// retries (`on_error`); empty when no agent has one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub on_error: Vec<Option<Node>>,
    /// Derived from `edges`: neither stored nor compared.
    #[serde(skip)]
    index: EdgeIndex,
}

/// The edges leaving each node and the number of distinct sources of each edge, so that the
/// scheduler's work per step does not grow with the size of the graph.
#[derive(Clone, Debug, Default)]
struct EdgeIndex(OnceLock<Index>);

#[derive(Clone, Debug)]
struct Index {
    /// By node slot (see [`Index::slot`]): indices of the edges it is a source of, ascending.
    outgoing: Vec<Vec<usize>>,
    /// By edge: how many distinct sources it has.
    distinct_sources: Vec<usize>,
}

impl Index {
    fn build(agents: usize, edges: &[Edge]) -> Self {
        let mut outgoing = vec![Vec::new(); agents + 1];
        let mut distinct_sources = Vec::with_capacity(edges.len());
        for (ei, e) in edges.iter().enumerate() {
            let mut seen = std::collections::HashSet::with_capacity(e.sources.len());
            for &n in &e.sources {
                if !seen.insert(n) {
                    continue;
                }
                if let Some(list) = Self::slot(agents, n).and_then(|i| outgoing.get_mut(i)) {
                    list.push(ei);
                }
            }
            distinct_sources.push(seen.len());
        }
        Index {
            outgoing,
            distinct_sources,
        }
    }

    /// Agents by index, then `START`; `END` and unknown agents have no outgoing edges.
    fn slot(agents: usize, n: Node) -> Option<usize> {
        match n {
            Node::Agent(i) if i < agents => Some(i),
            Node::Start => Some(agents),
            Node::Agent(_) | Node::End | Node::Fail => None,
        }
    }
}

impl PartialEq for EdgeIndex {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for EdgeIndex {}

impl Topology {
    /// A topology of `agents` (declaration order) and `edges` (as written).
    pub fn new(agents: Vec<String>, edges: Vec<Edge>) -> Self {
        Topology {
            agents,
            edges,
            on_error: Vec::new(),
            index: EdgeIndex::default(),
        }
    }

    /// Where the session goes when agent `a` fails after its retries, if it has `on_error`.
    pub fn on_error_of(&self, a: AgentIdx) -> Option<Node> {
        self.on_error.get(a).copied().flatten()
    }

    fn index(&self) -> &Index {
        self.index
            .0
            .get_or_init(|| Index::build(self.agents.len(), &self.edges))
    }

    /// How many distinct sources edge `ei` has (0 for an unknown edge).
    pub fn distinct_sources(&self, ei: usize) -> usize {
        self.index().distinct_sources.get(ei).copied().unwrap_or(0)
    }

    /// The node called `name` (`START`, `END` or an agent).
    pub fn node(&self, name: &str) -> Option<Node> {
        match name {
            START => Some(Node::Start),
            END => Some(Node::End),
            FAIL => Some(Node::Fail),
            _ => self.agents.iter().position(|a| a == name).map(Node::Agent),
        }
    }

    /// The display name of a node.
    pub fn name(&self, node: Node) -> &str {
        match node {
            Node::Start => START,
            Node::End => END,
            Node::Fail => FAIL,
            Node::Agent(i) => self.agents.get(i).map_or("?", String::as_str),
        }
    }

    /// The state list agent `a` fans out over, when it is the target of a `for_each` edge.
    pub fn fan_out_field(&self, a: AgentIdx) -> Option<&str> {
        self.edges
            .iter()
            .find(|e| e.targets.contains(&Node::Agent(a)))
            .and_then(|e| e.for_each.as_deref())
    }

    /// Edges leaving `node`, with their indices, in the order written.
    pub fn outgoing(&self, node: Node) -> impl Iterator<Item = (usize, &Edge)> {
        let index = self.index();
        Index::slot(self.agents.len(), node)
            .and_then(|i| index.outgoing.get(i))
            .map_or(&[][..], Vec::as_slice)
            .iter()
            .filter_map(|&ei| self.edges.get(ei).map(|e| (ei, e)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn edge(sources: &[Node], targets: &[Node]) -> Edge {
        Edge {
            sources: sources.to_vec(),
            targets: targets.to_vec(),
            join: Join::All,
            condition: None,
            max_loops: None,
            on_max_loops: None,
            loop_targets: Vec::new(),
            reason: None,
            for_each: None,
        }
    }

    #[test]
    fn outgoing_edges_are_indexed_by_source() {
        let (a, b, c) = (Node::Agent(0), Node::Agent(1), Node::Agent(2));
        let t = Topology::new(
            vec!["a".into(), "b".into(), "c".into()],
            vec![
                edge(&[Node::Start], &[a, b]),
                edge(&[a, b, a], &[c]),
                edge(&[a], &[Node::End]),
                edge(&[c], &[Node::End]),
            ],
        );
        let out = |n| t.outgoing(n).map(|(i, _)| i).collect::<Vec<_>>();
        assert_eq!(out(Node::Start), [0]);
        assert_eq!(out(a), [1, 2], "once per edge, in the order written");
        assert_eq!(out(b), [1]);
        assert_eq!(out(c), [3]);
        assert!(out(Node::End).is_empty());
        assert!(out(Node::Agent(9)).is_empty());
        assert_eq!(t.distinct_sources(1), 2);
        assert_eq!(t.distinct_sources(7), 0);
    }

    #[test]
    fn the_index_is_neither_stored_nor_compared() {
        let t = Topology::new(
            vec!["a".into()],
            vec![edge(&[Node::Start], &[Node::Agent(0)])],
        );
        let json = serde_json::to_value(&t).unwrap();
        assert_eq!(
            json.as_object().unwrap().keys().collect::<Vec<_>>(),
            ["agents", "edges"]
        );
        let _ = t.outgoing(Node::Start).count();
        let back: Topology = serde_json::from_value(json).unwrap();
        assert_eq!(back, t);
        assert_eq!(back.outgoing(Node::Start).count(), 1);
    }
}
