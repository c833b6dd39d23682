//! `orchestra status`: the sessions of the database, or one session in detail (checkpoints,
//! per-agent usage, forks, branches).

use std::io::{self, Write as _};
use std::path::PathBuf;

use orchestra_runtime::Engine;
use orchestra_runtime::views::sessions::{
    Detail, gather, shown_status, summaries as sessions,
};
use orchestra_store::SessionStatus;
use serde_json::Value;

use crate::cli::Ctx;
use crate::cost::{cost_cell, total_cost};
use crate::engine::{sessions_root, db_path, report_error, runtime, secs, session_db};

pub(crate) use orchestra_runtime::views::sessions::{SessionRow, detail_json, list_rows};

/// List sessions, or show one session's checkpoints and per-agent usage.
///
/// Costs come from the model prices (`prices:` and the built-in ones) at the time each agent
/// ran; a run of a model without a known price has an unknown cost (`cost unknown`, `null` in
/// JSON), and a total that leaves such runs out says it is partial.
///
/// The list's NOTE says why a session failed, stopped or paused. TOKENS are what a session's
/// own agents used: a fork's do not include what its parent spent before the fork (shown beside
/// them in the session's detail).
///
/// A session marked `running` whose process is gone (its lease expired) is shown as
/// `interrupted`: resume it with `orchestra resume ID` (a session of the queue is taken over by
/// an `orchestra worker` instead). `queued` sessions wait for a worker (`run --queue`).
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// A session id (or a unique prefix of it or of its random tail, `7e2c63`) to show in detail.
    session: Option<String>,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
    /// Show at most this many sessions (newest first).
    #[arg(long, default_value_t = 50)]
    limit: usize,
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

pub(crate) use orchestra_runtime::views::when;

pub(crate) fn run(args: Args, ctx: &Ctx) -> io::Result<u8> {
    let db = match &args.session {
        // One session: it must exist, so a missing database is "no such session".
        Some(_) => session_db(args.db.clone(), ctx)?,
        None => db_path(args.db.clone(), ctx)?,
    };
    let db = match db {
        Ok(db) => db,
        Err(code) => return Ok(code),
    };
    if !crate::store::is_server(&db) && !db.exists() {
        if args.json {
            writeln!(io::stdout(), "[]")?;
        } else {
            writeln!(
                io::stdout(),
                "no sessions yet (no database at {})",
                db.display()
            )?;
        }
        return Ok(crate::exit::SUCCESS);
    }
    let rt = runtime()?;
    rt.block_on(async move {
        let engine = match crate::store::engine(&db, &sessions_root(&db, &ctx.cwd)) {
            Ok(e) => e,
            Err(e) => return crate::store::report(&e),
        };
        let r = match &args.session {
            None => list(&engine, &args).await,
            Some(id) => detail(&engine, id, args.json).await,
        };
        engine.close().await;
        match r {
            Ok(()) => Ok(crate::exit::SUCCESS),
            Err(e) => report_error(&e),
        }
    })
}

async fn list(engine: &Engine, args: &Args) -> Result<(), orchestra_runtime::RuntimeError> {
    let sessions = sessions(engine, args.limit).await?;
    let mut out = io::stdout().lock();
    if args.json {
        let rows: Vec<SessionRow> = sessions.iter().map(SessionRow::from).collect();
        let _ = writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(&rows).unwrap_or_default()
        );
        return Ok(());
    }
    if sessions.is_empty() {
        let _ = writeln!(out, "no sessions yet");
        return Ok(());
    }
    let _ = writeln!(
        out,
        "{:<24} {:<16} {:<11} {:<23} {:>5} {:>6} {:>9} {:>9}  NOTE",
        "SESSION", "PIPELINE", "STATUS", "STARTED", "STEPS", "CKPTS", "TOKENS", "COST"
    );
    for (depth, s) in &crate::children::tree(sessions) {
        let mut note = String::new();
        if let (Some(p), Some(c)) = (&s.parent_session, s.parent_checkpoint) {
            note.push_str(&format!("fork of {p} @ {c}"));
        }
        if let Some(n) = &s.name {
            if !note.is_empty() {
                note.push_str("; ");
            }
            note.push_str(n);
        }
        // Why it failed (an agent's error, or the reason of the pipeline's `FAIL`), stopped,
        // paused or was interrupted: the stored note.
        if s.status != SessionStatus::Completed
            && let Some(e) = &s.error
        {
            if !note.is_empty() {
                note.push_str("; ");
            }
            note.push_str(&first_line(e, 100));
        }
        if s.cost.is_partial() {
            if !note.is_empty() {
                note.push_str("; ");
            }
            note.push_str(&format!(
                "cost partial: {} of {} runs without a price",
                s.cost.unpriced_runs,
                s.cost.unpriced_runs + s.cost.priced_runs
            ));
        }
        let _ = writeln!(
            out,
            "{:<24} {:<16} {:<11} {:<23} {:>5} {:>6} {:>9} {:>9}  {}",
            crate::children::id_cell(*depth, &s.id),
            s.pipeline,
            shown_status(s.status, s.lease_owner.as_deref(), s.queued),
            when(s.created_at),
            s.steps,
            s.checkpoints,
            s.tokens_in.saturating_add(s.tokens_out),
            cost_cell(&s.cost),
            note
        );
    }
    Ok(())
}

/// The first line of `s`, cut to `max` characters with `…`.
fn first_line(s: &str, max: usize) -> String {
    let line = s.lines().next().unwrap_or("");
    if line.chars().count() <= max {
        return line.to_owned();
    }
    let cut: String = line.chars().take(max).collect();
    format!("{cut}…")
}

async fn detail(
    engine: &Engine,
    id: &str,
    as_json: bool,
) -> Result<(), orchestra_runtime::RuntimeError> {
    let d = gather(engine, id).await?;
    let mut out = io::stdout().lock();
    if as_json {
        let _ = writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(&d.json()).unwrap_or_default()
        );
        return Ok(());
    }
    let Detail {
        rec,
        status,
        lease_owner,
        cps,
        usage,
        session_cost,
        commands,
        forks,
        children,
    } = d;
    let _ = writeln!(out, "session   {}", rec.id);
    if let Some(n) = &rec.name {
        let _ = writeln!(out, "name      {n}");
    }
    let _ = writeln!(out, "pipeline  {} ({})", rec.pipeline, rec.pipeline_path);
    let _ = writeln!(out, "status    {status}");
    if let Some(e) = &rec.error {
        // A failure is an error; a stop at a limit, a pause or an interruption is a note.
        let label = if rec.status == SessionStatus::Failed {
            "error"
        } else {
            "note"
        };
        let _ = writeln!(out, "{label:<9} {e}");
    }
    if matches!(status, "failed" | "interrupted") {
        let _ = writeln!(out, "next      orchestra resume {}", rec.id);
    }
    if let Some(inputs) = rec.inputs.as_object().filter(|m| !m.is_empty()) {
        let shown: Vec<String> = inputs
            .iter()
            .map(|(k, v)| {
                format!(
                    "{k}={}",
                    v.as_str().map_or_else(|| v.to_string(), str::to_owned)
                )
            })
            .collect();
        let _ = writeln!(out, "inputs    {}", shown.join(", "));
    }
    let shown_cost = match session_cost.usd() {
        Some(_) => total_cost(&session_cost),
        None => "unknown (no price is known for its models)".to_owned(),
    };
    let _ = writeln!(out, "cost      {shown_cost}");
    let _ = writeln!(out, "started   {}", when(rec.created_at));
    let _ = writeln!(out, "updated   {}", when(rec.updated_at));
    if let (Some(p), Some(c)) = (&rec.parent_session, rec.parent_checkpoint) {
        let _ = writeln!(out, "forked    from {p} at checkpoint {c}");
    }
    if let (Some(p), Some(n)) = (&rec.parent_session, &rec.parent_node) {
        let _ = writeln!(out, "called    by {p} (call node `{n}`)");
    }
    let own = usage
        .iter()
        .map(|(_, u)| u)
        .fold(0u64, |t, u| t.saturating_add(u.tokens_in).saturating_add(u.tokens_out));
    let _ = writeln!(
        out,
        "spent     {}",
        crate::summary::tokens(own, orchestra_runtime::inherited_tokens(&rec.meta))
    );
    if let Some(owner) = &lease_owner {
        let _ = writeln!(out, "driven by {owner}");
    }
    if let Some(Value::Object(git)) = rec.meta.get("git") {
        let removed = rec
            .meta
            .contains_key(orchestra_runtime::CLEANUP_META);
        for (repo, g) in git {
            let (branch, worktree) = (
                g["branch"].as_str().unwrap_or("?"),
                g["worktree"].as_str().unwrap_or("?"),
            );
            let _ = if removed {
                writeln!(
                    out,
                    "branch    {repo}: {branch} (removed by `orchestra cleanup`)"
                )
            } else {
                writeln!(out, "branch    {repo}: {branch} (worktree {worktree})")
            };
        }
    }
    let _ = writeln!(out, "\ncheckpoints ({}):", cps.len());
    for c in &cps {
        let mut flags = Vec::new();
        if c.has_snapshot {
            flags.push("snapshot");
        }
        if c.has_repo_shas {
            flags.push("repo change");
        }
        let nodes = if let Some(edit) = crate::edit::edit_label(&rec.meta, c.step) {
            edit
        } else if c.nodes.is_empty() {
            "(start)".to_owned()
        } else {
            c.nodes.join(", ")
        };
        let flags = if flags.is_empty() {
            String::new()
        } else {
            format!("  [{}]", flags.join(", "))
        };
        let _ = writeln!(out, "  {:>4}  {nodes}{flags}", c.step);
    }
    let _ = writeln!(out, "\nusage by agent:");
    let _ = writeln!(
        out,
        "  {:<24} {:>4} {:>10} {:>10} {:>10} {:>11} {:>6} {:>7} {:>9} {:>6} {:>12}",
        "AGENT",
        "RUNS",
        "TOKENS IN",
        "TOKENS OUT",
        "CACHE READ",
        "CACHE WRITE",
        "TOOLS",
        "RETRIES",
        "TIME",
        "ERRORS",
        "COST"
    );
    for (n, u) in &usage {
        let shown = if orchestra_runtime::views::sessions::is_command(&commands, n) {
            format!("{n} (command)")
        } else {
            n.clone()
        };
        let _ = writeln!(
            out,
            "  {:<24} {:>4} {:>10} {:>10} {:>10} {:>11} {:>6} {:>7} {:>9} {:>6} {:>12}",
            shown,
            u.runs,
            u.tokens_in,
            u.tokens_out,
            u.cache_read,
            u.cache_write,
            u.tool_calls,
            u.retries,
            secs(u.ms),
            u.errors,
            cost_cell(&u.cost)
        );
    }
    if !children.is_empty() {
        let _ = writeln!(out, "\nchild sessions (call nodes):");
        for (step, c) in &children {
            let _ = writeln!(out, "  {}", crate::children::child_line(*step, c));
        }
    }
    if !forks.is_empty() {
        let _ = writeln!(out, "\nforks:");
        for f in &forks {
            let _ = writeln!(
                out,
                "  {} at checkpoint {} ({})",
                f.id,
                f.parent_checkpoint.unwrap_or(0),
                f.status.as_str()
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stopped_and_interrupted_sessions_show_their_status() {
        assert_eq!(shown_status(SessionStatus::Stopped, None, false), "stopped");
        assert_eq!(
            shown_status(SessionStatus::Interrupted, None, false),
            "interrupted"
        );
        assert_eq!(shown_status(SessionStatus::Failed, None, false), "failed");
        assert_eq!(
            shown_status(SessionStatus::Running, None, false),
            "interrupted",
            "no live driver"
        );
    }

    #[test]
    fn a_queue_session_without_a_live_worker_shows_queued() {
        let (running, remote) = (SessionStatus::Running, Some("1@another-machine"));
        assert_eq!(shown_status(running, remote, true), "running", "live lease");
        assert_eq!(shown_status(running, None, true), "queued", "lease expired");
        assert_eq!(shown_status(SessionStatus::Queued, None, true), "queued");
        assert_eq!(shown_status(SessionStatus::Paused, None, true), "paused");
        assert_eq!(shown_status(running, None, false), "interrupted", "not of the queue");
    }
}
