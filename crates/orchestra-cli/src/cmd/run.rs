//! `orchestra run`: compile a pipeline, start a session, execute it step by step with a
//! checkpoint after every step, and print its progress and outcome.

use std::io::{self, Write as _};
use std::path::PathBuf;
use std::sync::Arc;

use serde_json::{Map, Value};

use crate::cli::Ctx;
use crate::drive::DriveArgs;
use crate::engine::{providers_problem, runtime};
use crate::load::{input_problem, load_pipeline};
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
    /// An input of the pipeline, as KEY=VALUE (repeatable), read as the input's `type` (an
    /// integer from `3`, arrays and objects as JSON); others use their defaults. A missing
    /// required input, a wrong type or a value outside `enum` is exit code 2.
    #[arg(long = "input", short = 'i', value_name = "KEY=VALUE", value_parser = crate::load::parse_key_value)]
    inputs: Vec<(String, String)>,
    /// A name for the session (shown by `status`).
    #[arg(long)]
    session_name: Option<String>,
    /// Run every agent on this provider (e.g. `anthropic`) instead of its own.
    #[arg(long)]
    provider: Option<String>,
    // `--db`: the help is shared by every command (`crate::store::db_help!`).
    #[arg(
        long,
        help = crate::store::db_help!("(default: `database:` of orchestra.yaml, else .orchestra/orchestra.db)"),
        value_name = "PATH|URL",
        env = "ORCHESTRA_DATABASE",
        hide_env_values = true,
    )]
    db: Option<PathBuf>,
    /// The id of the new session, chosen by the caller (`orchestra mcp` names the session
    /// before the run starts): letters, digits and `-`. Default: a new id.
    #[arg(long, hide = true, value_parser = parse_session_id)]
    session_id: Option<String>,
    /// Do not drive the session here: store it in the queue (status `queued`, with its inputs
    /// and the resolved pipeline), print its id on stdout and exit 0. `orchestra worker`
    /// processes sharing the database drive it (see docs/queue.md). The pipeline's providers
    /// are set up on the worker, so API keys are needed there, not here.
    #[arg(long, conflicts_with_all = [
        "session_id", "stream", "json", "detach", "events", "max_steps", "max_tokens",
        "max_cost", "human_stdin",
    ])]
    queue: bool,
    #[command(flatten)]
    drive: DriveArgs,
}

pub(crate) fn run(args: Args, ctx: &Ctx) -> io::Result<u8> {
    let compiled = match load_pipeline(&args.pipeline, args.provider.as_deref(), ctx)? {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    let given = compiled.inputs_with(&args.inputs);
    if let Some(code) = input_problem(&compiled, &given, false)? {
        return Ok(code);
    }
    let mut err = io::stderr().lock();
    let inputs: Map<String, Value> = given.values;
    if args.queue {
        drop(err);
        return enqueue(compiled, inputs, args.session_name, args.db, args.drive.quiet());
    }
    if let Some(problem) = providers_problem(&compiled) {
        writeln!(err, "error: {problem}")?;
        return Ok(exit::BAD_INPUT);
    }
    drop(err);
    let sinks = match args.drive.sinks()? {
        Ok(s) => s,
        Err(code) => return Ok(code),
    };
    let db = args.db.clone().unwrap_or_else(|| {
        crate::engine::project_database(&compiled.project_root, &compiled.project.database)
    });
    let db = match crate::engine::locate_db(&db)? {
        Ok(db) => db,
        Err(code) => return Ok(code),
    };
    let rt = runtime()?;
    rt.block_on(async move {
        let engine = match crate::store::engine(&db, &compiled.project_root) {
            Ok(e) => e,
            Err(e) => return crate::store::report(&e),
        };
        let id = args
            .session_id
            .unwrap_or_else(orchestra_runtime::new_session_id);
        let (e, compiled, name, new_id) = (&engine, Arc::new(compiled), args.session_name, id.clone());
        let code = args
            .drive
            .drive(sinks, &engine, &db, Some(&id), "orchestra run", move |opts| async move {
                e.run_as(new_id, compiled, inputs, name, &opts).await
            })
            .await;
        engine.close().await;
        code
    })
}

/// `run --queue`: stores the session as queued in the database and prints its id.
fn enqueue(
    compiled: orchestra_graph::Compiled,
    inputs: Map<String, Value>,
    name: Option<String>,
    db: Option<PathBuf>,
    quiet: bool,
) -> io::Result<u8> {
    let db = db.unwrap_or_else(|| {
        crate::engine::project_database(&compiled.project_root, &compiled.project.database)
    });
    let db = match crate::engine::locate_db(&db)? {
        Ok(db) => db,
        Err(code) => return Ok(code),
    };
    runtime()?.block_on(async move {
        let engine = match crate::store::engine(&db, &compiled.project_root) {
            Ok(e) => e,
            Err(e) => return crate::store::report(&e),
        };
        let queued = engine.enqueue(&compiled, inputs, name).await;
        engine.close().await;
        match queued {
            Ok(id) => {
                if !quiet {
                    writeln!(
                        io::stderr(),
                        "queued session {id}; an `orchestra worker` on this database drives it (`orchestra status {id}`)"
                    )?;
                }
                writeln!(io::stdout(), "{id}")?;
                Ok(exit::SUCCESS)
            }
            Err(e) => crate::engine::report_error(&e),
        }
    })
}

/// A `--session-id`: 1 to 64 ASCII letters, digits and `-` (it names files and sockets).
fn parse_session_id(s: &str) -> Result<String, String> {
    let ok = !s.is_empty()
        && s.len() <= 64
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    if ok {
        Ok(s.to_owned())
    } else {
        Err(format!(
            "`{s}` is not a session id (1 to 64 letters, digits and `-`)"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::parse_session_id;

    #[test]
    fn a_chosen_session_id_is_letters_digits_and_dashes() {
        assert_eq!(
            parse_session_id("20261203-124616-ee2d13").as_deref(),
            Ok("20261203-124616-ee2d13")
        );
        for bad in ["", "../x", "a b", "a/b", &"x".repeat(65)] {
            assert!(parse_session_id(bad).is_err(), "{bad}");
        }
    }
}
