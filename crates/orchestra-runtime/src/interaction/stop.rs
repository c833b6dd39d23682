//! Stopping a session wherever it is driven, the way Ctrl-C stops `orchestra run`: the request
//! is recorded in the store ([`Engine::request_stop`]), where the process holding the session's
//! lease reads it with its next renewal (every third of its lease TTL), on this machine or
//! another; it finishes the checkpoint it is at, records the session as interrupted
//! (resumable) and lets it go. A plain drive of this machine (`orchestra run`, `resume`, a
//! drive started by `orchestra mcp` or the web UI) is also sent SIGINT, so it stops at once; a
//! worker is not (SIGINT stops the whole worker). A session of the queue that nothing drives
//! (queued, or its worker died) is interrupted at once.

use std::time::Duration;

use orchestra_store::{QUEUE_META, SessionRecord, SessionStatus, system_now_ms};
use serde::Serialize;
use serde_json::Value;

use super::InteractionError;
use crate::lease::{local_pid, owner_is_dead};
use crate::queue::WORKER_META;
use crate::stop_request::StopAsked;
use crate::views::sessions::record_status;
use crate::{Engine, RuntimeError};

/// How a session is being stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StopHow {
    /// The request is recorded and the driving process of this machine was sent SIGINT.
    Signalled,
    /// The request is recorded; the lease holder (of another machine, or a worker) stops when
    /// it next renews its lease.
    Requested,
    /// Nothing drove the session (it waited in the queue, or its worker died): it is
    /// interrupted already.
    Interrupted,
}

/// A session asked to stop.
#[derive(Clone, Debug, Serialize)]
pub struct Stopping {
    /// The session id.
    pub session: String,
    /// How it is being stopped.
    pub how: StopHow,
    /// The process (`pid@host`) that drives it, if one does.
    pub holder: Option<String>,
    /// The process of this machine that was sent SIGINT, if one was.
    pub pid: Option<i32>,
}

async fn record(engine: &Engine, session: &str) -> Result<SessionRecord, InteractionError> {
    let key = session.to_owned();
    engine
        .store()
        .call(move |s| s.find_session(&key))
        .await
        .map_err(|e| InteractionError::Runtime(RuntimeError::Store(e)))
}

/// Asks `session` (an id or a unique prefix) to stop, wherever it is driven; refused when
/// nothing drives it and it does not wait in the queue (completed, failed, paused, ...).
pub async fn stop(engine: &Engine, session: &str) -> Result<Stopping, InteractionError> {
    let rec = record(engine, session).await?;
    let asked = engine
        .request_stop(&rec.id)
        .await
        .map_err(InteractionError::Runtime)?;
    let holder = match asked {
        StopAsked::NotRunning(rec) => {
            return Err(InteractionError::NotRunning {
                session: rec.id.clone(),
                status: record_status(&rec, system_now_ms()).to_owned(),
            });
        }
        StopAsked::Interrupted => {
            return Ok(Stopping {
                session: rec.id,
                how: StopHow::Interrupted,
                holder: None,
                pid: None,
            });
        }
        StopAsked::Recorded { holder } => holder,
    };
    // A worker drives several sessions, and a call node's child is driven by its parent's
    // process (perhaps a worker): SIGINT would stop all of them.
    let shared = rec.parent_node.is_some()
        || rec.meta.get(WORKER_META).and_then(Value::as_str) == Some(holder.as_str());
    let Some(pid) = local_pid(&holder).filter(|_| !shared) else {
        return Ok(Stopping {
            session: rec.id,
            how: StopHow::Requested,
            holder: Some(holder),
            pid: None,
        });
    };
    rustix::process::kill_process(pid, rustix::process::Signal::INT).map_err(|e| {
        InteractionError::Signal {
            session: rec.id.clone(),
            pid: pid.as_raw_nonzero().get(),
            source: e.into(),
        }
    })?;
    Ok(Stopping {
        session: rec.id,
        how: StopHow::Signalled,
        holder: Some(holder),
        pid: Some(pid.as_raw_nonzero().get()),
    })
}

/// Waits up to `patience` until no live process holds the lease of `session` any more; its
/// record then, or `None` when it is still held. A session of the queue whose driver died
/// meanwhile (left `running`) is interrupted as the stop request asked.
pub async fn wait_released(
    engine: &Engine,
    session: &str,
    patience: Duration,
) -> Result<Option<SessionRecord>, InteractionError> {
    let deadline = tokio::time::Instant::now() + patience;
    loop {
        let rec = record(engine, session).await?;
        let held = rec
            .lease_holder(system_now_ms())
            .is_some_and(|o| !owner_is_dead(o));
        if !held {
            let left = rec.meta.contains_key(QUEUE_META)
                && matches!(rec.status, SessionStatus::Running | SessionStatus::Queued);
            if left {
                engine
                    .request_stop(&rec.id)
                    .await
                    .map_err(InteractionError::Runtime)?;
                return record(engine, &rec.id).await.map(Some);
            }
            return Ok(Some(rec));
        }
        if tokio::time::Instant::now() >= deadline {
            return Ok(None);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
