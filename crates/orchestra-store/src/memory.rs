//! `MemoryStore`: a strict in-memory `Store` for tests of the runtime.
//!
//! It enforces every rule the database backends enforce (unknown sessions, duplicate
//! checkpoints, parent links, integer ranges) and passes the same conformance suite
//! (`orchestra_store::conformance`), so a runtime test that passes on it means the same thing
//! as one on SQLite. Clones share the data, so a test can keep a handle while the runtime owns
//! a boxed copy.

use std::collections::BTreeMap;
use std::ops::RangeInclusive;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use serde_json::Value;

use crate::views::resolve_prefix;
use crate::{
    ChatMessageRecord, CheckpointInfo, CheckpointRecord, CostTally, LeaseOutcome,
    MAX_AMBIGUOUS_CANDIDATES, NewSession, NodeRunRecord, SessionFilter, SessionPipeline,
    SessionRecord, SessionStatus, SessionSummary, SessionTrace, TaskRecord, TraceRecord,
};
use crate::{Clock, Fence, Store, StoreError, validate};

/// A strict in-memory [`Store`]. Clones share the same data.
#[derive(Clone, Debug, Default)]
pub struct MemoryStore {
    inner: Arc<Mutex<Inner>>,
    clock: Clock,
    /// How many threads may call it at once through [`Store::share`] (0 or 1: it is not
    /// shared), as a database with several connections is.
    threads: usize,
}

#[derive(Debug, Default)]
struct Inner {
    sessions: BTreeMap<String, SessionData>,
}

#[derive(Debug)]
struct SessionData {
    record: SessionRecord,
    tasks: BTreeMap<(u64, u32), TaskRecord>,
    checkpoints: BTreeMap<u64, CheckpointRecord>,
    runs: Vec<NodeRunRecord>,
    messages: Vec<ChatMessageRecord>,
    trace: SessionTrace,
}

impl Inner {
    fn get(&self, id: &str) -> Result<&SessionData, StoreError> {
        self.sessions
            .get(id)
            .ok_or_else(|| StoreError::not_found(id))
    }

    fn get_mut(&mut self, id: &str) -> Result<&mut SessionData, StoreError> {
        self.sessions
            .get_mut(id)
            .ok_or_else(|| StoreError::not_found(id))
    }
}

impl MemoryStore {
    /// An empty store on the system clock.
    pub fn new() -> Self {
        Self::default()
    }

    /// Uses `clock` for `updated_at` and lease expiry.
    #[must_use]
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Lets up to `threads` threads call it at once, through handles from [`Store::share`]
    /// (clones sharing the data), as a pool of database connections does: for tests of
    /// callers that use them.
    #[must_use]
    pub fn shared_by(mut self, threads: usize) -> Self {
        self.threads = threads;
        self
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave a half-applied write: every method
        // validates before it mutates.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Store for MemoryStore {
    fn share(&self) -> Option<Box<dyn Store>> {
        (self.threads > 1).then(|| Box::new(self.clone()) as Box<dyn Store>)
    }

    fn parallelism(&self) -> usize {
        self.threads.max(1)
    }

    fn create_session(&mut self, s: &NewSession) -> Result<(), StoreError> {
        validate::new_session(s)?;
        let now = self.clock.now_ms();
        let mut inner = self.lock();
        if inner.sessions.contains_key(&s.id) {
            return Err(StoreError::AlreadyExists { id: s.id.clone() });
        }
        inner.sessions.insert(
            s.id.clone(),
            SessionData {
                record: SessionRecord::created(s, now),
                tasks: BTreeMap::new(),
                checkpoints: BTreeMap::new(),
                runs: Vec::new(),
                messages: Vec::new(),
                trace: SessionTrace::default(),
            },
        );
        Ok(())
    }

    fn session(&self, id: &str) -> Result<Option<SessionRecord>, StoreError> {
        Ok(self.lock().sessions.get(id).map(|d| d.record.clone()))
    }

    fn find_session(&self, id_or_prefix: &str) -> Result<SessionRecord, StoreError> {
        let inner = self.lock();
        if let Some(d) = inner.sessions.get(id_or_prefix) {
            return Ok(d.record.clone());
        }
        let candidates = inner
            .sessions
            .keys()
            .filter(|id| crate::session_matches(id, id_or_prefix))
            .take(MAX_AMBIGUOUS_CANDIDATES + 1)
            .cloned()
            .collect();
        let id = resolve_prefix(id_or_prefix, candidates)?;
        Ok(inner.get(&id)?.record.clone())
    }

    fn list_sessions(&self, filter: &SessionFilter) -> Result<Vec<SessionSummary>, StoreError> {
        let now = self.clock.now_ms();
        let inner = self.lock();
        let mut out: Vec<SessionSummary> = inner
            .sessions
            .values()
            .filter(|d| filter.accepts(&d.record))
            .map(|d| {
                let r = &d.record;
                SessionSummary {
                    id: r.id.clone(),
                    name: r.name.clone(),
                    pipeline: r.pipeline.clone(),
                    status: r.status,
                    created_at: r.created_at,
                    updated_at: r.updated_at,
                    steps: d.checkpoints.keys().next_back().copied().unwrap_or(0),
                    checkpoints: d.checkpoints.len() as u64,
                    tokens_in: d.runs.iter().map(|x| x.tokens_in).sum(),
                    tokens_out: d.runs.iter().map(|x| x.tokens_out).sum(),
                    cost: d.runs.iter().fold(CostTally::default(), |mut c, x| {
                        c.add(x.cost_usd);
                        c
                    }),
                    parent_session: r.parent_session.clone(),
                    parent_checkpoint: r.parent_checkpoint,
                    parent_node: r.parent_node.clone(),
                    error: r.error.clone(),
                    lease_owner: r.lease_holder(now).map(str::to_owned),
                    queued: r.meta.contains_key(crate::QUEUE_META),
                }
            })
            .collect();
        // Newest first; ties by id so the order is deterministic.
        out.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(a.id.cmp(&b.id)));
        if let Some(limit) = filter.limit {
            out.truncate(limit);
        }
        Ok(out)
    }

    fn set_status(
        &mut self,
        id: &str,
        status: SessionStatus,
        error: Option<&str>,
    ) -> Result<(), StoreError> {
        let now = self.clock.now_ms();
        let mut inner = self.lock();
        let r = &mut inner.get_mut(id)?.record;
        r.status = status;
        r.error = error.map(str::to_owned);
        r.updated_at = now;
        Ok(())
    }

    fn set_session_meta(&mut self, id: &str, key: &str, value: &Value) -> Result<(), StoreError> {
        let now = self.clock.now_ms();
        let mut inner = self.lock();
        let r = &mut inner.get_mut(id)?.record;
        r.meta.insert(key.to_owned(), value.clone());
        r.updated_at = now;
        Ok(())
    }

    fn set_session_pipeline(&mut self, id: &str, p: &SessionPipeline) -> Result<(), StoreError> {
        let now = self.clock.now_ms();
        let mut inner = self.lock();
        let r = &mut inner.get_mut(id)?.record;
        r.pipeline.clone_from(&p.pipeline);
        r.pipeline_path.clone_from(&p.pipeline_path);
        r.pipeline_source.clone_from(&p.pipeline_source);
        r.resolved.clone_from(&p.resolved);
        r.pipeline_hash.clone_from(&p.pipeline_hash);
        r.updated_at = now;
        Ok(())
    }

    fn acquire_lease(
        &mut self,
        id: &str,
        owner: &str,
        ttl: Duration,
    ) -> Result<LeaseOutcome, StoreError> {
        let now = self.clock.now_ms();
        let mut inner = self.lock();
        let r = &mut inner.get_mut(id)?.record;
        if let Some(holder) = r.lease_holder(now)
            && holder != owner
        {
            return Ok(LeaseOutcome::HeldBy {
                owner: holder.to_owned(),
                until: r.lease_until.unwrap_or(0),
            });
        }
        let until = validate::lease_until(now, ttl);
        r.lease_owner = Some(owner.to_owned());
        r.lease_until = Some(until);
        Ok(LeaseOutcome::Acquired { until })
    }

    fn claim_session(
        &mut self,
        owner: &str,
        ttl: Duration,
    ) -> Result<Option<SessionRecord>, StoreError> {
        let now = self.clock.now_ms();
        let mut inner = self.lock();
        let Some(r) = inner
            .sessions
            .values_mut()
            .map(|d| &mut d.record)
            .filter(|r| crate::claimable(r, now))
            .min_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)))
        else {
            return Ok(None);
        };
        r.lease_owner = Some(owner.to_owned());
        r.lease_until = Some(validate::lease_until(now, ttl));
        r.status = SessionStatus::Running;
        r.error = None;
        r.updated_at = now;
        Ok(Some(r.clone()))
    }

    fn renew_lease(&mut self, id: &str, owner: &str, ttl: Duration) -> Result<bool, StoreError> {
        let now = self.clock.now_ms();
        let mut inner = self.lock();
        let r = &mut inner.get_mut(id)?.record;
        if r.lease_owner.as_deref() != Some(owner) {
            return Ok(false);
        }
        r.lease_until = Some(validate::lease_until(now, ttl));
        Ok(true)
    }

    fn release_lease(&mut self, id: &str, owner: &str) -> Result<(), StoreError> {
        let mut inner = self.lock();
        let r = &mut inner.get_mut(id)?.record;
        if r.lease_owner.as_deref() == Some(owner) {
            r.lease_owner = None;
            r.lease_until = None;
        }
        Ok(())
    }

    fn record_results(
        &mut self,
        tasks: &[TaskRecord],
        runs: &[NodeRunRecord],
    ) -> Result<(), StoreError> {
        let mut inner = self.lock();
        // Validate everything first: the batch is all-or-nothing, like a transaction.
        for t in tasks {
            validate::task(t)?;
            inner.get(&t.session)?;
        }
        for r in runs {
            validate::node_run(r)?;
            inner.get(&r.session)?;
        }
        for t in tasks {
            inner
                .get_mut(&t.session)?
                .tasks
                .insert((t.step, t.task_idx), t.clone());
        }
        for r in runs {
            inner.get_mut(&r.session)?.runs.push(r.clone());
        }
        Ok(())
    }

    fn task_records(
        &self,
        session: &str,
        steps: RangeInclusive<u64>,
    ) -> Result<Vec<TaskRecord>, StoreError> {
        let inner = self.lock();
        let d = inner.get(session)?;
        if steps.is_empty() {
            return Ok(Vec::new());
        }
        let (lo, hi) = steps.into_inner();
        Ok(d.tasks
            .range((lo, 0)..=(hi, u32::MAX))
            .map(|(_, t)| t.clone())
            .collect())
    }

    fn commit_checkpoint(&mut self, cp: &CheckpointRecord) -> Result<(), StoreError> {
        validate::checkpoint(cp)?;
        let now = self.clock.now_ms();
        let mut inner = self.lock();
        let d = inner.get_mut(&cp.session)?;
        if d.checkpoints.contains_key(&cp.step) {
            return Err(StoreError::CheckpointExists {
                session: cp.session.clone(),
                step: cp.step,
            });
        }
        let parent_ok = match cp.parent_step {
            Some(p) => d.checkpoints.contains_key(&p),
            None => d.checkpoints.is_empty(),
        };
        if !parent_ok {
            return Err(validate::bad_parent(cp));
        }
        d.checkpoints.insert(cp.step, cp.clone());
        if d.record.updated_at + validate::UPDATED_AT_RESOLUTION_MS <= now {
            d.record.updated_at = now;
        }
        Ok(())
    }

    fn checkpoints(&self, session: &str) -> Result<Vec<CheckpointInfo>, StoreError> {
        let inner = self.lock();
        Ok(inner
            .get(session)?
            .checkpoints
            .values()
            .map(CheckpointInfo::of)
            .collect())
    }

    fn checkpoint(&self, session: &str, step: u64) -> Result<Option<CheckpointRecord>, StoreError> {
        let inner = self.lock();
        Ok(inner.get(session)?.checkpoints.get(&step).cloned())
    }

    fn latest_snapshot_at_or_before(
        &self,
        session: &str,
        step: u64,
    ) -> Result<Option<CheckpointRecord>, StoreError> {
        let inner = self.lock();
        Ok(inner
            .get(session)?
            .checkpoints
            .range(..=step)
            .rev()
            .map(|(_, cp)| cp)
            .find(|cp| cp.snapshot.is_some())
            .cloned())
    }

    fn node_runs(&self, session: &str) -> Result<Vec<NodeRunRecord>, StoreError> {
        let inner = self.lock();
        let mut runs = inner.get(session)?.runs.clone();
        runs.sort_by_key(|r| r.step); // stable: insertion order within a step
        Ok(runs)
    }

    fn record_trace(&mut self, trace: &[TraceRecord]) -> Result<(), StoreError> {
        let mut inner = self.lock();
        // All or nothing, like a transaction.
        for r in trace {
            validate::trace(r)?;
            inner.get(r.session())?;
        }
        for r in trace {
            let t = &mut inner.get_mut(r.session())?.trace;
            match r {
                TraceRecord::Turn(x) => t.turns.push(x.clone()),
                TraceRecord::Tool(x) => t.tools.push(x.clone()),
                TraceRecord::Route(x) => t.routes.push(x.clone()),
            }
        }
        Ok(())
    }

    fn record_results_traced(
        &mut self,
        tasks: &[TaskRecord],
        runs: &[NodeRunRecord],
        trace: &[TraceRecord],
    ) -> Result<(), StoreError> {
        {
            let inner = self.lock();
            for r in trace {
                validate::trace(r)?;
                inner.get(r.session())?;
            }
        }
        self.record_results(tasks, runs)?;
        self.record_trace(trace)
    }

    fn commit_fenced(
        &mut self,
        fence: Fence<'_>,
        tasks: &[TaskRecord],
        runs: &[NodeRunRecord],
        trace: &[TraceRecord],
        cp: Option<&CheckpointRecord>,
    ) -> Result<(), StoreError> {
        {
            // Checked before anything is written; the writes below validate before they
            // mutate, as a transaction would.
            let inner = self.lock();
            for id in crate::fenced_sessions(tasks, runs, trace, cp) {
                fence.check(&inner.get(id)?.record)?;
            }
        }
        self.record_results_traced(tasks, runs, trace)?;
        cp.map_or(Ok(()), |cp| self.commit_checkpoint(cp))
    }

    fn trace(&self, session: &str) -> Result<SessionTrace, StoreError> {
        let inner = self.lock();
        let mut t = inner.get(session)?.trace.clone();
        // Stable sorts: insertion order within a step.
        t.turns.sort_by_key(|x| x.step);
        t.tools.sort_by_key(|x| x.step);
        t.routes.sort_by_key(|x| x.step);
        Ok(t)
    }

    fn append_message(&mut self, m: &ChatMessageRecord) -> Result<(), StoreError> {
        validate::message(m)?;
        let mut inner = self.lock();
        inner.get_mut(&m.session)?.messages.push(m.clone());
        Ok(())
    }

    fn messages(&self, session: &str, node: &str) -> Result<Vec<ChatMessageRecord>, StoreError> {
        let inner = self.lock();
        let mut out: Vec<ChatMessageRecord> = inner
            .get(session)?
            .messages
            .iter()
            .filter(|m| m.node == node)
            .cloned()
            .collect();
        out.sort_by_key(|m| (m.run_index, m.turn)); // stable: insertion order within a turn
        Ok(out)
    }

    fn delete_session(&mut self, id: &str) -> Result<(), StoreError> {
        let mut inner = self.lock();
        inner
            .sessions
            .remove(id)
            .map(|_| ())
            .ok_or_else(|| StoreError::not_found(id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clones_share_data() {
        let mut a = MemoryStore::new();
        let b = a.clone();
        a.create_session(&NewSession {
            id: "s1".into(),
            name: None,
            pipeline: "p".into(),
            pipeline_path: "p.yaml".into(),
            pipeline_source: String::new(),
            resolved: "null".into(),
            pipeline_hash: "h".into(),
            inputs: Value::Null,
            parent_session: None,
            parent_checkpoint: None,
            parent_node: None,
            created_at: 1,
        })
        .unwrap();
        assert!(b.session("s1").unwrap().is_some());
    }
}
