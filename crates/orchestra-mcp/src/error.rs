//! What can go wrong with an MCP server, in messages that name the server (never the values of
//! its `env` or `headers`).

use std::time::Duration;

use orchestra_spec::fmt_duration;

/// A server that cannot be used: it did not start, did not initialize in time, died, or has no
/// such tool.
#[derive(Debug, thiserror::Error)]
pub enum McpError {
    /// No server of this name is configured.
    #[error("unknown MCP server `{0}`")]
    UnknownServer(String),
    /// `${VAR}` in `env` or `headers` could not be expanded.
    #[error("MCP server `{server}`: `{key}`: {source}")]
    Expand {
        /// The server.
        server: String,
        /// Which value (`env.NAME` or `headers.NAME`).
        key: String,
        /// What is wrong (names the variable).
        #[source]
        source: orchestra_spec::ExpandError,
    },
    /// A header name or value that HTTP cannot carry.
    #[error("MCP server `{server}`: invalid header `{name}`")]
    Header {
        /// The server.
        server: String,
        /// The header's name.
        name: String,
    },
    /// The program could not be started.
    #[error("MCP server `{server}`: cannot start `{program}`")]
    Spawn {
        /// The server.
        server: String,
        /// The program.
        program: String,
        /// The cause.
        #[source]
        source: orchestra_process::ProcessError,
    },
    /// No answer to `initialize` within the startup timeout.
    #[error("MCP server `{server}` did not answer `initialize` within {}{}", fmt_duration(*timeout), stderr_note(stderr))]
    StartTimeout {
        /// The server.
        server: String,
        /// The startup timeout.
        timeout: Duration,
        /// The end of its stderr.
        stderr: String,
    },
    /// `initialize` failed: the server exited, closed the connection, or refused.
    #[error(
        "MCP server `{server}` failed to initialize: {detail}{}",
        stderr_note(stderr)
    )]
    Initialize {
        /// The server.
        server: String,
        /// What happened (exit status, protocol error).
        detail: String,
        /// The end of its stderr.
        stderr: String,
    },
    /// Listing its tools failed.
    #[error("MCP server `{server}`: cannot list its tools: {detail}")]
    ListTools {
        /// The server.
        server: String,
        /// What happened.
        detail: String,
    },
    /// It stopped again after it was started again once in this drive.
    #[error(
        "MCP server `{server}` stopped again after it was restarted; it is not started again in this drive"
    )]
    StoppedAgain {
        /// The server.
        server: String,
    },
    /// An agent names a tool the server does not have.
    #[error("MCP server `{server}` has no tool `{tool}`{hint}")]
    UnknownTool {
        /// The server.
        server: String,
        /// The name asked for.
        tool: String,
        /// "did you mean ...?" and the tools it has.
        hint: String,
    },
}

impl McpError {
    /// The message without the end of the server's stderr (one line, for a tool's description
    /// or a system prompt).
    pub fn brief(&self) -> String {
        match self {
            McpError::StartTimeout {
                server, timeout, ..
            } => McpError::StartTimeout {
                server: server.clone(),
                timeout: *timeout,
                stderr: String::new(),
            }
            .to_string(),
            McpError::Initialize { server, detail, .. } => McpError::Initialize {
                server: server.clone(),
                detail: detail.clone(),
                stderr: String::new(),
            }
            .to_string(),
            other => other.to_string(),
        }
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned()
    }
}

fn stderr_note(stderr: &str) -> String {
    let s = stderr.trim();
    if s.is_empty() {
        String::new()
    } else {
        format!("; its stderr ends:\n{s}")
    }
}
