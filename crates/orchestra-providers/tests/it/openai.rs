//! The OpenAI-compatible client against a local server answering with Chat Completions-shaped
//! bodies.

use orchestra_providers::{Block, Message, Role, StopReason, Usage, tool_input_error};
use serde_json::{Value, json};

use crate::server::{Reply, Server, data_lines};
use crate::{Collected, KEY, everything_about, provider, request};

fn completion(message: Value, finish: &str) -> Value {
    json!({
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1_700_000_000, "model": "qwen2.5-coder",
        "choices": [{"index": 0, "message": message, "logprobs": null, "finish_reason": finish}],
        "usage": {"prompt_tokens": 50, "completion_tokens": 10, "total_tokens": 60}
    })
}

fn chunk(delta: Value, finish: Option<&str>) -> Value {
    json!({"id": "chatcmpl-s", "object": "chat.completion.chunk", "created": 1, "model": "qwen2.5-coder",
           "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
}

fn usage_chunk() -> Value {
    json!({"id": "chatcmpl-s", "object": "chat.completion.chunk", "created": 1, "model": "qwen2.5-coder",
           "choices": [], "usage": {"prompt_tokens": 33, "completion_tokens": 7, "total_tokens": 40}})
}

#[tokio::test]
async fn tool_calls_round_trip_with_a_key() {
    let server = Server::start(vec![
        Reply::Json(200, completion(json!({
            "role": "assistant", "content": null,
            "tool_calls": [{"id": "call_abc", "type": "function",
                            "function": {"name": "app__read-file", "arguments": "{\"path\":\"Cargo.toml\"}"}}]
        }), "tool_calls")),
        Reply::Json(200, completion(json!({"role": "assistant", "content": "Looks fine."}), "stop")),
    ])
    .await;
    let dir = tempfile::tempdir().unwrap();
    let yaml = format!(
        "kind: openai\napi_key_env: TEST_KEY\napi_base: {}/v1\nmax_tokens: 300\n",
        server.url()
    );
    let p = provider("local", &yaml, dir.path());

    let mut req = request("reviewer", vec![Message::user("Check Cargo.toml")]);
    let first = p.chat(&req, None).await.unwrap();
    assert_eq!(first.stop, StopReason::ToolUse);
    assert_eq!(
        first.usage,
        Usage {
            input_tokens: 50,
            output_tokens: 10,
            ..Usage::default()
        }
    );
    let calls: Vec<_> = first.tool_uses().collect();
    assert_eq!(
        calls,
        vec![("call_abc", "app:read-file", &json!({"path": "Cargo.toml"}))]
    );

    req.messages.push(first.to_message());
    req.messages.push(Message {
        role: Role::User,
        content: vec![Block::ToolResult {
            tool_use_id: "call_abc".into(),
            content: "[package]".into(),
            is_error: false,
        }],
    });
    let second = p.chat(&req, None).await.unwrap();
    assert_eq!(
        (second.text().as_str(), second.stop),
        ("Looks fine.", StopReason::EndTurn)
    );

    let seen = server.requests();
    assert_eq!(seen[0].path, "/v1/chat/completions");
    assert_eq!(
        seen[0].header("authorization"),
        Some(format!("Bearer {KEY}").as_str())
    );
    assert_eq!(
        seen[0].json(),
        json!({
            "model": "test-model",
            "messages": [
                {"role": "system", "content": "You are a careful reviewer."},
                {"role": "user", "content": "Check Cargo.toml"}
            ],
            "tools": [{"type": "function", "function": {
                "name": "app__read-file",
                "description": "Read a file of the app repository.",
                "parameters": {"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]}
            }}],
            "max_tokens": 300
        })
    );
    assert_eq!(
        seen[1].json()["messages"],
        json!([
            {"role": "system", "content": "You are a careful reviewer."},
            {"role": "user", "content": "Check Cargo.toml"},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "call_abc", "type": "function", "function": {"name": "app__read-file", "arguments": "{\"path\":\"Cargo.toml\"}"}}
            ]},
            {"role": "tool", "tool_call_id": "call_abc", "content": "[package]"}
        ])
    );
}

#[tokio::test]
async fn a_local_server_needs_no_key() {
    let server = Server::start(vec![Reply::Json(
        200,
        completion(json!({"role": "assistant", "content": "hi"}), "stop"),
    )])
    .await;
    let dir = tempfile::tempdir().unwrap();
    let yaml = format!("kind: openai\napi_base: {}/v1\n", server.url());
    let p = provider("ollama", &yaml, dir.path());
    let out = p
        .chat(&request("a", vec![Message::user("hello")]), None)
        .await
        .unwrap();
    assert_eq!(out.text(), "hi");
    let r = &server.requests()[0];
    assert_eq!(r.header("authorization"), None);
    assert!(r.json().get("max_tokens").is_none());
}

#[tokio::test]
async fn streams_text_tool_call_fragments_and_usage() {
    let body = data_lines(
        &[
            chunk(json!({"role": "assistant", "content": ""}), None),
            chunk(json!({"content": "Check"}), None),
            chunk(json!({"content": "ing."}), None),
            chunk(
                json!({"tool_calls": [{"index": 0, "id": "call_s1", "type": "function", "function": {"name": "app__read-file", "arguments": ""}}]}),
                None,
            ),
            chunk(
                json!({"tool_calls": [{"index": 0, "function": {"arguments": "{\"path\": "}}]}),
                None,
            ),
            chunk(
                json!({"tool_calls": [{"index": 0, "function": {"arguments": "\"a.rs\"}"}}]}),
                None,
            ),
            chunk(
                json!({"tool_calls": [{"index": 1, "id": "call_s2", "type": "function", "function": {"name": "app__read-file", "arguments": "{\"path\": \"b.rs\"}"}}]}),
                None,
            ),
            chunk(json!({}), Some("tool_calls")),
            usage_chunk(),
        ],
        true,
    );
    let server = Server::start(vec![Reply::Sse(body)]).await;
    let dir = tempfile::tempdir().unwrap();
    let yaml = format!("kind: openai\napi_base: {}/v1\n", server.url());
    let p = provider("vllm", &yaml, dir.path());
    let seen = Collected::default();
    let out = p
        .chat(&request("a", vec![Message::user("go")]), Some(&seen.sink()))
        .await
        .unwrap();
    assert_eq!(seen.text(), "Checking.");
    assert_eq!(out.stop, StopReason::ToolUse);
    assert_eq!(
        out.usage,
        Usage {
            input_tokens: 33,
            output_tokens: 7,
            ..Usage::default()
        }
    );
    let calls: Vec<_> = out.tool_uses().collect();
    assert_eq!(
        calls,
        vec![
            ("call_s1", "app:read-file", &json!({"path": "a.rs"})),
            ("call_s2", "app:read-file", &json!({"path": "b.rs"})),
        ]
    );
    let body = server.requests()[0].json();
    assert_eq!(body["stream"], json!(true));
    assert_eq!(body["stream_options"], json!({"include_usage": true}));
}

#[tokio::test]
async fn a_cut_stream_is_retried_then_succeeds() {
    let cut = data_lines(&[chunk(json!({"content": "Half"}), None)], false);
    let full = data_lines(
        &[
            chunk(json!({"content": "Whole"}), None),
            chunk(json!({}), Some("stop")),
            usage_chunk(),
        ],
        true,
    );
    let server = Server::start(vec![Reply::SseCut(cut), Reply::Sse(full)]).await;
    let dir = tempfile::tempdir().unwrap();
    let yaml = format!("kind: openai\napi_base: {}/v1\n", server.url());
    let p = provider("local", &yaml, dir.path());
    let seen = Collected::default();
    let out = p
        .chat(&request("a", vec![Message::user("go")]), Some(&seen.sink()))
        .await
        .unwrap();
    assert_eq!(
        (out.text().as_str(), out.retries, out.stop),
        ("Whole", 1, StopReason::EndTurn)
    );
    assert_eq!(seen.text(), "HalfWhole");
}

#[tokio::test]
async fn arguments_that_are_not_json_become_a_clear_tool_error() {
    let server = Server::start(vec![Reply::Json(200, completion(json!({
        "role": "assistant", "content": null,
        "tool_calls": [{"id": "call_bad", "type": "function",
                        "function": {"name": "app__read-file", "arguments": "{\"path\": \"a.rs\""}}]
    }), "tool_calls"))])
    .await;
    let dir = tempfile::tempdir().unwrap();
    let yaml = format!("kind: openai\napi_base: {}/v1\n", server.url());
    let p = provider("local", &yaml, dir.path());
    let out = p
        .chat(&request("a", vec![Message::user("go")]), None)
        .await
        .unwrap();
    let (id, name, input) = out.tool_uses().next().unwrap();
    assert_eq!((id, name), ("call_bad", "app:read-file"));
    let why = tool_input_error(input).unwrap();
    assert!(
        why.starts_with("the tool arguments are not a valid JSON object (EOF while parsing"),
        "{why}"
    );
    assert!(why.ends_with("they were: {\"path\": \"a.rs\""), "{why}");
}

#[tokio::test]
async fn errors_carry_the_servers_message() {
    let server = Server::start(vec![
        Reply::Json(503, json!({"error": "server busy"})),
        Reply::Json(400, json!({"error": {"message": "Invalid 'tools[0].function.name': string does not match pattern.", "type": "invalid_request_error", "param": "tools[0].function.name", "code": "invalid_value"}})),
    ])
    .await;
    let dir = tempfile::tempdir().unwrap();
    let yaml = format!(
        "kind: openai\napi_key_env: TEST_KEY\napi_base: {}/v1\n",
        server.url()
    );
    let p = provider("openrouter", &yaml, dir.path());
    let e = p
        .chat(&request("a", vec![Message::user("go")]), None)
        .await
        .unwrap_err();
    assert_eq!((e.status(), e.retries()), (Some(400), 1));
    assert_eq!(
        e.last_attempt().to_string(),
        format!(
            "openrouter answered HTTP 400 from {}/v1/chat/completions: invalid_request_error: Invalid 'tools[0].function.name': string does not match pattern.",
            server.url()
        )
    );
    assert!(!everything_about(&e).contains(KEY));
}

#[tokio::test]
async fn a_server_ignoring_stream_true_still_works() {
    let server = Server::start(vec![Reply::Json(
        200,
        completion(json!({"role": "assistant", "content": "plain"}), "length"),
    )])
    .await;
    let dir = tempfile::tempdir().unwrap();
    let yaml = format!("kind: openai\napi_base: {}/v1\n", server.url());
    let p = provider("local", &yaml, dir.path());
    let seen = Collected::default();
    let out = p
        .chat(&request("a", vec![Message::user("go")]), Some(&seen.sink()))
        .await
        .unwrap();
    assert_eq!(
        (seen.text().as_str(), out.stop),
        ("plain", StopReason::MaxTokens)
    );
}

#[tokio::test]
async fn a_body_cut_before_its_length_is_retried() {
    let ok = completion(json!({"role": "assistant", "content": "complete"}), "stop");
    let text = ok.to_string();
    let server = Server::start(vec![
        Reply::Truncated(text[..text.len() / 2].to_owned()),
        Reply::Json(200, ok),
    ])
    .await;
    let dir = tempfile::tempdir().unwrap();
    let yaml = format!("kind: openai\napi_base: {}/v1\n", server.url());
    let p = provider("local", &yaml, dir.path());
    let out = p
        .chat(&request("a", vec![Message::user("go")]), None)
        .await
        .unwrap();
    assert_eq!((out.text().as_str(), out.retries), ("complete", 1));
}

#[tokio::test]
async fn cached_prompt_tokens_are_read_as_cache_reads_inside_the_input() {
    let cached = |mut v: Value, details: Value| {
        v["usage"] = json!({"prompt_tokens": 2006, "completion_tokens": 300, "total_tokens": 2306,
                            "prompt_tokens_details": details,
                            "completion_tokens_details": {"reasoning_tokens": 0}});
        v
    };
    let mut stream_usage = usage_chunk();
    stream_usage["usage"] = json!({"prompt_tokens": 1500, "completion_tokens": 7, "total_tokens": 1507,
                                   "prompt_tokens_details": {"cached_tokens": 1024, "audio_tokens": 0}});
    let server = Server::start(vec![
        Reply::Json(
            200,
            cached(
                completion(json!({"role": "assistant", "content": "a"}), "stop"),
                json!({"cached_tokens": 1920, "audio_tokens": 0}),
            ),
        ),
        // Compatible servers send `null` details, or none.
        Reply::Json(
            200,
            cached(
                completion(json!({"role": "assistant", "content": "b"}), "stop"),
                Value::Null,
            ),
        ),
        Reply::Sse(data_lines(
            &[
                chunk(json!({"role": "assistant", "content": "c"}), Some("stop")),
                stream_usage,
            ],
            true,
        )),
    ])
    .await;
    let dir = tempfile::tempdir().unwrap();
    let yaml = format!("kind: openai\napi_base: {}/v1\n", server.url());
    let p = provider("local", &yaml, dir.path());
    let req = request("a", vec![Message::user("go")]);
    let a = p.chat(&req, None).await.unwrap();
    assert_eq!(
        a.usage,
        Usage {
            input_tokens: 2006,
            output_tokens: 300,
            cache_read_tokens: 1920,
            cache_write_tokens: 0,
            ..Usage::default()
        }
    );
    assert_eq!(a.usage.uncached_input(), 86);
    let b = p.chat(&req, None).await.unwrap();
    assert_eq!((b.usage.input_tokens, b.usage.cache_read_tokens), (2006, 0));
    let seen = Collected::default();
    let c = p.chat(&req, Some(&seen.sink())).await.unwrap();
    assert_eq!(seen.text(), "c");
    assert_eq!(
        c.usage,
        Usage {
            input_tokens: 1500,
            output_tokens: 7,
            cache_read_tokens: 1024,
            cache_write_tokens: 0,
            ..Usage::default()
        }
    );
    // OpenAI caches on its own: the body carries no `cache_control`.
    for r in server.requests() {
        assert!(!r.body.contains("cache_control"), "{}", r.body);
    }
}
