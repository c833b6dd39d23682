//! The executor when the store fails: a checkpoint or a task record that cannot be stored.

use std::path::Path;
use std::sync::Arc;

use orchestra_graph::{Node, Topology};
use orchestra_store_sqlite::SqliteStore;

use super::{FnRunner, Harness, NoRouter, edge, limits, says};
use crate::events::Event;
use crate::store_worker::WorkerError;

/// A chain of `n` agents over a SQLite database at `db`.
fn chain_on(db: &Path, n: usize) -> Harness {
    let agents: Vec<String> = (0..n).map(|i| format!("a{i}")).collect();
    let mut edges = vec![edge(&[Node::Start], &[Node::Agent(0)])];
    edges.extend((1..n).map(|i| edge(&[Node::Agent(i - 1)], &[Node::Agent(i)])));
    edges.push(edge(&[Node::Agent(n - 1)], &[Node::End]));
    Harness::new(
        Box::new(SqliteStore::open(db).unwrap()),
        Topology::new(agents, edges),
    )
}

/// Makes the database refuse inserts into `table` for `step`, as a full disk would.
fn fail_inserts(db: &Path, table: &str, step: u64) {
    rusqlite::Connection::open(db)
        .unwrap()
        .execute_batch(&format!(
            "CREATE TRIGGER no_{table}_{step} BEFORE INSERT ON {table} WHEN NEW.step = {step} \
             BEGIN SELECT RAISE(ABORT, 'injected failure'); END;"
        ))
        .unwrap();
}

#[tokio::test]
async fn a_failing_checkpoint_ends_the_drive_with_its_error() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("o.db");
    let n = 12;
    let h = chain_on(&db, n);
    let mut pos = h.start("p1", &NoRouter).await;
    // The database fails step 3's checkpoint, as a full disk would.
    fail_inserts(&db, "checkpoints", 3);
    let mut l = limits(n);
    l.snapshot_every = 100;
    let exec = h.executor(
        "p1",
        FnRunner::new(|c| Ok(says(&c.agent))),
        Arc::new(NoRouter),
        l,
    );
    let err = exec.run(&mut pos).await.unwrap_err();
    let mut chain = err.to_string();
    let mut cause = std::error::Error::source(&err);
    while let Some(c) = cause {
        chain.push_str(&format!(": {c}"));
        cause = c.source();
    }
    assert!(
        chain.contains("step 3") || chain.contains("checkpoint"),
        "{chain}"
    );
    assert!(chain.contains("injected failure"), "{chain}");
    let steps: Vec<u64> = h
        .store
        .call(|s| s.checkpoints("p1"))
        .await
        .unwrap()
        .iter()
        .map(|c| c.step)
        .collect();
    assert_eq!(
        steps,
        [0, 1, 2],
        "nothing is stored after the failed checkpoint"
    );
    // The events report only the committed checkpoints.
    let reported: Vec<u64> = h
        .events
        .take()
        .into_iter()
        .filter_map(|e| match e {
            Event::Checkpoint { step, .. } => Some(step),
            _ => None,
        })
        .collect();
    assert_eq!(reported, [1, 2]);
}

#[tokio::test]
async fn a_task_record_that_cannot_be_stored_fails_its_own_step_s_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("o.db");
    let n = 5;
    let h = chain_on(&db, n);
    let mut pos = h.start("t1", &NoRouter).await;
    // Step 2's task record fails, as a full disk would.
    fail_inserts(&db, "tasks", 2);
    let exec = h.executor(
        "t1",
        FnRunner::new(|c| Ok(says(&c.agent))),
        Arc::new(NoRouter),
        limits(n),
    );
    let err = exec.run(&mut pos).await.unwrap_err();
    assert!(matches!(err, WorkerError::Records { step: 2, .. }), "{err}");
    let steps: Vec<u64> = h
        .store
        .call(|s| s.checkpoints("t1"))
        .await
        .unwrap()
        .iter()
        .map(|c| c.step)
        .collect();
    assert_eq!(steps, [0, 1], "step 2 is not checkpointed without its task");
}
