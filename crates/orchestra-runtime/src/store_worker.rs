//! The store on its own thread: the async executor sends it work over a channel. Finished tasks
//! are fire-and-forget and group-committed: everything queued, plus what arrives within
//! [`GROUP_COMMIT`], goes in one transaction (up to [`GROUP_MAX`] records) — with the step's
//! checkpoint when it comes in that time (a step of one agent is then one commit, not two). A
//! thousand tasks finishing together cost a few transactions, not a thousand. Every other call
//! waits for its answer, and is ordered after the records sent before it.

use std::collections::VecDeque;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use orchestra_store::{CheckpointRecord, NodeRunRecord, Store, StoreError, TaskRecord};

/// How long finished tasks' records may wait for more records or for their step's checkpoint,
/// to share one transaction. A crash within it loses them: those tasks run again on resume,
/// as the ones still running do.
pub const GROUP_COMMIT: Duration = Duration::from_millis(2);

/// Most task records in one transaction. A wide step's records (a fan-out of a thousand agents
/// finishing together) are written in a few transactions rather than held all at once.
pub const GROUP_MAX: usize = 256;

type Job = Box<dyn FnOnce(&mut dyn Store, Option<StoreError>) + Send>;

type CheckpointReply = oneshot::Sender<Result<CheckpointRecord, WorkerError>>;

enum Cmd {
    Results(Box<(TaskRecord, NodeRunRecord)>),
    Checkpoint(Box<CheckpointRecord>, CheckpointReply),
    Call(Job),
    Close(oneshot::Sender<()>),
}

/// A cloneable handle to the store thread.
///
/// Finished tasks' records are queued without waiting: a step keeps its results until its
/// checkpoint, which is committed after every record queued before it, so the queue never
/// holds more than the step's width. (Making a finished agent wait for room held its whole
/// future as well as its records: more memory, not less.)
#[derive(Clone, Debug)]
pub struct StoreHandle {
    tx: mpsc::Sender<Cmd>,
}

impl std::fmt::Debug for Cmd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Cmd::Results(_) => "Results",
            Cmd::Checkpoint(..) => "Checkpoint",
            Cmd::Call(_) => "Call",
            Cmd::Close(_) => "Close",
        })
    }
}

/// A checkpoint queued to the store thread.
#[derive(Debug)]
pub struct SentCheckpoint(oneshot::Receiver<Result<CheckpointRecord, WorkerError>>);

impl SentCheckpoint {
    /// Waits until it is committed; the record comes back (with its snapshot, if any).
    pub async fn committed(self) -> Result<CheckpointRecord, WorkerError> {
        self.0.await.map_err(|_| WorkerError::Gone)?
    }
}

/// Why a store call did not happen.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The store thread is gone (it panicked or was shut down).
    #[error("the store thread has stopped")]
    Gone,
}

impl StoreHandle {
    /// Moves `store` to a new thread and returns the handle. The thread ends when every handle
    /// is dropped.
    pub fn spawn(store: Box<dyn Store>) -> Result<Self, WorkerError> {
        let (tx, rx) = mpsc::channel::<Cmd>();
        thread::Builder::new()
            .name("orchestra-store".into())
            .spawn(move || serve(store, rx))
            .map_err(|_| WorkerError::Gone)?;
        Ok(StoreHandle { tx })
    }

    /// Queues a finished task and its usage record. Errors surface on the next [`call`].
    ///
    /// [`call`]: StoreHandle::call
    pub fn record(&self, task: TaskRecord, run: NodeRunRecord) {
        let _ = self.tx.send(Cmd::Results(Box::new((task, run))));
    }

    /// Commits a step's checkpoint after everything queued before it (tasks that finished just
    /// before go in the same transaction) and hands the record back, so a snapshot's state
    /// can be reused. A failure of an earlier queued record is returned instead, first.
    pub async fn commit_checkpoint(
        &self,
        cp: CheckpointRecord,
    ) -> Result<CheckpointRecord, WorkerError> {
        self.send_checkpoint(cp)?.committed().await
    }

    /// Queues a step's checkpoint like [`commit_checkpoint`](StoreHandle::commit_checkpoint),
    /// without waiting for it to be committed.
    pub fn send_checkpoint(&self, cp: CheckpointRecord) -> Result<SentCheckpoint, WorkerError> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Cmd::Checkpoint(Box::new(cp), tx))
            .map_err(|_| WorkerError::Gone)?;
        Ok(SentCheckpoint(rx))
    }

    /// Runs `f` on the store thread after everything queued before it, and returns its result.
    /// A failure of an earlier queued record is returned instead, first.
    pub async fn call<T, F>(&self, f: F) -> Result<T, WorkerError>
    where
        T: Send + 'static,
        F: FnOnce(&mut dyn Store) -> Result<T, StoreError> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        self.send_job(f, tx)?;
        rx.await.map_err(|_| WorkerError::Gone)?
    }

    /// [`call`](StoreHandle::call) for synchronous code (not from inside the async runtime).
    pub fn call_blocking<T, F>(&self, f: F) -> Result<T, WorkerError>
    where
        T: Send + 'static,
        F: FnOnce(&mut dyn Store) -> Result<T, StoreError> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        self.send_job(f, tx)?;
        rx.blocking_recv().map_err(|_| WorkerError::Gone)?
    }

    /// Closes the store after everything queued before, and waits for it: the database is left
    /// tidy (SQLite folds its write-ahead log back into the file). Other handles fail afterwards.
    pub async fn close(&self) {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Cmd::Close(tx)).is_ok() {
            let _ = rx.await;
        }
    }

    fn send_job<T, F>(
        &self,
        f: F,
        tx: oneshot::Sender<Result<T, WorkerError>>,
    ) -> Result<(), WorkerError>
    where
        T: Send + 'static,
        F: FnOnce(&mut dyn Store) -> Result<T, StoreError> + Send + 'static,
    {
        let job: Job = Box::new(move |store, earlier| {
            let result = match earlier {
                Some(e) => Err(WorkerError::Store(e)),
                None => f(store).map_err(WorkerError::Store),
            };
            let _ = tx.send(result);
        });
        self.tx.send(Cmd::Call(job)).map_err(|_| WorkerError::Gone)
    }
}

fn serve(mut store: Box<dyn Store>, rx: mpsc::Receiver<Cmd>) {
    let mut failed: Option<StoreError> = None;
    let mut backlog: VecDeque<Cmd> = VecDeque::new();
    loop {
        let cmd = match backlog.pop_front() {
            Some(c) => c,
            None => match rx.recv() {
                Ok(c) => c,
                Err(_) => return,
            },
        };
        match cmd {
            Cmd::Results(first) => {
                let (t, r) = *first;
                let (mut tasks, mut runs) = (vec![t], vec![r]);
                let deadline = Instant::now() + GROUP_COMMIT;
                let next = loop {
                    if tasks.len() >= GROUP_MAX {
                        break None;
                    }
                    match next_within(&rx, deadline) {
                        Some(Cmd::Results(more)) => {
                            let (t, r) = *more;
                            tasks.push(t);
                            runs.push(r);
                        }
                        other => break other,
                    }
                };
                match next {
                    Some(Cmd::Checkpoint(cp, reply)) if failed.is_none() => {
                        let result = store
                            .commit_step(&tasks, &runs, &cp)
                            .map(|()| *cp)
                            .map_err(WorkerError::Store);
                        drop((tasks, runs));
                        let _ = reply.send(result);
                    }
                    other => {
                        if let Err(e) = store.record_results(&tasks, &runs) {
                            tracing::error!(error = %e, "failed to record finished tasks");
                            failed.get_or_insert(e);
                        }
                        drop((tasks, runs));
                        backlog.extend(other);
                    }
                }
            }
            Cmd::Checkpoint(cp, reply) => {
                let result = match failed.take() {
                    Some(e) => Err(WorkerError::Store(e)),
                    None => store
                        .commit_checkpoint(&cp)
                        .map(|()| *cp)
                        .map_err(WorkerError::Store),
                };
                let _ = reply.send(result);
            }
            Cmd::Call(job) => job(store.as_mut(), failed.take()),
            Cmd::Close(done) => {
                drop(store);
                let _ = done.send(());
                return;
            }
        }
    }
}

/// The next command if one comes before `deadline`.
fn next_within(rx: &mpsc::Receiver<Cmd>, deadline: Instant) -> Option<Cmd> {
    if let Ok(cmd) = rx.try_recv() {
        return Some(cmd);
    }
    let left = deadline.checked_duration_since(Instant::now())?;
    // Timed out, or every handle is gone.
    rx.recv_timeout(left).ok()
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use orchestra_store::{NewSession, SqliteStore, TaskStatus};
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

    fn results(session: &str, step: u64) -> (TaskRecord, NodeRunRecord) {
        let task = TaskRecord {
            session: session.into(),
            step,
            task_idx: 0,
            node: "a".into(),
            run_index: 0,
            status: TaskStatus::Ok,
            writes: json!({}),
            output: json!("out"),
            error: None,
            finished_at: 1,
        };
        let run = NodeRunRecord {
            session: session.into(),
            step,
            node: "a".into(),
            run_index: 0,
            started_at: 1,
            finished_at: 1,
            duration_ms: 0,
            tokens_in: 1,
            tokens_out: 1,
            tool_calls: 0,
            retries: 0,
            status: TaskStatus::Ok,
            error: None,
        };
        (task, run)
    }

    fn checkpoint(step: u64) -> CheckpointRecord {
        CheckpointRecord {
            session: "s".into(),
            step,
            parent_step: step.checked_sub(1),
            scheduler: json!({"step": step}),
            snapshot: (step == 0).then(|| json!({})),
            repo_shas: None,
            nodes: Vec::new(),
            created_at: 1,
        }
    }

    async fn open(db: &Path) -> StoreHandle {
        let store = StoreHandle::spawn(Box::new(SqliteStore::open(db).unwrap())).unwrap();
        let session = NewSession {
            id: "s".into(),
            name: None,
            pipeline: "p".into(),
            pipeline_path: "p.yaml".into(),
            pipeline_source: String::new(),
            resolved: "{}".into(),
            pipeline_hash: "h".into(),
            inputs: json!({}),
            parent_session: None,
            parent_checkpoint: None,
            created_at: 1,
        };
        store
            .call(move |s| {
                s.create_session(&session)?;
                s.commit_checkpoint(&checkpoint(0))
            })
            .await
            .unwrap();
        store
    }

    #[tokio::test]
    async fn a_wide_step_s_records_go_in_bounded_transactions() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("o.db");
        let store = open(&db).await;
        let before = wal_commits(&db);
        // Hold the store thread while a wide step's records queue up.
        let (release, held) = mpsc::channel::<()>();
        let (done, blocked) = oneshot::channel();
        store
            .send_job(
                move |_| {
                    let _ = held.recv();
                    Ok(())
                },
                done,
            )
            .unwrap();
        let n = 2 * GROUP_MAX + 88;
        for i in 0..n {
            let (mut t, r) = results("s", 1);
            t.task_idx = u32::try_from(i).unwrap();
            store.record(t, r);
        }
        release.send(()).unwrap();
        blocked.await.unwrap().unwrap();
        store.commit_checkpoint(checkpoint(1)).await.unwrap();
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
    async fn a_sent_checkpoint_is_committed_in_order_and_its_refusal_is_returned() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("o.db");
        let store = open(&db).await;
        let (t, r) = results("s", 1);
        store.record(t, r);
        let first = store.send_checkpoint(checkpoint(1)).unwrap();
        // Queued behind it: a call sees the record and the checkpoint stored.
        let (tasks, steps) = store
            .call(|s| {
                let tasks = s.task_records("s", 1..=1)?.len();
                let steps: Vec<u64> = s.checkpoints("s")?.iter().map(|c| c.step).collect();
                Ok((tasks, steps))
            })
            .await
            .unwrap();
        assert_eq!((tasks, steps), (1, vec![0, 1]));
        assert_eq!(first.committed().await.unwrap().step, 1);
        // A checkpoint that does not follow the last one is refused, and the refusal comes
        // back to whoever waits for it.
        let gap = store.send_checkpoint(checkpoint(5)).unwrap();
        assert!(gap.committed().await.is_err());
    }

    #[tokio::test]
    async fn a_step_s_records_share_its_checkpoint_s_commit() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("o.db");
        let store = open(&db).await;

        // Hold the store thread so that the record and the checkpoint are both queued, however
        // slowly this test runs.
        let before = wal_commits(&db);
        let (release, held) = mpsc::channel::<()>();
        let (done, blocked) = oneshot::channel();
        store
            .send_job(
                move |_| {
                    let _ = held.recv();
                    Ok(())
                },
                done,
            )
            .unwrap();
        let (t, r) = results("s", 1);
        store.record(t, r);
        let step = tokio::spawn({
            let store = store.clone();
            async move { store.commit_checkpoint(checkpoint(1)).await }
        });
        // The test runtime has one thread: the spawned commit is sent before this resumes.
        tokio::task::yield_now().await;
        release.send(()).unwrap();
        blocked.await.unwrap().unwrap();
        step.await.unwrap().unwrap();
        assert_eq!(wal_commits(&db) - before, 1, "one transaction for the step");

        // Records with no checkpoint in sight are stored on their own, soon.
        let before = wal_commits(&db);
        let (t, r) = results("s", 2);
        store.record(t, r);
        let waited = Instant::now();
        while wal_commits(&db) == before && waited.elapsed() < Duration::from_secs(10) {
            tokio::time::sleep(GROUP_COMMIT).await;
        }
        assert_eq!(
            wal_commits(&db) - before,
            1,
            "stored without waiting for a call"
        );
        store.commit_checkpoint(checkpoint(2)).await.unwrap();
        let steps = store
            .call(|s| Ok(s.task_records("s", 1..=2)?.len()))
            .await
            .unwrap();
        assert_eq!(steps, 2);
    }

    #[tokio::test]
    async fn records_that_fail_fail_their_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir.path().join("o.db")).await;
        let (t, r) = results("no-such-session", 1);
        store.record(t, r);
        let err = store.commit_checkpoint(checkpoint(1)).await.unwrap_err();
        assert!(err.to_string().contains("no-such-session"), "{err}");
        let cps = store.call(|s| Ok(s.checkpoints("s")?.len())).await.unwrap();
        assert_eq!(cps, 1, "the step's checkpoint was not committed");

        // The same when the failed records were stored on their own, earlier.
        let (t, r) = results("no-such-session", 1);
        store.record(t, r);
        tokio::time::sleep(GROUP_COMMIT * 10).await;
        assert!(store.commit_checkpoint(checkpoint(1)).await.is_err());
        store.commit_checkpoint(checkpoint(1)).await.unwrap();
    }
}
