//! The shape of a compiled graph as the scheduler sees it: nodes (START, END, agents by
//! declaration index) and edges with their join, condition and loop bound.

use serde::{Deserialize, Serialize};

use orchestra_spec::{END, Join, START};

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
}

/// Agents and edges of a compiled pipeline.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Topology {
    /// Agent names in declaration order.
    pub agents: Vec<String>,
    /// Edges in the order written.
    pub edges: Vec<Edge>,
}

impl Topology {
    /// The node called `name` (`START`, `END` or an agent).
    pub fn node(&self, name: &str) -> Option<Node> {
        match name {
            START => Some(Node::Start),
            END => Some(Node::End),
            _ => self.agents.iter().position(|a| a == name).map(Node::Agent),
        }
    }

    /// The display name of a node.
    pub fn name(&self, node: Node) -> &str {
        match node {
            Node::Start => START,
            Node::End => END,
            Node::Agent(i) => self.agents.get(i).map_or("?", String::as_str),
        }
    }

    /// Edges leaving `node`, with their indices.
    pub fn outgoing(&self, node: Node) -> impl Iterator<Item = (usize, &Edge)> {
        self.edges
            .iter()
            .enumerate()
            .filter(move |(_, e)| e.sources.contains(&node))
    }
}
