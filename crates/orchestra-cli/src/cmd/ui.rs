//! `orchestra ui`: the web UI (crate `orchestra-ui`) over the project's session database.

use std::io::{self, Write as _};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use orchestra_ui::auth::UserToken;

use crate::cli::Ctx;
use crate::engine::{db_path, runtime, sessions_root};
use crate::exit;

/// The variable holding the web UI's token, when the user sets it.
const TOKEN_ENV: &str = "ORCHESTRA_UI_TOKEN";

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
/// A token of your own, kept across restarts: set ORCHESTRA_UI_TOKEN (at least 16 ASCII
/// letters, digits or `-._~+/=`). It is then needed on every address, loopback included
/// (`?token=TOKEN` once in the browser, `Authorization: Bearer TOKEN` for programs), and never
/// printed: the UI says that it is in use.
///
/// Exit codes: 0 after Ctrl-C, 2 when ORCHESTRA_UI_TOKEN is not a token it accepts, the address
/// cannot be listened on or the database is not one it can use (an unknown kind, unreachable,
/// read-only, corrupt), 5 when the database cannot be read or created.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Environment: ORCHESTRA_UI_TOKEN sets a token of your own (at least 16 ASCII letters, digits or `-._~+/=`), kept across restarts: then required on every address, loopback included, and never printed. A value it does not accept exits 2."
)]
pub(crate) struct Args {
    /// The address to listen on (a port of 0 picks a free one).
    #[arg(long, value_name = "IP:PORT", default_value = "127.0.0.1:7878")]
    addr: SocketAddr,
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
    let token = match user_token(TOKEN_ENV)? {
        Ok(t) => t,
        Err(code) => return Ok(code),
    };
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
        let mut ui = orchestra_ui::Ui::new(Arc::clone(&engine), addr).with_actions(actions);
        if let Some(token) = token {
            ui = ui.with_user_token(token);
        }
        {
            let mut out = io::stdout().lock();
            writeln!(out, "orchestra ui: {}", ui.url(addr))?;
            if let Some(token) = ui.token() {
                writeln!(
                    out,
                    "not a loopback address: every request needs the token {token} (it is in the URL above; programs send `Authorization: Bearer {token}`)"
                )?;
            }
            if ui.user_token() {
                writeln!(out, "{}", token_in_use(TOKEN_ENV))?;
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

/// The user's token from the variable `var` (unset or empty: none), or the exit code after
/// saying why it is refused (2). The value is never printed.
pub(crate) fn user_token(var: &'static str) -> io::Result<Result<Option<UserToken>, u8>> {
    let Some(value) = std::env::var_os(var).filter(|v| !v.is_empty()) else {
        return Ok(Ok(None));
    };
    let parsed = match value.to_str() {
        Some(v) => UserToken::parse(var, v).map_err(|e| e.to_string()),
        None => Err(format!("{var} is not valid UTF-8")),
    };
    match parsed {
        Ok(t) => Ok(Ok(Some(t))),
        Err(e) => {
            writeln!(io::stderr(), "error: {e}")?;
            Ok(Err(exit::BAD_INPUT))
        }
    }
}

/// The line that says the user's token is in use (never its value).
pub(crate) fn token_in_use(var: &str) -> String {
    format!(
        "every request needs the token set in {var} (not shown; programs send `Authorization: Bearer TOKEN`)"
    )
}
