//! The super-step loop: run every ready agent concurrently (bounded), store each task the moment
//! it finishes, apply the step's writes in declaration order, let the scheduler pick the next
//! step, commit a checkpoint. Crash-safe: a step that was cut short reuses the tasks that had
//! finished and runs only the others.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::FutureExt as _;
use futures_util::stream::{FuturesUnordered, StreamExt as _};
use serde_json::{Map, Value, json};
use tokio::sync::{Semaphore, watch};

use orchestra_graph::scheduler::{Outcome, SchedState, Scheduler};
use orchestra_graph::state::{Channels, State, Write};
use orchestra_graph::{Edge, Topology};
use orchestra_store::{CheckpointRecord, NodeRunRecord, TaskRecord, TaskStatus};

use crate::events::{Event, EventSink};
use crate::hooks::{HOOK_NODE, Hooked, after_step};
use crate::runner::{BoxFuture, NodeCall, NodeError, NodeResult, NodeRunner, UsageMeter};
use crate::store_worker::{SentCheckpoint, StoreHandle, WorkerError};

/// Most checkpoints a drive lets the store commit behind it (see `Executor::steps`).
const OUTSTANDING: usize = 8;

/// Evaluates conditions of conditional edges.
pub trait Router: Send + Sync {
    /// The target names `edge`'s condition chooses, given the state after the step.
    fn route(
        &self,
        edge: &Edge,
        state: &State,
        inputs: &Map<String, Value>,
        loops: u32,
    ) -> Result<Vec<String>, String>;

    /// Whether `route` may block for long (it runs a subprocess): it is then called on a
    /// blocking thread, not on the runtime's (which also serves Ctrl-C and `attach`).
    fn may_block(&self) -> bool {
        false
    }
}

/// Runs `f` (scheduling work that calls a [`Router`]) on a blocking thread when the router
/// `may_block`, else right here.
pub(crate) async fn routing<T: Send + 'static>(
    may_block: bool,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, String> {
    if may_block {
        tokio::task::spawn_blocking(f)
            .await
            .map_err(|e| format!("evaluating the conditions failed: {e}"))
    } else {
        Ok(f())
    }
}

pub use crate::hooks::StepHooks;

/// Limits the executor enforces.
#[derive(Clone, Debug)]
pub struct ExecLimits {
    /// Most super-steps.
    pub max_steps: u32,
    /// Failed attempts before the circuit breaker stops the session.
    pub max_failures: u32,
    /// Most agents running at once.
    pub max_parallel: u32,
    /// Token budget (input + output).
    pub max_tokens: Option<u64>,
    /// Per agent (declaration order): timeout and retries.
    pub per_agent: Vec<(Duration, u32)>,
    /// Base delay of the exponential backoff between attempts.
    pub retry_base: Duration,
    /// A full snapshot is considered every this many steps.
    pub snapshot_every: u32,
}

/// Where a session stands: what a checkpoint restores.
#[derive(Clone, Debug, Default)]
pub struct Position {
    /// The state.
    pub state: State,
    /// The scheduler's state.
    pub sched: SchedState,
    /// Completed runs per agent (declaration order).
    pub runs: Vec<u32>,
    /// Tokens used so far.
    pub tokens: u64,
    /// Step of the last snapshot and the bytes it held; bytes of task output since.
    pub snapshot_step: u64,
    /// Size of the last snapshot.
    pub snapshot_bytes: u64,
    /// Bytes of deltas stored since the last snapshot.
    pub delta_bytes: u64,
}

/// How a drive of the session ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Finish {
    /// Nothing left to run.
    Completed {
        /// Barriers that never fired, and similar.
        warnings: Vec<String>,
    },
    /// A node, a condition, the state or the scheduler failed.
    Failed {
        /// Why.
        error: String,
    },
    /// A limit (`max_steps`, `max_tokens`) stopped the session cleanly.
    Stopped {
        /// Which limit.
        reason: String,
    },
    /// A node asked for a human.
    Paused {
        /// The node.
        node: String,
        /// Why.
        reason: String,
    },
    /// Cancelled (Ctrl-C).
    Interrupted,
}

/// Runs one session's steps.
pub struct Executor {
    /// Session id.
    pub session: String,
    /// The graph.
    pub topo: Arc<Topology>,
    /// The state channels.
    pub channels: Arc<Channels>,
    /// Limits.
    pub limits: ExecLimits,
    /// Runs agents.
    pub runner: Arc<dyn NodeRunner>,
    /// Evaluates conditions.
    pub router: Arc<dyn Router>,
    /// Checkpoint hooks.
    pub hooks: Option<Arc<dyn StepHooks>>,
    /// The store.
    pub store: StoreHandle,
    /// Progress events.
    pub events: Arc<dyn EventSink>,
    /// Inputs.
    pub inputs: Arc<Map<String, Value>>,
    /// Becomes true on Ctrl-C.
    pub cancel: watch::Receiver<bool>,
}

impl std::fmt::Debug for Executor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Executor")
            .field("session", &self.session)
            .finish_non_exhaustive()
    }
}

/// The writes of a finished task: the declared ones plus the base channels
/// (`messages` gets the text, `agent_outputs` the output).
pub fn task_writes(agent: &str, output: Value, declared: Vec<(String, Value)>) -> Vec<Write> {
    let mut writes = StepWrites::with_capacity(1);
    writes.task(agent, output, declared);
    writes.into_writes()
}

/// The writes of a step, gathered task by task in declaration order. The base channels get one
/// write each for the whole step (every task's text appended to `messages` in order, every
/// output merged into `agent_outputs` in order), not one per task: a wide step would otherwise
/// hold two writes, and a one-entry map, per agent. Agents cannot write to base channels, so
/// applying them before the declared writes gives the state that per-task writes give.
#[derive(Debug, Default)]
pub struct StepWrites {
    writers: Vec<String>,
    messages: Vec<Value>,
    outputs: Map<String, Value>,
    declared: Vec<Write>,
}

impl StepWrites {
    /// Room for `tasks` tasks.
    pub fn with_capacity(tasks: usize) -> Self {
        StepWrites {
            writers: Vec::new(),
            messages: Vec::with_capacity(tasks),
            outputs: Map::with_capacity(tasks),
            declared: Vec::new(),
        }
    }

    /// Adds the next task's writes. A hook's record ([`HOOK_NODE`]) has only what it declared.
    pub fn task(&mut self, agent: &str, output: Value, declared: Vec<(String, Value)>) {
        self.declared
            .extend(declared.into_iter().map(|(channel, value)| Write {
                writer: agent.to_owned(),
                channel,
                value,
            }));
        if agent == HOOK_NODE {
            return;
        }
        if self.writers.len() < 2 {
            self.writers.push(agent.to_owned());
        }
        let content = match &output {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        let mut message = Map::with_capacity(3);
        message.insert("role".into(), Value::from("assistant"));
        message.insert("agent".into(), Value::from(agent));
        message.insert("content".into(), Value::String(content));
        self.messages.push(Value::Object(message));
        self.outputs.insert(agent.to_owned(), output);
    }

    /// Adds writes made outside the tasks (a hook's).
    pub fn extend(&mut self, writes: Vec<Write>) {
        self.declared.extend(writes);
    }

    /// The writes to apply: the base channels' first, then the declared ones in order.
    pub fn into_writes(self) -> Vec<Write> {
        let mut writes = Vec::with_capacity(2 + self.declared.len());
        if !self.messages.is_empty() {
            // Named in errors (which base channels only get from a corrupt state).
            let writer = match self.writers.as_slice() {
                [one] => one.clone(),
                [first, ..] => format!("{first} and the other agents of the step"),
                [] => String::new(),
            };
            writes.push(Write {
                writer: writer.clone(),
                channel: "messages".into(),
                value: Value::Array(self.messages),
            });
            writes.push(Write {
                writer,
                channel: "agent_outputs".into(),
                value: Value::Object(self.outputs),
            });
        }
        writes.extend(self.declared);
        writes
    }
}

/// The scheduler JSON of a checkpoint. Snapshot checkpoints also carry the run counts and the
/// tokens used, so a restore needs only the tasks after the snapshot.
pub fn scheduler_record(pos: &Position, with_counts: bool) -> Value {
    let mut v = serde_json::to_value(&pos.sched).unwrap_or(Value::Null);
    if with_counts && let Value::Object(m) = &mut v {
        m.insert("runs".into(), json!(pos.runs));
        m.insert("tokens".into(), json!(pos.tokens));
    }
    v
}

/// The declared writes stored in a task record, back as pairs.
pub fn declared_from_record(writes: &Value) -> Vec<(String, Value)> {
    match writes {
        Value::Object(m) => m.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        _ => Vec::new(),
    }
}

fn now_ms() -> u64 {
    orchestra_store::system_now_ms()
}

impl Executor {
    /// Drives the session from `pos` until it finishes, fails, stops, pauses or is cancelled.
    /// Only store failures are returned as errors; everything else is a [`Finish`].
    pub async fn run(&self, pos: &mut Position) -> Result<Finish, WorkerError> {
        let mut pending = VecDeque::new();
        let finish = self.steps(pos, &mut pending).await;
        // Every checkpoint is committed before the session's end is reported.
        let mut last = Ok(());
        for p in pending {
            let committed = self.committed(p).await;
            if last.is_ok() {
                last = committed;
            }
        }
        let finish = finish?;
        last?;
        Ok(finish)
    }

    /// Waits for a checkpoint the store thread was given to be committed, and reports it.
    async fn committed(&self, (sent, step): (SentCheckpoint, u64)) -> Result<(), WorkerError> {
        sent.committed().await?;
        self.events.emit(Event::Checkpoint {
            step,
            snapshot: false,
        });
        Ok(())
    }

    /// The steps of [`run`](Executor::run). A step's checkpoint (without a snapshot, and when
    /// no hooks read the store between steps) is committed while the next steps run, at most
    /// [`OUTSTANDING`] behind; the store thread stores them in order, each after the task
    /// records before it, and refuses one whose parent is missing. Waiting for each commit
    /// cost two hand-offs between threads per step, most of a short step's time; with model
    /// calls in the steps, the store is never behind.
    async fn steps(
        &self,
        pos: &mut Position,
        pending: &mut VecDeque<(SentCheckpoint, u64)>,
    ) -> Result<Finish, WorkerError> {
        let failures = Arc::new(AtomicU32::new(0));
        let mut first_step = true;
        loop {
            if pos.sched.ready.is_empty() {
                return Ok(Finish::Completed {
                    warnings: Vec::new(),
                });
            }
            if *self.cancel.borrow() {
                return Ok(Finish::Interrupted);
            }
            if pos.sched.step >= u64::from(self.limits.max_steps) {
                return Ok(Finish::Stopped {
                    reason: format!(
                        "the session reached limits.max_steps ({})",
                        self.limits.max_steps
                    ),
                });
            }
            if let Some(max) = self.limits.max_tokens
                && pos.tokens >= max
            {
                return Ok(Finish::Stopped {
                    reason: format!(
                        "the session spent its token budget (limits.max_tokens: {max}, used {})",
                        pos.tokens
                    ),
                });
            }
            let step = pos.sched.step + 1;
            let names: Vec<String> = pos
                .sched
                .ready
                .iter()
                .map(|&a| self.topo.agents[a].clone())
                .collect();
            self.events.emit(Event::StepStarted {
                step,
                nodes: names.clone(),
            });
            if let Some(h) = &self.hooks
                && let Err(e) = h.before_step(step, &names).await
            {
                return Ok(e.into_finish(step));
            }

            let outcome = self.run_step(step, pos, &failures, first_step).await?;
            first_step = false;
            let results = match outcome {
                Ok(r) => r,
                Err(finish) => return Ok(finish),
            };
            let hooked = match &self.hooks {
                Some(h) => {
                    let (store, session) = (&self.store, &self.session);
                    match after_step(h.as_ref(), store, session, step, &names, &pos.state).await? {
                        Ok(hooked) => hooked,
                        Err(finish) => return Ok(finish),
                    }
                }
                None => Hooked::default(),
            };

            // Apply writes in declaration order (pos.sched.ready is sorted).
            let mut writes = StepWrites::with_capacity(results.len());
            let mut delta_bytes = 0u64;
            for (&agent_idx, res) in pos.sched.ready.iter().zip(results) {
                let Some(res) = res.map(|r| *r) else { continue };
                let agent = &self.topo.agents[agent_idx];
                pos.tokens = pos
                    .tokens
                    .saturating_add(res.tokens_in.saturating_add(res.tokens_out));
                delta_bytes += approx_bytes(&res.output)
                    + res.writes.iter().map(|(_, v)| approx_bytes(v)).sum::<u64>();
                writes.task(agent, res.output, res.writes);
            }
            writes.extend(hooked.writes);
            delta_bytes += hooked.bytes;
            if let Err(e) = self.channels.apply(&mut pos.state, writes.into_writes()) {
                return Ok(Finish::Failed {
                    error: format!("step {step}: {e}"),
                });
            }
            let ran = pos.sched.ready.clone();
            let loops_before = pos.sched.loops.clone();
            let (topo, router, inputs) = (
                Arc::clone(&self.topo),
                Arc::clone(&self.router),
                Arc::clone(&self.inputs),
            );
            let (mut sched, state) = (
                std::mem::take(&mut pos.sched),
                std::mem::take(&mut pos.state),
            );
            let routed = routing(self.router.may_block(), move || {
                let outcome = Scheduler::new(&topo).advance(&mut sched, |ei, edge: &Edge| {
                    router.route(
                        edge,
                        &state,
                        &inputs,
                        loops_before.get(&ei).copied().unwrap_or(0),
                    )
                });
                (sched, state, outcome)
            })
            .await;
            let outcome = match routed {
                Ok((sched, state, Ok(o))) => {
                    (pos.sched, pos.state) = (sched, state);
                    o
                }
                Ok((sched, state, Err(e))) => {
                    (pos.sched, pos.state) = (sched, state);
                    return Ok(Finish::Failed {
                        error: format!("step {step}: {e}"),
                    });
                }
                Err(e) => {
                    return Ok(Finish::Failed {
                        error: format!("step {step}: {e}"),
                    });
                }
            };
            for a in &ran {
                if let Some(r) = pos.runs.get_mut(*a) {
                    *r += 1;
                }
            }
            pos.delta_bytes += delta_bytes;

            let repo_shas = hooked.repo_shas;
            // A snapshot lends the state to the store thread, which hands it back: no copy.
            let snapshot = self
                .snapshot_due(pos, step)
                .then(|| Value::Object(std::mem::take(&mut pos.state)));
            let has_snapshot = snapshot.is_some();
            if let Some(s) = &snapshot {
                pos.snapshot_step = step;
                pos.snapshot_bytes = approx_bytes(s);
                pos.delta_bytes = 0;
            }
            let cp = CheckpointRecord {
                session: self.session.clone(),
                step,
                parent_step: Some(step - 1),
                scheduler: scheduler_record(pos, has_snapshot),
                snapshot,
                repo_shas,
                nodes: names,
                created_at: now_ms(),
            };
            let sent = self.store.send_checkpoint(cp)?;
            if has_snapshot || self.hooks.is_some() {
                while let Some(p) = pending.pop_front() {
                    self.committed(p).await?;
                }
                let cp = sent.committed().await?;
                if let Some(Value::Object(state)) = cp.snapshot {
                    pos.state = state;
                }
                self.events.emit(Event::Checkpoint {
                    step,
                    snapshot: has_snapshot,
                });
            } else {
                pending.push_back((sent, step));
                if pending.len() > OUTSTANDING
                    && let Some(p) = pending.pop_front()
                {
                    self.committed(p).await?;
                }
            }
            if let Outcome::Done { warnings } = outcome {
                for w in &warnings {
                    self.events.emit(Event::Warning { message: w.clone() });
                }
                return Ok(Finish::Completed { warnings });
            }
        }
    }

    /// Snapshots keep restores cheap; taking one only once the deltas since the last outweigh
    /// half of it keeps storage linear in what was written.
    fn snapshot_due(&self, pos: &Position, step: u64) -> bool {
        step - pos.snapshot_step >= u64::from(self.limits.snapshot_every.max(1))
            && pos.delta_bytes.saturating_mul(2) >= pos.snapshot_bytes
    }

    /// Runs the ready agents of `step`; returns their results (one per ready agent, in the
    /// order of `pos.sched.ready`, which is declaration order), or how the session must finish
    /// instead.
    async fn run_step(
        &self,
        step: u64,
        pos: &mut Position,
        failures: &Arc<AtomicU32>,
        first_step: bool,
    ) -> Result<Result<Vec<Option<Box<NodeResult>>>, Finish>, WorkerError> {
        // Tasks of this step can only be in the store if an earlier drive was cut short in it:
        // look only on the first step of a drive.
        let done: Vec<TaskRecord> = if first_step {
            let session = self.session.clone();
            self.store
                .call(move |s| s.task_records(&session, step..=step))
                .await?
        } else {
            Vec::new()
        };
        let ready = &pos.sched.ready;
        // Boxed: a slot per agent is taken at the start, a result only as its agent finishes
        // (in the memory the agent's future leaves).
        let mut results: Vec<Option<Box<NodeResult>>> = Vec::with_capacity(ready.len());
        results.resize_with(ready.len(), || None);
        // A task that finished before an interruption is reused. Its tokens are not added
        // again: resuming counted them with the usage recorded after the checkpoint.
        for rec in done.into_iter().filter(|r| r.status == TaskStatus::Ok) {
            if let Some(idx) = self.topo.agents.iter().position(|a| *a == rec.node)
                && let Some(task) = ready.iter().position(|&a| a == idx)
            {
                self.events.emit(Event::NodeFinished {
                    step,
                    node: rec.node.clone(),
                    duration_ms: 0,
                    tokens_in: 0,
                    tokens_out: 0,
                    tool_calls: 0,
                    reused: true,
                });
                results[task] = Some(Box::new(NodeResult {
                    output: rec.output,
                    writes: declared_from_record(&rec.writes),
                    ..NodeResult::default()
                }));
            }
        }
        // The agents read the state of the previous checkpoint; lend it to them without copying.
        let state = Arc::new(std::mem::take(&mut pos.state));
        let permits = Arc::new(Semaphore::new(self.limits.max_parallel.max(1) as usize));
        // Tokens of failed attempts (the results carry those of the good ones).
        let spent = Arc::new(AtomicU64::new(0));
        // The step's agents run as futures of this one (not spawned tasks): on the runtime's
        // single thread that is the same concurrency, without a task allocation per agent.
        let mut running = FuturesUnordered::new();
        let session: Arc<str> = self.session.as_str().into();
        let shared = Arc::new(StepCtx {
            runner: Arc::clone(&self.runner),
            events: Arc::clone(&self.events),
            store: self.store.clone(),
            failures: Arc::clone(failures),
            max_failures: self.limits.max_failures,
            retry_base: self.limits.retry_base,
            permits: Arc::clone(&permits),
            spent: Arc::clone(&spent),
        });
        for (task_idx, &agent_idx) in ready.iter().enumerate() {
            if results[task_idx].is_some() {
                continue;
            }
            let call = NodeCall {
                session: Arc::clone(&session),
                step,
                agent: self.topo.agents[agent_idx].as_str().into(),
                agent_idx,
                run_index: pos.runs.get(agent_idx).copied().unwrap_or(0),
                attempt: 0,
                state: Arc::clone(&state),
                inputs: Arc::clone(&self.inputs),
                usage: Arc::default(),
                tools: None,
            };
            let ctx = TaskCtx {
                step: Arc::clone(&shared),
                limits: self
                    .limits
                    .per_agent
                    .get(agent_idx)
                    .copied()
                    .unwrap_or((Duration::from_secs(600), 2)),
                task_idx: u32::try_from(task_idx).unwrap_or(u32::MAX),
            };
            running.push(std::panic::AssertUnwindSafe(ctx.run(call)).catch_unwind());
        }
        let mut cancel = self.cancel.clone();
        let mut cancel_open = true;
        let mut finish: Option<Finish> = None;
        while !running.is_empty() {
            tokio::select! {
                joined = running.next() => {
                    let Some(joined) = joined else { break };
                    match joined {
                        Ok((task, Ok(res))) => { results[task] = Some(Box::new(res)); }
                        Ok((task, Err(NodeError::Pause(reason)))) => {
                            finish.get_or_insert(Finish::Paused { node: self.topo.agents[ready[task]].clone(), reason });
                        }
                        Ok((task, Err(e))) => {
                            finish.get_or_insert(Finish::Failed { error: format!("agent `{}` failed at step {step}: {e}", self.topo.agents[ready[task]]) });
                            running.clear();
                        }
                        Err(panic) => {
                            let what = panic
                                .downcast_ref::<&str>()
                                .map(|s| (*s).to_owned())
                                .or_else(|| panic.downcast_ref::<String>().cloned())
                                .unwrap_or_else(|| "a panic".to_owned());
                            finish.get_or_insert(Finish::Failed { error: format!("an agent task crashed at step {step}: {what}") });
                            running.clear();
                        }
                    }
                }
                changed = cancel.changed(), if cancel_open => {
                    if changed.is_err() {
                        // The sender is gone: nobody can cancel any more.
                        cancel_open = false;
                    } else if *cancel.borrow() {
                        running.clear();
                        finish.get_or_insert(Finish::Interrupted);
                    }
                }
            }
        }
        drop(running);
        pos.state = Arc::try_unwrap(state).unwrap_or_else(|shared| (*shared).clone());
        pos.tokens = pos.tokens.saturating_add(spent.load(Ordering::SeqCst));
        // No need to wait for the finished tasks' records: the store thread stores them before
        // anything sent after them (this step's checkpoint), and a failure to store one is
        // returned by the next call. Waiting cost a round trip to that thread on every step.
        if let Some(f) = finish {
            return Ok(Err(f));
        }
        Ok(Ok(results))
    }
}

/// What follows an attempt.
enum Next<'a> {
    /// The task's end.
    End(Result<NodeResult, NodeError>),
    /// Wait first; then the task's end, or `None` to try again.
    Wait(BoxFuture<'a, Option<Result<NodeResult, NodeError>>>),
}

/// What the tasks of a step share.
struct StepCtx {
    runner: Arc<dyn NodeRunner>,
    events: Arc<dyn EventSink>,
    store: StoreHandle,
    failures: Arc<AtomicU32>,
    max_failures: u32,
    retry_base: Duration,
    permits: Arc<Semaphore>,
    spent: Arc<AtomicU64>,
}

/// One task of a step: the shared context, the agent's (timeout, retries) and the task's index.
struct TaskCtx {
    step: Arc<StepCtx>,
    limits: (Duration, u32),
    task_idx: u32,
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
    fn run(
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
                let result = match tokio::time::timeout(timeout, self.runner.run(&call)).await {
                    Ok(r) => r,
                    Err(_) => Err(NodeError::Retryable(format!(
                        "timed out after {}",
                        humanize(timeout)
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
        let duration_ms = u64::try_from(t0.elapsed().as_millis()).unwrap_or(u64::MAX);
        let (usage, status, error) = match &result {
            Ok(r) => (
                (r.tokens_in, r.tokens_out, r.tool_calls, r.retries),
                TaskStatus::Ok,
                None,
            ),
            Err(e) => {
                // What the failed attempt spent (the model calls it made before failing).
                let (tokens_in, tokens_out) = call.usage.get();
                self.spent
                    .fetch_add(tokens_in.saturating_add(tokens_out), Ordering::SeqCst);
                (
                    (tokens_in, tokens_out, 0, 0),
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
            tool_calls: usage.2,
            retries: usage.3 + call.attempt,
            status,
            error,
        };
        match result {
            Ok(res) => {
                self.store
                    .record(self.task_record(call, &res, run.finished_at), run);
                self.finished(call, &res, duration_ms);
                Next::End(Ok(res))
            }
            Err(NodeError::Pause(reason)) => Next::End(Err(NodeError::Pause(reason))),
            Err(e) => Next::Wait(Box::pin(async move {
                self.failed(call, run, e, retries).await.err().map(Err)
            })),
        }
    }

    /// The record of a successful attempt.
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
            error: None,
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
            tool_calls: res.tool_calls,
            reused: false,
        });
    }

    /// After a failed attempt (not a pause): records it, and returns the error to fail the
    /// task with, or waits out the backoff and returns `Ok` to try again.
    async fn failed(
        &self,
        call: &NodeCall,
        run: NodeRunRecord,
        e: NodeError,
        retries: u32,
    ) -> Result<(), NodeError> {
        let _ = self.store.call(move |s| s.record_node_run(&run)).await;
        let total = self.failures.fetch_add(1, Ordering::SeqCst) + 1;
        let msg = e.to_string();
        let retryable = matches!(e, NodeError::Retryable(_));
        if total >= self.max_failures.max(1) {
            self.events.emit(Event::NodeFailed {
                step: call.step,
                node: call.agent.to_string(),
                error: msg.clone(),
            });
            return Err(NodeError::Fatal(format!(
                "{msg} (circuit breaker: {total} failed attempts in this session, limits.max_failures is {})",
                self.max_failures
            )));
        }
        if !retryable || call.attempt >= retries {
            self.events.emit(Event::NodeFailed {
                step: call.step,
                node: call.agent.to_string(),
                error: msg.clone(),
            });
            let tries = call.attempt + 1;
            return Err(NodeError::Fatal(if retryable && tries > 1 {
                format!("{msg} (after {tries} attempts)")
            } else {
                msg
            }));
        }
        let delay = backoff(self.retry_base, call.attempt);
        self.events.emit(Event::NodeRetry {
            step: call.step,
            node: call.agent.to_string(),
            attempt: call.attempt,
            error: msg,
            delay_ms: u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
        });
        tokio::time::sleep(delay).await;
        Ok(())
    }
}

/// Exponential backoff with jitter: base * 2^attempt, +-25%, at most 60 s.
pub fn backoff(base: Duration, attempt: u32) -> Duration {
    let exp = base.saturating_mul(1u32 << attempt.min(16));
    let capped = exp.min(Duration::from_secs(60));
    let jitter = rand::random_range(0.75..1.25);
    capped.mul_f64(jitter)
}

fn humanize(d: Duration) -> String {
    if d.as_secs() >= 1 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

/// A cheap size estimate of a JSON value (exact for strings; no serialization).
pub fn approx_bytes(v: &Value) -> u64 {
    match v {
        Value::Null | Value::Bool(_) => 4,
        Value::Number(_) => 8,
        Value::String(s) => s.len() as u64 + 2,
        Value::Array(a) => 2 + a.iter().map(approx_bytes).sum::<u64>(),
        Value::Object(m) => {
            2 + m
                .iter()
                .map(|(k, v)| k.len() as u64 + 3 + approx_bytes(v))
                .sum::<u64>()
        }
    }
}
