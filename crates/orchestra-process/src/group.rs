//! The process group of a run: killed as a whole on timeout, after a linger, or when the run
//! is dropped (cancelled); and the groups of every run in progress, for a process that exits
//! at once (a second Ctrl-C) without dropping them.

use std::sync::{Mutex, PoisonError};

/// The groups of the runs in progress.
static LIVE: Mutex<Vec<u32>> = Mutex::new(Vec::new());

/// Kills the process groups of every run in progress (for a process about to exit without
/// unwinding, e.g. `std::process::exit` on a second Ctrl-C: their programs go with it).
pub fn kill_all() {
    let live = std::mem::take(&mut *LIVE.lock().unwrap_or_else(PoisonError::into_inner));
    for pgid in live {
        kill_group(pgid);
    }
}

fn kill_group(pgid: u32) {
    #[cfg(unix)]
    if let Some(pid) = i32::try_from(pgid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    {
        // The group may already be gone; that is fine.
        let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
    }
    #[cfg(not(unix))]
    let _ = pgid;
}

fn forget(pgid: u32) {
    LIVE.lock()
        .unwrap_or_else(PoisonError::into_inner)
        .retain(|p| *p != pgid);
}

/// Kills the group when dropped unless disarmed (and [`kill_all`] kills it too while it is
/// guarded).
#[derive(Debug)]
pub struct GroupGuard {
    pgid: Option<u32>,
}

impl GroupGuard {
    /// Guards the group led by `pid` (the child, started with `process_group(0)`).
    pub(crate) fn new(pid: Option<u32>) -> Self {
        if let Some(pid) = pid {
            LIVE.lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(pid);
        }
        GroupGuard { pgid: pid }
    }

    /// Sends SIGKILL to every process of the group (once).
    pub fn kill(&mut self) {
        let Some(pgid) = self.pgid.take() else {
            return;
        };
        kill_group(pgid);
        forget(pgid);
    }

    /// Leaves the group alone from now on (the program ended on its own and nothing it left
    /// behind holds its output).
    pub(crate) fn disarm(&mut self) {
        if let Some(pgid) = self.pgid.take() {
            forget(pgid);
        }
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        self.kill();
    }
}
