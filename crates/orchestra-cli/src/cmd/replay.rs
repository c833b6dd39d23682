//! `orchestra replay`: fork a session at one of its checkpoints — the new session's state is
//! that checkpoint's and its repositories' worktrees sit at that checkpoint's commits on new
//! branches — then continue it (unless `--no-run`), with the pipeline of that checkpoint or an
//! edited one (`--pipeline`), and optionally edited state (`--set`).

use std::io::{self, Write as _};
use std::path::PathBuf;

use orchestra_runtime::{Edit, Engine, RuntimeError};

use crate::cli::Ctx;
use crate::drive::DriveArgs;
use crate::edit::{EditArgs, print_check, warn_if_changed};
use crate::engine::{sessions_root, db_flag, providers_problem, report_error, runtime, session_db};
use crate::exit;

/// Fork a session at a checkpoint and continue from there.
///
/// The new session starts with the state of checkpoint ID (`orchestra status SESSION` lists
/// them) and, for every writable repository, a new branch and worktree at the commit that
/// checkpoint recorded. The original session is not changed. The new session records its parent
/// and checkpoint (`status` shows forks). Prints the new session's id.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The session to fork: its id, or a unique prefix of it or of its random tail (`7e2c63`).
    session: String,
    /// The checkpoint to fork at (0 is the initial state, N the state after step N).
    #[arg(long, value_name = "ID")]
    checkpoint: u64,
    /// Only create the fork (state and worktrees); run it later with `orchestra resume NEW_ID`.
    #[arg(long)]
    no_run: bool,
    // `--db`: the help is shared by every command (`crate::store::db_help!`).
    #[arg(
        long,
        help = crate::store::db_help!("(default: the project's, found from the current directory)"),
        value_name = "PATH|URL",
        env = "ORCHESTRA_DATABASE",
        hide_env_values = true,
    )]
    db: Option<PathBuf>,
    #[command(flatten)]
    edit: EditArgs,
    /// How the new session is driven (not with --no-run; `--json` with --no-run prints the new
    /// session with the state and commits it starts from).
    #[command(flatten)]
    drive: DriveArgs,
}

pub(crate) fn run(args: Args, ctx: &Ctx) -> io::Result<u8> {
    let db = match session_db(args.db.clone(), ctx)? {
        Ok(db) => db,
        Err(code) => return Ok(code),
    };
    let rt = runtime()?;
    let edit = match args.edit.edit(ctx)? {
        Ok(e) => e,
        Err(code) => return Ok(code),
    };
    rt.block_on(async move {
        let engine = match crate::store::engine(&db, &sessions_root(&db, &ctx.cwd)) {
            Ok(e) => e,
            Err(e) => return crate::store::report(&e),
        };
        let code = replay(&engine, &args, &edit, &db, ctx).await;
        engine.close().await;
        code
    })
}

async fn replay(
    engine: &Engine,
    args: &Args,
    edit: &Edit,
    db: &std::path::Path,
    ctx: &Ctx,
) -> io::Result<u8> {
    // A fork that is to run needs its providers (an API key, a responses file): check before
    // the fork is made, so a configuration problem is bad input and leaves no fork behind.
    let sinks = if args.no_run {
        None
    } else {
        match args.drive.sinks()? {
            Ok(s) => Some(s),
            Err(code) => return Ok(code),
        }
    };
    match engine.session_pipeline(&args.session).await {
        Ok((rec, stored)) => {
            if edit.pipeline.is_none() {
                warn_if_changed(&stored, &rec.pipeline_hash, ctx, "replaying");
            }
            if !args.no_run
                && edit.pipeline.is_none()
                && let Some(problem) = providers_problem(&stored)
            {
                writeln!(io::stderr(), "error: {problem}")?;
                return Ok(exit::BAD_INPUT);
            }
        }
        Err(e) => return report_error(&e),
    }
    if !edit.is_empty() {
        match engine
            .check_edit(&args.session, Some(args.checkpoint), edit)
            .await
        {
            Ok(check) => print_check(&check, edit, ctx)?,
            Err(e) => return report_error(&e),
        }
    }
    let id = match engine
        .fork_edited(&args.session, args.checkpoint, edit)
        .await
    {
        Ok(id) => id,
        Err(e) => return report_error(&e),
    };
    let Some(sinks) = sinks else {
        if args.drive.json() {
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
    };
    if !args.drive.quiet() {
        writeln!(
            io::stderr(),
            "forked {} at checkpoint {} as {id}",
            args.session,
            args.checkpoint
        )?;
    }
    let fork = id.clone();
    args.drive
        .drive(sinks, engine, db, Some(&id), "orchestra replay", |opts| async move {
            engine.resume(&fork, &opts).await
        })
        .await
}

/// `--no-run --json`: the new session, its parent, and the state and `{repo: sha}` it starts
/// from, as one JSON line.
async fn print_fork(engine: &Engine, id: &str, step: u64) -> io::Result<u8> {
    let forked = async {
        let (rec, _) = engine.session_pipeline(id).await?;
        let state = engine.state_at(&rec.id, step).await?;
        let shas = engine.shas_at(&rec, step).await?;
        Ok::<_, RuntimeError>((rec, state, shas))
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
