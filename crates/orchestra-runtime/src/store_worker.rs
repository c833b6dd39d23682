//! The store on its own thread: the async executor sends it work over a channel. Finished tasks
//! are fire-and-forget and group-committed (everything queued goes in one transaction), so a
//! thousand tasks finishing together cost a few transactions, not a thousand; every other call
//! waits for its answer, and is ordered after the records sent before it.

use std::collections::VecDeque;
use std::sync::mpsc;
use std::thread;

use tokio::sync::oneshot;

use orchestra_store::{NodeRunRecord, Store, StoreError, TaskRecord};

type Job = Box<dyn FnOnce(&mut dyn Store, Option<StoreError>) + Send>;

enum Cmd {
    Results(Box<(TaskRecord, NodeRunRecord)>),
    Call(Job),
    Close(oneshot::Sender<()>),
}

/// A cloneable handle to the store thread.
#[derive(Clone, Debug)]
pub struct StoreHandle {
    tx: mpsc::Sender<Cmd>,
}

impl std::fmt::Debug for Cmd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Cmd::Results(_) => "Results",
            Cmd::Call(_) => "Call",
            Cmd::Close(_) => "Close",
        })
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
                let mut tasks = vec![t];
                let mut runs = vec![r];
                while let Ok(next) = rx.try_recv() {
                    match next {
                        Cmd::Results(more) => {
                            let (t, r) = *more;
                            tasks.push(t);
                            runs.push(r);
                        }
                        other => {
                            backlog.push_back(other);
                            break;
                        }
                    }
                }
                if let Err(e) = store.record_results(&tasks, &runs) {
                    tracing::error!(error = %e, "failed to record finished tasks");
                    failed.get_or_insert(e);
                }
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
