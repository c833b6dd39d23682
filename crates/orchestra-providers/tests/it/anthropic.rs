//! The Anthropic client against a local server answering with Messages API-shaped bodies.

use std::time::{Duration, Instant};

use orchestra_providers::{Block, Message, ProviderError, Role, StopReason, Usage};
use serde_json::{Value, json};

use crate::server::{Reply, Server, sse};
use crate::{Collected, KEY, everything_about, provider, request};

pub(crate) fn yaml(server: &Server, extra: &str) -> String {
    format!(
        "kind: anthropic\napi_key_env: TEST_KEY\napi_base: {}\nmax_tokens: 512\n{extra}",
        server.url()
    )
}

pub(crate) fn tool_use_message() -> Value {
    json!({
        "id": "msg_01", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
        "content": [
            {"type": "text", "text": "Let me read it."},
            {"type": "tool_use", "id": "toolu_01A", "name": "app__read-file", "input": {"path": "src/lib.rs"}}
        ],
        "stop_reason": "tool_use", "stop_sequence": null,
        "usage": {"input_tokens": 120, "output_tokens": 30}
    })
}

pub(crate) fn final_message(text: &str) -> Value {
    json!({
        "id": "msg_02", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
        "content": [{"type": "text", "text": text}],
        "stop_reason": "end_turn", "stop_sequence": null,
        "usage": {"input_tokens": 200, "output_tokens": 12}
    })
}

fn error_body(kind: &str, message: &str) -> Value {
    json!({"type": "error", "error": {"type": kind, "message": message}})
}

pub(crate) fn text_stream(text: &str) -> Vec<(&'static str, Value)> {
    vec![
        (
            "message_start",
            json!({"type": "message_start", "message": {"id": "msg_s", "type": "message", "role": "assistant", "content": [], "model": "claude-sonnet-4-5", "stop_reason": null, "stop_sequence": null, "usage": {"input_tokens": 40, "output_tokens": 1}}}),
        ),
        (
            "content_block_start",
            json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        ),
        ("ping", json!({"type": "ping"})),
        (
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": &text[..2]}}),
        ),
        (
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": &text[2..]}}),
        ),
        (
            "content_block_stop",
            json!({"type": "content_block_stop", "index": 0}),
        ),
    ]
}

fn stream_end(stop: &str, output_tokens: u64) -> Vec<(&'static str, Value)> {
    vec![
        (
            "message_delta",
            json!({"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": null}, "usage": {"output_tokens": output_tokens}}),
        ),
        ("message_stop", json!({"type": "message_stop"})),
    ]
}

#[tokio::test]
async fn tool_use_round_trip_sends_documented_requests() {
    let server = Server::start(vec![
        Reply::Json(200, tool_use_message()),
        Reply::Json(200, final_message("No issues found.")),
    ])
    .await;
    let dir = tempfile::tempdir().unwrap();
    let p = provider("anthropic", &yaml(&server, ""), dir.path());

    let mut req = request("reviewer", vec![Message::user("Review src/lib.rs")]);
    let first = p.chat(&req, None).await.unwrap();
    assert_eq!(first.stop, StopReason::ToolUse);
    assert_eq!(
        first.usage,
        Usage {
            input_tokens: 120,
            output_tokens: 30,
            ..Usage::default()
        }
    );
    assert_eq!(first.retries, 0);
    let calls: Vec<_> = first.tool_uses().collect();
    assert_eq!(
        calls,
        vec![("toolu_01A", "app:read-file", &json!({"path": "src/lib.rs"}))]
    );

    req.messages.push(first.to_message());
    req.messages.push(Message {
        role: Role::User,
        content: vec![Block::ToolResult {
            tool_use_id: "toolu_01A".into(),
            content: "pub fn f() {}".into(),
            is_error: false,
        }],
    });
    let second = p.chat(&req, None).await.unwrap();
    assert_eq!(second.text(), "No issues found.");
    assert_eq!(second.stop, StopReason::EndTurn);
    assert_eq!(second.model, "claude-sonnet-4-5");

    let seen = server.requests();
    assert_eq!(seen.len(), 2);
    let r = &seen[0];
    assert_eq!(
        (r.method.as_str(), r.path.as_str()),
        ("POST", "/v1/messages")
    );
    assert_eq!(r.header("x-api-key"), Some(KEY));
    assert_eq!(r.header("anthropic-version"), Some("2023-06-01"));
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.header("authorization"), None);
    // Prompt caching is on by default: the system prompt and the tool list are marked.
    assert_eq!(
        r.json(),
        json!({
            "model": "test-model",
            "max_tokens": 512,
            "system": [{"type": "text", "text": "You are a careful reviewer.",
                        "cache_control": {"type": "ephemeral"}}],
            "messages": [{"role": "user", "content": [{"type": "text", "text": "Review src/lib.rs"}]}],
            "tools": [{
                "name": "app__read-file",
                "description": "Read a file of the app repository.",
                "input_schema": {"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]},
                "cache_control": {"type": "ephemeral"}
            }]
        })
    );
    // In the tool loop, the conversation so far is marked too (its last block).
    assert_eq!(
        seen[1].json()["messages"],
        json!([
            {"role": "user", "content": [{"type": "text", "text": "Review src/lib.rs"}]},
            {"role": "assistant", "content": [
                {"type": "text", "text": "Let me read it."},
                {"type": "tool_use", "id": "toolu_01A", "name": "app__read-file", "input": {"path": "src/lib.rs"}}
            ]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_01A", "content": "pub fn f() {}",
                 "cache_control": {"type": "ephemeral"}}
            ]}
        ])
    );
}

#[tokio::test]
async fn streams_text_and_tool_input_deltas() {
    let mut events = text_stream("Reading.");
    events.extend([
        ("content_block_start", json!({"type": "content_block_start", "index": 1, "content_block": {"type": "tool_use", "id": "toolu_S", "name": "app__read-file", "input": {}}})),
        ("content_block_delta", json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": ""}})),
        ("content_block_delta", json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "{\"path\": \"READ"}})),
        ("content_block_delta", json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "ME.md\"}"}})),
        ("content_block_stop", json!({"type": "content_block_stop", "index": 1})),
    ]);
    events.extend(stream_end("tool_use", 21));
    let server = Server::start(vec![Reply::Sse(sse(&events))]).await;
    let dir = tempfile::tempdir().unwrap();
    let p = provider("anthropic", &yaml(&server, ""), dir.path());
    let seen = Collected::default();
    let out = p
        .chat(&request("a", vec![Message::user("go")]), Some(&seen.sink()))
        .await
        .unwrap();
    assert_eq!(seen.text(), "Reading.");
    assert_eq!(out.text(), "Reading.");
    assert_eq!(out.stop, StopReason::ToolUse);
    assert_eq!(
        out.usage,
        Usage {
            input_tokens: 40,
            output_tokens: 21,
            ..Usage::default()
        }
    );
    let calls: Vec<_> = out.tool_uses().collect();
    assert_eq!(
        calls,
        vec![("toolu_S", "app:read-file", &json!({"path": "README.md"}))]
    );
    assert_eq!(server.requests()[0].json()["stream"], json!(true));
}

#[tokio::test]
async fn a_stream_cut_midway_is_retried() {
    let cut = sse(&text_stream("Partial answer"));
    let mut full = text_stream("Whole answer");
    full.extend(stream_end("end_turn", 5));
    let server = Server::start(vec![Reply::SseCut(cut), Reply::Sse(sse(&full))]).await;
    let dir = tempfile::tempdir().unwrap();
    let p = provider("anthropic", &yaml(&server, ""), dir.path());
    let seen = Collected::default();
    let out = p
        .chat(&request("a", vec![Message::user("go")]), Some(&seen.sink()))
        .await
        .unwrap();
    assert_eq!(out.text(), "Whole answer");
    assert_eq!(out.retries, 1);
    assert_eq!(seen.text(), "Partial answerWhole answer");
    assert_eq!(server.requests().len(), 2);
}

#[tokio::test]
async fn a_stream_cut_every_time_fails_as_retryable() {
    let cut = sse(&text_stream("Partial"));
    let server = Server::start(vec![Reply::SseCut(cut.clone()), Reply::SseCut(cut)]).await;
    let dir = tempfile::tempdir().unwrap();
    let p = provider("anthropic", &yaml(&server, "max_retries: 1\n"), dir.path());
    let seen = Collected::default();
    let e = p
        .chat(&request("a", vec![Message::user("go")]), Some(&seen.sink()))
        .await
        .unwrap_err();
    assert_eq!(e.retries(), 1);
    assert!(e.is_retryable());
    assert_eq!(
        e.to_string(),
        "the response stream from anthropic was cut off: it ended before `message_stop` (gave up after 1 retry)"
    );
}

#[tokio::test]
async fn rate_limit_waits_for_retry_after() {
    let server = Server::start(vec![
        Reply::Raw {
            status: 429,
            headers: vec![
                ("content-type".into(), "application/json".into()),
                ("retry-after".into(), "1".into()),
            ],
            body: error_body(
                "rate_limit_error",
                "Number of request tokens has exceeded your per-minute rate limit",
            )
            .to_string(),
        },
        Reply::Json(200, final_message("ok")),
    ])
    .await;
    let dir = tempfile::tempdir().unwrap();
    let p = provider("anthropic", &yaml(&server, ""), dir.path());
    let start = Instant::now();
    let out = p
        .chat(&request("a", vec![Message::user("go")]), None)
        .await
        .unwrap();
    assert_eq!(out.text(), "ok");
    assert_eq!(out.retries, 1);
    let seen = server.requests();
    let gap = seen[1].at - seen[0].at;
    assert!(gap >= Duration::from_secs(1), "waited only {gap:?}");
    assert!(start.elapsed() < Duration::from_secs(4));
}

#[tokio::test]
async fn overloaded_and_server_errors_are_retried() {
    let server = Server::start(vec![
        Reply::Json(529, error_body("overloaded_error", "Overloaded")),
        Reply::Json(500, error_body("api_error", "Internal server error")),
        Reply::Json(200, final_message("fine")),
    ])
    .await;
    let dir = tempfile::tempdir().unwrap();
    let p = provider("anthropic", &yaml(&server, ""), dir.path());
    let out = p
        .chat(&request("a", vec![Message::user("go")]), None)
        .await
        .unwrap();
    assert_eq!((out.text().as_str(), out.retries), ("fine", 2));
}

#[tokio::test]
async fn a_bad_request_fails_at_once_with_the_api_message() {
    let server = Server::start(vec![
        Reply::Json(
            400,
            error_body(
                "invalid_request_error",
                "messages.0.content: text content blocks must be non-empty",
            ),
        ),
        Reply::Json(200, final_message("never")),
    ])
    .await;
    let dir = tempfile::tempdir().unwrap();
    let p = provider("anthropic", &yaml(&server, ""), dir.path());
    let e = p
        .chat(&request("a", vec![Message::user("go")]), None)
        .await
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "anthropic answered HTTP 400 from {}/v1/messages: invalid_request_error: messages.0.content: text content blocks must be non-empty",
            server.url()
        )
    );
    assert_eq!(e.status(), Some(400));
    assert!(!e.is_retryable());
    assert_eq!(server.requests().len(), 1);
}

#[tokio::test]
async fn corrupted_answers_are_retried_like_a_dropped_stream() {
    let raw = |content_type: &str, body: &str| Reply::Raw {
        status: 200,
        headers: vec![("content-type".into(), content_type.into())],
        body: body.into(),
    };
    let server = Server::start(vec![
        raw("application/json", "{\"id\": \"msg_1\", \"content\": ["),
        raw("application/json", ""),
        raw("text/plain", "upstream busy, try later"),
        Reply::Json(200, json!({"id": "msg_1", "type": "message"})),
        Reply::Json(200, final_message("fine at last")),
    ])
    .await;
    let dir = tempfile::tempdir().unwrap();
    let p = provider("anthropic", &yaml(&server, ""), dir.path());
    let req = request("a", vec![Message::user("go")]);
    let out = p.chat(&req, None).await.unwrap();
    assert_eq!((out.text().as_str(), out.retries), ("fine at last", 4));
    assert_eq!(server.requests().len(), 5);

    // Corrupted every time: the error is the last attempt's, after the provider's retries.
    let bad = || raw("application/json", "{\"id\": \"msg_1\", \"content\": [");
    let server = Server::start(vec![bad(), bad()]).await;
    let p = provider("anthropic", &yaml(&server, "max_retries: 1\n"), dir.path());
    let e = p.chat(&req, None).await.unwrap_err();
    assert!(
        matches!(e.last_attempt(), ProviderError::Malformed { .. }),
        "{e:?}"
    );
    assert!(
        e.to_string()
            .starts_with("malformed response from anthropic: EOF while parsing"),
        "{e}"
    );
    assert!(e.to_string().ends_with("(gave up after 1 retry)"), "{e}");
    assert!(e.is_retryable() && !e.caller_may_retry());
}

#[tokio::test]
async fn a_hung_connection_times_out() {
    let server = Server::start(vec![Reply::Hang, Reply::Hang]).await;
    let dir = tempfile::tempdir().unwrap();
    let p = provider(
        "anthropic",
        &yaml(&server, "timeout: 300ms\nmax_retries: 1\n"),
        dir.path(),
    );
    let start = Instant::now();
    let e = p
        .chat(&request("a", vec![Message::user("go")]), None)
        .await
        .unwrap_err();
    // Not waited for: the server holds each connection for 30 s.
    assert!(
        start.elapsed() < Duration::from_secs(30),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(e.retries(), 1);
    assert_eq!(
        e.to_string(),
        format!(
            "request to anthropic at {}/v1/messages timed out after 300ms (gave up after 1 retry)",
            server.url()
        )
    );
    assert_eq!(server.requests().len(), 2);
}

#[tokio::test]
async fn the_key_never_appears_in_errors() {
    let echoed = format!("invalid x-api-key: {KEY}");
    let server = Server::start(vec![Reply::Json(
        401,
        error_body("authentication_error", &echoed),
    )])
    .await;
    let dir = tempfile::tempdir().unwrap();
    let p = provider("anthropic", &yaml(&server, ""), dir.path());
    let e = p
        .chat(&request("a", vec![Message::user("go")]), None)
        .await
        .unwrap_err();
    let all = everything_about(&e);
    assert!(!all.contains(KEY), "{all}");
    assert!(
        all.contains("authentication_error: invalid x-api-key: [redacted]"),
        "{all}"
    );
    assert!(!format!("{p:?}").contains(KEY));

    // A refused connection (nothing listens on the port any more) also keeps it out.
    let addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let yaml = format!(
        "kind: anthropic\napi_key_env: TEST_KEY\napi_base: http://{addr}\nmax_retries: 0\n"
    );
    let p = provider("anthropic", &yaml, dir.path());
    let e = p
        .chat(&request("a", vec![Message::user("go")]), None)
        .await
        .unwrap_err();
    assert!(matches!(e, ProviderError::Connection { .. }), "{e:?}");
    assert!(!everything_about(&e).contains(KEY));
}

/// An Anthropic-compatible server that sends no usage, plain or streamed: the tokens are
/// estimated from the text (about four bytes a token) and marked as estimated, as the OpenAI
/// client and the scripted provider do, so `limits.max_tokens` still counts them.
#[tokio::test]
async fn a_server_without_usage_gets_estimated_tokens_plain_and_streamed() {
    let mut plain = final_message("Looks fine to me.");
    plain.as_object_mut().unwrap().remove("usage");
    let mut events = text_stream("Looks fine to me.");
    events[0].1["message"]
        .as_object_mut()
        .unwrap()
        .remove("usage");
    events.push((
        "message_delta",
        json!({"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": null}}),
    ));
    events.push(("message_stop", json!({"type": "message_stop"})));
    let server = Server::start(vec![
        Reply::Json(200, plain),
        Reply::Sse(sse(&events)),
        // A server that reports usage is taken at its word.
        Reply::Json(200, final_message("Looks fine to me.")),
    ])
    .await;
    let dir = tempfile::tempdir().unwrap();
    let p = provider("anthropic", &yaml(&server, ""), dir.path());
    let req = request("a", vec![Message::user("Review src/lib.rs")]);
    // The request's text (system prompt, message, tool definition) and the 17-byte answer.
    let asked = "You are a careful reviewer.".len()
        + "Review src/lib.rs".len()
        + "app:read-file".len()
        + "Read a file of the app repository.".len()
        + serde_json::to_string(&req.tools[0].parameters)
            .unwrap()
            .len();
    let estimate = Usage {
        input_tokens: u64::try_from(asked.div_ceil(4)).unwrap(),
        output_tokens: 5,
        estimated: true,
        ..Usage::default()
    };
    let out = p.chat(&req, None).await.unwrap();
    assert_eq!(out.text(), "Looks fine to me.");
    assert_eq!(out.usage, estimate, "plain");
    let seen = Collected::default();
    let sink = seen.sink();
    let out = p.chat(&req, Some(&sink)).await.unwrap();
    assert_eq!(seen.text(), "Looks fine to me.");
    assert_eq!(out.usage, estimate, "streamed");
    let out = p.chat(&req, None).await.unwrap();
    assert_eq!(
        out.usage,
        Usage {
            input_tokens: 200,
            output_tokens: 12,
            ..Usage::default()
        }
    );
}
