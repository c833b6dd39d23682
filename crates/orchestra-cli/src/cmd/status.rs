//! `orchestra status`: the sessions of the database, or one session in detail (checkpoints,
//! per-agent usage, forks, branches).

use std::collections::BTreeMap;
use std::io::{self, Write as _};
use std::path::PathBuf;

use orchestra_runtime::Engine;
use orchestra_runtime::owner_is_dead;
use orchestra_store::{
    CostTally, SessionFilter, SessionRecord, SessionStatus, SessionSummary, system_now_ms,
};
use serde_json::{Value, json};

use crate::cli::Ctx;
use crate::cost::{cost_cell, total_cost};
use crate::engine::{sessions_root, db_path, report_error, runtime, secs, session_db};

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
/// `interrupted`: resume it with `orchestra resume ID`.
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
    /// The session database: a path or `sqlite:PATH` (default: the project's, found from the
    /// current directory).
    #[arg(long, value_name = "PATH")]
    db: Option<PathBuf>,
}

/// The status to show: the stored one (`stopped` and `interrupted` are statuses of their own;
/// the store migrates release 0.1's `failed` rows to them), except that `running` without a
/// live driver (its lease expired, or its process is gone) is `interrupted`.
fn shown_status(status: SessionStatus, lease_owner: Option<&str>) -> &'static str {
    match (status, lease_owner) {
        (SessionStatus::Running | SessionStatus::Created, None) => "interrupted",
        (SessionStatus::Running | SessionStatus::Created, Some(owner)) if owner_is_dead(owner) => {
            "interrupted"
        }
        (s, _) => s.as_str(),
    }
}

/// A time in UTC, labelled so: `2026-11-21 05:17:14 UTC`.
fn when(ms: u64) -> String {
    let secs = ms / 1000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let id = orchestra_runtime::date_of_days(days);
    format!(
        "{id} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

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
    if !db.exists() {
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

/// The newest `limit` sessions of the database, newest first.
async fn sessions(
    engine: &Engine,
    limit: usize,
) -> Result<Vec<SessionSummary>, orchestra_runtime::RuntimeError> {
    let filter = SessionFilter {
        limit: Some(limit),
        ..SessionFilter::default()
    };
    Ok(engine
        .store()
        .call(move |s| s.list_sessions(&filter))
        .await?)
}

/// The rows of `status --json`: the newest `limit` sessions (the MCP server's list too).
pub(crate) async fn list_rows(
    engine: &Engine,
    limit: usize,
) -> Result<Vec<SessionRow>, orchestra_runtime::RuntimeError> {
    Ok(sessions(engine, limit)
        .await?
        .iter()
        .map(SessionRow::from)
        .collect())
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
    for s in &sessions {
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
            s.id,
            s.pipeline,
            shown_status(s.status, s.lease_owner.as_deref()),
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

/// A row of `status --json` (and of the MCP server's `list_sessions`).
#[derive(Debug, serde::Serialize, schemars::JsonSchema)]
pub(crate) struct SessionRow {
    /// The session id.
    id: String,
    /// Its `--session-name`.
    name: Option<String>,
    /// The pipeline's name.
    pipeline: String,
    /// `created`, `running`, `paused`, `completed`, `failed`, `stopped` or `interrupted`
    /// (`running` without a live process is shown as `interrupted`).
    status: String,
    /// Milliseconds since the Unix epoch.
    created_at: u64,
    /// Milliseconds since the Unix epoch.
    updated_at: u64,
    /// Super-steps made.
    steps: u64,
    /// Checkpoints stored.
    checkpoints: u64,
    /// Prompt tokens of its own agents.
    tokens_in: u64,
    /// Answer tokens of its own agents.
    tokens_out: u64,
    /// The known cost in US dollars; `null` when no run's cost is known.
    cost_usd: Option<f64>,
    /// Whether `cost_usd` leaves out runs of models without a price.
    cost_partial: bool,
    /// The session it was forked from.
    parent_session: Option<String>,
    /// The checkpoint of the parent it was forked at.
    parent_checkpoint: Option<u64>,
    /// Why it failed, stopped, paused or was interrupted.
    error: Option<String>,
}

impl From<&SessionSummary> for SessionRow {
    fn from(s: &SessionSummary) -> Self {
        SessionRow {
            id: s.id.clone(),
            name: s.name.clone(),
            pipeline: s.pipeline.clone(),
            status: shown_status(s.status, s.lease_owner.as_deref()).to_owned(),
            created_at: s.created_at,
            updated_at: s.updated_at,
            steps: s.steps,
            checkpoints: s.checkpoints,
            tokens_in: s.tokens_in,
            tokens_out: s.tokens_out,
            cost_usd: s.cost.usd(),
            cost_partial: s.cost.is_partial(),
            parent_session: s.parent_session.clone(),
            parent_checkpoint: s.parent_checkpoint,
            error: s.error.clone(),
        }
    }
}

#[derive(Default)]
struct Usage {
    runs: u64,
    tokens_in: u64,
    tokens_out: u64,
    cache_read: u64,
    cache_write: u64,
    cost: CostTally,
    tool_calls: u64,
    retries: u64,
    ms: u64,
    errors: u64,
}

/// What `status ID` shows of one session.
struct Detail {
    rec: SessionRecord,
    status: &'static str,
    lease_owner: Option<String>,
    cps: Vec<orchestra_store::CheckpointInfo>,
    usage: BTreeMap<String, Usage>,
    session_cost: CostTally,
    /// The command nodes of the stored pipeline (no model: their tokens are 0 by nature).
    commands: Vec<String>,
    forks: Vec<SessionSummary>,
}

async fn gather(engine: &Engine, id: &str) -> Result<Detail, orchestra_runtime::RuntimeError> {
    let key = id.to_owned();
    let rec: SessionRecord = engine.store().call(move |s| s.find_session(&key)).await?;
    let sid = rec.id.clone();
    let (cps, runs, forks) = engine
        .store()
        .call(move |s| {
            let cps = s.checkpoints(&sid)?;
            let runs = s.node_runs(&sid)?;
            let forks: Vec<SessionSummary> = s
                .list_sessions(&SessionFilter::default())?
                .into_iter()
                .filter(|x| x.parent_session.as_deref() == Some(sid.as_str()))
                .collect();
            Ok((cps, runs, forks))
        })
        .await?;
    let now = system_now_ms();
    let lease_owner = rec.lease_holder(now).map(str::to_owned);
    let status = shown_status(rec.status, lease_owner.as_deref());
    let mut usage: BTreeMap<String, Usage> = BTreeMap::new();
    let mut session_cost = CostTally::default();
    for r in &runs {
        let u = usage.entry(r.node.clone()).or_default();
        // Saturating: token counts are what the providers' servers reported.
        u.runs += 1;
        u.tokens_in = u.tokens_in.saturating_add(r.tokens_in);
        u.tokens_out = u.tokens_out.saturating_add(r.tokens_out);
        u.cache_read = u.cache_read.saturating_add(r.cache_read_tokens);
        u.cache_write = u.cache_write.saturating_add(r.cache_write_tokens);
        u.cost.add(r.cost_usd);
        session_cost.add(r.cost_usd);
        u.tool_calls = u.tool_calls.saturating_add(r.tool_calls);
        u.retries += u64::from(r.retries);
        u.ms = u.ms.saturating_add(r.duration_ms);
        u.errors += u64::from(r.error.is_some());
    }
    // Command nodes are marked, when the stored pipeline can be read.
    let commands: Vec<String> = match engine.session_pipeline(&rec.id).await {
        Ok((_, c)) => c
            .agents
            .iter()
            .filter(|a| a.is_command())
            .map(|a| a.name.clone())
            .collect(),
        Err(_) => Vec::new(),
    };
    Ok(Detail {
        rec,
        status,
        lease_owner,
        cps,
        usage,
        session_cost,
        commands,
        forks,
    })
}

impl Detail {
    fn json(&self) -> Value {
        let Detail {
            rec,
            status,
            lease_owner,
            cps,
            usage,
            session_cost,
            commands,
            forks,
        } = self;
        json!({
            "id": rec.id, "name": rec.name, "pipeline": rec.pipeline, "pipeline_path": rec.pipeline_path,
            "status": status, "error": rec.error, "created_at": rec.created_at, "updated_at": rec.updated_at,
            "parent_session": rec.parent_session, "parent_checkpoint": rec.parent_checkpoint,
            "tokens": usage.values().fold(0u64, |t, u| t.saturating_add(u.tokens_in).saturating_add(u.tokens_out)),
            "inherited_tokens": orchestra_runtime::inherited_tokens(&rec.meta),
            "inputs": rec.inputs, "meta": rec.meta, "lease_owner": lease_owner,
            "checkpoints": cps.iter().map(|c| json!({
                "step": c.step, "parent_step": c.parent_step, "nodes": c.nodes,
                "snapshot": c.has_snapshot, "repo_change": c.has_repo_shas, "created_at": c.created_at,
            })).collect::<Vec<_>>(),
            "cost_usd": session_cost.usd(), "cost_partial": session_cost.is_partial(),
            "usage": usage.iter().map(|(n, u)| json!({
                "node": n, "runs": u.runs, "tokens_in": u.tokens_in, "tokens_out": u.tokens_out,
                "cache_read_tokens": u.cache_read, "cache_write_tokens": u.cache_write,
                "cost_usd": u.cost.usd(), "cost_partial": u.cost.is_partial(),
                "tool_calls": u.tool_calls, "retries": u.retries, "duration_ms": u.ms, "errors": u.errors,
                "command": commands.contains(n),
            })).collect::<Vec<_>>(),
            "forks": forks.iter().map(|f| json!({"id": f.id, "checkpoint": f.parent_checkpoint, "status": f.status.as_str()})).collect::<Vec<_>>(),
        })
    }
}

/// `status ID --json` of one session (the MCP server's too).
pub(crate) async fn detail_json(
    engine: &Engine,
    id: &str,
) -> Result<Value, orchestra_runtime::RuntimeError> {
    Ok(gather(engine, id).await?.json())
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
    let own = usage
        .values()
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
        let nodes = if c.nodes.is_empty() {
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
        let shown = if commands.contains(n) {
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
        assert_eq!(shown_status(SessionStatus::Stopped, None), "stopped");
        assert_eq!(shown_status(SessionStatus::Interrupted, None), "interrupted");
        assert_eq!(shown_status(SessionStatus::Failed, None), "failed");
        assert_eq!(
            shown_status(SessionStatus::Running, None),
            "interrupted",
            "no live driver"
        );
    }
}
