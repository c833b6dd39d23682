//! `orchestra report`: a session rendered for people — header, the graph with the path taken,
//! the steps with their answers, tool calls, routing and commits, human turns, output files and
//! forks — as Markdown (with a Mermaid graph), a self-contained HTML file (with an inline SVG
//! graph) or JSON (documented in docs/ARCHITECTURE.md, "report --format json"). The report
//! itself is `orchestra_runtime::views::report` (the web UI serves it too).

use std::io::{self, Write as _};
use std::path::PathBuf;

use orchestra_runtime::views::report;

use crate::cli::Ctx;
use crate::engine::{report_error, runtime, session_db, sessions_root};
use crate::exit;

/// The formats of a report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Format {
    /// Markdown with a Mermaid graph of the path taken.
    Md,
    /// One self-contained HTML file (inline CSS and SVG; loads nothing from outside).
    Html,
    /// One JSON object (a stable, versioned shape).
    Json,
}

/// Render a session for people: the pipeline, inputs, outcome, duration and tokens; the graph
/// with the path taken; each step's node runs with their answers, tool calls (arguments and a
/// result excerpt) and routing; human turns; git commits per step with their diffstat; the
/// output files written; and the sessions forked from it.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The session id (or a unique prefix of it).
    session: String,
    /// The format.
    #[arg(long, value_enum, default_value = "md")]
    format: Format,
    /// Write the report to this file (overwriting it) instead of stdout.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    output: Option<PathBuf>,
    // `--db`: the help is shared by every command (`crate::store::db_help!`).
    #[arg(
        long,
        help = crate::store::db_help!("(default: the project's, found from the current directory)"),
        value_name = "PATH|URL",
        env = "ORCHESTRA_DATABASE",
        hide_env_values = true,
    )]
    db: Option<PathBuf>,
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
        let r = report::gather(&engine, &args.session).await;
        engine.close().await;
        let report = match r {
            Ok(report) => report,
            Err(e) => return report_error(&e),
        };
        let format = match args.format {
            Format::Md => report::Format::Md,
            Format::Html => report::Format::Html,
            Format::Json => report::Format::Json,
        };
        let text = report::render(&report, format).map_err(io::Error::other)?;
        match &args.output {
            None => io::stdout().lock().write_all(text.as_bytes())?,
            Some(path) => {
                let path = ctx.cwd.join(path);
                if let Err(e) = std::fs::write(&path, &text) {
                    writeln!(io::stderr(), "error: cannot write {}: {e}", path.display())?;
                    return Ok(exit::INTERNAL);
                }
            }
        }
        Ok(exit::SUCCESS)
    })
}
