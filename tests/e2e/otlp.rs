//! OpenTelemetry export end to end: a loopback OTLP/HTTP receiver (HTTP/1.1 on 127.0.0.1) that
//! decodes the protobuf bodies with opentelemetry-proto's types, and real runs of pr-review with
//! and without `OTEL_EXPORTER_OTLP_ENDPOINT` pointing at it.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::trace::v1::{Span, status::StatusCode};
use prost::Message as _;

use super::events::parse_events;
use super::readme::Repo;

/// One request the receiver got.
#[derive(Debug, Clone)]
struct Received {
    path: String,
    headers: HashMap<String, String>,
    body: ExportTraceServiceRequest,
}

/// An OTLP/HTTP receiver on a loopback port, answering 200 to every export.
struct Receiver {
    port: u16,
    got: Arc<Mutex<Vec<Received>>>,
    connections: Arc<Mutex<usize>>,
}

impl Receiver {
    fn on(listener: TcpListener) -> Receiver {
        let port = listener.local_addr().unwrap().port();
        let got = Arc::new(Mutex::new(Vec::new()));
        let connections = Arc::new(Mutex::new(0));
        let (g, c) = (Arc::clone(&got), Arc::clone(&connections));
        thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { break };
                *c.lock().unwrap() += 1;
                let g = Arc::clone(&g);
                thread::spawn(move || serve(stream, &g));
            }
        });
        Receiver {
            port,
            got,
            connections,
        }
    }

    fn start() -> Receiver {
        Receiver::on(TcpListener::bind("127.0.0.1:0").unwrap())
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn requests(&self) -> Vec<Received> {
        self.got.lock().unwrap().clone()
    }

    /// Every span received, with its resource's `service.name`.
    fn spans(&self) -> Vec<(String, Span)> {
        let mut spans = Vec::new();
        for r in self.requests() {
            for rs in r.body.resource_spans {
                let service = rs
                    .resource
                    .as_ref()
                    .and_then(|res| text(&res.attributes, "service.name"))
                    .unwrap_or_default();
                for ss in rs.scope_spans {
                    for span in ss.spans {
                        spans.push((service.clone(), span));
                    }
                }
            }
        }
        spans
    }
}

/// Reads HTTP/1.1 requests off one connection (kept alive) until it closes.
fn serve(stream: TcpStream, got: &Mutex<Vec<Received>>) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut writer = stream;
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
            return;
        }
        let path = request_line
            .split_whitespace()
            .nth(1)
            .unwrap_or_default()
            .to_owned();
        let mut headers = HashMap::new();
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((k, v)) = line.split_once(':') {
                headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
            }
        }
        let len: usize = headers
            .get("content-length")
            .and_then(|l| l.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0; len];
        reader.read_exact(&mut body).unwrap();
        let body = ExportTraceServiceRequest::decode(&body[..])
            .unwrap_or_else(|e| panic!("not an OTLP trace export ({e})"));
        got.lock().unwrap().push(Received {
            path,
            headers,
            body,
        });
        let answer =
            b"HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\n\r\n";
        if writer.write_all(answer).is_err() {
            return;
        }
    }
}

fn value(attrs: &[KeyValue], key: &str) -> Option<any_value::Value> {
    attrs
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.clone())
        .and_then(|AnyValue { value }| value)
}

fn text(attrs: &[KeyValue], key: &str) -> Option<String> {
    match value(attrs, key)? {
        any_value::Value::StringValue(s) => Some(s),
        other => panic!("`{key}` is not a string: {other:?}"),
    }
}

fn int(attrs: &[KeyValue], key: &str) -> Option<i64> {
    match value(attrs, key)? {
        any_value::Value::IntValue(n) => Some(n),
        other => panic!("`{key}` is not an integer: {other:?}"),
    }
}

fn session_of(stdout: &str) -> String {
    stdout
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("session "))
        .unwrap_or_else(|| panic!("no session line in {stdout}"))
        .to_owned()
}

#[test]
fn a_pr_review_run_exports_its_spans_with_the_genai_conventions() {
    let receiver = Receiver::start();
    let repo = Repo::new();
    let out = repo
        .command(&[
            "run",
            "pipelines/pr-review.yaml",
            "--events",
            "events.jsonl",
        ])
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint())
        .env("OTEL_EXPORTER_OTLP_HEADERS", "x-api-key=s3cret%21")
        .env("OTEL_SERVICE_NAME", "review-ci")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(!stderr.contains("warning"), "{stderr}");
    let id = session_of(&stdout);

    // OTLP/HTTP with protobuf bodies, to the traces path, with the configured headers.
    let requests = receiver.requests();
    assert!(!requests.is_empty(), "nothing was exported");
    for r in &requests {
        assert_eq!(r.path, "/v1/traces");
        assert_eq!(r.headers["content-type"], "application/x-protobuf");
        assert_eq!(r.headers["x-api-key"], "s3cret!");
    }

    let spans = receiver.spans();
    assert!(spans.iter().all(|(service, _)| service == "review-ci"));
    let spans: Vec<Span> = spans.into_iter().map(|(_, s)| s).collect();
    let trace = &spans[0].trace_id;
    assert!(spans.iter().all(|s| &s.trace_id == trace), "one trace");
    for s in &spans {
        assert_eq!(
            text(&s.attributes, "gen_ai.conversation.id").as_deref(),
            Some(id.as_str()),
            "{}",
            s.name
        );
    }
    let by_id: HashMap<&[u8], &Span> = spans.iter().map(|s| (&s.span_id[..], s)).collect();
    let named = |prefix: &str| -> Vec<&Span> {
        spans
            .iter()
            .filter(|s| s.name.starts_with(prefix))
            .collect()
    };

    let sessions = named("session ");
    assert_eq!(sessions.len(), 1);
    let session = sessions[0];
    assert_eq!(session.name, "session pr-review");
    assert!(session.parent_span_id.is_empty(), "the session is the root");
    assert_eq!(
        text(&session.attributes, "orchestra.status").as_deref(),
        Some("completed")
    );
    let routed_or_checkpoints = session
        .events
        .iter()
        .filter(|e| e.name == "checkpoint")
        .count();
    assert_eq!(routed_or_checkpoints, 5);

    // One invoke_agent span per node run, under the session.
    let runs = named("invoke_agent ");
    let mut agents: Vec<String> = runs
        .iter()
        .map(|s| {
            assert_eq!(s.parent_span_id, session.span_id, "{}", s.name);
            assert_eq!(
                text(&s.attributes, "gen_ai.operation.name").as_deref(),
                Some("invoke_agent")
            );
            let agent = text(&s.attributes, "gen_ai.agent.name").unwrap();
            assert_eq!(s.name, format!("invoke_agent {agent}"));
            assert!(int(&s.attributes, "gen_ai.usage.input_tokens").unwrap() > 0);
            assert!(int(&s.attributes, "gen_ai.usage.output_tokens").unwrap() > 0);
            agent
        })
        .collect();
    agents.sort();
    assert_eq!(
        agents,
        [
            "architecture-reviewer",
            "architecture-reviewer",
            "critic",
            "critic",
            "security-reviewer",
            "security-reviewer",
            "synthesizer"
        ]
    );

    // execute_tool spans under the run of the agent that called the tool.
    let events = parse_events(
        &std::fs::read_to_string(repo.root.join("events.jsonl")).unwrap(),
        &id,
    );
    let count = |kind: &str| events.iter().filter(|e| e["event"] == kind).count();
    let tools = named("execute_tool ");
    assert_eq!(tools.len(), count("tool_called"));
    for t in &tools {
        assert_eq!(t.name, "execute_tool app:get-git-diff");
        assert_eq!(
            text(&t.attributes, "gen_ai.tool.name").as_deref(),
            Some("app:get-git-diff")
        );
        let parent = by_id[&t.parent_span_id[..]];
        assert!(parent.name.starts_with("invoke_agent "), "{}", parent.name);
        assert_eq!(
            text(&parent.attributes, "gen_ai.agent.name"),
            text(&t.attributes, "gen_ai.agent.name")
        );
        assert!(t.start_time_unix_nano >= parent.start_time_unix_nano);
        assert!(t.end_time_unix_nano <= parent.end_time_unix_nano);
    }

    // chat spans, one per model turn, under their run.
    let chats = named("chat ");
    assert_eq!(chats.len(), count("model_turn"));
    for c in &chats {
        let model = text(&c.attributes, "gen_ai.request.model").unwrap();
        assert_eq!(c.name, format!("chat {model}"));
        assert_eq!(
            text(&c.attributes, "gen_ai.provider.name").as_deref(),
            Some("scripted")
        );
        assert!(int(&c.attributes, "gen_ai.usage.input_tokens").is_some());
        let parent = by_id[&c.parent_span_id[..]];
        assert!(parent.name.starts_with("invoke_agent "), "{}", parent.name);
    }
    assert!(
        spans.iter().all(|s| s
            .status
            .as_ref()
            .is_none_or(|st| st.code != StatusCode::Error as i32)),
        "nothing failed"
    );
}

#[test]
fn an_unreachable_collector_neither_fails_nor_holds_up_the_run() {
    // A port nobody listens on.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let repo = Repo::new();
    let t0 = Instant::now();
    let out = repo
        .command(&["run", "pipelines/pr-review.yaml"])
        .env(
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            format!("http://127.0.0.1:{port}"),
        )
        .output()
        .unwrap();
    let took = t0.elapsed();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(stdout.starts_with("completed: 5 steps"), "{stdout}");
    assert!(took < Duration::from_secs(20), "took {took:?}");
    let warnings: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("warning: "))
        .collect();
    assert_eq!(warnings.len(), 1, "{stderr}");
    assert!(
        warnings[0].starts_with(&format!(
            "warning: the traces could not all be sent to http://127.0.0.1:{port}/v1/traces: "
        )),
        "{stderr}"
    );
    assert!(warnings[0].contains("Connection refused"), "{stderr}");
}

#[test]
fn without_the_variable_nothing_is_sent() {
    let receiver = Receiver::start();
    let repo = Repo::new();
    // Disabled by the specification's switch, the endpoint set.
    let out = repo
        .command(&["run", "pipelines/pr-review.yaml"])
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint())
        .env("OTEL_SDK_DISABLED", "true")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    // No endpoint at all, other OpenTelemetry variables set: the default endpoint
    // (localhost:4318) would get the traces if an exporter were built anyway.
    let default_port = TcpListener::bind("127.0.0.1:4318").ok().map(Receiver::on);
    let out = repo
        .command(&["run", "pipelines/pr-review.yaml"])
        .env("OTEL_SERVICE_NAME", "review-ci")
        .env("OTEL_EXPORTER_OTLP_HEADERS", "x-api-key=1")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .lines()
            .all(|l| !l.starts_with("warning"))
    );
    assert_eq!(*receiver.connections.lock().unwrap(), 0);
    if let Some(r) = default_port {
        assert_eq!(*r.connections.lock().unwrap(), 0);
    }
}

#[test]
fn a_wrong_variable_is_refused_before_the_run_starts() {
    let repo = Repo::new();
    let out = repo
        .command(&["run", "pipelines/pr-review.yaml"])
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", "localhost:4318")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "error: OTEL_EXPORTER_OTLP_ENDPOINT is not an http:// or https:// URL: `localhost:4318`\n"
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn failures_and_retries_are_error_spans() {
    let receiver = Receiver::start();
    let p = super::project::Project::new();
    let out = p
        .command(&["run", "limits/breaker.yaml"])
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    let id = session_of(&stdout);
    let spans: Vec<Span> = receiver.spans().into_iter().map(|(_, s)| s).collect();
    let error = |s: &Span| {
        s.status
            .as_ref()
            .filter(|st| st.code == StatusCode::Error as i32)
            .map(|st| st.message.clone())
    };
    let session = spans
        .iter()
        .find(|s| s.name.starts_with("session "))
        .unwrap();
    assert_eq!(
        text(&session.attributes, "gen_ai.conversation.id").as_deref(),
        Some(id.as_str())
    );
    assert_eq!(
        text(&session.attributes, "orchestra.status").as_deref(),
        Some("failed")
    );
    assert!(
        error(session).unwrap().contains("circuit breaker"),
        "{session:?}"
    );
    let runs: Vec<&Span> = spans
        .iter()
        .filter(|s| s.name.starts_with("invoke_agent "))
        .collect();
    let kinds: Vec<String> = runs
        .iter()
        .filter(|s| error(s).is_some())
        .map(|s| text(&s.attributes, "error.type").unwrap())
        .collect();
    assert!(kinds.contains(&"retried".to_owned()), "{kinds:?}");
    assert!(kinds.contains(&"node_failed".to_owned()), "{kinds:?}");
    for r in &runs {
        assert_eq!(r.parent_span_id, session.span_id);
    }
}
