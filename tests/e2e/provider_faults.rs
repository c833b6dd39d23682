//! A provider that fails, through the binary: an unreachable server fails the run in seconds
//! naming the URL, a failing call is attempted by its provider only (the node is not run
//! again) and the retries are recorded, log lines carry no colour codes into a pipe, and a
//! server that sends no usage still counts against `limits.max_tokens`.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::fake_model::{FakeModel, text};
use super::project::Project;

fn session_of(stdout: &str) -> String {
    stdout
        .lines()
        .filter_map(|l| l.strip_prefix("session "))
        .next_back()
        .unwrap()
        .to_owned()
}

/// A pipeline of `agents` in a line on an `openai` provider at `api_base`, default settings.
fn pipeline(api_base: &str, agents: &[&str], limits: &str) -> String {
    let mut p = format!(
        "name: faults\ndefaults: {{ provider: local, model: m }}\nproviders:\n  local: {{ kind: openai, api_base: \"{api_base}\" }}\n{limits}agents:\n"
    );
    for a in agents {
        p.push_str(&format!(
            "  {a}: {{ role: {{ text: \"You are {a}.\" }}, task: {{ text: \"Do your part.\" }} }}\n"
        ));
    }
    p.push_str("graph:\n");
    let mut from = "START";
    for a in agents {
        p.push_str(&format!("  - {{ from: {from}, to: {a} }}\n"));
        from = a;
    }
    p.push_str(&format!("  - {{ from: {from}, to: END }}\n"));
    p
}

fn usage<'a>(status: &'a Value, node: &str) -> &'a Value {
    status["usage"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["node"] == node)
        .unwrap()
}

#[test]
fn an_unreachable_provider_fails_the_run_in_seconds_naming_the_url() {
    let addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let base = format!("http://{addr}/v1");
    let p = Project::new();
    p.write("down.yaml", &pipeline(&base, &["worker"], ""));
    // Built (on first use) before the clock starts.
    let _ = crate::binary::orchestra_bin();
    let t0 = Instant::now();
    let run = p.run(&["run", "down.yaml"]);
    let took = t0.elapsed();
    assert_eq!(run.code, 1, "{}", run.transcript());
    assert!(took < Duration::from_secs(5), "took {took:?}");
    let cause = format!(
        "connection to local at {base}/chat/completions failed: connection refused (gave up after 2 retries)"
    );
    assert!(
        run.stdout.starts_with(&format!(
            "failed: agent `worker` failed at step 1: {cause}\n"
        )),
        "{}",
        run.transcript()
    );
    assert!(!run.stderr.contains('\x1b'), "{}", run.transcript());
    assert!(
        !run.stderr.contains("retrying"),
        "no backoff noise: {}",
        run.transcript()
    );
    let status = p.status(&session_of(&run.stdout));
    assert_eq!(
        status["error"],
        format!("agent `worker` failed at step 1: {cause}")
    );
    let worker = usage(&status, "worker");
    assert_eq!(
        (
            worker["runs"].as_u64(),
            worker["retries"].as_u64(),
            worker["errors"].as_u64()
        ),
        (Some(1), Some(2), Some(1)),
        "{status}"
    );
}

#[test]
fn a_failing_call_is_retried_by_its_provider_only_and_the_retries_are_recorded() {
    // Every request gets a 500.
    let model = FakeModel::start(Vec::new());
    let p = Project::new();
    p.write("busy.yaml", &pipeline(&model.api_base(), &["worker"], ""));
    let run = p.run(&["run", "busy.yaml"]);
    assert_eq!(run.code, 1, "{}", run.transcript());
    // Default settings: the provider's first attempt and 4 retries; the node (2 retries by
    // default) is not run again for an error its provider already retried.
    assert_eq!(model.requests().len(), 5, "{}", run.transcript());
    assert!(
        !run.stderr.contains("(attempt 2)"),
        "the node ran again: {}",
        run.transcript()
    );
    let cause = format!(
        "local answered HTTP 500 from {}/chat/completions: the fake model has no more replies (gave up after 4 retries)",
        model.api_base()
    );
    assert!(
        run.stdout.starts_with(&format!(
            "failed: agent `worker` failed at step 1: {cause}\n"
        )),
        "{}",
        run.transcript()
    );
    // The retries were logged, in plain text: stderr is a pipe here.
    assert!(
        run.stderr.contains(" WARN retrying model call"),
        "{}",
        run.transcript()
    );
    assert!(!run.stderr.contains('\x1b'), "{}", run.transcript());
    let status = p.status(&session_of(&run.stdout));
    let worker = usage(&status, "worker");
    assert_eq!(
        (
            worker["runs"].as_u64(),
            worker["retries"].as_u64(),
            worker["errors"].as_u64()
        ),
        (Some(1), Some(4), Some(1)),
        "{status}"
    );
}

#[test]
fn a_server_without_usage_gets_estimated_tokens_and_max_tokens_stops_the_session() {
    let model = FakeModel::without_usage(vec![
        text("A first answer, long enough to count for a few tokens."),
        text("A second answer."),
    ]);
    let p = Project::new();
    p.write(
        "nousage.yaml",
        &pipeline(
            &model.api_base(),
            &["first", "second"],
            "limits: { max_tokens: 20 }\n",
        ),
    );
    let run = p.run(&[
        "run",
        "nousage.yaml",
        "--stream",
        "--events",
        "events.jsonl",
    ]);
    assert_eq!(run.code, 3, "{}", run.transcript());
    // The event of the model call says its tokens are an estimate.
    let events = std::fs::read_to_string(p.path("events.jsonl")).unwrap();
    let turn: Value = events
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|e| e["event"] == "model_turn")
        .expect("a model_turn event");
    assert_eq!(
        (&turn["tokens_out"], &turn["tokens_estimated"]),
        (&json!(14), &json!(true)),
        "{turn}"
    );
    assert!(
        run.stdout.starts_with(
            "stopped: the session spent its token budget (limits.max_tokens: 20, used 28)"
        ),
        "{}",
        run.transcript()
    );
    let requests = model.requests();
    assert_eq!(requests.len(), 1, "the second agent did not run");
    assert_eq!(requests[0]["stream"], json!(true));
    assert_eq!(
        requests[0]["stream_options"],
        json!({"include_usage": true})
    );
    assert!(
        run.stderr.contains("tokens are estimated"),
        "{}",
        run.transcript()
    );
    let status = p.status(&session_of(&run.stdout));
    let first = usage(&status, "first");
    // 54 bytes answered: 14 tokens; as many for the 56 bytes of the prompts.
    assert_eq!(
        (first["tokens_in"].as_u64(), first["tokens_out"].as_u64()),
        (Some(14), Some(14)),
        "{status}"
    );
}
