//! How the store thread writes a group of finished tasks' records: fenced on the lease of
//! their sessions when those are fenced ([`StoreHandle::fence`](super::StoreHandle::fence)),
//! and, when a group's transaction fails, again session by session.

use std::collections::BTreeMap;

use orchestra_store::{Fence, NodeRunRecord, StoreError, TaskRecord, TraceRecord};

use super::Worker;

impl Worker {
    /// Writes a group of records: one transaction per lease they are fenced on (normally one:
    /// a process drives every session with its own lease), unfenced ones in one of their own.
    pub(super) fn write_group(
        &mut self,
        tasks: Vec<TaskRecord>,
        runs: Vec<NodeRunRecord>,
        trace: Vec<TraceRecord>,
    ) {
        type Part = (Vec<TaskRecord>, Vec<NodeRunRecord>, Vec<TraceRecord>);
        let mut parts: BTreeMap<Option<String>, Part> = BTreeMap::new();
        let fences = &self.fences;
        let fence_of = |session: &str| fences.get(session).cloned();
        for t in tasks {
            parts.entry(fence_of(&t.session)).or_default().0.push(t);
        }
        for r in runs {
            parts.entry(fence_of(&r.session)).or_default().1.push(r);
        }
        for r in trace {
            parts.entry(fence_of(r.session())).or_default().2.push(r);
        }
        for (owner, (tasks, runs, trace)) in parts {
            let written = match &owner {
                Some(owner) => {
                    self.store
                        .commit_fenced(Fence { owner }, &tasks, &runs, &trace, None)
                }
                None => self.store.record_results_traced(&tasks, &runs, &trace),
            };
            if let Err(e) = written {
                self.after_failed_group(tasks, runs, trace, e);
            }
        }
    }

    /// Writes records of one session, fenced on its lease when it is fenced.
    pub(super) fn write(
        &mut self,
        tasks: &[TaskRecord],
        runs: &[NodeRunRecord],
        trace: &[TraceRecord],
    ) -> Result<(), StoreError> {
        let session = orchestra_store::fenced_sessions(tasks, runs, trace, None);
        match session.first().and_then(|s| self.fences.get(*s)) {
            Some(owner) => self
                .store
                .commit_fenced(Fence { owner }, tasks, runs, trace, None),
            None => self.store.record_results_traced(tasks, runs, trace),
        }
    }

    /// A group's transaction failed: with records of one session, they are lost; with several
    /// sessions, each session's records are tried again on their own, so one session's bad
    /// record does not fail the others' steps.
    fn after_failed_group(
        &mut self,
        tasks: Vec<TaskRecord>,
        runs: Vec<NodeRunRecord>,
        trace: Vec<TraceRecord>,
        e: StoreError,
    ) {
        let mut sessions: Vec<&str> = tasks
            .iter()
            .map(|t| t.session.as_str())
            .chain(runs.iter().map(|r| r.session.as_str()))
            .chain(trace.iter().map(TraceRecord::session))
            .collect();
        sessions.sort_unstable();
        sessions.dedup();
        if sessions.len() <= 1 {
            log_lost(None, &e);
            self.lose(&tasks, &runs, &trace, e);
            return;
        }
        let sessions: Vec<String> = sessions.into_iter().map(str::to_owned).collect();
        for session in sessions {
            let t: Vec<TaskRecord> = tasks
                .iter()
                .filter(|t| t.session == session)
                .cloned()
                .collect();
            let r: Vec<NodeRunRecord> = runs
                .iter()
                .filter(|r| r.session == session)
                .cloned()
                .collect();
            let tr: Vec<TraceRecord> = trace
                .iter()
                .filter(|r| r.session() == session)
                .cloned()
                .collect();
            if let Err(e) = self.write(&t, &r, &tr) {
                log_lost(Some(&session), &e);
                self.lose(&t, &r, &tr, e);
            }
        }
    }
}

/// Logs records that could not be stored (a lost lease is the drive's to report: it stops).
fn log_lost(session: Option<&str>, e: &StoreError) {
    if let StoreError::LeaseLost { .. } = e {
        tracing::debug!(session, error = %e, "finished tasks not stored");
    } else {
        tracing::error!(session, error = %e, "failed to store finished tasks");
    }
}
