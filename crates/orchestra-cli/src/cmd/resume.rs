//! `orchestra resume`: continue an interrupted, failed or paused session from its last
//! checkpoint, with the pipeline it was started with.

use std::io::{self, Write as _};
use std::path::PathBuf;
use std::sync::Arc;

use orchestra_graph::{LoadOptions, load};
use orchestra_runtime::session::pipeline_hash;
use orchestra_runtime::{Engine, LimitOverrides};

use crate::cli::Ctx;
use crate::engine::{
    Progress, ctrl_c, drive_options, providers_problem, report_error, report_json, report_outcome,
    runtime, session_db,
};

/// Continue an interrupted, failed or paused session from its last checkpoint.
///
/// Agents that had finished before an interruption are not run again. The session goes on with
/// the pipeline it was started with; if the pipeline's files changed since, a warning says so.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The session id (or a unique prefix of it).
    session: String,
    /// Show model text as it arrives.
    #[arg(long)]
    stream: bool,
    /// Print only warnings, failures and the outcome.
    #[arg(long, short)]
    quiet: bool,
    /// The session database (default: the project's, found from the current directory).
    #[arg(long, value_name = "PATH")]
    db: Option<PathBuf>,
    /// Print the outcome as one JSON line on stdout (as `run --json` does) instead of text.
    #[arg(long)]
    json: bool,
    /// Raise the session's step limit (`limits.max_steps`) for this drive, e.g. after it
    /// stopped there.
    #[arg(long, value_name = "N")]
    max_steps: Option<u32>,
    /// Raise the session's token budget (`limits.max_tokens`) for this drive.
    #[arg(long, value_name = "N")]
    max_tokens: Option<u64>,
    /// Do not chat here: the session pauses at its next interactive agent, to be joined with
    /// `orchestra attach ID` (without a terminal this is what happens anyway).
    #[arg(long)]
    detach: bool,
}

pub(crate) fn run(args: Args, ctx: &Ctx) -> io::Result<u8> {
    let db = match session_db(args.db.clone(), ctx)? {
        Ok(db) => db,
        Err(code) => return Ok(code),
    };
    let rt = runtime()?;
    let ctx = ctx.clone();
    rt.block_on(async move {
        let engine = match Engine::open(&db) {
            Ok(e) => e,
            Err(e) => return report_error(&e),
        };
        let mut full_id = None;
        if let Ok((rec, stored)) = engine.session_pipeline(&args.session).await {
            warn_if_changed(&stored, &rec.pipeline_hash, &ctx);
            if let Some(problem) = providers_problem(&stored) {
                let _ = writeln!(io::stderr(), "error: {problem}");
                engine.close().await;
                return Ok(crate::exit::BAD_INPUT);
            }
            full_id = Some(rec.id);
        }
        let progress = Arc::new(Progress::new(args.quiet || args.json));
        let mut opts = drive_options(progress.clone(), args.stream, ctrl_c());
        opts.limits = LimitOverrides {
            max_steps: args.max_steps,
            max_tokens: args.max_tokens,
        };
        // Interactive agents chat at this terminal; attach clients can join while it runs.
        let host = full_id.map(|id| {
            let (local, no_human) = crate::human::local_human(args.detach);
            crate::human::Host::start(&db, &id, "orchestra resume", local, no_human)
        });
        if let Some(h) = &host {
            h.wire(&mut opts);
        }
        let result = engine.resume(&args.session, &opts).await;
        if let Some(h) = host {
            h.finish(&result).await;
        }
        let code = match result {
            Ok(out) if args.json => report_json(&engine, &out).await,
            Ok(out) => report_outcome(&out, progress.elapsed_ms(), &db),
            Err(e) => report_error(&e),
        };
        engine.close().await;
        code
    })
}

/// Warns when the pipeline file (or a file it uses) no longer compiles to what the session ran.
fn warn_if_changed(stored: &orchestra_graph::Compiled, hash: &str, ctx: &Ctx) {
    let opts = LoadOptions {
        cwd: ctx.cwd.clone(),
        home: ctx.home.clone(),
        ..LoadOptions::default()
    };
    let now = load(&stored.pipeline_path, &opts)
        .ok()
        .map(|c| pipeline_hash(&c));
    if now.as_deref() != Some(hash) {
        let _ = writeln!(
            io::stderr(),
            "warning: `{}` or a file it uses changed since this session started; resuming with the pipeline as it was",
            stored.pipeline_path.display()
        );
    }
}
