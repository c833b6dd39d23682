//! The boundary between the executor and what runs an agent: a [`NodeRunner`] gets a
//! [`NodeCall`] and returns the agent's output and declared writes.

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use serde_json::{Map, Value};

use orchestra_providers::{Price, Usage};

use orchestra_graph::state::State;
use orchestra_store::TraceRecord;
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
    /// Tokens (their cost, and provider retries) the run has used so far; the runner adds to
    /// it after every model call, so what a failed attempt spent is known too.
    pub usage: Arc<UsageMeter>,
    /// What the attempt did (model turns, tool calls), added by the runner as it goes and
    /// stored with the attempt's usage, whether it succeeded or not.
    pub trace: Arc<TraceLog>,
    /// Tools to use instead of the runner's own (None: the runner's). A parallel writer gets a
    /// registry whose repository tools act on its own worktree.
    pub tools: Option<Arc<Registry>>,
    /// Where a command-line agent runs (None: where its provider was set up to). An agent that
    /// writes a repository runs in its worktree (its own fork when it writes in parallel).
    pub workdir: Option<Arc<Path>>,
    /// For an instance of a `for_each` target (then `agent` is its name, `researcher[3]`): its
    /// item's 0-based index and the item, which its task template sees as `item_index`, `item`.
    pub item: Option<Arc<(u32, Value)>>,
}

/// What one attempt of an agent run used, counted as the model calls return (or fail): tokens,
/// their cost while every call's cost is known, and the retries its provider made.
#[derive(Debug)]
pub struct UsageMeter {
    spent: Mutex<(Usage, Option<f64>)>,
    retries: AtomicU32,
}

impl Default for UsageMeter {
    fn default() -> Self {
        UsageMeter {
            // No call yet: nothing spent, and that is known.
            spent: Mutex::new((Usage::default(), Some(0.0))),
            retries: AtomicU32::new(0),
        }
    }
}

impl UsageMeter {
    /// Adds the usage of one model call and what it cost (`None`: unknown).
    pub fn add(&self, usage: &Usage, cost: Option<f64>) {
        let mut spent = self.spent.lock().unwrap_or_else(PoisonError::into_inner);
        spent.0 += *usage;
        spent.1 = add_cost(spent.1, cost);
    }

    /// Adds the retries a provider made for one model call, whether it then succeeded or not.
    pub fn add_retries(&self, retries: u32) {
        self.retries.fetch_add(retries, Ordering::Relaxed);
    }

    /// Provider retries so far.
    pub fn retries(&self) -> u32 {
        self.retries.load(Ordering::Relaxed)
    }

    /// The tokens so far, and their cost (`None` once a call's cost was unknown).
    pub fn get(&self) -> (Usage, Option<f64>) {
        *self.spent.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// What one model call cost: what the provider reported (a CLI agent's own figure), else its
/// usage at `price`; `None` when neither is known.
pub(crate) fn call_cost(
    reported: Option<f64>,
    usage: &Usage,
    price: Option<&Price>,
) -> Option<f64> {
    reported.or_else(|| price.map(|p| p.cost(usage)))
}

/// `total` plus one call's `cost`: unknown once any call's cost is.
pub(crate) fn add_cost(total: Option<f64>, cost: Option<f64>) -> Option<f64> {
    Some(total? + cost?)
}

/// The trace records of one attempt of an agent run, kept until the attempt ends.
#[derive(Debug, Default)]
pub struct TraceLog {
    records: Mutex<Vec<TraceRecord>>,
}

impl TraceLog {
    /// Adds a record.
    pub fn push(&self, r: TraceRecord) {
        if let Ok(mut v) = self.records.lock() {
            v.push(r);
        }
    }

    /// The records so far, taken, without spare capacity: they wait in the store queue with
    /// every other finished run's.
    pub fn take(&self) -> Vec<TraceRecord> {
        let mut records = self
            .records
            .lock()
            .map(|mut v| std::mem::take(&mut *v))
            .unwrap_or_default();
        records.shrink_to_fit();
        records
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
    /// Input tokens read from the prompt cache (a part of `tokens_in`).
    pub cache_read_tokens: u64,
    /// Input tokens written to the prompt cache (a part of `tokens_in`).
    pub cache_write_tokens: u64,
    /// What the model calls cost in US dollars; `None` when a model's price is unknown.
    pub cost_usd: Option<f64>,
    /// Tool calls made.
    pub tool_calls: u64,
    /// Provider-level retries done.
    pub retries: u32,
    /// Set by the executor when the agent failed and `on_error` routes the failure: why it
    /// failed (the result then holds only the `errors` write).
    pub error: Option<String>,
    /// For a command node, its program's exit code (also in the output).
    pub exit_code: Option<i32>,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reported_cost_wins_over_the_price_and_an_unknown_one_stays_unknown() {
        let usage = Usage {
            input_tokens: 1_000_000,
            output_tokens: 0,
            ..Usage::default()
        };
        let price = Price {
            input: 3.0,
            output: 15.0,
            cache_read: 0.3,
            cache_write: 3.75,
        };
        assert_eq!(call_cost(Some(0.5), &usage, Some(&price)), Some(0.5));
        assert_eq!(call_cost(None, &usage, Some(&price)), Some(3.0));
        assert_eq!(call_cost(None, &usage, None), None);
        assert_eq!(add_cost(Some(1.0), Some(0.25)), Some(1.25));
        assert_eq!(add_cost(Some(1.0), None), None);
        assert_eq!(add_cost(None, Some(1.0)), None);
        let meter = UsageMeter::default();
        assert_eq!(
            meter.get(),
            (Usage::default(), Some(0.0)),
            "nothing spent is known"
        );
        meter.add(&usage, Some(3.0));
        meter.add(&usage, None);
        assert_eq!(meter.get().0.input_tokens, 2_000_000);
        assert_eq!(meter.get().1, None);
    }
}
