//! `orchestra resume`: continue an interrupted, failed or paused session from its last
//! checkpoint, with the pipeline it was started with.

use std::io::{self, Write as _};
use std::path::PathBuf;

use orchestra_graph::{LoadOptions, load};
use orchestra_runtime::pipeline_hash;

use crate::cli::Ctx;
use crate::drive::DriveArgs;
use crate::engine::{providers_problem, runtime, session_db, sessions_root};

/// Continue an interrupted, failed or paused session from its last checkpoint.
///
/// Agents that had finished before an interruption are not run again. The session goes on with
/// the pipeline it was started with; if the pipeline's files changed since, a warning says so.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The session id, or a unique prefix of it or of its random tail (`7e2c63`).
    session: String,
    /// The session database: a path, `sqlite:PATH` or `postgres://USER@HOST:PORT/DB` (password
    /// in the URL or PGPASSWORD) (default: the project's, found from the current directory).
    #[arg(long, value_name = "PATH|URL", env = "ORCHESTRA_DATABASE", hide_env_values = true)]
    db: Option<PathBuf>,
    #[command(flatten)]
    drive: DriveArgs,
}

pub(crate) fn run(args: Args, ctx: &Ctx) -> io::Result<u8> {
    let db = match session_db(args.db.clone(), ctx)? {
        Ok(db) => db,
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
        if let Ok((rec, stored)) = engine.session_pipeline(&args.session).await {
            warn_if_changed(&stored, &rec.pipeline_hash, &ctx);
            if let Some(problem) = providers_problem(&stored) {
                let _ = writeln!(io::stderr(), "error: {problem}");
                engine.close().await;
                return Ok(crate::exit::BAD_INPUT);
            }
            full_id = Some(rec.id);
        }
        let (e, wanted) = (&engine, args.session.clone());
        let code = args
            .drive
            .drive(sinks, &engine, &db, full_id.as_deref(), "orchestra resume", move |opts| async move {
                e.resume(&wanted, &opts).await
            })
            .await;
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
