//! `orchestra resume`: continue an interrupted, failed or paused session from its last
//! checkpoint, with the pipeline it was started with or an edited one (`--pipeline`), and
//! optionally edited state (`--set`).

use std::io::{self, Write as _};
use std::path::PathBuf;

use crate::cli::Ctx;
use crate::drive::DriveArgs;
use crate::edit::{EditArgs, print_check, warn_if_changed};
use crate::engine::{providers_problem, report_error, runtime, session_db, sessions_root};

/// Continue an interrupted, failed or paused session from its last checkpoint.
///
/// Agents that had finished before an interruption are not run again. The session goes on with
/// the pipeline it was started with; if the pipeline's files changed since, a warning says so.
/// With `--pipeline FILE` it goes on with the edited pipeline instead (which the session keeps
/// from then on), and `--set FIELD=JSON` edits its state first; the edit is a checkpoint of its
/// own, and the step that was cut short runs again under it.
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
    #[command(flatten)]
    edit: EditArgs,
    #[command(flatten)]
    drive: DriveArgs,
}

pub(crate) fn run(mut args: Args, ctx: &Ctx) -> io::Result<u8> {
    let db = match session_db(args.db.clone(), ctx)? {
        Ok(db) => db,
        Err(code) => return Ok(code),
    };
    let edit = match args.edit.edit(ctx)? {
        Ok(e) => e,
        Err(code) => return Ok(code),
    };
    let sinks = match args.drive.sinks()? {
        Ok(s) => s,
        Err(code) => return Ok(code),
    };
    let rt = runtime()?;
    let ctx = ctx.clone();
    rt.block_on(async move {
        let engine = match crate::store::engine(&db, &sessions_root(&db, &ctx.cwd)) {
            Ok(e) => e,
            Err(e) => return crate::store::report(&e),
        };
        let mut full_id = None;
        let mut hand_back = None;
        if let Ok((rec, stored)) = engine.session_pipeline(&args.session).await {
            if edit.pipeline.is_none() {
                warn_if_changed(&stored, &rec.pipeline_hash, &ctx, "resuming");
            }
            if edit.pipeline.is_none()
                && let Some(problem) = providers_problem(&stored)
            {
                let _ = writeln!(io::stderr(), "error: {problem}");
                engine.close().await;
                return Ok(crate::exit::BAD_INPUT);
            }
            // An answer to a paused session of the queue (`orchestra mcp`): the human's step
            // here, then the session goes back to the workers.
            if args.drive.human_stdin() && edit.is_empty() {
                match crate::queue::human_turn_limit(&engine, &rec, &stored).await {
                    Ok(Some(limit)) => {
                        args.drive.limit_steps(limit);
                        hand_back = Some(limit);
                    }
                    Ok(None) => {}
                    Err(e) => {
                        let code = report_error(&e);
                        engine.close().await;
                        return code;
                    }
                }
            }
            full_id = Some(rec.id);
        }
        if !edit.is_empty() {
            match engine.check_edit(&args.session, None, &edit).await {
                Ok(check) => print_check(&check, &edit, &ctx)?,
                Err(e) => {
                    let code = report_error(&e);
                    engine.close().await;
                    return code;
                }
            }
        }
        let (e, wanted, edit) = (&engine, args.session.clone(), &edit);
        let code = args
            .drive
            .drive(sinks, &engine, &db, full_id.as_deref(), "orchestra resume", move |opts| async move {
                e.resume_edited(&wanted, edit, &opts).await
            })
            .await;
        let code = match (hand_back, &full_id) {
            (Some(limit), Some(id)) => match crate::queue::hand_back(&engine, id, limit).await {
                Ok(true) => Ok(crate::exit::SUCCESS),
                Ok(false) => code,
                Err(e) => report_error(&e),
            },
            _ => code,
        };
        engine.close().await;
        code
    })
}
