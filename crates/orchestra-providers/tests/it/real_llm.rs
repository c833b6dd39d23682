//! Real models, only when `ORCHESTRA_REAL_LLM=1` at build time (`build.rs` sets `--cfg real_llm`;
//! otherwise the test is reported as ignored). Reads `ANTHROPIC_API_KEY` / `OPENAI_API_KEY` (at
//! least one); models from `ORCHESTRA_ANTHROPIC_MODEL` / `ORCHESTRA_OPENAI_MODEL`, with cheap
//! defaults.

use orchestra_providers::{Block, ChatRequest, Message, Role, StopReason, build};

use crate::{Collected, request, spec};

async fn round_trip(kind: &str, key_var: &str, model: String) {
    let dir = tempfile::tempdir().unwrap();
    let yaml = format!("kind: {kind}\napi_key_env: {key_var}\nmax_tokens: 300\ntimeout: 60s\n");
    let p = build(kind, &spec(&yaml), dir.path(), &|k| std::env::var(k).ok()).unwrap();
    let mut req = ChatRequest {
        model: model.into(),
        ..request(
            "real",
            vec![Message::user(
                "Use the app:read-file tool to read `VERSION`, then answer with its content only.",
            )],
        )
    };
    let first = p.chat(&req, None).await.unwrap();
    assert_eq!(first.stop, StopReason::ToolUse, "{first:?}");
    let (id, name, _) = first.tool_uses().next().unwrap();
    assert_eq!(name, "app:read-file");
    let id = id.to_owned();
    req.messages.push(first.to_message());
    req.messages.push(Message {
        role: Role::User,
        content: vec![Block::ToolResult {
            tool_use_id: id,
            content: "4.2.7".into(),
            is_error: false,
        }],
    });
    let seen = Collected::default();
    let second = p.chat(&req, Some(&seen.sink())).await.unwrap();
    assert!(second.text().contains("4.2.7"), "{second:?}");
    assert_eq!(seen.text(), second.text());
    assert!(second.usage.input_tokens > 0 && second.usage.output_tokens > 0);
}

#[tokio::test]
#[cfg_attr(
    not(real_llm),
    ignore = "calls a real model: set ORCHESTRA_REAL_LLM=1 and ANTHROPIC_API_KEY or OPENAI_API_KEY"
)]
async fn real_llm_tool_round_trip() {
    let key = |var: &str| std::env::var(var).is_ok_and(|k| !k.is_empty());
    assert!(
        key("ANTHROPIC_API_KEY") || key("OPENAI_API_KEY"),
        "ORCHESTRA_REAL_LLM=1 needs ANTHROPIC_API_KEY or OPENAI_API_KEY"
    );
    if key("ANTHROPIC_API_KEY") {
        let model = std::env::var("ORCHESTRA_ANTHROPIC_MODEL").unwrap_or("claude-haiku-5-5".into());
        round_trip("anthropic", "ANTHROPIC_API_KEY", model).await;
    }
    if key("OPENAI_API_KEY") {
        let model = std::env::var("ORCHESTRA_OPENAI_MODEL").unwrap_or("gpt-4.1-mini".into());
        round_trip("openai", "OPENAI_API_KEY", model).await;
    }
}
