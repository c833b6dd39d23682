//! The executor when the store fails: a checkpoint or a task record that cannot be stored.

use std::sync::Arc;

use orchestra_graph::{Node, Topology};
use orchestra_store_sqlite::SqliteStore;

use super::{FnRunner, Harness, NoRouter, edge, limits, says};
use crate::events::Event;
use crate::store_worker::WorkerError;

#[tokio::test]
async fn a_failing_checkpoint_ends_the_drive_with_its_error() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("o.db");
    let n = 12;
    let agents: Vec<String> = (0..n).map(|i| format!("a{i}")).collect();
    let mut edges = vec![edge(&[Node::Start], &[Node::Agent(0)])];
    edges.extend((1..n).map(|i| edge(&[Node::Agent(i - 1)], &[Node::Agent(i)])));
    edges.push(edge(&[Node::Agent(n - 1)], &[Node::End]));
    let h = Harness::new(
        Box::new(SqliteStore::open(&db).unwrap()),
        Topology::new(agents, edges),
    );
    let mut pos = h.start("p1", &NoRouter).await;
    // The database fails step 3's checkpoint, as a full disk would; the steps after it may
    // already be running when the store gets to it.
    rusqlite::Connection::open(&db)
        .unwrap()
        .execute_batch(
            "CREATE TRIGGER no_step_3 BEFORE INSERT ON checkpoints WHEN NEW.step = 3 \
             BEGIN SELECT RAISE(ABORT, 'injected failure'); END;",
        )
        .unwrap();
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
    let agents: Vec<String> = (0..n).map(|i| format!("a{i}")).collect();
    let mut edges = vec![edge(&[Node::Start], &[Node::Agent(0)])];
    edges.extend((1..n).map(|i| edge(&[Node::Agent(i - 1)], &[Node::Agent(i)])));
    edges.push(edge(&[Node::Agent(n - 1)], &[Node::End]));
    let h = Harness::new(
        Box::new(SqliteStore::open(&db).unwrap()),
        Topology::new(agents, edges),
    );
    let mut pos = h.start("t1", &NoRouter).await;
    // Step 2's task record fails, as a full disk would.
    rusqlite::Connection::open(&db)
        .unwrap()
        .execute_batch(
            "CREATE TRIGGER no_task_2 BEFORE INSERT ON tasks WHEN NEW.step = 2 \
             BEGIN SELECT RAISE(ABORT, 'injected failure'); END;",
        )
        .unwrap();
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
