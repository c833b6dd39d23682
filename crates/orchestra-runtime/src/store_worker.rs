//! The store on its own thread: the async executor sends it work over a channel. Finished tasks'
//! records are fire-and-forget and group-committed: everything queued, plus what arrives within
//! [`GROUP_COMMIT`], goes in one transaction (up to [`GROUP_MAX`] records), so a thousand tasks
//! finishing together cost a few transactions, not a thousand. Every other call waits for its
//! answer, and is ordered after the records sent before it.
//!
//! A record that cannot be stored is never forgotten: its failure is kept for its session and
//! step, and fails that session's next checkpoint at or after the step (or its
//! [`StoreHandle::settle`]), never an unrelated call.
//!
//! **Lanes.** A store that several threads may call at once ([`Store::share`]: PostgreSQL's
//! pool of connections) gets a thread per connection, a *lane*: what names a session (its
//! records, checkpoints, settles and [`StoreHandle::call_for`]) goes to that session's lane, in
//! order, so sessions driven together are stored at the same time. A [`StoreHandle::call`]
//! names no session: it runs once every lane has done what was sent before it.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash as _, Hasher as _};
use std::sync::Arc;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use tokio::sync::oneshot;

use records::Lost;

mod records;

use orchestra_store::{
    CheckpointRecord, Fence, NodeRunRecord, Store, StoreError, TaskRecord, TraceRecord,
};

/// How long finished tasks' records may wait for more records, to share one transaction. A
/// crash within it loses them: those tasks run again on resume, as the ones still running do.
pub const GROUP_COMMIT: Duration = Duration::from_millis(2);

/// Most records in one transaction. A wide step's records (a fan-out of a thousand agents
/// finishing together) are written in a few transactions rather than held all at once.
pub const GROUP_MAX: usize = 256;

type Job = Box<dyn FnOnce(&mut dyn Store) + Send>;

type Reply<T> = oneshot::Sender<Result<T, WorkerError>>;

/// Records queued without waiting: a finished attempt's (the task's record when it succeeded,
/// its usage and its trace), or trace records of their own (a step's routing).
#[derive(Default)]
struct Records {
    task: Option<TaskRecord>,
    run: Option<NodeRunRecord>,
    trace: Vec<TraceRecord>,
}

enum Cmd {
    /// Records to store with the group they arrive in.
    Record(Box<Records>),
    Checkpoint(Box<CheckpointRecord>, Reply<CheckpointRecord>),
    /// Task records stored now, with the caller waiting.
    Tasks(Vec<TaskRecord>, Reply<()>),
    /// Fences (`Some(owner)`) or unfences the writes of a session.
    Fence(String, Option<String>),
    Settle(String, Reply<()>),
    Forget(String),
    Call(Job),
    /// A call ordered only after what was sent for its session.
    CallFor(String, Job),
    /// Answered when a lane gets to it: everything sent to it before is done.
    Barrier(mpsc::SyncSender<()>),
    Close(oneshot::Sender<()>),
}

impl Records {
    /// The session the records belong to (an attempt's, or a step's routing).
    fn session(&self) -> &str {
        self.task
            .as_ref()
            .map(|t| t.session.as_str())
            .or(self.run.as_ref().map(|r| r.session.as_str()))
            .or(self.trace.first().map(TraceRecord::session))
            .unwrap_or_default()
    }
}

impl std::fmt::Debug for Cmd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Cmd::Record(_) => "Record",
            Cmd::Checkpoint(..) => "Checkpoint",
            Cmd::Tasks(..) => "Tasks",
            Cmd::Fence(..) => "Fence",
            Cmd::Settle(..) => "Settle",
            Cmd::Forget(_) => "Forget",
            Cmd::Call(_) => "Call",
            Cmd::CallFor(..) => "CallFor",
            Cmd::Barrier(_) => "Barrier",
            Cmd::Close(_) => "Close",
        })
    }
}

/// A cloneable handle to the store thread.
///
/// Finished tasks' records are queued without waiting: a step keeps its results until its
/// checkpoint, which is committed after every record queued before it, so the queue never
/// holds more than the step's width.
#[derive(Clone, Debug)]
pub struct StoreHandle {
    tx: mpsc::Sender<Cmd>,
}

/// Why a store call did not happen.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Records of finished tasks could not be stored, so the step they belong to cannot be
    /// checkpointed (its agents run again on resume).
    #[error("failed to store the records of step {step} of session `{session}`")]
    Records {
        /// The session.
        session: String,
        /// The first step whose records were lost.
        step: u64,
        /// Why (shared by every session whose records were in the failed transaction).
        #[source]
        source: Arc<StoreError>,
    },
    /// The store thread is gone (it panicked or was shut down).
    #[error("the store thread has stopped")]
    Gone,
}

impl WorkerError {
    /// The store error behind this one, if any (to choose an exit code).
    pub fn store_error(&self) -> Option<&StoreError> {
        match self {
            WorkerError::Store(e) => Some(e),
            WorkerError::Records { source, .. } => Some(source),
            WorkerError::Gone => None,
        }
    }
}

impl StoreHandle {
    /// Moves `store` to a new thread and returns the handle; a store that several threads may
    /// call at once ([`Store::share`]) gets a lane thread per connection
    /// ([`Store::parallelism`]) too. The threads end when every handle is dropped.
    pub fn spawn(store: Box<dyn Store>) -> Result<Self, WorkerError> {
        let mut lanes = Vec::new();
        if store.parallelism() > 1 {
            for i in 0..store.parallelism() {
                let Some(shared) = store.share() else { break };
                let (tx, rx) = mpsc::channel::<Cmd>();
                thread::Builder::new()
                    .name(format!("orchestra-store-{i}"))
                    .spawn(move || Worker::new(shared, rx, Vec::new()).serve())
                    .map_err(|_| WorkerError::Gone)?;
                lanes.push(tx);
            }
        }
        let (tx, rx) = mpsc::channel::<Cmd>();
        thread::Builder::new()
            .name("orchestra-store".into())
            .spawn(move || Worker::new(store, rx, lanes).serve())
            .map_err(|_| WorkerError::Gone)?;
        Ok(StoreHandle { tx })
    }

    /// Queues a finished attempt's records: the task's when it succeeded, and its usage. A
    /// failure to store them fails the session's next checkpoint or [`settle`].
    ///
    /// [`settle`]: StoreHandle::settle
    pub fn record(&self, task: Option<TaskRecord>, run: NodeRunRecord) {
        self.record_traced(task, run, Vec::new());
    }

    /// [`record`](StoreHandle::record) with what the attempt did (its model turns and tool
    /// calls), stored in the same transaction.
    pub fn record_traced(
        &self,
        task: Option<TaskRecord>,
        run: NodeRunRecord,
        trace: Vec<TraceRecord>,
    ) {
        // A send fails only when the thread is gone; the next checkpoint then says so.
        let _ = self.tx.send(Cmd::Record(Box::new(Records {
            task,
            run: Some(run),
            trace,
        })));
    }

    /// Queues trace records (a step's routing) like finished tasks' records: stored before
    /// anything sent after them; a failure fails the session's next checkpoint or settle.
    pub fn trace(&self, trace: Vec<TraceRecord>) {
        if trace.is_empty() {
            return;
        }
        // A send fails only when the thread is gone; the next checkpoint then says so.
        let _ = self.tx.send(Cmd::Record(Box::new(Records {
            trace,
            ..Records::default()
        })));
    }

    /// Commits a step's checkpoint after everything queued before it, and hands the record
    /// back, so a snapshot's state can be reused. Fails, without committing, when records of
    /// this session at or before its step could not be stored.
    pub async fn commit_checkpoint(
        &self,
        cp: CheckpointRecord,
    ) -> Result<CheckpointRecord, WorkerError> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Cmd::Checkpoint(Box::new(cp), tx))
            .map_err(|_| WorkerError::Gone)?;
        rx.await.map_err(|_| WorkerError::Gone)?
    }

    /// Stores task records now (after everything queued before) and waits for it; fenced like
    /// the records of finished tasks.
    pub async fn record_tasks(&self, tasks: Vec<TaskRecord>) -> Result<(), WorkerError> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Cmd::Tasks(tasks, tx))
            .map_err(|_| WorkerError::Gone)?;
        rx.await.map_err(|_| WorkerError::Gone)?
    }

    /// Fences the writes of `session` on `owner`'s lease from now on (`None`: unfences them):
    /// its finished tasks' records and checkpoints are then written with
    /// [`Store::commit_fenced`], so a drive whose lease another process took over writes
    /// nothing more (its checkpoint fails with [`StoreError::LeaseLost`]).
    pub fn fence(&self, session: &str, owner: Option<String>) {
        // A send fails only when the thread is gone; the drive's next checkpoint says so.
        let _ = self.tx.send(Cmd::Fence(session.to_owned(), owner));
    }

    /// Waits until every record of `session` queued before is stored, and returns the failure
    /// of any that could not be (a drive ends with it, so none is lost silently).
    pub async fn settle(&self, session: &str) -> Result<(), WorkerError> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Cmd::Settle(session.to_owned(), tx))
            .map_err(|_| WorkerError::Gone)?;
        rx.await.map_err(|_| WorkerError::Gone)?
    }

    /// Starts a drive of `session` afresh: failures to store records of an earlier drive of it
    /// that ended without [`settle`](StoreHandle::settle) (its future was dropped) are dropped,
    /// since the drive restores what is stored and runs the rest again.
    pub fn forget(&self, session: &str) {
        // A send fails only when the thread is gone; the drive's first checkpoint says so.
        let _ = self.tx.send(Cmd::Forget(session.to_owned()));
    }

    /// Runs `f` on the store thread after everything queued before it, and returns its result.
    pub async fn call<T, F>(&self, f: F) -> Result<T, WorkerError>
    where
        T: Send + 'static,
        F: FnOnce(&mut dyn Store) -> Result<T, StoreError> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        self.send_job(f, tx)?;
        rx.await.map_err(|_| WorkerError::Gone)?
    }

    /// Runs `f` on the store thread after everything queued before it for `session` (its
    /// records, checkpoints and calls for it), and returns its result. On a store with several
    /// connections, it may run at the same time as what was sent for other sessions; `f` must
    /// only touch `session` (and what nothing else is writing meanwhile).
    pub async fn call_for<T, F>(&self, session: &str, f: F) -> Result<T, WorkerError>
    where
        T: Send + 'static,
        F: FnOnce(&mut dyn Store) -> Result<T, StoreError> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let job = reply_job(f, tx);
        self.tx
            .send(Cmd::CallFor(session.to_owned(), job))
            .map_err(|_| WorkerError::Gone)?;
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
            // Either it closed, or the thread was already gone: closed all the same.
            let _ = rx.await;
        }
    }

    fn send_job<T, F>(&self, f: F, tx: Reply<T>) -> Result<(), WorkerError>
    where
        T: Send + 'static,
        F: FnOnce(&mut dyn Store) -> Result<T, StoreError> + Send + 'static,
    {
        self.tx
            .send(Cmd::Call(reply_job(f, tx)))
            .map_err(|_| WorkerError::Gone)
    }
}

/// The job that runs `f` and answers on `tx`.
fn reply_job<T, F>(f: F, tx: Reply<T>) -> Job
where
    T: Send + 'static,
    F: FnOnce(&mut dyn Store) -> Result<T, StoreError> + Send + 'static,
{
    Box::new(move |store| {
        // The caller may have stopped waiting (a cancelled drive): nobody to tell.
        let _ = tx.send(f(store).map_err(WorkerError::Store));
    })
}

/// The store thread's side (and a lane's, which has no lanes of its own).
struct Worker {
    store: Box<dyn Store>,
    rx: mpsc::Receiver<Cmd>,
    lost: Vec<Lost>,
    /// The lease owner each fenced session's writes are fenced on.
    fences: HashMap<String, String>,
    /// The lanes that what names a session goes to; none: this thread does everything.
    lanes: Vec<mpsc::Sender<Cmd>>,
}

impl Worker {
    fn new(store: Box<dyn Store>, rx: mpsc::Receiver<Cmd>, lanes: Vec<mpsc::Sender<Cmd>>) -> Self {
        Worker {
            store,
            rx,
            lost: Vec::new(),
            fences: HashMap::new(),
            lanes,
        }
    }

    fn serve(mut self) {
        let mut next = None;
        loop {
            let cmd = match next.take() {
                Some(c) => c,
                None => match self.rx.recv() {
                    Ok(c) => c,
                    Err(_) => return,
                },
            };
            let Some(cmd) = self.dispatch(cmd) else {
                continue;
            };
            match cmd {
                Cmd::Record(first) => next = self.records(*first),
                Cmd::Checkpoint(cp, reply) => {
                    let result = match self.take_lost(&cp.session, Some(cp.step)) {
                        Some(e) => Err(e),
                        None => {
                            let written = match self.fences.get(&cp.session) {
                                Some(owner) => {
                                    let fence = Fence { owner };
                                    self.store.commit_fenced(fence, &[], &[], &[], Some(&cp))
                                }
                                None => self.store.commit_checkpoint(&cp),
                            };
                            written.map(|()| *cp).map_err(WorkerError::Store)
                        }
                    };
                    // The drive may have been cancelled meanwhile: nobody to tell.
                    let _ = reply.send(result);
                }
                Cmd::Tasks(tasks, reply) => {
                    let result = self.write(&tasks, &[], &[]).map_err(WorkerError::Store);
                    let _ = reply.send(result);
                }
                Cmd::Fence(session, Some(owner)) => {
                    self.fences.insert(session, owner);
                }
                Cmd::Fence(session, None) => {
                    self.fences.remove(&session);
                }
                Cmd::Settle(session, reply) => {
                    let result = self.take_lost(&session, None).map_or(Ok(()), Err);
                    let _ = reply.send(result);
                }
                Cmd::Forget(session) => self.forget(&session),
                Cmd::Call(job) | Cmd::CallFor(_, job) => job(self.store.as_mut()),
                Cmd::Barrier(reached) => {
                    let _ = reached.send(());
                }
                Cmd::Close(done) => {
                    self.close_lanes();
                    drop(self.store);
                    let _ = done.send(());
                    return;
                }
            }
        }
    }

    /// With lanes, sends what names a session to its lane, and waits for every lane to be done
    /// with what was sent before a call naming none; returns what this thread does itself.
    fn dispatch(&mut self, cmd: Cmd) -> Option<Cmd> {
        if self.lanes.is_empty() {
            return Some(cmd);
        }
        let lane = match &cmd {
            Cmd::Record(r) => self.lane(r.session()),
            Cmd::Checkpoint(cp, _) => self.lane(&cp.session),
            Cmd::Settle(session, _)
            | Cmd::Forget(session)
            | Cmd::CallFor(session, _)
            | Cmd::Fence(session, _) => self.lane(session),
            Cmd::Tasks(tasks, _) => match tasks.first() {
                Some(t) => self.lane(&t.session),
                None => return Some(cmd),
            },
            Cmd::Call(_) => {
                self.barrier();
                return Some(cmd);
            }
            Cmd::Barrier(_) | Cmd::Close(_) => return Some(cmd),
        };
        // A lane ends only when this thread does: it is there.
        let _ = lane.send(cmd);
        None
    }

    /// The lane of `session`.
    fn lane(&self, session: &str) -> &mpsc::Sender<Cmd> {
        &self.lanes[lane_of(session, self.lanes.len())]
    }

    /// Waits until every lane has done what was sent to it before.
    fn barrier(&self) {
        let reached: Vec<_> = self
            .lanes
            .iter()
            .filter_map(|lane| {
                let (tx, rx) = mpsc::sync_channel(1);
                lane.send(Cmd::Barrier(tx)).ok().map(|()| rx)
            })
            .collect();
        for rx in reached {
            // An error: the lane is gone (it panicked), nothing more of it to wait for.
            let _ = rx.recv();
        }
    }

    /// Closes the lanes after what was sent to them, and waits for them.
    fn close_lanes(&mut self) {
        for lane in std::mem::take(&mut self.lanes) {
            let (tx, rx) = oneshot::channel();
            if lane.send(Cmd::Close(tx)).is_ok() {
                let _ = rx.blocking_recv();
            }
        }
    }
}

/// Which of `lanes` lanes `session` goes to.
fn lane_of(session: &str, lanes: usize) -> usize {
    let mut h = DefaultHasher::new();
    session.hash(&mut h);
    usize::try_from(h.finish() % lanes.max(1) as u64).unwrap_or(0)
}

#[cfg(test)]
mod lane_tests;
#[cfg(test)]
mod tests;
mod writes;
