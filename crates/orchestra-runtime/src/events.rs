//! What a running session reports: progress events for the CLI (or a web UI) to show.

use std::sync::Mutex;

use serde::{Deserialize, Serialize};

/// Something that happened in a session. Its JSON form (`{"event": "node_started", ...}`) is
/// what `orchestra attach` clients receive.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// A session starts (or resumes) driving.
    SessionStarted {
        /// Session id.
        session: String,
        /// Pipeline name.
        pipeline: String,
        /// The checkpoint it continues from, when resuming.
        from_step: Option<u64>,
    },
    /// A super-step starts with these agents.
    StepStarted {
        /// Step number (1-based).
        step: u64,
        /// Agents that run in it.
        nodes: Vec<String>,
    },
    /// An agent run starts.
    NodeStarted {
        /// Step number.
        step: u64,
        /// Agent.
        node: String,
        /// How many times it ran before in this session.
        run_index: u32,
        /// 0 for the first attempt, then 1, 2, ... for retries.
        attempt: u32,
    },
    /// Model text as it arrives (`--stream`).
    Text {
        /// Agent.
        node: String,
        /// A text delta.
        text: String,
    },
    /// An agent called a tool.
    ToolCalled {
        /// Step number.
        #[serde(default)]
        step: u64,
        /// Agent.
        node: String,
        /// How many times the agent ran before in this session.
        #[serde(default)]
        run_index: u32,
        /// Tool name.
        tool: String,
        /// Whether the tool reported an error.
        is_error: bool,
        /// How long the call took.
        #[serde(default)]
        duration_ms: u64,
    },
    /// One model call of an agent returned (one turn of its tool loop).
    ModelTurn {
        /// Step number.
        step: u64,
        /// Agent.
        node: String,
        /// How many times the agent ran before in this session.
        run_index: u32,
        /// 0 for the agent run's first model call, then 1, 2, ...
        turn: u32,
        /// The provider's name (as configured).
        provider: String,
        /// The model asked for.
        model: String,
        /// Wall time of the call, retries and waits for the provider's gate included.
        duration_ms: u64,
        /// Input tokens.
        tokens_in: u64,
        /// Output tokens.
        tokens_out: u64,
        /// Whether the tokens are estimated from the text because the provider reported none
        /// (a server without usage, a scripted answer without `usage`, a `text` CLI agent).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        tokens_estimated: bool,
        /// Why the model stopped (`end_turn`, `tool_use`, ...).
        stop: String,
        /// Tool calls the model asked for in this turn.
        tool_calls: u32,
    },
    /// Where the session goes after a node: the edge's condition (if any), what it decided and
    /// the nodes chosen.
    Routed {
        /// Step number of the node that finished.
        step: u64,
        /// The node the edges leave.
        from: String,
        /// The condition's name, when the edge is conditional.
        condition: Option<String>,
        /// What the condition decided (its rule or value, e.g. `revise`).
        decision: Option<String>,
        /// The nodes chosen (empty: none; `END` ends the session).
        targets: Vec<String>,
        /// The edge's loop round (1-based) when it is a bounded loop edge.
        loop_round: Option<u32>,
        /// The loop edge's bound.
        loop_max: Option<u32>,
    },
    /// A person answered an interactive agent.
    HumanTurn {
        /// Agent.
        node: String,
        /// What the person said (`/approve`, `/reject`, or text).
        text: String,
    },
    /// An event of a child session, run by call node `node` of this session (in the JSON
    /// lines of `--events`: the child's event itself, with the child's `session` and
    /// `parent_session` and `call_node` added).
    Child {
        /// The child session's id.
        child: String,
        /// The call node of this session that runs it.
        node: String,
        /// What happened in the child.
        inner: Box<Event>,
    },
    /// A drive of the session ended.
    SessionFinished {
        /// Session id.
        session: String,
        /// Its status now (`completed`, `failed`, `stopped`, `paused`, `interrupted`).
        status: String,
        /// The last committed checkpoint.
        steps: u64,
        /// Input tokens of the whole session.
        tokens_in: u64,
        /// Output tokens of the whole session.
        tokens_out: u64,
        /// Wall time of this drive.
        duration_ms: u64,
        /// Why it failed or stopped, when it did.
        error: Option<String>,
    },
    /// An attempt failed and will be retried after `delay_ms`.
    NodeRetry {
        /// Step number.
        step: u64,
        /// Agent.
        node: String,
        /// The attempt that failed.
        attempt: u32,
        /// Why.
        error: String,
        /// Backoff before the next attempt.
        delay_ms: u64,
    },
    /// An agent run finished.
    NodeFinished {
        /// Step number.
        step: u64,
        /// Agent.
        node: String,
        /// Wall time.
        duration_ms: u64,
        /// Input tokens.
        tokens_in: u64,
        /// Output tokens.
        tokens_out: u64,
        /// Input tokens read from the prompt cache (a part of `tokens_in`).
        #[serde(default)]
        cache_read_tokens: u64,
        /// Input tokens written to the prompt cache (a part of `tokens_in`).
        #[serde(default)]
        cache_write_tokens: u64,
        /// What its model calls cost in US dollars; `null` when the model's price is unknown.
        #[serde(default)]
        cost_usd: Option<f64>,
        /// Tool calls made.
        tool_calls: u64,
        /// Whether its result was taken from the store (it had finished before a crash).
        reused: bool,
        /// For a command node, its program's exit code.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        exit_code: Option<i32>,
    },
    /// An agent run failed for good.
    NodeFailed {
        /// Step number.
        step: u64,
        /// Agent.
        node: String,
        /// Why.
        error: String,
    },
    /// A checkpoint was committed.
    Checkpoint {
        /// Its step.
        step: u64,
        /// Whether it holds a full snapshot.
        snapshot: bool,
    },
    /// A provider answered 429 and its calls now wait for room: it lets `limit` requests through
    /// at once (sent when calls first wait, and again when the limit fell by a quarter or more).
    RateLimited {
        /// The provider.
        provider: String,
        /// Requests it lets through at once now.
        limit: u32,
        /// Calls waiting for it when this was sent.
        waiting: u32,
    },
    /// Something the user should know.
    Warning {
        /// The message.
        message: String,
    },
}

/// A duration in whole milliseconds, as events carry it (saturated).
pub(crate) fn millis(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Receives events. Implementations must be cheap and must not block for long.
pub trait EventSink: Send + Sync {
    /// Handles one event.
    fn emit(&self, event: Event);
}

/// Drops every event.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoEvents;

impl EventSink for NoEvents {
    fn emit(&self, _: Event) {}
}

/// Keeps every event in memory (for tests and for callers that inspect them afterwards).
#[derive(Debug, Default)]
pub struct CollectEvents {
    events: Mutex<Vec<Event>>,
}

impl CollectEvents {
    /// The events so far.
    pub fn take(&self) -> Vec<Event> {
        self.events
            .lock()
            .map(|mut v| std::mem::take(&mut *v))
            .unwrap_or_default()
    }
}

impl EventSink for CollectEvents {
    fn emit(&self, event: Event) {
        if let Ok(mut v) = self.events.lock() {
            v.push(event);
        }
    }
}
