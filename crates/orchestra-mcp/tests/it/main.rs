//! Integration tests of orchestra-mcp against real MCP servers from npm and PyPI, and small
//! misbehaving servers (a crash mid-call, no answer to `initialize`, garbage on stdout).

#![expect(clippy::unwrap_used, reason = "tests fail loudly by unwrapping")]

mod common;
mod failures;
mod install;
mod real_servers;
