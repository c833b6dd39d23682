//! `orchestra stop`: stop a session wherever it is driven, the way Ctrl-C in the process
//! driving it would.

use std::io::{self, Write as _};
use std::path::PathBuf;
use std::time::Duration;

use orchestra_runtime::interaction::{self, InteractionError, StopHow};
use orchestra_runtime::views::sessions::record_status;
use orchestra_store::system_now_ms;

use crate::cli::Ctx;
use crate::engine::{db_flag, report_error, runtime, session_db, sessions_root};
use crate::exit;

/// Stop a running session cleanly, as Ctrl-C in the process driving it does, on any machine.
///
/// The request is recorded in the database: the process holding the session (`orchestra run`,
/// `resume`, `replay`, a drive of `orchestra mcp` or `orchestra ui`, or an `orchestra worker`,
/// on this machine or another sharing the database) reads it when it next renews its lease
/// (every third of the lease TTL: 10s by default, `worker --lease-ttl`), cuts off the agents of
/// the current step (what finished stays recorded), records the session as interrupted and
/// lets it go; a worker goes on with other sessions and does not re-queue it. A plain drive of
/// this machine is also sent SIGINT, so it stops at once. A session of the queue that nothing
/// drives (queued, or its worker died) is interrupted at once, so no worker claims it.
/// `orchestra resume SESSION` continues it (and withdraws the request). Waits until the
/// session was let go.
///
/// Exit codes: 0 once the session stopped, 2 for an unknown session or one that is not running
/// (completed, failed, paused, interrupted, ...), 4 when it did not stop within `--wait` (the
/// request stays: it stops when its process next renews its lease), 5 when the process cannot
/// be signalled or the database cannot be read or written.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The session id, or a unique prefix of it or of its random tail (`7e2c63`).
    session: String,
    // `--db`: the help is shared by every command (`crate::store::db_help!`).
    #[arg(
        long,
        help = crate::store::db_help!("(default: the project's, found from the current directory)"),
        value_name = "PATH|URL",
        env = "ORCHESTRA_DATABASE",
        hide_env_values = true,
    )]
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
    let holder = stopping.holder.as_deref().unwrap_or("nothing");
    match (stopping.how, stopping.pid) {
        (StopHow::Signalled, Some(pid)) => writeln!(
            io::stderr(),
            "interrupting process {pid} that drives session {id}"
        )?,
        (StopHow::Interrupted, _) => writeln!(
            io::stderr(),
            "session {id} was waiting for a worker: it is interrupted, no worker will claim it"
        )?,
        _ => writeln!(
            io::stderr(),
            "asked {holder} to stop session {id}; it stops when it next renews its lease"
        )?,
    }
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
                "error: session {id} is still running {}s after the request ({holder} drives it); it stops when that process next renews its lease",
                args.wait,
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
        ErrorKind::Conflict => exit::BAD_INPUT,
        ErrorKind::Internal => exit::INTERNAL,
    })
}
