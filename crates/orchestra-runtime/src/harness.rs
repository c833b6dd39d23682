//! The agent harness: composes an agent's system prompt, runs the model/tool loop up to its turn
//! limit, validates structured output against the agent's schema (sending the errors back to the
//! model a bounded number of times) and extracts the declared writes.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use serde_json::{Map, Value};

use orchestra_graph::{Compiled, ResolvedAgent};
use orchestra_prompts::{LayerKind, PromptContext, compose};
use orchestra_providers::{
    Block, ChatRequest, ChatResponse, ExternalToolCall, Message, Provider, RequestVars, Role,
    ToolDef, Usage,
};
use orchestra_tools::Registry;

use crate::events::{Event, EventSink};
use crate::runner::{BoxFuture, NodeCall, NodeError, NodeResult, NodeRunner, add_cost, call_cost};

mod answer;
mod chat;
mod mcp;
mod trace;

pub(crate) use answer::extract_writes;
pub use answer::parse_json_answer;
pub use chat::ChatSetup;
pub(crate) use mcp::unavailable_servers;
use trace::TurnCursor;

/// What running one agent needs beyond its compiled form (name, prompt layers, output schema
/// and writes are read from the compiled pipeline, not copied), resolved once per session.
pub struct AgentPlan {
    /// The provider client.
    pub provider: Arc<dyn Provider>,
    /// The model name (shared by the agents using it).
    pub model: Arc<str>,
    /// The model's price (`None`: unknown, and so is the cost of its calls).
    pub price: Option<orchestra_providers::Price>,
    /// Output token cap per call.
    pub max_tokens: Option<u32>,
    /// Sampling temperature.
    pub temperature: Option<f64>,
    /// The tools it may call (full names), besides its MCP tools.
    pub tools: Vec<ToolDef>,
    /// Its MCP tools: `(server, tool)`, `tool` being `*` for all of the server's; their
    /// definitions come from the servers when it runs (see `mcp.rs`).
    pub mcp: Vec<(String, String)>,
    /// How often an invalid answer is sent back.
    pub output_retries: u32,
    /// Most model turns in one run.
    pub max_turns: u32,
    /// Autonomous, or interactive (a chat with a human: see `chat.rs`).
    pub mode: orchestra_spec::Mode,
    /// Timeout of one run; for interactive agents, of one agent turn of the chat.
    pub timeout: Duration,
}

impl std::fmt::Debug for AgentPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentPlan")
            .field("model", &self.model)
            .finish_non_exhaustive()
    }
}

/// Runs agents from their plans.
pub struct Harness {
    compiled: Arc<Compiled>,
    /// By agent declaration order; `None` for command nodes (no model).
    plans: Vec<Option<AgentPlan>>,
    /// Boxed: most agents have none, and a validator is 64 bytes.
    validators: Vec<Option<Box<jsonschema::Validator>>>,
    static_prompts: Vec<OnceLock<Arc<str>>>,
    tools: Arc<Registry>,
    events: Arc<dyn EventSink>,
    stream: bool,
    chat: Option<ChatSetup>,
    mcp: Option<Arc<orchestra_mcp::McpServers>>,
}

impl std::fmt::Debug for Harness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Harness")
            .field("agents", &self.plans.len())
            .finish_non_exhaustive()
    }
}

/// What templates in scripted answers see of `call`: its inputs and state, shared.
fn request_vars(call: &NodeCall) -> RequestVars {
    RequestVars {
        inputs: Arc::clone(&call.inputs),
        state: Arc::clone(&call.state),
    }
}

/// The first message of every run.
pub const KICKOFF: &str = "Carry out your task now.";

impl Harness {
    /// A harness over `compiled`'s agents and their `plans` (indexed by agent declaration
    /// order; `None` for command nodes). Output schemas must be valid (the compiler checked
    /// them).
    pub fn new(
        compiled: Arc<Compiled>,
        plans: Vec<Option<AgentPlan>>,
        tools: Arc<Registry>,
        events: Arc<dyn EventSink>,
        stream: bool,
    ) -> Result<Self, crate::error::SetupError> {
        let mut validators = Vec::with_capacity(plans.len());
        for a in &compiled.agents {
            validators.push(match &a.output_schema {
                Some(s) => Some(Box::new(jsonschema::validator_for(s).map_err(|e| {
                    crate::error::SetupError::OutputSchema {
                        agent: a.name.clone(),
                        detail: e.to_string(),
                    }
                })?)),
                None => None,
            });
        }
        let static_prompts = plans.iter().map(|_| OnceLock::new()).collect();
        Ok(Harness {
            compiled,
            plans,
            validators,
            static_prompts,
            tools,
            events,
            stream,
            chat: None,
            mcp: None,
        })
    }

    /// Lets interactive agents reach humans (without it they pause the session).
    pub fn with_chat(mut self, setup: ChatSetup) -> Self {
        self.chat = Some(setup);
        self
    }

    /// The plan of agent `idx` (none for a command node).
    fn plan(&self, idx: usize) -> Option<&AgentPlan> {
        self.plans.get(idx).and_then(Option::as_ref)
    }

    /// Agent `idx` as compiled.
    fn agent(&self, idx: usize) -> &ResolvedAgent {
        &self.compiled.agents[idx]
    }

    /// The composed system prompt of agent `idx` for `call`.
    fn system_prompt(&self, idx: usize, call: &NodeCall) -> Result<Arc<str>, NodeError> {
        let agent = self.agent(idx);
        let templated = agent
            .layers
            .iter()
            .any(|l| l.kind == LayerKind::Task && (l.text.contains("{{") || l.text.contains("{%")));
        let build = || {
            let state = Value::Object(if templated {
                (*call.state).clone()
            } else {
                Map::new()
            });
            let inputs = Value::Object((*call.inputs).clone());
            compose(
                &agent.layers,
                &PromptContext {
                    state: &state,
                    inputs: &inputs,
                    agent: &self.compiled.agent_vars(agent),
                    item: call.item.as_deref().map(|(i, v)| (v, *i)),
                },
            )
            .map(Arc::from)
            .map_err(|e| NodeError::Fatal(e.to_string()))
        };
        if templated {
            return build();
        }
        if let Some(p) = self.static_prompts[idx].get() {
            return Ok(Arc::clone(p));
        }
        let p = build()?;
        Ok(Arc::clone(self.static_prompts[idx].get_or_init(|| p)))
    }

    /// One autonomous run: model turns and tool calls until a valid final answer.
    ///
    /// Written as an `async` block over the captured arguments, not an `async fn`: one such
    /// future is held for every running agent, and an `async fn` stores its arguments twice
    /// (as captured and as locals). The conversation lives in the request (no copy per turn),
    /// and tool calls run in a boxed future of their own.
    #[expect(
        clippy::manual_async_fn,
        reason = "an `async fn` would store its arguments twice"
    )]
    fn run_agent<'a>(
        &'a self,
        call: &'a NodeCall,
    ) -> impl Future<Output = Result<NodeResult, NodeError>> + Send + 'a {
        async move {
            let (Some(plan), Some(agent)) = (
                self.plan(call.agent_idx),
                self.compiled.agents.get(call.agent_idx),
            ) else {
                return Err(NodeError::Fatal(format!(
                    "no plan for agent `{}`",
                    call.agent
                )));
            };
            let system = self.system_prompt(call.agent_idx, call)?;
            let (tools, system) = self.agent_tools(call, plan, system).await?;
            let mut req = ChatRequest {
                agent: Arc::clone(&call.agent),
                run_index: call.run_index,
                model: Arc::clone(&plan.model),
                system,
                messages: vec![Message::user(kickoff(agent.output_schema.as_deref()))],
                tools,
                max_tokens: plan.max_tokens,
                temperature: plan.temperature,
                workdir: call.workdir.clone(),
                vars: request_vars(call),
            };
            // Counted as the turns go (the result itself is made at the end: it is 128 bytes,
            // held by every running agent otherwise).
            let (mut spent, mut cost) = (Usage::default(), Some(0.0));
            let (mut tool_calls, mut provider_retries) = (0u64, 0u32);
            let mut invalid_answers = 0u32;
            let on_text = |t: &str| {
                self.events.emit(Event::Text {
                    node: call.agent.to_string(),
                    text: t.to_owned(),
                })
            };
            let mut cursor = TurnCursor::default();
            for _turn in 0..plan.max_turns.max(1) {
                let stream: Option<&(dyn Fn(&str) + Send + Sync)> =
                    if self.stream { Some(&on_text) } else { None };
                let (started_at, t0) =
                    (orchestra_store::system_now_ms(), std::time::Instant::now());
                let resp = plan
                    .provider
                    .chat(&req, stream)
                    .await
                    .map_err(|e| provider_failed(call, &e))?;
                let turn = cursor.turn();
                self.record_turn(call, &mut cursor, &req, &resp, started_at, t0.elapsed());
                let ChatResponse {
                    content,
                    usage,
                    retries,
                    external_tool_calls,
                    reported_cost_usd,
                    ..
                } = resp;
                spent += usage;
                let this_call = call_cost(reported_cost_usd, &usage, plan.price.as_ref());
                cost = add_cost(cost, this_call);
                call.usage.add(&usage, this_call);
                call.usage.add_retries(retries);
                provider_retries += retries;
                tool_calls += self.ran_by_agent(call, turn, &external_tool_calls);
                let uses: Vec<(String, String, Value)> = content
                    .iter()
                    .filter_map(|b| match b {
                        Block::ToolUse { id, name, input } => {
                            Some((id.clone(), name.clone(), input.clone()))
                        }
                        _ => None,
                    })
                    .collect();
                if !uses.is_empty() {
                    req.messages.push(Message::assistant(content));
                    tool_calls += uses.len() as u64;
                    let results =
                        Box::pin(self.call_tools(call, plan, &req.tools, turn, uses)).await;
                    req.messages.push(Message {
                        role: Role::User,
                        content: results,
                    });
                    continue;
                }
                let text = content
                    .iter()
                    .filter_map(|b| match b {
                        Block::Text { text } => Some(text.as_str()),
                        _ => None,
                    })
                    .collect::<String>();
                req.messages.push(Message::assistant(content));
                match self.finish(call.agent_idx, &text) {
                    Ok((output, writes)) => {
                        return Ok(NodeResult {
                            output,
                            writes,
                            tokens_in: spent.input_tokens,
                            tokens_out: spent.output_tokens,
                            cache_read_tokens: spent.cache_read_tokens,
                            cache_write_tokens: spent.cache_write_tokens,
                            cost_usd: cost,
                            tool_calls,
                            retries: provider_retries,
                            error: None,
                            exit_code: None,
                        });
                    }
                    Err(problem) => {
                        if invalid_answers >= plan.output_retries {
                            return Err(NodeError::Retryable(format!(
                                "invalid output after {} attempts: {problem}",
                                invalid_answers + 1
                            )));
                        }
                        invalid_answers += 1;
                        self.events.emit(Event::Warning {
                            message: format!(
                                "agent `{}` gave an invalid answer ({problem}); asking again",
                                call.agent
                            ),
                        });
                        req.messages.push(Message::user(format!(
                            "Your answer is not valid: {problem}\nReply again with only the corrected JSON."
                        )));
                    }
                }
            }
            Err(NodeError::Retryable(format!(
                "agent `{}` used all {} turns without a final answer (limits.max_turns)",
                call.agent, plan.max_turns
            )))
        }
    }

    /// Reports the tool calls a command-line agent ran itself in model turn `turn`: shown and
    /// traced like the harness's own, counted, never run here. Returns how many there were.
    /// (Their streams do not time them: `duration_ms` is 0.)
    fn ran_by_agent(&self, call: &NodeCall, turn: u32, calls: &[ExternalToolCall]) -> u64 {
        for (idx, c) in calls.iter().enumerate() {
            let args = c.input.to_string();
            let result = c.output.as_deref().unwrap_or("");
            self.record_tool(
                call,
                turn,
                idx,
                (&c.id, &c.name, &args),
                (result, c.is_error),
                0,
            );
        }
        calls.len() as u64
    }

    /// Runs the tool calls of model turn `turn`, in order; their results.
    async fn call_tools(
        &self,
        call: &NodeCall,
        plan: &AgentPlan,
        offered: &[ToolDef],
        turn: u32,
        uses: Vec<(String, String, Value)>,
    ) -> Vec<Block> {
        let tools = call.tools.as_ref().unwrap_or(&self.tools);
        let mut results = Vec::with_capacity(uses.len());
        for (idx, (id, name, input)) in uses.into_iter().enumerate() {
            let started = std::time::Instant::now();
            let args = input.to_string();
            let out = self.call_tool(tools, plan, offered, &name, input).await;
            self.record_tool(
                call,
                turn,
                idx,
                (&id, &name, &args),
                (&out.0, out.1),
                crate::events::millis(started.elapsed()),
            );
            results.push(Block::ToolResult {
                tool_use_id: id,
                content: out.0,
                is_error: out.1,
            });
        }
        results
    }

    /// Turns the final text into the output and writes, or says what is wrong with it.
    fn finish(&self, idx: usize, text: &str) -> Result<(Value, Vec<(String, Value)>), String> {
        let agent = self.agent(idx);
        let output = match &self.validators[idx] {
            None => Value::String(text.to_owned()),
            Some(v) => {
                let value = parse_json_answer(text)?;
                let errors: Vec<String> = v
                    .iter_errors(&value)
                    .take(5)
                    .map(|e| {
                        let path = e.instance_path().to_string();
                        if path.is_empty() {
                            e.to_string()
                        } else {
                            format!("at {path}: {e}")
                        }
                    })
                    .collect();
                if !errors.is_empty() {
                    return Err(format!(
                        "it does not satisfy the output schema: {}",
                        errors.join("; ")
                    ));
                }
                value
            }
        };
        let writes = extract_writes(agent, &output)?;
        Ok((output, writes))
    }
}

/// The node error of a failed model call, after counting the retries its provider made.
///
/// One layer decides retries: an error the provider already retried (or gave up on within its
/// retry budget) is final for the node too, else a node attempt would repeat every one of the
/// provider's attempts. A retryable error of a provider that does not retry (`max_retries: 0`,
/// the default of `command` and `scripted`) is left to the node's `retries`.
fn provider_failed(call: &NodeCall, e: &orchestra_providers::ProviderError) -> NodeError {
    call.usage.add_retries(e.retries());
    if e.caller_may_retry() {
        NodeError::Retryable(e.to_string())
    } else {
        NodeError::Fatal(e.to_string())
    }
}

/// The first message of an autonomous run.
fn kickoff(schema: Option<&Value>) -> String {
    let mut k = KICKOFF.to_owned();
    if let Some(schema) = schema {
        k.push_str(&format!(
            "\n\nWhen you are done, reply with only a JSON value (no prose) that satisfies this JSON Schema:\n{schema}"
        ));
    }
    k
}

impl NodeRunner for Harness {
    fn run<'a>(&'a self, call: &'a NodeCall) -> BoxFuture<'a, Result<NodeResult, NodeError>> {
        let interactive = self
            .plan(call.agent_idx)
            .is_some_and(|p| p.mode == orchestra_spec::Mode::Interactive);
        if interactive {
            return Box::pin(self.run_chat(call));
        }
        Box::pin(self.run_agent(call))
    }
}

#[cfg(test)]
mod tests;
