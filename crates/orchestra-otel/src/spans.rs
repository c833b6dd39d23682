//! A session's events as spans, with the OpenTelemetry GenAI semantic conventions: a session
//! span; under it an `invoke_agent {agent}` span per node run (per attempt); under each run a
//! `chat {model}` span per model call and an `execute_tool {tool}` span per tool call, whose
//! start is their end less their duration. Routing, checkpoints, warnings and human turns are
//! span events.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use opentelemetry::trace::{SpanKind, Status, TraceContextExt as _, Tracer as _};
use opentelemetry::{Context, KeyValue, Value};
use opentelemetry_sdk::trace::SdkTracer;

use orchestra_runtime::{Event, EventSink};

/// Turns events into spans of `tracer`.
#[derive(Debug)]
pub struct SpanSink {
    tracer: SdkTracer,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// The session id (`gen_ai.conversation.id`).
    conversation: Option<String>,
    /// The session span.
    session: Option<Context>,
    /// Open node runs by (step, agent).
    runs: HashMap<(u64, String), Context>,
}

const OPERATION: &str = "gen_ai.operation.name";
const CONVERSATION: &str = "gen_ai.conversation.id";
const AGENT: &str = "gen_ai.agent.name";
const PROVIDER: &str = "gen_ai.provider.name";
const MODEL: &str = "gen_ai.request.model";
const TOKENS_IN: &str = "gen_ai.usage.input_tokens";
const TOKENS_OUT: &str = "gen_ai.usage.output_tokens";

fn int(key: &'static str, n: impl TryInto<i64>) -> KeyValue {
    KeyValue::new(key, n.try_into().unwrap_or(i64::MAX))
}

impl SpanSink {
    /// Spans of `tracer`.
    pub fn new(tracer: SdkTracer) -> Self {
        SpanSink {
            tracer,
            state: Mutex::new(State::default()),
        }
    }

    /// Ends every span still open (runs first, then the session), as `status` when given.
    pub fn close(&self, status: Option<&str>) {
        if let Ok(mut st) = self.state.lock() {
            st.close(status);
        }
    }

    fn start(
        &self,
        st: &State,
        parent: Option<&Context>,
        name: String,
        kind: SpanKind,
        start: SystemTime,
        mut attrs: Vec<KeyValue>,
    ) -> Context {
        if let Some(id) = &st.conversation {
            attrs.push(KeyValue::new(CONVERSATION, id.clone()));
        }
        let builder = self
            .tracer
            .span_builder(name)
            .with_kind(kind)
            .with_start_time(start)
            .with_attributes(attrs);
        let parent = parent.cloned().unwrap_or_default();
        let span = self.tracer.build_with_context(builder, &parent);
        Context::new().with_span(span)
    }

    fn handle(&self, st: &mut State, event: Event) {
        let now = SystemTime::now();
        match event {
            Event::SessionStarted {
                session,
                pipeline,
                from_step,
            } => {
                st.conversation = Some(session.clone());
                if st.session.is_none() {
                    let mut attrs = vec![
                        KeyValue::new("orchestra.session", session),
                        KeyValue::new("orchestra.pipeline", pipeline.clone()),
                    ];
                    if let Some(step) = from_step {
                        attrs.push(int("orchestra.from_step", step));
                    }
                    let name = format!("session {pipeline}");
                    st.session = Some(self.start(st, None, name, SpanKind::Internal, now, attrs));
                }
            }
            Event::StepStarted { step, nodes } => st.session_event(
                "step_started",
                vec![
                    int("orchestra.step", step),
                    KeyValue::new("orchestra.nodes", nodes.join(", ")),
                ],
            ),
            Event::NodeStarted {
                step,
                node,
                run_index,
                attempt,
            } => {
                let attrs = vec![
                    KeyValue::new(OPERATION, "invoke_agent"),
                    KeyValue::new(AGENT, node.clone()),
                    int("orchestra.step", step),
                    int("orchestra.run_index", run_index),
                    int("orchestra.attempt", attempt),
                ];
                let name = format!("invoke_agent {node}");
                let cx = self.start(
                    st,
                    st.session.as_ref(),
                    name,
                    SpanKind::Internal,
                    now,
                    attrs,
                );
                if let Some(old) = st.runs.insert((step, node), cx) {
                    old.span().end_with_timestamp(now);
                }
            }
            Event::ModelTurn {
                step,
                node,
                turn,
                provider,
                model,
                duration_ms,
                tokens_in,
                tokens_out,
                stop,
                tool_calls,
                ..
            } => {
                let parent = st.runs.get(&(step, node.clone())).cloned();
                if let Some(run) = &parent {
                    run.span().set_attributes([
                        KeyValue::new(PROVIDER, provider.clone()),
                        KeyValue::new(MODEL, model.clone()),
                    ]);
                }
                let attrs = vec![
                    KeyValue::new(OPERATION, "chat"),
                    KeyValue::new(PROVIDER, provider),
                    KeyValue::new(MODEL, model.clone()),
                    KeyValue::new(AGENT, node),
                    int(TOKENS_IN, tokens_in),
                    int(TOKENS_OUT, tokens_out),
                    KeyValue::new(
                        "gen_ai.response.finish_reasons",
                        Value::Array(vec![opentelemetry::StringValue::from(stop)].into()),
                    ),
                    int("orchestra.turn", turn),
                    int("orchestra.tool_calls", tool_calls),
                ];
                let start = now - Duration::from_millis(duration_ms);
                let name = format!("chat {model}");
                let parent = parent.as_ref().or(st.session.as_ref());
                let cx = self.start(st, parent, name, SpanKind::Client, start, attrs);
                cx.span().end_with_timestamp(now);
            }
            Event::ToolCalled {
                step,
                node,
                tool,
                is_error,
                duration_ms,
                ..
            } => {
                let attrs = vec![
                    KeyValue::new(OPERATION, "execute_tool"),
                    KeyValue::new("gen_ai.tool.name", tool.clone()),
                    KeyValue::new(AGENT, node.clone()),
                ];
                let start = now - Duration::from_millis(duration_ms);
                let parent = st.runs.get(&(step, node)).or(st.session.as_ref());
                let name = format!("execute_tool {tool}");
                let cx = self.start(st, parent, name, SpanKind::Internal, start, attrs);
                if is_error {
                    cx.span()
                        .set_attribute(KeyValue::new("error.type", "tool_error"));
                    cx.span().set_status(Status::error(format!(
                        "the tool `{tool}` reported an error"
                    )));
                }
                cx.span().end_with_timestamp(now);
            }
            Event::NodeRetry {
                step,
                node,
                attempt,
                error,
                delay_ms,
            } => {
                if let Some(cx) = st.runs.remove(&(step, node)) {
                    cx.span().set_attributes([
                        KeyValue::new("error.type", "retried"),
                        int("orchestra.retry_delay_ms", delay_ms),
                        int("orchestra.attempt", attempt),
                    ]);
                    cx.span().set_status(Status::error(error));
                    cx.span().end_with_timestamp(now);
                }
            }
            Event::NodeFinished {
                step,
                node,
                duration_ms,
                tokens_in,
                tokens_out,
                tool_calls,
                reused,
                cache_read_tokens,
                cache_write_tokens,
                cost_usd,
                exit_code,
            } => {
                let cx = match st.runs.remove(&(step, node.clone())) {
                    Some(cx) => cx,
                    // Taken from the store: no attempt ran in this drive.
                    None => {
                        let attrs = vec![
                            KeyValue::new(OPERATION, "invoke_agent"),
                            KeyValue::new(AGENT, node.clone()),
                            int("orchestra.step", step),
                        ];
                        let start =
                            now - Duration::from_millis(if reused { 0 } else { duration_ms });
                        let name = format!("invoke_agent {node}");
                        self.start(
                            st,
                            st.session.as_ref(),
                            name,
                            SpanKind::Internal,
                            start,
                            attrs,
                        )
                    }
                };
                cx.span().set_attributes([
                    int(TOKENS_IN, tokens_in),
                    int(TOKENS_OUT, tokens_out),
                    int("gen_ai.usage.cache_read.input_tokens", cache_read_tokens),
                    int(
                        "gen_ai.usage.cache_creation.input_tokens",
                        cache_write_tokens,
                    ),
                    int("orchestra.tool_calls", tool_calls),
                    KeyValue::new("orchestra.reused", reused),
                ]);
                if let Some(cost) = cost_usd {
                    cx.span()
                        .set_attribute(KeyValue::new("orchestra.cost_usd", cost));
                }
                // A command node's program.
                if let Some(code) = exit_code {
                    cx.span()
                        .set_attribute(KeyValue::new("process.exit.code", i64::from(code)));
                }
                cx.span().end_with_timestamp(now);
            }
            Event::NodeFailed { step, node, error } => {
                if let Some(cx) = st.runs.remove(&(step, node)) {
                    cx.span()
                        .set_attribute(KeyValue::new("error.type", "node_failed"));
                    cx.span().set_status(Status::error(error));
                    cx.span().end_with_timestamp(now);
                }
            }
            Event::Routed {
                step,
                from,
                condition,
                decision,
                targets,
                loop_round,
                loop_max,
            } => {
                let mut attrs = vec![
                    int("orchestra.step", step),
                    KeyValue::new("orchestra.from", from),
                    KeyValue::new("orchestra.targets", targets.join(", ")),
                ];
                if let Some(c) = condition {
                    attrs.push(KeyValue::new("orchestra.condition", c));
                }
                if let Some(d) = decision {
                    attrs.push(KeyValue::new("orchestra.decision", d));
                }
                if let (Some(r), Some(m)) = (loop_round, loop_max) {
                    attrs.push(int("orchestra.loop_round", r));
                    attrs.push(int("orchestra.loop_max", m));
                }
                st.session_event("routed", attrs);
            }
            Event::HumanTurn { node, .. } => {
                // What the person said is not exported (it may hold anything).
                let attrs = vec![KeyValue::new(AGENT, node.clone())];
                match st.runs.iter().find(|((_, n), _)| *n == node) {
                    Some((_, cx)) => cx.span().add_event("human_turn", attrs),
                    None => st.session_event("human_turn", attrs),
                }
            }
            Event::Checkpoint { step, snapshot } => st.session_event(
                "checkpoint",
                vec![
                    int("orchestra.step", step),
                    KeyValue::new("orchestra.snapshot", snapshot),
                ],
            ),
            Event::RateLimited {
                provider,
                limit,
                waiting,
            } => st.session_event(
                "rate_limited",
                vec![
                    KeyValue::new(PROVIDER, provider),
                    int("orchestra.limit", limit),
                    int("orchestra.waiting", waiting),
                ],
            ),
            Event::Warning { message } => {
                st.session_event("warning", vec![KeyValue::new("orchestra.message", message)])
            }
            // A child session (a call node's) appears as its start and end; its own spans are
            // not part of this trace.
            Event::Child { child, node, inner } => {
                let (name, status) = match *inner {
                    Event::SessionStarted { .. } => ("child_started", None),
                    Event::SessionFinished { status, .. } => ("child_finished", Some(status)),
                    _ => return,
                };
                let mut attrs = vec![
                    KeyValue::new("orchestra.child_session", child),
                    KeyValue::new("orchestra.call_node", node),
                ];
                if let Some(status) = status {
                    attrs.push(KeyValue::new("orchestra.status", status));
                }
                st.session_event(name, attrs)
            }
            Event::SessionFinished {
                session,
                status,
                steps,
                tokens_in,
                tokens_out,
                duration_ms,
                error,
            } => {
                if st.conversation.is_none() {
                    st.conversation = Some(session.clone());
                }
                if st.session.is_none() {
                    // The drive failed before it started (e.g. setting up git).
                    let start = now - Duration::from_millis(duration_ms);
                    let attrs = vec![KeyValue::new("orchestra.session", session.clone())];
                    let name = format!("session {session}");
                    st.session = Some(self.start(st, None, name, SpanKind::Internal, start, attrs));
                }
                if let Some(cx) = &st.session {
                    cx.span().set_attributes([
                        KeyValue::new("orchestra.status", status.clone()),
                        int("orchestra.steps", steps),
                        int(TOKENS_IN, tokens_in),
                        int(TOKENS_OUT, tokens_out),
                    ]);
                    if status == "failed" {
                        cx.span()
                            .set_status(Status::error(error.unwrap_or_default()));
                    }
                }
                st.close(Some(&status));
            }
            // Deltas of a model turn, which has a span of its own.
            Event::Text { .. } => {}
        }
    }
}

impl State {
    fn session_event(&self, name: &'static str, attrs: Vec<KeyValue>) {
        if let Some(cx) = &self.session {
            cx.span().add_event(name, attrs);
        }
    }

    fn close(&mut self, status: Option<&str>) {
        let now = SystemTime::now();
        for (_, cx) in self.runs.drain() {
            if let Some(s) = status {
                cx.span()
                    .set_attribute(KeyValue::new("orchestra.status", s.to_owned()));
            }
            cx.span().end_with_timestamp(now);
        }
        if let Some(cx) = self.session.take() {
            cx.span().end_with_timestamp(now);
        }
    }
}

impl EventSink for SpanSink {
    fn emit(&self, event: Event) {
        if let Ok(mut st) = self.state.lock() {
            self.handle(&mut st, event);
        }
    }
}
