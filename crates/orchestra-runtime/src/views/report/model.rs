//! The report's data, gathered once from the store and the session's repositories into a typed
//! model that the Markdown, HTML and JSON renderings all draw from. Its JSON form is the
//! `report --format json` shape (docs/ARCHITECTURE.md, "report --format json").

use std::path::Path;

use serde::Serialize;
use serde_json::Value;

use crate::Engine;
use orchestra_store::{ChatMessageRecord, NodeRunRecord, SessionFilter, SessionRecord};

use crate::views::show::{RouteView, ToolView, attach_turns, run_record, step_views};

/// The version of the JSON shape; bumped when a field changes meaning or goes away.
pub const JSON_VERSION: u32 = 1;

/// How much of a tool's result the report keeps (the store keeps up to 64 KiB; `show --node`
/// prints it all).
pub const RESULT_EXCERPT: usize = 2000;

/// Everything a report shows.
#[derive(Debug, Serialize)]
pub struct Report {
    pub version: u32,
    pub session: Header,
    pub graph: Graph,
    pub steps: Vec<Step>,
    pub human_turns: Vec<Chat>,
    pub repos: Vec<Repo>,
    pub outputs: Vec<String>,
    pub forks: Vec<Fork>,
}

/// The header: what ran, with what, how it ended and what it used.
#[derive(Debug, Serialize)]
pub struct Header {
    pub id: String,
    pub name: Option<String>,
    pub pipeline: String,
    pub pipeline_path: String,
    pub inputs: Value,
    pub status: String,
    /// Why it failed, stopped, paused or was interrupted.
    pub note: Option<String>,
    /// Milliseconds since the Unix epoch.
    pub started_at: u64,
    /// From the start to the last change of status.
    pub duration_ms: u64,
    pub tokens_in: u64,
    pub tokens_out: u64,
    /// Input tokens read from / written to the providers' prompt caches (parts of `tokens_in`).
    pub cache_read_tokens: u64,
    pub cache_write_tokens: u64,
    /// US dollars over the runs whose cost is known; `None` when none is.
    pub cost_usd: Option<f64>,
    pub tool_calls: u64,
    pub parent_session: Option<String>,
    pub parent_checkpoint: Option<u64>,
}

/// The pipeline's graph and the path taken through it.
#[derive(Debug, Serialize)]
pub struct Graph {
    /// `START`, the agents in declaration order, `END`.
    pub nodes: Vec<GraphNode>,
    pub edges: Vec<GraphEdge>,
    /// The Mermaid flowchart with the path highlighted.
    pub mermaid: String,
}

#[derive(Debug, Serialize)]
pub struct GraphNode {
    pub name: String,
    /// How many times it ran (0: not on the path).
    pub runs: u64,
}

#[derive(Debug, Serialize)]
pub struct GraphEdge {
    pub from: String,
    pub to: String,
    pub label: String,
    pub conditional: bool,
    /// How many times it fired.
    pub taken: u64,
}

/// One step: its node runs, the routing after it and the commits it made.
#[derive(Debug, Serialize)]
pub struct Step {
    pub step: u64,
    pub nodes: Vec<String>,
    /// When its first run started, in milliseconds from the session's start (`None`: no run
    /// was recorded, as for a chat that paused).
    pub at_ms: Option<u64>,
    /// The longest run of the step (they run in parallel).
    pub duration_ms: u64,
    pub runs: Vec<Run>,
    pub routes: Vec<RouteView>,
    pub commits: Vec<Commit>,
}

/// One attempt of a node run.
#[derive(Debug, Serialize)]
pub struct Run {
    pub node: String,
    pub run_index: u32,
    pub attempt: u32,
    pub status: String,
    pub error: Option<String>,
    pub duration_ms: u64,
    pub tokens_in: u64,
    pub tokens_out: u64,
    /// US dollars; `None` when unknown (a model without a price).
    pub cost_usd: Option<f64>,
    /// The text of the run's last answer (`None` without a trace).
    pub answer: Option<String>,
    /// Tool calls, with results cut at [`RESULT_EXCERPT`] bytes (`result_bytes` is the size).
    pub tool_calls: Vec<ToolView>,
    /// The MCP servers that could not start for this run: its agent got stand-in tools and a
    /// line in its system prompt saying so. Left out of the JSON when there are none.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub mcp_unavailable: Vec<McpUnavailable>,
}

/// An MCP server a run went on without.
#[derive(Debug, Serialize)]
pub struct McpUnavailable {
    pub server: String,
    /// Why it could not start (as the system prompt told the agent).
    pub why: String,
}

/// An interactive agent's conversation with a person.
#[derive(Debug, Serialize)]
pub struct Chat {
    pub node: String,
    pub run_index: u32,
    pub messages: Vec<ChatLine>,
}

#[derive(Debug, Serialize)]
pub struct ChatLine {
    pub turn: u32,
    pub role: String,
    pub content: String,
}

/// A session repository with its branch.
#[derive(Debug, Serialize)]
pub struct Repo {
    pub name: String,
    pub branch: String,
    /// Whether the branch is gone (`orchestra cleanup`); its commits are then not listed.
    pub removed: bool,
}

/// A commit of a session branch with its diffstat.
#[derive(Debug, Serialize)]
pub struct Commit {
    pub repo: String,
    pub sha: String,
    pub subject: String,
    pub agent: Option<String>,
    pub files_changed: usize,
    pub insertions: usize,
    pub deletions: usize,
    pub files: Vec<FileStat>,
}

#[derive(Debug, Serialize)]
pub struct FileStat {
    pub path: String,
    pub insertions: usize,
    pub deletions: usize,
}

/// A session forked from this one.
#[derive(Debug, Serialize)]
pub struct Fork {
    pub id: String,
    pub checkpoint: Option<u64>,
    pub status: String,
}

/// The text blocks of an answer, joined.
fn answer_text(answer: &Value) -> String {
    let texts: Vec<&str> = answer
        .as_array()
        .into_iter()
        .flatten()
        .filter(|b| b.get("type").and_then(Value::as_str) == Some("text"))
        .filter_map(|b| b.get("text").and_then(Value::as_str))
        .collect();
    texts.join("\n")
}

/// The input and output tokens of a step's runs.
pub fn step_tokens(s: &Step) -> (u64, u64) {
    s.runs.iter().fold((0, 0), |(i, o), r| {
        (
            i.saturating_add(r.tokens_in),
            o.saturating_add(r.tokens_out),
        )
    })
}

/// `s` cut at a char boundary at most `max` bytes in.
fn excerpt(s: &mut String, max: usize) {
    if s.len() > max {
        let mut at = max;
        while !s.is_char_boundary(at) {
            at -= 1;
        }
        s.truncate(at);
    }
}

/// Gathers the report of session `key` (an id or a unique prefix of it).
pub async fn gather(engine: &Engine, key: &str) -> Result<Report, crate::RuntimeError> {
    let (rec, compiled): (SessionRecord, _) = engine.session_pipeline(key).await?;
    let sid = rec.id.clone();
    let (cps, runs, trace, forks) = engine
        .store()
        .call(move |s| {
            let forks: Vec<_> = s
                .list_sessions(&SessionFilter::default())?
                .into_iter()
                .filter(|x| x.parent_session.as_deref() == Some(sid.as_str()))
                .collect();
            Ok((
                s.checkpoints(&sid)?,
                s.node_runs(&sid)?,
                s.trace(&sid)?,
                forks,
            ))
        })
        .await?;
    let last = cps.last().map_or(0, |c| c.step);
    let mut views = step_views(&cps, &runs, &trace, last, None);
    let mut chats: Vec<Chat> = Vec::new();
    for agent in &compiled.topology.agents {
        let (sid, node) = (rec.id.clone(), agent.clone());
        let msgs: Vec<ChatMessageRecord> = engine
            .store()
            .call(move |s| s.messages(&sid, &node))
            .await?;
        for m in msgs {
            let line = ChatLine {
                turn: m.turn,
                role: m.role,
                content: m.content,
            };
            match chats
                .iter_mut()
                .find(|c| c.node == m.node && c.run_index == m.run_index)
            {
                Some(c) => c.messages.push(line),
                None => chats.push(Chat {
                    node: m.node,
                    run_index: m.run_index,
                    messages: vec![line],
                }),
            }
        }
    }

    let graph = super::graph::graph_of(&compiled, rec.status, &cps, &runs, &trace.routes);

    let (repos, mut commits) = super::commits::git(&rec).await;
    let mut steps = Vec::new();
    for v in &mut views {
        for r in &mut v.runs {
            attach_turns(r, &trace.turns, &trace.tools);
        }
        let at_ms = runs
            .iter()
            .filter(|r| r.step == v.step)
            .map(|r| r.started_at.saturating_sub(rec.created_at))
            .min();
        let step_runs: Vec<Run> = v
            .runs
            .drain(..)
            .map(|r| Run {
                cost_usd: run_record(&runs, &r).and_then(|x| x.cost_usd),
                mcp_unavailable: r
                    .system
                    .as_deref()
                    .map(crate::harness::unavailable_servers)
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(server, why)| McpUnavailable { server, why })
                    .collect(),
                answer: r.turns.last().map(|t| answer_text(&t.answer)),
                tool_calls: r
                    .turns
                    .into_iter()
                    .flat_map(|t| t.tool_calls)
                    .map(|mut c| {
                        excerpt(&mut c.result, RESULT_EXCERPT);
                        c.result_cut = (c.result.len() as u64) < c.result_bytes;
                        c
                    })
                    .collect(),
                node: r.node,
                run_index: r.run_index,
                attempt: r.attempt,
                status: r.status,
                error: r.error,
                duration_ms: r.duration_ms,
                tokens_in: r.tokens_in,
                tokens_out: r.tokens_out,
            })
            .collect();
        let step = v.step;
        let (mine, rest): (Vec<_>, Vec<_>) = commits.drain(..).partition(|(s, _)| *s == Some(step));
        commits = rest;
        steps.push(Step {
            step,
            nodes: v.nodes.clone(),
            at_ms,
            duration_ms: step_runs.iter().map(|r| r.duration_ms).max().unwrap_or(0),
            runs: step_runs,
            routes: std::mem::take(&mut v.routes),
            commits: mine.into_iter().map(|(_, c)| c).collect(),
        });
    }

    let outputs = rec
        .meta
        .get("last_drive")
        .and_then(|d| d.get("outputs"))
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(|p| {
                    orchestra_spec::display_path(Path::new(p), &compiled.project_root)
                        .display()
                        .to_string()
                })
                .collect()
        })
        .unwrap_or_default();
    let sum =
        |f: fn(&NodeRunRecord) -> u64| runs.iter().fold(0u64, |acc, r| acc.saturating_add(f(r)));
    let session = Header {
        id: rec.id.clone(),
        name: rec.name.clone(),
        pipeline: rec.pipeline.clone(),
        pipeline_path: rec.pipeline_path.clone(),
        inputs: rec.inputs.clone(),
        status: rec.status.as_str().to_owned(),
        note: rec.error.clone(),
        started_at: rec.created_at,
        duration_ms: rec.updated_at.saturating_sub(rec.created_at),
        tokens_in: sum(|r| r.tokens_in),
        tokens_out: sum(|r| r.tokens_out),
        cache_read_tokens: sum(|r| r.cache_read_tokens),
        cache_write_tokens: sum(|r| r.cache_write_tokens),
        cost_usd: runs
            .iter()
            .filter_map(|r| r.cost_usd)
            .fold(None, |acc, c| Some(acc.unwrap_or(0.0) + c)),
        tool_calls: sum(|r| r.tool_calls),
        parent_session: rec.parent_session.clone(),
        parent_checkpoint: rec.parent_checkpoint,
    };
    Ok(Report {
        version: JSON_VERSION,
        session,
        graph,
        steps,
        human_turns: chats,
        repos,
        outputs,
        forks: forks
            .into_iter()
            .map(|f| Fork {
                id: f.id,
                checkpoint: f.parent_checkpoint,
                status: f.status.as_str().to_owned(),
            })
            .collect(),
    })
}
