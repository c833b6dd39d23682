//! Stopping a session another process drives, the way Ctrl-C stops `orchestra run`: the
//! process holding the session's lease (`pid@host`, of this machine) is sent SIGINT; it
//! finishes the checkpoint it is at, records the session as interrupted (resumable) and exits.

use std::time::Duration;

use orchestra_store::{SessionRecord, system_now_ms};
use serde::Serialize;

use super::InteractionError;
use crate::lease::{lease_owner, owner_is_dead};
use crate::views::sessions::record_status;
use crate::{Engine, RuntimeError};

/// The process asked to stop.
#[derive(Clone, Debug, Serialize)]
pub struct Stopping {
    /// The session id.
    pub session: String,
    /// The process that drives it.
    pub pid: i32,
}

async fn record(engine: &Engine, session: &str) -> Result<SessionRecord, InteractionError> {
    let key = session.to_owned();
    engine
        .store()
        .call(move |s| s.find_session(&key))
        .await
        .map_err(|e| InteractionError::Runtime(RuntimeError::Store(e)))
}

/// Sends SIGINT to the live process of this machine that drives `session` (an id or a unique
/// prefix); refused when no live process holds the session's lease or one of another machine
/// does.
pub async fn stop(engine: &Engine, session: &str) -> Result<Stopping, InteractionError> {
    let rec = record(engine, session).await?;
    let holder = rec.lease_holder(system_now_ms()).map(str::to_owned);
    let not_running = |rec: &SessionRecord| InteractionError::NotRunning {
        session: rec.id.clone(),
        status: record_status(rec, system_now_ms()).to_owned(),
    };
    let Some(owner) = holder.filter(|o| !owner_is_dead(o)) else {
        return Err(not_running(&rec));
    };
    let me = lease_owner();
    let this_host = me.split_once('@').map(|(_, h)| h).unwrap_or_default();
    let pid = match owner.split_once('@') {
        Some((pid, host)) if host == this_host => pid.parse::<i32>().ok(),
        _ => None,
    };
    let Some(pid) = pid.and_then(rustix::process::Pid::from_raw) else {
        return Err(InteractionError::Elsewhere {
            session: rec.id,
            owner,
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
        pid: pid.as_raw_nonzero().get(),
    })
}

/// Waits up to `patience` until no live process holds the lease of `session` any more; its
/// record then, or `None` when it is still held.
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
            return Ok(Some(rec));
        }
        if tokio::time::Instant::now() >= deadline {
            return Ok(None);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
