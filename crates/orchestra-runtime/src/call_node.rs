//! Call nodes at run time: a node with `call:` runs its pipeline as a child session of the
//! session it is in. The child's id is kept in the parent's session meta (`call:NODE:STEP`)
//! before the child is created, so a resumed parent (after a crash, a pause, or a retry of the
//! node) continues the same child from its last checkpoint instead of starting it again. The
//! child's events reach the parent's sink wrapped in [`Event::Child`]; what it spent is added
//! to the call node's run, so it counts in the parent's totals and limits.

use std::sync::Arc;

use serde_json::{Map, Value};
use tokio::sync::watch;

use orchestra_graph::{CallNode, Compiled, ResolvedAgent, call_output};
use orchestra_providers::Usage;
use orchestra_store::{CostTally, NodeRunRecord, SessionStatus};

use crate::engine::{DriveOptions, Engine, LimitOverrides};
use crate::error::{RuntimeError, error_chain};
use crate::events::{Event, EventSink};
use crate::ids::new_session_id;
use crate::outcome::Finish;
use crate::runner::{BoxFuture, NodeCall, NodeError, NodeResult, NodeRunner};

/// The prefix of the parent's session meta keys naming its children: `call:NODE:STEP` -> id.
pub const CALL_META: &str = "call:";

/// A parent's child sessions as its session meta records them: `(child id, call node, step)`,
/// by step.
pub fn child_calls(meta: &Map<String, Value>) -> Vec<(String, String, u64)> {
    let mut out: Vec<(String, String, u64)> = meta
        .iter()
        .filter_map(|(k, v)| {
            let (node, step) = k.strip_prefix(CALL_META)?.rsplit_once(':')?;
            Some((v.as_str()?.to_owned(), node.to_owned(), step.parse().ok()?))
        })
        .collect();
    out.sort_by(|a, b| a.2.cmp(&b.2).then_with(|| a.1.cmp(&b.1)));
    out
}

/// Runs call nodes itself and every other agent with `inner`.
pub(crate) struct CallNodes {
    inner: Arc<dyn NodeRunner>,
    compiled: Arc<Compiled>,
    /// The called pipelines by agent index (shared by every run of the node).
    children: Vec<Option<Arc<Compiled>>>,
    engine: Engine,
    opts: DriveOptions,
}

impl CallNodes {
    /// Wraps `inner` when `compiled` has call nodes; `inner` itself otherwise.
    pub(crate) fn wrap(
        inner: Arc<dyn NodeRunner>,
        compiled: &Arc<Compiled>,
        engine: &Engine,
        opts: &DriveOptions,
    ) -> Arc<dyn NodeRunner> {
        if !compiled.agents.iter().any(ResolvedAgent::is_call) {
            return inner;
        }
        let children = compiled
            .agents
            .iter()
            .map(|a| a.call.as_ref().map(|c| Arc::new((*c.compiled).clone())))
            .collect();
        Arc::new(CallNodes {
            inner,
            compiled: Arc::clone(compiled),
            children,
            engine: engine.clone(),
            opts: opts.clone(),
        })
    }

    async fn run_call(
        &self,
        call: &NodeCall,
        agent: &ResolvedAgent,
        node: &CallNode,
        child: Arc<Compiled>,
    ) -> Result<NodeResult, NodeError> {
        let store = |e: RuntimeError| {
            NodeError::Fatal(format!("call node `{}`: {}", call.agent, error_chain(&e)))
        };
        let id = self.child_id(call).await.map_err(store)?;
        let (sid, cid) = (id.clone(), id.clone());
        let existing = self
            .engine
            .store
            .call(move |s| s.session(&sid))
            .await
            .map_err(|e| store(e.into()))?;
        let attributed = self.attributed(call).await.map_err(store)?;
        // The child stops when the parent's run of it is dropped (a sibling failed, the
        // parent was interrupted or lost its lease) or on the parent's Ctrl-C.
        let (cancel_tx, cancel_rx) = watch::channel(*self.opts.cancel.borrow());
        let guard = CancelOnDrop::new(cancel_tx, self.opts.cancel.clone());
        let opts = DriveOptions {
            events: Arc::new(ChildEvents {
                parent: Arc::clone(&self.opts.events),
                child: id.clone(),
                node: call.agent.to_string(),
            }),
            cancel: cancel_rx,
            limits: LimitOverrides::default(),
            ..self.opts.clone()
        };
        let driven = match existing {
            Some(rec) if rec.status == SessionStatus::Completed => None,
            Some(_) => Some(self.engine.resume(&id, &opts).await),
            None => {
                let inputs = child_inputs(call, node, &child)?;
                let link = Some((call.session.to_string(), call.agent.to_string()));
                Some(
                    self.engine
                        .run_linked(id.clone(), Arc::clone(&child), inputs, None, link, &opts)
                        .await,
                )
            }
        };
        drop(guard);
        let spent = self.spent(&cid).await.map_err(store)?;
        let (usage, cost) = minus(spent, attributed);
        let outcome = match driven {
            None => None,
            Some(Ok(outcome)) => Some(outcome),
            Some(Err(e)) => {
                call.usage.add(&usage, cost);
                return Err(NodeError::Fatal(format!(
                    "call node `{}`: child session {id}: {}",
                    call.agent,
                    error_chain(&e)
                )));
            }
        };
        let failed = |why: String| {
            call.usage.add(&usage, cost);
            format!(
                "call node `{}`: child session {id} ({}) {why}",
                call.agent, node.file
            )
        };
        let state = match outcome {
            None => {
                let last = self.last_step(&id).await.map_err(store)?;
                self.engine.state_at(&id, last).await.map_err(store)?
            }
            Some(o) => match o.finish {
                Finish::Completed { .. } => o.state,
                Finish::Failed { error } => {
                    return Err(NodeError::Retryable(failed(format!("failed: {error}"))));
                }
                Finish::Fail { from, reason } => {
                    return Err(NodeError::Fatal(failed(format!(
                        "ended at FAIL from {from}{}",
                        reason.map(|r| format!(": {r}")).unwrap_or_default()
                    ))));
                }
                Finish::Stopped { limit } => {
                    return Err(NodeError::Fatal(failed(format!("stopped: {limit}"))));
                }
                Finish::Paused { node: waiting, .. } => {
                    return Err(NodeError::Pause(failed(format!(
                        "paused: `{waiting}` waits for a human"
                    ))));
                }
                Finish::Interrupted => {
                    return Err(NodeError::Retryable(failed("was interrupted".into())));
                }
            },
        };
        let (sid, rid) = (id.clone(), id.clone());
        let rec = self
            .engine
            .store
            .call(move |s| s.find_session(&sid))
            .await
            .map_err(|e| store(e.into()))?;
        let inputs = rec.inputs.as_object().cloned().unwrap_or_default();
        let outputs = crate::outputs::render_outputs(&child, &rid, &inputs, &state)
            .map_err(|e| NodeError::Fatal(failed(format!("cannot render its outputs: {e}"))))?;
        let outputs: Map<String, Value> = outputs
            .into_iter()
            .map(|(name, text, _)| (name, Value::String(text)))
            .collect();
        let output = call_output(&state, outputs);
        let writes = crate::harness::extract_writes(agent, &output).map_err(|why| {
            NodeError::Fatal(format!(
                "the output of call node `{}` cannot be written: {why}",
                call.agent
            ))
        })?;
        Ok(NodeResult {
            output,
            writes,
            tokens_in: usage.input_tokens,
            tokens_out: usage.output_tokens,
            cache_read_tokens: usage.cache_read_tokens,
            cache_write_tokens: usage.cache_write_tokens,
            cost_usd: cost,
            ..NodeResult::default()
        })
    }

    /// The child session of this run of the call node: the one recorded in the parent's meta,
    /// else a new id, recorded before the child is created.
    async fn child_id(&self, call: &NodeCall) -> Result<String, RuntimeError> {
        let key = format!("{CALL_META}{}:{}", call.agent, call.step);
        let parent = call.session.to_string();
        let fresh = new_session_id();
        let id = self
            .engine
            .store
            .call(move |s| {
                let rec = s.find_session(&parent)?;
                if let Some(id) = rec.meta.get(&key).and_then(Value::as_str) {
                    return Ok(id.to_owned());
                }
                s.set_session_meta(&parent, &key, &Value::String(fresh.clone()))?;
                Ok(fresh)
            })
            .await?;
        Ok(id)
    }

    /// What the parent's runs of this node at this step already counted of the child (attempts
    /// that failed before this one).
    async fn attributed(&self, call: &NodeCall) -> Result<Spent, RuntimeError> {
        let (sid, node, step) = (call.session.to_string(), call.agent.to_string(), call.step);
        let runs = self.engine.store.call(move |s| s.node_runs(&sid)).await?;
        Ok(Spent::of(
            runs.iter().filter(|r| r.step == step && r.node == node),
        ))
    }

    /// What child `id` has spent over all its drives.
    async fn spent(&self, id: &str) -> Result<Spent, RuntimeError> {
        let sid = id.to_owned();
        let runs = self.engine.store.call(move |s| s.node_runs(&sid)).await?;
        Ok(Spent::of(runs.iter()))
    }

    async fn last_step(&self, id: &str) -> Result<u64, RuntimeError> {
        let sid = id.to_owned();
        let cps = self.engine.store.call(move |s| s.checkpoints(&sid)).await?;
        Ok(cps.last().map_or(0, |c| c.step))
    }
}

impl NodeRunner for CallNodes {
    fn run<'a>(&'a self, call: &'a NodeCall) -> BoxFuture<'a, Result<NodeResult, NodeError>> {
        let agent = self.compiled.agents.get(call.agent_idx);
        let child = self.children.get(call.agent_idx).and_then(Option::clone);
        match (agent.and_then(|a| a.call.as_deref().map(|c| (a, c))), child) {
            (Some((agent, node)), Some(child)) => Box::pin(self.run_call(call, agent, node, child)),
            _ => self.inner.run(call),
        }
    }
}

/// The child's inputs: `with` rendered over the parent's state and inputs, read per type.
fn child_inputs(
    call: &NodeCall,
    node: &CallNode,
    child: &Compiled,
) -> Result<Map<String, Value>, NodeError> {
    let state = Value::Object((*call.state).clone());
    let inputs = Value::Object((*call.inputs).clone());
    let mut given = Vec::with_capacity(node.with.len());
    for (key, value) in &node.with {
        let text = match value.as_str() {
            Some(t) if CallNode::is_template(value) => {
                orchestra_prompts::render_inline(t, &state, &inputs).map_err(|e| {
                    NodeError::Fatal(format!(
                        "call node `{}`: cannot render `with.{key}`: {e}",
                        call.agent
                    ))
                })?
            }
            _ => CallNode::text_of(value),
        };
        given.push((key.clone(), text));
    }
    let values = child.inputs_with(&given);
    let problem = values
        .invalid
        .first()
        .map(|(name, why)| format!("invalid value for input `{name}`: {why}"))
        .or_else(|| {
            values
                .missing
                .first()
                .map(|name| format!("the required input `{name}` is not given"))
        })
        .or_else(|| {
            values
                .unknown
                .first()
                .map(|name| format!("it has no input `{name}`"))
        });
    match problem {
        Some(why) => Err(NodeError::Fatal(format!(
            "call node `{}`: {} (called pipeline `{}`): {why}",
            call.agent, node.file, child.name
        ))),
        None => Ok(values.values),
    }
}

/// Tokens and cost of some node runs.
#[derive(Clone, Copy, Debug, Default)]
struct Spent {
    usage: Usage,
    cost: CostTally,
}

impl Spent {
    fn of<'a>(runs: impl Iterator<Item = &'a NodeRunRecord>) -> Self {
        let mut out = Spent::default();
        for r in runs {
            out.usage.input_tokens = out.usage.input_tokens.saturating_add(r.tokens_in);
            out.usage.output_tokens = out.usage.output_tokens.saturating_add(r.tokens_out);
            out.usage.cache_read_tokens = out
                .usage
                .cache_read_tokens
                .saturating_add(r.cache_read_tokens);
            out.usage.cache_write_tokens = out
                .usage
                .cache_write_tokens
                .saturating_add(r.cache_write_tokens);
            out.cost.add(r.cost_usd);
        }
        out
    }
}

/// What the child spent that the parent has not counted yet, and its cost (`None` when a run
/// of the child has no known cost).
fn minus(child: Spent, counted: Spent) -> (Usage, Option<f64>) {
    let (a, b) = (child.usage, counted.usage);
    let usage = Usage {
        input_tokens: a.input_tokens.saturating_sub(b.input_tokens),
        output_tokens: a.output_tokens.saturating_sub(b.output_tokens),
        cache_read_tokens: a.cache_read_tokens.saturating_sub(b.cache_read_tokens),
        cache_write_tokens: a.cache_write_tokens.saturating_sub(b.cache_write_tokens),
        ..Usage::default()
    };
    let cost = child
        .cost
        .usd()
        .map(|c| (c - counted.cost.known_usd).max(0.0));
    (usage, cost)
}

/// Passes a child's events to the parent's sink, wrapped in [`Event::Child`].
struct ChildEvents {
    parent: Arc<dyn EventSink>,
    child: String,
    node: String,
}

impl EventSink for ChildEvents {
    fn emit(&self, event: Event) {
        self.parent.emit(Event::Child {
            child: self.child.clone(),
            node: self.node.clone(),
            inner: Box::new(event),
        });
    }
}

/// Cancels a child drive when dropped, and when the parent's own cancel fires meanwhile.
struct CancelOnDrop {
    tx: Arc<watch::Sender<bool>>,
    forward: tokio::task::JoinHandle<()>,
}

impl CancelOnDrop {
    fn new(tx: watch::Sender<bool>, mut parent: watch::Receiver<bool>) -> Self {
        let tx = Arc::new(tx);
        let to = Arc::clone(&tx);
        let forward = tokio::spawn(async move {
            while parent.changed().await.is_ok() {
                if *parent.borrow() {
                    let _ = to.send(true);
                    break;
                }
            }
        });
        CancelOnDrop { tx, forward }
    }
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        let _ = self.tx.send(true);
        self.forward.abort();
    }
}
