//! What is known of sessions, as data: the rows of the list and the detail of one session
//! (usage by agent, cost, checkpoints, forks, children) — `orchestra status` (text and
//! `--json`), `show`, the MCP server and the web UI show them.

use std::collections::BTreeMap;

use std::collections::HashMap;

use orchestra_store::{
    CostTally, SessionFilter, SessionRecord, SessionStatus, SessionSummary, system_now_ms,
};
use serde_json::{Map, Value, json};

use crate::{Engine, RuntimeError, owner_is_dead};

/// The status to show: the stored one (`stopped` and `interrupted` are statuses of their own;
/// the store migrates release 0.1's `failed` rows to them), except that `running` without a
/// live driver (its lease expired, or its process is gone) is `interrupted` — or, for a session
/// of the queue (`queued`: it carries [`QUEUE_META`](orchestra_store::QUEUE_META)), `queued`:
/// its worker died and it waits for another to claim it.
pub fn shown_status(
    status: SessionStatus,
    lease_owner: Option<&str>,
    queued: bool,
) -> &'static str {
    let driven = lease_owner.is_some_and(|owner| !owner_is_dead(owner));
    match status {
        SessionStatus::Running | SessionStatus::Created if driven => status.as_str(),
        SessionStatus::Running | SessionStatus::Created if queued => "queued",
        SessionStatus::Running | SessionStatus::Created => "interrupted",
        s => s.as_str(),
    }
}

/// [`shown_status`] of a stored session at `now`.
pub fn record_status(rec: &SessionRecord, now: u64) -> &'static str {
    shown_status(
        rec.status,
        rec.lease_holder(now),
        rec.meta.contains_key(orchestra_store::QUEUE_META),
    )
}

/// The newest `limit` sessions of the database, newest first.
pub async fn summaries(engine: &Engine, limit: usize) -> Result<Vec<SessionSummary>, RuntimeError> {
    let filter = SessionFilter {
        limit: Some(limit),
        ..SessionFilter::default()
    };
    Ok(engine
        .store()
        .call(move |s| s.list_sessions(&filter))
        .await?)
}

/// The rows of `status --json`: the newest `limit` sessions (the MCP server's and the web UI's
/// list too).
pub async fn list_rows(engine: &Engine, limit: usize) -> Result<Vec<SessionRow>, RuntimeError> {
    Ok(summaries(engine, limit)
        .await?
        .iter()
        .map(SessionRow::from)
        .collect())
}

/// The children of `parent` among `all`, with the call node and step that ran each (from the
/// parent's meta), in call order.
pub fn children_of<'a>(
    parent: &SessionRecord,
    all: &'a [SessionSummary],
) -> Vec<(u64, &'a SessionSummary)> {
    let steps: HashMap<String, u64> = crate::child_calls(&parent.meta)
        .into_iter()
        .map(|(id, _, step)| (id, step))
        .collect();
    let mut out: Vec<(u64, &SessionSummary)> = all
        .iter()
        .filter(|s| s.parent_node.is_some() && s.parent_session.as_deref() == Some(&parent.id))
        .map(|s| (steps.get(&s.id).copied().unwrap_or(0), s))
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.created_at.cmp(&b.1.created_at)));
    out
}

/// A child as JSON: `{id, node, step, pipeline, status, tokens}`.
pub fn child_json(step: u64, s: &SessionSummary) -> Value {
    json!({
        "id": s.id, "node": s.parent_node, "step": step, "pipeline": s.pipeline,
        "status": s.status.as_str(), "tokens": s.tokens_in.saturating_add(s.tokens_out),
    })
}

/// A row of `status --json` (and of the MCP server's `list_sessions`).
#[derive(Debug, serde::Serialize, schemars::JsonSchema)]
pub struct SessionRow {
    /// The session id.
    id: String,
    /// Its `--session-name`.
    name: Option<String>,
    /// The pipeline's name.
    pipeline: String,
    /// `created`, `queued`, `running`, `paused`, `completed`, `failed`, `stopped` or
    /// `interrupted` (`running` without a live process is shown as `interrupted`, or as `queued`
    /// for a session of the queue: it waits for another worker).
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
    /// For a child session, the call node of `parent_session` that runs it.
    parent_node: Option<String>,
    /// Why it failed, stopped, paused or was interrupted.
    error: Option<String>,
}

impl From<&SessionSummary> for SessionRow {
    fn from(s: &SessionSummary) -> Self {
        SessionRow {
            id: s.id.clone(),
            name: s.name.clone(),
            pipeline: s.pipeline.clone(),
            status: shown_status(s.status, s.lease_owner.as_deref(), s.queued).to_owned(),
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
            parent_node: s.parent_node.clone(),
            error: s.error.clone(),
        }
    }
}

/// What one agent used over a session's runs.
#[derive(Debug, Default)]
pub struct Usage {
    pub runs: u64,
    pub tokens_in: u64,
    pub tokens_out: u64,
    pub cache_read: u64,
    pub cache_write: u64,
    pub cost: CostTally,
    pub tool_calls: u64,
    pub retries: u64,
    pub ms: u64,
    pub errors: u64,
}

/// What `status ID` shows of one session.
#[derive(Debug)]
pub struct Detail {
    pub rec: SessionRecord,
    pub status: &'static str,
    pub lease_owner: Option<String>,
    pub cps: Vec<orchestra_store::CheckpointInfo>,
    /// By node name, a `for_each` target's instances in item order (`count[2]` before
    /// `count[10]`).
    pub usage: Vec<(String, Usage)>,
    pub session_cost: CostTally,
    /// The command nodes of the stored pipeline (no model: their tokens are 0 by nature).
    pub commands: Vec<String>,
    pub forks: Vec<SessionSummary>,
    /// Its child sessions (run by call nodes), with the step that called each.
    pub children: Vec<(u64, SessionSummary)>,
}

/// The detail of session `id` (or a unique prefix of it).
pub async fn gather(engine: &Engine, id: &str) -> Result<Detail, RuntimeError> {
    let key = id.to_owned();
    let rec: SessionRecord = engine.store().call(move |s| s.find_session(&key)).await?;
    let sid = rec.id.clone();
    let (cps, runs, below) = engine
        .store()
        .call(move |s| {
            let cps = s.checkpoints(&sid)?;
            let runs = s.node_runs(&sid)?;
            let below: Vec<SessionSummary> = s
                .list_sessions(&SessionFilter::default())?
                .into_iter()
                .filter(|x| x.parent_session.as_deref() == Some(sid.as_str()))
                .collect();
            Ok((cps, runs, below))
        })
        .await?;
    let children: Vec<(u64, SessionSummary)> = children_of(&rec, &below)
        .into_iter()
        .map(|(step, c)| (step, c.clone()))
        .collect();
    let forks: Vec<SessionSummary> = below
        .into_iter()
        .filter(|x| x.parent_node.is_none())
        .collect();
    let now = system_now_ms();
    let lease_owner = rec.lease_holder(now).map(str::to_owned);
    let status = record_status(&rec, now);
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
    let mut usage: Vec<(String, Usage)> = usage.into_iter().collect();
    usage.sort_by(|a, b| orchestra_spec::task_order(&a.0).cmp(&orchestra_spec::task_order(&b.0)));
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
        children,
    })
}

impl Detail {
    /// `status ID --json`.
    pub fn json(&self) -> Value {
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
        } = self;
        json!({
            "id": rec.id, "name": rec.name, "pipeline": rec.pipeline, "pipeline_path": rec.pipeline_path,
            "status": status, "error": rec.error, "created_at": rec.created_at, "updated_at": rec.updated_at,
            "parent_session": rec.parent_session, "parent_checkpoint": rec.parent_checkpoint,
            "parent_node": rec.parent_node,
            "children": children.iter().map(|(step, c)| child_json(*step, c)).collect::<Vec<_>>(),
            "tokens": usage.iter().map(|(_, u)| u).fold(0u64, |t, u| t.saturating_add(u.tokens_in).saturating_add(u.tokens_out)),
            "inherited_tokens": crate::inherited_tokens(&rec.meta),
            "inputs": rec.inputs, "meta": shown_meta(&rec.meta), "lease_owner": lease_owner,
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
                "command": is_command(commands, n),
            })).collect::<Vec<_>>(),
            "forks": forks.iter().map(|f| json!({"id": f.id, "checkpoint": f.parent_checkpoint, "status": f.status.as_str()})).collect::<Vec<_>>(),
        })
    }
}

/// Whether node `n` is one of the `commands` nodes, or an instance of one (`count[3]`).
pub fn is_command(commands: &[String], n: &str) -> bool {
    commands.iter().any(|c| c == orchestra_spec::agent_of(n))
}

/// `status ID --json` of one session (the MCP server's too).
pub async fn detail_json(engine: &Engine, id: &str) -> Result<Value, RuntimeError> {
    Ok(gather(engine, id).await?.json())
}

/// A session's meta as it may be shown: the remotes of its repositories (`git.REPO.url`) with
/// any password masked.
fn shown_meta(meta: &Map<String, Value>) -> Map<String, Value> {
    let mut shown = meta.clone();
    if let Some(Value::Object(repos)) = shown.get_mut("git") {
        for repo in repos.values_mut() {
            if let Some(url) = repo.get_mut("url")
                && let Some(text) = url.as_str()
            {
                *url = Value::String(orchestra_git::shown_url(text));
            }
        }
    }
    shown
}
