//! `orchestra mcp`: orchestra itself as an MCP server over stdio (the official Rust SDK,
//! `rmcp`), so an IDE or a coding agent drives pipelines: compile one, start a run (detached),
//! list sessions and show one, resume one, and answer a paused human turn. stdout carries the
//! protocol only; logs go to stderr.

mod answer;
mod detached;
mod server;
mod types;

use std::io::{self, Write as _};
use std::path::PathBuf;
use std::time::Duration;

use rmcp::ServiceExt as _;
use rmcp::service::ServerInitializeError;

use crate::cli::Ctx;
use crate::engine::runtime;
use crate::exit;

/// Serve orchestra over stdio as an MCP server (Model Context Protocol), for an IDE or a
/// coding agent.
///
/// Tools: `compile_pipeline`, `run_pipeline` (detached: returns the session id at once),
/// `list_sessions`, `show_session`, `resume_session` (detached) and `answer_session` (a line
/// for a paused interactive agent: a message, `/approve` or `/reject`). Their inputs and outputs
/// have JSON Schemas; a failure is a tool error with the text the CLI prints for it.
///
/// Runs and resumes are `orchestra run` / `orchestra resume` processes of their own (own
/// process group): they go on when the server exits. Their output goes to
/// `.orchestra/mcp/SESSION.log` beside the database, their events to
/// `.orchestra/mcp/SESSION.events.jsonl`. Paths are relative to the directory the server was
/// started in. The server exits when its stdin closes. Add it to a client's `mcpServers`
/// as `{"command": "orchestra", "args": ["mcp"]}` (see docs/mcp.md).
///
/// Exit codes: 0 when stdin closes (before or after a client said hello), 2 when what came
/// first was not an MCP handshake.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The session database: a path, `sqlite:PATH` or `postgres://USER@HOST:PORT/DB` (password
    /// in the URL or PGPASSWORD) (default: for runs, the pipeline's project's; otherwise the
    /// project's found from the current directory).
    #[arg(long, value_name = "PATH|URL", env = "ORCHESTRA_DATABASE", hide_env_values = true)]
    db: Option<PathBuf>,
}

pub(crate) fn run(args: Args, ctx: &Ctx) -> io::Result<u8> {
    let rt = runtime()?;
    let server = server::Orchestra::new(ctx.clone(), args.db);
    let code = rt.block_on(async move {
        let running = match server.serve(rmcp::transport::stdio()).await {
            Ok(r) => r,
            // Stdin closed before a client said hello: nothing to serve.
            Err(ServerInitializeError::ConnectionClosed(why)) => {
                tracing::debug!(%why, "stdin closed before the MCP handshake");
                return Ok::<u8, io::Error>(exit::SUCCESS);
            }
            Err(e) => {
                writeln!(io::stderr(), "error: the MCP handshake failed: {e}")?;
                return Ok(exit::BAD_INPUT);
            }
        };
        match running.waiting().await {
            Ok(reason) => {
                tracing::debug!(?reason, "MCP client gone");
                Ok(exit::SUCCESS)
            }
            Err(e) => {
                writeln!(io::stderr(), "error: the MCP server stopped: {e}")?;
                Ok(exit::INTERNAL)
            }
        }
    })?;
    // Tasks still waiting on a detached run's first event do not hold up the exit.
    rt.shutdown_timeout(Duration::from_millis(200));
    Ok(code)
}
