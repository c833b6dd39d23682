//! The process group of a run: killed as a whole on timeout, after a linger, or when the run
//! is dropped (cancelled).

/// Kills the group when dropped unless disarmed.
#[derive(Debug)]
pub(crate) struct GroupGuard {
    pgid: Option<u32>,
}

impl GroupGuard {
    /// Guards the group led by `pid` (the child, started with `process_group(0)`).
    pub(crate) fn new(pid: Option<u32>) -> Self {
        GroupGuard { pgid: pid }
    }

    /// Sends SIGKILL to every process of the group (once).
    pub(crate) fn kill(&mut self) {
        let Some(pid) = self.pgid.take() else {
            return;
        };
        #[cfg(unix)]
        if let Some(pid) = i32::try_from(pid)
            .ok()
            .and_then(rustix::process::Pid::from_raw)
        {
            // The group may already be gone; that is fine.
            let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
        }
        #[cfg(not(unix))]
        let _ = pid;
    }

    /// Leaves the group alone from now on (the program ended on its own and nothing it left
    /// behind holds its output).
    pub(crate) fn disarm(&mut self) {
        self.pgid = None;
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        self.kill();
    }
}
