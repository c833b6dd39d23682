//! `orchestra worker`: claim sessions of the queue (`run --queue`) from the database and drive
//! several at once, until SIGTERM or Ctrl-C.

use std::io::{self, Write as _};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use orchestra_runtime::{NoEvents, WorkerEvent, WorkerOptions};
use orchestra_store::SessionStatus;

use crate::cli::Ctx;
use crate::cmd::cleanup::parse_duration;
use crate::engine::{db_path, drive_options, runtime, secs};
use crate::exit;

/// Drive the sessions of the queue: claim queued sessions and drive up to N at once.
///
/// A worker claims the oldest queued session of the database (atomically: two workers never get
/// the same one), resumes it as `orchestra resume` would and keeps its lease alive. A session
/// whose worker died (its lease expired) is claimed again and goes on from its last checkpoint,
/// without re-running tasks that had finished. A session that pauses for a human is released
/// (status `paused`): `orchestra attach ID` answers it from any machine and hands it back.
///
/// `orchestra stop ID`, from any machine, stops one session: the worker reads the request when
/// it renews that session's lease, interrupts it at its checkpoint (not re-queued; `orchestra
/// resume ID` continues it) and goes on with the others.
///
/// Prints a line per session claimed and finished. SIGTERM or Ctrl-C: claim nothing more, cut
/// the running agents off (what finished stays recorded), re-queue those sessions for another
/// worker, release the leases and exit 0; a second signal exits at once (130).
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// How many sessions to drive at once. On PostgreSQL, the worker opens as many
    /// connections (at least 4, at most 16) unless the URL's `pool_size` says otherwise.
    #[arg(long, short = 'j', value_name = "N", default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..))]
    concurrency: u16,
    /// The project directory the sessions' pipelines belong to (their prompts, tools,
    /// conditions and repositories are found there, and its database is the default).
    /// Default: the project around the current directory.
    #[arg(long, value_name = "DIR")]
    pipelines: Option<PathBuf>,
    // `--db`: the help is shared by every command (`crate::store::db_help!`).
    #[arg(
        long,
        help = crate::store::db_help!("(default: the project's)"),
        value_name = "PATH|URL",
        env = "ORCHESTRA_DATABASE",
        hide_env_values = true,
    )]
    db: Option<PathBuf>,
    /// How long a session's lease lasts without renewal; it is renewed every third of that. A
    /// session of a worker that died is taken over by another within this time.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_duration)]
    lease_ttl: Duration,
    /// How long to wait before looking at the queue again when nothing was claimable (at least
    /// 10ms). While the database cannot be reached, the wait doubles after each failure, up to
    /// 30s.
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = parse_duration)]
    poll: Duration,
    /// Exit (0) once nothing is claimable and no session is being driven, instead of waiting
    /// for more.
    #[arg(long)]
    until_idle: bool,
    /// Print only warnings and failures.
    #[arg(long, short)]
    quiet: bool,
}

pub(crate) fn run(args: Args, ctx: &Ctx) -> io::Result<u8> {
    let mut ctx = ctx.clone();
    if let Some(dir) = &args.pipelines {
        if !dir.is_dir() {
            writeln!(
                io::stderr(),
                "error: --pipelines {}: not a directory",
                dir.display()
            )?;
            return Ok(exit::BAD_INPUT);
        }
        ctx.cwd = ctx.cwd.join(dir);
    }
    if args.lease_ttl < Duration::from_millis(300) {
        writeln!(
            io::stderr(),
            "error: --lease-ttl {} is too short (at least 300ms)",
            secs(u64::try_from(args.lease_ttl.as_millis()).unwrap_or(u64::MAX))
        )?;
        return Ok(exit::BAD_INPUT);
    }
    if let Err(e) = orchestra_git::network_timeout() {
        writeln!(io::stderr(), "error: {e}")?;
        return Ok(exit::BAD_INPUT);
    }
    if args.poll < MIN_POLL {
        writeln!(
            io::stderr(),
            "error: --poll {} is too short (at least {}): an idle worker would query the database without pause",
            fmt(args.poll),
            fmt(MIN_POLL)
        )?;
        return Ok(exit::BAD_INPUT);
    }
    let db = match db_path(args.db.clone(), &ctx)? {
        Ok(db) => db,
        Err(code) => return Ok(code),
    };
    if !crate::store::is_server(&db) && !db.exists() {
        // Not an empty database made here to wait on forever: a worker serves a queue that
        // exists (most likely the database was not given).
        writeln!(
            io::stderr(),
            "error: there is no session database at {}, so nothing can be queued there; give the queue's database with --db URL, ORCHESTRA_DATABASE or `database:` in orchestra.yaml (or queue a session first with `orchestra run PIPELINE --queue`)",
            orchestra_spec::display_path(&db, &ctx.cwd).display()
        )?;
        return Ok(exit::BAD_INPUT);
    }
    let root = crate::engine::project_root(&ctx.cwd);
    runtime()?.block_on(async move {
        let engine = match crate::store::engine_with_pool(&db, &root, pool_size(args.concurrency)) {
            Ok(e) => e.with_lease_ttl(args.lease_ttl),
            Err(e) => return crate::store::report(&e),
        };
        let quiet = args.quiet;
        let say = move |line: String| {
            if !quiet {
                let _ = writeln!(io::stderr(), "{line}");
            }
        };
        say(format!(
            "worker {} on {}: up to {} sessions at once, leases of {} renewed every {}",
            engine.owner(),
            crate::store::shown(&db),
            args.concurrency,
            fmt(args.lease_ttl),
            fmt(args.lease_ttl / 3),
        ));
        let stop = signals();
        let wopts = WorkerOptions {
            concurrency: usize::from(args.concurrency),
            poll: args.poll,
            until_idle: args.until_idle,
        };
        let cancel = stop.clone();
        let drive = move |_: &orchestra_store::SessionRecord| {
            drive_options(Arc::new(NoEvents), false, cancel.clone())
        };
        let on = move |ev: WorkerEvent| show(&say, ev, quiet);
        engine.work(wopts, &drive, stop, &on).await;
        engine.close().await;
        Ok(exit::SUCCESS)
    })
}

/// The shortest `--poll`.
const MIN_POLL: Duration = Duration::from_millis(10);

/// The PostgreSQL connections of a worker driving `concurrency` sessions at once (when the
/// URL gives no `pool_size`): one per session, at least the default, at most
/// [`MAX_WORKER_POOL`].
fn pool_size(concurrency: u16) -> usize {
    usize::from(concurrency).clamp(orchestra_store_postgres::DEFAULT_POOL_SIZE, MAX_WORKER_POOL)
}

/// The most PostgreSQL connections a worker opens unless its URL's `pool_size` says otherwise.
const MAX_WORKER_POOL: usize = 16;

/// A stop flag set by the first SIGTERM or SIGINT; the second exits at once.
fn signals() -> watch::Receiver<bool> {
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
            let _ = writeln!(io::stderr(), "warning: cannot listen for signals");
            return;
        };
        tokio::select! { _ = term.recv() => {}, _ = int.recv() => {} }
        let _ = writeln!(
            io::stderr(),
            "stopping: claiming nothing more, re-queueing the running sessions; again to quit at once"
        );
        let _ = tx.send(true);
        tokio::select! { _ = term.recv() => {}, _ = int.recv() => {} }
        // Programs the drives started (tools, CLI agents, conditions) go with it.
        orchestra_process::kill_all();
        std::process::exit(i32::from(exit::INTERRUPTED));
    });
    rx
}

fn fmt(d: Duration) -> String {
    orchestra_spec::fmt_duration(d)
}

/// The line of a worker event.
fn show(say: &dyn Fn(String), ev: WorkerEvent, quiet: bool) {
    match ev {
        WorkerEvent::Claimed {
            session,
            pipeline,
            previous_worker,
        } => say(match previous_worker {
            Some(w) => format!("claimed {session} ({pipeline}), driven before by {w}"),
            None => format!("claimed {session} ({pipeline})"),
        }),
        WorkerEvent::Finished {
            session,
            status,
            note,
            duration,
        } => {
            let note = note.map(|n| format!(": {n}")).unwrap_or_default();
            let line = format!("{status} {session} after {}{note}", fmt(duration));
            match status {
                SessionStatus::Failed if quiet => {
                    let _ = writeln!(io::stderr(), "{line}");
                }
                SessionStatus::Paused => {
                    say(format!("{line}; answer with `orchestra attach {session}`"));
                }
                _ => say(line),
            }
        }
        WorkerEvent::Requeued { session } => say(format!("requeued {session}")),
        WorkerEvent::LeaseLost { session, holder } => {
            let holder = holder.as_deref().unwrap_or("nobody (it was released)");
            let _ = writeln!(
                io::stderr(),
                "warning: lost the lease of {session} to {holder}; dropped its step"
            );
        }
        WorkerEvent::Trouble { session, error } => {
            let at = session.map(|s| format!(" (session {s})")).unwrap_or_default();
            let _ = writeln!(io::stderr(), "warning{at}: {error}");
        }
    }
}
