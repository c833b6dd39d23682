//! Tools from any MCP server for Orchestra agents, on the official Rust SDK (`rmcp`).
//!
//! [`McpServers`] holds a drive's `mcp_servers` (from `orchestra-spec`): a server is started
//! when an agent that uses it first runs — a program talking MCP on its stdin and stdout,
//! started in a process group of its own (`orchestra_process::spawn_group`), or a streamable
//! HTTP endpoint — initialized and its tools listed within its startup timeout, shared by every
//! agent of the drive, and stopped with its whole group by [`McpServers::shutdown`] (or when
//! dropped). Tools are named `SERVER:TOOL`; a call that times out, a server that dies or prints
//! garbage, or a tool error is a tool result with `is_error` for the model, never a hang. A
//! server that cannot start is remembered as unavailable for the rest of the drive (never
//! started again on every call); a server that stopped is started again once per drive.
//! `${VAR}` and `${VAR:-default}` in `env` and `headers` are expanded when the server starts;
//! their values appear in no message or log.

mod connection;
mod content;
mod error;
mod servers;

pub use connection::EnvLookup;
pub use error::McpError;
pub use servers::{McpServers, McpTools, Unavailable};
