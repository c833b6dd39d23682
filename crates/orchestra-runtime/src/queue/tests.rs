//! Unit tests of the worker loop's helpers on a memory store.

use std::sync::Mutex;

use orchestra_store::MemoryStore;

use super::*;
use crate::store_worker::StoreHandle;

/// An engine over a memory store holding the queued session `s`.
async fn engine() -> Engine {
    let store = StoreHandle::spawn(Box::new(MemoryStore::new())).unwrap();
    store
        .call(|s| s.enqueue_session(&crate::testing::new_session("s", "p")))
        .await
        .unwrap();
    Engine::with_store(store)
}

/// The error of a task that panicked saying `msg`.
async fn panicked(msg: &'static str) -> tokio::task::JoinError {
    tokio::spawn(async move { panic!("{msg}") })
        .await
        .unwrap_err()
}

#[tokio::test]
async fn a_drive_that_panicked_fails_its_session_and_releases_it() {
    let engine = engine().await;
    assert_eq!(engine.claim().await.unwrap().unwrap().id, "s");
    let heard = Mutex::new(Vec::new());
    let on = |ev: WorkerEvent| heard.lock().unwrap().push(ev);
    engine
        .crashed("s", Instant::now(), panicked("boom").await, &on)
        .await;
    let rec = engine.store().call(|s| s.find_session("s")).await.unwrap();
    assert_eq!(rec.status, SessionStatus::Failed);
    assert_eq!(rec.error.as_deref(), Some("its drive panicked: boom"));
    assert_eq!(rec.lease_owner, None, "the lease is released");
    assert!(
        engine.claim().await.unwrap().is_none(),
        "never claimed again"
    );
    let heard = heard.into_inner().unwrap();
    assert!(
        matches!(&heard[..], [WorkerEvent::Finished { status: SessionStatus::Failed, note: Some(n), .. }] if n == "its drive panicked: boom"),
        "{heard:?}"
    );
}

#[tokio::test]
async fn a_panicked_drive_leaves_a_session_another_worker_took_over_alone() {
    let engine = engine().await;
    let other = engine.clone();
    engine
        .store()
        .call(|s| s.claim_session("1@elsewhere", LEASE))
        .await
        .unwrap()
        .unwrap();
    let heard = Mutex::new(Vec::new());
    let on = |ev: WorkerEvent| heard.lock().unwrap().push(ev);
    other
        .crashed("s", Instant::now(), panicked("late").await, &on)
        .await;
    let rec = engine.store().call(|s| s.find_session("s")).await.unwrap();
    assert_eq!(rec.status, SessionStatus::Running);
    assert_eq!(rec.lease_owner.as_deref(), Some("1@elsewhere"));
    let heard = heard.into_inner().unwrap();
    assert!(
        matches!(&heard[..], [WorkerEvent::Trouble { session: Some(s), error }] if s == "s" && error.contains("late")),
        "{heard:?}"
    );
}

#[test]
fn claims_back_off_while_the_database_fails() {
    let poll = Duration::from_secs(1);
    let first = claim_backoff(poll, 0);
    assert!(first >= poll / 2 && first <= poll, "{first:?}");
    let fourth = claim_backoff(poll, 3);
    assert!(fourth >= poll * 4 && fourth <= poll * 8, "{fourth:?}");
    assert!(claim_backoff(poll, 40) <= CLAIM_BACKOFF_CAP);
    assert!(claim_backoff(Duration::ZERO, 0) >= Duration::from_millis(50));
}

const LEASE: Duration = Duration::from_secs(30);
