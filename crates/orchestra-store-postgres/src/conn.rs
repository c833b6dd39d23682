//! The connection's own thread. The `Store` trait is synchronous and its callers may be on a
//! tokio thread (the runtime's store thread is not, but nothing forbids it); rust-postgres's
//! blocking client runs a runtime of its own and must not be driven from inside another. So
//! the client lives on a plain thread that does nothing else, and every store call is a job
//! sent to it, whose result the caller waits for on a channel: blocking the caller never
//! blocks the connection.

use std::sync::mpsc;
use std::thread::JoinHandle;

use postgres::Client;

use crate::ctx::Ctx;
use orchestra_store::StoreError;

type Job = Box<dyn FnOnce(&mut Client, &Ctx) + Send>;

/// A handle on the connection thread. Dropping it closes the connection and joins the thread.
#[derive(Debug)]
pub(crate) struct Conn {
    jobs: Option<mpsc::Sender<Job>>,
    thread: Option<JoinHandle<()>>,
    database: String,
}

impl Conn {
    /// Starts the thread, which runs `open` (connect and migrate) first; fails with its error.
    /// When the connection is found closed (the server restarted, a network cut), the next
    /// job connects again with `open` first; a job that was cut off gets its error.
    pub(crate) fn start(
        ctx: Ctx,
        open: impl Fn(&Ctx) -> Result<Client, StoreError> + Send + 'static,
    ) -> Result<Self, StoreError> {
        let database = ctx.database.clone();
        let (jobs_tx, jobs_rx) = mpsc::channel::<Job>();
        let (ready_tx, ready_rx) = mpsc::sync_channel::<Result<(), StoreError>>(1);
        let thread = std::thread::Builder::new()
            .name("orchestra-postgres".to_owned())
            .spawn(move || {
                let mut client = match open(&ctx) {
                    Ok(client) => {
                        let _ = ready_tx.send(Ok(()));
                        client
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                while let Ok(job) = jobs_rx.recv() {
                    if client.is_closed() {
                        match open(&ctx) {
                            Ok(fresh) => {
                                tracing::info!(database = %ctx.database, "connected again");
                                client = fresh;
                            }
                            // The job runs on the closed client and reports it.
                            Err(e) => tracing::warn!(database = %ctx.database, error = %e, "cannot connect again"),
                        }
                    }
                    job(&mut client, &ctx);
                }
            })
            .map_err(|source| StoreError::Backend {
                database: database.clone(),
                op: "start its connection thread",
                source: source.into(),
            })?;
        let conn = Conn {
            jobs: Some(jobs_tx),
            thread: Some(thread),
            database,
        };
        ready_rx.recv().map_err(|_| conn.stopped())??;
        Ok(conn)
    }

    /// Runs `job` on the connection thread and returns its result.
    pub(crate) fn call<T: Send + 'static>(
        &self,
        job: impl FnOnce(&mut Client, &Ctx) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (tx, rx) = mpsc::sync_channel(1);
        let jobs = self.jobs.as_ref().ok_or_else(|| self.stopped())?;
        jobs.send(Box::new(move |client: &mut Client, ctx: &Ctx| {
            let _ = tx.send(job(client, ctx));
        }))
        .map_err(|_| self.stopped())?;
        rx.recv().map_err(|_| self.stopped())?
    }

    fn stopped(&self) -> StoreError {
        StoreError::Backend {
            database: self.database.clone(),
            op: "reach its connection thread",
            source: "the connection thread stopped".into(),
        }
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        drop(self.jobs.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
