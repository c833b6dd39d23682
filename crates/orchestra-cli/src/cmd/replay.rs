//! `orchestra replay`: fork a session at one of its checkpoints — the new session's state is
//! that checkpoint's and its repositories' worktrees sit at that checkpoint's commits on new
//! branches — then continue it (unless `--no-run`).

use std::io::{self, Write as _};
use std::path::PathBuf;
use std::sync::Arc;

use orchestra_runtime::{Engine, LimitOverrides, RuntimeError, restore};

use crate::cli::Ctx;
use crate::engine::{
    Progress, ctrl_c, db_flag, drive_options, providers_problem, report_error, report_json,
    report_outcome, runtime, session_db,
};
use crate::exit;

/// Fork a session at a checkpoint and continue from there.
///
/// The new session starts with the state of checkpoint ID (`orchestra status SESSION` lists
/// them) and, for every writable repository, a new branch and worktree at the commit that
/// checkpoint recorded. The original session is not changed. The new session records its parent
/// and checkpoint (`status` shows forks). Prints the new session's id.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The session to fork (its id or a unique prefix).
    session: String,
    /// The checkpoint to fork at (0 is the initial state, N the state after step N).
    #[arg(long, value_name = "ID")]
    checkpoint: u64,
    /// Only create the fork (state and worktrees); run it later with `orchestra resume NEW_ID`.
    #[arg(long)]
    no_run: bool,
    /// Show model text as it arrives.
    #[arg(long)]
    stream: bool,
    /// Print only warnings, failures and the outcome.
    #[arg(long, short)]
    quiet: bool,
    /// Print the outcome as one JSON line on stdout (as `run --json` does) instead of text;
    /// with --no-run, the new session with the state and commits it starts from.
    #[arg(long)]
    json: bool,
    /// The session database (default: the project's, found from the current directory).
    #[arg(long, value_name = "PATH")]
    db: Option<PathBuf>,
    /// Raise the session's step limit (`limits.max_steps`) for this drive (as `resume` does).
    #[arg(long, value_name = "N")]
    max_steps: Option<u32>,
    /// Raise the session's token budget (`limits.max_tokens`) for this drive.
    #[arg(long, value_name = "N")]
    max_tokens: Option<u64>,
    /// Do not chat here: the new session pauses at its next interactive agent, to be joined
    /// with `orchestra attach ID` (without a terminal this is what happens anyway).
    #[arg(long)]
    detach: bool,
}

pub(crate) fn run(args: Args, ctx: &Ctx) -> io::Result<u8> {
    let db = match session_db(args.db.clone(), ctx)? {
        Ok(db) => db,
        Err(code) => return Ok(code),
    };
    let rt = runtime()?;
    rt.block_on(async move {
        let engine = match Engine::open(&db) {
            Ok(e) => e,
            Err(e) => return report_error(&e),
        };
        let code = replay(&engine, &args, &db).await;
        engine.close().await;
        code
    })
}

async fn replay(engine: &Engine, args: &Args, db: &std::path::Path) -> io::Result<u8> {
    // A fork that is to run needs its providers (an API key, a responses file): check before
    // the fork is made, so a configuration problem is bad input and leaves no fork behind.
    if !args.no_run {
        match engine.session_pipeline(&args.session).await {
            Ok((_, stored)) => {
                if let Some(problem) = providers_problem(&stored) {
                    writeln!(io::stderr(), "error: {problem}")?;
                    return Ok(exit::BAD_INPUT);
                }
            }
            Err(e) => return report_error(&e),
        }
    }
    let id = match engine.fork(&args.session, args.checkpoint).await {
        Ok(id) => id,
        Err(e) => return report_error(&e),
    };
    if args.no_run {
        if args.json {
            return print_fork(engine, &id, args.checkpoint).await;
        }
        let mut out = io::stdout().lock();
        let cwd = std::env::current_dir().unwrap_or_default();
        writeln!(
            out,
            "forked at checkpoint {}; run it with `orchestra resume {id}{}`",
            args.checkpoint,
            db_flag(db, &cwd)
        )?;
        writeln!(out, "session {id}")?;
        return Ok(exit::SUCCESS);
    }
    if !args.quiet && !args.json {
        writeln!(
            io::stderr(),
            "forked {} at checkpoint {} as {id}",
            args.session,
            args.checkpoint
        )?;
    }
    let progress = Arc::new(Progress::new(args.quiet || args.json));
    let mut opts = drive_options(progress.clone(), args.stream, ctrl_c());
    opts.limits = LimitOverrides {
        max_steps: args.max_steps,
        max_tokens: args.max_tokens,
    };
    // Interactive agents chat at this terminal; attach clients can join while it runs.
    let (local, no_human) = crate::human::local_human(args.detach);
    let host = crate::human::Host::start(db, &id, "orchestra replay", local, no_human);
    host.wire(&mut opts);
    let result = engine.resume(&id, &opts).await;
    host.finish(&result).await;
    match result {
        Ok(out) if args.json => report_json(engine, &out).await,
        Ok(out) => report_outcome(&out, progress.elapsed_ms(), db),
        Err(e) => report_error(&e),
    }
}

/// `--no-run --json`: the new session, its parent, and the state and `{repo: sha}` it starts
/// from, as one JSON line.
async fn print_fork(engine: &Engine, id: &str, step: u64) -> io::Result<u8> {
    let forked = async {
        let (rec, compiled) = engine.session_pipeline(id).await?;
        let sid = rec.id.clone();
        let pos = engine
            .store()
            .call(move |s| {
                Ok(restore(
                    &*s,
                    &sid,
                    step,
                    &compiled.topology,
                    &compiled.channels,
                ))
            })
            .await??;
        let shas = engine.shas_at(&rec, step).await?;
        Ok::<_, RuntimeError>((rec, pos.state, shas))
    };
    let (rec, state, shas) = match forked.await {
        Ok(v) => v,
        Err(e) => return report_error(&e),
    };
    let line = serde_json::json!({
        "session": rec.id, "status": rec.status.as_str(), "parent_session": rec.parent_session,
        "parent_checkpoint": rec.parent_checkpoint, "state": state, "repo_shas": shas,
    });
    writeln!(io::stdout().lock(), "{line}")?;
    Ok(exit::SUCCESS)
}
