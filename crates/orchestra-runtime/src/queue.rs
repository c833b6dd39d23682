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
//! the sessions re-queued for another worker — except those someone asked to stop
//! ([`crate::stop_request`]): they stay interrupted, and a worker that claims one carrying a
//! stop request interrupts it without driving it.

use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use futures_util::stream::FuturesUnordered;
use serde_json::{Map, Value};
use tokio::sync::watch;

use orchestra_graph::Compiled;
use orchestra_store::{LeaseOutcome, QUEUE_META, SessionRecord, SessionStatus, StopRequest};

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
    /// Another worker took the session over while this one was stalled past its lease (a
    /// pause, a partition): the drive stopped, its step's results dropped unwritten; the
    /// session is left to the other worker as it is.
    LeaseLost {
        /// The session id.
        session: String,
        /// Who holds its lease now (`pid@host`), if anyone.
        holder: Option<String>,
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
    /// another process holds its lease, it completed or someone asked it to stop; returns
    /// whether it did. What `attach`
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
                let stop = StopRequest::of(&rec).is_some();
                if !rec.meta.contains_key(QUEUE_META)
                    || rec.status == SessionStatus::Completed
                    || stop
                {
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
        // Claims that failed in a row (the database is down): the next look waits longer.
        let mut failures = 0u32;
        loop {
            let mut idle = false;
            let mut wait = wopts.poll;
            while !stopping && running.len() < wopts.concurrency.max(1) {
                match self.claim().await {
                    Ok(Some(rec)) if let Some(req) = StopRequest::of(&rec) => {
                        // Asked to stop while nothing drove it (its worker died).
                        let started = Instant::now();
                        on(match self.honour_stop(&rec, &req).await {
                            Ok(note) => WorkerEvent::Finished {
                                session: rec.id,
                                status: SessionStatus::Interrupted,
                                note: Some(note),
                                duration: started.elapsed(),
                            },
                            Err(e) => WorkerEvent::Trouble {
                                session: Some(rec.id),
                                error: crate::error::error_chain(&e),
                            },
                        });
                    }
                    Ok(Some(rec)) => {
                        failures = 0;
                        on(WorkerEvent::Claimed {
                            session: rec.id.clone(),
                            pipeline: rec.pipeline.clone(),
                            previous_worker: rec
                                .meta
                                .get(WORKER_META)
                                .and_then(Value::as_str)
                                .map(str::to_owned),
                        });
                        let (engine, opts, id) = (self.clone(), drive(&rec), rec.id.clone());
                        // A task of its own: it goes on while this loop claims or reports.
                        let task =
                            tokio::spawn(async move { engine.drive_claimed(rec, opts).await });
                        let started = Instant::now();
                        running.push(async move { (id, started, task.await) });
                    }
                    Ok(None) => {
                        failures = 0;
                        idle = true;
                        break;
                    }
                    Err(e) => {
                        // Not idle (the queue may be full): look again after a backoff, so a
                        // database that is down is neither hammered nor taken for an empty queue.
                        wait = claim_backoff(wopts.poll, failures);
                        failures = failures.saturating_add(1);
                        on(WorkerEvent::Trouble {
                            session: None,
                            error: format!(
                                "{}; trying again in {}",
                                crate::error::error_chain(&e),
                                orchestra_spec::fmt_duration(wait)
                            ),
                        });
                        break;
                    }
                }
            }
            if running.is_empty() && (stopping || (idle && wopts.until_idle)) {
                return;
            }
            let claimed_nothing = idle || failures > 0;
            tokio::select! {
                Some((id, began, joined)) = running.next(), if !running.is_empty() => match joined {
                    Ok((id, started, driven)) => {
                        self.finished(&id, started, driven, stopping, on).await;
                    }
                    Err(e) => self.crashed(&id, began, e, on).await,
                },
                changed = stop.changed(), if !stopping => {
                    // A dropped sender stops the worker too.
                    stopping = changed.is_err() || *stop.borrow();
                }
                () = tokio::time::sleep(wait), if claimed_nothing && !stopping => {}
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
            .call_for(&id, move |s| {
                s.set_session_meta(&sid, WORKER_META, &Value::String(owner))
            })
            .await;
        let driven = match marked {
            // A stop request made after the claim is kept: the drive reads it as it renews.
            Ok(()) => {
                self.resume_from(&id, &crate::edit::Edit::default(), &opts, false)
                    .await
            }
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
            Err(RuntimeError::Store(ref e))
                if let Some(orchestra_store::StoreError::LeaseLost { holder, .. }) =
                    e.store_error() =>
            {
                // Neither requeued nor failed, its lease not released: it is another's now.
                on(WorkerEvent::LeaseLost {
                    session: id.to_owned(),
                    holder: holder.clone(),
                });
            }
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
            Err(e) if e.is_connection_lost() => {
                // The database went away mid-drive (restarted, stopped): not the session's
                // fault. Back to the queue when the database is back; else its lease expires and
                // a worker claims it again then. What was recorded stays; the step is redone.
                let requeued = self
                    .requeue(id, "requeued: its worker lost the database")
                    .await;
                on(match requeued {
                    Ok(_) => WorkerEvent::Requeued {
                        session: id.to_owned(),
                    },
                    Err(also) => WorkerEvent::Trouble {
                        session: Some(id.to_owned()),
                        error: format!(
                            "lost the database while driving it ({}); it is claimed again once \
                             its lease expires: {}",
                            crate::error::error_chain(&e),
                            crate::error::error_chain(&also)
                        ),
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

impl Engine {
    /// A drive that panicked (or whose task was cancelled): its lease renewal stopped with it
    /// ([`watch_lease`](crate::lease::watch_lease)'s guard); the session is failed with the panic
    /// as its error and its lease released, unless another worker holds it by now — never left
    /// `running` to be claimed, and crash, again and again.
    async fn crashed(
        &self,
        id: &str,
        started: Instant,
        e: tokio::task::JoinError,
        on: &(dyn Fn(WorkerEvent) + Sync),
    ) {
        let what = if e.is_panic() {
            let panic = e.into_panic();
            format!(
                "its drive panicked: {}",
                crate::error::panic_message(&*panic)
            )
        } else {
            "its drive was cancelled".to_owned()
        };
        let (sid, owner, note) = (id.to_owned(), self.owner.clone(), what.clone());
        let failed = self
            .store
            .call_for(id, move |s| {
                let rec = s.find_session(&sid)?;
                let ours = match rec.lease_holder(orchestra_store::system_now_ms()) {
                    Some(holder) => holder == owner,
                    None => rec.lease_owner.is_none() || rec.lease_owner == Some(owner.clone()),
                };
                let done = matches!(
                    rec.status,
                    SessionStatus::Completed | SessionStatus::Failed | SessionStatus::Stopped
                );
                if !ours || done {
                    return Ok(false);
                }
                s.set_status(&sid, SessionStatus::Failed, Some(&note))?;
                s.release_lease(&sid, &owner)?;
                Ok(true)
            })
            .await;
        match failed {
            Ok(true) => on(WorkerEvent::Finished {
                session: id.to_owned(),
                status: SessionStatus::Failed,
                note: Some(what),
                duration: started.elapsed(),
            }),
            Ok(false) => on(WorkerEvent::Trouble {
                session: Some(id.to_owned()),
                error: what,
            }),
            Err(e) => on(WorkerEvent::Trouble {
                session: Some(id.to_owned()),
                error: format!(
                    "{what}; cannot record it: {}",
                    crate::error::error_chain(&e)
                ),
            }),
        }
    }
}

/// How long a worker waits before claiming again after `failures` claims failed in a row
/// (besides the one that just failed): `poll` doubled each time (at least 100ms), at most 30s,
/// with equal jitter so that workers cut off together do not come back together.
fn claim_backoff(poll: Duration, failures: u32) -> Duration {
    orchestra_providers::Backoff {
        base: poll.max(Duration::from_millis(100)),
        cap: CLAIM_BACKOFF_CAP,
        jitter: orchestra_providers::Jitter::Equal,
    }
    .delay(failures)
}

/// The longest wait between claims while the database fails.
const CLAIM_BACKOFF_CAP: Duration = Duration::from_secs(30);

/// Session meta key: the worker (`pid@host`) that last claimed a session of the queue.
pub const WORKER_META: &str = "worker";

#[cfg(test)]
mod tests;
