//! The connections' own threads: a small pool. The `Store` trait is synchronous and its callers
//! may be on a tokio thread (the runtime's store threads are not, but nothing forbids it);
//! rust-postgres's blocking client runs a runtime of its own and must not be driven from inside
//! another. So each client lives on a plain thread that does nothing else, and every store call
//! is a job sent to the pool's one queue, whose result the caller waits for on a channel:
//! blocking the caller never blocks a connection.
//!
//! The pool starts with one connection and grows, up to its size, when more calls are in
//! flight than connections: a command making one call at a time keeps one connection, a worker
//! driving several sessions gets one per call in flight. Every job is one whole transaction on one
//! connection (nothing of a connection's session state is relied on across jobs beyond what
//! `open` sets), so which connection runs it does not matter.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, mpsc};
use std::thread::JoinHandle;

use postgres::Client;

use crate::ctx::Ctx;
use orchestra_store::StoreError;

type Job = Box<dyn FnOnce(&mut Client, &Ctx) + Send>;

/// Connects and prepares a connection (the schema brought up to date, the session set up).
type Open = dyn Fn(&Ctx) -> Result<Client, StoreError> + Send + Sync;

/// Where the first connection thread says whether it connected.
type Ready = mpsc::SyncSender<Result<(), StoreError>>;

/// What the connection threads share.
struct Shared {
    jobs: Mutex<mpsc::Receiver<Job>>,
    ctx: Ctx,
    open: Box<Open>,
    /// Connection threads running (at most `size`).
    threads: AtomicUsize,
    /// Calls sent and not yet answered.
    busy: AtomicUsize,
    /// The most connection threads: the pool's size, lowered to what the server accepted when
    /// one more connection could not be opened (its `max_connections`), so that calls do not
    /// keep trying.
    limit: AtomicUsize,
}

/// A handle on the pool. Dropping it closes the connections and joins their threads.
pub(crate) struct Conn {
    jobs: Option<mpsc::Sender<Job>>,
    shared: Arc<Shared>,
    handles: Mutex<Vec<JoinHandle<()>>>,
    database: String,
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conn")
            .field("database", &self.database)
            .field("limit", &self.shared.limit.load(Ordering::SeqCst))
            .field("connections", &self.connections())
            .finish_non_exhaustive()
    }
}

impl Conn {
    /// Starts the first connection thread, which runs `open` (connect and migrate) first; fails
    /// with its error. Up to `size` connections are opened as calls need them, each by `open`
    /// on its own thread; one that cannot connect leaves its job to the others. When a
    /// connection is found closed (the server restarted, a network cut), its next job connects
    /// again first; a job that was cut off gets its error.
    pub(crate) fn start(
        ctx: Ctx,
        size: usize,
        open: impl Fn(&Ctx) -> Result<Client, StoreError> + Send + Sync + 'static,
    ) -> Result<Self, StoreError> {
        let database = ctx.database.clone();
        let (jobs_tx, jobs_rx) = mpsc::channel::<Job>();
        let shared = Arc::new(Shared {
            jobs: Mutex::new(jobs_rx),
            ctx,
            open: Box::new(open),
            threads: AtomicUsize::new(1),
            busy: AtomicUsize::new(0),
            limit: AtomicUsize::new(size.max(1)),
        });
        let conn = Conn {
            jobs: Some(jobs_tx),
            shared,
            handles: Mutex::new(Vec::new()),
            database,
        };
        let (ready_tx, ready_rx) = mpsc::sync_channel(1);
        if let Err(e) = conn.spawn(Some(ready_tx)) {
            conn.shared.threads.fetch_sub(1, Ordering::SeqCst);
            return Err(e);
        }
        ready_rx.recv().map_err(|_| conn.stopped())??;
        Ok(conn)
    }

    /// Runs `job` on a connection and returns its result.
    pub(crate) fn call<T: Send + 'static>(
        &self,
        job: impl FnOnce(&mut Client, &Ctx) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (tx, rx) = mpsc::sync_channel(1);
        let jobs = self.jobs.as_ref().ok_or_else(|| self.stopped())?;
        let shared = Arc::clone(&self.shared);
        let busy = self.shared.busy.fetch_add(1, Ordering::SeqCst) + 1;
        let sent = jobs.send(Box::new(move |client: &mut Client, ctx: &Ctx| {
            let result = job(client, ctx);
            // Done before the caller hears back, so that its next call finds this connection
            // free rather than opening another.
            shared.busy.fetch_sub(1, Ordering::SeqCst);
            let _ = tx.send(result);
        }));
        if sent.is_err() {
            self.shared.busy.fetch_sub(1, Ordering::SeqCst);
            return Err(self.stopped());
        }
        self.grow(busy);
        rx.recv().map_err(|_| self.stopped())?
    }

    /// Opens connections up to the pool's size now, rather than as calls need them; fails with
    /// the first error of a connection that could not be opened.
    pub(crate) fn open_all(&self) -> Result<(), StoreError> {
        let s = &self.shared;
        let mut opening = Vec::new();
        while s
            .threads
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n < s.limit.load(Ordering::SeqCst)).then_some(n + 1)
            })
            .is_ok()
        {
            let (ready_tx, ready_rx) = mpsc::sync_channel(1);
            if let Err(e) = self.spawn(Some(ready_tx)) {
                s.threads.fetch_sub(1, Ordering::SeqCst);
                return Err(e);
            }
            opening.push(ready_rx);
        }
        opening
            .into_iter()
            .try_for_each(|ready| ready.recv().map_err(|_| self.stopped())?)
    }

    /// The connection threads running now.
    pub(crate) fn connections(&self) -> usize {
        self.shared.threads.load(Ordering::SeqCst)
    }

    /// Opens one more connection when there are more calls in flight (`busy`) than
    /// connections and the pool is not full.
    fn grow(&self, busy: usize) {
        let s = &self.shared;
        let grown = s
            .threads
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n < busy && n < s.limit.load(Ordering::SeqCst)).then_some(n + 1)
            })
            .is_ok();
        if grown && let Err(e) = self.spawn(None) {
            s.threads.fetch_sub(1, Ordering::SeqCst);
            tracing::warn!(database = %s.ctx.database, error = %e, "cannot add a connection");
        }
    }

    /// Starts a connection thread (counted in `threads` by the caller, who takes it back when
    /// this fails); with `ready`, it says there whether it connected.
    fn spawn(&self, ready: Option<Ready>) -> Result<(), StoreError> {
        let shared = Arc::clone(&self.shared);
        let handle = std::thread::Builder::new()
            .name("orchestra-postgres".to_owned())
            .spawn(move || serve(&shared, ready))
            .map_err(|source| StoreError::Backend {
                database: self.database.clone(),
                op: "start a connection thread",
                source: source.into(),
            })?;
        self.handles
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(handle);
        Ok(())
    }

    fn stopped(&self) -> StoreError {
        StoreError::Backend {
            database: self.database.clone(),
            op: "reach its connection thread",
            source: "the connection thread stopped".into(),
        }
    }
}

/// A connection thread: connects (when it cannot, it ends, leaving the jobs to the others, and
/// says so on `ready`, or else lowers the pool's limit), then runs jobs until the pool is
/// dropped.
/// The client never leaves its thread: it is dropped here too, outside any runtime.
fn serve(shared: &Shared, ready: Option<Ready>) {
    let ctx = &shared.ctx;
    let opened = (shared.open)(ctx);
    let mut client = match (opened, ready) {
        (Ok(c), Some(ready)) => {
            let _ = ready.send(Ok(()));
            c
        }
        (Ok(c), None) => {
            tracing::debug!(database = %ctx.database, "opened another connection");
            c
        }
        (Err(e), Some(ready)) => {
            shared.threads.fetch_sub(1, Ordering::SeqCst);
            let _ = ready.send(Err(e));
            return;
        }
        (Err(e), None) => {
            let now = shared.threads.fetch_sub(1, Ordering::SeqCst) - 1;
            shared.limit.fetch_min(now.max(1), Ordering::SeqCst);
            tracing::warn!(database = %ctx.database, error = %e, connections = now,
                "cannot add a connection; the pool stays at its connections");
            return;
        }
    };
    loop {
        let job = shared
            .jobs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .recv();
        let Ok(job) = job else { return };
        if client.is_closed() {
            match (shared.open)(ctx) {
                Ok(fresh) => {
                    tracing::info!(database = %ctx.database, "connected again");
                    client = fresh;
                }
                // The job runs on the closed client and reports it.
                Err(e) => {
                    tracing::warn!(database = %ctx.database, error = %e, "cannot connect again");
                }
            }
        }
        job(&mut client, ctx);
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        drop(self.jobs.take());
        let handles = std::mem::take(
            self.handles
                .get_mut()
                .unwrap_or_else(PoisonError::into_inner),
        );
        for handle in handles {
            let _ = handle.join();
        }
    }
}
