//! The lanes of a store that several threads may call at once (a memory store shared by four,
//! as a pool of four connections is): sessions side by side, each in its order, and calls
//! naming no session after everything sent before them.

use std::time::Duration;

use orchestra_store::MemoryStore;
use orchestra_store::conformance as records;
use serde_json::json;

use super::*;

/// Bounds a wait that would otherwise hang when the behaviour is wrong (never reached when it
/// is right).
const PATIENCE: Duration = Duration::from_secs(30);

const LANES: usize = 4;

/// A session id on another lane than `other`.
fn on_another_lane(other: &str) -> String {
    (0..)
        .map(|i| format!("other-{i}"))
        .find(|id| lane_of(id, LANES) != lane_of(other, LANES))
        .unwrap()
}

async fn create(store: &StoreHandle, id: &str) {
    let session = records::new_session(id, 1);
    let cp = records::checkpoint(id, 0, Some(json!({})));
    store
        .call(move |s| {
            s.create_session(&session)?;
            s.commit_checkpoint(&cp)
        })
        .await
        .unwrap();
}

/// A store of four lanes (the memory store shared by four threads), and a handle on its data.
async fn lanes(sessions: &[&str]) -> (StoreHandle, MemoryStore) {
    let memory = MemoryStore::new().shared_by(LANES);
    let store = StoreHandle::spawn(Box::new(memory.clone())).unwrap();
    for id in sessions {
        create(&store, id).await;
    }
    (store, memory)
}

/// Holds the lane of `session` until the returned sender is used (or dropped); the held job
/// then sets the session's meta `held` to true.
async fn hold(store: &StoreHandle, session: &str) -> mpsc::Sender<()> {
    let (release, held) = mpsc::channel::<()>();
    let (started_tx, started) = oneshot::channel();
    let id = session.to_owned();
    store
        .tx
        .send(Cmd::CallFor(
            session.to_owned(),
            Box::new(move |s| {
                let _ = started_tx.send(());
                let _ = held.recv();
                let _ = s.set_session_meta(&id, "held", &json!(true));
            }),
        ))
        .unwrap();
    started.await.unwrap();
    release
}

#[tokio::test]
async fn a_session_is_stored_while_another_s_lane_is_busy() {
    let a = "a";
    let b = on_another_lane(a);
    let (store, _) = lanes(&[a, &b]).await;
    let release = hold(&store, a).await;
    // B's records and calls go on while A's lane is held (with one thread they would wait).
    let (task, run) = (
        records::task(&b, 1, 0, "x"),
        records::node_run(&b, 1, "x", 1, 1),
    );
    store.record(Some(task), run);
    let sid = b.clone();
    let read = store.call_for(&b, move |s| s.task_records(&sid, 1..=1));
    let found = tokio::time::timeout(PATIENCE, read)
        .await
        .expect("a call for another session waited for a busy lane")
        .unwrap();
    assert_eq!(found.len(), 1, "B's record, stored before B's call");
    drop(release);
    let id = a.to_owned();
    let meta = store
        .call_for(a, move |s| s.find_session(&id))
        .await
        .unwrap()
        .meta;
    assert_eq!(meta.get("held"), Some(&json!(true)));
}

#[tokio::test]
async fn a_call_naming_no_session_runs_after_what_every_lane_was_sent_before() {
    let a = "a";
    let b = on_another_lane(a);
    let (store, _) = lanes(&[a, &b]).await;
    let release = hold(&store, a).await;
    let (task, run) = (
        records::task(&b, 1, 0, "x"),
        records::node_run(&b, 1, "x", 1, 1),
    );
    store.record(Some(task), run);
    // Sent now, while A's lane is held: it must see what the held job does once released.
    let (tx, rx) = oneshot::channel();
    let (ida, idb) = (a.to_owned(), b.clone());
    store
        .send_job(
            move |s| {
                let held = s.find_session(&ida)?.meta.get("held").cloned();
                Ok((held, s.task_records(&idb, 1..=1)?.len()))
            },
            tx,
        )
        .unwrap();
    release.send(()).unwrap();
    let (held, tasks) = tokio::time::timeout(PATIENCE, rx)
        .await
        .expect("the call never ran")
        .unwrap()
        .unwrap();
    assert_eq!(held, Some(json!(true)), "ran before A's lane was done");
    assert_eq!(tasks, 1, "ran before B's record was stored");
}

#[tokio::test]
async fn a_lost_record_fails_its_session_s_checkpoint_on_its_lane() {
    let (store, _) = lanes(&["s"]).await;
    // A record of a session that does not exist cannot be stored; the failure is kept by the
    // lane of "ghost", and its checkpoint (same lane) reports it.
    let (task, run) = (
        records::task("ghost", 1, 0, "x"),
        records::node_run("ghost", 1, "x", 1, 1),
    );
    store.record(Some(task), run);
    let e = store
        .commit_checkpoint(records::checkpoint("ghost", 1, None))
        .await
        .unwrap_err();
    assert!(
        matches!(e, WorkerError::Records { ref session, step: 1, .. } if session == "ghost"),
        "{e:?}"
    );
    // Another session's checkpoint is not failed by it.
    store
        .commit_checkpoint(records::checkpoint("s", 1, None))
        .await
        .unwrap();
}

#[tokio::test]
async fn closing_stores_what_the_lanes_were_sent() {
    let ids: Vec<String> = (0..8).map(|i| format!("s{i}")).collect();
    let names: Vec<&str> = ids.iter().map(String::as_str).collect();
    let (store, memory) = lanes(&names).await;
    for id in &ids {
        let (task, run) = (
            records::task(id, 1, 0, "x"),
            records::node_run(id, 1, "x", 1, 1),
        );
        store.record(Some(task), run);
    }
    store.close().await;
    for id in &ids {
        assert_eq!(memory.task_records(id, 1..=1).unwrap().len(), 1, "{id}");
    }
}
