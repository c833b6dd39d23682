//! The harness's interactive mode: a multi-turn chat between a human and the agent (with the
//! agent's tools), ended by `/done`, `/approve` or `/reject`.
//!
//! Every turn is stored with the store's `append_message` the moment it exists — the agent's
//! answers (and its tool exchanges) and each human line — so the chat is rebuilt from the store
//! when the node runs again (resume, attach, a retry): stored answers are reused, never asked
//! for again, and a crash loses at most the line being typed.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use orchestra_graph::StateWrite;
use orchestra_graph::state::{Channels, Write};
use orchestra_providers::{Block, ChatRequest, Message, Role};

use super::{Harness, KICKOFF, TurnCursor, parse_json_answer};
use crate::events::Event;
use crate::executor::task_writes;
use crate::interactive::{
    ChatChannel, ChatEvent, ChatInfo, HumanInput, Interaction, Said, Verdict, envelope, help_text,
    parse_line,
};
use crate::runner::{NodeCall, NodeError, NodeResult, add_cost, call_cost};
use crate::store_worker::StoreHandle;

mod transcript;

use transcript::{ANSWER, COMMAND, HUMAN, Recorder, TOOL_RESULT, TOOL_USE, Transcript, to_json};

/// What interactive agents need besides the plans.
#[derive(Clone)]
pub struct ChatSetup {
    /// Finds a human for a chat; `None`: interactive agents pause the session.
    pub human: Option<Arc<dyn Interaction>>,
    /// Where every turn is stored (`None`: chats are not saved).
    pub store: Option<StoreHandle>,
    /// The state channels: an ending whose writes the state would refuse is not accepted.
    pub channels: Arc<Channels>,
}

impl std::fmt::Debug for ChatSetup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatSetup")
            .field("human", &self.human.is_some())
            .finish_non_exhaustive()
    }
}

impl Harness {
    /// Runs an interactive agent: rebuild the chat, find a human (or pause), then alternate
    /// agent answers and human lines until a command ends it.
    pub(super) async fn run_chat(&self, call: &NodeCall) -> Result<NodeResult, NodeError> {
        let idx = call.agent_idx;
        if self.plan(idx).is_none() {
            return Err(NodeError::Fatal(format!(
                "no plan for agent `{}`",
                call.agent
            )));
        }
        let Some(setup) = &self.chat else {
            return Err(NodeError::Pause(format!(
                "agent `{}` is interactive and this run cannot reach a human",
                call.agent
            )));
        };
        let rec = Recorder {
            store: setup.store.as_ref(),
            call,
        };
        let mut t = Transcript::rebuild(&rec.load().await?);
        // No model call yet: nothing spent, and that is known.
        let mut result = NodeResult {
            cost_usd: Some(0.0),
            ..NodeResult::default()
        };
        if let Some((verdict, comment)) = t.ended.clone() {
            // The chat had ended just before an interruption: end it the same way.
            let (output, writes) = self
                .chat_output(
                    idx,
                    &call.agent,
                    verdict,
                    &comment,
                    t.last_answer.as_deref(),
                )
                .map_err(NodeError::Fatal)?;
            result.output = output;
            result.writes = writes;
            return Ok(result);
        }
        let Some(human) = &setup.human else {
            return Err(NodeError::Pause(format!(
                "agent `{}` is interactive and this run cannot reach a human",
                call.agent
            )));
        };
        let info = ChatInfo {
            session: call.session.to_string(),
            node: call.agent.to_string(),
            run_index: call.run_index,
            description: self.agent(idx).description.clone(),
            ends: Verdict::ALL
                .into_iter()
                .filter(|v| self.verdict_allowed(idx, &call.agent, *v))
                .collect(),
        };
        let mut chan = human.open(&info).await.map_err(NodeError::Pause)?;
        chan.show(ChatEvent::Opened {
            info: info.clone(),
            history: t.history.clone(),
        });
        let system = self.system_prompt(idx, call)?;
        let mut asked = false;
        let mut cursor = TurnCursor::default();
        loop {
            if t.awaiting_answer() && !asked {
                asked = true;
                match self
                    .chat_round(call, &system, &mut t, &mut result, &rec, &mut cursor)
                    .await {
                    Ok(text) => chan.show(ChatEvent::Answer { text }),
                    Err(RoundError::Store(e)) => return Err(e),
                    Err(RoundError::Model(e)) => chan.show(ChatEvent::Notice {
                        text: format!(
                            "the agent could not answer: {e}\ntype another line to try again, or end the chat"
                        ),
                    }),
                }
            }
            let line = match chan.read().await {
                HumanInput::Line(line) => line,
                HumanInput::Left(why) => {
                    // Let go of this human before looking for another.
                    drop(std::mem::replace(&mut chan, Box::new(Gone)));
                    match human.open(&info).await {
                        Ok(next) => {
                            chan = next;
                            chan.show(ChatEvent::Opened {
                                info: info.clone(),
                                history: t.history.clone(),
                            });
                            continue;
                        }
                        Err(_) => {
                            return Err(NodeError::Pause(format!(
                                "{why}; the chat is saved and goes on when someone attaches"
                            )));
                        }
                    }
                }
            };
            match parse_line(&line) {
                Said::Empty => {}
                Said::Help => chan.show(ChatEvent::Notice {
                    text: help_text(&info.ends),
                }),
                Said::Unknown {
                    command,
                    suggestion,
                } => chan.show(ChatEvent::Notice {
                    text: match suggestion {
                        Some(s) => format!(
                            "unknown command `{command}`; did you mean `{s}`? (/help lists them)"
                        ),
                        None => format!("unknown command `{command}`; {}", help_text(&info.ends)),
                    },
                }),
                Said::Message(text) => {
                    rec.append(&mut t, HUMAN, text.clone()).await?;
                    self.human_turn(call, &text);
                    t.push_human(&text);
                    asked = false;
                }
                Said::End { verdict, comment } => {
                    match self.chat_output(
                        idx,
                        &call.agent,
                        verdict,
                        &comment,
                        t.last_answer.as_deref(),
                    ) {
                        Ok((output, writes)) => {
                            rec.append(&mut t, COMMAND, line.trim().to_owned()).await?;
                            self.human_turn(call, line.trim());
                            chan.show(ChatEvent::Closed { verdict, comment });
                            result.output = output;
                            result.writes = writes;
                            return Ok(result);
                        }
                        Err(problem) => chan.show(ChatEvent::Notice {
                            text: format!("{} cannot end this chat: {problem}", verdict.command()),
                        }),
                    }
                }
            }
        }
    }

    /// One agent turn of the chat: model calls (running tools in between) until a text answer,
    /// within the agent's timeout. Stores every exchange.
    async fn chat_round(
        &self,
        call: &NodeCall,
        system: &Arc<str>,
        t: &mut Transcript,
        result: &mut NodeResult,
        rec: &Recorder<'_>,
        cursor: &mut TurnCursor,
    ) -> Result<String, RoundError> {
        let Some(plan) = self.plan(call.agent_idx) else {
            return Err(RoundError::Store(NodeError::Fatal(format!(
                "no plan for agent `{}`",
                call.agent
            ))));
        };
        let timeout = if plan.timeout.is_zero() {
            Duration::from_secs(600)
        } else {
            plan.timeout
        };
        let (offered, system) = match self.agent_tools(call, plan, Arc::clone(system)).await {
            Ok(found) => found,
            Err(e) => return Err(RoundError::Model(e.to_string())),
        };
        let round = async {
            for _ in 0..plan.max_turns.max(1) {
                let mut messages = vec![Message::user(self.chat_kickoff(call.agent_idx))];
                messages.extend(t.messages.iter().cloned());
                let req = ChatRequest {
                    agent: Arc::clone(&call.agent),
                    run_index: call.run_index,
                    model: Arc::clone(&plan.model),
                    system: Arc::clone(&system),
                    messages,
                    tools: offered.clone(),
                    max_tokens: plan.max_tokens,
                    temperature: plan.temperature,
                    workdir: call.workdir.clone(),
                    vars: super::request_vars(call),
                };
                let (started_at, t0) =
                    (orchestra_store::system_now_ms(), std::time::Instant::now());
                let resp = plan.provider.chat(&req, None).await.map_err(|e| {
                    call.usage.add_retries(e.retries());
                    RoundError::Model(e.to_string())
                })?;
                let turn = cursor.turn();
                self.record_turn(call, cursor, &req, &resp, started_at, t0.elapsed());
                let usage = &resp.usage;
                let this_call = call_cost(resp.reported_cost_usd, usage, plan.price.as_ref());
                call.usage.add(usage, this_call);
                call.usage.add_retries(resp.retries);
                result.tokens_in = result.tokens_in.saturating_add(usage.input_tokens);
                result.tokens_out = result.tokens_out.saturating_add(usage.output_tokens);
                result.cache_read_tokens = result
                    .cache_read_tokens
                    .saturating_add(usage.cache_read_tokens);
                result.cache_write_tokens = result
                    .cache_write_tokens
                    .saturating_add(usage.cache_write_tokens);
                result.cost_usd = add_cost(result.cost_usd, this_call);
                result.retries += resp.retries;
                result.tool_calls += self.ran_by_agent(call, turn, &resp.external_tool_calls);
                let uses: Vec<(String, String, Value)> = resp
                    .content
                    .iter()
                    .filter_map(|b| match b {
                        Block::ToolUse { id, name, input } => {
                            Some((id.clone(), name.clone(), input.clone()))
                        }
                        _ => None,
                    })
                    .collect();
                if uses.is_empty() {
                    let text = Message::assistant(resp.content).text();
                    rec.append(t, ANSWER, text.clone())
                        .await
                        .map_err(RoundError::Store)?;
                    t.push_answer(&text);
                    return Ok(text);
                }
                let mut results = Vec::with_capacity(uses.len());
                for (idx, (id, name, input)) in uses.into_iter().enumerate() {
                    result.tool_calls += 1;
                    let tools = call.tools.as_ref().unwrap_or(&self.tools);
                    let started = std::time::Instant::now();
                    let args = input.to_string();
                    let (content, is_error) =
                        self.call_tool(tools, plan, &offered, &name, input).await;
                    self.record_tool(
                        call,
                        turn,
                        idx,
                        (&id, &name, &args),
                        (&content, is_error),
                        crate::events::millis(started.elapsed()),
                    );
                    results.push(Block::ToolResult {
                        tool_use_id: id,
                        content,
                        is_error,
                    });
                }
                let asked = Message::assistant(resp.content);
                let answered = Message {
                    role: Role::User,
                    content: results,
                };
                rec.append(t, TOOL_USE, to_json(&asked.content))
                    .await
                    .map_err(RoundError::Store)?;
                rec.append(t, TOOL_RESULT, to_json(&answered.content))
                    .await
                    .map_err(RoundError::Store)?;
                t.messages.push(asked);
                t.messages.push(answered);
            }
            Err(RoundError::Model(format!(
                "it used all {} turns without answering (limits.max_turns)",
                plan.max_turns
            )))
        };
        match tokio::time::timeout(timeout, round).await {
            Ok(r) => r,
            Err(_) => Err(RoundError::Model(format!(
                "no answer within {} (the agent's timeout)",
                orchestra_spec::fmt_duration(timeout)
            ))),
        }
    }

    /// Reports a line of the human that the chat took (a message, or the command that ended it).
    fn human_turn(&self, call: &NodeCall, text: &str) {
        self.events.emit(Event::HumanTurn {
            node: call.agent.to_string(),
            text: text.to_owned(),
        });
    }

    /// The first message of a chat.
    fn chat_kickoff(&self, idx: usize) -> String {
        let mut k = format!(
            "{KICKOFF}\n\nYou are in a conversation with a human: they read each of your answers \
             and reply, until they end it."
        );
        if let Some(schema) = &self.agent(idx).output_schema {
            k.push_str(&format!(
                "\n\nWhen the human ends the conversation, your last answer is taken as your result: \
                 make each answer only a JSON value (no prose) that satisfies this JSON Schema:\n{schema}"
            ));
        }
        k
    }

    /// The output and writes of ending the chat with `verdict`, or why it cannot end so: the
    /// last answer is not valid under the output schema, or the state refuses a write.
    fn chat_output(
        &self,
        idx: usize,
        agent: &str,
        verdict: Verdict,
        comment: &str,
        last_answer: Option<&str>,
    ) -> Result<(Value, Vec<(String, Value)>), String> {
        let answer = match (&self.validators[idx], last_answer) {
            (None, text) => Value::String(text.unwrap_or_default().to_owned()),
            (Some(_), None) => return Err("the agent has not answered yet".into()),
            (Some(v), Some(text)) => {
                let value = parse_json_answer(text)
                    .map_err(|e| format!("the agent's last answer must be JSON, and {e}"))?;
                if let Some(e) = v.iter_errors(&value).next() {
                    return Err(format!(
                        "the agent's last answer does not satisfy the output schema ({e}); ask it to correct it"
                    ));
                }
                value
            }
        };
        let output = envelope(verdict, answer, comment);
        let mut writes = Vec::new();
        for StateWrite { field, pointer } in &self.agent(idx).writes {
            match output.pointer(pointer) {
                Some(v) => writes.push((field.clone(), v.clone())),
                None => {
                    return Err(format!(
                        "the output has no `{pointer}` for state field `{field}`"
                    ));
                }
            }
        }
        if let Some(setup) = &self.chat {
            let mut probe = setup.channels.initial();
            setup
                .channels
                .apply(
                    &mut probe,
                    task_writes(agent, output.clone(), writes.clone()),
                )
                .map_err(|e| e.to_string())?;
        }
        Ok((output, writes))
    }

    /// Whether ending with `verdict` suits the state (e.g. a `verdict` field that only accepts
    /// `approve` and `reject` rules out `/done`).
    fn verdict_allowed(&self, idx: usize, agent: &str, verdict: Verdict) -> bool {
        let Some(setup) = &self.chat else {
            return true;
        };
        let writes: Vec<Write> = self
            .agent(idx)
            .writes
            .iter()
            .filter(|w| w.pointer == "/verdict")
            .map(|w| Write {
                writer: agent.to_owned(),
                channel: w.field.clone(),
                value: Value::String(verdict.as_str().to_owned()),
            })
            .collect();
        let mut probe = setup.channels.initial();
        setup.channels.apply(&mut probe, writes).is_ok()
    }
}

/// A chat channel whose human left.
struct Gone;

impl ChatChannel for Gone {
    fn show(&mut self, _: ChatEvent) {}

    fn read(&mut self) -> crate::runner::BoxFuture<'_, HumanInput> {
        Box::pin(async { HumanInput::Left("the human left".into()) })
    }
}

/// Why an agent turn of a chat gave no answer.
enum RoundError {
    /// The model (or its turn limit or timeout): shown to the human, who can try again.
    Model(String),
    /// The chat could not be stored: the node fails.
    Store(NodeError),
}
