//! One super-step's agents: reuse the tasks an earlier drive finished, run the others
//! concurrently (bounded by `max_parallel`), and stop them all on a failure or Ctrl-C.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures_util::FutureExt as _;
use futures_util::stream::{FuturesUnordered, StreamExt as _};
use tokio::sync::Semaphore;

use orchestra_store::{CostTally, TaskRecord, TaskStatus};

use super::task::{StepCtx, TaskCtx};
use super::writes::declared_from_record;
use super::{Executor, Finish, Position};
use crate::events::Event;
use crate::runner::{NodeCall, NodeError, NodeResult};
use crate::store_worker::WorkerError;

impl Executor {
    /// Runs the ready agents of `step`; returns their results (one per ready agent, in the
    /// order of `pos.sched.ready`, which is declaration order), or how the session must finish
    /// instead.
    pub(super) async fn run_step(
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
                    cache_read_tokens: 0,
                    cache_write_tokens: 0,
                    cost_usd: None,
                    tool_calls: 0,
                    reused: true,
                    exit_code: None,
                });
                results[task] = Some(Box::new(NodeResult {
                    output: rec.output,
                    writes: declared_from_record(&rec.writes),
                    error: rec.error,
                    ..NodeResult::default()
                }));
            }
        }
        // The agents read the state of the previous checkpoint; lend it to them without copying.
        let state = Arc::new(std::mem::take(&mut pos.state));
        let permits = Arc::new(Semaphore::new(self.limits.max_parallel.max(1) as usize));
        // Tokens of failed attempts (the results carry those of the good ones).
        let spent = Arc::new(AtomicU64::new(0));
        // The cost of every run recorded in this step.
        let cost = Arc::new(Mutex::new(CostTally::default()));
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
            cost: Arc::clone(&cost),
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
                trace: Arc::default(),
                tools: None,
                workdir: None,
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
                on_error: self.topo.on_error_of(agent_idx).is_some(),
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
        pos.cost
            .merge(&cost.lock().unwrap_or_else(PoisonError::into_inner));
        // No need to wait for the finished tasks' records: the store thread stores them before
        // anything sent after them (this step's checkpoint), and a failure to store one is
        // returned by the next call. Waiting cost a round trip to that thread on every step.
        if let Some(f) = finish {
            return Ok(Err(f));
        }
        Ok(Ok(results))
    }
}
