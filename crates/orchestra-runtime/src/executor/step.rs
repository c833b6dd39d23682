//! One super-step's agents: reuse the tasks an earlier drive finished, run the others
//! concurrently (bounded by `max_parallel`), and stop them all on a failure or Ctrl-C. An agent
//! brought in by a `for_each` edge is one task per item of its list (`researcher[3]`).

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures_util::FutureExt as _;
use futures_util::stream::{FuturesUnordered, StreamExt as _};
use serde_json::Value;
use tokio::sync::Semaphore;

use orchestra_graph::fan_out_items;
use orchestra_spec::instance_name;
use orchestra_store::{CostTally, TaskRecord, TaskStatus};

use super::task::{StepCtx, TaskCtx};
use super::writes::declared_from_record;
use super::{Executor, Finish, Position};
use crate::events::Event;
use crate::runner::{NodeCall, NodeError, NodeResult};
use crate::store_worker::WorkerError;

/// One task of a step: an agent, or one instance of a `for_each` target.
pub(super) struct StepTask {
    /// The agent's declaration index.
    pub(super) agent_idx: usize,
    /// The task's name: the agent's, or the instance's (`researcher[3]`).
    pub(super) name: Arc<str>,
    /// An instance's item index and item.
    item: Option<Arc<(u32, Value)>>,
}

/// The tasks of a step, in order: the ready agents in declaration order, a `for_each` target's
/// instances in item order. Its results are applied in this order.
pub(super) type StepResults = Vec<(StepTask, Option<Box<NodeResult>>)>;

impl Executor {
    /// The tasks of the step about to run: the `for_each` lists are read from the state the
    /// edges fired in (this checkpoint's), so a resumed step has the same tasks.
    fn step_tasks(&self, pos: &Position) -> Result<Vec<StepTask>, String> {
        let mut tasks = Vec::with_capacity(pos.sched.ready.len());
        for &agent_idx in &pos.sched.ready {
            let agent = self.topo.agents[agent_idx].as_str();
            let field = pos
                .sched
                .for_each
                .get(&agent_idx)
                .and_then(|&ei| self.topo.edges.get(ei))
                .and_then(|e| e.for_each.as_deref());
            let Some(field) = field else {
                tasks.push(StepTask {
                    agent_idx,
                    name: agent.into(),
                    item: None,
                });
                continue;
            };
            let items = fan_out_items(&pos.state, field)
                .map_err(|e| format!("cannot fan out `{agent}`: {e}"))?;
            for (i, item) in items.iter().enumerate() {
                let i = u32::try_from(i).unwrap_or(u32::MAX);
                tasks.push(StepTask {
                    agent_idx,
                    name: instance_name(agent, i).into(),
                    item: Some(Arc::new((i, item.clone()))),
                });
            }
        }
        Ok(tasks)
    }

    /// Runs the tasks of `step`; returns their results in task order, or how the session must
    /// finish instead.
    pub(super) async fn run_step(
        &self,
        step: u64,
        pos: &mut Position,
        failures: &Arc<AtomicU32>,
        first_step: bool,
    ) -> Result<Result<StepResults, Finish>, WorkerError> {
        let tasks = match self.step_tasks(pos) {
            Ok(t) => t,
            Err(error) => {
                return Ok(Err(Finish::Failed {
                    error: format!("step {step}: {error}"),
                }));
            }
        };
        // Tasks of this step can only be in the store if an earlier drive was cut short in it:
        // look only on the first step of a drive.
        let done: Vec<TaskRecord> = if first_step {
            let session = self.session.clone();
            self.store
                .call_for(&self.session, move |s| {
                    s.task_records(&session, step..=step)
                })
                .await?
        } else {
            Vec::new()
        };
        // Boxed: a slot per task is taken at the start, a result only as its task finishes
        // (in the memory the agent's future leaves).
        let mut results: Vec<Option<Box<NodeResult>>> = Vec::with_capacity(tasks.len());
        results.resize_with(tasks.len(), || None);
        // A task that finished before an interruption is reused (an instance by its name). Its
        // tokens are not added again: resuming counted them with the usage recorded after the
        // checkpoint.
        for rec in done.into_iter().filter(|r| r.status == TaskStatus::Ok) {
            if let Some(task) = tasks.iter().position(|t| *t.name == rec.node) {
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
        for (task_idx, task) in tasks.iter().enumerate() {
            if results[task_idx].is_some() {
                continue;
            }
            let agent_idx = task.agent_idx;
            let call = NodeCall {
                session: Arc::clone(&session),
                step,
                agent: Arc::clone(&task.name),
                agent_idx,
                run_index: pos.runs.get(agent_idx).copied().unwrap_or(0),
                attempt: 0,
                state: Arc::clone(&state),
                inputs: Arc::clone(&self.inputs),
                usage: Arc::default(),
                trace: Arc::default(),
                tools: None,
                workdir: None,
                item: task.item.clone(),
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
                            finish.get_or_insert(Finish::Paused { node: tasks[task].name.to_string(), reason });
                        }
                        Ok((task, Err(e))) => {
                            finish.get_or_insert(Finish::Failed { error: format!("agent `{}` failed at step {step}: {e}", tasks[task].name) });
                            running.clear();
                        }
                        Err(panic) => {
                            let what = crate::error::panic_message(&*panic);
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
        Ok(Ok(tasks.into_iter().zip(results).collect()))
    }
}
