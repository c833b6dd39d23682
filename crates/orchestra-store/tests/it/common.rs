//! Builders of records and stores shared by the test modules.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use orchestra_store::{
    CheckpointRecord, Clock, MemoryStore, NewSession, NodeRunRecord, SqliteStore, TaskRecord,
    TaskStatus,
};
use serde_json::{Value, json};

/// A clock the test moves by hand.
#[derive(Clone, Debug)]
pub struct TestClock(Arc<AtomicU64>);

impl TestClock {
    pub fn new(start: u64) -> Self {
        Self(Arc::new(AtomicU64::new(start)))
    }

    pub fn clock(&self) -> Clock {
        let t = Arc::clone(&self.0);
        Clock::from_fn(move || t.load(Ordering::SeqCst))
    }

    pub fn now(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }

    pub fn advance(&self, ms: u64) {
        self.0.fetch_add(ms, Ordering::SeqCst);
    }
}

/// A SQLite store in a fresh temp dir (kept alive by the returned guard).
pub fn sqlite_store(clock: &TestClock) -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(db_path(dir.path()))
        .unwrap()
        .with_clock(clock.clock());
    (dir, store)
}

pub fn memory_store(clock: &TestClock) -> MemoryStore {
    MemoryStore::new().with_clock(clock.clock())
}

pub fn db_path(dir: &Path) -> PathBuf {
    dir.join(".orchestra").join("orchestra.db")
}

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
        created_at,
    }
}

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
        tool_calls: 2,
        retries: 1,
        status: TaskStatus::Ok,
        error: None,
    }
}
