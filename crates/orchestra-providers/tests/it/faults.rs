//! The one retry layer against real local servers: an unreachable server fails the call in
//! seconds naming the URL, a failing call is attempted a bounded number of times with default
//! settings, a `retry-after` past the retry budget is not waited, corrupted 200 answers are
//! retried, and a server that sends no usage gets estimated tokens.

use std::time::{Duration, Instant};

use orchestra_providers::{BuildOptions, Message, build_with};
use serde_json::{Value, json};

use crate::server::{Reply, Server, data_lines};
use crate::{Collected, env, provider, request, spec};

fn openai(base: &str, extra: &str) -> String {
    format!("kind: openai\napi_base: {base}\n{extra}")
}

fn completion(content: &str, usage: bool) -> Value {
    let mut c = json!({
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
    });
    if usage {
        c["usage"] = json!({"prompt_tokens": 50, "completion_tokens": 10, "total_tokens": 60});
    }
    c
}

fn chunk(delta: Value, finish: Option<&str>) -> Value {
    json!({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
           "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
}

fn raw(status: u16, content_type: &str, body: &str) -> Reply {
    Reply::Raw {
        status,
        headers: vec![("content-type".into(), content_type.into())],
        body: body.into(),
    }
}

/// A port nothing listens on.
fn closed_port() -> std::net::SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

#[tokio::test]
async fn an_unreachable_server_fails_the_call_in_seconds_with_default_settings() {
    let base = format!("http://{}/v1", closed_port());
    let dir = tempfile::tempdir().unwrap();
    // Default backoff and retries, as a user gets them.
    let p = build_with(
        "local",
        &spec(&openai(&base, "")),
        dir.path(),
        &env,
        &BuildOptions::default(),
    )
    .unwrap();
    let t0 = Instant::now();
    let e = p
        .chat(&request("a", vec![Message::user("go")]), None)
        .await
        .unwrap_err();
    let took = t0.elapsed();
    assert!(took < Duration::from_secs(5), "took {took:?}");
    assert_eq!(
        e.to_string(),
        format!(
            "connection to local at {base}/chat/completions failed: connection refused (gave up after 2 retries)"
        )
    );
    assert!(e.is_unreachable() && !e.caller_may_retry());
    assert_eq!(e.retries(), 2);
}

#[tokio::test]
async fn a_failing_call_is_attempted_five_times_with_default_retries() {
    let busy = || {
        Reply::Json(
            503,
            json!({"error": {"message": "overloaded", "type": "server_error"}}),
        )
    };
    let server = Server::start((0..20).map(|_| busy()).collect()).await;
    let dir = tempfile::tempdir().unwrap();
    let base = format!("{}/v1", server.url());
    // Default `max_retries` (fast backoff only).
    let p = provider("local", &openai(&base, ""), dir.path());
    let e = p
        .chat(&request("a", vec![Message::user("go")]), None)
        .await
        .unwrap_err();
    assert_eq!(server.requests().len(), 5);
    assert_eq!((e.status(), e.retries()), (Some(503), 4));
    assert_eq!(
        e.to_string(),
        format!(
            "local answered HTTP 503 from {base}/chat/completions: server_error: overloaded (gave up after 4 retries)"
        )
    );
    assert!(!e.caller_may_retry(), "the node must not attempt it again");
}

#[tokio::test]
async fn a_retry_after_past_the_retry_budget_is_not_waited() {
    let server = Server::start(vec![Reply::Raw {
        status: 429,
        headers: vec![
            ("content-type".into(), "application/json".into()),
            ("retry-after".into(), "30".into()),
        ],
        body: json!({"error": {"message": "Rate limit reached", "type": "rate_limit_error"}})
            .to_string(),
    }])
    .await;
    let dir = tempfile::tempdir().unwrap();
    let base = format!("{}/v1", server.url());
    let p = provider("local", &openai(&base, "retry_budget: 1s\n"), dir.path());
    let t0 = Instant::now();
    let e = p
        .chat(&request("a", vec![Message::user("go")]), None)
        .await
        .unwrap_err();
    assert!(t0.elapsed() < Duration::from_secs(1), "{:?}", t0.elapsed());
    assert_eq!(server.requests().len(), 1);
    assert_eq!(
        e.to_string(),
        format!(
            "local answered HTTP 429 from {base}/chat/completions: rate_limit_error: Rate limit reached (not retried within the retry budget of 1s)"
        )
    );
}

#[tokio::test]
async fn corrupted_200_answers_are_retried_then_succeed() {
    let server = Server::start(vec![
        raw(200, "application/json", "{\"choices\": [{\"index\": 0,"),
        raw(200, "application/json", ""),
        raw(200, "text/plain", "OK"),
        Reply::Json(200, json!({"object": "chat.completion"})),
        Reply::Json(200, completion("at last", true)),
    ])
    .await;
    let dir = tempfile::tempdir().unwrap();
    let base = format!("{}/v1", server.url());
    let p = provider("local", &openai(&base, "max_retries: 4\n"), dir.path());
    let out = p
        .chat(&request("a", vec![Message::user("go")]), None)
        .await
        .unwrap();
    assert_eq!((out.text().as_str(), out.retries), ("at last", 4));
    assert_eq!(server.requests().len(), 5);
}

#[tokio::test]
async fn a_malformed_stream_chunk_is_retried_then_succeeds() {
    let broken =
        "data: {\"choices\": [{\"index\": 0, \"delta\": {\"content\": \"Hal\n\n".to_owned();
    let good = data_lines(
        &[
            chunk(json!({"content": "Whole"}), None),
            chunk(json!({}), Some("stop")),
            json!({"choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 2}}),
        ],
        true,
    );
    let server = Server::start(vec![Reply::Sse(broken), Reply::Sse(good)]).await;
    let dir = tempfile::tempdir().unwrap();
    let base = format!("{}/v1", server.url());
    let p = provider("local", &openai(&base, ""), dir.path());
    let seen = Collected::default();
    let out = p
        .chat(&request("a", vec![Message::user("go")]), Some(&seen.sink()))
        .await
        .unwrap();
    assert_eq!((out.text().as_str(), out.retries), ("Whole", 1));
    assert_eq!(
        (
            out.usage.input_tokens,
            out.usage.output_tokens,
            out.usage.estimated
        ),
        (9, 2, false)
    );
}

#[tokio::test]
async fn a_server_that_sends_no_usage_gets_estimated_tokens() {
    let answer = "An answer of forty bytes, give or take a.";
    let stream = data_lines(
        &[
            chunk(json!({"content": answer}), None),
            chunk(json!({}), Some("stop")),
        ],
        true,
    );
    let server = Server::start(vec![
        Reply::Sse(stream),
        Reply::Json(200, completion(answer, false)),
    ])
    .await;
    let dir = tempfile::tempdir().unwrap();
    let base = format!("{}/v1", server.url());
    let p = provider("local", &openai(&base, ""), dir.path());
    let req = request("a", vec![Message::user("go")]);
    let seen = Collected::default();
    let streamed = p.chat(&req, Some(&seen.sink())).await.unwrap();
    // Usage was asked for, and not sent.
    assert_eq!(
        server.requests()[0].json()["stream_options"],
        json!({"include_usage": true})
    );
    let plain = p.chat(&req, None).await.unwrap();
    for out in [&streamed, &plain] {
        assert!(out.usage.estimated, "{:?}", out.usage);
        // 41 bytes answered; the request (system prompt, message, tool) is some 200 bytes.
        assert_eq!(out.usage.output_tokens, 11);
        assert!(
            (30..100).contains(&out.usage.input_tokens),
            "{:?}",
            out.usage
        );
    }
    assert_eq!(streamed.usage, plain.usage);
}

#[test]
fn estimated_usage_is_serialized_only_when_true() {
    let mut u = orchestra_providers::Usage {
        input_tokens: 1,
        output_tokens: 2,
        ..Default::default()
    };
    assert_eq!(
        serde_json::to_value(u).unwrap(),
        json!({"input_tokens": 1, "output_tokens": 2})
    );
    u.estimated = true;
    assert_eq!(serde_json::to_value(u).unwrap()["estimated"], json!(true));
    let back: orchestra_providers::Usage =
        serde_json::from_value(json!({"input_tokens": 1, "output_tokens": 2})).unwrap();
    assert!(!back.estimated);
}
