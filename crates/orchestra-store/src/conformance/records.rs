//! Builders of the records the cases store, and the clock they move by hand. Public so that a
//! backend's own tests can build the same records.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::{Value, json};

use crate::{CheckpointRecord, Clock, NewSession, NodeRunRecord, TaskRecord, TaskStatus};

/// The time every case starts at (unix milliseconds, November 2023).
pub const START: u64 = 1_700_000_000_000;

/// A clock the test moves by hand; its [`Clock`]s all read the same time.
#[derive(Clone, Debug)]
pub struct ManualClock(Arc<AtomicU64>);

impl ManualClock {
    /// A clock at `start`.
    pub fn new(start: u64) -> Self {
        Self(Arc::new(AtomicU64::new(start)))
    }

    /// A [`Clock`] reading this one, for a store.
    pub fn clock(&self) -> Clock {
        let t = Arc::clone(&self.0);
        Clock::from_fn(move || t.load(Ordering::SeqCst))
    }

    /// The current time.
    pub fn now(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }

    /// Moves the time forward by `ms`.
    pub fn advance(&self, ms: u64) {
        self.0.fetch_add(ms, Ordering::SeqCst);
    }
}

/// A session of the `pr-review` pipeline, with a name, inputs and a resolved pipeline.
pub fn new_session(id: &str, created_at: u64) -> NewSession {
    NewSession {
        id: id.to_owned(),
        name: Some(format!("name of {id}")),
        pipeline: "pr-review".to_owned(),
        pipeline_path: "pipelines/pr-review.yaml".to_owned(),
        pipeline_source: "name: pr-review\nagents: {}\n".to_owned(),
        resolved: r#"{"name": "pr-review", "agents": {"critic": {"model": "smart"}}}"#.to_owned(),
        pipeline_hash: "sha256:abc".to_owned(),
        inputs: json!({"diff": "HEAD~1"}),
        parent_session: None,
        parent_checkpoint: None,
        parent_node: None,
        created_at,
    }
}

/// A successful task of `node` at `step` that appends one message.
pub fn task(session: &str, step: u64, task_idx: u32, node: &str) -> TaskRecord {
    TaskRecord {
        session: session.to_owned(),
        step,
        task_idx,
        node: node.to_owned(),
        run_index: 0,
        status: TaskStatus::Ok,
        writes: json!({"messages": [{"role": "assistant", "agent": node, "content": format!("step {step}")}]}),
        output: Value::String(format!("output of {node} at {step}")),
        error: None,
        finished_at: 1_000 + step % 1_000,
    }
}

/// The checkpoint of `step`, following `step - 1` (none for step 0).
pub fn checkpoint(session: &str, step: u64, snapshot: Option<Value>) -> CheckpointRecord {
    CheckpointRecord {
        session: session.to_owned(),
        step,
        parent_step: step.checked_sub(1),
        scheduler: json!({"step": step, "ready": [step % 3]}),
        snapshot,
        repo_shas: None,
        nodes: vec![format!("a{step}")],
        created_at: 2_000 + step,
    }
}

/// A successful node run with these token counts.
pub fn node_run(
    session: &str,
    step: u64,
    node: &str,
    tokens_in: u64,
    tokens_out: u64,
) -> NodeRunRecord {
    NodeRunRecord {
        session: session.to_owned(),
        step,
        node: node.to_owned(),
        run_index: 0,
        started_at: 10,
        finished_at: 25,
        duration_ms: 15,
        tokens_in,
        tokens_out,
        cache_read_tokens: 0,
        cache_write_tokens: 0,
        cost_usd: None,
        tool_calls: 2,
        retries: 1,
        status: TaskStatus::Ok,
        error: None,
    }
}
