//! The records the store persists and returns: sessions, task writes, checkpoints, usage, chat.
//!
//! All times are unix milliseconds. JSON payloads (`writes`, `scheduler`, `snapshot`, ...) are
//! opaque to the store: the runtime defines them and gets back exactly what it stored.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A session to create (status `created`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NewSession {
    /// Unique id (the runtime generates it).
    pub id: String,
    /// Optional human name (`--session-name`).
    pub name: Option<String>,
    /// The pipeline's `name:`.
    pub pipeline: String,
    /// The pipeline file as given by the user.
    pub pipeline_path: String,
    /// The pipeline YAML text that ran.
    pub pipeline_source: String,
    /// The resolved pipeline as JSON text (resume uses it). Kept as text: it is written once
    /// and read back whole, so the store never builds a JSON tree of it.
    pub resolved: String,
    /// Hash of the pipeline source (resume warns when the file changed).
    pub pipeline_hash: String,
    /// The session inputs.
    pub inputs: Value,
    /// The session this one was forked from (`replay`).
    pub parent_session: Option<String>,
    /// The checkpoint of `parent_session` it was forked at.
    pub parent_checkpoint: Option<u64>,
    /// For a child session (run by a call node of `parent_session`), that node's name; `None`
    /// for forks and top-level sessions.
    #[serde(default)]
    pub parent_node: Option<String>,
    /// Creation time.
    pub created_at: u64,
}

/// The pipeline a session goes on with (`set_session_pipeline`): it replaces the one the session
/// was created with (`resume --pipeline FILE`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SessionPipeline {
    /// The pipeline's `name:`.
    pub pipeline: String,
    /// The pipeline file as given by the user.
    pub pipeline_path: String,
    /// The pipeline YAML text.
    pub pipeline_source: String,
    /// The resolved pipeline as JSON text.
    pub resolved: String,
    /// Hash of the pipeline.
    pub pipeline_hash: String,
}

/// A stored session.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SessionRecord {
    /// Unique id.
    pub id: String,
    /// Optional human name.
    pub name: Option<String>,
    /// The pipeline's `name:`.
    pub pipeline: String,
    /// The pipeline file as given by the user.
    pub pipeline_path: String,
    /// The pipeline YAML text that ran.
    pub pipeline_source: String,
    /// The resolved pipeline as JSON text, exactly as it was given.
    pub resolved: String,
    /// Hash of the pipeline source.
    pub pipeline_hash: String,
    /// The session inputs.
    pub inputs: Value,
    /// The session this one was forked from.
    pub parent_session: Option<String>,
    /// The checkpoint of `parent_session` it was forked at.
    pub parent_checkpoint: Option<u64>,
    /// For a child session (run by a call node of `parent_session`), that node's name; `None`
    /// for forks and top-level sessions.
    #[serde(default)]
    pub parent_node: Option<String>,
    /// Creation time.
    pub created_at: u64,
    /// Lifecycle status.
    pub status: SessionStatus,
    /// Why the session failed, stopped, paused or was interrupted (a note for people).
    pub error: Option<String>,
    /// Last change of status or meta, or (to the second) the last checkpoint.
    pub updated_at: u64,
    /// Free-form metadata set with `set_session_meta` (e.g. branch names).
    pub meta: Map<String, Value>,
    /// Who holds the lease (the runtime uses `pid@host`), if anyone ever took it and did not
    /// release it. Check `lease_until` to know whether it is still valid.
    pub lease_owner: Option<String>,
    /// Until when the lease is valid.
    pub lease_until: Option<u64>,
}

impl SessionRecord {
    /// Builds the record of a freshly created session.
    pub(crate) fn created(s: &NewSession, now: u64) -> Self {
        Self {
            id: s.id.clone(),
            name: s.name.clone(),
            pipeline: s.pipeline.clone(),
            pipeline_path: s.pipeline_path.clone(),
            pipeline_source: s.pipeline_source.clone(),
            resolved: s.resolved.clone(),
            pipeline_hash: s.pipeline_hash.clone(),
            inputs: s.inputs.clone(),
            parent_session: s.parent_session.clone(),
            parent_checkpoint: s.parent_checkpoint,
            parent_node: s.parent_node.clone(),
            created_at: s.created_at,
            status: SessionStatus::Created,
            error: None,
            updated_at: now,
            meta: Map::new(),
            lease_owner: None,
            lease_until: None,
        }
    }

    /// The current lease holder, if the lease has not expired at `now`.
    pub fn lease_holder(&self, now: u64) -> Option<&str> {
        match (&self.lease_owner, self.lease_until) {
            (Some(owner), Some(until)) if until > now => Some(owner),
            _ => None,
        }
    }
}

/// Lifecycle status of a session.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SessionStatus {
    /// The row exists; no node has finished yet.
    Created,
    /// Waiting in the queue for a worker (`run --queue`, or handed back after a human's turn).
    Queued,
    /// A process is driving it (or was, until it crashed: check the lease).
    Running,
    /// Waiting for a human (`attach`).
    Paused,
    /// Finished normally.
    Completed,
    /// Ended by an error (or a pipeline's `FAIL`); resumable once the cause is fixed.
    Failed,
    /// Stopped cleanly at a limit (`max_steps`, `max_tokens`); resumable.
    Stopped,
    /// Cancelled (Ctrl-C, or its lease was lost); resumable.
    Interrupted,
}

impl SessionStatus {
    /// Every status, in lifecycle order.
    pub const ALL: [Self; 8] = [
        Self::Created,
        Self::Queued,
        Self::Running,
        Self::Paused,
        Self::Completed,
        Self::Failed,
        Self::Stopped,
        Self::Interrupted,
    ];

    /// The lowercase name, as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Paused => "paused",
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Stopped => "stopped",
            Self::Interrupted => "interrupted",
        }
    }
}

impl fmt::Display for SessionStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A string that is not a [`SessionStatus`] or [`TaskStatus`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown status `{0}`")]
pub struct UnknownStatus(pub String);

impl FromStr for SessionStatus {
    type Err = UnknownStatus;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| UnknownStatus(s.to_owned()))
    }
}

/// How a task (one node run within a step) or a node run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TaskStatus {
    /// It produced its writes.
    Ok,
    /// It failed (see `error`).
    Error,
}

impl TaskStatus {
    /// The lowercase name, as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Error => "error",
        }
    }
}

impl fmt::Display for TaskStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for TaskStatus {
    type Err = UnknownStatus;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "ok" => Ok(Self::Ok),
            "error" => Ok(Self::Error),
            _ => Err(UnknownStatus(s.to_owned())),
        }
    }
}

/// The outcome of one task of a super-step: these writes are the checkpoint deltas.
///
/// Keyed by `(session, step, task_idx)`; recording the same key again replaces the record.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TaskRecord {
    /// The session id.
    pub session: String,
    /// The super-step the task ran in (1 for the first step).
    pub step: u64,
    /// Position of the task within the step, in declaration order.
    pub task_idx: u32,
    /// The node (agent) name.
    pub node: String,
    /// How many times the node ran before this run in the session.
    pub run_index: u32,
    /// How it ended.
    pub status: TaskStatus,
    /// The state writes (JSON the runtime defines).
    pub writes: Value,
    /// The agent's output.
    pub output: Value,
    /// The error, when `status` is `error`.
    pub error: Option<String>,
    /// When it finished.
    pub finished_at: u64,
}

/// A checkpoint: the scheduler state after a step, plus sometimes a full state snapshot.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CheckpointRecord {
    /// The session id.
    pub session: String,
    /// The step (0 = initial state).
    pub step: u64,
    /// The checkpoint this one follows (None for the first one).
    pub parent_step: Option<u64>,
    /// The scheduler state (small JSON).
    pub scheduler: Value,
    /// The full state, when the runtime decided to take a snapshot at this step.
    pub snapshot: Option<Value>,
    /// `{repo: sha}` of repos that changed in this step.
    pub repo_shas: Option<Value>,
    /// The nodes that ran in this step.
    pub nodes: Vec<String>,
    /// When it was committed.
    pub created_at: u64,
}

/// Usage of one node run: tokens, cost, tool calls, timing, retries, outcome.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NodeRunRecord {
    /// The session id.
    pub session: String,
    /// The step it ran in.
    pub step: u64,
    /// The node (agent) name.
    pub node: String,
    /// How many times the node ran before this run.
    pub run_index: u32,
    /// Start time.
    pub started_at: u64,
    /// End time.
    pub finished_at: u64,
    /// Wall time of the run.
    pub duration_ms: u64,
    /// Input tokens over all model calls of the run.
    pub tokens_in: u64,
    /// Output tokens over all model calls of the run.
    pub tokens_out: u64,
    /// Input tokens read from the provider's prompt cache (a part of `tokens_in`).
    #[serde(default)]
    pub cache_read_tokens: u64,
    /// Input tokens written to the provider's prompt cache (a part of `tokens_in`).
    #[serde(default)]
    pub cache_write_tokens: u64,
    /// What the run's model calls cost in US dollars; `None` when it is unknown (a model
    /// without a price, or a run recorded before costs were), never 0 for that.
    #[serde(default)]
    pub cost_usd: Option<f64>,
    /// Tool calls made.
    pub tool_calls: u64,
    /// Provider retries.
    pub retries: u32,
    /// How it ended.
    pub status: TaskStatus,
    /// The error, when it failed.
    pub error: Option<String>,
}

/// One message of an interactive conversation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessageRecord {
    /// The session id.
    pub session: String,
    /// The interactive node.
    pub node: String,
    /// Which run of the node.
    pub run_index: u32,
    /// The turn number within the run.
    pub turn: u32,
    /// `user`, `assistant`, `system`, ...
    pub role: String,
    /// The text.
    pub content: String,
    /// When it was appended.
    pub created_at: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_round_trip_through_strings() {
        for st in SessionStatus::ALL {
            assert_eq!(st.as_str().parse::<SessionStatus>(), Ok(st));
            assert_eq!(
                serde_json::to_value(st).unwrap(),
                Value::String(st.to_string())
            );
        }
        assert_eq!(
            "done".parse::<SessionStatus>(),
            Err(UnknownStatus("done".into()))
        );
        assert_eq!("error".parse::<TaskStatus>(), Ok(TaskStatus::Error));
        assert!("Ok".parse::<TaskStatus>().is_err());
    }

    #[test]
    fn stopped_and_interrupted_have_their_own_names() {
        assert_eq!(SessionStatus::Stopped.as_str(), "stopped");
        assert_eq!(SessionStatus::Interrupted.as_str(), "interrupted");
        assert_eq!(
            serde_json::to_value(SessionStatus::Interrupted).unwrap(),
            "interrupted"
        );
        let names: std::collections::HashSet<&str> =
            SessionStatus::ALL.iter().map(|s| s.as_str()).collect();
        assert_eq!(names.len(), SessionStatus::ALL.len(), "names are distinct");
    }

    #[test]
    fn lease_holder_respects_expiry() {
        let mut s = SessionRecord::created(
            &NewSession {
                id: "s".into(),
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
            },
            1,
        );
        assert_eq!(s.lease_holder(5), None);
        s.lease_owner = Some("1@h".into());
        s.lease_until = Some(10);
        assert_eq!(s.lease_holder(9), Some("1@h"));
        assert_eq!(s.lease_holder(10), None);
    }
}
