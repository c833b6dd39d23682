//! The `Store` trait: what the runtime and CLI need from persistence, backend-neutral.

use std::ops::RangeInclusive;
use std::time::Duration;

use serde_json::Value;

use crate::StoreError;
use crate::{
    ChatMessageRecord, CheckpointInfo, CheckpointRecord, Fence, LeaseOutcome, NewSession,
    NodeRunRecord, Renewal, RestorePoint, SessionFilter, SessionPipeline, SessionRecord,
    SessionStatus, SessionSummary, SessionTrace, StopRequest, TaskRecord, TraceRecord,
};

/// Persistence of sessions, task writes (the checkpoint deltas), checkpoints, usage and chat.
///
/// The store is dumb persistence with good queries: it knows nothing of reducers or the
/// scheduler and returns JSON payloads exactly as they were given. Every write is atomic (one
/// transaction) and durable when it returns. Methods are synchronous; call them from a dedicated
/// thread or `spawn_blocking`.
///
/// Writes that name a session fail with [`StoreError::NotFound`] when it does not exist; so do
/// the reads of one session's data (`task_records`, `checkpoints`, ...), so that a typo is never
/// mistaken for an empty session.
pub trait Store: Send {
    /// Another handle on this store's database, for another thread to call at the same time
    /// (sharing this one's connections), or `None` (the default) when calls on the database run
    /// one at a time anyway (one SQLite connection, the memory store).
    fn share(&self) -> Option<Box<dyn Store>> {
        None
    }

    /// How many calls the store can run at once (its connections): how many threads
    /// [`share`](Store::share) handles are worth. 1 by default.
    fn parallelism(&self) -> usize {
        1
    }

    /// Creates a session with status `created`. Fails with `AlreadyExists` if the id is taken.
    fn create_session(&mut self, s: &NewSession) -> Result<(), StoreError>;

    /// The session with exactly this id.
    fn session(&self, id: &str) -> Result<Option<SessionRecord>, StoreError>;

    /// The session with this id, or the only one whose id starts with it. Fails with
    /// `NotFound` or `Ambiguous` (listing candidates).
    fn find_session(&self, id_or_prefix: &str) -> Result<SessionRecord, StoreError>;

    /// Sessions passing `filter`, newest first, with step/checkpoint counts and token totals.
    fn list_sessions(&self, filter: &SessionFilter) -> Result<Vec<SessionSummary>, StoreError>;

    /// Sets the status and the error (`None` clears it); bumps `updated_at`.
    fn set_status(
        &mut self,
        id: &str,
        status: SessionStatus,
        error: Option<&str>,
    ) -> Result<(), StoreError>;

    /// Sets one key of the session's `meta` object; bumps `updated_at`.
    fn set_session_meta(&mut self, id: &str, key: &str, value: &Value) -> Result<(), StoreError>;

    /// Replaces the session's pipeline (name, path, source, resolved form and hash) with the
    /// one it goes on with; bumps `updated_at`. Nothing else of the session changes.
    fn set_session_pipeline(&mut self, id: &str, p: &SessionPipeline) -> Result<(), StoreError>;

    /// Takes the lease if it is free, expired or already `owner`'s, for `ttl` from now.
    /// Otherwise reports who holds it.
    fn acquire_lease(
        &mut self,
        id: &str,
        owner: &str,
        ttl: Duration,
    ) -> Result<LeaseOutcome, StoreError>;

    /// Extends `owner`'s lease to `ttl` from now. Returns false when `owner` no longer holds it
    /// (another process took it over after it expired); the caller must then stop driving.
    fn renew_lease(&mut self, id: &str, owner: &str, ttl: Duration) -> Result<bool, StoreError>;

    /// Renews `owner`'s lease as [`Store::renew_lease`] does and, in the same round trip where
    /// the backend can, reads whether the session was asked to stop (the meta key
    /// [`STOP_META`](crate::STOP_META)): what a driving process does every third of its lease.
    fn renew_lease_checked(
        &mut self,
        id: &str,
        owner: &str,
        ttl: Duration,
    ) -> Result<Renewal, StoreError> {
        if !self.renew_lease(id, owner, ttl)? {
            return Ok(Renewal::Lost);
        }
        let rec = self.session(id)?.ok_or_else(|| StoreError::not_found(id))?;
        Ok(StopRequest::of(&rec).map_or(Renewal::Held, Renewal::StopRequested))
    }

    /// Releases `owner`'s lease; does nothing when someone else holds it.
    fn release_lease(&mut self, id: &str, owner: &str) -> Result<(), StoreError>;

    /// Creates a session waiting in the queue: status `queued` and the meta key
    /// [`QUEUE_META`](crate::QUEUE_META) `{"queued_at": created_at}`. Fails with `AlreadyExists`
    /// if the id is taken. (The default runs three writes; a session caught half-way is
    /// `created` and never claimed.)
    fn enqueue_session(&mut self, s: &NewSession) -> Result<(), StoreError> {
        self.create_session(s)?;
        let queued = serde_json::json!({ "queued_at": s.created_at });
        self.set_session_meta(&s.id, crate::QUEUE_META, &queued)?;
        self.set_status(&s.id, SessionStatus::Queued, None)
    }

    /// Claims the oldest (by `created_at`, then id) session a worker may take
    /// ([`claimable`](crate::claimable): `queued`, or `running` with an expired lease) in ONE
    /// atomic write: its lease goes to `owner` for `ttl` from now, its status to `running`
    /// (error cleared). Two claimers never get the same session; `None` when none is claimable.
    fn claim_session(
        &mut self,
        owner: &str,
        ttl: Duration,
    ) -> Result<Option<SessionRecord>, StoreError>;

    /// Stores finished tasks and node-run usage in ONE transaction. Task records replace any
    /// record with the same `(session, step, task_idx)` (a re-run after a crash overwrites the
    /// partial one); node runs are appended.
    fn record_results(
        &mut self,
        tasks: &[TaskRecord],
        runs: &[NodeRunRecord],
    ) -> Result<(), StoreError>;

    /// Stores finished tasks in one transaction (see [`Store::record_results`]).
    fn record_tasks(&mut self, tasks: &[TaskRecord]) -> Result<(), StoreError> {
        self.record_results(tasks, &[])
    }

    /// Task records of `session` with steps in `steps`, ordered by (step, task_idx).
    fn task_records(
        &self,
        session: &str,
        steps: RangeInclusive<u64>,
    ) -> Result<Vec<TaskRecord>, StoreError>;

    /// Commits a checkpoint (and its snapshot, when present). Fails with `CheckpointExists`
    /// for a step already committed, and with `InvalidRecord` when `parent_step` is not an
    /// earlier checkpoint of the session (`None` is only accepted for a session's first
    /// checkpoint, which may have any step: a fork starts where its parent was). Bumps the
    /// session's `updated_at` when it is a second or more old.
    fn commit_checkpoint(&mut self, cp: &CheckpointRecord) -> Result<(), StoreError>;

    /// Stores a step's last finished tasks and node runs and commits its checkpoint, in one
    /// transaction where the backend can: what [`Store::record_results`] then
    /// [`Store::commit_checkpoint`] do, with the same outcome on failure — when the records
    /// cannot be stored nothing is; when only the checkpoint is refused (or fails), the
    /// records are kept and its error is returned.
    fn commit_step(
        &mut self,
        tasks: &[TaskRecord],
        runs: &[NodeRunRecord],
        cp: &CheckpointRecord,
    ) -> Result<(), StoreError> {
        self.record_results(tasks, runs)?;
        self.commit_checkpoint(cp)
    }

    /// The fenced form of [`Store::record_results_traced`] and [`Store::commit_step`], what a
    /// drive holding a lease writes: stores finished tasks, node runs and trace records and
    /// commits `cp` (when given) in ONE transaction, only while `fence.owner` holds the lease of
    /// every session written to (checked in that transaction, the session rows locked against
    /// a concurrent claim; see [`Fence`] for an expired lease). Otherwise it fails with
    /// [`StoreError::LeaseLost`] and writes nothing. When only the checkpoint is refused (or
    /// fails), the records are kept and its error is returned, as for `commit_step`.
    fn commit_fenced(
        &mut self,
        fence: Fence<'_>,
        tasks: &[TaskRecord],
        runs: &[NodeRunRecord],
        trace: &[TraceRecord],
        cp: Option<&CheckpointRecord>,
    ) -> Result<(), StoreError>;

    /// The session's checkpoints without payloads, ordered by step.
    fn checkpoints(&self, session: &str) -> Result<Vec<CheckpointInfo>, StoreError>;

    /// One checkpoint with its payloads.
    fn checkpoint(&self, session: &str, step: u64) -> Result<Option<CheckpointRecord>, StoreError>;

    /// The checkpoint with the highest step `<= step` that carries a snapshot.
    fn latest_snapshot_at_or_before(
        &self,
        session: &str,
        step: u64,
    ) -> Result<Option<CheckpointRecord>, StoreError>;

    /// Appends one node run's usage (see [`Store::record_results`] to batch it with tasks).
    fn record_node_run(&mut self, run: &NodeRunRecord) -> Result<(), StoreError> {
        self.record_results(&[], std::slice::from_ref(run))
    }

    /// The session's node runs, ordered by (step, insertion).
    fn node_runs(&self, session: &str) -> Result<Vec<NodeRunRecord>, StoreError>;

    /// Appends what runs did and how steps routed (see [`TraceRecord`]), in one transaction.
    /// Backends store each distinct system prompt and message list of a session once.
    fn record_trace(&mut self, trace: &[TraceRecord]) -> Result<(), StoreError>;

    /// Stores finished tasks, node-run usage and trace records in one transaction where the
    /// backend can (what the runtime's store thread writes for a group of finished attempts).
    fn record_results_traced(
        &mut self,
        tasks: &[TaskRecord],
        runs: &[NodeRunRecord],
        trace: &[TraceRecord],
    ) -> Result<(), StoreError> {
        self.record_results(tasks, runs)?;
        self.record_trace(trace)
    }

    /// The session's trace: each list ordered by step, then insertion. Sessions stored before
    /// traces were kept have empty lists.
    fn trace(&self, session: &str) -> Result<SessionTrace, StoreError>;

    /// Appends a message of an interactive conversation.
    fn append_message(&mut self, m: &ChatMessageRecord) -> Result<(), StoreError>;

    /// The messages of `node` in `session`, ordered by (run_index, turn, insertion).
    fn messages(&self, session: &str, node: &str) -> Result<Vec<ChatMessageRecord>, StoreError>;

    /// Deletes a session and everything recorded for it. Sessions forked from it keep their
    /// `parent_session` id. Deleting a missing session fails with `NotFound`.
    fn delete_session(&mut self, id: &str) -> Result<(), StoreError>;

    /// What is needed to rebuild the state at checkpoint `step`: the nearest snapshot at or
    /// before it plus the task records after the snapshot. `None` when the checkpoint does not
    /// exist; `InvalidRecord` when no snapshot precedes it (the runtime always snapshots the
    /// first checkpoint).
    fn restore_point(&self, session: &str, step: u64) -> Result<Option<RestorePoint>, StoreError> {
        let Some(target) = self.checkpoint(session, step)? else {
            return Ok(None);
        };
        let base = if target.snapshot.is_some() {
            target.clone()
        } else {
            self.latest_snapshot_at_or_before(session, step)?
                .ok_or_else(|| {
                    StoreError::invalid(
                        "checkpoint",
                        session,
                        format!("no snapshot at or before step {step} to restore from"),
                    )
                })?
        };
        let tasks = if base.step < step {
            self.task_records(session, base.step + 1..=step)?
        } else {
            Vec::new()
        };
        Ok(Some(RestorePoint {
            target,
            base,
            tasks,
        }))
    }
}
