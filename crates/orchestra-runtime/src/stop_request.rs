//! Stop requests kept in the store (`orchestra stop`, the web UI's stop button), so a session
//! can be stopped from any machine sharing the database: recorded for a session a live process
//! drives (that process reads it with its next lease renewal, see [`crate::lease`], and stops
//! as Ctrl-C stops it), applied at once to a session of the queue that nothing drives (it is
//! interrupted, so no worker claims it), honoured by a worker that claims a session carrying
//! one, and withdrawn when the session is resumed.

use orchestra_store::{
    LeaseOutcome, QUEUE_META, STOP_META, SessionRecord, SessionStatus, StopRequest, Store,
    StoreError, system_now_ms,
};
use serde_json::Value;

use crate::engine::Engine;
use crate::error::RuntimeError;
use crate::lease::owner_is_dead;

/// What recording a stop request did.
#[derive(Clone, Debug, PartialEq)]
pub enum StopAsked {
    /// Recorded: `holder` (`pid@host`) drives the session and stops at its next lease renewal.
    Recorded {
        /// The lease holder.
        holder: String,
    },
    /// Nothing drove the session (it waited in the queue, or its worker died): it is
    /// interrupted now.
    Interrupted,
    /// Nothing drives the session and it is not waiting in the queue: there is nothing to stop.
    NotRunning(Box<SessionRecord>),
}

/// The note of a session a stop request interrupted before anything drove it.
fn undriven_note(req: &StopRequest) -> String {
    format!(
        "stopped by {} while no worker drove it; resume it to go on",
        req.by
    )
}

impl Engine {
    /// Asks the session with exactly this id to stop (see the module's documentation).
    pub async fn request_stop(&self, id: &str) -> Result<StopAsked, RuntimeError> {
        let (id, owner, ttl) = (id.to_owned(), self.owner.clone(), self.lease_ttl);
        let req = StopRequest {
            by: owner.clone(),
            at_ms: system_now_ms(),
        };
        let asked = self
            .store
            .call(move |s| {
                let rec = s.session(&id)?.ok_or_else(|| StoreError::not_found(&id))?;
                let live = |o: &String| !owner_is_dead(o);
                if let Some(holder) = rec.lease_holder(system_now_ms()).map(str::to_owned)
                    && live(&holder)
                {
                    s.set_session_meta(&id, STOP_META, &req.to_value())?;
                    return Ok(StopAsked::Recorded { holder });
                }
                let waiting = matches!(rec.status, SessionStatus::Queued | SessionStatus::Running);
                if !rec.meta.contains_key(QUEUE_META) || !waiting {
                    return Ok(StopAsked::NotRunning(Box::new(rec)));
                }
                // Take the lease so that no worker claims it meanwhile (over a dead process of
                // this machine, as a drive would).
                let mut taken = s.acquire_lease(&id, &owner, ttl)?;
                if let LeaseOutcome::HeldBy { owner: dead, .. } = &taken
                    && owner_is_dead(dead)
                {
                    s.release_lease(&id, dead)?;
                    taken = s.acquire_lease(&id, &owner, ttl)?;
                }
                s.set_session_meta(&id, STOP_META, &req.to_value())?;
                if let LeaseOutcome::HeldBy { owner: holder, .. } = taken {
                    // A worker claimed it just now: it reads the request as it renews.
                    return Ok(StopAsked::Recorded { holder });
                }
                s.set_status(&id, SessionStatus::Interrupted, Some(&undriven_note(&req)))?;
                s.release_lease(&id, &owner)?;
                Ok(StopAsked::Interrupted)
            })
            .await?;
        Ok(asked)
    }

    /// A worker claimed `rec`, which carries a stop request: it is interrupted without being
    /// driven and its lease released. Returns its note.
    pub(crate) async fn honour_stop(
        &self,
        rec: &SessionRecord,
        req: &StopRequest,
    ) -> Result<String, RuntimeError> {
        let (id, owner, note) = (rec.id.clone(), self.owner.clone(), undriven_note(req));
        let stored = note.clone();
        self.store
            .call(move |s| {
                s.set_status(&id, SessionStatus::Interrupted, Some(&stored))?;
                s.release_lease(&id, &owner)
            })
            .await?;
        Ok(note)
    }
}

/// Withdraws the stop request pending on `rec`, if any: a resumed session is not stopped at once.
pub(crate) fn withdraw(s: &mut dyn Store, rec: &SessionRecord) -> Result<(), StoreError> {
    if StopRequest::of(rec).is_some() {
        s.set_session_meta(&rec.id, STOP_META, &Value::Null)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::time::Duration;

    use orchestra_store::MemoryStore;
    use tokio::sync::watch;

    use super::*;
    use crate::queue::{WorkerEvent, WorkerOptions};
    use crate::store_worker::StoreHandle;

    const TTL: Duration = Duration::from_secs(30);

    /// An engine over a memory store holding the queued session `q` and the plain session `p`.
    async fn engine() -> Engine {
        let store = StoreHandle::spawn(Box::new(MemoryStore::new())).unwrap();
        let new = |id: &str| crate::testing::new_session(id, "p");
        let (q, p) = (new("q"), new("p"));
        store
            .call(move |s| {
                s.enqueue_session(&q)?;
                s.create_session(&p)
            })
            .await
            .unwrap();
        Engine::with_store(store)
    }

    async fn rec(engine: &Engine, id: &'static str) -> SessionRecord {
        engine
            .store()
            .call(move |s| s.find_session(id))
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn a_queued_session_is_interrupted_at_once_and_never_claimed() {
        let engine = engine().await;
        assert_eq!(
            engine.request_stop("q").await.unwrap(),
            StopAsked::Interrupted
        );
        let q = rec(&engine, "q").await;
        assert_eq!(q.status, SessionStatus::Interrupted);
        assert_eq!(q.lease_owner, None);
        assert_eq!(
            StopRequest::of(&q).map(|r| r.by),
            Some(engine.owner().to_owned())
        );
        assert!(engine.claim().await.unwrap().is_none());
        // Not running, not in the queue: nothing to stop.
        assert!(matches!(
            engine.request_stop("p").await.unwrap(),
            StopAsked::NotRunning(r) if r.id == "p"
        ));
        assert!(matches!(
            engine.request_stop("q").await.unwrap(),
            StopAsked::NotRunning(_)
        ));
    }

    #[tokio::test]
    async fn a_held_session_gets_the_request_and_is_not_requeued() {
        let engine = engine().await;
        engine
            .store()
            .call(|s| s.claim_session("1@elsewhere", TTL))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            engine.request_stop("q").await.unwrap(),
            StopAsked::Recorded {
                holder: "1@elsewhere".into()
            }
        );
        let renewal = engine
            .store()
            .call(|s| s.renew_lease_checked("q", "1@elsewhere", TTL))
            .await
            .unwrap();
        assert!(matches!(
            renewal,
            orchestra_store::Renewal::StopRequested(_)
        ));
        // The holder stops; its worker, stopping too, does not put it back in the queue.
        engine
            .store()
            .call(|s| {
                s.set_status("q", SessionStatus::Interrupted, None)?;
                s.release_lease("q", "1@elsewhere")
            })
            .await
            .unwrap();
        assert!(!engine.requeue("q", "requeued").await.unwrap());
        // Resumed: the request is withdrawn.
        let q = rec(&engine, "q").await;
        engine.store().call(move |s| withdraw(s, &q)).await.unwrap();
        assert_eq!(StopRequest::of(&rec(&engine, "q").await), None);
        assert!(engine.requeue("q", "requeued").await.unwrap());
    }

    #[tokio::test]
    async fn a_worker_interrupts_a_claimed_session_carrying_a_request_without_driving_it() {
        let engine = engine().await;
        let req = StopRequest {
            by: "2@b".into(),
            at_ms: 1,
        };
        engine
            .store()
            .call(move |s| s.set_session_meta("q", STOP_META, &req.to_value()))
            .await
            .unwrap();
        let heard = Mutex::new(Vec::new());
        let on = |ev: WorkerEvent| heard.lock().unwrap().push(ev);
        let wopts = WorkerOptions {
            concurrency: 1,
            poll: Duration::from_millis(10),
            until_idle: true,
        };
        let (_stop, stop_rx) = watch::channel(false);
        let drive = |_: &SessionRecord| -> crate::engine::DriveOptions {
            panic!("a session asked to stop is not driven")
        };
        engine.work(wopts, &drive, stop_rx, &on).await;
        let heard = heard.into_inner().unwrap();
        assert!(
            matches!(&heard[..], [WorkerEvent::Finished { status: SessionStatus::Interrupted, note: Some(n), .. }] if n.contains("stopped by 2@b")),
            "{heard:?}"
        );
        let q = rec(&engine, "q").await;
        assert_eq!(
            (q.status, q.lease_owner),
            (SessionStatus::Interrupted, None)
        );
    }
}
