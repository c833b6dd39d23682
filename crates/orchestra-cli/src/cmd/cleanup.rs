//! `orchestra cleanup`: remove the git branches and worktrees of finished sessions older than a
//! threshold, and prune git's records of worktrees whose directories are gone.

use std::io::{self, Write as _};
use std::path::PathBuf;
use std::time::Duration;

use orchestra_runtime::{CleanupOptions, CleanupReport, Kept, Removed};
use orchestra_spec::fmt_duration;

use crate::cli::Ctx;
use crate::engine::{sessions_root, db_path, report_error, runtime};
use crate::exit;

/// Remove the branches and worktrees of finished sessions.
///
/// A session is removed when it completed, failed or was interrupted, and nothing happened in it
/// for longer than --older-than. Running sessions (another process holds their lease) and
/// paused ones are never touched, nor is any branch outside the configured prefix, nor a
/// worktree with uncommitted changes (a warning names it; its branch stays too). The
/// sessions' records stay in the database (`status` still shows them); each removed branch is
/// printed with its commit, so it can be restored with `git branch NAME SHA`. For a repository
/// with `url:`, the session's branches on the remote are deleted too (from any machine; each
/// only while it is still at the commit listed), and --dry-run lists them.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Only sessions idle for longer than this (`7d`, `12h`, `30m`, `0s` for all).
    #[arg(long, value_name = "DURATION", default_value = "7d", value_parser = parse_duration)]
    older_than: Duration,
    /// List what would be removed, and remove nothing.
    #[arg(long)]
    dry_run: bool,
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

pub(crate) fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s.trim()).map_err(|e| format!("{e}; write e.g. `7d`, `12h` or `30m`"))
}

pub(crate) fn run(args: Args, ctx: &Ctx) -> io::Result<u8> {
    let db = match db_path(args.db.clone(), ctx)? {
        Ok(db) => db,
        Err(code) => return Ok(code),
    };
    if !crate::store::is_server(&db) && !db.exists() {
        writeln!(
            io::stdout(),
            "nothing to clean up (no database at {})",
            db.display()
        )?;
        return Ok(exit::SUCCESS);
    }
    let rt = runtime()?;
    rt.block_on(async move {
        let engine = match crate::store::engine(&db, &sessions_root(&db, &ctx.cwd)) {
            Ok(e) => e,
            Err(e) => return crate::store::report(&e),
        };
        let opts = CleanupOptions {
            older_than: args.older_than,
            dry_run: args.dry_run,
        };
        let result = engine.cleanup(&opts).await;
        engine.close().await;
        match result {
            Ok(report) => print(&report, &args),
            Err(e) => report_error(&e),
        }
    })
}

fn print(report: &CleanupReport, args: &Args) -> io::Result<u8> {
    let mut out = io::stdout().lock();
    let verb = if args.dry_run {
        "would remove"
    } else {
        "removed"
    };
    let (mut sessions, mut worktrees, mut branches, mut kept, mut failed) = (0, 0, 0, 0, 0);
    for s in &report.sessions {
        let why = match &s.kept {
            None => None,
            Some(Kept::Running { owner }) => Some(format!("running ({owner})")),
            Some(Kept::Paused) => Some("paused".to_owned()),
            Some(Kept::TooRecent { idle }) => Some(format!(
                "idle {} < {}",
                fmt_duration(*idle),
                fmt_duration(args.older_than)
            )),
        };
        if let Some(why) = why {
            kept += 1;
            writeln!(out, "kept {} ({}): {why}", s.session, s.pipeline)?;
            continue;
        }
        sessions += 1;
        writeln!(
            out,
            "{verb} session {} ({}, {}, idle {}):",
            s.session,
            s.pipeline,
            s.status.as_str(),
            fmt_duration(s.idle)
        )?;
        for r in &s.removed {
            match r {
                Removed::Worktree { path, .. } => {
                    worktrees += 1;
                    writeln!(out, "  worktree {}", path.display())?;
                }
                Removed::Branch { name, sha } => {
                    branches += 1;
                    writeln!(out, "  branch   {name} (at {sha})")?;
                }
                Removed::StaleRecord { name } => {
                    writeln!(out, "  stale worktree record {name}")?;
                }
                Removed::RemoteBranch { url, name, sha } => {
                    branches += 1;
                    writeln!(out, "  branch   {name} (at {sha}) on {url}")?;
                }
            }
        }
        if let Some(e) = &s.error {
            failed += 1;
            writeln!(out, "  error: {e}")?;
        }
    }
    for (repo, r) in &report.pruned {
        if let Removed::StaleRecord { name } = r {
            writeln!(
                out,
                "{} stale worktree record {name} in {}",
                if args.dry_run {
                    "would prune"
                } else {
                    "pruned"
                },
                repo.display()
            )?;
        }
    }
    writeln!(
        out,
        "{}: {sessions} session(s), {worktrees} worktree(s), {branches} branch(es){}; {kept} kept",
        if args.dry_run { "dry run" } else { "done" },
        if args.dry_run {
            " would be removed"
        } else {
            " removed"
        },
    )?;
    Ok(if failed > 0 {
        exit::INTERNAL
    } else {
        exit::SUCCESS
    })
}
