//! The span mapping on synthetic events (every kind the runtime has, model turns and routing
//! included), exported through the SDK into memory; and an unreachable collector.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use opentelemetry::trace::{SpanId, Status, TracerProvider as _};
use opentelemetry::{Key, Value};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanData, SpanExporter};

use orchestra_runtime::{Event, EventSink};

use super::*;

#[derive(Clone, Debug, Default)]
struct Memory(Arc<Mutex<Vec<SpanData>>>);

impl SpanExporter for Memory {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        self.0.lock().unwrap().extend(batch);
        Ok(())
    }
}

fn attr<'a>(span: &'a SpanData, key: &str) -> Option<&'a Value> {
    span.attributes
        .iter()
        .find(|kv| kv.key == Key::from(key.to_owned()))
        .map(|kv| &kv.value)
}

fn s(span: &SpanData, key: &str) -> String {
    attr(span, key).map(Value::to_string).unwrap_or_default()
}

fn synthetic() -> Vec<Event> {
    let started = |node: &str, attempt| Event::NodeStarted {
        step: 1,
        node: node.into(),
        run_index: 0,
        attempt,
    };
    vec![
        Event::SessionStarted {
            session: "20261203-0930-abcdef".into(),
            pipeline: "review".into(),
            from_step: None,
        },
        Event::StepStarted {
            step: 1,
            nodes: vec!["critic".into(), "flaky".into()],
        },
        started("critic", 0),
        started("flaky", 0),
        Event::NodeRetry {
            step: 1,
            node: "flaky".into(),
            attempt: 0,
            error: "HTTP 500".into(),
            delay_ms: 1,
        },
        started("flaky", 1),
        Event::ModelTurn {
            step: 1,
            node: "critic".into(),
            run_index: 0,
            turn: 0,
            provider: "anthropic".into(),
            model: "claude-sonnet-4-5".into(),
            duration_ms: 1500,
            tokens_in: 120,
            tokens_out: 30,
            tokens_estimated: false,
            stop: "tool_use".into(),
            tool_calls: 1,
        },
        Event::ToolCalled {
            step: 1,
            node: "critic".into(),
            run_index: 0,
            tool: "read-file".into(),
            is_error: true,
            duration_ms: 20,
        },
        Event::Text {
            node: "critic".into(),
            text: "revise".into(),
        },
        Event::NodeFinished {
            step: 1,
            node: "critic".into(),
            duration_ms: 1600,
            tokens_in: 120,
            tokens_out: 30,
            tool_calls: 1,
            reused: false,
            cache_read_tokens: 100,
            cache_write_tokens: 0,
            cost_usd: Some(0.0012),
            exit_code: None,
        },
        Event::NodeFailed {
            step: 1,
            node: "flaky".into(),
            error: "HTTP 500 (after 2 attempts)".into(),
        },
        Event::Routed {
            step: 1,
            from: "critic".into(),
            condition: Some("critic_routing".into()),
            decision: Some("revise".into()),
            targets: vec!["writer".into()],
            loop_round: Some(1),
            loop_max: Some(2),
        },
        Event::Checkpoint {
            step: 1,
            snapshot: false,
        },
        Event::RateLimited {
            provider: "anthropic".into(),
            limit: 4,
            waiting: 2,
        },
        Event::Warning {
            message: "careful".into(),
        },
        Event::HumanTurn {
            node: "critic".into(),
            text: "secret words".into(),
        },
        Event::SessionFinished {
            session: "20261203-0930-abcdef".into(),
            status: "failed".into(),
            steps: 1,
            tokens_in: 120,
            tokens_out: 30,
            duration_ms: 1700,
            error: Some("step 1: flaky failed".into()),
        },
    ]
}

#[test]
fn events_become_genai_spans_with_their_parents() {
    let memory = Memory::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(memory.clone())
        .build();
    let sink = SpanSink::new(provider.tracer("test"));
    for e in synthetic() {
        sink.emit(e);
    }
    let spans = memory.0.lock().unwrap().clone();
    let names: Vec<&str> = spans.iter().map(|s| s.name.as_ref()).collect();
    assert_eq!(
        names,
        [
            "invoke_agent flaky",
            "chat claude-sonnet-4-5",
            "execute_tool read-file",
            "invoke_agent critic",
            "invoke_agent flaky",
            "session review",
        ]
    );
    let by_name: HashMap<&str, &SpanData> = spans.iter().map(|s| (s.name.as_ref(), s)).collect();
    let session = by_name["session review"];
    let critic = by_name["invoke_agent critic"];
    let chat = by_name["chat claude-sonnet-4-5"];
    let tool = by_name["execute_tool read-file"];

    // One trace; the session is the root, the runs under it, model and tool calls under a run.
    assert!(
        spans
            .iter()
            .all(|s| s.span_context.trace_id() == session.span_context.trace_id())
    );
    assert_eq!(session.parent_span_id, SpanId::INVALID);
    assert_eq!(critic.parent_span_id, session.span_context.span_id());
    assert_eq!(spans[0].parent_span_id, session.span_context.span_id());
    assert_eq!(chat.parent_span_id, critic.span_context.span_id());
    assert_eq!(tool.parent_span_id, critic.span_context.span_id());

    for span in &spans {
        assert_eq!(
            s(span, "gen_ai.conversation.id"),
            "20261203-0930-abcdef",
            "{}",
            span.name
        );
    }
    assert_eq!(s(critic, "gen_ai.operation.name"), "invoke_agent");
    assert_eq!(s(critic, "gen_ai.agent.name"), "critic");
    assert_eq!(s(critic, "gen_ai.provider.name"), "anthropic");
    assert_eq!(
        attr(critic, "gen_ai.usage.input_tokens"),
        Some(&Value::I64(120))
    );
    assert_eq!(
        attr(critic, "gen_ai.usage.cache_read.input_tokens"),
        Some(&Value::I64(100))
    );
    assert_eq!(
        attr(critic, "orchestra.cost_usd"),
        Some(&Value::F64(0.0012))
    );
    assert_eq!(s(chat, "gen_ai.operation.name"), "chat");
    assert_eq!(s(chat, "gen_ai.provider.name"), "anthropic");
    assert_eq!(s(chat, "gen_ai.request.model"), "claude-sonnet-4-5");
    assert_eq!(
        attr(chat, "gen_ai.usage.input_tokens"),
        Some(&Value::I64(120))
    );
    assert_eq!(
        attr(chat, "gen_ai.usage.output_tokens"),
        Some(&Value::I64(30))
    );
    // A model call's span ends when its event comes and lasts as long as the call took.
    let took = chat.end_time.duration_since(chat.start_time).unwrap();
    assert_eq!(took, Duration::from_millis(1500));
    assert_eq!(s(tool, "gen_ai.operation.name"), "execute_tool");
    assert_eq!(s(tool, "gen_ai.tool.name"), "read-file");
    assert!(matches!(tool.status, Status::Error { .. }));

    // The retried attempt and the failed one are errors; the session failed.
    let (retried, failed) = (&spans[0], &spans[4]);
    assert_eq!(s(retried, "error.type"), "retried");
    assert_eq!(
        retried.status,
        Status::Error {
            description: "HTTP 500".into()
        }
    );
    assert_eq!(s(failed, "error.type"), "node_failed");
    assert_eq!(
        session.status,
        Status::Error {
            description: "step 1: flaky failed".into()
        }
    );
    assert_eq!(s(session, "orchestra.status"), "failed");

    // Routing, checkpoints, rate limits and warnings are events of the session span; a human
    // turn is an event of its agent's run, without what was said.
    let events: Vec<&str> = session.events.iter().map(|e| e.name.as_ref()).collect();
    assert_eq!(
        events,
        [
            "step_started",
            "routed",
            "checkpoint",
            "rate_limited",
            "warning",
            "human_turn"
        ]
    );
    let routed = &session.events.events[1];
    assert!(
        routed
            .attributes
            .iter()
            .any(|kv| kv.key.as_str() == "orchestra.decision" && kv.value.as_str() == "revise")
    );
    assert!(!format!("{spans:?}").contains("secret words"));
}

#[test]
fn an_unreachable_collector_fails_nothing_and_says_why() {
    // A port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = Config {
        endpoint: format!("http://127.0.0.1:{port}/v1/traces")
            .parse()
            .unwrap(),
        headers: HashMap::new(),
        timeout: Duration::from_secs(3),
        service_name: "test".into(),
    };
    let traces = Traces::start(&config).unwrap();
    let sink = traces.sink();
    for e in synthetic() {
        sink.emit(e);
    }
    let t0 = Instant::now();
    let e = traces.finish().unwrap_err().to_string();
    assert!(t0.elapsed() < MAX_FINISH_WAIT, "{:?}", t0.elapsed());
    assert!(
        e.starts_with(&format!(
            "the traces could not all be sent to http://127.0.0.1:{port}/v1/traces: "
        )),
        "{e}"
    );
    assert!(e.contains("Connection refused"), "the cause is named: {e}");
}

#[test]
fn a_collector_that_never_answers_is_given_up_on_after_the_timeout() {
    // Accepts connections (the kernel's backlog) and never answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let config = Config {
        endpoint: format!("http://127.0.0.1:{port}/v1/traces")
            .parse()
            .unwrap(),
        headers: HashMap::new(),
        timeout: Duration::from_millis(500),
        service_name: "test".into(),
    };
    let traces = Traces::start(&config).unwrap();
    assert_eq!(traces.wait(), Duration::from_millis(500));
    let sink = traces.sink();
    for e in synthetic() {
        sink.emit(e);
    }
    let t0 = Instant::now();
    let e = traces.finish().unwrap_err().to_string();
    assert!(t0.elapsed() < Duration::from_secs(3), "{:?}", t0.elapsed());
    assert!(
        e.ends_with("the collector did not answer within 500ms") || e.contains("timed out"),
        "{e}"
    );
    drop(silent);
}
