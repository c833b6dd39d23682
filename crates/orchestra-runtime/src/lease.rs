//! The lease that lets one process drive a session: taken at the start of a drive (over from a
//! dead process of this machine), renewed while it runs, released at its end.

use std::time::Duration;

use orchestra_store::{LeaseOutcome, Renewal, Store, StoreError};
use tokio::sync::watch;

use crate::engine::Engine;
use crate::error::RuntimeError;
use crate::store_worker::StoreHandle;

/// How long a lease lasts without renewal; it is renewed every third of that.
pub const LEASE_TTL: Duration = Duration::from_secs(30);

/// The variable that names this machine in lease owners (`pid@MACHINE`) instead of its
/// hostname: for machines sharing a database under one hostname (containers), where a process
/// of one would be taken for a process of the other.
pub const MACHINE_ENV: &str = "ORCHESTRA_MACHINE";

/// The name of this machine in lease owners: `$ORCHESTRA_MACHINE`, else the hostname (read once).
pub(crate) fn this_machine() -> &'static str {
    static MACHINE: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    MACHINE.get_or_init(|| {
        let named = std::env::var(MACHINE_ENV)
            .ok()
            .filter(|m| !m.trim().is_empty());
        let host = named.unwrap_or_else(|| {
            rustix::system::uname()
                .nodename()
                .to_string_lossy()
                .into_owned()
        });
        if host.is_empty() {
            "localhost".to_owned()
        } else {
            host
        }
    })
}

/// `pid@host` of this process.
pub(crate) fn lease_owner() -> String {
    format!("{}@{}", std::process::id(), this_machine())
}

/// The process id of a lease owner `pid@host` of this machine (`None` for another machine's).
pub(crate) fn local_pid(owner: &str) -> Option<rustix::process::Pid> {
    let (pid, host) = owner.split_once('@')?;
    if host != this_machine() {
        return None;
    }
    pid.parse::<i32>()
        .ok()
        .and_then(rustix::process::Pid::from_raw)
}

/// Whether the lease owner `pid@host` is a process of this machine that no longer exists.
pub fn owner_is_dead(owner: &str) -> bool {
    let Some(pid) = local_pid(owner) else {
        return false;
    };
    // Signal 0 checks existence; EPERM means it exists but belongs to someone else.
    matches!(
        rustix::process::test_kill_process(pid),
        Err(rustix::io::Errno::SRCH)
    )
}

/// Renews `owner`'s lease of session `id` before writes that end a drive (its status, its
/// failure), or fails with [`StoreError::LeaseLost`] naming the holder when another process
/// took it over: a renewed lease keeps others out for the few writes that follow, so a process
/// that stalled past its lease never overwrites the status of the one driving it now.
pub(crate) fn still_ours(
    s: &mut dyn Store,
    id: &str,
    owner: &str,
    ttl: Duration,
) -> Result<(), StoreError> {
    if s.renew_lease(id, owner, ttl)? {
        return Ok(());
    }
    Err(StoreError::LeaseLost {
        session: id.to_owned(),
        holder: s.session(id)?.and_then(|r| r.lease_owner),
    })
}

impl Engine {
    /// Takes the lease of `session` (taking it over from a dead process of this machine).
    pub(crate) async fn acquire(&self, session: &str) -> Result<(), RuntimeError> {
        let (id, owner, ttl) = (session.to_owned(), self.owner.clone(), self.lease_ttl);
        let outcome = self
            .store
            .call_for(session, move |s| s.acquire_lease(&id, &owner, ttl))
            .await?;
        match outcome {
            LeaseOutcome::Acquired { .. } => Ok(()),
            LeaseOutcome::HeldBy { owner, .. } if owner_is_dead(&owner) => {
                let (id, me, dead) = (session.to_owned(), self.owner.clone(), owner.clone());
                let again = self
                    .store
                    .call_for(session, move |s| {
                        s.release_lease(&id, &dead)?;
                        s.acquire_lease(&id, &me, ttl)
                    })
                    .await?;
                match again {
                    LeaseOutcome::Acquired { .. } => Ok(()),
                    LeaseOutcome::HeldBy { owner, .. } => Err(RuntimeError::Busy {
                        session: session.to_owned(),
                        owner,
                    }),
                }
            }
            LeaseOutcome::HeldBy { owner, .. } => Err(RuntimeError::Busy {
                session: session.to_owned(),
                owner,
            }),
        }
    }
}

/// The renewal of a drive's lease: it stops when this is dropped, so a drive that ends in any
/// way — returns, fails, panics or is itself dropped midway — never leaves it renewing a lease
/// nobody uses (the session would stay held, never claimable).
#[derive(Debug)]
pub(crate) struct LeaseWatch(tokio::task::JoinHandle<()>);

impl Drop for LeaseWatch {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Renews `owner`'s lease of `session` for `ttl` every third of it until the returned guard is
/// dropped, and cancels the drive (through `cancel_tx`) when the lease is lost, `user_cancel`
/// turns true, or a renewal reads a stop request ([`orchestra_store::STOP_META`], what
/// `orchestra stop` records): the drive then stops as Ctrl-C stops it, and the lease is still
/// renewed until it ends.
pub(crate) fn watch_lease(
    store: StoreHandle,
    session: String,
    (owner, ttl): (String, Duration),
    user_cancel: watch::Receiver<bool>,
    cancel_tx: watch::Sender<bool>,
) -> LeaseWatch {
    LeaseWatch(tokio::spawn(renew(
        store,
        session,
        (owner, ttl),
        user_cancel,
        cancel_tx,
    )))
}

/// The loop of [`watch_lease`].
async fn renew(
    store: StoreHandle,
    session: String,
    (owner, ttl): (String, Duration),
    mut user_cancel: watch::Receiver<bool>,
    cancel_tx: watch::Sender<bool>,
) {
    {
        let mut tick = tokio::time::interval(ttl / 3);
        tick.tick().await;
        // When the lease was last renewed: a renewal that fails (the database restarts) is
        // tried again at the next tick while the lease still holds.
        let mut renewed = tokio::time::Instant::now();
        // A dropped cancel sender means "never cancelled": stop watching it, keep renewing.
        let mut watch_user = true;
        let mut stop_seen = false;
        loop {
            tokio::select! {
                changed = user_cancel.changed(), if watch_user => {
                    if changed.is_err() { watch_user = false; continue; }
                    if *user_cancel.borrow() { let _ = cancel_tx.send(true); return; }
                }
                _ = tick.tick() => {
                    let (sid, o) = (session.clone(), owner.clone());
                    match store.call_for(&session, move |s| s.renew_lease_checked(&sid, &o, ttl)).await {
                        Ok(Renewal::Held) => renewed = tokio::time::Instant::now(),
                        Ok(Renewal::StopRequested(req)) => {
                            renewed = tokio::time::Instant::now();
                            if !stop_seen {
                                stop_seen = true;
                                tracing::info!(session, by = %req.by, "asked to stop; interrupting the drive");
                                let _ = cancel_tx.send(true);
                            }
                        }
                        Ok(Renewal::Lost) => {
                            tracing::warn!(session, "lost the session lease; stopping");
                            let _ = cancel_tx.send(true);
                            return;
                        }
                        Err(e) if renewed.elapsed() < ttl => {
                            tracing::warn!(session, error = %e, "cannot renew the session lease; trying again");
                        }
                        Err(e) => {
                            tracing::warn!(session, error = %e, "cannot renew the session lease, which has expired; stopping");
                            let _ = cancel_tx.send(true);
                            return;
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {

    use orchestra_store::{MemoryStore, NewSession, system_now_ms};
    use serde_json::json;

    use super::*;

    /// The holder of session `s`'s lease now.
    async fn holder(store: &StoreHandle) -> Option<String> {
        store
            .call(|s| {
                let rec = s.find_session("s")?;
                Ok(rec.lease_holder(system_now_ms()).map(str::to_owned))
            })
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn a_stop_request_cancels_the_drive_at_the_next_renewal_which_goes_on() {
        let ttl = Duration::from_millis(300);
        let store = StoreHandle::spawn(Box::new(MemoryStore::new())).unwrap();
        store
            .call(move |s| {
                s.create_session(&session())?;
                s.acquire_lease("s", "1@a", ttl)
            })
            .await
            .unwrap();
        let ((_user, user_rx), (cancel_tx, mut cancel)) =
            (watch::channel(false), watch::channel(false));
        let _renewal = watch_lease(
            store.clone(),
            "s".into(),
            ("1@a".into(), ttl),
            user_rx,
            cancel_tx,
        );
        tokio::time::sleep(ttl).await;
        assert!(!*cancel.borrow(), "nobody asked it to stop");
        let req = orchestra_store::StopRequest {
            by: "2@b".into(),
            at_ms: 1,
        };
        store
            .call(move |s| s.set_session_meta("s", orchestra_store::STOP_META, &req.to_value()))
            .await
            .unwrap();
        tokio::time::timeout(ttl, cancel.wait_for(|c| *c))
            .await
            .expect("cancelled within a third of the lease")
            .unwrap();
        tokio::time::sleep(ttl * 2).await;
        assert_eq!(
            holder(&store).await.as_deref(),
            Some("1@a"),
            "still renewed while the drive winds down"
        );
    }

    /// A session `s`.
    fn session() -> NewSession {
        crate::testing::new_session("s", "p")
    }

    #[tokio::test]
    async fn a_drive_that_panics_stops_renewing_its_lease() {
        let ttl = Duration::from_millis(300);
        let store = StoreHandle::spawn(Box::new(MemoryStore::new())).unwrap();
        store
            .call(move |s| {
                s.create_session(&NewSession {
                    id: "s".into(),
                    name: None,
                    pipeline: "p".into(),
                    pipeline_path: "p.yaml".into(),
                    pipeline_source: String::new(),
                    resolved: "null".into(),
                    pipeline_hash: String::new(),
                    inputs: json!({}),
                    parent_session: None,
                    parent_checkpoint: None,
                    parent_node: None,
                    created_at: 1,
                })?;
                s.acquire_lease("s", "1@a", ttl)
            })
            .await
            .unwrap();
        let (handle, (_user, user_rx), (cancel_tx, _cancel)) =
            (store.clone(), watch::channel(false), watch::channel(false));
        let drive = tokio::spawn(async move {
            let _renewal = watch_lease(handle, "s".into(), ("1@a".into(), ttl), user_rx, cancel_tx);
            // Longer than the lease: only its renewal keeps it.
            tokio::time::sleep(ttl * 2).await;
            panic!("the drive panics");
        });
        assert!(drive.await.unwrap_err().is_panic());
        assert_eq!(
            holder(&store).await.as_deref(),
            Some("1@a"),
            "renewed while the drive ran"
        );
        tokio::time::sleep(ttl * 2).await;
        assert_eq!(
            holder(&store).await,
            None,
            "nobody renews the lease of a drive that panicked"
        );
    }
}
