//! Tests of the step writes: statements are compiled once, and a step's records and
//! checkpoint go in one transaction.

use rusqlite::StatementStatus;
use serde_json::json;

use super::*;
use orchestra_store::{NewSession, conformance};

fn session() -> NewSession {
    conformance::new_session("s", 1)
}

fn results(step: u64) -> (TaskRecord, NodeRunRecord) {
    (
        conformance::task("s", step, 0, "a"),
        conformance::node_run("s", step, "a", 1, 1),
    )
}

/// Each step reuses the prepared statements: SQLite compiles none of them again (it did for
/// every step of the first session of a file, `sid` 1, before the planner was pinned).
#[test]
fn recording_steps_never_recompiles_statements() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = SqliteStore::open(dir.path().join("o.db")).unwrap();
    orchestra_store::Store::create_session(&mut store, &session()).unwrap();
    for step in 1..=5 {
        let (task, run) = results(step);
        store.record_results_impl(&[task], &[run]).unwrap();
    }
    for sql in [INSERT_TASK, INSERT_NODE_RUN] {
        let st = store.conn.prepare_cached(sql).unwrap();
        assert_eq!(st.get_status(StatementStatus::RePrepare), 0, "{sql}");
        assert_eq!(st.get_status(StatementStatus::Run), 5, "{sql}");
    }
}

/// Commits written to the write-ahead log so far: frames whose header carries the database
/// size (only the last frame of a transaction does).
fn wal_commits(db: &std::path::Path) -> usize {
    let wal = std::fs::read(db.with_extension("db-wal")).unwrap_or_default();
    let Some(header) = wal.get(..32) else {
        return 0;
    };
    let page = u32::from_be_bytes(header[8..12].try_into().unwrap()) as usize;
    wal[32..]
        .chunks(24 + page)
        .filter(|frame| frame.len() == 24 + page && frame[4..8] != [0, 0, 0, 0])
        .count()
}

fn checkpoint(step: u64) -> CheckpointRecord {
    CheckpointRecord {
        session: "s".into(),
        step,
        parent_step: step.checked_sub(1),
        scheduler: json!({"step": step}),
        snapshot: (step == 0).then(|| json!({})),
        repo_shas: None,
        nodes: vec!["a".into()],
        created_at: 1,
    }
}

#[test]
fn a_step_of_one_agent_is_one_commit() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("o.db");
    let mut store = SqliteStore::open(&db).unwrap();
    orchestra_store::Store::create_session(&mut store, &session()).unwrap();
    store.commit_checkpoint_impl(&checkpoint(0)).unwrap();

    let before = wal_commits(&db);
    let (task, run) = results(1);
    store.record_results_impl(&[task], &[run]).unwrap();
    store.commit_checkpoint_impl(&checkpoint(1)).unwrap();
    assert_eq!(wal_commits(&db) - before, 2, "separate calls: two commits");

    let before = wal_commits(&db);
    let (task, run) = results(2);
    store
        .commit_step_impl(&[task], &[run], &checkpoint(2))
        .unwrap();
    assert_eq!(wal_commits(&db) - before, 1);
    assert_eq!(store.task_records_impl("s", 1..=2).unwrap().len(), 2);
}
