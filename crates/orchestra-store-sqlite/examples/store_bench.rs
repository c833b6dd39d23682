//! Measures the store alone on the benchmark shapes: `chain 1600` (time and database size) and
//! `fanout 1000` (1000 tasks finishing at once, group-committed and one by one).
//!
//! `cargo run --release -p orchestra-store-sqlite --example store_bench [-- DIR]`

#![expect(clippy::print_stdout, reason = "a benchmark program reports on stdout")]

#[path = "../tests/it/chain.rs"]
mod chain;

use std::path::Path;
use std::time::Instant;

use orchestra_store::{CheckpointRecord, Store, StoreError, TaskRecord, TaskStatus};
use orchestra_store_sqlite::SqliteStore;
use serde_json::json;

fn file_size(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

fn fanout_task(session: &str, idx: u32) -> TaskRecord {
    TaskRecord {
        session: session.to_owned(),
        step: 1,
        task_idx: idx,
        node: format!("worker-{idx:04}"),
        run_index: 0,
        status: TaskStatus::Ok,
        writes: json!({"results": [format!("result of worker {idx}")]}),
        output: json!(format!("worker {idx} finished its part of the fan-out")),
        error: None,
        finished_at: 1_700_000_000_000,
    }
}

fn main() -> Result<(), StoreError> {
    let scratch = tempfile_dir();
    let dir = std::env::args().nth(1).map_or(scratch.clone(), Into::into);

    for (label, policy) in [
        (
            "snapshots as the runtime takes them",
            chain::Snapshots::Runtime,
        ),
        (
            "deltas only (one snapshot at step 0)",
            chain::Snapshots::Initial,
        ),
    ] {
        let path = dir.join("chain.db");
        let _ = std::fs::remove_file(&path);
        let started = Instant::now();
        {
            let mut s = SqliteStore::open(&path)?;
            s.create_session(&chain::session("chain"))?;
            chain::run(&mut s, "chain", 1600, policy)?;
        }
        let took = started.elapsed();
        let bytes = file_size(&path);
        println!(
            "chain 1600, {label}: {:.3} s, {bytes} bytes ({} per step)",
            took.as_secs_f64(),
            bytes / 1600
        );
    }
    println!("(LangGraph+SqliteSaver on chain 1600: 8.5 s, ~500 MB)");

    for (label, batch) in [("one transaction", 1000), ("one transaction per task", 1)] {
        let path = dir.join(format!("fanout-{batch}.db"));
        let _ = std::fs::remove_file(&path);
        let mut s = SqliteStore::open(&path)?;
        s.create_session(&chain::session("fan"))?;
        let tasks: Vec<TaskRecord> = (0..1000).map(|i| fanout_task("fan", i)).collect();
        let started = Instant::now();
        for chunk in tasks.chunks(batch) {
            s.record_tasks(chunk)?;
        }
        s.commit_checkpoint(&CheckpointRecord {
            session: "fan".into(),
            step: 1,
            parent_step: None,
            scheduler: json!({"step": 1, "ready": [1000]}),
            snapshot: None,
            repo_shas: None,
            nodes: tasks.iter().map(|t| t.node.clone()).collect(),
            created_at: 1,
        })?;
        println!(
            "fanout 1000, {label}: {:.1} ms to record the tasks and the checkpoint",
            started.elapsed().as_secs_f64() * 1000.0
        );
    }
    let _ = std::fs::remove_dir_all(&scratch);
    Ok(())
}

fn tempfile_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("orchestra-store-bench-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    dir
}
