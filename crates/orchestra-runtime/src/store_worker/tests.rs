//! The store thread against a real SQLite file: grouped transactions, ordering, and records
//! that fail.

use std::path::Path;

use orchestra_store::conformance as records;
use orchestra_store_sqlite::SqliteStore;
use serde_json::json;

use super::*;

/// Commits in the write-ahead log: frames whose header carries the database size (only a
/// transaction's last frame does).
fn wal_commits(db: &Path) -> usize {
    let wal = std::fs::read(db.with_extension("db-wal")).unwrap_or_default();
    let Some(header) = wal.get(..32) else {
        return 0;
    };
    let page = u32::from_be_bytes(header[8..12].try_into().unwrap()) as usize;
    wal[32..]
        .chunks(24 + page)
        .filter(|f| f.len() == 24 + page && f[4..8] != [0, 0, 0, 0])
        .count()
}

/// A finished task of agent `a` and its usage record (the conformance suite's records).
fn results(session: &str, step: u64) -> (TaskRecord, NodeRunRecord) {
    (
        records::task(session, step, 0, "a"),
        records::node_run(session, step, "a", 1, 1),
    )
}

fn record(store: &StoreHandle, session: &str, step: u64) {
    let (t, r) = results(session, step);
    store.record(Some(t), r);
}

/// The checkpoint of `step` (with the initial state at step 0).
fn checkpoint(session: &str, step: u64) -> CheckpointRecord {
    records::checkpoint(session, step, (step == 0).then(|| json!({})))
}

async fn create(store: &StoreHandle, id: &str) {
    let session = records::new_session(id, 1);
    let cp = checkpoint(id, 0);
    store
        .call(move |s| {
            s.create_session(&session)?;
            s.commit_checkpoint(&cp)
        })
        .await
        .unwrap();
}

async fn open(db: &Path) -> StoreHandle {
    let store = StoreHandle::spawn(Box::new(SqliteStore::open(db).unwrap())).unwrap();
    create(&store, "s").await;
    store
}

/// Holds the store thread until the returned sender is used (or dropped), so that what is
/// sent meanwhile queues up however slowly the test runs.
async fn hold(store: &StoreHandle) -> (mpsc::Sender<()>, oneshot::Receiver<()>) {
    let (release, held) = mpsc::channel::<()>();
    let (started_tx, started) = oneshot::channel();
    let (done_tx, done) = oneshot::channel();
    store
        .send_job(
            move |_| {
                let _ = started_tx.send(());
                let _ = held.recv();
                let _ = done_tx.send(());
                Ok(())
            },
            oneshot::channel().0,
        )
        .unwrap();
    started.await.unwrap();
    (release, done)
}

/// Makes every insert of a task record of `step` fail, as a full disk would.
fn fail_tasks_of_step(db: &Path, step: u64) {
    rusqlite::Connection::open(db)
        .unwrap()
        .execute_batch(&format!(
            "CREATE TRIGGER no_tasks_{step} BEFORE INSERT ON tasks WHEN NEW.step = {step} \
             BEGIN SELECT RAISE(ABORT, 'injected failure'); END;"
        ))
        .unwrap();
}

#[tokio::test]
async fn a_wide_step_s_records_go_in_bounded_transactions() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("o.db");
    let store = open(&db).await;
    let before = wal_commits(&db);
    let (release, done) = hold(&store).await;
    let n = 2 * GROUP_MAX + 88;
    for i in 0..n {
        let (mut t, r) = results("s", 1);
        t.task_idx = u32::try_from(i).unwrap();
        store.record(Some(t), r);
    }
    release.send(()).unwrap();
    done.await.unwrap();
    store.commit_checkpoint(checkpoint("s", 1)).await.unwrap();
    let commits = wal_commits(&db) - before;
    assert!(
        (3..=n / 2).contains(&commits),
        "{commits} transactions for {n} records"
    );
    let stored = store
        .call(|s| Ok(s.task_records("s", 1..=1)?.len()))
        .await
        .unwrap();
    assert_eq!(stored, n);
}

#[tokio::test]
async fn records_queued_before_a_call_are_stored_before_it_runs() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir.path().join("o.db")).await;
    record(&store, "s", 1);
    let tasks = store
        .call(|s| Ok(s.task_records("s", 1..=1)?.len()))
        .await
        .unwrap();
    assert_eq!(tasks, 1);
    store.commit_checkpoint(checkpoint("s", 1)).await.unwrap();
    // A checkpoint that does not follow the last one is refused, and the refusal comes back.
    let err = store
        .commit_checkpoint(checkpoint("s", 5))
        .await
        .unwrap_err();
    assert!(matches!(err, WorkerError::Store(_)), "{err}");
}

#[tokio::test]
async fn a_lost_record_fails_its_own_step_s_checkpoint_not_an_unrelated_call() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("o.db");
    let store = open(&db).await;
    create(&store, "other").await;
    fail_tasks_of_step(&db, 1);
    record(&store, "s", 1);
    // Unrelated requests come first (a lease renewal, another session's checkpoint): they
    // succeed, and do not swallow the failure.
    let renewed = store
        .call(|s| {
            s.acquire_lease("s", "me", Duration::from_secs(30))?;
            s.renew_lease("s", "me", Duration::from_secs(30))
        })
        .await
        .unwrap();
    assert!(renewed);
    record(&store, "other", 2);
    store
        .commit_checkpoint(checkpoint("other", 1))
        .await
        .unwrap();
    // The step's checkpoint fails with the record's failure, and is not committed.
    let err = store
        .commit_checkpoint(checkpoint("s", 1))
        .await
        .unwrap_err();
    match &err {
        WorkerError::Records {
            session,
            step,
            source,
        } => {
            assert_eq!((session.as_str(), *step), ("s", 1));
            let mut chain = source.to_string();
            let mut cause = std::error::Error::source(&**source);
            while let Some(c) = cause {
                chain.push_str(&format!(": {c}"));
                cause = c.source();
            }
            assert!(chain.contains("injected failure"), "{chain}");
        }
        other => panic!("expected lost records, got {other}"),
    }
    let steps: Vec<u64> = store
        .call(|s| Ok(s.checkpoints("s")?.iter().map(|c| c.step).collect()))
        .await
        .unwrap();
    assert_eq!(
        steps,
        vec![0],
        "the step was not checkpointed without its task"
    );
    // Delivered once: the step can be redone and checkpointed on a resume.
    rusqlite::Connection::open(&db)
        .unwrap()
        .execute_batch("DROP TRIGGER no_tasks_1")
        .unwrap();
    record(&store, "s", 1);
    store.commit_checkpoint(checkpoint("s", 1)).await.unwrap();
}

#[tokio::test]
async fn a_lost_record_of_a_failed_attempt_is_reported_when_the_drive_settles() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("o.db");
    let store = open(&db).await;
    rusqlite::Connection::open(&db)
        .unwrap()
        .execute_batch(
            "CREATE TRIGGER no_runs BEFORE INSERT ON node_runs \
             BEGIN SELECT RAISE(ABORT, 'injected failure'); END;",
        )
        .unwrap();
    let (_, run) = results("s", 3);
    store.record(None, run);
    store.settle("other").await.unwrap();
    let err = store.settle("s").await.unwrap_err();
    assert!(matches!(err, WorkerError::Records { step: 3, .. }), "{err}");
    store.settle("s").await.unwrap();
}

#[tokio::test]
async fn records_with_no_checkpoint_in_sight_are_stored_on_their_own() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("o.db");
    let store = open(&db).await;
    let before = wal_commits(&db);
    let (release, done) = hold(&store).await;
    for i in 0..2 {
        let (mut t, r) = results("s", 1);
        t.task_idx = i;
        store.record(Some(t), r);
    }
    release.send(()).unwrap();
    done.await.unwrap();
    // Settling waits for them without a checkpoint: one transaction for both.
    store.settle("s").await.unwrap();
    assert_eq!(
        wal_commits(&db) - before,
        1,
        "one transaction for the group"
    );
}

#[tokio::test]
async fn one_session_s_bad_record_does_not_fail_another_session_sharing_its_transaction() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir.path().join("o.db")).await;
    // Both records queue up behind a held thread, so they are written as one group.
    let (release, done) = hold(&store).await;
    record(&store, "s", 1);
    record(&store, "no-such-session", 1);
    release.send(()).unwrap();
    done.await.unwrap();
    store.commit_checkpoint(checkpoint("s", 1)).await.unwrap();
    let tasks = store
        .call(|s| Ok(s.task_records("s", 1..=1)?.len()))
        .await
        .unwrap();
    assert_eq!(tasks, 1, "the good session's record was stored");
    let err = store.settle("no-such-session").await.unwrap_err();
    assert!(matches!(err, WorkerError::Records { step: 1, .. }), "{err}");
}

#[tokio::test]
async fn a_new_drive_forgets_what_an_abandoned_one_could_not_store() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("o.db");
    let store = open(&db).await;
    fail_tasks_of_step(&db, 1);
    record(&store, "s", 1);
    store.forget("s");
    store.settle("s").await.unwrap();
}

#[tokio::test]
async fn a_fenced_session_s_writes_stop_once_another_holds_its_lease() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("o.db");
    let store = open(&db).await;
    create(&store, "t").await;
    let ttl = Duration::from_secs(30);
    store
        .call(move |s| {
            s.acquire_lease("s", "1@a", ttl)?;
            s.acquire_lease("t", "1@a", ttl)
        })
        .await
        .unwrap();
    store.fence("s", Some("1@a".into()));
    store.fence("t", Some("1@a".into()));
    record(&store, "s", 1);
    store.commit_checkpoint(checkpoint("s", 1)).await.unwrap();

    // Another process takes `s` over (its lease expired while this one stalled).
    store
        .call(move |s| {
            s.release_lease("s", "1@a")?;
            s.acquire_lease("s", "2@b", ttl)
        })
        .await
        .unwrap();
    record(&store, "s", 2);
    record(&store, "t", 1);
    let lost = store
        .commit_checkpoint(checkpoint("s", 2))
        .await
        .unwrap_err();
    assert!(
        matches!(lost.store_error(), Some(StoreError::LeaseLost { session, holder: Some(h) }) if session == "s" && h == "2@b"),
        "{lost:?}"
    );
    store.commit_checkpoint(checkpoint("t", 1)).await.unwrap();
    let hook = store
        .record_tasks(vec![results("s", 2).0])
        .await
        .unwrap_err();
    assert!(matches!(
        hook.store_error(),
        Some(StoreError::LeaseLost { .. })
    ));
    let stored = store
        .call(|s| {
            let steps = |id| -> Result<Vec<u64>, StoreError> {
                Ok(s.checkpoints(id)?.iter().map(|c| c.step).collect())
            };
            Ok((
                s.task_records("s", 0..=9)?.len(),
                s.node_runs("s")?.len(),
                steps("s")?,
                s.task_records("t", 0..=9)?.len(),
                steps("t")?,
            ))
        })
        .await
        .unwrap();
    assert_eq!(
        stored,
        (1, 1, vec![0, 1], 1, vec![0, 1]),
        "nothing of `s` after the takeover is written; `t`, still held, goes on"
    );

    // Unfenced, the writes are the plain ones again.
    store.fence("s", None);
    store.commit_checkpoint(checkpoint("s", 2)).await.unwrap();
}
