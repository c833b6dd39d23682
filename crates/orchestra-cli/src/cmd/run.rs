//! `orchestra run`: compile a pipeline, start a session, execute it step by step with a
//! checkpoint after every step, and print its progress and outcome.

use std::io::{self, Write as _};
use std::path::PathBuf;
use std::sync::Arc;

use orchestra_runtime::Engine;
use serde_json::{Map, Value};

use crate::cli::Ctx;
use crate::engine::{
    Progress, ctrl_c, drive_options, providers_problem, report_error, report_json, report_outcome,
    runtime,
};
use crate::load::{load_pipeline, unknown_input};
use crate::exit;

/// Compile and run a pipeline; every step is checkpointed to the session database.
///
/// Prints a line per step and per agent (time, tokens, tool calls) to stderr, then the outcome
/// and the session id. Ctrl-C stops after the running agents are cut off and leaves a
/// resumable session (`orchestra resume ID`).
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The pipeline file.
    pipeline: PathBuf,
    /// An input of the pipeline, as KEY=VALUE (repeatable); others use their defaults.
    #[arg(long = "input", short = 'i', value_name = "KEY=VALUE", value_parser = crate::load::parse_key_value)]
    inputs: Vec<(String, String)>,
    /// A name for the session (shown by `status`).
    #[arg(long)]
    session_name: Option<String>,
    /// Run every agent on this provider (e.g. `anthropic`) instead of its own.
    #[arg(long)]
    provider: Option<String>,
    /// Show model text as it arrives.
    #[arg(long)]
    stream: bool,
    /// Print only warnings, failures and the outcome.
    #[arg(long, short)]
    quiet: bool,
    /// The session database (default: `database:` of orchestra.yaml, else .orchestra/orchestra.db).
    #[arg(long, value_name = "PATH")]
    db: Option<PathBuf>,
    /// Print the outcome as one JSON line on stdout (session, status, steps, tokens,
    /// checkpoints, number of messages, final state) instead of text.
    #[arg(long)]
    json: bool,
    /// Stop this drive after N steps in all (overrides `limits.max_steps`; the session keeps its
    /// own limit, so `orchestra resume` goes on from there).
    #[arg(long, value_name = "N")]
    max_steps: Option<u32>,
    /// Stop this drive once N tokens are spent (overrides `limits.max_tokens` for this drive).
    #[arg(long, value_name = "N")]
    max_tokens: Option<u64>,
    /// Do not chat here: the session pauses at its first interactive agent, to be joined with
    /// `orchestra attach ID` (without a terminal this is what happens anyway).
    #[arg(long)]
    detach: bool,
}

pub(crate) fn run(args: Args, ctx: &Ctx) -> io::Result<u8> {
    let compiled = match load_pipeline(&args.pipeline, args.provider.as_deref(), ctx)? {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    let given = compiled.inputs_with(&args.inputs);
    if let Some(k) = given.unknown.first() {
        return unknown_input(&compiled, k);
    }
    let mut err = io::stderr().lock();
    if !given.missing.is_empty() {
        writeln!(
            err,
            "error: missing input(s): {}; give them with --input KEY=VALUE",
            given.missing.join(", ")
        )?;
        return Ok(exit::BAD_INPUT);
    }
    let inputs: Map<String, Value> = given.values;
    if let Some(problem) = providers_problem(&compiled) {
        writeln!(err, "error: {problem}")?;
        return Ok(exit::BAD_INPUT);
    }
    drop(err);
    let db = args
        .db
        .clone()
        .unwrap_or_else(|| compiled.project_root.join(&compiled.project.database));
    let rt = runtime()?;
    rt.block_on(async move {
        let engine = match Engine::open(&db) {
            Ok(e) => e,
            Err(e) => return report_error(&e),
        };
        let progress = Arc::new(Progress::new(args.quiet || args.json));
        let mut opts = drive_options(progress.clone(), args.stream, ctrl_c());
        opts.limits = orchestra_runtime::session::LimitOverrides {
            max_steps: args.max_steps,
            max_tokens: args.max_tokens,
        };
        let id = orchestra_runtime::new_session_id();
        let (local, no_human) = crate::human::local_human(args.detach);
        let host = crate::human::Host::start(&db, &id, "orchestra run", local, no_human);
        host.wire(&mut opts);
        let result = engine
            .run_as(id, Arc::new(compiled), inputs, args.session_name, &opts)
            .await;
        host.finish(&result).await;
        let code = match result {
            Ok(out) if args.json => report_json(&engine, &out).await,
            Ok(out) => report_outcome(&out, progress.elapsed_ms(), &db),
            Err(e) => report_error(&e),
        };
        engine.close().await;
        code
    })
}
