//! `orchestra ui`: the web UI (crate `orchestra-ui`) over the project's session database.

use std::io::{self, Write as _};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use crate::cli::Ctx;
use crate::engine::{db_path, runtime, sessions_root};
use crate::exit;

/// Serve the web UI: the sessions with their live status, parents and children; a session's
/// graph with the path taken, how many times each edge fired and the nodes running now; its
/// checkpoints, the state at each one and the difference between two; each node run's prompt
/// as sent, answers, tool calls, routing, times, tokens, cost and the diff of its commits; and
/// its report (HTML, Markdown, JSON).
///
/// Its actions: start a run of a pipeline of the project (`pipelines/`) with its inputs, resume
/// a session, fork one at a checkpoint (optionally setting state fields, as `replay --set`),
/// stop a running one (as `orchestra stop`), and chat with a paused or running interactive
/// agent (a message, `/approve`, `/reject`, `/done`, as in `orchestra attach`). Runs, resumes
/// and forks are `orchestra` processes of their own that go on when the UI stops (their logs
/// in `ui/` beside the database).
///
/// A project that has run nothing yet gets its (empty) SQLite database, as `run` would create it.
/// It prints its URL and serves until Ctrl-C. On a loopback address (the default) anyone on
/// this machine may open it; on any other address it prints a token that every request must
/// carry (the printed URL holds it; `Authorization: Bearer TOKEN` for programs): without it the
/// answer is 401; actions also need the page's own origin. It serves no other file.
///
/// Exit codes: 0 after Ctrl-C, 2 when the address cannot be listened on or the database is not
/// one it can use (an unknown kind, unreachable, read-only, corrupt), 5 when the database cannot
/// be read or created.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The address to listen on (a port of 0 picks a free one).
    #[arg(long, value_name = "IP:PORT", default_value = "127.0.0.1:7878")]
    addr: SocketAddr,
    /// The session database: a path, `sqlite:PATH` or `postgres://USER@HOST:PORT/DB` (password
    /// in the URL or PGPASSWORD) (default: the project's, found from the current directory).
    #[arg(long, value_name = "PATH|URL", env = "ORCHESTRA_DATABASE", hide_env_values = true)]
    db: Option<PathBuf>,
}

pub(crate) fn run(args: Args, ctx: &Ctx) -> io::Result<u8> {
    // A project that has run nothing yet has no SQLite file: it is created here, as `run`
    // would (the UI can start the first run); a PostgreSQL database gets its schema on connect.
    let db = match db_path(args.db.clone(), ctx)? {
        Ok(db) => db,
        Err(code) => return Ok(code),
    };
    let rt = runtime()?;
    rt.block_on(async move {
        let listener = match tokio::net::TcpListener::bind(args.addr).await {
            Ok(l) => l,
            Err(e) => {
                writeln!(io::stderr(), "error: cannot listen on {}: {e}", args.addr)?;
                return Ok(exit::BAD_INPUT);
            }
        };
        let addr = listener.local_addr()?;
        let engine = match crate::store::engine(&db, &sessions_root(&db, &ctx.cwd)) {
            Ok(e) => Arc::new(e),
            Err(e) => return crate::store::report(&e),
        };
        let root = sessions_root(&db, &ctx.cwd);
        let actions = orchestra_ui::Actions {
            launcher: crate::store::launcher(&db, &ctx.cwd, "ui", "orchestra ui")?,
            load: orchestra_graph::LoadOptions {
                cwd: ctx.cwd.clone(),
                home: ctx.home.clone(),
                ..orchestra_graph::LoadOptions::default()
            },
            root,
        };
        let ui = orchestra_ui::Ui::new(Arc::clone(&engine), addr).with_actions(actions);
        {
            let mut out = io::stdout().lock();
            writeln!(out, "orchestra ui: {}", ui.url(addr))?;
            if let Some(token) = ui.token() {
                writeln!(
                    out,
                    "not a loopback address: every request needs the token {token} (it is in the URL above; programs send `Authorization: Bearer {token}`)"
                )?;
            }
            writeln!(
                out,
                "database: {} (Ctrl-C stops)",
                crate::store::shown(&db)
            )?;
            out.flush()?;
        }
        let stop = async {
            let _ = tokio::signal::ctrl_c().await;
        };
        let served = orchestra_ui::serve(listener, ui, stop).await;
        if let Ok(engine) = Arc::try_unwrap(engine) {
            engine.close().await;
        }
        match served {
            Ok(()) => Ok(exit::SUCCESS),
            Err(e) => {
                writeln!(io::stderr(), "error: the web UI stopped: {e}")?;
                Ok(exit::INTERNAL)
            }
        }
    })
}
