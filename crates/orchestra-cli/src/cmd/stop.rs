//! `orchestra stop`: stop a session another process drives, the way Ctrl-C in that process
//! would.

use std::io::{self, Write as _};
use std::path::PathBuf;
use std::time::Duration;

use orchestra_runtime::interaction::{self, InteractionError};
use orchestra_runtime::views::sessions::record_status;
use orchestra_store::system_now_ms;

use crate::cli::Ctx;
use crate::engine::{db_flag, report_error, runtime, session_db, sessions_root};
use crate::exit;

/// Stop a running session cleanly, as Ctrl-C in the process driving it does.
///
/// The process of this machine that holds the session (`orchestra run`, `resume`, `replay`, a
/// drive started by `orchestra mcp` or `orchestra ui`) is interrupted (SIGINT): it finishes the
/// checkpoint it is at and records the session as interrupted; `orchestra resume SESSION`
/// continues it. Waits until that process let the session go.
///
/// Exit codes: 0 once the session stopped, 2 for an unknown session or one no live process
/// drives, 4 when a process of another machine drives it or it did not stop within `--wait`,
/// 5 when the process cannot be signalled or the database cannot be read.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The session id, or a unique prefix of it or of its random tail (`7e2c63`).
    session: String,
    /// The session database: a path, `sqlite:PATH` or `postgres://USER@HOST:PORT/DB` (password
    /// in the URL or PGPASSWORD) (default: the project's, found from the current directory).
    #[arg(long, value_name = "PATH|URL", env = "ORCHESTRA_DATABASE", hide_env_values = true)]
    db: Option<PathBuf>,
    /// How long to wait for the session to stop, in seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 60)]
    wait: u64,
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
        let code = stop(&engine, &args, &db, ctx).await;
        engine.close().await;
        code
    })
}

async fn stop(
    engine: &orchestra_runtime::Engine,
    args: &Args,
    db: &std::path::Path,
    ctx: &Ctx,
) -> io::Result<u8> {
    let stopping = match interaction::stop(engine, &args.session).await {
        Ok(s) => s,
        Err(e) => return failed(&e),
    };
    let id = &stopping.session;
    writeln!(
        io::stderr(),
        "interrupting process {} that drives session {id}",
        stopping.pid
    )?;
    let patience = Duration::from_secs(args.wait);
    match interaction::wait_released(engine, id, patience).await {
        Ok(Some(rec)) => {
            let status = record_status(&rec, system_now_ms());
            let mut out = io::stdout().lock();
            writeln!(out, "session {id} stopped: {status}")?;
            if status != "completed" {
                writeln!(
                    out,
                    "resume it with `orchestra resume {id}{}`",
                    db_flag(db, &ctx.cwd)
                )?;
            }
            Ok(exit::SUCCESS)
        }
        Ok(None) => {
            writeln!(
                io::stderr(),
                "error: session {id} is still running {}s after the interrupt (process {}); `orchestra stop {id}` again interrupts it at once",
                args.wait,
                stopping.pid
            )?;
            Ok(exit::SESSION_BUSY)
        }
        Err(e) => failed(&e),
    }
}

fn failed(e: &InteractionError) -> io::Result<u8> {
    use orchestra_runtime::interaction::ErrorKind;
    if let InteractionError::Runtime(e) = e {
        return report_error(e);
    }
    writeln!(
        io::stderr(),
        "error: {}",
        orchestra_runtime::error_chain(e)
    )?;
    Ok(match e.kind() {
        ErrorKind::BadInput | ErrorKind::NotFound => exit::BAD_INPUT,
        ErrorKind::Conflict if matches!(e, InteractionError::NotRunning { .. }) => exit::BAD_INPUT,
        ErrorKind::Conflict => exit::SESSION_BUSY,
        ErrorKind::Internal => exit::INTERNAL,
    })
}
