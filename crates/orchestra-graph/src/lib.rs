//! The pipeline compiler: a parsed pipeline becomes a validated, fully resolved graph; plus the
//! state channels with their reducers and the pure scheduler that decides what runs next.

pub mod topology;

pub use topology::{AgentIdx, Edge, Node, Topology};
