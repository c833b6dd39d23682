//! What queries take and return beyond the stored records: session filters and summaries,
//! checkpoint listings, lease outcomes, restore points, and session-prefix resolution.

use serde::{Deserialize, Serialize};

use crate::StoreError;
use crate::records::{CheckpointRecord, SessionRecord, SessionStatus, TaskRecord};

/// A checkpoint without its payloads, for listings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointInfo {
    /// The step.
    pub step: u64,
    /// The checkpoint this one follows.
    pub parent_step: Option<u64>,
    /// Whether a full state snapshot is stored at this step.
    pub has_snapshot: bool,
    /// Whether repo SHAs are recorded at this step.
    pub has_repo_shas: bool,
    /// The nodes that ran in this step.
    pub nodes: Vec<String>,
    /// When it was committed.
    pub created_at: u64,
}

impl CheckpointInfo {
    pub(crate) fn of(cp: &CheckpointRecord) -> Self {
        Self {
            step: cp.step,
            parent_step: cp.parent_step,
            has_snapshot: cp.snapshot.is_some(),
            has_repo_shas: cp.repo_shas.is_some(),
            nodes: cp.nodes.clone(),
            created_at: cp.created_at,
        }
    }
}

/// Which sessions `list_sessions` returns. The default returns all, newest first.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SessionFilter {
    /// Only sessions with one of these statuses (empty = any).
    pub statuses: Vec<SessionStatus>,
    /// Only sessions of this pipeline.
    pub pipeline: Option<String>,
    /// Only sessions last updated strictly before this time (for `cleanup --older-than`).
    pub updated_before: Option<u64>,
    /// At most this many (the newest).
    pub limit: Option<usize>,
}

impl SessionFilter {
    /// Whether a session passes the filter (ignoring `limit`).
    pub(crate) fn accepts(&self, s: &SessionRecord) -> bool {
        (self.statuses.is_empty() || self.statuses.contains(&s.status))
            && self.pipeline.as_ref().is_none_or(|p| *p == s.pipeline)
            && self.updated_before.is_none_or(|t| s.updated_at < t)
    }
}

/// What node runs cost, as far as it is known: the sum of the known costs, and how many runs
/// had a known and an unknown cost.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CostTally {
    /// US dollars of the runs whose cost is known.
    pub known_usd: f64,
    /// Runs whose cost is known.
    pub priced_runs: u64,
    /// Runs whose cost is unknown (a model without a price).
    pub unpriced_runs: u64,
}

impl CostTally {
    /// Counts one run's cost (`None`: unknown).
    pub fn add(&mut self, cost_usd: Option<f64>) {
        match cost_usd {
            Some(usd) => {
                self.known_usd += usd;
                self.priced_runs += 1;
            }
            None => self.unpriced_runs += 1,
        }
    }

    /// The tally of `other` added to this one.
    pub fn merge(&mut self, other: &CostTally) {
        self.known_usd += other.known_usd;
        self.priced_runs += other.priced_runs;
        self.unpriced_runs += other.unpriced_runs;
    }

    /// The cost, when any of it is known (`None`: every run's cost is unknown).
    pub fn usd(&self) -> Option<f64> {
        (self.priced_runs > 0 || self.unpriced_runs == 0).then_some(self.known_usd)
    }

    /// Whether the known cost leaves runs out (some runs are priced, some are not).
    pub fn is_partial(&self) -> bool {
        self.priced_runs > 0 && self.unpriced_runs > 0
    }
}

/// One line of `orchestra status`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SessionSummary {
    /// The session id.
    pub id: String,
    /// Optional human name.
    pub name: Option<String>,
    /// The pipeline's name.
    pub pipeline: String,
    /// Lifecycle status.
    pub status: SessionStatus,
    /// Creation time.
    pub created_at: u64,
    /// Last update.
    pub updated_at: u64,
    /// The highest checkpointed step (0 when none).
    pub steps: u64,
    /// How many checkpoints are stored.
    pub checkpoints: u64,
    /// Input tokens over all node runs.
    pub tokens_in: u64,
    /// Output tokens over all node runs.
    pub tokens_out: u64,
    /// What the node runs cost.
    pub cost: CostTally,
    /// Forked from this session.
    pub parent_session: Option<String>,
    /// At this checkpoint of the parent.
    pub parent_checkpoint: Option<u64>,
    /// The call node of `parent_session` that runs it (a child session), if it is one.
    pub parent_node: Option<String>,
    /// The note of a failed, stopped, interrupted or paused session.
    pub error: Option<String>,
    /// The lease holder, when a live lease is held.
    pub lease_owner: Option<String>,
    /// Whether it is a session of the queue (it carries [`QUEUE_META`](crate::QUEUE_META)).
    #[serde(default)]
    pub queued: bool,
}

/// The outcome of `acquire_lease`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum LeaseOutcome {
    /// The caller now holds the lease.
    Acquired {
        /// Until when.
        until: u64,
    },
    /// Someone else holds a live lease.
    HeldBy {
        /// The holder (`pid@host`).
        owner: String,
        /// Until when their lease is valid unless renewed.
        until: u64,
    },
}

impl LeaseOutcome {
    /// Whether the lease was acquired.
    pub fn is_acquired(&self) -> bool {
        matches!(self, Self::Acquired { .. })
    }
}

/// What the runtime needs to rebuild the state at a checkpoint: the nearest snapshot at or
/// before it and the task records of the steps after that snapshot, in apply order.
#[derive(Clone, Debug, PartialEq)]
pub struct RestorePoint {
    /// The checkpoint being restored.
    pub target: CheckpointRecord,
    /// The snapshot to start from (`snapshot` is `Some`).
    pub base: CheckpointRecord,
    /// Task records of steps `base.step + 1 ..= target.step`, ordered by (step, task_idx).
    pub tasks: Vec<TaskRecord>,
}

/// How many candidates an ambiguous-prefix error lists.
pub const MAX_AMBIGUOUS_CANDIDATES: usize = 10;

/// The random tail of a session id: what follows its last `-` (`7e2c63` of
/// `20261120-231328-7e2c63`); the whole id when it has no `-`.
pub fn session_tail(id: &str) -> &str {
    id.rsplit_once('-').map_or(id, |(_, tail)| tail)
}

/// Whether the user's `query` names session `id`: it starts the id, or it starts the id's
/// random tail ([`session_tail`]), so `7e2c` finds `20261120-231328-7e2c63`.
pub fn session_matches(id: &str, query: &str) -> bool {
    !query.is_empty() && (id.starts_with(query) || session_tail(id).starts_with(query))
}

/// Resolves `id_or_prefix` against `candidates` (ids it matches by [`session_matches`], sorted; at most
/// `MAX_AMBIGUOUS_CANDIDATES + 1`): the one candidate, or `NotFound` / `Ambiguous`. An exact
/// match has been tried by the caller.
pub fn resolve_prefix(
    id_or_prefix: &str,
    mut candidates: Vec<String>,
) -> Result<String, StoreError> {
    if id_or_prefix.is_empty() || candidates.is_empty() {
        return Err(StoreError::not_found(id_or_prefix));
    }
    if candidates.len() == 1 {
        return Ok(candidates.remove(0));
    }
    candidates.truncate(MAX_AMBIGUOUS_CANDIDATES);
    Err(StoreError::Ambiguous {
        prefix: id_or_prefix.to_owned(),
        candidates,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_resolution() {
        assert_eq!(resolve_prefix("a", vec!["abc".into()]).unwrap(), "abc");
        assert!(matches!(
            resolve_prefix("", vec!["abc".into()]),
            Err(StoreError::NotFound { .. })
        ));
        let many: Vec<String> = (0..11).map(|i| format!("a{i:02}")).collect();
        match resolve_prefix("a", many) {
            Err(StoreError::Ambiguous { candidates, .. }) => {
                assert_eq!(candidates.len(), MAX_AMBIGUOUS_CANDIDATES);
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}
