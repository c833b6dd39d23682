//! `orchestra mcp`: orchestra itself as an MCP server over stdio, or streamable HTTP with
//! `--http` (the official Rust SDK, `rmcp`), so an IDE or a coding agent drives pipelines:
//! compile one, start a run (detached), list sessions and show one, resume one, fork one at a
//! checkpoint, and answer a paused human turn. Over stdio, stdout carries the protocol only;
//! logs go to stderr.

mod http;
mod replay;
mod server;
mod types;

use std::io::{self, Write as _};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use rmcp::ServiceExt as _;
use rmcp::service::ServerInitializeError;

use crate::cli::Ctx;
use crate::engine::runtime;
use crate::exit;

/// Serve orchestra as an MCP server (Model Context Protocol), for an IDE or a coding agent:
/// over stdio, or over streamable HTTP with `--http`.
///
/// Tools: `compile_pipeline`, `run_pipeline` (detached: returns the session id at once),
/// `list_sessions`, `show_session`, `resume_session` (detached; `pipeline` and `set` as
/// `--pipeline` and `--set`), `replay_session` (a fork at a checkpoint, run detached unless
/// `no_run`) and `answer_session` (a line for a paused interactive agent: a message,
/// `/approve` or `/reject`). Their inputs and outputs have JSON Schemas; a failure is a tool
/// error with the text the CLI prints for it.
///
/// Runs and resumes are `orchestra run` / `orchestra resume` processes of their own (own
/// process group): they go on when the server exits. Their output goes to
/// `.orchestra/mcp/SESSION.log` beside the database, their events to
/// `.orchestra/mcp/SESSION.events.jsonl`. Paths are relative to the directory the server was
/// started in. Over stdio the server exits when its stdin closes. Add it to a client's
/// `mcpServers` as `{"command": "orchestra", "args": ["mcp"]}` (see docs/mcp.md).
///
/// With `--http` it serves `http://ADDR/mcp` until Ctrl-C or SIGTERM and prints that URL on
/// stderr. On a loopback address (the default) requests must name a loopback host (no DNS
/// rebinding); on any other address it prints a token every request must carry
/// (`Authorization: Bearer TOKEN`), else 401. A request whose `Origin` is not this server
/// (a page of another site) is refused (403). A token of your own, so that a client's
/// configuration outlives a restart: set ORCHESTRA_MCP_TOKEN (at least 16 ASCII letters,
/// digits or `-._~+/=`); it is then needed on every address, loopback included, and never
/// printed (the server says that it is in use).
///
/// Exit codes: 0 when stdin closes (before or after a client said hello) or, with `--http`,
/// after Ctrl-C or SIGTERM; 2 when what came first was not an MCP handshake, the address
/// cannot be listened on, or ORCHESTRA_MCP_TOKEN is not a token it accepts.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Environment: with --http, ORCHESTRA_MCP_TOKEN sets a token of your own (at least 16 ASCII letters, digits or `-._~+/=`), kept across restarts: then required on every address, loopback included, and never printed. A value it does not accept exits 2."
)]
pub(crate) struct Args {
    // `--db`: the help is shared by every command (`crate::store::db_help!`).
    #[arg(
        long,
        help = crate::store::db_help!("(default: for runs, the pipeline's project's; otherwise the project's found from the current directory)"),
        value_name = "PATH|URL",
        env = "ORCHESTRA_DATABASE",
        hide_env_values = true,
    )]
    db: Option<PathBuf>,
    /// Serve MCP over streamable HTTP at `http://ADDR/mcp` instead of stdio; `--http` alone
    /// listens on 127.0.0.1:7879 (a port of 0 picks a free one).
    #[arg(
        long,
        value_name = "IP:PORT",
        num_args = 0..=1,
        default_missing_value = http::DEFAULT_ADDR
    )]
    http: Option<SocketAddr>,
}

pub(crate) fn run(args: Args, ctx: &Ctx) -> io::Result<u8> {
    let token = match args.http {
        Some(_) => match crate::cmd::ui::user_token(http::TOKEN_ENV)? {
            Ok(t) => t,
            Err(code) => return Ok(code),
        },
        None => None,
    };
    let rt = runtime()?;
    let server = server::Orchestra::new(ctx.clone(), args.db);
    let code = match args.http {
        Some(addr) => rt.block_on(http::serve(server, addr, token))?,
        None => rt.block_on(stdio(server))?,
    };
    // Tasks still waiting on a detached run's first event do not hold up the exit.
    rt.shutdown_timeout(Duration::from_millis(200));
    Ok(code)
}

/// Serves `server` on stdin/stdout until stdin closes; the exit code.
async fn stdio(server: server::Orchestra) -> io::Result<u8> {
    let running = match server.serve(rmcp::transport::stdio()).await {
        Ok(r) => r,
        // Stdin closed before a client said hello: nothing to serve.
        Err(ServerInitializeError::ConnectionClosed(why)) => {
            tracing::debug!(%why, "stdin closed before the MCP handshake");
            return Ok(exit::SUCCESS);
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
}
