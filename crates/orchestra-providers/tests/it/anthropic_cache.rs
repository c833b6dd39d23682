//! Anthropic prompt caching against a local server: the `cache_control` breakpoints on the wire
//! (never more than the API's four) and the cache reads and writes read back from the usage.

use orchestra_providers::{Block, Message, Role, Usage};
use serde_json::{Value, json};

use crate::anthropic::{final_message, text_stream, tool_use_message, yaml};
use crate::server::{Reply, Server, sse};
use crate::{Collected, provider, request};

/// The `cache_control` marks of a request body, as JSON paths.
fn cache_marks(v: &Value, at: &str, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            if let Some(mark) = m.get("cache_control") {
                assert_eq!(mark, &json!({"type": "ephemeral"}), "{at}");
                out.push(at.to_owned());
            }
            for (k, v) in m {
                cache_marks(v, &format!("{at}/{k}"), out);
            }
        }
        Value::Array(a) => {
            for (i, v) in a.iter().enumerate() {
                cache_marks(v, &format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
}

fn cached_message(id: &str, content: Value, stop: &str, usage: Value) -> Value {
    json!({
        "id": id, "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
        "content": content, "stop_reason": stop, "stop_sequence": null, "usage": usage
    })
}

#[tokio::test]
async fn a_long_tool_loop_marks_at_most_four_breakpoints_and_reads_cache_usage() {
    let read = |id: &str| json!([{"type": "tool_use", "id": id, "name": "app__read-file", "input": {"path": "a"}}]);
    let server = Server::start(vec![
        // The first call writes system + tools to the cache.
        Reply::Json(200, cached_message("m1", read("t1"), "tool_use", json!({
            "input_tokens": 50, "cache_creation_input_tokens": 1800, "cache_read_input_tokens": 0, "output_tokens": 20
        }))),
        // Later calls read that prefix, and write the conversation that grew since.
        Reply::Json(200, cached_message("m2", read("t2"), "tool_use", json!({
            "input_tokens": 10, "cache_creation_input_tokens": 300, "cache_read_input_tokens": 1800, "output_tokens": 20
        }))),
        Reply::Json(200, cached_message("m3", read("t3"), "tool_use", json!({
            "input_tokens": 10, "cache_creation_input_tokens": 250, "cache_read_input_tokens": 2100, "output_tokens": 20
        }))),
        Reply::Json(200, cached_message("m4", json!([{"type": "text", "text": "done"}]), "end_turn", json!({
            "input_tokens": 10, "cache_creation_input_tokens": 240, "cache_read_input_tokens": 2350, "output_tokens": 5
        }))),
    ])
    .await;
    let dir = tempfile::tempdir().unwrap();
    let p = provider("anthropic", &yaml(&server, ""), dir.path());
    let mut req = request("reviewer", vec![Message::user("Review it")]);
    let mut total = Usage::default();
    let mut usages = Vec::new();
    for turn in 0..4 {
        let out = p.chat(&req, None).await.unwrap();
        usages.push(out.usage);
        total += out.usage;
        if turn < 3 {
            let id = out.tool_uses().next().unwrap().0.to_owned();
            req.messages.push(out.to_message());
            req.messages.push(Message {
                role: Role::User,
                content: vec![Block::ToolResult {
                    tool_use_id: id,
                    content: "fn a() {}".into(),
                    is_error: false,
                }],
            });
        }
    }
    // Anthropic's `input_tokens` leaves the cache out; ours holds it.
    assert_eq!(
        usages[0],
        Usage {
            input_tokens: 1850,
            output_tokens: 20,
            cache_read_tokens: 0,
            cache_write_tokens: 1800,
            ..Usage::default()
        }
    );
    assert_eq!(
        usages[3],
        Usage {
            input_tokens: 2600,
            output_tokens: 5,
            cache_read_tokens: 2350,
            cache_write_tokens: 240,
            ..Usage::default()
        }
    );
    assert_eq!(
        (
            total.input_tokens,
            total.cache_read_tokens,
            total.cache_write_tokens
        ),
        (
            1850 + 2110 + 2360 + 2600,
            1800 + 2100 + 2350,
            1800 + 300 + 250 + 240
        )
    );

    let seen = server.requests();
    assert_eq!(seen.len(), 4);
    for (i, r) in seen.iter().enumerate() {
        let body = r.json();
        let mut marks = Vec::new();
        cache_marks(&body, "", &mut marks);
        assert!(marks.len() <= 4, "request {i}: {marks:?}");
        assert!(
            marks.contains(&"/system/0".to_owned()),
            "request {i}: {marks:?}"
        );
        assert!(
            marks.contains(&"/tools/0".to_owned()),
            "request {i}: {marks:?}"
        );
        let messages = body["messages"].as_array().unwrap();
        let last = messages.len() - 1;
        let last_block = messages[last]["content"].as_array().unwrap().len() - 1;
        let prefix = format!("/messages/{last}/content/{last_block}");
        if i == 0 {
            // Nothing to reuse yet beyond system and tools.
            assert_eq!(marks.len(), 2, "{marks:?}");
        } else {
            assert_eq!(marks.len(), 3, "request {i}: {marks:?}");
            assert!(
                marks.contains(&prefix),
                "request {i}: {marks:?} (want {prefix})"
            );
            assert_eq!(messages[last]["content"][last_block]["type"], "tool_result");
        }
    }
}

#[tokio::test]
async fn prompt_caching_false_sends_no_cache_control() {
    let server = Server::start(vec![
        Reply::Json(200, tool_use_message()),
        Reply::Json(200, final_message("ok")),
    ])
    .await;
    let dir = tempfile::tempdir().unwrap();
    let p = provider(
        "anthropic",
        &yaml(&server, "prompt_caching: false\n"),
        dir.path(),
    );
    let mut req = request("reviewer", vec![Message::user("Review it")]);
    let first = p.chat(&req, None).await.unwrap();
    req.messages.push(first.to_message());
    req.messages.push(Message::user("and?"));
    p.chat(&req, None).await.unwrap();
    for r in server.requests() {
        let body = r.json();
        let mut marks = Vec::new();
        cache_marks(&body, "", &mut marks);
        assert_eq!(marks, Vec::<String>::new());
        assert_eq!(body["system"], json!("You are a careful reviewer."));
    }
}

#[tokio::test]
async fn a_stream_reports_cache_reads_and_writes() {
    let mut events = vec![(
        "message_start",
        json!({"type": "message_start", "message": {"id": "msg_c", "type": "message", "role": "assistant", "content": [], "model": "claude-sonnet-4-5", "stop_reason": null, "stop_sequence": null,
            "usage": {"input_tokens": 7, "cache_creation_input_tokens": 120, "cache_read_input_tokens": 3000, "output_tokens": 1}}}),
    )];
    events.extend(text_stream("Cached.").into_iter().skip(1));
    events.extend([
        (
            "message_delta",
            json!({"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": null},
                   "usage": {"output_tokens": 9, "input_tokens": 7, "cache_creation_input_tokens": 120, "cache_read_input_tokens": 3000}}),
        ),
        ("message_stop", json!({"type": "message_stop"})),
    ]);
    let server = Server::start(vec![Reply::Sse(sse(&events))]).await;
    let dir = tempfile::tempdir().unwrap();
    let p = provider("anthropic", &yaml(&server, ""), dir.path());
    let seen = Collected::default();
    let out = p
        .chat(&request("a", vec![Message::user("go")]), Some(&seen.sink()))
        .await
        .unwrap();
    assert_eq!(out.text(), "Cached.");
    assert_eq!(
        out.usage,
        Usage {
            input_tokens: 3127,
            output_tokens: 9,
            cache_read_tokens: 3000,
            cache_write_tokens: 120,
            ..Usage::default()
        }
    );
}
