//! One task of a step: its attempts, with a timeout each, the records of every attempt, node
//! retries with backoff, the circuit breaker, and a failure routed by `on_error`.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use futures_util::FutureExt as _;
use serde_json::{Map, Value};
use tokio::sync::Semaphore;

use orchestra_store::{CostTally, NodeRunRecord, TaskRecord, TaskStatus};

use crate::events::{Event, EventSink};
use crate::runner::{BoxFuture, NodeCall, NodeError, NodeResult, NodeRunner, UsageMeter};
use crate::store_worker::StoreHandle;

/// What follows an attempt.
enum Next<'a> {
    /// The task's end.
    End(Result<NodeResult, NodeError>),
    /// Wait first; then the task's end, or `None` to try again.
    Wait(BoxFuture<'a, Option<Result<NodeResult, NodeError>>>),
}

/// What the tasks of a step share.
pub(super) struct StepCtx {
    pub(super) runner: Arc<dyn NodeRunner>,
    pub(super) events: Arc<dyn EventSink>,
    pub(super) store: StoreHandle,
    pub(super) failures: Arc<AtomicU32>,
    pub(super) max_failures: u32,
    pub(super) retry_base: Duration,
    pub(super) permits: Arc<Semaphore>,
    pub(super) spent: Arc<AtomicU64>,
    /// The cost of every node run the step records (successes and failed attempts alike).
    pub(super) cost: Arc<Mutex<CostTally>>,
}

/// One task of a step: the shared context, the agent's (timeout, retries), the task's index,
/// and whether the agent's failure goes on at its `on_error` agent.
pub(super) struct TaskCtx {
    pub(super) step: Arc<StepCtx>,
    pub(super) limits: (Duration, u32),
    pub(super) task_idx: u32,
    pub(super) on_error: bool,
}

impl std::ops::Deref for TaskCtx {
    type Target = StepCtx;

    fn deref(&self) -> &StepCtx {
        &self.step
    }
}

impl TaskCtx {
    /// The future of one agent: its task's index in the step and how its attempts ended
    /// (mapped, not awaited in an `async` block, which would store the attempts' future twice).
    pub(super) fn run(
        self,
        call: NodeCall,
    ) -> impl Future<Output = (usize, Result<NodeResult, NodeError>)> + Send + 'static {
        let task = self.task_idx as usize;
        self.attempts(call).map(move |r| (task, r))
    }

    /// An `async` block over the captured arguments rather than an `async fn`, which would
    /// store them twice (as captured and as locals) in every running agent's future.
    #[expect(
        clippy::manual_async_fn,
        reason = "an `async fn` would store its arguments twice"
    )]
    fn attempts(
        self,
        mut call: NodeCall,
    ) -> impl Future<Output = Result<NodeResult, NodeError>> + Send + 'static {
        async move {
            let Ok(_permit) = self.permits.acquire().await else {
                return Err(NodeError::Fatal("the executor was shut down".into()));
            };
            let (timeout, retries) = self.limits;
            loop {
                self.events.emit(Event::NodeStarted {
                    step: call.step,
                    node: call.agent.to_string(),
                    run_index: call.run_index,
                    attempt: call.attempt,
                });
                let started_at = now_ms();
                let t0 = Instant::now();
                call.usage = Arc::new(UsageMeter::default());
                call.trace = Arc::default();
                let result = match tokio::time::timeout(timeout, self.runner.run(&call)).await {
                    Ok(r) => r,
                    Err(_) => Err(NodeError::Retryable(format!(
                        "timed out after {}",
                        orchestra_spec::fmt_duration(timeout)
                    ))),
                };
                // Settled by a plain function: neither the records nor the result take room in
                // every running agent's future, and a success whose records the store can take
                // now (the usual case) allocates no future at all.
                let next = match self.after_attempt(&call, result, started_at, t0, retries) {
                    Next::End(end) => return end,
                    Next::Wait(wait) => wait.await,
                };
                match next {
                    Some(end) => return end,
                    None => call.attempt += 1,
                }
            }
        }
    }

    /// The records of an attempt that ended, and what comes next: the task's end, or what to
    /// wait for first (room in the store's queue; a failure's handling and backoff).
    fn after_attempt<'a>(
        &'a self,
        call: &'a NodeCall,
        result: Result<NodeResult, NodeError>,
        started_at: u64,
        t0: Instant,
        retries: u32,
    ) -> Next<'a> {
        let duration_ms = crate::events::millis(t0.elapsed());
        let (usage, cache, cost_usd, status, error) = match &result {
            Ok(r) => (
                (r.tokens_in, r.tokens_out, r.tool_calls, r.retries),
                (r.cache_read_tokens, r.cache_write_tokens),
                r.cost_usd,
                TaskStatus::Ok,
                None,
            ),
            Err(e) => {
                // What the failed attempt spent (the model calls it made before failing, and
                // the retries of their providers, the last call's included).
                let (spent, cost) = call.usage.get();
                self.spent.fetch_add(spent.total(), Ordering::SeqCst);
                (
                    (
                        spent.input_tokens,
                        spent.output_tokens,
                        0,
                        call.usage.retries(),
                    ),
                    (spent.cache_read_tokens, spent.cache_write_tokens),
                    cost,
                    TaskStatus::Error,
                    Some(e.to_string()),
                )
            }
        };
        let run = NodeRunRecord {
            session: call.session.to_string(),
            step: call.step,
            node: call.agent.to_string(),
            run_index: call.run_index,
            started_at,
            finished_at: now_ms(),
            duration_ms,
            tokens_in: usage.0,
            tokens_out: usage.1,
            cache_read_tokens: cache.0,
            cache_write_tokens: cache.1,
            cost_usd,
            tool_calls: usage.2,
            retries: usage.3 + call.attempt,
            status,
            error,
        };
        if !matches!(result, Err(NodeError::Pause(_))) {
            // Counted as it is recorded: a pause records nothing.
            self.cost
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .add(cost_usd);
        }
        match result {
            Ok(res) => {
                let task = self.task_record(call, &res, run.finished_at);
                self.store.record_traced(Some(task), run, call.trace.take());
                self.finished(call, &res, duration_ms);
                Next::End(Ok(res))
            }
            Err(NodeError::Pause(reason)) => {
                // What the chat's model turns did before it paused.
                self.store.trace(call.trace.take());
                Next::End(Err(NodeError::Pause(reason)))
            }
            Err(e) => Next::Wait(Box::pin(self.failed(call, run, e, retries))),
        }
    }

    /// The record of a successful attempt (or of a failure `on_error` routes).
    fn task_record(&self, call: &NodeCall, res: &NodeResult, finished_at: u64) -> TaskRecord {
        let declared: Map<String, Value> = res.writes.iter().cloned().collect();
        TaskRecord {
            session: call.session.to_string(),
            step: call.step,
            task_idx: self.task_idx,
            node: call.agent.to_string(),
            run_index: call.run_index,
            status: TaskStatus::Ok,
            writes: Value::Object(declared),
            output: res.output.clone(),
            error: res.error.clone(),
            finished_at,
        }
    }

    /// Reports a successful attempt.
    fn finished(&self, call: &NodeCall, res: &NodeResult, duration_ms: u64) {
        self.events.emit(Event::NodeFinished {
            step: call.step,
            node: call.agent.to_string(),
            duration_ms,
            tokens_in: res.tokens_in,
            tokens_out: res.tokens_out,
            cache_read_tokens: res.cache_read_tokens,
            cache_write_tokens: res.cache_write_tokens,
            cost_usd: res.cost_usd,
            tool_calls: res.tool_calls,
            reused: false,
            exit_code: res.exit_code,
        });
    }

    /// After a failed attempt (not a pause): records it, and returns the task's end — the
    /// error to fail it with, or the failure routed by `on_error` — or waits out the backoff
    /// and returns `None` to try again.
    async fn failed(
        &self,
        call: &NodeCall,
        run: NodeRunRecord,
        e: NodeError,
        retries: u32,
    ) -> Option<Result<NodeResult, NodeError>> {
        let total = self.failures.fetch_add(1, Ordering::SeqCst) + 1;
        let msg = e.to_string();
        let retryable = matches!(e, NodeError::Retryable(_));
        let tripped = total >= self.max_failures.max(1);
        let last = !retryable || call.attempt >= retries;
        if self.on_error && !tripped && last {
            let msg = given_up(msg, retryable, call.attempt);
            self.events.emit(Event::NodeFailed {
                step: call.step,
                node: call.agent.to_string(),
                error: msg.clone(),
            });
            let res = routed_failure(call, msg);
            // The task's record holds the `errors` write, so a resume or restore applies it
            // and routes the same way; it is stored with the failed attempt's.
            let task = self.task_record(call, &res, run.finished_at);
            self.store.record_traced(Some(task), run, call.trace.take());
            return Some(Ok(res));
        }
        // Queued like a task's records: a failure to store it fails the step's checkpoint, or
        // the drive's end.
        self.store.record_traced(None, run, call.trace.take());
        if tripped {
            self.events.emit(Event::NodeFailed {
                step: call.step,
                node: call.agent.to_string(),
                error: msg.clone(),
            });
            return Some(Err(NodeError::Fatal(format!(
                "{msg} (circuit breaker: {total} failed attempts in this session, limits.max_failures is {})",
                self.max_failures
            ))));
        }
        if last {
            self.events.emit(Event::NodeFailed {
                step: call.step,
                node: call.agent.to_string(),
                error: msg.clone(),
            });
            return Some(Err(NodeError::Fatal(given_up(
                msg,
                retryable,
                call.attempt,
            ))));
        }
        let delay = orchestra_providers::Backoff {
            base: self.retry_base,
            cap: Duration::from_secs(60),
            jitter: orchestra_providers::Jitter::Equal,
        }
        .delay(call.attempt);
        self.events.emit(Event::NodeRetry {
            step: call.step,
            node: call.agent.to_string(),
            attempt: call.attempt,
            error: msg,
            delay_ms: crate::events::millis(delay),
        });
        tokio::time::sleep(delay).await;
        None
    }
}

/// The error of a task that gave up after `attempt` (0-based) failed with `msg`.
fn given_up(msg: String, retryable: bool, attempt: u32) -> String {
    let tries = attempt + 1;
    if retryable && tries > 1 {
        format!("{msg} (after {tries} attempts)")
    } else {
        msg
    }
}

/// The result of a task whose failure `on_error` routes: no output, the failure appended to
/// state `errors` as `{agent, step, error}`.
fn routed_failure(call: &NodeCall, error: String) -> NodeResult {
    let entry = serde_json::json!({
        "agent": &*call.agent,
        "step": call.step,
        "error": &error,
    });
    NodeResult {
        output: Value::Null,
        writes: vec![(orchestra_spec::ERRORS.to_owned(), Value::Array(vec![entry]))],
        error: Some(error),
        ..NodeResult::default()
    }
}

pub(super) fn now_ms() -> u64 {
    orchestra_store::system_now_ms()
}
