//! `format: claude-stream-json` and `format: codex-jsonl` with a real subprocess: a fake agent
//! (`tests/streams/fake-agent.sh`) prints event streams recorded in the tools' documented
//! formats, and the provider reads them as they arrive.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use orchestra_providers::{ChatRequest, Message, Provider, ProviderError};
use serde_json::json;

use crate::{Collected, provider, request};

fn streams() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/streams")
}

/// A provider running the fake agent on `stream` with `flags`, reading `format`.
fn agent(name: &str, format: &str, stream: &str, flags: &[&str], extra: &str) -> Arc<dyn Provider> {
    let dir = streams();
    let mut argv = vec![
        "sh".to_owned(),
        dir.join("fake-agent.sh").display().to_string(),
    ];
    argv.extend(flags.iter().map(|f| (*f).to_owned()));
    argv.push(dir.join(stream).display().to_string());
    argv.push("{{prompt}}".to_owned());
    let yaml = format!(
        "kind: command\ncommand: {}\nformat: {format}\n{extra}",
        serde_json::to_string(&argv).unwrap()
    );
    provider(name, &yaml, &dir)
}

fn go() -> ChatRequest {
    request("writer", vec![Message::user("Write NOTES.md.")])
}

#[tokio::test]
async fn claude_code_runs_give_the_answer_tokens_cost_and_tool_calls() {
    let p = agent(
        "claude",
        "claude-stream-json",
        "claude-tools.jsonl",
        &[],
        "",
    );
    let seen = Collected::default();
    let out = p.chat(&go(), Some(&seen.sink())).await.unwrap();
    let answer = "I added NOTES.md with a summary of the README. There is no Cargo.toml, so there were no tests to run.";
    assert_eq!(out.text(), answer);
    assert_eq!(
        seen.text(),
        format!("I'll read the README first.\n\n{answer}")
    );
    assert_eq!(out.usage.input_tokens, 17 + 12361 + 35560);
    assert_eq!(out.usage.output_tokens, 412);
    assert_eq!(out.reported_cost_usd, Some(0.0591234));
    assert_eq!(out.model, "claude-sonnet-4-5-20250929");
    // Already run by the agent: reported, not asked of the harness.
    assert_eq!(out.tool_uses().count(), 0);
    let names: Vec<(&str, bool)> = out
        .external_tool_calls
        .iter()
        .map(|c| (c.name.as_str(), c.is_error))
        .collect();
    assert_eq!(names, [("Read", false), ("Write", false), ("Bash", true)]);
    let v = serde_json::to_value(&out).unwrap();
    assert_eq!(v["reported_cost_usd"], json!(0.0591234));
    assert_eq!(v["external_tool_calls"][1]["name"], "Write");
}

#[tokio::test]
async fn codex_runs_give_the_answer_tokens_and_tool_calls() {
    let p = agent(
        "codex",
        "codex-jsonl",
        "codex-tools.jsonl",
        &[],
        "stdin: true\n",
    );
    let seen = Collected::default();
    let out = p.chat(&go(), Some(&seen.sink())).await.unwrap();
    assert!(out.text().starts_with("I added NOTES.md"), "{}", out.text());
    assert_eq!(seen.text(), out.text());
    assert_eq!(
        (out.usage.input_tokens, out.usage.output_tokens),
        (24763, 122)
    );
    assert_eq!(out.reported_cost_usd, None);
    assert_eq!(out.model, "test-model");
    let names: Vec<&str> = out
        .external_tool_calls
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(
        names,
        [
            "command_execution",
            "file_change",
            "command_execution",
            "docs:search"
        ]
    );
}

#[tokio::test]
async fn an_error_the_agent_reports_is_the_error_not_its_exit_code() {
    let p = agent(
        "claude",
        "claude-stream-json",
        "claude-api-error.jsonl",
        &["--exit", "1"],
        "",
    );
    let e = p.chat(&go(), None).await.unwrap_err();
    assert!(matches!(e, ProviderError::CommandReported { .. }), "{e:?}");
    assert_eq!(
        e.to_string(),
        "`sh` (provider `claude`) reported an error: API Error: 401 {\"type\":\"error\",\"error\":{\"type\":\"authentication_error\",\"message\":\"invalid x-api-key\"}} (success, after 1 turn)"
    );
    assert!(!e.is_retryable());

    let p = agent(
        "codex",
        "codex-jsonl",
        "codex-failed.jsonl",
        &["--exit", "1"],
        "",
    );
    let e = p.chat(&go(), None).await.unwrap_err();
    assert_eq!(
        e.to_string(),
        "`sh` (provider `codex`) reported an error: the turn failed: unexpected status 401 Unauthorized: Missing bearer or basic authentication in header"
    );
}

#[tokio::test]
async fn a_malformed_line_stops_the_agent_at_once_and_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let done = dir.path().join("done");
    let done_arg = done.display().to_string();
    let p = agent(
        "claude",
        "claude-stream-json",
        "claude-malformed.jsonl",
        &["--delay", "0.1", "--done", &done_arg],
        "",
    );
    // The agent would mark its end after its tenth line; it is killed at line 3.
    let start = Instant::now();
    let e = p.chat(&go(), None).await.unwrap_err();
    assert!(
        start.elapsed() < Duration::from_millis(900),
        "{:?}",
        start.elapsed()
    );
    let msg = e.to_string();
    assert!(
        msg.starts_with("`sh` (provider `claude`) printed claude-stream-json output that cannot be used: line 3 cannot be read: it is not JSON (EOF while parsing"),
        "{msg}"
    );
    assert!(
        msg.ends_with(": `{\"type\":\"assistant\",\"message\":{\"model\":\"claude-sonnet-4-5-20250929\",\"id\":\"msg_01HzQ5kV3b7\",\"content\":[{\"type\":\"tool_use\"`"),
        "{msg}"
    );
    std::thread::sleep(Duration::from_millis(1200));
    assert!(!done.exists());
    // Without the bad line, the same agent gets to its end.
    let p = agent(
        "claude",
        "claude-stream-json",
        "claude-tools.jsonl",
        &["--done", &done_arg],
        "",
    );
    p.chat(&go(), None).await.unwrap();
    assert!(done.exists());
}

#[tokio::test]
async fn a_stream_that_ends_early_is_truncated() {
    let p = agent("codex", "codex-jsonl", "codex-truncated.jsonl", &[], "");
    let e = p.chat(&go(), None).await.unwrap_err();
    assert_eq!(
        e.to_string(),
        "`sh` (provider `codex`) printed codex-jsonl output that cannot be used: the stream is truncated: it ended without a `turn.completed` event"
    );
    // A program that failed says so, with its stderr, rather than that its stream was cut.
    let p = agent(
        "claude",
        "claude-stream-json",
        "claude-truncated.jsonl",
        &["--exit", "2"],
        "",
    );
    let e = p.chat(&go(), None).await.unwrap_err();
    assert!(matches!(e, ProviderError::CommandFailed { .. }), "{e:?}");
    assert_eq!(e.to_string(), "`sh` (provider `claude`) exited with code 2");
}

#[tokio::test]
async fn a_slow_stream_shows_what_came_and_is_killed_at_the_timeout() {
    let p = agent(
        "claude",
        "claude-stream-json",
        "claude-tools.jsonl",
        &["--delay", "0.3"],
        "timeout: 1500ms\n",
    );
    let seen = Collected::default();
    let start = Instant::now();
    let e = p.chat(&go(), Some(&seen.sink())).await.unwrap_err();
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "{:?}",
        start.elapsed()
    );
    assert!(matches!(e, ProviderError::CommandTimeout { .. }), "{e:?}");
    assert_eq!(
        e.to_string(),
        "`sh` (provider `claude`) timed out after 1.5s"
    );
    // The first message (line 2) came before the timeout, the answer (line 9) never did.
    assert_eq!(seen.text(), "I'll read the README first.");
}

#[tokio::test]
async fn the_agent_runs_in_the_directory_of_the_request() {
    let built_in = tempfile::tempdir().unwrap();
    let asked = tempfile::tempdir().unwrap();
    let spec = crate::spec(&format!(
        "kind: command\ncommand: [sh, {}, --write, NOTES.md, {}, \"{{{{prompt}}}}\"]\nformat: codex-jsonl\n",
        streams().join("fake-agent.sh").display(),
        streams().join("codex-tools.jsonl").display(),
    ));
    let opts = orchestra_providers::BuildOptions {
        workdir: Some(built_in.path().to_path_buf()),
        ..crate::fast()
    };
    let p =
        orchestra_providers::build_with("codex", &spec, &streams(), &crate::env, &opts).unwrap();
    p.chat(&go(), None).await.unwrap();
    assert!(built_in.path().join("NOTES.md").is_file());
    let mut req = go();
    req.workdir = Some(Arc::from(asked.path()));
    p.chat(&req, None).await.unwrap();
    let notes = std::fs::read_to_string(asked.path().join("NOTES.md")).unwrap();
    assert!(notes.contains("Write NOTES.md."), "{notes}");
}
