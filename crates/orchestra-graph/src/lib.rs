//! The pipeline compiler: a parsed pipeline becomes a validated, fully resolved graph; plus the
//! state channels with their reducers and the pure scheduler that decides what runs next.
//!
//! [`load`] reads a pipeline (and its project's `orchestra.yaml`), resolves every name — prompt
//! layers, providers and models, tools, conditions, state fields — checks the graph (reachability,
//! loops, joins, parallel writers) and returns a [`Compiled`] pipeline, or every problem found as
//! [`Diagnostic`](orchestra_spec::Diagnostic)s sorted by position.

mod agents;
mod analysis;
mod call;
mod command;
mod compiled;
pub mod conditions;
mod edges;
pub mod edit;
mod export;
mod fields;
mod foreach;
mod inputs;
mod joins;
mod load;
mod mcp;
mod outputs;
mod providers;
mod relocate;
pub mod scheduler;
pub mod state;
pub mod topology;
mod workspace;

pub use agents::interactive_output_schema;
pub use call::{CallNode, call_output};
pub use command::{COMMAND_MAX_OUTPUT, CommandNode, command_output_schema};
pub use compiled::{
    Compiled, ModelChoice, ResolvedAgent, ResolvedProvider, ResolvedRepo, StateWrite, ToolKind,
    ToolRef,
};
pub use conditions::{
    ConditionError, ConditionSource, DEFAULT_RULE, ResolvedCondition, Rule, RuleSet,
};
pub use export::{Drawing, DrawnEdge, PathTaken};
pub use foreach::fan_out_items;
pub use inputs::{InputValues, ResolvedInput};
pub use load::{LoadOptions, load};
pub use mcp::ResolvedMcpServer;
pub use outputs::OUTPUT_PATH_VARS;
pub use providers::kind_name;
pub use topology::{AgentIdx, Edge, Node, Topology};
