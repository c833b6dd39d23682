//! The super-step loop: run every ready agent concurrently (bounded), store each task the moment
//! it finishes, apply the step's writes in declaration order, let the scheduler pick the next
//! step, commit a checkpoint. Crash-safe: a step that was cut short reuses the tasks that had
//! finished and runs only the others.

mod fail;
mod route;
mod step;
mod task;
mod writes;

#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::sync::atomic::AtomicU32;
use std::time::Duration;

use serde_json::{Map, Value};
use tokio::sync::watch;

use orchestra_graph::scheduler::{Outcome, SchedState, Scheduler};
use orchestra_graph::state::{Channels, State};
use orchestra_graph::{Edge, Topology};
use orchestra_store::{CheckpointRecord, CostTally};

use crate::events::{Event, EventSink};
use crate::hooks::{Hooked, after_step};
use crate::outcome::{Finish, LimitSource, StopLimit};
use crate::runner::NodeRunner;
use crate::store_worker::{StoreHandle, WorkerError};

pub use route::Router;
pub(crate) use route::routing;
use task::now_ms;
pub use writes::{StepWrites, approx_bytes, declared_from_record, scheduler_record, task_writes};

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
    /// Cost budget in US dollars (the known costs of the session's node runs).
    pub max_cost: Option<f64>,
    /// The pipeline's own `max_steps`, when `--max-steps` replaced it for this drive.
    pub replaced_steps: Option<u32>,
    /// The pipeline's own `max_tokens` (`None` inside: no budget), when `--max-tokens`
    /// replaced it for this drive.
    pub replaced_tokens: Option<Option<u64>>,
    /// The pipeline's own `max_cost` (`None` inside: no budget), when `--max-cost` replaced it
    /// for this drive.
    pub replaced_cost: Option<Option<f64>>,
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
    /// Tokens used so far (the session's budget counts them), including `inherited_tokens`.
    pub tokens: u64,
    /// What the node runs so far cost.
    pub cost: CostTally,
    /// Of `tokens`, what a fork's parent spent before the fork (0 for other sessions).
    pub inherited_tokens: u64,
    /// Of `cost`, what a fork's parent spent before the fork (nothing for other sessions).
    pub inherited_cost: CostTally,
    /// Step of the last snapshot and the bytes it held; bytes of task output since.
    pub snapshot_step: u64,
    /// Size of the last snapshot.
    pub snapshot_bytes: u64,
    /// Bytes of deltas stored since the last snapshot.
    pub delta_bytes: u64,
}

impl Position {
    /// The tokens this session spent itself: a fork's limits count these, not its parent's.
    pub fn own_tokens(&self) -> u64 {
        self.tokens.saturating_sub(self.inherited_tokens)
    }

    /// What this session's own node runs cost (a fork's parent's runs left out).
    pub fn own_cost(&self) -> CostTally {
        let parent = &self.inherited_cost;
        CostTally {
            known_usd: (self.cost.known_usd - parent.known_usd).max(0.0),
            priced_runs: self.cost.priced_runs.saturating_sub(parent.priced_runs),
            unpriced_runs: self.cost.unpriced_runs.saturating_sub(parent.unpriced_runs),
        }
    }
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

impl Executor {
    /// Drives the session from `pos` until it finishes, fails, stops, pauses or is cancelled.
    /// Only store failures are returned as errors; everything else is a [`Finish`]. Each step's
    /// checkpoint is committed before the next step starts, and the drive ends only once every
    /// record it queued is stored (or its failure is returned).
    pub async fn run(&self, pos: &mut Position) -> Result<Finish, WorkerError> {
        self.store.forget(&self.session);
        let finish = self.steps(pos).await;
        let settled = self.store.settle(&self.session).await;
        let finish = finish?;
        settled?;
        Ok(finish)
    }

    async fn steps(&self, pos: &mut Position) -> Result<Finish, WorkerError> {
        let failures = Arc::new(AtomicU32::new(0));
        let mut first_step = true;
        loop {
            if let Some(edge) = pos.sched.failed {
                return Ok(self.fail_finish(edge, pos));
            }
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
                    limit: StopLimit::MaxSteps {
                        limit: self.limits.max_steps,
                        source: match self.limits.replaced_steps {
                            None => LimitSource::Pipeline,
                            Some(own) => LimitSource::Flag {
                                pipeline_goes_on: u64::from(own) > pos.sched.step,
                            },
                        },
                    },
                });
            }
            // A fork's budgets count what the fork spends, not what its parent spent before.
            let (tokens, cost) = (pos.own_tokens(), pos.own_cost().known_usd);
            if let Some(max) = self.limits.max_tokens
                && tokens >= max
            {
                return Ok(Finish::Stopped {
                    limit: StopLimit::MaxTokens {
                        limit: max,
                        used: tokens,
                        source: match self.limits.replaced_tokens {
                            None => LimitSource::Pipeline,
                            Some(own) => LimitSource::Flag {
                                pipeline_goes_on: own.is_none_or(|m| m > tokens),
                            },
                        },
                    },
                });
            }
            if let Some(max) = self.limits.max_cost
                && cost >= max
            {
                return Ok(Finish::Stopped {
                    limit: StopLimit::MaxCost {
                        limit: max,
                        used: cost,
                        source: match self.limits.replaced_cost {
                            None => LimitSource::Pipeline,
                            Some(own) => LimitSource::Flag {
                                pipeline_goes_on: own.is_none_or(|m| m > cost),
                            },
                        },
                    },
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

            // Apply writes in declaration order (pos.sched.ready is sorted), a `for_each`
            // target's instances in item order.
            let mut writes = StepWrites::with_capacity(results.len());
            let mut delta_bytes = 0u64;
            let mut errored = Vec::new();
            for (task, res) in results {
                let Some(res) = res.map(|r| *r) else { continue };
                let (agent_idx, agent) = (task.agent_idx, &*task.name);
                pos.tokens = pos
                    .tokens
                    .saturating_add(res.tokens_in.saturating_add(res.tokens_out));
                delta_bytes += approx_bytes(&res.output)
                    + res.writes.iter().map(|(_, v)| approx_bytes(v)).sum::<u64>();
                if res.error.is_some() && !errored.contains(&agent_idx) {
                    errored.push(agent_idx);
                }
                writes.result(agent, res.output, res.writes, res.error.is_some());
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
                let (mut fired, mut decisions) = (Vec::new(), Vec::new());
                let outcome = Scheduler::new(&topo).advance_traced(
                    &mut sched,
                    &errored,
                    |ei, edge: &Edge| {
                        let loops = loops_before.get(&ei).copied().unwrap_or(0);
                        let (decision, targets) = router.decide(edge, &state, &inputs, loops)?;
                        decisions.push(decision);
                        Ok(targets)
                    },
                    &mut fired,
                );
                (sched, state, outcome.map(|o| (o, fired, decisions)))
            })
            .await;
            let outcome = match routed {
                Ok((sched, state, Ok((o, fired, decisions)))) => {
                    (pos.sched, pos.state) = (sched, state);
                    self.routed(step, fired, decisions);
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
            let cp = self.store.commit_checkpoint(cp).await?;
            if let Some(Value::Object(state)) = cp.snapshot {
                pos.state = state;
            }
            self.events.emit(Event::Checkpoint {
                step,
                snapshot: has_snapshot,
            });
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
}
