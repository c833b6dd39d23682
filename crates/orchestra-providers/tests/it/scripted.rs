//! The scripted provider with real responses files.

use std::sync::Arc;
use std::time::{Duration, Instant};

use orchestra_providers::{Block, ChatRequest, Message, Provider, Role, StopReason, Usage, build};
use serde_json::json;

use crate::{Collected, env, provider, request, spec};

const RESPONSES: &str = r#"
agents:
  security-reviewer:
    runs:
      - turns:
          - tool_calls:
              - { tool: "app:get-git-diff", args: {} }
              - { tool: "app:read-file", args: { path: src/main.rs } }
          - text: '{"findings": ["sql injection"]}'
            usage: { input_tokens: 100, output_tokens: 20 }
      - turns:
          - { text: "second run" }
  critic:
    latency_ms: 150
    runs:
      - turns:
          - { text: "approve", stop: max_tokens }
  flaky:
    runs:
      - turns:
          - { error: { status: 429, message: "slow down", times: 2 } }
          - { text: "made it" }
  broken:
    runs:
      - turns:
          - { error: { status: 400, message: "bad request" } }
  "*":
    runs:
      - turns:
          - { text: "default answer" }
"#;

fn setup(extra: &str) -> (tempfile::TempDir, Arc<dyn Provider>) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("fixtures")).unwrap();
    std::fs::write(dir.path().join("fixtures/r.responses.yaml"), RESPONSES).unwrap();
    let p = provider(
        "scripted",
        &format!("kind: scripted\nresponses: fixtures/r.responses.yaml\n{extra}"),
        dir.path(),
    );
    (dir, p)
}

fn tool_results(ids: &[&str]) -> Message {
    Message {
        role: Role::User,
        content: ids
            .iter()
            .map(|id| Block::ToolResult {
                tool_use_id: (*id).into(),
                content: "ok".into(),
                is_error: false,
            })
            .collect(),
    }
}

#[tokio::test]
async fn a_tool_loop_runs_offline_by_turn() {
    let (_dir, p) = setup("");
    let mut req = request("security-reviewer", vec![Message::user("review")]);
    let first = p.chat(&req, None).await.unwrap();
    assert_eq!(first.stop, StopReason::ToolUse);
    let calls: Vec<_> = first.tool_uses().collect();
    assert_eq!(
        calls,
        vec![
            ("call_0_0_0", "app:get-git-diff", &json!({})),
            (
                "call_0_0_1",
                "app:read-file",
                &json!({"path": "src/main.rs"})
            ),
        ]
    );
    assert!(first.usage.input_tokens > 0);
    req.messages.push(first.to_message());
    req.messages
        .push(tool_results(&["call_0_0_0", "call_0_0_1"]));
    let seen = Collected::default();
    let second = p.chat(&req, Some(&seen.sink())).await.unwrap();
    assert_eq!(second.text(), r#"{"findings": ["sql injection"]}"#);
    assert_eq!(seen.text(), second.text());
    assert_eq!(
        second.usage,
        Usage {
            input_tokens: 100,
            output_tokens: 20,
            ..Usage::default()
        }
    );
    assert_eq!(second.stop, StopReason::EndTurn);

    // The same request gives the same answer: nothing depends on call order.
    assert_eq!(p.chat(&req, None).await.unwrap(), second);

    req.messages.push(second.to_message());
    let e = p.chat(&req, None).await.unwrap_err();
    assert_eq!(
        e.to_string(),
        "provider `scripted` has no scripted response: agent `security-reviewer` run 0 has 2 scripted turn(s) and turn 2 was asked for"
    );
}

#[tokio::test]
async fn runs_are_chosen_by_run_index_and_the_last_repeats() {
    let (_dir, p) = setup("");
    for (run, expected) in [(1, "second run"), (7, "second run")] {
        let req = ChatRequest {
            run_index: run,
            ..request("security-reviewer", vec![Message::user("again")])
        };
        assert_eq!(p.chat(&req, None).await.unwrap().text(), expected);
    }
    let other = p
        .chat(&request("synthesizer", vec![Message::user("x")]), None)
        .await
        .unwrap();
    assert_eq!(other.text(), "default answer");
}

#[tokio::test]
async fn latency_and_stop_overrides_apply() {
    let (_dir, p) = setup("latency_ms: 0\n");
    let start = Instant::now();
    let out = p
        .chat(&request("critic", vec![Message::user("x")]), None)
        .await
        .unwrap();
    assert!(start.elapsed() >= Duration::from_millis(150));
    assert_eq!(
        (out.text().as_str(), out.stop),
        ("approve", StopReason::MaxTokens)
    );
}

#[tokio::test]
async fn scripted_errors_fail_n_times_then_answer() {
    // Without max_retries the error reaches the caller, whose own retry then succeeds.
    let (_dir, p) = setup("");
    let req = request("flaky", vec![Message::user("x")]);
    for _ in 0..2 {
        let e = p.chat(&req, None).await.unwrap_err();
        assert_eq!((e.status(), e.is_retryable()), (Some(429), true));
        assert_eq!(e.to_string(), "scripted answered HTTP 429: slow down");
    }
    assert_eq!(p.chat(&req, None).await.unwrap().text(), "made it");

    // With max_retries the provider retries inside and reports it.
    let (_dir, p) = setup("max_retries: 3\n");
    let out = p.chat(&req, None).await.unwrap();
    assert_eq!((out.text().as_str(), out.retries), ("made it", 2));

    let e = p
        .chat(&request("broken", vec![Message::user("x")]), None)
        .await
        .unwrap_err();
    assert_eq!((e.status(), e.retries()), (Some(400), 0));
}

#[tokio::test]
async fn an_invalid_file_is_reported_with_its_position() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("r.yaml"),
        "agents:\n  a:\n    runs:\n      - turns:\n          - { text: hi, tool_cals: [] }\n",
    )
    .unwrap();
    let e = build(
        "scripted",
        &spec("kind: scripted\nresponses: r.yaml\n"),
        dir.path(),
        &env,
    )
    .unwrap_err();
    let d = e.diagnostic().unwrap();
    assert_eq!(d.message, "unknown key `tool_cals`");
    let loc = d.location().unwrap();
    assert!(loc.ends_with("r.yaml:5:25"), "{loc}");
    assert_eq!(d.help[0], "did you mean `tool_calls`?");

    let e = build(
        "scripted",
        &spec("kind: scripted\nresponses: missing.yaml\n"),
        dir.path(),
        &env,
    )
    .unwrap_err();
    assert!(
        e.diagnostic().unwrap().message.ends_with("no such file"),
        "{e:?}"
    );
}

/// The responses file is read once, when the provider is built (not per call): 1600 agents
/// are answered after it is gone. (How fast is for `bench/`, not for a test.)
#[tokio::test]
async fn many_agents_are_answered_from_the_file_read_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut yaml = String::from("agents:\n");
    for i in 0..1600 {
        yaml.push_str(&format!(
            "  agent-{i}:\n    runs:\n      - turns:\n          - {{ text: \"step {i}\" }}\n"
        ));
    }
    std::fs::write(dir.path().join("chain.yaml"), yaml).unwrap();
    let p = build(
        "scripted",
        &spec("kind: scripted\nresponses: chain.yaml\n"),
        dir.path(),
        &env,
    )
    .unwrap();
    std::fs::remove_file(dir.path().join("chain.yaml")).unwrap();
    for i in 0..1600 {
        let out = p
            .chat(
                &request(&format!("agent-{i}"), vec![Message::user("go")]),
                None,
            )
            .await
            .unwrap();
        assert_eq!(out.text(), format!("step {i}"));
    }
}
