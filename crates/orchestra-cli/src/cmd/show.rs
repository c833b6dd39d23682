//! `orchestra show`: what a session did — the state at a checkpoint, each step's node runs and
//! routing, and for one node its runs with the prompt as sent, the answers, the tool calls
//! (arguments and results) and the routing that followed. Text for people, `--json` for tools
//! (its shape is documented in docs/ARCHITECTURE.md, "show --json", and versioned).

mod render;

use std::io::{self, Write as _};
use std::path::PathBuf;

pub(crate) use orchestra_runtime::views::show::{
    RouteView, RunView, Shown, StepView, ToolView, TurnView, shown,
};

use crate::cli::Ctx;
use crate::engine::{report_error, runtime, sessions_root, session_db};
use crate::exit;

/// Show what a session did: the state at a checkpoint and each step's node runs and routing;
/// with `--node`, that node's runs with the prompt as sent, the model's answers, the tool calls
/// (arguments and results, cut at 64 KiB with the original size shown) and the routing after.
///
/// Sessions stored before release 0.2 have no prompts, answers or routing: they show their
/// runs and state only.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The session id (or a unique prefix of it).
    session: String,
    /// The checkpoint (step) to show the state at, and the last step whose runs are shown
    /// (default: the last checkpoint).
    #[arg(long, value_name = "N")]
    checkpoint: Option<u64>,
    /// Show this node's runs in full (an instance of a `for_each` target by its name,
    /// `researcher[3]`; the agent's name shows all of its instances).
    #[arg(long, value_name = "NAME")]
    node: Option<String>,
    /// Print JSON (a stable, versioned shape) instead of text.
    #[arg(long)]
    json: bool,
    // `--db`: the help is shared by every command (`crate::store::db_help!`).
    #[arg(
        long,
        help = crate::store::db_help!("(default: the project's, found from the current directory)"),
        value_name = "PATH|URL",
        env = "ORCHESTRA_DATABASE",
        hide_env_values = true,
    )]
    db: Option<PathBuf>,
}

pub(crate) fn run(args: Args, ctx: &Ctx) -> io::Result<u8> {
    let db = match session_db(args.db.clone(), ctx)? {
        Ok(db) => db,
        Err(code) => return Ok(code),
    };
    let rt = runtime()?;
    rt.block_on(async move {
        let engine = match crate::store::engine(&db, &sessions_root(&db, &ctx.cwd)) {
            Ok(e) => e,
            Err(e) => return crate::store::report(&e),
        };
        let r = shown(
            &engine,
            &args.session,
            args.checkpoint,
            args.node.as_deref(),
        )
        .await;
        engine.close().await;
        match r {
            Ok(Ok(shown)) => {
                let mut out = io::stdout().lock();
                if args.json {
                    serde_json::to_writer_pretty(&mut out, &shown).map_err(io::Error::other)?;
                    writeln!(out)?;
                } else {
                    render::text(&mut out, &shown)?;
                }
                Ok(exit::SUCCESS)
            }
            Ok(Err(problem)) => {
                writeln!(io::stderr(), "error: {problem}")?;
                Ok(exit::BAD_INPUT)
            }
            Err(e) => report_error(&e),
        }
    })
}

