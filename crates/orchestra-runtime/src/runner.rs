//! The boundary between the executor and what runs an agent: a [`NodeRunner`] gets a
//! [`NodeCall`] and returns the agent's output and declared writes.

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use serde_json::{Map, Value};

use orchestra_graph::state::State;
use orchestra_tools::Registry;

/// A boxed, sendable future.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One run of one agent.
#[derive(Clone, Debug)]
pub struct NodeCall {
    /// Session id.
    pub session: Arc<str>,
    /// The super-step it runs in.
    pub step: u64,
    /// Agent name.
    pub agent: Arc<str>,
    /// Agent declaration index.
    pub agent_idx: usize,
    /// How many times the agent ran before in this session.
    pub run_index: u32,
    /// 0 for the first attempt, then 1, 2, ... for retries.
    pub attempt: u32,
    /// The state as of the previous checkpoint.
    pub state: Arc<State>,
    /// The session's inputs.
    pub inputs: Arc<Map<String, Value>>,
    /// Tokens (and provider retries) the run has used so far; the runner adds to it after
    /// every model call, so what a failed attempt spent is known too.
    pub usage: Arc<UsageMeter>,
    /// Tools to use instead of the runner's own (None: the runner's). A parallel writer gets a
    /// registry whose repository tools act on its own worktree.
    pub tools: Option<Arc<Registry>>,
    /// Where a command-line agent runs (None: where its provider was set up to). An agent that
    /// writes a repository runs in its worktree (its own fork when it writes in parallel).
    pub workdir: Option<Arc<Path>>,
}

/// Tokens used by one attempt of an agent run, and the retries its provider made, counted as
/// the model calls return (or fail).
#[derive(Debug, Default)]
pub struct UsageMeter {
    tokens_in: AtomicU64,
    tokens_out: AtomicU64,
    retries: AtomicU32,
}

impl UsageMeter {
    /// Adds the usage of one model call.
    pub fn add(&self, tokens_in: u64, tokens_out: u64) {
        self.tokens_in.fetch_add(tokens_in, Ordering::Relaxed);
        self.tokens_out.fetch_add(tokens_out, Ordering::Relaxed);
    }

    /// Adds the retries a provider made for one model call, whether it then succeeded or not.
    pub fn add_retries(&self, retries: u32) {
        self.retries.fetch_add(retries, Ordering::Relaxed);
    }

    /// Provider retries so far.
    pub fn retries(&self) -> u32 {
        self.retries.load(Ordering::Relaxed)
    }

    /// (input, output) tokens so far.
    pub fn get(&self) -> (u64, u64) {
        (
            self.tokens_in.load(Ordering::Relaxed),
            self.tokens_out.load(Ordering::Relaxed),
        )
    }
}

/// What an agent run produced.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct NodeResult {
    /// The output: the final text as a JSON string, or the structured output.
    pub output: Value,
    /// Declared writes: (state field, value).
    pub writes: Vec<(String, Value)>,
    /// Input tokens used.
    pub tokens_in: u64,
    /// Output tokens used.
    pub tokens_out: u64,
    /// Tool calls made.
    pub tool_calls: u64,
    /// Provider-level retries done.
    pub retries: u32,
    /// Set by the executor when the agent failed and `on_error` routes the failure: why it
    /// failed (the result then holds only the `errors` write).
    pub error: Option<String>,
}

/// Why an agent run failed.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum NodeError {
    /// Worth another attempt (invalid output, a node timeout, a transient provider error its
    /// provider did not retry itself).
    #[error("{0}")]
    Retryable(String),
    /// Another attempt would fail the same way (bad configuration, missing key), or would only
    /// repeat what was already retried (a provider error after the provider's own retries).
    #[error("{0}")]
    Fatal(String),
    /// The node needs a human: the session pauses here.
    #[error("{0}")]
    Pause(String),
}

/// Runs agents.
pub trait NodeRunner: Send + Sync {
    /// Runs one agent once. The call is borrowed: the executor holds it while the agent runs
    /// (a copy in every running agent's future would cost memory at wide fan-outs).
    fn run<'a>(&'a self, call: &'a NodeCall) -> BoxFuture<'a, Result<NodeResult, NodeError>>;
}

impl<T: NodeRunner + ?Sized> NodeRunner for Arc<T> {
    fn run<'a>(&'a self, call: &'a NodeCall) -> BoxFuture<'a, Result<NodeResult, NodeError>> {
        (**self).run(call)
    }
}
