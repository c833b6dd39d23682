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
    NotRunning(SessionRecord),
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
                    return Ok(StopAsked::NotRunning(rec));
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
