//! The store thread's records of finished tasks: grouped into transactions, and their failures
//! kept for their sessions until a checkpoint or settle reports them.

use std::sync::Arc;
use std::sync::mpsc;
use std::time::Instant;

use orchestra_store::{NodeRunRecord, StoreError, TaskRecord, TraceRecord};

use super::{Cmd, GROUP_COMMIT, GROUP_MAX, Records, Worker, WorkerError};

/// Records that could not be stored, until their session's next checkpoint or settle.
#[derive(Debug)]
pub(super) struct Lost {
    session: String,
    step: u64,
    error: Arc<StoreError>,
}

impl Worker {
    /// Stores `first` and the records that follow it within [`GROUP_COMMIT`] in one
    /// transaction; returns the command that ended the group, if any.
    pub(super) fn records(&mut self, first: Records) -> Option<Cmd> {
        let (mut tasks, mut runs, mut trace) = (Vec::new(), Vec::new(), Vec::new());
        let mut add = |r: Records| {
            tasks.extend(r.task);
            runs.extend(r.run);
            trace.extend(r.trace);
        };
        add(first);
        let deadline = Instant::now() + GROUP_COMMIT;
        let mut count = 1;
        let next = loop {
            if count >= GROUP_MAX {
                break None;
            }
            match next_within(&self.rx, deadline) {
                Some(Cmd::Record(more)) => {
                    add(*more);
                    count += 1;
                }
                other => break other,
            }
        };
        self.write_group(tasks, runs, trace);
        next
    }

    /// Forgets failures kept for `session`: a new drive restores it from what is stored, so
    /// what an earlier, abandoned drive could not store is simply not there.
    pub(super) fn forget(&mut self, session: &str) {
        self.lost.retain(|l| l.session != session);
    }

    /// Keeps the failure for each session of the records (at its first step in them).
    pub(super) fn lose(
        &mut self,
        tasks: &[TaskRecord],
        runs: &[NodeRunRecord],
        trace: &[TraceRecord],
        e: StoreError,
    ) {
        let error = Arc::new(e);
        let all = tasks
            .iter()
            .map(|t| (t.session.as_str(), t.step))
            .chain(runs.iter().map(|r| (r.session.as_str(), r.step)))
            .chain(trace.iter().map(|r| (r.session(), r.step())));
        for (session, step) in all {
            match self.lost.iter_mut().find(|l| l.session == *session) {
                Some(l) => l.step = l.step.min(step),
                None => self.lost.push(Lost {
                    session: session.to_owned(),
                    step,
                    error: Arc::clone(&error),
                }),
            }
        }
    }

    /// The failure kept for `session` (at or before `step`, when given), taken.
    pub(super) fn take_lost(&mut self, session: &str, step: Option<u64>) -> Option<WorkerError> {
        let i = self
            .lost
            .iter()
            .position(|l| l.session == session && step.is_none_or(|s| l.step <= s))?;
        let l = self.lost.swap_remove(i);
        Some(WorkerError::Records {
            session: l.session,
            step: l.step,
            source: l.error,
        })
    }
}

/// The next command if one comes before `deadline`.
fn next_within(rx: &mpsc::Receiver<Cmd>, deadline: Instant) -> Option<Cmd> {
    if let Ok(cmd) = rx.try_recv() {
        return Some(cmd);
    }
    let left = deadline.checked_duration_since(Instant::now())?;
    // Timed out, or every handle is gone.
    rx.recv_timeout(left).ok()
}
