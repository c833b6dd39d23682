//! The queue: sessions stored to be driven by workers (`orchestra run --queue`), and the worker
//! loop (`orchestra worker`) that claims them, drives several at once through the path `resume`
//! takes, and hands them back when it stops.
//!
//! A session of the queue carries the meta key [`QUEUE_META`] for life. A worker claims one
//! atomically ([`Store::claim_session`](orchestra_store::Store::claim_session): `queued`, or
//! `running` with an expired lease — its worker died) and resumes it from its last checkpoint,
//! so tasks that finished before a worker died are not run again. A session that pauses for a
//! human is released (status `paused`); `orchestra attach` answers it and hands it back
//! ([`Engine::requeue`]). On shutdown the running drives are cancelled (the agents of the
//! current step are cut off; their finished tasks stay recorded), their leases released and
//! the sessions re-queued for another worker.

use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use futures_util::stream::FuturesUnordered;
use serde_json::{Map, Value};
use tokio::sync::watch;

use orchestra_graph::Compiled;
use orchestra_store::{LeaseOutcome, QUEUE_META, SessionRecord, SessionStatus};

use crate::engine::{DriveOptions, Engine};
use crate::error::RuntimeError;
use crate::ids::new_session_id;
use crate::outcome::{Finish, Outcome};

/// How a worker works.
#[derive(Clone, Copy, Debug)]
pub struct WorkerOptions {
    /// How many sessions it drives at once (at least 1).
    pub concurrency: usize,
    /// How long it waits before looking again when nothing was claimable.
    pub poll: Duration,
    /// Return once nothing is claimable and no drive runs, instead of waiting for more.
    pub until_idle: bool,
}

/// What a worker did, for its caller to show.
#[derive(Clone, Debug, PartialEq)]
pub enum WorkerEvent {
    /// It claimed a session and starts driving it.
    Claimed {
        /// The session id.
        session: String,
        /// Its pipeline's name.
        pipeline: String,
        /// The worker (`pid@host`) that drove it before, if one did (it died, or stopped and
        /// re-queued it).
        previous_worker: Option<String>,
    },
    /// A drive ended (the session's status says how).
    Finished {
        /// The session id.
        session: String,
        /// Its status now.
        status: SessionStatus,
        /// Why it failed, stopped or paused.
        note: Option<String>,
        /// How long this worker drove it.
        duration: Duration,
    },
    /// The worker stopped while driving it; it waits in the queue again.
    Requeued {
        /// The session id.
        session: String,
    },
    /// Something failed that is not a session's own outcome (the database); the worker goes on.
    Trouble {
        /// The session concerned, if any.
        session: Option<String>,
        /// What failed.
        error: String,
    },
}

impl Engine {
    /// Stores a new session of `compiled` in the queue (status `queued`) without driving it;
    /// returns its id. A worker ([`Engine::work`]) drives it.
    pub async fn enqueue(
        &self,
        compiled: &Compiled,
        inputs: Map<String, Value>,
        name: Option<String>,
    ) -> Result<String, RuntimeError> {
        let id = new_session_id();
        let new = self.new_session(&id, compiled, &inputs, name, None)?;
        self.store.call(move |s| s.enqueue_session(&new)).await?;
        Ok(id)
    }

    /// Puts a session of the queue back in it (status `queued`, `note` as its note) unless
    /// another process holds its lease or it completed; returns whether it did. What `attach`
    /// does once the human's turn is over, and a worker for the sessions it stopped driving.
    pub async fn requeue(&self, session: &str, note: &str) -> Result<bool, RuntimeError> {
        let (id, owner, ttl, note) = (
            session.to_owned(),
            self.owner.clone(),
            self.lease_ttl,
            note.to_owned(),
        );
        let done = self
            .store
            .call(move |s| {
                let rec = s.find_session(&id)?;
                if !rec.meta.contains_key(QUEUE_META) || rec.status == SessionStatus::Completed {
                    return Ok(false);
                }
                if let LeaseOutcome::HeldBy { .. } = s.acquire_lease(&rec.id, &owner, ttl)? {
                    return Ok(false);
                }
                s.set_status(&rec.id, SessionStatus::Queued, Some(&note))?;
                s.release_lease(&rec.id, &owner)?;
                Ok(true)
            })
            .await?;
        Ok(done)
    }

    /// Claims a session of the queue for this engine's owner, if one is claimable.
    pub async fn claim(&self) -> Result<Option<SessionRecord>, RuntimeError> {
        let (owner, ttl) = (self.owner.clone(), self.lease_ttl);
        Ok(self
            .store
            .call(move |s| s.claim_session(&owner, ttl))
            .await?)
    }

    /// The worker loop: claims sessions of the queue and drives up to `wopts.concurrency` at
    /// once, each with the options `drive` gives it, until `stop` turns true. Then the running
    /// drives are cancelled (`drive`'s options should carry `stop` as their `cancel`), their
    /// sessions re-queued, and it returns once all have ended. `on` hears what happens.
    pub async fn work(
        &self,
        wopts: WorkerOptions,
        drive: &(dyn Fn(&SessionRecord) -> DriveOptions + Sync),
        mut stop: watch::Receiver<bool>,
        on: &(dyn Fn(WorkerEvent) + Sync),
    ) {
        let mut running = FuturesUnordered::new();
        let mut stopping = *stop.borrow();
        loop {
            let mut idle = false;
            while !stopping && running.len() < wopts.concurrency.max(1) {
                match self.claim().await {
                    Ok(Some(rec)) => {
                        on(WorkerEvent::Claimed {
                            session: rec.id.clone(),
                            pipeline: rec.pipeline.clone(),
                            previous_worker: rec
                                .meta
                                .get(WORKER_META)
                                .and_then(Value::as_str)
                                .map(str::to_owned),
                        });
                        let (engine, opts) = (self.clone(), drive(&rec));
                        // A task of its own: it goes on while this loop claims or reports.
                        running.push(tokio::spawn(async move {
                            engine.drive_claimed(rec, opts).await
                        }));
                    }
                    Ok(None) => {
                        idle = true;
                        break;
                    }
                    Err(e) => {
                        on(WorkerEvent::Trouble {
                            session: None,
                            error: crate::error::error_chain(&e),
                        });
                        idle = true;
                        break;
                    }
                }
            }
            if running.is_empty() && (stopping || (idle && wopts.until_idle)) {
                return;
            }
            tokio::select! {
                Some(joined) = running.next(), if !running.is_empty() => match joined {
                    Ok((id, started, driven)) => {
                        self.finished(&id, started, driven, stopping, on).await;
                    }
                    Err(e) => on(WorkerEvent::Trouble {
                        session: None,
                        error: format!("a drive panicked: {e}"),
                    }),
                },
                changed = stop.changed(), if !stopping => {
                    // A dropped sender stops the worker too.
                    stopping = changed.is_err() || *stop.borrow();
                }
                () = tokio::time::sleep(wopts.poll), if idle && !stopping => {}
            }
        }
    }

    /// Drives a claimed session as `resume` does, after recording this worker in its meta
    /// ([`WORKER_META`]).
    async fn drive_claimed(
        &self,
        rec: SessionRecord,
        opts: DriveOptions,
    ) -> (String, Instant, Result<Outcome, RuntimeError>) {
        let started = Instant::now();
        let id = rec.id.clone();
        let (sid, owner) = (id.clone(), self.owner.clone());
        let marked = self
            .store
            .call(move |s| s.set_session_meta(&sid, WORKER_META, &Value::String(owner)))
            .await;
        let driven = match marked {
            Ok(()) => self.resume(&id, &opts).await,
            Err(e) => Err(e.into()),
        };
        (id, started, driven)
    }

    /// Reports how a drive ended; re-queues a session the worker's stop interrupted, and fails
    /// one whose drive could not start (so it is not claimed again and again).
    async fn finished(
        &self,
        id: &str,
        started: Instant,
        driven: Result<Outcome, RuntimeError>,
        stopping: bool,
        on: &(dyn Fn(WorkerEvent) + Sync),
    ) {
        let duration = started.elapsed();
        match driven {
            Ok(out) if stopping && matches!(out.finish, Finish::Interrupted) => {
                match self.requeue(id, "requeued: its worker stopped").await {
                    Ok(true) => on(WorkerEvent::Requeued {
                        session: id.to_owned(),
                    }),
                    Ok(false) => on(WorkerEvent::Finished {
                        session: id.to_owned(),
                        status: out.finish.status(),
                        note: out.finish.note(),
                        duration,
                    }),
                    Err(e) => on(WorkerEvent::Trouble {
                        session: Some(id.to_owned()),
                        error: crate::error::error_chain(&e),
                    }),
                }
            }
            Ok(out) => on(WorkerEvent::Finished {
                session: id.to_owned(),
                status: out.finish.status(),
                note: out.finish.note(),
                duration,
            }),
            Err(RuntimeError::Store(crate::WorkerError::Store(
                orchestra_store::StoreError::CheckpointExists { .. },
            ))) => {
                // Another driver committed this step first (it held the lease until it lost
                // it): nothing is lost, the session goes back to the queue.
                let requeued = self.requeue(id, "requeued: another worker raced it").await;
                on(match requeued {
                    Ok(_) => WorkerEvent::Requeued {
                        session: id.to_owned(),
                    },
                    Err(e) => WorkerEvent::Trouble {
                        session: Some(id.to_owned()),
                        error: crate::error::error_chain(&e),
                    },
                });
            }
            Err(e) => {
                // The drive could not start or the store failed: fail the session while this
                // worker still holds it, so it is not claimed again and again.
                let (sid, owner) = (id.to_owned(), self.owner.clone());
                let ours = self
                    .store
                    .call(move |s| Ok(s.find_session(&sid)?.lease_owner == Some(owner)))
                    .await
                    .unwrap_or(false);
                if ours && let Err(also) = self.record_failure(id, &e).await {
                    tracing::warn!(session = id, error = %also, "cannot record the session's failure");
                }
                on(WorkerEvent::Finished {
                    session: id.to_owned(),
                    status: SessionStatus::Failed,
                    note: Some(crate::error::error_chain(&e)),
                    duration,
                });
            }
        }
    }
}

/// Session meta key: the worker (`pid@host`) that last claimed a session of the queue.
pub const WORKER_META: &str = "worker";
