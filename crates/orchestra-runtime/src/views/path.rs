//! Where a session is in its graph, for the web UI's live drawing: how many times each drawn
//! edge fired and each node ran (the counts of `orchestra report`'s graph), and which nodes
//! run right now — the agents the last checkpoint's scheduler made ready whose tasks of the
//! next step are not recorded yet, while a live process drives the session.

use std::collections::{BTreeMap, BTreeSet};

use orchestra_graph::Compiled;
use orchestra_graph::scheduler::SchedState;
use orchestra_store::{SessionRecord, system_now_ms};
use serde::Serialize;

use super::report::graph_of;
use super::sessions::record_status;
use crate::{Engine, RuntimeError};

/// The path of a session through its graph, now.
#[derive(Debug, Serialize)]
pub struct SessionPath {
    /// For each edge of [`Compiled::drawn_edges`] (and `to_drawing`), in that order, how many
    /// times it fired.
    pub edges: Vec<u64>,
    /// By node name (`START`, the agents, `END`, `FAIL`), how many times it ran.
    pub runs: BTreeMap<String, u64>,
    /// The agents running now (empty unless the session is `running`), in declaration order.
    pub running: Vec<String>,
    /// The step they run in (the last checkpoint's step + 1), when some run.
    pub running_step: Option<u64>,
    /// The agents a paused session waits to run (one of them for a human), in declaration
    /// order; empty unless the session is `paused`.
    pub waiting: Vec<String>,
}

/// The path of session `rec`, which ran `compiled`.
///
/// # Errors
/// When the store fails.
pub async fn path(
    engine: &Engine,
    rec: &SessionRecord,
    compiled: &Compiled,
) -> Result<SessionPath, RuntimeError> {
    let sid = rec.id.clone();
    let shown = record_status(rec, system_now_ms());
    let live = shown == "running";
    let paused = shown == "paused";
    let (cps, runs, trace, last, done) = engine
        .store()
        .call(move |s| {
            let cps = s.checkpoints(&sid)?;
            let last = match cps.last() {
                Some(c) if live || paused => s.checkpoint(&sid, c.step)?,
                _ => None,
            };
            let done = match &last {
                Some(cp) => s.task_records(&sid, cp.step + 1..=cp.step + 1)?,
                None => Vec::new(),
            };
            Ok((cps, s.node_runs(&sid)?, s.trace(&sid)?, last, done))
        })
        .await?;
    let graph = graph_of(compiled, rec.status, &cps, &runs, &trace.routes);
    let mut running = Vec::new();
    let mut running_step = None;
    if let Some(cp) = last {
        // A checkpoint whose scheduler this release cannot read shows nothing running.
        let sched: SchedState = serde_json::from_value(cp.scheduler).unwrap_or_default();
        let finished: BTreeSet<&str> = done
            .iter()
            .map(|t| orchestra_spec::agent_of(&t.node))
            .collect();
        for &a in &sched.ready {
            let Some(name) = compiled.topology.agents.get(a) else {
                continue;
            };
            // A `for_each` agent runs one task per item: it runs until the step is committed.
            if sched.for_each.contains_key(&a) || !finished.contains(name.as_str()) {
                running.push(name.clone());
            }
        }
        if !running.is_empty() && live {
            running_step = Some(cp.step + 1);
        }
    }
    let waiting = if paused {
        std::mem::take(&mut running)
    } else {
        Vec::new()
    };
    Ok(SessionPath {
        edges: graph.edges.iter().map(|e| e.taken).collect(),
        runs: graph.nodes.into_iter().map(|n| (n.name, n.runs)).collect(),
        running,
        running_step,
        waiting,
    })
}
