//! A stand-in for the runtime running `chain N` (N agents in a line, each appending one
//! message): the same records, sizes and snapshot policy as the executor, without the executor.
//! Shared by the size tests and `examples/store_bench.rs`.

use orchestra_store::{
    CheckpointRecord, NewSession, NodeRunRecord, Store, StoreError, TaskRecord, TaskStatus,
};
use serde_json::{Map, Value, json};

/// Snapshot at most every this many steps (the runtime's `snapshot_every`).
pub const SNAPSHOT_EVERY: u64 = 10;

/// When full state snapshots are taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Snapshots {
    /// Only the initial state (step 0): the rows are pure deltas.
    Initial,
    /// The runtime's policy: every `SNAPSHOT_EVERY` steps at most, once the deltas since the
    /// last snapshot outweigh half of it (so snapshots are spaced geometrically).
    Runtime,
}

/// The session a chain run records into.
pub fn session(id: &str) -> NewSession {
    NewSession {
        id: id.to_owned(),
        name: None,
        pipeline: "chain".to_owned(),
        pipeline_path: "bench/chain.yaml".to_owned(),
        pipeline_source: "name: chain\n".repeat(20),
        resolved: r#"{"name": "chain", "agents": {}}"#.to_owned(),
        pipeline_hash: "0".repeat(64),
        inputs: json!({}),
        parent_session: None,
        parent_checkpoint: None,
        parent_node: None,
        created_at: 1,
    }
}

fn len(v: &Value) -> usize {
    serde_json::to_string(v).map_or(0, |s| s.len())
}

/// Runs `steps` chain steps into `id` (which must exist): per step one task record and its
/// node run in one transaction, then a checkpoint, with snapshots per `policy`.
pub fn run(
    store: &mut dyn Store,
    id: &str,
    steps: u64,
    policy: Snapshots,
) -> Result<(), StoreError> {
    let mut messages: Vec<Value> = Vec::new();
    let state = |messages: &[Value]| {
        let mut m = Map::new();
        m.insert("messages".into(), Value::Array(messages.to_vec()));
        m.insert("agent_outputs".into(), json!({}));
        m.insert("metadata".into(), json!({}));
        Value::Object(m)
    };
    let initial = state(&messages);
    let (mut snap_step, mut snap_bytes, mut delta_bytes) = (0, len(&initial), 0);
    store.commit_checkpoint(&CheckpointRecord {
        session: id.to_owned(),
        step: 0,
        parent_step: None,
        scheduler: json!({"step": 0, "ready": [0]}),
        snapshot: Some(initial),
        repo_shas: None,
        nodes: Vec::new(),
        created_at: 1,
    })?;
    for step in 1..=steps {
        let agent = format!("agent-{:04}", step - 1);
        let content = format!(
            "{agent} appended its line to the chain; this is message number {step} of the run."
        );
        let message = json!({"role": "assistant", "agent": agent, "content": content});
        let task = TaskRecord {
            session: id.to_owned(),
            step,
            task_idx: 0,
            node: agent.clone(),
            run_index: 0,
            status: TaskStatus::Ok,
            writes: json!({}),
            output: Value::String(content),
            error: None,
            finished_at: 1_700_000_000_000 + step,
        };
        let run = NodeRunRecord {
            session: id.to_owned(),
            step,
            node: agent.clone(),
            run_index: 0,
            started_at: 1_700_000_000_000 + step,
            finished_at: 1_700_000_000_000 + step,
            duration_ms: 0,
            tokens_in: 40 + step,
            tokens_out: 25,
            cache_read_tokens: 0,
            cache_write_tokens: 0,
            // A priced model's run stores its cost.
            cost_usd: Some(0.000_495),
            tool_calls: 0,
            retries: 0,
            status: TaskStatus::Ok,
            error: None,
        };
        store.record_results(std::slice::from_ref(&task), std::slice::from_ref(&run))?;
        delta_bytes += len(&message);
        messages.push(message);
        let due = step - snap_step >= SNAPSHOT_EVERY && delta_bytes * 2 >= snap_bytes;
        let snapshot = (policy == Snapshots::Runtime && due).then(|| {
            let s = state(&messages);
            (snap_step, snap_bytes, delta_bytes) = (step, len(&s), 0);
            s
        });
        let ready = if step < steps {
            json!([step])
        } else {
            json!([])
        };
        store.commit_checkpoint(&CheckpointRecord {
            session: id.to_owned(),
            step,
            parent_step: Some(step - 1),
            scheduler: json!({"step": step, "ready": ready, "runs": {(step - 1).to_string(): 1}}),
            snapshot,
            repo_shas: None,
            nodes: vec![agent],
            created_at: 1_700_000_000_000 + step,
        })?;
    }
    Ok(())
}
