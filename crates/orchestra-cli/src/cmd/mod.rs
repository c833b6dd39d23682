//! Subcommands, one file each. Adding one is a file with an `Args` struct (its doc comment is
//! the `--help` text) and `fn run(args, ctx) -> io::Result<u8>`, plus one line below.

use std::io;

use crate::cli::Ctx;

macro_rules! commands {
    ($( $(#[$meta:meta])* $variant:ident => $module:ident, )*) => {
        $( pub(crate) mod $module; )*

        /// The subcommands.
        #[derive(Debug, clap::Subcommand)]
        pub(crate) enum Command {
            $( $(#[$meta])* $variant($module::Args), )*
        }

        impl Command {
            /// Runs the subcommand; returns the exit code.
            pub(crate) fn run(self, ctx: &Ctx) -> io::Result<u8> {
                match self {
                    $( Command::$variant(args) => $module::run(args, ctx), )*
                }
            }
        }
    };
}

commands! {
    /// Scaffold a new project in the current directory from a shipped example.
    Init => init,
    /// Validate a pipeline and resolve everything it refers to; print the graph.
    Compile => compile,
    /// Print the JSON Schema of pipeline files (or of orchestra.yaml, conditions, layers).
    Schema => schema,
    /// Compile and run a pipeline; every step is checkpointed.
    Run => run,
    /// Drive the sessions of the queue (`run --queue`): claim and drive up to N at once.
    Worker => worker,
    /// Continue an interrupted, failed or paused session.
    Resume => resume,
    /// Stop a running session cleanly, as Ctrl-C in the process driving it does.
    Stop => stop,
    /// Join a session's interactive agent: resume a paused one here, or connect to a live one.
    Attach => attach,
    /// List sessions, or show one in detail.
    Status => status,
    /// Show what a session did: state at a checkpoint, node runs, prompts, answers, tool calls, routing.
    Show => show,
    /// Render a session for people: Markdown with a Mermaid graph, self-contained HTML, or JSON.
    Report => report,
    /// Fork a session at a checkpoint (state and repositories) and continue from there.
    Replay => replay,
    /// Remove the branches and worktrees of finished sessions.
    Cleanup => cleanup,
    /// Serve orchestra as an MCP server (stdio, or HTTP with `--http`) for an IDE or a coding agent.
    Mcp => mcp,
    /// Serve the web UI: sessions, a session's live graph, checkpoints and their differences,
    /// node runs with their commits' diffs, and reports.
    Ui => ui,
}
