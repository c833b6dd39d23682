//! What a session did, as data: the state at a checkpoint, each step's node runs and routing,
//! and for one node its runs with the prompt as sent, the answers, the tool calls and the
//! routing — `orchestra show` (text and `--json`, whose shape is documented in
//! docs/ARCHITECTURE.md, "show --json", and versioned), the MCP server and the web UI.

use serde::Serialize;
use serde_json::Value;

use orchestra_store::{
    ModelTurnRecord, NodeRunRecord, RouteRecord, SessionRecord, SessionTrace, ToolCallRecord,
};

use crate::{Engine, RuntimeError};

/// The version of the `--json` shape; bumped when a field changes meaning or goes away.
pub const JSON_VERSION: u32 = 1;

/// One attempt of one node run, with its usage (absent for an attempt that paused) and trace.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct RunView {
    pub step: u64,
    pub node: String,
    pub run_index: u32,
    pub attempt: u32,
    pub status: String,
    pub error: Option<String>,
    pub duration_ms: u64,
    pub tokens_in: u64,
    pub tokens_out: u64,
    pub tool_calls: u64,
    /// The system prompt of the run's first turn (`None` without a trace).
    pub system: Option<String>,
    pub turns: Vec<TurnView>,
}

/// One model turn with its tool calls.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct TurnView {
    pub turn: u32,
    pub model: String,
    pub messages: Value,
    pub answer: Value,
    pub stop: String,
    pub tokens_in: u64,
    pub tokens_out: u64,
    pub duration_ms: u64,
    pub tool_calls: Vec<ToolView>,
}

/// One tool call.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct ToolView {
    pub idx: u32,
    pub call_id: String,
    pub tool: String,
    pub args: String,
    pub args_bytes: u64,
    pub args_cut: bool,
    pub result: String,
    pub result_bytes: u64,
    pub result_cut: bool,
    pub is_error: bool,
    pub duration_ms: u64,
}

impl From<&ToolCallRecord> for ToolView {
    fn from(t: &ToolCallRecord) -> Self {
        ToolView {
            idx: t.idx,
            call_id: t.call_id.clone(),
            tool: t.tool.clone(),
            args: t.args.clone(),
            args_bytes: t.args_bytes,
            args_cut: t.args_cut(),
            result: t.result.clone(),
            result_bytes: t.result_bytes,
            result_cut: t.result_cut(),
            is_error: t.is_error,
            duration_ms: t.duration_ms,
        }
    }
}

/// A step: its nodes, their runs and where the session went after it.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct StepView {
    pub step: u64,
    pub nodes: Vec<String>,
    pub runs: Vec<RunView>,
    pub routes: Vec<RouteView>,
}

/// A routing decision.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct RouteView {
    pub from: String,
    pub condition: Option<String>,
    pub decision: Option<String>,
    pub targets: Vec<String>,
    pub loop_round: Option<u32>,
    pub loop_max: Option<u32>,
}

impl From<&RouteRecord> for RouteView {
    fn from(r: &RouteRecord) -> Self {
        RouteView {
            from: r.from.clone(),
            condition: r.condition.clone(),
            decision: r.decision.clone(),
            targets: r.targets.clone(),
            loop_round: r.loop_round,
            loop_max: r.loop_max,
        }
    }
}

/// Everything `show` prints.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct Shown {
    pub version: u32,
    pub session: Value,
    pub checkpoint: u64,
    pub checkpoints: Vec<u64>,
    pub state: Value,
    /// Whether the session has a trace (sessions of older releases have none).
    pub traced: bool,
    pub node: Option<String>,
    pub steps: Vec<StepView>,
    /// Child sessions run by call nodes: `{id, node, step, pipeline, status, tokens}`.
    pub children: Vec<Value>,
}

/// What `show` shows of `session` at `checkpoint` (default: the last), with `node`'s runs in
/// full when given; or (inside) a problem with the arguments to report as bad input. The MCP
/// server shows sessions with it too.
pub async fn shown(
    engine: &Engine,
    session: &str,
    checkpoint: Option<u64>,
    node: Option<&str>,
) -> Result<Result<Shown, String>, RuntimeError> {
    let key = session.to_owned();
    let rec: SessionRecord = engine.store().call(move |s| s.find_session(&key)).await?;
    let sid = rec.id.clone();
    let (cps, runs, trace, below) = engine
        .store()
        .call(move |s| {
            let below: Vec<orchestra_store::SessionSummary> = s
                .list_sessions(&orchestra_store::SessionFilter::default())?
                .into_iter()
                .filter(|x| x.parent_node.is_some() && x.parent_session.as_deref() == Some(&sid))
                .collect();
            Ok((
                s.checkpoints(&sid)?,
                s.node_runs(&sid)?,
                s.trace(&sid)?,
                below,
            ))
        })
        .await?;
    let children: Vec<Value> = super::sessions::children_of(&rec, &below)
        .into_iter()
        .map(|(step, c)| super::sessions::child_json(step, c))
        .collect();
    let steps: Vec<u64> = cps.iter().map(|c| c.step).collect();
    let Some(&last) = steps.last() else {
        return Ok(Err(format!(
            "session {} has no checkpoint yet: nothing to show",
            rec.id
        )));
    };
    let checkpoint = checkpoint.unwrap_or(last);
    if !steps.contains(&checkpoint) {
        return Ok(Err(format!(
            "session {} has no checkpoint {checkpoint} (its checkpoints: {})",
            rec.id,
            ranges(&steps)
        )));
    }
    if let Some(node) = node {
        let ran: Vec<&str> = runs.iter().map(|r| r.node.as_str()).collect();
        if !ran.iter().any(|r| shows(node, r)) {
            let agents = match engine.session_pipeline(&rec.id).await {
                Ok((_, compiled)) => compiled.topology.agents.clone(),
                Err(_) => Vec::new(),
            };
            let mut names: Vec<&str> = agents.iter().map(String::as_str).collect();
            names.extend(ran.iter().copied());
            names.sort_unstable();
            names.dedup();
            let mut msg = if agents.iter().any(|a| a == node) {
                format!("node `{node}` did not run in session {}", rec.id)
            } else {
                format!("session {} has no node `{node}`", rec.id)
            };
            if let Some(hint) = orchestra_spec::did_you_mean(node, names.iter().copied()) {
                msg.push_str(&format!("; {hint}"));
            }
            msg.push_str(&format!("; its nodes: {}", names.join(", ")));
            return Ok(Err(msg));
        }
    }
    let state = engine.state_at(&rec.id, checkpoint).await?;
    let traced = !(trace.turns.is_empty() && trace.routes.is_empty());
    let views = step_views(&cps, &runs, &trace, checkpoint, node);
    let mut session = serde_json::json!({
        "id": rec.id, "name": rec.name, "pipeline": rec.pipeline,
        "pipeline_path": rec.pipeline_path, "status": rec.status.as_str(), "error": rec.error,
        "inputs": rec.inputs, "created_at": rec.created_at,
        "parent_session": rec.parent_session, "parent_checkpoint": rec.parent_checkpoint,
        "parent_node": rec.parent_node,
    });
    if let Value::Object(m) = &mut session {
        m.retain(|_, v| !v.is_null());
    }
    Ok(Ok(Shown {
        version: JSON_VERSION,
        session,
        checkpoint,
        checkpoints: steps,
        state: Value::Object(state),
        traced,
        node: node.map(str::to_owned),
        steps: views,
        children,
    }))
}

/// Whether `--node wanted` shows the runs of node `ran`: its own, and every instance of a
/// `for_each` target (`researcher` shows `researcher[0]`, `researcher[1]`, ...).
fn shows(wanted: &str, ran: &str) -> bool {
    wanted == ran || orchestra_spec::agent_of(ran) == wanted
}

/// `0-4, 7` for `[0, 1, 2, 3, 4, 7]`.
pub fn ranges(steps: &[u64]) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < steps.len() {
        let mut j = i;
        while j + 1 < steps.len() && steps[j + 1] == steps[j] + 1 {
            j += 1;
        }
        out.push(if i == j {
            steps[i].to_string()
        } else {
            format!("{}-{}", steps[i], steps[j])
        });
        i = j + 1;
    }
    out.join(", ")
}

/// The steps up to `checkpoint` with their runs (only `node`'s, when given, with their turns)
/// and routing.
pub fn step_views(
    cps: &[orchestra_store::CheckpointInfo],
    runs: &[NodeRunRecord],
    trace: &SessionTrace,
    checkpoint: u64,
    node: Option<&str>,
) -> Vec<StepView> {
    let wanted = |n: &str| node.is_none_or(|w| shows(w, n));
    let mut out = Vec::new();
    for cp in cps.iter().filter(|c| c.step > 0 && c.step <= checkpoint) {
        let mut views: Vec<RunView> = Vec::new();
        // A node run's attempts are recorded in order: the i-th record of (node, run) is
        // attempt i.
        for r in runs.iter().filter(|r| r.step == cp.step && wanted(&r.node)) {
            let attempt = views
                .iter()
                .filter(|v| v.node == r.node && v.run_index == r.run_index)
                .count();
            views.push(run_view(r, u32::try_from(attempt).unwrap_or(u32::MAX)));
        }
        // Attempts with turns but no usage record (a chat that paused).
        for t in trace
            .turns
            .iter()
            .filter(|t| t.step == cp.step && wanted(&t.node))
        {
            let known = views
                .iter()
                .any(|v| v.node == t.node && v.run_index == t.run_index && v.attempt == t.attempt);
            if !known {
                views.push(RunView {
                    step: t.step,
                    node: t.node.clone(),
                    run_index: t.run_index,
                    attempt: t.attempt,
                    status: "paused".to_owned(),
                    error: None,
                    duration_ms: 0,
                    tokens_in: 0,
                    tokens_out: 0,
                    tool_calls: 0,
                    system: None,
                    turns: Vec::new(),
                });
            }
        }
        // In the step's order (declaration order, a `for_each` target's instances in item
        // order), not the order the runs finished in.
        views.sort_by_key(|v| {
            let (agent, item) = orchestra_spec::task_order(&v.node);
            let at = cp.nodes.iter().position(|n| n == agent);
            (at.unwrap_or(usize::MAX), item, v.run_index, v.attempt)
        });
        if node.is_some() {
            for v in &mut views {
                attach_turns(v, &trace.turns, &trace.tools);
            }
        }
        let routes = trace
            .routes
            .iter()
            .filter(|r| r.step == cp.step && wanted(&r.from))
            .map(RouteView::from)
            .collect();
        if node.is_some() && views.is_empty() {
            continue;
        }
        out.push(StepView {
            step: cp.step,
            nodes: cp.nodes.clone(),
            runs: views,
            routes,
        });
    }
    out
}

fn run_view(r: &NodeRunRecord, attempt: u32) -> RunView {
    RunView {
        step: r.step,
        node: r.node.clone(),
        run_index: r.run_index,
        attempt,
        status: r.status.as_str().to_owned(),
        error: r.error.clone(),
        duration_ms: r.duration_ms,
        tokens_in: r.tokens_in,
        tokens_out: r.tokens_out,
        tool_calls: r.tool_calls,
        system: None,
        turns: Vec::new(),
    }
}

/// Adds the turns and tool calls of `v`'s attempt.
pub fn attach_turns(v: &mut RunView, turns: &[ModelTurnRecord], tools: &[ToolCallRecord]) {
    let same = |step: u64, node: &str, run: u32, attempt: u32| {
        step == v.step && node == v.node && run == v.run_index && attempt == v.attempt
    };
    for t in turns
        .iter()
        .filter(|t| same(t.step, &t.node, t.run_index, t.attempt))
    {
        if v.system.is_none() {
            v.system = Some(t.system.to_string());
        }
        let calls = tools
            .iter()
            .filter(|c| same(c.step, &c.node, c.run_index, c.attempt) && c.turn == t.turn)
            .map(ToolView::from)
            .collect();
        v.turns.push(TurnView {
            turn: t.turn,
            model: t.model.clone(),
            messages: t.messages.value(),
            answer: t.answer.value(),
            stop: t.stop.clone(),
            tokens_in: t.tokens_in,
            tokens_out: t.tokens_out,
            duration_ms: t.duration_ms,
            tool_calls: calls,
        });
    }
}

/// The usage record of a run's attempt: the attempt-th record of its (step, node, run).
pub fn run_record<'a>(runs: &'a [NodeRunRecord], v: &RunView) -> Option<&'a NodeRunRecord> {
    runs.iter()
        .filter(|r| r.step == v.step && r.node == v.node && r.run_index == v.run_index)
        .nth(usize::try_from(v.attempt).ok()?)
}

#[cfg(test)]
mod tests {
    use super::ranges;

    #[test]
    fn checkpoint_lists_are_shown_as_ranges() {
        assert_eq!(ranges(&[0, 1, 2, 3, 4, 7]), "0-4, 7");
        assert_eq!(ranges(&[2]), "2");
        assert_eq!(ranges(&[]), "");
    }
}
