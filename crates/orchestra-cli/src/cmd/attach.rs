//! `orchestra attach`: join an interactive agent of a session — resume a paused session in this
//! terminal with the human in the loop, or connect to the process running it.

use std::io::{self, IsTerminal as _, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use orchestra_runtime::attach::{
    AttachError, Incoming, Joined, Outcome, Outgoing, ServerMsg, connect, socket_path,
};
use orchestra_runtime::{Engine, EventSink as _, RuntimeError, WorkerError};
use orchestra_store::{SessionRecord, SessionStatus, StoreError};

use crate::cli::Ctx;
use crate::engine::{sessions_root, 
    Progress, ctrl_c, db_flag, drive_options, providers_problem, report_error, report_outcome,
    runtime, session_db,
};
use crate::exit;
use crate::human::{ChatPrinter, Host, StdinLines, TerminalHuman, describe};

/// Join a session's interactive agent and chat with it in this terminal.
///
/// A paused (or interrupted) session is resumed here with you in the loop: the chat opens with
/// the conversation so far. A session another process is running is joined through that
/// process's attach socket: its progress shows here, and its chats happen here. One human at a
/// time: a second attach is told who holds the session (exit code 4). A completed session has
/// nothing to attach to (exit code 2).
///
/// In a chat, `/approve` and `/reject` end it with a verdict and `/done` without one (text after
/// the command is a comment); any other line goes to the agent. End of input (Ctrl-D) leaves
/// the chat: the session pauses there and keeps the conversation.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The session id, or a unique prefix of it or of its random tail (`7e2c63`).
    session: String,
    /// Show model text as it arrives (when the session is resumed here).
    #[arg(long)]
    stream: bool,
    /// Print only warnings, failures, the chat and the outcome.
    #[arg(long, short)]
    quiet: bool,
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
        let code = attach(&engine, &db, &args).await;
        engine.close().await;
        code
    })
}

/// How long `attach` waits for the record of a session whose attach socket is there: `run`
/// listens before the engine records the session, so an `attach` of it can come in between.
const RECORD_PATIENCE: Duration = Duration::from_secs(3);

/// The session `wanted` names. While none matches but the attach socket of a session of that
/// id exists, asks again (for at most [`RECORD_PATIENCE`]).
async fn find(engine: &Engine, db: &Path, wanted: &str) -> Result<SessionRecord, WorkerError> {
    let socket = socket_path(&crate::store::socket_anchor(db, engine.root()), wanted);
    let deadline = Instant::now() + RECORD_PATIENCE;
    loop {
        let w = wanted.to_owned();
        match engine.store().call(move |s| s.find_session(&w)).await {
            Err(WorkerError::Store(StoreError::NotFound { .. }))
                if socket.exists() && Instant::now() < deadline =>
            {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            found => return found,
        }
    }
}

async fn attach(engine: &Engine, db: &Path, args: &Args) -> io::Result<u8> {
    let rec = match find(engine, db, &args.session).await {
        Ok(r) => r,
        Err(e) => return report_error(&RuntimeError::Store(e)),
    };
    if rec.status == SessionStatus::Completed {
        writeln!(
            io::stderr(),
            "error: session {} is completed; there is nothing to attach to (see `orchestra status {}`)",
            rec.id,
            rec.id
        )?;
        return Ok(exit::BAD_INPUT);
    }
    let anchor = crate::store::socket_anchor(db, engine.root());
    match connect(&socket_path(&anchor, &rec.id), &describe("orchestra attach")).await {
        Ok(Joined::Attached {
            driver,
            incoming,
            outgoing,
        }) => live(&rec.id, db, &driver, incoming, outgoing, args.quiet).await,
        Ok(Joined::Busy { holder }) => {
            writeln!(
                io::stderr(),
                "error: session {} is held by {holder}; only one human can be attached at a time",
                rec.id
            )?;
            Ok(exit::SESSION_BUSY)
        }
        // Nobody serves the session: resume it here.
        Err(AttachError::Connect { .. }) => resume_here(engine, db, &rec.id, args).await,
        Err(e) => {
            writeln!(
                io::stderr(),
                "error: cannot attach to session {}: {e}",
                rec.id
            )?;
            Ok(exit::INTERNAL)
        }
    }
}

/// Resumes the session in this process, with this terminal as its human.
async fn resume_here(engine: &Engine, db: &Path, id: &str, args: &Args) -> io::Result<u8> {
    // As `resume` does: a provider that cannot be set up here is bad input, found before the
    // session is taken over.
    let (rec, stored) = match engine.session_pipeline(id).await {
        Ok(found) => found,
        Err(e) => return report_error(&e),
    };
    if let Some(problem) = providers_problem(&stored) {
        writeln!(io::stderr(), "error: {problem}")?;
        return Ok(exit::BAD_INPUT);
    }
    let progress = Arc::new(Progress::new(args.quiet));
    let mut opts = drive_options(progress.clone(), args.stream, ctrl_c());
    // A session of the queue goes back to the workers once the human's step is over.
    let hand_back = match crate::queue::human_turn_limit(engine, &rec, &stored).await {
        Ok(limit) => limit,
        Err(e) => return report_error(&e),
    };
    if let Some(limit) = hand_back {
        opts.limits.max_steps = Some(limit);
    }
    let host = Host::start(
        &crate::store::socket_anchor(db, engine.root()),
        id,
        "orchestra attach",
        Some(Arc::new(TerminalHuman)),
        "stdin is closed",
    );
    host.wire(&mut opts);
    let result = engine.resume(id, &opts).await;
    host.finish(&result).await;
    if let (Some(limit), Ok(_)) = (hand_back, &result) {
        match crate::queue::hand_back(engine, id, limit).await {
            Ok(true) => return Ok(exit::SUCCESS),
            Ok(false) => {}
            Err(e) => return report_error(&e),
        }
    }
    match result {
        Ok(out) => report_outcome(&out, progress.elapsed_ms(), db, false),
        Err(e) => report_error(&e),
    }
}

/// Relays a live session: its progress and chats to this terminal, typed lines to it.
async fn live(
    id: &str,
    db: &Path,
    driver: &str,
    mut incoming: Incoming,
    mut outgoing: Outgoing,
    quiet: bool,
) -> io::Result<u8> {
    writeln!(
        io::stderr(),
        "attached to session {id}, run by {driver}; its chats open here (Ctrl-D detaches)"
    )?;
    let progress = Progress::new(quiet);
    let mut printer = ChatPrinter::default();
    let lines = StdinLines::get();
    loop {
        tokio::select! {
            msg = incoming.next() => match msg {
                Ok(Some(ServerMsg::Event { event })) => progress.emit(event),
                Ok(Some(ServerMsg::Chat { event })) => printer.show(&event),
                Ok(Some(ServerMsg::Prompt)) => printer.prompt(),
                Ok(Some(ServerMsg::Finished { outcome })) => return report_live(id, db, &outcome),
                Ok(Some(ServerMsg::Welcome { .. } | ServerMsg::Busy { .. })) => {}
                Ok(None) | Err(_) => {
                    writeln!(
                        io::stderr(),
                        "error: the process running session {id} went away without saying how it ended; see `orchestra status {id}`"
                    )?;
                    return Ok(exit::INTERNAL);
                }
            },
            line = lines.next() => match line {
                Some(line) => {
                    if !io::stdin().is_terminal() {
                        // Not echoed by a terminal: show what was sent.
                        writeln!(io::stderr(), "{line}")?;
                    }
                    if outgoing.line(&line).await.is_err() {
                        writeln!(io::stderr(), "error: the connection to session {id} closed")?;
                        return Ok(exit::INTERNAL);
                    }
                }
                None => {
                    writeln!(io::stderr(), "\ndetached from session {id} (end of input); it goes on without you")?;
                    return Ok(exit::SUCCESS);
                }
            },
            _ = tokio::signal::ctrl_c() => {
                writeln!(io::stderr(), "\ndetached from session {id}")?;
                return Ok(exit::INTERRUPTED);
            }
        }
    }
}

/// Prints how the live session's drive ended; the exit code is the one `run` would give.
fn report_live(id: &str, db: &Path, outcome: &Outcome) -> io::Result<u8> {
    let mut w = io::stdout().lock();
    let db = db_flag(db, &std::env::current_dir().unwrap_or_default());
    let detail = outcome.detail.as_deref().unwrap_or_default();
    let status = outcome.status.parse::<SessionStatus>();
    match status {
        Ok(SessionStatus::Completed) => writeln!(w, "completed")?,
        Ok(SessionStatus::Paused) => {
            writeln!(w, "paused {detail}")?;
            writeln!(w, "attach with: orchestra attach {id}{db}")?;
        }
        Ok(SessionStatus::Failed) => writeln!(w, "failed: {detail}")?,
        Ok(SessionStatus::Stopped) => writeln!(w, "stopped: {detail}")?,
        Ok(SessionStatus::Interrupted) => {
            writeln!(w, "interrupted; continue with `orchestra resume {id}{db}`")?
        }
        _ => writeln!(w, "error: {detail}")?,
    }
    let code = status.map_or(exit::INTERNAL, exit::of_status);
    writeln!(w, "session {id}")?;
    Ok(code)
}
